"""monitoring/check_drift.py: the rows the champion scored, against the rows it trained on.

Each check runs as a reader types it, `python monitoring/check_drift.py ...`, against a store
whose champion is the session's "forest" (trained on data/breast_cancer_train.csv, registered
once through the gate). A drifted batch is flagged (exit 3, one line naming the worst features)
and a steady one passed, on rows this file makes itself as well as on the shipped batches; each
check is one finished run with its metrics, tags, inputs and report; a bad input is one line,
exit 1, and no run.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import (
    DATA,
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    raw_table,
    run_command,
    shared_folder,
    store_from,
)

CHECK = "monitoring/check_drift.py"
EXPERIMENT = "breast-cancer-monitoring"
MODEL_NAME = "breast-cancer-classifier"
FEATURES = pd.read_csv(DATA).drop(columns="diagnosis").columns.tolist()
DRIFT_EXIT = 3
STAINED = ("texture", "smoothness", "symmetry")


@pytest.fixture(scope="session")
def champion_store_db(tmp_path_factory, trained_store_db) -> Path:
    """The trained store with "forest" promoted by register_model.py, as the page's reader has."""

    def promote(folder):
        store_from(trained_store_db, folder).run("register_model.py", "--run-name", "forest")

    return shared_folder(tmp_path_factory, "monitoring-champion", promote) / "mlflow.db"


@pytest.fixture
def champion_store(tmp_path, champion_store_db):
    return store_from(champion_store_db, tmp_path)


def made_batches(folder: Path) -> dict[str, Path]:
    """Batches made here, not shipped: 300 rows drawn (with replacement) from the champion's own
    training file, which no test can have tuned; the same rows with one feature shifted (one
    feature is under the 20% share that fails a check); and with a new stain, as it were, that
    darkens the nine texture, smoothness and symmetry columns by 30%."""
    rows = pd.read_csv(DATA).drop(columns="diagnosis").sample(300, replace=True, random_state=11)
    stained = [name for name in FEATURES if any(kind in name for kind in STAINED)]
    batches = {
        "steady": rows,
        "one_shifted": rows.assign(mean_texture=rows["mean_texture"] * 1.3),
        "stained": rows.assign(**{name: rows[name] * 1.3 for name in stained}),
    }
    for name, batch in batches.items():
        batch.to_csv(folder / f"{name}.csv", index=False)
    return {name: folder / f"{name}.csv" for name in batches}


def checks(store) -> list:
    """The monitoring experiment's runs, oldest first; none if the experiment does not exist."""
    if store.client.get_experiment_by_name(EXPERIMENT) is None:
        return []
    return store.experiment_runs(EXPERIMENT)


def test_a_drifted_batch_is_flagged_and_a_steady_one_passed_on_rows_the_test_makes(
    champion_store, tmp_path
):
    store, batches = champion_store, made_batches(tmp_path)

    steady = store.run(CHECK, "--data", str(batches["steady"]))
    assert_clean(steady)
    assert steady.stdout.splitlines()[-1].startswith("steady: 0 of 30 features drifted")

    # One feature moved: the report says so, but one of thirty is under the share that fails.
    one = store.run(CHECK, "--data", str(batches["one_shifted"]))
    assert_clean(one)
    assert one.stdout.splitlines()[-1].startswith("steady: 1 of 30 features drifted")

    stained = store.run(CHECK, "--data", str(batches["stained"]), check=False)
    assert stained.returncode == DRIFT_EXIT, stained.stderr
    assert_clean(stained)
    verdict = stained.stderr.strip()
    assert "\n" not in verdict and verdict.startswith("drift: 9 of 30 features drifted (30%"), (
        verdict
    )
    worst = verdict.split("worst: ")[1]
    assert all(any(kind in name for kind in STAINED) for name in worst.split(", ")), worst

    # The threshold is the reader's: at half the features, the same batch passes.
    lenient = store.run(CHECK, "--data", str(batches["stained"]), "--drift-share", "0.5")
    assert lenient.stdout.splitlines()[-1].startswith("steady: 9 of 30 features drifted (30%")

    runs = checks(store)
    assert [run.data.tags["verdict"] for run in runs] == ["steady", "steady", "drifted", "steady"]
    assert all(run.info.status == "FINISHED" for run in runs)
    shifted = runs[1].data.metrics
    assert shifted["drift_p_value/mean_texture"] < 0.05 < shifted["drift_p_value/mean_radius"]
    assert shifted["drifted_share"] == pytest.approx(1 / 30)


def test_the_shipped_batches_and_what_each_check_logs(champion_store):
    """data/later_steady.csv passes, data/later_drifted.csv (lengths 10% short) is flagged; each
    check is a run with the champion's version, a p-value per feature, the share of drifted
    features and of each answer, both datasets as inputs, and Evidently's report."""
    store = champion_store
    # The drifted batch's answers carry the champion's probabilities too (predict.py --proba).
    for batch, proba in (("later_steady", []), ("later_drifted", ["--proba"])):
        data = str(REPO / "data" / f"{batch}.csv")
        predicted = store.run("predict.py", "--data", data, "--output", f"{batch}.csv", *proba)
        assert_clean(predicted)

    steady = store.run(
        CHECK, "--data", str(REPO / "data" / "later_steady.csv"),
        "--predictions", str(store.root / "later_steady.csv"),
    )  # fmt: skip
    assert_clean(steady)
    drifted = store.run(
        CHECK, "--data", str(REPO / "data" / "later_drifted.csv"),
        "--predictions", str(store.root / "later_drifted.csv"), check=False,
    )  # fmt: skip
    assert drifted.returncode == DRIFT_EXIT, drifted.stderr
    assert_clean(drifted)
    assert drifted.stderr.startswith(
        "drift: 8 of 30 features drifted (27%, at least --drift-share 20%)"
    )
    assert "worst: mean_radius" in drifted.stderr
    assert "Scores of malignant: mean " in drifted.stdout
    assert "Scores of" not in steady.stdout

    version = str(store.client.get_model_version_by_alias(MODEL_NAME, "champion").version)
    first, second = checks(store)
    assert first.info.run_name == f"steady: later_steady.csv vs version {version}"
    assert second.info.run_name == f"drifted: later_drifted.csv vs version {version}"
    for run, batch in ((first, "later_steady"), (second, "later_drifted")):
        assert run.info.status == "FINISHED"
        assert run.data.tags["champion_version"] == version
        assert run.data.tags["model"] == MODEL_NAME
        assert run.data.params == {
            "method": "ks",
            "category_method": "chisquare",
            "drift_share": "0.2",
        }
        metrics = run.data.metrics
        assert {f"drift_p_value/{name}" for name in FEATURES} <= set(metrics)
        assert metrics["rows"] == 114
        # The champion's answers, as predict.py wrote them.
        answers = pd.read_csv(store.root / f"{batch}.csv")["prediction"]
        assert metrics["predicted_malignant_share"] == pytest.approx(
            (answers == "malignant").mean()
        )
        assert metrics["predicted_malignant_share"] + metrics[
            "predicted_benign_share"
        ] == pytest.approx(1)
        # The spread of the scores, where the answers carry them: the drifted batch's only.
        scores = {name for name in metrics if name.startswith("score/")}
        if batch == "later_steady":
            assert not scores
        else:
            malignant = pd.read_csv(store.root / f"{batch}.csv")["malignant"]
            assert metrics["score/malignant/mean"] == pytest.approx(malignant.mean())
            assert metrics["score/malignant/p50"] == pytest.approx(malignant.median())
            assert metrics["score/benign/mean"] == pytest.approx(1 - malignant.mean(), abs=1e-3)
        # Both datasets, by context: the champion's training file and the batch.
        inputs = {
            next(t.value for t in each.tags if t.key == "mlflow.data.context"): each.dataset
            for each in run.inputs.dataset_inputs
        }
        assert set(inputs) == {"reference", "current"}
        assert mlflow.data.get_source(inputs["reference"]).to_dict()["uri"] == str(DATA)
        assert mlflow.data.get_source(inputs["current"]).to_dict()["uri"] == str(
            REPO / "data" / f"{batch}.csv"
        )
        assert inputs["current"].name == batch
        # Evidently's report, a whole page.
        folder = store.root / run.info.run_id
        folder.mkdir()
        report = store.client.download_artifacts(run.info.run_id, "drift_report.html", str(folder))
        page = Path(report).read_text()
        assert page.lstrip().lower().startswith("<!doctype html") and "worst_area" in page
    assert first.data.metrics["drifted_share"] == 0
    assert second.data.metrics["drifted_share"] == pytest.approx(8 / 30)
    # Lengths read short: the champion calls fewer tumours malignant.
    assert (
        second.data.metrics["predicted_malignant_share"]
        < first.data.metrics["predicted_malignant_share"]
    )


def test_the_pages_loop_promotes_through_the_gate_after_chapter_5_and_the_check_follows(store):
    """Chapter 5 leaves train_ann.py's default network as champion (make demo's champion is
    the docs test's): the page's loop, typed as written, promotes a challenger trained on the
    recalibrated rows through the gate; no path is written down, and the check follows the new
    champion to what it trained on: the same drifted batch is steady for it."""
    assert_clean(store.run("train_ann.py"))
    assert_clean(store.run("register_model.py"))
    for command in loop_commands():
        assert_clean(store.run(*command.split()[1:], cwd=REPO))  # the page runs from the repository
    champion = store.client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == "2"
    assert store.client.get_run(champion.run_id).info.run_name == "network-recalibrated"

    result = store.run(CHECK, "--data", str(REPO / "data" / "later_drifted.csv"))
    assert_clean(result)
    assert f"trained on rows from {REPO / 'data' / 'recalibrated_train.csv'}" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("steady: 0 of 30 features drifted")
    (check,) = checks(store)
    assert check.data.tags["champion_version"] == "2"


def loop_commands() -> list[str]:
    """The commands of the page's "Closing the loop" block, without their redirections."""
    page = (REPO / "monitoring" / "README.md").read_text()
    block = page.split("## Closing the loop")[1].split("```bash\n")[1].split("```")[0]
    return [line.split(" > ")[0] for line in block.strip().splitlines()]


def test_a_raw_batch_is_checked_as_the_server_takes_it(store, tmp_path):
    """A champion trained on a raw table (text, booleans, whole numbers, empty cells, an ID left
    out): a raw batch, ID column included, is compared column by column, text as categories,
    and the share of empty cells per column is logged; a batch whose categories and empty cells
    moved is flagged."""
    table = raw_table()
    table.to_csv(tmp_path / "members.csv", index=False)
    store.run(
        "train_rfc.py", "--data", str(tmp_path / "members.csv"), "--target", "next step",
        "--drop", "member_id", "--n-estimators", "20", "--experiment-name", "members",
    )  # fmt: skip
    store.run(
        "register_model.py", "--experiment-name", "members", "--model-name", "members",
        "--eval-data", str(tmp_path / "members.csv"), "--target", "next step",
    )  # fmt: skip
    later = raw_table(rows=300, seed=8).drop(columns="next step")
    later.to_csv(tmp_path / "later.csv", index=False)
    moved = later.assign(membership="student", has_card=False)
    moved.loc[::3, "late fees"] = None
    moved.to_csv(tmp_path / "moved.csv", index=False)

    steady = store.run(CHECK, "--model-name", "members", "--data", str(tmp_path / "later.csv"))
    assert_clean(steady)
    assert steady.stdout.splitlines()[-1].startswith("steady: 0 of 5 features drifted")
    flagged = store.run(
        CHECK, "--model-name", "members", "--data", str(tmp_path / "moved.csv"), check=False
    )
    assert flagged.returncode == DRIFT_EXIT, flagged.stderr
    assert_clean(flagged)
    assert "Empty cells: late fees 3" in flagged.stdout
    for name in ("membership", "has_card"):
        assert name in flagged.stderr.split("worst: ")[1]
    first, second = store.experiment_runs("members-monitoring")  # the model's own checks
    assert "drift_p_value/member_id" not in first.data.metrics  # the ID is not a feature
    assert first.data.params["category_method"] == "chisquare"
    assert second.data.metrics["missing_share/late fees"] > 0.3
    assert second.data.metrics["missing_share/age"] == 0


def make_champion(store, model_name: str, run_name: str) -> str:
    """Register the model of the newest run named `run_name` and point `champion` at it: what
    register_model.py does after its gate, here without the gate's evaluations (seconds)."""
    mlflow.set_tracking_uri(store.uri)
    (run,) = mlflow.search_runs(
        experiment_names=["breast-cancer-random-forest"],
        filter_string=f"attributes.run_name = '{run_name}'",
        output_format="list",
    )
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    version = mlflow.register_model(f"models:/{model.model_id}", model_name).version
    store.client.set_registered_model_alias(model_name, "champion", version)
    return str(version)


def no_dataset_champion(store, folder: Path) -> str:
    """A champion whose run logged a model but no dataset, as the README's quickstart does."""
    from mlflow.models import infer_signature
    from sklearn.tree import DecisionTreeClassifier

    rows = pd.read_csv(DATA)
    X, y = rows.drop(columns="diagnosis"), rows["diagnosis"]
    mlflow.set_tracking_uri(store.uri)
    experiment = mlflow.create_experiment("no-dataset", (folder / "mlruns").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        tree = DecisionTreeClassifier(max_depth=2).fit(X, y)
        logged = mlflow.sklearn.log_model(
            tree, name="model", signature=infer_signature(X, tree.predict(X)),
            serialization_format="skops", skops_trusted_types=["sklearn.tree._tree.Tree"],
        )  # fmt: skip
    version = mlflow.register_model(f"models:/{logged.model_id}", "no-dataset-model").version
    store.client.set_registered_model_alias("no-dataset-model", "champion", version)
    return "no-dataset-model"


def gone_dataset_champion(store, folder: Path) -> str:
    """A champion trained on a copy of the training file, which is then deleted."""
    copy = folder / "moved_away.csv"
    copy.write_bytes(DATA.read_bytes())
    store.run("train_rfc.py", "--data", str(copy), "--n-estimators", "5", "--run-name", "gone")
    make_champion(store, "gone-model", "gone")
    copy.unlink()
    return "gone-model"


def bad_file(folder: Path, name: str, change) -> Path:
    rows = pd.read_csv(REPO / "data" / "later_steady.csv")
    path = folder / name
    change(rows, path)
    return path


# Each bad input: how to make it (the flags to pass), and the start of the one line it gets.
BAD_INPUTS = {
    "missing columns": (
        lambda store, d: ["--data", str(bad_file(d, "missing.csv", lambda r, p: r.drop(columns=["mean_radius", "worst_area"]).to_csv(p, index=False)))],
        "error: the batch, {folder}/missing.csv, lacks 2 of the champion's 30 columns: mean_radius, worst_area",
    ),
    "the label column": (
        lambda store, d: ["--data", str(REPO / "data" / "breast_cancer_eval.csv")],
        "error: the batch, {repo}/data/breast_cancer_eval.csv, holds the label column 'diagnosis':",
    ),
    "an empty batch": (
        lambda store, d: ["--data", str(bad_file(d, "header.csv", lambda r, p: r.head(0).to_csv(p, index=False)))],
        "error: {folder}/header.csv has a header but no rows",
    ),
    "an empty file": (
        lambda store, d: ["--data", str(bad_file(d, "zero.csv", lambda r, p: p.write_text("")))],
        "error: {folder}/zero.csv is empty",
    ),
    "text in a numeric column": (
        lambda store, d: ["--data", str(bad_file(d, "text.csv", lambda r, p: r.astype({"mean_area": object}).assign(mean_area="large").to_csv(p, index=False)))],
        "error: input does not fit the model: column 'mean_area' holds 'large', not a number",
    ),
    "answers to another batch": (
        lambda store, d: ["--predictions", str(bad_file(d, "few.csv", lambda r, p: pd.DataFrame({"prediction": ["benign"] * 3}).to_csv(p, index=False)))],
        "error: {folder}/few.csv holds 3 predictions for a batch of 114 rows",
    ),
    "no champion": (
        lambda store, d: ["--model-name", "never-registered"],
        "error: no models:/never-registered@champion in",
    ),
    "a champion whose run logged no dataset": (
        lambda store, d: ["--model-name", no_dataset_champion(store, d)],
        "error: models:/no-dataset-model@champion (version 1) has no training dataset:",
    ),
    "a dataset whose file is gone": (
        lambda store, d: ["--model-name", gone_dataset_champion(store, d)],
        "error: the training data of models:/gone-model@champion (version 1) is gone: {folder}/moved_away.csv no longer exists",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_a_bad_input_is_one_line_and_leaves_no_run(case, champion_store, tmp_path):
    store = champion_store
    make, expected = BAD_INPUTS[case]
    args = make(store, tmp_path)
    # The first case as a reader's shell runs it, a new interpreter whose whole output is checked
    # clean; the others in this process (Store.call: the same code path, without Evidently's
    # seconds of imports each time).
    if case == next(iter(BAD_INPUTS)):
        result = store.run(CHECK, *args, check=False)
        assert_clean(result)
    else:
        result = store.call(CHECK, *args)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and result.stdout == "", result.stderr
    assert result.stderr.startswith(expected.format(folder=tmp_path, repo=REPO)), result.stderr
    assert checks(store) == []  # checked before any run starts: nothing half-logged
    for experiment in store.client.search_experiments():
        for run in store.client.search_runs([experiment.experiment_id]):
            assert run.info.status == "FINISHED", (experiment.name, run.info.run_name)


def test_a_bad_flag_is_one_line():
    result = run_command(
        [PYTHON, str(REPO / CHECK), "--drift-share", "0"], env=base_env(), cwd=REPO, check=False
    )
    assert result.returncode == 2
    assert result.stderr == (
        "check_drift.py: error: argument --drift-share: must be a share in (0, 1], got 0 (see --help)\n"
    )
