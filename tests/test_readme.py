"""The README runs as written: every command and snippet, in order, in a fresh copy of the repo.

Rules the README follows, so that this test can read it:
- A fenced `bash`/`sh` block is run line by line in a scratch copy of the repository, with no
  MLFLOW_TRACKING_URI set (so the scripts use their default store there, as for a reader).
- A `text` block right after a run command block is its expected output: each line must appear,
  in order; `...` skips any lines, and `<anything>` in a line matches any text.
- Fenced `python` blocks run afterwards, in order, as one program (a block may use the ones
  before it).
- `<!-- readme-test: skip (reason) -->` on the line before a fence means: not run, for that
  visible reason.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PYTHON, REPO, assert_clean, base_env, run_command

README = REPO / "README.md"
SKIP = re.compile(r"<!-- readme-test: skip \((?P<reason>.+)\) -->")
RUNNABLE = {"bash", "sh", "python"}


@dataclass
class Block:
    language: str
    code: str
    line: int
    skip_reason: str | None
    expected: str | None = None  # the text block that follows, for command blocks


def readme_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^\s*```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        start = index
        index += 1
        body = []
        while not lines[index].strip().startswith("```"):
            body.append(lines[index])
            index += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        skip = SKIP.search(previous)
        block = Block(fence.group(1), "\n".join(body), start + 1, skip and skip["reason"])
        if block.language == "text" and blocks and blocks[-1].language in {"bash", "sh"}:
            blocks[-1].expected = block.code
        blocks.append(block)
        index += 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def expected_lines_pattern(expected: str) -> list[re.Pattern | None]:
    """One regex per expected line; None for '...'."""
    patterns = []
    for line in expected.splitlines():
        if line.strip() == "...":
            patterns.append(None)
            continue
        parts = re.split(r"<[^<>]+>", line.rstrip())
        patterns.append(re.compile(".+".join(re.escape(part) for part in parts)))
    return patterns


def assert_output_matches(output: str, expected: str, where: str) -> None:
    remaining = [line.rstrip() for line in output.splitlines()]
    for pattern in expected_lines_pattern(expected):
        if pattern is None:
            continue
        for position, line in enumerate(remaining):
            if pattern.fullmatch(line):
                remaining = remaining[position + 1 :]
                break
        else:
            raise AssertionError(
                f"README {where}: expected a line matching {pattern.pattern!r} in order; "
                f"the commands printed:\n{output}"
            )


@pytest.fixture
def fresh_copy(tmp_path) -> Path:
    """The repository as a reader's fresh clone has it: no store, no virtual environment."""
    copy = tmp_path / "repo"
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "mlflow.db",
            "mlruns",
            "mlartifacts",
            "__pycache__",
            "*_cache",
            "images",
        ),
    )
    return copy


def test_every_script_is_run_from_the_readme_and_every_fence_has_a_language():
    for block in BLOCKS:
        assert block.language, f"README line {block.line}: give the fence a language"
    run = "\n".join(b.code for b in BLOCKS if b.language in RUNNABLE and not b.skip_reason)
    for script in ("train_rfc.py", "train_ann.py", "register_model.py", "predict.py"):
        assert f"python {script}" in run, f"no README command runs {script}"
    assert "mlflow.pyfunc.load_model" in run and "mlflow.search_runs" in run


def test_readme_commands_and_snippets_run_as_written(fresh_copy):
    env = base_env()
    # `python` in the README is the environment's python, as after `source .venv/bin/activate`.
    for block in BLOCKS:
        if block.language not in {"bash", "sh"} or block.skip_reason:
            continue
        output = ""
        for command in block.code.splitlines():
            if not command.strip() or command.lstrip().startswith("#"):
                continue
            result = run_command(["bash", "-c", command], env=env, cwd=fresh_copy)
            assert_clean(result)
            output += result.stdout + result.stderr
        if block.expected:
            printed = output.replace(str(fresh_copy), "<repository>")
            assert_output_matches(printed, block.expected, f"line {block.line}")

    program = "\n\n".join(
        block.code for block in BLOCKS if block.language == "python" and not block.skip_reason
    )
    assert program, "the README has no python snippet"
    (fresh_copy / "readme_snippets.py").write_text(program)
    result = run_command([PYTHON, "readme_snippets.py"], env=env, cwd=fresh_copy)
    assert_clean(result)
    assert "['malignant', 'benign', 'benign', 'benign', 'malignant']" in result.stdout
