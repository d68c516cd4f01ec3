"""Part 1, what tracking costs: train_rfc.py against the same fit with no MLflow call."""

import shutil

from harness import REPO, Bench, py, secs


def measure(bench: Bench):
    db = bench.work / "tracking.db"
    shutil.copy(bench.store("trained"), db)
    env, flags = bench.env(f"sqlite:///{db}"), bench.s.forest
    tracked = bench.hyperfine(py(REPO / "train_rfc.py", *flags), env)
    bare = bench.hyperfine(py(REPO / "benchmarks" / "untracked_training.py", *flags), env)
    return (
        "1. What tracking costs",
        "`train_rfc.py` with its defaults, logging to a SQLite store, against the same "
        "imports, fit and scores with no MLflow call (`benchmarks/untracked_training.py`).",
        "train_rfc.py | wall time | peak memory",
        [
            f"tracked | {secs(tracked)} | {tracked['mib']:.0f} MiB",
            f"untracked | {secs(bare)} | {bare['mib']:.0f} MiB",
        ],
        f"tracking adds {tracked['s'] - bare['s']:.1f} s to a run, a fixed cost (opening the "
        "store, saving the model, drawing the figure) whatever the training costs: next to a "
        "fit of minutes it disappears.",
    )
