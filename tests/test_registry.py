"""register_model.py: the gate promotes, refuses or is forced; never duplicates; rollback skips it."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import REPO, assert_clean

MODEL = "breast-cancer-classifier"
PROMOTION = "breast-cancer-promotion"
EVAL_DATA = REPO / "data" / "breast_cancer_eval.csv"
EXPERIMENTS = ["breast-cancer-random-forest", "breast-cancer-neural-network"]


def all_runs(store):
    experiments = [store.client.get_experiment_by_name(name) for name in EXPERIMENTS]
    return store.client.search_runs([e.experiment_id for e in experiments if e])


def truly_best(store, metric="test_f1"):
    """The best finished run by `metric`, computed here in Python; ties go to the older run."""
    runs = [r for r in all_runs(store) if r.info.status == "FINISHED"]
    return min(runs, key=lambda r: (-r.data.metrics[metric], r.info.start_time))


def champion(store):
    return store.client.get_model_version_by_alias(MODEL, "champion")


def version_number(version) -> str:
    return str(version.version)


def versions(store):
    return store.client.search_model_versions(f"name = '{MODEL}'")


def decisions(store):
    """The promotion gate's decision runs (the parents; their children are the evaluations)."""
    experiment = store.client.get_experiment_by_name(PROMOTION)
    if experiment is None:
        return []
    runs = store.client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time ASC"]
    )
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def evaluations(store, decision):
    return store.client.search_runs(
        [decision.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{decision.info.run_id}'",
    )


def run_named(store, name):
    return next(r for r in all_runs(store) if r.info.run_name == name)


@pytest.mark.quick
def test_the_gate_promotes_refuses_is_forced_and_rollback_skips_it(trained_store):
    # A weak forest (stump), a normal one, and a network: three runs, two experiments.
    store = trained_store
    stump = run_named(store, "stump")

    # No champion yet: the challenger is still evaluated and recorded, then promoted.
    first = store.run("register_model.py", "--run-name", "stump")
    assert_clean(first)
    assert champion(store).run_id == stump.info.run_id
    (decision,) = decisions(store)
    assert decision.data.tags["verdict"] == "promoted"
    assert "no champion" in decision.data.tags["reason"]
    assert decision.info.run_name == "promoted: stump, the first champion"
    (evaluation,) = evaluations(store, decision)
    assert {"f1_score", "recall_score", "accuracy_score"} <= set(evaluation.data.metrics)
    plots = {a.path for a in store.client.list_artifacts(evaluation.info.run_id)}
    assert {
        "confusion_matrix.png",
        "roc_curve_plot.png",
        "precision_recall_curve_plot.png",
    } <= plots

    # The best run by test_f1 beats the stump on the held-back rows: promoted, and it says why.
    # (store.call runs the script in this process: the same main, without an interpreter start.)
    better = store.call("register_model.py")
    assert better.returncode == 0, better.stderr
    best = truly_best(store)
    assert champion(store).run_id == best.info.run_id
    assert version_number(champion(store)) == "2"
    assert "Top 3 runs with a logged model, by test_f1" in better.stdout
    assert better.stdout.strip().endswith(f"Model URI: models:/{MODEL}@champion")
    leaderboard = [line for line in better.stdout.splitlines() if line.startswith("  ")]
    assert best.info.run_name in leaderboard[0]
    decision = decisions(store)[-1]
    assert decision.data.tags["verdict"] == "promoted"
    assert decision.data.tags["reason"].startswith("beats version 1 on f1_score")
    assert decision.data.tags["challenger"] == best.info.run_name
    assert decision.data.params["challenger_run_id"] == best.info.run_id
    assert len(evaluations(store, decision)) == 2
    metrics = decision.data.metrics
    assert metrics["challenger_f1_score"] >= metrics["champion_f1_score"] + 0.01
    assert metrics["challenger_recall_score"] >= metrics["champion_recall_score"]

    # Re-running registers nothing new and decides nothing.
    again = store.call("register_model.py")
    assert "already version 2" in again.stdout
    assert len(versions(store)) == 2 and len(decisions(store)) == 2

    # The stump again, by id: refused, one line per failed threshold with both values, and
    # nothing changes but the recorded decision.
    refused = store.call("register_model.py", "--run-id", stump.info.run_id)
    assert refused.returncode == 1
    # mlflow.models.evaluate's INFO lines come first; then only the script's.
    lines = [line for line in refused.stderr.strip().splitlines() if " INFO " not in line]
    assert lines[0].startswith("refused: f1_score: challenger 0.")
    assert ", champion 0." in lines[0]
    assert all(line.startswith("refused: ") for line in lines[:-1])
    assert lines[-1].startswith("error: the gate refused 'stump'")
    assert "stays on version 2" in lines[-1]
    assert version_number(champion(store)) == "2" and len(versions(store)) == 2
    decision = decisions(store)[-1]
    assert decision.data.tags["verdict"] == "refused"
    assert decision.data.tags["reason"].startswith("f1_score: challenger")
    assert decision.info.run_name == "refused: stump vs version 2"
    assert decision.info.status == "FINISHED"

    # --force promotes it anyway (its version 1 already exists) and records that.
    forced = store.call("register_model.py", "--run-id", stump.info.run_id, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "Forced past the gate" in forced.stdout
    assert version_number(champion(store)) == "1" and len(versions(store)) == 2
    decision = decisions(store)[-1]
    assert decision.data.tags["verdict"] == "promoted"
    assert decision.data.tags["forced"] == "true"
    assert decision.info.run_name == "forced: stump over version 2"

    # Rolling back skips the gate (the operator has decided), but its decision run records the
    # move: no evaluation, the verdict, the version and the reason given.
    count = len(decisions(store))
    rolled = store.call("register_model.py", "--version", "2", "--reason", "stump misfires")
    assert "moved: version 1 -> version 2" in rolled.stdout
    assert len(decisions(store)) == count + 1
    decision = decisions(store)[-1]
    assert evaluations(store, decision) == []
    assert decision.info.run_name == "rolled back: version 1 -> version 2"
    tags = decision.data.tags
    assert (tags["verdict"], tags["version"], tags["reason"]) == (
        "rolled back",
        "2",
        "stump misfires",
    )

    # An unknown version or run is refused, and the alias stays where it was.
    for args in (["--version", "9"], ["--run-id", "0123456789abcdef"]):
        unknown = store.call("register_model.py", *args)
        assert unknown.returncode == 1
        assert len(unknown.stderr.strip().splitlines()) == 1
        assert "left unchanged" in unknown.stderr
        assert version_number(champion(store)) == "2"


def test_evaluation_data_that_does_not_fit_is_one_line_and_changes_nothing(trained_store, tmp_path):
    store = trained_store
    store.call("register_model.py", "--run-name", "stump")
    count = len(decisions(store))
    frame = pd.read_csv(EVAL_DATA)
    missing = tmp_path / "missing.csv"
    frame.drop(columns=["mean_radius", "worst_area"]).to_csv(missing, index=False)
    no_label = tmp_path / "no_label.csv"
    frame.drop(columns="diagnosis").to_csv(no_label, index=False)
    cases = {
        missing: "lacks columns the challenger needs: mean_radius, worst_area",
        no_label: "has no column 'diagnosis'",
        tmp_path / "absent.csv": "no evaluation data at",
    }
    for path, expected in cases.items():
        result = store.call("register_model.py", "--eval-data", str(path))
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()  # before any evaluation: no INFO line
        assert expected in line and "alias was left unchanged" in line
    assert version_number(champion(store)) == "1" and len(versions(store)) == 1
    assert len(decisions(store)) == count


def test_a_worse_later_run_does_not_move_the_champion(trained_store):
    store = trained_store
    store.call("register_model.py")
    best = truly_best(store)
    store.call("train_rfc.py", "--n-estimators", "1", "--max-depth", "1", "--run-name", "worse")
    store.call("register_model.py")
    assert len(versions(store)) == 1
    assert champion(store).run_id == best.info.run_id


def test_metric_mode_and_experiment_choose_the_ranking(trained_store):
    store = trained_store

    # Lowest accuracy in the forest experiment only: the stump, whatever the network scored.
    store.call(
        "register_model.py",
        "--experiment-name",
        EXPERIMENTS[0],
        "--metric",
        "test_accuracy",
        "--mode",
        "min",
        "--model-name",
        "worst-forest",
    )
    worst = store.client.get_model_version_by_alias("worst-forest", "champion")
    runs = [r for r in all_runs(store) if r.info.experiment_id == worst_experiment_id(store)]
    expected = min(runs, key=lambda r: (r.data.metrics["test_accuracy"], r.info.start_time))
    assert worst.run_id == expected.info.run_id
    assert store.client.get_run(worst.run_id).info.experiment_id == worst_experiment_id(store)


def worst_experiment_id(store):
    return store.client.get_experiment_by_name(EXPERIMENTS[0]).experiment_id


EMPTY_STORE = (
    "error: no experiment named 'breast-cancer-random-forest' or 'breast-cancer-neural-network' "
    "in {uri}; train first: python train_rfc.py"
)
UNKNOWN_METRIC = (
    "error: no finished run logged the metric 'no_such_metric' (runs log: test_accuracy, "
    "test_f1, test_precision, test_recall, test_roc_auc)"
)


@pytest.mark.parametrize(
    "store_fixture,args,expected",
    [
        ("store", [], EMPTY_STORE),
        ("trained_store", ["--metric", "no_such_metric"], UNKNOWN_METRIC),
    ],
)
def test_an_empty_store_or_unknown_metric_is_a_clear_error(request, store_fixture, args, expected):
    store = request.getfixturevalue(store_fixture)
    result = store.call("register_model.py", *args)
    assert result.returncode == 1
    assert result.stderr.strip() == expected.format(uri=store.uri)


def test_labels_spelled_0_1_in_the_csv_are_learnt_and_gated_as_names(store, tmp_path):
    """0/1 in the CSVs: the script learns them as names, and the gate reads them as text too."""
    numbers = {}
    for name, path in {
        "train": REPO / "data" / "breast_cancer_train.csv",
        "eval": EVAL_DATA,
    }.items():
        frame = pd.read_csv(path)
        frame["diagnosis"] = (frame["diagnosis"] == "malignant").astype(int)
        numbers[name] = tmp_path / f"{name}.csv"
        frame.to_csv(numbers[name], index=False)
    store.run("train_rfc.py", "--data", str(numbers["train"]), "--experiment-name", "numbers",
              "--n-estimators", "20")  # fmt: skip
    gate = ["--experiment-name", "numbers", "--eval-data", str(numbers["eval"]), "--pos-label", "1"]
    gate += ["--promotion-experiment", "numbers-promotion"]
    promoted = store.call("register_model.py", *gate)
    assert promoted.returncode == 0, promoted.stderr
    (decision,) = store.experiment_runs("numbers-promotion")[:1]
    assert decision.data.tags["verdict"] == "promoted"
    assert decision.data.metrics["challenger_recall_score"] > 0.8  # "1", malignant, scored

    # A model of one's own that predicts integers cannot be held against a champion that
    # predicts names: one line, before the gate logs anything.
    frame = pd.read_csv(numbers["train"])
    log_own_model(store, "numbers", frame.drop(columns="diagnosis"), frame["diagnosis"], 30)
    runs_before = len(store.experiment_runs("numbers-promotion"))
    refused = store.call("register_model.py", "--run-name", "own", *gate)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(
        "error: the challenger predicts integers and the champion label names: they cannot be "
        "scored against the same labels"
    )
    assert "alias was left unchanged" in line
    assert len(store.experiment_runs("numbers-promotion")) == runs_before  # no FAILED decision


def log_own_model(store, experiment, features, labels, n_features, name="own"):
    """A model trained by a reader's own code, on labels of its own type, as MLflow logs it."""
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = features.astype(float).iloc[:, :n_features]  # fewer features, a weaker model
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, labels)
    mlflow.set_tracking_uri(store.uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=name):
        logged = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=mlflow.models.infer_signature(features, model.predict(features)),
            skops_trusted_types=[],
        )
        mlflow.log_metric("test_f1", n_features / 100, model_id=logged.model_id)


@pytest.mark.parametrize(
    "spelling, pos_label",
    [({"malignant": 1, "benign": 0}, "1"), ({"malignant": True, "benign": False}, "true")],
    ids=["integers", "booleans"],
)
def test_models_that_predict_integers_or_booleans_go_through_the_gate(store, spelling, pos_label):
    """Labels as the reader's models predict them: promoted, then a weaker one refused."""
    train, held_back = (
        pd.read_csv(REPO / "data" / "breast_cancer_train.csv"),
        pd.read_csv(EVAL_DATA),
    )
    labels = train.pop("diagnosis").map(spelling)
    eval_csv = store.root / "eval.csv"
    held_back.assign(diagnosis=held_back["diagnosis"].map(spelling)).to_csv(eval_csv, index=False)
    flags = ["--experiment-name", "own", "--model-name", "own-classifier"]
    flags += ["--eval-data", str(eval_csv), "--pos-label", pos_label]

    log_own_model(store, "own", train, labels, 30, name="all-features")
    first = store.run("register_model.py", *flags)
    assert_clean(first)
    assert "Alias 'champion' now points at version 1." in first.stdout
    log_own_model(store, "own", train, labels, 2, name="two-features")
    refused = store.run("register_model.py", "--run-name", "two-features", *flags, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert_clean(refused)
    assert "refused: f1_score: challenger" in refused.stderr
    runs = store.experiment_runs("own-classifier-promotion")  # the model's own experiment
    decisions = [run for run in runs if "verdict" in run.data.tags]  # not their evaluations
    assert [d.data.tags["verdict"] for d in decisions] == ["promoted", "refused"]
    assert decisions[0].data.metrics["challenger_recall_score"] > 0.9  # the positive class
