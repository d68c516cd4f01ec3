"""Part 10, a container image: container/build_image.sh's build (its time, the image's size),
container/run_image.sh's start (the time to its first answer), and its `/invocations` under wrk
beside serve_model.sh's, on the same machine, in the same run, one worker each."""

import contextlib
import json
import platform
import re
import time

from harness import MODEL_NAME, REPO, WRK_POST, Bench, free_port, group_memory, wrk_latency

from testbeds import docker_daemon  # the tests' throwaway Docker daemon

SAMPLE = REPO / "data" / "sample_request.json"
IMAGE = f"{MODEL_NAME}:v1"
SERVERS = {"serve_model.sh": REPO / "serve_model.sh", "run_image.sh": REPO / "container" / "run_image.sh"}  # fmt: skip


def measure(bench: Bench):
    uri = f"sqlite:///{bench.store('champion')}"
    base = f"python:{platform.python_version()}-slim"
    with docker(bench, base) as daemon:
        env = bench.env(uri, **daemon, BUILD_FOLDER=str(bench.work / "image-build"))
        # One build, from cold: hyperfine times it (one run: minutes each, and a second would
        # find the image built). The image and its layers go first, so that no step is cached.
        forget = f"docker rmi --force {IMAGE} >/dev/null 2>&1 || true"
        build = bench.hyperfine(str(REPO / "container" / "build_image.sh"), env, 1, 0, forget)
        size, base_size = image_size(bench, IMAGE, env), image_size(bench, base, env)
        lua = bench.work / "container-sample.lua"
        lua.write_text(WRK_POST.format(body=SAMPLE.read_text()))
        measured = {name: serve(bench, script, bench.env(uri, **daemon), lua) for name, script in SERVERS.items()}  # fmt: skip
    (served, expected), (contained, answered) = measured.values()
    assert answered == expected, f"the container answered {answered}, serve_model.sh {expected}"
    built = f"{build['s']:.0f} s | {size:.0f} MB ({size - base_size:.0f} MB above the base)"
    return (
        "10. A container image",
        f"`container/build_image.sh` once, from cold (hyperfine, 1 run), on a Docker daemon of "
        f"its own with the tests' stand-in for `{base}` as the base (Debian 12's Python, made "
        "with debootstrap: Docker Hub is out of reach here); then "
        "each server started on 127.0.0.1 with 1 worker, timed from its start to its first "
        "answer to `data/sample_request.json` (5 rows; the container's answer equal to "
        f"`serve_model.sh`'s), and loaded by wrk for {bench.s.wrk_seconds} s per cell. Memory: "
        "the server's processes; the container's as `docker stats` counts it.",
        "server | build | image | start to first answer | 1 connection: p50 / p99, req/s | "
        "4 connections: p50 / p99, req/s | memory",
        [
            f"`serve_model.sh` | no build | no image | {served}",
            f"`run_image.sh` | {built} | {contained}",
        ],
        f"the image costs its build once ({build['s']:.0f} s and {size:.0f} MB here, most of it "
        "the packages the model pins: MLflow and its dependencies); it starts in about the time "
        "`serve_model.sh` takes, since both import MLflow and load the model. Its packages are the "
        "versions the model was logged with, this environment's; its Python is the base's (here "
        "the stand-in's, see the page), so measure your own image with wrk before you size for it.",
    )


def serve(bench: Bench, script, env, lua) -> tuple[str, list]:
    """A server's cells: start to first answer, wrk at 1 and 4 connections, memory; its answer."""
    port = free_port()
    url, env = f"http://127.0.0.1:{port}", {**env, "PORT": str(port)}
    post = f"curl -sf {url}/invocations -H 'Content-Type: application/json' -d @{SAMPLE}"
    started = time.monotonic()
    with bench.serve([script], env, f"{url}/ping", f"{script.stem}.log") as process:
        answer = json.loads(bench.sh(post, env))["predictions"]
        cells = [f"{time.monotonic() - started:.1f} s"]
        for connections in (1, 4):
            wrk = f"wrk --latency -c{connections} -t1 -d{bench.s.wrk_seconds}s -s {lua} {url}/invocations"  # fmt: skip
            out = bench.sh(wrk, env)
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
            errors = "; ".join(re.findall(r"Non-2xx.*|Socket errors.*", out))
            cells.append(f"{' / '.join(wrk_latency(out))}, {rps:.0f}/s" + (f" ({errors})" if errors else ""))  # fmt: skip
        if script.name == "serve_model.sh":
            cells.append(f"{group_memory(process.pid):.0f} MiB")
        else:  # the container's processes are not the docker client's children
            name = f"{MODEL_NAME}-v1-{port}"
            usage = bench.sh(f"docker stats --no-stream --format '{{{{.MemUsage}}}}' {name}", env)
            amount, unit = re.match(r"\s*([\d.]+)\s*([KMG]i?B)", usage).groups()
            mib = float(amount) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)
            cells.append(f"{mib:.0f} MiB")
    return " | ".join(cells), answer


def image_size(bench: Bench, image: str, env) -> float:
    return int(bench.sh(f"docker image inspect {image} --format '{{{{.Size}}}}'", env)) / 1e6


@contextlib.contextmanager
def docker(bench: Bench, base: str):
    """A throwaway Docker daemon (tests/testbeds/docker_daemon.py) with the tests' stand-in for the base:
    never yours, whose images (breast-cancer-classifier:v1, say) this part would replace."""
    if why := docker_daemon.missing():
        raise RuntimeError(f"cannot start a Docker daemon of its own here: {why}")
    tarball = docker_daemon.make_stand_in_rootfs(bench.work)
    with docker_daemon.throwaway_docker() as daemon:
        daemon.load_stand_in(tarball, base)
        yield {"DOCKER_HOST": daemon.host}
