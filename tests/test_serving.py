"""serve_model.sh and predict.py: the served champion answers like the loaded one."""

from __future__ import annotations

import io
import json
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import PYTHON, REPO, assert_clean, base_env, free_port, run_command, wait_for_http

MODEL_URI = "models:/breast-cancer-classifier@champion"
SAMPLE_REQUEST = REPO / "data" / "sample_request.json"
SAMPLE_ROWS = REPO / "data" / "sample_rows.csv"


def post(url: str, body: bytes):
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def champion_store(trained_store):
    """A store whose best run is registered as the champion."""
    trained_store.call("register_model.py")
    return trained_store


@pytest.fixture
def bad_rows(tmp_path):
    rows = pd.read_csv(SAMPLE_ROWS)
    missing = tmp_path / "missing_column.csv"
    rows.drop(columns="mean_radius").to_csv(missing, index=False)
    text = tmp_path / "text_in_numeric.csv"
    rows.assign(mean_area="large").to_csv(text, index=False)
    # What both paths say, word for word: the rows are checked against the signature first.
    return {
        missing: "error: input does not fit the model: it lacks mean_radius",
        text: "error: input does not fit the model: column 'mean_area' holds 'large', not a number",
    }


def test_the_server_survives_a_malformed_body_and_both_paths_refuse_bad_rows_in_one_line(
    champion_store, start_process, tmp_path, bad_rows
):
    """What chapter 6's blocks do not show. They run serve_model.sh, curl, and predict.py with
    and without --url, and compare the answers with the same text; a busy port is
    test_a_busy_port_is_one_error_line_for_every_server's."""
    store = champion_store
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**store.env, "PORT": str(port)}
    server = start_process([str(REPO / "serve_model.sh")], env=env, cwd=REPO, log=tmp_path / "log")
    wait_for_http(f"{url}/ping", server)

    # A malformed body is a 400, and the server keeps answering afterwards.
    status, answer = post(f"{url}/invocations", b'{"dataframe_split": ')
    assert status == 400
    assert answer["error_code"] == "BAD_REQUEST"
    status, answer = post(f"{url}/invocations", SAMPLE_REQUEST.read_bytes())
    assert status == 200 and len(answer["predictions"]) == len(pd.read_csv(SAMPLE_ROWS))

    # Input that does not fit the signature: one clear line from both paths. (In this process:
    # the same main as the command line, without four more interpreter starts.)
    for path, expected in bad_rows.items():
        for extra in ([], ["--url", url]):
            result = store.call("predict.py", "--data", str(path), *extra)
            assert result.returncode == 1, result.stderr
            assert result.stderr.strip() == expected

    # Extra columns (the label, here) are left out by both paths alike: the server never sees
    # them, so its log has no "extra inputs" note.
    labelled = REPO / "data" / "breast_cancer_eval.csv"
    here = store.call("predict.py", "--data", str(labelled))
    there = store.call("predict.py", "--data", str(labelled), "--url", url)
    assert here.stdout == there.stdout and here.returncode == there.returncode == 0
    assert "extra inputs" not in (tmp_path / "log").read_text()

    # A label server asked for probabilities: one line saying how to start one that answers them.
    result = store.call("predict.py", "--proba", "--url", url)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: the server at {url} answers labels, not probabilities; "
        "start it with ANSWER=probabilities ./serve_model.sh"
    )


def test_predict_writes_a_csv_file_and_ignores_extra_columns(champion_store, tmp_path):
    output = tmp_path / "predictions.csv"
    data = REPO / "data" / "breast_cancer.csv"  # carries the label column, which is ignored
    result = champion_store.run("predict.py", "--data", str(data), "--output", str(output))
    assert_clean(result)
    assert result.stdout.strip() == f"Wrote 569 predictions to {output}"
    predictions = pd.read_csv(output)["prediction"]
    truth = pd.read_csv(data)["diagnosis"]
    assert set(predictions) == {"benign", "malignant"}
    assert (predictions == truth).mean() > 0.9


def test_predict_and_serve_without_a_champion_say_so_in_one_line(store):
    result = store.run("predict.py", check=False)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == f"error: no {MODEL_URI} in {store.uri}; run 'python register_model.py' first"

    served = run_command([str(REPO / "serve_model.sh")], env=store.env, cwd=REPO, check=False)
    assert served.returncode == 1
    assert served.stderr.strip() == (
        f"error: no {MODEL_URI} in {store.uri}; run 'python register_model.py' first"
    )
    assert served.stdout == ""


def test_predict_via_url_without_a_server_is_one_line(store):
    url = f"http://127.0.0.1:{free_port()}"
    result = store.call("predict.py", "--url", url)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: no model server at {url}")


def test_a_flag_is_one_error_line_pointing_to_the_environment_variable(store):
    result = run_command(
        [str(REPO / "serve_model.sh"), "--port", "5011"], env=store.env, cwd=store.root, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: serve_model.sh takes no flags (got --port); settings are environment variables, "
        "e.g. PORT=5011 ./serve_model.sh (see --help)"
    ]


def test_a_busy_port_is_one_error_line_for_every_server(champion_store):
    """make ui, make serve / serve_model.sh and tracking_server.sh, on a port already taken."""
    store = champion_store
    env = {**store.env, "VIRTUAL_ENV": str(Path(PYTHON).parent.parent)}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        expected = f"port {port}"
        commands = {
            "tracking_server.sh": [str(REPO / "team-server" / "tracking_server.sh")],
            "make ui": ["make", "-s", "-C", str(REPO), "ui", f"UI_PORT={port}"],
            "make serve": ["make", "-s", "-C", str(REPO), "serve", f"SERVE_PORT={port}"],
        }
        for what, command in commands.items():
            result = run_command(
                command, env={**env, "PORT": str(port)}, cwd=store.root, check=False, timeout=60
            )
            assert result.returncode != 0, what
            errors = [line for line in result.stderr.splitlines() if not line.startswith("make")]
            assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], (
                what,
                result.stderr,
            )
            assert "Traceback" not in result.stderr and "Errno" not in result.stderr


def test_predict_and_serve_on_a_folder_without_a_store_say_so_and_create_nothing(tmp_path):
    """Without MLFLOW_TRACKING_URI, the store is mlflow.db beside the scripts: absent, it stays so."""
    folder = tmp_path / "no store yet"
    folder.mkdir()
    scripts = "predict.py check_model.py input_checks.py server_errors.py tutorial_store.py"
    scripts = f"{scripts} serve_model.sh tutorial_shell.sh".split()
    for name in scripts:
        shutil.copy2(REPO / name, folder / name)
    (folder / "data").mkdir()
    shutil.copy(SAMPLE_ROWS, folder / "data" / SAMPLE_ROWS.name)
    env = base_env()
    for command in ([PYTHON, "predict.py"], ["./serve_model.sh"]):
        result = run_command(command, env=env, cwd=folder, check=False)
        assert result.returncode == 1, result
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: no store at {folder / 'mlflow.db'}; train"), line
        assert " INFO " not in result.stdout + result.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(["data", *scripts])


def test_the_champion_answers_its_probabilities_here_and_over_http_alike(
    champion_store, start_process, tmp_path
):
    """predict.py --proba loads the champion once and adds a column per class; ANSWER=probabilities
    serves the same checked version saved again with pyfunc_predict_fn="predict_proba"."""
    store = champion_store
    here = store.call("predict.py", "--proba")
    assert here.returncode == 0, here.stderr
    answers = pd.read_csv(io.StringIO(here.stdout))
    assert list(answers.columns) == ["prediction", "benign", "malignant"]
    assert answers[["benign", "malignant"]].sum(axis=1).round(3).eq(1).all(), answers
    assert (answers["prediction"] == answers[["benign", "malignant"]].idxmax(axis=1)).all()
    # A threshold of 0 on the positive class calls every row malignant; 0.75 only the surer.
    everyone = store.call("predict.py", "--threshold", "0")
    assert everyone.stdout.split()[1:] == ["malignant"] * len(answers)
    surest = store.call("predict.py", "--threshold", "0.75")
    expected = ["malignant" if p >= 0.75 else "benign" for p in answers["malignant"]]
    assert surest.stdout.split()[1:] == expected

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **store.env,
        "PORT": str(port),
        "ANSWER": "probabilities",
        "SERVED_FOLDER": str(tmp_path),
    }
    server = start_process([str(REPO / "serve_model.sh")], env=env, cwd=REPO, log=tmp_path / "log")
    wait_for_http(f"{url}/ping", server)
    status, served = post(f"{url}/invocations", SAMPLE_REQUEST.read_bytes())
    assert status == 200
    assert [round(sum(row), 6) for row in served["predictions"]] == [1.0] * len(answers)
    there = store.call("predict.py", "--proba", "--url", url)
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    labels = store.call("predict.py", "--url", url)  # labels from the served probabilities
    assert labels.stdout.split()[1:] == list(answers["prediction"])
