"""Promote the best run to the Model Registry through a promotion gate, or roll back.

What you learn here, in two parts.

The Model Registry gives a model a name and numbered versions, and an alias such as `champion`
is a movable pointer to one version. Whoever deploys the model asks for
`models:/breast-cancer-classifier@champion` and never needs to know the version number, so
promoting a better model, or rolling back to an older one, is one alias move. (MLflow's old
"stages" API did this job; it is deprecated, and aliases replace it.)

A promotion gate stands before the alias moves. A run's test_f1 comes from its own test split,
and a lucky split can win the ranking. So the challenger and the current champion are both
scored on the same held-back rows (data/breast_cancer_eval.csv, which no training script reads)
with `mlflow.models.evaluate`, and `mlflow.validate_evaluation_results` decides: the challenger
must beat the champion's F1 by a margin and must not miss more malignant tumours (recall).
Each decision is a run in the experiment `breast-cancer-promotion`: both evaluations, the
verdict and the reason, for the team to read in the UI.

Run it after training:

    python register_model.py                     # the best run by test_f1, through the gate
    python register_model.py --run-id <RUN_ID>   # one particular run, through the gate
    python register_model.py --run-name NAME     # the newest run of that name, ditto
    python register_model.py --version 1         # roll back to version 1: no gate
    python register_model.py --run-id <RUN_ID> --force   # past a refusal, recorded as forced

Then open "Model registry" in the UI's sidebar: the model, its versions, and the champion alias.
"""

import argparse
import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

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

# The promotion gate's data: rows held back from training (data/README.md says how), and where
# each decision is recorded.
EVAL_DATA = HERE / "data" / "breast_cancer_eval.csv"
TARGET = "diagnosis"
POS_LABEL = "malignant"
PROMOTION_EXPERIMENT = "breast-cancer-promotion"
MIN_F1_GAIN = 0.01

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
    """Say why: no experiment, no finished run, no such metric, or no model logged with it."""
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
    logged = sorted(finished[0].data.metrics)
    if metric in logged:  # e.g. runs copied from another store without their models
        return (
            f"runs in {', '.join(experiment_names)} log {metric!r}, but none logged a model "
            "with it; train one with a model: python train_rfc.py"
        )
    return f"no finished run logged the metric {metric!r} (runs log: {', '.join(logged)})"


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
    logged_model = model_of_run(run)
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


def newest_run_named(experiment_names, run_name):
    experiments = [mlflow.get_experiment_by_name(name) for name in experiment_names]
    runs = mlflow.search_runs(
        experiment_ids=[e.experiment_id for e in experiments if e is not None],
        filter_string=f"attributes.run_name = '{run_name}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0] if runs else None


def version_of_run(client, model_name, run_id):
    """The existing version registered from `run_id`, if any: re-running must not duplicate."""
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def alias_target(client, model_name, alias):
    """The ModelVersion the alias points at, or None."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None  # no such model yet, or the alias was never set


def current_alias_version(client, model_name, alias):
    """The version number the alias points at, or None."""
    version = alias_target(client, model_name, alias)
    return version.version if version else None


def move_alias(client, model_name, alias, version):
    previous = current_alias_version(client, model_name, alias)
    client.set_registered_model_alias(model_name, alias, version)
    if previous is None:
        print(f"Alias {alias!r} now points at version {version}.")
    elif str(previous) == str(version):
        print(f"Alias {alias!r} already pointed at version {version}.")
    else:
        print(f"Alias {alias!r} moved: version {previous} -> version {version}.")


# --- The promotion gate -----------------------------------------------------------------------


def gate_thresholds(min_f1_gain):
    """What a challenger must do against the champion, as MLflow's MetricThresholds.

    F1 must rise by `min_f1_gain`: a tie, or a gain within the noise of 114 rows, is not worth
    a redeploy. Recall on `malignant` must not fall: a missed tumour (a false negative) costs
    far more than a false alarm, and F1 alone would let a model trade misses for fewer false
    alarms and still win.
    """
    if min_f1_gain > 0:
        f1 = MetricThreshold(min_absolute_change=min_f1_gain, greater_is_better=True)
    else:  # MLflow takes only a positive absolute change; a relative change of 0 is "not lower"
        f1 = MetricThreshold(min_relative_change=0.0, greater_is_better=True)
    recall = MetricThreshold(min_relative_change=0.0, greater_is_better=True)
    return {"f1_score": f1, "recall_score": recall}


def read_eval_data(path, target, pos_label):
    """The evaluation rows, with the labels as the models predict them: strings."""
    if not Path(path).is_file():  # this file copied alone, without data/: say what to pass
        raise SystemExit(
            f"error: no evaluation data at {path}; pass rows no model trained on with "
            "--eval-data PATH; the alias was left unchanged"
        )
    if guardrails:
        frame = guardrails.read_csv(path)
    else:
        frame = pd.read_csv(path)
    if target not in frame.columns:
        raise SystemExit(
            f"error: {path} has no column {target!r} (choose it with --target); "
            "the alias was left unchanged"
        )
    frame[target] = frame[target].astype(str)
    labels = sorted(frame[target].unique())
    if len(labels) == 2 and pos_label not in labels:
        raise SystemExit(
            f"error: --pos-label {pos_label!r} is not a label of {path} "
            f"(labels: {', '.join(labels)}); the alias was left unchanged"
        )
    return frame


def check_columns(model_uri, who, eval_data, path, target):
    """Data that does not fit the model's signature is one line, before anything is logged."""
    signature = mlflow.models.get_model_info(model_uri).signature
    needed = signature.inputs.input_names() if signature else []
    missing = [name for name in needed if name not in eval_data.columns]
    if missing:
        raise SystemExit(
            f"error: {path} lacks columns the {who} needs: {', '.join(missing)}; "
            "the alias was left unchanged"
        )


def evaluate(model_uri, run_name, eval_data, target, pos_label):
    """Score one model on the evaluation rows, in a child run of the decision run.

    `mlflow.models.evaluate` logs the metrics (f1_score, recall_score, ...), the dataset, and
    MLflow's confusion matrix, ROC and precision-recall plots. SHAP is not installed, so the
    explainer that would need it is switched off.
    """
    binary = eval_data[target].nunique() == 2
    config = {"log_model_explainability": False}
    if binary:
        config["pos_label"] = pos_label
    with mlflow.start_run(run_name=run_name, nested=True):
        return mlflow.models.evaluate(
            model_uri,
            eval_data,
            targets=target,
            model_type="classifier",
            evaluator_config=config,
        )


def model_of_run(run):
    """The model a run logged: what the gate evaluates and the registry versions."""
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    if not models:
        raise SystemExit(
            f"error: run {run.info.run_name!r} ({run.info.run_id}) logged no model; "
            "the alias was left unchanged"
        )
    return models[0]


def set_up_promotion_experiment():
    """Decisions go to an experiment of their own, its artifacts next to this script."""
    if "MLFLOW_TRACKING_URI" not in os.environ:
        if mlflow.get_experiment_by_name(PROMOTION_EXPERIMENT) is None:
            artifacts = (HERE / "mlruns" / PROMOTION_EXPERIMENT).as_uri()
            mlflow.create_experiment(PROMOTION_EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(PROMOTION_EXPERIMENT)


def promote_through_gate(client, run, args):
    """Evaluate the challenger `run` and the champion; move the alias only if the gate agrees."""
    champion = alias_target(client, args.model_name, args.alias)
    if champion is not None and champion.run_id == run.info.run_id:
        print(
            f"Run {run.info.run_name!r} is already version {champion.version}, the "
            f"{args.alias!r}; nothing to decide."
        )
        return
    eval_data = read_eval_data(args.eval_data, args.target, args.pos_label)
    challenger_uri = f"models:/{model_of_run(run).model_id}"
    check_columns(challenger_uri, "challenger", eval_data, args.eval_data, args.target)
    champion_uri = None
    if champion is not None:
        champion_uri = f"models:/{args.model_name}/{champion.version}"
        check_columns(champion_uri, "champion", eval_data, args.eval_data, args.target)

    set_up_promotion_experiment()
    against = f"version {champion.version}" if champion else "no champion"
    # Named again below, once the verdict is known.
    with mlflow.start_run(run_name=f"{run.info.run_name} vs {against}") as decision:
        mlflow.log_params(
            {
                "challenger_run_id": run.info.run_id,
                "champion_version": champion.version if champion else "none",
                "eval_data": Path(args.eval_data).name,
                "min_f1_gain": args.min_f1_gain,
            }
        )
        candidate = evaluate(
            challenger_uri,
            f"challenger {run.info.run_name}",
            eval_data,
            args.target,
            args.pos_label,
        )
        failures = []
        if champion is None:
            reason = "first promotion: no champion to compare with"
        else:
            baseline = evaluate(
                champion_uri,
                f"champion version {champion.version}",
                eval_data,
                args.target,
                args.pos_label,
            )
            thresholds = gate_thresholds(args.min_f1_gain)
            try:
                mlflow.validate_evaluation_results(thresholds, candidate, baseline)
            except ModelValidationFailedException as exc:
                failed = [name for name in thresholds if f"Metric {name} " in str(exc)]
                failures = [
                    f"{name}: challenger {candidate.metrics[name]:.4f}, champion "
                    f"{baseline.metrics[name]:.4f} ({requirement(thresholds[name])})"
                    for name in failed
                ]
            for name in thresholds:
                mlflow.log_metric(f"champion_{name}", baseline.metrics[name])
            reason = "; ".join(failures) or (
                f"beats version {champion.version} on f1_score by at least "
                f"{args.min_f1_gain} and recall_score is not lower"
            )
        for name in ("f1_score", "recall_score"):
            mlflow.log_metric(f"challenger_{name}", candidate.metrics[name])
        verdict = "refused" if failures and not args.force else "promoted"
        # The verdict in the run's name too, so the UI's run list reads as a history.
        outcome = "forced" if failures and args.force else verdict
        over = "vs" if verdict == "refused" else "over"
        name = (
            f"{outcome}: {run.info.run_name} {over} {against}"
            if champion
            else f"{outcome}: {run.info.run_name}, the first champion"
        )
        client.update_run(decision.info.run_id, name=name)
        mlflow.set_tags(
            {
                "verdict": verdict,
                "reason": reason,
                "forced": str(bool(failures and args.force)).lower(),
                "challenger": run.info.run_name,
                "champion": against,
            }
        )
        if verdict == "promoted":
            version = version_of_run(client, args.model_name, run.info.run_id)
            if version is None:
                version = register_run(client, run, args.model_name, args.metric)
                print(f"Registered run {run.info.run_name!r} as version {version.version}.")
            mlflow.set_tag("version", version.version)
            move_alias(client, args.model_name, args.alias, version.version)

    where = f"decision run {decision.info.run_id} in {PROMOTION_EXPERIMENT!r}"
    if verdict == "refused":
        for line in failures:
            print(f"refused: {line}", file=sys.stderr)
        raise SystemExit(
            f"error: the gate refused {run.info.run_name!r} ({where}); the {args.alias!r} alias "
            f"stays on version {champion.version} (--force promotes anyway)"
        )
    if failures:
        print(f"Forced past the gate ({'; '.join(failures)}); recorded in {where}.")
    else:
        print(f"Gate: promoted, {reason} ({where}).")


def requirement(threshold):
    """What a MetricThreshold of gate_thresholds asks of the challenger, in words."""
    if threshold.min_absolute_change:
        return f"needs at least the champion's + {threshold.min_absolute_change}"
    return "needs at least the champion's"


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
    elif guardrails:  # a tracking server: one quick request, so that a dead one fails in seconds
        guardrails.check_tracking_server()
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
        promote_through_gate(client, run, args)
    elif args.run_name:
        run = newest_run_named(experiment_names, args.run_name)
        if run is None:
            raise SystemExit(
                f"error: no finished run named {args.run_name!r} in {', '.join(experiment_names)}; "
                f"the {args.alias!r} alias was left unchanged"
            )
        promote_through_gate(client, run, args)
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
            promote_through_gate(client, best, args)

    print(f"Model URI: models:/{args.model_name}@{args.alias}")


# --- The command line -----------------------------------------------------------------------


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
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--run-id",
        metavar="ID",
        help="promote this run's model instead of the best run's, through the gate",
    )
    which.add_argument(
        "--run-name",
        metavar="NAME",
        help="promote the newest finished run with this name, through the gate",
    )
    which.add_argument(
        "--version",
        metavar="N",
        help="roll back (or forward): point the alias at this existing version. No gate: the "
        "operator rolling back has already decided",
    )
    gate = parser.add_argument_group(
        "promotion gate",
        "The best run, --run-id and --run-name are scored with the champion on held-back rows; "
        "the alias moves only if the challenger's F1 beats the champion's by --min-f1-gain and "
        "its recall is not lower. Each decision is a run in the experiment "
        f"{PROMOTION_EXPERIMENT!r}.",
    )
    gate.add_argument(
        "--eval-data",
        type=Path,
        default=EVAL_DATA,
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
        default=POS_LABEL,
        metavar="LABEL",
        help="the class whose recall must not fall, for two classes (default: %(default)s)",
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
    if guardrails:
        guardrails.strict(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if guardrails:
        guardrails.exit_on_error(main)
    else:
        main()
