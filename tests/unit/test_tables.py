"""A reader's raw table: what training refuses (all of it at once), and how rows are fitted to
a model's signature before a model or a server sees them. Files in a temporary folder, no store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.types import ColSpec, Schema

from input_checks import check_training_csv
from predict import fit_rows


def refusal(tmp_path, table: pd.DataFrame, **flags) -> list[str]:
    path = tmp_path / "table.csv"
    table.to_csv(path, index=False)
    with pytest.raises(SystemExit) as stopped:
        check_training_csv(path, "label", 0.2, **flags)
    return str(stopped.value.code).replace(str(path), "table.csv").splitlines()


def raw(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "size": np.linspace(1, 2, rows),
            "city": np.resize(["Paris", "Rome", None, "Oslo"], rows),  # text with empty cells
            "member": np.resize([True, False], rows),
            "visits": np.resize([1, 2, 3, 4, 5], rows),  # whole numbers, not distinct
            "label": np.resize(["yes", "no"], rows),
        }
    )


def test_text_booleans_whole_numbers_and_empty_cells_are_not_refused(tmp_path):
    path = tmp_path / "table.csv"
    raw().to_csv(path, index=False)
    check_training_csv(path, "label", 0.2)  # returns: nothing to say


def test_an_id_is_named_with_both_flags_and_passes_with_either(tmp_path):
    table = raw().assign(code=[f"C{n}" for n in range(40)])
    assert refusal(tmp_path, table) == [
        "error: table.csv: column 'code' looks like an ID (a different value in each of its 40 "
        "rows, e.g. 'C0'): leave it out with --drop code, or keep it as a feature with --keep code"
    ]
    table.to_csv(tmp_path / "ok.csv", index=False)
    check_training_csv(tmp_path / "ok.csv", "label", 0.2, drop=["code"])
    check_training_csv(tmp_path / "ok.csv", "label", 0.2, keep=["code"])


def test_a_name_with_a_space_is_quoted_for_the_shell(tmp_path):
    table = raw().assign(**{"Customer ID": range(100, 140)})
    (line,) = refusal(tmp_path, table)
    assert "--drop 'Customer ID'" in line and "--keep 'Customer ID'" in line


def test_few_rows_are_not_taken_for_an_id(tmp_path):
    path = tmp_path / "tiny.csv"
    raw(rows=12).assign(city=[f"c{n}" for n in range(12)]).to_csv(path, index=False)  # 12 < 20
    check_training_csv(path, "label", 0.5)


def test_every_problem_at_once_each_value_as_the_csv_spells_it(tmp_path):
    table = raw().astype({"size": object})
    table.loc[5, "size"] = "unknown"
    table["empty"] = None
    lines = refusal(tmp_path, table, drop=["nope"])
    assert lines == [
        "error: table.csv has 3 problems:",
        "  --drop nope: table.csv has no column 'nope'",
        "  column 'size' holds numbers and text ('unknown' on line 7): correct those cells, or "
        "empty them to mark a missing value",
        "  column 'empty' is empty in every row: leave it out with --drop empty",
    ]


def test_label_problems(tmp_path):
    assert refusal(tmp_path, raw().assign(label="yes")) == [
        "error: table.csv: the target 'label' has only one class ('yes'); a classifier needs at "
        "least two"
    ]
    unlabelled = raw()
    unlabelled.loc[[3, 9], "label"] = None
    assert refusal(tmp_path, unlabelled) == [
        "error: table.csv: the target 'label' is empty on 2 row(s) (first: line 5): drop those "
        "rows or fill in their labels"
    ]


SCHEMA = Schema(
    [
        ColSpec("double", "visits"),
        ColSpec("string", "city", required=False),
        ColSpec("boolean", "member", required=False),
    ]
)


def test_rows_are_fitted_to_the_signature_whole_numbers_as_floats():
    rows = pd.DataFrame(
        {"id": [7, 8], "visits": [3, 4], "city": [75001, None], "member": ["true", None]}
    )
    fitted = fit_rows(rows, SCHEMA)
    assert list(fitted.columns) == ["visits", "city", "member"]  # the id is not sent
    assert fitted["visits"].dtype == "float64"
    assert fitted["city"].tolist() == ["75001", None]  # text, even when spelled as a number
    assert fitted["member"].tolist() == [True, None]


@pytest.mark.parametrize(
    "rows, line",
    [
        (
            pd.DataFrame({"visits": ["three"], "city": ["Paris"], "member": [True]}),
            "error: input does not fit the model: column 'visits' holds 'three', not a number",
        ),
        (
            pd.DataFrame({"visits": [3], "city": ["Paris"], "member": ["maybe"]}),
            "error: input does not fit the model: column 'member' holds 'maybe', not true or false",
        ),
        (
            pd.DataFrame({"visits": [3]}),
            "error: input does not fit the model: it lacks city, member",
        ),
    ],
)
def test_rows_that_do_not_fit_are_refused_in_one_line(rows, line):
    with pytest.raises(SystemExit) as stopped:
        fit_rows(rows, SCHEMA)
    assert stopped.value.code == line
