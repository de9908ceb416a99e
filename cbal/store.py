"""The run store on disk (DESIGN §4); the only module that writes runs.

Layout under ``<root>/runs/<run_id>/``: ``config.json``, ``status.json``, ``cycles.jsonl`` (one
whole, fsynced line per finished cycle) and ``cycle_<k>.npz`` (selected indices and the pool
arrays the λ explorer needs). Every write is atomic (temp file + rename) or a whole-line append,
so a kill at any moment leaves a readable store. Nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cbal.config import ConfigError, RunConfig

ENV_VAR = "CBAL_CACHE"
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATES = ("queued", "running", "done", "failed", "cancelled")
# a run on another host whose heartbeat is older than this is taken for dead
REMOTE_STALE_S = 1800.0


FAULT_ENV = "CBAL_FAULT_PAUSE"


def fault_point(name: str, cycle: int) -> None:
    """Test hook for the kill tests: at ``name@cycle`` listed in ``$CBAL_FAULT_PAUSE``, write the
    point's name to ``$CBAL_FAULT_MARK`` and sleep, so a test can SIGKILL the run right there."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or f"{name}@{cycle}" not in spec.split(","):
        return
    Path(os.environ["CBAL_FAULT_MARK"]).write_text(f"{name}@{cycle}")
    time.sleep(float(os.environ.get("CBAL_FAULT_SECONDS", "30")))


class StoreError(Exception):
    """The store cannot do what was asked (unknown run, unwritable folder, locked run...)."""


def default_root() -> Path:
    """``$CBAL_CACHE`` if set, else ``cache/`` beside the package."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "cache"


def check_run_id(run_id: str) -> str:
    """Run ids are plain names: no separators, no ``..``; a ValueError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id) or ".." in run_id:
        raise ValueError(f"run_id={run_id!r} is not a valid run id (letters, digits, . _ -)")
    return run_id


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Callable[[BinaryIO], object], fault: str = "") -> None:
    """Write through ``write`` to a temp file, fsync, then rename over ``path``.

    Readers see the old file or the new one, never a torn one. ``fault`` names a kill-test point
    (see :func:`fault_point`) between the write and the rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if fault:
            name, cycle = fault.split("@")
            fault_point(name, int(cycle))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray], fault: str = "") -> None:
    # numpy's stubs type savez's **kwds as its flags; the arrays are what it saves
    _atomic_write(path, lambda f: np.savez(f, **arrays), fault)  # type: ignore[arg-type]


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not running
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@contextlib.contextmanager
def hold_first_free(paths: list[Path], poll: float = 0.5) -> Iterator[int]:
    """Block until one of the lock files ``paths`` can be flock'ed, hold it, yield its index.

    The kernel releases an flock when its holder dies, so a killed holder never blocks others."""
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        for i, path in enumerate(paths):
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
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


@dataclass(frozen=True)
class RunInfo:
    """What the run list shows about one run."""

    run_id: str
    config: RunConfig
    status: dict[str, Any]
    cycles: list[dict[str, Any]]

    @property
    def state(self) -> str:
        """The stored state, except that a run whose process died reads 'failed' (resumable)."""
        state = str(self.status.get("state", "queued"))
        pid = self.status.get("pid")
        if state not in ("queued", "running") or not pid:
            return state
        host = self.status.get("host")
        if host and host != socket.gethostname():  # e.g. a Dask worker: judge by heartbeat
            age = time.time() - float(self.status.get("heartbeat") or 0)
            return "failed" if age > REMOTE_STALE_S else state
        if not pid_alive(pid):
            return "failed"
        return state

    @property
    def last_accuracy(self) -> float | None:
        return self.cycles[-1]["accuracy"] if self.cycles else None

    @property
    def cycles_done(self) -> int:
        """Selection cycles finished, what ``RunConfig.cycles`` counts (the run then trains once
        more, on its final labeled set, before it is done)."""
        return sum(c.get("selected_counts") is not None for c in self.cycles)

    @property
    def cycles_text(self) -> str:
        """``done/configured`` selection cycles, as every list shows them."""
        return f"{self.cycles_done}/{self.config.cycles}"


def accuracy_text(value: float | None) -> str:
    """An accuracy as every text of cbal writes it: a percentage with two decimals."""
    return "–" if value is None else f"{value:.2%}"


class Store:
    """The run store rooted at ``root`` (default: :func:`default_root`)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.runs_dir = self.root / "runs"

    # -- paths ---------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_run_id(run_id)

    def _existing(self, run_id: str) -> Path:
        path = self.run_dir(run_id)
        if not (path / "config.json").is_file():
            raise StoreError(f"run {run_id!r} not found in {self.runs_dir}")
        return path

    def exists(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / "config.json").is_file()

    # -- creating and reading runs --------------------------------------------------------------
    def create_run(self, config: RunConfig, tags: dict[str, Any] | None = None) -> str:
        """Create a run folder with its config and a 'queued' status; returns the run id."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run store at {self.runs_dir}: {exc}") from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        digest = hashlib.sha1(f"{config.to_json()}{time.time_ns()}".encode()).hexdigest()[:8]
        run_id = f"{stamp}-{config.strategy}-s{config.seed}-{digest}"
        final = self.run_dir(run_id)
        # build in a hidden temp folder and rename, so a crash never leaves a half-made run
        tmp: Path | None = None
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=self.runs_dir))
            atomic_write_bytes(tmp / "config.json", (config.to_json() + "\n").encode())
            atomic_write_json(tmp / "status.json", _status("queued", tags=tags or {}))
            os.replace(tmp, final)
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"cannot write run {run_id} in {self.runs_dir}: {exc}") from None
        _fsync_dir(self.runs_dir)
        return run_id

    def load_config(self, run_id: str) -> RunConfig:
        path = self._existing(run_id) / "config.json"
        try:
            return RunConfig.from_json(path.read_text())
        except ConfigError as exc:
            raise StoreError(f"run {run_id}: config.json cannot be used: {exc}") from None

    def read_status(self, run_id: str) -> dict[str, Any]:
        path = self._existing(run_id) / "status.json"
        try:
            status: dict[str, Any] = json.loads(path.read_text())
            return status
        except (OSError, json.JSONDecodeError) as exc:
            return {"state": "failed", "error": f"status.json unreadable: {exc}"}

    def write_status(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomic); 'heartbeat' is set to now."""
        status = self.read_status(run_id)
        status.update(fields, heartbeat=time.time())
        if status.get("state") not in STATES:
            raise ValueError(f"state={status.get('state')!r} must be one of {', '.join(STATES)}")
        atomic_write_json(self._existing(run_id) / "status.json", status)
        return status

    def read_cycles(self, run_id: str) -> list[dict[str, Any]]:
        """The finished cycles in order. A torn or corrupt line (a kill mid-append) is skipped
        with a warning, as is anything after a gap in the cycle numbers."""
        path = self._existing(run_id) / "cycles.jsonl"
        if not path.exists():
            return []
        cycles: list[dict[str, Any]] = []
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{lineno}: skipping a corrupt line", stacklevel=2)
                continue
            if not isinstance(record, dict) or record.get("cycle") != len(cycles):
                warnings.warn(f"{path}:{lineno}: skipping an out-of-order line", stacklevel=2)
                continue
            cycles.append(record)
        return cycles

    def append_cycle(
        self, run_id: str, record: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> None:
        """Record finished cycle ``record['cycle']``: its arrays first, then its JSONL line.

        The line is what marks the cycle finished, so a kill between the two writes only leaves
        an npz that the resumed run overwrites.
        """
        run_dir = self._existing(run_id)
        k = int(record["cycle"])
        done = self.read_cycles(run_id)
        if k != len(done):
            raise StoreError(f"run {run_id}: cycle {k} recorded after {len(done)} finished cycles")
        atomic_save_npz(run_dir / f"cycle_{k}.npz", arrays, fault=f"write-npz@{k}")
        fault_point("write-line", k)
        path = run_dir / "cycles.jsonl"
        # rewrite without any torn tail first, so the new line never glues onto a partial one
        lines = [json.dumps(c, sort_keys=True) + "\n" for c in done]
        if path.exists() and path.read_text(errors="replace") != "".join(lines):
            atomic_write_bytes(path, "".join(lines).encode())
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove_temp_files(self, run_id: str) -> None:
        """Delete temp files a killed writer left behind (call while holding the run's lock)."""
        for tmp in self._existing(run_id).glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def load_cycle_arrays(self, run_id: str, cycle: int) -> dict[str, np.ndarray]:
        path = self._existing(run_id) / f"cycle_{int(cycle)}.npz"
        if not path.exists():
            raise StoreError(f"run {run_id} has no arrays for cycle {cycle}")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def run_info(self, run_id: str) -> RunInfo:
        return RunInfo(
            run_id,
            self.load_config(run_id),
            self.read_status(run_id),
            self.read_cycles(run_id),
        )

    def list_runs(self) -> list[RunInfo]:
        """Every readable run, newest first; unreadable folders are skipped with a warning."""
        if not self.runs_dir.is_dir():
            return []
        infos = []
        for path in sorted(self.runs_dir.iterdir(), reverse=True):
            if path.name.startswith(".") or not RUN_ID_RE.match(path.name):
                continue
            try:
                infos.append(self.run_info(path.name))
            except (StoreError, OSError) as exc:
                warnings.warn(f"skipping run folder {path.name}: {exc}", stacklevel=2)
        return infos

    def delete_run(self, run_id: str) -> None:
        path = self._existing(run_id)
        # rename first so a half-deleted folder is never mistaken for a run
        trash = self.runs_dir / f".deleted-{run_id}-{time.time_ns()}"
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- exclusive access ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock file while the body runs; a StoreError if another process has it.

        An flock is released by the kernel when its holder dies, so a killed run never leaves a
        stale lock; the file holds the holder's pid for the error message.
        """
        path = self._existing(run_id) / "lock"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"run {run_id} is in use by process {holder}; cancel it first"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)


def _status(state: str, **extra: Any) -> dict[str, Any]:
    return {"state": state, "pid": None, "heartbeat": time.time(), "created": time.time(), **extra}
