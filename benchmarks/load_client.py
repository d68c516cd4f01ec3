"""One team member under load: train_rfc.py's main() run N times against MLFLOW_TRACKING_URI,
timing every HTTP request MLflow makes (requests' Session.send) as a JSON line: method, path,
status, milliseconds. parallel_load.py turns retries off, so each failed request shows, its run
FAILED.

    python benchmarks/load_client.py RUNS EXPERIMENT OUTPUT.jsonl [train_rfc.py flags]
"""

import contextlib
import json
import sys
from urllib.parse import urlsplit

import requests

import train_rfc


def main():
    runs, experiment, output, *flags = sys.argv[1:]
    timings = open(output, "w")
    send = requests.Session.send

    def timed_send(session, request, **kwargs):
        line = {"method": request.method, "path": urlsplit(request.url).path, "status": 0}
        try:  # status 0: no answer at all
            response = send(session, request, **kwargs)
            line.update(status=response.status_code, ms=response.elapsed.total_seconds() * 1000)
            return response
        finally:
            timings.write(json.dumps(line) + "\n")

    requests.Session.send = timed_send
    # A failed run is counted here, not kept in offline-runs/.
    train_rfc.keep_if_logging_fails = lambda *_: contextlib.nullcontext()
    failed = 0
    for _ in range(int(runs)):
        try:
            train_rfc.main(["--experiment-name", experiment, *flags])
        except (Exception, SystemExit) as exc:  # a failed request ends the run: count it
            failed += 1
            print(f"run failed: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
    timings.close()
    sys.exit(1 if failed == int(runs) else 0)


if __name__ == "__main__":
    main()
