"""Plumbing shared by the tutorial's scripts: the store, the CSV, the flags, the plots.

Nothing here is the lesson. The MLflow calls a reader comes to see stay in the scripts
(`train_rfc.py`, `train_ann.py`, `register_model.py`, `predict.py`); this module holds what
every one of them needs around those calls:

- where the tracking store is (`use_tutorial_store`, `get_or_create_experiment`),
- reading and checking a CSV (`load_dataset`),
- the metrics and the confusion-matrix figure (`classification_metrics`, `confusion_matrix_figure`),
- command-line flags shared by both training scripts and one-line errors (`ArgumentParser`,
  `TutorialError`, `exit_on_error`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = REPO_ROOT / "data" / "breast_cancer.csv"
DEFAULT_TARGET = "diagnosis"

# MLflow 3's default store, pinned to the repository root so that a script started from any
# working directory writes to the same place (and `make ui` shows it).
DEFAULT_TRACKING_URI = f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
DEFAULT_ARTIFACT_ROOT = REPO_ROOT / "mlruns"

# The two experiments of the tutorial: one per model family.
RFC_EXPERIMENT = "breast-cancer-random-forest"
ANN_EXPERIMENT = "breast-cancer-neural-network"

# The registered model that register_model.py promotes and predict*.py / serve_model.sh load.
MODEL_NAME = "breast-cancer-classifier"

# The metric the tutorial ranks runs by: F1 balances missed tumours (recall) against false
# alarms (precision), where accuracy would hide a model that never says "malignant".
MAIN_METRIC = "test_f1"


class TutorialError(Exception):
    """A problem the user can fix. Reported as one line on stderr, never as a traceback."""


def first_line(message) -> str:
    """The first line of an exception's text: what a one-line error can quote of it."""
    return str(message).strip().splitlines()[0]


def cannot_load(model_uri: str, exc: Exception) -> TutorialError:
    """The error for a registered model that is not there (yet) in the current store."""
    return TutorialError(
        f"cannot load {model_uri} from {mlflow.get_tracking_uri()} ({first_line(exc)}); "
        "run `python register_model.py` first"
    )


# --- The store ----------------------------------------------------------------------------


def use_tutorial_store() -> str:
    """Point MLflow at the tutorial's store unless MLFLOW_TRACKING_URI says otherwise."""
    if not mlflow.environment_variables.MLFLOW_TRACKING_URI.defined:
        mlflow.set_tracking_uri(DEFAULT_TRACKING_URI)
    return mlflow.get_tracking_uri()


def get_or_create_experiment(name: str) -> str:
    """Return the id of the experiment called `name`, creating it on first use.

    In the default store the artifacts go to `<repo>/mlruns/<name>`: MLflow would otherwise put
    them under `./mlruns` of whatever directory the script was started from. Against a tracking
    server, the server decides where artifacts go.
    """
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if mlflow.get_tracking_uri() == DEFAULT_TRACKING_URI:
        artifact_location = (DEFAULT_ARTIFACT_ROOT / name).as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # Another process created it between our look-up and our create.
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def resolve_experiment(name: str, experiment_id: str | None = None) -> str:
    """The id of `--experiment-id` if given (it must exist), else of `--experiment-name`."""
    if experiment_id is None:
        return get_or_create_experiment(name)
    try:
        mlflow.get_experiment(experiment_id)
    except MlflowException:
        raise TutorialError(
            f"no experiment with id {experiment_id!r} in {mlflow.get_tracking_uri()}"
        ) from None
    return experiment_id


# --- The data -----------------------------------------------------------------------------


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV with at least one row, or say in one line why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise TutorialError(f"data file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TutorialError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TutorialError(f"{path} is not a readable CSV file ({first_line(exc)})") from None
    if frame.empty:
        raise TutorialError(f"{path} has a header but no rows")
    return frame


def load_dataset(path: str | Path, target: str) -> tuple[pd.DataFrame, pd.Series]:
    """Read a CSV into numeric features X and labels y, or say in one line what is wrong."""
    frame = read_csv(path)
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise TutorialError(f"{path} has no column {target!r} (columns: {columns})")

    # Labels are category names, even when spelled as numbers: as text they give the model a
    # string output in its signature (an integer output would make MLflow warn about missing values).
    y = frame[target].where(frame[target].isna(), frame[target].astype(str))
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise TutorialError(f"{path} has no feature columns besides {target!r}")
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(X[column]) or pd.api.types.is_bool_dtype(X[column]):
            sample = X[column].dropna().iloc[0] if X[column].notna().any() else None
            raise TutorialError(
                f"feature column {column!r} in {path} is not numeric (e.g. {sample!r}); "
                "encode it as numbers or drop it"
            )
    missing = X.columns[X.isna().any()].tolist() + ([target] if y.isna().any() else [])
    if missing:
        raise TutorialError(f"{path} has empty cells in column(s): {', '.join(map(str, missing))}")

    counts = y.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        raise TutorialError(
            f"target {target!r} in {path} has only one class ({only!r}); "
            "a classifier needs at least two"
        )
    rare = counts[counts < 2]
    if len(rare):
        raise TutorialError(
            f"class {rare.index[0]!r} of {target!r} has only one row; "
            "a stratified train/test split needs at least two per class"
        )
    # Float features give the model signature one type per column ("double"): an int column
    # would make MLflow warn that integers cannot hold missing values at serving time.
    return X.astype("float64"), y


# --- Evaluation ---------------------------------------------------------------------------


def classification_metrics(y_true, y_pred, y_proba, classes) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC on the test split.

    Binary problems score the second class (`classes[1]`, "malignant" here) as the positive
    one, as scikit-learn does; with more classes, each score is the macro average.
    """
    # Imported here, like seaborn below: register_model.py and predict.py never need them.
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    if len(classes) == 2:
        averaged = {"average": "binary", "pos_label": classes[1]}
        roc_auc = roc_auc_score(y_true == classes[1], y_proba[:, 1])
    else:
        averaged = {"average": "macro"}
        roc_auc = roc_auc_score(y_true, y_proba, multi_class="ovr", labels=classes)
    return {
        "test_accuracy": accuracy_score(y_true, y_pred),
        "test_precision": precision_score(y_true, y_pred, zero_division=0, **averaged),
        "test_recall": recall_score(y_true, y_pred, zero_division=0, **averaged),
        "test_f1": f1_score(y_true, y_pred, zero_division=0, **averaged),
        "test_roc_auc": roc_auc,
    }


def confusion_matrix_figure(y_true, y_pred, classes, title: str):
    """The confusion matrix as a seaborn heatmap: rows are the truth, columns the prediction."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    # A bare Figure, not pyplot: nothing global to close, and no display needed.
    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.subplots()
    sns.heatmap(
        matrix,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        xticklabels=classes,
        yticklabels=classes,
        ax=axes,
    )
    axes.set(xlabel="predicted", ylabel="true", title=title)
    return figure


def print_run_summary(run, metrics: dict[str, float]) -> None:
    """Say where the run went and how to look at it."""
    experiment = mlflow.get_experiment(run.info.experiment_id)
    tracking_uri = mlflow.get_tracking_uri()
    ui = tracking_uri if tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    print(f"Run {run.info.run_name!r} logged to experiment {experiment.name!r}")
    print(f"  run id: {run.info.run_id}")
    for name, value in metrics.items():
        print(f"  {name:<15}{value:.4f}")
    print(f"  store:  {tracking_uri}")
    where = "" if tracking_uri.startswith("http") else "run `make ui`, then "
    print(
        f"See it: {where}open {ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
    )


# --- The command line ---------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (argparse adds the whole usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def positive_float(text: str) -> float:
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, default_experiment: str) -> None:
    """The flags both training scripts share: data, experiment, run name, seed."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="PATH",
        help="CSV file with one row per example (default: the repository's data/breast_cancer.csv)",
    )
    data.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        metavar="COLUMN",
        help="column holding the label to predict; every other column is a numeric feature "
        "(default: %(default)s)",
    )
    data.add_argument(
        "--test-size",
        type=fraction,
        default=0.2,
        metavar="FRACTION",
        help="share of rows held out, stratified by label, to score the model (default: %(default)s)",
    )
    tracking = parser.add_argument_group("tracking")
    where = tracking.add_mutually_exclusive_group()
    where.add_argument(
        "--experiment-name",
        default=default_experiment,
        metavar="NAME",
        help="experiment that groups this run with its siblings; created on first use "
        "(default: %(default)s)",
    )
    where.add_argument(
        "--experiment-id",
        metavar="ID",
        help="log into an existing experiment by id instead of by name",
    )
    tracking.add_argument(
        "--run-name",
        metavar="NAME",
        help="label for this run in the UI (default: built from the hyperparameters)",
    )
    tracking.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed for the split and the model, so a run can be repeated (default: %(default)s)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model-name and --alias: which registered model version a client loads."""
    parser.add_argument(
        "--model-name",
        default=MODEL_NAME,
        help="registered model to load (default: %(default)s)",
    )
    parser.add_argument(
        "--alias", default="champion", help="alias of the version to load (default: %(default)s)"
    )


def exit_on_error(main: Callable[[], object]) -> None:
    """Run `main`; turn the errors a user can cause into one line on stderr and an exit code.

    An exception raised inside `with mlflow.start_run()` has already ended that run as FAILED
    by the time it arrives here, so no run is left RUNNING.
    """
    try:
        main()
    except TutorialError as exc:
        sys.exit(f"error: {exc}")
    except BrokenPipeError:
        # `python predict.py | head` closed our stdout early: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted (a run in progress was ended as FAILED)", file=sys.stderr)
        sys.exit(130)
    except MlflowException as exc:
        sys.exit(f"error: MLflow: {first_line(exc)}")
    except (ValueError, TypeError) as exc:
        # scikit-learn's own parameter checks ("The 'alpha' parameter ... must be ...").
        sys.exit(f"error: {first_line(exc)}")
