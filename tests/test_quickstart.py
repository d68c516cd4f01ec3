"""The README's quickstart, pasted as written into an empty folder outside the repository.

It must run there with only requirements.txt installed, and keep working when a reader swaps
the estimator for their own: a FINISHED run whose model loads and predicts, and no warning.
"""

from __future__ import annotations

import re

import mlflow
import pytest
from sklearn.datasets import load_breast_cancer

from conftest import PYTHON, REPO, assert_clean, base_env, run_command

MARKER = "<!-- docs-test: quickstart -->"


def quickstart_code() -> str:
    text = (REPO / "README.md").read_text()
    assert text.count(MARKER) == 1, "the README has exactly one quickstart block"
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)\n```", after, re.DOTALL)
    assert match, "the quickstart marker is followed by a python fence"
    return match.group(1)


# The estimator line a reader changes, and what they change it to.
SWAPS = {
    "as written": None,
    "LogisticRegression": (
        "from sklearn.linear_model import LogisticRegression",
        "LogisticRegression(max_iter=5000)",
    ),
    "HistGradientBoostingClassifier": (
        "from sklearn.ensemble import HistGradientBoostingClassifier",
        "HistGradientBoostingClassifier(random_state=42)",
    ),
}


def test_the_quickstart_is_short():
    assert len(quickstart_code().splitlines()) <= 33


@pytest.mark.parametrize("swap", SWAPS)
def test_the_quickstart_runs_in_an_empty_folder(tmp_path, swap):
    code = quickstart_code()
    if SWAPS[swap]:
        import_line, estimator = SWAPS[swap]
        assert "RandomForestClassifier(random_state=42)" in code
        code = code.replace("RandomForestClassifier(random_state=42)", estimator)
        code = code.replace("from sklearn.ensemble import RandomForestClassifier", import_line)
    folder = tmp_path / "my project"
    folder.mkdir()
    (folder / "quickstart.py").write_text(code)
    env = base_env()
    env.pop("PYTHONPATH", None)  # the repository is not on sys.path: only the pasted file
    result = run_command([PYTHON, "quickstart.py"], env=env, cwd=folder, timeout=180)
    assert_clean(result)
    assert sorted(p.name for p in folder.iterdir()) == ["mlflow.db", "mlruns", "quickstart.py"]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_id in result.stdout
    assert set(run.data.metrics) == {"accuracy", "f1"} and run.data.metrics["f1"] > 0.9
    assert "random_state" in run.data.params or "max_iter" in run.data.params
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "confusion_matrix.png" in artifacts

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert model.metadata.signature is not None
    assert model.metadata.saved_input_example_info is not None
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    predictions = model.predict(X.head(20).astype("float64"))
    assert len(predictions) == 20 and set(predictions) <= {0, 1}
