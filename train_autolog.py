"""The same forest with `mlflow.sklearn.autolog()`: one line of MLflow, and what you give up.

What you learn here: autologging patches scikit-learn's `fit` so that every fit logs its params,
training metrics and model with no other MLflow call. A GridSearchCV becomes a parent run with
one child per setting. Compare the run with `train_rfc.py`'s in docs/07-tune-and-autolog.md:
autolog scores the model on the rows it trained on, and stores the model with cloudpickle.

    python train_autolog.py
"""

import os
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, train_test_split

HERE = Path(__file__).resolve().parent
EXPERIMENT = "breast-cancer-autolog"

if "MLFLOW_TRACKING_URI" not in os.environ:
    mlflow.set_tracking_uri(f"sqlite:///{HERE / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = (HERE / "mlruns" / EXPERIMENT).as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
mlflow.set_experiment(EXPERIMENT)
# Everything below is logged by this one call: no start_run, no log_* call.
mlflow.sklearn.autolog(pos_label="malignant")

features = pd.read_csv(HERE / "data" / "breast_cancer_train.csv")
labels = features.pop("diagnosis")
features = features.astype("float64")  # autolog infers the signature: float, not int, columns
X_train, X_test, y_train, y_test = train_test_split(
    features, labels, test_size=0.2, stratify=labels, random_state=42
)
search = GridSearchCV(
    RandomForestClassifier(random_state=42),
    {"n_estimators": [50, 100], "max_depth": [None, 5]},
    scoring="f1_macro",
    cv=3,
)
search.fit(X_train, y_train)
# Scoring on the test rows after fit: autolog logs it as a metric of the same run.
print(f"test score {search.score(X_test, y_test):.4f}; run {mlflow.last_active_run().info.run_id}")
