"""One active-learning run: cycles of train → evaluate → infer → select → record.

Cycle k (0..cycles) trains a fresh model on the labeled set L_k and evaluates it; every cycle but
the last then scores the pool and selects ``budget`` images whose labels are revealed. Seeds
derive from (run seed, cycle), so a run resumed after a kill gives the same result.

torch is imported inside :func:`execute` only: :func:`prepare` (validation) stays importable by
the dashboard without loading torch.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cbal import data
from cbal.config import ConfigError, RunConfig, effective_lam
from cbal.store import Store, fault_point
from cbal.strategies import STRATEGIES, SelectionContext, kcenter_features
from cbal.strategies.balance import class_counts, l1_score

Event = dict[str, Any]
ProgressFn = Callable[[Event], None]


class Cancelled(BaseException):
    """Raised inside a run when it is asked to stop (SIGTERM from the runner).

    A BaseException, so no library's ``except Exception`` can swallow the request."""


@dataclass(frozen=True)
class Prepared:
    """A run's data, checked: the dataset, its imbalanced pool and the effective λ."""

    config: RunConfig
    dataset: data.Dataset
    pool: data.Pool
    lam: float

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes


def prepare(cfg: RunConfig, dataset: data.Dataset | None = None) -> Prepared:
    """Load the data (or reuse ``dataset``, already loaded for ``cfg``) and build the pool;
    DataError / ConfigError when the run cannot work."""
    ds = dataset or data.load_dataset(
        cfg.dataset, cfg.data_dir, image_size=cfg.image_size, test_per_class=cfg.test_per_class
    )
    n_train = len(ds.y_train)
    if cfg.initial_labeled > n_train - ds.num_classes:
        raise ConfigError(
            "initial_labeled", cfg.initial_labeled, f"at most {n_train - ds.num_classes} here"
        )
    short = data.initial_shortfall(ds.y_train, ds.num_classes, cfg.initial_labeled)
    if cfg.initial_sampling == "balanced" and short is not None:
        c, have, share = short
        raise ConfigError(
            "initial_labeled",
            cfg.initial_labeled,
            f"at most {ds.num_classes * have} for a balanced initial set: it may ask {share} "
            f"images of class {c}, which has {have} here (or initial_sampling=random)",
        )
    pool = data.build_pool(
        ds.y_train,
        ds.num_classes,
        cfg.initial_labeled,
        cfg.imbalance_factor,
        cfg.imbalance_profile,
        cfg.seed,
        cfg.initial_sampling,
    )
    n_pool = len(pool.unlabeled)
    if cfg.budget * cfg.cycles > n_pool:
        field = "budget" if cfg.budget > n_pool else "cycles"
        raise ConfigError(
            field,
            getattr(cfg, field),
            f"budget × cycles ≤ {n_pool}, the size of this pool "
            f"(budget={cfg.budget}, cycles={cfg.cycles}, IF={cfg.imbalance_factor})",
        )
    if cfg.model == "resnet18" and min(ds.image_shape[1:]) < 8:
        raise ConfigError("model", cfg.model, "smallcnn for images smaller than 8x8")
    return Prepared(cfg, ds, pool, effective_lam(cfg, ds.num_classes))


def cycle_seed(seed: int, cycle: int) -> int:
    return int(np.random.SeedSequence([seed, cycle]).generate_state(1)[0])


class StatusReporter:
    """Turns loop events into status.json heartbeats (at most one write a second) with the phase,
    the fraction done and an ETA, and forwards them to an optional callback."""

    def __init__(self, store: Store, run_id: str, cycles: int, forward: ProgressFn | None = None):
        self.store, self.run_id, self.cycles, self.forward = store, run_id, cycles, forward
        self.start = time.time()
        self.start_fraction: float | None = None
        self.last_write = 0.0

    def __call__(self, event: Event) -> None:
        frac = (event["cycle"] + event.get("within", 0.0)) / (self.cycles + 1)
        if self.start_fraction is None:
            self.start_fraction = frac
        elapsed = time.time() - self.start
        gained = frac - self.start_fraction
        eta = elapsed / gained * (1 - frac) if gained > 1e-6 else None
        event = {**event, "fraction": round(frac, 4), "eta_s": eta}
        fault_point(event["phase"], event["cycle"])
        now = time.time()
        if now - self.last_write >= 1.0 or event.get("within", 0.0) == 0.0:
            self.store.write_status(self.run_id, progress=event)
            self.last_write = now
        if self.forward is not None:
            self.forward(event)


def replay_labeled(store: Store, run_id: str, prep: Prepared) -> tuple[np.ndarray, int]:
    """The labeled set after the run's finished cycles, and the next cycle to do."""
    done = store.read_cycles(run_id)
    labeled = [prep.pool.labeled]
    for k, record in enumerate(done):
        if record.get("selected_counts") is not None:
            labeled.append(store.load_cycle_arrays(run_id, k)["selected"])
    return np.concatenate(labeled).astype(np.int64), len(done)


def execute(store: Store, run_id: str, progress: ProgressFn | None = None) -> list[Event]:
    """Run (or resume) ``run_id`` to its end; returns its cycle records.

    Holds the run's lock, keeps status.json current, and leaves 'failed' with the error (or
    'cancelled') when it stops early; every finished cycle is already on disk by then.
    """
    cfg = store.load_config(run_id)
    with store.lock(run_id):
        store.remove_temp_files(run_id)
        store.write_status(
            run_id,
            state="running",
            pid=os.getpid(),
            host=socket.gethostname(),
            error=None,
            started=time.time(),
        )
        try:
            _run_cycles(store, run_id, cfg, StatusReporter(store, run_id, cfg.cycles, progress))
        except Cancelled:
            store.write_status(run_id, state="cancelled", pid=None)
            raise
        except BaseException as exc:
            store.write_status(
                run_id,
                state="failed",
                pid=None,
                error=_describe(exc),
                traceback=traceback.format_exc(limit=20),
            )
            raise
        store.write_status(run_id, state="done", pid=None, finished=time.time())
    return store.read_cycles(run_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory: {exc}. Lower batch_size/eval_batch_size or use a smaller pool."
    return f"{type(exc).__name__}: {exc}"


def _run_cycles(store: Store, run_id: str, cfg: RunConfig, report: StatusReporter) -> None:
    import torch

    from cbal.models import build_model
    from cbal.train import (
        DeviceImages,
        augmentation,
        evaluate,
        infer,
        resolve_device,
        train_model,
    )

    prep = prepare(cfg)
    ds, num_classes = prep.dataset, prep.num_classes
    strategy = STRATEGIES[cfg.strategy]
    device = resolve_device(cfg.device)
    train_images = DeviceImages.create(ds.x_train, ds.mean, ds.std, device)
    test_images = DeviceImages.create(ds.x_test, ds.mean, ds.std, device)
    labeled, first = replay_labeled(store, run_id, prep)
    in_pool = np.zeros(len(ds.y_train), dtype=bool)
    in_pool[prep.pool.unlabeled] = True
    in_pool[labeled] = False
    # the released code scores the pool on augmented images (compat=paper)
    augment = augmentation(cfg, train_images) if cfg.compat == "paper" else None
    assert cfg.dropout is not None  # derived by make_config

    for k in range(first, cfg.cycles + 1):
        seed = cycle_seed(cfg.seed, k)
        timings: dict[str, float] = {}

        def on_epoch(epoch: int, epochs: int, k: int = k) -> None:
            report(
                {
                    "cycle": k,
                    "phase": "train",
                    "step": epoch,
                    "steps": epochs,
                    "within": 0.8 * epoch / epochs,
                }
            )

        report({"cycle": k, "phase": "train", "step": 0, "steps": cfg.epochs, "within": 0.0})
        t = time.perf_counter()
        torch.manual_seed(seed)  # weight init
        model = build_model(cfg.model, num_classes, ds.image_shape[0], cfg.dropout)
        train_model(model, train_images, labeled, ds.y_train[labeled], cfg, seed, on_epoch)
        timings["train"] = time.perf_counter() - t

        t = time.perf_counter()
        acc, per_class, _ = evaluate(
            model, test_images, ds.y_test, num_classes, cfg.eval_batch_size
        )
        timings["eval"] = time.perf_counter() - t
        counts = class_counts(ds.y_train[labeled], num_classes)
        record: Event = {
            "cycle": k,
            "strategy": cfg.strategy,
            "lam": prep.lam,
            "labeled": int(len(labeled)),
            "accuracy": acc,
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
            "labeled_counts": counts.tolist(),
            "selected_counts": None,
            "batch_l1": None,
            "labeled_l1": l1_score(counts),
            "selection": None,
        }
        arrays: dict[str, np.ndarray] = {}
        if k < cfg.cycles:
            pool_idx = np.flatnonzero(in_pool)
            report({"cycle": k, "phase": "infer", "within": 0.85})
            t = time.perf_counter()
            out = infer(
                model,
                train_images,
                pool_idx,
                cfg.eval_batch_size,
                cfg.mc_passes if strategy.needs_mc else 0,
                seed,
                str(cfg.mc_source),
                augment,
            )
            lab_emb = (
                infer(
                    model,
                    train_images,
                    labeled,
                    cfg.eval_batch_size,
                    seed=seed + 1,
                    augment=augment,
                ).embeddings
                if strategy.needs_embeddings or cfg.save_embeddings
                else None
            )
            timings["infer"] = time.perf_counter() - t

            report({"cycle": k, "phase": "select", "within": 0.92})
            t = time.perf_counter()
            ctx = SelectionContext(
                probs=out.probs,
                labeled_counts=counts,
                mc_probs=out.mc_probs,
                embeddings=out.embeddings,
                labeled_embeddings=lab_emb,
                lam=prep.lam,
                solver=cfg.solver,
                time_limit=cfg.solver_time_limit,
                rng=np.random.default_rng(seed),
                compat=cfg.compat,
            )
            omega = ctx.omega(cfg.budget)
            in_pool_counts = class_counts(ds.y_train[pool_idx], num_classes)
            sel = strategy.select(ctx, cfg.budget)
            timings["select"] = time.perf_counter() - t
            pos = np.asarray(sel.indices, dtype=np.int64)
            if len(pos) != cfg.budget or len(np.unique(pos)) != cfg.budget:
                raise RuntimeError(f"{cfg.strategy} returned {len(pos)} picks, not {cfg.budget}")
            selected = pool_idx[pos]
            picked = class_counts(ds.y_train[selected], num_classes)
            after = counts + picked
            record.update(
                selected_counts=picked.tolist(),
                batch_l1=l1_score(picked),
                labeled_counts_after=after.tolist(),
                labeled_l1=l1_score(after),
                selection=sel.diagnostics,
                omega=[float(v) for v in omega],
                pool_counts=in_pool_counts.tolist(),
                exhausted_classes=exhausted_classes(omega, in_pool_counts),
            )
            arrays = _cycle_arrays(cfg, ds, pool_idx, pos, out, ctx, sel, omega, lab_emb)
            labeled = np.concatenate([labeled, selected])
            in_pool[selected] = False
        record["timings"] = timings
        report({"cycle": k, "phase": "record", "within": 0.99})
        store.append_cycle(run_id, record, arrays)


def _cycle_arrays(
    cfg: RunConfig,
    ds: data.Dataset,
    pool_idx: np.ndarray,
    pos: np.ndarray,
    out: Any,
    ctx: SelectionContext,
    sel: Any,
    omega: np.ndarray,
    lab_emb: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """What cycle_<k>.npz holds: the selection always; the pool arrays for the λ explorer when
    ``save_pool_arrays`` (P as the strategy used it, its scores u, Ω, the true labels, and the
    features as KCenterGreedy used them).

    P is float32-exact (softmax outputs are float32), so storing it as float32 loses nothing and
    a re-selection on the saved arrays reproduces the run's own."""
    probs = out.probs if sel.probs is None else sel.probs
    arrays = {
        "selected": pool_idx[pos],
        "selected_pos": pos,
        "selected_pred": probs[pos].argmax(axis=1).astype(np.int64),
    }
    if cfg.save_pool_arrays:
        arrays.update(
            pool_indices=pool_idx,
            pool_labels=ds.y_train[pool_idx],
            probs=probs.astype(np.float32),
            omega=omega,
            labeled_counts=ctx.labeled_counts,
        )
        if sel.scores is not None:
            arrays["scores"] = np.asarray(sel.scores, dtype=np.float64)
        if cfg.save_embeddings and lab_emb is not None:
            emb, lab = kcenter_features(ctx)
            arrays.update(embeddings=emb, labeled_embeddings=lab)
    return arrays


def exhausted_classes(omega: np.ndarray, pool_counts: np.ndarray) -> list[int]:
    """Classes whose Ω_c asks for more images than the pool still holds of them."""
    return [int(c) for c in np.flatnonzero(np.asarray(omega) > np.asarray(pool_counts))]


def describe_exhaustion(record: dict[str, Any]) -> list[str]:
    """One line per exhausted class of a cycle record ("class 7: 2 images left in the pool,
    Ω asks 6"); empty when none (or for a record from before cbal recorded it)."""
    return [
        f"class {c}: {record['pool_counts'][c]} images left in the pool, "
        f"Ω asks {record['omega'][c]:.3g}"
        for c in record.get("exhausted_classes") or []
    ]
