"""Predict with the champion model: load it here, or ask the model server for the same answer.

What you learn here: `models:/<name>@champion` is all a client needs to know. Loaded with
`mlflow.pyfunc.load_model`, any MLflow model (scikit-learn here, anything else tomorrow) has the
same `predict(DataFrame)`; served with `serve_model.sh`, it answers the same rows over HTTP.
Both paths check the input against the model's signature, so a missing column or text in a
numeric column is refused instead of silently mispredicted. Before loading, the model's MLmodel
is read and checked (check_model.py): loading a model runs what its files say, so only a
scikit-learn model in skops format that trusts nothing beyond your TRUSTED_TYPES is loaded.

Run it after `python register_model.py`:

    python predict.py                                  # the sample rows, model loaded here
    python predict.py --url http://127.0.0.1:5001      # the same rows, sent to serve_model.sh
    python predict.py --data my_rows.csv --output predictions.csv
    python predict.py --proba                          # each class's probability too
    python predict.py --proba --threshold 0.3          # malignant from a probability of 0.3

Probabilities: loaded here, the champion's own pipeline answers `predict_proba`, one column per
class (the class names, in the model's order). Over HTTP, serve_model.sh answers them when
started with ANSWER=probabilities: it serves the checked version saved again by this script
(`--probabilities-model`) with MLflow's `pyfunc_predict_fn="predict_proba"`, the same skops
file, trusted types and pinned requirements. Either way the label is the class with the highest
probability, or with --threshold, the positive class (the last in sort order, as in
scikit-learn and the gate) whenever its probability reaches the threshold.
"""

import argparse
import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import input_checks
import server_errors
import tutorial_store
from check_model import check_model

ROWS = tutorial_store.REPO / "data" / "sample_rows.csv"
MODEL_NAME = tutorial_store.MODEL_NAME


def predict_locally(model_name: str, alias: str, rows: pd.DataFrame, proba=False):
    """The labels (a list), or with `proba` each class's probability (a DataFrame whose
    columns are the class names)."""
    # The alias, pinned to a version and its MLmodel checked (tutorial_store.py, check_model.py):
    # the version checked is the version loaded; one line, and nothing loaded, if not trusted.
    version, _ = tutorial_store.checked_version(model_name, alias)
    model_uri = f"models:/{model_name}/{version.version}"
    model = mlflow.pyfunc.load_model(model_uri)
    rows = fit_rows(rows, model.metadata.get_input_schema())
    try:
        labels = list(model.predict(rows))  # MLflow checks the rows against the signature here
    except MlflowException as exc:
        raise SystemExit(f"error: input does not fit the model: {schema_error(exc)}") from None
    if not proba:
        return labels
    pipeline = model.get_raw_model()  # the scikit-learn pipeline pyfunc wraps: no second load
    return pd.DataFrame(pipeline.predict_proba(rows), columns=[str(c) for c in pipeline.classes_])


def labels_from(probabilities: pd.DataFrame, threshold: float | None) -> list:
    """The class with the highest probability; with a threshold, the positive class (the last
    column) wherever its probability reaches it, else the other one."""
    if threshold is None:
        return list(probabilities.idxmax(axis="columns"))
    if probabilities.shape[1] != 2:
        raise SystemExit(
            f"error: --threshold needs a model with two classes; this one has "
            f"{probabilities.shape[1]} ({', '.join(probabilities.columns)})"
        )
    negative, positive = probabilities.columns
    return [positive if p >= threshold else negative for p in probabilities[positive]]


def save_probabilities_model(model_name: str, alias: str, version: str | None, folder: Path):
    """The checked version saved again in `folder`, answering predict_proba: the model
    serve_model.sh serves with ANSWER=probabilities. Its MLmodel is checked again before any
    server loads it; its output signature names a column per class."""
    found, info = tutorial_store.checked_version(model_name, alias, version)
    model_uri = f"models:/{model_name}/{found.version}"
    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    pipeline = mlflow.sklearn.load_model(local.as_uri())  # checked above: skops, trusted types
    example = mlflow.models.Model.load(local).load_input_example(local)
    classes = [str(c) for c in pipeline.classes_]
    outputs = Schema([ColSpec("double", name) for name in classes])
    if folder.exists():
        shutil.rmtree(folder)
    mlflow.sklearn.save_model(
        pipeline,
        folder,
        pyfunc_predict_fn="predict_proba",  # MLflow's own switch: no code shipped with the model
        signature=ModelSignature(info.signature.inputs, outputs),
        input_example=example,
        pip_requirements=str(local / "requirements.txt"),  # the versions it was logged with
        metadata={"classes": classes, "probabilities_of": model_uri},
        serialization_format="skops",
        skops_trusted_types=info.flavors["sklearn"].get("skops_trusted_types"),
    )
    check_model(str(folder))
    return found.version


def fit_rows(rows: pd.DataFrame, schema) -> pd.DataFrame:
    """The signature's columns only (a CSV may carry the label or an id too), each checked.

    Both paths send the same columns and refuse bad rows with the same line, before the model
    (or the server) sees them; MLflow's own check in predict() is the second line of defence.
    A whole number is sent as the float the model was trained on, and a text column that this
    batch happens to spell as numbers (or leave empty) as text.
    """
    names = schema.input_names()
    missing = [name for name in names if name not in rows.columns]
    if missing:
        raise SystemExit(f"error: input does not fit the model: it lacks {', '.join(missing)}")
    rows = rows[names].copy()
    for name, kind in zip(names, schema.input_types(), strict=True):
        kind = getattr(kind, "name", "")
        if kind in ("double", "float", "long", "integer"):
            numbers = pd.to_numeric(rows[name], errors="coerce")
            wrong = rows[name][numbers.isna() & rows[name].notna()]
            if len(wrong):
                raise SystemExit(
                    f"error: input does not fit the model: column {name!r} holds "
                    f"{wrong.iloc[0]!r}, not a number"
                )
            if kind in ("double", "float"):
                rows[name] = numbers.astype("float64")
        elif kind == "boolean":
            spelled = rows[name].map(lambda value: str(value).lower(), na_action="ignore")
            wrong = rows[name][spelled.notna() & ~spelled.isin(["true", "false"])]
            if len(wrong):
                raise SystemExit(
                    f"error: input does not fit the model: column {name!r} holds "
                    f"{wrong.iloc[0]!r}, not true or false"
                )
            rows[name] = spelled.map({"true": True, "false": False}).astype(object)
            rows[name] = rows[name].where(rows[name].notna(), None)
        elif kind == "string":
            rows[name] = rows[name].astype(object).where(rows[name].notna(), None)
            rows[name] = rows[name].map(as_text)
    return rows


def as_text(value):
    """A cell of a text column as text: 75001, or 75001.0 where pandas read a column of numbers
    with empty cells as floats, is '75001'; an empty cell stays None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def served_model_info(model_name: str, alias: str):
    """The MLmodel of the version the alias names (nothing loaded): its input schema and its
    classes. None where no store or champion can be read: the server then checks the rows alone."""
    store = tutorial_store.store_uri()
    if store is None:
        return None  # MLflow would create an empty store to find nothing in it
    mlflow.set_tracking_uri(store)
    try:
        version = tutorial_store.version_of(model_name, alias)
        if version is None:
            return None
        return mlflow.models.get_model_info(f"models:/{model_name}/{version.version}")
    except MlflowException:
        return None


def predict_via_server(url: str, rows: pd.DataFrame) -> list:
    # "dataframe_split" is one of the four bodies /invocations accepts (docs/06-serve-and-predict.md).
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split", index=False)})
    request = urllib.request.Request(
        f"{url.rstrip('/')}/invocations",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["predictions"]
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read() or b"{}").get("message", exc.reason)
        raise SystemExit(
            f"error: the server refused the input (HTTP {exc.code}): {schema_error(message)}"
        ) from None
    except urllib.error.URLError as exc:
        raise SystemExit(
            f"error: no model server at {url} ({exc.reason}); start one with ./serve_model.sh"
        ) from None


def schema_error(message) -> str:
    """MLflow's schema errors print the whole frame, then '. Error: <the reason>'."""
    return server_errors.first_line(str(message).rpartition(". Error: ")[2])


def main(argv=None):
    args = parse_args(argv)
    if args.probabilities_model:
        tutorial_store.use_store()
        version = save_probabilities_model(
            args.model_name, args.alias, args.version, args.probabilities_model
        )
        print(f"Saved version {version}, answering probabilities, in {args.probabilities_model}")
        return
    rows = input_checks.read_csv(args.data)
    probabilities = None
    if args.url:
        info = served_model_info(args.model_name, args.alias)
        schema = info and info.signature and info.signature.inputs
        answers = predict_via_server(args.url, fit_rows(rows, schema) if schema else rows)
        if answers and isinstance(answers[0], list):  # ANSWER=probabilities: a row per row
            classes = (info and info.metadata or {}).get("classes")
            probabilities = pd.DataFrame(answers, columns=classes)
            probabilities.columns = probabilities.columns.map(str)
        elif args.proba or args.threshold is not None:
            raise SystemExit(
                f"error: the server at {args.url} answers labels, not probabilities; "
                "start it with ANSWER=probabilities ./serve_model.sh"
            )
        predictions = answers
    else:
        # The store the scripts wrote to: mlflow.db at the repository root, unless
        # MLFLOW_TRACKING_URI names another (a team server, say); one line if there is none.
        tutorial_store.use_store()
        wanted = args.proba or args.threshold is not None
        predictions = predict_locally(args.model_name, args.alias, rows, proba=wanted)
        if wanted:
            probabilities = predictions
    if probabilities is not None:
        predictions = labels_from(probabilities, args.threshold)
    result = pd.DataFrame({"prediction": predictions})
    if args.proba:  # one column per class, named by it
        result = result.join(probabilities.round(4))
    result.to_csv(args.output or sys.stdout, index=False)
    if args.output:
        print(f"Wrote {len(result)} predictions to {args.output}")


# --- The command line -----------------------------------------------------------------------


def server_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {text!r}")
    return text


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Predict a CSV with the registered champion model, locally or via its server.",
        epilog="Example: python predict.py --url http://127.0.0.1:5001",
    )
    parser.add_argument(
        "--data",
        default=ROWS,
        metavar="PATH",
        help="CSV with the model's feature columns; other columns are ignored "
        "(default: the repository's data/sample_rows.csv)",
    )
    parser.add_argument(
        "--output", metavar="PATH", help="write the predictions CSV here (default: stdout)"
    )
    parser.add_argument(
        "--url",
        type=server_url,
        metavar="URL",
        help="send the rows to a model server (serve_model.sh) instead of loading the model here",
    )
    parser.add_argument(
        "--proba",
        action="store_true",
        help="add each class's probability, one column per class named by it",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        metavar="P",
        help="two classes: predict the positive one (the last in sort order: malignant) when "
        "its probability is at least P; lower it to miss fewer (default: the likelier class)",
    )
    parser.add_argument(
        "--probabilities-model",
        type=Path,
        metavar="FOLDER",
        help="save the checked version in FOLDER as a model that answers probabilities, and "
        "exit (what serve_model.sh does with ANSWER=probabilities)",
    )
    parser.add_argument(
        "--model-name",
        default=MODEL_NAME,
        help="registered model to load (default: %(default)s)",
    )
    parser.add_argument(
        "--alias", default="champion", help="alias of the version to load (default: %(default)s)"
    )
    parser.add_argument("--version", help="this version number instead of the alias's")
    input_checks.strict(parser)  # a bad flag printed as one line
    return parser.parse_args(argv)


if __name__ == "__main__":
    server_errors.exit_on_error(main)
