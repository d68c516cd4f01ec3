"""What MLflow costs here, and how it scales: `make bench` writes docs/benchmarks.md.

Each part (a method of Bench, in the report's order) runs the tutorial's own scripts as a reader
would: hyperfine times whole commands (its own warm-up and runs, read from --export-json), wrk
loads HTTP servers, /proc gives the peak memory of a command's process tree. docs/measuring.md
explains each part.

    python benchmarks/run.py               # all of it: about 13 minutes on 2 cores
    python benchmarks/run.py --quick       # tiny sizes, one run each: proves it still works
    python benchmarks/run.py --only batch --only load --output /tmp/report.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import urllib.request
import uuid
from dataclasses import dataclass
from hashlib import sha256
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from postgres_cluster import throwaway_postgres  # noqa: E402

PYTHON = sys.executable
LOAD_CLIENT = REPO / "benchmarks" / "load_client.py"
MODEL_NAME = "breast-cancer-classifier"
MODEL = f"models:/{MODEL_NAME}@champion"
WRK_POST = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n'
SAMPLE = REPO / "data" / "sample_request.json"
FEATURES = pd.read_csv(REPO / "data" / "breast_cancer.csv").drop(columns=["diagnosis"])


@dataclass(frozen=True)
class Settings:
    runs: int  # hyperfine runs per command, after `warmup` untimed ones
    warmup: int
    forest: tuple[str, ...]  # train_rfc.py's flags
    network: tuple[str, ...]  # train_ann.py's flags
    store_sizes: tuple[int, ...]  # runs in the store register_model.py ranks
    wrk_seconds: int
    batch_rows: tuple[int, ...]
    clients: tuple[int, ...]  # clients logging at once
    runs_per_client: int
    quick: bool = False  # one row per table where the others only repeat the same code


FULL = Settings(3, 1, (), (), (1_000, 10_000), 5, (10_000, 100_000, 1_000_000), (1, 4, 8), 2)
QUICK = Settings(1, 0, ("--n-estimators", "20"), (), (100,), 1, (500,), (1,), 1, quick=True)


class Bench:
    def __init__(self, settings: Settings, work: Path):
        self.s, self.work, self.cache, self.servers = settings, work, {}, contextlib.ExitStack()

    def spawn(self, command, env, output=subprocess.DEVNULL) -> subprocess.Popen:
        """A command in the background, in its own process group (so that it can be stopped whole)."""
        return subprocess.Popen(
            command, env=env, cwd=self.work, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def env(self, uri: str | None = None, **extra) -> dict[str, str]:
        """A reader's shell: this Python first on the PATH, telemetry off, the store `uri`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env['PATH']}"
        return {**env, **({"MLFLOW_TRACKING_URI": uri} if uri else {}), **extra}

    def sh(self, command: str, env: dict[str, str]) -> str:
        result = subprocess.run(command, shell=True, env=env, cwd=self.work, capture_output=True, text=True)  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"`{command}` exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result.stdout

    def hyperfine(self, command: str, env, runs=None, warmup=None, prepare="") -> dict:
        """hyperfine's median and deviation (s); the peak MiB of the process tree, every 0.2 s."""
        runs, warmup = runs or self.s.runs, self.s.warmup if warmup is None else warmup
        export = self.work / f"hyperfine-{uuid.uuid4().hex}.json"
        args = ["hyperfine", "--runs", str(runs), "--warmup", str(warmup)]
        args += ["--export-json", str(export), *(["--prepare", prepare] if prepare else [])]
        process = self.spawn(
            [*args, "--show-output", command], env, output := tempfile.TemporaryFile("w+")
        )
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, group_memory(process.pid))
            time.sleep(0.2)
        if process.returncode:
            output.seek(0)
            raise RuntimeError(f"hyperfine failed on `{command}`:\n{output.read()[-3000:]}")
        result = json.loads(export.read_text())["results"][0]
        return {"s": result["median"], "sd": result["stddev"] or 0, "n": runs, "mib": peak}

    @contextlib.contextmanager
    def serve(self, command: list, env, ready_url: str, log: Path):
        """A server in its own process group, stopped (the whole group) whatever happens."""
        process = self.spawn(command, env, open(log, "a"))
        try:
            deadline = time.monotonic() + 120
            while subprocess.run(["curl", "-sfo", "/dev/null", ready_url]).returncode:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield process
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, sig)
                    process.wait(timeout=10)

    @contextlib.contextmanager
    def tracking_server(self, backend: str, name: str):
        """tracking_server.sh on `backend` (1 worker, artifacts proxied): its URL and access log."""
        port, log = free_port(), self.work / f"{name}.log"
        env = self.env(PORT=str(port), BACKEND_STORE_URI=backend)
        env["ARTIFACTS_DESTINATION"] = str(self.work / f"{name}-artifacts")
        url = f"http://127.0.0.1:{port}"
        with self.serve([REPO / "tracking_server.sh"], env, f"{url}/health", log):
            yield url, log

    def sqlite_server(self) -> tuple[str, Path]:
        """One tracking_server.sh on SQLite, shared by the parts that log to one."""
        if "server" not in self.cache:
            server = self.tracking_server(f"sqlite:///{self.work / 'server.db'}", "server")
            self.cache["server"] = self.servers.enter_context(server)
        return self.cache["server"]

    def store(self, name: str) -> Path:
        """A store, made once: "trained" (a forest; and a network unless quick), or "champion"."""
        path, uri = self.work / f"{name}.db", f"sqlite:///{self.work / name}.db"
        if name == "champion" and not path.exists():
            shutil.copy(self.store("trained"), path)
            self.sh(py(REPO / "register_model.py"), self.env(uri))
        elif not path.exists():
            for script, flags in [("rfc", self.s.forest), ("ann", self.s.network)][
                : 2 - self.s.quick
            ]:
                self.sh(py(REPO / f"train_{script}.py", *flags), self.env(uri))
        return path

    # --- The parts --------------------------------------------------------------------------

    def tracking(self):
        db = self.work / "tracking.db"
        shutil.copy(self.store("trained"), db)
        env = self.env(f"sqlite:///{db}")
        tracked = self.hyperfine(py(REPO / "train_rfc.py", *self.s.forest), env)
        bare = self.hyperfine(py(REPO / "benchmarks/untracked_training.py", *self.s.forest), env)
        adds = tracked["s"] - bare["s"]
        return (
            "1. What tracking costs",
            "`train_rfc.py` with its defaults, logging to a SQLite store, against the same "
            "imports, fit and scores with no MLflow call (`benchmarks/untracked_training.py`).",
            "train_rfc.py | wall time | peak memory",
            [
                f"tracked | {secs(tracked)} | {tracked['mib']:.0f} MiB",
                f"untracked | {secs(bare)} | {bare['mib']:.0f} MiB",
            ],  # fmt: skip
            f"tracking adds {adds:.1f} s to a run, a fixed cost (opening the store, saving the "
            "model, drawing the figure) whatever the training costs: next to a fit of minutes "
            "it disappears.",
        )

    def server(self):
        variants = {
            "explicit: `train_rfc.py`": py(REPO / "train_rfc.py", *self.s.forest),
            "autolog: `train_autolog.py`": py(REPO / "train_autolog.py"),
        }
        variants = dict(list(variants.items())[: 1 if self.s.quick else 2])
        rows = []
        url, log = self.sqlite_server()
        for name, command in variants.items():
            before = requests_in(log, url)
            timed = self.hyperfine(command, self.env(url))
            per_run = (requests_in(log, url) - before) / (timed["n"] + self.s.warmup)
            rows.append(f"{name} | {secs(timed)} | {per_run:.0f}")
        return (
            "2. Logging to a tracking server",
            "`tracking_server.sh` (SQLite, artifacts proxied) on this machine; requests counted "
            "in its access log. `train_autolog.py` also runs a grid search (4 settings, 3-fold), "
            "so its time includes more training than `train_rfc.py`'s single fit.",
            "how the run is logged | wall time | HTTP requests per run",
            rows,
            "each request is a round trip, so over a network with 20 ms of latency every 50 "
            "requests add a second to a run. Autolog logs every setting it tries and infers the "
            "model's requirements; the tutorial's scripts batch their calls and list them.",
        )

    def register(self):
        target, commands = self.work / "register.db", {}
        mlflow.set_tracking_uri(f"sqlite:///{self.store('trained')}")
        trained = mlflow.search_runs(search_all_experiments=True, output_format="list")
        below = min(r.data.metrics["test_f1"] for r in trained) - 0.005
        if not self.s.quick:
            champion = mlflow.MlflowClient(f"sqlite:///{self.store('champion')}")
            champion = champion.get_model_version_by_alias(MODEL_NAME, "champion").run_id
            other = next(r.info.run_name for r in trained if r.info.run_id != champion)
            commands = {
                "`--version 1`: move the alias, no gate": (self.store("champion"), "--version 1"),
                "first champion: the gate evaluates 1 model": (self.store("trained"), ""),
                f"`--force` {other}: 2 models": (
                    self.store("champion"),
                    f"--force --run-name {other}",
                ),
            }
        for size in self.s.store_sizes:
            seeded = self.work / f"seeded-{size}.db"
            shutil.copy(self.store("trained"), seeded)
            insert_runs_directly(seeded, size - len(trained), below)
            commands[f"first champion, {size:,} runs in the store"] = (seeded, "")
        register = py(REPO / "register_model.py")
        env, rows = self.env(f"sqlite:///{target}"), []
        for name, (store, flags) in commands.items():
            timed = self.hyperfine(
                f"{register} {flags}", env, warmup=0, prepare=f"cp {store} {target}"
            )
            rows.append(f"{name} | {secs(timed)}")
        return (
            "3. Registering a model",
            "`register_model.py` on a fresh copy of a store each run (no warm-up): rank the models by "
            "test_f1, evaluate on the 114 held-back rows, register, move the alias. The stores "
            "hold the two trained runs, and the larger ones seeded runs with a model each.",
            "register_model.py | wall time",
            rows,
            "the gate is most of a promotion's time (loading each model, and MLflow drawing its "
            "evaluation plots), and a rollback skips it. The number of runs hardly matters: "
            "ranking is one indexed query that returns the top few.",
        )

    def serving(self):
        uri, port = f"sqlite:///{self.store('champion')}", free_port()
        mlflow.set_tracking_uri(uri)
        model, url = mlflow.pyfunc.load_model(MODEL), f"http://127.0.0.1:{port}/invocations"
        ping, rows, env = f"http://127.0.0.1:{port}/ping", [], self.env(uri, PORT=str(port))
        post = f"curl -sf {url} -H 'Content-Type: application/json' -d"
        with self.serve([REPO / "serve_model.sh"], env, ping, self.work / "serve.log") as process:
            for size in (1,) if self.s.quick else (1, 100):
                frame = FEATURES.head(size).astype("float64")
                body = json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)})
                answer = json.loads(self.sh(f"{post} '{body}'", env))["predictions"]
                assert answer == model.predict(frame).tolist()
                ms = sorted(timeit.repeat(lambda f=frame: model.predict(f), number=1, repeat=200))
                local = f"{ms[100] * 1000:.1f}ms / {ms[197] * 1000:.1f}ms"
                lua = self.work / f"post-{size}.lua"
                lua.write_text(WRK_POST.format(body=body))
                for connections in (1, 4):
                    wrk = f"wrk --latency -c{connections} -t1 -d{self.s.wrk_seconds}s"
                    out = self.sh(f"{wrk} -s {lua} {url}", env)
                    p50, p99 = (re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)[1] for q in (50, 99))
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
                    errors = ", ".join(re.findall(r"Non-2xx.*|Socket errors.*", out)) or "none"
                    cells = f"{p50} | {p99} | {rps:.0f} | {errors} | {local}"
                    rows.append(f"{size} | {connections} | {cells}")
            memory = group_memory(process.pid, "VmHWM")
        return (
            "4. Serving",
            f"`serve_model.sh` (`mlflow models serve`, 1 worker) on 127.0.0.1 under wrk, "
            f"{self.s.wrk_seconds} s per table row; each answer was first checked against `predict()` "
            f"in-process (last column: its p50 / p99). Peak memory of the server's processes: "
            f"{memory:.0f} MiB.",
            "rows / request | connections | p50 | p99 | requests/s | errors | in-process",
            rows,
            "the HTTP hop costs a few milliseconds per request. More connections than workers "
            "queue: latency grows, throughput stays; raise `WORKERS` if you have cores for them.",
        )

    def rollout(self):
        """A new champion under a steady load: a naive restart, rollout.py, and the webhook."""
        db, env = self.work / "rollout.db", {}
        shutil.copy(self.store("champion"), db)
        uri, secret = f"sqlite:///{db}", uuid.uuid4().hex
        mlflow.set_tracking_uri(uri)
        # A second version of the same model: what changes is the number the header shows.
        mlflow.register_model(f"models:/{MODEL_NAME}/1", MODEL_NAME)
        lua = self.work / "steady.lua"  # each connection waits 50 ms between requests
        lua.write_text(
            WRK_POST.format(body=SAMPLE.read_text()) + "function delay() return 50 end\n"
        )
        rows, front, receiver = [], free_port(), free_port()
        folder, server_port = self.work / "rollout", free_port()
        flags = ["--port", front, "--blue-port", free_port(), "--green-port", free_port()]
        flags = [*map(str, flags), "--folder", str(folder)]

        # Naive: serve_model.sh itself, stopped and started again.
        port = free_port()
        serve = [REPO / "serve_model.sh"]
        with self.serve(serve, self.env(uri, PORT=str(port)), f"http://127.0.0.1:{port}/ping",
                        self.work / "naive.log") as process, Watch(port, lua) as watch:  # fmt: skip
            time.sleep(3)
            os.killpg(process.pid, signal.SIGTERM)
            while group_memory(process.pid):  # uvicorn's worker outlives the mlflow command
                time.sleep(0.05)
            process.wait()
            stopped = time.monotonic()
            with self.serve(serve, self.env(uri, PORT=str(port)), f"http://127.0.0.1:{port}/ping",
                            self.work / "naive.log"):  # fmt: skip
                watch.first_answer(after=stopped)
                time.sleep(3)
        rows.append(watch.row("naive restart: stop, start `serve_model.sh`", stopped))

        server_env = self.env(PORT=str(server_port), BACKEND_STORE_URI=uri)
        server_env.update(ARTIFACTS_DESTINATION=str(self.work / "rollout-artifacts"))
        server_env.update(MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https")
        server_env.update(MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true")
        server_url = f"http://127.0.0.1:{server_port}"
        env = self.env(server_url, WEBHOOK_SECRET=secret)
        receiver_command = [PYTHON, REPO / "webhook_receiver.py", "--port", str(receiver), "--"]
        try:
            with (
                self.serve([REPO / "tracking_server.sh"], server_env, f"{server_url}/health",
                           self.work / "rollout-server.log"),
                self.serve([*receiver_command, *flags], env, f"http://127.0.0.1:{receiver}/",
                           self.work / "receiver.log"),
            ):  # fmt: skip
                self.sh(
                    py(REPO / "create_webhook.py", "--url", f"http://127.0.0.1:{receiver}/"), env
                )
                self.sh(py(REPO / "rollout.py", *flags), self.env(uri))
                with Watch(front, lua) as watch:
                    time.sleep(self.s.wrk_seconds * 2)
                rows.append(watch.row("steady state, nothing changes", None))
                # The alias moved straight in the SQLite file: no webhook fires; rollout.py by hand.
                with Watch(front, lua) as watch:
                    time.sleep(2)
                    self.sh(py(REPO / "register_model.py", "--version", "2"), self.env(uri))
                    moved = time.monotonic()
                    self.sh(py(REPO / "rollout.py", *flags), self.env(uri))
                    watch.first_answer(after=moved, version="2")
                    time.sleep(2)
                rows.append(watch.row("`register_model.py --version 2`, then `rollout.py`", moved))
                # Through the tracking server: its webhook calls the receiver, which rolls out.
                with Watch(front, lua) as watch:
                    time.sleep(2)
                    self.sh(py(REPO / "register_model.py", "--version", "1"), env)
                    moved = time.monotonic()
                    watch.first_answer(after=moved, version="1", timeout=180)
                    time.sleep(2)
                rows.append(watch.row("the same back, through the webhook", moved))
        finally:
            self.sh(py(REPO / "rollout.py", "--folder", folder, "--stop"), self.env(uri))
        return (
            "8. Rolling out a new champion",
            "wrk posts the sample request at a steady rate (2 connections, each waiting 50 ms "
            "between requests) while the version changes; a poller asks `/ping` on a new "
            "connection every 50 ms to see when the new version first answers. The naive restart "
            "is `serve_model.sh` alone, stopped and started; the others go through "
            "`rollout.py`'s HAProxy front door. Time is counted from the alias move (the end of "
            "`register_model.py`), or from the stop for the restart. wrk retries a refused "
            "connection at once, without its 50 ms wait, so the restart's socket errors count "
            "attempts during the silence, not clients.",
            "what happens | requests answered | failed (non-2xx, socket errors) | p50 | p99 "
            "| longest silence (poller) | new version answers after",
            rows,
            "a restart refuses every request for as long as the new process takes to import "
            "MLflow and load the model. The blue/green rollout waits just as long for the new "
            "version, but the old one answers meanwhile: no failed request. Latency rises while "
            "the new slot starts on the same cores (p99 against the steady state above); on a "
            "machine with cores to spare, or slots on another host, it would not. The webhook "
            "adds only its own call to that wait: the slot's start is most of it.",
        )

    def batch(self):
        env, rows, times = self.env(f"sqlite:///{self.store('champion')}"), [], []
        for size in self.s.batch_rows:
            data, by_pandas, by_spark = (self.work / f"{n}-{size}" for n in ["in", "pd", "spark"])
            FEATURES.sample(size, replace=True, random_state=0).to_csv(data, index=False)
            pandas = py(REPO / "predict.py", "--data", data, "--output", by_pandas)
            runs = min(2, self.s.runs)
            pandas = self.hyperfine(pandas, env, runs=runs, warmup=0)
            spark = py(REPO / "predict_spark.py", "--data", data, "--output", by_spark)
            spark = self.hyperfine(spark, env, runs=runs, warmup=0, prepare=f"rm -rf {by_spark}")
            # Row for row the same answers: Spark's part files hold the rows in the CSV's order.
            parts = sorted(by_spark.glob("part-*.csv"))
            answers = [pd.read_csv(by_pandas), pd.concat(map(pd.read_csv, parts))]
            digests = {sha256(a.to_csv(index=False).encode()).hexdigest()[:12] for a in answers}
            if len(digests) > 1:
                raise RuntimeError(f"pandas and Spark disagree on {size} rows: {digests}")
            times.append((size, pandas["s"], spark["s"]))
            cells = [f"{secs(m)} | {size / m['s']:,.0f} | {m['mib']:.0f}" for m in (pandas, spark)]
            rows.append(f"{size:,} | {cells[0]} | {cells[1]} | {digests.pop()}")
        return (
            "5. Batch scoring: pandas against Spark",
            "The champion scores rows resampled from the data set, CSV in, CSV out: `predict.py` "
            "(pandas, one process) against `predict_spark.py` (`spark_udf`, `local[2]`, its JVM's "
            "start included), 2 runs each. MiB: peak memory of all the command's processes. The "
            "last column is a checksum of the predictions, the same for both.",
            "rows | pandas | rows/s | MiB | Spark | rows/s | MiB | predictions",
            rows,
            f"{crossover(times)} Spark pays for starting a JVM and for moving rows between it "
            "and Python. It pays off on a cluster, where the same UDF runs on many executors, and "
            "for tables that do not fit one machine's memory: pandas holds every row at once.",
        )

    def load(self):
        rows = []
        for backend in ["SQLite"] if self.s.quick else ["SQLite", "PostgreSQL"]:
            with contextlib.ExitStack() as stack:
                url = self.sqlite_server()[0]  # the server of part 2
                if backend == "PostgreSQL":
                    postgres = stack.enter_context(throwaway_postgres())
                    url = stack.enter_context(self.tracking_server(postgres.uri, "postgres"))[0]
                for clients in self.s.clients:
                    result = self.clients_at_once(url, f"load-{backend}-{clients}", clients)
                    rows.append(f"{backend} | {clients} | {result}")
        return (
            "6. The team server under parallel load",
            "`tracking_server.sh` (1 worker) on SQLite, then on a PostgreSQL 15 cluster, all on "
            "this machine. Each client is a process running `train_rfc.py`'s `main()` "
            f"{self.s.runs_per_client} times (`benchmarks/load_client.py`), MLflow's retries off "
            "so that every failure shows; latency is timed in the clients. A run is whole when "
            "the server has its 22 params, 5 metrics, figure and model.",
            "backend | clients | runs finished | runs / min | p50 ms | p99 ms | failed requests | runs whole",
            rows,
            "on two cores the clients and the server share the CPU, so runs per minute level off "
            "early. Watch the failed requests (each listed with its status and endpoint): with retries "
            "on, as the scripts run, MLflow tries those again, so they cost time, not runs.",
        )

    def clients_at_once(self, url: str, experiment: str, clients: int) -> str:
        """`clients` load_client.py processes at once; what they did, as table cells."""
        env, logs, processes = self.env(url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"), [], []
        # The team's experiment exists already: clients creating it at once would race for it.
        client = mlflow.MlflowClient(url)
        experiment_id, started = client.create_experiment(experiment), time.monotonic()
        for n in range(clients):
            logs.append(self.work / f"{experiment}-{n}.jsonl")
            args = [str(self.s.runs_per_client), experiment, logs[-1], *self.s.forest]
            processes.append(self.spawn([PYTHON, LOAD_CLIENT, *args], env))
        for process in processes:
            process.wait(timeout=900)
        minutes = (time.monotonic() - started) / 60
        calls = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        ok = [c for c in calls if c["status"] // 100 == 2]
        ms = sorted(c["ms"] for c in ok)
        bad = sorted({f"{c['status']} {c['path'].split('/')[-1]}" for c in calls if c not in ok})
        finished = client.search_runs([experiment_id], "attributes.status = 'FINISHED'")
        whole = 0
        for run in finished:
            run_id = run.info.run_id
            figure = [a.path for a in client.list_artifacts(run_id)]
            models = client.search_logged_models([experiment_id], f"source_run_id = '{run_id}'")
            counts = (len(run.data.params), len(run.data.metrics), figure, len(models))
            whole += counts == (22, 5, ["confusion_matrix.png"], 1)
        done, p50, p99 = len(finished), ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
        return (
            f"{done} / {clients * self.s.runs_per_client} | {done / minutes:.0f} | {p50:.0f} | "
            f"{p99:.0f} | {', '.join([str(len(calls) - len(ok)), *bad])} | {whole} / {done}"
        )

    def setup(self):
        base = Path(sys.base_prefix) / "bin" / "python3"
        uv = re.search(r"UV_VERSION := (\S+)", (REPO / "Makefile").read_text())[1]
        venv, pins = self.work / "venv", REPO / "requirements.txt"
        fresh = f"rm -rf {venv} && {base} -m venv {venv} && {venv}/bin/pip install -q"
        commands = {
            "pip": f"{fresh} -r {pins}",
            f"uv {uv}, as `make env` does": f"{fresh} uv=={uv} && {venv}/bin/uv pip install -q --python {venv}/bin/python --compile-bytecode -r {pins}",
        }
        rows = [
            f"{name} | {secs(self.hyperfine(cmd, self.env(), runs=1))}"
            for name, cmd in commands.items()
        ]
        return (
            "7. Setting up",
            "A fresh virtual environment with every pin of `requirements.txt`, bytecode compiled, "
            "both installers' caches warm (installed before); one run each, minutes apiece.",
            "installer | wall time",
            rows,
            "uv downloads, unpacks and links in parallel; most of what remains is compiling "
            "bytecode, which saves every later `import mlflow` seconds.",
        )

    def upgrade(self):
        """`mlflow db upgrade` of a store an older MLflow 3 wrote (docs/upgrade-mlflow.md)."""
        old = self.work / "venv-mlflow3-older"
        if not old.exists():  # its own environment, as the chapter makes it
            uv = shutil.which("uv", path=f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}")
            if not uv:
                sys.exit("error: uv is not installed (make installs it into .venv)")
            requirements = REPO / "requirements" / "mlflow3-older.txt"
            self.sh(f"{uv} venv --quiet --python {PYTHON} {old}", self.env())
            self.sh(
                f"{uv} pip install --quiet --python {old}/bin/python -r {requirements}", self.env()
            )
        older = self.sh(
            f"{old}/bin/python -c 'import mlflow; print(mlflow.__version__)'", self.env()
        )
        base = self.work / "older.db"
        self.sh(f"{py(REPO / 'train_rfc.py')} {' '.join(self.s.forest)}".replace(PYTHON, f"{old}/bin/python"),
                self.env(f"sqlite:///{base}"))  # fmt: skip
        target, rows = self.work / "upgrade.db", []
        for size in self.s.store_sizes:
            seeded = self.work / f"older-{size}.db"
            shutil.copy(base, seeded)
            insert_runs_directly(seeded, size - 1, 0.9)
            timed = self.hyperfine(
                f"mlflow db upgrade sqlite:///{target}", self.env(), warmup=0,
                prepare=f"cp {seeded} {target}",
            )  # fmt: skip
            rows.append(f"{size:,} runs | {secs(timed)} | {timed['mib']:.0f} MiB")
        return (
            "8. Upgrading a store to this MLflow",
            f"`mlflow db upgrade` (MLflow {version('mlflow')}) on a fresh copy of a SQLite store "
            f"that MLflow {older.strip()} wrote (one `train_rfc.py` run, the rest seeded with a "
            "logged model each, as in part 3), each run of hyperfine; no warm-up.",
            "store | wall time | peak memory",
            rows,
            "the upgrade is a stop of the server measured in seconds, and the store's size did "
            "not show in it here (the migrations alter tables and indexes; they do not rewrite "
            "the runs one by one). Stop the writers and take the backup first "
            "([Upgrading MLflow](upgrade-mlflow.md)).",
        )


def py(*parts) -> str:
    return shlex.join([PYTHON, *map(str, parts)])


def secs(measured: dict) -> str:
    return f"{measured['s']:.2f} s" + (f" ± {measured['sd']:.2f}" if measured["n"] > 1 else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_memory(pgid: int, field: str = "VmRSS") -> float:
    """MiB of `field` (VmRSS now, VmHWM at its peak) summed over a process group's members."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, IndexError, ValueError, StopIteration):
            if int((status.parent / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                line = next(x for x in status.read_text().splitlines() if x.startswith(field))
                total += int(line.split()[1])
    return total / 1024


def requests_in(log: Path, url: str) -> int:
    """Requests in a tracking server's access log so far; a marker request flushes the log."""
    marker = f"/health?mark={uuid.uuid4().hex}"
    subprocess.run(["curl", "-sfo", "/dev/null", url + marker], check=True)
    while marker not in log.read_text():
        time.sleep(0.05)
    return len(re.findall(r'"(?:GET|POST|PUT|PATCH|DELETE) /(?!health)', log.read_text()))


def crossover(times: list[tuple[int, float, float]]) -> str:
    """Where Spark overtakes pandas: measured, extrapolated from the cost per row, or never."""
    if faster := [rows for rows, pandas, spark in times if spark < pandas]:
        return f"Spark was faster from {faster[0]:,} rows on."
    (n0, pandas0, spark0), (n1, pandas1, spark1) = times[0], times[-1]
    if n1 > n0 and (spark1 - spark0) / (n1 - n0) < (pandas1 - pandas0) / (n1 - n0):
        rows = n0 + (spark0 - pandas0) / ((pandas1 - pandas0 - spark1 + spark0) / (n1 - n0))
        return f"Spark was slower at every size; extrapolated, it would catch up near {rows:,.0f} rows."
    return "On one machine Spark never catches up: it was slower at every size, and per row too."


def insert_runs_directly(db: Path, count: int, below: float) -> None:
    """Add `count` finished forest runs, each with a logged model whose test_f1 is < `below`.

    This bypasses MLflow's API on purpose: through it (create_run, create_logged_model,
    log_batch, finalize_logged_model, set_terminated), 10,000 runs take about 4 minutes here,
    25 ms each. These INSERTs write the same rows to the same tables in about a second.
    """
    with sqlite3.connect(db) as con:
        experiment, location = con.execute(
            "SELECT experiment_id, artifact_location FROM experiments WHERE name = ?",
            ("breast-cancer-random-forest",),
        ).fetchone()
        con.execute(
            "CREATE TEMP TABLE seeded AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
            "FROM n WHERE i < ?) SELECT 'seeded-' || i AS name, printf('5eed%028d', i) AS run, "
            "printf('m-5eed%028d', i) AS model, 1700000000000 + i * 60000 AS t, "
            "0.8 + (i * 7919 % 1000) / 1000.0 * (? - 0.8) AS f1 FROM n",
            (count, below),
        )
        for statement in [
            "INSERT INTO runs (run_uuid, name, source_type, source_name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri, experiment_id) SELECT run, name, 'LOCAL', 'benchmarks/run.py', 'bench', 'FINISHED', t, t + 5000, 'active', :location || '/' || run || '/artifacts', :experiment FROM seeded",
            "INSERT INTO params (key, value, run_uuid) SELECT 'n_estimators', '100', run FROM seeded",
            "INSERT INTO tags (key, value, run_uuid) SELECT 'mlflow.runName', name, run FROM seeded",
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) SELECT 'test_f1', f1, t, run, 0, 0 FROM seeded",
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) SELECT 'test_f1', f1, t, 0, 0, run FROM seeded",
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, source_run_id) SELECT model, :experiment, 'model', :location || '/models/' || model || '/artifacts', t, t, 2, 'active', run FROM seeded",
            "INSERT INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, experiment_id, run_id) SELECT model, 'test_f1', t, 0, f1, :experiment, run FROM seeded",
        ]:
            con.execute(statement, {"experiment": experiment, "location": location})


class Watch:
    """wrk on the front door for as long as the block lasts, and a poller of /ping beside it.

    wrk (stopped with Ctrl-C's signal, after which it prints its summary) gives the requests,
    failures and latency; the poller, a new connection every 50 ms, gives when each version
    answered and how long nothing did.
    """

    def __init__(self, port: int, lua: Path):
        self.port, self.lua, self.seen = port, lua, []  # (time, version or None)
        self.stopping = threading.Event()

    def __enter__(self):
        url = f"http://127.0.0.1:{self.port}/invocations"
        self.output = tempfile.TemporaryFile("w+")
        command = ["wrk", "--latency", "-c2", "-t1", "-d1h", "-s", str(self.lua), url]
        self.wrk = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT)
        self.poller = threading.Thread(target=self.poll)
        self.poller.start()
        return self

    def poll(self):
        while not self.stopping.wait(0.05):
            version = None
            with contextlib.suppress(OSError):
                ping = f"http://127.0.0.1:{self.port}/ping"
                with urllib.request.urlopen(ping, timeout=1) as answer:
                    version = answer.headers.get("X-Model-Version") or "up"
            self.seen.append((time.monotonic(), version))

    def first_answer(self, after: float, version: str | None = None, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while not self.answered(after, version):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from version {version} within {timeout} s")
            time.sleep(0.05)

    def answered(self, after, version=None):
        return next((t for t, v in self.seen if t > after and v and v in (version, "up")), None)

    def __exit__(self, *exc):
        self.stopping.set()
        self.poller.join()
        self.wrk.send_signal(signal.SIGINT)
        self.wrk.wait()
        self.output.seek(0)
        self.report = self.output.read()

    def row(self, what: str, since: float | None) -> str:
        out = self.report
        p50, p99 = (re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)[1] for q in (50, 99))
        count = int(re.search(r"(\d+) requests in", out)[1])
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        failed = f"{int(bad[1]) if bad else 0}, {sum(map(int, sockets.groups())) if sockets else 0}"
        # The longest time between two answered polls, and when that silence ended.
        longest, back, last = 0.0, None, None
        for t, v in self.seen:
            if v is not None:
                if last is not None and t - last > longest:
                    longest, back = t - last, t
                last = t
        new = next((v for _, v in reversed(self.seen) if v), None)  # the last that answered
        if new == "up":  # no proxy, no version header: the server is back when the silence ends
            first = back
        else:
            first = since and next((t for t, v in self.seen if t > since and v == new), None)
        after = f"{first - since:.1f} s" if first and since else "-"
        return f"{what} | {count} | {failed} | {p50} | {p99} | {longest:.1f} s | {after}"


# --- The report ---------------------------------------------------------------------------

PARTS = [
    "tracking",
    "server",
    "register",
    "serving",
    "batch",
    "load",
    "setup",
    "rollout",
    "upgrade",
]


def machine() -> list[str]:
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    tools = subprocess.getoutput("hyperfine -V; wrk -v 2>&1 | head -1 | cut -d' ' -f1-2")
    packages = ", ".join(f"{p} {version(p)}" for p in "mlflow scikit-learn pandas pyspark".split())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- {os.cpu_count()} cores ({cpu[1] if cpu else 'CPU unknown'}), {memory:.0f} GiB, {platform.platform()}",
        f"- Python {platform.python_version()}; {packages}; {tools.replace(chr(10), ', ')}",
        f"- Load average at the start: {load} (other jobs may share this machine)",
    ]


def section(title: str, how: str, header: str, rows: list[str], meaning: str) -> list[str]:
    """A report section: what was measured and how, a table (`a | b` per row), what it means."""
    columns = header.count("|") + 1
    table = [f"| {line} |" for line in [header, " | ".join(["---"] * columns), *rows]]
    return [f"## {title}", "", how, "", *table, "", f"**What it means for you:** {meaning}", ""]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--only", action="append", choices=PARTS, help="this part (repeatable)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    for tool in ("hyperfine", "wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"error: {tool} is not installed (apt-get install hyperfine wrk curl)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the `finally`s still run
    started, header = time.time(), machine()
    # --quick leaves out set-up and the rollout (minutes either way: tests/test_rollout.py
    # covers the rollout).
    parts = args.only or [p for p in PARTS if not (args.quick and p in ("setup", "rollout"))]
    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    bench, sections = Bench(QUICK if args.quick else FULL, work), []
    try:
        with bench.servers:  # the shared tracking server stops when the last part is done
            for part in parts:
                print(f"{time.strftime('%H:%M:%S')} {part}", flush=True)
                sections += section(*getattr(bench, part)())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    how = "`python benchmarks/run.py --quick` (tiny sizes: the figures mean nothing)"
    how, when = how if args.quick else "`make bench`", time.gmtime(started)
    intro = (
        f"Made by {how} on {time.strftime('%Y-%m-%d %H:%M UTC', when)}, in "
        f"{(time.time() - started) / 60:.1f} minutes, on:\n\n" + "\n".join(header) + "\n\n"
        f"Times are hyperfine's medians, ± the standard deviation of its runs ({bench.s.runs} "
        f"after {bench.s.warmup} warm-up, unless a section says otherwise); memory is the peak of a command's whole "
        "process tree. [Measuring](measuring.md) explains how each part works.\n\n"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("# Benchmarks\n\n" + intro + "\n".join(sections).rstrip() + "\n")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
