"""rollout.py and webhook_receiver.py: a new champion reaches clients without a dropped request.

Real HAProxy, real `serve_model.sh` slots, a real tracking server sending real signed webhooks.
Clients keep posting the sample request through the front door during every swap; none may
fail, and each client must see the version header change exactly once. Every process the
scripts start (proxy, slots, receiver, server) is stopped by process group, pass or fail.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from conftest import PYTHON, REPO, assert_clean, free_port, wait_for_http

pytestmark = pytest.mark.skipif(
    not (shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists()),
    reason="apt-get install haproxy",
)
BODY = (REPO / "data" / "sample_request.json").read_bytes()
MODEL = "breast-cancer-classifier"


class Load:
    """`clients` keep-alive clients posting the sample request until stopped, each at most
    every `pause` seconds: a steady load that leaves the new slot the CPU to start.

    Each records the X-Model-Version of every answer; any non-200 answer or socket error is a
    failure. A client does not retry: a dropped connection counts. Idle between requests, its
    connection is what a reload must not cut.
    """

    def __init__(self, port: int, clients: int = 3, pause: float = 0.1):
        self.port, self.pause, self.failures = port, pause, []
        self.versions: list[list[str]] = [[] for _ in range(clients)]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(n,)) for n in range(clients)]

    def client(self, n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stopping.is_set():
            try:
                connection.request(
                    "POST", "/invocations", BODY, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(f"HTTP {response.status}")
                self.versions[n].append(response.getheader("X-Model-Version"))
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                connection.close()
            self.stopping.wait(self.pause)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        time.sleep(1)  # answers from the old version first
        return self

    def __exit__(self, *exc):
        time.sleep(1)  # and from the new one after
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def changes(self) -> list[list[str]]:
        """Each client's versions, repeats collapsed: [['1', '2']] * 3 is one change each."""
        return [[version for version, _ in itertools.groupby(seen)] for seen in self.versions]


def group_alive(group: int) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, 0)
        return any(
            stat.read_text().rpartition(")")[2].split()[2] == str(group)
            and stat.read_text().rpartition(")")[2].split()[0] != "Z"
            for stat in Path("/proc").glob("[0-9]*/stat")
            if stat.exists()
        )
    return False


@pytest.fixture
def rollout_folder(tmp_path):
    """rollout.py's folder; afterwards every process group named by its pid files is stopped."""
    folder = tmp_path / "rollout"
    yield folder
    groups = [int(pid.read_text()) for pid in folder.glob("*.pid")]
    for sig, patience in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        deadline = time.monotonic() + patience
        while any(map(group_alive, groups)) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not any(map(group_alive, groups)), "a proxy or slot outlived its test"


def front_door_version(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
            return response.headers["X-Model-Version"]
    except OSError:
        return None


def rollout_flags(folder: Path) -> tuple[list[str], int]:
    port = free_port()
    flags = ["--port", str(port), "--blue-port", str(free_port())]
    return [*flags, "--green-port", str(free_port()), "--folder", str(folder)], port


def test_rollout_and_rollback_drop_no_request_and_a_broken_version_never_serves(
    trained_store, rollout_folder
):
    store = trained_store
    flags, port = rollout_flags(rollout_folder)
    assert store.call("register_model.py").returncode == 0  # version 1, through the gate
    first = store.run("rollout/rollout.py", *flags)
    assert_clean(first)
    assert "Switched" in first.stdout and front_door_version(port) == "1"

    # A second version (the forest), made champion as a rollback would: one alias move.
    forest = next(r for r in store.experiment_runs("breast-cancer-random-forest")
                  if r.info.run_name == "forest")  # fmt: skip
    mlflow.set_tracking_uri(store.uri)
    model = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{forest.info.run_id}'", output_format="list",
        experiment_ids=[forest.info.experiment_id],
    )[0]  # fmt: skip
    assert mlflow.register_model(f"models:/{model.model_id}", MODEL).version in (2, "2")

    for new, old, slot in (("2", "1", "green"), ("1", "2", "blue")):  # roll out, roll back
        assert store.call("register_model.py", "--version", new).returncode == 0
        with Load(port) as load:
            result = store.run("rollout/rollout.py", *flags)
        assert_clean(result)
        assert f"starting it on the {slot} slot" in result.stdout
        assert load.failures == [], f"failed requests during the swap: {load.failures[:5]}"
        assert load.changes() == [[old, new]] * 3, load.changes()
        assert front_door_version(port) == new
        pids = sorted(path.name for path in rollout_folder.glob("*.pid"))
        assert pids == sorted(["haproxy.pid", f"{slot}.pid"]), "the old slot is stopped"

    # A slot that does not pass its check in time: stopped, and the proxy never switches.
    assert store.call("register_model.py", "--version", "2").returncode == 0
    with Load(port) as load:
        slow = store.run("rollout/rollout.py", *flags, "--timeout", "1", check=False)
    assert slow.returncode == 1
    assert slow.stderr.strip().splitlines() == [
        "error: version 2 failed its check on the green slot (no answer on /ping within 1 s; "
        f"see {rollout_folder / 'green.log'}); version 1 keeps serving"
    ]
    assert load.failures == [] and load.changes() == [["1"]] * 3
    assert not (rollout_folder / "green.pid").exists()

    # A version whose model file is damaged is refused before any slot starts.
    broken = Path(store.client.get_model_version_download_uri(MODEL, "2").removeprefix("file://"))
    damaged = store.root / "damaged"
    shutil.copytree(broken, damaged)
    (damaged / "model.skops").write_bytes(b"not a model")
    version = store.client.create_model_version(MODEL, str(damaged)).version
    assert store.call("register_model.py", "--version", str(version)).returncode == 0
    refused = store.run("rollout/rollout.py", *flags, check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith(f"error: version {version} refused: models:/{MODEL}/")
    assert refused.stderr.strip().endswith("; version 1 keeps serving")
    assert front_door_version(port) == "1"

    # Busy ports and a missing proxy: one line each, nothing started. (In this process: the
    # same main() as the command line, without a new interpreter's imports.)
    elsewhere, busy_port = store.root / "elsewhere", free_port()
    with socket.create_server(("127.0.0.1", busy_port)):
        busy = store.call(
            "rollout/rollout.py", "--port", str(busy_port), "--folder", str(elsewhere)
        )
    assert busy.returncode == 1 and busy.stderr == (
        f"error: port {busy_port} on 127.0.0.1 (the front door) is in use; choose another with "
        "--port\n"
    )
    missing = store.call("rollout/rollout.py", "--haproxy", "/nowhere/haproxy")
    assert missing.returncode == 1 and missing.stderr.startswith(
        "error: haproxy not found at /nowhere/haproxy; install it"
    )
    assert not list(elsewhere.glob("*.pid"))

    # The history: the gate's one decision, then every move by --version, in order, each with
    # its time, user and reason; the last leaves the alias where it is now.
    history = store.run("rollout/champion_history.py")
    assert_clean(history)
    lines = history.stdout.splitlines()
    assert " promoted version 1  by " in lines[1], history.stdout
    assert lines[1].endswith("vs no champion; first promotion: no champion to compare with")
    moves = lines[2:-1]
    assert len(moves) == 4 and all(" rolled back version " in line for line in moves), moves
    assert moves[-1].split(" rolled back version ")[1].startswith(f"{version}  by ")
    assert all(line.endswith("; rolled back by hand") for line in moves)
    assert lines[-1].startswith(f"Now: champion -> version {version} ")

    stopped = store.run("rollout/rollout.py", "--folder", str(rollout_folder), "--stop")
    assert stopped.stdout.splitlines() == ["Stopped haproxy", "Stopped blue"]
    assert front_door_version(port) is None


def signed_call(url: str, secret: str, payload: dict, *, age: int = 0, delivery_id=None):
    """A POST signed the way MLflow signs its webhooks (MLflow's own function); the status."""
    body = json.dumps(payload)
    delivery_id, timestamp = delivery_id or str(uuid.uuid4()), str(int(time.time()) - age)
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, timestamp, body),
    }
    request = urllib.request.Request(url, data=body.encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_signed_webhook_rolls_out_and_a_forged_or_replayed_one_changes_nothing(
    trained_store, rollout_folder, start_process, tmp_path
):
    store, secret = trained_store, uuid.uuid4().hex
    server_port, receiver_port = free_port(), free_port()
    server_url = f"http://127.0.0.1:{server_port}"
    # The one-machine set-up: the tracking server may call http:// on 127.0.0.1.
    server_env = dict(store.env, PORT=str(server_port), BACKEND_STORE_URI=store.uri)
    server_env.update(ARTIFACTS_DESTINATION=str(tmp_path / "artifacts"))
    server_env.update(MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https")
    server_env.update(MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true")
    server = start_process([str(REPO / "team-server" / "tracking_server.sh")], env=server_env, cwd=tmp_path,
                           log=tmp_path / "server.log")  # fmt: skip
    env = dict(store.env, MLFLOW_TRACKING_URI=server_url, WEBHOOK_SECRET=secret)
    flags, port = rollout_flags(rollout_folder)
    receiver_log = tmp_path / "receiver.log"
    receiver = start_process(
        [PYTHON, str(REPO / "rollout" / "webhook_receiver.py"), "--port", str(receiver_port), "--", *flags],
        env=env, cwd=tmp_path, log=receiver_log,
    )  # fmt: skip
    wait_for_http(f"{server_url}/health", server)
    receiver_url = f"http://127.0.0.1:{receiver_port}/"

    created = store.run("rollout/create_webhook.py", "--url", receiver_url, env=env)
    assert_clean(created)
    assert (
        created.stdout.splitlines()[1]
        == "Test call: HTTP 200, ignored: example_model@example_alias"
    )
    assert receiver.poll() is None

    promoted = store.run("register_model.py", env=env)  # the alias moves: the webhook fires
    assert "Alias 'champion' now points at version 1." in promoted.stdout
    deadline = time.monotonic() + 120
    while front_door_version(port) != "1":
        assert time.monotonic() < deadline, f"no rollout:\n{receiver_log.read_text()}"
        time.sleep(0.5)

    event = {"entity": "model_version_alias", "action": "created",
             "data": {"name": MODEL, "alias": "champion", "version": "7"}}  # fmt: skip
    assert signed_call(receiver_url, "not-the-secret", event) == 401
    assert signed_call(receiver_url, secret, event, age=600) == 401  # recorded 10 minutes ago
    other = dict(event, data=dict(event["data"], alias="staging"))
    assert signed_call(receiver_url, secret, other, delivery_id="d-1") == 200  # ignored
    assert signed_call(receiver_url, secret, other, delivery_id="d-1") == 401  # replayed
    time.sleep(1)
    log = receiver_log.read_text()
    assert log.count("rolling out") == 1, log
    assert "refused: bad signature" in log and "is not within 300 s" in log
    assert "refused: delivery d-1 was already received" in log
    assert sorted(p.name for p in rollout_folder.glob("*.pid")) == ["blue.pid", "haproxy.pid"]
    assert front_door_version(port) == "1"
