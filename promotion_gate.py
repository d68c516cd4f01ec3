"""The promotion gate: a challenger must beat the champion on rows neither has seen.

What you learn here: each run's test_f1 comes from its own test split, and a lucky split can win
a ranking. So before the `champion` alias moves (register_model.py), the challenger and the
current champion are both scored on the same held-back rows (data/breast_cancer_eval.csv, which
no training script reads) with `mlflow.models.evaluate`, and
`mlflow.validate_evaluation_results` holds the scores against thresholds you choose. Each
decision is a run in the experiment `breast-cancer-promotion`: the two evaluations as child
runs, both scores, the verdict and the reason, for the team to read in the UI.

register_model.py calls `decide(...)` with the rows, the label column, the positive class, the
margin and whether to force, and prints the `Decision` it returns; docs/08-promotion-gate.md
walks through it. The rules the held-back rows must meet (`read_eval_rows`) are here too: they
are the gate's. registry_messages.py words the lines it prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

import registry_messages
from check_model import check_model
from input_checks import read_csv
from predict import fit_rows
from registry_messages import stop

# The scores the gate compares, as mlflow.models.evaluate names them.
GATED = ("f1_score", "recall_score")
# Of two classes, the one whose recall must not fall, unless --pos-label names another.
POS_LABEL = "malignant"


@dataclass(frozen=True)
class Decision:
    """What the gate decided, and the run that records it."""

    verdict: str  # "promoted" or "refused"
    reason: str  # why, in one line: the failed checks, or why it passed
    failures: tuple[str, ...]  # one line per failed threshold (also when forced past them)
    forced: bool  # promoted past failed checks because force was asked
    run_id: str  # the decision run


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


def decide(
    run,
    challenger_uri: str,
    champion,
    *,
    model_name: str,
    eval_data: Path,
    target: str,
    pos_label: str | None,
    min_f1_gain: float,
    force: bool,
    experiment_id: str,
    alias: str = "champion",
) -> Decision:
    """Score the challenger, and the champion (a ModelVersion, or None) if there is one, in one
    decision run in `experiment_id`.

    `pos_label` None: the tutorial's malignant, else the last label in sort order. Bad input
    (rows that do not fit a model, a model check_model.py refuses) stops here in one line,
    before the decision run starts.
    """
    against = f"version {champion.version}" if champion else "no champion"
    champion_uri = champion and f"models:/{model_name}/{champion.version}"
    # Read each MLmodel before evaluate loads the model (check_model.py), and check that the
    # held-back rows fit the models: the columns they need, labels as they predict them.
    models = {"challenger": check_model(challenger_uri)}
    models.update({"champion": check_model(champion_uri)} if champion else {})
    rows, pos_label = read_eval_rows(eval_data, target, pos_label, models, alias)

    with mlflow.start_run(experiment_id=experiment_id) as decision:
        mlflow.log_params(
            {
                "challenger_run_id": run.info.run_id,
                "champion_version": champion.version if champion else "none",
                "eval_data": Path(eval_data).name,
                "min_f1_gain": min_f1_gain,
            }
        )
        candidate = evaluate(
            challenger_uri, f"challenger {run.info.run_name}", rows, target, pos_label
        )
        failures, reason = [], "first promotion: no champion to compare with"
        if champion:
            baseline = evaluate(champion_uri, f"champion {against}", rows, target, pos_label)
            failures = shortfalls(gate_thresholds(min_f1_gain), candidate, baseline)
            mlflow.log_metrics({f"champion_{n}": baseline.metrics[n] for n in GATED})
            reason = "; ".join(failures) or why_it_passed(against, min_f1_gain)
        mlflow.log_metrics({f"challenger_{n}": candidate.metrics[n] for n in GATED})
        forced = bool(failures) and force
        verdict = "refused" if failures and not force else "promoted"
        mlflow.set_tags({"verdict": verdict, "reason": reason, "forced": str(forced).lower()})
        mlflow.set_tags({"challenger": run.info.run_name, "champion": against})
        # The verdict in the run's name, so that the UI's list of decisions reads as a history.
        name = decision_name(verdict, forced, run.info.run_name, against)
        MlflowClient().update_run(decision.info.run_id, name=name)
    return Decision(verdict, reason, tuple(failures), forced, decision.info.run_id)


def evaluate(model_uri, run_name, eval_data, target, pos_label):
    """Score one model on the held-back rows, in a child run of the decision run.

    `mlflow.models.evaluate` logs f1_score, recall_score and more, the dataset, and MLflow's
    confusion matrix, ROC and precision-recall plots. SHAP is not installed, so the explainer
    that would need it is off.
    """
    config = {"log_model_explainability": False}
    labels = sorted(eval_data[target].unique())
    if pos_label is None:  # more than two classes: every class counts alike
        config["average"] = "macro"
    else:
        config["pos_label"] = pos_label
    model = model_uri
    if pos_label not in (None, labels[-1]) or not predicts_text(model_uri):
        # MLflow scores a model's probabilities as if the positive class sorted last (and
        # warns about numeric labels), so such a model is scored on its predictions as text.
        model = predictions_as_text(model_uri)
    # A weak model that never predicts a class has no precision there: said in one line.
    with mlflow.start_run(run_name=run_name, nested=True), registry_messages.explained(run_name):
        return mlflow.models.evaluate(
            model, eval_data, targets=target, model_type="classifier", evaluator_config=config
        )


def predicts_text(model_uri) -> bool:
    info = mlflow.models.get_model_info(model_uri)  # its MLmodel: nothing is loaded
    return label_kind(info.signature) == "label names"


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


def decision_name(verdict: str, forced: bool, challenger: str, against: str) -> str:
    """'promoted: a over version 1', 'refused: b vs version 2', 'forced: ...', 'promoted: c, the first champion'."""
    outcome = "forced" if forced else verdict
    if against == "no champion":
        return f"{outcome}: {challenger}, the first champion"
    return f"{outcome}: {challenger} {'vs' if verdict == 'refused' else 'over'} {against}"


# --- The held-back rows: what they must be for the gate to score both models on them ----------


def read_eval_rows(
    path: Path, target: str, pos_label: str | None, models: dict, alias: str = "champion"
) -> tuple[pd.DataFrame, str | None]:
    """The gate's held-back rows fitted to the models, and the positive class; or one line
    saying why they do not fit.

    `models` maps "challenger" (and "champion") to their ModelInfo. The labels are read in the
    models' own type (label names, integers or booleans, from their signatures) and then held
    as text, as `evaluate` compares them; `pos_label` is read in that type too. The positive
    class returned is None for more than two classes (their macro recall is held instead).
    """
    if not Path(path).is_file():  # register_model.py run elsewhere, without data/
        stop(
            f"no evaluation data at {path}; pass rows no model trained on with --eval-data PATH",
            alias,
        )
    frame = read_csv(path)
    if target not in frame.columns:
        stop(f"{path} has no column {target!r} (choose it with --target)", alias)
    for who, info in models.items():
        needed = info.signature.inputs.input_names() if info.signature else []
        missing = [name for name in needed if name not in frame.columns]
        if missing:
            stop(f"{path} lacks columns the {who} needs: {', '.join(map(str, missing))}", alias)
    # The models' columns (an ID or another left-out column is not scored), each in the type
    # the models take, as predict.py sends them (a whole number as a float feature).
    taken = [target]
    for info in models.values():
        if info.signature:
            fitted = fit_rows(frame, info.signature.inputs)
            frame[fitted.columns] = fitted
            taken += [name for name in fitted.columns if name not in taken]
    frame = frame[taken] if len(taken) > 1 else frame
    kinds = {who: label_kind(info.signature) for who, info in models.items()}
    if len(set(kinds.values())) > 1:
        stop(
            f"the challenger predicts {kinds['challenger']} and the champion "
            f"{kinds['champion']}: they cannot be scored against the same labels",
            alias,
        )
    kind = kinds["challenger"]
    if kind == "continuous numbers":
        stop("the challenger predicts continuous numbers: the gate compares classifiers", alias)
    frame[target] = labels_as_text(frame[target], kind, f"the labels of {path}", alias)
    labels = sorted(frame[target].unique())
    return frame, positive_class(labels, pos_label, kind, path, alias)


def positive_class(
    labels: list[str], asked: str | None, kind: str, path, alias: str = "champion"
) -> str | None:
    """Of two labels (as text), the one whose recall must not fall: `asked`, read as the models
    predict, else the tutorial's malignant, else the last in sort order, as scikit-learn does.
    None for more than two, where `asked` is refused: their macro recall is held instead."""
    if len(labels) > 2:
        if asked is not None:
            stop(
                f"--pos-label is for two classes; {path} has {len(labels)} "
                f"({', '.join(labels)}), and the gate holds their macro recall instead",
                alias,
            )
        return None
    if asked is None:
        return POS_LABEL if POS_LABEL in labels else labels[-1]
    (asked,) = labels_as_text(pd.Series([asked]), kind, "--pos-label", alias)
    if asked not in labels:
        stop(f"--pos-label {asked!r} is not a label of {path} (labels: {', '.join(labels)})", alias)
    return asked


def check_trained_on(run, target: str, alias: str = "champion") -> None:
    """A --target the run never trained on means the ranking looked in the wrong experiments."""
    trained_on = run.data.params.get("target")
    if trained_on and trained_on != target:
        where = mlflow.get_experiment(run.info.experiment_id).name
        stop(
            f"run {run.info.run_name!r} (in {where}) was trained on the label {trained_on!r}, not "
            f"--target {target!r}: name your project's experiment with --experiment-name",
            alias,
        )


def label_kind(signature) -> str:
    """What a model predicts, from its signature: label names, integers, booleans or numbers."""
    outputs = signature.outputs if signature else None
    kind = outputs.numpy_types()[0].kind if outputs else "O"
    return {"i": "integers", "u": "integers", "b": "booleans", "f": "continuous numbers"}.get(
        kind, "label names"
    )


def labels_as_text(values: pd.Series, kind: str, what: str, alias: str) -> pd.Series:
    """Labels spelled as the models print their predictions: '1', 'True', 'malignant'."""
    text = values.astype(str).str.strip()
    if kind == "integers":
        numbers = pd.to_numeric(text, errors="coerce")
        wrong = text[numbers.isna() | (numbers % 1 != 0)]
        if len(wrong):
            stop(f"{what} are not integers ({wrong.iloc[0]!r}), as the models predict", alias)
        return numbers.astype("int64").astype(str)
    if kind == "booleans":
        spelled = text.str.lower().map(
            {"true": "True", "1": "True", "false": "False", "0": "False"}
        )
        if spelled.isna().any():
            example = text[spelled.isna()].iloc[0]
            stop(f"{what} are not true/false ({example!r}), as the models predict", alias)
        return spelled
    return text
