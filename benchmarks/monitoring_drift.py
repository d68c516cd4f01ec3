"""Part 11, checking for drift: monitoring/check_drift.py on batches of 1k, 10k and 100k rows."""

import shutil

from harness import FEATURES, REPO, Bench, py, secs

SIZES = (1_000, 10_000, 100_000)


def measure(bench: Bench):
    # A copy of the champion's store: the checks log runs, which no other part should see.
    store = bench.work / "monitoring.db"
    shutil.copy(bench.store("champion"), store)
    env, rows = bench.env(f"sqlite:///{store}"), []
    imports = bench.hyperfine(py("-c", "import mlflow, evidently"), env)
    rows.append(
        f"Python importing MLflow and Evidently, no check | {secs(imports)} | {imports['mib']:.0f} | none"
    )
    for size in bench.s.batch_rows[:1] if bench.s.quick else SIZES:
        batch, answers = bench.work / f"drift-{size}.csv", bench.work / f"answers-{size}.csv"
        FEATURES.sample(size, replace=True, random_state=0).to_csv(batch, index=False)
        bench.sh(py(REPO / "predict.py", "--data", batch, "--output", answers), env)  # untimed
        # --drift-share 1: a resampled batch is steady, but hyperfine must time it whatever the
        # tests find (it stops on a non-zero exit); the work is the same.
        check = py(REPO / "monitoring" / "check_drift.py", "--data", batch, "--predictions", answers, "--drift-share", "1")  # fmt: skip
        timed = bench.hyperfine(check, env)
        report = max((bench.work / "mlruns").glob("*/*/artifacts/drift_report.html"), key=lambda p: p.stat().st_mtime)  # fmt: skip
        rows.append(
            f"{size:,} rows | {secs(timed)} | {timed['mib']:.0f} | {report.stat().st_size / 1e6:.1f}"
        )
    return (
        "11. Checking for drift",
        "`monitoring/check_drift.py` against the champion (trained on 455 rows), on rows "
        "resampled from the data set with the champion's answers to them (`predict.py "
        "--output`, not timed): find the training rows through the registry, one "
        "Kolmogorov-Smirnov test per feature with Evidently, log the run with its HTML report. "
        "MiB: peak memory of the whole process; MB: the report each check stores.",
        "batch | wall time | MiB | report MB",
        rows,
        "a check costs seconds, not minutes: Python importing MLflow and Evidently first, "
        "then what grows with the batch (Evidently's tests and the histograms its report draws, "
        "and MLflow hashing the batch for its dataset input). After a nightly batch that is "
        "nothing; for batches of millions of rows, check a random sample of them. The reports "
        "are what add up: a few MB each, Evidently's JavaScript inlined.",
    )
