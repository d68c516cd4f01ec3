"""What MLflow tracking costs, and how promotion and serving scale: `make bench`.

Runs the tutorial's own scripts as a reader would and prints one table per question, then
writes them with a description of the machine to docs/benchmarks.md:

1. tracking cost: train_rfc.py / train_ann.py against the same training without MLflow;
2. MLflow's defaults against the tutorial's explicit choices, against a local `mlflow server`
   (wall time and the HTTP requests in the server's access log);
3. register_model.py with 10, 1,000 and 10,000 runs in a SQLite store;
4. `mlflow models serve` (serve_model.sh): latency and throughput of /invocations on loopback
   against in-process pyfunc prediction of the same rows;
5. peak memory (RSS) of each training script and of the serving processes.

Every figure is a median over repeated runs, and every comparison is the median of per-round
ratios of commands run back to back (each round one hyperfine invocation, the order alternating):
this machine is shared and noisy, so absolute seconds drift from run to run, ratios much less.

    python benchmarks/run.py                 # the full benchmark (20 to 40 minutes on 2 shared cores)
    python benchmarks/run.py --quick         # tiny sizes, one repetition: checks it still works

Whole commands are timed with hyperfine and HTTP load comes from wrk (Debian packages
`hyperfine` and `wrk`); without them a plain Python timer / load client stands in, and the
report says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
PYTHON = sys.executable
DATA = REPO / "data" / "breast_cancer.csv"
MODEL_NAME = "breast-cancer-classifier"
ALIAS = "champion"
RFC_EXPERIMENT = "breast-cancer-random-forest"

# Targets from the benchmark's issue: what "fast enough" means for each question.
TARGET_TRACKING_RATIO = 1.6
TARGET_PROMOTION_RATIO = 2.0
TARGET_P50_OVER_IN_PROCESS_MS = 5.0
TARGET_P99_MS = 25.0


@dataclass
class Settings:
    """How much to measure. `quick` is for the smoke test: it proves the code runs, no more."""

    repeats: int  # hyperfine runs per command
    # Quick mode times the one run each command needs anyway (memory, request count) instead
    # of repeating it under hyperfine.
    single_pass: bool
    scripts: tuple[str, ...]  # training scripts in the tracking-cost table
    rfc_flags: tuple[str, ...]
    ann_flags: tuple[str, ...]
    store_sizes: tuple[int, ...]
    workers: tuple[int, ...]
    request_rows: tuple[int, ...]
    load_seconds: int  # each wrk run
    load_repeats: int
    measure_busy: bool  # also load with 4 connections at once (throughput)
    in_process_calls: int
    variants: tuple[str, ...]  # which MLflow-default variants to time against the server


FULL = Settings(
    repeats=5,
    single_pass=False,
    scripts=("train_rfc.py", "train_ann.py"),
    rfc_flags=(),
    ann_flags=(),
    store_sizes=(10, 1_000, 10_000),
    workers=(1, 2),
    request_rows=(1, 100),
    load_seconds=5,
    load_repeats=3,
    measure_busy=True,
    in_process_calls=500,
    variants=("ours", "requirements", "calls", "requirements+calls"),
)
QUICK = Settings(
    repeats=1,
    single_pass=True,
    scripts=("train_rfc.py",),
    rfc_flags=("--n-estimators", "5"),
    ann_flags=("--hidden-layers", "8", "--learning-rate", "0.01"),
    store_sizes=(10, 50),
    workers=(1,),
    request_rows=(1, 100),
    load_seconds=1,
    load_repeats=1,
    measure_busy=False,
    in_process_calls=20,
    variants=("ours", "calls"),
)


@dataclass
class Report:
    settings: Settings
    sections: list[str] = field(default_factory=list)
    targets: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memory: list[tuple[str, float]] = field(default_factory=list)

    def table(self, title: str, intro: str, header: list[str], rows: list[list[str]]) -> None:
        lines = [f"## {title}", "", intro, "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
        text = "\n".join(lines) + "\n"
        self.sections.append(text)
        print(text, flush=True)

    def target(self, name: str, met: bool, detail: str) -> None:
        self.targets.append((name, met, detail))


# --- Running things -----------------------------------------------------------------------


def child_env(tracking_uri: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    # `mlflow server` would also start background job workers this benchmark never uses.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def run(command: list[str], *, env, cwd, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(map(str, command))} exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


def timed_run(command: list[str], *, env, cwd) -> tuple[float, float]:
    """Run `command` once: its wall time (s) and peak resident memory (MiB, kernel's rusage)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited {process.returncode}:\n{stderr[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux reports KiB


def time_commands(
    commands: dict[str, str], *, env, cwd, runs: int, warmup: int = 0, prepare=None
) -> dict[str, list[float]]:
    """Wall times (s) of shell commands, interleaved in `runs` rounds.

    Each round runs every command once, in one hyperfine invocation (or with a plain timer
    where hyperfine is missing), the order reversed every other round: a load change on this
    shared machine then hits all commands alike, and round i of two commands is a fair pair.
    """
    names = list(commands)
    times = {name: [] for name in names}
    for round_number in range(warmup + runs):
        order = names if round_number % 2 == 0 else names[::-1]
        measured = time_round(order, commands, env=env, cwd=cwd, prepare=prepare)
        if round_number >= warmup:
            for name in names:
                times[name].append(measured[name])
    return times


def time_round(names, commands, *, env, cwd, prepare) -> dict[str, float]:
    if shutil.which("hyperfine"):
        export = Path(cwd) / "hyperfine.json"
        command = ["hyperfine", "--style", "none", "--runs", "1", "--export-json", str(export)]
        for name in names:
            if prepare:
                command += ["--prepare", prepare[name]]
            command += ["--command-name", name, commands[name]]
        run(command, env=env, cwd=cwd, timeout=3600)
        results = json.loads(export.read_text())["results"]
        return {result["command"]: result["times"][0] for result in results}
    measured = {}
    for name in names:
        if prepare:
            subprocess.run(prepare[name], shell=True, env=env, cwd=cwd, check=True)
        start = time.perf_counter()
        subprocess.run(
            commands[name], shell=True, env=env, cwd=cwd, check=True, capture_output=True
        )
        measured[name] = time.perf_counter() - start
    return measured


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median of the per-round ratios: each pair ran back to back under the same load."""
    return median(a / b for a, b in zip(numerators, denominators, strict=True))


def python_command(*parts) -> str:
    return shlex.join([PYTHON, *map(str, parts)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start_server(command: list[str], *, env, cwd, log: Path) -> subprocess.Popen:
    """A server in its own process group, so that stop_server can end it and its workers."""
    with open(log, "w") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # leftover uvicorn workers
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def group_peak_rss(pgid: int) -> tuple[float, float, int]:
    """Peak RSS (VmHWM, MiB) of a process group: summed, largest process, process count."""
    peaks = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peaks.append(int(match.group(1)) / 1024)
    return sum(peaks), max(peaks, default=0.0), len(peaks)


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: int) -> float:
    """The q-th percentile (1..99) of `values`."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


# --- Stores -------------------------------------------------------------------------------


def empty_store(path: Path) -> Path:
    """A fully migrated, empty MLflow SQLite store (made once, then copied: migrating takes s)."""
    # In a child process: MLflow's migration log lines stay out of the benchmark's output.
    code = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"
    run([PYTHON, "-c", code, f"sqlite:///{path}"], env=child_env(), cwd=path.parent)
    return path


def copy_store(source: Path, target: Path) -> str:
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"


def seed_runs(db: Path, experiment_name: str, count: int, below: float) -> None:
    """Add `count` finished runs to an experiment, each with a test_f1 under `below`.

    The rows go in through MLflow's own SQLAlchemy models in batches of 1,000: the same tables
    and columns `mlflow.start_run` fills, written in a fraction of the time (creating 10,000
    runs one API call at a time takes minutes).
    """
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db}", str(db.parent / "mlruns"))
    experiment = store.get_experiment_by_name(experiment_name)
    rng = random.Random(0)
    now = int(time.time() * 1000)
    with store.ManagedSessionMaker(read_only=False) as session:
        for first in range(0, count, 1000):
            runs, children = [], []
            for index in range(first, min(count, first + 1000)):
                run_id = uuid.uuid4().hex
                started = now - (count - index) * 60_000
                name = f"seeded-{index}"
                runs.append(
                    SqlRun(
                        run_uuid=run_id,
                        name=name,
                        source_type="LOCAL",
                        source_name="benchmarks/run.py",
                        user_id="benchmark",
                        status="FINISHED",
                        start_time=started,
                        end_time=started + 5_000,
                        lifecycle_stage="active",
                        artifact_uri=f"{experiment.artifact_location}/{run_id}/artifacts",
                        experiment_id=int(experiment.experiment_id),
                    )
                )
                f1 = rng.uniform(0.80, below)
                metric = {"key": "test_f1", "value": f1, "timestamp": started, "step": 0}
                children += [
                    SqlMetric(**metric, is_nan=False, run_uuid=run_id),
                    SqlLatestMetric(**metric, is_nan=False, run_uuid=run_id),
                    SqlParam(
                        key="n_estimators", value=str(rng.choice([50, 100, 300])), run_uuid=run_id
                    ),
                    SqlTag(key="mlflow.runName", value=name, run_uuid=run_id),
                ]
            session.add_all(runs)
            session.flush()
            session.add_all(children)
            session.flush()


# --- 1. What tracking costs ---------------------------------------------------------------


def bench_tracking(report: Report, settings: Settings, work: Path, template: Path) -> None:
    env = child_env(copy_store(template, work / "tracking.db"))
    flags = {"train_rfc.py": settings.rfc_flags, "train_ann.py": settings.ann_flags}
    family = {"train_rfc.py": "rfc", "train_ann.py": "ann"}
    commands, first_runs = {}, {}
    for script in settings.scripts:
        commands[f"{script} tracked"] = [PYTHON, str(REPO / script), *flags[script]]
        untracked = BENCH / "untracked_training.py"
        commands[f"{script} untracked"] = [PYTHON, str(untracked), family[script], *flags[script]]
    # One run of each first: it creates the experiment, warms the disk cache, and gives the
    # peak memory (the kernel's rusage of that one process).
    for name, command in commands.items():
        first_runs[name] = timed_run(command, env=env, cwd=work)
        report.memory.append((f"`{name}`", first_runs[name][1]))
    if settings.single_pass:
        times = {name: [wall] for name, (wall, _) in first_runs.items()}
    else:
        shell = {name: shlex.join(command) for name, command in commands.items()}
        times = time_commands(shell, env=env, cwd=work, runs=settings.repeats)
    rows = []
    for script in settings.scripts:
        tracked = median(times[f"{script} tracked"])
        untracked = median(times[f"{script} untracked"])
        ratio = paired_ratio(times[f"{script} tracked"], times[f"{script} untracked"])
        rows.append(
            [
                f"`{script}`",
                seconds(tracked),
                seconds(untracked),
                f"{ratio:.2f}",
                met(ratio <= TARGET_TRACKING_RATIO),
            ]
        )
        report.target(
            f"{script}: tracked / untracked <= {TARGET_TRACKING_RATIO}",
            ratio <= TARGET_TRACKING_RATIO,
            f"{ratio:.2f}",
        )
    report.table(
        "1. What tracking costs",
        "Wall time of each training script with its default settings against the same training "
        "without MLflow (`benchmarks/untracked_training.py`: same imports, fit and test scores, "
        f"nothing logged), into a warm SQLite store. {settings.repeats} interleaved rounds; "
        "times are medians, the ratio is the median of the per-round ratios.",
        [
            "script",
            "tracked",
            "untracked",
            "tracked / untracked",
            f"target <= {TARGET_TRACKING_RATIO}",
        ],
        rows,
    )


# --- 2. What the explicit choices save ----------------------------------------------------

VARIANT_TEXT = {
    "ours": "the tutorial's script: explicit requirements, batched calls",
    "requirements": "MLflow infers the pip requirements",
    "calls": "one `log_param` / `log_metric` / `set_tag` per key",
    "requirements+calls": "both of MLflow's defaults",
}


def count_requests(log: Path) -> tuple[int, int]:
    """(tracking API, artifact) requests in a uvicorn access log so far."""
    api = artifacts = 0
    for line in log.read_text(errors="replace").splitlines():
        match = re.search(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) (\S+)', line)
        if not match:
            continue
        if "/mlflow-artifacts/" in match.group(2):
            artifacts += 1
        elif "/api/" in match.group(2):
            api += 1
    return api, artifacts


def bench_defaults(report: Report, settings: Settings, work: Path, template: Path) -> None:
    port = free_port()
    backend = copy_store(template, work / "server.db")
    log = work / "server-access.log"
    server = start_server(
        [
            str(Path(PYTHON).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            str(work / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=child_env(),
        cwd=work,
        log=log,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server)
        env = child_env(f"http://127.0.0.1:{port}")
        script = [str(REPO / "train_rfc.py"), *settings.rfc_flags]
        commands = {}
        for variant in settings.variants:
            if variant == "ours":
                commands[variant] = python_command(*script)
            else:
                undo = [part for name in variant.split("+") for part in ("--undo", name)]
                commands[variant] = python_command(
                    BENCH / "with_mlflow_defaults.py", *undo, *script
                )
        # One counted run per variant (it also warms up): requests = access-log lines it added.
        requests, times = {}, {}
        for variant, command in commands.items():
            before = count_requests(log)
            start = time.perf_counter()
            subprocess.run(command, shell=True, env=env, cwd=work, check=True, capture_output=True)
            times[variant] = [time.perf_counter() - start]
            time.sleep(0.5)  # the access log line is written after the response
            after = count_requests(log)
            requests[variant] = (after[0] - before[0], after[1] - before[1])
        if not settings.single_pass:
            times = time_commands(commands, env=env, cwd=work, runs=settings.repeats)
    finally:
        stop_server(server)
    rows = []
    for variant in settings.variants:
        wall = median(times[variant])
        api, artifacts = requests[variant]
        rows.append(
            [
                VARIANT_TEXT[variant],
                seconds(wall),
                f"{paired_ratio(times[variant], times['ours']):.2f}",
                api,
                artifacts,
                api + artifacts,
            ]
        )
    report.table(
        "2. What the explicit choices save",
        "`train_rfc.py` logging to a local `mlflow server` (SQLite backend, artifacts proxied by "
        "the server), as written and with MLflow's defaults put back by "
        "`benchmarks/with_mlflow_defaults.py`. Requests are counted in the server's access log "
        f"for one run; {settings.repeats} interleaved rounds: median times, median per-round "
        "ratios.",
        [
            "variant",
            "wall time",
            "vs ours",
            "tracking API requests",
            "artifact requests",
            "all requests",
        ],
        rows,
    )


# --- 3. Promotion at scale ----------------------------------------------------------------


def trained_store(settings: Settings, work: Path, template: Path, cache: dict) -> Path:
    """A store with one default run of each training script in `settings` (made once)."""
    if "trained" not in cache:
        db = work / "trained.db"
        env = child_env(copy_store(template, db))
        run([PYTHON, str(REPO / "train_rfc.py"), *settings.rfc_flags], env=env, cwd=work)
        if "train_ann.py" in settings.scripts:
            run([PYTHON, str(REPO / "train_ann.py"), *settings.ann_flags], env=env, cwd=work)
        cache["trained"] = db
    return cache["trained"]


def lowest_f1(db: Path) -> float:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "metrics.test_f1 > 0"
    )
    return min(r.data.metrics["test_f1"] for r in runs)


def bench_promotion(report: Report, settings: Settings, work: Path, template: Path, cache) -> None:
    base = trained_store(settings, work, template, cache)
    # Seeded runs score below every trained run, so the best run is one with a logged model.
    below = lowest_f1(base) - 0.005
    real_runs = 2 if "train_ann.py" in settings.scripts else 1
    commands, prepare, seeding = {}, {}, {}
    for size in settings.store_sizes:
        seeded = work / f"seeded-{size}.db"
        shutil.copyfile(base, seeded)
        start = time.perf_counter()
        seed_runs(seeded, RFC_EXPERIMENT, size - real_runs, below)
        seeding[size] = time.perf_counter() - start
        target = work / f"promote-{size}.db"
        name = f"{size} runs"
        prepare[name] = shlex.join(["cp", str(seeded), str(target)])
        commands[name] = f"MLFLOW_TRACKING_URI=sqlite:///{target} " + python_command(
            REPO / "register_model.py"
        )
    env = child_env()
    warmup = 0 if settings.single_pass else 1
    times = time_commands(
        commands, env=env, cwd=work, runs=settings.repeats, warmup=warmup, prepare=prepare
    )
    # The promotion really happened: the alias points at a version of a trained run.
    import mlflow

    largest = settings.store_sizes[-1]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / f'promote-{largest}.db'}")
    champion = client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    assert not client.get_run(champion.run_id).info.run_name.startswith("seeded-"), champion
    # Serving can start from this store: its champion is already promoted.
    cache["promoted"] = work / f"promote-{largest}.db"
    smallest = times[f"{settings.store_sizes[0]} runs"]
    rows = []
    for size in settings.store_sizes:
        wall = times[f"{size} runs"]
        ratio = paired_ratio(wall, smallest)
        rows.append([f"{size:,}", seconds(median(wall)), f"{ratio:.2f}", seconds(seeding[size])])
    ratio = paired_ratio(times[f"{largest} runs"], smallest)
    report.target(
        f"register_model.py: {largest:,} runs / {settings.store_sizes[0]} runs <= {TARGET_PROMOTION_RATIO}",
        ratio <= TARGET_PROMOTION_RATIO,
        f"{ratio:.2f}",
    )
    report.table(
        "3. Promotion at scale",
        "`python register_model.py` (rank with `search_runs`, register the best run's model, "
        "move the `champion` alias) on a fresh copy of a SQLite store holding that many finished "
        "runs with `test_f1`; the best one is a real training run with a logged model. "
        f"{settings.repeats} interleaved rounds (median times, median per-round ratios). Seeding: the time to bulk-insert the runs "
        f"through MLflow's SQLAlchemy models. Target: the largest store at most "
        f"{TARGET_PROMOTION_RATIO}x the smallest: **{met(ratio <= TARGET_PROMOTION_RATIO)}**.",
        ["runs in store", "register_model.py", f"vs {settings.store_sizes[0]} runs", "seeding"],
        rows,
    )


# --- 4. Serving ---------------------------------------------------------------------------


def request_body(rows: int) -> str:
    import pandas as pd

    frame = pd.read_csv(DATA).drop(columns=["diagnosis"]).head(rows).astype("float64")
    return json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)})


def parse_wrk(output: str) -> dict[str, float]:
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}

    def ms(text):
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(number) * units[unit]

    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failed requests:\n{output}")
    return {
        "p50": ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),
        "p99": ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
    }


def load(url: str, body_file: Path, connections: int, seconds_: int, work: Path) -> dict:
    """One load run against `url` from a second process: wrk, or the stdlib stand-in."""
    if shutil.which("wrk"):
        script = body_file.with_suffix(".lua")
        body = body_file.read_text()
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body}]==]\n"
        )
        command = [
            "wrk",
            "--latency",
            "-t1",
            f"-c{connections}",
            f"-d{seconds_}s",
            "-s",
            str(script),
            url,
        ]
        return parse_wrk(run(command, env=child_env(), cwd=work).stdout)
    command = [PYTHON, str(BENCH / "load_client.py"), url, str(body_file)]
    command += ["--connections", str(connections), "--seconds", str(seconds_)]
    return json.loads(run(command, env=child_env(), cwd=work).stdout)


def serve_command(port: int, workers: int) -> tuple[list[str], dict[str, str]]:
    extra = {"PORT": str(port), "MODEL_NAME": MODEL_NAME, "ALIAS": ALIAS, "WORKERS": str(workers)}
    script = REPO / "serve_model.sh"
    if script.exists():
        return ["bash", str(script)], extra
    command = [str(Path(PYTHON).parent / "mlflow"), "models", "serve"]
    command += ["-m", f"models:/{MODEL_NAME}@{ALIAS}", "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return command, extra


def in_process_latency(uri: str, bodies: dict[int, str], calls: int) -> dict[int, dict]:
    """pyfunc predict() of the same rows in this process: the floor serving is compared with."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{ALIAS}")
    result = {}
    for rows, body in bodies.items():
        split = json.loads(body)["dataframe_split"]
        frame = pd.DataFrame(split["data"], columns=split["columns"])
        model.predict(frame)  # warm up
        latencies = [
            t * 1000
            for t in timeit.repeat(lambda f=frame: model.predict(f), number=1, repeat=calls)
        ]
        result[rows] = {
            "p50": median(latencies),
            "p99": percentile(latencies, 99),
            "predictions": model.predict(frame).tolist(),
        }
    return result


def bench_serving(report: Report, settings: Settings, work: Path, template: Path, cache) -> None:
    import mlflow

    db = work / "serving.db"
    if "promoted" in cache:
        shutil.copyfile(cache["promoted"], db)
        env = child_env(f"sqlite:///{db}")
    else:
        shutil.copyfile(trained_store(settings, work, template, cache), db)
        env = child_env(f"sqlite:///{db}")
        run([PYTHON, str(REPO / "register_model.py")], env=env, cwd=work)
    uri = f"sqlite:///{db}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    champion_run = client.get_run(client.get_model_version_by_alias(MODEL_NAME, ALIAS).run_id)
    winner = champion_run.info.run_name
    bodies, body_files = {}, {}
    for rows in settings.request_rows:
        bodies[rows] = request_body(rows)
        body_files[rows] = work / f"request-{rows}.json"
        body_files[rows].write_text(bodies[rows])
    local = in_process_latency(uri, bodies, settings.in_process_calls)

    rows_out = []
    for workers in settings.workers:
        port = free_port()
        command, extra = serve_command(port, workers)
        started = time.perf_counter()
        server = start_server(
            command, env={**env, **extra}, cwd=work, log=work / f"serve-{workers}.log"
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/ping", server)
            ready = time.perf_counter() - started
            url = f"http://127.0.0.1:{port}/invocations"
            for rows in settings.request_rows:
                # The server must give the in-process answer before its speed means anything.
                request = urllib.request.Request(
                    url, data=bodies[rows].encode(), headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    served = json.load(response)["predictions"]
                assert served == local[rows]["predictions"], (
                    served[:5],
                    local[rows]["predictions"][:5],
                )
                single = [
                    load(url, body_files[rows], 1, settings.load_seconds, work)
                    for _ in range(settings.load_repeats)
                ]
                busy = [
                    load(url, body_files[rows], 4, settings.load_seconds, work)
                    for _ in range(settings.load_repeats if settings.measure_busy else 0)
                ]
                if not busy:  # quick mode: the figures of a 1-s run mean nothing anyway
                    busy = [{"p50": math.nan, "p99": math.nan, "rps": math.nan}]
                p50 = median(r["p50"] for r in single)
                p99 = median(r["p99"] for r in single)
                rows_out.append(
                    [
                        workers,
                        rows,
                        f"{p50:.1f}",
                        f"{p99:.1f}",
                        f"{median(r['rps'] for r in single):.0f}",
                        f"{median(r['p50'] for r in busy):.1f} / {median(r['p99'] for r in busy):.1f}",
                        f"{median(r['rps'] for r in busy):.0f}",
                        f"{local[rows]['p50']:.1f} / {local[rows]['p99']:.1f}",
                        f"{ready:.1f} s",
                    ]
                )
                if workers == 1 and rows == 1:
                    budget = local[1]["p50"] + TARGET_P50_OVER_IN_PROCESS_MS
                    report.target(
                        f"serving, 1 worker, 1 row: p50 <= in-process p50 + {TARGET_P50_OVER_IN_PROCESS_MS:g} ms",
                        p50 <= budget,
                        f"{p50:.1f} ms vs {budget:.1f} ms",
                    )
                    report.target(
                        f"serving, 1 worker, 1 row: p99 < {TARGET_P99_MS:g} ms",
                        p99 < TARGET_P99_MS,
                        f"{p99:.1f} ms",
                    )
            total, largest, count = group_peak_rss(server.pid)
            report.memory.append(
                (f"serving, {workers} worker(s): all {count} processes (largest)", total, largest)
            )
        finally:
            stop_server(server)
    tool = "wrk" if shutil.which("wrk") else "benchmarks/load_client.py (wrk not installed)"
    report.table(
        "4. Serving",
        f"`mlflow models serve` of `models:/{MODEL_NAME}@{ALIAS}` (the champion chosen by "
        f"register_model.py: run `{winner}`) on 127.0.0.1, loaded by {tool} from a second "
        f"process: {settings.load_repeats} runs of {settings.load_seconds} s for each cell, "
        "medians. Latency in ms at 1 connection (one request at a time) and at 4 connections; "
        "in-process: `pyfunc` `predict()` of the same rows, "
        f"{settings.in_process_calls} calls.",
        [
            "workers",
            "rows / request",
            "p50 (1 conn)",
            "p99 (1 conn)",
            "req/s (1 conn)",
            "p50 / p99 (4 conn)",
            "req/s (4 conn)",
            "in-process p50 / p99",
            "ready after",
        ],
        rows_out,
    )


# --- The report ---------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    tools = []
    for tool, flag in (("hyperfine", "--version"), ("wrk", "-v")):
        path = shutil.which(tool)
        if path:
            out = subprocess.run([path, flag], capture_output=True, text=True)
            tools.append(
                (out.stdout + out.stderr).splitlines()[0].split(" [")[0].split(" Copyright")[0]
            )
        else:
            tools.append(f"{tool}: not installed (Python stand-in used)")
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "SQLAlchemy", "uvicorn")
    )
    return [
        f"- CPU: {os.cpu_count()} x {cpu}; memory: {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; {packages}",
        f"- Tools: {'; '.join(tools)}",
        f"- Load average when the benchmark started: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(other jobs share this machine)",
    ]


def write_report(
    report: Report, output: Path, started: float, machine_lines: list[str], quick: bool
) -> None:
    if report.memory:
        rows = []
        for label, total, *largest in report.memory:
            rows.append([label, f"{total:.0f}" + (f" ({largest[0]:.0f})" if largest else "")])
        report.table(
            "5. Memory",
            "Peak resident memory in MiB: of each training process (the kernel's rusage), and of "
            "the serving process group after its load runs (VmHWM of each process, summed; the "
            "largest single process in brackets). The group is the `mlflow` command, the uvicorn "
            "it starts and, with 2 workers, uvicorn's supervisor and its workers.",
            ["process", "peak RSS (MiB)"],
            rows,
        )
    lines = [
        "# Benchmarks",
        "",
        "Made by `make bench` (`python benchmarks/run.py"
        + (" --quick`: tiny sizes, figures meaningless" if quick else "`")
        + f") on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, in "
        f"{(time.time() - started) / 60:.1f} minutes.",
        "",
        "Every figure is a median over repeated runs; every comparison is a ratio of commands "
        "timed back to back in the same round (rounds interleave the commands, in alternating "
        "order), because absolute times on a shared machine drift.",
        "",
        "## Machine",
        "",
        *machine_lines,
        f"- Load average when it ended: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {name} | {detail} | {met(ok)} |" for name, ok, detail in report.targets],
        "",
        *report.sections,
        *([f"Note: {note}" for note in report.notes]),
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines).rstrip() + "\n")
    print(f"Wrote {output}")


SECTIONS = ("tracking", "defaults", "promotion", "serving")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, one repetition (smoke test)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "docs" / "benchmarks.md",
        help="markdown file for the report (default: docs/benchmarks.md)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this part; repeat for several (default: all)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working folder (stores, logs)"
    )
    args = parser.parse_args(argv)
    # A stopped benchmark still stops the servers it started (see the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = QUICK if args.quick else FULL
    sections = args.only or SECTIONS
    started = time.time()
    machine_lines = machine()
    report = Report(settings)
    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    try:
        template = empty_store(work / "empty.db")
        cache = {}
        if "tracking" in sections:
            bench_tracking(report, settings, work, template)
        if "defaults" in sections:
            bench_defaults(report, settings, work, template)
        if "promotion" in sections:
            bench_promotion(report, settings, work, template, cache)
        if "serving" in sections:
            bench_serving(report, settings, work, template, cache)
    finally:
        if args.keep:
            print(f"Working folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    write_report(report, args.output, started, machine_lines, args.quick)


if __name__ == "__main__":
    main()
