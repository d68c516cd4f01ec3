"""Upgrading MLflow under a store (old-stores/upgrade-mlflow.md): an older MLflow 3 wrote it, the
pinned one upgrades it, nothing is lost, and the backup takes the old version back.

The older MLflow 3 (requirements/mlflow3-older.txt) gets a virtual environment of its own and
runs the tutorial's own scripts into a store, on SQLite and on a throwaway PostgreSQL 15
cluster: two training runs, the promotion gate's first decision, `champion` on version 1. Then
the page's procedure: back up (a file copy; pg_dump), `mlflow db upgrade`, `tracking_server.sh`,
and compare_stores.py against the old MLflow's own snapshot. Marker `old_stores`: CI's own step
(`make test-old-stores`), since it builds an old MLflow from PyPI.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from test_old_stores import make_venv

from conftest import (
    BIN,
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    free_port,
    run_command,
    shared_folder,
    wait_for_http,
)
from testbeds.postgres_cluster import PG_BIN, throwaway_postgres

pytestmark = pytest.mark.old_stores
OLD_VERSION = "3.10.1"  # requirements/mlflow3-older.txt
MODEL = "breast-cancer-classifier"
OUT_OF_DATE = "Detected out-of-date database schema"


@pytest.fixture(scope="session")
def old_python(tmp_path_factory) -> Path:
    folder = shared_folder(
        tmp_path_factory,
        "venv-mlflow3-older",
        lambda f: make_venv(f / "venv", "requirements/mlflow3-older.txt"),
    )
    return folder / "venv" / "bin" / "python"


def old_env(uri: str) -> dict:
    env = base_env()
    env["MLFLOW_TRACKING_URI"] = uri
    return env


def old_predict(old_python) -> list[str]:
    """The old MLflow's predictions of the sample rows, printed as predict.py prints them.

    Not predict.py itself: it pins the alias to `models:/<name>/<version>` before it checks and
    loads, and MLflow 3.10 cannot resolve that URI on PostgreSQL ("operator does not exist:
    integer = character varying"); 3.17 can. The alias itself resolves in both.
    """
    program = (
        "import sys, mlflow, pandas as pd; "
        "model = mlflow.pyfunc.load_model('models:/breast-cancer-classifier@champion'); "
        "rows = pd.read_csv(sys.argv[1]); "
        "pd.DataFrame({'prediction': model.predict(rows)}).to_csv(sys.stdout, index=False)"
    )
    return [str(old_python), "-c", program, str(REPO / "data" / "sample_rows.csv")]


def old_compare(old_python: Path, folder: Path, uri: str, *args: str, check=True):
    """old-stores/compare_stores.py run by the older MLflow against `uri`, in `folder`."""
    command = [str(old_python), str(REPO / "old-stores" / "compare_stores.py"), *args, uri]
    return run_command(command, env=old_env(uri), cwd=folder, check=check)


def write_old_store(old_python: Path, uri: str, folder: Path) -> str:
    """The tutorial's scripts, run by the older MLflow: runs, the gate's decision, champion."""
    env = old_env(uri)
    version = run_command(
        [str(old_python), "-c", "import mlflow; print(mlflow.__version__)"], env=env, cwd=folder
    )
    assert version.stdout.strip() == OLD_VERSION
    for args in (
        ["--n-estimators", "20", "--run-name", "rf-strong"],
        ["--n-estimators", "2", "--max-depth", "1", "--run-name", "rf-weak"],
    ):
        run_command([str(old_python), str(REPO / "train_rfc.py"), *args], env=env, cwd=folder)
    gate = run_command([str(old_python), str(REPO / "register_model.py")], env=env, cwd=folder)
    assert "Alias 'champion' now points at version 1." in gate.stdout, gate.stdout
    assert "Gate: promoted, first promotion" in gate.stdout, gate.stdout
    old_compare(old_python, folder, uri, "--save", str(folder / "before.json"))
    return run_command(old_predict(old_python), env=env, cwd=folder).stdout


def upgrade_and_check(old_python, uri, folder, start_process, old_predictions) -> float:
    """`mlflow db upgrade`, then the tracking server, and everything still there; its seconds."""
    started = time.monotonic()
    upgraded = run_command([str(BIN / "mlflow"), "db", "upgrade", uri], env=base_env(), cwd=folder)
    seconds = time.monotonic() - started
    assert "Updating database tables" in upgraded.stderr, upgraded.stderr
    port = free_port()
    env = base_env()
    env.update(
        BACKEND_STORE_URI=uri,
        ARTIFACTS_DESTINATION=str(folder / "server-artifacts"),
        PORT=str(port),
    )
    server = start_process(
        [str(REPO / "team-server" / "tracking_server.sh")],
        env=env,
        cwd=folder,
        log=folder / "server.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", server)
    client_env = old_env(url)
    compared = run_command(
        [PYTHON, str(REPO / "old-stores" / "compare_stores.py"), str(folder / "before.json"), url],
        env=client_env,
        cwd=folder,
    )
    assert_clean(compared)
    assert " items compared: 0 differ " in compared.stdout, compared.stdout
    # Two trainings, the gate's decision run and its nested run scoring the challenger.
    assert "runs                        4        4" in compared.stdout, compared.stdout
    assert "aliases                     1        1" in compared.stdout
    predicted = run_command([PYTHON, str(REPO / "predict.py")], env=client_env, cwd=folder)
    assert_clean(predicted)
    assert predicted.stdout == old_predictions
    # The one line the page shows and explains: the model records the MLflow that logged it.
    assert f" - mlflow (current: 3.17.2, required: mlflow=={OLD_VERSION})" in predicted.stderr
    # The old MLflow no longer reads the upgraded store, and says so (wrongly: "out-of-date").
    locked_out = old_compare(old_python, folder, uri, "--save", str(folder / "x.json"), check=False)
    assert locked_out.returncode != 0
    assert OUT_OF_DATE in locked_out.stderr
    return seconds


@pytest.fixture(scope="module")
def old_sqlite_store(old_python, tmp_path_factory) -> tuple[Path, str]:
    """A SQLite store the older MLflow wrote (its artifacts beside it), written once for the
    module, and its champion's answers; each test upgrades a copy of the database."""
    folder = tmp_path_factory.mktemp("old-sqlite")
    return folder, write_old_store(old_python, f"sqlite:///{folder / 'mlflow.db'}", folder)


def copy_of(old_sqlite_store, tmp_path: Path) -> tuple[Path, str]:
    """The old database and its snapshot in `tmp_path`; the artifacts stay where they were."""
    folder, old_predictions = old_sqlite_store
    for name in ("mlflow.db", "before.json"):
        shutil.copy2(folder / name, tmp_path / name)
    return tmp_path / "mlflow.db", old_predictions


def test_skipping_the_upgrade_upgrades_the_store_at_first_use_without_a_backup(
    old_python, old_sqlite_store, tmp_path
):
    db, old_predictions = copy_of(old_sqlite_store, tmp_path)
    uri = f"sqlite:///{db}"
    old_schema = schema_of(tmp_path / "mlflow.db")
    # No `mlflow db upgrade`: the pinned MLflow's first client, predict.py here, finds tables
    # missing and runs every migration itself, there and then.
    predicted = run_command([PYTHON, str(REPO / "predict.py")], env=old_env(uri), cwd=tmp_path)
    assert predicted.stdout == old_predictions
    assert (
        "INFO mlflow.store.db.utils: Creating initial MLflow database tables..." in predicted.stderr
    )
    assert "INFO mlflow.store.db.utils: Updating database tables" in predicted.stderr
    assert schema_of(tmp_path / "mlflow.db") != old_schema
    locked_out = run_command(
        [str(old_python), str(REPO / "predict.py")], env=old_env(uri), cwd=tmp_path, check=False
    )
    assert locked_out.returncode != 0 and OUT_OF_DATE in locked_out.stderr


def schema_of(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("select version_num from alembic_version").fetchone()[0]


def test_sqlite_store_upgrades_with_nothing_lost_and_its_copy_rolls_back(
    old_python, old_sqlite_store, tmp_path, start_process
):
    db, old_predictions = copy_of(old_sqlite_store, tmp_path)
    uri = f"sqlite:///{db}"
    shutil.copy2(
        db, tmp_path / "mlflow.db.backup"
    )  # the writers are stopped: a file copy is a backup
    seconds = upgrade_and_check(old_python, uri, tmp_path, start_process, old_predictions)
    print(f"SQLite upgrade {OLD_VERSION} -> pinned: {seconds:.1f} s")
    # Roll back: the copy back in place, and the old MLflow reads its store again.
    shutil.copy2(tmp_path / "mlflow.db.backup", db)
    again = old_compare(old_python, tmp_path, uri, str(tmp_path / "before.json"))
    assert " items compared: 0 differ " in again.stdout
    assert (
        run_command(
            [str(old_python), str(REPO / "predict.py")], env=old_env(uri), cwd=tmp_path
        ).stdout
        == old_predictions
    )


def test_postgresql_store_upgrades_with_nothing_lost_and_its_dump_rolls_back(
    old_python, tmp_path, start_process
):
    with throwaway_postgres() as postgres:
        uri = postgres.uri
        old_predictions = write_old_store(old_python, uri, tmp_path)
        connect = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", "mlflow"]
        dump = tmp_path / "mlflow.dump"
        run_command(
            [str(PG_BIN / "pg_dump"), *connect, "--format=custom", f"--file={dump}", "mlflow"],
            env=base_env(),
            cwd=tmp_path,
        )
        seconds = upgrade_and_check(old_python, uri, tmp_path, start_process, old_predictions)
        print(f"PostgreSQL upgrade {OLD_VERSION} -> pinned: {seconds:.1f} s")
        # Roll back: a fresh database from the dump, and the old MLflow reads its store again.
        run_command(
            [str(PG_BIN / "dropdb"), *connect, "--force", "mlflow"], env=base_env(), cwd=tmp_path
        )
        run_command([str(PG_BIN / "createdb"), *connect, "mlflow"], env=base_env(), cwd=tmp_path)
        run_command(
            [str(PG_BIN / "pg_restore"), *connect, "--dbname=mlflow", str(dump)],
            env=base_env(),
            cwd=tmp_path,
        )
        again = old_compare(old_python, tmp_path, uri, str(tmp_path / "before.json"))
        assert " items compared: 0 differ " in again.stdout
        assert (
            run_command(old_predict(old_python), env=old_env(uri), cwd=tmp_path).stdout
            == old_predictions
        )
