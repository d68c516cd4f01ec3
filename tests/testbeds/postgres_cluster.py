"""A throwaway PostgreSQL 15 cluster on a free loopback port: for the team-server tests and the
benchmark's parallel-load part. Standard library only, so that `make bench` needs no pytest.

    with throwaway_postgres() as postgres:      # an empty `mlflow` database, user `mlflow`
        BACKEND_STORE_URI=postgres.uri ...
        postgres.stop(); postgres.start()        # what a database restart does to a server

It lives in its own temporary folder, owned by the user that runs it (initdb and postgres
refuse to run as root: as root they run as `nobody`), and is stopped, whole process group, and
deleted afterwards, also when the caller fails.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import process_groups

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    nobody = pwd.getpwnam("nobody")
    return [
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--",
    ]


@dataclass
class Postgres:
    base: Path
    port: int
    user: list[str]
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg://mlflow@127.0.0.1:{self.port}/mlflow"

    def run(self, *command) -> None:
        env = {**os.environ, "LC_ALL": "C"}
        subprocess.run(
            command, env=env, cwd=self.base, check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        # Durability off: a throwaway database, and fsyncs cost seconds.
        self.process = subprocess.Popen(
            [*self.user, PG_BIN / "postgres", "-D", self.base / "data", "-p", str(self.port)]
            + ["-k", self.base / "sockets", "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
            + ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            env={**os.environ, "LC_ALL": "C"},
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "postgres.log", "a"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        ready = [PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while subprocess.run(ready, capture_output=True).returncode:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.base / "postgres.log").read_text())
            time.sleep(0.2)

    def stop(self) -> None:
        """PostgreSQL's "fast shutdown" (SIGINT): clients cut off, shared memory released."""
        if self.process is None:
            return
        process_groups.stop_process(self.process, signal.SIGINT, 20)
        self.process = None


@contextlib.contextmanager
def throwaway_postgres():
    if not (PG_BIN / "initdb").is_file():
        raise FileNotFoundError(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    user = _as_postgres_user()
    base = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))
    if user:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = Postgres(base=base, port=port, user=user)
    try:
        cluster.run(
            *user,
            PG_BIN / "initdb",
            "-D",
            base / "data",
            "-U",
            "mlflow",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        cluster.run(*user, "mkdir", base / "sockets")
        cluster.start()
        cluster.run(
            PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"
        )
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
