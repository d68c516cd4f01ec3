"""The promotion gate's pure rules: thresholds, shortfalls, labels, the positive class, names.

No store and no model: MLflow's own EvaluationResult and ModelSignature objects, built from
numbers and frames, as the gate receives them from `mlflow.models.evaluate` and a model's MLmodel.
"""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.models import EvaluationResult, ModelSignature
from mlflow.types import ColSpec, Schema

import promotion_gate
from promotion_gate import (
    decision_name,
    gate_thresholds,
    label_kind,
    labels_as_text,
    positive_class,
    shortfalls,
    why_it_passed,
)


def scores(f1: float, recall: float) -> EvaluationResult:
    return EvaluationResult(metrics={"f1_score": f1, "recall_score": recall}, artifacts={})


def test_f1_must_rise_by_the_margin_and_recall_must_not_fall():
    thresholds = gate_thresholds(0.01)
    assert set(thresholds) == {"f1_score", "recall_score"}
    assert thresholds["f1_score"].min_absolute_change == 0.01
    assert thresholds["recall_score"].min_relative_change == 0.0
    assert all(t.greater_is_better for t in thresholds.values())


def test_a_margin_of_zero_means_not_lower():
    f1 = gate_thresholds(0)["f1_score"]
    assert f1.min_absolute_change is None and f1.min_relative_change == 0.0
    assert shortfalls(gate_thresholds(0), scores(0.9, 0.9), scores(0.9, 0.9)) == []


def test_shortfalls_name_each_failed_threshold_with_both_scores():
    failed = shortfalls(gate_thresholds(0.01), scores(0.95, 0.90), scores(0.945, 0.95))
    assert failed == [
        "f1_score: challenger 0.9500, champion 0.9450 (needs at least the champion's + 0.01)",
        "recall_score: challenger 0.9000, champion 0.9500 (needs at least the champion's)",
    ]
    assert shortfalls(gate_thresholds(0.01), scores(0.97, 0.95), scores(0.95, 0.95)) == []


def test_the_reasons_and_run_names_read_as_a_history():
    assert why_it_passed("version 1", 0.01) == (
        "beats version 1 on f1_score by at least 0.01 and recall_score is not lower"
    )
    assert decision_name("promoted", False, "a", "version 1") == "promoted: a over version 1"
    assert decision_name("refused", False, "b", "version 2") == "refused: b vs version 2"
    assert decision_name("promoted", True, "c", "version 2") == "forced: c over version 2"
    assert decision_name("promoted", False, "d", "no champion") == "promoted: d, the first champion"


@pytest.mark.parametrize(
    "output, kind",
    [
        ("string", "label names"),
        ("long", "integers"),
        ("integer", "integers"),
        ("boolean", "booleans"),
        ("double", "continuous numbers"),
    ],
)
def test_label_kind_reads_what_a_model_predicts_from_its_signature(output, kind):
    signature = ModelSignature(Schema([ColSpec("double", "x")]), Schema([ColSpec(output)]))
    assert label_kind(signature) == kind
    assert label_kind(None) == "label names"  # no signature: compared as text


def test_labels_are_spelled_as_the_models_print_their_predictions():
    as_text = labels_as_text(pd.Series(["1", " 0", "1.0"]), "integers", "labels", "champion")
    assert list(as_text) == ["1", "0", "1"]
    spelled = labels_as_text(pd.Series(["TRUE", "0", "false"]), "booleans", "labels", "champion")
    assert list(spelled) == ["True", "False", "False"]
    assert list(labels_as_text(pd.Series([" benign"]), "label names", "x", "champion")) == [
        "benign"
    ]


@pytest.mark.parametrize(
    "values, kind, expected",
    [
        (["1", "1.5"], "integers", "error: labels are not integers ('1.5'), as the models predict"),
        (
            ["1", "yes"],
            "booleans",
            "error: labels are not true/false ('yes'), as the models predict",
        ),
    ],
)
def test_labels_that_do_not_fit_are_one_line_saying_the_alias_stays(values, kind, expected):
    with pytest.raises(SystemExit) as stopped:
        labels_as_text(pd.Series(values), kind, "labels", "champion")
    assert str(stopped.value) == f"{expected}; the 'champion' alias was left unchanged"


def test_the_positive_class_of_two_is_asked_malignant_or_the_last():
    two = ["benign", "malignant"]
    assert promotion_gate.POS_LABEL == "malignant"
    assert positive_class(two, None, "label names", "rows.csv") == "malignant"
    assert positive_class(two, "benign", "label names", "rows.csv") == "benign"
    assert positive_class(["no", "yes"], None, "label names", "rows.csv") == "yes"
    assert positive_class(["0", "1"], "1.0", "integers", "rows.csv") == "1"  # read as integers


def test_a_positive_class_that_is_no_label_or_of_many_classes_is_refused():
    with pytest.raises(SystemExit) as stopped:
        positive_class(["benign", "malignant"], "tumour", "label names", "rows.csv", "prod")
    assert str(stopped.value) == (
        "error: --pos-label 'tumour' is not a label of rows.csv (labels: benign, malignant); "
        "the 'prod' alias was left unchanged"
    )
    assert positive_class(["a", "b", "c"], None, "label names", "rows.csv") is None
    with pytest.raises(SystemExit, match="--pos-label is for two classes; rows.csv has 3"):
        positive_class(["a", "b", "c"], "a", "label names", "rows.csv")


def test_the_decision_is_a_typed_record():
    decision = promotion_gate.Decision("promoted", "why", ("f1_score: ...",), True, "run-id")
    assert decision.forced is True and decision.failures == ("f1_score: ...",)
    with pytest.raises(AttributeError):
        decision.verdict = "refused"  # frozen: what was decided stays decided
