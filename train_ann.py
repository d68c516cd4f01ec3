"""Train a small neural network (scikit-learn's MLPClassifier) and track the run with MLflow.

What you learn here: the same tracking block as `train_rfc.py`, for a second model family in a
second experiment. An experiment groups the runs you want to compare with each other; a run is
one execution with one set of hyperparameters. The model is a pipeline (fill the empty cells,
scale the numbers, one-hot encode the text and booleans, then the network), so the logged
model takes the raw CSV columns and prepares them itself: whoever calls it later cannot forget
that step.

Run it (from any directory: the runs land in mlflow.db and mlruns/ next to this file):

    python train_ann.py
    python train_ann.py --hidden-layers 64,32 --alpha 0.01 --run-name two-layers
    python train_ann.py --data my.csv --target label --experiment-name my-project

Then run `make ui`, open http://127.0.0.1:5000, pick the experiment
"breast-cancer-neural-network" and compare test_f1 against alpha.

Copy it: this file alone runs in any folder of yours (`python train_ann.py --data yours.csv
--target label --experiment-name yours`). In this repository it also uses input_checks.py,
server_errors.py and offline.py (the block at the bottom): bad input fails in one clear line,
and a tracking server that goes away mid-run costs no trained model (team-server/README.md).
"""

import argparse
import contextlib
import os
import warnings
from importlib.metadata import distribution
from pathlib import Path

import mlflow
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.models import infer_signature
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).resolve().parent
EXPERIMENT = "breast-cancer-neural-network"
# 455 of the dataset's 569 rows. The other 114 (data/breast_cancer_eval.csv) are held back:
# no training run sees them, so register_model.py's promotion gate can compare models on them.
DATA = HERE / "data" / "breast_cancer_train.csv"
TARGET = "diagnosis"
# skops loads only the types it is told to trust. The network's pipeline needs two beyond numpy
# and scikit-learn's estimators: numpy's dtype (the imputer notes the type it was fitted on)
# and the Adam optimiser's saved state. For your own model, ask skops:
# skops.io.get_untrusted_types(data=skops.io.dumps(model)).
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"]
# What the logged model imports to load and serve. pinned_requirements() below logs them and
# all they depend on at the versions installed here: the whole environment, pinned.
MODEL_PACKAGES = ["mlflow", "scikit-learn", "skops", "pandas"]


def main(argv=None):
    args = parse_args(argv)

    # The data as it comes: text, booleans, whole numbers and empty cells are all fine.
    check_training_csv(args.data, args.target, args.test_size, args.drop, args.keep)
    features = pd.read_csv(args.data).drop(columns=args.drop)  # --drop: IDs, leaks
    # Labels are category names, even when spelled 0/1: the model then predicts strings, and
    # its signature has a string output (an integer output makes MLflow warn about NaNs).
    labels = features.pop(args.target).astype(str)
    # Numbers as floats: a whole-number column could not hold a missing value at serving time
    # (MLflow warns about integer columns for that reason). Every other column is a category.
    numbers = features.select_dtypes("number").columns.tolist()  # booleans are not numbers
    categories = [name for name in features if name not in numbers]
    features[numbers] = features[numbers].astype("float64")
    X_train, X_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, stratify=labels, random_state=args.seed
    )
    # The model is the pipeline: what a raw table needs is fitted with the network and logged
    # with it, so the server and predict.py take rows as the CSV has them. Neural networks
    # train badly on unscaled numbers, so the numbers are scaled too.
    prepare = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
            # A column per category; an empty cell is a category too, an unseen one all zeros.
            ("categories", OneHotEncoder(handle_unknown="ignore"), categories),
        ]
    )
    network = MLPClassifier(
        hidden_layer_sizes=args.hidden_layers,
        activation=args.activation,
        alpha=args.alpha,
        learning_rate_init=args.learning_rate,
        max_iter=args.max_iter,
        random_state=args.seed,
    )
    model = Pipeline([("prepare", prepare), ("model", network)])
    layers = "x".join(map(str, args.hidden_layers))
    run_name = args.run_name or f"mlp-{layers}-alpha{args.alpha:g}"
    tags = {"model_family": "neural_network", "script": "train_ann.py"}
    params = {
        **network.get_params(),
        "data": args.data.name,
        "target": args.target,
        "test_size": args.test_size,
        # Which columns the model reads, and how the pipeline treats each kind.
        "numeric_columns": ", ".join(numbers) or "(none)",
        "category_columns": ", ".join(categories) or "(none)",
        "dropped_columns": ", ".join(args.drop) or "(none)",
    }
    # Which rows trained the model: the UI shows them under "Datasets used".
    training_data = mlflow.data.from_pandas(
        X_train.assign(**{args.target: y_train}),
        source=LocalArtifactDatasetSource(str(args.data.resolve())),
        targets=args.target,
        name=args.data.stem,
    )

    # Where the runs go: MLflow 3's default store, a SQLite file for runs and a folder for
    # artifacts, both next to this file whatever folder you start it from (MLflow would put
    # artifacts in ./mlruns of the current folder). MLFLOW_TRACKING_URI overrides it.
    if "MLFLOW_TRACKING_URI" not in os.environ:
        mlflow.set_tracking_uri(f"sqlite:///{HERE / 'mlflow.db'}")
        if mlflow.get_experiment_by_name(args.experiment_name) is None:
            artifacts = (HERE / "mlruns" / args.experiment_name).as_uri()
            mlflow.create_experiment(args.experiment_name, artifact_location=artifacts)
    check_tracking_server()  # a server that is down: one line in seconds, not minutes of retries
    mlflow.set_experiment(args.experiment_name)

    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(tags)
        # Batch the params: against a tracking server every call is one HTTP request.
        mlflow.log_params(params)
        mlflow.log_input(training_data, context="training")

        # scikit-learn warns when fit stops at --max-iter before the network converged. The run
        # records that as a tag instead, which you can filter on later (`tags.converged =
        # "False"` finds the runs to redo), and the summary says it in words. Any other warning
        # is shown as it came.
        with warnings.catch_warnings(record=True) as caught:
            model.fit(X_train, y_train)
        for seen in caught:
            if not issubclass(seen.category, ConvergenceWarning):
                warnings.showwarning(seen.message, seen.category, seen.filename, seen.lineno)
        y_pred = model.predict(X_test)
        metrics = held_out_scores(y_test, y_pred, model.predict_proba(X_test), model.classes_)
        figure = confusion_matrix_figure(y_test, y_pred, model.classes_, title=run_name)
        tags["converged"] = str(network.n_iter_ < args.max_iter)
        model_options = dict(
            # The signature lets the server and `predict.py` reject malformed input.
            signature=infer_signature(X_train, y_pred),
            input_example=X_train.head(3),
            pip_requirements=pinned_requirements(*MODEL_PACKAGES),
            # The class names, in the order of predict_proba's columns: a client of a server
            # that answers probabilities (serve_model.sh) reads them from the MLmodel.
            metadata={"classes": [str(name) for name in model.classes_]},
            # skops, not pickle: MLflow 3.17's default, said here since older 3.x used cloudpickle.
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )

        # Only logging from here on. If the tracking server goes away now, the fitted model is
        # kept in offline-runs/ instead of lost (offline.py).
        with keep_if_logging_fails(run, model, params, tags, metrics, figure, model_options):
            mlflow.set_tag("converged", tags["converged"])
            # log_figure writes the PNG straight into the run: no file left in your folder.
            mlflow.log_figure(figure, "confusion_matrix.png")
            model_info = mlflow.sklearn.log_model(model, name="model", **model_options)
            # The scores go to the run and, through model_id, to the model it logged: the
            # model's page then shows them, and search_logged_models() can rank models by them.
            mlflow.log_metrics(metrics, model_id=model_info.model_id)

    print_summary(run, args.experiment_name, metrics)
    if tags["converged"] == "False":
        print(
            f"Not converged: the network stopped after --max-iter {args.max_iter} passes, still "
            "improving (tag converged=False); a larger --max-iter or --learning-rate may score better"
        )


# A meant copy: train_rfc.py and tune_rfc.py hold the same function, so that each script runs
# copied alone (tests/unit/test_meant_copies.py keeps them equal).
def pinned_requirements(*packages: str) -> list[str]:
    """`packages` and everything they depend on, at the versions installed here.

    Read from this environment's own metadata in a second (MLflow's inference of a model's
    requirements loads the model in a subprocess, and pins only the packages at the top). A
    server that builds the model's environment from this list (serve_model.sh with
    ENV_MANAGER=uv, the container image) installs the stack the model was tested on, package by
    package; a model logged in your environment records your versions.
    """
    pinned, todo = {}, list(packages)
    while todo:
        requirement = Requirement(todo.pop())
        name = canonicalize_name(requirement.name)
        # Optional extras and other platforms' dependencies are not this model's.
        needed = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        if name in pinned or not needed:
            continue
        installed = distribution(name)
        pinned[name] = installed.version
        todo += installed.requires or []
    return [f"{name}=={version}" for name, version in sorted(pinned.items())]


# A meant copy: train_rfc.py and tune_rfc.py hold the same function, so that each script runs
# copied alone (tests/unit/test_meant_copies.py keeps them equal).
def held_out_scores(y_true, y_pred, y_proba, classes) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC on the held-out rows.

    With two classes the second one (`malignant` here) is the positive class, as in
    scikit-learn; with more, each score is the average over the classes.
    """
    if len(classes) == 2:
        per_class = {"average": "binary", "pos_label": classes[1]}
        roc_auc = roc_auc_score(y_true == classes[1], y_proba[:, 1])
    else:
        per_class = {"average": "macro"}
        roc_auc = roc_auc_score(y_true, y_proba, multi_class="ovr", labels=classes)
    return {
        "test_accuracy": accuracy_score(y_true, y_pred),
        "test_precision": precision_score(y_true, y_pred, zero_division=0, **per_class),
        "test_recall": recall_score(y_true, y_pred, zero_division=0, **per_class),
        "test_f1": f1_score(y_true, y_pred, zero_division=0, **per_class),
        "test_roc_auc": roc_auc,
    }


# A meant copy: train_rfc.py and tune_rfc.py hold the same function, so that each script runs
# copied alone (tests/unit/test_meant_copies.py keeps them equal).
def confusion_matrix_figure(y_true, y_pred, classes, title: str) -> Figure:
    """Rows are the truth, columns the prediction: the off-diagonal cells are the mistakes."""
    # A bare Figure, not pyplot: nothing global to close, and no display needed.
    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.subplots()
    sns.heatmap(
        confusion_matrix(y_true, y_pred, labels=classes),
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


# A meant copy: train_rfc.py hold the same function, so that each script runs
# copied alone (tests/unit/test_meant_copies.py keeps them equal).
def print_summary(run, experiment_name, metrics) -> None:
    """The scores, the store, and where to look at the run."""
    store = mlflow.get_tracking_uri()
    print(f"Run {run.info.run_name!r} logged to experiment {experiment_name!r}")
    print(f"  run id: {run.info.run_id}")
    for name, value in metrics.items():
        print(f"  {name:<15}{value:.4f}")
    print(f"  store:  {store}")
    where = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    if store.startswith("http"):
        print(f"See it: open {store}/{where}")
    else:  # `make ui` in the repository; a copy has no Makefile: MLflow's UI, lightly set up
        ui = f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri '{store}' --workers 1 --uvicorn-opts '--lifespan off'"
        ui = "make ui" if (HERE / "Makefile").exists() else ui
        print(f"See it: run `{ui}`, then open http://127.0.0.1:5000/{where}")


# --- The command line: every knob above, with its default ---------------------------------


def layer_sizes(text: str) -> tuple[int, ...]:
    """'64' is one hidden layer of 64 neurons; '64,32' is two layers."""
    return tuple(int(size) for size in text.split(","))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train a scaled neural network on a CSV and log the run to MLflow.",
        epilog="Example: python train_ann.py --hidden-layers 64,32 --alpha 0.01",
    )
    network = parser.add_argument_group("neural network hyperparameters")
    network.add_argument(
        "--hidden-layers",
        type=layer_sizes,
        default=(64,),
        metavar="SIZES",
        help="neurons per hidden layer, comma-separated: 64 or 64,32 (default: 64)",
    )
    network.add_argument(
        "--activation",
        choices=["relu", "tanh", "logistic"],
        default="relu",
        help="non-linearity between layers (default: %(default)s)",
    )
    network.add_argument(
        "--alpha",
        type=float,
        default=1e-4,
        help="L2 penalty on the weights; raise it when the network overfits (default: %(default)s)",
    )
    network.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        metavar="RATE",
        help="Adam's initial step size; too high oscillates, too low never arrives "
        "(default: %(default)s)",
    )
    network.add_argument(
        "--max-iter",
        type=int,
        default=500,
        metavar="N",
        help="most passes over the training data; scikit-learn warns if the network has not "
        "converged by then (default: %(default)s)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=DATA,
        metavar="PATH",
        help="CSV file with one row per example (default: data/breast_cancer_train.csv)",
    )
    data.add_argument(
        "--target",
        default=TARGET,
        metavar="COLUMN",
        help="column holding the label to predict; every other column is a feature: numbers, "
        "text categories or booleans, empty cells allowed (default: %(default)s)",
    )
    data.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COLUMN",
        help="leave a column out of the features: an ID, or a leak of the label (repeat it for "
        "several)",
    )
    data.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COLUMN",
        help="keep a column that looks like an ID (a different value in every row) as a "
        "feature on purpose",
    )
    data.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="share of rows held out, stratified by label, to score the model (default: %(default)s)",
    )
    tracking = parser.add_argument_group("tracking")
    tracking.add_argument(
        "--experiment-name",
        default=EXPERIMENT,
        metavar="NAME",
        help="experiment that groups this run with its siblings; created on first use "
        "(default: %(default)s)",
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
    strict(parser)  # not the lesson: ranges checked, and a bad flag printed as one line
    return parser.parse_args(argv)


# --- Not the lesson: the safety nets in input_checks.py, server_errors.py and offline.py ---
try:
    from input_checks import check_training_csv, strict
    from offline import keep_if_logging_fails
    from server_errors import check_tracking_server, exit_on_error
except ModuleNotFoundError:  # this file copied alone: Python's own errors, nothing kept

    def no_safety_net(*_):
        return contextlib.nullcontext()

    check_training_csv = check_tracking_server = strict = keep_if_logging_fails = no_safety_net

    def exit_on_error(main):
        main()


if __name__ == "__main__":
    exit_on_error(main)
