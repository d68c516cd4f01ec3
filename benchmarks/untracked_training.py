"""train_rfc.py without MLflow: the baseline that `make bench` measures tracking against.

The same imports (train_rfc.py itself is imported, so mlflow, scikit-learn, skops and the
safety nets load as they do for a tracked run), flags, data, split, fit and test scores, printed
instead of logged. No run, no store, no artifacts.

    python benchmarks/untracked_training.py [train_rfc.py flags]
"""

import sys

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import train_rfc


def main():
    args = train_rfc.parse_args(sys.argv[1:])
    X = pd.read_csv(args.data)
    y = X.pop(args.target).astype(str)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype("float64"), y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        min_samples_leaf=args.min_samples_leaf,
        max_features=args.max_features,
        random_state=args.seed,
    ).fit(X_train, y_train)
    y_pred = model.predict(X_test)
    metrics = train_rfc.held_out_scores(y_test, y_pred, model.predict_proba(X_test), model.classes_)
    for name, value in metrics.items():
        print(f"{name:<15}{value:.4f}")


if __name__ == "__main__":
    main()
