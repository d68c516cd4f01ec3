"""What the benchmark's parts share: a scratch folder with the stores they need (each made once),
servers in process groups of their own (stopped whole, whatever happens), and the tools that
measure: hyperfine times commands, wrk loads HTTP, /proc gives a process tree's memory."""

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MODEL_NAME = "breast-cancer-classifier"
FEATURES = pd.read_csv(REPO / "data" / "breast_cancer.csv").drop(columns=["diagnosis"])
WRK_POST = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n'


@dataclass(frozen=True)
class Settings:
    runs: int  # hyperfine runs per command, after `warmup` untimed ones
    warmup: int
    forest: tuple[str, ...]  # train_rfc.py's flags
    store_sizes: tuple[int, ...]  # runs in the store register_model.py ranks
    wrk_seconds: int
    batch_rows: tuple[int, ...]
    clients: tuple[int, ...]  # clients logging at once
    runs_per_client: int
    quick: bool = False  # one row per table where the others only repeat the same code


FULL = Settings(3, 1, (), (1_000, 10_000), 5, (10_000, 100_000, 1_000_000), (1, 4, 8), 2)
QUICK = Settings(1, 0, ("--n-estimators", "20"), (100,), 1, (500,), (1,), 1, quick=True)


class Bench:
    """The settings, the scratch folder, and the servers that stop when the last part is done."""

    def __init__(self, settings: Settings, work: Path):
        self.s, self.work, self.servers, self.shared = settings, work, contextlib.ExitStack(), None

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

    def spawn(self, command, env, output=subprocess.DEVNULL) -> subprocess.Popen:
        """A command in the background, in its own process group (so that it can be stopped whole)."""
        return subprocess.Popen(
            command, env=env, cwd=self.work, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def hyperfine(self, command: str, env, runs=None, warmup=None, prepare="") -> dict:
        """hyperfine's median and deviation (s); the peak MiB of the process tree, every 0.2 s."""
        runs, warmup = runs or self.s.runs, self.s.warmup if warmup is None else warmup
        export = self.work / f"hyperfine-{uuid.uuid4().hex}.json"
        args = ["hyperfine", "--runs", str(runs), "--warmup", str(warmup), "--export-json", export]
        args += ["--prepare", prepare] if prepare else []
        output = tempfile.TemporaryFile("w+")
        process, peak = self.spawn([*args, "--show-output", command], env, output), 0.0
        while process.poll() is None:
            peak = max(peak, group_memory(process.pid))
            time.sleep(0.2)
        if process.returncode:
            output.seek(0)
            raise RuntimeError(f"hyperfine failed on `{command}`:\n{output.read()[-3000:]}")
        result = json.loads(export.read_text())["results"][0]
        return {"s": result["median"], "sd": result["stddev"] or 0, "n": runs, "mib": peak}

    @contextlib.contextmanager
    def serve(self, command: list, env, ready_url: str, log: str, timeout: float = 120):
        """A server in its own process group (its output in `log`), stopped whole afterwards;
        `timeout` seconds to answer `ready_url` (more for one that builds an environment first)."""
        log = self.work / log
        process = self.spawn(command, env, open(log, "a"))
        try:
            deadline = time.monotonic() + timeout
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
    def tracking_server(self, backend: str, name: str, **extra):
        """tracking_server.sh on `backend` (1 worker, artifacts proxied): its URL and access log."""
        port, artifacts = free_port(), self.work / f"{name}-artifacts"
        env = self.env(PORT=str(port), BACKEND_STORE_URI=backend, **extra)
        env["ARTIFACTS_DESTINATION"], url = str(artifacts), f"http://127.0.0.1:{port}"
        script = REPO / "team-server" / "tracking_server.sh"
        with self.serve([script], env, f"{url}/health", f"{name}.log"):
            yield url, self.work / f"{name}.log"

    def sqlite_server(self) -> tuple[str, Path]:
        """One tracking_server.sh on SQLite, shared by the parts that log to one."""
        if not self.shared:
            db = self.work / "server.db"
            db.touch()  # tracking_server.sh starts only on a SQLite file that exists
            self.shared = self.servers.enter_context(
                self.tracking_server(f"sqlite:///{db}", "server")
            )
        return self.shared

    def model_server(self, uri: str, port: int, log: str):
        """serve_model.sh: the champion of the store `uri` on `port`."""
        ping = f"http://127.0.0.1:{port}/ping"
        return self.serve([REPO / "serve_model.sh"], self.env(uri, PORT=str(port)), ping, log)

    def store(self, name: str) -> Path:
        """A store, made once: "trained" (a forest; and a network unless quick), or "champion"."""
        path = self.work / f"{name}.db"
        env = self.env(f"sqlite:///{path}")
        if name == "champion" and not path.exists():
            shutil.copy(self.store("trained"), path)
            self.sh(py(REPO / "register_model.py"), env)
        elif not path.exists():
            self.sh(py(REPO / "train_rfc.py", *self.s.forest), env)
            if not self.s.quick:
                self.sh(py(REPO / "train_ann.py"), env)
        return path


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


def wrk_latency(out: str) -> list[str]:
    """The p50 and p99 of `wrk --latency`'s summary, as wrk prints them."""
    return [re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)[1] for q in (50, 99)]


def seeded_copy(store: Path, path: Path, count: int, below: float) -> Path:
    """A copy of `store` with `count` finished forest runs more, each with a logged model whose
    test_f1 is < `below`.

    The runs go in around MLflow's API on purpose: through it (create_run, create_logged_model,
    log_batch, finalize_logged_model, set_terminated), 10,000 runs take about 4 minutes here,
    25 ms each. These INSERTs write the same rows to the same tables in about a second.
    """
    shutil.copy(store, path)
    with sqlite3.connect(path) as con:
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
    return path
