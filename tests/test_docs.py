"""The docs run as written: every command and snippet of every page, in order, in a fresh copy.

The pages are README.md and every docs/*.md except docs/benchmarks.md (a generated report).
Rules they follow, so that this test can read them:

- Tracks. TRACKS below puts each page in exactly one track; a track that starts mid-way first
  runs the commands its pages build on (BEFORE). Each track runs in its own fresh
  copy of the repository (no store, no .venv), as one test, so `pytest -n 2` runs tracks side
  by side. The pages of a track run in order and share their files, their store, the current
  directory and the exported variables; pages of different tracks never share a port.
- The shell is a reader's after `source .venv/bin/activate`: VIRTUAL_ENV and PATH name the
  environment running these tests, and no MLFLOW_TRACKING_URI is set.
- A `bash`/`sh` block runs as one bash script (`set -e`) in the track's current directory;
  its `cd` and `export`s carry over to the later blocks of the track.
- A `python` block is a whole program; it runs at its place, in that directory and environment.
- A `text` block right after a runnable block (only prose between) is its expected output:
  stdout and stderr, as a terminal shows them. Its lines match the whole output, in order; a
  line `...` stands for any number of lines, and `<anything>` within a line for any text. The
  copy's path reads `<repository>`. Every output must also be clean: no warning, deprecation
  notice or traceback (conftest.assert_clean), unless the text block shows that very line.
- `<!-- docs-test: fails -->` before a bash block: each command in it runs on its own and
  must exit non-zero; their outputs together are matched against the next text block.
- A bash block that is one long-running command (`./serve_model.sh`, `./tracking_server.sh`,
  `make ui`, `make serve`, `make server`, `python webhook_receiver.py`, maybe with VAR=value
  before and arguments after)
  starts in the background in its own process group. The test waits until its log matches
  its text block, runs the page's later blocks against it, and stops the whole group when the
  page ends or fails; what it logged until then must be clean too.
- What `python rollout.py` starts (HAProxy, the slots) is stopped, by the process groups its
  pid files in rollout/ name, when the track ends or fails.
- `<!-- docs-test: quickstart -->` before a python block: not run here; tests/test_quickstart.py
  runs it in an empty folder.
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

from conftest import NOISE, PYTHON, REPO, assert_clean, base_env, stop_process_group

GENERATED = ["docs/benchmarks.md"]
PAGES = ["README.md"] + sorted(
    f"docs/{path.name}"
    for path in (REPO / "docs").glob("*.md")
    if f"docs/{path.name}" not in GENERATED
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
    "spark": ["docs/spark.md"],
    "tuning": ["docs/07-tune-and-autolog.md", "docs/08-promotion-gate.md"],
    "team-server": ["docs/team-server.md"],
    "reference": ["docs/measuring.md", "docs/testing.md"],
    "rollout": ["docs/09-roll-out.md"],
    "old-stores": ["docs/old-runs.md", "docs/upgrade-mlflow.md"],
}
# A track that starts mid-way first runs, as a reader who starts there would, the commands of
# the chapters it builds on (each page says which in its "Before:" line).
BEFORE = {
    "spark": ["python train_rfc.py", "python register_model.py"],
    "rollout": ["python train_rfc.py", "python register_model.py"],
}
MARKER = re.compile(
    r"<!-- docs-test: (?P<kind>skip|fails|quickstart|excerpt)( \((?P<reason>.*)\))? -->"
)
# The chapters that teach a script's own lines, and the file each quotes (at least once).
EXCERPTS = {
    "docs/01-track-runs.md": "train_rfc.py",
    "docs/05-register.md": "register_model.py",
    "docs/06-serve-and-predict.md": "predict.py",
    "docs/07-tune-and-autolog.md": "tune_rfc.py",
    "docs/08-promotion-gate.md": "promotion_gate.py",
}
LONG_RUNNING = re.compile(
    r"(\w+=\S*[ \t]+)*(\./serve_model\.sh|\./tracking_server\.sh|make (ui|serve|server)"
    r"|python webhook_receiver\.py)\b[^;&|\n]*"
)
# Each must be run by some page: `python <name>` or `./<name>`.
SCRIPTS = """train_rfc.py train_ann.py register_model.py predict.py predict_spark.py rollout.py
    webhook_receiver.py create_webhook.py champion_history.py""".split()
SHELL_SCRIPTS = ["serve_model.sh", "tracking_server.sh"]
# What a reader's fresh clone does not have: stores, environments, what the pages make.
NOT_CLONED = """.git .venv mlflow.db mlruns mlartifacts server basic_auth.db __pycache__ *_cache
    .serve-once.* my-data scored rollout .venv-mlflow2 old-project mlflow2.json
    .venv-mlflow3-older old-server before.json before.csv"""
MAX_SKIPS = 6
SERVER_TIMEOUT = 120  # seconds for a server to print what its text block shows


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    marker: str | None = None  # skip, fails, quickstart or excerpt
    reason: str | None = None  # of a skip; the quoted file of an excerpt
    expected: str | None = None  # the text block right after it

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in {"bash", "sh", "python"} and self.marker in {None, "fails"}


def page_blocks(page: str) -> list[Block]:
    """The fenced blocks of a page, each with its marker and its expected output."""
    lines = (REPO / page).read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = re.fullmatch(r"(\s*)```(\S*)\s*", lines[index])
        index += 1
        if not fence:
            continue
        start, body = index, []
        while lines[index].strip() != "```":
            body.append(lines[index][len(fence[1]) :])
            index += 1
        index += 1
        previous = next((line for line in reversed(lines[: start - 1]) if line.strip()), "")
        marker = MARKER.fullmatch(previous.strip())
        block = Block(page, start, fence[2], "\n".join(body))
        if marker:
            block.marker, block.reason = marker["kind"], marker["reason"]
        if block.language == "text" and blocks and blocks[-1].runs:
            blocks[-1].expected = block.code
        blocks.append(block)
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
class Track:
    """One track's copy of the repository, and the shell state its blocks share."""

    copy: Path
    scratch: Path  # outside the copy: python blocks, server logs, the shell's state
    cwd: Path
    env: dict[str, str]
    servers: list[tuple[subprocess.Popen, Path, str]] = field(default_factory=list)

    def printed(self, output: str) -> str:
        output = output.replace(str(self.copy), "<repository>")
        return "".join(line.rstrip() + "\n" for line in output.splitlines())

    def shell(self) -> dict:
        # stdout and stderr in one stream, in the order a terminal shows them
        return dict(cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def run(self, command: list[str], block: Block, shown: str, should_fail=False) -> str:
        result = subprocess.run(
            command, **self.shell(), stdout=subprocess.PIPE, text=True, timeout=300
        )
        if (result.returncode != 0) != should_fail:
            what = "did not fail" if should_fail else f"exited {result.returncode}"
            fail(f"{block.where}: {shown!r} {what}. The output was:\n{result.stdout}")
        return result.stdout

    def run_bash(self, block: Block) -> str:
        """The block as one script; then keep where it left the directory and the exports."""
        state = self.scratch / "shell"
        script = f"set -e\n{block.code}\npwd > {state}.cwd\nenv -0 > {state}.env\n"
        output = self.run(["bash", "-c", script], block, shown=block.code)
        self.cwd = Path(Path(f"{state}.cwd").read_text().strip())
        pairs = Path(f"{state}.env").read_text().split("\0")
        self.env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        for name in ("_", "SHLVL", "PWD"):  # bash sets these itself
            self.env.pop(name, None)
        return output

    def run_failing(self, block: Block) -> str:
        commands = re.sub(r"\\\n", " ", block.code).splitlines()
        return "".join(
            self.run(["bash", "-c", command], block, shown=command, should_fail=True)
            for command in commands
            if command.strip() and not command.lstrip().startswith("#")
        )

    def run_python(self, block: Block) -> str:
        program = self.scratch / f"{Path(block.page).stem}-{block.line}.py"
        program.write_text(block.code + "\n")
        return self.run([PYTHON, str(program)], block, shown="the python block")

    def start_server(self, block: Block) -> None:
        if not block.expected:
            fail(f"{block.where}: a long-running command needs a text block to wait for")
        log = self.scratch / f"{Path(block.page).stem}-{block.line}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                ["bash", "-c", block.code], **self.shell(), stdout=out, start_new_session=True
            )
        self.servers.append((process, log, block.expected))
        deadline = time.monotonic() + SERVER_TIMEOUT
        while not matches(printed := self.printed(log.read_text()), block.expected):
            check_clean(printed, block.expected)
            if process.poll() is not None:
                fail(f"{block.where}: exited {process.returncode}. It printed:\n{printed}")
            if time.monotonic() > deadline:
                check_output(printed, block.expected, f"{block.where} after {SERVER_TIMEOUT}s")
            time.sleep(0.5)

    def run_page(self, page: str) -> None:
        try:
            for block in BLOCKS[page]:
                if not block.runs:
                    continue
                if block.language == "python":
                    output = self.run_python(block)
                elif block.marker == "fails":
                    output = self.run_failing(block)
                elif LONG_RUNNING.fullmatch(block.code.strip()):
                    self.start_server(block)
                    continue
                else:
                    output = self.run_bash(block)
                printed = self.printed(output)
                check_clean(printed, block.expected)
                if block.expected is not None:
                    check_output(printed, block.expected, block.where)
            for _, log, expected in self.servers:  # what they logged while the page used them
                check_clean(self.printed(log.read_text()), expected)
        finally:
            while self.servers:
                stop_process_group(self.servers.pop()[0])


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
    shell = Track(copy=copy, scratch=tmp_path / "scratch", cwd=copy, env=env)
    for command in before:
        subprocess.run(command.split(), cwd=copy, env=env, check=True, capture_output=True)
    try:
        for page in pages:
            shell.run_page(page)
    finally:  # what rollout.py started lives in process groups its pid files name
        for pid_file in (copy / "rollout").glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("track", TRACKS)
def test_track_runs_as_written(track, tmp_path):
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
        if block.marker == "quickstart":
            assert block.language in ("python", "bash"), f"{block.where}: python or bash"


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
