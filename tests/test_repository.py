"""What the repository promises about itself: current MLflow 3 APIs, pinned dependencies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SOURCES = sorted(
    path
    for pattern in ("*.py", "*.sh", "benchmarks/*.py", "docs/*.py", "README.md")
    for path in REPO.glob(pattern)
)
# What old tutorials do and this one must not: stages, positional artifact paths, hidden warnings.
FORBIDDEN = {
    "the deprecated stages API": re.compile(
        r"transition_model_version_stage|\bstages?=|get_latest_versions"
    ),
    "artifact_path= (MLflow 3 uses name=)": re.compile(r"\bartifact_path\s*=\s*[\"'\w]"),
    "silenced warnings": re.compile(r"filterwarnings\(\s*[\"']ignore|simplefilter\(\s*[\"']ignore"),
}


def test_no_removed_or_deprecated_mlflow_patterns():
    assert len(SOURCES) > 5
    for path in SOURCES:
        text = path.read_text()
        for what, pattern in FORBIDDEN.items():
            assert not pattern.search(text), f"{path.relative_to(REPO)} uses {what}"


def test_every_requirement_is_pinned_exactly():
    # requirements.txt at the root, the optional extras (test, team, spark...) in requirements/.
    files = sorted([*REPO.glob("requirements*.txt"), *REPO.glob("requirements/*.txt")])
    assert REPO / "requirements.txt" in files
    assert REPO / "requirements" / "test.txt" in files
    for path in files:
        name = path.relative_to(REPO)
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("-r "):
                # pip reads an included file's path relative to the file that includes it.
                included = path.parent / line.removeprefix("-r ").strip()
                assert included.is_file(), f"{name}: {line!r} names no file"
                continue
            if not line:
                continue
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.\-]*", line), (
                f"{name}: {line!r} is not pinned with =="
            )


def test_make_leaves_a_hand_built_environment_alone_and_names_what_it_would_change(tmp_path):
    """`make ui` with a .venv that has the pins runs only `mlflow ui`; one that lacks them is
    named, with what it lacks, before anything is installed (make -n: what would run)."""
    for name in ("Makefile", "requirements.txt", "requirements"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}

    # A .venv built by hand with the pinned packages (here: the one running these tests).
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    planned = subprocess.run(
        ["make", "-n", "ui"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "venv" not in planned.replace(".venv/bin", "") and "install" not in planned, planned
    assert "mlflow ui --backend-store-uri" in planned

    # A bare .venv lacks the pins: make says so, and what it would install.
    (tmp_path / ".venv").unlink()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / ".venv"], check=True)
    planned = subprocess.run(
        ["make", "-n", "ui"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "make: .venv does not match requirements.txt (" in planned, planned
    assert "mlflow not installed, 3.17.2 pinned" in planned
    assert "-r requirements.txt" in planned
