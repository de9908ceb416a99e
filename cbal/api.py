"""``cbal.run``: one run from Python, on a built-in dataset or on the caller's own arrays and
network, written to the same run store as the CLI and the dashboard use (so it shows there).

Data given as arrays: images ``(n, C, H, W)`` or ``(n, H, W)`` uint8, or precomputed features
``(n, d)`` float (trained with a linear head unless ``model_fn`` is given). The stored config
says ``dataset=memory`` (and ``model=linear`` / ``custom``), and the run's ``source.json``
holds a fingerprint of the arrays: a resume must be given the same arrays again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from cbal import config as config_mod
from cbal.config import IN_MEMORY, ConfigError, RunConfig
from cbal.data import DataError, Dataset
from cbal.loop import ModelFn, ProgressFn, execute, prepare
from cbal.store import Store, atomic_write_bytes

SOURCE = "source.json"


def as_dataset(data: Dataset | Mapping[str, Any]) -> Dataset:
    """A :class:`Dataset` from ``data``: one already, or a mapping with ``x_train``,
    ``y_train``, ``x_test``, ``y_test`` and optionally ``class_names`` and ``name``."""
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, Mapping):
        raise DataError(
            "dataset= takes a cbal.data.Dataset or a dict with x_train, y_train, x_test, y_test"
        )
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in data]
    if missing:
        raise DataError(f"dataset= lacks {', '.join(missing)}")
    x = {s: _as_x(np.asarray(data[f"x_{s}"]), f"x_{s}") for s in ("train", "test")}
    y = {s: np.asarray(data[f"y_{s}"]) for s in ("train", "test")}
    n_classes = int(max(y["train"].max(initial=-1), y["test"].max(initial=-1))) + 1
    names = data.get("class_names") or [str(c) for c in range(n_classes)]
    try:
        return Dataset(
            str(data.get("name", IN_MEMORY)),
            x["train"],
            y["train"],
            x["test"],
            y["test"],
            tuple(names),
        )
    except ValueError as exc:
        raise DataError(f"dataset=: {exc}") from None


def _as_x(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim == 2 and np.issubdtype(x.dtype, np.floating):  # features: (n, d) → (n, d, 1, 1)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{name} holds NaN or inf")
        return np.ascontiguousarray(x, dtype=np.float32)[:, :, None, None]
    if x.ndim == 3:  # (n, H, W) grey images
        x = x[:, None]
    if x.dtype != np.uint8:
        raise DataError(
            f"{name} must be uint8 images (n, C, H, W) or (n, H, W), or float features (n, d); "
            f"got {x.dtype} of shape {x.shape}"
        )
    return x


def fingerprint(ds: Dataset) -> str:
    """SHA-256 of the arrays and class names: the same data give the same fingerprint."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(ds.class_names).encode())
    return h.hexdigest()


def _in_memory_config(cfg: RunConfig, ds: Dataset | None, model_fn: ModelFn | None) -> RunConfig:
    changes: dict[str, Any] = {}
    if ds is not None:
        changes.update(dataset=IN_MEMORY, data_dir=None)
        if ds.is_features:
            changes["augment"] = "none"
    if model_fn is not None:
        changes["model"] = "custom"
    elif ds is not None and ds.is_features:
        changes["model"] = "linear"
    return cfg.replace(**changes) if changes else cfg


def _check_source(store: Store, run_id: str, ds: Dataset | None) -> None:
    path = store.run_dir(run_id) / SOURCE
    if ds is None or not path.exists():
        return
    want = json.loads(path.read_text()).get("fingerprint")
    if want != fingerprint(ds):
        raise DataError(
            f"run {run_id}: these arrays differ from the ones it started with (fingerprint "
            f"{fingerprint(ds)[:12]}, not {str(want)[:12]}); pass the run's own data to resume it"
        )


def run(
    config: RunConfig | Mapping[str, Any],
    dataset: Dataset | Mapping[str, Any] | None = None,
    model_fn: ModelFn | None = None,
    *,
    cache_dir: str | None = None,
    resume: str | None = None,
    progress: ProgressFn | None = None,
    threads: int | None = None,
) -> str:
    """Run ``config`` to its end in this process and return the run id.

    ``dataset``: the caller's arrays (see :func:`as_dataset`) instead of the config's dataset.
    ``model_fn(num_classes, (C, H, W))``: a fresh torch module per cycle whose ``forward``
    returns ``(logits, features)`` (as :class:`cbal.models.Classifier`), instead of the
    config's model. ``resume``: continue that run instead (pass the same dataset / model_fn;
    ``config`` is then ignored, the run's own is used). Errors in the configuration or the
    data are raised before any run folder exists.
    """
    store = Store(cache_dir)
    ds = None if dataset is None else as_dataset(dataset)
    if resume is not None:
        _check_source(store, resume, ds)
        execute(store, resume, progress, threads, dataset=ds, model_fn=model_fn)
        return resume
    if isinstance(config, Mapping):
        config = config_mod.make_config(**config)
    if not isinstance(config, RunConfig):
        raise ConfigError("config", type(config).__name__, "a RunConfig or a dict of its fields")
    cfg = _in_memory_config(config, ds, model_fn)
    prepare(cfg, ds)  # data problems surface before a run folder exists
    run_id = store.create_run(cfg)
    if ds is not None or model_fn is not None:
        source = {
            "dataset": None if ds is None else ds.name,
            "fingerprint": None if ds is None else fingerprint(ds),
            "model_fn": None if model_fn is None else _qualname(model_fn),
        }
        atomic_write_bytes(store.run_dir(run_id) / SOURCE, json.dumps(source, indent=2).encode())
    execute(store, run_id, progress, threads, dataset=ds, model_fn=model_fn)
    return run_id


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
