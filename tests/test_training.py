"""The training scripts, run exactly as the README says, checked through the MLflow store."""

from __future__ import annotations

import os
import shutil
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import skops.io
from mlflow.artifacts import download_artifacts
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from conftest import DATA, FAST_ANN, FAST_RFC, REPO, assert_clean, base_env, run_command

RFC_EXPERIMENT = "breast-cancer-random-forest"
ANN_EXPERIMENT = "breast-cancer-neural-network"

SCRIPTS = {
    "train_rfc.py": {
        "experiment": RFC_EXPERIMENT,
        "args": [*FAST_RFC, "--max-depth", "4", "--min-samples-leaf", "2"],
        "params": {
            "n_estimators": "20",
            "max_depth": "4",
            "min_samples_leaf": "2",
            "max_features": "sqrt",
            "random_state": "42",
        },
        "trusted": ["numpy.dtype", "sklearn.tree._tree.Tree"],
    },
    "train_ann.py": {
        "experiment": ANN_EXPERIMENT,
        "args": [*FAST_ANN, "--alpha", "0.01", "--activation", "tanh"],
        "params": {
            "hidden_layer_sizes": "(16,)",
            "alpha": "0.01",
            "learning_rate_init": "0.01",
            "max_iter": "500",
            "activation": "tanh",
            "random_state": "42",
        },
        "trusted": ["numpy.dtype", "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"],
    },
}
METRICS = {"test_accuracy", "test_precision", "test_recall", "test_f1", "test_roc_auc"}
# What a logged pipeline imports to load and serve; each must be logged at its installed version.
PINNED = [
    "mlflow",
    "scikit-learn",
    "skops",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "threadpoolctl",
    "pyarrow",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def only_run(store, experiment):
    runs = store.experiment_runs(experiment)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_run_records_params_metrics_figure_data_and_a_model_that_reproduces_its_score(
    store, script
):
    spec = SCRIPTS[script]
    result = store.run(script, *spec["args"], "--run-name", "checked")
    assert_clean(result)
    run = only_run(store, spec["experiment"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "checked"
    assert run.info.run_id in result.stdout and "checked" in result.stdout

    # Every hyperparameter the reader set, plus where the data came from.
    for key, value in spec["params"].items():
        assert run.data.params[key] == value, key
    assert run.data.params["data"] == "breast_cancer_train.csv"
    assert run.data.params["target"] == "diagnosis"
    assert run.data.params["test_size"] == "0.2"
    assert run.data.tags["script"] == script

    assert set(run.data.metrics) == METRICS
    assert all(0 <= value <= 1 for value in run.data.metrics.values()), run.data.metrics
    for name, value in run.data.metrics.items():
        assert f"{name:<15}{value:.4f}" in result.stdout

    # The confusion matrix is a real PNG in the run, and nothing was left in the cwd.
    png = download_artifacts(
        run_id=run.info.run_id, artifact_path="confusion_matrix.png", tracking_uri=store.uri
    )
    with open(png, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    assert sorted(p.name for p in store.root.iterdir()) == ["mlflow.db", "mlruns"]

    # The training split is recorded as an MLflow dataset with its target.
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "breast_cancer_train"
    assert dataset_input.tags[0].value == "training"
    assert (
        '"diagnosis"' in dataset_input.dataset.profile
        or "diagnosis" in dataset_input.dataset.schema
    )

    # The model loads through pyfunc and scores the same test split as logged.
    mlflow.set_tracking_uri(store.uri)
    (logged_model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert logged_model.source_run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(f"models:/{logged_model.model_id}")
    frame = pd.read_csv(DATA)
    X, y = frame.drop(columns="diagnosis"), frame["diagnosis"]
    _, X_test, _, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)
    assert accuracy_score(y_test, model.predict(X_test)) == pytest.approx(
        run.data.metrics["test_accuracy"]
    )
    assert [c.name for c in model.metadata.get_input_schema().inputs] == list(X.columns)

    # Stored with skops, trusting exactly the types the model needs and no more.
    local = download_artifacts(artifact_uri=logged_model.artifact_location)
    flavor = model.metadata.flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert flavor["skops_trusted_types"] == spec["trusted"]
    untrusted = skops.io.get_untrusted_types(file=os.path.join(local, flavor["pickled_model"]))
    assert untrusted == spec["trusted"]

    # Its whole environment pinned: every package the model imports, at this environment's version.
    logged = dict(line.split("==") for line in Path(local, "requirements.txt").read_text().split())
    for package in PINNED:
        assert logged.get(package) == version(package), (package, logged.get(package))


def test_the_two_model_families_land_in_two_experiments(trained_store):
    # trained_store: two train_rfc.py runs and one train_ann.py run, all with default experiments.
    forests = trained_store.experiment_runs(RFC_EXPERIMENT)
    (network,) = trained_store.experiment_runs(ANN_EXPERIMENT)
    assert [r.info.run_name for r in forests] == ["stump", "forest"]
    assert network.info.run_name == "network"
    assert forests[0].info.experiment_id != network.info.experiment_id
    assert {r.data.tags["model_family"] for r in forests} == {"random_forest"}
    assert network.data.tags["model_family"] == "neural_network"


def test_numeric_labels_are_category_names_and_experiment_name_chooses_the_experiment(
    store, tmp_path
):
    frame = pd.read_csv(DATA)
    frame["diagnosis"] = (frame["diagnosis"] == "malignant").astype(int)  # 1 = malignant
    csv = tmp_path / "numeric.csv"
    frame.to_csv(csv, index=False)
    result = store.run(
        "train_rfc.py", *FAST_RFC, "--data", str(csv), "--experiment-name", "by-name"
    )
    assert_clean(result)
    run = only_run(store, "by-name")
    assert store.client.get_experiment_by_name(RFC_EXPERIMENT) is None
    mlflow.set_tracking_uri(store.uri)
    (logged_model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    model = mlflow.pyfunc.load_model(f"models:/{logged_model.model_id}")
    assert set(model.predict(frame.drop(columns="diagnosis"))) == {"0", "1"}


def test_a_copied_script_runs_alone_and_logs_next_to_itself_from_any_directory(
    tmp_path, python_without_the_tutorial
):
    """Without MLFLOW_TRACKING_URI, the store is mlflow.db next to the script, whatever the cwd.

    The script is copied alone, as a reader copies a lesson into a project of their own, whose
    Python has the pinned packages but not this tutorial's modules (input_checks.py, ...): it
    must run there, and never write to this checkout.
    """
    project = tmp_path / "my project"
    (project / "data").mkdir(parents=True)
    shutil.copy(REPO / "train_rfc.py", project / "train_rfc.py")
    shutil.copy(DATA, project / "data" / DATA.name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = base_env()
    for cwd in (project, elsewhere):
        script = str(project / "train_rfc.py")
        result = run_command([python_without_the_tutorial, script, *FAST_RFC], env=env, cwd=cwd)
        assert_clean(result)
        # No Makefile beside the copy: it names the command that shows its own store.
        db = project / "mlflow.db"
        light_ui = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri"
        assert (
            f"run `{light_ui} 'sqlite:///{db}' --workers 1 --uvicorn-opts '--lifespan off'`"
            in result.stdout
        )
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    assert sorted(p.name for p in project.iterdir()) == [
        "data",
        "mlflow.db",
        "mlruns",
        "train_rfc.py",
    ]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(RFC_EXPERIMENT)
    assert experiment.artifact_location == (project / "mlruns" / RFC_EXPERIMENT).as_uri()
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    for run in runs:
        assert (
            project
            / "mlruns"
            / RFC_EXPERIMENT
            / run.info.run_id
            / "artifacts"
            / "confusion_matrix.png"
        ).is_file()


def test_the_network_lesson_runs_alone_on_a_csv_elsewhere_with_three_string_classes(
    tmp_path, python_without_the_tutorial
):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "train_ann.py", project / "train_ann.py")
    frame = pd.read_csv(DATA).iloc[:, :4]
    frame["size"] = pd.qcut(frame["mean_radius"], 3, labels=["small", "medium", "large"])
    frame["count"] = range(len(frame))  # an integer column must be fine too
    csv = tmp_path / "mine.csv"
    frame.to_csv(csv, index=False)
    args = [*FAST_ANN, "--data", str(csv), "--target", "size", "--max-iter", "1000"]
    result = run_command(
        [python_without_the_tutorial, "train_ann.py", *args], env=base_env(), cwd=project
    )
    assert_clean(result)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name(ANN_EXPERIMENT).experiment_id])
    assert run.info.status == "FINISHED" and set(run.data.metrics) == METRICS
    assert all(0 <= value <= 1 for value in run.data.metrics.values())
    assert run.data.params["data"] == "mine.csv"


# --- Bad input: one line on stderr, a non-zero exit, and no run left RUNNING --------------


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return str(path)


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


BAD_INPUTS = {
    "missing file": (lambda d: ["--data", str(d / "nope.csv")], "data file not found"),
    "empty file": (lambda d: ["--data", write(d, "empty.csv", "")], "is empty"),
    "not a csv": (
        lambda d: ["--data", write(d, "image.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50)],
        "is not a readable CSV file",
    ),
    "target absent": (
        lambda d: ["--target", "label"],
        "has no column 'label' (columns: mean_radius, mean_texture",
    ),
    "numbers mixed with text": (
        lambda d: [
            "--data",
            write(
                d,
                "text.csv",
                csv_text(
                    pd.read_csv(DATA)
                    .astype({"mean_radius": object})
                    .assign(mean_radius=lambda f: f["mean_radius"].where(f.index != 3, "unknown"))
                ),
            ),
        ],
        "column 'mean_radius' holds numbers and text ('unknown' on line 5)",
    ),
    "one class": (
        lambda d: [
            "--data",
            write(d, "one.csv", csv_text(pd.read_csv(DATA).assign(diagnosis="benign"))),
        ],
        "has only one class ('benign')",
    ),
    "zero trees": (
        lambda d: ["--n-estimators", "0"],
        "--n-estimators: must be a whole number >= 1",
    ),
    "too few rows for the split": (
        lambda d: [
            "--data",
            write(d, "tiny.csv", csv_text(pd.read_csv(DATA).groupby("diagnosis").head(2))),
        ],
        "has 4 rows; --test-size 0.2 holds out 1 and trains on 3, but each side needs at least 2",
    ),
    "continuous target": (
        lambda d: [
            "--data",
            write(d, "sizes.csv", csv_text(pd.read_csv(DATA).drop(columns="diagnosis"))),
            "--target",
            "mean_area",
        ],
        "distinct values in 455 rows: it looks continuous",
    ),
    "negative test size": (
        lambda d: ["--test-size", "1.5"],
        "--test-size: must be between 0 and 1",
    ),
}


def assert_one_error_line_and_nothing_running(store, code, stderr, expected):
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert expected in lines[0]
    assert "Traceback" not in stderr
    runs = store.client.search_runs([e.experiment_id for e in store.client.search_experiments()])
    assert [r for r in runs if r.info.status == "RUNNING"] == []


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_clear_line_and_leaves_no_running_run(store, tmp_path, case):
    make_args, expected = BAD_INPUTS[case]
    result = store.call("train_rfc.py", *make_args(tmp_path))
    assert_one_error_line_and_nothing_running(store, result.returncode, result.stderr, expected)


def test_bad_input_from_the_shell_is_one_line_too(store, tmp_path):
    """The command line itself, for a bad file and a bad flag: Python prints nothing more."""
    for case in ("missing file", "zero trees"):
        make_args, expected = BAD_INPUTS[case]
        result = store.run("train_rfc.py", *make_args(tmp_path), check=False)
        assert_one_error_line_and_nothing_running(store, result.returncode, result.stderr, expected)
    assert result.returncode == 2  # argparse's exit code for a bad flag


def test_every_problem_of_a_table_is_named_at_once_and_what_the_pipeline_handles_is_not(
    store, tmp_path
):
    """Text, booleans, whole numbers and empty cells train; an ID, a mixed column, an empty
    column and unlabelled rows are each named, with the value as the CSV spells it."""
    table = pd.read_csv(DATA).head(100)
    table.insert(0, "sample", [f"S-{n:03d}" for n in range(100)])  # text, distinct: an ID
    table["lab"] = ["north", "south", None, "east"] * 25  # text, with empty cells: fine
    table["rechecked"] = [True, False] * 50  # booleans: fine
    table["visits"] = range(3, 103)  # whole numbers... distinct in every row: an ID too
    table["note"] = None  # empty in every row
    table["mean_texture"] = table["mean_texture"].astype(object)
    table.loc[7, "mean_texture"] = "unknown"  # numbers and text ("n/a" would be an empty cell)
    table.loc[[10, 11], "diagnosis"] = None  # rows without a label
    path = write(tmp_path, "raw.csv", csv_text(table))
    result = store.call("train_rfc.py", "--data", path, "--n-estimators", "5")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {path} has 5 problems:",
        "  column 'sample' looks like an ID (a different value in each of its 100 rows, e.g. "
        "'S-000'): leave it out with --drop sample, or keep it as a feature with --keep sample",
        "  column 'mean_texture' holds numbers and text ('unknown' on line 9): correct those cells, "
        "or empty them to mark a missing value",
        "  column 'visits' looks like an ID (a different value in each of its 100 rows, e.g. "
        "'3'): leave it out with --drop visits, or keep it as a feature with --keep visits",
        "  column 'note' is empty in every row: leave it out with --drop note",
        "  the target 'diagnosis' is empty on 2 row(s) (first: line 12): drop those rows or fill "
        "in their labels",
    ]
    assert store.client.search_experiments(filter_string="name != 'Default'") == []

    fixed = table.drop(columns=["sample", "note"]).dropna(subset=["diagnosis"])
    fixed.loc[7, "mean_texture"] = None
    path = write(tmp_path, "fixed.csv", csv_text(fixed))
    result = store.run("train_rfc.py", "--data", path, "--n-estimators", "5", "--keep", "visits")
    assert_clean(result)
    (run,) = store.experiment_runs("breast-cancer-random-forest")
    assert run.data.params["category_columns"] == "lab, rechecked"
    assert run.data.params["numeric_columns"].endswith("worst_fractal_dimension, visits")


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--alpha", "-1"], "--alpha: must be a number >= 0"),
        (["--hidden-layers", "64,x"], "--hidden-layers: must be sizes >= 1"),
        (["--max-iter", "0"], "--max-iter: must be a whole number >= 1"),
    ],
)
def test_bad_network_settings_are_refused_before_any_run(store, args, expected):
    result = store.call("train_ann.py", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr
    assert store.client.get_experiment_by_name(ANN_EXPERIMENT) is None
