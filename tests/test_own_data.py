"""A reader's own table, with more than two classes, from a CSV to a served prediction.

The table is made here (scikit-learn's make_classification: four classes, named, with columns
of its own), not one the pages use, so that nothing is tuned to a known dataset. It goes through
the README's quickstart (changed as its comments say), both training scripts, the gate (the best
run promoted, a weaker one refused with a reason), serve_model.sh and both predict.py paths,
with the flags chapter 8 shows and no others. A command that would change nothing says so.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from test_quickstart import quickstart_block

from conftest import PYTHON, REPO, assert_clean, base_env, free_port, run_command, wait_for_http

CLASSES = ["heron", "kestrel", "osprey", "wren"]
PROJECT = ["--experiment-name", "birds", "--model-name", "bird-classifier"]


@pytest.fixture
def bird_tables(tmp_path):
    """A training CSV and a held-back one: ten numeric columns, a `species` label of 4 names."""
    X, y = make_classification(
        n_samples=600, n_features=10, n_informative=6, n_classes=4, random_state=7
    )
    frame = pd.DataFrame(X, columns=[f"wing_{i}" for i in range(10)])
    frame["species"] = [CLASSES[label] for label in y]
    train, held_back = train_test_split(
        frame, test_size=0.25, stratify=frame["species"], random_state=0
    )
    paths = {"train": tmp_path / "birds.csv", "eval": tmp_path / "birds-eval.csv"}
    train.to_csv(paths["train"], index=False)
    held_back.to_csv(paths["eval"], index=False)
    return paths


def test_a_multi_class_table_goes_from_csv_to_a_served_prediction(
    trained_store, bird_tables, start_process, tmp_path
):
    store = trained_store  # the tutorial's breast-cancer runs are there too, as for a reader
    data = ["--data", str(bird_tables["train"]), "--target", "species"]
    gate = [*PROJECT, "--eval-data", str(bird_tables["eval"]), "--target", "species"]
    for script, extra in (("train_rfc.py", []), ("train_ann.py", ["--max-iter", "2000"])):
        assert_clean(store.run(script, *data, "--experiment-name", "birds", *extra))

    promoted = store.run("register_model.py", *gate)
    assert_clean(promoted)
    assert "Gate: promoted, first promotion" in promoted.stdout
    assert "in 'bird-classifier-promotion'" in promoted.stdout  # the project's own decisions
    champion = store.client.get_model_version_by_alias("bird-classifier", "champion")

    # Run again with the reader's rows: nothing to decide, and it says so, rows read and checked.
    again = store.run("register_model.py", *gate)
    assert_clean(again)
    assert f"is already version {champion.version}." in again.stdout
    assert "Your rows in" in again.stdout and "(150 rows, 4 classes)" in again.stdout

    # A weaker model is refused with its reason; the champion stays.
    store.run(
        "train_rfc.py", *data, "--experiment-name", "birds", "--n-estimators", "1",
        "--max-depth", "1", "--run-name", "stump",
    )  # fmt: skip
    refused = store.run("register_model.py", "--run-name", "stump", *gate, check=False)
    assert refused.returncode == 1
    assert "refused: f1_score: challenger" in refused.stderr
    assert "the 'champion' alias stays on version 1" in refused.stderr
    assert "Warning" not in refused.stdout + refused.stderr  # the undefined precision, in words
    assert (
        str(store.client.get_model_version_by_alias("bird-classifier", "champion").version) == "1"
    )

    # Chapter 8's own-data command without the naming flags: no silent success.
    unnamed = store.run(
        "register_model.py", "--eval-data", str(bird_tables["eval"]), "--target", "species",
        check=False,
    )  # fmt: skip
    assert unnamed.returncode == 1
    assert "was trained on the label 'diagnosis', not --target 'species'" in unnamed.stderr
    # --pos-label names one class of two: with four it is refused, not ignored.
    four = store.run("register_model.py", *gate, "--pos-label", "wren", check=False)
    assert four.returncode == 1 and "--pos-label is for two classes" in four.stderr

    # Served under its own name; both predict.py paths give the same answers.
    port = free_port()
    env = {**store.env, "MODEL_NAME": "bird-classifier", "PORT": str(port)}
    server = start_process([str(REPO / "serve_model.sh")], env=env, cwd=REPO, log=tmp_path / "log")
    wait_for_http(f"http://127.0.0.1:{port}/ping", server)
    hint = f"python predict.py --url http://127.0.0.1:{port} --model-name bird-classifier"
    assert hint in (tmp_path / "log").read_text()  # the hint fits the model it serves
    rows = ["--model-name", "bird-classifier", "--data", str(bird_tables["eval"])]
    here = store.run("predict.py", *rows)
    there = store.run("predict.py", *rows, "--url", f"http://127.0.0.1:{port}")
    assert_clean(here)
    assert here.stdout == there.stdout
    predictions = pd.read_csv(pd.io.common.StringIO(here.stdout))["prediction"]
    truth = pd.read_csv(bird_tables["eval"])["species"]
    assert set(predictions) <= set(CLASSES) and (predictions == truth).mean() > 0.5
    assert "extra inputs" not in (tmp_path / "log").read_text()  # `species` was not sent


def test_the_quickstart_changed_as_its_comments_say_takes_four_classes(bird_tables, tmp_path):
    """The reader's table in the X, y line, the label map dropped, the one f1 line changed."""
    code = (REPO / "README.md").read_text().split("<!-- docs-test: quickstart -->")[1]
    code = code.split("```python\n", 1)[1].split("\n```", 1)[0]
    table = (
        f"X = pd.read_csv({str(bird_tables['train'])!r}); y = X.pop('species')  "
        "# yours: X = pd.read_csv(...)"
    )
    edits = {
        "X, y = load_breast_cancer(return_X_y=True, as_frame=True)": table,
        'y = y.map({0: "malignant", 1: "benign"})': "",
        'f1 = f1_score(y_test, y_pred, pos_label="malignant")': 'f1 = f1_score(y_test, y_pred, average="macro")',
    }
    for old, new in edits.items():
        line = next(line for line in code.splitlines() if old in line)
        code = code.replace(line, line[: len(line) - len(line.lstrip())] + new if new else "")
    folder = tmp_path / "my project"
    folder.mkdir()
    (folder / "quickstart.py").write_text("import pandas as pd\n" + code)
    env = base_env()
    result = run_command([PYTHON, "quickstart.py"], env=env, cwd=folder, timeout=180)
    assert_clean(result)
    # The README's next command, with the flags it names for data of your own.
    env["TUTORIAL"] = str(REPO)
    command = quickstart_block("bash") + " --model-name bird-classifier"
    promoted = run_command(["bash", "-c", command], env=env, cwd=folder)
    assert_clean(promoted)
    assert "Gate: promoted, first promotion" in promoted.stdout
