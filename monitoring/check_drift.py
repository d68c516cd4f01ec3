"""Watch what the champion sees: the rows it scored, against the rows it was trained on.

What you learn here: a model meets data that moves after it ships (a lab recalibrates a device,
a clinic measures differently), and nothing in the registry notices. This check asks MLflow
which rows trained the champion (alias -> version -> its run -> the dataset that run logged with
`mlflow.log_input`), compares a batch the champion scored with them using Evidently's data
drift preset (a Kolmogorov-Smirnov test per feature), and logs the check as a run: Evidently's
HTML report, a p-value per feature, the share of features that drifted, the share of each
answer the champion gave, both datasets as inputs, and the champion's version as a tag. When at
least --drift-share of the features drifted, it exits with code 3 and one line naming the worst
of them, so that a scheduler or CI can act.

Run it after `python register_model.py`, on a batch and the champion's answers to it:

    python predict.py --data data/later_drifted.csv --output monitoring/captured/later_drifted.csv
    python monitoring/check_drift.py --data data/later_drifted.csv --predictions monitoring/captured/later_drifted.csv

Then open the experiment "breast-cancer-monitoring" in the UI (`make ui`): one run per check,
its report under Artifacts, its metrics charted over time (monitoring/README.md says how).
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.exceptions import MlflowException

import input_checks
import server_errors
import tutorial_store
from predict import fit_rows

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = tutorial_store.MODEL_NAME
EXPERIMENT = "breast-cancer-monitoring"
STEADY_BATCH = REPO / "data" / "later_steady.csv"
# Kolmogorov-Smirnov for every numeric feature, chi-squared for every category (text or
# boolean): could the batch and the training rows come from one distribution? Below a p-value
# of 0.05 (Evidently's default), that feature drifted. Fixed, not left to Evidently (which
# picks a distance instead past 1,000 training rows), so that the same metric means the same
# thing in every check, for every champion.
DRIFT_METHOD = "ks"
CATEGORY_DRIFT_METHOD = "chisquare"
# The check fails when at least this share of the features drifted. The recalibration in
# data/later_drifted.csv moves 9 of the 30, and K-S finds 8 of them in 114 rows (0.27); a steady
# batch moves none, or one or two by chance (at p < 0.05, one test in twenty).
DRIFT_SHARE = 0.2
# Not 1 (an error) or 2 (a bad flag): a scheduler can tell "retrain" from "fix the job".
DRIFT_EXIT = 3


def main(argv=None):
    args = parse_args(argv)
    # MLflow's routine INFO lines would bury the verdict; MLFLOW_LOGGING_LEVEL=INFO brings them back.
    logging.getLogger("mlflow").setLevel(os.environ.get("MLFLOW_LOGGING_LEVEL", "WARNING").upper())
    # The store the other scripts use: mlflow.db at the repository root, its artifacts in
    # mlruns/ beside it, unless MLFLOW_TRACKING_URI names another (a team server, say).
    tutorial_store.use_store(REPO)

    # Every input is read and checked before the check's run starts: a bad one is one line,
    # and no run is left behind half-logged.
    version, trained_on, source = champion_and_its_training_data(args.model_name, args.alias)
    schema = champion_schema(args.model_name, version.version)
    features = schema.input_names()
    training = input_checks.read_csv(trained_on)
    label = mlflow.get_run(version.run_id).data.params.get("target")
    before = label_shares(training, features, label)  # what the training rows held, to compare
    training = check_columns(training, features, trained_on, "the champion's training data")
    batch = input_checks.read_csv(args.data)
    batch = check_columns(batch, features, args.data, "the batch", label)
    # The raw rows, as the server takes them: each column in the champion's type (fit_rows).
    training, batch = fit_rows(training, schema), fit_rows(batch, schema)
    answers, scores = (
        read_answers(args.predictions, len(batch)) if args.predictions else (None, None)
    )

    # The comparison, Evidently's: a test per feature, and a test on the share that drifted.
    numbers = [name for name in features if pd.api.types.is_float_dtype(batch[name])]
    categories = [name for name in features if name not in numbers]
    kinds = DataDefinition(numerical_columns=numbers, categorical_columns=categories)
    drift_preset = DataDriftPreset(
        num_method=DRIFT_METHOD, cat_method=CATEGORY_DRIFT_METHOD, drift_share=args.drift_share
    )
    # Categories as pandas text (True and False too): Evidently's clean-up of an object column
    # with empty cells makes pandas warn about a downcast that text columns do not have.
    as_text = dict.fromkeys(categories, "string")
    result = Report([drift_preset], include_tests=True).run(
        current_data=Dataset.from_pandas(batch.astype(as_text), data_definition=kinds),
        reference_data=Dataset.from_pandas(training.astype(as_text), data_definition=kinds),
    )
    drift = findings(result)
    shares = answer_shares(answers, before)
    # Empty cells, per column: a form field that stopped being filled in is drift too.
    missing = batch.isna().mean()
    verdict = "drifted" if drift["failed"] else "steady"
    tags = {"model": args.model_name, "champion_version": version.version, "verdict": verdict}
    # One chart per metric in the UI, and over many checks, drift over time.
    metrics = {f"drift_p_value/{name}": p for name, p in drift["p_values"].items()}
    metrics |= {"drifted_share": drift["share"], "rows": len(batch)}
    metrics |= {f"predicted_{label}_share": share for label, share in shares.items()}
    spread = score_spread(scores)  # predict.py --proba: how sure the champion was, per class
    metrics |= {f"score/{label}/{stat}": value for label, stats in spread.items() for stat, value in stats.items()}  # fmt: skip
    metrics |= {f"missing_share/{name}": share for name, share in missing.items()}
    report_html = result.get_html_str(as_iframe=False)  # Evidently's report, whole, as a page

    # Which rows were compared: both show under "Datasets used", with their digests.
    reference = mlflow.data.from_pandas(training, source=source, name=trained_on.stem)
    current = mlflow.data.from_pandas(
        batch,
        source=LocalArtifactDatasetSource(str(args.data.resolve())),
        name=args.data.stem,
    )
    # Its own experiment; in the tutorial's store, its artifacts in mlruns/ at the root.
    experiment_id = tutorial_store.set_experiment(args.experiment_name, REPO)
    run_name = f"{verdict}: {args.data.name} vs version {version.version}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as check:
        # Batched: against a tracking server every call is one HTTP request.
        mlflow.set_tags(tags)
        mlflow.log_params(
            {
                "method": DRIFT_METHOD,
                "category_method": CATEGORY_DRIFT_METHOD,
                "drift_share": args.drift_share,
            }
        )
        mlflow.log_input(reference, context="reference")
        mlflow.log_input(current, context="current")
        mlflow.log_metrics(metrics)
        mlflow.log_text(report_html, "drift_report.html")  # under the run's Artifacts

    print(
        f"Champion: models:/{args.model_name}/{version.version}, trained on rows from {trained_on}"
    )
    print(f"Batch: {args.data}, {len(batch)} rows; answers: {said(shares, before)}")
    for label, stats in spread.items():
        print(
            f"Scores of {label}: "
            + ", ".join(f"{stat} {value:.2f}" for stat, value in stats.items())
        )
    if missing.any():
        empty = ", ".join(f"{name} {share:.0%}" for name, share in missing.items() if share)
        print(f"Empty cells: {empty} (training rows: {empty_shares(training, missing)})")
    print(f"Logged check {check.info.run_id} in {args.experiment_name!r}, with drift_report.html")
    exit_with_verdict(drift, len(features), args.drift_share)


def champion_and_its_training_data(model_name: str, alias: str):
    """The champion's version, the file its run logged as training data, and that file's source.

    The alias names a version, the version its run, the run its inputs: the dataset logged
    with `mlflow.log_input(..., context="training")` and the source it was read from. Nothing
    here is a path written down twice: retrain on other rows, and the next check follows.
    """
    version = tutorial_store.registered_version(model_name, alias)  # or one line if none
    champion = f"models:/{model_name}@{alias} (version {version.version})"
    run = mlflow.get_run(version.run_id) if version.run_id else None
    inputs = run.inputs.dataset_inputs if run else []
    training = [
        each
        for each in inputs
        if any(t.key == "mlflow.data.context" and t.value == "training" for t in each.tags)
    ]
    if not training:
        raise SystemExit(
            f"error: {champion} has no training dataset: its run logged none with "
            "mlflow.log_input(..., context='training'), so there is nothing to compare the "
            "batch with (train_rfc.py logs one)"
        )
    source = mlflow.data.get_source(training[0])
    try:
        # A local file loads as its own path; a file in S3 (say) is downloaded first.
        return version, Path(source.load()), source
    except NotImplementedError:
        raise SystemExit(
            f"error: {champion} logged its training data from a {training[0].dataset.source_type} "
            "source, which cannot be read back: log it from a file, as train_rfc.py does"
        ) from None
    except (MlflowException, OSError):
        raise SystemExit(
            f"error: the training data of {champion} is gone: {source.to_dict().get('uri')} no "
            "longer exists; restore that file, or retrain and register a new champion"
        ) from None


def champion_schema(model_name: str, version: str):
    """The columns the champion takes and their types, from its signature (its MLmodel: nothing
    loaded)."""
    signature = mlflow.models.get_model_info(f"models:/{model_name}/{version}").signature
    if signature is None:
        raise SystemExit(
            f"error: version {version} of {model_name!r} has no signature, so its columns are "
            "unknown: log the model with one (signature=infer_signature(...), as train_rfc.py does)"
        )
    return signature.inputs


def check_columns(rows, features, path, what, label=None):
    """The rows, if they hold the champion's columns and not its label (other columns, an ID
    say, are left out as the server leaves them); else one line saying what is off."""
    missing = [name for name in features if name not in rows.columns]
    if missing:
        raise SystemExit(
            f"error: {what}, {path}, lacks {len(missing)} of the champion's {len(features)} "
            f"columns: {', '.join(missing[:3])}{', ...' * (len(missing) > 3)}"
        )
    if label in rows.columns:  # labelled rows are an evaluation set, not what was scored
        raise SystemExit(
            f"error: {what}, {path}, holds the label column {label!r}: pass the rows as the "
            "champion scored them, without their labels"
        )
    return rows


def empty_shares(training, missing) -> str:
    """The training rows' share of empty cells, in the columns where the batch has some."""
    return ", ".join(f"{training[name].isna().mean():.0%}" for name in missing.index[missing > 0])


def read_answers(path, rows: int) -> tuple[pd.Series, pd.DataFrame]:
    """The champion's answers to the batch, row for row, as predict.py --output writes them;
    and its probabilities, a column per class, where `predict.py --proba` wrote them."""
    answers = input_checks.read_csv(path)
    if "prediction" not in answers.columns:
        raise SystemExit(
            f"error: {path} has no column 'prediction' (predict.py --output writes it)"
        )
    if len(answers) != rows:
        raise SystemExit(
            f"error: {path} holds {len(answers)} predictions for a batch of {rows} rows: "
            "pass the answers to this very batch"
        )
    return answers["prediction"].astype(str), answers.drop(columns="prediction").select_dtypes(
        "number"
    )


def score_spread(scores) -> dict[str, dict[str, float]]:
    """Per class, the spread of the champion's probabilities: their mean and quartiles. A model
    growing unsure moves them towards the middle before its answers change."""
    if scores is None or scores.empty:
        return {}
    quartiles = {"mean": "mean", "p25": 0.25, "p50": 0.5, "p75": 0.75}
    return {
        str(label): {
            stat: float(column.mean() if q == "mean" else column.quantile(q))
            for stat, q in quartiles.items()
        }
        for label, column in scores.items()
    }


def findings(result) -> dict:
    """What Evidently found, from its dictionary export: the share of features that drifted,
    a p-value per feature, which drifted (their tests failed) and whether the share test failed."""
    exported = result.dict()
    share = next(m["value"]["share"] for m in exported["metrics"] if "drift_share" in m["config"])
    p_values = {
        m["config"]["column"]: m["value"] for m in exported["metrics"] if "column" in m["config"]
    }
    failed = [t["metric_config"]["params"] for t in exported["tests"] if t["status"] == "FAIL"]
    drifted = sorted((each["column"] for each in failed if "column" in each), key=p_values.get)
    return {
        "share": share,
        "p_values": p_values,
        "drifted": drifted,
        "worst": drifted[:3],  # the lowest p-values: the surest departures
        "failed": any("drift_share" in each for each in failed),
    }


def label_shares(training, features, label=None) -> dict[str, float]:
    """The share of each class in the training rows: the run's target column, or else their one
    column the champion does not take (a table with a dropped ID column has two)."""
    labels = [label] if label in training.columns else [n for n in training if n not in features]
    if len(labels) != 1:
        return {}
    return training[labels[0]].astype(str).value_counts(normalize=True).to_dict()


def answer_shares(answers, before) -> dict[str, float]:
    """The share of each answer the champion gave; a class of the training rows that it never
    gave counts 0, so that a chart over time has no gaps."""
    if answers is None:
        return {}
    shares = answers.value_counts(normalize=True)
    return shares.reindex(sorted(set(before) | set(shares.index)), fill_value=0.0).to_dict()


def said(shares, before) -> str:
    """'31% malignant, 69% benign (training rows: 37%, 63%)': the answers against the past."""
    if not shares:
        return "not given (--predictions)"
    now = ", ".join(f"{share:.0%} {label}" for label, share in shares.items())
    if not before:
        return now
    return f"{now} (training rows: {', '.join(f'{before.get(label, 0):.0%}' for label in shares)})"


def exit_with_verdict(drift, features: int, drift_share: float) -> None:
    """One line either way; a drift ends the script with DRIFT_EXIT, the worst features named."""
    counted = f"{len(drift['drifted'])} of {features} features drifted ({drift['share']:.0%}"
    if not drift["failed"]:
        print(f"steady: {counted}, under --drift-share {drift_share:.0%})")
        return
    worst = ", ".join(f"{name} (p={drift['p_values'][name]:.1e})" for name in drift["worst"])
    print(
        f"drift: {counted}, at least --drift-share {drift_share:.0%}); worst: {worst}",
        file=sys.stderr,
    )
    sys.exit(DRIFT_EXIT)


# --- The command line -----------------------------------------------------------------------


def share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share in (0, 1], got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare rows the champion scored with the rows it was trained on "
        "(Evidently), and log the check as an MLflow run.",
        epilog=f"Exit codes: 0 steady, {DRIFT_EXIT} drifted (at least --drift-share of the "
        "features), 1 an error, 2 a bad flag. Example: python monitoring/check_drift.py "
        "--data data/later_drifted.csv --predictions monitoring/captured/later_drifted.csv",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=STEADY_BATCH,
        metavar="PATH",
        help="CSV of the rows the champion scored, exactly its feature columns (default: "
        "data/later_steady.csv, a practice batch that has not drifted)",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        metavar="PATH",
        help="the champion's answers to those rows, as predict.py --output writes them: logs "
        "the share of each answer (default: inputs only)",
    )
    parser.add_argument(
        "--drift-share",
        type=share,
        default=DRIFT_SHARE,
        metavar="X",
        help="fail (exit 3) when at least this share of the features drifted (default: %(default)s)",
    )
    parser.add_argument(
        "--model-name", default=MODEL_NAME, help="registered model to watch (default: %(default)s)"
    )
    parser.add_argument(
        "--alias", default="champion", help="alias of the version to watch (default: %(default)s)"
    )
    parser.add_argument(
        "--experiment-name",
        metavar="NAME",
        help=f"experiment that records each check (default: {EXPERIMENT}, or "
        "<model name>-monitoring for another --model-name)",
    )
    input_checks.strict(parser)  # a bad flag printed as one line
    args = parser.parse_args(argv)
    own = f"{args.model_name}-monitoring" if args.model_name != MODEL_NAME else None
    args.experiment_name = args.experiment_name or own or EXPERIMENT
    return args


if __name__ == "__main__":
    server_errors.exit_on_error(main)
