"""The docs run as written: every command and snippet of every page, in order, in a fresh copy.

The pages are README.md, every docs/*.md except docs/benchmarks.md (a generated report), and
the pages of each topic room (ROOMS: team-server/, rollout/, spark/, old-stores/, container/, monitoring/). Every page's
commands run from the repository folder. Rules the pages follow, so that this test can read them:

- Tracks. TRACKS below puts each page in exactly one track; a track that starts mid-way first
  runs the commands its pages build on (BEFORE). Each track runs in its own fresh
  copy of the repository (no store, no .venv), as one test, so `pytest -n 2` runs tracks side
  by side. The pages of a track run in order and share their files and their store; pages of
  different tracks never share a port.
- Terminals, as a reader has them. A block runs in terminal 1 unless a line of the prose before
  it (since the previous block) starts with "In terminal N" or "Back in terminal N"; the blocks
  after it stay in that terminal until another such line. Each terminal is its own shell: a
  new one starts in the repository folder with the environment active (VIRTUAL_ENV and PATH
  name the environment running these tests) and no MLFLOW_TRACKING_URI; its `cd` and
  `export`s carry over to its own later blocks only. So a block that needs an export made in
  another terminal fails here as it would for the reader.
- A `bash`/`sh` block runs as one bash script (`set -e`) in its terminal's directory.
- A `python` block is a whole program; it runs at its place, in its terminal's directory and
  environment.
- A `text` block right after a runnable block (only prose between) is its expected output:
  stdout and stderr, as a terminal shows them. Its lines match the whole output, in order; a
  line `...` stands for any number of lines, and `<anything>` within a line for any text. The
  copy's path reads `<repository>`. Every output must also be clean: no warning, deprecation
  notice or traceback (conftest.assert_clean), unless the text block shows that very line.
- `<!-- docs-test: fails -->` before a bash block: each command in it runs on its own and
  must exit non-zero; their outputs together are matched against the next text block.
- A bash block that is one long-running command (`./serve_model.sh`,
  `./team-server/tracking_server.sh`, `make ui`, `make serve`, `make server`,
  `python rollout/webhook_receiver.py`, maybe with VAR=value before and arguments after)
  starts in the background in its own process group and keeps its terminal busy: a later
  block in that terminal fails the test. The test waits until its log matches its text block
  and runs the page's later blocks against it. A prose line that starts with "Press Ctrl-C in
  terminal N" (or "Ctrl-C in terminals N and M") sends SIGINT to that server, as the keys
  do, and frees the terminal; at the end of the page every server still running gets the same,
  so a page that starts one must say "Ctrl-C". A server must stop on Ctrl-C within 30 s, and
  what it logged must be clean.
- A page hands the shell back as it found it: when it ends, terminal 1 is in the folder and
  has the exports it had when the page began (bar KEPT_EXPORTS), and the page's other
  terminals are closed.
- What `python rollout/rollout.py` starts (HAProxy, the slots) is stopped, by the process
  groups its pid files in rollout/state/ name, when the track ends or fails.
- `<!-- docs-test: quickstart -->` before a python block: not run here; tests/test_quickstart.py
  runs it in an empty folder.
- `<!-- docs-test: lesson -->` before a python or bash block: a chapter's lesson on one screen
  (LESSONS: chapters 5, 6 and 8), for the quickstart's folder, not the repository's. Not run
  here; tests/test_lessons.py runs it where the quickstart ran, and matches a text block right
  after it as here.
- `<!-- docs-test: excerpt (train_rfc.py) -->` before a python (or bash) block: the lines a
  chapter teaches, quoted from the named file of the repository. Not run as a program (the
  page's commands run the file itself); it must be a verbatim run of consecutive lines of that
  file, after dedenting both, so that a changed script line the page shows fails this test.
- `<!-- docs-test: skip (reason) -->` before a fence: not run, for that visible reason. At most
  six in all the pages.
- Other fences (`json` request bodies, a `text` block after no runnable one) are shown, not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import (
    NOISE,
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    stop_process_group,
    stop_team_stack,
)

GENERATED = ["docs/benchmarks.md"]
# The optional topics: each a folder with its page (README.md), maybe more pages, and its code.
ROOMS = ["rollout", "spark", "team-server", "old-stores", "container", "monitoring"]
PAGES = (
    ["README.md"]
    + sorted(
        f"docs/{path.name}"
        for path in (REPO / "docs").glob("*.md")
        if f"docs/{path.name}" not in GENERATED
    )
    + [f"{room}/{path.name}" for room in ROOMS for path in sorted((REPO / room).glob("*.md"))]
)
TRACKS = {
    "tutorial": [
        "README.md",
        "docs/setup.md",
        "docs/01-track-runs.md",
        "docs/02-your-own-csv.md",
        "docs/03-the-ui.md",
        "docs/04-query-runs.md",
        "docs/05-register.md",
        "docs/06-serve-and-predict.md",
    ],
    "tuning": ["docs/07-tune-and-autolog.md", "docs/08-promotion-gate.md"],
    "reference": ["docs/measuring.md", "docs/testing.md"],
    "spark": ["spark/README.md"],
    "team-server": ["team-server/README.md", "team-server/exposing.md"],
    "team-stack": ["team-server/stack.md"],
    "rollout": ["rollout/README.md"],
    "old-stores": ["old-stores/README.md", "old-stores/upgrade-mlflow.md"],
    "container": ["container/README.md"],
    "monitoring": ["monitoring/README.md"],
}
# A track that starts mid-way first runs, as a reader who starts there would, the commands of
# the chapters it builds on (each page says which in its "Before:" line).
BEFORE = {
    "spark": ["python train_rfc.py", "python register_model.py"],
    "rollout": ["python train_rfc.py", "python register_model.py"],
    "container": ["python train_rfc.py", "python register_model.py"],
    # make demo's champion (the page's loop must also pass after chapter 5's: test_monitoring)
    "monitoring": [
        "python train_ann.py --hidden-layers 64,32 --alpha 0.01 --run-name mlp-two-layers",
        "python register_model.py",
    ],
}
MARKER = re.compile(
    r"<!-- docs-test: (?P<kind>skip|fails|quickstart|excerpt|lesson)( \((?P<reason>.*)\))? -->"
)
# The chapters that teach a script's own lines, and the file each quotes (at least once).
EXCERPTS = {
    "docs/01-track-runs.md": "train_rfc.py",
    "docs/05-register.md": "register_model.py",
    "docs/06-serve-and-predict.md": "predict.py",
    "docs/07-tune-and-autolog.md": "tune_rfc.py",
    "docs/08-promotion-gate.md": "promotion_gate.py",
    "rollout/README.md": "rollout/haproxy.cfg",
    "container/README.md": "container/build_image.sh",
    "monitoring/README.md": "monitoring/check_drift.py",
}
# The chapters with a lesson on one screen (tests/test_lessons.py runs them).
LESSONS = ["docs/05-register.md", "docs/06-serve-and-predict.md", "docs/08-promotion-gate.md"]
LONG_RUNNING = re.compile(
    r"(\w+=\S*[ \t]+)*(\./serve_model\.sh|\./team-server/tracking_server\.sh|\./container/run_image\.sh"
    r"|make (ui|serve|server)|python rollout/webhook_receiver\.py)\b[^;&|\n]*"
)
# Each must be run by some page: `python <name>` or `./<name>`.
SCRIPTS = """train_rfc.py train_ann.py register_model.py predict.py spark/predict_spark.py
    rollout/rollout.py rollout/webhook_receiver.py rollout/create_webhook.py
    rollout/champion_history.py monitoring/check_drift.py""".split()
SHELL_SCRIPTS = [
    "serve_model.sh",
    "team-server/tracking_server.sh",
    "container/build_image.sh",
    "container/run_image.sh",
]
# Prose that moves the reader to a terminal, or presses Ctrl-C in one (see the rules above).
TO_TERMINAL = re.compile(r"\W*(?:In|Back in) terminal (\d+)\b")
CTRL_C = re.compile(r"\W*(?:Press )?Ctrl-C in terminals? (\d+(?:(?:, | and )\d+)*)\b")
# Exports a page may leave behind on purpose: set-up's opt-out of MLflow's telemetry.
KEPT_EXPORTS = {"MLFLOW_DISABLE_TELEMETRY", "OLDPWD"}  # and `cd`'s memory of the last folder
# What a reader's fresh clone does not have: stores, environments, what the pages make.
NOT_CLONED = """.git .venv mlflow.db mlruns mlartifacts server basic_auth.db __pycache__ *_cache
    .serve-once.* my-data my-project scored .venv-mlflow2 old-project mlflow2.json
    .venv-mlflow3-older old-server before.json before.csv state *.egg-info basic-auth.env
    old-runs.db captured stack restored backups"""
MAX_SKIPS = 6
SERVER_TIMEOUT = 120  # seconds for a server to print what its text block shows


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    marker: str | None = None  # skip, fails, quickstart, excerpt or lesson
    reason: str | None = None  # of a skip; the quoted file of an excerpt
    expected: str | None = None  # the text block right after it
    prose: list[str] = field(default_factory=list)  # the lines since the previous fence

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in {"bash", "sh", "python"} and self.marker in {None, "fails"}


def page_blocks(page: str, root: Path = REPO) -> list[Block]:
    """The fenced blocks of a page, each with its marker, its expected output and its prose.

    The prose after the last fence comes last, as a block of language "prose".
    """
    lines = (root / page).read_text().splitlines()
    blocks: list[Block] = []
    index, prose = 0, []
    while index < len(lines):
        fence = re.fullmatch(r"(\s*)```(\S*)\s*", lines[index])
        index += 1
        if not fence:
            prose.append(lines[index - 1])
            continue
        start, body = index, []
        while lines[index].strip() != "```":
            body.append(lines[index][len(fence[1]) :])
            index += 1
        index += 1
        previous = next((line for line in reversed(lines[: start - 1]) if line.strip()), "")
        marker = MARKER.fullmatch(previous.strip())
        block = Block(page, start, fence[2], "\n".join(body), prose=prose)
        prose = []
        if marker:
            block.marker, block.reason = marker["kind"], marker["reason"]
        if (
            block.language == "text"
            and blocks
            and (blocks[-1].runs or blocks[-1].marker == "lesson")
        ):
            blocks[-1].expected = block.code
        blocks.append(block)
    blocks.append(Block(page, len(lines), "prose", "", prose=prose))
    return blocks


BLOCKS = {page: page_blocks(page) for page in PAGES}
ALL_BLOCKS = [block for blocks in BLOCKS.values() for block in blocks]


def fail(message: str):
    pytest.fail(message, pytrace=False)  # the page and line say where; no runner traceback


# --- Expected output ----------------------------------------------------------------------


def line_regex(line: str) -> str:
    """One expected line: '<x>' stands for any text."""
    return ".+".join(map(re.escape, re.split(r"<[^<>]+>", line.rstrip())))


def expected_regex(lines: list[str], open_end: bool = False) -> str:
    """The whole output as one regex: a line '...' stands for any number of lines."""
    parts = [r"(?:.*\n)*?" if line.strip() == "..." else line_regex(line) + r"\n" for line in lines]
    return "".join(parts) + (r"(?:.*\n)*" if open_end else "")


def matches(output: str, expected: str) -> bool:
    return re.fullmatch(expected_regex(expected.splitlines()), output) is not None


def check_output(output: str, expected: str, where: str) -> None:
    if matches(output, expected):
        return
    lines = expected.splitlines()
    for count in range(1, len(lines) + 1):
        if not re.fullmatch(expected_regex(lines[:count], open_end=True), output):
            problem = (
                f"line {count} of the text block, {lines[count - 1]!r}, does not come next "
                "(a text block matches the whole output; '...' skips lines)"
            )
            break
    else:
        problem = "the output goes on after the text block's last line (end it with '...'?)"
    fail(f"{where}: {problem}. The output was:\n{output}")


def check_clean(output: str, expected: str | None) -> None:
    """No warning, deprecation or traceback, but for a line the page's text block shows."""
    shown = [line for line in (expected or "").splitlines() if any(w in line for w in NOISE)]
    unshown = [
        line
        for line in output.splitlines()
        if not any(re.fullmatch(line_regex(pattern), line) for pattern in shown)
    ]
    assert_clean(SimpleNamespace(stdout="\n".join(unshown), stderr=""))


# --- Running a track ----------------------------------------------------------------------


@dataclass
class Terminal:
    """One of the reader's terminals: its own folder and exports, maybe a server in it."""

    number: int
    cwd: Path
    env: dict[str, str]
    server: tuple[subprocess.Popen, Path, Block] | None = None


@dataclass
class Track:
    """One track's copy of the repository, and the reader's terminals on it."""

    copy: Path
    scratch: Path  # outside the copy: python blocks, server logs, the shells' state
    new_env: dict[str, str]  # what a new terminal starts with
    terminals: dict[int, Terminal] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("_", "SHLVL", "PWD", "OLDPWD"):  # each shell sets these itself
            self.new_env.pop(name, None)

    def terminal(self, number: int) -> Terminal:
        if number not in self.terminals:
            self.terminals[number] = Terminal(number, self.copy, dict(self.new_env))
        return self.terminals[number]

    def printed(self, output: str) -> str:
        output = output.replace(str(self.copy), "<repository>")
        return "".join(line.rstrip() + "\n" for line in output.splitlines())

    @staticmethod
    def shell(terminal: Terminal) -> dict:
        # stdout and stderr in one stream, in the order a terminal shows them
        return dict(
            cwd=terminal.cwd, env=terminal.env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

    def run(self, command, terminal, block, shown: str, should_fail=False) -> str:
        result = subprocess.run(
            command, **self.shell(terminal), stdout=subprocess.PIPE, text=True, timeout=300
        )
        if (result.returncode != 0) != should_fail:
            what = "did not fail" if should_fail else f"exited {result.returncode}"
            fail(
                f"{block.where} (terminal {terminal.number}): {shown!r} {what}. "
                f"The output was:\n{result.stdout}"
            )
        return result.stdout

    def run_bash(self, block: Block, terminal: Terminal) -> str:
        """The block as one script; then keep where it left its terminal's folder and exports."""
        state = self.scratch / "shell"
        script = f"set -e\n{block.code}\npwd > {state}.cwd\nenv -0 > {state}.env\n"
        output = self.run(["bash", "-c", script], terminal, block, shown=block.code)
        terminal.cwd = Path(Path(f"{state}.cwd").read_text().strip())
        pairs = Path(f"{state}.env").read_text().split("\0")
        terminal.env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        for name in ("_", "SHLVL", "PWD"):  # bash sets these itself
            terminal.env.pop(name, None)
        return output

    def run_failing(self, block: Block, terminal: Terminal) -> str:
        commands = re.sub(r"\\\n", " ", block.code).splitlines()
        return "".join(
            self.run(["bash", "-c", command], terminal, block, shown=command, should_fail=True)
            for command in commands
            if command.strip() and not command.lstrip().startswith("#")
        )

    def run_python(self, block: Block, terminal: Terminal) -> str:
        program = self.scratch / f"{Path(block.page).stem}-{block.line}.py"
        program.write_text(block.code + "\n")
        return self.run([PYTHON, str(program)], terminal, block, shown="the python block")

    def start_server(self, block: Block, terminal: Terminal) -> None:
        if not block.expected:
            fail(f"{block.where}: a long-running command needs a text block to wait for")
        log = (
            self.scratch
            / f"{Path(block.page).parent.name}-{Path(block.page).stem}-{block.line}.log"
        )
        with open(log, "w") as out:
            process = subprocess.Popen(
                ["bash", "-c", block.code],
                **self.shell(terminal),
                stdout=out,
                start_new_session=True,
                # As in a terminal, whatever this test process ignores: a foreground command
                # gets Ctrl-C. (An ignored SIGINT is inherited, and a Python server started with
                # it ignored never sees KeyboardInterrupt: the webhook receiver did not stop.)
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        terminal.server = (process, log, block)
        deadline = time.monotonic() + SERVER_TIMEOUT
        while not matches(printed := self.printed(log.read_text()), block.expected):
            check_clean(printed, block.expected)
            if process.poll() is not None:
                fail(
                    f"{block.where} (terminal {terminal.number}): exited {process.returncode}. "
                    f"It printed:\n{printed}"
                )
            if time.monotonic() > deadline:
                check_output(printed, block.expected, f"{block.where} after {SERVER_TIMEOUT}s")
            time.sleep(0.5)

    def press_ctrl_c(self, terminal: Terminal, where: str) -> None:
        """SIGINT to the terminal's server, as Ctrl-C sends it; it must stop, and cleanly."""
        if terminal.server is None:
            fail(f"{where}: Ctrl-C in terminal {terminal.number}, where nothing is running")
        process, log, block = terminal.server
        terminal.server = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            fail(f"{block.where}: still running 30 s after Ctrl-C in terminal {terminal.number}")
        stop_process_group(process)  # workers it left behind, if any
        check_clean(self.printed(log.read_text()), block.expected)

    def run_page(self, page: str, blocks: list[Block] | None = None) -> None:
        first = self.terminal(1)
        found = (first.cwd, {k: v for k, v in first.env.items() if k not in KEPT_EXPORTS})
        number = 1
        try:
            for block in BLOCKS[page] if blocks is None else blocks:
                for line in block.prose:
                    if moved := TO_TERMINAL.match(line):
                        number = int(moved[1])
                    if pressed := CTRL_C.match(line):
                        for each in re.findall(r"\d+", pressed[1]):
                            self.press_ctrl_c(self.terminal(int(each)), f"{page}: {line.strip()}")
                if not block.runs:
                    continue
                terminal = self.terminal(number)
                if terminal.server is not None:
                    fail(
                        f"{block.where}: terminal {number} is still running "
                        f"{terminal.server[2].code.strip()!r} (from line {terminal.server[2].line}): "
                        "say 'In terminal N' before this block, or stop the server first"
                    )
                if block.language == "python":
                    output = self.run_python(block, terminal)
                elif block.marker == "fails":
                    output = self.run_failing(block, terminal)
                elif LONG_RUNNING.fullmatch(block.code.strip()):
                    self.start_server(block, terminal)
                    continue
                else:
                    output = self.run_bash(block, terminal)
                printed = self.printed(output)
                check_clean(printed, block.expected)
                if block.expected is not None:
                    check_output(printed, block.expected, f"{block.where} (terminal {number})")
            running = [t.number for t in self.terminals.values() if t.server]
            if running and not any(
                "Ctrl-C" in "\n".join(b.prose) for b in BLOCKS.get(page, blocks)
            ):
                fail(f"{page}: ends with servers running in terminals {running}; say 'Ctrl-C'")
            for terminal in self.terminals.values():
                if terminal.server:
                    self.press_ctrl_c(terminal, f"{page}: the end of the page")
            left = (first.cwd, {k: v for k, v in first.env.items() if k not in KEPT_EXPORTS})
            if left[0] != found[0]:
                fail(f"{page}: ends in {self.printed(str(left[0])).strip()}, not where it began")
            changed = sorted(
                k for k in found[1].keys() | left[1].keys() if found[1].get(k) != left[1].get(k)
            )
            if changed:
                fail(
                    f"{page}: ends with terminal 1's exports changed ({', '.join(changed)}): "
                    "unset what the page set"
                )
        finally:
            for terminal in list(self.terminals.values()):
                if terminal.server:
                    stop_process_group(terminal.server[0])
                    terminal.server = None
            for number in [n for n in self.terminals if n != 1]:
                del self.terminals[number]  # a page's other terminals close with it


# --- The runner catches what a reader would meet, terminal by terminal ---------------------
# Three pages failed readers who pasted them in order: a server started in a new terminal
# without an export made in the first, a block typed into a terminal that a server holds, and a
# page that left MLFLOW_TRACKING_URI set. Each, as a page of its own, must fail here.
BROKEN_PAGES = {
    "an export from another terminal": (
        "```bash\nexport WEBHOOK_SECRET=made-in-terminal-1\n```\n\n"
        "In terminal 2, start the receiver:\n\n"
        '```bash\ntest -n "$WEBHOOK_SECRET" || { echo "WEBHOOK_SECRET is not set"; exit 1; }\n```\n',
        "(terminal 2): 'test -n",
    ),
    "a block in a terminal a server holds": (
        "```bash\n./serve_model.sh\n```\n\n```text\n...\n```\n\n"
        "```bash\ncurl -s http://127.0.0.1:1/ping\n```\n\nCtrl-C stops it.\n",
        "terminal 1 is still running './serve_model.sh'",
    ),
    "a stale MLFLOW_TRACKING_URI": (
        "```bash\nexport MLFLOW_TRACKING_URI=http://127.0.0.1:5060\n```\n",
        "ends with terminal 1's exports changed (MLFLOW_TRACKING_URI)",
    ),
}


@pytest.mark.quick
@pytest.mark.parametrize("mistake", BROKEN_PAGES)
def test_the_runner_fails_a_page_that_a_reader_could_not_paste(mistake, tmp_path):
    page, expected = BROKEN_PAGES[mistake]
    (tmp_path / "page.md").write_text(page)
    blocks = page_blocks("page.md", root=tmp_path)
    (tmp_path / "scratch").mkdir()
    # A stand-in for the server: it says what a text block of "..." waits for, and stays up.
    (tmp_path / "serve_model.sh").write_text("#!/bin/sh\necho Serving\nexec sleep 60\n")
    (tmp_path / "serve_model.sh").chmod(0o755)
    env = dict(base_env(), PATH=f"{tmp_path}:{base_env()['PATH']}")
    shell = Track(copy=tmp_path, scratch=tmp_path / "scratch", new_env=env)
    with pytest.raises(pytest.fail.Exception) as failed:
        shell.run_page("page.md", blocks)
    assert expected in str(failed.value), str(failed.value)


def fresh_copy(destination: Path) -> Path:
    """The repository as a reader's fresh clone has it: no store, no virtual environment."""
    ignore = shutil.ignore_patterns(*NOT_CLONED.split())
    return Path(shutil.copytree(REPO, destination, ignore=ignore))


def run_track(pages: list[str], before: list[str], tmp_path: Path) -> None:
    # Under a folder whose name has a space, as on many laptops: every command must cope.
    copy = fresh_copy(tmp_path / "My Projects" / "repo")
    (tmp_path / "scratch").mkdir()
    env = base_env()
    # As after `source .venv/bin/activate`: python, pip, mlflow and make use this environment.
    env["VIRTUAL_ENV"] = str(Path(PYTHON).parent.parent)
    # Unbuffered, Python's prints and MLflow's log lines interleave as in a terminal.
    env["PYTHONUNBUFFERED"] = "1"
    shell = Track(copy=copy, scratch=tmp_path / "scratch", new_env=env)
    for command in before:
        subprocess.run(command.split(), cwd=copy, env=env, check=True, capture_output=True)
    try:
        for page in pages:
            shell.run_page(page)
    finally:  # what rollout.py and team_stack.py started lives in process groups their pid files name
        for stack in (copy / "team-server").glob("*/stack.json"):
            stop_team_stack(stack.parent)
        for pid_file in (copy / "rollout" / "state").glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)


# The container page builds on the worker that runs tests/test_container.py (one xdist group):
# one Docker daemon, whose layers from the page's build test_container.py's build reuses.
@pytest.mark.parametrize(
    "track",
    [
        pytest.param(track, marks=pytest.mark.xdist_group("container"))
        if track == "container"
        else track
        for track in TRACKS
    ],
)
def test_track_runs_as_written(track, tmp_path, request, monkeypatch):
    if track == "container":  # a Docker daemon of the session's own (conftest's `docker`)
        monkeypatch.setenv("DOCKER_HOST", request.getfixturevalue("docker").host)
    run_track(TRACKS[track], BEFORE.get(track, []), tmp_path)


@pytest.mark.quick
@pytest.mark.quick_only
def test_first_chapters_run_as_written(tmp_path):
    """The edit loop's share of the tutorial track: the README, set-up, chapters 1 and 2."""
    run_track(TRACKS["tutorial"][:4], [], tmp_path)


# --- What the pages promise about themselves ----------------------------------------------


@pytest.mark.quick
def test_every_page_is_in_exactly_one_track():
    placed = [page for pages in TRACKS.values() for page in pages]
    assert sorted(placed) == sorted(PAGES), "put each page of PAGES in exactly one track"


@pytest.mark.quick
def test_every_chapter_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    for page in PAGES[1:] + GENERATED:
        assert f"]({page})" in readme, f"README.md has no link to {page}"


@pytest.mark.quick
def test_markers_are_known_few_and_each_skip_says_why():
    for page in PAGES:
        lines = (REPO / page).read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if "docs-test" in line and line.lstrip().startswith("<!--"):
                where = f"{page}:{number}"
                assert MARKER.fullmatch(line.strip()), f"{where}: unknown marker {line.strip()}"
                following = next((later for later in lines[number:] if later.strip()), "")
                assert following.strip().startswith("```"), f"{where}: a marker goes before a fence"
    skips = [block for block in ALL_BLOCKS if block.marker == "skip"]
    assert len(skips) <= MAX_SKIPS, f"more than {MAX_SKIPS} skips: {[b.where for b in skips]}"
    for block in skips:
        assert block.reason and block.reason.strip(), f"{block.where}: say why it is skipped"
    for block in ALL_BLOCKS:
        if block.marker in ("quickstart", "lesson"):
            assert block.language in ("python", "bash"), f"{block.where}: python or bash"
    lessons = sorted({block.page for block in ALL_BLOCKS if block.marker == "lesson"})
    assert lessons == sorted(LESSONS), f"lesson blocks in {lessons}, not in LESSONS' pages"


@pytest.mark.quick
def test_every_fence_has_a_language_and_every_script_is_run():
    for block in ALL_BLOCKS:
        assert block.language, f"{block.where}: give the fence a language"
    run = "\n".join(block.code for block in ALL_BLOCKS if block.runs)
    for command in [f"python {name}" for name in SCRIPTS] + [f"./{name}" for name in SHELL_SCRIPTS]:
        assert re.search(rf"{re.escape(command)}\b", run), f"no page runs {command}"


def is_excerpt(quoted: str, source: str) -> bool:
    """Whether `quoted` is consecutive lines of `source`, both dedented."""
    wanted = textwrap.dedent(quoted).strip("\n").splitlines()
    lines = source.splitlines()
    return any(
        textwrap.dedent("\n".join(lines[start : start + len(wanted)])).splitlines() == wanted
        for start in range(len(lines) - len(wanted) + 1)
    )


@pytest.mark.quick
def test_every_excerpt_is_verbatim_and_the_chapters_quote_their_scripts():
    quoted = {}
    for block in ALL_BLOCKS:
        if block.marker != "excerpt":
            continue
        source = REPO / (block.reason or "")
        assert block.reason and source.is_file(), f"{block.where}: name the quoted file"
        assert is_excerpt(block.code, source.read_text()), (
            f"{block.where}: this block is not a verbatim excerpt of {block.reason}: copy the "
            "lines again from the file (a changed script line the page shows must fail here)"
        )
        quoted.setdefault(block.page, set()).add(block.reason)
    for page, script in EXCERPTS.items():
        assert script in quoted.get(page, set()), f"{page} quotes no lines of {script}"
