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
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

import input_checks
import server_errors
import tutorial_store

ROWS = tutorial_store.REPO / "data" / "sample_rows.csv"
MODEL_NAME = tutorial_store.MODEL_NAME


def predict_locally(model_name: str, alias: str, rows: pd.DataFrame) -> list:
    # The alias, pinned to a version and its MLmodel checked (tutorial_store.py, check_model.py):
    # the version checked is the version loaded; one line, and nothing loaded, if not trusted.
    version, _ = tutorial_store.checked_version(model_name, alias)
    model_uri = f"models:/{model_name}/{version.version}"
    model = mlflow.pyfunc.load_model(model_uri)
    rows = fit_rows(rows, model.metadata.get_input_schema())
    try:
        return list(model.predict(rows))
    except MlflowException as exc:
        raise SystemExit(f"error: input does not fit the model: {schema_error(exc)}") from None


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


def served_schema(model_name: str, alias: str):
    """The input schema of the version the alias names, from its MLmodel (nothing loaded); None
    where no store or champion can be read: the server then checks the rows alone."""
    store = tutorial_store.store_uri()
    if store is None:
        return None  # MLflow would create an empty store to find nothing in it
    mlflow.set_tracking_uri(store)
    try:
        version = tutorial_store.version_of(model_name, alias)
        if version is None:
            return None
        uri = f"models:/{model_name}/{version.version}"
        return mlflow.models.get_model_info(uri).signature.inputs
    except (MlflowException, AttributeError):  # AttributeError: a model with no signature
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
    rows = input_checks.read_csv(args.data)
    if args.url:
        schema = served_schema(args.model_name, args.alias)
        predictions = predict_via_server(args.url, fit_rows(rows, schema) if schema else rows)
    else:
        # The store the scripts wrote to: mlflow.db at the repository root, unless
        # MLFLOW_TRACKING_URI names another (a team server, say); one line if there is none.
        tutorial_store.use_store()
        predictions = predict_locally(args.model_name, args.alias, rows)
    result = pd.DataFrame({"prediction": predictions})
    result.to_csv(args.output or sys.stdout, index=False)
    if args.output:
        print(f"Wrote {len(result)} predictions to {args.output}")


# --- The command line -----------------------------------------------------------------------


def server_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {text!r}")
    return text


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
        "--model-name",
        default=MODEL_NAME,
        help="registered model to load (default: %(default)s)",
    )
    parser.add_argument(
        "--alias", default="champion", help="alias of the version to load (default: %(default)s)"
    )
    input_checks.strict(parser)  # a bad flag printed as one line
    return parser.parse_args(argv)


if __name__ == "__main__":
    server_errors.exit_on_error(main)
