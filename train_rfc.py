"""Train a random forest and track the run with MLflow.

What you learn here: how one `with mlflow.start_run():` block records everything you need to
compare, reproduce and deploy a model later: its hyperparameters, its test scores, a picture of
its mistakes (the confusion matrix), the data it was trained on, and the model itself, stored
safely with skops and described by a signature.

Run it (from any directory; runs land in the repository's mlflow.db and mlruns/):

    python train_rfc.py
    python train_rfc.py --n-estimators 50 --max-depth 3 --run-name shallow-forest
    python train_rfc.py --data my.csv --target label

Then run `make ui`, open http://127.0.0.1:5000, pick the experiment
"breast-cancer-random-forest" and tick a few runs to compare test_f1 against n_estimators.
"""

import argparse

import mlflow
import sklearn
import skops
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import tutorial_plumbing as plumbing

# skops refuses to load any type it has not been told to trust. A forest needs exactly one
# beyond numpy and sklearn's own estimators: the fitted tree structure.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def max_features(text: str) -> str | float:
    """'sqrt', 'log2', or the fraction of features each split may consider."""
    if text in ("sqrt", "log2"):
        return text
    value = plumbing.number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be sqrt, log2 or a fraction in (0, 1], got {text}")
    return value


def parse_args(argv=None):
    parser = plumbing.ArgumentParser(
        description="Train a random forest on a CSV and log the run to MLflow.",
        epilog="Example: python train_rfc.py --n-estimators 300 --max-depth 4",
    )
    forest = parser.add_argument_group("random forest hyperparameters")
    forest.add_argument(
        "--n-estimators",
        type=plumbing.positive_int,
        default=100,
        metavar="N",
        help="number of trees; more trees vote more stably but train slower (default: %(default)s)",
    )
    forest.add_argument(
        "--max-depth",
        type=plumbing.positive_int,
        default=None,
        metavar="D",
        help="deepest a tree may grow; small values underfit, no limit lets trees memorise "
        "the training rows (default: no limit)",
    )
    forest.add_argument(
        "--min-samples-leaf",
        type=plumbing.positive_int,
        default=1,
        metavar="N",
        help="fewest training rows a leaf may hold; raise it to smooth the trees (default: %(default)s)",
    )
    forest.add_argument(
        "--max-features",
        type=max_features,
        default="sqrt",
        metavar="F",
        help="features tried at each split: sqrt, log2 or a fraction such as 0.5; fewer makes "
        "trees more different from each other (default: %(default)s)",
    )
    plumbing.add_common_arguments(parser, default_experiment=plumbing.RFC_EXPERIMENT)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    X, y = plumbing.load_dataset(args.data, args.target)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        min_samples_leaf=args.min_samples_leaf,
        max_features=args.max_features,
        random_state=args.seed,
    )
    run_name = args.run_name or f"rf-{args.n_estimators}trees-depth{args.max_depth or 'any'}"

    plumbing.use_tutorial_store()
    experiment_id = plumbing.resolve_experiment(args.experiment_name, args.experiment_id)

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"model_family": "random_forest", "script": "train_rfc.py"})
        # Batch the params: against a tracking server every call is one HTTP request.
        mlflow.log_params(
            {
                **model.get_params(),
                "data": args.data.name,
                "target": args.target,
                "test_size": args.test_size,
            }
        )
        # Record which rows trained the model; the UI shows it under "Datasets used".
        training_data = mlflow.data.from_pandas(
            X_train.assign(**{args.target: y_train}),
            source=LocalArtifactDatasetSource(str(args.data.resolve())),
            targets=args.target,
            name=args.data.stem,
        )
        mlflow.log_input(training_data, context="training")

        model.fit(X_train, y_train)
        y_pred = model.predict(X_test)
        metrics = plumbing.classification_metrics(
            y_test, y_pred, model.predict_proba(X_test), model.classes_
        )
        # log_figure writes the PNG straight into the run: no file left in your directory.
        mlflow.log_figure(
            plumbing.confusion_matrix_figure(y_test, y_pred, model.classes_, title=run_name),
            "confusion_matrix.png",
        )
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            # The signature lets the server and `predict.py` reject malformed input.
            signature=infer_signature(X_train, y_pred),
            input_example=X_train.head(3),
            # Listing the requirements skips MLflow's slow inference of them.
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
            ],
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        # The scores go to the run and, through model_id, to the model it logged: the model's
        # page then shows them, and search_logged_models() can rank models by them.
        mlflow.log_metrics(metrics, model_id=model_info.model_id)

    plumbing.print_run_summary(run, metrics)


if __name__ == "__main__":
    plumbing.exit_on_error(main)
