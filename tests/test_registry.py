"""register_model.py: promote the truly best run, never duplicate, roll back on request."""

from __future__ import annotations

import pytest

from conftest import assert_clean

MODEL = "breast-cancer-classifier"
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


def test_promote_rerun_worse_run_and_roll_back(trained_store):
    # A weak forest, a normal one, and a network: three runs, two experiments.
    store = trained_store

    result = store.run("register_model.py")
    assert_clean(result)
    best = truly_best(store)
    version = champion(store)
    assert version_number(version) == "1"
    assert version.run_id == best.info.run_id
    assert version.tags["source_run_name"] == best.info.run_name
    assert best.info.run_id in version.description
    assert "Top 3 runs with a logged model, by test_f1" in result.stdout
    assert result.stdout.strip().endswith(f"Model URI: models:/{MODEL}@champion")
    # The leaderboard lists the runs best first, as the store ranked them.
    leaderboard = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert best.info.run_name in leaderboard[0]

    # Re-running registers nothing new and says so.
    again = store.run("register_model.py")
    assert "already version 1" in again.stdout
    assert len(versions(store)) == 1

    # A worse later run does not move the champion.
    store.run("train_rfc.py", "--n-estimators", "1", "--max-depth", "1", "--run-name", "worse")
    store.run("register_model.py")
    assert len(versions(store)) == 1
    assert champion(store).run_id == best.info.run_id

    # Promote another run by id: version 2, then roll back to version 1.
    stump = next(r for r in all_runs(store) if r.info.run_name == "stump")
    promoted = store.run("register_model.py", "--run-id", stump.info.run_id)
    assert "moved: version 1 -> version 2" in promoted.stdout
    assert champion(store).run_id == stump.info.run_id

    rolled_back = store.run("register_model.py", "--version", "1")
    assert "moved: version 2 -> version 1" in rolled_back.stdout
    assert version_number(champion(store)) == "1"

    # An unknown version or run is refused, and the alias stays where it was.
    for args in (["--version", "9"], ["--run-id", "0123456789abcdef"]):
        refused = store.run("register_model.py", *args, check=False)
        assert refused.returncode == 1
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "left unchanged" in refused.stderr
        assert version_number(champion(store)) == "1"


def test_metric_mode_and_experiment_choose_the_ranking(trained_store):
    store = trained_store

    # Lowest accuracy in the forest experiment only: the stump, whatever the network scored.
    store.run(
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
    result = store.run("register_model.py", *args, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == expected.format(uri=store.uri)
