"""What the repository promises about itself: current MLflow 3 APIs, pinned dependencies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

# The lesson path at the root (chapters 1-8 and what they need), each optional topic in its room.
LESSON_FILES = """train_rfc.py train_ann.py register_model.py promotion_gate.py check_model.py
    serve_model.sh predict.py tune_rfc.py train_autolog.py offline.py""".split()
ROOMS = ["rollout", "spark", "team-server", "old-stores", "container", "monitoring"]
SOURCES = sorted(
    path
    for pattern in ("*.py", "*.sh", "*/*.py", "*/*.sh", "README.md")
    for path in REPO.glob(pattern)
    if path.parent.name not in (".venv", "tests")
)
PAGES = sorted(path for pattern in ("*.md", "*/*.md") for path in REPO.glob(pattern))
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
    for name in ("Makefile", "requirements.txt", "requirements", "pyproject.toml"):
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


def test_the_root_shows_the_lesson_path_and_each_topic_is_a_room():
    """`ls` at the root: the lesson's files and their helpers; each topic's page beside its code."""
    helpers = {path.name for path in REPO.glob("*.py")} - set(LESSON_FILES)
    assert len(helpers) <= 5, f"more than the lesson at the root: {sorted(helpers)}"
    for name in LESSON_FILES:
        assert (REPO / name).is_file(), f"{name} is not at the root"
    for room in ROOMS:
        assert (REPO / room / "README.md").is_file(), f"{room}/ has no page (README.md)"
        code = [*(REPO / room).glob("*.py"), *(REPO / room).glob("*.sh")]
        assert code, f"{room}/ holds no code"
        readme = (REPO / room / "README.md").read_text()
        for path in code:
            assert path.name in readme or any(
                path.name in page.read_text() for page in (REPO / room).glob("*.md")
            ), f"{room}/{path.name} is not named on its room's pages"


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings: lowercase, punctuation gone, - for spaces."""
    anchors = set()
    in_fence = False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (heading := re.match(r"#+ (.*)", line)):
            text = re.sub(r"[^\w\- ]", "", heading[1].strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_link_between_pages_resolves():
    assert REPO / "rollout" / "README.md" in PAGES and REPO / "data" / "README.md" in PAGES
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # links, not code
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (page.parent / file).resolve() if file else page
            where = f"{page.relative_to(REPO)} links to {target}"
            assert resolved.exists(), f"{where}: no such file"
            assert resolved.is_relative_to(REPO), f"{where}: outside the repository"
            if anchor and resolved.suffix == ".md":
                assert anchor in heading_anchors(resolved), f"{where}: no such heading"
