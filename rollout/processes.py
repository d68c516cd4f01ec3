"""The rollout's small plumbing: a busy port and a process's last line, each as one line.

Starting and stopping HAProxy and the two model servers, each in a process group of its own
named by a pid file in the state folder, is process_groups.py's (the repository root; the team
stack uses it too). Nothing here knows about models, slots or HAProxy's config; rollout.py does.
"""

import tutorial_store


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
