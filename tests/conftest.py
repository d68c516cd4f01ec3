"""Fixtures shared by the tests: a fresh MLflow store per test, and scripts run as a reader would.

Every test gets its own SQLite store in its own temporary folder. Creating an MLflow database
runs all of MLflow's schema migrations (seconds), so one empty database is made per session and
copied for each test: still a real, current MLflow store. The same goes for the stores the
scripts train: each is made once per session, shared by both `pytest -n 2` workers (`shared_folder`),
and every test works on its own copy.

Processes a test starts live in their own process group (`start_new_session=True`) and the
fixtures that start them kill the whole group afterwards, also when the test fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import process_groups

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "breast_cancer_train.csv"  # what the training scripts read by default
PYTHON = sys.executable
BIN = Path(PYTHON).parent

# Words that must never appear in the output of a clean run.
NOISE = ("Warning", "warning:", "deprecated", "Deprecated", "Traceback")

# Small settings keep the suite fast; the scripts' defaults are exercised by `make demo`.
FAST_RFC = ["--n-estimators", "20"]
FAST_ANN = ["--hidden-layers", "16", "--learning-rate", "0.01"]


def raw_table(rows: int = 600, seed: int = 7):
    """A reader's raw table, made here: an ID column, whole numbers, floats with empty cells, a
    name with a space, text with empty cells, a boolean, three imbalanced string classes."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    step = rng.choice(["renew", "lapse", "upgrade"], rows, p=[0.6, 0.28, 0.12])
    table = pd.DataFrame(
        {
            "member_id": rng.permutation(rows) + 10_000,
            "age": rng.integers(16, 80, rows) + (step == "upgrade") * 12,
            "visits per month": rng.poisson(4, rows) + (step == "renew") * 3,
            "late fees": np.round(rng.gamma(2, 3, rows) + (step == "lapse") * 6, 2),
            "membership": np.where(
                step == "upgrade", "family", rng.choice(["basic", "family", "student"], rows)
            ),
            "has_card": (rng.random(rows) < 0.4) | (step == "renew"),
            "next step": step,
        }
    )
    table.loc[rng.random(rows) < 0.05, "late fees"] = np.nan
    table.loc[rng.random(rows) < 0.05, "membership"] = np.nan
    return table


def base_env() -> dict[str, str]:
    """The environment a reader's shell would have, minus anything pointing at a real store."""
    # Nor any cloud setting (AWS_*): a team's laptop holds none, and the tests prove it needs none.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # A reader's environment has requirements.txt only; ours has every room's extras, and one
    # of them (Evidently) brings tqdm, with which MLflow draws download progress bars that a
    # reader's never shows. So no bars here, as there.
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    # Servers skip the background job workers (GenAI evaluation jobs) this tutorial never uses.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Store:
    """One test's MLflow store: a SQLite file and an artifact folder under `root`."""

    root: Path
    uri: str
    env: dict[str, str] = field(default_factory=base_env)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def run(
        self,
        script: str,
        *args: str,
        check: bool = True,
        timeout: float = 240,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        """Run one of the tutorial's scripts the way the README says, against this store."""
        return run_command(
            [PYTHON, str(REPO / script), *args],
            env=env or self.env,
            cwd=cwd or self.root,
            check=check,
            timeout=timeout,
        )

    def call(self, script: str, *args: str) -> subprocess.CompletedProcess:
        """`run`, in this process: the script's main under server_errors.exit_on_error.

        The same code path as the command line, against this real store, without a new
        interpreter's imports (seconds) per call. Output and exit code as a shell sees them,
        except Python's warnings, which pytest records: `run` is what checks a clean output.
        """
        spec = importlib.util.spec_from_file_location(Path(script).stem, REPO / script)
        module = importlib.util.module_from_spec(spec)
        saved = sys.argv, sys.path[:], os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            # as `python <script>` does: the script's own folder first (a room's modules), then REPO
            sys.argv, sys.path[:0] = [script, *args], [str((REPO / script).parent), str(REPO)]
            os.chdir(self.root)
            os.environ["MLFLOW_TRACKING_URI"] = self.uri
            mlflow.set_tracking_uri(self.uri)  # an earlier set_tracking_uri would beat the env
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                spec.loader.exec_module(module)
                import server_errors  # from REPO, now on the path

                try:
                    server_errors.exit_on_error(module.main)
                except SystemExit as exited:
                    code = exited.code
                    if isinstance(code, str):  # sys.exit("error: ...") prints it and exits 1
                        print(code, file=sys.stderr)
                        code = 1
        finally:
            sys.argv, sys.path[:] = saved[0], saved[1]
            os.chdir(saved[2])
            if saved[3] is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved[3]
        return subprocess.CompletedProcess(
            [script, *args], code or 0, out.getvalue(), err.getvalue()
        )

    def experiment_runs(self, name: str):
        experiment = self.client.get_experiment_by_name(name)
        assert experiment is not None, f"no experiment {name!r}"
        return self.client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time ASC"]
        )


def run_command(command, *, env, cwd, check=True, timeout=240):
    result = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def assert_clean(result) -> None:
    """A clean run prints no warning, deprecation notice or traceback."""
    output = result.stdout + result.stderr
    for word in NOISE:
        assert word not in output, f"{word!r} in output:\n{output}"


def shared_folder(tmp_path_factory, name: str, fill) -> Path:
    """A session-wide folder `name` that `fill(folder)` fills once for all pytest-xdist workers.

    A worker that asks while another is filling it waits on the lock, then uses the result.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' common folder
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            fill(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow database, made once and copied by `store`."""

    def migrate(folder):
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()

    return shared_folder(tmp_path_factory, "empty-store", migrate) / "mlflow.db"


def store_from(db_template: Path, folder: Path) -> Store:
    db = folder / "mlflow.db"
    shutil.copyfile(db_template, db)
    uri = f"sqlite:///{db}"
    result = Store(root=folder, uri=uri)
    result.env["MLFLOW_TRACKING_URI"] = uri
    return result


@pytest.fixture
def store(tmp_path, empty_store_db) -> Store:
    """A fresh SQLite store for this test; scripts run with their cwd in its folder."""
    return store_from(empty_store_db, tmp_path)


# Three runs in two experiments, trained once per session by the real scripts: a weak forest
# ("stump"), a normal one ("forest") and a network ("network").
TRAINED_RUNS = {
    "stump": ("train_rfc.py", "--n-estimators", "2", "--max-depth", "1"),
    "forest": ("train_rfc.py", *FAST_RFC),
    "network": ("train_ann.py", *FAST_ANN),
}


@pytest.fixture(scope="session")
def trained_store_db(tmp_path_factory, empty_store_db) -> Path:
    """A database holding TRAINED_RUNS. Their artifacts stay in this session folder, read-only."""

    def train(folder):
        template = store_from(empty_store_db, folder)
        for run_name, (script, *args) in TRAINED_RUNS.items():
            # In this process: a fixture's runs need no interpreter of their own (the tests and
            # the pages check the scripts' output as a shell shows it).
            trained = template.call(script, *args, "--run-name", run_name)
            assert trained.returncode == 0, trained.stderr

    return shared_folder(tmp_path_factory, "trained-store", train) / "mlflow.db"


@pytest.fixture
def trained_store(tmp_path, trained_store_db) -> Store:
    """This test's own copy of the trained database: what it registers stays its own."""
    return store_from(trained_store_db, tmp_path)


@pytest.fixture(scope="session")
def python_without_the_tutorial(tmp_path_factory) -> str:
    """A Python with every package of this one but none of the tutorial's own modules.

    What a reader's project has after `pip install -r requirements.txt`: the editable install
    (`pip install -e .`) that makes input_checks, server_errors, ... importable everywhere is
    left out. A venv whose one .pth file names this environment's site-packages does that: a
    path in a .pth file is added to sys.path, but the .pth files inside it are not run.
    """
    folder = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", folder], check=True)
    packages = next(path for path in sys.path if path.endswith("site-packages"))
    (site,) = folder.glob("lib/python*/site-packages")
    (site / "this-environment.pth").write_text(packages + "\n")
    python = str(folder / "bin" / "python")
    missing = subprocess.run([python, "-c", "import input_checks"], cwd=folder, capture_output=True)
    assert missing.returncode != 0, "the tutorial's modules are importable without -e ."
    return python


@pytest.fixture(scope="session")
def docker(tmp_path_factory):
    """A Docker daemon of this session's own, with a stand-in for python:<this Python>-slim
    (tests/testbeds/docker_daemon.py): for the container room. Its DOCKER_HOST is `docker.host`."""
    from testbeds import docker_daemon

    if why := docker_daemon.missing():
        pytest.skip(why)
    stand_in = shared_folder(
        tmp_path_factory, "python-stand-in", docker_daemon.make_stand_in_rootfs
    )
    with docker_daemon.throwaway_docker() as daemon:
        daemon.load_stand_in(
            stand_in / "python-stand-in.tar", f"python:{platform.python_version()}-slim"
        )
        yield daemon


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    """Poll `url` until it answers 200, failing early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True, and everything it started."""
    process_groups.stop_process(process)


def stop_team_stack(folder: Path) -> None:
    """Stop every process group a team stack's pid files name (KILL: the test is over), and
    delete its PostgreSQL cluster where, as root, team_stack.py keeps it outside `folder`."""
    for pid_file in folder.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()
    spec = importlib.util.spec_from_file_location(
        "team_stack", REPO / "team-server" / "team_stack.py"
    )
    team_stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(team_stack)
    if os.geteuid() == 0:
        shutil.rmtree(team_stack.postgres_folder(folder), ignore_errors=True)


@pytest.fixture
def start_process():
    """Start background processes in their own process group; kill each group afterwards."""
    started: list[subprocess.Popen] = []

    def start(command, *, env, cwd, log: Path | None = None) -> subprocess.Popen:
        out = open(log, "a") if log else subprocess.DEVNULL
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process_group(process)


# The longest tests, longest first. `pytest -n 2` hands tests out in collection order, so these
# go first: started last, one of them would keep a worker busy while the other sits idle.
LONGEST_FIRST = [
    "test_docs.py::test_first_chapters_run_as_written",  # --quick's longest
    "test_docs.py::test_track_runs_as_written[tutorial]",
    "test_docs.py::test_track_runs_as_written[spark]",
    "test_docs.py::test_track_runs_as_written[team-server]",
    "test_docs.py::test_track_runs_as_written[tuning]",
    "test_docs.py::test_track_runs_as_written[rollout]",
    "test_rollout.py::",
    "test_lessons.py::test_chapter_8",
    "test_docs.py::test_track_runs_as_written[container]",
    "test_container.py::",
    "test_benchmarks_smoke.py::",
    "test_own_data.py::",
    "test_signals.py::",
]


# The topic rooms' tests, by room: `make test` (the README, the quickstart, chapters 1-8) leaves
# them out; `make test-<room>` runs one room (marker: the room's name, _ for -), `make test-rooms`
# all of them in one session (they share its trained stores), `make test-all` everything.
ROOMS = {
    "rollout": ["test_rollout.py::", "test_docs.py::test_track_runs_as_written[rollout]"],
    "spark": [
        "test_docs.py::test_track_runs_as_written[spark]",
        "test_own_data.py::test_spark_",
    ],
    "team_server": [
        "test_team_server.py::",
        "test_team_accounts.py::",
        "test_docs.py::test_track_runs_as_written[team-server]",
    ],
    "old_stores": [
        "test_old_stores.py::",
        "test_upgrade_store.py::",
        "test_docs.py::test_track_runs_as_written[old-stores]",
    ],
    "team_stack": ["test_team_stack.py::", "test_docs.py::test_track_runs_as_written[team-stack]"],
    "bench": ["test_benchmarks_smoke.py::"],
    "container": [
        "test_container.py::",
        "test_rebuilt_env.py::",
        "test_docs.py::test_track_runs_as_written[container]",
    ],
    "monitoring": ["test_monitoring.py::", "test_docs.py::test_track_runs_as_written[monitoring]"],
}


def pytest_addoption(parser):
    parser.addoption(
        "--quick",
        action="store_true",
        help="only the edit loop's subset (tests marked quick): make test-quick, under 2 minutes",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: part of the edit loop's subset (make test-quick)")
    config.addinivalue_line(
        "markers", "quick_only: in the subset only; the full suite covers it another way"
    )
    config.addinivalue_line("markers", "room: a topic room's test (make test-rooms)")
    config.addinivalue_line(
        "markers", "unit: a pure function's test, in tests/unit/ (make test-unit)"
    )
    for room in ROOMS:
        config.addinivalue_line("markers", f"{room}: the {room} room's tests (make test-<room>)")


def pytest_collection_modifyitems(config, items):
    """Order the longest first; with --quick keep the subset, without it drop quick_only."""
    quick = config.getoption("--quick")
    keep = [
        item
        for item in items
        if (
            item.get_closest_marker("quick") if quick else not item.get_closest_marker("quick_only")
        )
    ]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
    for item in items:
        if item.path.parent.name == "unit":
            item.add_marker(pytest.mark.unit)  # make test-unit; make test runs them first
        where = item.nodeid.split("/")[-1]
        for room, prefixes in ROOMS.items():
            if any(where.startswith(prefix) for prefix in prefixes):
                item.add_marker(getattr(pytest.mark, room))
                item.add_marker(pytest.mark.room)

    def rank(item):
        where = item.nodeid.split("/")[-1]
        return next(
            (n for n, prefix in enumerate(LONGEST_FIRST) if where.startswith(prefix)),
            len(LONGEST_FIRST),
        )

    items.sort(key=rank)  # stable: the rest keep their order
