"""Does this Python already have what a requirements file pins? `make` asks before installing.

    .venv/bin/python requirements/check.py requirements.txt

Prints nothing if every `name==version` line (and every line of the files it includes with
`-r`) is installed at that version; else the first difference, say
`seaborn 0.13.2 installed, 0.13.1 pinned and 2 more`, and exits with status 1. It reads the
installed packages' metadata, so it needs no pip (an environment made by `uv venv` has none),
no network, and a tenth of a second.

For requirements.txt it also checks that the tutorial's own modules (pyproject.toml's
py-modules) import from anywhere, as `pip install --no-deps -e .` makes them.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def pins(requirements: Path) -> Iterator[tuple[str, str]]:
    """(name, version) of each line; tests/test_repository.py checks that all use `==`."""
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            # pip reads an included file's path relative to the file that includes it.
            yield from pins(requirements.parent / line.removeprefix("-r ").strip())
        elif line:
            name, pinned = line.split("==")
            yield name.split("[")[0], pinned


def installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not"


def tutorial_modules_missing(repository: Path) -> list[str]:
    """The tutorial's modules that this Python cannot import (not installed with -e .)."""
    project = tomllib.loads((repository / "pyproject.toml").read_text())
    modules = project["tool"]["setuptools"]["py-modules"]
    return [module for module in modules if importlib.util.find_spec(module) is None]


def main() -> None:
    requirements = Path(sys.argv[1]).resolve()
    differences = [
        f"{name} {installed(name)} installed, {pinned} pinned"
        for name, pinned in pins(requirements)
        if installed(name) != pinned
    ]
    if requirements == Path(__file__).resolve().parents[1] / "requirements.txt":
        if missing := tutorial_modules_missing(requirements.parent):
            differences.append(f"the tutorial's modules not installed ({missing[0]}, ...)")
    if differences:
        more = f" and {len(differences) - 1} more" if len(differences) > 1 else ""
        sys.exit(differences[0] + more)


if __name__ == "__main__":
    main()
