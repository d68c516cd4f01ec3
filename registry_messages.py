"""Registry refusals and verdicts in one line each, saying where the alias stands. Not the lesson.

What register_model.py and promotion_gate.py print when they stop. Each refusal names what is
wrong and says that the alias did not move: a store or a version that does not exist, why
nothing ranks (no experiment, no finished run, no such metric, no model), evaluation rows that
do not fit the models. Then the gate's verdict (promoted, forced, or refused with one line per
failed check) and where the alias went.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import pandas as pd

from input_checks import read_csv


def stop(message: str, alias: str = "champion") -> NoReturn:
    """Exit with one line that also says the alias did not move."""
    raise SystemExit(f"error: {message}; the {alias!r} alias was left unchanged")


def existing_store(path: Path) -> Path:
    """The tutorial's store; MLflow would create an empty one, so say what is missing instead."""
    if not path.exists():
        raise SystemExit(f"error: no store at {path}; train first: python train_rfc.py")
    return path


def check_version_exists(client, model_name: str, version: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        stop(f"model {model_name!r} has no version {version}", alias)


def nothing_ranks(experiment_names, metric) -> NoReturn:
    """Say why nothing ranks: no experiment, no finished run, no such metric, or no model."""
    import mlflow

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


def read_eval_rows(args, models: dict) -> pd.DataFrame:
    """The gate's held-back rows, fitted to the models, or one line saying why they do not fit.

    `models` maps "challenger" (and "champion") to their ModelInfo. Labels are read as text,
    as the models predict them, whatever the CSV holds (0/1, true/false, names).
    """
    path, target, alias = args.eval_data, args.target, args.alias
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
    # The models' labels, from their signatures: the tutorial's scripts train on label names
    # (text), whatever the CSV holds, so the held-back labels are read as text too. MLflow's
    # evaluate warns on numeric labels (and misorders a positive label that is not the
    # largest): a model that predicts numbers is refused here, before anything is logged.
    for who, info in models.items():
        outputs = info.signature.outputs if info.signature else None
        kind = outputs.numpy_types()[0].kind if outputs else "O"
        if kind not in "OUS":
            stop(
                f"the {who} predicts numbers, not label names; the gate scores names: train it "
                "on names (e.g. y.map({0: 'malignant', 1: 'benign'})), as the scripts do",
                alias,
            )
    frame[target] = frame[target].astype(str)
    labels = sorted(frame[target].unique())
    if len(labels) == 2 and args.pos_label not in labels:
        stop(
            f"--pos-label {args.pos_label!r} is not a label of {path} (labels: {', '.join(labels)})",
            alias,
        )
    return frame


def report_verdict(verdict, reason, failures, run, decision, args, champion) -> None:
    """The gate's last lines: promoted, forced, or refused (one line per failed check, exit 1)."""
    where = f"decision run {decision.info.run_id} in {args.promotion_experiment!r}"
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


def say_alias_moved(alias: str, previous, version) -> None:
    if previous is None:
        print(f"Alias {alias!r} now points at version {version}.")
    elif str(previous) == str(version):
        print(f"Alias {alias!r} already pointed at version {version}.")
    else:
        print(f"Alias {alias!r} moved: version {previous} -> version {version}.")
