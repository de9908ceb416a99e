"""The run store on disk; the only module that writes runs.

Layout under ``<root>/runs/<run_id>/``: ``config.json``, ``status.json``, ``cycles.jsonl`` (one
whole, fsynced line per finished cycle) and ``cycle_<k>.npz`` (selected indices and the pool
arrays the λ explorer needs). Every write is atomic (temp file + rename) or a whole-line append,
so a kill at any moment leaves a readable store. Nothing here unpickles, and nothing follows a
link: a run folder must be a real folder, and every file in it is opened with O_NOFOLLOW and
read or appended only if it is a regular file (a FIFO or device there would block or leak).
Records are checked as they are read (:mod:`cbal.records`); a run whose files are damaged is a
:class:`DamagedRun`, listed as such by :meth:`Store.scan_runs` beside the healthy ones.
docs/design.md (section 4) lists every file and record field.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cbal import process
from cbal.config import RunConfig
from cbal.records import STATES, Damage, Damaged, check_cycle, check_status, parse_json

ENV_VAR = "CBAL_CACHE"
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
CANCEL_FILE = "cancel"
# read limits: a status or config is a few kB; a cycle line a few kB per class
SMALL_FILE = 1 << 20
CYCLES_FILE = 256 << 20
_HELD: dict[str, int] = {}  # run lock files this process holds (the lock is re-entrant)
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


class DamagedRun(StoreError):
    """A run folder whose files cannot be used; ``damage`` says which file and why."""

    def __init__(self, run_id: str, file: str, reason: str):
        self.damage = Damage(run_id, file, reason)
        super().__init__(f"run {run_id} is {self.damage}; fix the file or delete the run")


def default_root() -> Path:
    """``$CBAL_CACHE`` if set, else ``cache/`` beside the package."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "cache"


def check_run_id(run_id: str) -> str:
    """Run ids are plain names: no separators, no ``..``; a ValueError otherwise."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id) or ".." in run_id:
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


_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a link and refuses anything but a regular file (a FIFO
    would block, a device is no run file); OSError otherwise."""
    fd = os.open(path, flags | _NOFOLLOW, mode)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a regular file")
    return fd


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link (links in a run folder are never followed)"
    return exc.strerror or str(exc)


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of regular file ``path`` (at most ``limit``: a larger one is an OSError)."""
    fd = open_regular(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path.name} is larger than {limit >> 20} MiB")
    return data


@contextlib.contextmanager
def hold_first_free(paths: list[Path], poll: float = 0.5) -> Iterator[int]:
    """Block until one of the lock files ``paths`` can be flock'ed, hold it, yield its index.

    The kernel releases an flock when its holder dies, so a killed holder never blocks others."""
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        for i, path in enumerate(paths):
            fd = open_regular(path, os.O_CREAT | os.O_RDWR)
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
        """The stored state, except that a run whose worker died reads 'failed' (resumable)."""
        return live_state(self.status)

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


def remote(status: dict[str, Any]) -> bool:
    """Whether the run's worker is on another host (e.g. a Dask worker)."""
    host = status.get("host")
    return bool(host) and host != socket.gethostname()


def worker_alive(status: dict[str, Any]) -> bool:
    """Whether the process status.json names is alive and is that run's worker: same pid *and*
    same start time (a reused pid is another process), or, on another host, a fresh heartbeat."""
    if process.valid_pid(status.get("pid")) is None:
        return False
    if remote(status):
        return time.time() - float(status.get("heartbeat") or 0) <= REMOTE_STALE_S
    return process.is_process(status["pid"], status.get("pid_start"))


def live_state(status: dict[str, Any]) -> str:
    """The stored state, 'failed' for an active run whose worker is gone. A queued run with no
    pid yet was created but not started (e.g. by a sweep) and stays queued."""
    state = str(status.get("state", "queued"))
    if state not in ("queued", "running") or status.get("pid") is None:
        return state
    return state if worker_alive(status) else "failed"


class Store:
    """The run store rooted at ``root`` (default: :func:`default_root`)."""

    def __init__(self, root: str | Path | None = None):
        if root is not None and not str(root).strip():
            raise StoreError("the store root is an empty path: give a folder")
        self.root = Path(root) if root is not None else default_root()
        self.runs_dir = self.root / "runs"

    # -- paths ---------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_run_id(run_id)

    def _folder(self, run_id: str) -> Path:
        """The run's folder, which must be a real folder (a link is refused, never followed)."""
        path = self.run_dir(run_id)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise StoreError(f"run {run_id!r} not found in {self.runs_dir}") from None
        if not stat.S_ISDIR(mode):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
            raise DamagedRun(run_id, "run folder", f"{what}; a run folder must be a real folder")
        return path

    def _existing(self, run_id: str) -> Path:
        path = self._folder(run_id)
        try:
            mode = os.lstat(path / "config.json").st_mode
        except OSError:
            raise StoreError(f"run {run_id!r} not found in {self.runs_dir}") from None
        if not stat.S_ISREG(mode):
            raise DamagedRun(run_id, "config.json", "not a regular file")
        return path

    def exists(self, run_id: str) -> bool:
        try:
            self._existing(run_id)
        except StoreError:
            return False
        return True

    def _read(self, run_id: str, name: str, limit: int = SMALL_FILE) -> bytes:
        try:
            return read_regular(self._existing(run_id) / name, limit)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise DamagedRun(run_id, name, _why(exc)) from None

    def _json(self, run_id: str, name: str) -> Any:
        try:
            return parse_json(self._read(run_id, name))
        except Damaged as exc:
            raise DamagedRun(run_id, name, str(exc)) from None

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
        data = self._json(run_id, "config.json")
        if not isinstance(data, dict):
            raise DamagedRun(run_id, "config.json", "a JSON object expected")
        try:
            return RunConfig.from_dict(data)
        except (ValueError, TypeError) as exc:  # ConfigError names the field
            raise DamagedRun(run_id, "config.json", str(exc)) from None

    def read_status(self, run_id: str) -> dict[str, Any]:
        """status.json, checked (a :class:`DamagedRun` if it does not have the right shape)."""
        try:
            return check_status(self._json(run_id, "status.json"))
        except FileNotFoundError:
            raise DamagedRun(run_id, "status.json", "missing") from None
        except Damaged as exc:
            raise DamagedRun(run_id, "status.json", str(exc)) from None

    def update_status(
        self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace status.json by ``change(status)`` (atomic; one writer at a time, so that a
        heartbeat and a cancel never undo each other); 'heartbeat' is set to now."""
        path = self._existing(run_id)
        try:
            fd = open_regular(path / "status.lock", os.O_CREAT | os.O_RDWR)
        except OSError as exc:
            raise StoreError(f"run {run_id}: cannot write its status: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            status = {**change(self.read_status(run_id)), "heartbeat": time.time()}
            if status.get("state") not in STATES:
                raise ValueError(
                    f"state={status.get('state')!r} must be one of {', '.join(STATES)}"
                )
            atomic_write_json(path / "status.json", status)
        finally:
            os.close(fd)
        return status

    def write_status(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (see :meth:`update_status`)."""
        return self.update_status(run_id, lambda status: {**status, **fields})

    # -- cancel requests: honoured by the loop between steps, wherever its process runs --------
    def request_cancel(self, run_id: str) -> None:
        atomic_write_bytes(self._existing(run_id) / CANCEL_FILE, f"{time.time()}\n".encode())

    def cancel_requested(self, run_id: str) -> bool:
        return os.path.lexists(self.run_dir(run_id) / CANCEL_FILE)

    def clear_cancel(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._existing(run_id) / CANCEL_FILE)

    def read_cycles(self, run_id: str) -> list[dict[str, Any]]:
        """The finished cycles in order. A torn or corrupt line (a kill mid-append) is skipped
        with a warning, as is anything after a gap in the cycle numbers."""
        path = self._existing(run_id) / "cycles.jsonl"
        try:
            text = self._read(run_id, "cycles.jsonl", CYCLES_FILE)
        except FileNotFoundError:
            return []
        cycles: list[dict[str, Any]] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = parse_json(line)
            except Damaged:  # a kill mid-append leaves a torn line: the cycle is not finished
                warnings.warn(f"{path}:{lineno}: skipping a corrupt line", stacklevel=2)
                continue
            if not isinstance(record, dict) or record.get("cycle") != len(cycles):
                warnings.warn(f"{path}:{lineno}: skipping an out-of-order line", stacklevel=2)
                continue
            try:
                cycles.append(check_cycle(record))
            except Damaged as exc:
                raise DamagedRun(run_id, f"cycles.jsonl line {lineno}", str(exc)) from None
        return cycles

    def append_cycle(
        self, run_id: str, record: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> None:
        """Record finished cycle ``record['cycle']``: its arrays first, then its JSONL line.

        The line is what marks the cycle finished, so a kill between the two writes only leaves
        an npz that the resumed run overwrites.
        """
        run_dir = self._existing(run_id)
        try:
            check_cycle(record)  # never write what a reader would refuse
        except Damaged as exc:
            raise ValueError(f"run {run_id}: cycle record refused: {exc}") from None
        k = int(record["cycle"])
        done = self.read_cycles(run_id)
        if k != len(done):
            raise StoreError(f"run {run_id}: cycle {k} recorded after {len(done)} finished cycles")
        atomic_save_npz(run_dir / f"cycle_{k}.npz", arrays, fault=f"write-npz@{k}")
        fault_point("write-line", k)
        path = run_dir / "cycles.jsonl"
        # rewrite without any torn tail first, so the new line never glues onto a partial one
        lines = "".join(json.dumps(c, sort_keys=True) + "\n" for c in done).encode()
        if os.path.lexists(path) and self._read(run_id, "cycles.jsonl", CYCLES_FILE) != lines:
            atomic_write_bytes(path, lines)
        with os.fdopen(self.open_append(run_id, "cycles.jsonl"), "ab") as f:
            f.write((json.dumps(record, sort_keys=True) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())

    def open_append(self, run_id: str, name: str) -> int:
        """A file descriptor appending to the run's file ``name`` (never through a link)."""
        path = self._existing(run_id) / name
        try:
            return open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            raise StoreError(f"run {run_id}: cannot append to {name}: {exc}") from None

    def remove_temp_files(self, run_id: str) -> None:
        """Delete temp files a killed writer left behind (call while holding the run's lock)."""
        for tmp in self._existing(run_id).glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def load_cycle_arrays(
        self, run_id: str, cycle: int, keys: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The arrays of ``cycle_<cycle>.npz``; only those named in ``keys`` when given (the
        others, e.g. embeddings, are never read from disk)."""
        name = f"cycle_{int(cycle)}.npz"
        path = self._existing(run_id) / name
        if not os.path.lexists(path):
            raise StoreError(f"run {run_id} has no arrays for cycle {cycle}")
        try:
            fd = open_regular(path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as f, np.load(f, allow_pickle=False) as data:
                wanted = data.files if keys is None else [k for k in data.files if k in keys]
                return {k: data[k] for k in wanted}
        except OSError as exc:
            raise DamagedRun(run_id, name, _why(exc)) from None
        except (ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DamagedRun(run_id, name, str(exc)) from None

    def run_info(self, run_id: str) -> RunInfo:
        return RunInfo(
            run_id,
            self.load_config(run_id),
            self.read_status(run_id),
            self.read_cycles(run_id),
        )

    def scan_runs(self) -> tuple[list[RunInfo], list[Damage]]:
        """Every run, newest first: the readable ones and, apart, what is wrong with the others
        (one damaged folder never hides the rest)."""
        infos: list[RunInfo] = []
        damaged: list[Damage] = []
        try:
            names = sorted(os.listdir(self.runs_dir), reverse=True)
        except OSError:
            return infos, damaged
        for name in names:
            if name.startswith(".") or not RUN_ID_RE.fullmatch(name):
                continue
            try:
                infos.append(self.run_info(name))
            except DamagedRun as exc:
                damaged.append(exc.damage)
            except (StoreError, OSError) as exc:
                damaged.append(Damage(name, "run folder", str(exc)))
        return infos, damaged

    def list_runs(self) -> list[RunInfo]:
        """Every readable run, newest first; a damaged folder is skipped with a warning."""
        infos, damaged = self.scan_runs()
        for damage in damaged:
            warnings.warn(f"skipping run folder {damage.run_id}: {damage}", stacklevel=2)
        return infos

    def delete_run(self, run_id: str) -> None:
        """Remove the run's folder; a StoreError if a process holds the run (cancel it first).

        A damaged run can be deleted too; a run folder that is a link loses only the link."""
        path = self.run_dir(check_run_id(run_id))
        if not os.path.lexists(path):
            raise StoreError(f"run {run_id!r} not found in {self.runs_dir}")
        # rename first so a half-deleted folder is never mistaken for a run
        trash = self.runs_dir / f".deleted-{run_id}-{time.time_ns()}"
        if os.path.islink(path) or not path.is_dir():
            os.replace(path, trash)
            os.unlink(trash)
            return
        with self.lock(run_id, need_config=False):
            os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- exclusive access ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, run_id: str, need_config: bool = True) -> Iterator[None]:
        """Hold the run's lock file while the body runs; a StoreError if another process has it.

        An flock is released by the kernel when its holder dies, so a killed run never leaves a
        stale lock; the file holds the holder's pid for the error message. Re-entrant within a
        process (a worker holds it while queued, then while it runs).
        """
        folder = self._existing(run_id) if need_config else self._folder(run_id)
        path = folder / "lock"
        key = str(path.resolve())
        if key in _HELD:
            _HELD[key] += 1
            try:
                yield
            finally:
                _HELD[key] -= 1
            return
        try:
            fd = open_regular(path, os.O_CREAT | os.O_RDWR)
        except OSError as exc:
            raise StoreError(f"run {run_id}: cannot open its lock file: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"run {run_id} is in use by process {holder}; cancel it first"
            ) from None
        _HELD[key] = 1
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            del _HELD[key]
            os.close(fd)


def _status(state: str, **extra: Any) -> dict[str, Any]:
    return {"state": state, "pid": None, "heartbeat": time.time(), "created": time.time(), **extra}
