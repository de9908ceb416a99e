"""The λ explorer's engine: re-run a cycle's selection on its saved arrays, no retraining.

A run made with ``save_pool_arrays`` keeps, per selecting cycle, the pool's class probabilities P
exactly as the strategy used them, its informativeness u, the target counts Ω, the labeled class
counts and the pool's true labels (``cycle_<k>.npz``, see :mod:`cbal.loop`). From those this
module answers "what would this cycle have picked at another λ?":

- :func:`load_cycle` reads one cycle into a :class:`CycleArrays`;
- :func:`reselect` re-runs the selection at one λ (the run's own by default) and returns a
  :class:`Reselection`: picks, predicted and true class histograms, L1 scores, informativeness,
  overlap with the run's actual picks, solver diagnostics and the dual for a warm start;
- :func:`lambda_path` does it for a grid of λ (:func:`balance.solve_path`) and
  returns a :class:`LambdaPath` whose :meth:`LambdaPath.rows` is a tidy table.

Pure numpy: no torch, no plotting, no UI; results are plain dataclasses and dicts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbal.config import RunConfig, run_lam
from cbal.store import Store, StoreError
from cbal.strategies import SCORES, STRATEGIES, balance, cb_variant, kcenter
from cbal.strategies.summary import selection_summary

__all__ = [
    "DEFAULT_LAMS",
    "EXPLORE_TIME_LIMIT",
    "SLOW_SECONDS",
    "CycleArrays",
    "LambdaPath",
    "NoEmbeddings",
    "NoPoolArrays",
    "Reselection",
    "default_lams",
    "estimate_seconds",
    "informativeness",
    "jaccard",
    "lambda_path",
    "load_cycle",
    "reselect",
]

#: The default λ grid: 0 plus 29 log-spaced values from 0.01 to 1000 (30 points).
DEFAULT_LAMS: np.ndarray = np.concatenate([[0.0], np.logspace(-2, 3, 29)])
DEFAULT_LAMS.setflags(write=False)

#: A re-selection estimated to take longer than this many seconds is flagged as slow.
SLOW_SECONDS = 3.0

#: Search seconds of the binary problem (and milp) at a λ the run did not use. Where no proof
#: is in reach its work limits can take tens of seconds on a digits cycle (measured: up to 25 s
#: at λ = 50); a λ being tried gets the best selection found by then, with its status
#: (``time_limit``) and certified gap. The run's own λ keeps the run's limit: its picks.
EXPLORE_TIME_LIMIT = 2.0

# Rough cost model of KCenterGreedy(-CB), fitted on a busy 2-core CPU (seconds):
# distances to the labeled set N·L·(a·d + c), then ~k per pick and pool point (lazy updates).
_KC_GEMM = 1.2e-11
_KC_PASS = 7e-9
_KC_STEP = 1e-8
# Rough cost of the CB LP (seconds per N·C): 2.4e-8 measured at 45,000 × 100
# (bench/bench_explore.py), doubled for a busy machine.
_CB_COST = 5e-8

_POOL_HINT = (
    "re-run it with `--save-pool-arrays true` (the default; in the UI: 'save pool arrays'). "
    "Cost: the pool's probabilities, N×C float32 per cycle (N = pool size, C = classes), "
    "e.g. 45,000 × 100 × 4 B ≈ 18 MB per cycle for CIFAR-100, plus N float64 scores"
)
_EMB_HINT = (
    "re-run it with `--save-embeddings true` (and `--save-pool-arrays true`). "
    "Cost: the pool's and labeled set's penultimate features, (N + L)×d float32 per cycle, "
    "e.g. 50,000 × 512 × 4 B ≈ 100 MB per cycle for ResNet-18 on CIFAR"
)


# the cycle_<k>.npz arrays a re-selection reads (the embeddings only when asked)
_ARRAYS = (
    "selected_pos",
    "probs",
    "omega",
    "labeled_counts",
    "pool_labels",
    "pool_indices",
    "scores",
)


class NoPoolArrays(StoreError):
    """The run did not save what a re-selection needs (its pool probabilities)."""


class NoEmbeddings(NoPoolArrays):
    """KCenterGreedy(-CB) re-selection needs the saved embeddings, which the run did not keep."""


# --------------------------------------------------------------------------------------------
# The saved arrays of one cycle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CycleArrays:
    """The saved arrays of one selecting cycle, with the run's config and effective λ.

    Positions (``selected_pos``) index the pool arrays (rows of ``probs``); ``pool_indices``
    maps them to dataset indices. Build one by hand (tests, benchmarks) or with
    :func:`load_cycle`.
    """

    strategy: str  # the run's strategy
    lam: float  # the run's effective λ in this cycle (0 for strategies without one)
    selected_pos: np.ndarray  # (b,) int64, the run's picks as pool positions, in its order
    probs: np.ndarray  # (N, C) float32, exactly the P the strategy used
    omega: np.ndarray  # (C,) float64 target counts Ω
    labeled_counts: np.ndarray  # (C,) int64 true class counts of the labeled set before
    pool_labels: np.ndarray  # (N,) int64 true labels of the pool
    pool_indices: np.ndarray | None = None  # (N,) dataset index of each pool position
    scores: np.ndarray | None = None  # (N,) float64 u, when the strategy had one
    embeddings: np.ndarray | None = None  # (N, d) pool features (save_embeddings)
    labeled_embeddings: np.ndarray | None = None  # (L, d) labeled-set features
    run_id: str | None = None
    cycle: int | None = None
    config: RunConfig | None = None
    record: dict[str, Any] = field(default_factory=dict)  # the cycle's cycles.jsonl line

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r} is unknown")
        p = self.probs
        if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
            raise ValueError(f"probs must be (N, C) with N, C ≥ 1, got shape {p.shape}")
        n, c = p.shape
        for name, shape in (
            ("omega", (c,)),
            ("labeled_counts", (c,)),
            ("pool_labels", (n,)),
            ("pool_indices", (n,)),
            ("scores", (n,)),
        ):
            arr = getattr(self, name)
            if arr is not None and arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        sel = self.selected_pos
        if sel.ndim != 1 or sel.size < 1 or not np.issubdtype(sel.dtype, np.integer):
            raise ValueError("selected_pos must be a non-empty 1-D integer array")
        if sel.min() < 0 or sel.max() >= n or np.unique(sel).size != sel.size:
            raise ValueError(f"selected_pos must be distinct positions in [0, N={n})")
        if self.embeddings is not None and self.embeddings.shape[0] != n:
            raise ValueError(f"embeddings must have N={n} rows, got {self.embeddings.shape}")

    @property
    def n_pool(self) -> int:
        return int(self.probs.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def budget(self) -> int:
        """The cycle's budget: the number of picks the run made."""
        return int(self.selected_pos.shape[0])

    @property
    def selected(self) -> np.ndarray:
        """The run's picks as dataset indices (pool positions when ``pool_indices`` is absent)."""
        if self.pool_indices is None:
            return self.selected_pos
        out: np.ndarray = self.pool_indices[self.selected_pos]
        return out

    @property
    def has_embeddings(self) -> bool:
        return self.embeddings is not None and self.labeled_embeddings is not None

    @property
    def time_limit(self) -> float:
        return float(self.config.solver_time_limit) if self.config is not None else 60.0

    @property
    def mip_gap(self) -> float:
        """The run's proof gap for ``binary`` and ``milp`` (the default without a config)."""
        return float(self.config.solver_mip_gap) if self.config is not None else balance.MIP_GAP

    @property
    def solver(self) -> str:
        """The run's CB solver (the default one for arrays without a config)."""
        return self.config.solver if self.config is not None else next(iter(balance.METHODS))


Shortfall = tuple[int, int, float]  # (class, images of it left in the pool, Ω_c)


def balance_limits(store: Store, run_id: str) -> dict[int, list[Shortfall]]:
    """Per selecting cycle, the classes whose pool held fewer images than the cycle's Ω.

    Where there are any, no batch can balance the labeled set: ‖Ω − Pᵀz‖₁ cannot reach 0 and
    a larger λ changes less. Read from each cycle record's ``exhausted_classes``,
    ``pool_counts`` and ``omega`` (the loop records them); a record from before cbal recorded
    them counts as not exhausted.
    """
    limits: dict[int, list[Shortfall]] = {}
    for r in store.read_cycles(run_id):
        if r.get("selected_counts") is None:
            continue
        limits[int(r["cycle"])] = [
            (int(c), int(r["pool_counts"][c]), float(r["omega"][c]))
            for c in r.get("exhausted_classes") or []
        ]
    return limits


def load_cycle(
    store: Store, run_id: str, cycle: int, embeddings: bool | None = None
) -> CycleArrays:
    """The saved arrays of selecting cycle ``cycle`` of ``run_id``, with config and λ.

    Only the arrays a re-selection reads come from disk: the embeddings (the largest by far)
    when ``embeddings`` is true, or by default when the run's own strategy works on them
    (KCenterGreedy's re-selection then is the run's own problem).

    Raises
    ------
    StoreError
        Unknown run (from the store).
    ValueError
        ``cycle`` is not a finished cycle that selected (the last cycle only trains/evaluates).
    NoPoolArrays
        The run did not save its pool arrays (``save_pool_arrays`` false, or an npz without
        ``probs``); the message says how to enable it.
    """
    cfg = store.load_config(run_id)
    records = store.read_cycles(run_id)
    selecting = [r["cycle"] for r in records if r.get("selected_counts") is not None]
    if isinstance(cycle, bool) or not isinstance(cycle, (int, np.integer)):
        raise ValueError(f"cycle={cycle!r} must be an integer")
    if not 0 <= cycle < len(records) or records[cycle].get("selected_counts") is None:
        have = f"{selecting[0]}..{selecting[-1]}" if selecting else "none yet"
        why = (
            f"the last cycle ({cfg.cycles}) only trains and evaluates"
            if cycle == cfg.cycles
            else f"the run has {len(records)} finished cycle(s)"
        )
        raise ValueError(
            f"run {run_id}: cycle {cycle} made no selection ({why}); "
            f"cycles with a selection: {have}"
        )
    record = records[cycle]
    if not cfg.save_pool_arrays:
        raise NoPoolArrays(
            f"run {run_id} was made with save_pool_arrays=false, so its pool probabilities "
            f"were not kept and cycle {cycle} cannot be re-selected; {_POOL_HINT}"
        )
    if embeddings is None:
        embeddings = STRATEGIES[cfg.strategy].needs_embeddings
    arrays = store.load_cycle_arrays(
        run_id, cycle, _ARRAYS + (("embeddings", "labeled_embeddings") if embeddings else ())
    )
    missing = [k for k in ("probs", "omega", "labeled_counts", "pool_labels") if k not in arrays]
    if missing:
        raise NoPoolArrays(
            f"run {run_id}, cycle {cycle}: the saved arrays lack {', '.join(missing)}, so the "
            f"cycle cannot be re-selected; {_POOL_HINT}"
        )
    lam = record.get("lam")
    if lam is None:
        lam = run_lam(cfg, int(arrays["probs"].shape[1])) or 0.0

    def opt(name: str) -> np.ndarray | None:
        return arrays.get(name)

    return CycleArrays(
        strategy=cfg.strategy,
        lam=float(lam),
        selected_pos=arrays["selected_pos"].astype(np.int64),
        probs=arrays["probs"],
        omega=arrays["omega"].astype(np.float64),
        labeled_counts=arrays["labeled_counts"].astype(np.int64),
        pool_labels=arrays["pool_labels"].astype(np.int64),
        pool_indices=opt("pool_indices"),
        scores=opt("scores"),
        embeddings=opt("embeddings"),
        labeled_embeddings=opt("labeled_embeddings"),
        run_id=run_id,
        cycle=int(cycle),
        config=cfg,
        record=record,
    )


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Reselection:
    """One re-selection of a cycle at one λ, and how it compares with the run's own picks.

    ``mode`` says what was computed: ``"cb"`` (the Entropy-/BALD-CB problem solved by
    :func:`balance.solve_balanced`), ``"kcenter"`` (KCenterGreedy(-CB) re-run on the saved
    embeddings) or ``"run"`` (a strategy without λ: the run's own selection, for comparison).
    """

    strategy: str  # whose problem: entropy-cb, bald-cb, kcenter-cb, or the run's strategy
    mode: str  # "cb" | "kcenter" | "run"
    lam: float
    budget: int
    selected: np.ndarray  # (b,) pool positions, in the strategy's order
    expected_counts: np.ndarray  # (C,) predicted class histogram Pᵀz of the picks
    balance_l1: float  # ‖Ω − Pᵀz‖₁ of the picks (the balance term of the CB objective)
    batch_counts: np.ndarray  # (C,) int64 true class histogram of the picks
    batch_l1: float  # balance.l1_score(batch_counts)
    labeled_counts_after: np.ndarray  # (C,) labeled_counts + batch_counts
    labeled_l1: float  # balance.l1_score(labeled_counts_after)
    mean_informativeness: float  # mean u over the picks
    u_source: str  # where u came from (saved scores, or entropy of the saved probs)
    jaccard: float  # |S ∩ S_run| / |S ∪ S_run| with the run's actual picks
    same_set: bool  # S == S_run as sets
    same_order: bool  # S == S_run element by element
    status: str  # solver status ("optimal", ...), "greedy", or "run's own selection"
    optimal: bool | None  # solver proved optimality (None: no solver)
    solve_time: float  # seconds in the solver / greedy (0 for "run")
    objective: float | None  # CB objective −Σu + λ‖Ω − Pᵀz‖₁ of the picks ("cb" only)
    bound: float | None  # proven lower bound on it ("cb" only)
    lp_balance_l1: float | None  # ‖Ω − Pᵀz‖₁ of the relaxed z before rounding ("cb" only)
    dual: np.ndarray | None  # (C,) dual y; warm start for a nearby λ': dual · λ'/λ
    estimated_time: float | None = None  # predicted seconds (kcenter), see estimate_seconds
    method: str = "lp-round"  # solver method, "greedy" or "run"
    notes: tuple[str, ...] = ()  # caveats worth showing next to the numbers

    @property
    def gap(self) -> float | None:
        """``objective − bound`` ≥ 0, or None without a solver."""
        if self.objective is None or self.bound is None:
            return None
        return self.objective - self.bound

    @property
    def slow(self) -> bool:
        """The re-selection was predicted to take more than :data:`SLOW_SECONDS`."""
        return self.estimated_time is not None and self.estimated_time > SLOW_SECONDS

    def to_record(self) -> dict[str, Any]:
        """JSON-safe dict (lists for the arrays)."""

        def f(v: float | None) -> float | None:
            return None if v is None else float(v)

        return {
            "strategy": self.strategy,
            "mode": self.mode,
            "method": self.method,
            "lam": float(self.lam),
            "budget": int(self.budget),
            "selected": [int(v) for v in self.selected],
            "expected_counts": [float(v) for v in self.expected_counts],
            "balance_l1": float(self.balance_l1),
            "batch_counts": [int(v) for v in self.batch_counts],
            "batch_l1": float(self.batch_l1),
            "labeled_counts_after": [int(v) for v in self.labeled_counts_after],
            "labeled_l1": float(self.labeled_l1),
            "mean_informativeness": float(self.mean_informativeness),
            "u_source": self.u_source,
            "jaccard": float(self.jaccard),
            "same_set": bool(self.same_set),
            "same_order": bool(self.same_order),
            "status": self.status,
            "optimal": self.optimal,
            "solve_time": float(self.solve_time),
            "objective": f(self.objective),
            "bound": f(self.bound),
            "gap": f(self.gap),
            "lp_balance_l1": f(self.lp_balance_l1),
            "dual": None if self.dual is None else [float(v) for v in self.dual],
            "estimated_time": f(self.estimated_time),
            "notes": list(self.notes),
        }


#: Columns of :meth:`LambdaPath.rows`, in order.
PATH_COLUMNS = (
    "lam",
    "batch_l1",
    "labeled_l1",
    "balance_l1",
    "mean_informativeness",
    "jaccard",
    "solve_time",
    "objective",
    "bound",
    "optimal",
)


@dataclass(frozen=True, eq=False)
class LambdaPath:
    """Re-selections of one cycle over a grid of λ (in the order asked)."""

    strategy: str
    mode: str
    run_lam: float  # the λ the run used (mark it on a plot)
    points: tuple[Reselection, ...]
    total_time: float  # wall-clock seconds for the whole path
    u_source: str

    @property
    def lams(self) -> np.ndarray:
        return np.array([p.lam for p in self.points], dtype=np.float64)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy table, one dict per λ with the keys of :data:`PATH_COLUMNS`."""
        return [
            {
                "lam": p.lam,
                "batch_l1": p.batch_l1,
                "labeled_l1": p.labeled_l1,
                "balance_l1": p.balance_l1,
                "mean_informativeness": p.mean_informativeness,
                "jaccard": p.jaccard,
                "solve_time": p.solve_time,
                "objective": p.objective,
                "bound": p.bound,
                "optimal": p.optimal,
            }
            for p in self.points
        ]

    def columns(self) -> dict[str, np.ndarray]:
        """The same table by column (float arrays; None → NaN, optimal as float 0/1/NaN)."""
        rows = self.rows()
        return {
            k: np.array([np.nan if r[k] is None else float(r[k]) for r in rows], dtype=np.float64)
            for k in PATH_COLUMNS
        }


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def default_lams() -> np.ndarray:
    """A writable copy of :data:`DEFAULT_LAMS`."""
    return DEFAULT_LAMS.copy()


def jaccard(a: np.ndarray | Sequence[int], b: np.ndarray | Sequence[int]) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two index sets (1.0 when both are empty)."""
    sa, sb = np.unique(np.asarray(a)), np.unique(np.asarray(b))
    union = np.union1d(sa, sb).size
    if union == 0:
        return 1.0
    return float(np.intersect1d(sa, sb, assume_unique=True).size / union)


def informativeness(ca: CycleArrays, strategy: str | None = None) -> tuple[np.ndarray, str]:
    """u for ``strategy`` (default: the run's) on the saved arrays, and where it came from.

    The run's own score comes from its saved ``scores``; another score is computed from the
    saved probs, except one that needs MC passes (BALD), which only a run of that score saves.
    A strategy without a score (random, kcenter, coreset) is shown with entropy.
    """
    name = strategy or ca.strategy
    score = SCORES[STRATEGIES[name].score or "entropy"]
    if STRATEGIES[ca.strategy].score == score.name and ca.scores is not None:
        return np.asarray(ca.scores, dtype=np.float64), f"saved scores ({score.label})"
    if score.needs_mc:
        raise ValueError(
            f"{name} needs {score.label} scores, which only a run of {score.name} or "
            f"{score.name}-cb saves (they need its MC passes); this run ({ca.strategy}) has none"
        )
    own = STRATEGIES[ca.strategy]
    what = "MC-mean probs" if own.needs_mc and own.problem == "cb" else "probs"
    u = np.asarray(score.fn(np.asarray(ca.probs, dtype=np.float64)), dtype=np.float64)
    return u, f"{score.label.lower()} of the saved {what}"


def _plan(ca: CycleArrays, strategy: str | None, lam_given: bool) -> tuple[str, str]:
    """(strategy whose problem is solved, mode) for a re-selection request."""
    name = strategy or ca.strategy
    if name not in STRATEGIES:
        raise ValueError(f"strategy={name!r} is unknown: expected one of {', '.join(STRATEGIES)}")
    own = name == ca.strategy
    cb = cb_variant(name)
    if cb is not None and (cb == name or lam_given or not own):
        return cb, str(STRATEGIES[cb].problem)
    if own:
        return name, "run"
    others = ", ".join(s.name for s in STRATEGIES.values() if s.problem)
    raise ValueError(
        f"cannot re-run {name} on the saved arrays of a {ca.strategy} run; re-selectable: "
        f"{others} and their baselines (kcenter needs saved embeddings, MC scores their own runs)"
    )


def _lam_for(ca: CycleArrays, name: str, lam: float | None) -> float:
    if lam is not None:
        val = float(lam)
        if not np.isfinite(val) or val < 0:
            raise ValueError(f"lam={lam!r} must be a finite number ≥ 0")
        return val
    if STRATEGIES[ca.strategy].uses_lam and cb_variant(ca.strategy) == name:
        return float(ca.lam)
    return STRATEGIES[name].default_lam(ca.num_classes)


def start_lam(ca: CycleArrays, problem: str) -> float:
    """Where a λ control for ``problem`` starts: the run's own λ for its own problem (a
    baseline's is λ = 0, its own top-b), else the strategy's default for the class count."""
    if cb_variant(ca.strategy) == problem:
        return float(ca.lam)
    return STRATEGIES[problem].default_lam(ca.num_classes)


def _kcenter_arrays(ca: CycleArrays) -> tuple[np.ndarray, np.ndarray]:
    if ca.embeddings is None or ca.labeled_embeddings is None:
        where = f"run {ca.run_id}, cycle {ca.cycle}" if ca.run_id else "these arrays"
        raise NoEmbeddings(
            f"KCenterGreedy re-selection needs the pool and labeled-set embeddings, which "
            f"{where} did not save; {_EMB_HINT}"
        )
    return ca.embeddings, ca.labeled_embeddings


def estimate_seconds(
    ca: CycleArrays, strategy: str | None = None, lam: float | None = None
) -> float:
    """Rough wall-clock seconds a :func:`reselect` would take here (0 for the run's own).

    KCenterGreedy(-CB): distances to the labeled set, ``N·L·d``, plus ``b·N`` for the picks.
    The CB LP: ``N·C``. Calibrated on a busy 2-core CPU; compare with :data:`SLOW_SECONDS`.
    """
    name, mode = _plan(ca, strategy, lam is not None)
    n, c, b = ca.n_pool, ca.num_classes, ca.budget
    if mode == "kcenter":
        d = 0 if ca.embeddings is None else int(ca.embeddings.shape[1])
        n_lab = 0 if ca.labeled_embeddings is None else int(ca.labeled_embeddings.shape[0])
        return n * n_lab * (_KC_GEMM * d + _KC_PASS) + _KC_STEP * b * n
    if mode == "cb":
        return _CB_COST * n * c
    return 0.0


def _summarize(
    ca: CycleArrays,
    *,
    strategy: str,
    mode: str,
    lam: float,
    picks: np.ndarray,
    u: np.ndarray,
    u_source: str,
    status: str,
    optimal: bool | None,
    solve_time: float,
    method: str,
    result: balance.BalancedResult | None = None,
    estimated_time: float | None = None,
    notes: tuple[str, ...] = (),
) -> Reselection:
    picks = np.asarray(picks, dtype=np.int64)
    summary = selection_summary(picks, ca.probs, ca.omega, ca.pool_labels, ca.labeled_counts, u)
    assert summary.mean_informativeness is not None
    run = ca.selected_pos
    lp_bal = None
    if result is not None:
        z = result.z
        nz = np.flatnonzero(z)
        lp_bal = float(np.abs(ca.omega - z[nz] @ np.asarray(ca.probs[nz], np.float64)).sum())
    return Reselection(
        strategy=strategy,
        mode=mode,
        lam=float(lam),
        budget=int(picks.shape[0]),
        selected=picks,
        expected_counts=summary.expected_counts,
        balance_l1=summary.balance_l1,
        batch_counts=summary.batch_counts,
        batch_l1=summary.batch_l1,
        labeled_counts_after=summary.labeled_counts_after,
        labeled_l1=summary.labeled_l1,
        mean_informativeness=summary.mean_informativeness,
        u_source=u_source,
        jaccard=jaccard(picks, run),
        same_set=bool(np.array_equal(np.sort(picks), np.sort(run))),
        same_order=bool(np.array_equal(picks, run)),
        status=status,
        optimal=optimal,
        solve_time=float(solve_time),
        objective=None if result is None else float(result.objective),
        bound=None if result is None else float(result.bound),
        lp_balance_l1=lp_bal,
        dual=None if result is None or result.dual is None else np.asarray(result.dual),
        estimated_time=estimated_time,
        method=method,
        notes=notes,
    )


def _notes(ca: CycleArrays, name: str, lam: float | None, mode: str) -> tuple[str, ...]:
    out: list[str] = []
    if mode == "run" and lam is not None:
        out.append(f"{ca.strategy} has no λ: λ={lam:g} ignored, showing the run's own selection")
    cb, own = STRATEGIES[name], STRATEGIES[ca.strategy]
    if cb.needs_mc and cb.problem == "cb" and not (own.needs_mc and own.problem == "cb"):
        out.append(
            f"P is the eval-mode softmax the {ca.strategy} run saved, not the MC-dropout mean"
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Re-selection and the λ path
# --------------------------------------------------------------------------------------------


def reselect(
    ca: CycleArrays,
    strategy: str | None = None,
    lam: float | None = None,
    method: str | None = None,
    warm_start: np.ndarray | None = None,
    time_limit: float | None = None,
) -> Reselection:
    """Re-run cycle ``ca``'s selection on its saved arrays at ``lam`` (no retraining).

    Parameters
    ----------
    ca : CycleArrays
        From :func:`load_cycle`.
    strategy : str, optional
        Whose problem to solve; default the run's. entropy / bald (with a λ, or asked for on
        another run's arrays) mean their CB problem; kcenter likewise KCenterGreedy-CB.
    lam : float, optional
        λ; default the run's own λ (for a run of another family: the strategy's default λ).
        Strategies without λ (random, entropy, bald, kcenter, coreset, entropy-pl) with
        ``lam=None`` give the run's own selection (``mode="run"``).
    method : one of :data:`balance.METHODS`, optional
        CB solver (:func:`balance.solve_balanced`); default the run's own (so that its λ gives
        its picks); ignored by KCenterGreedy.
    warm_start : ndarray (C,), optional
        A dual for ``"lp-round"``/``"binary"``, e.g. ``previous.dual * lam / previous.lam``.
    time_limit : float, optional
        Solver seconds; default the run's ``solver_time_limit`` at the run's own λ, else at
        most :data:`EXPLORE_TIME_LIMIT`.

    Raises
    ------
    NoEmbeddings
        KCenterGreedy(-CB) on a run that saved no embeddings.
    ValueError
        Bad λ, unknown strategy, or BALD asked for on a run without BALD scores.
    """
    name, mode = _plan(ca, strategy, lam is not None)
    notes = _notes(ca, name, lam, mode)
    u, u_source = informativeness(ca, name if mode == "cb" else None)
    if mode == "run":
        return _summarize(
            ca,
            strategy=name,
            mode=mode,
            lam=ca.lam,
            picks=ca.selected_pos,
            u=u,
            u_source=u_source,
            status="run's own selection",
            optimal=None,
            solve_time=0.0,
            method="run",
            estimated_time=0.0,
            notes=notes,
        )
    lam_v = _lam_for(ca, name, lam)
    if mode == "kcenter":
        return _reselect_kcenter(ca, name, lam_v, u, u_source, notes)
    res = balance.solve_balanced(
        u,
        ca.probs,
        ca.omega,
        ca.budget,
        lam_v,
        method=method or ca.solver,
        time_limit=_time_limit(ca, lam_v, time_limit),
        warm_start=warm_start,
        mip_gap=ca.mip_gap,
    )
    return _from_result(ca, name, res, u, u_source, notes)


def _time_limit(ca: CycleArrays, lam: float | None, given: float | None) -> float:
    """``given``, else the run's solver limit at the run's own λ, else at most
    :data:`EXPLORE_TIME_LIMIT` (``lam=None``: a λ path, whose points get the latter)."""
    if given is not None:
        return float(given)
    if lam == ca.lam:
        return ca.time_limit
    return min(ca.time_limit, EXPLORE_TIME_LIMIT)


def _from_result(
    ca: CycleArrays,
    name: str,
    res: balance.BalancedResult,
    u: np.ndarray,
    u_source: str,
    notes: tuple[str, ...],
) -> Reselection:
    return _summarize(
        ca,
        strategy=name,
        mode="cb",
        lam=res.lam,
        picks=res.indices,
        u=u,
        u_source=u_source,
        status=res.status,
        optimal=res.optimal,
        solve_time=res.solve_time,
        method=res.method,
        result=res,
        notes=notes,
    )


def _kcenter_notes(
    ca: CycleArrays, name: str, lam: float, notes: tuple[str, ...]
) -> tuple[str, ...]:
    emb, lab = _kcenter_arrays(ca)
    est = estimate_seconds(ca, name, lam)
    if est > SLOW_SECONDS:
        notes = (
            *notes,
            f"KCenterGreedy on N={ca.n_pool} × d={emb.shape[1]} with L={lab.shape[0]} labeled: "
            f"estimated {est:.0f} s",
        )
    return notes


def _kcenter_point(
    ca: CycleArrays,
    name: str,
    lam: float,
    picks: np.ndarray,
    seconds: float,
    u: np.ndarray,
    u_source: str,
    notes: tuple[str, ...],
) -> Reselection:
    return _summarize(
        ca,
        strategy=name,
        mode="kcenter",
        lam=lam,
        picks=picks,
        u=u,
        u_source=u_source,
        status="greedy",
        optimal=None,
        solve_time=seconds,
        method="greedy",
        estimated_time=estimate_seconds(ca, name, lam),
        notes=_kcenter_notes(ca, name, lam, notes),
    )


def _reselect_kcenter(
    ca: CycleArrays,
    name: str,
    lam: float,
    u: np.ndarray,
    u_source: str,
    notes: tuple[str, ...],
) -> Reselection:
    emb, lab = _kcenter_arrays(ca)
    t0 = time.perf_counter()
    picks = kcenter.kcenter_greedy(emb, lab, ca.budget, probs=ca.probs, omega=ca.omega, lam=lam)
    return _kcenter_point(ca, name, lam, picks, time.perf_counter() - t0, u, u_source, notes)


def _kcenter_path(
    ca: CycleArrays,
    name: str,
    grid: np.ndarray,
    u: np.ndarray,
    u_source: str,
    notes: tuple[str, ...],
) -> tuple[Reselection, ...]:
    """The greedy at every λ, with the labeled-set distances computed once; each point's
    time is the path's average."""
    emb, lab = _kcenter_arrays(ca)
    t0 = time.perf_counter()
    all_picks = kcenter.kcenter_greedy_path(
        emb, lab, ca.budget, grid, probs=ca.probs, omega=ca.omega
    )
    each = (time.perf_counter() - t0) / len(all_picks)
    return tuple(
        _kcenter_point(ca, name, float(v), picks, each, u, u_source, notes)
        for v, picks in zip(grid, all_picks, strict=True)
    )


def lambda_path(
    ca: CycleArrays,
    lams: Sequence[float] | np.ndarray | None = None,
    strategy: str | None = None,
    method: str | None = None,
    time_limit: float | None = None,
) -> LambdaPath:
    """Re-select cycle ``ca`` at every λ of ``lams`` (default :data:`DEFAULT_LAMS`).

    The CB problem is solved at every λ of the path (:func:`balance.solve_path`);
    KCenterGreedy-CB re-runs the greedy per λ (see :func:`estimate_seconds` first). A strategy
    without λ (random, coreset, entropy-pl) has no path: pass ``strategy="entropy-cb"``.
    ``method`` is the CB solver, by default the run's own; ``time_limit`` its seconds per λ,
    by default at most :data:`EXPLORE_TIME_LIMIT` (the run's own λ included).
    """
    grid = DEFAULT_LAMS if lams is None else np.asarray(lams, dtype=np.float64).reshape(-1)
    if grid.size == 0:
        raise ValueError("lams must hold at least one λ")
    if not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise ValueError("every λ must be a finite number ≥ 0")
    name, mode = _plan(ca, strategy, True)
    if mode == "run":
        raise ValueError(
            f"{name} has no λ, so there is no λ path; pass strategy='entropy-cb' to see what "
            f"Entropy-CB would pick from this cycle's arrays"
        )
    notes = _notes(ca, name, None, mode)
    u, u_source = informativeness(ca, name if mode == "cb" else None)
    t0 = time.perf_counter()
    if mode == "kcenter":
        points = _kcenter_path(ca, name, grid, u, u_source, notes)
    else:
        tl = _time_limit(ca, None, time_limit)
        results = balance.solve_path(
            u,
            ca.probs,
            ca.omega,
            ca.budget,
            grid,
            method=method or ca.solver,
            time_limit=tl,
            mip_gap=ca.mip_gap,
        )
        points = tuple(_from_result(ca, name, r, u, u_source, notes) for r in results)
    own_lam = ca.lam if cb_variant(ca.strategy) == name else float("nan")
    return LambdaPath(
        strategy=name,
        mode=mode,
        run_lam=float(own_lam),
        points=points,
        total_time=time.perf_counter() - t0,
        u_source=u_source,
    )
