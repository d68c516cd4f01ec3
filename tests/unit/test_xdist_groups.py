"""The rooms share a stack or an image per xdist group (`make test-rooms`: --dist loadgroup).

pytest 9.2 stores a node's id where pytest-xdist 3.8.0 does not rename it, and then every
`xdist_group` is ignored without a word: the tests of one group are spread over the workers and
each worker starts the group's module fixture again (two team stacks, two image builds). This
runs a tiny suite the same way and fails if a group's fixture is set up twice.
"""

from __future__ import annotations

import subprocess

from conftest import PYTHON

SUITE = """
import os, pytest
pytestmark = pytest.mark.xdist_group("shared")

@pytest.fixture(scope="module")
def shared():
    with open("setups", "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

def test_1(shared): pass
def test_2(shared): pass
def test_3(shared): pass
def test_4(shared): pass
"""


def test_an_xdist_group_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(SUITE)
    (tmp_path / "test_other.py").write_text("def test_a(): pass\ndef test_b(): pass\n")
    command = [PYTHON, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    setups = (tmp_path / "setups").read_text().split()
    assert len(setups) == 1, f"the group's fixture was set up on {setups}: xdist_group is ignored"
