"""Part 12, the pipeline's cost: train_rfc.py's model against the bare forest it wraps.

Fit time and model size in-process, and one row through `mlflow models serve` under wrk, for the
forest with and without its preparation steps, on the tutorial's data (all numbers, no empty
cell: what the pipeline costs where it changes nothing).
"""

import json
import re
import shlex
import timeit

import mlflow
import numpy as np
import pandas as pd
import skops.io
from harness import PYTHON, REPO, WRK_POST, Bench, free_port, wrk_latency
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from untracked_training import pipeline

DATA = REPO / "data" / "breast_cancer_train.csv"


def measure(bench: Bench):
    X = pd.read_csv(DATA)
    y = X.pop("diagnosis")
    models = {
        "bare forest": RandomForestClassifier(random_state=42),
        "pipeline (imputer, one-hot, forest)": pipeline(
            X.columns.tolist(), [], RandomForestClassifier(random_state=42)
        ),
    }
    rows, row = [], X.head(1)
    body = json.dumps({"dataframe_split": row.to_dict(orient="split", index=False)})
    lua = bench.work / "pipeline-post.lua"
    lua.write_text(WRK_POST.format(body=body))
    for number, (name, model) in enumerate(models.items()):
        fits = timeit.repeat(lambda m=model: m.fit(X, y), number=1, repeat=bench.s.runs)
        size = len(skops.io.dumps(model)) / 2**20
        folder = bench.work / f"pipeline-model-{number}"
        mlflow.sklearn.save_model(
            model, folder, signature=infer_signature(X, model.predict(X)),
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )  # fmt: skip
        port = free_port()
        serve = f"{shlex.quote(PYTHON)} -m mlflow models serve -m {folder} -h 127.0.0.1 -p {port} --env-manager local"
        with bench.serve(
            ["bash", "-c", serve],
            bench.env(),
            f"http://127.0.0.1:{port}/ping",
            f"pipeline-{number}.log",
        ):
            url = f"http://127.0.0.1:{port}/invocations"
            wrk = f"wrk --latency -c1 -t1 -d{bench.s.wrk_seconds}s -s {lua} {url}"
            out = bench.sh(wrk, bench.env())
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
        p50, p99 = wrk_latency(out)
        rows.append(f"{name} | {np.median(fits):.2f} s | {size:.2f} MB | {p50} / {p99} | {rps:.0f}")
    return (
        "12. The pipeline's cost",
        f"The default forest (100 trees) on `data/breast_cancer_train.csv`, bare and inside "
        f"`train_rfc.py`'s pipeline: fit (median of {bench.s.runs}, in-process), the skops file, "
        f"and one row per request to `mlflow models serve` (1 worker) under wrk, 1 connection, "
        f"{bench.s.wrk_seconds} s.",
        "model | fit | skops size | one row p50 / p99 | requests/s",
        rows,
        "the preparation steps are part of the model file (the skops sizes); on a quiet "
        "machine their fit and per-request cost is a small share of the forest's, so what a raw "
        "table needs travels with the model at little cost. Compare the fit and latency columns "
        "only within one run: they move with whatever else the machine is doing.",
    )
