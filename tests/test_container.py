"""container/: the champion as a container image, built and run for real.

A Docker daemon of the session's own (conftest's `docker`: dockerd in a temporary folder, no
bridge network, and a stand-in for the python:<version>-slim base made from Debian's packages,
since Docker Hub is out of reach) builds the image of a real champion from a fresh store with
the page's command, runs it with the page's command, and the container must answer the sample
rows exactly as predict.py does in this process. A tampered version is refused before anything
is built; each bad input is one line, and no half-built image is left with a version's tag.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
from packaging.utils import canonicalize_name
from test_trust import add_eval, register_copy

from conftest import (
    REPO,
    assert_clean,
    free_port,
    run_command,
    store_from,
    wait_for_http,
)

# One worker runs this file and the container page (make's --dist loadgroup): one daemon.
pytestmark = pytest.mark.xdist_group("container")
MODEL = "breast-cancer-classifier"
# The page's image, kept under this name while this module builds its own: its layers (nginx,
# `pip install mlflow`) stay in the daemon, and the build below reuses them, as Docker does.
PAGES_LAYERS = "page-image-layers"
BUILD = str(REPO / "container" / "build_image.sh")
RUN = str(REPO / "container" / "run_image.sh")
SAMPLE_REQUEST = (REPO / "data" / "sample_request.json").read_bytes()


def tags(docker) -> set[str]:
    """The tags of the tutorial's model images in the daemon, e.g. {'v1'}."""
    listed = docker.run("images", MODEL, "--format", "{{.Tag}}").stdout.split()
    return set(listed)


def one_line(result, code: int = 1) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


# Session-scoped (per worker, as the daemon is): xdist may run another module's test between two
# of this module's, which would end a module-scoped fixture and build the image again.
@pytest.fixture(scope="session")
def built(docker, trained_store_db, tmp_path_factory):
    """A fresh store whose champion, version 1 (the forest), is built into an image, as the page
    does it; the build's output and seconds. The images go with the session."""
    store = store_from(trained_store_db, tmp_path_factory.mktemp("container"))
    store.env.update(DOCKER_HOST=docker.host, BUILD_FOLDER=str(store.root / "build"))
    assert store.call("register_model.py", "--run-name", "forest").returncode == 0
    for tag in tags(docker):  # left by the page's track (tests/test_docs.py)
        docker.run("tag", f"{MODEL}:{tag}", f"{PAGES_LAYERS}:{tag}", check=False)
        docker.run("rmi", f"{MODEL}:{tag}", check=False)  # the tag; the layers stay
    started = time.monotonic()
    result = run_command([BUILD], env=store.env, cwd=REPO, timeout=1500)
    seconds = time.monotonic() - started
    store.client.copy_model_version(f"models:/{MODEL}/1", MODEL)  # version 2, never built
    yield store, result, seconds
    for tag in tags(docker):
        docker.run("rmi", "--force", f"{MODEL}:{tag}", check=False)
    kept = docker.run("images", PAGES_LAYERS, "--format", "{{.Tag}}").stdout.split()
    for tag in kept:
        docker.run("rmi", "--force", f"{PAGES_LAYERS}:{tag}", check=False)


def test_the_champion_becomes_an_image_named_by_its_version(built, docker):
    store, result, seconds = built
    assert_clean(result)
    folder = store.root / "build" / f"{MODEL}-v1"
    assert result.stdout.splitlines() == [
        f"Building {MODEL}:v1 from models:/{MODEL}/1 (checked); log in {folder}/build.log",
        result.stdout.splitlines()[1],
        "Run it: ./container/run_image.sh",
    ]
    assert re.fullmatch(rf"Built {MODEL}:v1 in \d+ s: \d+ MB", result.stdout.splitlines()[1])
    assert tags(docker) == {"v1"}, "the temporary tag must be gone"
    image = json.loads(docker.run("image", "inspect", f"{MODEL}:v1").stdout)[0]
    assert image["Config"]["Labels"]["org.mlflow.model-uri"] == f"models:/{MODEL}/1"
    assert image["Config"]["User"] == ""  # MLflow's Dockerfile has no USER line: root
    # MLflow's Dockerfile, kept to read: the model's own Python, as the page says.
    dockerfile = (folder / "Dockerfile").read_text()
    assert f"FROM python:{platform.python_version()}-slim\n" in dockerfile
    assert "apt-get install -y --no-install-recommends nginx" in dockerfile
    # Its layers, as `docker history` shows them: `pip install mlflow` the heaviest by far, and
    # the `rm -rf /var/lib/apt/lists/*` of its own RUN empty (the lists stay in nginx's layer).
    history = docker.run(
        "history",
        "--no-trunc",
        "--human=false",
        "--format",
        "{{.Size}}\t{{.CreatedBy}}",
        f"{MODEL}:v1",
    ).stdout.splitlines()
    layers = {step: int(size) for size, step in (line.split("\t", 1) for line in history)}
    heaviest = max(layers, key=layers.get)
    assert "pip install mlflow==" in heaviest, layers
    assert next(size for step, size in layers.items() if "rm -rf /var/lib/apt/lists" in step) == 0
    print(
        f"build: {seconds:.0f} s, image: {image['Size'] / 1e6:.0f} MB, pip install mlflow: "
        f"{layers[heaviest] / 1e6:.0f} MB"
    )

    again = run_command([BUILD], env=store.env, cwd=REPO)
    assert again.stdout.startswith(f"{MODEL}:v1 already exists: version 1 is built")


def test_the_image_holds_exactly_the_versions_the_model_was_logged_with(built, docker):
    """Every package of the model's requirements.txt (its whole environment, pinned) is in the
    image at the logged version, whatever `pip install mlflow` chose first that day."""
    store, _, _ = built
    folder = store.root / "build" / f"{MODEL}-v1" / "model_dir"
    logged = pinned((folder / "requirements.txt").read_text())
    assert {"numpy", "scipy", "pandas", "scikit-learn", "skops", "mlflow"} <= set(logged)
    frozen = docker.run(
        "run", "--rm", "--network", "none", "--entrypoint", "pip", f"{MODEL}:v1", "freeze"
    ).stdout
    installed = pinned(frozen)
    different = {n: (v, installed.get(n)) for n, v in logged.items() if installed.get(n) != v}
    assert not different, f"logged vs in the image: {different}"


def pinned(text: str) -> dict[str, str]:
    """{'pyyaml': '6.0.4', ...}: `name==version` lines, names as PyPI compares them."""
    return {
        canonicalize_name(name): version
        for name, version in (line.split("==", 1) for line in text.split() if "==" in line)
    }


def test_build_dockers_default_environment_manager_starts_from_ubuntu(built, tmp_path):
    """Why the page says `mlflow models build-docker --env-manager local`: without it, MLflow's
    default (virtualenv) builds FROM ubuntu and compiles the model's Python with pyenv."""
    store, _, _ = built
    command = ["mlflow", "models", "generate-dockerfile", "--model-uri", f"models:/{MODEL}/1"]
    run_command([*command, "--env-manager", "virtualenv", "-d", tmp_path], env=store.env, cwd=REPO)
    dockerfile = (tmp_path / "Dockerfile").read_text()
    assert dockerfile.splitlines()[1] == "FROM ubuntu:24.04" and "pyenv" in dockerfile


def test_the_container_answers_as_predict_py_does_here(built, docker, start_process, tmp_path):
    store, _, _ = built
    port = free_port()
    env = dict(store.env, PORT=str(port))
    log = tmp_path / "run_image.log"
    server = start_process([RUN], env=env, cwd=REPO, log=log)
    started = time.monotonic()
    name = f"{MODEL}-v1-{port}"
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=180)
        print(f"first answer after {time.monotonic() - started:.1f} s")
        here = store.call("predict.py")
        there = store.call("predict.py", "--url", f"http://127.0.0.1:{port}")
        assert here.returncode == there.returncode == 0, here.stderr + there.stderr
        assert there.stdout == here.stdout and len(here.stdout.splitlines()) == 6

        # Every process in the container runs as nobody, not as the image's default root.
        top = docker.run("top", name, "-o", "user,pid,args").stdout.splitlines()[1:]
        assert len(top) >= 3 and all(line.split()[0] == "nobody" for line in top), top
        assert any("uvicorn --host 127.0.0.1" in line for line in top), top

        # No nginx in this path, and uvicorn sets no limit: a 101 MiB body is read whole, and
        # refused for what it says (400), not for its size (413).
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        padded = b" " * (101 * 1024 * 1024) + b"{}"
        connection.request("POST", "/invocations", padded, {"Content-Type": "application/json"})
        assert connection.getresponse().status == 400
        connection.close()

        printed = log.read_text()
        assert printed.startswith(
            f"Serving {MODEL}:v1 (models:/{MODEL}/1) in a container on http://127.0.0.1:{port}\n"
        )
        assert f"Uvicorn running on http://127.0.0.1:{port}" in printed
        assert_clean(subprocess.CompletedProcess([], 0, printed, ""))

        # What rollout.py does to a slot it stops: SIGTERM to the process group. The docker
        # client passes it on, and the container goes (--rm), within seconds.
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        deadline = time.monotonic() + 30
        while docker.run("ps", "-aq", "--filter", f"name={name}").stdout.strip():
            assert time.monotonic() < deadline, "the container outlived its docker run"
            time.sleep(0.5)
    finally:
        docker.run("rm", "--force", name, check=False)


def test_the_probabilities_image_answers_as_predict_py_proba_does_here(
    built, docker, start_process, tmp_path
):
    """ANSWER=probabilities: an image of its own (the checked version saved again with
    pyfunc_predict_fn="predict_proba"), built on the layers the labels image left, answering
    each class's probability as the champion does in this process."""
    store, _, _ = built
    env = dict(store.env, ANSWER="probabilities")
    result = run_command([BUILD], env=env, cwd=REPO, timeout=1500)
    assert_clean(result)
    assert re.search(rf"^Built {MODEL}:v1-probabilities in \d+ s", result.stdout, re.M), (
        result.stdout
    )
    port = free_port()
    server = start_process([RUN], env=dict(env, PORT=str(port)), cwd=REPO, log=tmp_path / "log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=180)
        here = store.call("predict.py", "--proba")
        there = store.call("predict.py", "--proba", "--url", f"http://127.0.0.1:{port}")
        assert here.returncode == there.returncode == 0, here.stderr + there.stderr
        assert there.stdout == here.stdout and here.stdout.startswith(
            "prediction,benign,malignant\n"
        )
    finally:
        docker.run("rm", "--force", f"{MODEL}-v1-{port}", check=False)
        docker.run("rmi", "--force", f"{MODEL}:v1-probabilities", check=False)


# Run inside the container: wait for nginx, send the sample request, then announce a body one
# byte over the limit (argv[1], bytes). nginx answers 413 from the Content-Length alone.
PROBE = """
import http.client, json, sys, time
def post(body, length):
    connection = http.client.HTTPConnection("127.0.0.1", 8080, timeout=30)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    connection.send(body)
    response = connection.getresponse()
    return response.status, response.read().decode()
for _ in range(240):  # nginx answers 502 until uvicorn behind it is up
    try:
        ping = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
        ping.request("GET", "/ping")
        if ping.getresponse().status == 200:
            break
    except OSError:
        pass
    time.sleep(0.5)
body = sys.stdin.buffer.read()
print(json.dumps([post(body, len(body)), post(b"", int(sys.argv[1]) + 1)[0]]))
"""


def nginx_answers(docker, limit: int, *settings: str) -> tuple[int, str, int, dict]:
    """The image's default command, run with no network at all (--network none) and reached
    from inside, on its own loopback: the sample request's answer, the status of a body one
    byte over `limit`, and who runs what."""
    name = f"{MODEL}-nginx-{free_port()}"
    settings = ("--env", "MLFLOW_MODELS_WORKERS=1", *settings)  # default: a worker per CPU
    docker.run("run", "--detach", "--network", "none", "--name", name, *settings, f"{MODEL}:v1")
    try:
        probe = subprocess.run(
            ["docker", "exec", "--interactive", name, "python", "-c", PROBE, str(limit)],
            env=docker.env,
            input=SAMPLE_REQUEST,
            capture_output=True,
            timeout=300,
        )
        assert probe.returncode == 0, probe.stderr.decode()
        (status, answer), too_large = json.loads(probe.stdout)
        users = {
            line.split(None, 2)[2]: line.split()[0]
            for line in docker.run("top", name, "-o", "user,pid,args").stdout.splitlines()[1:]
        }
        return status, answer, too_large, users
    finally:
        docker.run("rm", "--force", name, check=False)


def test_the_images_own_nginx_limits_a_body_to_100_mb_and_a_config_of_yours_changes_it(
    built, docker, tmp_path
):
    status, answer, too_large, users = nginx_answers(docker, 100 * 1024 * 1024)
    assert status == 200 and answer.startswith('{"predictions": ["malignant", "benign"'), answer
    assert too_large == 413
    # The default command runs as root, but for nginx's worker.
    assert users[next(args for args in users if "uvicorn" in args)] == "root", users
    assert users["nginx: worker process"] == "nobody", users

    # The page's way to change it: your own nginx.conf over MLflow's, here with 1 MB.
    inside = "/usr/local/lib/python3.11/site-packages/mlflow/models/container/scoring_server"
    mine = tmp_path / "nginx.conf"
    ours = (Path(mlflow.__file__).parent / "models/container/scoring_server/nginx.conf").read_text()
    mine.write_text(ours.replace("client_max_body_size 100m;", "client_max_body_size 1m;"))
    mount = ["--volume", f"{mine}:{inside}/nginx.conf:ro"]
    status, _, too_large, _ = nginx_answers(docker, 1024 * 1024, *mount)
    assert status == 200 and too_large == 413


@pytest.mark.parametrize("tampering", ["trusts builtins.eval", "a pickle"])
def test_a_tampered_version_is_refused_before_anything_is_built(
    tampering, trained_store, docker, tmp_path
):
    store = trained_store
    store.env.update(DOCKER_HOST=docker.host, BUILD_FOLDER=str(tmp_path / "build"))
    assert store.call("register_model.py", "--run-name", "forest").returncode == 0
    clean = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", tracking_uri=store.uri))

    def swap_in_pickle(copy: Path, mlmodel: dict) -> None:
        sklearn = mlmodel["flavors"]["sklearn"]
        sklearn["serialization_format"] = "pickle"
        sklearn.pop("skops_trusted_types")

    edit = add_eval if tampering == "trusts builtins.eval" else swap_in_pickle
    version = register_copy(store, clean, "tampered", edit)
    store.client.set_registered_model_alias(MODEL, "champion", version)
    before = set(docker.run("images", "--all", "--quiet").stdout.split())

    line = one_line(run_command([BUILD], env=store.env, cwd=REPO, check=False))
    assert line.startswith(f"error: refusing models:/{MODEL}/{version}: "), line
    assert set(docker.run("images", "--all", "--quiet").stdout.split()) == before, "a build"
    assert not (tmp_path / "build").exists(), "the model was copied out for a build"


NOWHERE = "unix:///nonexistent/docker.sock"
# What is wrong: the script, its settings, and how its one line starts. {port} is a busy port;
# version 2 is registered but never built, and BUILD_NETWORK=none fails its build.
BAD_INPUT = {
    "no Docker daemon, build": (BUILD, {"DOCKER_HOST": NOWHERE}, "error: no Docker daemon answers ("),
    "no Docker daemon, run": (RUN, {"DOCKER_HOST": NOWHERE}, "error: no Docker daemon answers ("),
    "no such version": (BUILD, {"VERSION": "99"}, f"error: no models:/{MODEL}/99 in sqlite:///"),
    "no such alias": (BUILD, {"ALIAS": "staging"}, f"error: no models:/{MODEL}@staging in sqlite:///"),
    "no image yet": (RUN, {"VERSION": "2"}, f"error: no image {MODEL}:v2; build it first: VERSION=2 ./container/build_image.sh"),
    "a port in use": (RUN, {"PORT": "{port}"}, "error: port {port} on 127.0.0.1 is in use"),
    "a build that fails": (BUILD, {"VERSION": "2", "BUILD_NETWORK": "none"}, f"error: docker build of {MODEL}:v2 failed: "),
    "a flag": (BUILD, {}, "error: build_image.sh takes no flags (got --push)"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_leaves_no_image_tagged(case, built, docker):
    store, _, _ = built
    script, settings, expected = BAD_INPUT[case]
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        env = dict(store.env, **{k: v.replace("{port}", port) for k, v in settings.items()})
        flags = ["--push"] if case == "a flag" else []
        result = run_command([script, *flags], env=env, cwd=REPO, check=False)
    line = one_line(result, code=2 if flags else 1)
    assert line.startswith(expected.replace("{port}", port)), line
    print(f"{case}: {line}")
    assert tags(docker) == {"v1"}, "a failed build left a tag behind"
