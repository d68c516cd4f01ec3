"""Part 7 (`--only setup`), setting up: a fresh environment with pip, and with uv as `make env`;
then a fresh clone's `make demo` in an environment already there (the budget: 60 s)."""

import re
import sys
from pathlib import Path

from harness import REPO, Bench, free_port, secs


def measure(bench: Bench):
    base = Path(sys.base_prefix) / "bin" / "python3"
    uv = re.search(r"UV_VERSION := (\S+)", (REPO / "Makefile").read_text())[1]
    venv, pins = bench.work / "venv", REPO / "requirements.txt"
    fresh = f"rm -rf {venv} && {base} -m venv {venv} && {venv}/bin/pip install -q"
    commands = {
        "pip": f"{fresh} -r {pins}",
        f"uv {uv}, as `make env` does": f"{fresh} uv=={uv} && {venv}/bin/uv pip install -q --python {venv}/bin/python --compile-bytecode -r {pins}",
    }
    clone = bench.work / "clone"
    demo = f"rm -rf {clone} && git clone -q {REPO} {clone} && make -C {clone} -s demo SERVE_PORT={free_port()}"
    commands["`make demo`, a fresh clone, this environment active"] = demo
    rows = []
    for name, command in commands.items():
        env = bench.env(VIRTUAL_ENV=sys.prefix) if "demo" in name else bench.env()
        rows.append(f"{name} | {secs(bench.hyperfine(command, env, runs=1))}")
    return (
        "7. Setting up",
        "A fresh virtual environment with every pin of `requirements.txt`, bytecode compiled, "
        "both installers' caches warm (installed before); one run each, minutes apiece.",
        "installer | wall time",
        rows,
        "uv downloads, unpacks and links in parallel; most of what remains is compiling "
        "bytecode, which saves every later `import mlflow` seconds.",
    )
