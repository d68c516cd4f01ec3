"""Keep what a run computed when the tracking server goes away, and log it once it is back.

What you learn here: against a tracking server, every MLflow call is an HTTP request, and MLflow
has no offline mode. A server that dies while your model trains ends the run in an error, and
the fitted model dies with the Python process. The training scripts therefore wrap the logging
that follows `fit()` in `keep_if_logging_fails(...)`. If logging fails there, they:

- save the model in MLflow's own format (`mlflow.sklearn.save_model`), with its params, tags,
  metrics and figure, in offline-runs/<run name>-<run id>/ next to this file;
- print one line with that folder and the command that logs it once the server is back:

    python offline.py sync offline-runs/rf-100trees-depthany-3f2a1b9c

`sync` logs the kept result as a new run in the same experiment (same params, tags, metrics,
figure and model, so `register_model.py` can promote it), then ends the run that was cut off,
still RUNNING on the server, as FAILED, with a tag naming its replacement.

Copy it: it needs server_errors.py (the server check, one-line errors) and input_checks.py
(its flags) beside it.
"""

import argparse
import contextlib
import json
import os
import shlex
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

import input_checks
import server_errors

HERE = Path(__file__).resolve().parent
KEPT = HERE / "offline-runs"


@contextlib.contextmanager
def keep_if_logging_fails(run, model, params, tags, metrics, figure, model_options):
    """Run the block; if it raises, save everything it was logging, and exit with one line.

    `figure` is the run's confusion_matrix.png; `model_options` are the keyword arguments of
    `mlflow.sklearn.log_model` besides the model and its name (signature, input_example,
    pip_requirements, skops_trusted_types...).
    """
    try:
        yield
    except Exception as exc:
        folder = KEPT / f"{run.info.run_name}-{run.info.run_id[:8]}"
        mlflow.sklearn.save_model(model, folder / "model", **model_options)
        figure.savefig(folder / "confusion_matrix.png")
        kept = {
            "tracking_uri": mlflow.get_tracking_uri(),
            "experiment_id": run.info.experiment_id,
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "params": {key: str(value) for key, value in params.items()},
            "tags": tags,
            "metrics": metrics,
        }
        (folder / "run.json").write_text(json.dumps(kept, indent=2) + "\n")
        # End the cut-off run now if the server still answers: one attempt, no retries.
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        try:
            mlflow.end_run("FAILED")
        except Exception:
            pass  # sync ends it later
        finally:
            if retries is None:
                del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
            else:
                os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = retries
        raise SystemExit(
            f"error: logging failed after training ({server_errors.first_line(exc)}); the model, "
            f"params, metrics and figure are kept in {shown(folder)}; log them once the "
            f"server is back: python {shown(Path(__file__))} sync {shown(folder)}"
        ) from None


def shown(path: Path) -> str:
    """The path as the reader would type it: relative to where they are, if it is below."""
    path = path.resolve()
    if path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    return shlex.quote(str(path))


def sync(folder: Path) -> None:
    """Log a kept result as a new run, then end the run it replaces as FAILED."""
    if not (folder / "run.json").is_file():
        raise SystemExit(f"error: {folder} holds no run.json: not a folder offline.py kept")
    kept = json.loads((folder / "run.json").read_text())
    if (folder / "synced.json").is_file():
        synced = json.loads((folder / "synced.json").read_text())
        print(f"{folder}: already logged as run {synced['run_id']} to {synced['tracking_uri']}")
        return
    # The server the run was cut off from: its experiment id and run id mean nothing elsewhere.
    elsewhere = os.environ.get("MLFLOW_TRACKING_URI", kept["tracking_uri"])
    if elsewhere != kept["tracking_uri"]:
        raise SystemExit(
            f"error: {folder} was cut off from {kept['tracking_uri']}, but MLFLOW_TRACKING_URI "
            f"names {elsewhere}; unset it, or edit tracking_uri in {folder / 'run.json'}"
        )
    mlflow.set_tracking_uri(kept["tracking_uri"])
    server_errors.check_tracking_server()
    client = MlflowClient()
    experiment = client.get_experiment(kept["experiment_id"])

    saved = Model.load(folder / "model")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=kept["run_name"]) as run:
        mlflow.set_tags({**kept["tags"], "replaces_run_id": kept["run_id"]})
        mlflow.log_params(kept["params"])
        for figure in sorted(folder.glob("*.png")):
            mlflow.log_artifact(str(figure))
        model_info = mlflow.sklearn.log_model(
            mlflow.sklearn.load_model(str(folder / "model")),
            name="model",
            signature=saved.signature,
            input_example=saved.load_input_example(str(folder / "model")),
            pip_requirements=str(folder / "model" / "requirements.txt"),
            skops_trusted_types=saved.flavors["sklearn"].get("skops_trusted_types"),
        )
        mlflow.log_metrics(kept["metrics"], model_id=model_info.model_id)
    synced = {"run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri()}
    (folder / "synced.json").write_text(json.dumps(synced, indent=2) + "\n")  # never twice

    # The run that was cut off points at this one, and ends FAILED if it is still RUNNING.
    try:
        orphan = client.get_run(kept["run_id"])
    except MlflowException:
        orphan = None  # deleted meanwhile
    if orphan is not None:
        client.set_tag(orphan.info.run_id, "replaced_by_run_id", run.info.run_id)
    if orphan is not None and orphan.info.status == "RUNNING":
        client.set_terminated(orphan.info.run_id, "FAILED")

    print(f"Run {kept['run_name']!r} logged to experiment {experiment.name!r} from {folder}")
    print(f"  run id: {run.info.run_id}")
    if orphan is not None and orphan.info.status == "RUNNING":
        print(f"  the cut-off run {kept['run_id']} is now FAILED")
    print(f"  store:  {mlflow.get_tracking_uri()}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Log results that a training script kept when its tracking server was away.",
        epilog="Example: python offline.py sync offline-runs/rf-100trees-depthany-3f2a1b9c",
    )
    parser.add_argument("command", choices=["sync"], help="sync: log the kept results now")
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    args = input_checks.strict(parser).parse_args(argv)
    for folder in args.folders:
        sync(folder)


if __name__ == "__main__":
    server_errors.exit_on_error(main)
