"""Tune a random forest: one parent run for the search, one nested child run per trial.

What you learn here: how to keep a hyperparameter search tidy in MLflow, and how to tune
without leaking the test set.

- Each trial is a child run (`mlflow.start_run(nested=True)`) holding its settings and a
  cross-validated F1 computed on the **training rows only**: the trials are compared with each
  other without ever looking at the held-out test rows.
- The parent run is the search's result. The best setting is refitted on all training rows and
  scored on the test rows, once: the parent holds that setting's params, the test metrics, the
  confusion matrix and the model, and its tags name the best child. Scoring every trial on the
  test rows and keeping the best would make that test score an optimistic guess, not a measure.

Run it (from any directory: the runs land in mlflow.db and mlruns/ next to this file):

    python tune_rfc.py                 # 10 trials
    python tune_rfc.py --trials 30

Then `make ui`: in "breast-cancer-random-forest" the search is one row; the + beside it opens
its trials. From Python, the children are the runs whose tag `mlflow.parentRunId` is the
parent's id.
"""

import argparse
import contextlib
import os
from importlib.metadata import distribution
from pathlib import Path

import mlflow
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    make_scorer,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import (
    ParameterSampler,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

HERE = Path(__file__).resolve().parent
EXPERIMENT = "breast-cancer-random-forest"
# 455 of the dataset's 569 rows. The other 114 (data/breast_cancer_eval.csv) are held back:
# no training run sees them, so register_model.py's promotion gate can compare models on them.
DATA = HERE / "data" / "breast_cancer_train.csv"
TARGET = "diagnosis"
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "sklearn.tree._tree.Tree"]  # as in train_rfc.py
# What the logged model imports to load and serve. pinned_requirements() below logs them and
# all they depend on at the versions installed here: the whole environment, pinned.
MODEL_PACKAGES = ["mlflow", "scikit-learn", "skops", "pandas"]
# The search space: the forest's main knobs. ParameterSampler draws settings from it at random,
# which finds good settings in fewer trials than trying the whole grid (4 x 4 x 3 x 3 = 144).
# The names are the pipeline's: `model__max_depth` is max_depth of its step named "model" (the
# forest), so one set_params() call sets them, and the preparation is refitted in every fold.
SEARCH_SPACE = {
    "model__n_estimators": [25, 50, 100, 200],
    "model__max_depth": [None, 3, 5, 8],
    "model__min_samples_leaf": [1, 2, 4],
    "model__max_features": ["sqrt", "log2", 0.5],
}


def main(argv=None):
    args = parse_args(argv)

    # The table and the pipeline as train_rfc.py makes them (see there why).
    check_training_csv(args.data, args.target, args.test_size, args.drop, args.keep)
    features = pd.read_csv(args.data).drop(columns=args.drop)
    labels = features.pop(args.target).astype(str)
    numbers = features.select_dtypes("number").columns.tolist()  # booleans are not numbers
    categories = [name for name in features if name not in numbers]
    features[numbers] = features[numbers].astype("float64")
    prepare = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), numbers),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categories),
        ]
    )
    # The same split as train_rfc.py (same seed): the test rows are put aside here, and only
    # the parent run below ever scores on them.
    X_train, X_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, stratify=labels, random_state=args.seed
    )
    classes = sorted(labels.unique())
    # F1 of the positive class (the second, "malignant" here), as train_rfc.py scores it.
    if len(classes) == 2:
        cv_scoring = make_scorer(f1_score, pos_label=classes[1])
    else:
        cv_scoring = make_scorer(f1_score, average="macro")
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    trials = list(ParameterSampler(SEARCH_SPACE, n_iter=args.trials, random_state=args.seed))
    run_name = args.run_name or f"rf-search-{args.trials}trials"
    tags = {"model_family": "random_forest", "script": "tune_rfc.py"}

    if "MLFLOW_TRACKING_URI" not in os.environ:
        mlflow.set_tracking_uri(f"sqlite:///{HERE / 'mlflow.db'}")
        if mlflow.get_experiment_by_name(args.experiment_name) is None:
            artifacts = (HERE / "mlruns" / args.experiment_name).as_uri()
            mlflow.create_experiment(args.experiment_name, artifact_location=artifacts)
    check_tracking_server()  # a server that is down: one line in seconds, not minutes of retries
    mlflow.set_experiment(args.experiment_name)

    with mlflow.start_run(run_name=run_name) as parent:
        mlflow.set_tags(tags)
        cv_f1 = {}  # each trial's child run, and its cross-validated F1
        for number, params in enumerate(trials, start=1):
            with mlflow.start_run(run_name=f"trial-{number:02d}", nested=True) as child:
                mlflow.log_params(params)
                forest = RandomForestClassifier(random_state=args.seed)
                pipeline = Pipeline([("prepare", prepare), ("model", forest)]).set_params(**params)
                # n_jobs: the folds train in parallel, one per core.
                scores = cross_val_score(
                    pipeline, X_train, y_train, cv=folds, scoring=cv_scoring, n_jobs=args.n_jobs
                )
                mlflow.log_metrics({"cv_f1": scores.mean(), "cv_f1_std": scores.std()})
            cv_f1[child.info.run_id] = (scores.mean(), params, child.info.run_name)
            print(f"  trial {number:2d}  cv_f1 {scores.mean():.4f}  {params}")

        # The parent is the search's result: the best trial's setting, refitted on all the
        # training rows, and the one and only look at the test rows.
        best = max(cv_f1, key=lambda run_id: cv_f1[run_id][0])  # the first of equals
        best_cv_f1, best_params, best_name = cv_f1[best]
        forest = RandomForestClassifier(random_state=args.seed)
        model = Pipeline([("prepare", prepare), ("model", forest)]).set_params(**best_params)
        tags.update(best_child_run_id=best, best_child=best_name)
        # The forest's own names, as train_rfc.py logs them: the search ranks beside its runs.
        params = {**forest.get_params(), "trials": args.trials, "cv_folds": args.folds}
        params.update(data=args.data.name, target=args.target, test_size=args.test_size)
        params.update(
            numeric_columns=", ".join(numbers) or "(none)",
            category_columns=", ".join(categories) or "(none)",
            dropped_columns=", ".join(args.drop) or "(none)",
        )
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        model.fit(X_train, y_train)
        y_pred = model.predict(X_test)
        metrics = held_out_scores(y_test, y_pred, model.predict_proba(X_test), model.classes_)
        figure = confusion_matrix_figure(y_test, y_pred, model.classes_, title=run_name)
        model_options = dict(
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
        run_metrics = {**metrics, "cv_f1": best_cv_f1}  # and the score that chose the winner

        # Should the tracking server go away now, the winner is kept (see train_rfc.py).
        with keep_if_logging_fails(parent, model, params, tags, run_metrics, figure, model_options):
            mlflow.log_figure(figure, "confusion_matrix.png")
            model_info = mlflow.sklearn.log_model(model, name="model", **model_options)
            mlflow.log_metrics(run_metrics, model_id=model_info.model_id)

    print(f"Search {run_name!r} logged to experiment {args.experiment_name!r}")
    print(f"  parent run id: {parent.info.run_id}  ({args.trials} child runs)")
    print(f"  best trial:    {best_name}  cv_f1 {best_cv_f1:.4f}  {best_params}")
    for name, value in metrics.items():
        print(f"  {name:<15}{value:.4f}")


# A meant copy: train_rfc.py and train_ann.py hold the same function, so that each script runs
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


# A meant copy: train_rfc.py and train_ann.py hold the same function, so that each script runs
# copied alone (tests/unit/test_meant_copies.py keeps them equal).
def held_out_scores(y_true, y_pred, y_proba, classes) -> dict[str, float]:
    """The same five scores as train_rfc.py, so that the search's result ranks beside its runs."""
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


# A meant copy: train_rfc.py and train_ann.py hold the same function, so that each script runs
# copied alone (tests/unit/test_meant_copies.py keeps them equal).
def confusion_matrix_figure(y_true, y_pred, classes, title: str) -> Figure:
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


# --- The command line -----------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Search random-forest settings by cross-validation on the training rows; "
        "log one parent run and a child run per trial.",
        epilog="Example: python tune_rfc.py --trials 30",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=10,
        metavar="N",
        help="settings to try, drawn at random from the search space (default: %(default)s)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=5,
        metavar="K",
        help="cross-validation folds on the training rows (default: %(default)s)",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=-1,
        metavar="N",
        help="folds trained at once; -1 uses every core (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA,
        metavar="PATH",
        help="CSV file with one row per example (default: data/breast_cancer_train.csv)",
    )
    parser.add_argument(
        "--target",
        default=TARGET,
        metavar="COLUMN",
        help="column holding the label (default: %(default)s)",
    )
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COLUMN",
        help="leave a column out of the features, as in train_rfc.py (repeat it for several)",
    )
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COLUMN",
        help="keep a column that looks like an ID as a feature, as in train_rfc.py",
    )
    parser.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        metavar="FRACTION",
        help="share of rows held out for the final score (default: %(default)s)",
    )
    parser.add_argument(
        "--experiment-name",
        default=EXPERIMENT,
        metavar="NAME",
        help="experiment of the search (default: %(default)s)",
    )
    parser.add_argument(
        "--run-name",
        metavar="NAME",
        help="name of the parent run (default: rf-search-<N>trials)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed for the split, the folds, the sampled settings and the forests "
        "(default: %(default)s)",
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
