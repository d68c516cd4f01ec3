"""tune_rfc.py: one parent run per search, a child per trial, and no peeking at the test rows."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split

from conftest import DATA, assert_clean, shared_folder, store_from

TRIALS = ["--trials", "3", "--folds", "3"]
RFC_EXPERIMENT = "breast-cancer-random-forest"


@pytest.fixture(scope="session")
def tuned_store_db(tmp_path_factory, trained_store_db):
    """The session's trained store (two forests, one network) plus one small search."""

    def tune(folder):
        result = store_from(trained_store_db, folder).run(
            "tune_rfc.py", *TRIALS, "--run-name", "search"
        )
        assert_clean(result)
        (folder / "stdout.txt").write_text(result.stdout)

    folder = shared_folder(tmp_path_factory, "tuned-store", tune)
    return folder / "mlflow.db", (folder / "stdout.txt").read_text()


@pytest.fixture
def tuned_store(tmp_path, tuned_store_db):
    return store_from(tuned_store_db[0], tmp_path)


def split_runs(store):
    runs = store.experiment_runs(RFC_EXPERIMENT)
    (parent,) = [r for r in runs if r.info.run_name == "search"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


TUNED = [
    "model__n_estimators",
    "model__max_depth",
    "model__min_samples_leaf",
    "model__max_features",
]


def test_a_search_is_one_parent_with_a_finished_child_per_trial(tuned_store, tuned_store_db):
    parent, children = split_runs(tuned_store)
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags
    assert sorted(c.info.run_name for c in children) == ["trial-01", "trial-02", "trial-03"]
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        assert set(child.data.metrics) == {"cv_f1", "cv_f1_std"}  # no test score in a trial
        # Named as the pipeline names its forest's parameters (docs/07 says why).
        assert set(TUNED) <= set(child.data.params)
    best = max(children, key=lambda c: c.data.metrics["cv_f1"])
    assert parent.data.tags["best_child_run_id"] == best.info.run_id
    assert parent.data.metrics["cv_f1"] == pytest.approx(best.data.metrics["cv_f1"])
    for key in TUNED:  # the parent logs the forest's own names, as train_rfc.py does
        assert parent.data.params[key.removeprefix("model__")] == best.data.params[key]
    # The children are found from Python as the chapter shows: by the parentRunId tag.
    found = tuned_store.client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert {r.info.run_id for r in found} == {c.info.run_id for c in children}
    assert f"parent run id: {parent.info.run_id}  (3 child runs)" in tuned_store_db[1]


def test_trials_score_on_training_rows_and_only_the_parent_touches_the_test_rows(tuned_store):
    parent, children = split_runs(tuned_store)
    frame = pd.read_csv(DATA)
    y = frame.pop("diagnosis").astype(str)
    X_train, X_test, y_train, y_test = train_test_split(
        frame.astype("float64"), y, test_size=0.2, stratify=y, random_state=42
    )

    def forest(params):
        params = {key.removeprefix("model__"): value for key, value in params.items()}
        depth = params["max_depth"]
        features = params["max_features"]
        return RandomForestClassifier(
            n_estimators=int(params["n_estimators"]),
            max_depth=None if depth == "None" else int(depth),
            min_samples_leaf=int(params["min_samples_leaf"]),
            max_features=features if features in ("sqrt", "log2") else float(features),
            random_state=42,
        )

    # A trial's score is cross-validation on the training rows alone: recomputed, it matches.
    child = children[0]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=42)
    scores = cross_val_score(
        forest(child.data.params),
        X_train,
        y_train,
        cv=folds,
        scoring=make_scorer(f1_score, pos_label="malignant"),
    )
    assert child.data.metrics["cv_f1"] == pytest.approx(scores.mean())
    # The parent's test score is the best setting refitted on all training rows, scored once.
    refit = forest(parent.data.params).fit(X_train, y_train)
    expected = f1_score(y_test, refit.predict(X_test), pos_label="malignant")
    assert parent.data.metrics["test_f1"] == pytest.approx(expected)

    # And the parent's model is that forest: it loads and predicts the same.
    mlflow.set_tracking_uri(tuned_store.uri)
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"source_run_id = '{parent.info.run_id}'",
        output_format="list",
    )
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert list(model.predict(X_test)) == list(refit.predict(X_test))
    artifacts = [a.path for a in tuned_store.client.list_artifacts(parent.info.run_id)]
    assert "confusion_matrix.png" in artifacts
    assert tuned_store.client.list_artifacts(child.info.run_id) == []


def test_register_model_ranks_runs_with_a_model_and_never_a_child(tuned_store):
    parent, children = split_runs(tuned_store)
    result = tuned_store.run("register_model.py")
    assert_clean(result)
    assert "runs with a logged model, by test_f1" in result.stdout
    leaderboard = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(leaderboard) == 4  # stump, forest, network and the search: no trial
    assert not any("trial-" in line for line in leaderboard)
    champion = tuned_store.client.get_model_version_by_alias("breast-cancer-classifier", "champion")
    assert champion.run_id not in {c.info.run_id for c in children}

    # Ranked by the trials' own score, the search competes once, through its parent.
    # (In this process: the same main as the command line, without an interpreter start.)
    by_cv = tuned_store.call("register_model.py", "--metric", "cv_f1", "--alias", "best-search")
    assert by_cv.returncode == 0, by_cv.stderr
    (only,) = [line for line in by_cv.stdout.splitlines() if line.startswith("  1.")]
    assert "search" in only and "Top 1 run " in by_cv.stdout
    best_search = tuned_store.client.get_model_version_by_alias(
        "breast-cancer-classifier", "best-search"
    )
    assert best_search.run_id == parent.info.run_id
