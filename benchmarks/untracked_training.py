"""train_rfc.py without MLflow: the baseline that `make bench` measures tracking against.

The same imports (train_rfc.py itself is imported, so mlflow, scikit-learn, skops and the
safety nets load as they do for a tracked run), flags, data, split, fit and test scores, printed
instead of logged: the same pipeline (`pipeline()`, which benchmarks/pipeline_cost.py also
uses). No run, no store, no artifacts.

    python benchmarks/untracked_training.py [train_rfc.py flags]
"""

import sys

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import train_rfc


def main():
    args = train_rfc.parse_args(sys.argv[1:])
    X = pd.read_csv(args.data).drop(columns=args.drop)
    y = X.pop(args.target).astype(str)
    numbers = X.select_dtypes("number").columns.tolist()
    X[numbers] = X[numbers].astype("float64")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    model = pipeline(
        numbers,
        [name for name in X if name not in numbers],
        RandomForestClassifier(
            n_estimators=args.n_estimators,
            max_depth=args.max_depth,
            min_samples_leaf=args.min_samples_leaf,
            max_features=args.max_features,
            random_state=args.seed,
        ),
    ).fit(X_train, y_train)
    y_pred = model.predict(X_test)
    metrics = train_rfc.held_out_scores(y_test, y_pred, model.predict_proba(X_test), model.classes_)
    for name, value in metrics.items():
        print(f"{name:<15}{value:.4f}")


def pipeline(numbers, categories, estimator) -> Pipeline:
    """train_rfc.py's model: its preparation of a raw table, then `estimator`."""
    prepare = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), numbers),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categories),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


if __name__ == "__main__":
    main()
