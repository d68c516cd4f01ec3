"""Batch scoring on Spark: `predict_spark.py` gives the pandas path's answer for every row.

The champion is trained and registered with the README's commands in this test's own store;
`predict_spark.py` then scores data/breast_cancer.csv on a local Spark session (one session,
two threads), writes its folder of CSV files, and each row must carry the prediction that
`mlflow.pyfunc.load_model(...).predict` gives the same row in pandas.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from conftest import DATA, FAST_RFC

pytest.importorskip(
    "pyspark", reason="pyspark is not installed (pip install -r requirements-spark.txt)"
)

MODEL_URI = "models:/breast-cancer-classifier@champion"
# The JVM of Spark 4 announces, on every start, the incubating Java module Spark enables
# (`--add-modules=jdk.incubator.vector`, hard-wired in Spark's launcher). It is Java's own
# notice and the only line a clean run may print besides MLflow's INFO lines.
JVM_NOTICE = "WARNING: Using incubator modules: jdk.incubator.vector"


def test_spark_udf_predicts_what_pandas_predicts_for_every_row(store):
    store.run("train_rfc.py", *FAST_RFC)
    store.run("register_model.py")

    result = store.run("predict_spark.py", "--data", str(DATA), "--output", "scored")
    assert "Wrote the predictions to scored/" in result.stdout
    stderr = [line for line in result.stderr.splitlines() if line != JVM_NOTICE]
    noise = [line for line in stderr if " INFO " not in line]
    assert not noise, result.stderr

    # Spark wrote one CSV per partition, with a header each; in part order, they are the rows.
    parts = sorted((store.root / "scored").glob("part-*.csv"))
    assert parts, list((store.root / "scored").iterdir())
    on_spark = pd.concat([pd.read_csv(part) for part in parts], ignore_index=True)

    mlflow.set_tracking_uri(store.uri)
    model = mlflow.pyfunc.load_model(MODEL_URI)
    rows = pd.read_csv(DATA).drop(columns=["diagnosis"])
    in_pandas = model.predict(rows)

    assert list(on_spark.columns) == ["prediction"]
    assert len(on_spark) == len(rows) == 569
    assert on_spark["prediction"].tolist() == list(in_pandas)
    # Not a trivial model: both classes occur.
    assert set(in_pandas) == {"benign", "malignant"}
