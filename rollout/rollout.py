"""Roll out a new champion without dropping a request: one front door, two slots, one swap.

What you learn here: `serve_model.sh` reads `@champion` once, when it starts. A new champion
reaches clients only through a restart, and a restart refuses every request that arrives while
MLflow loads the model. The cure is old and plain, blue/green: a reverse proxy (HAProxy) is the
front door, on a port that never changes, and behind it are two slots, blue and green, each a
`serve_model.sh` pinned to one version number. A rollout

1. asks the registry which version the alias points at;
2. starts the idle slot with that version (`VERSION=N ./serve_model.sh`);
3. checks it: `/ping` answers, and the sample request gets exactly the predictions that the
   same version gives in this process;
4. points HAProxy at it with a graceful reload: a new HAProxy process takes the new
   connections, the old one finishes what it has in flight;
5. waits for the old HAProxy process to leave, then stops the old slot.

If the new slot fails its check, it is stopped, the proxy is never touched, the old version
keeps serving, and the command says why in one line. Every answer through the front door
carries `X-Model-Version`: the version that produced it.

    python rollout/rollout.py                      # the champion behind http://127.0.0.1:5080
    python register_model.py --version 1 && python rollout/rollout.py     # roll back
    python rollout/rollout.py --stop               # stop the proxy and both slots

Beside this file: `haproxy.cfg`, the proxy's config, a template that each rollout fills in, and
`processes.py`, two one-line helpers. Each process starts in a group of its own, named by its pid
file, and is stopped whole (process_groups.py, at the repository root). The filled-in
config, the pid files and every log are in rollout/state/ (git-ignored; `make clean` stops what
runs there and removes it). Nothing runs as root and nothing is written outside that folder.
"""

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import string
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd

import process_groups
import processes
import server_errors
import tutorial_store
from check_model import check_model

HERE = Path(__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]  # the repository: data/, mlflow.db, serve_model.sh
MODEL_NAME = tutorial_store.MODEL_NAME
# The known request: a slot must answer it exactly as the same version does in this process.
SAMPLE_REQUEST = REPO / "data" / "sample_request.json"
SLOTS = ("blue", "green")

# The front door's config: a template in which each rollout fills in the slot, its port and its
# version. HAProxy reads the filled-in copy, in the state folder.
HAPROXY_TEMPLATE = HERE / "haproxy.cfg"


class CheckFailed(Exception):
    """The new slot is not fit to take traffic; the message says why, in a few words."""


def main(argv=None):
    args = parse_args(argv)
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    if args.stop:
        stop_everything(folder)
        return
    haproxy = args.haproxy
    if not haproxy or not os.access(haproxy, os.X_OK):
        raise SystemExit(
            f"error: haproxy not found{f' at {haproxy}' if haproxy else ''}; install it "
            "(Debian, Ubuntu: sudo apt-get install haproxy; macOS: brew install haproxy)"
        )
    # The store the other scripts use: mlflow.db at the repository root, unless
    # MLFLOW_TRACKING_URI names another (a team server, say); one line if there is none.
    tutorial_store.use_store(REPO)

    # One rollout at a time: the webhook receiver may be asked twice in a row.
    with open(folder / "rollout.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        roll_out(args, folder, haproxy)


def roll_out(args, folder, haproxy):
    started = time.monotonic()
    # 1. The registry says which version the alias points at; the idle slot will serve it.
    version = str(tutorial_store.registered_version(args.model_name, args.alias).version)
    live = live_slot(folder)
    if live and live["version"] == version:
        print(f"Version {version} ({args.alias}) is already live on the {live['slot']} slot.")
        return
    if live is None:
        stop_everything(folder, quiet=True)  # leftovers of a proxy that has gone
        processes.port_must_be_free(args.host, args.port, "the front door", "--port")
    slot = "green" if live and live["slot"] == "blue" else "blue"
    slot_port = args.green_port if slot == "green" else args.blue_port
    # Left over from a rollout that failed its check:
    process_groups.stop_group(folder / f"{slot}.pid")
    processes.port_must_be_free("127.0.0.1", slot_port, f"the {slot} slot", f"--{slot}-port")
    keeps = f"version {live['version']} keeps serving" if live else "nothing was started"

    model_uri = f"models:/{args.model_name}/{version}"
    body = json.loads(SAMPLE_REQUEST.read_text())
    try:
        expected = predictions_here(model_uri, body)
    except CheckFailed as why:
        raise SystemExit(f"error: version {version} refused: {why}; {keeps}") from None

    # 2. and 3. Start the idle slot with exactly that version, and check it against this process.
    print(f"{args.alias} is version {version}: starting it on the {slot} slot (port {slot_port})")
    slot_process = start_slot(folder, slot, slot_port, args.model_name, version)
    try:
        check_slot(slot_process, slot_port, body, expected, folder / f"{slot}.log", args.timeout)
    except CheckFailed as why:
        process_groups.stop_group(folder / f"{slot}.pid")
        raise SystemExit(
            f"error: version {version} failed its check on the {slot} slot ({why}); {keeps}"
        ) from None
    print(f"  /ping answers and the sample request matches predict() here, version {version}")

    # 4. Point the front door at the new slot. The template's $names are string.Template's, not
    # str.format's {}: HAProxy writes its own inline conditions in braces (`if { path_beg /x }`).
    template = string.Template(HAPROXY_TEMPLATE.read_text())
    config = folder / "haproxy.cfg"
    new_config = folder / "haproxy.cfg.new"
    new_config.write_text(
        template.substitute(
            host=args.host,
            port=args.port,
            slot=slot,
            slot_port=slot_port,
            version=version,
            drain=f"{args.drain}s",
        )
    )
    checked = subprocess.run([haproxy, "-c", "-q", "-f", new_config], capture_output=True)
    if checked.returncode:
        process_groups.stop_group(folder / f"{slot}.pid")
        why = processes.last_line(checked.stderr)
        raise SystemExit(f"error: haproxy refuses {new_config}: {why}")
    new_config.replace(config)
    front_door = f"http://{args.host}:{args.port}"
    if live:
        # SIGUSR2 to HAProxy's master: a graceful reload. New workers read the new config and
        # take new connections; the old ones answer what they hold, then leave.
        master = int((folder / "haproxy.pid").read_text())
        old_workers = process_groups.children(master)  # HAProxy's workers are its master's children
        os.kill(master, signal.SIGUSR2)
    else:
        proxy = start_proxy(folder, haproxy, config)
    if not wait_for_version(front_door, version, timeout=15):
        if not live and proxy.poll() is not None:
            process_groups.stop_group(folder / f"{slot}.pid")
            why = processes.last_line((folder / "haproxy.log").read_bytes())
            raise SystemExit(f"error: haproxy did not start: {why}")
        raise SystemExit(
            f"error: {front_door} does not answer with version {version}; see {folder}"
        )
    (folder / "live.json").write_text(json.dumps({"slot": slot, "version": version}))
    print(f"Switched: {front_door} answers with version {version} (X-Model-Version)")

    if live:
        # 5. The old slot stays up until the old HAProxy workers, and what they had in flight,
        # are gone: a request they forward after this point still reaches it.
        process_groups.wait_until_gone(old_workers, parent=master, timeout=args.drain + 5)
        process_groups.stop_group(folder / f"{live['slot']}.pid")
        print(f"Stopped the {live['slot']} slot (version {live['version']}) after its last answer")
    print(f"Rollout done in {time.monotonic() - started:.1f} s; logs in {folder}")


# --- The check --------------------------------------------------------------------------------


def predictions_here(model_uri, body):
    """What this version answers to `body` in this process.

    check_model.py reads its MLmodel first: loading is running code, and the registry holds
    what anyone logged. A model it does not trust is one line, before any slot starts.
    """
    check_model(model_uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # a damaged artifact: any error of any library
        why = processes.last_line(str(exc))
        raise CheckFailed(f"{model_uri} does not load here: {why}") from None
    rows = pd.DataFrame(**body["dataframe_split"])
    return [str(answer) for answer in model.predict(rows)]


def check_slot(process, port, body, expected, log, timeout):
    """Wait for the slot's /ping, then ask it the known request and compare."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not answers(f"{url}/ping"):
        if process.poll() is not None:
            raise CheckFailed(f"serve_model.sh exited: {processes.last_line(log.read_bytes())}")
        if time.monotonic() > deadline:
            raise CheckFailed(f"no answer on /ping within {timeout:.0f} s; see {log}")
        time.sleep(0.2)
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            served = [str(answer) for answer in json.load(response)["predictions"]]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckFailed(f"the sample request failed: {exc}") from None
    if served != expected:
        raise CheckFailed(f"it predicts {served}, the same version here predicts {expected}")


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for_version(front_door, version, timeout):
    """True once a new connection to the front door is answered by `version`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{front_door}/ping", timeout=2) as response:
                if response.headers.get("X-Model-Version") == version:
                    return True
        time.sleep(0.1)
    return False


# --- The processes: the slots, the proxy, the state folder ------------------------------------


def start_slot(folder, slot, port, model_name, version):
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", MODEL_NAME=model_name)
    env.update(VERSION=version, MLFLOW_TRACKING_URI=mlflow.get_tracking_uri())
    return process_groups.start_group(folder, slot, [str(REPO / "serve_model.sh")], env)


def start_proxy(folder, haproxy, config):
    # -W: master-worker, so that SIGUSR2 reloads; -db: stay in the foreground (its log is
    # the access log, one line per request, in rollout/state/haproxy.log).
    command = [haproxy, "-W", "-db", "-f", str(config)]
    return process_groups.start_group(folder, "haproxy", command, os.environ)


def live_slot(folder):
    """{'slot', 'version'} of what the front door serves, or None if the proxy is not running."""
    live = folder / "live.json"
    if live.exists() and process_groups.running(folder / "haproxy.pid"):
        return json.loads(live.read_text())
    return None


def stop_everything(folder, quiet=False):
    for name in ("haproxy", *SLOTS):
        if process_groups.stop_group(folder / f"{name}.pid") and not quiet:
            print(f"Stopped {name}")
    (folder / "live.json").unlink(missing_ok=True)


# --- The command line ---------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve the alias's version behind a stable front door (HAProxy), or swap "
        "the front door to it blue/green, dropping no request.",
        epilog="Roll back: python register_model.py --version N && python rollout/rollout.py",
    )
    parser.add_argument(
        "--port", type=int, default=5080, help="the front door's port (default: %(default)s)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the front door's address (default: %(default)s, this machine only; 0.0.0.0 "
        "would let your network reach the model, which has no authentication)",
    )
    parser.add_argument(
        "--blue-port", type=int, default=5081, help="the blue slot's port (default: %(default)s)"
    )
    parser.add_argument(
        "--green-port", type=int, default=5082, help="the green slot's port (default: %(default)s)"
    )
    parser.add_argument(
        "--model-name", default=MODEL_NAME, help="registered model (default: %(default)s)"
    )
    parser.add_argument(
        "--alias", default="champion", help="the alias to roll out (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120,
        help="seconds the new slot may take to answer /ping (default: %(default)s)",
    )
    parser.add_argument(
        "--drain",
        type=int,
        default=30,
        help="seconds the old proxy process may keep finishing requests (default: %(default)s)",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=HERE / "state",
        help="where the config, pid files and logs go (default: rollout/state/)",
    )
    parser.add_argument(
        "--haproxy",
        # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
        default=shutil.which("haproxy")
        or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin"),
        help="the haproxy program (default: found on the PATH or in /usr/sbin)",
    )
    parser.add_argument("--stop", action="store_true", help="stop the proxy and both slots")
    args = parser.parse_args(argv)
    args.folder = args.folder.resolve()
    return args


if __name__ == "__main__":
    server_errors.exit_on_error(main)
