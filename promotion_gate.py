"""The promotion gate: a challenger must beat the champion on rows neither has seen.

What you learn here: each run's test_f1 comes from its own test split, and a lucky split can win
a ranking. So before the `champion` alias moves (register_model.py), the challenger and the
current champion are both scored on the same held-back rows (data/breast_cancer_eval.csv, which
no training script reads) with `mlflow.models.evaluate`, and
`mlflow.validate_evaluation_results` holds the scores against thresholds you choose. Each
decision is a run in the experiment `breast-cancer-promotion`: the two evaluations as child
runs, both scores, the verdict and the reason, for the team to read in the UI.

register_model.py calls `decide(...)`; docs/08-promotion-gate.md walks through it.
"""

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

import registry_messages
from check_model import check_model

# The scores the gate compares, as mlflow.models.evaluate names them.
GATED = ("f1_score", "recall_score")


def gate_thresholds(min_f1_gain):
    """What a challenger must do against the champion, as MLflow's MetricThresholds.

    F1 must rise by `min_f1_gain`: a tie, or a gain within the noise of 114 rows, is not worth
    a redeploy. Recall on `malignant` must not fall: a missed tumour (a false negative) costs
    far more than a false alarm, and F1 alone would let a model trade misses for fewer false
    alarms and still win. With more than two classes both are macro averages, each class
    counting alike: the mean recall over the classes must not fall.
    """
    if min_f1_gain > 0:
        f1 = MetricThreshold(min_absolute_change=min_f1_gain, greater_is_better=True)
    else:  # MLflow takes only a positive absolute change; a relative change of 0 is "not lower"
        f1 = MetricThreshold(min_relative_change=0.0, greater_is_better=True)
    recall = MetricThreshold(min_relative_change=0.0, greater_is_better=True)
    return {"f1_score": f1, "recall_score": recall}


def decide(run, challenger_uri, champion, args, experiment_id):
    """Score the challenger, and the champion if there is one, in one decision run.

    Returns the verdict ("promoted" or "refused"), the reason, the failed thresholds and the
    decision run. Bad input stops here in one line, before the decision run starts.
    """
    against = f"version {champion.version}" if champion else "no champion"
    champion_uri = champion and f"models:/{args.model_name}/{champion.version}"
    # Read each MLmodel before evaluate loads the model (check_model.py), and check that the
    # held-back rows fit the models: the columns they need, labels as they predict them.
    models = {"challenger": check_model(challenger_uri)}
    models.update({"champion": check_model(champion_uri)} if champion else {})
    eval_data = registry_messages.read_eval_rows(args, models)

    with mlflow.start_run(experiment_id=experiment_id) as decision:
        mlflow.log_params(
            {
                "challenger_run_id": run.info.run_id,
                "champion_version": champion.version if champion else "none",
                "eval_data": args.eval_data.name,
                "min_f1_gain": args.min_f1_gain,
            }
        )
        candidate = evaluate(challenger_uri, f"challenger {run.info.run_name}", eval_data, args)
        failures, reason = [], "first promotion: no champion to compare with"
        if champion:
            baseline = evaluate(champion_uri, f"champion {against}", eval_data, args)
            failures = shortfalls(gate_thresholds(args.min_f1_gain), candidate, baseline)
            mlflow.log_metrics({f"champion_{n}": baseline.metrics[n] for n in GATED})
            reason = "; ".join(failures) or why_it_passed(against, args.min_f1_gain)
        mlflow.log_metrics({f"challenger_{n}": candidate.metrics[n] for n in GATED})
        verdict = "refused" if failures and not args.force else "promoted"
        forced = str(bool(failures and args.force)).lower()
        mlflow.set_tags({"verdict": verdict, "reason": reason, "forced": forced})
        mlflow.set_tags({"challenger": run.info.run_name, "champion": against})
        # The verdict in the run's name, so that the UI's list of decisions reads as a history.
        name = decision_name(verdict, forced, run.info.run_name, against)
        MlflowClient().update_run(decision.info.run_id, name=name)
    return verdict, reason, failures, decision


def evaluate(model_uri, run_name, eval_data, args):
    """Score one model on the held-back rows, in a child run of the decision run.

    `mlflow.models.evaluate` logs f1_score, recall_score and more, the dataset, and MLflow's
    confusion matrix, ROC and precision-recall plots. SHAP is not installed, so the explainer
    that would need it is off.
    """
    config = {"log_model_explainability": False}
    labels = sorted(eval_data[args.target].unique())
    if args.pos_label is None:  # more than two classes: every class counts alike
        config["average"] = "macro"
    else:
        config["pos_label"] = args.pos_label
    model = model_uri
    if args.pos_label not in (None, labels[-1]) or not predicts_text(model_uri):
        # MLflow scores a model's probabilities as if the positive class sorted last (and
        # warns about numeric labels), so such a model is scored on its predictions as text.
        model = predictions_as_text(model_uri)
    # A weak model that never predicts a class has no precision there: said in one line.
    with mlflow.start_run(run_name=run_name, nested=True), registry_messages.explained(run_name):
        return mlflow.models.evaluate(
            model, eval_data, targets=args.target, model_type="classifier", evaluator_config=config
        )


def predicts_text(model_uri) -> bool:
    info = mlflow.models.get_model_info(model_uri)  # its MLmodel: nothing is loaded
    return registry_messages.label_kind(info) == "label names"


def predictions_as_text(model_uri):
    """The model's predictions spelled as the gate reads the labels: 1 -> '1', True -> 'True'."""
    model = mlflow.pyfunc.load_model(model_uri)  # its MLmodel was checked by check_model first

    def predict(rows):
        return pd.Series(model.predict(rows)).astype(str)

    return predict


def shortfalls(thresholds, candidate, baseline):
    """MLflow's verdict one threshold at a time, told with the two scores: what failed, by how much."""
    failed = []
    for name, threshold in thresholds.items():
        try:
            mlflow.validate_evaluation_results({name: threshold}, candidate, baseline)
        except ModelValidationFailedException:
            gain = f" + {threshold.min_absolute_change}" if threshold.min_absolute_change else ""
            failed.append(
                f"{name}: challenger {candidate.metrics[name]:.4f}, champion "
                f"{baseline.metrics[name]:.4f} (needs at least the champion's{gain})"
            )
    return failed


def why_it_passed(against, min_f1_gain):
    """The reason a promotion is recorded with, as `shortfalls` words a refusal."""
    return f"beats {against} on f1_score by at least {min_f1_gain} and recall_score is not lower"


def decision_name(verdict, forced, challenger, against):
    """'promoted: a over version 1', 'refused: b vs version 2', 'forced: ...', 'promoted: c, the first champion'."""
    outcome = "forced" if forced == "true" else verdict
    if against == "no champion":
        return f"{outcome}: {challenger}, the first champion"
    return f"{outcome}: {challenger} {'vs' if verdict == 'refused' else 'over'} {against}"
