"""tutorial_store.py's pure parts: which store, the one line when there is none, the port check."""

from __future__ import annotations

import socket
import subprocess

import pytest

import tutorial_store
from conftest import PYTHON, REPO


def test_the_environment_names_the_store_first(tmp_path):
    environ = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5050"}
    assert tutorial_store.store_uri(tmp_path, environ) == "http://127.0.0.1:5050"


def test_else_mlflow_db_in_the_repository_if_it_exists(tmp_path):
    assert tutorial_store.store_uri(tmp_path, {}) is None
    (tmp_path / "mlflow.db").touch()
    assert tutorial_store.store_uri(tmp_path, {}) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    # An empty MLFLOW_TRACKING_URI is unset, as MLflow reads it.
    empty = {"MLFLOW_TRACKING_URI": ""}
    assert tutorial_store.store_uri(tmp_path, empty) == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_no_store_is_one_line_saying_what_to_run_first(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SystemExit) as stopped:
        tutorial_store.existing_store_uri(tmp_path)
    assert str(stopped.value) == (
        f"error: no store at {tmp_path / 'mlflow.db'}; train and register first: "
        "python train_rfc.py && python register_model.py"
    )
    assert not (tmp_path / "mlflow.db").exists()  # and none was created


def test_what_was_asked_for_and_the_line_when_it_is_not_registered():
    asked = tutorial_store.model_uri_asked("m", "champion")
    assert asked == "models:/m@champion"
    assert tutorial_store.model_uri_asked("m", "champion", "3") == "models:/m/3"
    assert tutorial_store.not_registered(asked, "sqlite:///x.db") == (
        "error: no models:/m@champion in sqlite:///x.db; run 'python register_model.py' first"
    )


def test_a_port_is_free_until_a_server_listens_on_it():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert not tutorial_store.port_is_free("127.0.0.1", port)
    assert tutorial_store.port_is_free("127.0.0.1", port)


def test_the_shell_scripts_command_line_answers_without_mlflow():
    """port-free, as serve_model.sh and the Makefile call it: an exit code, no output."""
    script = str(REPO / "tutorial_store.py")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        busy = subprocess.run([PYTHON, script, "port-free", "127.0.0.1", port], capture_output=True)
    assert busy.returncode == 1 and busy.stdout == busy.stderr == b""
