"""Ask the tracking server to call webhook_receiver.py whenever an alias is set.

What you learn here: a registry webhook is a row on the tracking server, made with
`MlflowClient().create_webhook`: a URL, the events it wants, and a secret. From then on the
server POSTs each such event to the URL, signed with the secret (webhook_receiver.py explains
the signature). Whoever knows the secret can sign a call that rolls out a model, so it is
never committed: it comes from $WEBHOOK_SECRET, else from rollout/state/webhook-secret
(git-ignored, readable by you only), which the receiver or this script writes on first use.

Webhooks are sent by a tracking server (`./team-server/tracking_server.sh`), not by a SQLite
file, so MLFLOW_TRACKING_URI must name one. The server refuses http:// URLs and addresses on
this machine or a private network unless it was started with
MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true:
rollout/README.md says why, and when not to.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5060 python rollout/create_webhook.py

Running it again replaces the webhook of the same name. Then MLflow's own test call checks the
path end to end: the receiver answers it (a signed call for another model) with 200. The
webhook stays in the server's store until it is deleted; when you are done:

    MLFLOW_TRACKING_URI=http://127.0.0.1:5060 python rollout/create_webhook.py --delete
"""

import argparse
import os

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from webhook_receiver import webhook_secret  # the same secret, from the same place

NAME = "roll-out-champion"
EVENT = "model_version_alias.created"


def main(argv=None):
    args = parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        raise SystemExit(
            "error: webhooks are sent by a tracking server; start one "
            "(./team-server/tracking_server.sh) and set MLFLOW_TRACKING_URI=http://<host>:<port>"
        )
    client = MlflowClient()
    if args.delete:
        deleted = delete_webhooks(client, args.name)
        for webhook in deleted:
            print(f"Deleted webhook {webhook.name!r} ({webhook.webhook_id})")
        if not deleted:
            print(f"No webhook named {args.name!r}: nothing to delete")
        return
    secret = webhook_secret(args.secret_env)
    try:
        delete_webhooks(client, args.name)  # a second run replaces the first
        webhook = client.create_webhook(
            name=args.name,
            url=args.url,
            events=[EVENT],
            secret=secret,
            description="webhook_receiver.py: roll out the new champion",
        )
    except MlflowException as exc:
        message = str(exc).splitlines()[0]
        hint = ""
        if "scheme" in message or "public" in message or "private" in message.lower():
            hint = (
                " (on one machine: start the server with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https"
                " MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true)"
            )
        raise SystemExit(f"error: the server refused the webhook: {message}{hint}") from None
    print(f"Webhook {webhook.name!r} ({webhook.webhook_id}): {EVENT} -> {webhook.url}")
    # The server sends an example event, signed, and reports what the receiver answered.
    result = client.test_webhook(webhook.webhook_id)
    if not result.success:
        raise SystemExit(
            f"error: the test call failed: {result.error_message or result.response_status} "
            f"{(result.response_body or '').strip()}; is webhook_receiver.py running, with the "
            "same secret?"
        )
    print(f"Test call: HTTP {result.response_status}, {result.response_body.strip()}")


def delete_webhooks(client, name):
    """Delete the server's webhooks called `name`; return them."""
    named = [webhook for webhook in client.list_webhooks() if webhook.name == name]
    for webhook in named:
        client.delete_webhook(webhook.webhook_id)
    return named


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Create the registry webhook that calls webhook_receiver.py on every alias "
        "move, signed with the secret in $WEBHOOK_SECRET (else rollout/state/webhook-secret).",
    )
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:5090/",
        help="the receiver's URL (default: %(default)s); a real deployment uses https",
    )
    parser.add_argument("--name", default=NAME, help="the webhook's name (default: %(default)s)")
    parser.add_argument(
        "--delete",
        action="store_true",
        help="delete the webhook of that name instead: the server stops calling the receiver",
    )
    parser.add_argument(
        "--secret-env",
        default="WEBHOOK_SECRET",
        help="environment variable holding the secret, if set (default: %(default)s; else "
        "rollout/state/webhook-secret)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
