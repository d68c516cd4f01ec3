"""Part 5, batch scoring: predict.py (pandas) against spark/predict_spark.py (spark_udf)."""

from hashlib import sha256

import pandas as pd
from harness import FEATURES, REPO, Bench, py, secs


def measure(bench: Bench):
    env, rows, times = bench.env(f"sqlite:///{bench.store('champion')}"), [], []
    for size in bench.s.batch_rows:
        data, by_pandas, by_spark = (bench.work / f"{n}-{size}" for n in ["in", "pd", "spark"])
        FEATURES.sample(size, replace=True, random_state=0).to_csv(data, index=False)
        runs = min(2, bench.s.runs)
        pandas = py(REPO / "predict.py", "--data", data, "--output", by_pandas)
        pandas = bench.hyperfine(pandas, env, runs=runs, warmup=0)
        spark = py(REPO / "spark" / "predict_spark.py", "--data", data, "--output", by_spark)
        spark = bench.hyperfine(spark, env, runs=runs, warmup=0, prepare=f"rm -rf {by_spark}")
        # Row for row the same answers: Spark's part files hold the rows in the CSV's order.
        parts = sorted(by_spark.glob("part-*.csv"))
        answers = [pd.read_csv(by_pandas), pd.concat(map(pd.read_csv, parts))]
        digests = {sha256(a.to_csv(index=False).encode()).hexdigest()[:12] for a in answers}
        if len(digests) > 1:
            raise RuntimeError(f"pandas and Spark disagree on {size} rows: {digests}")
        times.append((size, pandas["s"], spark["s"]))
        cells = [f"{secs(m)} | {size / m['s']:,.0f} | {m['mib']:.0f}" for m in (pandas, spark)]
        rows.append(f"{size:,} | {cells[0]} | {cells[1]} | {digests.pop()}")
    return (
        "5. Batch scoring: pandas against Spark",
        "The champion scores rows resampled from the data set, CSV in, CSV out: `predict.py` "
        "(pandas, one process) against `predict_spark.py` (`spark_udf`, `local[2]`, its JVM's "
        "start included), 2 runs each. MiB: peak memory of all the command's processes. The "
        "last column is a checksum of the predictions, the same for both.",
        "rows | pandas | rows/s | MiB | Spark | rows/s | MiB | predictions",
        rows,
        f"{crossover(times)} Spark pays for starting a JVM and for moving rows between it "
        "and Python. It pays off on a cluster, where the same UDF runs on many executors, and "
        "for tables that do not fit one machine's memory: pandas holds every row at once.",
    )


def crossover(times: list[tuple[int, float, float]]) -> str:
    """Where Spark overtakes pandas: measured, extrapolated from the cost per row, or never."""
    if faster := [rows for rows, pandas, spark in times if spark < pandas]:
        return f"Spark was faster from {faster[0]:,} rows on."
    (n0, pandas0, spark0), (n1, pandas1, spark1) = times[0], times[-1]
    if n1 > n0 and (spark1 - spark0) / (n1 - n0) < (pandas1 - pandas0) / (n1 - n0):
        rows = n0 + (spark0 - pandas0) / ((pandas1 - pandas0 - spark1 + spark0) / (n1 - n0))
        return f"Spark was slower at every size; extrapolated, it would catch up near {rows:,.0f} rows."
    return "On one machine Spark never catches up: it was slower at every size, and per row too."
