"""An old tutorial, run with MLflow 2: the `./mlruns` store many readers arrive with.

What this is: the way the classic MLflow 2 tutorials trained, with no store set, so MLflow 2
wrote everything into a `./mlruns` folder next to where it ran. Run it with MLflow 2 (its
pins are in requirements/mlflow2.txt) to make an old store to practise the migration on:

    python migration/old_tutorial_mlflow2.py --folder old-project

It writes, as those tutorials did: two experiments with three runs each (params, tags, metrics
with a history of several steps, a confusion-matrix PNG, a pickled scikit-learn model with its
signature), one registered model with two versions and the alias `champion`, and one deleted run.
Do not run it with MLflow 3: MLflow 3 no longer writes `./mlruns` (that is the point).
"""

import argparse
import os
from pathlib import Path

import mlflow
import pandas as pd
import seaborn as sns
import sklearn
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DATA = Path(__file__).resolve().parents[1] / "data" / "breast_cancer_train.csv"
MODEL_NAME = "breast-cancer-classifier"
RUNS = {
    "breast-cancer-random-forest": [
        ("rf-small", lambda: RandomForestClassifier(n_estimators=10, random_state=1)),
        ("rf-default", lambda: RandomForestClassifier(n_estimators=50, random_state=1)),
        (
            "rf-shallow",
            lambda: RandomForestClassifier(n_estimators=20, max_depth=2, random_state=1),
        ),
    ],
    "breast-cancer-neural-network": [
        (
            "mlp-small",
            lambda: make_pipeline(
                StandardScaler(), MLPClassifier((8,), solver="lbfgs", max_iter=2000, random_state=1)
            ),
        ),
        (
            "mlp-wide",
            lambda: make_pipeline(
                StandardScaler(),
                MLPClassifier((32,), solver="lbfgs", max_iter=2000, random_state=1),
            ),
        ),
        (
            "mlp-deleted",
            lambda: make_pipeline(
                StandardScaler(), MLPClassifier((4,), solver="lbfgs", max_iter=2000, random_state=1)
            ),
        ),
    ],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=".", help="where ./mlruns goes (default: here)")
    folder = Path(parser.parse_args().folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # no tracking URI set: MLflow 2 writes ./mlruns here, as the old tutorials did

    frame = pd.read_csv(DATA)
    X = frame.drop(columns="diagnosis").astype("float64")
    y = frame["diagnosis"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=42)

    model_runs = []
    for experiment, runs in RUNS.items():
        mlflow.set_experiment(experiment)
        for run_name, make_model in runs:
            with mlflow.start_run(run_name=run_name) as run:
                model = make_model()
                mlflow.set_tags({"author": "old-tutorial", "family": experiment.split("-")[-1]})
                mlflow.log_params(
                    {
                        "estimator": type(model).__name__,
                        **dict(list(model.get_params().items())[:4]),
                    }
                )
                # A history: the score after each quarter of the training rows.
                for step, share in enumerate((0.25, 0.5, 0.75, 1.0)):
                    rows = int(len(X_train) * share)
                    model.fit(X_train[:rows], y_train[:rows])
                    mlflow.log_metric(
                        "train_accuracy", model.score(X_train[:rows], y_train[:rows]), step=step
                    )
                y_pred = model.predict(X_test)
                mlflow.log_metrics(
                    {
                        "test_accuracy": accuracy_score(y_test, y_pred),
                        "test_f1": f1_score(y_test, y_pred, pos_label="malignant"),
                    }
                )
                figure = Figure()
                sns.heatmap(
                    confusion_matrix(y_test, y_pred), annot=True, fmt="d", ax=figure.subplots()
                )
                mlflow.log_figure(figure, "confusion_matrix.png")
                # MLflow 2's default: the model pickled (cloudpickle), the artifact path positional.
                # pip_requirements given: MLflow 2 would otherwise load the model in a subprocess to
                # guess them (seconds per model).
                mlflow.sklearn.log_model(
                    model,
                    "model",
                    signature=infer_signature(X_train, y_pred),
                    pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                )
                model_runs.append(run)
    client = mlflow.MlflowClient()
    deleted = model_runs.pop()  # mlp-deleted: deleted, as readers delete a failed try
    client.delete_run(deleted.info.run_id)

    # Two versions of the registered model, and the alias MLflow 2.3+ had.
    for run in model_runs[:2]:
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL_NAME)
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    print(
        f"MLflow {mlflow.__version__} wrote {folder / 'mlruns'}: 6 runs (1 deleted), "
        f"{MODEL_NAME} versions 1 and 2, champion -> version {version.version}"
    )


if __name__ == "__main__":
    main()
