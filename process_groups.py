"""Processes started in groups of their own, and stopped whole. Not the lesson.

rollout/rollout.py (HAProxy and two model servers) and team-server/team_stack.py (PostgreSQL,
the object store, the replicas, HAProxy) start long-lived processes that a later command (or
`make clean`) must stop, exactly those and nothing else. So each command starts in a new
session: its process group holds it and every process it forks (`serve_model.sh` runs MLflow,
which runs the web server), and the group's id goes into a pid file. Stopping is a signal to
the whole group, then SIGKILL for what is still there after a patience of seconds.

Whether a group or a child is still alive is read from Linux's /proc, in which a zombie (a
process that has exited and waits only for its parent to read its status) does not count.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def start_group(folder: Path, name: str, command, env=None, cwd=None, append=False):
    """Start `command` in a new session, its output in <name>.log (appended to, if `append`),
    its process group's id in <name>.pid; returns the Popen."""
    with open(folder / f"{name}.log", "a" if append else "w") as log:
        process = subprocess.Popen(
            [str(part) for part in command],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (folder / f"{name}.pid").write_text(str(process.pid))
    return process


def stop_group(pid_file: Path, first=signal.SIGTERM, patience: float = 10) -> bool:
    """Signal the process group a pid file names with `first`, SIGKILL what is left after
    `patience` seconds, and remove the file; False if there was no pid file."""
    if not pid_file.exists():
        return False
    group = int(pid_file.read_text())
    for sig, wait in ((first, patience), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + wait
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid_file.unlink()
    return True


def running(pid_file: Path) -> bool:
    """Whether the pid file exists and a process of the group it names is alive."""
    return pid_file.exists() and group_alive(int(pid_file.read_text()))


def group_alive(group: int) -> bool:
    """Whether any process of the group is alive."""
    return any(its_group == group for _, _, its_group in live_processes())


def children(parent: int) -> list[int]:
    """The process ids of the live children of `parent`."""
    return [pid for pid, its_parent, _ in live_processes() if its_parent == parent]


def wait_until_gone(pids, parent: int, timeout: float) -> None:
    """Wait, at most `timeout` seconds, until none of `pids` is still a live child of `parent`.

    A child of that parent, not any process with that id: the system may give a freed id to
    another process.
    """
    deadline = time.monotonic() + timeout
    while set(children(parent)) & set(pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def live_processes():
    """(pid, parent's pid, process group) of every live process, zombies left out."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the command name, which is in parentheses and may hold spaces.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process has gone since the glob
            continue
        state, parent, group = fields[:3]
        if state != "Z":
            yield int(stat.parent.name), int(parent), int(group)


def stop_process(process: subprocess.Popen, first=signal.SIGTERM, patience: float = 10) -> None:
    """Stop a process started in a session of its own (start_new_session=True) and every process
    of its group: `first`, then SIGKILL for what is left after `patience` seconds."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, first)
        process.wait(timeout=patience)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers: workers the leader left behind
    process.wait(timeout=10)
