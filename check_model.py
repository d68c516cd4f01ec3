"""Trust what you load: check a model's MLmodel before anything is deserialized.

What you learn here: loading a model runs what its files say. A pickle is a program, run as it
loads. skops stores data instead and rebuilds only the types it trusts, but MLflow hands skops
the list of types to trust from the model's own MLmodel file (`skops_trusted_types`), and that
list was written by whoever logged the model. So skops alone does not make a foreign model safe.

The scripts that load a model (predict.py, predict_spark.py, register_model.py's gate and
serve_model.sh) therefore first read its MLmodel, a YAML file, with
`mlflow.models.get_model_info`, which deserializes nothing. They refuse, in one line, a model
that is not a scikit-learn model in skops format, that ships code for the Python path, or that
asks to trust a type TRUSTED_TYPES below does not list. That list is yours, not the model's.

What it protects against: a tampered or foreign model in your registry. What it does not: a
model you trained yourself on poisoned data, or anyone who can change these scripts.

    python check_model.py                                       # the champion
    python check_model.py models:/breast-cancer-classifier/2    # any model URI
"""

import sys

import mlflow

import tutorial_store

# The types a model may ask skops to trust beyond numpy's arrays and scikit-learn's estimators
# (the pipeline, its column transformer, imputer and one-hot encoder need nothing more). Each is
# data, rebuilt from its saved fields; none runs code as it loads. For a model of your own,
# train it yourself and ask skops which types it needs:
# skops.io.get_untrusted_types(data=skops.io.dumps(model)).
TRUSTED_TYPES = {
    # A number type's name ("float64"): the imputer notes the type it was fitted on.
    "numpy.dtype",
    # A fitted tree's arrays (splits, thresholds, leaf values): train_rfc.py, tune_rfc.py.
    "sklearn.tree._tree.Tree",
    # The optimiser's step sizes and moments, kept for warm starts: train_ann.py.
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
}


def check_model(model_uri: str):
    """Read the model's MLmodel; exit with one line unless it may be loaded. Returns its info."""
    info = mlflow.models.get_model_info(model_uri)  # the MLmodel file only: YAML, no model
    loader = info.flavors.get("python_function", {}).get("loader_module")
    sklearn = info.flavors.get("sklearn", {})
    serialization = sklearn.get("serialization_format")
    if loader != "mlflow.sklearn" or serialization != "skops":
        raise SystemExit(
            f"error: refusing {model_uri}: not a scikit-learn model in skops format (its MLmodel "
            f"says loader_module {loader}, serialization_format {serialization})"
        )
    if any(flavor.get("code") for flavor in info.flavors.values()):
        raise SystemExit(f"error: refusing {model_uri}: it ships code to put on the Python path")
    untrusted = sorted(set(sklearn.get("skops_trusted_types") or []) - TRUSTED_TYPES)
    if untrusted:
        raise SystemExit(
            f"error: refusing {model_uri}: it asks skops to trust {', '.join(untrusted)}, "
            "which TRUSTED_TYPES in check_model.py does not list"
        )
    return info


def main(argv=None):
    tutorial_store.use_store()  # mlflow.db at the repository root, or MLFLOW_TRACKING_URI's
    argv = sys.argv[1:] if argv is None else argv
    model_uri = argv[0] if argv else "models:/breast-cancer-classifier@champion"
    info = check_model(model_uri)
    trusted = ", ".join(info.flavors["sklearn"].get("skops_trusted_types") or []) or "nothing"
    print(f"{model_uri}: scikit-learn in skops format, trusting {trusted} beyond skops' defaults")


if __name__ == "__main__":
    from server_errors import exit_on_error  # one line, not a traceback, for a model not found

    exit_on_error(main)
