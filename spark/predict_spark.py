"""Score a CSV on Spark with the champion model: the same predictions, for tables of any size.

What you learn here: `mlflow.pyfunc.spark_udf` turns a registered model into a Spark column
function. Spark splits the table into partitions, sends the model to every executor once and
calls its `predict` on batches of rows (pandas DataFrames, passed via Arrow). The model is the
one `predict.py` loads, `models:/breast-cancer-classifier@champion`, so the predictions are the
same row for row: only where the work runs has changed. On this machine Spark runs "local[2]"
(two threads in one JVM); on a cluster the same code runs on as many machines as it has.

Run it after `python register_model.py` (needs `pip install -r requirements/spark.txt`, Java 17+):

    python spark/predict_spark.py                                 # the sample rows, printed as CSV
    python spark/predict_spark.py --data data/breast_cancer.csv --output predictions/
    python spark/predict_spark.py --master spark://spark-master:7077 \\
        --data s3a://bucket/to-score/ --output s3a://bucket/scored/    # see spark/README.md

Compare with the pandas path: `python predict.py` prints the very same CSV.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import mlflow
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql.functions import coalesce, col, struct, when

import input_checks
import server_errors
import tutorial_store

HERE = Path(__file__).resolve().parent
DEFAULT_ROWS = HERE.parent / "data" / "sample_rows.csv"
MODEL_NAME = "breast-cancer-classifier"
# Spark on this machine: two worker threads. A cluster's master URL replaces it (--master).
DEFAULT_MASTER = "local[2]"
# Warnings only, on one line each: Spark's default logging would bury the output in INFO lines.
LOG4J2_CONFIG = HERE / "log4j2.properties"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Predict a CSV on Spark with the registered champion model (spark_udf).",
        epilog="Example: python spark/predict_spark.py --data data/breast_cancer.csv --output scored/",
    )
    parser.add_argument(
        "--data",
        default=str(DEFAULT_ROWS),
        metavar="PATH",
        help="CSV file or folder of CSVs with the model's feature columns; other columns are "
        "ignored; any path Spark reads (s3a://, hdfs://) works (default: data/sample_rows.csv)",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="write the predictions as a folder of CSV files, one per partition, as Spark does "
        "(default: print them; fine for a sample, not for a cluster-sized table)",
    )
    parser.add_argument(
        "--model-name",
        default=MODEL_NAME,
        help="registered model to load (default: %(default)s)",
    )
    parser.add_argument(
        "--alias", default="champion", help="alias of the version to load (default: %(default)s)"
    )
    parser.add_argument(
        "--master",
        default=DEFAULT_MASTER,
        metavar="URL",
        help="where Spark runs: local[N] for N threads here, or a cluster such as "
        "spark://host:7077 (default: %(default)s)",
    )
    return input_checks.strict(parser).parse_args(argv)


def start_spark(master: str) -> SparkSession:
    if master.startswith("local"):
        # Everything runs on this machine: bind Spark to loopback, like every server of the
        # tutorial (Spark would otherwise pick the network address, and say so in a warning),
        # and run the Python workers with this Python, where mlflow and scikit-learn are
        # installed (Spark would start whichever `python3` comes first on the PATH).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName("predict_spark")
        # As a file: URI, so that a space in the path (~/My Projects/...) survives: Spark splits
        # the Java options at spaces.
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}",
        )
        # A batch job needs no web UI (port 4040) and no progress bar drawn over its output.
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Print query plans with all 30 feature columns instead of warning that they were cut.
        .config("spark.sql.debug.maxToStringFields", "100")
        .getOrCreate()
    )


def checked_model(model_name: str, alias: str) -> tuple[str, dict[str, str]]:
    """The alias pinned to its version, checked before anything loads it; and its columns, each
    with its Spark type ("double", "string" or "boolean")."""
    version, info = tutorial_store.checked_version(model_name, alias)  # MLmodel only, checked
    model_uri = f"models:/{model_name}/{version.version}"
    inputs = info.signature.inputs
    spark_types = {"double": "double", "float": "double", "boolean": "boolean"}
    return model_uri, {
        name: spark_types.get(kind.name, "string")
        for name, kind in zip(inputs.input_names(), inputs.input_types(), strict=True)
    }


def drop_local_env_notice(record: logging.LogRecord) -> bool:
    """spark_udf(env_manager="local") warns, every time, that it does not rebuild the training
    environment. Here the executors run the very environment the model was trained in (the
    pinned requirements.txt), and a real difference is still reported: MLflow first compares
    the model's requirements with what is installed, and warns about each mismatch."""
    return "does not recreate the same environment" not in record.getMessage()


def main(argv=None):
    args = parse_args(argv)
    # The store the other scripts use: mlflow.db at the repository root, unless
    # MLFLOW_TRACKING_URI names another (a team server, say); one line if there is none.
    tutorial_store.use_store(HERE.parent)
    model_uri, features = checked_model(args.model_name, args.alias)

    logging.getLogger("mlflow.pyfunc").addFilter(drop_local_env_notice)

    # Local paths are checked here, in a second; Spark reports a missing s3a:// path itself.
    if "://" not in args.data and not Path(args.data).exists():
        raise SystemExit(f"error: data file not found: {args.data}")
    if args.output and "://" not in args.output and Path(args.output).exists():
        raise SystemExit(
            f"error: {args.output} already exists; Spark writes a new folder, so choose another name"
        )

    spark = start_spark(args.master)
    try:
        rows = spark.read.csv(args.data, header=True)
        missing = [name for name in features if name not in rows.columns]
        if missing:
            raise SystemExit(
                f"error: {args.data} lacks {len(missing)} of the model's {len(features)} columns "
                f"(e.g. {', '.join(missing[:3])})"
            )
        # One quick pass for a cell that is not a number (or not true/false where the model
        # takes a boolean): reported here in one line, it would otherwise fail the scoring job
        # with a stack trace from every executor. Text columns take any text.
        typed = {name: kind for name, kind in features.items() if kind != "string"}
        first_bad_column = coalesce(
            *[when(col(n).isNotNull() & col(n).try_cast(t).isNull(), n) for n, t in typed.items()]
        )
        bad = (
            rows.select(first_bad_column.alias("bad_column"), *features)
            .where(col("bad_column").isNotNull())
            .first()
            if typed
            else None
        )
        if bad is not None:
            wanted = "a number" if typed[bad.bad_column] == "double" else "true or false"
            raise SystemExit(
                f"error: column {bad.bad_column!r} of {args.data} holds {bad[bad.bad_column]!r}, "
                f"which is not {wanted}"
            )
        # Each column in the type the model was trained on, numbers as doubles. An empty cell
        # stays empty (null; NaN or None in pandas), and the model's pipeline fills it.
        rows = rows.select([col(name).cast(kind) for name, kind in features.items()])

        # The registered model as a Spark function, answering one label per row ("benign" or
        # "malignant"). env_manager="local": the executors use the Python they run in (this
        # one, here) instead of building the model's own environment, which takes minutes.
        predict = mlflow.pyfunc.spark_udf(
            spark, model_uri, result_type="string", env_manager="local"
        )
        # struct() hands the model each batch with its column names, as a pandas DataFrame.
        predictions = rows.select(predict(struct(*features)).alias("prediction"))

        if args.output:
            # Each executor writes its own partitions: nothing passes through this process.
            predictions.write.csv(args.output, header=True)
            print(f"Wrote the predictions to {args.output}/ (one part-*.csv per partition)")
        else:
            predictions.toPandas().to_csv(sys.stdout, index=False)
    except PySparkException as exc:
        raise SystemExit(f"error: Spark: {server_errors.first_line(exc)}") from None
    finally:
        spark.stop()


if __name__ == "__main__":
    server_errors.exit_on_error(main)
