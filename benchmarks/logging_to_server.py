"""Part 2, logging to a tracking server: explicit calls against autolog, requests counted."""

import re
import subprocess
import time
import uuid
from pathlib import Path

from harness import REPO, Bench, py, secs


def measure(bench: Bench):
    variants = {
        "explicit: `train_rfc.py`": py(REPO / "train_rfc.py", *bench.s.forest),
        "autolog: `train_autolog.py`": py(REPO / "train_autolog.py"),
    }
    url, log = bench.sqlite_server()
    rows = []
    for name, command in list(variants.items())[: 1 if bench.s.quick else 2]:
        before = requests_in(log, url)
        timed = bench.hyperfine(command, bench.env(url))
        per_run = (requests_in(log, url) - before) / (timed["n"] + bench.s.warmup)
        rows.append(f"{name} | {secs(timed)} | {per_run:.0f}")
    return (
        "2. Logging to a tracking server",
        "`tracking_server.sh` (SQLite, artifacts proxied) on this machine; requests counted "
        "in its access log. `train_autolog.py` also runs a grid search (4 settings, 3-fold), "
        "so its time includes more training than `train_rfc.py`'s single fit.",
        "how the run is logged | wall time | HTTP requests per run",
        rows,
        "each request is a round trip, so over a network with 20 ms of latency every 50 "
        "requests add a second to a run. Autolog logs every setting it tries and infers the "
        "model's requirements; the tutorial's scripts batch their calls and list them.",
    )


def requests_in(log: Path, url: str) -> int:
    """Requests in a tracking server's access log so far; a marker request flushes the log."""
    marker = f"/health?mark={uuid.uuid4().hex}"
    subprocess.run(["curl", "-sfo", "/dev/null", url + marker], check=True)
    while marker not in log.read_text():
        time.sleep(0.05)
    return len(re.findall(r'"(?:GET|POST|PUT|PATCH|DELETE) /(?!health)', log.read_text()))
