"""`make bench` at tiny sizes, so the benchmark cannot rot between the times someone runs it.

The figures of a quick run mean nothing; what is checked is that every part still runs against
the real scripts, a real store, a real `mlflow server` and a real `mlflow models serve`, and
writes its table. The two halves are separate tests so that `pytest -n 2` runs them side by
side. Without hyperfine or wrk (Debian packages) the benchmark falls back to Python stand-ins,
which the report names.
"""

from __future__ import annotations

import subprocess

import pytest

from conftest import PYTHON, REPO, base_env

HALVES = {
    "tracking-and-defaults": ["tracking", "defaults"],
    "promotion-and-serving": ["promotion", "serving"],
}
TABLES = {
    "tracking": "## 1. What tracking costs",
    "defaults": "## 2. What the explicit choices save",
    "promotion": "## 3. Promotion at scale",
    "serving": "## 4. Serving",
}


@pytest.mark.parametrize("half", HALVES)
def test_the_benchmark_runs_at_tiny_sizes_and_writes_its_report(tmp_path, start_process, half):
    report = tmp_path / "benchmarks.md"
    command = [PYTHON, str(REPO / "benchmarks" / "run.py"), "--quick", "--output", str(report)]
    for section in HALVES[half]:
        command += ["--only", section]
    log = tmp_path / "bench.log"
    # start_process kills the whole group on failure; run.py then stops the servers it started.
    process = start_process(command, env=base_env(), cwd=tmp_path, log=log)
    try:
        returncode = process.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the quick benchmark took over 150 s:\n{log.read_text()[-3000:]}")
    assert returncode == 0, log.read_text()[-3000:]

    text = report.read_text()
    assert "## Machine" in text and "Python 3." in text and "mlflow 3." in text
    for section in HALVES[half]:
        assert TABLES[section] in text, text
    assert "## 5. Memory" in text
    # Every target the parts measure shows up with its verdict (met or missed).
    if "tracking" in HALVES[half]:
        assert "train_rfc.py: tracked / untracked" in text
        assert "| `train_rfc.py tracked` |" in text
    if "defaults" in HALVES[half]:
        assert "one `log_param` / `log_metric` / `set_tag` per key" in text
    if "promotion" in HALVES[half]:
        assert "register_model.py: 50 runs / 10 runs" in text
    if "serving" in HALVES[half]:
        assert "serving, 1 worker, 1 row: p99" in text
        assert "serving, 1 worker(s)" in text
