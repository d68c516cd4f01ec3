"""`make bench` at tiny sizes (`--quick`), so that the benchmark cannot rot between the times
someone runs it. Its figures mean nothing; what is checked is that every part still runs against
the real scripts, real stores, a real `tracking_server.sh`, a real
`mlflow models serve` and a real Spark, and writes its section of the report. Left to `make
bench`: timing `pip` and `uv` installing a fresh environment (minutes), and the PostgreSQL leg of
the parallel load (the same code as its SQLite leg, on the cluster tests/test_team_server.py
starts the same way). The two halves are separate tests, so that `pytest -n 2` runs them side
by side.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import PYTHON, REPO, base_env

HALVES = {
    "tracking-server-register-load": ["tracking", "server", "register", "load"],
    "serving-batch": ["serving", "batch"],
}
TITLES = {
    "tracking": "## 1. What tracking costs",
    "server": "## 2. Logging to a tracking server",
    "register": "## 3. Registering a model",
    "serving": "## 4. Serving",
    "batch": "## 5. Batch scoring: pandas against Spark",
    "load": "## 6. The team server under parallel load",
}


@pytest.mark.parametrize("half", HALVES)
def test_the_benchmark_runs_at_tiny_sizes_and_writes_its_report(tmp_path, start_process, half):
    report = tmp_path / "benchmarks.md"
    command = [PYTHON, str(REPO / "benchmarks" / "run.py"), "--quick", "--output", str(report)]
    for part in HALVES[half]:
        command += ["--only", part]
    log = tmp_path / "bench.log"
    # start_process kills the whole group on failure; run.py then stops the servers it started.
    process = start_process(command, env=base_env(), cwd=tmp_path, log=log)
    try:
        returncode = process.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the quick benchmark took over 150 s:\n{log.read_text()[-3000:]}")
    assert returncode == 0, log.read_text()[-3000:]

    text = report.read_text()
    assert "2 cores" in text or "cores (" in text
    assert "Python 3." in text and "mlflow 3." in text and "hyperfine 1." in text
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        TITLES[part] for part in HALVES[half]
    ]
    # Every section says what it means, and no table cell is empty.
    assert text.count("**What it means for you:**") == len(HALVES[half])
    assert not re.search(r"\| +\|", text), text
    if "server" in HALVES[half]:
        requests = re.search(r"\| explicit: `train_rfc.py` \| [\d.]+ s \| (\d+) \|", text)
        assert requests and 15 <= int(requests[1]) <= 40, text
    if "register" in HALVES[half]:
        assert "| first champion, 100 runs in the store |" in text
    if "serving" in HALVES[half]:
        assert re.search(r"\| 1 \| 1 \| [\d.]+m?s \| [\d.]+m?s \| \d+ \| none \|", text), text
    if "batch" in HALVES[half]:
        # The checksum column: pandas and Spark agreed (run.py fails otherwise).
        assert re.search(r"\| 500 \| .* \| [0-9a-f]{12} \|", text), text
    if "load" in HALVES[half]:
        # One client, its run recorded whole: its params, 5 metrics, the figure and the model.
        whole = r"\| SQLite \| 1 \| 1 / 1 \| \d+ \| \d+ \| \d+ \| 0 \| 1 / 1 \|"
        assert re.search(whole, text), text
