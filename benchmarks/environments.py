"""Part 13, the champion rebuilt, and its probabilities: serve_model.sh from its start to its first
answer in this environment (ENV_MANAGER=local) and in one built from the model's pinned
requirements (uv from a cold cache, from a warm one, and the environment reused; MLflow's
virtualenv manager beside it), then one request's latency answering labels against
probabilities (ANSWER=probabilities), under wrk."""

import json
import re
import shlex
import time

from harness import PYTHON, REPO, WRK_POST, Bench, free_port, wrk_latency

SAMPLE = REPO / "data" / "sample_request.json"
SERVE = REPO / "serve_model.sh"


def measure(bench: Bench):
    uri = f"sqlite:///{bench.store('champion')}"
    lua = bench.work / "environments.lua"
    lua.write_text(WRK_POST.format(body=SAMPLE.read_text()))
    envs, cache = bench.work / "mlflow-envs", bench.work / "uv-cold-cache"
    starts = {
        "`local`: this environment": {},
        "`uv`, cold: an empty uv cache, every package downloaded": {"ENV_MANAGER": "uv", "MLFLOW_ENV_ROOT": str(envs / "cold"), "UV_CACHE_DIR": str(cache)},
        "`uv`, cache warm (the packages downloaded once)": {"ENV_MANAGER": "uv", "MLFLOW_ENV_ROOT": str(envs / "warm"), "UV_CACHE_DIR": str(cache)},
        "`uv`, its environment built before": {"ENV_MANAGER": "uv", "MLFLOW_ENV_ROOT": str(envs / "warm"), "UV_CACHE_DIR": str(cache)},
    }  # fmt: skip
    rows = [f"{name} | {start(bench, uri, extra, lua)[0]} | | " for name, extra in starts.items()]
    # MLflow's virtualenv manager, which serve_model.sh does not offer: pyenv's Python, pip.
    port = free_port()
    command = f"{shlex.quote(PYTHON)} -m mlflow models serve -m models:/breast-cancer-classifier/1 -h 127.0.0.1 -p {port} --env-manager virtualenv"  # fmt: skip
    env = bench.env(uri, MLFLOW_ENV_ROOT=str(envs / "virtualenv"))
    began = time.monotonic()
    with bench.serve(["bash", "-c", command], env, f"http://127.0.0.1:{port}/ping", "virtualenv.log", timeout=1200):  # fmt: skip
        rows.append(
            f"`virtualenv` (MLflow's: pyenv's Python, pip) | {time.monotonic() - began:.0f} s | | "
        )
    answers = {}
    for answer in ("labels", "probabilities"):
        cells, answers[answer] = start(bench, uri, {"ANSWER": answer}, lua, load=True)
        rows.append(f"`local`, ANSWER={answer} | {cells}")
    labels, probabilities = answers.values()
    assert all(round(sum(row), 6) == 1 for row in probabilities), probabilities
    return (
        "14. The champion rebuilt, and its probabilities",
        "`serve_model.sh` timed from its start to its first answer to `data/sample_request.json` "
        "(5 rows), once per row (a start is the measure; one run each): in this environment, "
        "and in one that `mlflow models serve --env-manager uv` builds from the model's "
        "requirements (every package pinned, 90 of them), with uv's cache empty, warm, and the "
        "environment already built; MLflow's `virtualenv` manager (pyenv's Python 3.11.7, "
        "pip) beside it. Then wrk, 1 connection, "
        f"{bench.s.wrk_seconds} s, against a server answering labels and one answering "
        "probabilities (`ANSWER=probabilities`), 1 worker each.",
        "server | start to first answer | one request p50 / p99 | requests/s",
        rows,
        "an environment of the model's own costs a build on its first start on a machine; uv "
        "builds it several times faster than MLflow's `virtualenv` manager (pip), and a start "
        "that finds it built costs about what `local` costs. `ANSWER=probabilities` adds to the "
        "start the saving of the copy that answers them; per request, probabilities cost about "
        "what labels cost: one `predict_proba` in place of `predict`, a few more numbers.",
    )


def start(bench: Bench, uri: str, extra: dict, lua, load=False):
    """serve_model.sh with `extra` settings: its start to first answer (and under wrk)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = bench.env(uri, PORT=str(port), SERVED_FOLDER=str(bench.work / "served"), **extra)
    post = f"curl -sf {url}/invocations -H 'Content-Type: application/json' -d @{SAMPLE}"
    began = time.monotonic()
    with bench.serve([SERVE], env, f"{url}/ping", f"serve-{port}.log", timeout=1200):
        answer = json.loads(bench.sh(post, env))["predictions"]
        cells = [f"{time.monotonic() - began:.0f} s"]
        if load:
            out = bench.sh(f"wrk --latency -c1 -t1 -d{bench.s.wrk_seconds}s -s {lua} {url}/invocations", env)  # fmt: skip
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
            cells += [" / ".join(wrk_latency(out)), f"{rps:.0f}"]
    return " | ".join(cells), answer
