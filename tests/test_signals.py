"""`kill`, a closed terminal or Ctrl-C never leave a run RUNNING.

A training run, a search and a gate's decision are each stopped midway, by SIGINT (Ctrl-C),
SIGTERM (`kill`, a scheduler, CI's timeout) or SIGHUP (a closed terminal): the script says so in
one line and exits with the shell's code for that signal (128 + its number), and every run it
had started ends FAILED, with an end time, keeping what was logged before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import RunStatus

from conftest import PYTHON, REPO

FAILED = RunStatus.to_string(RunStatus.FAILED)


def stop_midway(store, args, signum, started):
    """Run a script; once `started(client)` returns its run(s), send `signum`; return all."""
    process = subprocess.Popen(
        [PYTHON, str(REPO / args[0]), *args[1:]],
        env=store.env,
        cwd=store.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Each signal's default, even when this suite runs as a background job (`make test &`),
        # whose children inherit SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline, runs = time.monotonic() + 90, None
        while time.monotonic() < deadline and not runs and process.poll() is None:
            time.sleep(0.2)
            runs = started(store.client)
        assert runs, f"{args[0]} never got to the point of the signal"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, stderr, runs


def runs_of(client, experiment, **where):
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def training_has_begun(client):
    """The forest's run, once its training data is logged: the last write before fit()."""
    runs = runs_of(client, "breast-cancer-random-forest")
    return runs if runs and runs[0].inputs.dataset_inputs else None


def a_trial_is_running(client):
    """The search's parent and its trials, once one trial has finished and the next is on."""
    runs = runs_of(client, "breast-cancer-random-forest")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return runs if any(r.info.status == "FINISHED" for r in children) else None


def the_gate_is_deciding(client):
    """The decision run, once the challenger's evaluation has started inside it."""
    runs = runs_of(client, "breast-cancer-promotion")
    return runs if len(runs) >= 2 else None  # the decision and its first evaluation


def assert_stopped(code, stderr, signum, expected_line):
    assert code == 128 + signum, stderr
    # MLflow's own INFO lines ("Creating a new experiment") may come first; then only ours.
    assert [line for line in stderr.strip().splitlines() if " INFO " not in line] == [expected_line]


@pytest.mark.parametrize(
    "signum, line",
    [
        (signal.SIGINT, "error: interrupted (a run in progress was ended as FAILED)"),
        (signal.SIGTERM, "error: stopped by SIGTERM (a run in progress was ended as FAILED)"),
        (signal.SIGHUP, "error: stopped by SIGHUP (a run in progress was ended as FAILED)"),
    ],
)
def test_a_signal_during_training_ends_the_run_as_failed(store, signum, line):
    # Big enough that training is still going when the signal comes, small enough that it ends
    # soon after, even if the signal is acted on only once the trees in progress are built.
    args = ["train_rfc.py", "--n-estimators", "5000"]
    code, stderr, (run,) = stop_midway(store, args, signum, training_has_begun)
    assert_stopped(code, stderr, signum, line)
    run = store.client.get_run(run.info.run_id)
    assert run.info.status == FAILED and run.info.end_time
    assert run.data.params["n_estimators"] == "5000"  # what was logged before is kept


def a_wide_table(path, rows=20_000, columns=40):
    """Numbers enough that one pass of a wide network over them takes about a second."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(rows, columns))).add_prefix("x")
    table["label"] = np.where(table["x0"] + rng.normal(size=rows) > 0, "yes", "no")
    table.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "signum, line",
    [
        (signal.SIGINT, "error: interrupted (a run in progress was ended as FAILED)"),
        (signal.SIGTERM, "error: stopped by SIGTERM (a run in progress was ended as FAILED)"),
        (signal.SIGHUP, "error: stopped by SIGHUP (a run in progress was ended as FAILED)"),
    ],
)
def test_a_signal_inside_the_networks_fit_ends_the_run_as_failed(store, tmp_path, signum, line):
    """scikit-learn's MLP catches KeyboardInterrupt inside fit and returns a half-trained model
    as if it had finished: the signal must get past it, and nothing be logged as a model."""
    data = a_wide_table(tmp_path / "wide.csv")
    args = ["train_ann.py", "--data", data, "--target", "label", "--hidden-layers", "256,256"]
    args += ["--max-iter", "300", "--experiment-name", "wide"]

    def inside_fit(client):
        runs = runs_of(client, "wide")
        if runs and runs[0].inputs.dataset_inputs:  # the last write before fit()
            time.sleep(2)  # a few passes into fit, which takes minutes
            return runs
        return None

    started = time.monotonic()
    code, stderr, (run,) = stop_midway(store, args, signum, inside_fit)
    assert_stopped(code, stderr, signum, line)
    assert "Training interrupted by user" not in stderr
    assert time.monotonic() - started < 60  # stopped, not trained to the end
    run = store.client.get_run(run.info.run_id)
    assert run.info.status == FAILED and run.info.end_time
    assert "converged" not in run.data.tags  # set only once fit has returned
    experiment = store.client.get_experiment_by_name("wide")
    assert store.client.search_logged_models([experiment.experiment_id]) == []


def test_kill_during_a_search_ends_the_parent_and_its_trials(store):
    args = ["tune_rfc.py", "--trials", "40", "--folds", "5", "--run-name", "killed-search"]
    code, stderr, _ = stop_midway(store, args, signal.SIGTERM, a_trial_is_running)
    assert_stopped(
        code,
        stderr,
        signal.SIGTERM,
        "error: stopped by SIGTERM (a run in progress was ended as FAILED)",
    )
    runs = runs_of(store.client, "breast-cancer-random-forest")
    assert len(runs) >= 3  # the parent, a finished trial, the trial that was stopped
    assert {r.info.status for r in runs} <= {FAILED, "FINISHED"}
    assert all(r.info.end_time for r in runs)
    (parent,) = [r for r in runs if r.info.run_name == "killed-search"]
    assert parent.info.status == FAILED


def test_kill_during_a_gate_decision_ends_it_and_moves_nothing(trained_store):
    code, stderr, _ = stop_midway(
        trained_store, ["register_model.py"], signal.SIGTERM, the_gate_is_deciding
    )
    assert_stopped(
        code,
        stderr,
        signal.SIGTERM,
        "error: stopped by SIGTERM (a run in progress was ended as FAILED)",
    )
    runs = runs_of(trained_store.client, "breast-cancer-promotion")
    assert runs and all(r.info.status == FAILED and r.info.end_time for r in runs)
    assert trained_store.client.search_registered_models() == []  # nothing was registered
