"""predict.py's labels from probabilities: the likelier class, or the positive one at a threshold."""

from __future__ import annotations

import pandas as pd
import pytest

from predict import labels_from

SCORES = pd.DataFrame({"benign": [0.9, 0.6, 0.2], "malignant": [0.1, 0.4, 0.8]})


def test_without_a_threshold_the_likelier_class_wins():
    assert labels_from(SCORES, None) == ["benign", "benign", "malignant"]


def test_a_threshold_calls_the_positive_class_the_last_column_from_it_on():
    assert labels_from(SCORES, 0.4) == ["benign", "malignant", "malignant"]
    assert labels_from(SCORES, 0.0) == ["malignant"] * 3
    assert labels_from(SCORES, 0.81) == ["benign"] * 3


def test_a_threshold_on_three_classes_is_one_line():
    three = SCORES.assign(other=0.0)
    with pytest.raises(SystemExit) as stopped:
        labels_from(three, 0.5)
    assert str(stopped.value) == (
        "error: --threshold needs a model with two classes; this one has 3 "
        "(benign, malignant, other)"
    )
