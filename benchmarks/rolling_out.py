"""Part 8, rolling out a new champion under a steady load: a naive restart of serve_model.sh,
rollout/rollout.py's blue/green swap behind its front door, and the same through the webhook."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from itertools import pairwise
from pathlib import Path

import mlflow
from harness import MODEL_NAME, REPO, WRK_POST, Bench, free_port, group_memory, py, wrk_latency

ROLLOUT = REPO / "rollout"


def measure(bench: Bench):
    db, rows = bench.work / "rollout.db", []
    shutil.copy(bench.store("champion"), db)
    uri, local = f"sqlite:///{db}", bench.env(f"sqlite:///{db}")
    mlflow.set_tracking_uri(uri)
    # A second version of the same model: what changes is the number the header shows.
    mlflow.register_model(f"models:/{MODEL_NAME}/1", MODEL_NAME)
    lua = bench.work / "steady.lua"  # each connection waits 50 ms between requests
    sample = (REPO / "data" / "sample_request.json").read_text()
    lua.write_text(WRK_POST.format(body=sample) + "function delay() return 50 end\n")
    front, hook_port, folder = free_port(), free_port(), bench.work / "rollout"
    ports = ["--port", front, "--blue-port", free_port(), "--green-port", free_port()]
    flags = [*map(str, ports), "--folder", str(folder)]

    # Naive: serve_model.sh itself, stopped and started again.
    port = free_port()
    with bench.model_server(uri, port, "naive.log") as process, Watch(port, lua) as watch:
        time.sleep(3)
        os.killpg(process.pid, signal.SIGTERM)
        while group_memory(process.pid):  # uvicorn's worker outlives the mlflow command
            time.sleep(0.05)
        process.wait()
        stopped = time.monotonic()
        with bench.model_server(uri, port, "naive.log"):
            watch.first_answer(after=stopped)
            time.sleep(3)
    rows.append(watch.row("naive restart: stop, start `serve_model.sh`", stopped))

    # The tracking server may call a webhook on this machine, over plain HTTP.
    webhooks = {
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    }
    hook = f"http://127.0.0.1:{hook_port}/"
    receiver = [sys.executable, ROLLOUT / "webhook_receiver.py", "--port", str(hook_port), "--"]
    try:
        with bench.tracking_server(uri, "rollout-server", **webhooks) as (server_url, _):
            env = bench.env(server_url, WEBHOOK_SECRET=uuid.uuid4().hex)
            with bench.serve([*receiver, *flags], env, hook, "receiver.log"):
                bench.sh(py(ROLLOUT / "create_webhook.py", "--url", hook), env)
                bench.sh(py(ROLLOUT / "rollout.py", *flags), local)
                with Watch(front, lua) as watch:
                    time.sleep(bench.s.wrk_seconds * 2)
                rows.append(watch.row("steady state, nothing changes", None))
                # The alias moved straight in the SQLite file: no webhook fires; rollout.py by hand.
                with Watch(front, lua) as watch:
                    time.sleep(2)
                    bench.sh(py(REPO / "register_model.py", "--version", "2"), local)
                    moved = time.monotonic()
                    bench.sh(py(ROLLOUT / "rollout.py", *flags), local)
                    watch.first_answer(after=moved, version="2")
                    time.sleep(2)
                rows.append(watch.row("`register_model.py --version 2`, then `rollout.py`", moved))
                # Through the tracking server: its webhook calls the receiver, which rolls out.
                with Watch(front, lua) as watch:
                    time.sleep(2)
                    bench.sh(py(REPO / "register_model.py", "--version", "1"), env)
                    moved = time.monotonic()
                    watch.first_answer(after=moved, version="1", timeout=180)
                    time.sleep(2)
                rows.append(watch.row("the same back, through the webhook", moved))
    finally:
        bench.sh(py(ROLLOUT / "rollout.py", "--folder", folder, "--stop"), local)
    return (
        "8. Rolling out a new champion",
        "wrk posts the sample request at a steady rate (2 connections, each waiting 50 ms "
        "between requests) while the version changes; a poller asks `/ping` on a new "
        "connection every 50 ms to see when the new version first answers. The naive restart "
        "is `serve_model.sh` alone, stopped and started; the others go through "
        "`rollout.py`'s HAProxy front door. Time is counted from the alias move (the end of "
        "`register_model.py`), or from the stop for the restart. wrk retries a refused "
        "connection at once, without its 50 ms wait, so the restart's socket errors count "
        "attempts during the silence, not clients.",
        "what happens | requests answered | failed (non-2xx, socket errors) | p50 | p99 "
        "| longest silence (poller) | new version answers after",
        rows,
        "a restart refuses every request for as long as the new process takes to import "
        "MLflow and load the model. The blue/green rollout waits just as long for the new "
        "version, but the old one answers meanwhile: no failed request. Latency rises while "
        "the new slot starts on the same cores (p99 against the steady state above); on a "
        "machine with cores to spare, or slots on another host, it would not. The webhook "
        "adds only its own call to that wait: the slot's start is most of it.",
    )


class Watch:
    """wrk on the front door for as long as the block lasts, and a poller of /ping beside it.

    wrk (stopped with Ctrl-C's signal, after which it prints its summary) gives the requests,
    failures and latency; the poller, a new connection every 50 ms, gives when each version
    answered and how long nothing did.
    """

    def __init__(self, port: int, lua: Path):
        self.url, self.lua, self.seen = f"http://127.0.0.1:{port}", lua, []  # (time, version)
        self.stopping, self.output = threading.Event(), tempfile.TemporaryFile("w+")

    def __enter__(self):
        args = ["wrk", "--latency", "-c2", "-t1", "-d1h", "-s", self.lua, f"{self.url}/invocations"]
        self.wrk = subprocess.Popen(args, stdout=self.output, stderr=subprocess.STDOUT)
        self.poller = threading.Thread(target=self.poll)
        self.poller.start()
        return self

    def poll(self):
        while not self.stopping.wait(0.05):
            version = None  # no answer
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as answer:
                    version = answer.headers.get("X-Model-Version") or "up"
            self.seen.append((time.monotonic(), version))

    def first_answer(self, after: float, version: str | None = None, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while not any(t > after and v and v in (version, "up") for t, v in self.seen):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from version {version} within {timeout} s")
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.stopping.set()
        self.poller.join()
        self.wrk.send_signal(signal.SIGINT)
        self.wrk.wait()
        self.output.seek(0)
        self.report = self.output.read()

    def row(self, what: str, since: float | None) -> str:
        out = self.report
        count = int(re.search(r"(\d+) requests in", out)[1])
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        failed = f"{bad[1] if bad else 0}, {sum(map(int, sockets.groups())) if sockets else 0}"
        # The longest time between two answered polls, and when that silence ended.
        answered = [t for t, v in self.seen if v]
        longest, back = max(((t - t0, t) for t0, t in pairwise(answered)), default=(0.0, None))
        new = next((v for _, v in reversed(self.seen) if v), None)  # the last that answered
        if new == "up":  # no proxy, no version header: the server is back when the silence ends
            first = back
        else:
            first = since and next((t for t, v in self.seen if t > since and v == new), None)
        after = f"{first - since:.1f} s" if first and since else "-"
        p50, p99 = wrk_latency(out)
        return f"{what} | {count} | {failed} | {p50} | {p99} | {longest:.1f} s | {after}"
