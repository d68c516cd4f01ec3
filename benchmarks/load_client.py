"""A small HTTP load client, used by run.py only where wrk is not installed.

Each of `--connections` threads keeps one keep-alive connection and sends the same POST again
as soon as the answer arrives, for `--seconds`; prints p50, p99 (ms) and requests/s as JSON.

    python benchmarks/load_client.py http://127.0.0.1:5001/invocations request.json
"""

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body", type=Path, help="JSON file to POST")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    url = urlsplit(args.url)
    body = args.body.read_bytes()
    headers = {"Content-Type": "application/json"}
    latencies, failures = [], []
    deadline = time.perf_counter() + args.seconds

    def worker():
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            connection.request("POST", url.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"error: {len(failures)} requests failed (status {failures[0]})")
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    print(json.dumps({"p50": quantiles[49], "p99": quantiles[98], "rps": len(latencies) / elapsed}))


if __name__ == "__main__":
    main()
