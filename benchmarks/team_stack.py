"""Part 12, the team stack (team-server/team_stack.py): how long it takes to start, how many
runs per second 1, 2 and 4 replicas on PostgreSQL take from 8 clients, what 2 replicas on one
SQLite file do with the same load, and a large artifact uploaded through the replicas with and
without MLflow's multipart upload."""

import contextlib
import importlib.util
import json
import shutil
import time

import mlflow
from harness import PYTHON, REPO, Bench, free_port, py, secs

import process_groups

TEAM_STACK = REPO / "team-server" / "team_stack.py"
CLIENT = REPO / "tests" / "team_stack_client.py"  # the clients of tests/test_team_stack.py
spec = importlib.util.spec_from_file_location("team_stack", TEAM_STACK)
team_stack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(team_stack)


def measure(bench: Bench):
    quick = bench.s.quick
    clients, runs = (2, 1) if quick else (8, 5)
    rows = []

    # The start: a new stack (a new cluster, the object store, 2 replicas, the first creates
    # MLflow's tables), then a stack that only starts again on its data.
    folder = bench.work / "stack-start"
    start = py(TEAM_STACK, "--folder", folder, "start", "--port", free_port())
    stop = py(TEAM_STACK, "--folder", folder, "stop")
    forget = f"{stop} >/dev/null; rm -rf {folder}"
    try:
        new = bench.hyperfine(start, bench.env(), runs=1 if quick else 2, warmup=0, prepare=forget)
        rows.append(f"start, a new stack | PostgreSQL | 2 | {secs(new)} | none")
        again = bench.hyperfine(start, bench.env(), runs=1 if quick else 2, warmup=0, prepare=stop)
        rows.append(f"start, on its data | PostgreSQL | 2 | {secs(again)} | none")
    finally:
        forget_stack(bench, folder)

    # Runs per second: the same clients against 1, 2 and 4 replicas, each a new stack.
    artifact_rows = []
    for replicas in (1,) if quick else (1, 2, 4):
        with stack(bench, f"stack-{replicas}", replicas) as url:
            rows.append(load_row(bench, url, "PostgreSQL", replicas, clients, runs))
            if replicas == (1 if quick else 2):
                artifact_rows = large_artifact(bench, url, replicas)
    if not quick:
        with sqlite_replicas(bench, 2) as url:
            rows.append(load_row(bench, url, "SQLite", 2, clients, runs))
    rows += artifact_rows
    return (
        "13. The team stack",
        "`team-server/team_stack.py` on this machine: PostgreSQL 15, SeaweedFS and `mlflow "
        "server` replicas (1 worker each) behind HAProxy. The start is timed by hyperfine, from "
        "the command to the stack answering. Each load row is a new stack and "
        f"{clients} clients at once, each logging {runs} runs (`tests/team_stack_client.py`: "
        "5 params, 6 metric values, a text artifact), with MLflow's own retries; runs per second "
        "count from the clients' first request to the last client's end; a run is whole "
        "when it is FINISHED with its 5 params and its artifact. The SQLite row: 2 replicas on "
        "one SQLite file, artifacts in a folder, behind the same HAProxy. The artifact rows "
        "time a whole `python -c` that logs the file to a new run (Python's start included).",
        "what | store | replicas | result | failures",
        rows,
        "on two cores, more replicas add no throughput: the clients, the replicas and the "
        "database share the same CPUs, and one replica's worker already answers on several "
        "threads. Replicas are for a team's availability (one can die or be upgraded while "
        "the others answer) and for hosts with cores to spare. At this load, two replicas on one "
        "SQLite file on one disk lost nothing and were not slower: SQLite's case against it is "
        "not speed on one machine but that one file on one disk cannot serve server hosts on "
        "other machines (SQLite over a network file system is not safe). MLflow's proxied multipart upload "
        "(parts of 10 MB, each a request) did not beat one request here; MLflow uses it only "
        "above MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE (500 MB by default).",
    )


@contextlib.contextmanager
def stack(bench: Bench, name: str, replicas: int):
    folder, port = bench.work / name, free_port()
    command = py(TEAM_STACK, "--folder", folder, "start", "--port", port, "--replicas", replicas)
    try:
        bench.sh(command, bench.env())
        yield f"http://127.0.0.1:{port}"
    finally:
        forget_stack(bench, folder)


def forget_stack(bench: Bench, folder):
    """Stop it; as root its PostgreSQL cluster lives outside the scratch folder: delete it."""
    bench.sh(py(TEAM_STACK, "--folder", folder, "stop"), bench.env())
    shutil.rmtree(team_stack.postgres_folder(folder), ignore_errors=True)


@contextlib.contextmanager
def sqlite_replicas(bench: Bench, replicas: int):
    """`replicas` tracking_server.sh processes on one SQLite file, behind team_stack's HAProxy."""
    folder = bench.work / "sqlite-replicas"
    folder.mkdir()
    (folder / "mlflow.db").touch()
    env = {
        **bench.env(),
        "BACKEND_STORE_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "ARTIFACTS_DESTINATION": str(folder / "artifacts"),
    }
    ports, port = [free_port() for _ in range(replicas)], free_port()
    try:
        for number, replica_port in enumerate(ports, 1):  # the first creates the tables, alone
            team_stack.start_replica(folder, number, replica_port, env)
            team_stack.wait_for_replica(folder, number, replica_port)
        team_stack.start_haproxy(folder, port, ports)
        yield f"http://127.0.0.1:{port}"
    finally:
        for pid in folder.glob("*.pid"):
            process_groups.stop_group(pid)


def load_row(bench: Bench, url: str, store: str, replicas: int, clients: int, runs: int) -> str:
    client = mlflow.MlflowClient(url)
    experiment_id = client.create_experiment(f"load-{store}-{replicas}")
    outputs = [bench.work / f"load-{store}-{replicas}-{n}.json" for n in range(clients)]
    logs = [bench.work / f"load-{store}-{replicas}-{n}.log" for n in range(clients)]
    started = time.monotonic()
    processes = [
        bench.spawn(
            [PYTHON, CLIENT, experiment_id, f"c{n}", str(runs), out], bench.env(url), open(log, "w")
        )  # fmt: skip
        for n, (out, log) in enumerate(zip(outputs, logs, strict=True))
    ]
    failed_clients = sum(process.wait(timeout=1800) != 0 for process in processes)
    # From the first client's start to the last one's end, without Python's and MLflow's
    # imports (seconds each), which a client that logs all day pays once.
    logged = [json.loads(out.read_text())["seconds"] for out in outputs if out.exists()]
    seconds = max(logged) if logged else time.monotonic() - started
    whole = 0
    for run in client.search_runs([experiment_id], max_results=1000):
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "notes")]
        whole += (run.info.status, len(run.data.params), artifacts) == ("FINISHED", 5, ["notes/run.txt"])  # fmt: skip
    errors = sorted({line.split(":")[0] for log in logs for line in log.read_text().splitlines() if "Error" in line})  # fmt: skip
    failures = f"{failed_clients} of {clients} clients failed" + (f" ({', '.join(errors)})" if errors else "")  # fmt: skip
    return (
        f"{clients} clients × {runs} runs | {store} | {replicas} | "
        f"{clients * runs / seconds:.1f} runs/s, {whole} / {clients * runs} runs whole | {failures}"
    )


def large_artifact(bench: Bench, url: str, replicas: int) -> list[str]:
    """One large file logged through the replicas, plain and in multipart (5 MiB parts)."""
    mib = 5 if bench.s.quick else 500  # about the size of a large model's weights
    path = bench.work / "large.bin"
    with open(path, "wb") as out:
        out.truncate(mib * 2**20)  # zeros: what is timed is the transfer, not the content
    program = (
        "import mlflow; mlflow.set_experiment('large-artifact'); "
        f"run = mlflow.start_run(); mlflow.log_artifact({str(path)!r}); mlflow.end_run()"
    )
    rows = []
    for multipart in ("false", "true"):
        env = bench.env(url, MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=multipart)
        env["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] = str(2**20)  # MLflow's is 500 MB
        measured = bench.hyperfine(py("-c", program), env, runs=1 if bench.s.quick else 2, warmup=0)  # fmt: skip
        how = "multipart (MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true)" if multipart == "true" else "one request"  # fmt: skip
        rows.append(f"a {mib} MiB artifact, {how} | PostgreSQL, SeaweedFS | {replicas} | {secs(measured)}, {mib / measured['s']:.0f} MiB/s | none")  # fmt: skip
    path.unlink()
    return rows
