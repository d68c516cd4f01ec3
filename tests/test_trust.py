"""Trust what you load: every loader refuses a tampered model before anything is deserialized.

Two tampered copies of a real champion are registered as new versions and pointed to by the
alias, as someone with write access to the registry could: one whose MLmodel asks skops to
trust `builtins.eval`, and one that claims `serialization_format: pickle` and carries a pickle
that would write a marker file when loaded. predict.py, predict_spark.py, serve_model.sh and the
promotion gate, and the probability path (predict.py --proba, serve_model.sh with
ANSWER=probabilities), each refuse each copy in one line, exit 1, and nothing is unpickled; the clean
champion still predicts. A plain `mlflow.pyfunc.load_model` loads the first copy: that is why
the check exists.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import PYTHON, REPO, run_command

MODEL = "breast-cancer-classifier"


class WritesMarker:
    """A pickle whose load runs code: it creates the file `path`."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def register_copy(store, source: Path, name: str, edit) -> str:
    """Log an edited copy of the model folder in a run, register it, point the alias at it."""
    copy = store.root / name
    shutil.copytree(source, copy)
    flavors = yaml.safe_load((copy / "MLmodel").read_text())
    edit(copy, flavors)
    (copy / "MLmodel").write_text(yaml.safe_dump(flavors))
    client = store.client
    experiment = client.get_experiment_by_name("tampering")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("tampering", (store.root / "tampering").as_uri())
    )
    run = client.create_run(experiment_id, run_name=name)
    client.log_artifacts(run.info.run_id, str(copy), artifact_path=name)
    client.set_terminated(run.info.run_id)
    source = f"{run.info.artifact_uri}/{name}"
    return client.create_model_version(MODEL, source, run_id=run.info.run_id).version


def add_eval(copy: Path, mlmodel: dict) -> None:
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"].append("builtins.eval")


@pytest.fixture
def tampered(trained_store, tmp_path):
    """The store with a clean champion (version 1) and two tampered versions; and the marker."""
    store = trained_store
    assert store.call("register_model.py", "--run-name", "forest").returncode == 0
    clean = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", tracking_uri=store.uri))
    marker = tmp_path / "unpickled.marker"

    def swap_in_pickle(copy: Path, mlmodel: dict) -> None:
        sklearn = mlmodel["flavors"]["sklearn"]
        sklearn["serialization_format"] = "pickle"
        sklearn.pop("skops_trusted_types")
        (copy / sklearn["pickled_model"]).write_bytes(pickle.dumps(WritesMarker(marker)))

    versions = {
        "trusts builtins.eval": register_copy(store, clean, "eval-listed", add_eval),
        "a pickle": register_copy(store, clean, "pickled", swap_in_pickle),
    }
    return store, versions, marker


def point_champion(store, version: str) -> None:
    store.client.set_registered_model_alias(MODEL, "champion", version)


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_every_loader_refuses_a_tampered_model_and_the_clean_one_still_serves(tampered):
    store, versions, marker = tampered
    expected = {
        "trusts builtins.eval": "it asks skops to trust builtins.eval, which TRUSTED_TYPES",
        "a pickle": "not a scikit-learn model in skops format (its MLmodel says loader_module "
        "mlflow.sklearn, serialization_format pickle)",
    }
    for what, version in versions.items():
        point_champion(store, version)
        refusals = {
            "predict.py": one_line(store.call("predict.py")),
            "predict.py --proba": one_line(store.call("predict.py", "--proba")),
            "serve_model.sh, probabilities": one_line(
                run_command(
                    [str(REPO / "serve_model.sh")],
                    env={**store.env, "ANSWER": "probabilities", "SERVED_FOLDER": str(store.root)},
                    cwd=store.root,
                    check=False,
                )
            ),
            "predict_spark.py": one_line(store.call("spark/predict_spark.py")),
            # The gate: a good challenger against the tampered champion, which evaluate would load.
            "the gate": one_line(store.call("register_model.py", "--run-name", "network")),
            "serve_model.sh": one_line(
                run_command(
                    [str(REPO / "serve_model.sh")], env=store.env, cwd=store.root, check=False
                )
            ),
        }
        for loader, line in refusals.items():
            assert line.startswith(f"error: refusing models:/{MODEL}/{version}: "), (loader, line)
            assert expected[what] in line, (loader, line)
        assert not marker.exists(), f"{what}: something unpickled the model"
        assert store.client.get_model_version_by_alias(MODEL, "champion").version == version
        decisions = [
            r for r in store.experiment_runs("breast-cancer-promotion") if "verdict" in r.data.tags
        ]
        assert len(decisions) == 1  # the first promotion's; the refusals decided nothing

    # Without the check, MLflow loads the copy that whitelists builtins.eval without a word.
    plain = mlflow.pyfunc.load_model(f"models:/{MODEL}/{versions['trusts builtins.eval']}")
    assert plain.metadata.flavors["sklearn"]["skops_trusted_types"][-1] == "builtins.eval"

    # The clean champion still loads and predicts, through the same check.
    point_champion(store, "1")
    clean = store.call("predict.py")
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.splitlines()[0] == "prediction" and len(clean.stdout.splitlines()) == 6
    checked = run_command([PYTHON, str(REPO / "check_model.py")], env=store.env, cwd=store.root)
    assert (
        "scikit-learn in skops format, trusting numpy.dtype, sklearn.tree._tree.Tree"
        in checked.stdout
    )
    assert not marker.exists()
