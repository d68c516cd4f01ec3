"""The training of train_rfc.py / train_ann.py without MLflow: the baseline tracking is measured against.

Same imports (the training script's module is imported, so mlflow, scikit-learn, skops and the
guardrails load exactly as they do for the tracked run), same flags, same data, same split, same
fit and the same test scores, printed instead of logged. No run, no store, no artifacts.

    python benchmarks/untracked_training.py rfc [train_rfc.py flags]
    python benchmarks/untracked_training.py ann [train_ann.py flags]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def random_forest(args):
    from sklearn.ensemble import RandomForestClassifier  # as train_rfc.py imports it

    return RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        min_samples_leaf=args.min_samples_leaf,
        max_features=args.max_features,
        random_state=args.seed,
    )


def neural_network(args):
    # As train_ann.py imports them (only the chosen family's modules are loaded).
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    network = MLPClassifier(
        hidden_layer_sizes=args.hidden_layers,
        activation=args.activation,
        alpha=args.alpha,
        learning_rate_init=args.learning_rate,
        max_iter=args.max_iter,
        random_state=args.seed,
    )
    return Pipeline([("scale", StandardScaler()), ("mlp", network)])


def main():
    family, *flags = sys.argv[1:]
    script = {"rfc": "train_rfc", "ann": "train_ann"}[family]
    # Importing the tracked script loads the very same modules (mlflow included) the same way.
    module = __import__(script)
    args = module.parse_args(flags)
    model = (random_forest if family == "rfc" else neural_network)(args)
    X = pd.read_csv(args.data)
    y = X.pop(args.target).astype(str)
    X = X.astype("float64")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    metrics = module.test_scores(y_test, y_pred, model.predict_proba(X_test), model.classes_)
    for name, value in metrics.items():
        print(f"{name:<15}{value:.4f}")


if __name__ == "__main__":
    main()
