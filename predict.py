"""Predict with the champion model: load it here, or ask the model server for the same answer.

What you learn here: `models:/<name>@champion` is all a client needs to know. Loaded with
`mlflow.pyfunc.load_model`, any MLflow model (scikit-learn here, anything else tomorrow) has the
same `predict(DataFrame)`; served with `serve_model.sh`, it answers the same rows over HTTP.
Both paths check the input against the model's signature, so a missing column or text in a
numeric column is refused instead of silently mispredicted.

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

import tutorial_plumbing as plumbing

DEFAULT_ROWS = plumbing.REPO_ROOT / "data" / "sample_rows.csv"


def server_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {text!r}")
    return text


def parse_args(argv=None):
    parser = plumbing.ArgumentParser(
        description="Predict a CSV with the registered champion model, locally or via its server.",
        epilog="Example: python predict.py --url http://127.0.0.1:5001",
    )
    parser.add_argument(
        "--data",
        default=DEFAULT_ROWS,
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
    plumbing.add_model_arguments(parser)
    return parser.parse_args(argv)


def predict_locally(model_uri: str, rows: pd.DataFrame) -> list:
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        raise plumbing.cannot_load(model_uri, exc) from None
    # Keep the columns the signature names (a CSV may carry the label or an id column too).
    # Whatever is missing or mistyped is then caught by MLflow's signature check in predict().
    wanted = model.metadata.get_input_schema().input_names()
    rows = rows[[column for column in rows.columns if column in wanted]]
    try:
        return list(model.predict(rows))
    except MlflowException as exc:
        raise plumbing.TutorialError(f"input does not fit the model: {schema_error(exc)}") from None


def predict_via_server(url: str, rows: pd.DataFrame) -> list:
    # "dataframe_split" is one of the four bodies /invocations accepts (see the README).
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
        raise plumbing.TutorialError(
            f"the server refused the input (HTTP {exc.code}): {schema_error(message)}"
        ) from None
    except urllib.error.URLError as exc:
        raise plumbing.TutorialError(
            f"no model server at {url} ({exc.reason}); start one with ./serve_model.sh"
        ) from None


def schema_error(message) -> str:
    """MLflow's schema errors print the whole frame, then '. Error: <the reason>'."""
    return plumbing.first_line(str(message).rpartition(". Error: ")[2])


def main(argv=None):
    args = parse_args(argv)
    rows = plumbing.read_csv(args.data)
    if args.url:
        predictions = predict_via_server(args.url, rows)
    else:
        plumbing.use_tutorial_store()
        predictions = predict_locally(f"models:/{args.model_name}@{args.alias}", rows)
    result = pd.DataFrame({"prediction": predictions})
    result.to_csv(args.output or sys.stdout, index=False)
    if args.output:
        print(f"Wrote {len(result)} predictions to {args.output}")


if __name__ == "__main__":
    plumbing.exit_on_error(main)
