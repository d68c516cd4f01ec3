"""A tracking server that is down, or any error, ends in one line, not a traceback. Not the lesson.

The scripts use it at two places, one line each:

- `check_tracking_server()`: against a tracking server (`MLFLOW_TRACKING_URI=http://...`), one
  quick request before any work, so that a server that is down is one line in seconds, not
  minutes of MLflow's silent retries; and retries bounded for the rest of the run;
- `exit_on_error(main)`: whatever still goes wrong (an MLflow error, Ctrl-C, `kill`, a closed
  terminal) ends as one line on stderr and a non-zero exit, never a traceback. A run in
  progress has already been ended as FAILED by its `with mlflow.start_run()` block, so none is
  left RUNNING.

`first_line(error)` is what those lines quote of an error: a failed request is shortened to
what was asked and why it failed, and a refusal (HTTP 403) names the permission to ask for.
The training scripts run without this file: copy one into your own project and it works there,
with Python's own error messages.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable


class Stopped(BaseException):
    """Ctrl-C (SIGINT), SIGTERM (`kill`, a scheduler, a CI timeout) or SIGHUP (a closed terminal).

    Python's default for SIGTERM and SIGHUP is to die on the spot, and a run in progress stays
    RUNNING, with no end time, for ever. Raised where the script is instead, it ends the `with
    mlflow.start_run()` block, which marks the run FAILED. Not a KeyboardInterrupt, which
    Ctrl-C would raise: scikit-learn's neural network catches that one inside `fit`, stops
    training early and returns as if it had finished, and the half-trained model would be
    logged as FINISHED.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_on_signal(signum, _frame) -> None:
    # A second signal is not ignored: it stops the process as it would have without us.
    for each in Stopped.SIGNALS:
        signal.signal(each, signal.default_int_handler if each == signal.SIGINT else signal.SIG_DFL)
    raise Stopped(signum)


def first_line(message) -> str:
    """The first line of an error's text: what a one-line error can quote of it.

    A failed request to a tracking server is shortened to what was asked and why it failed:
    MLflow's own text quotes the whole retried URL, query string and all.
    """
    lines = str(message).strip().splitlines()
    line = lines[0] if lines else type(message).__name__
    failed = re.match(r"API request to (\S+) failed with (?:timeout )?exception (.*)", line)
    if failed:
        url, why = failed[1].split("?")[0], http_failure(failed[2])
        if "/mlflow-artifacts/" in url and why.startswith("HTTP 5"):
            # The server proxies artifacts: a 5xx on an upload is its object store failing.
            why += ", the server could not write to its artifact store (is it up? see the server's log)"
        return f"request to {url} failed: {why}"
    denied = re.match(
        r"API request to endpoint \S+/mlflow/(\S+) failed with error code 403\b", line
    )
    if denied:
        return permission_denied(denied[1])
    return line


# What MLflow's basic-auth app asks of an account for the calls the scripts make that change
# something (team-server/exposing.md, "Accounts and roles"). The server's 403 says only
# "Permission denied"; the reader needs to know which permission to ask the admin for.
NEEDED_PERMISSION = {
    "runs/create": "creating a run needs EDIT on its experiment",
    "runs/delete": "deleting a run needs MANAGE on its experiment",
    "model-versions/create": "registering a version needs EDIT on the registered model",
    "registered-models/alias": "moving an alias needs EDIT on the registered model (reading it, READ)",
}


def permission_denied(call: str) -> str:
    """One line for a 403 from a basic-auth server: who was refused, and what they lack."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(none)")
    needs = NEEDED_PERMISSION.get(call, f"{call} needs a permission this account lacks")
    return f"permission denied (HTTP 403) for account {user!r}: {needs}; an admin can grant it"


def http_failure(text) -> str:
    """'connection refused', 'HTTP 500 responses', 'timed out'... out of requests' long text."""
    text = str(text)
    if status := re.search(r"too many (\d+) error responses", text):
        return f"HTTP {status[1]} responses"
    if errno := re.search(r"\[Errno -?\d+\] ([^'\")]+)", text):
        return errno[1].strip().lower()  # connection refused, name or service not known, ...
    if re.search(r"(?i)SSL|certificate", text):
        return "TLS failed (a self-signed server? see MLFLOW_TRACKING_SERVER_CERT_PATH)"
    if re.search(r"(?i)timed out|timeout", text):
        return "timed out"
    if re.search(r"Connection aborted|RemoteDisconnected", text):
        return "the connection was dropped"
    return text[:120]


# MLflow retries a failed request 7 times with exponential back-off (about 4 minutes per call,
# and a run makes several), and waits 120 s for an answer: against a server that went away, a
# script seems to hang. These bounds give up after about 10 s per call and still ride out a
# blip of a few seconds. They apply only where you have not set your own (team-server/README.md).
BOUNDED_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",  # 4 attempts in all
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # waits of 0, 2 and 4 s between them
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",  # seconds to connect, and to wait for each answer
}


def check_tracking_server(timeout: float = 5) -> None:
    """Against an http(s) tracking URI: bound MLflow's retries, then ask the server once.

    Exits with one line, before any run starts, when nothing answers at the URI or the server
    answers with an error of its own (its database down, say). A 401 or 403 is an answer: the
    server is up, and MLflow's next request reports the credentials problem itself.
    """
    import mlflow
    import requests

    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    for name, value in BOUNDED_RETRIES.items():
        os.environ.setdefault(name, value)
    try:
        answer = requests.get(
            f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout,
            verify=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
            or os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() != "true",
        )
    except requests.RequestException as exc:
        raise SystemExit(
            f"error: no tracking server answers at {uri} ({http_failure(exc)}): is it running, "
            "and is MLFLOW_TRACKING_URI right?"
        ) from None
    if answer.status_code >= 500:
        raise SystemExit(
            f"error: the tracking server at {uri} answers HTTP {answer.status_code}: see its "
            "log (is its database up?)"
        )


def exit_on_error(main: Callable[[], object]) -> None:
    """Run `main`; turn the errors a reader can cause into one line on stderr and an exit code.

    An exception raised inside `with mlflow.start_run()` has already ended that run as FAILED
    by the time it arrives here, so no run is left RUNNING.
    """
    from mlflow.exceptions import MlflowException

    # A signal the shell told us to ignore (`nohup`, a background job's Ctrl-C) stays ignored.
    previous = {
        signum: signal.signal(signum, stop_on_signal)
        for signum in Stopped.SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        main()
    except BrokenPipeError:
        # `python predict.py | head` closed our stdout early: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Stopped as stopped:
        how = (
            "interrupted"
            if stopped.signum == signal.SIGINT
            else f"stopped by {signal.Signals(stopped.signum).name}"
        )
        print(f"error: {how} (a run in progress was ended as FAILED)", file=sys.stderr)
        sys.exit(128 + stopped.signum)  # the shell's convention: 130, 143, 129
    except KeyboardInterrupt:  # a second Ctrl-C, during the clean-up
        print("error: interrupted (a run in progress was ended as FAILED)", file=sys.stderr)
        sys.exit(130)
    except MlflowException as exc:
        sys.exit(f"error: MLflow: {first_line(exc)}")
    except (ValueError, TypeError) as exc:
        # scikit-learn's own checks ("The 'alpha' parameter ... must be ...").
        sys.exit(f"error: {first_line(exc)}")
    finally:  # as they were (a test may call main() in its own process)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
