"""One active-learning run: cycles of train → evaluate → infer → select → record.

Cycle k (0..cycles) trains a fresh model on the labeled set L_k and evaluates it; every cycle but
the last then scores the pool and selects ``budget`` images whose labels are revealed. Seeds
derive from (run seed, cycle), so a run resumed after a kill gives the same result. The method
and the protocol are set out in docs/design.md.

torch is imported inside :func:`execute` only: :func:`prepare` (validation) stays importable by
the dashboard without loading torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cbal import data, process
from cbal.config import ARRAY_MODELS, IN_MEMORY, MIN_IMAGE_SIZE, ConfigError, RunConfig, run_lam
from cbal.store import DamagedRun, Store, StoreError, fault_point
from cbal.strategies import STRATEGIES, SelectionContext, kcenter_features, select_checked
from cbal.strategies.balance import class_counts, l1_score
from cbal.strategies.summary import selection_summary

Event = dict[str, Any]
ProgressFn = Callable[[Event], None]
# a user's network: (num_classes, (channels, height, width)) → a torch module whose forward
# returns (logits, features) like cbal.models.Classifier
ModelFn = Callable[[int, tuple[int, int, int]], Any]


class Cancelled(BaseException):
    """Raised inside a run when it is asked to stop (SIGTERM, or a cancel request in its folder).

    A BaseException, so no library's ``except Exception`` can swallow the request."""


class CancelRequested(Cancelled):
    """This run was cancelled through its folder (e.g. from the dashboard): only it stops."""


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
    if dataset is None and cfg.dataset == IN_MEMORY:
        raise data.DataError(
            "dataset=memory means arrays given to cbal.run(config, dataset=...) in Python; "
            "they cannot be loaded from a config"
        )
    ds = dataset or data.load_dataset(
        cfg.dataset, cfg.data_dir, image_size=cfg.image_size, test_per_class=cfg.test_per_class
    )
    _check_dataset(cfg, ds)
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
    return Prepared(cfg, ds, pool, run_lam(cfg, ds.num_classes) or 0.0)


class NotReloadable(StoreError):
    """A run made by :func:`cbal.run` from Python objects that its config cannot reload."""


def check_reloadable(
    run_id: str, cfg: RunConfig, dataset: data.Dataset | None, model_fn: ModelFn | None
) -> None:
    """NotReloadable when the run needs data or a network its config cannot rebuild."""
    missing = []
    if cfg.dataset == IN_MEMORY and dataset is None:
        missing.append("its data were arrays held in memory (dataset=memory): pass dataset=")
    if cfg.model == "custom" and model_fn is None:
        missing.append("its network came from a model factory (model=custom): pass model_fn=")
    if missing:
        raise NotReloadable(
            f"run {run_id} cannot be resumed from its config alone: {'; '.join(missing)} "
            f"again to cbal.run(..., resume={run_id!r}) (its finished cycles are kept)"
        )


def _check_dataset(cfg: RunConfig, ds: data.Dataset) -> None:
    """What would only fail after training, or train on nothing: an empty test set, a class
    without training images, images too small for the model."""
    if ds.is_features and (cfg.augment != "none" or cfg.model not in ARRAY_MODELS):
        field = "augment" if cfg.augment != "none" else "model"
        allowed = "none for feature arrays" if field == "augment" else "linear or custom"
        raise ConfigError(field, getattr(cfg, field), f"{allowed} (the data are features)")
    if len(ds.y_test) == 0:
        raise data.DataError(f"{ds.name}: the test set holds no images; a run needs some")
    absent = np.flatnonzero(np.bincount(ds.y_train, minlength=ds.num_classes) == 0)
    if absent.size:
        names = ", ".join(ds.class_names[c] for c in absent[:5])
        raise data.DataError(
            f"{ds.name}: {absent.size} of {ds.num_classes} classes have no training image "
            f"({names}{', ...' if absent.size > 5 else ''}); every class needs some"
        )
    side = min(ds.image_shape[1:])
    if side < MIN_IMAGE_SIZE[cfg.model]:
        small = [m for m, s in MIN_IMAGE_SIZE.items() if s <= side]
        fix = f"model {' or '.join(small)}, or " if small else ""
        raise ConfigError(
            "image_size" if cfg.dataset in ("imagefolder", "tinyimagenet") else "model",
            cfg.image_size if cfg.dataset in ("imagefolder", "tinyimagenet") else cfg.model,
            f"{fix}images of at least {MIN_IMAGE_SIZE[cfg.model]}x{MIN_IMAGE_SIZE[cfg.model]} "
            f"for {cfg.model} (these are {side}x{side})",
        )


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
        if self.store.cancel_requested(self.run_id):
            raise CancelRequested("cancel requested")
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
    in_pool = np.zeros(len(prep.dataset.y_train), dtype=bool)
    in_pool[prep.pool.unlabeled] = True
    for k, record in enumerate(done):
        if record["selected_counts"] is not None:
            selected = store.load_cycle_arrays(run_id, k, keys=("selected",)).get("selected")
            why = _bad_selection(selected, record, in_pool, prep)
            if why or selected is None:
                raise DamagedRun(run_id, f"cycle_{k}.npz", f"'selected' {why}")
            in_pool[selected] = False
            labeled.append(selected)
    return np.concatenate(labeled).astype(np.int64), len(done)


def _bad_selection(selected: Any, record: Event, in_pool: np.ndarray, prep: Prepared) -> str:
    """Why a stored selection cannot be the run's (a hand-edited or foreign npz), or ''."""
    if selected is None:
        return "is missing"
    if selected.ndim != 1 or not np.issubdtype(selected.dtype, np.integer):
        return f"should be a list of indices, not {selected.dtype} of shape {selected.shape}"
    if selected.size != prep.config.budget:
        return f"holds {selected.size} indices, not budget={prep.config.budget}"
    if selected.min() < 0 or selected.max() >= in_pool.size:
        return f"holds indices outside 0..{in_pool.size - 1}"
    if np.unique(selected).size != selected.size or not in_pool[selected].all():
        return "holds indices that are not in the unlabeled pool (or repeats)"
    counts = np.bincount(prep.dataset.y_train[selected], minlength=prep.num_classes)
    if counts.tolist() != record["selected_counts"]:
        return "does not match the cycle's selected_counts in cycles.jsonl"
    return ""


def run_threads(status: dict[str, Any], threads: int | None = None) -> int:
    """The torch CPU threads of a run: the count recorded in its status.json by its first
    execution (so a resume computes like the start did), else ``threads`` when asked for, else
    :func:`cbal.runner.threads_per_run`, one rule whichever entry point (CLI, dashboard, sweep)
    starts the run. CPU results depend on the thread count (reductions split differently), so
    fixing it is what makes one configuration and seed give the same numbers everywhere."""
    from cbal.runner import threads_per_run

    recorded = status.get("threads")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
        return recorded
    return threads if threads is not None else threads_per_run()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def execute(
    store: Store,
    run_id: str,
    progress: ProgressFn | None = None,
    threads: int | None = None,
    prepared: Prepared | None = None,
    *,
    dataset: data.Dataset | None = None,
    model_fn: ModelFn | None = None,
) -> list[Event]:
    """Run (or resume) ``run_id`` to its end; returns its cycle records.

    ``prepared``: the run's data as :func:`prepare` returned it for this very configuration
    (e.g. by a caller that validated it first), so the dataset is decoded once per run.

    Holds the run's lock, keeps status.json current (with the run's torch thread count, see
    :func:`run_threads`), and leaves 'failed' with the error (or 'cancelled') when it stops
    early; every finished cycle is already on disk by then. ``dataset`` and ``model_fn`` are
    the Python objects of a run made by :func:`cbal.run` (its config cannot reload them).
    """
    cfg = store.load_config(run_id)
    check_reloadable(run_id, cfg, dataset if prepared is None else prepared.dataset, model_fn)
    if prepared is not None and prepared.config != cfg:
        raise ValueError(f"run {run_id}: the prepared data is for another configuration")
    with store.lock(run_id):
        n_threads = run_threads(store.read_status(run_id), threads)
        store.remove_temp_files(run_id)
        store.write_status(
            run_id,
            state="running",
            pid=os.getpid(),
            pid_start=process.start_time(os.getpid()),
            sigterm=callable(signal.getsignal(signal.SIGTERM)),  # it stops cleanly on SIGTERM
            host=socket.gethostname(),
            error=None,
            started=time.time(),
            threads=n_threads,
        )
        try:
            with torch_threads(n_threads):
                reporter = StatusReporter(store, run_id, cfg.cycles, progress)
                _run_cycles(store, run_id, cfg, reporter, prepared, dataset, model_fn)
        except (Cancelled, KeyboardInterrupt):  # SIGTERM, a cancel request or Ctrl-C
            store.write_status(run_id, state="cancelled", pid=None)
            store.clear_cancel(run_id)
            raise
        except BaseException as exc:
            record_failure(store, run_id, exc, traceback.format_exc(limit=20))
            raise
        store.write_status(run_id, state="done", pid=None, finished=time.time())
    return store.read_cycles(run_id)


def record_failure(store: Store, run_id: str, exc: BaseException, trace: str = "") -> bool:
    """Leave the run 'failed' with ``exc``'s description; False if that cannot be written
    (e.g. a read-only store), so that no one is told to look in status.json."""
    try:
        store.write_status(run_id, state="failed", pid=None, error=describe(exc), traceback=trace)
    except (OSError, StoreError):
        return False
    return True


def failure_recorded(store: Store, run_id: str, exc: BaseException) -> bool:
    """Whether status.json holds ``exc`` as the run's error."""
    try:
        return store.read_status(run_id).get("error") == describe(exc)
    except (OSError, StoreError):
        return False


def describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory: {exc}. Lower batch_size/eval_batch_size or use a smaller pool."
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Run:
    """What stays fixed across a run's cycles, and the labeled set / pool as they grow."""

    prep: Prepared
    report: StatusReporter
    images: Any  # the training images, then the test images, in one device store
    augment: Any  # the released code scores the pool on augmented images (compat=paper)
    labeled: np.ndarray
    in_pool: np.ndarray
    model_fn: ModelFn | None = None  # a user's network (cbal.run), else the config's model

    @property
    def cfg(self) -> RunConfig:
        return self.prep.config


def _start(store: Store, run_id: str, prep: Prepared, report: StatusReporter) -> tuple[_Run, int]:
    """The run's images on its device and its labeled set after the finished cycles."""
    from cbal.train import DeviceImages, augmentation, resolve_device

    cfg, ds = prep.config, prep.dataset
    device = resolve_device(cfg.device)
    # train and test images in one device store, so that a cycle's passes can share batches
    images = DeviceImages.create(np.concatenate([ds.x_train, ds.x_test]), ds.mean, ds.std, device)
    labeled, first = replay_labeled(store, run_id, prep)
    in_pool = np.zeros(len(ds.y_train), dtype=bool)
    in_pool[prep.pool.unlabeled] = True
    in_pool[labeled] = False
    augment = augmentation(cfg, images) if cfg.compat == "paper" else None
    return _Run(prep, report, images, augment, labeled, in_pool), first


def _run_cycles(
    store: Store,
    run_id: str,
    cfg: RunConfig,
    report: StatusReporter,
    prepared: Prepared | None = None,
    dataset: data.Dataset | None = None,
    model_fn: ModelFn | None = None,
) -> None:
    prep = prepared if prepared is not None else prepare(cfg, dataset)
    assert cfg.dropout is not None  # derived by make_config
    run, first = _start(store, run_id, prep, report)
    run.model_fn = model_fn
    for k in range(first, cfg.cycles + 1):
        seed = cycle_seed(cfg.seed, k)
        timings: dict[str, float] = {}
        record, passes = _train_evaluate(run, k, seed, timings)
        arrays: dict[str, np.ndarray] = {}
        if passes.pool is not None:
            arrays = _select(run, passes, k, seed, timings, record)
        record["timings"] = timings
        report({"cycle": k, "phase": "record", "within": 0.99})
        store.append_cycle(run_id, record, arrays)


def compile_requested() -> bool:
    """``CBAL_COMPILE=1`` trains through torch.compile on CUDA: an execution setting like the
    thread count, not part of a run's configuration. Off by default."""
    return os.environ.get("CBAL_COMPILE", "") == "1"


def _train_evaluate(
    run: _Run, k: int, seed: int, timings: dict[str, float]
) -> tuple[Event, CyclePasses]:
    """Train cycle ``k``'s fresh model on the labeled set, then its passes (test set, and pool
    and labeled set in a cycle that selects): the cycle record up to its selection."""
    import torch

    from cbal.models import build_model
    from cbal.train import train_model

    cfg, ds, report = run.cfg, run.prep.dataset, run.report
    num_classes = ds.num_classes

    def on_epoch(epoch: int, epochs: int) -> None:
        within = 0.8 * epoch / epochs
        report({"cycle": k, "phase": "train", "step": epoch, "steps": epochs, "within": within})

    report({"cycle": k, "phase": "train", "step": 0, "steps": cfg.epochs, "within": 0.0})
    t = time.perf_counter()
    torch.manual_seed(seed)  # weight init
    assert cfg.dropout is not None
    model = (
        run.model_fn(num_classes, ds.image_shape)
        if run.model_fn is not None
        else build_model(cfg.model, num_classes, ds.image_shape[0], cfg.dropout)
    )
    labeled = run.labeled
    y = ds.y_train[labeled]
    train_model(model, run.images, labeled, y, cfg, seed, on_epoch, compile_requested())
    timings["train"] = time.perf_counter() - t

    pool_idx = np.flatnonzero(run.in_pool) if k < cfg.cycles else None
    if pool_idx is not None:
        report({"cycle": k, "phase": "infer", "within": 0.85})
    passes = _cycle_passes(run, model, pool_idx, seed)
    timings.update(passes.timings)
    counts = class_counts(y, num_classes)
    record: Event = {
        "cycle": k,
        "strategy": cfg.strategy,
        "lam": run.prep.lam,
        "labeled": int(len(labeled)),
        "accuracy": passes.accuracy,
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in passes.per_class],
        "labeled_counts": counts.tolist(),
        "selected_counts": None,
        "batch_l1": None,
        "labeled_l1": l1_score(counts),
        "selection": None,
    }
    return record, passes


@dataclass
class CyclePasses:
    """A cycle's model outputs: the test accuracy and, in a cycle that selects, the pool's
    Inference and the labeled set's embeddings (None when nothing needs them)."""

    accuracy: float
    per_class: np.ndarray
    pool: Any
    pool_idx: np.ndarray | None
    labeled_embeddings: np.ndarray | None
    timings: dict[str, float]


def _cycle_passes(run: _Run, model: Any, pool_idx: np.ndarray | None, seed: int) -> CyclePasses:
    """Test, pool and labeled-set outputs of one cycle (``pool_idx`` None: the last cycle, test
    only). Clean scoring runs the three sets in one pass, timed as ``infer`` (``eval`` is then
    the accuracy alone); scoring on augmented images (compat=paper) takes passes of its own, and
    so do BatchNorm MC passes."""
    import torch

    from cbal.train import Inference, accuracy, forward_sets, infer, monte_carlo

    cfg, ds, images, augment = run.cfg, run.prep.dataset, run.images, run.augment
    strategy = STRATEGIES[cfg.strategy]
    # the test images sit after the training images in ``images``
    sets: list[np.ndarray] = [np.arange(len(ds.y_test)) + len(ds.y_train)]
    want_lab = pool_idx is not None and (strategy.needs_embeddings or cfg.save_embeddings)
    joint = pool_idx is not None and augment is None
    if joint and pool_idx is not None:
        sets += [pool_idx, run.labeled] if want_lab else [pool_idx]
    t = time.perf_counter()
    outs = forward_sets(model, images, sets, cfg.eval_batch_size)
    timings = {"infer" if joint else "eval": time.perf_counter() - t}
    t = time.perf_counter()
    acc, per_class, _ = accuracy(outs[0][0], ds.y_test, ds.num_classes)
    timings["eval"] = timings.get("eval", 0.0) + time.perf_counter() - t
    pool, lab_emb = None, None
    if pool_idx is not None:
        t = time.perf_counter()
        mc, batch, source = (
            cfg.mc_passes if strategy.needs_mc else 0,
            cfg.eval_batch_size,
            str(cfg.mc_source),
        )
        if joint:
            logits, feats = outs[1]
            gen = torch.Generator().manual_seed(seed)  # as infer() draws them
            mc_probs = monte_carlo(model, images, pool_idx, feats, batch, mc, seed, source, gen)
            pool = Inference.from_device(logits, feats, mc_probs)
        else:
            pool = infer(model, images, pool_idx, batch, mc, seed, source, augment)
        if want_lab:
            lab_emb = (
                outs[2][1].cpu().numpy()
                if joint
                else infer(
                    model, images, run.labeled, batch, seed=seed + 1, augment=augment
                ).embeddings
            )
        timings["infer"] = timings.get("infer", 0.0) + time.perf_counter() - t
    return CyclePasses(acc, per_class, pool, pool_idx, lab_emb, timings)


def _select(
    run: _Run, passes: CyclePasses, k: int, seed: int, timings: dict[str, float], record: Event
) -> dict[str, np.ndarray]:
    """Select the batch from the pool's outputs, complete ``record`` with it and move the batch
    from the pool to the labeled set; returns the cycle's arrays."""
    cfg, ds, report = run.cfg, run.prep.dataset, run.report
    out, lab_emb, pool_idx = passes.pool, passes.labeled_embeddings, passes.pool_idx
    assert pool_idx is not None
    report({"cycle": k, "phase": "select", "within": 0.92})
    t = time.perf_counter()
    counts = np.asarray(record["labeled_counts"], dtype=np.int64)
    ctx = SelectionContext(
        probs=out.probs,
        labeled_counts=counts,
        mc_probs=out.mc_probs,
        embeddings=out.embeddings,
        labeled_embeddings=lab_emb,
        lam=run.prep.lam,
        solver=cfg.solver,
        time_limit=cfg.solver_time_limit,
        mip_gap=cfg.solver_mip_gap,
        rng=np.random.default_rng(seed),
        compat=cfg.compat,
    )
    omega = ctx.omega(cfg.budget)  # once: the strategy and the saved arrays read this one
    pool_labels = ds.y_train[pool_idx]
    in_pool_counts = class_counts(pool_labels, ds.num_classes)
    sel = select_checked(STRATEGIES[cfg.strategy], ctx, cfg.budget)
    timings["select"] = time.perf_counter() - t
    pos = sel.indices
    p = out.probs if sel.probs is None else sel.probs
    summary = selection_summary(pos, p, omega, pool_labels, counts)
    record.update(
        selected_counts=summary.batch_counts.tolist(),
        batch_l1=summary.batch_l1,
        labeled_counts_after=summary.labeled_counts_after.tolist(),
        labeled_l1=summary.labeled_l1,
        selection=sel.diagnostics,
        omega=[float(v) for v in omega],
        pool_counts=in_pool_counts.tolist(),
        exhausted_classes=exhausted_classes(omega, in_pool_counts),
    )
    arrays = _cycle_arrays(cfg, ds, pool_idx, pos, out, ctx, sel, lab_emb)
    selected = pool_idx[pos]
    run.labeled = np.concatenate([run.labeled, selected])
    run.in_pool[selected] = False
    return arrays


def _cycle_arrays(
    cfg: RunConfig,
    ds: data.Dataset,
    pool_idx: np.ndarray,
    pos: np.ndarray,
    out: Any,
    ctx: SelectionContext,
    sel: Any,
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
            omega=ctx.omega(cfg.budget),
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
