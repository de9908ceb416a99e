"""Start, watch, cancel, resume and delete runs in background processes.

Each run is a ``python -m cbal worker RUN_ID`` process in its own session, so it outlives the
page (or shell) that started it; everything about it is read back from the store. A worker waits
for one of ``max_concurrent`` slots (:func:`slot`, shared with sweep runs) before it trains, so
extra runs queue instead of fighting over the cores. No torch here: the dashboard imports this,
and asks :func:`device_info` (a cached probe in a child process) whether a GPU is available.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbal import process
from cbal.config import RunConfig
from cbal.store import (
    DamagedRun,
    RunInfo,
    Store,
    StoreError,
    atomic_write_json,
    hold_first_free,
    live_state,
    remote,
    worker_alive,
)
from cbal.strategies import STRATEGIES

if TYPE_CHECKING:
    from cbal.sweep import Sweep

ENV_MAX = "CBAL_MAX_CONCURRENT"
ACTIVE = ("queued", "running")
DEVICE_FILE = "device.json"
# Run by the device probe in a child process, so that the caller never imports torch.
_PROBE = """
import json, sys
info = {"python": sys.executable, "cuda": False, "name": None, "torch": None}
try:
    import torch
    info["torch"] = torch.__version__
    if torch.cuda.is_available():
        info.update(cuda=True, name=torch.cuda.get_device_name(0))
except Exception as exc:
    info["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(info))
"""


def max_concurrent() -> int:
    """Concurrent training runs: ``$CBAL_MAX_CONCURRENT``, else one per core."""
    env = os.environ.get(ENV_MAX)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"{ENV_MAX}={env!r} must be a positive integer") from None
    # measured on 2 cores with digits: two 1-thread runs side by side finish in 24 s, the same two
    # one after the other with 2 threads each in 40 s
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def slot(store: Store, poll: float = 0.5, limit: int | None = None) -> Iterator[int]:
    """Block until one of this host's concurrency slots is free and hold it (released on exit
    or death); yields its index.

    The one slot scheme of the store: flock'ed files ``<root>/slots/<host>-<i>.lock`` for
    ``i < limit`` (default :func:`max_concurrent`). Background runs (CLI workers, dashboard
    launches) and sweep runs all take one, so they share one limit; a sweep's GPU run asks
    for ``devices × gpu_jobs`` slots and trains on device ``index % devices``. Named by host,
    so a store shared by several machines never mixes their slots."""
    n = max_concurrent() if limit is None else max(1, limit)
    host = socket.gethostname()
    paths = [store.root / "slots" / f"{host}-{i}.lock" for i in range(n)]
    with hold_first_free(paths, poll) as i:
        yield i


def threads_per_run() -> int:
    """Torch CPU threads of a run, whichever entry point starts it (unless asked otherwise, see
    :func:`cbal.loop.run_threads`): the cores shared among the concurrent background runs."""
    return max(1, (os.cpu_count() or 1) // max_concurrent())


def spawn(store: Store, run_id: str) -> int:
    """Start the background worker of ``run_id``; returns its pid."""
    max_concurrent()  # a bad $CBAL_MAX_CONCURRENT is an error here, not a silent dead worker
    if is_alive(store, run_id):
        raise StoreError(f"run {run_id} already has a live process")
    store.clear_cancel(run_id)  # starting it again is asking it to run
    log = os.fdopen(store.open_append(run_id, "worker.log"), "ab")
    cmd = [sys.executable, "-m", "cbal", "--cache-dir", str(store.root), "worker", run_id]
    env = {
        **os.environ,
        "PYTHONPATH": _package_root() + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    started = process.start_time(proc.pid)

    def queued(status: dict[str, Any]) -> dict[str, Any]:
        if status.get("pid") == proc.pid:  # the worker has written its own status already
            return status
        host = socket.gethostname()
        mine = {"pid": proc.pid, "pid_start": started, "host": host, "sigterm": True}
        return {**status, "state": "queued", **mine}

    store.update_status(run_id, queued)
    return proc.pid


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def start(store: Store, config: RunConfig, tags: dict[str, Any] | None = None) -> str:
    """Create ``config`` as a run in the store and start it in the background."""
    run_id = store.create_run(config, tags=tags)
    spawn(store, run_id)
    return run_id


def start_sweep(store: Store, sweep: Sweep) -> list[str]:
    """Create ``sweep``'s runs as :func:`cbal.sweep.create_runs` does (tagged with the sweep,
    which is their group) and start each in the background; the run ids in grid order."""
    from cbal.sweep import create_runs

    ids = list(create_runs(store, sweep).values())
    for run_id in ids:
        spawn(store, run_id)
    return ids


def new_group_name() -> str:
    """A name no earlier launch has: a dashboard launch is always a new group of runs."""
    return time.strftime("g%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def is_alive(store: Store, run_id: str) -> bool:
    """Whether the run's worker (verified by pid and start time, see cbal.process) is alive."""
    return worker_alive(store.read_status(run_id))


def cancel(store: Store, run_id: str, timeout: float = 10.0) -> bool:
    """Stop the run however it was started; finished cycles stay. Returns True when a process
    was stopped.

    A cancel request is left in the run folder: the loop stops at its next step, wherever it
    runs. A process that stops cleanly on SIGTERM (a cbal command: ``status["sigterm"]``) also
    gets SIGTERM, then SIGKILL after ``timeout``, but only if it is verifiably the run's worker.
    Any other (a pool worker of a sweep, a worker on another host) only gets the request, and
    is waited for up to ``timeout``.
    """
    status = store.read_status(run_id)
    if status.get("state") not in ACTIVE:
        return False
    store.request_cancel(run_id)
    pid, started = status.get("pid"), status.get("pid_start")
    if worker_alive(status) and (remote(status) or not status.get("sigterm")):
        if not _stopped(store, run_id, timeout):
            raise StoreError(f"run {run_id}: cancel requested; it stops at its next step")
        return True
    signalled = process.send(pid, started, signal.SIGTERM)
    if not _gone(pid, started, timeout):
        process.send(pid, started, signal.SIGKILL)
        if not _gone(pid, started, timeout):
            raise StoreError(f"run {run_id}: process {pid} does not stop; cancel requested")

    def stopped(now: dict[str, Any]) -> dict[str, Any]:
        return {**now, "state": "cancelled", "pid": None} if now["state"] in ACTIVE else now

    store.update_status(run_id, stopped)
    store.clear_cancel(run_id)
    return signalled


def _gone(pid: Any, started: Any, timeout: float) -> bool:
    deadline = time.time() + timeout
    while process.is_process(pid, started):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stopped(store: Store, run_id: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    while live_state(store.read_status(run_id)) in ACTIVE:
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def resume(store: Store, run_id: str) -> int:
    """Start a new worker for a failed or cancelled run; it continues after its last cycle.
    NotReloadable (a StoreError) for a run of cbal.run's in-memory data or model factory,
    which only cbal.run itself can resume."""
    from cbal.loop import check_reloadable

    check_reloadable(run_id, store.load_config(run_id), None, None)
    return spawn(store, run_id)


def delete(store: Store, run_id: str) -> None:
    """Stop the run if it is alive and wait for it, then remove its folder. Refused (StoreError)
    while any process still holds the run, e.g. a worker on another host."""
    try:
        status = store.read_status(run_id)
    except DamagedRun:
        status = {}  # unreadable: the run's lock alone says whether a process holds it
    if status:
        cancel(store, run_id)
        if remote(status) and worker_alive(status):
            raise StoreError(
                f"run {run_id} runs on {status['host']}: it stops at its next step "
                "(cancel requested); delete it then"
            )
    store.delete_run(run_id)


def wait(store: Store, run_ids: Iterable[str], timeout: float = 600.0) -> dict[str, str]:
    """Poll until every run has stopped; returns run id → final state."""
    pending = list(run_ids)
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = {r: store.run_info(r).state for r in pending}
        if all(s not in ACTIVE or not is_alive(store, r) for r, s in states.items()):
            return {r: store.run_info(r).state for r in pending}
        time.sleep(0.2)
    raise TimeoutError(f"runs still going after {timeout}s: {pending}")


def group_of(info: RunInfo) -> str | None:
    """The group tag of the run (its sweep, for runs of a sweep or a dashboard launch)."""
    group = (info.status.get("tags") or {}).get("group")
    return str(group) if group else None


def groups(store: Store) -> dict[str, list[RunInfo]]:
    """Runs by group tag, newest group first; a run started alone is a group of its own id."""
    order = {name: k for k, name in enumerate(STRATEGIES)}
    out: dict[str, list[RunInfo]] = {}
    for info in store.scan_runs()[0]:  # damaged folders are shown apart
        out.setdefault(group_of(info) or info.run_id, []).append(info)
    for infos in out.values():  # registry order (baselines beside their CB variants), then seed
        infos.sort(key=lambda i: (order.get(i.config.strategy, len(order)), i.config.seed))
    return dict(sorted(out.items(), key=lambda kv: _created(kv[1]), reverse=True))


def _created(infos: list[RunInfo]) -> float:
    return max(float(i.status.get("created") or 0.0) for i in infos)


def duration(info: RunInfo, now: float | None = None) -> float | None:
    """Seconds the run has spent in its worker: until it finished, stopped, or now if active."""
    started = info.status.get("started")
    if not started:
        return None
    end = info.status.get("finished") if info.state == "done" else None
    if end is None:
        end = (now or time.time()) if info.state in ACTIVE else info.status.get("heartbeat")
    return max(0.0, float(end or started) - float(started))


def device_info(store: Store, refresh: bool = False, timeout: float = 120.0) -> dict[str, Any]:
    """Whether torch sees a CUDA GPU: ``{cuda, name, torch, python[, error]}``.

    The answer comes from ``python -c "import torch ..."`` in a child process (the dashboard
    never imports torch) and is cached in ``<root>/device.json``; the cache is reused while it
    was made by this Python interpreter, unless ``refresh``.
    """
    path = store.root / DEVICE_FILE
    if not refresh:
        with contextlib.suppress(OSError, ValueError):
            cached: dict[str, Any] = json.loads(path.read_text())
            if cached.get("python") == sys.executable:
                return cached
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        # not cached: the next call tries again
        return {
            "python": sys.executable,
            "cuda": False,
            "name": None,
            "torch": None,
            "error": f"device probe failed: {exc}",
        }
    info["checked"] = time.time()
    with contextlib.suppress(OSError):
        store.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, info)
    return info
