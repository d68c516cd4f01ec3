"""Promote the best run to the Model Registry, or roll the champion back to an earlier version.

What you learn here: the Model Registry gives a model a name and numbered versions, and an
alias such as `champion` is a movable pointer to one version. Whoever deploys the model asks
for `models:/breast-cancer-classifier@champion` and never needs to know the version number, so
promoting a better model, or rolling back to an older one, is one alias move. (MLflow's old
"stages" API did this job; it is deprecated, and aliases replace it.)

Run it after training:

    python register_model.py                     # best run by test_f1 across both experiments
    python register_model.py --metric test_roc_auc
    python register_model.py --version 1         # roll back: champion -> version 1
    python register_model.py --run-id <RUN_ID>   # promote one particular run

Then open "Model registry" in the UI's sidebar: the model, its versions, and the champion alias.
"""

import argparse
import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

try:  # one-line errors for MLflow's own exceptions; this file runs without it
    import guardrails
except ModuleNotFoundError:
    guardrails = None

HERE = Path(__file__).resolve().parent
# The experiments train_rfc.py and train_ann.py log to, and the name the champion is served by.
EXPERIMENTS = ["breast-cancer-random-forest", "breast-cancer-neural-network"]
MODEL_NAME = "breast-cancer-classifier"
# F1 balances missed tumours (recall) against false alarms (precision), where accuracy would
# hide a model that never says "malignant".
METRIC = "test_f1"

# The hyperparameters worth seeing in the leaderboard, for whichever model family a run used.
KEY_PARAMS = [
    "n_estimators",
    "max_depth",
    "min_samples_leaf",
    "hidden_layer_sizes",
    "alpha",
    "learning_rate_init",
]


def find_best_runs(experiment_names, metric, mode, top=5):
    """The `top` finished runs by `metric`, best first, among the runs that logged a model.

    MLflow 3 ranks logged models, not only runs: each training script logs its test scores on
    the model it logged (`model_id=`), and the store sorts the models by them, so we fetch only
    `top`. Only a run with a model can become the champion: the child runs of a search
    (`tune_rfc.py`) log a score but no model, and the search competes once, through its parent.
    """
    experiments = [mlflow.get_experiment_by_name(name) for name in experiment_names]
    experiment_ids = [e.experiment_id for e in experiments if e is not None]
    if not experiment_ids:
        return []
    models = mlflow.search_logged_models(
        experiment_ids=experiment_ids,
        # The comparison keeps models without this metric out of the ranking.
        filter_string=f"metrics.{metric} > -1e300",
        # Ties go to the older model, so re-running this never churns the champion.
        order_by=[
            {"field_name": f"metrics.{metric}", "ascending": mode == "min"},
            {"field_name": "creation_timestamp", "ascending": True},
        ],
        max_results=top * 2,  # a few spare, in case a run failed after logging its model
        output_format="list",
    )
    runs = [mlflow.get_run(model.source_run_id) for model in models]
    return [run for run in runs if run.info.status == "FINISHED"][:top]


def why_nothing_ranks(experiment_names, metric) -> str:
    """Say which of the three reasons it is: no experiment, no finished run, or no such metric."""
    store = mlflow.get_tracking_uri()
    experiments = [mlflow.get_experiment_by_name(name) for name in experiment_names]
    ids = [e.experiment_id for e in experiments if e is not None]
    if not ids:
        return (
            f"no experiment named {' or '.join(map(repr, experiment_names))} in {store}; "
            "train first: python train_rfc.py"
        )
    finished = mlflow.search_runs(
        experiment_ids=ids,
        filter_string="attributes.status = 'FINISHED'",
        max_results=1,
        output_format="list",
    )
    if not finished:
        return f"no finished run with metric {metric!r} in {', '.join(experiment_names)} ({store}); train one first: python train_rfc.py"
    logged = ", ".join(sorted(finished[0].data.metrics))
    return f"no finished run logged the metric {metric!r} (runs log: {logged})"


def print_leaderboard(runs, metric, experiment_names):
    print(
        f"Top {len(runs)} run{'s' * (len(runs) > 1)} with a logged model, by {metric}, "
        f"in {', '.join(experiment_names)}:"
    )
    names = {
        run.info.experiment_id: mlflow.get_experiment(run.info.experiment_id).name for run in runs
    }
    for rank, run in enumerate(runs, start=1):
        params = " ".join(f"{k}={run.data.params[k]}" for k in KEY_PARAMS if k in run.data.params)
        print(
            f"  {rank}. {run.data.metrics[metric]:.4f}  {names[run.info.experiment_id]:<30} "
            f"{run.info.run_name:<20} {params}"
        )


def register_run(client, run, model_name, metric):
    """Register the model that `run` logged as a new version, saying where it came from."""
    (logged_model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    experiment = mlflow.get_experiment(run.info.experiment_id).name
    value = run.data.metrics.get(metric)
    version = mlflow.register_model(
        f"models:/{logged_model.model_id}",
        model_name,
        tags={
            "source_experiment": experiment,
            "source_run_name": run.info.run_name,
            "ranked_by": metric,
            metric: f"{value:.4f}" if value is not None else "n/a",
        },
    )
    client.update_model_version(
        model_name,
        version.version,
        description=f"Run {run.info.run_name!r} ({run.info.run_id}) of experiment "
        f"{experiment!r}; {metric} = {value if value is not None else 'n/a'}.",
    )
    return version


def version_of_run(client, model_name, run_id):
    """The existing version registered from `run_id`, if any: re-running must not duplicate."""
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def current_alias_version(client, model_name, alias):
    try:
        return client.get_model_version_by_alias(model_name, alias).version
    except MlflowException:
        return None  # no such model yet, or the alias was never set


def move_alias(client, model_name, alias, version):
    previous = current_alias_version(client, model_name, alias)
    client.set_registered_model_alias(model_name, alias, version)
    if previous is None:
        print(f"Alias {alias!r} now points at version {version}.")
    elif str(previous) == str(version):
        print(f"Alias {alias!r} already pointed at version {version}.")
    else:
        print(f"Alias {alias!r} moved: version {previous} -> version {version}.")


def main(argv=None):
    args = parse_args(argv)
    experiment_names = args.experiment_name or EXPERIMENTS
    # The store the training scripts wrote to: mlflow.db next to this file, unless
    # MLFLOW_TRACKING_URI names another (a team server, say).
    if "MLFLOW_TRACKING_URI" not in os.environ:
        store = HERE / "mlflow.db"
        if not store.exists():  # MLflow would create an empty one; say what is missing instead
            raise SystemExit(f"error: no store at {store}; train first: python train_rfc.py")
        mlflow.set_tracking_uri(f"sqlite:///{store}")
    client = MlflowClient()

    if args.version:
        # Roll back (or forward) to a version that already exists.
        try:
            client.get_model_version(args.model_name, args.version)
        except MlflowException:
            raise SystemExit(
                f"error: model {args.model_name!r} has no version {args.version}; "
                f"the {args.alias!r} alias was left unchanged"
            ) from None
        move_alias(client, args.model_name, args.alias, args.version)
    elif args.run_id:
        try:
            run = client.get_run(args.run_id)
        except MlflowException:
            raise SystemExit(
                f"error: no run with id {args.run_id!r}; the {args.alias!r} alias was left unchanged"
            ) from None
        version = version_of_run(client, args.model_name, run.info.run_id)
        if version is None:
            version = register_run(client, run, args.model_name, args.metric)
            print(f"Registered run {run.info.run_name!r} as version {version.version}.")
        move_alias(client, args.model_name, args.alias, version.version)
    else:
        runs = find_best_runs(experiment_names, args.metric, args.mode)
        if not runs:
            raise SystemExit(f"error: {why_nothing_ranks(experiment_names, args.metric)}")
        print_leaderboard(runs, args.metric, experiment_names)
        best = runs[0]
        existing = version_of_run(client, args.model_name, best.info.run_id)
        if existing:
            current = current_alias_version(client, args.model_name, args.alias)
            print(
                f"The best run {best.info.run_name!r} is already version {existing.version} of "
                f"{args.model_name!r}; nothing registered, alias {args.alias!r} left on "
                f"version {current}."
            )
        else:
            version = register_run(client, best, args.model_name, args.metric)
            print(f"Registered run {best.info.run_name!r} as version {version.version}.")
            move_alias(client, args.model_name, args.alias, version.version)

    print(f"Model URI: models:/{args.model_name}@{args.alias}")


# --- The command line -----------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Register the best run's model and point an alias at it, or roll back.",
        epilog="Example: python register_model.py --metric test_roc_auc",
    )
    parser.add_argument(
        "--experiment-name",
        action="append",
        metavar="NAME",
        help=f"experiment to search; repeat for several (default: {' and '.join(EXPERIMENTS)})",
    )
    parser.add_argument(
        "--metric",
        default=METRIC,
        help="metric that ranks the runs (default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=["max", "min"],
        default="max",
        help="max if higher is better (scores), min if lower is (losses) (default: %(default)s)",
    )
    parser.add_argument(
        "--model-name",
        default=MODEL_NAME,
        help="registered model to add the version to (default: %(default)s)",
    )
    parser.add_argument(
        "--alias",
        default="champion",
        help="alias to point at the chosen version (default: %(default)s)",
    )
    rollback = parser.add_mutually_exclusive_group()
    rollback.add_argument(
        "--version",
        metavar="N",
        help="roll back: point the alias at this existing version instead of the best run",
    )
    rollback.add_argument(
        "--run-id",
        metavar="ID",
        help="point the alias at this run's model (registered now if it is not yet)",
    )
    if guardrails:
        guardrails.strict(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if guardrails:
        guardrails.exit_on_error(main)
    else:
        main()
