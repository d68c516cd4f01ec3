"""What MLflow costs here, and how it scales: `make bench` writes docs/benchmarks.md.

Each part of the report is a file here (PARTS below), whose measure() runs the tutorial's own
scripts as a reader would and returns its section; harness.py has what they share. hyperfine
times whole commands (its own warm-up and runs, read from --export-json), wrk loads HTTP
servers, /proc gives the peak memory of a command's process tree. docs/measuring.md explains.

    python benchmarks/run.py               # all of it: about 13 minutes on 2 cores
    python benchmarks/run.py --quick       # tiny sizes, one run each: proves it still works
    python benchmarks/run.py --only batch --only load --output /tmp/report.md
"""

import argparse
import importlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from harness import FULL, QUICK, REPO, Bench

# The report's parts, in its order: the name `--only` takes, and the file (here) that measures it.
PARTS = {
    "tracking": "tracking_cost", "server": "logging_to_server", "register": "registering",
    "serving": "serving", "batch": "batch_scoring", "load": "parallel_load",
    "setup": "setting_up", "rollout": "rolling_out", "upgrade": "upgrading", "container": "container_image", "monitoring": "monitoring_drift", "pipeline": "pipeline_cost", "environments": "environments",
    "stack": "team_stack",
}  # fmt: skip


def machine() -> list[str]:
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    tools = subprocess.getoutput("hyperfine -V; wrk -v 2>&1 | head -1 | cut -d' ' -f1-2")
    packages = ", ".join(f"{p} {version(p)}" for p in "mlflow scikit-learn pandas pyspark".split())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- {os.cpu_count()} cores ({cpu[1] if cpu else 'CPU unknown'}), {memory:.0f} GiB, {platform.platform()}",
        f"- Python {platform.python_version()}; {packages}; {tools.replace(chr(10), ', ')}",
        f"- Load average at the start: {load} (other jobs may share this machine)",
    ]


def section(title: str, how: str, header: str, rows: list[str], meaning: str) -> list[str]:
    """A report section: what was measured and how, a table (`a | b` per row), what it means."""
    columns = header.count("|") + 1
    table = [f"| {line} |" for line in [header, " | ".join(["---"] * columns), *rows]]
    return [f"## {title}", "", how, "", *table, "", f"**What it means for you:** {meaning}", ""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--only", action="append", choices=PARTS, help="this part (repeatable)")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "docs" / "benchmarks.md",
        help="where to write the report (default: docs/benchmarks.md)",
    )
    args = parser.parse_args(argv)
    for tool in ("hyperfine", "wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"error: {tool} is not installed (apt-get install hyperfine wrk curl)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the `finally`s still run
    started, header = time.time(), machine()
    # --quick leaves out set-up, the rollout, the image and the environments (minutes each:
    # tests/test_rollout.py, test_container.py and test_rebuilt_env.py cover the last three).
    parts = args.only or [
        p
        for p in PARTS
        if not (args.quick and p in ("setup", "rollout", "container", "environments"))
    ]
    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    bench, sections = Bench(QUICK if args.quick else FULL, work), []
    try:
        with bench.servers:  # the shared tracking server stops when the last part is done
            for part in parts:
                print(f"{time.strftime('%H:%M:%S')} {part}", flush=True)
                sections += section(*importlib.import_module(PARTS[part]).measure(bench))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    how = "`python benchmarks/run.py --quick` (tiny sizes: the figures mean nothing)"
    how, when = how if args.quick else "`make bench`", time.gmtime(started)
    intro = (
        f"Made by {how} on {time.strftime('%Y-%m-%d %H:%M UTC', when)}, in "
        f"{(time.time() - started) / 60:.1f} minutes, on:\n\n" + "\n".join(header) + "\n\n"
        f"Times are hyperfine's medians, ± the standard deviation of its runs ({bench.s.runs} "
        f"after {bench.s.warmup} warm-up, unless a section says otherwise); memory is the peak "
        "of a command's whole process tree. [Measuring](measuring.md) explains how each part "
        "works.\n\n"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("# Benchmarks\n\n" + intro + "\n".join(sections).rstrip() + "\n")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
