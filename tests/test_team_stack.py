"""The team stack (team-server/team_stack.py): PostgreSQL, SeaweedFS and two tracking-server
replicas behind HAProxy, started by its own command, as team-server/stack.md shows it.

One stack serves the whole module, per worker (starting one costs about 25 s on two cores); each test logs
to an experiment of its own, and the faults restart what they broke with `team_stack.py start`.
The tests run in file order: the last one backs up and restores the champion the first made.
Clients get nothing but MLFLOW_TRACKING_URI (and no AWS_* variable); what they logged is
checked through the REST API, and every artifact through the bucket's own S3 API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import mlflow
import pandas as pd
import psycopg
import pytest
from test_team_server import laptop_copy, one_error_line, start_script, sync_as_told

from conftest import (
    DATA,
    FAST_ANN,
    FAST_RFC,
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    free_port,
    run_command,
    stop_process_group,
    stop_team_stack,
    wait_for_http,
)

# One worker runs the whole file (make's --dist loadgroup): the module's one stack, started once.
pytestmark = pytest.mark.xdist_group("team_stack")
TEAM_STACK = REPO / "team-server" / "team_stack.py"
MODEL_NAME = "breast-cancer-classifier"
CLIENTS, RUNS_PER_CLIENT = 8, 3  # at least 3 runs each, then on until told to stop


class Stack:
    """A team stack in `folder`, its one address on `port`."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.url = folder, port, f"http://127.0.0.1:{port}"

    def command(self, *args: str, check=True) -> subprocess.CompletedProcess:
        command = [PYTHON, TEAM_STACK, "--folder", self.folder, *args]
        result = run_command(command, env=base_env(), cwd=self.folder.parent, check=check)
        assert_clean(result)
        return result

    @property
    def server_env(self) -> dict[str, str]:
        lines = (self.folder / "server.env").read_text().splitlines()
        return dict(re.fullmatch(r"export (\w+)=(.*)", line).groups() for line in lines)

    def bucket(self):
        env = self.server_env
        s3 = boto3.resource(
            "s3",
            endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        return s3.Bucket("mlflow")

    def keys(self, prefix: str = "") -> set[str]:
        return {item.key for item in self.bucket().objects.filter(Prefix=prefix)}

    def kill(self, part: str) -> None:
        """What a crash does: SIGKILL to the part's whole process group."""
        os.killpg(int((self.folder / f"{part}.pid").read_text()), signal.SIGKILL)

    def listening_ports(self) -> list[int]:
        settings = json.loads((self.folder / "stack.json").read_text())
        ports = [self.port, settings["postgres_port"], *settings["seaweedfs_ports"]]
        return [p for p in ports + settings["replica_ports"] if not port_is_free(p)]


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# Session-scoped (per worker): xdist may run another module's test between two of this module's,
# which would end a module-scoped stack and start another.
@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("team") / "stack"
    team = Stack(folder, free_port())
    try:
        started = team.command("start", "--port", str(team.port))
        assert f"MLflow team stack on {team.url}" in started.stdout
        assert "(new and empty)" in started.stdout
        yield team
        stopped = team.command("stop")
        assert stopped.stdout == "Stopped: haproxy, replica-1, replica-2, seaweedfs, postgres\n"
        assert team.listening_ports() == []
        assert not list(folder.glob("*.pid"))
    finally:
        stop_team_stack(folder)


def laptop_env(stack: Stack) -> dict[str, str]:
    env = {**base_env(), "MLFLOW_TRACKING_URI": stack.url}
    assert not [name for name in env if name.startswith("AWS_")]
    return env


def test_the_lesson_runs_against_the_stack_and_every_artifact_is_in_the_bucket(stack, tmp_path):
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    env = laptop_env(stack)

    def run(*command):
        result = run_command([PYTHON, *command], env=env, cwd=laptop)
        assert_clean(result)
        return result

    run(REPO / "train_rfc.py", *FAST_RFC, "--run-name", "team-forest")
    run(REPO / "train_ann.py", *FAST_ANN, "--run-name", "team-mlp")
    registered = run(REPO / "register_model.py")
    assert f"Model URI: models:/{MODEL_NAME}@champion" in registered.stdout
    run(REPO / "predict.py", "--data", str(DATA), "--output", "predictions.csv")
    predicted = pd.read_csv(laptop / "predictions.csv")["prediction"].tolist()
    assert len(predicted) == len(pd.read_csv(DATA)) and set(predicted) <= {"benign", "malignant"}
    # The drift check on a batch the champion answered: it finds the training rows through the
    # champion's run on the stack, and its report goes to the bucket as well.
    batch = str(REPO / "data" / "later_steady.csv")
    run(REPO / "predict.py", "--data", batch, "--output", "steady-answers.csv")
    checked = run(REPO / "monitoring" / "check_drift.py", "--data", batch, "--predictions", "steady-answers.csv")  # fmt: skip
    assert "steady: 0 of 30 features drifted" in checked.stdout, checked.stdout

    # serve_model.sh by alias, through the stack; its answers are predict.py's.
    port = free_port()
    server = subprocess.Popen(
        [REPO / "serve_model.sh"],
        env={**env, "PORT": str(port)},
        cwd=laptop,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=120)
        rows = pd.read_csv(DATA).drop(columns=["diagnosis"]).head(20)
        body = json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            served = json.load(answer)["predictions"]
    finally:
        stop_process_group(server)
    assert served == predicted[:20]

    # Every run's figure and every logged model's files are in the bucket, found by S3.
    client = mlflow.MlflowClient(stack.url)
    keys = stack.keys()
    monitoring = client.get_experiment_by_name("breast-cancer-monitoring").experiment_id
    (check,) = client.search_runs([monitoring])
    assert f"artifacts/{monitoring}/{check.info.run_id}/artifacts/drift_report.html" in keys
    for experiment in ["breast-cancer-random-forest", "breast-cancer-neural-network"]:
        experiment_id = client.get_experiment_by_name(experiment).experiment_id
        (run,) = client.search_runs([experiment_id])
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        assert f"artifacts/{experiment_id}/{run.info.run_id}/artifacts/confusion_matrix.png" in keys
        (model,) = client.search_logged_models([experiment_id])
        (skops,) = [k for k in keys if f"/models/{model.model_id}/" in k and k.endswith(".skops")]
        assert f"/models/{model.model_id}/artifacts/MLmodel" in " ".join(keys)
        assert stack.bucket().Object(skops).content_length > 10_000  # the fitted model itself
    # ...and none on the laptop: it holds its predictions, nothing else.
    assert sorted(p.name for p in laptop.iterdir()) == ["predictions.csv", "steady-answers.csv"]


def census(stack: Stack, experiment_id: str, outputs: list[Path]) -> None:
    """Every run a client sent is in the store whole, with its artifact in the bucket; no other."""
    client = mlflow.MlflowClient(stack.url)
    sent = [run for output in outputs for run in json.loads(output.read_text())["runs"]]
    stored = {run.info.run_id: run for run in client.search_runs([experiment_id], max_results=1000)}
    assert sorted(stored) == sorted(run["run_id"] for run in sent), "runs lost or added"
    keys = stack.keys(f"artifacts/{experiment_id}/")
    for each in sent:
        run = stored[each["run_id"]]
        assert run.info.status == "FINISHED" and run.info.run_name == each["name"]
        assert run.data.params == each["params"]
        history = client.get_metric_history(each["run_id"], "loss")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == each["losses"]
        assert "accuracy" in run.data.metrics
        key = f"artifacts/{experiment_id}/{each['run_id']}/artifacts/notes/run.txt"
        assert key in keys
        assert stack.bucket().Object(key).get()["Body"].read().decode() == each["text"]


def clients_logging(
    stack: Stack, experiment: str, tmp_path: Path, clients: int, runs: int, stop_file=None
):
    """`clients` processes of tests/team_stack_client.py, started at once; their outputs. With
    `stop_file`, each logs at least `runs` runs and goes on until that file exists."""
    experiment_id = mlflow.MlflowClient(stack.url).create_experiment(experiment)
    outputs = [tmp_path / f"client-{n}.json" for n in range(clients)]
    until = [str(stop_file)] if stop_file else []
    script = str(REPO / "tests" / "team_stack_client.py")
    processes = [
        start_script(
            [script, experiment_id, f"c{n}", str(runs), output, *until], tmp_path, laptop_env(stack)
        )
        for n, output in enumerate(outputs)
    ]
    return experiment_id, outputs, processes


def finish(processes) -> None:
    try:
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            assert "Traceback" not in err, err
    finally:
        for process in processes:
            stop_process_group(process)


def wait_for_runs(client, experiment_id: str, count: int, why: str) -> None:
    deadline = time.monotonic() + 180
    while len(client.search_runs([experiment_id], max_results=1000)) < count:
        assert time.monotonic() < deadline, why
        time.sleep(0.2)


def test_a_replica_killed_under_8_clients_loses_nothing(stack, tmp_path):
    # The clients log until told to stop: the load is on through the crash and the restart.
    stop_file = tmp_path / "stop"
    experiment_id, outputs, processes = clients_logging(
        stack, "eight-clients", tmp_path, CLIENTS, RUNS_PER_CLIENT, stop_file
    )
    client = mlflow.MlflowClient(stack.url)
    log = stack.folder / "replica-1.log"
    try:
        # Once every client is logging, replica 1 crashes; the stack's start brings it back.
        wait_for_runs(client, experiment_id, CLIENTS, "the clients never started logging")
        stack.kill("replica-1")
        restarted = stack.command("start", "--port", str(stack.port))
        assert "(started in" in restarted.stdout
        assert all(p.poll() is None for p in processes), "a client ended while a replica was down"
        # Under the same load, the restarted replica serves again: two more runs per client,
        # and requests in its log since the restart.
        since = log.stat().st_size
        done = len(client.search_runs([experiment_id], max_results=1000))
        wait_for_runs(client, experiment_id, done + 2 * CLIENTS, "the load stopped after restart")
        served = log.read_text(errors="replace")[since:]
        assert re.search(r'"POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200', served), served
        assert all(p.poll() is None for p in processes), "the clients ended before the restart"
    finally:
        stop_file.touch()
        finish(processes)
    census(stack, experiment_id, outputs)


def test_postgres_restarted_mid_run_loses_nothing(stack, tmp_path):
    experiment_id, outputs, processes = clients_logging(stack, "postgres-restart", tmp_path, 2, 10)
    client = mlflow.MlflowClient(stack.url)
    try:
        deadline = time.monotonic() + 120
        while len(client.search_runs([experiment_id])) < 2:
            assert time.monotonic() < deadline, "the clients never started logging"
            time.sleep(0.2)
        # PostgreSQL's fast shutdown, as a patch or a restart of the database host does it.
        os.killpg(int((stack.folder / "postgres.pid").read_text()), signal.SIGINT)
        postgres_port = json.loads((stack.folder / "stack.json").read_text())["postgres_port"]
        while not port_is_free(postgres_port):
            time.sleep(0.1)
        stack.command("start", "--port", str(stack.port))
    finally:
        finish(processes)
    census(stack, experiment_id, outputs)


def test_the_object_store_stopped_is_one_line_and_the_model_is_kept(stack, tmp_path):
    laptop = laptop_copy(tmp_path)
    env = laptop_env(stack)
    stack.kill("seaweedfs")
    try:
        result = run_command(
            [PYTHON, "train_rfc.py", *FAST_RFC], env=env, cwd=laptop, check=False, timeout=180
        )
    finally:
        stack.command("start", "--port", str(stack.port))
    line = one_error_line(result)
    print(f"\n{line}")
    assert re.match(
        r"error: logging failed after training \(request to \S+/mlflow-artifacts/artifacts/\S+ "
        r"failed: HTTP 5\d\d responses, the server could not write to its artifact store ",
        line,
    ), line
    (kept,) = (laptop / "offline-runs").iterdir()
    assert (kept / "model" / "MLmodel").is_file()
    synced = sync_as_told(line, laptop, env)
    run_id = re.search(r"run id: (\w+)", synced.stdout)[1]
    run = mlflow.MlflowClient(stack.url).get_run(run_id)
    keys = stack.keys(f"artifacts/{run.info.experiment_id}/{run_id}/")
    assert any(key.endswith("confusion_matrix.png") for key in keys)


def ensure_champion(stack: Stack, env: dict, folder: Path) -> None:
    """The champion the lesson's test registers, or one of this test's own where the stack has
    none (xdist may run this module's tests in another order, or this test alone)."""
    try:
        mlflow.MlflowClient(stack.url).get_model_version_by_alias(MODEL_NAME, "champion")
    except mlflow.exceptions.MlflowException:
        for script in (["train_rfc.py", *FAST_RFC], ["register_model.py"]):
            assert_clean(run_command([PYTHON, REPO / script[0], *script[1:]], env=env, cwd=folder))


def test_gc_removes_a_deleted_run_and_a_backup_restores_the_same_store(stack, tmp_path):
    env = laptop_env(stack)
    ensure_champion(stack, env, tmp_path)
    experiment_id, outputs, processes = clients_logging(stack, "housekeeping", tmp_path, 1, 2)
    finish(processes)
    doomed, kept = [run["run_id"] for run in json.loads(outputs[0].read_text())["runs"]]
    mlflow.MlflowClient(stack.url).delete_run(doomed)
    # mlflow gc on the server side: the database's URL and password, the replicas for objects.
    server = {**base_env(), **stack.server_env, "MLFLOW_TRACKING_URI": stack.url}
    gc = run_command(
        ["mlflow", "gc", "--backend-store-uri", server["BACKEND_STORE_URI"]],
        env=server,
        cwd=tmp_path,
    )
    assert_clean(gc)
    assert f"Run with ID {doomed} has been permanently deleted." in gc.stdout
    uri = server["BACKEND_STORE_URI"].replace("+psycopg", "")
    with psycopg.connect(uri, password=server["PGPASSWORD"]) as db:
        rows = db.execute(
            "select run_uuid from runs where experiment_id = %s", (int(experiment_id),)
        )
        assert [row[0] for row in rows] == [kept]
    assert not stack.keys(f"artifacts/{experiment_id}/{doomed}/")
    assert stack.keys(f"artifacts/{experiment_id}/{kept}/")

    # Backup, then a new stack restored from it: the same runs, and the same champion answers.
    backup = tmp_path / "backup"
    stack.command("backup", str(backup))
    restored = Stack(tmp_path / "restored", free_port())
    try:
        started = restored.command(
            "start", "--port", str(restored.port), "--replicas", "1", "--restore", str(backup)
        )
        assert "registered model" in started.stdout
        old, new = mlflow.MlflowClient(stack.url), mlflow.MlflowClient(restored.url)
        for experiment in old.search_experiments():
            ids = [experiment.experiment_id]
            before = {r.info.run_id: (r.data.metrics, r.data.params) for r in old.search_runs(ids)}
            after = {r.info.run_id: (r.data.metrics, r.data.params) for r in new.search_runs(ids)}
            assert before == after, experiment.name
        assert restored.keys() == stack.keys()
        answers = []
        for url in (stack.url, restored.url):
            result = run_command(
                [PYTHON, REPO / "predict.py"], env={**env, "MLFLOW_TRACKING_URI": url}, cwd=tmp_path
            )
            answers.append(result.stdout)
        assert answers[0] == answers[1] and "malignant" in answers[0]
    finally:
        restored.command("stop", check=False)
        stop_team_stack(restored.folder)
