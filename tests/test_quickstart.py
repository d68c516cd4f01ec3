"""The README's quickstart, pasted as written into an empty folder outside the repository.

It must run there with only requirements.txt installed, and keep working when a reader swaps
the estimator for their own: a FINISHED run whose model loads and predicts, and no warning.
Then the README's next command promotes that run with the tutorial's register_model.py,
through the gate, on the rows the quickstart held back.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from conftest import (
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    raw_table,
    run_command,
    shared_folder,
)

MARKER = "<!-- docs-test: quickstart -->"


def quickstart_block(language: str) -> str:
    """The README's quickstart program (python), or the command that promotes its run (bash)."""
    text = (REPO / "README.md").read_text()
    assert text.count(MARKER) == 2, "the README has a quickstart program and its command"
    for after in text.split(MARKER)[1:]:
        match = re.match(rf"\s*```{language}\n(.*?)\n```", after, re.DOTALL)
        if match:
            return match.group(1)
    raise AssertionError(f"no quickstart marker before a {language} fence")


def quickstart_code() -> str:
    return quickstart_block("python")


def reader_env() -> dict[str, str]:
    """A reader's shell in their own folder: the tutorial cloned at TUTORIAL, not on sys.path."""
    env = base_env()
    env.pop("PYTHONPATH", None)
    env["TUTORIAL"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"  # prints and MLflow's lines in the order a terminal shows
    return env


@pytest.fixture(scope="session")
def quickstart_folder(tmp_path_factory) -> Path:
    """A folder where the README's quickstart ran as written, then its next command (champion
    version 1): once per session, for the test of the quickstart as written and for the
    chapters' lessons (test_lessons.py), which copy it. What each command printed is kept
    beside it, in `<folder>.outputs.json`."""

    def run_the_readme(folder):
        (folder / "quickstart.py").write_text(quickstart_code())
        ran = run_command([PYTHON, "quickstart.py"], env=reader_env(), cwd=folder, timeout=180)
        command = ["bash", "-c", quickstart_block("bash")]
        promoted = run_command(command, env=reader_env(), cwd=folder)
        outputs = {
            "quickstart": [ran.args, ran.returncode, ran.stdout, ran.stderr],
            "promoted": [promoted.args, promoted.returncode, promoted.stdout, promoted.stderr],
        }
        Path(f"{folder}.outputs.json").write_text(json.dumps(outputs))

    return shared_folder(tmp_path_factory, "quickstart-folder", run_the_readme)


def quickstart_outputs(folder: Path) -> dict[str, subprocess.CompletedProcess]:
    """What the quickstart and the README's next command printed in `quickstart_folder`."""
    kept = json.loads(Path(f"{folder}.outputs.json").read_text())
    return {name: subprocess.CompletedProcess(*each) for name, each in kept.items()}


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

# A reader's raw table, and the lines the quickstart's comments tell them to change for it.
RAW_TABLE_LINES = {
    "X, y = load_breast_cancer(": 'X = pd.read_csv("yours.csv").drop(columns=["member_id"]); y = X.pop("label")',
    "y = y.map(": None,
    "f1 = f1_score(": 'f1 = f1_score(y_test, y_pred, average="macro")',
}


def as_a_reader_changes_it(code: str) -> str:
    lines = []
    for line in code.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        start = next((s for s in RAW_TABLE_LINES if line.lstrip().startswith(s)), None)
        if start is None:
            lines.append(line)
        elif RAW_TABLE_LINES[start] is not None:
            lines.append(indent + RAW_TABLE_LINES[start] + "  # changed as the comment says")
    assert len(lines) == len(code.splitlines()) - 1, "the quickstart's lines have moved"
    return "\n".join(lines)


def test_a_raw_table_runs_by_changing_only_the_lines_the_comments_name(tmp_path):
    folder = tmp_path / "my project"
    folder.mkdir()
    raw_table().rename(columns={"next step": "label"}).to_csv(folder / "yours.csv", index=False)
    (folder / "quickstart.py").write_text(as_a_reader_changes_it(quickstart_code()))
    env = base_env()
    env.pop("PYTHONPATH", None)
    result = run_command([PYTHON, "quickstart.py"], env=env, cwd=folder, timeout=180)
    assert_clean(result)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("quickstart")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    assert {m.key: m.value for m in logged.metrics}["test_f1"] > 0.5
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    inputs = {spec.name: spec.type.name for spec in model.metadata.get_input_schema().inputs}
    assert inputs == {
        "age": "double",
        "visits_per_month": "double",  # the quickstart's rename line, kept
        "late_fees": "double",
        "membership": "string",
        "has_card": "boolean",
    }
    # Raw rows, an unseen category and empty cells included: the pipeline prepares them itself.
    rows = pd.DataFrame(
        {
            "age": [30.0, 70.0],
            "visits_per_month": [2.0, 9.0],
            "late_fees": [np.nan, 1.5],
            "membership": ["corporate", None],
            "has_card": [True, False],
        }
    )
    assert set(model.predict(rows)) <= {"renew", "lapse", "upgrade"}

    # The README's next command, with the flag it names for a model of your own.
    env["TUTORIAL"] = str(REPO)
    command = quickstart_block("bash") + " --model-name member-classifier"
    promoted = run_command(["bash", "-c", command], env=env, cwd=folder)
    assert_clean(promoted)
    assert "Gate: promoted, first promotion" in promoted.stdout


@pytest.mark.quick
def test_the_quickstart_is_short():
    assert len(quickstart_code().splitlines()) <= 45  # about 40: what a reader pastes


@pytest.mark.parametrize(
    "swap",
    [pytest.param(swap, marks=[pytest.mark.quick] * (swap == "as written")) for swap in SWAPS],
)
def test_the_quickstart_runs_in_an_empty_folder(tmp_path, swap, request):
    if SWAPS[swap]:
        import_line, estimator = SWAPS[swap]
        code = quickstart_code()
        assert "RandomForestClassifier(random_state=42)" in code
        code = code.replace("RandomForestClassifier(random_state=42)", estimator)
        code = code.replace("from sklearn.ensemble import RandomForestClassifier", import_line)
        folder = tmp_path / "my project"
        folder.mkdir()
        (folder / "quickstart.py").write_text(code)
        env = base_env()
        env.pop("PYTHONPATH", None)  # the repository is not on sys.path: only the pasted file
        result = run_command([PYTHON, "quickstart.py"], env=env, cwd=folder, timeout=180)
    else:
        # As written, it ran once for this session, in the folder the lessons copy.
        folder = request.getfixturevalue("quickstart_folder")
        result = quickstart_outputs(folder)["quickstart"]
    assert_clean(result)
    pasted = ["eval.csv", "mlflow.db", "mlruns", "quickstart.py"]
    assert sorted(p.name for p in folder.iterdir()) == pasted

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_id in result.stdout
    # The scripts' metric names, F1 of malignant, on the run and on its model.
    assert set(run.data.metrics) == {"test_accuracy", "test_f1"}
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    assert list(load_breast_cancer().target_names) == ["malignant", "benign"]
    assert run.data.metrics["test_f1"] > 0.9
    assert "random_state" in run.data.params or "max_iter" in run.data.params
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "confusion_matrix.png" in artifacts

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    # On its model too: exactly these from the quickstart's run (in the as-written folder, the
    # gate's decision run has since added its evaluation's metrics to the model as well).
    from_its_run = {m.key for m in logged.metrics or [] if m.run_id == run.info.run_id}
    assert from_its_run == {"test_accuracy", "test_f1"}
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert model.metadata.signature is not None
    assert model.metadata.saved_input_example_info is not None
    predictions = model.predict(
        X.head(20).astype("float64").rename(columns=lambda n: n.replace(" ", "_"))
    )
    assert len(predictions) == 20 and set(predictions) <= {"malignant", "benign"}
    if swap != "as written":
        return

    # The README's next command, typed in the quickstart's folder: the run becomes the champion.
    promoted = quickstart_outputs(folder)["promoted"]
    assert_clean(promoted)
    assert " INFO " not in promoted.stdout + promoted.stderr  # MLflow's chatter stays out
    assert "Top 1 run with a logged model, by test_f1, in quickstart:" in promoted.stdout
    assert "Gate: promoted, first promotion" in promoted.stdout
    champion = client.get_model_version_by_alias("breast-cancer-classifier", "champion")
    assert champion.run_id == run.info.run_id
    (decision,) = client.search_runs(
        [client.get_experiment_by_name("breast-cancer-promotion").experiment_id],
        filter_string="tags.verdict = 'promoted'",
    )
    assert decision.data.metrics["challenger_f1_score"] > 0.9  # malignant scored as positive
