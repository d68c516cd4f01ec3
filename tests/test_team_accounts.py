"""Accounts on a team server: a reader may look and load the champion, but not promote or delete.

One real `tracking_server.sh --app-name basic-auth` on a free loopback port, with the
repository's basic_auth.ini (a new account sees nothing until granted), on this test's copy of
the session's trained store (runs "stump", "forest" and "network"). The admin works through
MLflow's client and the basic-auth app's REST API; the analyst runs the scripts as a reader
would, signed in with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, and reads over real
HTTP.
team-server/exposing.md ("Accounts and roles") tells the same story through the promotion gate, and
tests/test_docs.py runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from conftest import (
    DATA,
    PYTHON,
    REPO,
    assert_clean,
    base_env,
    free_port,
    wait_for_http,
)

MODEL_NAME = "breast-cancer-classifier"
PROMOTION_EXPERIMENT = "breast-cancer-promotion"
ADMIN = ("admin", "admin-password-for-tests")
ANALYST = ("analyst", "analyst-password-for-tests")
REFUSED = (
    "error: MLflow: permission denied (HTTP 403) for account 'analyst': {}; an admin can grant it"
)


@dataclass
class AuthServer:
    url: str
    process: object

    def rest(self, method: str, endpoint: str, account, **kwargs) -> requests.Response:
        """One request to MLflow's REST API, signed in as `account` (None: anonymous)."""
        return requests.request(
            method, f"{self.url}/api/2.0/mlflow/{endpoint}", auth=account, timeout=30, **kwargs
        )

    def admin(self, endpoint: str, body: dict, version: str = "3.0") -> dict:
        """One call to the basic-auth app's REST API as the admin: accounts, roles, grants.

        The endpoints of AuthServiceClient (team-server/exposing.md), called directly: importing that
        client in this process would import MLflow's server, and its deprecation warning.
        """
        url = f"{self.url}/api/{version}/mlflow/{endpoint}"
        answer = requests.post(url, json=body, auth=ADMIN, timeout=30)
        assert answer.status_code == 200, f"{endpoint}: {answer.status_code} {answer.text}"
        return answer.json()

    def give_analyst_role(self, name: str, grants: list[tuple[str, str, str]]) -> None:
        """A role in the default workspace with these grants, assigned to the analyst."""
        role = self.admin("roles/create", {"workspace": "default", "name": name})["role"]
        for resource_type, resource, permission in grants:
            grant = {"resource_type": resource_type, "resource_pattern": resource}
            self.admin(
                "roles/permissions/add", {"role_id": role["id"], **grant, "permission": permission}
            )
        self.admin("roles/assign", {"username": ANALYST[0], "role_id": role["id"]})


@pytest.fixture
def auth_server(trained_store, start_process, tmp_path) -> AuthServer:
    port = free_port()
    env = {
        **trained_store.env,
        "PORT": str(port),
        "BACKEND_STORE_URI": trained_store.uri,
        "ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "MLFLOW_AUTH_CONFIG_PATH": str(REPO / "team-server" / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-key-for-this-test-only",
        # What a reader's shell may say; tracking_server.sh must override it for the server.
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
    }
    env.pop("MLFLOW_TRACKING_URI")
    log = tmp_path / "server.log"
    # The server's working folder is tmp_path: basic_auth.db, the accounts, lands there.
    process = start_process(
        [REPO / "team-server" / "tracking_server.sh", "--app-name", "basic-auth"],
        env=env,
        cwd=tmp_path,
        log=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()}") from None
    return AuthServer(url, process)


@pytest.fixture
def admin_client(auth_server, monkeypatch) -> MlflowClient:
    """This test process signs in as the admin: MLflow's clients read these two variables."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    return MlflowClient(tracking_uri=auth_server.url, registry_uri=auth_server.url)


def run_as_analyst(server: AuthServer, laptop: Path, start_process, *commands: list[str]):
    """Scripts run the way the page runs them, signed in as the analyst, side by side.

    Each result is the exit status and the output, stdout and stderr as a terminal shows them.
    """
    env = {
        **base_env(),
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": ANALYST[0],
        "MLFLOW_TRACKING_PASSWORD": ANALYST[1],
    }
    started = []
    for script, *args in commands:
        log = laptop.parent / f"analyst-{time.monotonic_ns()}.log"
        process = start_process([PYTHON, REPO / script, *args], env=env, cwd=laptop, log=log)
        started.append((process, log))
    results = []
    for process, log in started:
        process.wait(timeout=240)
        output = log.read_text()
        assert_clean(SimpleNamespace(stdout=output, stderr=""))
        results.append((process.returncode, output))
    return results


def refused_with(result, needs: str) -> None:
    """Exit status 1, and the one line that names the missing permission: nothing else."""
    returncode, output = result
    assert returncode == 1 and output == REFUSED.format(needs) + "\n", output


def test_a_reader_loads_the_champion_but_cannot_promote_or_delete(
    auth_server, admin_client, start_process, tmp_path
):
    server, client = auth_server, admin_client

    # tracking_server.sh turned model deserialization off in the server, whatever the shell said,
    # and the server still serves the UI and the REST API (all of this test runs against it).
    environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    assert b"MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false" in environ
    ui = requests.get(server.url, auth=ADMIN, timeout=30)
    assert ui.status_code == 200 and "<title>MLflow</title>" in ui.text

    # The admin registers two versions of the model, and the champion is version 2 (the forest).
    runs = {
        run.info.run_name: run
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id])
    }
    client.create_registered_model(MODEL_NAME)
    for version, run_name in [("1", "stump"), ("2", "forest")]:
        run = runs[run_name]
        created = client.create_model_version(
            MODEL_NAME,
            f"models:/{model_id_of(client, run)}",
            run.info.run_id,
            model_id=model_id_of(client, run),
        )
        assert created.version == version
    client.set_registered_model_alias(MODEL_NAME, "champion", "2")
    promotion_id = client.create_experiment(PROMOTION_EXPERIMENT)
    forest = runs["forest"]
    forest_experiment = forest.info.experiment_id
    # The REST API answers the admin: runs, the registered model, its alias.
    search = server.rest("POST", "runs/search", ADMIN, json={"experiment_ids": [forest_experiment]})
    assert {r["info"]["run_name"] for r in search.json()["runs"]} == {"stump", "forest"}
    model = server.rest("GET", "registered-models/get", ADMIN, params={"name": MODEL_NAME})
    assert model.json()["registered_model"]["aliases"] == [{"alias": "champion", "version": "2"}]
    alias = {"name": MODEL_NAME, "alias": "champion"}
    champion_run = server.rest("GET", "registered-models/alias", ADMIN, params=alias).json()
    assert champion_run["model_version"]["run_id"] == forest.info.run_id

    def champion() -> str:
        return client.get_model_version_by_alias(MODEL_NAME, "champion").version

    # A new account sees nothing (basic_auth.ini: default_permission = NO_PERMISSIONS)...
    server.admin("users/create", {"username": ANALYST[0], "password": ANALYST[1]}, version="2.0")
    by_name = {"experiment_name": "breast-cancer-random-forest"}
    assert server.rest("GET", "experiments/get-by-name", ANALYST, params=by_name).status_code == 403
    assert server.rest("GET", "registered-models/alias", ANALYST, params=alias).status_code == 403

    # ...until the admin gives it the readers' role, as team-server/exposing.md does.
    experiments = [forest_experiment, runs["network"].info.experiment_id, promotion_id]
    server.give_analyst_role(
        "breast-cancer-readers",
        [("experiment", experiment_id, "READ") for experiment_id in experiments]
        + [("registered_model", MODEL_NAME, "READ")],
    )

    # The analyst can search the runs, open the UI, and load the champion (predict.py, below)...
    search = server.rest(
        "POST", "runs/search", ANALYST, json={"experiment_ids": [forest_experiment]}
    )
    assert search.status_code == 200
    assert {r["info"]["run_name"] for r in search.json()["runs"]} == {"stump", "forest"}
    ui = requests.get(server.url, auth=ANALYST, timeout=30)
    assert ui.status_code == 200 and "<title>MLflow</title>" in ui.text
    anonymous = requests.get(server.url, timeout=30)
    assert anonymous.status_code == 401  # the browser then asks for a name and password
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    # ...but not delete a run...
    delete = {"run_id": forest.info.run_id}
    assert server.rest("POST", "runs/delete", ANALYST, json=delete).status_code == 403
    # ...nor register a version...
    register = {"name": MODEL_NAME, "source": f"models:/{model_id_of(client, forest)}"}
    assert server.rest("POST", "model-versions/create", ANALYST, json=register).status_code == 403
    # ...nor promote, through the gate or by roll back: one line each, and the alias stays put.
    predicted, through_gate, rollback = run_as_analyst(
        server,
        laptop,
        start_process,
        ["predict.py", "--data", str(DATA), "--output", "p.csv"],
        ["register_model.py", "--run-name", "stump"],
        ["register_model.py", "--version", "1"],
    )
    assert predicted[0] == 0 and "Wrote 455 predictions to p.csv" in predicted[1], predicted
    predictions = pd.read_csv(laptop / "p.csv")["prediction"]
    assert len(predictions) == 455 and set(predictions) <= {"benign", "malignant"}
    refused_with(through_gate, "creating a run needs EDIT on its experiment")
    assert client.search_runs([promotion_id]) == []  # the gate recorded no decision
    # A roll back records its decision run before the alias moves: refused there first.
    refused_with(rollback, "creating a run needs EDIT on its experiment")
    assert champion() == "2"
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 2

    # The admin grants the promoters' role: EDIT where promoting writes. The same command works.
    server.give_analyst_role(
        "breast-cancer-promoters",
        [
            ("experiment", promotion_id, "EDIT"),
            ("logged_model", "*", "EDIT"),
            ("registered_model", MODEL_NAME, "EDIT"),
        ],
    )
    ((returncode, output),) = run_as_analyst(
        server, laptop, start_process, ["register_model.py", "--version", "1"]
    )
    assert returncode == 0 and "Alias 'champion' moved: version 2 -> version 1." in output, output
    assert champion() == "1"

    # Promoters still cannot log runs where the models are trained.
    create = {"experiment_id": forest_experiment}
    assert server.rest("POST", "runs/create", ANALYST, json=create).status_code == 403

    # EDIT does not delete; MANAGE on the experiment does.
    assert server.rest("POST", "runs/delete", ANALYST, json=delete).status_code == 403
    assert client.get_run(forest.info.run_id).info.lifecycle_stage == "active"
    grant = {
        "resource_type": "experiment",
        "resource_id": forest_experiment,
        "permission": "MANAGE",
    }
    server.admin("users/permissions/grant", {"username": ANALYST[0], **grant})
    assert server.rest("POST", "runs/delete", ANALYST, json=delete).status_code == 200
    assert client.get_run(forest.info.run_id).info.lifecycle_stage == "deleted"


def model_id_of(client: MlflowClient, run) -> str:
    (model,) = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    return model.model_id
