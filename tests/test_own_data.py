"""A reader's own raw table, with more than two classes, from a CSV to a served prediction.

The table is made here (conftest.raw_table: an ID column, whole numbers, empty cells, a name
with a space, text, a boolean, three string classes), not one the pages use, so that nothing is
tuned to a known dataset. It goes through both training scripts and the search (the ID left
out with --drop), the gate (the best run promoted, a weaker one refused with a reason),
serve_model.sh with raw JSON rows and both predict.py paths, with the flags chapter 8 shows and
no others, and nothing encoded by hand. A command that would change nothing says so.
"""

from __future__ import annotations

import json
import urllib.request

import mlflow
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from conftest import REPO, assert_clean, free_port, raw_table, wait_for_http

CLASSES = ["lapse", "renew", "upgrade"]
PROJECT = ["--experiment-name", "members", "--model-name", "member-classifier"]
DROP_ID = ["--drop", "member_id"]


@pytest.fixture
def member_tables(tmp_path):
    """A training CSV and a held-back one, both raw, the ID column in each."""
    frame = raw_table()
    train, held_back = train_test_split(
        frame, test_size=0.25, stratify=frame["next step"], random_state=0
    )
    paths = {"train": tmp_path / "members.csv", "eval": tmp_path / "members-eval.csv"}
    train.to_csv(paths["train"], index=False)
    held_back.to_csv(paths["eval"], index=False)
    return paths


def test_an_id_column_is_refused_in_one_line_until_dropped(store, member_tables):
    data = ["--data", str(member_tables["train"]), "--target", "next step"]
    refused = store.call("train_rfc.py", *data, "--n-estimators", "5")
    assert refused.returncode == 1
    first = pd.read_csv(member_tables["train"], dtype=str)["member_id"].iloc[0]
    assert refused.stderr.strip().splitlines() == [
        f"error: {member_tables['train']}: column 'member_id' looks like an ID (a different "
        f"value in each of its 450 rows, e.g. '{first}'): leave it out with --drop member_id, or "
        "keep it as a feature with --keep member_id"
    ]
    assert (
        store.client.search_experiments(filter_string="name = 'breast-cancer-random-forest'") == []
    )

    trained = store.call("train_rfc.py", *data, "--n-estimators", "5", *DROP_ID)
    assert trained.returncode == 0, trained.stderr
    (run,) = store.experiment_runs("breast-cancer-random-forest")
    assert run.data.params["dropped_columns"] == "member_id"
    assert run.data.params["numeric_columns"] == "age, visits per month, late fees"
    assert run.data.params["category_columns"] == "membership, has_card"
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    inputs = mlflow.models.get_model_info(f"models:/{logged.model_id}").signature.inputs
    assert {spec.name: spec.type.name for spec in inputs.inputs} == {
        "age": "double",
        "visits per month": "double",
        "late fees": "double",
        "membership": "string",
        "has_card": "boolean",
    }


def test_a_raw_table_goes_from_csv_to_a_gated_champion_and_a_served_prediction(
    trained_store, member_tables, start_process, tmp_path
):
    store = trained_store  # the tutorial's breast-cancer runs are there too, as for a reader
    data = ["--data", str(member_tables["train"]), "--target", "next step", *DROP_ID]
    gate = [*PROJECT, "--eval-data", str(member_tables["eval"]), "--target", "next step"]
    for script, extra in (
        ("train_rfc.py", []),
        ("train_ann.py", []),
        ("tune_rfc.py", ["--trials", "3", "--folds", "3"]),
    ):
        assert_clean(store.run(script, *data, "--experiment-name", "members", *extra))

    promoted = store.run("register_model.py", *gate)
    assert_clean(promoted)
    assert "Gate: promoted, first promotion" in promoted.stdout
    assert "in 'member-classifier-promotion'" in promoted.stdout  # the project's own decisions
    champion = store.client.get_model_version_by_alias("member-classifier", "champion")

    # Run again with the reader's rows: nothing to decide, and it says so, rows read and checked.
    again = store.run("register_model.py", *gate)
    assert_clean(again)
    assert f"is already version {champion.version}." in again.stdout
    assert "Your rows in" in again.stdout and "(150 rows, 3 classes)" in again.stdout

    # A weaker model is refused with its reason; the champion stays.
    store.run(
        "train_rfc.py", *data, "--experiment-name", "members", "--n-estimators", "1",
        "--max-depth", "1", "--run-name", "stump",
    )  # fmt: skip
    refused = store.run("register_model.py", "--run-name", "stump", *gate, check=False)
    assert refused.returncode == 1
    assert "refused: f1_score: challenger" in refused.stderr
    assert "the 'champion' alias stays on version 1" in refused.stderr
    assert "Warning" not in refused.stdout + refused.stderr  # the undefined precision, in words
    assert (
        str(store.client.get_model_version_by_alias("member-classifier", "champion").version) == "1"
    )

    # Chapter 8's own-data command without the naming flags: no silent success.
    unnamed = store.run(
        "register_model.py", "--eval-data", str(member_tables["eval"]), "--target", "next step",
        check=False,
    )  # fmt: skip
    assert unnamed.returncode == 1
    assert "was trained on the label 'diagnosis', not --target 'next step'" in unnamed.stderr
    # --pos-label names one class of two: with three it is refused, not ignored.
    three = store.run("register_model.py", *gate, "--pos-label", "renew", check=False)
    assert three.returncode == 1 and "--pos-label is for two classes" in three.stderr

    # Served under its own name; both predict.py paths give the same answers to the raw rows.
    port = free_port()
    env = {**store.env, "MODEL_NAME": "member-classifier", "PORT": str(port)}
    server = start_process([str(REPO / "serve_model.sh")], env=env, cwd=REPO, log=tmp_path / "log")
    wait_for_http(f"http://127.0.0.1:{port}/ping", server)
    hint = f"python predict.py --url http://127.0.0.1:{port} --model-name member-classifier"
    assert hint in (tmp_path / "log").read_text()  # the hint fits the model it serves
    rows = ["--model-name", "member-classifier", "--data", str(member_tables["eval"])]
    here = store.run("predict.py", *rows)
    there = store.run("predict.py", *rows, "--url", f"http://127.0.0.1:{port}")
    assert_clean(here)
    assert here.stdout == there.stdout
    predictions = pd.read_csv(pd.io.common.StringIO(here.stdout))["prediction"]
    truth = pd.read_csv(member_tables["eval"])["next step"]
    assert set(predictions) <= set(CLASSES) and (predictions == truth).mean() > 0.6
    assert "extra inputs" not in (tmp_path / "log").read_text()  # the label was not sent

    # Raw JSON as a program of the reader's sends it: whole numbers, null, true, an unseen plan.
    body = {
        "dataframe_split": {
            "columns": ["age", "visits per month", "late fees", "membership", "has_card"],
            "data": [[34, 7, None, "basic", True], [61, 1, 19.5, "corporate", False]],
        }
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answers = json.load(response)["predictions"]
    assert len(answers) == 2 and set(answers) <= set(CLASSES)


def test_spark_scores_the_raw_rows_as_predict_py_does(store, member_tables, tmp_path):
    """The spark room: spark_udf on the raw CSV (text, booleans, whole numbers, empty cells, the
    ID column too), each column cast to the champion's type: the same answers as predict.py."""
    data = ["--data", str(member_tables["train"]), "--target", "next step", *DROP_ID]
    store.run("train_rfc.py", *data, "--experiment-name", "members", "--n-estimators", "20")
    gate = [*PROJECT, "--eval-data", str(member_tables["eval"]), "--target", "next step"]
    store.run("register_model.py", *gate)
    rows = ["--model-name", "member-classifier", "--data", str(member_tables["eval"])]
    spark = store.run("spark/predict_spark.py", *rows, timeout=300)
    assert_clean(spark)
    assert spark.stdout == store.run("predict.py", *rows).stdout
