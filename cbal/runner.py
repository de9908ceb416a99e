"""Start, watch, cancel, resume and delete runs in background processes.

Each run is a ``python -m cbal worker RUN_ID`` process in its own session, so it outlives the
page (or shell) that started it; everything about it is read back from the store. A worker waits
for one of ``max_concurrent`` slots (flock'ed files under ``<root>/slots``) before it trains, so
extra runs queue instead of fighting over the cores. No torch here: the dashboard imports this.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cbal.config import RunConfig
from cbal.store import Store, StoreError, pid_alive

ENV_MAX = "CBAL_MAX_CONCURRENT"


def max_concurrent() -> int:
    """Concurrent training runs: ``$CBAL_MAX_CONCURRENT``, else one per two cores (at least 1)."""
    env = os.environ.get(ENV_MAX)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"{ENV_MAX}={env!r} must be a positive integer") from None
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def slot(store: Store, poll: float = 0.5) -> Iterator[int]:
    """Block until one of the concurrency slots is free and hold it (released on exit or death)."""
    slots = store.root / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    while True:
        for i in range(max_concurrent()):
            fd = os.open(slots / f"{i}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield i
            finally:
                os.close(fd)
            return
        time.sleep(poll)


def spawn(store: Store, run_id: str) -> int:
    """Start the background worker of ``run_id``; returns its pid."""
    if is_alive(store, run_id):
        raise StoreError(f"run {run_id} already has a live process")
    run_dir = store.run_dir(run_id)
    log = open(run_dir / "worker.log", "ab")  # noqa: SIM115 (handed to the child)
    cmd = [sys.executable, "-m", "cbal", "--cache-dir", str(store.root), "worker", run_id]
    env = {**os.environ, "PYTHONPATH": _package_root() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    store.write_status(run_id, state="queued", pid=proc.pid, error=None)
    return proc.pid


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def start(store: Store, config: RunConfig, tags: dict[str, Any] | None = None) -> str:
    """Create ``config`` as a run in the store and start it in the background."""
    run_id = store.create_run(config, tags=tags)
    spawn(store, run_id)
    return run_id


def start_group(
    store: Store,
    base: RunConfig,
    strategies: Iterable[str],
    seeds: Iterable[int],
    lams: dict[str, float] | None = None,
) -> list[str]:
    """One run per strategy × seed sharing ``base``'s data settings, tagged with a group id."""
    lams = lams or {}
    configs = [
        base.replace(strategy=s, seed=seed, lam=lams.get(s))
        for s in strategies
        for seed in seeds
    ]
    group = time.strftime("g%Y%m%d-%H%M%S")
    return [start(store, cfg, tags={"group": group}) for cfg in configs]


def is_alive(store: Store, run_id: str) -> bool:
    return pid_alive(store.read_status(run_id).get("pid"))


def cancel(store: Store, run_id: str, timeout: float = 10.0) -> bool:
    """Stop the run's process (SIGTERM, then SIGKILL after ``timeout``); finished cycles stay.

    Returns True when a process was stopped."""
    status = store.read_status(run_id)
    pid = status.get("pid")
    if not pid_alive(pid):
        if status.get("state") in ("queued", "running"):
            store.write_status(run_id, state="cancelled", pid=None)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    if store.read_status(run_id).get("state") in ("queued", "running"):
        store.write_status(run_id, state="cancelled", pid=None)
    return True


def resume(store: Store, run_id: str) -> int:
    """Start a new worker for a failed or cancelled run; it continues after its last cycle."""
    return spawn(store, run_id)


def delete(store: Store, run_id: str) -> None:
    """Stop the run if it is alive, then remove its folder."""
    cancel(store, run_id)
    store.delete_run(run_id)


def wait(store: Store, run_ids: Iterable[str], timeout: float = 600.0) -> dict[str, str]:
    """Poll until every run has stopped; returns run id → final state."""
    pending = list(run_ids)
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = {r: store.run_info(r).state for r in pending}
        if all(s not in ("queued", "running") or not is_alive(store, r) for r, s in states.items()):
            return {r: store.run_info(r).state for r in pending}
        time.sleep(0.2)
    raise TimeoutError(f"runs still going after {timeout}s: {pending}")
