"""Promote the best run to the Model Registry through a promotion gate, or roll back.

What you learn here, in the order the code does it:

1. Rank: `mlflow.search_logged_models` sorts the models the runs logged by their test score.
2. Gate: a run's test_f1 comes from its own test split, and a lucky split can win. So the
   challenger and the champion are both scored on the same held-back rows (data/
   breast_cancer_eval.csv) with `mlflow.models.evaluate`, and `validate_evaluation_results`
   decides: the challenger must beat the champion's F1 by a margin and must not miss more
   malignant tumours (recall). Each decision is a run in `breast-cancer-promotion`.
3. Register: the model becomes a new numbered version of `breast-cancer-classifier`.
4. Move the alias: `champion` points at one version, and deployments ask for
   `models:/breast-cancer-classifier@champion`; promoting or rolling back is one alias move.
   (Aliases replace MLflow's deprecated "stages".)

    python register_model.py                     # the best run by test_f1, through the gate
    python register_model.py --run-name NAME     # the newest run of that name (or --run-id)
    python register_model.py --version 1         # roll back to version 1: no gate, recorded
    python register_model.py --run-name NAME --force   # past a refusal, recorded as forced

Then open "Model registry" in the UI. It needs promotion_gate.py and check_model.py beside it
(the gate, which checks each model before loading it), tutorial_store.py (which store, where the
alias points), and registry_messages.py, input_checks.py and server_errors.py (one-line
errors; not the lesson).
"""

import argparse
import logging
import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient

import input_checks
import promotion_gate
import registry_messages
import server_errors
import tutorial_store

# The experiments train_rfc.py and train_ann.py log to, and the name the champion is served by.
EXPERIMENTS = ["breast-cancer-random-forest", "breast-cancer-neural-network"]
MODEL_NAME = tutorial_store.MODEL_NAME
# F1 balances missed tumours (recall) against false alarms (precision), where accuracy would
# hide a model that never says "malignant".
METRIC = "test_f1"
# The gate's exam: rows held back from training (data/README.md says how).
EVAL_DATA = tutorial_store.REPO / "data" / "breast_cancer_eval.csv"
TARGET = "diagnosis"
MIN_F1_GAIN = 0.01
PROMOTION_EXPERIMENT = "breast-cancer-promotion"


def main(argv=None):
    args = parse_args(argv)
    # MLflow's routine INFO lines (evaluate's progress, the "active model") would bury the
    # verdict. Its warnings still show; MLFLOW_LOGGING_LEVEL=INFO brings the rest back.
    logging.getLogger("mlflow").setLevel(os.environ.get("MLFLOW_LOGGING_LEVEL", "WARNING").upper())
    # The store the training scripts wrote to (mlflow.db at the repository root), unless
    # MLFLOW_TRACKING_URI names another; one line if there is none.
    tutorial_store.use_store(then="train first: python train_rfc.py")
    client = MlflowClient()

    if args.version:  # roll back (or forward): whoever rolls back has decided, so no gate
        if not tutorial_store.version_of(args.model_name, version=args.version):
            registry_messages.stop(
                f"model {args.model_name!r} has no version {args.version}", args.alias
            )
        roll_back(client, args)
    elif args.run_id or args.run_name:
        promote(client, run_asked_for(args), args)
    else:
        experiments = args.experiment_name or EXPERIMENTS
        runs = rank_runs(experiments, args.metric, args.mode)
        print_leaderboard(runs, args.metric, experiments)
        registered = version_of_run(client, args.model_name, runs[0].info.run_id)
        if registered:  # idempotent: the best run is already a version; the alias stays put
            promotion_gate.check_trained_on(runs[0], args.target, args.alias)
            print(f"The best run {runs[0].info.run_name!r} is already version {registered}.")
            if args.eval_data:  # the reader's own rows: read and checked, not skipped in silence
                check_own_rows(runs[0], args)
        else:
            promote(client, runs[0], args)
    print(f"Model URI: models:/{args.model_name}@{args.alias}")


def rank_runs(experiment_names, metric, mode, top=5):
    """The `top` finished runs by `metric`, best first, among the runs that logged a model.

    MLflow 3 ranks logged models, not only runs: each training script logs its test scores on
    its model (`model_id=`), and the store sorts the models by them. Only a run with a model can
    become the champion: a search's trials (tune_rfc.py) log a score but no model.
    """
    experiments = [mlflow.get_experiment_by_name(name) for name in experiment_names]
    experiment_ids = [e.experiment_id for e in experiments if e is not None]
    if not experiment_ids:
        registry_messages.nothing_ranks(experiment_names, metric)
    models = mlflow.search_logged_models(
        experiment_ids=experiment_ids,
        filter_string=f"metrics.{metric} > -1e300",  # only models that carry the metric
        # Ties go to the older model, so re-running this never churns the champion.
        order_by=[
            {"field_name": f"metrics.{metric}", "ascending": mode == "min"},
            {"field_name": "creation_timestamp", "ascending": True},
        ],
        max_results=top * 2,  # a few spare, in case a run failed after logging its model
        output_format="list",
    )
    runs = [mlflow.get_run(model.source_run_id) for model in models]
    runs = [run for run in runs if run.info.status == "FINISHED"][:top]
    return runs or registry_messages.nothing_ranks(experiment_names, metric)


def print_leaderboard(runs, metric, experiment_names):
    """One line a run: its score, experiment, name and the hyperparameters that set it apart."""
    shown = "n_estimators max_depth min_samples_leaf hidden_layer_sizes alpha learning_rate_init"
    plural = "s" * (len(runs) > 1)
    where = ", ".join(experiment_names)
    print(f"Top {len(runs)} run{plural} with a logged model, by {metric}, in {where}:")
    for rank, run in enumerate(runs, start=1):
        experiment = mlflow.get_experiment(run.info.experiment_id).name
        params = run.data.params
        settings = " ".join(f"{k}={params[k]}" for k in shown.split() if k in params)
        score = run.data.metrics[metric]
        print(f"  {rank}. {score:.4f}  {experiment:<30} {run.info.run_name:<20} {settings}")


def run_asked_for(args):
    """The run of --run-id, or the newest finished run named --run-name."""
    if args.run_id:
        try:
            return mlflow.get_run(args.run_id)
        except mlflow.MlflowException:
            registry_messages.stop(f"no run with id {args.run_id!r}", args.alias)
    names = args.experiment_name or EXPERIMENTS
    experiments = [mlflow.get_experiment_by_name(name) for name in names]
    runs = mlflow.search_runs(
        experiment_ids=[e.experiment_id for e in experiments if e is not None],
        filter_string=f"attributes.run_name = '{args.run_name}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        where = ", ".join(names)
        registry_messages.stop(f"no finished run named {args.run_name!r} in {where}", args.alias)
    return runs[0]


def promote(client, run, args):
    """Through the gate (promotion_gate.py); if it says yes, register and move the alias."""
    promotion_gate.check_trained_on(run, args.target, args.alias)
    champion = tutorial_store.version_of(args.model_name, args.alias)
    if champion and champion.run_id == run.info.run_id:
        print(f"Run {run.info.run_name!r} is already the {args.alias!r}; nothing to decide.")
        return
    model_uri = f"models:/{model_of_run(run, args.alias).model_id}"
    decision = promotion_gate.decide(
        run,
        model_uri,
        champion,
        model_name=args.model_name,
        eval_data=args.eval_data or EVAL_DATA,
        target=args.target,
        pos_label=args.pos_label,
        min_f1_gain=args.min_f1_gain,
        force=args.force,
        experiment_id=tutorial_store.set_experiment(args.promotion_experiment),
        alias=args.alias,
    )
    if decision.verdict == "promoted":
        version = version_of_run(client, args.model_name, run.info.run_id)
        version = version or register(client, run, model_uri, args)
        client.set_tag(decision.run_id, "version", version)
        move_alias(client, args.model_name, args.alias, version)
    where = args.promotion_experiment
    registry_messages.report_verdict(decision, run.info.run_name, args.alias, champion, where)


def check_own_rows(run, args):
    """The reader's --eval-data, read and checked against the run's model, with nothing to decide."""
    info = mlflow.models.get_model_info(f"models:/{model_of_run(run, args.alias).model_id}")
    models = {"challenger": info}
    rows, _ = promotion_gate.read_eval_rows(
        args.eval_data, args.target, args.pos_label, models, args.alias
    )
    registry_messages.nothing_to_compare(args.eval_data, rows, args.target)


def model_of_run(run, alias):
    """The model the run logged: what the gate evaluates and the registry versions."""
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    if not models:
        registry_messages.stop(
            f"run {run.info.run_name!r} ({run.info.run_id}) logged no model", alias
        )
    return models[0]


def register(client, run, model_uri, args):
    """A new version of the registered model, from the model the run logged.

    `models:/<model_id>`, not `runs:/<run_id>/model`: in MLflow 3 a logged model lives beside
    its run, not in the run's artifacts (the runs:/ form still works, with a warning).
    """
    value = run.data.metrics.get(args.metric)
    tags = {"source_run_name": run.info.run_name, "ranked_by": args.metric, args.metric: str(value)}
    version = mlflow.register_model(model_uri, args.model_name, tags=tags)
    description = f"Run {run.info.run_name!r} ({run.info.run_id}); {args.metric} = {value}."
    client.update_model_version(args.model_name, version.version, description=description)
    print(f"Registered run {run.info.run_name!r} as version {version.version}.")
    return version.version


def roll_back(client, args):
    """Point the alias at an existing version; a decision run records who, when and why."""
    previous = tutorial_store.version_of(args.model_name, args.alias)
    against = f"version {previous.version}" if previous else "no champion"
    experiment_id = tutorial_store.set_experiment(args.promotion_experiment)
    name = f"rolled back: {against} -> version {args.version}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name):
        tags = {"verdict": "rolled back", "reason": args.reason, "forced": "false"}
        mlflow.set_tags({**tags, "challenger": f"version {args.version}", "champion": against})
        mlflow.set_tag("version", args.version)
        move_alias(client, args.model_name, args.alias, args.version)


def version_of_run(client, model_name, run_id):
    """The version already registered from `run_id`, if any: re-running must not duplicate."""
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return min((v.version for v in versions), key=int, default=None)


def move_alias(client, model_name, alias, version):
    previous = tutorial_store.version_of(model_name, alias)
    client.set_registered_model_alias(model_name, alias, version)
    registry_messages.say_alias_moved(alias, previous and previous.version, version)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Register the best run's model and point an alias at it, or roll back.",
        epilog="Examples: python register_model.py --run-name mlp-strong-penalty; "
        "python register_model.py --version 1 (roll back)",
    )
    parser.add_argument(
        "--experiment-name",
        action="append",
        metavar="NAME",
        help=f"experiment to rank; repeat for several (default: {' and '.join(EXPERIMENTS)})",
    )
    parser.add_argument(
        "--metric", default=METRIC, help="metric that ranks the runs (default: %(default)s)"
    )
    parser.add_argument(
        "--mode",
        choices=["max", "min"],
        default="max",
        help="max if higher is better (scores), min if lower is (losses) (default: %(default)s)",
    )
    parser.add_argument(
        "--model-name", default=MODEL_NAME, help="registered model (default: %(default)s)"
    )
    parser.add_argument(
        "--alias", default="champion", help="alias to point at the version (default: %(default)s)"
    )
    # Which run, or which version: one of these at most.
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run-id", metavar="ID", help="promote this run, through the gate")
    which.add_argument(
        "--run-name",
        metavar="NAME",
        help="promote the newest finished run of this name, through the gate",
    )
    which.add_argument(
        "--version",
        metavar="N",
        help="roll back (or forward): point the alias at this existing version; no gate",
    )
    gate = parser.add_argument_group(
        "promotion gate",
        "The best run, --run-id and --run-name are scored with the champion on held-back rows; "
        "the alias moves only if the challenger's F1 beats the champion's by --min-f1-gain and "
        "its recall is not lower.",
    )
    gate.add_argument(
        "--eval-data",
        type=Path,
        metavar="PATH",
        help="CSV of rows no model trained on (default: data/breast_cancer_eval.csv)",
    )
    gate.add_argument(
        "--target",
        default=TARGET,
        metavar="COLUMN",
        help="the label column of --eval-data (default: %(default)s)",
    )
    gate.add_argument(
        "--pos-label",
        metavar="LABEL",
        help=f"of two classes, the one whose recall must not fall (default: "
        f"{promotion_gate.POS_LABEL} if it is a label, else the last in sort order); more "
        "classes: their mean recall",
    )
    gate.add_argument(
        "--min-f1-gain",
        type=float,
        default=MIN_F1_GAIN,
        metavar="X",
        help="how much the challenger's F1 must beat the champion's by (default: %(default)s)",
    )
    gate.add_argument(
        "--force",
        action="store_true",
        help="promote even if the gate refuses; the decision run records that it was forced",
    )
    gate.add_argument(
        "--promotion-experiment",
        metavar="NAME",
        help=f"experiment that records each decision (default: {PROMOTION_EXPERIMENT}, or "
        "<model name>-promotion for another --model-name)",
    )
    gate.add_argument(
        "--reason",
        default="rolled back by hand",
        metavar="TEXT",
        help="with --version: why, recorded in its decision run (default: %(default)s)",
    )
    input_checks.strict(parser)  # ranges checked, and a bad flag printed as one line
    args = parser.parse_args(argv)
    # Your project's decisions go to your project's experiment, not the breast-cancer one.
    own = f"{args.model_name}-promotion" if args.model_name != MODEL_NAME else None
    args.promotion_experiment = args.promotion_experiment or own or PROMOTION_EXPERIMENT
    return args


if __name__ == "__main__":
    server_errors.exit_on_error(main)
