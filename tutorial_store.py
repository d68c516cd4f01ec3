"""The tutorial's store and its champion, decided in one place. Not the lesson.

Every script that is not meant to be copied alone asks this module three things, so that each
answer is written once:

- `use_store()`: which store. MLFLOW_TRACKING_URI if it is set (a team server, say), else the
  SQLite file mlflow.db at the repository root, whatever the working folder. When that file
  does not exist, one `error:` line and exit 1: MLflow would create an empty store just to find
  nothing in it. (A tracking server that is down is one line too: server_errors.py.)
- `checked_version()`: which version an alias points at (or whether a version number exists),
  and that check_model.py vouches for its MLmodel (nothing is loaded); one line when it cannot.
  Pinned to a number, so that the version checked is the version loaded or served.
- `port_is_free()`: whether a server could listen on a port, so that a busy one is one line
  instead of uvicorn's traceback.

The training scripts and the quickstart keep their own few lines for the store: they are the
lesson, and must run copied alone. The shell scripts (serve_model.sh, container/*.sh) and the
Makefile call the command line (the shell scripts through tutorial_shell.sh):

    python tutorial_store.py store                           # the store's URI
    python tutorial_store.py version                         # the champion's version, checked
    python tutorial_store.py version --alias staging --version 3
    python tutorial_store.py port-free 127.0.0.1 5001        # exit 1 (and no output) if taken
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import input_checks

# The repository this file is in: its mlflow.db is the tutorial's store, and mlruns/ beside it
# holds the artifacts of the experiments made there (not ./mlruns of whatever folder a script
# runs from). A script in a room passes its own repository root (`repo=`): installed with
# `pip install -e .`, this module is the one of the clone it was installed from, which need
# not be the clone (or the copy) the script runs in.
REPO = Path(__file__).resolve().parent
MODEL_NAME = "breast-cancer-classifier"
ALIAS = "champion"
TRAIN_AND_REGISTER = "train and register first: python train_rfc.py && python register_model.py"
# What MLflow answers for no such model, alias ("INVALID_PARAMETER_VALUE") or version.
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def store_uri(repo: Path = REPO, environ: Mapping[str, str] = os.environ) -> str | None:
    """MLFLOW_TRACKING_URI if set (MLflow takes an empty one as unset, and so does this), else
    the SQLite URI of mlflow.db in `repo` if that file exists, else None."""
    if environ.get("MLFLOW_TRACKING_URI"):
        return environ["MLFLOW_TRACKING_URI"]
    store = repo / "mlflow.db"
    return f"sqlite:///{store}" if store.exists() else None


def existing_store_uri(repo: Path = REPO, then: str = TRAIN_AND_REGISTER) -> str:
    """The store's URI, or exit with one line if there is none (`then` says what to run first)."""
    uri = store_uri(repo)
    if uri is None:
        raise SystemExit(f"error: no store at {repo / 'mlflow.db'}; {then}")
    return uri


def use_store(repo: Path = REPO, then: str = TRAIN_AND_REGISTER) -> str:
    """Point MLflow at the tutorial's store and return its URI; exit with one line if there is
    none. A tracking server that is down: one line in seconds, not minutes of retries."""
    import mlflow  # here, not at the top: `store` and `port-free` answer without it

    import server_errors

    uri = existing_store_uri(repo, then)
    mlflow.set_tracking_uri(uri)
    server_errors.check_tracking_server()
    return uri


def is_tutorial_store(repo: Path = REPO) -> bool:
    """Whether MLflow writes to mlflow.db at the repository root (not a server, not another file)."""
    import mlflow

    return mlflow.get_tracking_uri() == f"sqlite:///{repo / 'mlflow.db'}"


def set_experiment(name: str, repo: Path = REPO) -> str:
    """Make `name` the active experiment and return its id; created in the tutorial's store with
    its artifacts under mlruns/ at the repository root (elsewhere MLflow picks the place)."""
    import mlflow

    if is_tutorial_store(repo) and not mlflow.get_experiment_by_name(name):
        mlflow.create_experiment(name, (repo / "mlruns" / name).as_uri())
    return mlflow.set_experiment(name).experiment_id


def model_uri_asked(model_name: str, alias: str, version: str | None = None) -> str:
    """What the reader asked for, as a model URI: the version if one was given, else the alias."""
    return f"models:/{model_name}/{version}" if version else f"models:/{model_name}@{alias}"


def not_registered(asked: str, store: str) -> str:
    """The one line for a model, alias or version the store does not hold."""
    return f"error: no {asked} in {store}; run 'python register_model.py' first"


def version_of(model_name: str, alias: str = ALIAS, version: str | None = None):
    """The ModelVersion `alias` points at (or version number `version`), or None if the store
    has no such model, alias or version. Any other error (a team server's refusal) is raised."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        if version:
            return MlflowClient().get_model_version(model_name, version)
        return MlflowClient().get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise


def registered_version(model_name: str, alias: str = ALIAS, version: str | None = None):
    """The ModelVersion `alias` points at (or `version`, if the model has it), or exit with one
    line saying what to run first."""
    import mlflow

    found = version_of(model_name, alias, version)
    if found is None:
        asked = model_uri_asked(model_name, alias, version)
        raise SystemExit(not_registered(asked, mlflow.get_tracking_uri()))
    return found


def checked_version(model_name: str = MODEL_NAME, alias: str = ALIAS, version: str | None = None):
    """The version `alias` points at (or `version`), checked by check_model.py before anything
    loads it: (its ModelVersion, its ModelInfo). Exits with one line if there is no such
    version or check_model refuses it. Pinned to its number, so that the version checked is the
    version loaded or served, whatever the alias does next."""
    from check_model import check_model

    found = registered_version(model_name, alias, version)
    info = check_model(f"models:/{model_name}/{found.version}")  # MLmodel only: nothing loaded
    return found, info


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (another may take it a moment later)."""
    try:
        socket.create_server((host, port)).close()
    except OSError:
        return False
    return True


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.command == "port-free":
        sys.exit(0 if port_is_free(args.host, args.port) else 1)
    if args.command == "store":
        print(existing_store_uri())
        return
    use_store()
    found, _ = checked_version(args.model_name, args.alias, args.version or None)
    print(found.version)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="The tutorial's store and its champion, for the shell scripts.",
        epilog="Example: python tutorial_store.py version --alias champion",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    store = commands.add_parser("store", help="print the store's URI (one line if there is none)")
    version = commands.add_parser(
        "version", help="print the version an alias points at, checked by check_model.py"
    )
    version.add_argument(
        "--model-name", default=MODEL_NAME, help="registered model (default: %(default)s)"
    )
    version.add_argument("--alias", default=ALIAS, help="alias to resolve (default: %(default)s)")
    version.add_argument(
        "--version", default="", help="this version number instead of the alias's, if it exists"
    )
    port = commands.add_parser("port-free", help="exit 0 if a server could listen there, else 1")
    port.add_argument("host", help="address to listen on, e.g. 127.0.0.1")
    port.add_argument("port", type=int, help="port number")
    for each in (parser, store, version, port):
        input_checks.strict(each)  # a bad flag printed as one line
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] in (["port-free"], ["store"]):  # nothing from MLflow to import: quicker
        main()
    else:
        import server_errors

        server_errors.exit_on_error(main)
