"""Sweeps: grids of ordinary runs, executed locally with joblib or on a Dask cluster.

A sweep spec (a YAML or JSON file, or built from ``python -m cbal sweep`` flags)::

    name: if-study           # optional (default "sweep"); part of the sweep id
    preset: digits           # optional: the cbal preset every run starts from
    base:                    # optional: RunConfig fields fixed for every run
      epochs: 10
      device: cpu
      data_dir: {cifar10: /data/cifar-10-batches-py, cifar100: /data/cifar-100-python}
    grid:                    # RunConfig field -> list of values; the runs are the product
      dataset: [cifar10, cifar100]
      imbalance_factor: [1, 0.1]
      strategy: [entropy, entropy-cb, kcenter-cb]
      lam: {entropy-cb: [0.6, 2], kcenter-cb: 5}
      seed: [0, 1, 2]

Rules:

- ``base`` and ``grid`` keys are :class:`~cbal.config.RunConfig` field names; a field is in one of
  them, not both. A scalar grid entry counts as a one-value list. Values are coerced and validated
  exactly as :func:`cbal.config.make_config` does, so ``"10"`` and ``10`` are the same value and
  a bad field or value raises the same :class:`~cbal.config.ConfigError` naming the field.
- ``lam`` in the grid is a list of λ for every strategy that has one (the ``-cb`` ones), or a
  mapping strategy → λ or list of λ; a strategy left out gets the paper's default (``null``
  means that too); strategies without λ run once, with λ unset.
- ``data_dir`` in ``base`` may be a mapping dataset → folder, for a grid over datasets.
- Runs are ordered dataset, imbalance_factor, strategy, lam, any other grid field, seed (varies
  fastest). Each run's *key* names its grid values, e.g.
  ``imbalance_factor=0.1,strategy=entropy-cb,lam=0.6,seed=0`` (λ is left out for strategies
  without one; ``lam=default`` is the paper's λ).
- The sweep id is ``sw-`` + a hash of the name and the expanded (key, config) pairs: the same
  spec gives the same id whatever the order of its lists, and a renamed sweep is a new one.

Each run is an ordinary run in the store, tagged ``sweep`` (the id), ``sweep_name``,
``sweep_key`` and ``group`` (the id, so the dashboard groups a sweep's runs). Re-running a sweep
skips its finished runs, resumes interrupted ones from their last finished cycle, retries failed
ones and creates only the missing ones. A run that fails is recorded in its status.json by the
loop and does not stop the others.

Local execution uses joblib's loky process pool: ``n_jobs`` runs at a time. Each run computes
with the torch thread count every entry point gives it (:func:`cbal.loop.run_threads`: recorded
in its status.json, default cores / ``$CBAL_MAX_CONCURRENT``), so a sweep's run gives the same
numbers as the same configuration and seed started from ``cbal run`` or the dashboard;
``threads`` asks for another count (recorded too) for the runs that start fresh.
Runs that train on a GPU (device ``cuda``, or ``auto`` with a GPU visible) run at
most ``gpu_jobs`` per device at a time; every run holds one of the store's concurrency slots
(:func:`cbal.runner.slot`, the slots background runs and dashboard launches hold too), so
sweeps and launches share one limit.

On a Dask cluster (``scheduler="tcp://HOST:PORT"``) each run is one task,
``run_one(store_root, run_id)``, on an existing ``dask.distributed`` cluster. The workers write
into the store themselves, so **every worker must see the store at the same absolute path**
(a shared filesystem), and data folders likewise; cbal must be importable on the workers. Torch
threads per run follow the same rule, on the worker's machine.
When workers declare a ``GPU`` resource (``dask worker --resources GPU=1``), runs whose
device is ``cuda`` or ``auto`` ask for one. Interrupting the client cancels queued tasks; tasks
already running finish on their workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cbal import config as config_mod
from cbal import runner
from cbal.config import DATASETS, PRESETS, ConfigError, RunConfig
from cbal.store import RunInfo, Store, StoreError, accuracy_text

SPEC_KEYS = ("name", "preset", "base", "grid")
# grid axes in run order; other grid fields go between these and "seed", which varies fastest
_AXES_FIRST = ("dataset", "imbalance_factor", "strategy", "lam")
_NOT_FIELDS = ("preset", "version")
_GPU_POLL_S = 1.0
# a grid larger than this is almost surely a mistake; counted before anything is expanded
MAX_RUNS = 10_000

ResultFn = Callable[["RunRow"], None]


# -- the spec ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSpec:
    """A sweep as written: a name, an optional preset, fixed ``base`` fields and a ``grid``."""

    name: str = "sweep"
    preset: str | None = None
    base: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> SweepSpec:
        """Check the spec's shape (not yet its values: see :func:`expand`)."""
        if not isinstance(data, Mapping):
            raise ConfigError("sweep", data, f"a mapping with keys {', '.join(SPEC_KEYS)}")
        for key in data:
            if key not in SPEC_KEYS:
                raise ConfigError(str(key), data[key], f"a sweep spec key ({', '.join(SPEC_KEYS)})")
        name = data.get("name") or "sweep"
        if not isinstance(name, str):
            raise ConfigError("name", name, "a string")
        preset = data.get("preset")
        if preset is not None and preset not in PRESETS:
            raise ConfigError("preset", preset, f"one of {', '.join(PRESETS)} or null")
        base, grid = data.get("base") or {}, data.get("grid") or {}
        for part, value in (("base", base), ("grid", grid)):
            if not isinstance(value, Mapping):
                raise ConfigError(part, value, "a mapping of RunConfig fields to values")
        return cls(name=name, preset=preset, base=dict(base), grid=dict(grid))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preset": self.preset,
            "base": dict(self.base),
            "grid": dict(self.grid),
        }


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read a YAML or JSON sweep spec (by extension; anything else is read as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("spec", str(path), f"a readable YAML or JSON file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("spec", str(path), f"UTF-8 text (byte {exc.start} is not)") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("spec", str(path), f"valid JSON ({exc})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = " ".join(str(exc).split())
            raise ConfigError("spec", str(path), f"valid YAML ({problem})") from None
    return SweepSpec.from_dict(data)


def spec_from_flags(
    spec: SweepSpec | None = None,
    *,
    name: str | None = None,
    preset: str | None = None,
    strategies: str | None = None,
    seeds: str | None = None,
    ifs: str | None = None,
    lams: str | None = None,
    sets: Sequence[str] = (),
) -> SweepSpec:
    """The spec the CLI flags describe, on top of ``spec`` (a file's) when given.

    ``strategies``, ``seeds`` and ``ifs`` are comma lists; ``lams`` is ``S=X`` pairs (repeat a
    strategy for several λ) or plain numbers for every λ strategy; ``sets`` are ``FIELD=VALUE``
    base overrides (``null`` for None)."""
    spec = spec or SweepSpec()
    base, grid = dict(spec.base), dict(spec.grid)
    for item in sets:
        fname, eq, value = item.partition("=")
        if not eq or not fname.strip():
            raise ConfigError("set", item, "FIELD=VALUE")
        base[fname.strip()] = None if value.strip().lower() in ("null", "none") else value.strip()
    for fname, text in (("strategy", strategies), ("seed", seeds), ("imbalance_factor", ifs)):
        if text is not None:
            grid[fname] = _split(fname, text)
    if lams is not None:
        grid["lam"] = _parse_lams(lams)
    return SweepSpec(
        name=name or spec.name, preset=preset or spec.preset, base=base, grid=dict(grid)
    )


def _split(fname: str, text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ConfigError(fname, text, "a comma-separated list of values")
    return values


def _parse_lams(text: str) -> list[Any] | dict[str, list[Any]]:
    items = _split("lam", text)
    pairs = [item.partition("=") for item in items]
    if not any(eq for _, eq, _ in pairs):
        return [None if v.lower() in ("null", "none", "default") else v for v in items]
    if not all(eq and s.strip() for s, eq, _ in pairs):
        raise ConfigError("lam", text, "STRATEGY=X pairs, or plain numbers, not both")
    mapping: dict[str, list[Any]] = {}
    for strategy, _, value in pairs:
        mapping.setdefault(strategy.strip(), []).append(value.strip())
    return mapping


# -- expansion --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its grid key and its validated config."""

    key: str
    config: RunConfig


@dataclass(frozen=True)
class Sweep:
    """An expanded spec: the sweep id and its runs in grid order."""

    sweep_id: str
    name: str
    spec: SweepSpec
    points: tuple[SweepPoint, ...]

    def __len__(self) -> int:
        return len(self.points)

    @property
    def configs(self) -> list[RunConfig]:
        return [p.config for p in self.points]

    def point(self, key: str) -> SweepPoint:
        for p in self.points:
            if p.key == key:
                return p
        raise KeyError(key)


def _as_list(fname: str, value: Any) -> list[Any]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ConfigError(fname, value, "a non-empty list of values")
    return values


def _fmt(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value)
    return str(value)


def _check_field(fname: str, value: Any) -> None:
    if fname not in config_mod.field_names() or fname in _NOT_FIELDS:
        fields = [f for f in config_mod.field_names() if f not in _NOT_FIELDS]
        raise ConfigError(fname, value, f"a field of RunConfig ({', '.join(fields)})")


def _strategy_of(values: Mapping[str, Any], spec: SweepSpec) -> Any:
    if "strategy" in values:
        return values["strategy"]
    return PRESETS.get(spec.preset or "", {}).get("strategy", RunConfig.strategy)


def _lam_options(
    lam_grid: list[Any] | dict[str, Any] | None, strategy: Any
) -> list[tuple[Any, bool]]:
    """(λ, shown in key) for one strategy: strategies without λ get one run with λ unset."""
    from cbal.strategies import STRATEGIES

    info = STRATEGIES.get(strategy) if isinstance(strategy, str) else None
    if lam_grid is None:
        return [(None, False)]
    if isinstance(lam_grid, dict):
        if strategy in lam_grid:
            return [(v, True) for v in _as_list("lam", lam_grid[strategy])]
        return [(None, True)] if info is not None and info.uses_lam else [(None, False)]
    if info is None or not info.uses_lam:
        return [(None, False)]
    return [(v, True) for v in lam_grid]


def _count(grid: Mapping[str, Any], lam_grid: Any, strategies: Any) -> int:
    per_strategy = sum(len(_lam_options(lam_grid, s)) for s in strategies)
    return per_strategy * math.prod(len(v) for k, v in grid.items() if k != "strategy")


def expand(spec: SweepSpec, max_runs: int = MAX_RUNS) -> Sweep:
    """The spec's runs, each validated; a :class:`ConfigError` naming the field otherwise.

    A grid of more than ``max_runs`` runs is refused before any run is built."""
    base, grid, data_dirs, lam_grid = _checked(spec)
    # λ varies right after the strategy (its options depend on it); seed varies fastest
    head = [a for a in _AXES_FIRST if a in grid]
    tail = [a for a in grid if a not in _AXES_FIRST and a != "seed"]
    tail += ["seed"] if "seed" in grid else []
    key_axes = head + (["lam"] if lam_grid is not None else []) + tail
    n_runs = _count(grid, lam_grid, grid.get("strategy", [_strategy_of(base, spec)]))
    if n_runs > max_runs:
        raise ConfigError(
            "max_runs",
            max_runs,
            f"at least {n_runs:,}, the runs this grid expands to; narrow the grid or raise "
            "the limit (--max-runs)",
        )

    points = _points(spec, base, grid, data_dirs, lam_grid, head, tail, key_axes)
    if lam_grid is not None and not any("lam=" in p.key for p in points):
        raise ConfigError("lam", spec.grid["lam"], "unset: no strategy of this sweep has a λ")
    return Sweep(_sweep_id(spec.name, points), spec.name, spec, tuple(points))


def _checked(spec: SweepSpec) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    """The spec's base and grid, each field checked: (base, grid without λ, the data_dir
    mapping when one is given per dataset, the λ grid)."""
    base = dict(spec.base)
    grid = {
        k: (v if k == "lam" and isinstance(v, Mapping) else _as_list(k, v))
        for k, v in spec.grid.items()
    }
    for fname, value in [*base.items(), *grid.items()]:
        _check_field(fname, value)
    for fname in set(base) & set(grid):
        raise ConfigError(
            fname, grid[fname], f"set in base or in grid, not both (base: {base[fname]!r})"
        )
    data_dirs = base.pop("data_dir", None)
    if isinstance(data_dirs, Mapping):
        bad = [d for d in data_dirs if d not in DATASETS]
        if bad:
            raise ConfigError(
                "data_dir",
                dict(data_dirs),
                f"a folder, or datasets ({', '.join(DATASETS)}) → folders",
            )
    elif data_dirs is not None:
        base["data_dir"] = data_dirs
    lam_grid = grid.pop("lam", None)
    if isinstance(lam_grid, Mapping):
        lam_grid = dict(lam_grid)
        strategies = {str(s) for s in grid.get("strategy", [_strategy_of(base, spec)])}
        extra = sorted(set(map(str, lam_grid)) - strategies)
        if extra:
            raise ConfigError(
                "lam",
                lam_grid,
                f"λ keyed by this sweep's strategies ({', '.join(sorted(strategies))}), "
                f"not {', '.join(extra)}",
            )
    return base, grid, data_dirs, lam_grid


def _points(
    spec: SweepSpec,
    base: dict[str, Any],
    grid: dict[str, Any],
    data_dirs: Any,
    lam_grid: Any,
    head: list[str],
    tail: list[str],
    key_axes: list[str],
) -> list[SweepPoint]:
    """One validated run per grid point, keyed by its varying fields; two points that would
    be the same run are a ConfigError naming the axis."""
    points: list[SweepPoint] = []
    where: dict[str, tuple[int, ...]] = {}
    for pre in itertools.product(*(range(len(grid[a])) for a in head)):
        values = {a: grid[a][i] for a, i in zip(head, pre, strict=True)}
        options = _lam_options(lam_grid, _strategy_of({**base, **values}, spec))
        for j, (lam, shown) in enumerate(options):
            for post in itertools.product(*(range(len(grid[a])) for a in tail)):
                more = {a: grid[a][i] for a, i in zip(tail, post, strict=True)}
                cfg_values = {**base, **values, **more}
                if lam_grid is not None:
                    cfg_values["lam"] = lam
                if isinstance(data_dirs, Mapping):
                    dataset = cfg_values.get("dataset", _dataset_of(spec))
                    cfg_values["data_dir"] = data_dirs.get(dataset)
                cfg = (
                    config_mod.preset(spec.preset, **cfg_values)
                    if spec.preset
                    else config_mod.make_config(**cfg_values)
                )
                parts = [f"{a}={_fmt(getattr(cfg, a))}" for a in key_axes if a != "lam" or shown]
                key = ",".join(parts) or "default"
                index = (*pre, j, *post)
                if key in where:
                    names = [*head, "lam", *tail]
                    diff = [a for a, i, k in zip(names, index, where[key], strict=True) if i != k]
                    fname = diff[0] if diff else "grid"
                    raise ConfigError(
                        fname, spec.grid.get(fname), "distinct values (two runs would be the same)"
                    )
                where[key] = index
                points.append(SweepPoint(key, cfg))
    return points


def _dataset_of(spec: SweepSpec) -> Any:
    return spec.base.get(
        "dataset", PRESETS.get(spec.preset or "", {}).get("dataset", RunConfig.dataset)
    )


def _sweep_id(name: str, points: Sequence[SweepPoint]) -> str:
    runs = [[p.key, p.config.to_dict()] for p in sorted(points, key=lambda p: p.key)]
    payload = json.dumps({"name": name, "runs": runs}, sort_keys=True)
    return "sw-" + hashlib.sha1(payload.encode()).hexdigest()[:12]


# -- checks before anything is created ----------------------------------------------------------
_DATA_FIELDS = (
    "dataset",
    "data_dir",
    "image_size",
    "test_per_class",
    "initial_labeled",
    "initial_sampling",
    "imbalance_factor",
    "imbalance_profile",
    "budget",
    "cycles",
    "model",
)


def check_configs(configs: Sequence[RunConfig], device: bool = True) -> None:
    """What :func:`cbal.loop.prepare` checks (data present, sizes fit the pool), once per distinct
    data setting, and that a ``cuda`` device exists; ConfigError / DataError otherwise."""
    from cbal.loop import prepare

    seen: set[tuple[Any, ...]] = set()
    for cfg in configs:
        sig = tuple(getattr(cfg, f) for f in _DATA_FIELDS)
        if sig not in seen:
            seen.add(sig)
            prepare(cfg)
    if device and any(cfg.device == "cuda" for cfg in configs):
        from cbal.train import resolve_device

        resolve_device("cuda")


def _check_remote(config_dicts: list[dict[str, Any]]) -> Exception | None:
    """:func:`check_configs` on a Dask worker (it sees the data the runs will read); the error is
    returned rather than raised, so it is not mistaken for a cluster failure."""
    from cbal.data import DataError

    try:
        check_configs([RunConfig.from_dict(d) for d in config_dicts], device=False)
    except (ConfigError, DataError) as exc:
        return exc
    return None


def _raise_remote(error: Exception | None) -> None:
    if error is not None:
        raise error


# -- the sweep's runs in the store --------------------------------------------------------------
def sweep_of(info: RunInfo) -> str | None:
    """The sweep id a run is tagged with, if any."""
    value = (info.status.get("tags") or {}).get("sweep")
    return str(value) if value else None


def sweep_runs(store: Store, sweep_id: str) -> list[RunInfo]:
    """The store's runs tagged with ``sweep_id``, oldest first."""
    runs = [info for info in store.list_runs() if sweep_of(info) == sweep_id]
    return sorted(runs, key=lambda i: (float(i.status.get("created") or 0), i.run_id))


def key_of(info: RunInfo) -> str | None:
    value = (info.status.get("tags") or {}).get("sweep_key")
    return str(value) if value is not None else None


def _by_key(store: Store, sweep: Sweep) -> dict[str, RunInfo]:
    """key → the sweep's run for it; if a key has several runs, the one furthest along."""
    out: dict[str, RunInfo] = {}
    for info in sweep_runs(store, sweep.sweep_id):
        key = key_of(info)
        if key is None:
            continue
        old = out.get(key)
        if old is None or _rank(info) > _rank(old):
            out[key] = info
    return out


def _rank(info: RunInfo) -> tuple[int, int, float]:
    return (info.state == "done", len(info.cycles), float(info.status.get("created") or 0))


@contextlib.contextmanager
def _sweep_lock(store: Store, sweep_id: str) -> Iterator[None]:
    """Serialize the creation of a sweep's runs between processes (an flock; blocks)."""
    folder = store.root / "sweeps"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {folder}: {exc}") from None
    fd = os.open(folder / f"{sweep_id}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_runs(store: Store, sweep: Sweep) -> dict[str, str]:
    """Create the sweep's missing runs (tagged, 'queued'); returns key → run id for all."""
    with _sweep_lock(store, sweep.sweep_id):
        existing = _by_key(store, sweep)
        ids = {key: info.run_id for key, info in existing.items()}
        for p in sweep.points:
            if p.key not in ids:
                tags = {
                    "sweep": sweep.sweep_id,
                    "sweep_name": sweep.name,
                    "sweep_key": p.key,
                    "group": sweep.sweep_id,
                }
                ids[p.key] = store.create_run(p.config, tags=tags)
    return {p.key: ids[p.key] for p in sweep.points}


@dataclass(frozen=True)
class RunRow:
    """One run of a sweep as planned or as finished.

    ``action`` is what :func:`run_sweep` does with it: ``create`` (not in the store yet),
    ``run`` (never started), ``resume`` (failed, cancelled or died: continues after its last
    finished cycle), ``skip`` (done, or failed with ``retry_failed=False``) or ``busy`` (a live
    process on this machine has it)."""

    key: str
    config: RunConfig
    run_id: str | None
    state: str
    cycles_done: int
    action: str
    accuracy: float | None = None
    error: str | None = None
    seconds: float | None = None

    @property
    def cycles_total(self) -> int:
        """Selection cycles configured (``cycles_done`` counts the finished ones)."""
        return self.config.cycles


def plan(store: Store, sweep: Sweep, retry_failed: bool = True) -> list[RunRow]:
    """What a sweep would do now, run by run (reads the store, changes nothing)."""
    existing = _by_key(store, sweep)
    rows = []
    for p in sweep.points:
        info = existing.get(p.key)
        if info is None:
            rows.append(RunRow(p.key, p.config, None, "missing", 0, "create"))
            continue
        rows.append(_row(p, info, _action(info, retry_failed)))
    return rows


def _action(info: RunInfo, retry_failed: bool) -> str:
    state, status = info.state, info.status
    if state == "done":
        return "skip"
    if state in ("queued", "running") and status.get("pid"):
        return "busy"  # a live process here (RunInfo.state reads a dead one as 'failed')
    if state == "queued" and not status.get("started"):
        return "run"
    if state == "failed" and status.get("error") and not retry_failed:
        return "skip"
    return "resume"


def _row(p: SweepPoint, info: RunInfo, action: str, **extra: Any) -> RunRow:
    return RunRow(
        p.key,
        p.config,
        info.run_id,
        info.state,
        info.cycles_done,
        action,
        accuracy=info.last_accuracy,
        error=info.status.get("error") if info.state != "done" else None,
        **extra,
    )


def table(rows: Sequence[RunRow]) -> list[list[str]]:
    """Rows as text cells (header first): key, run id, state, cycles, accuracy, action."""
    out = [["key", "run id", "state", "cycles", "accuracy", "action"]]
    for r in rows:
        acc = accuracy_text(r.accuracy)
        cycles = f"{r.cycles_done}/{r.cycles_total}"
        out.append([r.key, r.run_id or "-", r.state, cycles, acc, r.action])
    return out


# -- executing one run (in a worker process) ----------------------------------------------------
def run_one(
    store_root: str, run_id: str, threads: int | None = None, gpu_jobs: int = 1
) -> dict[str, Any]:
    """Run or resume ``run_id`` of the store at ``store_root`` to its end, in this process.

    The job function of both executors (joblib, Dask): top-level and picklable. It never raises
    for a failed run: the loop records the error in status.json, and the returned dict
    (run_id, state, accuracy, error, seconds, host) says what happened. ``threads`` sets torch's
    CPU threads of a run that has none recorded yet (default: the rule of every entry point,
    :func:`cbal.loop.run_threads`); a GPU run waits for one of ``gpu_jobs`` slots on its device."""
    import torch

    from cbal.loop import Cancelled, CancelRequested, execute

    store = Store(store_root)
    start = time.time()
    error: str | None = None
    try:
        # a cuda run without a GPU fails inside execute, which records it under the run's lock
        on_gpu = store.load_config(run_id).device != "cpu" and torch.cuda.is_available()
        # every run holds one of the store's slots, shared with the dashboard's launches
        with _gpu_slot(store, gpu_jobs) if on_gpu else runner.slot(store) as index:
            if on_gpu:
                torch.cuda.set_device(index)
            store.clear_cancel(run_id)  # running the sweep again is asking it to run
            execute(store, run_id, threads=threads)
    except CancelRequested:  # this run was cancelled from outside: the sweep goes on
        error = "cancelled"
    except Cancelled:  # SIGTERM / Ctrl-C of this process: stop the sweep, not just this run
        raise
    except StoreError as exc:  # in use by another process, or the store is not visible here
        error = f"{exc} (on {socket.gethostname()}: {store.root})"
    except Exception as exc:  # recorded in status.json by the loop
        error = f"{type(exc).__name__}: {exc}"
    result: dict[str, Any] = {
        "run_id": run_id,
        "state": "failed",
        "accuracy": None,
        "error": error,
        "seconds": time.time() - start,
        "host": socket.gethostname(),
    }
    with contextlib.suppress(StoreError, OSError):
        info = store.run_info(run_id)
        result.update(state=info.state, accuracy=info.last_accuracy)
        if info.state != "done":
            result["error"] = info.status.get("error") or error
    return result


@contextlib.contextmanager
def _gpu_slot(store: Store, per_device: int) -> Iterator[int]:
    """Block until one of ``per_device`` slots of some visible GPU is free; yields its index.

    The store's one slot scheme (:func:`cbal.runner.slot`), ``devices × per_device`` of its
    slots: slot i trains on device ``i % devices``."""
    import torch

    devices = max(1, torch.cuda.device_count())
    with runner.slot(store, _GPU_POLL_S, limit=devices * max(1, per_device)) as i:
        yield i % devices


# -- running a sweep ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSummary:
    """A sweep after :func:`run_sweep`: every run's row, in grid order, and what was done."""

    sweep: Sweep
    rows: list[RunRow]
    created: int
    executed: int

    @property
    def ok(self) -> bool:
        return all(r.state == "done" for r in self.rows)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out


def run_sweep(
    store: Store,
    sweep: Sweep,
    n_jobs: int = 1,
    scheduler: str | None = None,
    threads: int | None = None,
    gpu_jobs: int = 1,
    retry_failed: bool = True,
    check: bool = True,
    on_start: Callable[[list[RunRow]], None] | None = None,
    on_result: ResultFn | None = None,
) -> SweepSummary:
    """Create the sweep's missing runs and run every unfinished one; returns the summary.

    Locally ``n_jobs`` worker processes (-1: one per core); with ``scheduler`` (a Dask address)
    on that cluster. ``check`` validates data and devices before anything is created (on a Dask
    worker when ``scheduler`` is given). ``on_start`` gets the plan once the runs exist,
    ``on_result`` each finished run's row.
    """
    n_jobs = _positive("n_jobs", n_jobs, allow_all=True)
    gpu_jobs = _positive("gpu_jobs", gpu_jobs)
    if threads is not None:
        threads = _positive("threads", threads)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(_connect(scheduler)) if scheduler else None
        if check and client is not None:
            configs = [cfg.to_dict() for cfg in sweep.configs]
            try:
                error = client.submit(_check_remote, configs, pure=False).result()
            except Exception as exc:  # e.g. cbal is not installed on the workers
                problem = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise ConfigError(
                    "scheduler", scheduler, f"workers that run cbal ({problem})"
                ) from None
            _raise_remote(error)
        elif check:
            check_configs(sweep.configs)
        before = {r.key for r in plan(store, sweep) if r.run_id is not None}
        create_runs(store, sweep)
        rows = plan(store, sweep, retry_failed)
        todo = [r for r in rows if r.action in ("run", "resume")]
        results: dict[str, dict[str, Any]] = {}
        if on_start is not None:
            on_start(rows)

        def report(result: dict[str, Any]) -> None:
            row = next(r for r in todo if r.run_id == result["run_id"])
            results[row.key] = result
            if on_result is not None:
                on_result(_finished(store, sweep, row.key, result))

        if client is not None:
            _run_dask(client, store, todo, threads, gpu_jobs, report)
        elif todo:
            _run_local(store, todo, n_jobs, threads, gpu_jobs, report)
    final = [
        _finished(store, sweep, r.key, results[r.key]) if r.key in results else r for r in rows
    ]
    return SweepSummary(sweep, final, len(sweep) - len(before), len(results))


def _finished(store: Store, sweep: Sweep, key: str, result: dict[str, Any]) -> RunRow:
    info = store.run_info(result["run_id"])
    row = _row(sweep.point(key), info, "ran", seconds=result.get("seconds"))
    if info.state != "done" and result.get("error"):
        row = replace(row, error=result["error"])
    return row


def _positive(name: str, value: Any, allow_all: bool = False) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value >= 1 or (allow_all and value == -1))
    ):
        return value
    raise ConfigError(
        name, value, "a positive integer" + (" or -1 (one per core)" if allow_all else "")
    )


def _run_local(
    store: Store,
    todo: list[RunRow],
    n_jobs: int,
    threads: int | None,
    gpu_jobs: int,
    report: Callable[[dict[str, Any]], None],
) -> None:
    """joblib (loky processes): GPU runs first, ``gpu_jobs`` per device at a time, then the rest."""
    import joblib

    cores = joblib.cpu_count()
    n_jobs = cores if n_jobs == -1 else n_jobs
    gpus = _visible_gpus() if any(r.config.device != "cpu" for r in todo) else 0
    on_gpu = [r for r in todo if gpus and r.config.device != "cpu"]
    on_cpu = [r for r in todo if r not in on_gpu]
    root = str(store.root.resolve())
    for batch, limit in ((on_gpu, gpus * gpu_jobs), (on_cpu, n_jobs)):
        if not batch:
            continue
        jobs = max(1, min(n_jobs, limit, len(batch)))
        # caps the workers' other thread pools (BLAS); torch's own is the run's (run_threads)
        per_job = threads or _env_threads() or max(1, cores // jobs)
        with joblib.parallel_config(backend="loky", inner_max_num_threads=per_job):
            results = joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")(
                joblib.delayed(run_one)(root, r.run_id, threads, gpu_jobs) for r in batch
            )
            for result in results:
                report(result)


def _env_threads() -> int | None:
    """``$OMP_NUM_THREADS`` when set to a positive integer: the user's own limit wins."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def _connect(address: str) -> Iterator[Any]:
    """A Dask client of the scheduler at ``address``; a ConfigError naming it when unreachable."""
    from distributed import Client

    if "://" not in address:
        raise ConfigError("scheduler", address, "a Dask scheduler address like tcp://HOST:PORT")
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError("scheduler", address, f"a reachable Dask scheduler ({problem})") from None
    try:
        yield client
    finally:
        client.close()


def _run_dask(
    client: Any,
    store: Store,
    todo: list[RunRow],
    threads: int | None,
    gpu_jobs: int,
    report: Callable[[dict[str, Any]], None],
) -> None:
    """One Dask task per run; a task that raises (not a failed run: that returns) is reported."""
    from distributed import as_completed

    try:
        info = client.scheduler_info(n_workers=-1)  # newer distributed lists 5 workers by default
    except TypeError:
        info = client.scheduler_info()
    workers = info.get("workers", {}).values()
    gpu_resource = any("GPU" in (w.get("resources") or {}) for w in workers)
    root = str(store.root.resolve())
    futures = {}
    for r in todo:
        resources = {"GPU": 1} if gpu_resource and r.config.device != "cpu" else None
        future = client.submit(
            run_one,
            root,
            r.run_id,
            threads,
            gpu_jobs,
            key=f"cbal-{r.run_id}-{secrets.token_hex(3)}",
            pure=False,
            resources=resources,
        )
        futures[future] = r.run_id
    for future in as_completed(futures, loop=client.loop):
        try:
            result = future.result()
        except Exception as exc:  # a worker died for good, unpicklable...
            result = {"run_id": futures[future], "error": f"{type(exc).__name__}: {exc}"}
        report(result)
