"""Re-log an old pickled scikit-learn model in skops format, once, on purpose.

What you learn here: MLflow 2 saved scikit-learn models as pickles (`model.pkl`). Unpickling
runs whatever code the file holds, so this tutorial loads only skops models, and only the types
a list you control allows. A model you trained yourself with MLflow 2 is worth keeping, though.
This script turns it into the kind the tutorial loads, with your explicit consent:

1. it reads the model's `MLmodel` file first (no unpickling): a scikit-learn model? pickled?
   by which scikit-learn?
2. without --i-trust-this-pickle it stops there, saying why;
3. with it, it unpickles the model once, asks skops which types the model needs
   (`skops.io.get_untrusted_types`), and logs it again with `mlflow.sklearn.log_model` in
   skops format, trusting exactly those types, in a new run next to the old one;
4. it registers the new model and moves the old version's aliases (`champion`...) onto it.

The old run, its pickle and its registered version stay as they were: nothing is rewritten.

    python old-stores/relog_pickled_model.py models:/breast-cancer-classifier@champion
    python old-stores/relog_pickled_model.py models:/breast-cancer-classifier@champion --i-trust-this-pickle
    python old-stores/relog_pickled_model.py runs:/<RUN_ID>/model --i-trust-this-pickle   # not registered

Then `python predict.py` serves the same predictions from the skops copy, and the UI shows the
new run, named after the old one with `-skops`, tagged `relogged_from`.
"""

import argparse
import logging
import os
from pathlib import Path

import mlflow
import sklearn
import skops.io
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

HERE = Path(__file__).resolve().parent
# The only formats this script will unpickle, and only with the flag below.
PICKLE_FORMATS = {"pickle", "cloudpickle"}
CONSENT_FLAG = "--i-trust-this-pickle"


def main(argv=None):
    args = parse_args(argv)
    if "MLFLOW_TRACKING_URI" not in os.environ:  # the tutorial's store, as the other scripts
        mlflow.set_tracking_uri(f"sqlite:///{HERE.parent / 'mlflow.db'}")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # MLflow's routine INFO lines

    # 1. The MLmodel file only: what is this model, and how was it saved?
    try:
        info = mlflow.models.get_model_info(args.model_uri)
    except MlflowException as exc:
        raise SystemExit(
            f"error: cannot read {args.model_uri}: {str(exc).splitlines()[0]}"
        ) from None
    flavor = info.flavors.get("sklearn")
    if flavor is None:
        raise SystemExit(
            f"error: {args.model_uri} is not a scikit-learn model (flavors: "
            f"{', '.join(info.flavors)}); this script re-logs scikit-learn models only"
        )
    serialization = flavor.get("serialization_format", "pickle")
    if serialization not in PICKLE_FORMATS:
        print(f"{args.model_uri} is already saved as {serialization}: nothing to do")
        return
    saved_by = flavor.get("sklearn_version")

    # 2. Unpickling runs any code the file holds: only on the reader's word.
    if not args.i_trust_this_pickle:
        raise SystemExit(
            f"error: {args.model_uri} is a {serialization} file (scikit-learn {saved_by}), and "
            f"unpickling it runs any code it holds; if you trust who made it, re-log it in skops "
            f"once with: python old-stores/relog_pickled_model.py {args.model_uri} {CONSENT_FLAG}"
        )
    # A pickle loaded by another scikit-learn may predict differently, silently.
    if saved_by != sklearn.__version__:
        raise SystemExit(
            f"error: {args.model_uri} was pickled by scikit-learn {saved_by}, this environment "
            f"has {sklearn.__version__}; run this script where scikit-learn=={saved_by} is "
            "installed, so that the model is read as it was written"
        )

    # 3. Load once, ask skops what the model is made of, log it again in skops.
    model = mlflow.sklearn.load_model(args.model_uri)
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    client = MlflowClient()
    old_run = client.get_run(info.run_id)
    mlflow.set_experiment(experiment_id=old_run.info.experiment_id)
    with mlflow.start_run(run_name=f"{old_run.info.run_name}-skops") as run:
        mlflow.set_tags({"relogged_from": args.model_uri, "relogged_from_run": info.run_id})
        mlflow.log_params(old_run.data.params)
        model_info = mlflow.sklearn.log_model(
            model, name="model", signature=info.signature, skops_trusted_types=trusted
        )
        # The old run's final scores, on the new model too: the model is the same object, and
        # register_model.py ranks logged models by them.
        mlflow.log_metrics(old_run.data.metrics, model_id=model_info.model_id)
    print(
        f"Re-logged {args.model_uri} ({serialization}) in skops format: run "
        f"{run.info.run_name!r} ({run.info.run_id}), trusting {len(trusted)} types"
    )

    # 4. A registered version gets a successor, and its aliases move to it.
    old_version = registered_version(client, args.model_uri, info)
    if old_version is None:
        return
    version = client.create_model_version(
        old_version.name,
        source=model_info.model_uri,
        run_id=run.info.run_id,
        model_id=model_info.model_id,
        tags={"relogged_from_version": old_version.version},
    )
    for alias in old_version.aliases:
        client.set_registered_model_alias(old_version.name, alias, version.version)
    moved = f"; moved {', '.join(old_version.aliases)} to it" if old_version.aliases else ""
    print(
        f"Registered {old_version.name} version {version.version} "
        f"(from version {old_version.version}){moved}"
    )


def registered_version(client, model_uri, info):
    """The registry version behind models:/name/version or models:/name@alias, else None."""
    if not model_uri.startswith("models:/"):
        return None
    name, _, _ = model_uri.removeprefix("models:/").partition("/")
    name = name.partition("@")[0]
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.run_id == info.run_id and version.source.rstrip("/").endswith(
            info.artifact_path
        ):
            return client.get_model_version(name, version.version)  # with its aliases
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Re-log a pickled scikit-learn model (MLflow 2) in skops format, on purpose.",
        epilog=f"Example: python old-stores/relog_pickled_model.py models:/breast-cancer-classifier@champion {CONSENT_FLAG}",
    )
    parser.add_argument(
        "model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/model"
    )
    parser.add_argument(
        CONSENT_FLAG,
        action="store_true",
        help="unpickle this model once: only for a model whose maker you trust (yourself)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
