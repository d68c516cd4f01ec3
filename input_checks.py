"""A bad flag or CSV is refused in one line, before anything is logged. Not the lesson.

The scripts use it at one line each:

- `strict(parser)`: a flag out of range (`--n-estimators 0`) is refused before anything is
  logged, in one line instead of argparse's usage block or scikit-learn's traceback;
- `check_training_csv(path, target, test_size, drop, keep)`: a stranger's CSV is checked
  before any run starts, and every problem is named at once, one line each (no such column,
  an ID column, numbers mixed with text, one class, too few rows for the split, a target
  that looks continuous...);
- `read_csv(path)`: rows to predict or evaluate, or one line saying why they cannot be read.

The training scripts run without this file: copy one into your own project and it works there,
with Python's own error messages (docs/02-your-own-csv.md).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from shlex import quote

import pandas as pd

from server_errors import first_line

# --- Flags --------------------------------------------------------------------------------

# What each flag of the lesson scripts must be, by its argparse `dest`.
FLAG_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "n_estimators": (lambda v: v >= 1, "a whole number >= 1"),
    "max_depth": (lambda v: v >= 1, "a whole number >= 1"),
    "min_samples_leaf": (lambda v: v >= 1, "a whole number >= 1"),
    "max_iter": (lambda v: v >= 1, "a whole number >= 1"),
    "trials": (lambda v: v >= 1, "a whole number >= 1"),
    "folds": (lambda v: v >= 2, "a whole number >= 2"),
    "max_features": (
        lambda v: v in ("sqrt", "log2") or 0 < v <= 1,
        "sqrt, log2 or a fraction in (0, 1]",
    ),
    "hidden_layers": (lambda v: len(v) > 0 and min(v) >= 1, "sizes >= 1 separated by commas"),
    "alpha": (lambda v: v >= 0, "a number >= 0"),
    "learning_rate": (lambda v: v > 0, "a number > 0"),
    "test_size": (lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"),
    "min_f1_gain": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
}


def _checked(convert: Callable[[str], object], test, what: str) -> Callable[[str], object]:
    def check(text: str):
        try:
            value = convert(text)
            ok = test(value)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return check


def strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Check the ranges in FLAG_RULES while parsing, and print any bad flag as one line."""
    for action in parser._actions:
        if action.dest in FLAG_RULES:
            test, what = FLAG_RULES[action.dest]
            action.type = _checked(action.type or str, test, what)

    def one_line_error(message):
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = one_line_error
    return parser


# --- A stranger's CSV ---------------------------------------------------------------------


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV with at least one row, or exit with one line saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"error: data file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SystemExit(f"error: {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: {path} is not a readable CSV file ({first_line(exc)})") from None
    if frame.empty:
        raise SystemExit(f"error: {path} has a header but no rows")
    return frame


def check_training_csv(path: str | Path, target: str, test_size: float, drop=(), keep=()) -> None:
    """Exit naming every problem that would stop training on this CSV, one line each.

    What the model's pipeline handles (text categories, booleans, missing values) is fine. What
    it cannot fix is refused: a column that looks like an ID (unless `--keep` says it is a
    feature), a column mixing numbers with text, a column with no value at all, and labels a
    classifier cannot learn from. Values are quoted as the CSV spells them.
    """
    frame = read_csv(path)
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise SystemExit(f"error: {path} has no column {target!r} (columns: {columns})")
    problems = [
        f"--drop {name}: {path} has no column {name!r}" for name in drop if name not in frame
    ]
    problems += [
        f"--keep {name}: {path} has no column {name!r}" for name in keep if name not in frame
    ]
    if target in drop:
        problems.append(f"--drop {target}: that is the target column")
    features = frame.drop(columns=[target, *(name for name in drop if name in frame)])
    if features.shape[1] == 0:
        raise SystemExit(f"error: {path} has no feature columns besides {target!r}")
    spelled = pd.read_csv(path, dtype=str, keep_default_na=False)  # each cell as written
    for column in features.columns:
        problems += column_problems(features[column], spelled[column], column in keep)
    problems += label_problems(frame[target], spelled[target], test_size)
    if len(problems) == 1:
        raise SystemExit(f"error: {path}: {problems[0]}")
    if problems:
        lines = "".join(f"\n  {problem}" for problem in problems)
        raise SystemExit(f"error: {path} has {len(problems)} problems:{lines}")


def first_line_of(mask: pd.Series) -> int:
    """The file's line number of the first row where `mask` holds (the header is line 1)."""
    return int(mask.to_numpy().argmax()) + 2


def column_problems(values: pd.Series, spelled: pd.Series, kept: bool) -> list[str]:
    """What the pipeline cannot make of one feature column, in words."""
    name, rows = values.name, len(values)
    if values.isna().all():
        return [f"column {name!r} is empty in every row: leave it out with --drop {quote(name)}"]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    whole = pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric and not pd.api.types.is_bool_dtype(values):
        # Mostly numbers with some text: a typo or a placeholder ('unknown', 'n/a'), which
        # would turn the whole column into categories.
        written = spelled[spelled != ""]
        as_numbers = pd.to_numeric(written, errors="coerce")
        if as_numbers.notna().mean() >= 0.5:
            text = as_numbers.isna().reindex(spelled.index, fill_value=False)
            return [
                f"column {name!r} holds numbers and text ({spelled[text].iloc[0]!r} on line "
                f"{first_line_of(text)}): correct those cells, or empty them to mark a missing value"
            ]
    # A different value in every row is an ID, not a property: it predicts nothing on new rows.
    if (whole or not numeric) and not kept and rows >= 20 and values.nunique() == rows:
        return [
            f"column {name!r} looks like an ID (a different value in each of its {rows} rows, "
            f"e.g. {spelled.iloc[0]!r}): leave it out with --drop {quote(name)}, or keep it as a "
            f"feature with --keep {quote(name)}"
        ]
    return []


def label_problems(labels: pd.Series, spelled: pd.Series, test_size: float) -> list[str]:
    """Labels a classifier cannot learn from, or a split that cannot hold every class."""
    name, rows = labels.name, len(labels)
    if labels.isna().any():
        return [
            f"the target {name!r} is empty on {labels.isna().sum()} row(s) (first: line "
            f"{first_line_of(labels.isna())}): drop those rows or fill in their labels"
        ]
    counts = spelled.value_counts()
    if len(counts) < 2:
        return [
            f"the target {name!r} has only one class ({counts.index[0]!r}); a classifier needs at least two"
        ]
    numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
    if numeric and len(counts) > max(10, rows // 2):
        return [
            f"the target {name!r} has {len(counts)} distinct values in {rows} rows: it looks "
            "continuous, and this tutorial trains classifiers; choose a column of categories "
            "(or bin this one, e.g. with pandas.cut)"
        ]
    rare = counts[counts < 2]
    if len(rare):
        return [
            f"class {rare.index[0]!r} of the target {name!r} has only one row; a stratified "
            "train/test split needs at least two per class"
        ]
    # scikit-learn's split rounds the test share up; each side needs one row of every class.
    held_out = math.ceil(test_size * rows)
    if min(held_out, rows - held_out) < len(counts):
        return [
            f"the table has {rows} rows; --test-size {test_size} holds out {held_out} and trains on "
            f"{rows - held_out}, but each side needs at least {len(counts)} (one per class): "
            "use more rows or change --test-size"
        ]
    return []
