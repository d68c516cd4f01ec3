"""A team's tracking server: the scripts, unchanged, log to `tracking_server.sh` over HTTP.

Each test starts a real `mlflow server` through tracking_server.sh on a free loopback port, on a
real PostgreSQL 15 cluster made for the test (team-server/README.md runs the SQLite one, through
tests/test_docs.py), then runs the docs' commands with nothing but MLFLOW_TRACKING_URI pointing at it. What the team would look
at is checked through the server's REST API (real HTTP), its artifact folder and its access log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mlflow
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
from testbeds.postgres_cluster import PG_BIN, throwaway_postgres

MODEL_NAME = "breast-cancer-classifier"
# uvicorn's access log: one line per request, e.g.
#   2026/11/26 10:02:05 INFO:     127.0.0.1:52140 - "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200 OK
ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" \d{3}')
# One default `train_rfc.py` run makes about 25 requests against MLflow 3.17.2 (see docs/benchmarks.md). Logging its 25 params
# one call each would add 24, so the bound leaves room for small changes in MLflow but not that.
MAX_REQUESTS_PER_RUN = 32


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL 15 cluster with an empty `mlflow` database (postgres_cluster.py)."""
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN} (apt-get install postgresql-15)")
    with throwaway_postgres() as cluster:
        yield cluster


# --- The tracking server --------------------------------------------------------------------


@dataclass
class TeamServer:
    """`tracking_server.sh` on PostgreSQL, on a free loopback port; a test may kill and restart it."""

    url: str
    artifacts: Path
    log: Path
    env: dict[str, str]
    cwd: Path
    start_process: object
    process: subprocess.Popen | None = None

    def start(self) -> None:
        # A restart appends to the same log.
        self.process = self.start_process(
            [REPO / "team-server" / "tracking_server.sh"], env=self.env, cwd=self.cwd, log=self.log
        )
        try:
            wait_for_http(f"{self.url}/health", self.process, timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log.read_text()}") from None

    def kill(self) -> None:
        """What a crash or a pulled plug does: SIGKILL to the whole group, no clean shutdown."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

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
def team_server(postgres, tmp_path, start_process) -> TeamServer:
    port = free_port()
    env = base_env()
    artifacts = tmp_path / "server" / "artifacts"
    env.update(
        PORT=str(port),
        BACKEND_STORE_URI=postgres.uri,
        ARTIFACTS_DESTINATION=str(artifacts),
        # One worker starts fastest, and keeps the access log in request order.
        WORKERS="1",
    )
    server = TeamServer(
        url=f"http://127.0.0.1:{port}",
        artifacts=artifacts,
        log=tmp_path / "server.log",
        env=env,
        cwd=tmp_path,
        start_process=start_process,
    )
    server.start()
    return server


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

    # All of it with model deserialization off in the server (tracking_server.sh sets it), and
    # the UI is served too.
    environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    assert b"MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false" in environ
    with urllib.request.urlopen(server.url, timeout=30) as ui:
        assert ui.status == 200 and b"<title>MLflow</title>" in ui.read()

    # And the server itself ran clean.
    log = server.log.read_text()
    for word in ("Warning", "warning:", "deprecated", "Traceback", "ERROR"):
        assert word not in log, f"{word!r} in the server log:\n{log}"


# --- When the server goes away ----------------------------------------------------------------

# A forest that trains for a second or two: long enough to pull the plug while it fits.
# Held at the start of its training while a test applies a fault (testbeds/paused_fit.py).
PAUSED_FIT = REPO / "tests" / "testbeds" / "paused_fit.py"
RFC = ["--n-estimators", "60"]
ERROR_LINES = re.compile(r"^error: .*$", re.MULTILINE)
SYNC_COMMAND = re.compile(r"log them once the server is back: (python \S+ sync \S+)$")


def laptop_copy(tmp_path: Path) -> Path:
    """A team member's folder: the scripts they copied, and the data. Kept runs land here."""
    laptop = tmp_path / "laptop"
    (laptop / "data").mkdir(parents=True)
    scripts = "train_rfc.py register_model.py promotion_gate.py check_model.py predict.py".split()
    helpers = "input_checks.py registry_messages.py server_errors.py offline.py tutorial_store.py"
    helpers = helpers.split()
    for name in [*scripts, *helpers]:
        shutil.copy(REPO / name, laptop)
    for name in ["breast_cancer_train.csv", "breast_cancer_eval.csv"]:
        shutil.copy(REPO / "data" / name, laptop / "data")
    return laptop


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error:` line a failed script printed, with no traceback around it."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = ERROR_LINES.findall(result.stderr)
    return line


def start_script(args: list[str], laptop: Path, env) -> subprocess.Popen:
    """A script in the background, in its own process group, its output captured."""
    return subprocess.Popen(
        [PYTHON, *args],
        cwd=laptop,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def train_through_fault(server: TeamServer, laptop: Path, env, fault) -> tuple[object, float]:
    """Start train_rfc.py, held as its training starts (after its params and training data are
    logged, before fit); apply `fault`, let the training go on. Return the script's result and
    its seconds from the fault to its exit."""
    gate = laptop / ".training-held"
    process = start_script([str(PAUSED_FIT), str(gate), "train_rfc.py", *RFC], laptop, env)
    try:
        deadline = time.monotonic() + 60
        while not gate.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the script never started training"
            time.sleep(0.05)
        fault()
        faulted = time.monotonic()
        gate.unlink()
        out, err = process.communicate(timeout=120)
        elapsed = time.monotonic() - faulted
    finally:
        stop_process_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), elapsed


def sync_as_told(error_line: str, laptop: Path, env) -> subprocess.CompletedProcess:
    """Type the command the error line gave, in the folder the script ran in."""
    (command,) = SYNC_COMMAND.search(error_line).groups()
    result = run_command(["bash", "-c", command], env=env, cwd=laptop)
    assert_clean(result)
    return result


def assert_replaced(client, orphan, synced_run_id: str) -> None:
    """The synced run holds what the cut-off run computed; the cut-off run ended FAILED."""
    orphan = client.get_run(orphan.info.run_id)
    assert orphan.info.status == "FAILED"
    assert orphan.data.tags["replaced_by_run_id"] == synced_run_id
    synced = client.get_run(synced_run_id)
    assert synced.info.status == "FINISHED"
    assert synced.info.run_name == orphan.info.run_name
    assert synced.data.tags["replaces_run_id"] == orphan.info.run_id
    assert synced.data.tags["model_family"] == "random_forest"
    # The params were logged before the fault; the kept copy brought back the same ones.
    assert synced.data.params == orphan.data.params
    assert synced.data.params["n_estimators"] == RFC[1]
    assert set(synced.data.metrics) == {
        "test_accuracy",
        "test_precision",
        "test_recall",
        "test_f1",
        "test_roc_auc",
    }
    assert [a.path for a in client.list_artifacts(synced_run_id)] == ["confusion_matrix.png"]
    (model,) = client.search_logged_models(
        experiment_ids=[synced.info.experiment_id],
        filter_string=f"source_run_id = '{synced_run_id}'",
    )
    assert {m.key: m.value for m in model.metrics} == synced.data.metrics


def test_no_server_is_one_line_in_seconds(tmp_path):
    """Nothing listens at the URI: each script says so in one line, in seconds (within 20 s on
    two busy cores), not after MLflow's minutes of retries."""
    laptop = laptop_copy(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"
    env = {**base_env(), "MLFLOW_TRACKING_URI": uri}
    commands = [["train_rfc.py"], ["register_model.py"], ["predict.py", "--data", str(DATA)]]
    started = time.monotonic()
    processes = [start_script(command, laptop, env) for command in commands]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=30)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    finally:
        for process in processes:
            stop_process_group(process)
    assert time.monotonic() - started < 20  # MLflow's default retries would take minutes
    for result in results:
        assert one_error_line(result) == (
            f"error: no tracking server answers at {uri} (connection refused): is it running, "
            "and is MLFLOW_TRACKING_URI right?"
        )
    # Nothing was written: no local store instead, nothing kept.
    assert not {"mlflow.db", "mlruns", "offline-runs"} & {p.name for p in laptop.iterdir()}


def test_a_server_or_database_that_goes_away_loses_no_model(team_server, postgres, tmp_path):
    server = team_server
    laptop = laptop_copy(tmp_path)
    env = {**base_env(), "MLFLOW_TRACKING_URI": server.url}
    client = mlflow.MlflowClient(tracking_uri=server.url)

    # 1. The server is killed as the forest starts training.
    result, seconds = train_through_fault(server, laptop, env, server.kill)
    print(f"\nserver killed: the script exited {seconds:.1f} s later")
    assert seconds < 60
    line = one_error_line(result)
    assert "(request to " in line and "failed: connection refused)" in line, line
    (kept,) = (laptop / "offline-runs").iterdir()
    assert {p.name for p in kept.iterdir()} == {"model", "run.json", "confusion_matrix.png"}
    assert (kept / "model" / "MLmodel").is_file()

    # Back up: the command from the error line logs the kept result and ends the cut-off run.
    server.start()
    (experiment,) = [
        e for e in client.search_experiments() if e.name == "breast-cancer-random-forest"
    ]
    (orphan,) = client.search_runs([experiment.experiment_id])
    assert orphan.info.status == "RUNNING"  # what MLflow alone would leave behind, forever
    synced = sync_as_told(line, laptop, env)
    synced_run_id = re.search(r"run id: (\w+)", synced.stdout)[1]
    assert_replaced(client, orphan, synced_run_id)

    # 2. The database stops as the forest starts training; the server stays up. This reader has
    # set their own retries (none), and the scripts keep to them.
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    result, seconds = train_through_fault(server, laptop, env, postgres.stop)
    print(f"database stopped: the script exited {seconds:.1f} s later")
    assert seconds < 60
    line = one_error_line(result)
    assert "failed: HTTP 503 responses)" in line, line
    # A run started while the database is down is refused up front, by the one request before
    # any work (that line says so), in seconds: not after minutes of retries.
    started = time.monotonic()
    refused = run_command([PYTHON, "train_rfc.py"], env=env, cwd=laptop, check=False)
    assert time.monotonic() - started < 30
    assert one_error_line(refused) == (
        f"error: the tracking server at {server.url} answers HTTP 503: see its log "
        "(is its database up?)"
    )

    # The database comes back; the server reconnects on its own, without a restart.
    postgres.start()
    orphan = next(
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.info.status == "RUNNING"
    )
    synced = sync_as_told(line, laptop, env)
    assert_replaced(client, orphan, re.search(r"run id: (\w+)", synced.stdout)[1])

    # The store is consistent: no run left RUNNING, none half-written, and the registry works.
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.status for run in runs) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    registered = run_command([PYTHON, "register_model.py"], env=env, cwd=laptop)
    assert_clean(registered)
    assert f"Model URI: models:/{MODEL_NAME}@champion" in registered.stdout
