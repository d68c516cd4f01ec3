"""The champion rebuilt exactly: `ENV_MANAGER=uv ./serve_model.sh` serves it in an environment
uv builds from the requirements it was logged with, and that environment holds every logged
package at its logged version, nothing else but the installer's own; its answers (labels and
probabilities) are the in-process ones, row for row. Slow (the environment is built cold, in a
folder of the test's own): it runs with the container room (`make test-container`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import mlflow

from conftest import BIN, REPO, free_port, wait_for_http

# The uv on PATH (make's), else the one `make env` put beside this Python.
UV = shutil.which("uv") or str(BIN / "uv")

MODEL = "breast-cancer-classifier"
# What uv puts in every environment it builds for MLflow (python_env.yaml's build dependencies).
INSTALLER = {"pip", "setuptools", "wheel"}


def requirements(text: str) -> dict[str, str]:
    """{'numpy': '2.4.6', ...} from pinned `name==version` lines."""
    return dict(line.split("==") for line in text.split() if "==" in line)


def test_the_uv_environment_holds_exactly_the_logged_versions_and_answers_alike(
    trained_store, start_process, tmp_path
):
    store = trained_store
    assert store.call("register_model.py").returncode == 0
    logged_folder = Path(
        mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", tracking_uri=store.uri)
    )
    logged = requirements((logged_folder / "requirements.txt").read_text())
    assert {"numpy", "scipy", "pandas", "scikit-learn", "skops", "joblib", "mlflow"} <= set(logged)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **store.env,
        "PORT": str(port),
        "ENV_MANAGER": "uv",
        "ANSWER": "probabilities",
        "SERVED_FOLDER": str(tmp_path / "served"),
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),  # built cold, and removed with tmp_path
    }
    server = start_process([str(REPO / "serve_model.sh")], env=env, cwd=REPO, log=tmp_path / "log")
    wait_for_http(f"{url}/ping", server, timeout=600)

    (environment,) = (tmp_path / "envs").glob("mlflow-*")
    frozen = subprocess.run(
        [UV, "pip", "freeze", "--python", str(environment / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = requirements(frozen)
    different = {
        name: (version, installed.get(name))
        for name, version in logged.items()
        if installed.get(name) != version
    }
    assert not different, f"logged vs installed: {different}"
    assert set(installed) - set(logged) <= INSTALLER, set(installed) - set(logged)

    here = store.call("predict.py", "--proba")
    there = store.call("predict.py", "--proba", "--url", url)
    assert here.returncode == there.returncode == 0, here.stderr + there.stderr
    assert there.stdout == here.stdout
