"""Receive the registry's webhook and roll out the new champion: signed calls only.

What you learn here: a tracking server can call a URL whenever something happens in the Model
Registry (MLflow 3.3 and later). For `model_version_alias.created`, which fires each time an
alias is set, including when `register_model.py` moves `champion`, MLflow POSTs

    {"entity": "model_version_alias", "action": "created", "timestamp": "...",
     "data": {"name": "breast-cancer-classifier", "alias": "champion", "version": "3"}}

with three headers: X-MLflow-Delivery-Id, X-MLflow-Timestamp (Unix seconds) and
X-MLflow-Signature, `v1,` + base64(HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")).
Anyone who can reach this port could POST the same JSON, so the receiver trusts a call only if

- the signature matches, computed with the secret the webhook was created with: only the
  tracking server knows it;
- the timestamp is at most MAX_AGE seconds old, and the delivery id is new: a call recorded
  and sent again (a replay) is refused too.

Anything else gets 401 and changes nothing. A signed call for another model or alias gets 200
and is ignored. A signed call for ours gets 202 at once (MLflow gives up after 30 s and retries
on errors; a rollout takes longer), and `rollout.py` runs, one at a time, in the background.

    python rollout/webhook_receiver.py                  # on http://127.0.0.1:5090
    python rollout/webhook_receiver.py -- --port 6080   # what follows -- goes to rollout.py

The secret: $WEBHOOK_SECRET if you set it, else rollout/state/webhook-secret, which the first of
this script and create_webhook.py to run writes (random, readable by you only, git-ignored), so
that the receiver and the webhook share it from any terminal, with nothing to export.

Standard library only: `hmac`, `http.server`, `subprocess`.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A signed call older than this (or this far in the future) is refused as a replay.
MAX_AGE = 300
SECRET_FILE = HERE / "state" / "webhook-secret"


def webhook_secret(variable: str) -> str:
    """The secret from $variable, else the shared file, made by whichever script needs it first."""
    if secret := os.environ.get(variable):
        return secret
    SECRET_FILE.parent.mkdir(exist_ok=True)
    try:  # O_EXCL: if both start at once, one writes and the other reads
        made = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return SECRET_FILE.read_text().strip()
    with os.fdopen(made, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    return SECRET_FILE.read_text().strip()


def signature_is_valid(secret, delivery_id, timestamp, body, signature):
    """MLflow's scheme: v1,base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}"))."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    # compare_digest takes as long for a near miss as for a far one: no hint to a forger.
    return hmac.compare_digest(expected, signature)


class Receiver(BaseHTTPRequestHandler):
    # Set by main(): the secret, what to react to, the rollout queue, the ids already seen.
    secret = model_name = alias = None
    rollouts: queue.Queue
    seen: dict[str, float] = {}
    seen_lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        delivery_id = self.headers.get("X-MLflow-Delivery-Id", "")
        timestamp = self.headers.get("X-MLflow-Timestamp", "")
        signature = self.headers.get("X-MLflow-Signature", "")
        if not signature_is_valid(self.secret, delivery_id, timestamp, body, signature):
            return self.answer(401, "refused: bad signature")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE:
            return self.answer(401, f"refused: timestamp {timestamp} is not within {MAX_AGE} s")
        with self.seen_lock:
            for old in [d for d, at in self.seen.items() if at < time.time() - 2 * MAX_AGE]:
                del self.seen[old]
            if delivery_id in self.seen:
                return self.answer(401, f"refused: delivery {delivery_id} was already received")
            self.seen[delivery_id] = time.time()

        try:
            event = json.loads(body)
            data = event.get("data") or {}
        except (ValueError, AttributeError):
            return self.answer(400, "refused: the body is not an MLflow event")
        what = f"{event.get('entity')}.{event.get('action')}"
        if what != "model_version_alias.created":
            return self.answer(200, f"ignored: {what}")
        if (data.get("name"), data.get("alias")) != (self.model_name, self.alias):
            return self.answer(200, f"ignored: {data.get('name')}@{data.get('alias')}")
        self.rollouts.put(data["version"])
        self.answer(202, f"accepted: {self.model_name}@{self.alias} -> version {data['version']}")

    def do_GET(self):  # "is it up?", for a person or a health check
        self.answer(200, f"webhook receiver for {self.model_name}@{self.alias}: POST only")

    def answer(self, status, message):
        print(f"{time.strftime('%H:%M:%S')} {status} {message}", flush=True)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(message.encode() + b"\n")

    def log_message(self, *args):
        pass  # answer() prints one line per call instead of the default access log


def roll_out_forever(rollouts, rollout_args):
    """One rollout at a time. rollout.py reads the alias itself: it trusts the registry, not
    the payload, so a burst of moves ends with whatever the alias says last."""
    while True:
        version = rollouts.get()
        print(f"{time.strftime('%H:%M:%S')} rolling out (the alias said version {version})")
        command = [sys.executable, str(HERE / "rollout.py"), *rollout_args]
        finished = subprocess.run(command, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        print(f"{time.strftime('%H:%M:%S')} rollout.py exited {finished.returncode}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    secret = webhook_secret(args.secret_env)
    try:
        server = ThreadingHTTPServer((args.host, args.port), Receiver)
    except OSError:
        raise SystemExit(
            f"error: port {args.port} on {args.host} is in use; choose another with --port"
        ) from None
    Receiver.secret, Receiver.model_name, Receiver.alias = secret, args.model_name, args.alias
    Receiver.rollouts = queue.Queue()
    worker = threading.Thread(
        target=roll_out_forever,
        args=(
            Receiver.rollouts,
            ["--model-name", args.model_name, "--alias", args.alias, *args.rollout_args],
        ),
        daemon=True,
    )
    worker.start()
    print(f"Webhook receiver on http://{args.host}:{args.port}/ for {args.model_name}@{args.alias}")
    print("(Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Verify MLflow's signed registry webhook and run rollout.py for the alias.",
        epilog="Arguments after -- go to rollout.py unchanged, e.g. -- --port 6080",
    )
    parser.add_argument("--port", type=int, default=5090, help="port (default: %(default)s)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address (default: %(default)s: the tracking server on this machine can call it)",
    )
    parser.add_argument(
        "--model-name",
        default="breast-cancer-classifier",
        help="react to this registered model only (default: %(default)s)",
    )
    parser.add_argument(
        "--alias", default="champion", help="react to this alias only (default: %(default)s)"
    )
    parser.add_argument(
        "--secret-env",
        default="WEBHOOK_SECRET",
        help="environment variable holding the webhook's secret, if set (default: %(default)s; "
        "else rollout/state/webhook-secret)",
    )
    parser.add_argument("rollout_args", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
