"""Which process is a run's worker: a pid alone is not enough, since the kernel reuses pids.

A worker is known by its pid *and* its start time (``/proc/<pid>/stat``, clock ticks since
boot), recorded in status.json when it starts. A process is the run's only if both match; only
then may it be signalled, and only through a pidfd opened before the check, so a pid reused
between the check and the signal is never hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

_PROC = "/proc"


def valid_pid(pid: Any) -> int | None:
    """``pid`` as a process id, or None: a bool, a non-integer or a pid <= 0 is no process."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    return pid


def start_time(pid: Any) -> int | str | None:
    """The start time of live process ``pid`` (None if there is none, or it is a zombie)."""
    pid = valid_pid(pid)
    if pid is None:
        return None
    if not os.path.isdir(f"{_PROC}/self"):  # e.g. macOS: ask ps
        return _ps_start(pid)
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields after the command name start at field 3 (state); field 22 is the start time
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def _ps_start(pid: int) -> str | None:
    try:
        out = subprocess.run(
            ["ps", "-o", "stat=,lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.split(maxsplit=1)
    except (OSError, subprocess.SubprocessError):
        return None
    return out[1].strip() if len(out) == 2 and not out[0].startswith("Z") else None


def is_process(pid: Any, started: Any) -> bool:
    """Whether ``pid`` is alive and is the very process that started at ``started``."""
    return started is not None and start_time(pid) == started


def send(pid: Any, started: Any, sig: int) -> bool:
    """Send ``sig`` to the process ``(pid, started)`` only if it is that process; True if sent."""
    pid = valid_pid(pid)
    if pid is None:
        return False
    if not hasattr(os, "pidfd_open"):  # not Linux: check, then signal
        if not is_process(pid, started):
            return False
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already
        return False
    try:
        if not is_process(pid, started):  # checked after the pidfd pinned the process
            return False
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:  # exited meanwhile
            return False
        except PermissionError:  # another user's process is never ours to stop
            return False
        return True
    finally:
        os.close(fd)
