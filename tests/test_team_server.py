"""A team's tracking server: the scripts, unchanged, log to `tracking_server.sh` over HTTP.

Each test starts a real `mlflow server` through tracking_server.sh on a free loopback port, on a
real PostgreSQL 15 cluster made for the test (docs/team-server.md runs the SQLite one, through
tests/test_docs.py), then runs the docs' commands with nothing but MLFLOW_TRACKING_URI pointing at it. What the team would look
at is checked through the server's REST API (real HTTP), its artifact folder and its access log.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from conftest import (
    DATA,
    FAST_ANN,
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    free_port,
    run_command,
    stop_process_group,
    wait_for_http,
)

MODEL_NAME = "breast-cancer-classifier"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# uvicorn's access log: one line per request, e.g.
#   2026/11/26 10:02:05 INFO:     127.0.0.1:52140 - "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200 OK
ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" \d{3}')
# One default `train_rfc.py` run makes about 25 requests against MLflow 3.17.2 (see docs/benchmarks.md). Logging its 22 params
# one call each would add 21, so the bound leaves room for small changes in MLflow but not that.
MAX_REQUESTS_PER_RUN = 32


# --- PostgreSQL -----------------------------------------------------------------------------


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as `nobody` when we are root."""
    if os.geteuid() != 0:
        return []
    nobody = pwd.getpwnam("nobody")
    return [
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--",
    ]


@pytest.fixture
def postgres_uri():
    """A throwaway PostgreSQL 15 cluster on a free loopback port, with an empty `mlflow` db.

    The cluster lives in its own temporary folder (owned by the unprivileged user that runs it;
    pytest's tmp_path is private to root) and is stopped, whole process group, and deleted
    afterwards, also when the test fails.
    """
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN} (apt-get install postgresql-15)")
    user = _as_postgres_user()
    base = Path(tempfile.mkdtemp(prefix="mlflow-test-pg-"))
    if user:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
    data, sockets = base / "data", base / "sockets"
    env = {**base_env(), "LC_ALL": "C"}
    postgres = None
    try:
        run_command(
            [*user, PG_BIN / "initdb", "-D", data, "-U", "mlflow", "--auth=trust", "-E", "UTF8"]
            + ["--locale=C", "--no-sync", "--no-instructions"],
            env=env,
            cwd=base,
            timeout=120,
        )
        run_command([*user, "mkdir", sockets], env=env, cwd=base)
        port = free_port()
        # Durability off: a test database is thrown away, and fsyncs cost seconds.
        postgres = subprocess.Popen(
            [*user, PG_BIN / "postgres", "-D", data, "-p", str(port), "-k", sockets]
            + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
            + ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            env=env,
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(base / "postgres.log", "w"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while run_command(
            [PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=base,
            check=False,
        ).returncode:
            assert postgres.poll() is None, (base / "postgres.log").read_text()
            assert time.monotonic() < deadline, "PostgreSQL did not start within 60 s"
            time.sleep(0.2)
        run_command(
            [PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"],
            env=env,
            cwd=base,
        )
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        if postgres is not None:
            # SIGINT is PostgreSQL's "fast shutdown": clients cut off, shared memory released.
            if postgres.poll() is None:
                os.killpg(postgres.pid, signal.SIGINT)
                try:
                    postgres.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            stop_process_group(postgres)
        shutil.rmtree(base, ignore_errors=True)


# --- The tracking server --------------------------------------------------------------------


@dataclass
class TeamServer:
    url: str
    artifacts: Path
    log: Path

    def requests(self) -> list[str]:
        """Method and path of every request so far, from the server's access log.

        A last /health request, waited for in the log, makes sure that every earlier request
        has been logged too (the server runs one worker, so lines come in order).
        """
        marker = f"/health?after={time.monotonic_ns()}"
        with urllib.request.urlopen(self.url + marker, timeout=10):
            pass
        deadline = time.monotonic() + 10
        while marker not in self.log.read_text():
            assert time.monotonic() < deadline, f"{marker} never reached the access log"
            time.sleep(0.05)
        lines = [ACCESS_LINE.search(line) for line in self.log.read_text().splitlines()]
        found = [f"{m[1]} {m[2]}" for m in lines if m]
        return found[:-1]  # without the marker

    def get(self, endpoint: str, **query) -> dict:
        url = f"{self.url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def post(self, endpoint: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/{endpoint}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture
def team_server(postgres_uri, tmp_path, start_process) -> TeamServer:
    port = free_port()
    artifacts = tmp_path / "server" / "artifacts"
    log = tmp_path / "server.log"
    env = base_env()
    env.update(
        PORT=str(port),
        BACKEND_STORE_URI=postgres_uri,
        ARTIFACTS_DESTINATION=str(artifacts),
        # One worker starts fastest, and keeps the access log in request order.
        WORKERS="1",
    )
    process = start_process([REPO / "tracking_server.sh"], env=env, cwd=tmp_path, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()}") from None
    return TeamServer(url=url, artifacts=artifacts, log=log)


# --- The tests ------------------------------------------------------------------------------


def test_the_scripts_work_unchanged_against_a_team_server(team_server, tmp_path):
    server = team_server
    # A team member's machine: an empty folder and one environment variable.
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    env = {**base_env(), "MLFLOW_TRACKING_URI": server.url}

    def run(script, *args):
        result = run_command([PYTHON, REPO / script, *args], env=env, cwd=laptop)
        assert_clean(result)
        return result

    # One default run of the forest, request by request, as the server saw it.
    before = len(server.requests())
    run("train_rfc.py", "--run-name", "team-forest")
    requests = server.requests()[before:]
    print(f"\n{len(requests)} HTTP requests for one default train_rfc.py run")
    assert not [r for r in requests if "/runs/log-parameter" in r or "/runs/log-metric" in r]
    assert len(requests) <= MAX_REQUESTS_PER_RUN, "\n".join(requests)

    # A teammate trains the other family.
    run("train_ann.py", *FAST_ANN, "--run-name", "team-mlp")
    registered = run("register_model.py")
    assert f"Model URI: models:/{MODEL_NAME}@champion" in registered.stdout
    before = len(server.requests())
    run("predict.py", "--data", str(DATA), "--output", "predictions.csv")
    model_downloads = [r for r in server.requests()[before:] if r.endswith("/model.skops")]

    # The runs, as anyone on the team sees them through the server's REST API.
    forest_experiment = server.get(
        "experiments/get-by-name", experiment_name="breast-cancer-random-forest"
    )["experiment"]
    assert forest_experiment["artifact_location"].startswith("mlflow-artifacts:/")
    (forest,) = server.post(
        "runs/search", {"experiment_ids": [forest_experiment["experiment_id"]]}
    )["runs"]
    assert forest["info"]["run_name"] == "team-forest"
    assert forest["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in forest["data"]["params"]}
    assert params["n_estimators"] == "100"
    metrics = {m["key"] for m in forest["data"]["metrics"]}
    assert {"test_accuracy", "test_f1", "test_roc_auc"} <= metrics
    run_ids = {forest["info"]["run_id"]}
    mlp_experiment = server.get(
        "experiments/get-by-name", experiment_name="breast-cancer-neural-network"
    )["experiment"]
    search = {"experiment_ids": [mlp_experiment["experiment_id"]]}
    (mlp,) = server.post("runs/search", search)["runs"]
    assert mlp["info"]["run_name"] == "team-mlp"
    run_ids.add(mlp["info"]["run_id"])

    # The registered model and its champion alias.
    model = server.get("registered-models/get", name=MODEL_NAME)["registered_model"]
    champion = server.get("registered-models/alias", name=MODEL_NAME, alias="champion")
    version = champion["model_version"]
    assert {"alias": "champion", "version": version["version"]} in model["aliases"]
    assert version["run_id"] in run_ids

    # predict.py fetched the champion through the server and scored every row.
    assert len(model_downloads) == 1, model_downloads
    predictions = pd.read_csv(laptop / "predictions.csv")
    assert list(predictions.columns) == ["prediction"]
    assert len(predictions) == len(pd.read_csv(DATA))
    assert set(predictions["prediction"]) <= {"benign", "malignant"}

    # Every artifact went to the server's destination; the laptop kept nothing but its output.
    stored = {path.name for path in server.artifacts.rglob("*") if path.is_file()}
    assert {"confusion_matrix.png", "model.skops", "MLmodel"} <= stored
    forest_figure = (
        server.artifacts
        / forest_experiment["experiment_id"]
        / forest["info"]["run_id"]
        / "artifacts"
        / "confusion_matrix.png"
    )
    assert forest_figure.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in laptop.iterdir()) == ["predictions.csv"]

    # And the server itself ran clean.
    log = server.log.read_text()
    for word in ("Warning", "warning:", "deprecated", "Traceback", "ERROR"):
        assert word not in log, f"{word!r} in the server log:\n{log}"
