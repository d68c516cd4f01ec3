"""Old stores: an MLflow 2 `./mlruns` folder migrated into SQLite, nothing lost (old-stores/README.md).

The old store is real: a virtual environment of its own with MLflow 2 (requirements/mlflow2.txt)
runs old-stores/old_tutorial_mlflow2.py, which logs into ./mlruns as the old tutorials did. The
pinned MLflow 3 migrates it with `mlflow migrate-filestore`, and compare_stores.py holds the
migrated store against MLflow 2's own snapshot of the folder, value by value.

These tests build environments from PyPI and old stores (minutes on two cores), so they run as
CI's own step, `make test-old-stores` (marker `old_stores`), not inside `make test`'s 8 minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

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

pytestmark = pytest.mark.old_stores
MODEL = "breast-cancer-classifier"
SAMPLE_ROWS = REPO / "data" / "sample_rows.csv"


def make_venv(folder: Path, requirements: str) -> Path:
    """A virtual environment with `requirements` installed by uv, as the chapter does."""
    uv = shutil.which("uv", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert uv, "uv not found (make installs it into the environment)"
    env = base_env()
    env.pop("VIRTUAL_ENV", None)
    run_command([uv, "venv", "--quiet", "--python", PYTHON, str(folder)], env=env, cwd=REPO)
    python = folder / "bin" / "python"
    run_command(
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(REPO / requirements)],
        env=env,
        cwd=REPO,
        timeout=600,
    )
    return python


def migrate(source: Path, target_db: Path, *, stdin_text: str | None = None):
    return subprocess.run(
        [
            str(BIN / "mlflow"),
            "migrate-filestore",
            "--source",
            str(source),
            "--target",
            f"sqlite:///{target_db}",
        ],
        env=base_env(),
        cwd=target_db.parent,
        capture_output=True,
        text=True,
        timeout=240,
        input=stdin_text,
        stdin=None if stdin_text is not None else subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def old_project(tmp_path_factory) -> Path:
    """An MLflow 2 ./mlruns, MLflow 2's own snapshot of it, its champion's predictions, and
    the folder migrated once (migrated.db, migrate.log)."""

    def fill(folder):
        python = make_venv(folder / "venv", "requirements/mlflow2.txt")
        env = base_env()
        result = run_command(
            [
                str(python),
                str(REPO / "old-stores" / "old_tutorial_mlflow2.py"),
                "--folder",
                str(folder / "old-project"),
            ],
            env=env,
            cwd=folder,
        )
        (folder / "seed.log").write_text(result.stdout + result.stderr)
        # What the pickled champion answers, asked of MLflow 2 itself. (Loading models:/ from a
        # local store writes a file, model/registered_model_meta, into the run's artifacts:
        # before the snapshot, so that the snapshot holds it.)
        predictions = run_command(
            [
                str(python),
                "-c",
                (
                    "import sys, mlflow, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]);"
                    f"m = mlflow.pyfunc.load_model('models:/{MODEL}@champion');"
                    "print(list(m.predict(pd.read_csv(sys.argv[2]).drop(columns=['diagnosis'], errors='ignore'))))"
                ),
                (folder / "old-project" / "mlruns").as_uri(),
                str(SAMPLE_ROWS),
            ],
            env=env,
            cwd=folder,
        )
        (folder / "champion.json").write_text(predictions.stdout.strip().replace("'", '"'))
        # The old MLflow describes its own store, with the chapter's compare script.
        run_command(
            [
                str(python),
                str(REPO / "old-stores" / "compare_stores.py"),
                "--save",
                str(folder / "mlflow2.json"),
                str(folder / "old-project" / "mlruns"),
            ],
            env=env,
            cwd=folder,
        )
        result = migrate(folder / "old-project", folder / "migrated.db")
        assert result.returncode == 0, result.stdout + result.stderr
        (folder / "migrate.log").write_text(result.stdout + result.stderr)

    return shared_folder(tmp_path_factory, "mlflow2-old-project", fill)


def migrated_copy(old_project: Path, tmp_path: Path) -> tuple[Path, dict]:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(old_project / "migrated.db", db)
    env = base_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    return db, env


def own_migration(old_project: Path, tmp_path: Path) -> tuple[Path, dict, Path]:
    """This test's own copy of the old folder, migrated: loading a model writes into the
    folder its artifacts live in, and the migrated runs keep reading their artifacts there."""
    folder = Path(shutil.copytree(old_project / "old-project", tmp_path / "old-project"))
    # A file store writes absolute paths into its meta.yaml files: the copy's must name the copy
    # (moved by hand, an old folder's runs would still point at where it was).
    for meta in folder.rglob("meta.yaml"):
        text = meta.read_text()
        meta.write_text(text.replace(str(old_project / "old-project"), str(folder)))
    db = tmp_path / "mlflow.db"
    result = migrate(folder, db)
    assert result.returncode == 0, result.stdout + result.stderr
    env = base_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    return db, env, folder / "mlruns"


def compare(*stores, env=None, check=True):
    return run_command(
        [PYTHON, str(REPO / "old-stores" / "compare_stores.py"), *map(str, stores)],
        env=env or base_env(),
        cwd=REPO,
        check=check,
    )


def test_mlflow2_wrote_the_old_store_cleanly(old_project):
    mlruns = old_project / "old-project" / "mlruns"
    assert (mlruns / "models" / MODEL).is_dir()
    log = (old_project / "seed.log").read_text()
    assert "MLflow 2.22.5 wrote" in log and "champion -> version 2" in log
    assert "Warning" not in log and "Traceback" not in log, log


def test_mlflow3_stops_at_an_old_mlruns_folder(old_project, tmp_path):
    # A copy: MLflow must not be given the chance to write into the shared old store.
    folder = Path(shutil.copytree(old_project / "old-project", tmp_path / "old-project"))
    result = run_command(
        [str(BIN / "mlflow"), "experiments", "search"], env=base_env(), cwd=folder, check=False
    )
    assert result.returncode != 0
    assert (
        "The filesystem tracking backend (e.g., './mlruns') is in maintenance mode" in result.stderr
    )
    assert "mlflow migrate-filestore" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["mlruns"], "it created a store"


def test_migration_keeps_every_count_and_value(old_project, tmp_path):
    log = (old_project / "migrate.log").read_text()
    assert "Migration completed successfully!" in log
    for line in (
        "experiments                        3          3",
        "runs                               6          6",
        "model_versions                     2          2",
        "registered_model_aliases           1          1",
    ):
        assert line in log, log
    db, env = migrated_copy(old_project, tmp_path)
    # MLflow 2's own view of the folder against MLflow 3's view of the database: no difference.
    result = compare(old_project / "mlflow2.json", f"sqlite:///{db}", env=env)
    assert_clean(result)
    table = result.stdout
    for line in (
        "experiments                 3        3",
        "runs                        6        6",
        "runs active                 5        5",
        "runs deleted                1        1",
        "runs FINISHED               6        6",
        "metric points              36       36",
        "run artifacts              37       37",
        "model versions              2        2",
        "aliases                     1        1",
        "run params                 30       30",
        "run tags                   48       48",
        "metric histories           18       18",
    ):
        assert line in table, table
    assert " items compared: 0 differ (0 expected with --expect, 0 not)" in table, table
    snapshot = json.loads((old_project / "mlflow2.json").read_text())
    # The migration copies no artifact: the runs keep pointing into the old folder.
    uris = [v for k, v in snapshot.items() if k.endswith(": artifact_uri")]
    assert uris and all(
        uri.startswith((old_project / "old-project" / "mlruns").as_uri()) for uri in uris
    )
    # ...and reading one through the migrated store returns the old folder's bytes.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    run = client.search_runs(
        ["1", *[e.experiment_id for e in client.search_experiments()]], max_results=1
    )[0]
    local = client.download_artifacts(run.info.run_id, "confusion_matrix.png", str(tmp_path))
    original = Path(run.info.artifact_uri.removeprefix("file://")) / "confusion_matrix.png"
    assert Path(local).read_bytes() == original.read_bytes()
    # The compare script does see a difference when there is one: a deleted run restored.
    client.restore_run(
        next(
            r
            for r in client.search_runs(
                [e.experiment_id for e in client.search_experiments()], run_view_type=3
            )
            if r.info.lifecycle_stage == "deleted"
        ).info.run_id
    )
    changed = compare(old_project / "mlflow2.json", f"sqlite:///{db}", env=env, check=False)
    assert changed.returncode == 1
    assert "runs deleted                1        0  <- differs" in changed.stdout
    assert "lifecycle_stage: 'deleted' -> 'active'" in changed.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_migrating_again_asks_and_only_yes_replaces_the_database(old_project, tmp_path):
    db, env = migrated_copy(old_project, tmp_path)
    # A run logged into the migrated store afterwards, as a reader would.
    run_command(
        [
            PYTHON,
            "-c",
            "import mlflow; mlflow.set_experiment('new-work'); mlflow.start_run(run_name='after').__exit__(None, None, None)",
        ],
        env=env,
        cwd=tmp_path,
    )
    before = sha256(db)
    refused = migrate(old_project / "old-project", db)  # no terminal: MLflow's prompt reads "no"
    assert refused.returncode == 1
    assert f"Database file already exists: {db}\nOverwrite? [y/N]: " in refused.stdout
    assert "Aborted!" in refused.stderr
    assert sha256(db) == before
    refused = migrate(old_project / "old-project", db, stdin_text="n\n")
    assert refused.returncode == 1 and sha256(db) == before
    # "y" deletes the database and migrates the folder again: what was logged since is gone.
    replaced = migrate(old_project / "old-project", db, stdin_text="y\n")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    assert client.get_experiment_by_name("new-work") is None
    assert compare(old_project / "mlflow2.json", f"sqlite:///{db}", env=env).returncode == 0


def test_a_pickled_model_is_refused_then_relogged_in_skops_on_consent(old_project, tmp_path):
    db, env, mlruns = own_migration(old_project, tmp_path)
    uri = f"models:/{MODEL}@champion"
    refused = run_command(
        [PYTHON, str(REPO / "old-stores" / "relog_pickled_model.py"), uri],
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        f"error: {uri} is a cloudpickle file (scikit-learn 1.9.1), and unpickling it runs any code it "
        f"holds; if you trust who made it, re-log it in skops once with: python old-stores/relog_pickled_model.py "
        f"{uri} --i-trust-this-pickle\n"
    )
    assert compare(mlruns, f"sqlite:///{db}", env=env).returncode == 0  # nothing changed
    # MLflow 2 runs have no MLflow 3 logged model: register_model.py finds none, in one line.
    unranked = run_command(
        [PYTHON, str(REPO / "register_model.py")], env=env, cwd=tmp_path, check=False
    )
    assert unranked.returncode == 1
    assert unranked.stderr.startswith("error: ") and unranked.stderr.count("\n") == 1, (
        unranked.stderr
    )
    assert "logged a model" in unranked.stderr

    relogged = run_command(
        [PYTHON, str(REPO / "old-stores" / "relog_pickled_model.py"), uri, "--i-trust-this-pickle"],
        env=env,
        cwd=tmp_path,
    )
    assert_clean(relogged)
    assert f"Registered {MODEL} version 3 (from version 2); moved champion to it" in relogged.stdout
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == "3" and version.tags["relogged_from_version"] == "2"
    # Each version's MLmodel, read from this store alone (through `client`): no global tracking
    # or registry URI is set, which would outlive the test in this worker.
    mlmodels = {}
    for number in ("3", "2"):
        (tmp_path / f"v{number}").mkdir()
        source = client.get_model_version_download_uri(MODEL, number)
        folder = mlflow.artifacts.download_artifacts(source, dst_path=tmp_path / f"v{number}")
        mlmodels[number] = mlflow.models.Model.load(folder)
    info, old = mlmodels["3"], mlmodels["2"]
    old_signature = old.signature
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.flavors["sklearn"]["skops_trusted_types"]
    assert info.signature == old_signature
    # Its files go where the migrated experiment keeps its artifacts: into the old folder.
    experiment_id = client.get_run(version.run_id).info.experiment_id
    (logged,) = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{version.run_id}'"
    )
    location = logged.artifact_location
    assert location.startswith(mlruns.as_uri()), location
    # Everything migrated is still there, unchanged; the new run is the only addition.
    after = compare(mlruns, f"sqlite:///{db}", env=env, check=False)
    assert after.returncode == 1
    changed = [
        line for line in after.stdout.splitlines() if line.startswith(("only before", "changed"))
    ]
    assert changed == [
        f"changed:     registered model {MODEL}: alias champion: '2' -> '3'",
        f"changed:     registered model {MODEL}: last_updated_timestamp: "
        + changed[1].rpartition("last_updated_timestamp: ")[2],
    ], after.stdout
    assert "runs                        6        7  <- differs" in after.stdout
    # The skops copy answers what MLflow 2's pickle answered, through the tutorial's predict.py.
    predicted = run_command([PYTHON, str(REPO / "predict.py")], env=env, cwd=tmp_path)
    assert_clean(predicted)
    expected = json.loads((old_project / "champion.json").read_text())
    assert predicted.stdout.split()[1:] == [str(p) for p in expected]
    # And register_model.py ranks the re-logged run (the old runs have no MLflow 3 logged model).
    ranked = run_command([PYTHON, str(REPO / "register_model.py")], env=env, cwd=tmp_path)
    assert_clean(ranked)
    assert "rf-default-skops" in ranked.stdout
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"


def test_the_ui_shows_the_migrated_runs_and_their_figures(old_project, tmp_path, start_process):
    db, env = migrated_copy(old_project, tmp_path)
    port = free_port()
    # The command `make ui` runs, on this test's store.
    ui = start_process(
        [
            str(BIN / "mlflow"),
            "ui",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        cwd=tmp_path,
        log=tmp_path / "ui.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health", ui)

    def ask(path, body=None):
        request = urllib.request.Request(
            f"{base}{path}",
            data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    experiments = json.loads(ask("/ajax-api/2.0/mlflow/experiments/search", {"max_results": 100}))[
        "experiments"
    ]
    names = {e["name"]: e["experiment_id"] for e in experiments}
    assert {"breast-cancer-random-forest", "breast-cancer-neural-network"} <= set(names)
    runs = json.loads(
        ask("/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": list(names.values())})
    )["runs"]
    assert sorted(r["info"]["run_name"] for r in runs) == [
        "mlp-small",
        "mlp-wide",
        "rf-default",
        "rf-shallow",
        "rf-small",
    ]
    figure = ask(f"/get-artifact?path=confusion_matrix.png&run_uuid={runs[0]['info']['run_id']}")
    assert figure.startswith(b"\x89PNG")
    model = json.loads(ask(f"/ajax-api/2.0/mlflow/registered-models/get?name={MODEL}"))[
        "registered_model"
    ]
    assert [a["alias"] for a in model["aliases"]] == ["champion"]
    assert_clean(subprocess.CompletedProcess([], 0, (tmp_path / "ui.log").read_text(), ""))


def test_compare_stores_counts_runs_whose_names_hold_a_colon(tmp_path):
    """The gate's decision runs are named 'promoted: ...': each is one run, not a new kind."""
    snapshot = {
        "experiment promotion: lifecycle_stage": "active",
        "run a1 (rf-default): status": "FINISHED",
        "run a1 (rf-default): lifecycle_stage": "active",
        "run b2 (promoted: rf-default, the first champion): status": "FINISHED",
        "run b2 (promoted: rf-default, the first champion): lifecycle_stage": "active",
        "run b2 (promoted: rf-default, the first champion): tag verdict": "promoted",
        "run c3 (refused: mlp vs version 1): status": "FINISHED",
        "run c3 (refused: mlp vs version 1): metric challenger_f1_score": [[0, 1, 0.9]],
    }
    saved = tmp_path / "snapshot.json"
    saved.write_text(json.dumps(snapshot))
    script = REPO / "old-stores" / "compare_stores.py"
    result = subprocess.run(
        [PYTHON, str(script), str(saved), str(saved)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    table = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "runs 3 3" in table, result.stdout
    assert "runs FINISHED 3 3" in table and "run tags 1 1" in table and "experiments 1 1" in table
