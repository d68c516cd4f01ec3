"""Part 6, the team server under parallel load: clients logging at once, as load_client.py."""

import contextlib
import json
import time

import mlflow
import numpy as np
from harness import PYTHON, REPO, Bench

# The throwaway PostgreSQL cluster of the team-server tests (standard library only).
from testbeds.postgres_cluster import throwaway_postgres

# What the server holds of one default train_rfc.py run: params (its flags and the three column
# lists), metrics, the figure's name, logged models.
WHOLE_RUN = (25, 5, ["confusion_matrix.png"], 1)


def measure(bench: Bench):
    rows = []
    for backend in ["SQLite"] if bench.s.quick else ["SQLite", "PostgreSQL"]:
        with contextlib.ExitStack() as stack:
            url = bench.sqlite_server()[0]  # the server of part 2
            if backend == "PostgreSQL":
                postgres = stack.enter_context(throwaway_postgres())
                url = stack.enter_context(bench.tracking_server(postgres.uri, "postgres"))[0]
            for clients in bench.s.clients:
                result = clients_at_once(bench, url, f"load-{backend}-{clients}", clients)
                rows.append(f"{backend} | {clients} | {result}")
    return (
        "6. The team server under parallel load",
        "`tracking_server.sh` (1 worker) on SQLite, then on a PostgreSQL 15 cluster, all on "
        "this machine. Each client is a process running `train_rfc.py`'s `main()` "
        f"{bench.s.runs_per_client} times (`benchmarks/load_client.py`), MLflow's retries off "
        "so that every failure shows; latency is timed in the clients. A run is whole when "
        f"the server has its {WHOLE_RUN[0]} params, {WHOLE_RUN[1]} metrics, figure and model.",
        "backend | clients | runs finished | runs / min | p50 ms | p99 ms | failed requests | runs whole",
        rows,
        "on two cores the clients and the server share the CPU, so runs per minute level off "
        "early. Watch the failed requests (each listed with its status and endpoint): with "
        "retries on, as the scripts run, MLflow tries those again, so they cost time, not runs.",
    )


def clients_at_once(bench: Bench, url: str, experiment: str, clients: int) -> str:
    """`clients` load_client.py processes at once; what they did, as table cells."""
    env, runs = bench.env(url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"), bench.s.runs_per_client
    # The team's experiment exists already: clients creating it at once would race for it.
    client = mlflow.MlflowClient(url)
    experiment_id, started = client.create_experiment(experiment), time.monotonic()
    logs = [bench.work / f"{experiment}-{n}.jsonl" for n in range(clients)]
    client_command = [PYTHON, REPO / "benchmarks" / "load_client.py", str(runs), experiment]
    for process in [bench.spawn([*client_command, log, *bench.s.forest], env) for log in logs]:
        process.wait(timeout=900)
    minutes = (time.monotonic() - started) / 60
    calls = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    p50, p99 = np.percentile([c["ms"] for c in calls if c["status"] // 100 == 2], [50, 99])
    failed = [f"{c['status']} {c['path'].split('/')[-1]}" for c in calls if c["status"] // 100 != 2]
    finished, whole = client.search_runs([experiment_id], "attributes.status = 'FINISHED'"), 0
    for run in finished:
        run_id = run.info.run_id
        figure = [a.path for a in client.list_artifacts(run_id)]
        models = client.search_logged_models([experiment_id], f"source_run_id = '{run_id}'")
        counts = (len(run.data.params), len(run.data.metrics), figure, len(models))
        whole += counts == WHOLE_RUN
    done = len(finished)
    return (
        f"{done} / {clients * runs} | {done / minutes:.0f} | {p50:.0f} | {p99:.0f} | "
        f"{', '.join([str(len(failed)), *sorted(set(failed))])} | {whole} / {done}"
    )
