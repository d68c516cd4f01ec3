"""Part 9, upgrading a store: `mlflow db upgrade` of a store an older MLflow 3 wrote, in an
environment of its own as old-stores/upgrade-mlflow.md makes it."""

import shlex
import shutil
import sys
from importlib.metadata import version

from harness import PYTHON, REPO, Bench, secs, seeded_copy


def measure(bench: Bench):
    old, env = bench.work / "venv-mlflow3-older", bench.env()
    if not old.exists():
        uv = shutil.which("uv", path=env["PATH"])  # this Python's environment first
        if not uv:
            sys.exit("error: uv is not installed (make installs it into .venv)")
        bench.sh(f"{uv} venv --quiet --python {PYTHON} {old}", env)
        requirements = REPO / "requirements" / "mlflow3-older.txt"
        bench.sh(f"{uv} pip install --quiet --python {old}/bin/python -r {requirements}", env)
    older = bench.sh(f"{old}/bin/python -c 'import mlflow; print(mlflow.__version__)'", env)
    base, target, rows = bench.work / "older.db", bench.work / "upgrade.db", []
    train = shlex.join([f"{old}/bin/python", str(REPO / "train_rfc.py"), *bench.s.forest])
    bench.sh(train, bench.env(f"sqlite:///{base}"))
    for size in bench.s.store_sizes:
        seeded = seeded_copy(base, bench.work / f"older-{size}.db", size - 1, 0.9)
        upgrade, fresh = f"mlflow db upgrade sqlite:///{target}", f"cp {seeded} {target}"
        timed = bench.hyperfine(upgrade, env, warmup=0, prepare=fresh)
        rows.append(f"{size:,} runs | {secs(timed)} | {timed['mib']:.0f} MiB")
    return (
        "9. Upgrading a store to this MLflow",
        f"`mlflow db upgrade` (MLflow {version('mlflow')}) on a fresh copy of a SQLite store "
        f"that MLflow {older.strip()} wrote (one `train_rfc.py` run, the rest seeded with a "
        "logged model each, as in part 3), each run of hyperfine; no warm-up.",
        "store | wall time | peak memory",
        rows,
        "the upgrade is a stop of the server measured in seconds, and the store's size did "
        "not show in it here (the migrations alter tables and indexes; they do not rewrite "
        "the runs one by one). Stop the writers and take the backup first "
        "([Upgrading MLflow](../old-stores/upgrade-mlflow.md)).",
    )
