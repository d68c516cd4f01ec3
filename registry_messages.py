"""Registry refusals and verdicts in one line each, saying where the alias stands. Not the lesson.

What register_model.py and promotion_gate.py print, and nothing they decide. Each refusal names
what is wrong and says that the alias did not move (`stop`); why nothing ranks (no experiment,
no finished run, no such metric, no model: a few lookups, to choose the words); scikit-learn's
undefined-metric warning in one line; then the gate's verdict (promoted, forced, or refused
with one line per failed check) and where the alias went. The gate's rules are in
promotion_gate.py.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from typing import NoReturn

import mlflow
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning


def stop(message: str, alias: str = "champion") -> NoReturn:
    """Exit with one line that also says the alias did not move."""
    raise SystemExit(f"error: {message}; the {alias!r} alias was left unchanged")


def nothing_ranks(experiment_names, metric) -> NoReturn:
    """Say why nothing ranks: no experiment, no finished run, no such metric, or no model."""
    store, names = mlflow.get_tracking_uri(), ", ".join(experiment_names)
    experiments = [mlflow.get_experiment_by_name(name) for name in experiment_names]
    ids = [e.experiment_id for e in experiments if e is not None]
    if not ids:
        quoted = " or ".join(map(repr, experiment_names))
        raise SystemExit(
            f"error: no experiment named {quoted} in {store}; train first: python train_rfc.py"
        )
    finished = mlflow.search_runs(
        experiment_ids=ids,
        filter_string="attributes.status = 'FINISHED'",
        max_results=1,
        output_format="list",
    )
    if not finished:
        raise SystemExit(
            f"error: no finished run with metric {metric!r} in {names} ({store}); "
            "train one first: python train_rfc.py"
        )
    logged = sorted(finished[0].data.metrics)
    if metric in logged:  # e.g. runs copied from another store without their models
        raise SystemExit(
            f"error: runs in {names} log {metric!r}, but none logged a model with it; "
            "train one with a model: python train_rfc.py"
        )
    raise SystemExit(
        f"error: no finished run logged the metric {metric!r} (runs log: {', '.join(logged)})"
    )


def nothing_to_compare(path, rows: pd.DataFrame, target: str) -> None:
    """The reader's rows were read and checked against the champion, though nothing is decided."""
    print(
        f"Your rows in {path} fit it ({len(rows)} rows, {rows[target].nunique()} classes), but "
        "there is no challenger to score on them: train one, or name one with --run-name."
    )


@contextmanager
def explained(who: str):
    """scikit-learn's UndefinedMetricWarning, in words: a model that never predicts a class.

    Its precision for that class is 0/0, which scikit-learn scores as 0 after a warning of four
    lines per metric. The gate says it once instead; every other warning still shows as it came.
    """
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", UndefinedMetricWarning)
        yield
    undefined = [w for w in seen if issubclass(w.category, UndefinedMetricWarning)]
    for w in seen:
        if w not in undefined:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if undefined:
        print(
            f"note: {who} never predicts some class of these rows, so its precision there "
            "is undefined; scikit-learn scores it as 0"
        )


def report_verdict(decision, challenger: str, alias: str, champion, experiment: str) -> None:
    """The gate's last lines: promoted, forced, or refused (one line per failed check, exit 1).

    `decision` is promotion_gate.Decision; `champion` the ModelVersion the alias was on, if any.
    """
    where = f"decision run {decision.run_id} in {experiment!r}"
    if decision.verdict == "refused":
        for line in decision.failures:
            print(f"refused: {line}", file=sys.stderr)
        raise SystemExit(
            f"error: the gate refused {challenger!r} ({where}); the {alias!r} alias "
            f"stays on version {champion.version} (--force promotes anyway)"
        )
    if decision.forced:
        print(f"Forced past the gate ({'; '.join(decision.failures)}); recorded in {where}.")
    else:
        print(f"Gate: promoted, {decision.reason} ({where}).")


def say_alias_moved(alias: str, previous, version) -> None:
    if previous is None:
        print(f"Alias {alias!r} now points at version {version}.")
    elif str(previous) == str(version):
        print(f"Alias {alias!r} already pointed at version {version}.")
    else:
        print(f"Alias {alias!r} moved: version {previous} -> version {version}.")
