"""Train a small neural network (scikit-learn's MLPClassifier) and track the run with MLflow.

What you learn here: the same tracking block as `train_rfc.py`, for a second model family in a
second experiment. An experiment groups the runs you want to compare with each other; a run is
one execution with one set of hyperparameters. The model is a pipeline (scale, then the
network), so the logged model takes the raw CSV columns and scales them itself: whoever calls
it later cannot forget that step.

Run it (from any directory; runs land in the repository's mlflow.db and mlruns/):

    python train_ann.py
    python train_ann.py --hidden-layers 64,32 --alpha 0.01 --run-name two-layers
    python train_ann.py --data my.csv --target label

Then run `make ui`, open http://127.0.0.1:5000, pick the experiment
"breast-cancer-neural-network" and compare test_f1 against alpha.
"""

import argparse

import mlflow
import sklearn
import skops
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.models import infer_signature
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import tutorial_plumbing as plumbing

# skops refuses to load any type it has not been told to trust. The fitted pipeline needs
# exactly one beyond numpy and sklearn's own estimators: the Adam optimiser's saved state.
SKOPS_TRUSTED_TYPES = ["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"]


def layer_sizes(text: str) -> tuple[int, ...]:
    """'64' is one hidden layer of 64 neurons; '64,32' is two layers."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"must be sizes >= 1 separated by commas, got {text!r}")
    return sizes


def parse_args(argv=None):
    parser = plumbing.ArgumentParser(
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
        type=plumbing.non_negative_float,
        default=1e-4,
        help="L2 penalty on the weights; raise it when the network overfits (default: %(default)s)",
    )
    network.add_argument(
        "--learning-rate",
        type=plumbing.positive_float,
        default=1e-3,
        metavar="RATE",
        help="Adam's initial step size; too high oscillates, too low never arrives "
        "(default: %(default)s)",
    )
    network.add_argument(
        "--max-iter",
        type=plumbing.positive_int,
        default=500,
        metavar="N",
        help="most passes over the training data; scikit-learn warns if the network has not "
        "converged by then (default: %(default)s)",
    )
    plumbing.add_common_arguments(parser, default_experiment=plumbing.ANN_EXPERIMENT)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    X, y = plumbing.load_dataset(args.data, args.target)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    network = MLPClassifier(
        hidden_layer_sizes=args.hidden_layers,
        activation=args.activation,
        alpha=args.alpha,
        learning_rate_init=args.learning_rate,
        max_iter=args.max_iter,
        random_state=args.seed,
    )
    # Neural networks train badly on unscaled features; the scaler travels with the model.
    model = Pipeline([("scale", StandardScaler()), ("mlp", network)])
    layers = "x".join(map(str, args.hidden_layers))
    run_name = args.run_name or f"mlp-{layers}-alpha{args.alpha:g}"

    plumbing.use_tutorial_store()
    experiment_id = plumbing.resolve_experiment(args.experiment_name, args.experiment_id)

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"model_family": "neural_network", "script": "train_ann.py"})
        # Batch the params: against a tracking server every call is one HTTP request.
        mlflow.log_params(
            {
                **network.get_params(),
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
        # A tag you can filter on later: `tags.converged = "False"` finds the runs to redo.
        mlflow.set_tag("converged", network.n_iter_ < args.max_iter)
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
