"""Registry refusals and verdicts in one line each, saying where the alias stands. Not the lesson.

What register_model.py and promotion_gate.py print when they stop. Each refusal names what is
wrong and says that the alias did not move: a store or a version that does not exist, why
nothing ranks (no experiment, no finished run, no such metric, no model), evaluation rows that
do not fit the models. Then the gate's verdict (promoted, forced, or refused with one line per
failed check) and where the alias went.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import mlflow
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning

from input_checks import read_csv
from predict import fit_rows


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

    `models` maps "challenger" (and "champion") to their ModelInfo. The labels are read in the
    models' own type (label names, integers or booleans, from their signatures) and then held
    as text, as `evaluate` compares them; `--pos-label` is read in that type too. Sets
    `args.pos_label` to the positive class of two, or None for more than two classes.
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
    # The models' columns (an ID or another left-out column is not scored), each in the type
    # the models take, as predict.py sends them (a whole number as a float feature).
    taken = [target]
    for info in models.values():
        if info.signature:
            fitted = fit_rows(frame, info.signature.inputs)
            frame[fitted.columns] = fitted
            taken += [name for name in fitted.columns if name not in taken]
    frame = frame[taken] if len(taken) > 1 else frame
    kinds = {who: label_kind(info) for who, info in models.items()}
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
    if len(labels) > 2:
        if args.pos_label is not None:
            stop(
                f"--pos-label is for two classes; {path} has {len(labels)} "
                f"({', '.join(labels)}), and the gate holds their macro recall instead",
                alias,
            )
    elif args.pos_label is None:  # the tutorial's malignant, else the last, as scikit-learn
        args.pos_label = "malignant" if "malignant" in labels else labels[-1]
    else:
        (args.pos_label,) = labels_as_text(pd.Series([args.pos_label]), kind, "--pos-label", alias)
        if args.pos_label not in labels:
            stop(
                f"--pos-label {args.pos_label!r} is not a label of {path} "
                f"(labels: {', '.join(labels)})",
                alias,
            )
    return frame


def check_trained_on(run, args) -> None:
    """A --target the run never trained on means the ranking looked in the wrong experiments."""
    trained_on = run.data.params.get("target")
    if trained_on and trained_on != args.target:
        where = mlflow.get_experiment(run.info.experiment_id).name
        stop(
            f"run {run.info.run_name!r} (in {where}) was trained on the label {trained_on!r}, not "
            f"--target {args.target!r}: name your project's experiment with --experiment-name",
            args.alias,
        )


def nothing_to_compare(run, args, model) -> None:
    """The reader's rows, read and checked against the champion, though nothing is decided."""
    rows = read_eval_rows(
        args, {"challenger": mlflow.models.get_model_info(f"models:/{model.model_id}")}
    )
    classes = rows[args.target].nunique()
    print(
        f"Your rows in {args.eval_data} fit it ({len(rows)} rows, {classes} classes), but there is "
        f"no challenger to score on them: train one, or name one with --run-name."
    )


def label_kind(info) -> str:
    """What a model predicts, from its signature: label names, integers, booleans or numbers."""
    outputs = info.signature.outputs if info.signature else None
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
