"""Guardrails: what turns a reader's mistake into one clear line, and the messages. Not the lesson.

The training scripts (`train_rfc.py`, `train_ann.py`, `tune_rfc.py`) run without this file:
copy one into your own project and it works there, with Python's own error messages. The other
scripts import it. What it does for them:

- `strict(parser)`: a flag out of range (`--n-estimators 0`) is refused before anything is
  logged, in one line instead of argparse's usage block or scikit-learn's traceback;
- `check_training_csv(path, target, test_size)`: a stranger's CSV is checked before any run
  starts, and each problem is named in one line (no such column, text features, one class,
  too few rows for the split, a target that looks continuous...);
- `check_tracking_server()`: against a tracking server (`MLFLOW_TRACKING_URI=http://...`), one
  quick request before any work, so that a server that is down is one line in seconds, not
  minutes of MLflow's silent retries; and retries bounded for the rest of the run;
- register_model.py's and promotion_gate.py's diagnostics and wording: why nothing ranks, a
  run or version that does not exist, evaluation rows that do not fit the models, the verdict;
- `exit_on_error(main)`: whatever still goes wrong (an MLflow error, Ctrl-C) ends as one line
  on stderr and a non-zero exit, never a traceback. A run in progress has already been ended
  as FAILED by its `with mlflow.start_run()` block, so none is left RUNNING.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pandas as pd


def first_line(message) -> str:
    """The first line of an error's text: what a one-line error can quote of it.

    A failed request to a tracking server is shortened to what was asked and why it failed:
    MLflow's own text quotes the whole retried URL, query string and all.
    """
    lines = str(message).strip().splitlines()
    line = lines[0] if lines else type(message).__name__
    failed = re.match(r"API request to (\S+) failed with (?:timeout )?exception (.*)", line)
    if failed:
        return f"request to {failed[1].split('?')[0]} failed: {http_failure(failed[2])}"
    denied = re.match(
        r"API request to endpoint \S+/mlflow/(\S+) failed with error code 403\b", line
    )
    if denied:
        return permission_denied(denied[1])
    return line


# What MLflow's basic-auth app asks of an account for the calls the scripts make that change
# something (docs/team-server.md, "Accounts and roles"). The server's 403 says only
# "Permission denied"; the reader needs to know which permission to ask the admin for.
NEEDED_PERMISSION = {
    "runs/create": "creating a run needs EDIT on its experiment",
    "runs/delete": "deleting a run needs MANAGE on its experiment",
    "model-versions/create": "registering a version needs EDIT on the registered model",
    "registered-models/alias": "moving an alias needs EDIT on the registered model (reading it, READ)",
}


def permission_denied(call: str) -> str:
    """One line for a 403 from a basic-auth server: who was refused, and what they lack."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(none)")
    needs = NEEDED_PERMISSION.get(call, f"{call} needs a permission this account lacks")
    return f"permission denied (HTTP 403) for account {user!r}: {needs}; an admin can grant it"


def http_failure(text) -> str:
    """'connection refused', 'HTTP 500 responses', 'timed out'... out of requests' long text."""
    text = str(text)
    if status := re.search(r"too many (\d+) error responses", text):
        return f"HTTP {status[1]} responses"
    if errno := re.search(r"\[Errno -?\d+\] ([^'\")]+)", text):
        return errno[1].strip().lower()  # connection refused, name or service not known, ...
    if re.search(r"(?i)SSL|certificate", text):
        return "TLS failed (a self-signed server? see MLFLOW_TRACKING_SERVER_CERT_PATH)"
    if re.search(r"(?i)timed out|timeout", text):
        return "timed out"
    if re.search(r"Connection aborted|RemoteDisconnected", text):
        return "the connection was dropped"
    return text[:120]


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


# --- A tracking server ---------------------------------------------------------------------

# MLflow retries a failed request 7 times with exponential back-off (about 4 minutes per call,
# and a run makes several), and waits 120 s for an answer: against a server that went away, a
# script seems to hang. These bounds give up after about 10 s per call and still ride out a
# blip of a few seconds. They apply only where you have not set your own (docs/team-server.md).
BOUNDED_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",  # 4 attempts in all
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # waits of 0, 2 and 4 s between them
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",  # seconds to connect, and to wait for each answer
}


def check_tracking_server(timeout: float = 5) -> None:
    """Against an http(s) tracking URI: bound MLflow's retries, then ask the server once.

    Exits with one line, before any run starts, when nothing answers at the URI or the server
    answers with an error of its own (its database down, say). A 401 or 403 is an answer: the
    server is up, and MLflow's next request reports the credentials problem itself.
    """
    import mlflow
    import requests

    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    for name, value in BOUNDED_RETRIES.items():
        os.environ.setdefault(name, value)
    try:
        answer = requests.get(
            f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout,
            verify=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
            or os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() != "true",
        )
    except requests.RequestException as exc:
        raise SystemExit(
            f"error: no tracking server answers at {uri} ({http_failure(exc)}): is it running, "
            "and is MLFLOW_TRACKING_URI right?"
        ) from None
    if answer.status_code >= 500:
        raise SystemExit(
            f"error: the tracking server at {uri} answers HTTP {answer.status_code}: see its "
            "log (is its database up?)"
        )


# --- register_model.py and promotion_gate.py: diagnostics and wording -----------------------


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


def run_asked_for(args, default_experiments):
    """The run of --run-id, or the newest finished run named --run-name."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if args.run_id:
        try:
            return mlflow.get_run(args.run_id)
        except MlflowException:
            stop(f"no run with id {args.run_id!r}", args.alias)
    names = args.experiment_name or default_experiments
    experiments = [mlflow.get_experiment_by_name(name) for name in names]
    runs = mlflow.search_runs(
        experiment_ids=[e.experiment_id for e in experiments if e is not None],
        filter_string=f"attributes.run_name = '{args.run_name}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        stop(f"no finished run named {args.run_name!r} in {', '.join(names)}", args.alias)
    return runs[0]


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


def print_leaderboard(runs, metric, experiment_names) -> None:
    import mlflow

    key_params = "n_estimators max_depth min_samples_leaf hidden_layer_sizes alpha".split()
    key_params.append("learning_rate_init")
    plural = "s" * (len(runs) > 1)
    print(
        f"Top {len(runs)} run{plural} with a logged model, by {metric}, in {', '.join(experiment_names)}:"
    )
    for rank, run in enumerate(runs, start=1):
        experiment = mlflow.get_experiment(run.info.experiment_id).name
        params = " ".join(f"{k}={run.data.params[k]}" for k in key_params if k in run.data.params)
        print(
            f"  {rank}. {run.data.metrics[metric]:.4f}  {experiment:<30} "
            f"{run.info.run_name:<20} {params}"
        )


def model_of_run(run, alias: str):
    """The model a run logged: what the gate evaluates and the registry versions."""
    import mlflow

    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    if not models:
        stop(f"run {run.info.run_name!r} ({run.info.run_id}) logged no model", alias)
    return models[0]


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


def why_it_passed(against: str, min_f1_gain: float) -> str:
    return f"beats {against} on f1_score by at least {min_f1_gain} and recall_score is not lower"


def decision_name(verdict: str, forced: str, challenger: str, against: str) -> str:
    """'promoted: a over version 1', 'refused: b vs version 2', 'forced: ...', 'promoted: c, the first champion'."""
    outcome = "forced" if forced == "true" else verdict
    if against == "no champion":
        return f"{outcome}: {challenger}, the first champion"
    return f"{outcome}: {challenger} {'vs' if verdict == 'refused' else 'over'} {against}"


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


# --- Everything else ------------------------------------------------------------------------


def exit_on_error(main: Callable[[], object]) -> None:
    """Run `main`; turn the errors a reader can cause into one line on stderr and an exit code.

    An exception raised inside `with mlflow.start_run()` has already ended that run as FAILED
    by the time it arrives here, so no run is left RUNNING.
    """
    from mlflow.exceptions import MlflowException

    try:
        main()
    except BrokenPipeError:
        # `python predict.py | head` closed our stdout early: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted (a run in progress was ended as FAILED)", file=sys.stderr)
        sys.exit(130)
    except MlflowException as exc:
        sys.exit(f"error: MLflow: {first_line(exc)}")
    except (ValueError, TypeError) as exc:
        # scikit-learn's own checks ("The 'alpha' parameter ... must be ...").
        sys.exit(f"error: {first_line(exc)}")
