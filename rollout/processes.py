"""The process plumbing under rollout.py: start a command in a process group of its own, stop it.

rollout.py starts HAProxy and two model servers, and a later run of it (or `--stop`, or
`make clean`) must stop exactly those and nothing else. So each command starts in a new session:
its process group holds it and every process it forks (`serve_model.sh` runs MLflow, which runs
the web server), and the group's id goes into a pid file in the state folder. Stopping is a
signal to the whole group, TERM, then KILL for what is still there 10 s later.

Whether a group or a child is still alive is read from Linux's /proc, in which a zombie (a
process that has exited and waits only for its parent to read its status) does not count.
Nothing here knows about models, slots or HAProxy's config; rollout.py does.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import tutorial_store


def start_group(folder, name, command, env):
    """Start `command` in a new session, logging to <name>.log; its process group in <name>.pid."""
    with open(folder / f"{name}.log", "w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (folder / f"{name}.pid").write_text(str(process.pid))
    return process


def stop_group(pid_file):
    """Stop the process group a pid file names (TERM, then KILL after 10 s) and remove the file."""
    if not pid_file.exists():
        return False
    group = int(pid_file.read_text())
    for sig, patience in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + patience
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid_file.unlink()
    return True


def running(pid_file):
    """Whether the pid file exists and a process of the group it names is alive."""
    return pid_file.exists() and group_alive(int(pid_file.read_text()))


def group_alive(group):
    """Whether any process of the group is alive."""
    return any(its_group == group for _, _, its_group in live_processes())


def children(parent):
    """The process ids of the live children of `parent`."""
    return [pid for pid, its_parent, _ in live_processes() if its_parent == parent]


def wait_until_gone(pids, parent, timeout):
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


def port_must_be_free(host, port, what, flag):
    """Exit with one line if `port` is taken: `what` uses it, `flag` chooses another."""
    if not tutorial_store.port_is_free(host, port):
        raise SystemExit(
            f"error: port {port} on {host} ({what}) is in use; choose another with {flag}"
        )


def last_line(output):
    """The last line a process or an error wrote (bytes or str), for a one-line message."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
