"""A bad flag or CSV is refused in one line, before anything is logged. Not the lesson.

The scripts use it at one line each:

- `strict(parser)`: a flag out of range (`--n-estimators 0`) is refused before anything is
  logged, in one line instead of argparse's usage block or scikit-learn's traceback;
- `check_training_csv(path, target, test_size)`: a stranger's CSV is checked before any run
  starts, and each problem is named in one line (no such column, text features, one class,
  too few rows for the split, a target that looks continuous...);
- `read_csv(path)`: rows to predict or evaluate, or one line saying why they cannot be read.

The training scripts run without this file: copy one into your own project and it works there,
with Python's own error messages (docs/02-your-own-csv.md).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

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


def check_training_csv(path: str | Path, target: str, test_size: float) -> None:
    """Exit with one line naming the first problem that would stop training on this CSV."""
    frame = read_csv(path)
    if target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise SystemExit(f"error: {path} has no column {target!r} (columns: {columns})")
    y, X = frame[target], frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise SystemExit(f"error: {path} has no feature columns besides {target!r}")
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(X[column]) or pd.api.types.is_bool_dtype(X[column]):
            sample = X[column].dropna().iloc[0] if X[column].notna().any() else None
            raise SystemExit(
                f"error: feature column {column!r} in {path} is not numeric (e.g. {sample!r}); "
                "encode it as numbers or drop it"
            )
    missing = X.columns[X.isna().any()].tolist() + ([target] if y.isna().any() else [])
    if missing:
        raise SystemExit(
            f"error: {path} has empty cells in column(s): {', '.join(map(str, missing))}; "
            "fill them or drop those rows (pandas: fillna, dropna)"
        )

    rows, counts = len(frame), y.astype(str).value_counts()
    if len(counts) < 2:
        raise SystemExit(
            f"error: target {target!r} in {path} has only one class ({counts.index[0]!r}); "
            "a classifier needs at least two"
        )
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if numeric and len(counts) > max(10, rows // 2):
        raise SystemExit(
            f"error: target {target!r} in {path} has {len(counts)} distinct values in {rows} "
            "rows: it looks continuous, and this tutorial trains classifiers; choose a column "
            "of categories (or bin this one, e.g. with pandas.cut)"
        )
    rare = counts[counts < 2]
    if len(rare):
        raise SystemExit(
            f"error: class {rare.index[0]!r} of {target!r} in {path} has only one row; "
            "a stratified train/test split needs at least two per class"
        )
    # scikit-learn's split rounds the test share up; each side needs one row of every class.
    held_out = math.ceil(test_size * rows)
    if min(held_out, rows - held_out) < len(counts):
        raise SystemExit(
            f"error: {path} has {rows} rows; --test-size {test_size} holds out {held_out} "
            f"and trains on {rows - held_out}, but each side needs at least {len(counts)} "
            f"(one per class): use more rows or change --test-size"
        )
