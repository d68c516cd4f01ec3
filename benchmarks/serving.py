"""Part 4, serving: serve_model.sh's `/invocations` under wrk, against predict() in-process."""

import json
import re
import timeit

import mlflow
import numpy as np
from harness import FEATURES, MODEL_NAME, WRK_POST, Bench, free_port, group_memory, wrk_latency


def measure(bench: Bench):
    uri, port, rows = f"sqlite:///{bench.store('champion')}", free_port(), []
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    url, env = f"http://127.0.0.1:{port}/invocations", bench.env()
    with bench.model_server(uri, port, "serve.log") as process:
        for size in (1,) if bench.s.quick else (1, 100):
            frame = FEATURES.head(size).astype("float64")
            body = json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)})
            # Each answer checked first against predict() in-process, which is timed too.
            post = f"curl -sf {url} -H 'Content-Type: application/json' -d '{body}'"
            assert json.loads(bench.sh(post, env))["predictions"] == model.predict(frame).tolist()
            seconds = timeit.repeat(lambda f=frame: model.predict(f), number=1, repeat=200)
            local = " / ".join(f"{s * 1000:.1f}ms" for s in np.percentile(seconds, [50, 99]))
            lua = bench.work / f"post-{size}.lua"
            lua.write_text(WRK_POST.format(body=body))
            for connections in (1, 4):
                wrk = f"wrk --latency -c{connections} -t1 -d{bench.s.wrk_seconds}s -s {lua} {url}"
                out = bench.sh(wrk, env)
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
                errors = ", ".join(re.findall(r"Non-2xx.*|Socket errors.*", out)) or "none"
                cells = [size, connections, *wrk_latency(out), f"{rps:.0f}", errors, local]
                rows.append(" | ".join(map(str, cells)))
        memory = group_memory(process.pid, "VmHWM")
    return (
        "4. Serving",
        f"`serve_model.sh` (`mlflow models serve`, 1 worker) on 127.0.0.1 under wrk, "
        f"{bench.s.wrk_seconds} s per table row; each answer was first checked against "
        "`predict()` in-process (last column: its p50 / p99). Peak memory of the server's "
        f"processes: {memory:.0f} MiB.",
        "rows / request | connections | p50 | p99 | requests/s | errors | in-process",
        rows,
        "the HTTP hop costs a few milliseconds per request. More connections than workers "
        "queue: latency grows, throughput stays; raise `WORKERS` if you have cores for them.",
    )
