"""Class-balanced selection: target counts Ω, the CB problem (Bengar et al., WACV 2022), L1 score.

The CB problem (the paper's Eq. 3) picks ``budget`` pool items::

    minimize  -uᵀz + lam · ‖Ω − Pᵀz‖₁   over  z ∈ {0, 1}^N,  Σ z = budget

Its LP relaxation (0 ≤ z ≤ 1) has the dual ``max_{y ∈ [−lam, lam]^C} yᵀΩ − top_b(u + P y)``
(top_b = sum of the b largest entries): any y in the box gives a lower bound (:func:`dual_bound`),
which every result reports next to the objective of the selected set.

Methods of :func:`solve_balanced` (:data:`METHODS`):

- ``"binary"`` (what a run uses unless told otherwise): the binary problem itself, proved
  optimal to the relative gap ``mip_gap`` (:data:`MIP_GAP`, 1e-4, as the paper's solver by
  default) within its work limits. The exact LP bound and its duals fix every item whose
  reduced cost exceeds the gap between the best binary selection found (LP rounding improved
  by swaps) and the bound; on a nearly one-hot P, where the LP balances classes with fractions
  of items, a bound from whole class counts and a branch-and-bound on the units per class
  close the gap the LP leaves; HiGHS branch-and-bound then searches the items left free.
  At its work limits (swap rounds, nodes: status ``"work_limit"``) it returns the best
  selection found with its certified gap, the same on any machine; at the time limit
  (``"time_limit"``) likewise, but such a result depends on the machine's speed.
- ``"lp-round"`` (this function's default, the fast one): the exact LP relaxation (column
  generation with HiGHS on the near-tied items, from a smoothed dual ascent above 20 classes
  or when eight rounds from y = 0 do not end), rounded to its top-``budget`` items.
- ``"highs"``: the same LP on all N columns, straight to HiGHS (slow oracle), rounded.
- ``"cvxpy"``: the relaxation as written above, with cvxpy's default solver (reference), rounded.
- ``"milp"``: the binary problem on all N items with HiGHS branch-and-bound (slow oracle).

Two exact reductions apply to every method but ``cvxpy``: items with identical (u_i, p_i) rows
are solved as one column whose capacity is their multiplicity, and u and lam are divided by
``max(max|u|, lam)`` so that the solvers' tolerances are relative.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import heapq
import itertools
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
from highspy._core import _Highs
from scipy.optimize import minimize

__all__ = [
    "METHODS",
    "MIP_GAP",
    "SLOW_METHODS",
    "METHOD_ALIASES",
    "BalancedResult",
    "class_counts",
    "dual_bound",
    "l1_score",
    "objective",
    "path_threads",
    "relative_gap",
    "relaxed_objective",
    "solve_balanced",
    "solve_path",
    "target_counts",
]

# The solver methods, a run's default first, each with the line the CLI and the dashboard show.
METHODS = {
    "binary": "the binary problem, proved optimal to a relative gap (1e-4 unless told) within "
    "its work and time limits, else its gap",
    "lp-round": "the exact LP relaxation (dual ascent + column generation), rounded: fast",
    "highs": "the same LP with plain HiGHS on every column, rounded (slow oracle)",
    "cvxpy": "the relaxation as written, cvxpy's default solver, rounded (slow reference)",
    "milp": "the binary problem, plain HiGHS branch-and-bound on every item (slow oracle)",
}
# The methods that can take far longer than lp-round on a big pool (the dashboard asks first).
SLOW_METHODS = ("binary", "cvxpy", "milp")
# Names stored by older versions: "lp" was the LP rounding (the default before "binary").
METHOD_ALIASES = {"lp": "lp-round"}

# HiGHS tolerances for the LPs (its defaults are 1e-7); the pricing step uses the same scale.
_LP_TOL = 1e-9
# Near-tied items kept free on each side of the rank-b threshold, beyond the C + 1 a vertex needs:
# after the dual ascent, and when the column generation starts from y = 0 or a warm start.
_WINDOW_EXTRA = 16
_COLD_EXTRA = 256  # at most b // 4
# Columns added per pricing round and side (most violated first), at least; doubles per round.
_MIN_ADD = 64
# Dual ascent effort: iterations ≈ work / C (an evaluation costs ~N·C), clipped; it smooths
# over ~min(b, N − b)/16 items around rank b. Half the effort from a warm start.
_ASCENT_COLD = (600, 6, 30)  # (work, min, max iterations)
_ASCENT_WARM = (300, 3, 15)
_COARSE_DIV = 16
# The fewest classes for which the column generation starts from the dual ascent's y; below,
# its LPs are so cheap that pricing rounds from y = 0 (or the warm start) cost less than the
# ascent (measured at 45,000 items: even at C = 20, clearly slower from C = 30 on), unless
# they need more than _COLD_ROUNDS rounds (y = 0 far from the optimum, as with a skewed Ω
# at large λ): then the ascent runs after all. 8 rounds: a long-tailed Ω (ΣΩ > b) at 45,000 × 10
# or 20 ends in 6–7 rounds, 1.3–3.3× faster than 3 rounds and the ascent
_ASCENT_MIN_C = 21
_COLD_ROUNDS = 8
# Row sums of P may be off by this much (float32/float64 input); lower precisions get more.
_ROW_TOL = 1e-4
# Duplicate rows are merged into one capacitated column when at most this many distinct rows
# remain; the LP over them then goes straight to HiGHS.
_AGG_MAX_ROWS = 2000
# The binary method: seconds for its LP relaxation (it must finish for the search to start),
# the items nearest the LP threshold searched first (at least, or 4 per class), the most free
# items a branch-and-bound is given, and the floor of the relative gap that counts as proven
# (floating point: a mip_gap of 0 means this).
_BINARY_LP_TIME = 60.0
_BINARY_WINDOW = 64
_BINARY_MAX_FREE = 5000
_BINARY_GAP_TOL = 1e-9
#: The relative gap (objective − bound) / max(|objective|, max(max|u|, λ)) at which ``binary``
#: and ``milp`` count a selection as optimal: 1e-4 is the default MIPGap of Gurobi, the solver
#: the paper ran, and the default mip_rel_gap of HiGHS and scipy's milp.
MIP_GAP = 1e-4
# The binary search's work limits, which (unlike a time limit) give the same selection on a
# busy machine as on an idle one: swap rounds for the first incumbent, branch-and-bound nodes
# per search, and the elements of one block of swap deltas (32 MiB).
_SWAP_MAX_ROUNDS = 500
_SWAP_BLOCK = 1 << 22
_SWAP_FULL = 1 << 22  # b·N·C up to which a swap may take any item, not only the window's
_SWAP_FAR = 1 << 28  # swap deltas a search from the top-b of u may cost, beyond _SWAP_FULL
_PATH_MAX_WORKERS = 8  # threads of a λ path
# The class-count branch-and-bound's work limit (nodes), and its stall test: after
# _COUNT_STALL_NODES nodes it must have closed _COUNT_STALL_SHARE of the gap between the LP
# bound and the best selection (at 45,000 × 10 with a confident P: about 60% after 27 nodes; at
# 45,000 × 100 with a softer one: 0.2% after 16, where its bound cannot prove anything)
_COUNT_MAX_NODES = 1000
_COUNT_STALL_NODES = 16
_COUNT_STALL_SHARE = 0.05
# HiGHS on the free items, from the incumbent: no presolve (the model is already small), no
# restart (each one redid the root's cuts and heuristics); 1000 nodes as the work limit
_BINARY_HIGHS: dict[str, Any] = {
    "mip_max_nodes": 1000,
    "presolve": "off",
    "mip_allow_restart": False,
}
# HiGHS's model statuses after which its dual bound holds (a failed run reports 0 as its bound),
# in our words; any other is reported in HiGHS's
_HIGHS_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kSolutionLimit: "work_limit",  # what the node limit reports
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
}


# --------------------------------------------------------------------------------------------
# Counts, targets and the L1 score
# --------------------------------------------------------------------------------------------


def class_counts(labels: np.ndarray | Sequence[int], num_classes: int) -> np.ndarray:
    """Count labels per class.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Class labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes C.

    Returns
    -------
    counts : ndarray of int64, shape (C,)
        ``counts[c]`` = number of labels equal to c (0 for an absent class).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be a positive integer")
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(num_classes, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}), got values in [{lo}, {hi}]"
        )
    return np.bincount(arr, minlength=num_classes).astype(np.int64)


def target_counts(labeled_counts: np.ndarray | Sequence[float], budget: int) -> np.ndarray:
    """Target counts Ω of the selection: what each class still needs to be balanced.

    With ``T* = (sum(labeled_counts) + budget) / C``, ``Ω_c = max(0, T* − n_c)``.

    Parameters
    ----------
    labeled_counts : array-like, shape (C,)
        Class counts n_c of the labeled set (non-negative).
    budget : int
        Number of items selected in this step (≥ 0).

    Returns
    -------
    omega : ndarray of float64, shape (C,)
    """
    n = np.asarray(labeled_counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"labeled_counts must be a non-empty 1-D array, got shape {n.shape}")
    if not np.all(np.isfinite(n)) or np.any(n < 0):
        raise ValueError("labeled_counts must be finite and non-negative")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget={budget!r} must be a non-negative integer")
    t_star = (n.sum() + float(budget)) / n.size
    return np.maximum(0.0, t_star - n)


def l1_score(hist: np.ndarray | Sequence[float]) -> float:
    """Imbalance of a class histogram (Bengar et al., Sec. 5.1), in [0, 1].

    ``L1(h) = Σ_c |h_c − n/C| · C / (2 n (C − 1))`` with n = Σ h: 0 for a uniform histogram,
    1 when everything is in one class. An empty histogram (n = 0) or a single class (C = 1)
    scores 0.
    """
    h = np.asarray(hist, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"hist must be a non-empty 1-D array, got shape {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(h < 0):
        raise ValueError("hist must be finite and non-negative")
    n, c = float(h.sum()), h.size
    if n == 0.0 or c == 1:
        return 0.0
    return float(np.abs(h - n / c).sum() * c / (2.0 * n * (c - 1)))


# --------------------------------------------------------------------------------------------
# Objectives and bounds
# --------------------------------------------------------------------------------------------


def _weighted_counts(probs: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Pᵀz, summing only the rows where z is non-zero (z is mostly 0 in a selection)."""
    nz = np.flatnonzero(z)
    return z[nz] @ np.take(probs, nz, axis=0)


def relaxed_objective(
    u: np.ndarray, probs: np.ndarray, omega: np.ndarray, lam: float, z: np.ndarray
) -> float:
    """``−uᵀz + lam · ‖Ω − Pᵀz‖₁`` for a (possibly fractional) z of shape (N,)."""
    z = np.asarray(z, dtype=np.float64)
    resid = np.asarray(omega, dtype=np.float64) - _weighted_counts(np.asarray(probs), z)
    return float(-np.dot(u, z) + lam * np.abs(resid).sum())


def objective(
    u: np.ndarray,
    probs: np.ndarray,
    omega: np.ndarray,
    lam: float,
    indices: np.ndarray | Sequence[int],
) -> float:
    """Objective of the CB problem for the selected set ``indices`` (distinct pool indices).

    ``−Σ_{i∈S} u_i + lam · ‖Ω − Σ_{i∈S} p_i‖₁``.
    """
    u = np.asarray(u, dtype=np.float64)
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError("indices must be a 1-D integer array")
    if idx.size and (idx.min() < 0 or idx.max() >= u.shape[0]):
        raise ValueError(f"indices must lie in [0, N={u.shape[0]})")
    if np.unique(idx).size != idx.size:
        raise ValueError("indices must be distinct")
    probs = np.asarray(probs, dtype=np.float64)
    counts = probs[idx].sum(axis=0)
    resid = np.asarray(omega, dtype=np.float64) - counts
    return float(-u[idx].sum() + lam * np.abs(resid).sum())


def _top_sum(s: np.ndarray, b: int) -> float:
    """Sum of the b largest entries of s (a partition, not a sort: O(N))."""
    n = s.shape[0]
    if b <= 0:
        return 0.0
    if b >= n:
        return float(s.sum())
    return float(np.partition(s, n - b)[n - b :].sum())


def dual_bound(
    u: np.ndarray,
    probs: np.ndarray,
    omega: np.ndarray,
    budget: int,
    lam: float,
    y: np.ndarray,
) -> float:
    """Lower bound ``yᵀΩ − top_b(u + P y)`` on the LP relaxation (hence the CB problem).

    Valid for every y in the box ``[−lam, lam]^C``; y is clipped into it first.
    """
    yy = np.clip(np.asarray(y, dtype=np.float64), -lam, lam)
    s = np.asarray(u, dtype=np.float64) + np.asarray(probs, dtype=np.float64) @ yy
    return float(yy @ np.asarray(omega, dtype=np.float64) - _top_sum(s, int(budget)))


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BalancedResult:
    """Outcome of one CB selection.

    Attributes
    ----------
    indices : ndarray of int64, shape (budget,)
        The selected pool indices, distinct, ordered by descending z, then descending u, then
        ascending index (so at lam = 0 they are ``np.argsort(-u, kind="stable")[:budget]``).
    z : ndarray of float64, shape (N,)
        The relaxed solution (``lp``, ``highs``, ``cvxpy``) or the binary one (``milp``).
    objective : float
        Objective of the selected (binary) set, see :func:`objective`.
    lp_objective : float
        Objective of ``z`` itself (the LP value for the LP methods).
    bound : float
        A proven lower bound on the LP relaxation's optimum, hence on the binary optimum
        (``milp``: HiGHS's branch-and-bound dual bound, a bound on the binary optimum).
    status : str
        ``"optimal"``, ``"time_limit"``, ``"work_limit"`` (``binary``: its node and swap limits,
        reached the same way on every machine), ``"optimal_inaccurate"``, ``"failed: <msg>"``; with
        ``"; fell back to lp rounding"`` appended when the fallback was used.
    optimal : bool
        The solver proved optimality of the problem it was asked: the LP, or the binary
        problem to the relative gap ``mip_gap`` (``binary``, ``milp``).
    solve_time : float
        Wall-clock seconds.
    method : str
        The method asked for.
    dual : ndarray of float64, shape (C,), or None
        Dual y of the balance constraints; pass as ``warm_start`` for a nearby lam
        (scaled by lam'/lam).
    fallback : bool
        The requested method failed and the ``lp`` rounding was returned instead.
    lam, budget : float, int
        The inputs.
    expected_counts : ndarray of float64, shape (C,)
        ``Σ_{i∈S} p_i`` over the selected set.
    info : dict
        Method-specific diagnostics (iterations, sizes, timings), JSON-safe.
    """

    indices: np.ndarray
    z: np.ndarray
    objective: float
    lp_objective: float
    bound: float
    status: str
    optimal: bool
    solve_time: float
    method: str
    dual: np.ndarray | None
    fallback: bool
    lam: float
    budget: int
    expected_counts: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """``objective − bound`` ≥ 0: how far the selection may be from the binary optimum."""
        return self.objective - self.bound

    def to_record(self) -> dict[str, Any]:
        """JSON-safe summary for the per-cycle record (no N-sized arrays; λ is the record's
        own ``lam``, written once)."""
        return {
            "method": self.method,
            "status": self.status,
            "optimal": bool(self.optimal),
            "fallback": bool(self.fallback),
            "budget": int(self.budget),
            "objective": float(self.objective),
            "lp_objective": float(self.lp_objective),
            "bound": float(self.bound),
            "gap": float(self.gap),
            "solve_time": float(self.solve_time),
            "n_fractional": int(np.count_nonzero((self.z > 1e-9) & (self.z < 1 - 1e-9))),
            "expected_counts": [float(v) for v in self.expected_counts],
            "dual": None if self.dual is None else [float(v) for v in self.dual],
            "info": dict(self.info),
        }


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a real numeric array; complex, text and object arrays are refused by name."""
    arr = np.asarray(value)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real numbers, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _row_tolerance(dtype: np.dtype) -> tuple[float, bool]:
    """Allowed row-sum error of P for its dtype, and whether rows are renormalized.

    Probabilities rounded to 16-bit floats (a network run in half precision) have row sums off
    by a few of their ulps; they are accepted within 8 ulps and renormalized in float64.
    """
    if dtype.name == "bfloat16":
        return 8 * 2.0**-7, True
    if dtype.kind == "f" and dtype.itemsize <= 2:
        return 8 * float(np.finfo(dtype).eps), True
    return _ROW_TOL, False


def _checked_probs(probs: Any) -> np.ndarray:
    raw = _real_array("probs", probs)
    p = raw.astype(np.float64, copy=False)  # never written to
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, C), got shape {p.shape}")
    if p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"probs must have N ≥ 1 rows and C ≥ 1 columns, got shape {p.shape}")
    # einsum sums the rows 3x faster than p.sum(axis=1) (C is small), without BLAS threads;
    # finite unless P holds NaN or inf, or a huge value (then a bad sum)
    sums = np.einsum("ij->i", p)
    if not np.isfinite(sums).all() and not np.isfinite(p).all():
        raise ValueError("probs contains NaN or inf")
    if p.min() < 0:
        raise ValueError(f"probs must be non-negative, min is {p.min():.3g}")
    tol, renormalize = _row_tolerance(raw.dtype)
    row_err = float(np.abs(sums - 1.0).max())
    if row_err > tol:
        raise ValueError(
            f"probs rows must sum to 1 within {tol:.2g} for dtype {raw.dtype} "
            f"(max deviation {row_err:.3g})"
        )
    return p / sums[:, None] if renormalize else p


def _checked_vector(name: str, value: Any, size: int, size_name: str) -> np.ndarray:
    v = _real_array(name, value).astype(np.float64)
    if v.ndim != 1 or v.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size_name}={size},), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or inf")
    return v


def _distinct_exceed(v: np.ndarray, limit: int) -> bool:
    """Whether v holds more than ``limit`` distinct values; a prefix decides it first, since a
    prefix with more than ``limit`` of them implies it (no sort of all N then)."""
    head = v[: 2 * limit]
    return np.unique(head).shape[0] > limit or (
        head.shape[0] < v.shape[0] and np.unique(v).shape[0] > limit
    )


def _top_units(s: np.ndarray, cap: np.ndarray | None, b: int) -> np.ndarray:
    """z holding the b highest-scoring units (stable: lower index first), 0 ≤ z_i ≤ cap_i."""
    n = s.shape[0]
    z = np.zeros(n)
    if cap is None:  # the b-th largest score, then ties by index: no sort of all N
        if b >= n:
            return np.ones(n)
        kth = np.partition(s, n - b)[n - b]
        above = s > kth
        z[above] = 1.0
        z[np.flatnonzero(s == kth)[: b - int(np.count_nonzero(above))]] = 1.0
        return z
    order = np.argsort(-s, kind="stable")
    c = cap[order]
    z[order] = np.clip(b - (np.cumsum(c) - c), 0.0, c)
    return z


class _Problem:
    """Validated arrays of one CB instance, plus caches shared by the λ of a path.

    ``cap`` is None for N single items, or the multiplicity of each column when identical rows
    were merged (:meth:`merged`); then ``expand`` maps a column z back to the N items.
    """

    def __init__(self, u: Any, probs: Any, omega: Any, budget: Any) -> None:
        p = _checked_probs(probs)
        n, c = p.shape
        if (
            isinstance(budget, bool)
            or not isinstance(budget, (int, np.integer))
            or not 1 <= budget <= n
        ):
            raise ValueError(f"budget={budget!r} must be an integer in [1, N={n}]")
        self.u = np.ascontiguousarray(_checked_vector("u", u, n, "N"))
        self.P = np.ascontiguousarray(p)
        self.omega = _checked_vector("omega", omega, c, "C")
        self.b = int(budget)
        self.n, self.c = n, c
        self.cap: np.ndarray | None = None
        self._ones = np.ones(n)  # the upper bounds of N single items, shared: read-only
        self._ones.flags.writeable = False
        self.groups: np.ndarray | None = None  # (N,) column of each item, when merged
        self._p32: np.ndarray | None = None
        self._colsum: np.ndarray | None = None
        self._merged: _Problem | None = None
        self._merge_checked = False

    def scaled(self, factor: float) -> _Problem:
        """The same instance with u multiplied by ``factor`` (caches shared)."""
        if self.cap is None:  # fill the caches once, before they are shared
            _ = self.p32, self.colsum
        out = copy.copy(self)
        out.u = self.u * factor
        return out

    def share(self, merge: bool) -> None:
        """Fill the caches (and the merged rows, when ``merge``) before threads share them."""
        _ = self.p32, self.colsum
        if merge:
            self.merged_problem()

    def merged_problem(self) -> _Problem | None:
        """Identical (u_i, p_i) rows as one column of capacity = multiplicity (ordered by first
        occurrence); None when all rows are distinct or too many distinct rows remain."""
        if not self._merge_checked:
            self._merge_checked = True
            self._merged = self._merge()
        return self._merged

    def _merge(self) -> _Problem | None:
        # a random projection separates distinct rows; only when few distinct values remain
        # (there are never more than u has) are the rows compared exactly
        if _distinct_exceed(self.u, _AGG_MAX_ROWS):
            return None
        hashes = _row_hash(self.u, self.P)
        if _distinct_exceed(hashes, _AGG_MAX_ROWS):
            return None
        first, groups = _row_groups(self.u, self.P, hashes)
        if first.shape[0] == self.n:
            return None
        out = copy.copy(self)
        out.u, out.P, out.n = self.u[first], self.P[first], int(first.shape[0])
        out.cap = np.bincount(groups, minlength=out.n).astype(np.float64)
        out.groups = groups
        out._p32 = out._colsum = None
        return out

    def expand(self, z: np.ndarray) -> np.ndarray:
        """z over the N items from z over the columns: a column's units go to its members in
        index order (the last one may get a fraction)."""
        if self.groups is None:
            return z
        return _spread(z, self.groups, np.ones(self.groups.shape[0]))

    @property
    def upper(self) -> np.ndarray:
        return self._ones if self.cap is None else self.cap

    @property
    def p32(self) -> np.ndarray:
        # float32 copy: the dual ascent's mat-vecs are 3x faster and need no more precision
        if self._p32 is None:
            self._p32 = self.P.astype(np.float32)
        return self._p32

    @property
    def colsum(self) -> np.ndarray:
        if self._colsum is None:
            self._colsum = self.upper @ self.P
        return self._colsum

    def scores(self, y: np.ndarray) -> np.ndarray:
        return self.u + self.P @ y if y.any() else self.u.copy()

    def bound(self, y: np.ndarray, s: np.ndarray | None = None) -> float:
        if s is None:
            s = self.scores(y)
        if self.cap is None:
            return float(y @ self.omega - _top_sum(s, self.b))
        return float(y @ self.omega - s @ _top_units(s, self.cap, self.b))

    def topb_z(self, s: np.ndarray) -> np.ndarray:
        """The top-b units of s (stable: lower index first among ties)."""
        return _top_units(s, self.cap, self.b)

    def value(self, lam: float, z: np.ndarray) -> float:
        """``−uᵀz + lam·‖Ω − Pᵀz‖₁`` for z over this problem's columns."""
        return relaxed_objective(self.u, self.P, self.omega, lam, z)


def _check_lam(lam: Any) -> float:
    try:
        val = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"lam={lam!r} must be a finite number ≥ 0") from None
    if not np.isfinite(val) or val < 0:
        raise ValueError(f"lam={lam!r} must be a finite number ≥ 0")
    return val


def _check_method(method: Any) -> str:
    method = METHOD_ALIASES.get(method, method)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {tuple(METHODS)}")
    return str(method)


def _check_time_limit(time_limit: Any) -> float:
    try:
        val = float(time_limit)
    except (TypeError, ValueError):
        raise ValueError(f"time_limit={time_limit!r} must be a positive number") from None
    if not val > 0:  # also rejects NaN
        raise ValueError(f"time_limit={time_limit!r} must be a positive number")
    return val


def relative_gap(objective: float, bound: float, u: np.ndarray, lam: float) -> float:
    """(objective − bound) / max(|objective|, max|u|, lam): the gap ``mip_gap`` holds ``binary``
    and ``milp`` to (scale-invariant, and defined for an objective near 0)."""
    scale = max(abs(objective), float(np.abs(u).max()), lam) or 1.0
    return float((objective - bound) / scale)


def _check_mip_gap(mip_gap: Any) -> float:
    try:
        val = float(mip_gap)
    except (TypeError, ValueError):
        raise ValueError(f"mip_gap={mip_gap!r} must be a number in [0, 1)") from None
    if not 0 <= val < 1:  # also rejects NaN
        raise ValueError(f"mip_gap={mip_gap!r} must be a number in [0, 1)")
    return val


def _check_warm_start(warm_start: Any, c: int) -> np.ndarray | None:
    if warm_start is None:
        return None
    w = np.asarray(warm_start, dtype=np.float64)
    if w.shape != (c,):
        raise ValueError(f"warm_start must have shape (C={c},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("warm_start contains NaN or inf")
    return w


# --------------------------------------------------------------------------------------------
# LP pieces
# --------------------------------------------------------------------------------------------


@dataclass
class _LPOut:
    z: np.ndarray  # values of the working set's columns
    y: np.ndarray  # duals of the C balance rows
    theta: float  # the dual of Σz = b, as a score threshold
    ok: bool  # a solution (optimal or not) came back
    optimal: bool
    status: str
    iterations: int
    w: np.ndarray | None = None  # duals of the class-count rows, when the LP has them


def _highs(options: dict[str, Any]) -> Any:
    """A quiet HiGHS instance with ``options`` (highspy.Highs() would print HiGHS's banner
    before its output can be switched off)."""
    h = _Highs()
    h.setOptionValue("output_flag", False)
    for key, value in options.items():
        if h.setOptionValue(key, value) != highspy.HighsStatus.kOk:  # pragma: no cover
            raise RuntimeError(f"HiGHS {h.version()} refused the option {key}={value!r}")
    return h


def _pass_rows(h: Any, rhs: np.ndarray) -> None:
    """Give HiGHS the C + 1 equality rows of the standard form, ``Pᵀz + p − q = rhs[:C]`` and
    ``1ᵀz = rhs[C]``, with no columns yet (:func:`_add_slacks`, :func:`_add_items`)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 0, rhs.shape[0]
    lp.row_lower_ = lp.row_upper_ = rhs
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.zeros(1, dtype=np.int32)
    h.passModel(lp)


def _add_slacks(h: Any, lam: float, c: int) -> None:
    """Append the 2C slack columns p, q ≥ 0 (cost lam each) of the C balance rows."""
    h.addCols(
        2 * c,
        np.full(2 * c, lam),
        np.zeros(2 * c),
        np.full(2 * c, np.inf),
        2 * c,
        np.arange(2 * c, dtype=np.int32),
        np.tile(np.arange(c, dtype=np.int32), 2),
        np.repeat([1.0, -1.0], c),
    )


def _add_items(
    h: Any,
    cost: np.ndarray,
    upper: np.ndarray,
    p_rows: np.ndarray,
    count_rows: np.ndarray | None = None,
) -> None:
    """Append the item columns [p_i; 1] (cost ``cost``, 0 ≤ z ≤ ``upper``) to the model, each
    with a 1 in its row of ``count_rows`` too when given (the class-count rows)."""
    k, c = p_rows.shape
    blocks = [p_rows, np.ones(k)] + ([] if count_rows is None else [np.ones(k)])
    values = np.column_stack(blocks).ravel()
    width = len(blocks) - 1 + c
    index = np.tile(np.arange(width, dtype=np.int32), k).reshape(k, width)
    if count_rows is not None:
        index[:, -1] = count_rows
    starts = np.arange(k, dtype=np.int32) * width
    h.addCols(k, cost, np.zeros(k), upper, values.shape[0], starts, index.ravel(), values)


# HiGHS's LP attempts: dual simplex at tight tolerances, without presolve (the working sets are
# small) or scaling (the entries are probabilities and ±1, the costs divided by max(|u|, lam));
# it now and then stops with an "unknown" status there, so then the interior-point solver with
# presolve, then HiGHS's defaults. A retry starts from HiGHS's defaults.
_LP_ATTEMPTS: tuple[dict[str, Any], ...] = (
    {
        "solver": "simplex",
        "simplex_strategy": 1,  # dual
        "presolve": "off",
        "simplex_scale_strategy": 0,
        "primal_feasibility_tolerance": _LP_TOL,
        "dual_feasibility_tolerance": _LP_TOL,
    },
    {
        "solver": "ipm",
        "presolve": "on",
        "primal_feasibility_tolerance": _LP_TOL,
        "dual_feasibility_tolerance": _LP_TOL,
    },
    {},
)


def _lp_run(h: Any) -> tuple[Any, str]:
    """One HiGHS run: its model status, and that status in words."""
    h.run()
    status = h.getModelStatus()
    return status, h.modelStatusToString(status)


class _WorkingLP:
    """The LP over a working set of columns, every other item fixed at 0 or at its upper bound.

    min −u_Kᵀz + lam·1ᵀ(p + q)  s.t.  P_Kᵀz + p − q = Ω − (fixed items' counts),
    1ᵀz = b − (fixed items' units),  0 ≤ z ≤ upper,  p, q ≥ 0.  Splitting Ω − Pᵀz = p − q keeps
    C + 1 rows (the t ≥ ±r form has 2C + 1 and is about twice as slow in HiGHS). The duals give
    y (rows 1..C) and the score threshold θ = −(dual of the budget row): the reduced cost of
    z_i is −(u_i + P_i y − θ). One HiGHS instance holds the model, so that the columns a
    pricing round adds start HiGHS from the last basis.

    With ``groups`` (a class 0..C−1 per item), one more row per class bounds the units selected
    in it (:meth:`set_counts`, all allowed until then), and the reduced cost gains that row's
    dual w_g.
    """

    def __init__(
        self,
        prob: _Problem,
        lam: float,
        cols: np.ndarray,
        fixed: np.ndarray,
        groups: np.ndarray | None = None,
    ) -> None:
        self.prob, self.lam, self.groups = prob, lam, groups
        up = prob.upper
        self.rhs = np.append(prob.omega - up[fixed] @ prob.P[fixed], prob.b - up[fixed].sum())
        self.h = _highs({})
        _pass_rows(self.h, self.rhs)
        if groups is not None:
            g = prob.c
            self.fixed_units = np.bincount(groups[fixed], weights=up[fixed], minlength=g)
            self.lo, self.hi = np.zeros(g), np.full(g, np.inf)
            empty = np.zeros(0, dtype=np.int32)
            self.h.addRows(g, self.lo, self.hi, 0, empty, empty, np.zeros(0))
        _add_slacks(self.h, lam, prob.c)  # first: the items come in batches after them
        self.cols = np.zeros(0, dtype=np.int64)
        self.add(cols)

    def set_counts(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Units selected per group, fixed items included, in [lo, hi]."""
        self.lo, self.hi = lo, hi
        self._count_bounds()

    def _count_bounds(self) -> None:
        g, rows = self.lo.shape[0], self.prob.c + 1 + np.arange(self.lo.shape[0], dtype=np.int32)
        self.h.changeRowsBounds(g, rows, self.lo - self.fixed_units, self.hi - self.fixed_units)

    def add(self, items: np.ndarray, were_fixed: bool = False) -> None:
        """Free ``items`` into the working set: from 0, or from their upper bound when
        ``were_fixed`` (their counts leave the right-hand side)."""
        prob, c = self.prob, self.prob.c
        if items.size == 0:
            return
        if were_fixed:
            up = prob.upper[items]
            self.rhs += np.append(up @ prob.P[items], up.sum())
            self.h.changeRowsBounds(c + 1, np.arange(c + 1, dtype=np.int32), self.rhs, self.rhs)
            if self.groups is not None:
                self.fixed_units -= np.bincount(
                    self.groups[items], weights=up, minlength=self.lo.shape[0]
                )
                self._count_bounds()
        rows = None if self.groups is None else c + 1 + self.groups[items]
        _add_items(self.h, -prob.u[items], prob.upper[items], prob.P[items], rows)
        self.cols = np.concatenate([self.cols, items])

    def scores(self, out: _LPOut) -> np.ndarray:
        """Every item's score under the LP's duals (reduced cost θ − score)."""
        s = self.prob.scores(out.y)
        return s if out.w is None else s + out.w[self.groups]

    def solve(self, time_limit: float) -> _LPOut:
        c, lam, h = self.prob.c, self.lam, self.h
        t_end = time.perf_counter() + time_limit
        nit, status = 0, "failed: no attempt"
        for i, options in enumerate(_LP_ATTEMPTS):
            left = t_end - time.perf_counter()
            if left <= 0:
                status = "time_limit"
                break
            if i:  # a retry starts afresh
                h.resetOptions()
                h.setOptionValue("output_flag", False)
                h.clearSolver()
            for key, value in {**options, "time_limit": float(max(left, 1e-3))}.items():
                h.setOptionValue(key, value)
            model_status, message = _lp_run(h)
            info = h.getInfo()
            nit += int(max(info.simplex_iteration_count, 0) + max(info.ipm_iteration_count, 0))
            if model_status == highspy.HighsModelStatus.kOptimal:
                sol = h.getSolution()
                duals = np.asarray(sol.row_dual, dtype=np.float64)
                x = np.asarray(sol.col_value, dtype=np.float64)[2 * c :]
                return _LPOut(
                    z=np.clip(x, 0.0, self.prob.upper[self.cols]),
                    y=np.clip(duals[:c], -lam, lam),
                    theta=float(-duals[c]),
                    ok=True,
                    optimal=True,
                    status="optimal",
                    iterations=nit,
                    w=None if self.groups is None else duals[c + 1 :],
                )
            if model_status == highspy.HighsModelStatus.kTimeLimit:
                status = "time_limit"
                break
            status = f"failed: {message}"
            if model_status == highspy.HighsModelStatus.kInfeasible:
                break  # only class counts can make it so: more columns may help, no retry
        return _LPOut(
            z=np.zeros(self.cols.shape[0]),
            y=np.zeros(c),
            theta=0.0,
            ok=False,
            optimal=False,
            status=status,
            iterations=nit,
        )


def _cap_threshold(s_sorted: np.ndarray, b: int, mu: float) -> float:
    """θ with Σ_i clip((s_i − θ)/μ, 0, 1) = b, for s sorted ascending and b < N.

    The sum is piecewise linear and decreasing in θ with breakpoints s_i and s_i − μ, and the
    root lies in (s_(b+1) − μ, s_(b)) (s_(k) = k-th largest): evaluate at the breakpoints in
    there with prefix sums and interpolate.
    """
    n = s_sorted.shape[0]
    lo, hi = s_sorted[n - b - 1] - mu, s_sorted[n - b]
    i0 = np.searchsorted(s_sorted, lo, side="left")
    i1 = np.searchsorted(s_sorted, hi + mu, side="right")
    window = s_sorted[i0:i1]
    cand = np.concatenate(([lo, hi], window, window - mu))
    cand = np.unique(cand[(cand >= lo) & (cand <= hi)])
    csum = np.concatenate(([0.0], np.cumsum(s_sorted)))
    a = np.searchsorted(s_sorted, cand, side="right")  # first s > θ
    e = np.searchsorted(s_sorted, cand + mu, side="left")  # first s ≥ θ + μ
    e = np.maximum(e, a)
    f = (n - e) + ((csum[e] - csum[a]) - cand * (e - a)) / mu
    j = int(np.searchsorted(-f, -b, side="right")) - 1  # last candidate with f ≥ b
    j = min(max(j, 0), cand.shape[0] - 2) if cand.shape[0] > 1 else 0
    if cand.shape[0] == 1:
        return float(cand[0])
    f0, f1 = f[j], f[j + 1]
    if f0 <= f1:
        return float(cand[j])
    return float(cand[j] + (f0 - b) * (cand[j + 1] - cand[j]) / (f0 - f1))


def _dual_ascent(
    prob: _Problem, lam: float, y0: np.ndarray, window: int, maxiter: int
) -> tuple[np.ndarray, int]:
    """Maximize a smoothed dual with L-BFGS-B on the box ``[−lam, lam]^C``.

    top_b(s) = max_{0≤z≤1, Σz=b} sᵀz is smoothed to max sᵀz − μ/2‖z‖², whose maximizer
    z = clip((s − θ)/μ, 0, 1) is cheap and whose gradient in y is Ω − Pᵀz (C¹, so
    quasi-Newton works). μ is the score spread of ``window`` items around rank b at y0.
    This only has to order the items roughly (a few iterations); exactness comes from the
    column generation after it. Returns y and the number of function evaluations.
    """
    p32, u, om, b, n = prob.p32, prob.u, prob.omega, prob.b, prob.n
    nfev = 0
    y = np.clip(y0, -lam, lam)

    def fun(yv: np.ndarray, mu: float) -> tuple[float, np.ndarray]:
        nonlocal nfev
        nfev += 1
        s = u + p32 @ yv.astype(np.float32)
        theta = _cap_threshold(np.sort(s), b, mu)
        z = np.clip((s - theta) / mu, 0.0, 1.0)
        if 2 * b <= n:
            pz = _weighted_counts(p32, z.astype(np.float32)).astype(np.float64)
        else:  # Pᵀz = Pᵀ1 − Pᵀ(1 − z): fewer rows when most items are picked
            pz = prob.colsum - _weighted_counts(p32, (1.0 - z).astype(np.float32))
        val = float(yv @ om - (s @ z - 0.5 * mu * (z @ z)))
        return -val, -(om - pz)

    ss = np.sort(u + p32 @ y.astype(np.float32))
    m = int(min(max(window, 1), b, n - b))
    mu = float(ss[n - b + m - 1] - ss[n - b - m])
    if not mu > 0:
        mu = 1e-6 * (1.0 + float(np.abs(ss).max()))
    res = minimize(
        fun,
        y,
        args=(mu,),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-lam, lam)] * prob.c,
        options={
            "maxiter": maxiter,
            "maxfun": maxiter + 4,
            "maxls": 6,
            "maxcor": 20,
            "ftol": 1e-13,
            "gtol": 1e-10,
        },
    )
    y = np.clip(np.asarray(res.x, dtype=np.float64), -lam, lam)
    return y, nfev


def _make_feasible(z: np.ndarray, upper: np.ndarray, b: int) -> np.ndarray:
    """Clip z into [0, upper] and move the solver's residual of Σz = b onto the fractional
    entries first (then any with room), so that every returned z is feasible to rounding."""
    z = np.clip(z, 0.0, upper)
    d = float(b - z.sum())
    if d == 0.0:
        return z
    room = upper - z if d > 0 else z.copy()
    order = np.argsort(~((z > 0) & (z < upper)), kind="stable")
    order = order[room[order] > 0]
    r = room[order]
    z[order] += np.sign(d) * np.clip(abs(d) - (np.cumsum(r) - r), 0.0, r)
    return z


def _polish_primal(prob: _Problem, lam: float, z: np.ndarray) -> np.ndarray:
    """Make the balanced classes exactly balanced (HiGHS leaves ~1e-9 residuals there).

    Moves only the fractional items, by the smallest correction that zeroes the residuals of
    the near-balanced classes and keeps Σz = b. Kept only if that system was solved exactly
    (Σz = b to rounding), z stays in its bounds and the objective does not get worse.
    """
    frac = np.flatnonzero((z > 1e-9) & (z < prob.upper - 1e-9))
    if frac.size == 0:
        return z
    resid = prob.omega - _weighted_counts(prob.P, z)
    free = np.abs(resid) <= 1e-7 * (1.0 + np.abs(prob.omega))
    p_frac = prob.P[frac]
    a = np.vstack([p_frac[:, free].T, np.ones((1, frac.size))])
    rhs = np.append(resid[free], prob.b - z.sum())
    delta = np.linalg.lstsq(a, rhs, rcond=None)[0]
    z_new = z.copy()
    z_new[frac] += delta
    exact = abs(z_new.sum() - prob.b) <= 1e-12 * max(prob.b, 1)
    inside = z_new[frac].min() >= 0.0 and (z_new[frac] <= prob.upper[frac]).all()
    # the objective's change: only the fractional items moved
    change = -prob.u[frac] @ delta + lam * (
        np.abs(resid - delta @ p_frac).sum() - np.abs(resid).sum()
    )
    if not (exact and inside) or change > 0:
        return z
    return z_new


def _polish_dual(
    prob: _Problem, lam: float, z: np.ndarray, y: np.ndarray, theta: float
) -> np.ndarray:
    """Refine HiGHS's duals (accurate to its 1e-9 tolerances) by complementary slackness.

    At the optimum, classes with a non-zero residual r = Ω − Pᵀz have y_c = lam·sign(r_c),
    and every fractional item sits on the threshold: u_i + P_i y = θ. Solving these few
    equations for the smallest correction of (y_balanced, θ) closes the duality gap to
    rounding error in the usual non-degenerate case; the caller keeps it only if the bound
    improves, so this can never weaken the certificate.
    """
    frac = np.flatnonzero((z > 1e-9) & (z < prob.upper - 1e-9))
    resid = prob.omega - _weighted_counts(prob.P, z)
    free = np.abs(resid) <= 1e-7 * (1.0 + np.abs(prob.omega))
    y_new = np.where(free, y, lam * np.sign(resid))
    if frac.size == 0 or not free.any():
        return y_new
    pf = prob.P[frac]
    a = np.hstack([pf[:, free], -np.ones((frac.size, 1))])
    rhs = -(prob.u[frac] + pf @ y_new - theta)
    delta = np.linalg.lstsq(a, rhs, rcond=None)[0]
    y_new[free] += delta[:-1]
    return np.clip(y_new, -lam, lam)


def _ascent(
    prob: _Problem, lam: float, y0: np.ndarray, effort: tuple[int, int, int]
) -> tuple[np.ndarray, int]:
    """Smoothed dual ascent from ``y0`` with ``effort`` (see ``_ASCENT_COLD``)."""
    c, n, b = prob.c, prob.n, prob.b
    work, lo_it, hi_it = effort
    window = max(c + 1, min(b, n - b) // _COARSE_DIV)
    return _dual_ascent(prob, lam, y0, window, int(min(hi_it, max(lo_it, work // c))))


def _window_state(s: np.ndarray, b: int, half: int) -> np.ndarray:
    """Per item: 1 fixed in (clearly inside the top-b by s), 2 free (a column of the LP, the
    ``half`` on each side of rank b), 0 out."""
    n = s.shape[0]
    lo, hi = max(0, b - half), min(n, b + half)
    kth = [k for k in (lo, hi - 1) if 0 < k < n - 1]
    order = np.argpartition(-s, kth) if kth else np.argsort(-s)
    state = np.zeros(n, dtype=np.int8)
    state[order[:lo]] = 1
    state[order[lo:hi]] = 2
    return state


def _price(
    state: np.ndarray, s: np.ndarray, theta: float, b: int, half: int, cap: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pricing: an out item scoring above θ, or a fixed-in one below, has a reduced cost of
    the wrong sign. None when there is none (the LP's optimality conditions hold for all N
    items); else frees up to ``cap`` of each kind and the items now ranked near b, and returns
    the freed items that were out and those that were fixed in."""
    tol = _LP_TOL * (1.0 + float(np.abs(s).max()))
    viol_out = np.flatnonzero((state == 0) & (s > theta + tol))
    viol_in = np.flatnonzero((state == 1) & (s < theta - tol))
    if viol_out.size == 0 and viol_in.size == 0:
        return None
    if viol_out.size > cap:
        viol_out = viol_out[np.argsort(-s[viol_out], kind="stable")[:cap]]
    if viol_in.size > cap:
        viol_in = viol_in[np.argsort(s[viol_in], kind="stable")[:cap]]
    # the next duals will move the items now ranked near b too
    n = s.shape[0]
    k_lo, k_hi = max(n - b - half, 0), min(n - b + half, n - 1)
    part = np.partition(s, [k_lo, k_hi])
    near = np.flatnonzero((s >= part[k_lo]) & (s <= part[k_hi]) & (state != 2))
    new = np.union1d(np.concatenate([viol_out, viol_in]), near)
    was = state[new]
    state[new] = 2
    return new[was == 0], new[was == 1]


@dataclass
class _Pricing:
    """The outcome of :func:`_grow`."""

    z: np.ndarray | None  # the last LP solution over all items, None without any
    duals: list[np.ndarray]  # every dual point seen (the optimal y last when ``optimal``)
    status: str
    optimal: bool
    finished: bool  # False: stopped after its round limit
    rounds: int
    iterations: int
    columns: int
    theta: float = 0.0  # the last LP's threshold
    w: np.ndarray | None = None  # the last LP's class-count duals, when it has those rows
    scores: np.ndarray | None = None  # the last LP's scores (reduced cost θ − score)


def _grow(
    lp: _WorkingLP, state: np.ndarray, half: int, t_end: float, max_rounds: int | None
) -> _Pricing:
    """Column generation on ``lp`` (``state`` as :func:`_window_state`'s, updated): solved,
    priced and grown until no reduced cost has the wrong sign, HiGHS fails, ``t_end`` or
    ``max_rounds``."""
    prob = lp.prob
    add_cap = max(_MIN_ADD, prob.c)
    rounds, iterations, z, out, duals = 0, 0, None, None, []
    status, optimal, finished = "optimal", False, True
    while True:
        remaining = t_end - time.perf_counter()
        if remaining <= 0:
            status = "time_limit"
            break
        if rounds == max_rounds:
            finished = False
            break
        rounds += 1
        out = lp.solve(remaining)
        iterations += out.iterations
        if not out.ok:
            status = out.status
            break
        z = np.where(state == 1, prob.upper, 0.0)
        z[lp.cols] = out.z
        duals.append(out.y)
        scores = lp.scores(out)
        freed = _price(state, scores, out.theta, prob.b, half, add_cap)
        if freed is None:
            optimal = True
            break
        lp.add(freed[0])
        lp.add(freed[1], were_fixed=True)
        add_cap *= 2  # many violators: y was poor, take bigger steps
    run = _Pricing(z, duals, status, optimal, finished, rounds, iterations, int(lp.cols.shape[0]))
    if optimal:
        assert out is not None
        run.theta, run.w, run.scores = out.theta, out.w, scores
    return run


def _pricing_rounds(
    prob: _Problem, lam: float, y: np.ndarray, half: int, t_end: float, max_rounds: int | None
) -> _Pricing:
    """Column generation from the dual point y: an LP over the ``half`` items each side of
    rank b by y's scores (those above fixed at 1), grown by :func:`_grow`."""
    state = _window_state(prob.scores(y), prob.b, half)
    lp = _WorkingLP(prob, lam, np.flatnonzero(state == 2), np.flatnonzero(state == 1))
    run = _grow(lp, state, half, t_end, max_rounds)
    if run.optimal:  # the last y is the LP's optimal dual; the polish may tighten it
        assert run.z is not None
        y_opt = run.duals[-1]
        run.duals = [y_opt, _polish_dual(prob, lam, run.z, y_opt, run.theta)]
    else:
        run.duals.insert(0, y)
    return run


def _lp_column_generation(
    prob: _Problem,
    lam: float,
    time_limit: float,
    warm_start: np.ndarray | None,
) -> _Solved:
    """Exact LP relaxation by column generation from a good dual point.

    The start: the smoothed dual ascent's y (from 0 or the warm start). Below ``_ASCENT_MIN_C``
    classes the LPs are so cheap that ``_COLD_ROUNDS`` rounds from 0 (or the warm start)
    itself, in a wider window, come first; only if they do not end does the ascent run.
    Without any LP solution (time-out, HiGHS failure) it returns the top-b by the best dual
    point's scores, marked as a fallback.
    """
    t0 = time.perf_counter()
    t_end = t0 + time_limit
    n, b, c = prob.n, prob.b, prob.c
    info: dict[str, Any] = {}
    half = c + 1 + _WINDOW_EXTRA  # free items kept on each side of the threshold
    y0 = np.zeros(c) if warm_start is None else np.clip(warm_start, -lam, lam)
    tried: list[np.ndarray] = []
    run = None
    if 2 * half >= n:  # every item fits in the first LP
        run = _pricing_rounds(prob, lam, y0, half, t_end, None)
    elif c < _ASCENT_MIN_C:
        run = _pricing_rounds(prob, lam, y0, c + 1 + min(_COLD_EXTRA, b // 4), t_end, _COLD_ROUNDS)
        info["cold_rounds"] = run.rounds
    if run is None or not run.finished:
        if run is not None:
            tried = run.duals
        t1 = time.perf_counter()
        effort = _ASCENT_COLD if warm_start is None else _ASCENT_WARM
        y, info["dual_evals"] = _ascent(prob, lam, y0, effort)
        info["t_dual"] = time.perf_counter() - t1
        run = _pricing_rounds(prob, lam, y, half, t_end, None)
    info.update(
        cg_rounds=run.rounds,
        lp_iterations=run.iterations,
        lp_columns=run.columns,
        t_total=time.perf_counter() - t0,
    )
    duals = run.duals if run.optimal else tried + run.duals
    bounds = [prob.bound(v) for v in duals]
    best = int(np.argmax(bounds))  # the first of equal bounds: the unpolished y
    best_y, best_bound = duals[best], bounds[best]
    if run.z is None:
        status = f"{run.status}; fell back to dual rounding"
        z = prob.topb_z(prob.scores(best_y))
        return _Solved(z, best_bound, status, False, best_y, fallback=True, info=info)
    z = _make_feasible(run.z, prob.upper, b)
    if run.optimal:
        z = _polish_primal(prob, lam, z)
    return _Solved(z, best_bound, run.status, run.optimal, best_y, info=info)


# --------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------


@dataclass
class _Solved:
    """One method's answer on the problem it was given (scaled, possibly merged)."""

    z: np.ndarray  # relaxed or binary z over that problem's columns
    bound: float  # proven lower bound on the binary optimum
    status: str
    optimal: bool  # optimality of the problem the method solves (LP or binary) was proven
    dual: np.ndarray | None = None
    fallback: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    snap: float = 1e-9  # z this close to 0 or 1 is solver noise
    lp_round: np.ndarray | None = None  # the LP rounding the binary search started from
    lp_bound: float | None = None  # the LP relaxation's bound, when the binary search ran

    def rescaled(self, prob: _Problem, sigma: float) -> _Solved:
        """In the caller's units (× sigma) and over the N items."""
        return dataclasses.replace(
            self,
            z=prob.expand(self.z),
            bound=self.bound * sigma,
            dual=None if self.dual is None else self.dual * sigma,
            lp_round=None if self.lp_round is None else prob.expand(self.lp_round),
            lp_bound=None if self.lp_bound is None else self.lp_bound * sigma,
        )


def _order_selection(z: np.ndarray, u: np.ndarray, b: int) -> np.ndarray:
    """Top-b of z; ties by descending u, then ascending index (np.lexsort is stable).

    Σz = b with z ≤ 1 puts at least b entries above 0, so only those need sorting.
    """
    cand = np.flatnonzero(z > 0)
    if cand.shape[0] < b:  # pragma: no cover - only for a z that breaks Σz = b
        cand = np.arange(z.shape[0])
    order = np.lexsort((-u[cand], -z[cand]))
    return cand[order[:b]].astype(np.int64)


def _finish(prob: _Problem, lam: float, method: str, sol: _Solved, t0: float) -> BalancedResult:
    # snap solver noise so that ties in z are real ties (the u tie rule then applies)
    z, snap = sol.z, sol.snap
    z = np.where(np.abs(z) < snap, 0.0, np.where(np.abs(z - 1.0) < snap, 1.0, z))
    z = _make_feasible(z, np.ones(prob.n), prob.b)  # what the snap moved goes back on Σz = b
    idx = _order_selection(z, prob.u, prob.b)
    obj = objective(prob.u, prob.P, prob.omega, lam, idx)
    lp_obj = relaxed_objective(prob.u, prob.P, prob.omega, lam, z)
    info = dict(sol.info)
    if sol.lp_bound is not None:
        info["lp_bound"] = sol.lp_bound
    if sol.lp_round is not None:
        rounded = _order_selection(sol.lp_round, prob.u, prob.b)
        info["lp_round_objective"] = objective(prob.u, prob.P, prob.omega, lam, rounded)
        info["picks_changed"] = int(prob.b - np.intersect1d(idx, rounded).shape[0])
    return BalancedResult(
        indices=idx,
        z=z,
        objective=obj,
        lp_objective=lp_obj,
        # a lower bound stays one when lowered: never let rounding put it above what it bounds
        bound=min(float(sol.bound), obj, lp_obj),
        status=sol.status,
        optimal=bool(sol.optimal),
        solve_time=time.perf_counter() - t0,
        method=method,
        dual=sol.dual,
        fallback=sol.fallback,
        lam=lam,
        budget=prob.b,
        expected_counts=prob.P[idx].sum(axis=0),
        info=info,
    )


def _run_lp(
    prob: _Problem, lam: float, time_limit: float, warm_start: np.ndarray | None
) -> _Solved:
    if lam == 0.0:
        # y = 0 is the only dual point: the exact answer is the stable top-b of u
        y = np.zeros(prob.c)
        return _Solved(prob.topb_z(prob.u), prob.bound(y), "optimal", True, y)
    if prob.b == int(prob.upper.sum()):
        y = lam * np.sign(prob.omega - prob.colsum)
        return _Solved(prob.upper.copy(), prob.bound(y), "optimal", True, y)
    if prob.cap is not None:  # merged rows: few columns, a plain LP is fastest
        return _run_highs(prob, lam, time_limit)
    sol = _lp_column_generation(prob, lam, time_limit, warm_start)
    if sol.fallback:
        warnings.warn(f"CB LP: {sol.status}", RuntimeWarning, stacklevel=4)
    elif not sol.optimal:
        warnings.warn(
            f"CB LP did not prove optimality ({sol.status}); returning its last LP solution",
            RuntimeWarning,
            stacklevel=4,
        )
    return sol


def _run_highs(prob: _Problem, lam: float, time_limit: float) -> _Solved:
    out = _WorkingLP(prob, lam, np.arange(prob.n), np.zeros(0, dtype=np.int64)).solve(time_limit)
    if not out.ok:
        raise _SolverFailure(out.status)
    z = _make_feasible(out.z, prob.upper, prob.b)
    info = {"lp_iterations": out.iterations}
    return _Solved(z, prob.bound(out.y), "optimal", True, out.y, info=info)


def _cvxpy_dual(prob: _Problem, lam: float, cons: list[Any]) -> np.ndarray:
    """Recover y from cvxpy's duals of Σz = b, z ≥ 0, z ≤ 1.

    Stationarity reads u + P y = ν·1 − α + β (ν, α, β those duals); P's rows sum to 1, so
    y = ±ν·1 + lstsq(P, β − α − u). The sign convention of ν is tried both ways: any y in the
    box is a valid bound, the caller keeps the better one.
    """
    nu = float(np.asarray(cons[0].dual_value).reshape(-1)[0])
    alpha = np.asarray(cons[1].dual_value, dtype=np.float64).reshape(-1)
    beta = np.asarray(cons[2].dual_value, dtype=np.float64).reshape(-1)
    rhs = beta - alpha - prob.u
    base = np.linalg.lstsq(prob.P, rhs, rcond=None)[0]
    cands = [np.clip(base + sgn * nu, -lam, lam) for sgn in (1.0, -1.0)]
    return max(cands, key=prob.bound)


def _run_cvxpy(prob: _Problem, lam: float) -> _Solved:
    import cvxpy as cp  # heavy import, only for the reference method

    u, probs, omega, budget = prob.u, prob.P, prob.omega, prob.b
    z = cp.Variable(prob.n)
    cons = [cp.sum(z) == budget, z >= 0, z <= 1]
    problem = cp.Problem(cp.Minimize(-u @ z + lam * cp.norm1(omega - probs.T @ z)), cons)
    try:
        problem.solve()
    except cp.error.SolverError as exc:
        raise _SolverFailure(f"failed: {exc}") from exc
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or z.value is None:
        raise _SolverFailure(f"failed: cvxpy status {problem.status}")
    zv = _make_feasible(np.asarray(z.value, dtype=np.float64), prob.upper, prob.b)
    try:
        y: np.ndarray | None = _cvxpy_dual(prob, lam, cons)
        bnd = prob.bound(y)  # type: ignore[arg-type]
    except (TypeError, ValueError, np.linalg.LinAlgError):
        y, bnd = None, -np.inf
    optimal = problem.status == cp.OPTIMAL
    if not optimal:
        warnings.warn(f"cvxpy returned status {problem.status}", RuntimeWarning, stacklevel=4)
    info = {"solver": str(problem.solver_stats.solver_name)}
    # interior-point z is ~1e-8 off the bounds: snap wider so that ties in z stay ties
    return _Solved(zv, bnd, str(problem.status), optimal, y, info=info, snap=1e-6)


@dataclass
class _BranchOut:
    z: np.ndarray | None  # integral z over all columns, or None without an incumbent
    bound: float  # lower bound over the selections that agree with `base` outside `cols`
    optimal: bool
    status: str


def _row_hash(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """A random projection of the (u_i, p_i) rows: one number per row, almost surely distinct
    for distinct rows, and the same for identical ones (a BLAS kernel may, rarely, sum two of
    them in different orders: those then stay apart, which is exact, only slower)."""
    w = np.random.default_rng(0).random(probs.shape[1] + 1)
    return u * w[0] + probs @ w[1:]


def _row_groups(
    u: np.ndarray, probs: np.ndarray, hashes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Identical (u_i, p_i) rows: the first row of each group (by first occurrence) and the
    group of every row. Grouped by :func:`_row_hash` (or the given ``hashes``) and checked
    row by row; when two distinct rows share a number, grouped by the rows' bytes instead."""
    rows = np.ascontiguousarray(np.column_stack([u, probs]))
    n = rows.shape[0]
    if hashes is None:
        hashes = _row_hash(u, probs)
    by_hash = np.argsort(hashes)  # then the first of each group by index: no stable sort
    sorted_h = hashes[by_hash]
    inverse = np.empty(n, dtype=np.int64)
    inverse[by_hash] = np.concatenate(([0], np.cumsum(sorted_h[1:] != sorted_h[:-1])))
    first = np.full(int(inverse.max()) + 1, n)
    np.minimum.at(first, inverse, np.arange(n))
    if not np.array_equal(rows[first][inverse], rows):
        key = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return first[order], rank[inverse.reshape(-1)]


def _spread(zg: np.ndarray, groups: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per-item z from per-group totals zg: each group's units go to its members in index
    order, up to each member's upper bound."""
    # (16-bit keys take numpy's radix sort, about 3x faster)
    keys = groups.astype(np.int16) if zg.shape[0] <= np.iinfo(np.int16).max else groups
    order = np.argsort(keys, kind="stable")
    g, up = groups[order], upper[order]
    totals = np.bincount(groups, weights=upper, minlength=zg.shape[0])
    within = (np.cumsum(up) - up) - (np.cumsum(totals) - totals)[g]
    out = np.empty(groups.shape[0])
    out[order] = np.clip(zg[g] - within, 0.0, up)
    return out


def _outside(n: int, cols: np.ndarray) -> np.ndarray:
    """The mask of the n items not in ``cols``."""
    out = np.ones(n, dtype=bool)
    out[cols] = False
    return out


def _highs_mip(
    lam: float,
    rhs: np.ndarray,
    cost: np.ndarray,
    cap: np.ndarray,
    p_rows: np.ndarray,
    options: dict[str, Any],
    start: np.ndarray | None,
) -> tuple[Any, np.ndarray, Any, str]:
    """The binary problem over integer columns [p_i; 1] (cost ``cost``, 0 ≤ z ≤ ``cap``), then
    the slacks p, q, in the standard form of :class:`_WorkingLP`: one HiGHS branch-and-bound
    from the feasible point ``start`` (z, p, q; if given). Its info, x (same order), model
    status and that status in words."""
    h = _highs(options)
    _pass_rows(h, rhs)
    _add_items(h, cost, cap, p_rows)
    _add_slacks(h, lam, p_rows.shape[1])
    k, n_col = p_rows.shape[0], h.getNumCol()
    h.changeColsIntegrality(
        k,
        np.arange(k, dtype=np.int32),
        np.full(k, highspy.HighsVarType.kInteger.value, dtype=np.uint8),
    )
    if start is not None:
        h.setSolution(n_col, np.arange(n_col, dtype=np.int32), start)
    model_status, message = _lp_run(h)
    x = np.asarray(h.getSolution().col_value)
    return h.getInfo(), x, model_status, message


def _branch_and_bound(
    prob: _Problem,
    lam: float,
    cols: np.ndarray,
    base: np.ndarray,
    time_limit: float,
    options: dict[str, Any],
    start: np.ndarray | None = None,
) -> _BranchOut:
    """The binary problem over the columns ``cols`` with the others held at ``base``
    (HiGHS branch-and-bound with ``options``, identical rows among ``cols`` as one integer
    column), from the selection ``start`` when it agrees with ``base`` outside ``cols``;
    stopped at its gap (``options["mip_abs_gap"]``, ``"mip_rel_gap"``; the latter 0 unless
    given), after ``options["mip_max_nodes"]`` nodes (status ``"work_limit"``) or
    ``time_limit`` seconds."""
    rest = base.copy()
    rest[cols] = 0.0
    const = -float(prob.u @ rest)
    first, groups = _row_groups(prob.u[cols], prob.P[cols])
    k, c = first.shape[0], prob.c
    cap = np.bincount(groups, weights=prob.upper[cols], minlength=k)
    p_first = prob.P[cols[first]]
    rhs = np.append(prob.omega - _weighted_counts(prob.P, rest), prob.b - rest.sum())
    x0 = None
    outside = _outside(prob.n, cols)
    if start is not None and np.array_equal(start[outside], base[outside]):
        zg0 = np.bincount(groups, weights=start[cols], minlength=k)
        resid = rhs[:c] - p_first.T @ zg0
        x0 = np.concatenate([zg0, np.maximum(resid, 0.0), np.maximum(-resid, 0.0)])
    info, x, model_status, message = _highs_mip(
        lam,
        rhs,
        -prob.u[cols[first]],
        cap,
        p_first,
        {"mip_rel_gap": 0.0, **options, "time_limit": float(max(time_limit, 1e-3))},
        x0,
    )
    status = _HIGHS_STATUS.get(model_status, message.lower())
    optimal = status == "optimal"
    dual = float(info.mip_dual_bound) if info.valid and model_status in _HIGHS_STATUS else -np.inf
    bound = dual + const if np.isfinite(dual) else -np.inf
    if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        return _BranchOut(None, bound, False, status)
    zg = np.clip(np.rint(x[:k]), 0.0, cap)
    if zg.sum() != rhs[-1]:  # pragma: no cover - HiGHS keeps Σz = b within its tolerance
        return _BranchOut(None, bound, False, f"{status}; incumbent off the budget")
    z = rest
    z[cols] = _spread(zg, groups, prob.upper[cols])
    return _BranchOut(z, bound, optimal, status)


def _run_milp(prob: _Problem, lam: float, time_limit: float, mip_gap: float) -> _Solved:
    # HiGHS stops at gap ≤ g·max(1, |objective|), as binary does (u and λ are scaled)
    g = max(mip_gap, _BINARY_GAP_TOL)
    gaps = {"mip_rel_gap": g, "mip_abs_gap": g}
    out = _branch_and_bound(prob, lam, np.arange(prob.n), np.zeros(prob.n), time_limit, gaps)
    if out.z is None:
        raise _SolverFailure(out.status if out.status == "time_limit" else f"failed: {out.status}")
    if not out.optimal:
        warnings.warn(
            f"CB MILP did not prove optimality ({out.status}); returning its incumbent",
            RuntimeWarning,
            stacklevel=4,
        )
    return _Solved(out.z, out.bound, out.status, out.optimal)


def _round_lp(prob: _Problem, z: np.ndarray) -> np.ndarray:
    """The LP z rounded to b whole units: its integral part, then the largest fractions
    (ties by descending u, then ascending index)."""
    base = np.minimum(np.floor(z + 1e-9), prob.upper)
    frac = z - base
    order = np.lexsort((-prob.u, -frac))
    order = order[base[order] < prob.upper[order]]
    base[order[: int(round(prob.b - base.sum()))]] += 1.0
    return base


def _best_swap(
    p: np.ndarray, u: np.ndarray, resid: np.ndarray, out: np.ndarray, inn: np.ndarray, lam: float
) -> tuple[float, int, int]:
    """The objective change of the best move of one unit from an ``out`` item to an ``inn``
    item, and the two; computed in blocks of ``out`` rows to bound memory."""
    base = np.abs(resid).sum()
    p_in, u_in = p[inn], u[inn]
    rows = max(1, _SWAP_BLOCK // max(1, inn.size * p.shape[1]))
    best = (np.inf, -1, -1)
    for a in range(0, out.size, rows):
        o = out[a : a + rows]
        moved = resid[None, None, :] + p[o][:, None, :] - p_in[None, :, :]
        delta = u[o][:, None] - u_in[None, :] + lam * (np.abs(moved).sum(axis=2) - base)
        i, j = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if delta[i, j] < best[0]:
            best = (float(delta[i, j]), int(o[i]), int(inn[j]))
    return best


def _swap_search(
    prob: _Problem, lam: float, z: np.ndarray, cand: np.ndarray, t_end: float
) -> np.ndarray:
    """Best-improvement swaps (one unit out, one in) among the items ``cand``, until none
    improves the objective, after ``_SWAP_MAX_ROUNDS`` or at ``t_end``: a fast, good incumbent
    for the exact search."""
    z = z.copy()
    p, u = prob.P[cand], prob.u[cand]
    resid = prob.omega - _weighted_counts(prob.P, z)
    for _ in range(_SWAP_MAX_ROUNDS):
        zc = z[cand]
        out = np.flatnonzero(zc >= 1.0)
        inn = np.flatnonzero(zc <= prob.upper[cand] - 1.0)
        if out.size == 0 or inn.size == 0 or time.perf_counter() >= t_end:
            break
        delta, i, j = _best_swap(p, u, resid, out, inn, lam)
        if not delta < -_BINARY_GAP_TOL * (1.0 + np.abs(resid).sum()):
            break
        z[cand[i]] -= 1.0
        z[cand[j]] += 1.0
        resid += p[i] - p[j]
    return z


def _cover_bound(lb: float, r: np.ndarray, cols: np.ndarray, out: _BranchOut) -> float:
    """A bound on every selection: those that agree with the base outside ``cols`` are bounded
    by the branch-and-bound, the others by the LP bound plus their cheapest reduced cost."""
    outside = _outside(r.shape[0], cols)
    rest = lb + float(r[outside].min()) if outside.any() else np.inf
    return max(lb, min(out.bound, rest))


def _count_bound(
    prob: _Problem, lam: float, y: np.ndarray, r: np.ndarray, top: np.ndarray, k: np.ndarray
) -> tuple[float, np.ndarray]:
    """A bound on f(z) − LB(y) over all selections from whole class counts, and the net units
    t_c it moves per class (k: each item's most probable class).

    Write p_i = e_k(i) − ε_i. For z = top + d the residual is q − t + Σ_i ε_i d_i, with
    q = Ω − Pᵀtop and t_c the integer net units moved in class c; each φ_c(x) = λ|x| − y_c x
    is (λ + |y_c|)-Lipschitz, so f(z) − LB ≥ Σ_i (ρ_i − π_i)|d_i| + Σ_c φ_c(q_c − t_c) with
    π_i = Σ_c (λ + |y_c|)|ε_ic|. Given t_c, a class's first sum is least over its cheapest
    units (a convex function of t_c), so the minimum over Σ_c t_c = 0 is a separable convex
    allocation, solved exactly. It is the stronger bound when P is nearly one-hot: the LP
    balances a class with a fraction of an item, a selection cannot."""
    c = prob.c
    w = lam + np.abs(y)
    pk = prob.P[np.arange(prob.n), k]  # may exceed 1 by the row-sum tolerance
    a = r - (prob.P @ w + w[k] * (np.abs(1.0 - pk) - pk))
    n_add, n_rem = (prob.upper - top).astype(np.int64), top.astype(np.int64)
    # per class, t rises one unit by adding a unit (slope a) or by keeping a removed one (−a)
    cls = np.concatenate([np.repeat(k, n_add), np.repeat(k, n_rem)])
    slope = np.concatenate([np.repeat(a, n_add), -np.repeat(a, n_rem)])
    order = np.lexsort((slope, cls))
    size = np.bincount(cls, minlength=c)
    rem = np.bincount(k, weights=n_rem, minlength=c)
    seg = np.repeat(np.arange(c), size + 1)  # positions 0..size_c of class c: t = pos − rem_c
    first = np.cumsum(size + 1) - (size + 1)
    pos = np.arange(seg.shape[0]) - first[seg]
    csum = np.concatenate([[0.0], np.cumsum(slope[order])])
    off = (np.cumsum(size) - size)[seg]
    x = prob.omega[seg] - (prob.P.T @ top)[seg] - (pos - rem[seg])
    h = np.bincount(k, weights=a * n_rem, minlength=c)[seg] + csum[off + pos] - csum[off]
    h += lam * np.abs(x) - y[seg] * x
    at_min = np.flatnonzero(h <= np.minimum.reduceat(h, first)[seg])
    p0 = pos[at_min[np.r_[True, seg[at_min][1:] != seg[at_min][:-1]]]]
    t = p0 - rem.astype(np.int64)
    value, need = float(h[first + p0].sum()), int(t.sum())
    if need:  # move |need| units back, each where it costs least (prefixes, by convexity)
        step = np.diff(h)
        if need > 0:
            ok = (pos[1:] >= 1) & (pos[1:] <= p0[seg[1:]]) & (seg[1:] == seg[:-1])
            cost, owner = -step[ok], seg[1:][ok]
        else:
            ok = (pos[:-1] >= p0[seg[:-1]]) & (seg[1:] == seg[:-1])
            cost, owner = step[ok], seg[:-1][ok]
        pick = np.argpartition(cost, abs(need) - 1)[: abs(need)]
        value += float(cost[pick].sum())
        t -= np.sign(need) * np.bincount(owner[pick], minlength=c)
    return value, t


def _by_counts(
    prob: _Problem, r: np.ndarray, top: np.ndarray, t: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """top with t_c units added (t_c > 0) or removed (t_c < 0) in each class k(i), the units
    of least reduced cost r: the selection :func:`_count_bound` points to."""
    z = top.copy()
    for units, sign in ((prob.upper - top, 1.0), (top, -1.0)):
        items = np.repeat(np.arange(prob.n), units.astype(np.int64))
        items = items[np.lexsort((r[items], k[items]))]
        kc = k[items]
        rank = np.arange(items.shape[0]) - np.searchsorted(kc, kc)
        np.add.at(z, items[rank < np.maximum(sign * t, 0)[kc]], sign)
    return z


def _count_dual(run: _Pricing, prob: _Problem, lo: np.ndarray, hi: np.ndarray) -> float:
    """A bound on every selection with lo_g ≤ (units in group g) ≤ hi_g, from the duals of
    the LP with those rows (any y in the box, w, θ): with s̃ = u + P y + w_g(i), f(z) ≥ yᵀΩ
    − θb + Σ_g min(w_g lo_g, w_g hi_g) − Σ_i upper_i (s̃_i − θ)⁺. At the LP's optimum it is
    the LP's value, but it holds whatever HiGHS's tolerances."""
    assert run.w is not None and run.scores is not None
    y, w, theta = run.duals[-1], run.w, run.theta
    spill = float(prob.upper @ np.maximum(run.scores - theta, 0.0))
    return float(y @ prob.omega - theta * prob.b + np.minimum(w * lo, w * hi).sum() - spill)


def _round_counts(
    z: np.ndarray, cols: np.ndarray, groups: np.ndarray, upper: np.ndarray, s: np.ndarray
) -> np.ndarray:
    """z (integral outside ``cols``, integral units per group) rounded to a selection with the
    same units per group: in each group its integral part, then its largest fractions among
    ``cols`` (ties by descending s)."""
    out = z.copy()
    zc, gc, up = z[cols], groups[cols], upper[cols]
    base = np.minimum(np.floor(zc + 1e-9), up)
    g = int(groups.max()) + 1
    need = np.rint(np.bincount(gc, weights=zc - base, minlength=g))
    order = np.lexsort((-s[cols], -(zc - base), gc))
    order = order[base[order] < up[order]]
    kg = gc[order]
    rank = np.arange(order.shape[0]) - np.searchsorted(kg, kg)
    base[order[rank < need[kg]]] += 1.0
    out[cols] = base
    return out


def _solve_node(
    lp: _WorkingLP,
    state: np.ndarray,
    half: int,
    lo: np.ndarray,
    hi: np.ndarray,
    units: np.ndarray,
    t_end: float,
) -> _Pricing:
    """The LP of ``lp`` (with class-count rows) with lo ≤ units per class ≤ hi, over all items
    by column generation; ``lo`` and ``hi`` must admit a selection (Σlo ≤ b ≤ Σhi), ``units``
    is each class's total."""
    assert lp.groups is not None
    lp.set_counts(lo, hi)
    run = _grow(lp, state, half, t_end, None)
    # infeasible over the columns so far: free every item of the classes bounded, then all
    for classes in (np.flatnonzero((lo > 0) | (hi < units)), np.arange(lo.shape[0])):
        if not run.status.startswith("failed") or time.perf_counter() >= t_end:
            break
        idle = np.flatnonzero(np.isin(lp.groups, classes) & (state != 2))
        was = state[idle]
        state[idle] = 2
        lp.add(idle[was == 0])
        lp.add(idle[was == 1], were_fixed=True)
        run = _grow(lp, state, half, t_end, None)
    return run


@dataclass
class _CountOut:
    bound: float  # a bound on every selection
    z: np.ndarray | None  # a selection better than the ub it was given, if one was found
    value: float  # its objective (else that ub)
    nodes: int


def _count_search(
    prob: _Problem,
    lam: float,
    y: np.ndarray,
    lb: float,
    ub: float,
    tol: Callable[[float], float],
    t_end: float,
) -> _CountOut:
    """Branch-and-bound on the units each class k(i) (most probable class) gets, z relaxed.

    A selection's units per class are integers; the LP is not bound to that and balances a
    class with fractions of items, which a nearly one-hot P makes costly for any selection. So
    the LP with the class counts as rows [lo, hi] is branched on (counts ≤ ⌊n⌋ or ≥ ⌈n⌉ for
    the most fractional count n) until its counts are whole, each LP by column generation over
    all items from the last one's columns: the least bound over the open and the finished
    nodes bounds every selection. Each finished node's LP rounds (within its classes) to a
    selection. Stops when the bound reaches ``ub − tol(ub)`` (``ub``: the best objective
    found), after ``_COUNT_MAX_NODES`` nodes or at ``t_end``."""
    groups = np.argmax(prob.P, axis=1)
    units = np.bincount(groups, weights=prob.upper, minlength=prob.c)
    half = prob.c + 1 + _WINDOW_EXTRA
    # merged columns (capacities, a few thousand at most) all go in: the window counts items
    state = _window_state(prob.scores(y), prob.b, half) if prob.cap is None else np.full(prob.n, 2)
    lp = _WorkingLP(prob, lam, np.flatnonzero(state == 2), np.flatnonzero(state == 1), groups)
    order = itertools.count()  # ties in the heap go by age, never to the arrays
    heap = [(lb, next(order), np.zeros(prob.c), units)]
    closed: list[float] = []  # bounds of the nodes no longer branched
    best, nodes = None, 0
    while heap and nodes < _COUNT_MAX_NODES and time.perf_counter() < t_end:
        bound, _, lo, hi = heapq.heappop(heap)
        stalled = nodes == _COUNT_STALL_NODES and bound - lb < _COUNT_STALL_SHARE * (ub - lb)
        if bound >= ub - tol(ub) or stalled:  # then so are all others: the search is done
            closed.append(bound)
            break
        nodes += 1
        run = _solve_node(lp, state, half, lo, hi, units, t_end)
        if not run.optimal:  # time out, or HiGHS failed: the node stays open
            heapq.heappush(heap, (bound, next(order), lo, hi))
            break
        assert run.z is not None and run.scores is not None
        bound = max(bound, _count_dual(run, prob, lo, hi))
        counts = np.bincount(groups, weights=run.z, minlength=prob.c)
        frac = np.abs(counts - np.rint(counts))
        if frac.max() > 1e-6 and bound < ub - tol(ub):
            g = int(np.argmax(frac))
            down, up = hi.copy(), lo.copy()
            down[g], up[g] = np.floor(counts[g]), np.ceil(counts[g])
            for child_lo, child_hi in ((lo, down), (up, hi)):
                if child_lo.sum() <= prob.b <= child_hi.sum():  # else no selection fits
                    heapq.heappush(heap, (bound, next(order), child_lo, child_hi))
            continue
        closed.append(bound)
        if frac.max() <= 1e-6:  # swaps among the items nearest the node's threshold
            z = _round_counts(run.z, lp.cols, groups, prob.upper, run.scores)
            reduced = np.abs(run.scores[lp.cols] - run.theta)
            near = lp.cols[np.argsort(reduced)[:half]]
            z = _swap_search(prob, lam, z, np.sort(near), t_end)
            if (value := prob.value(lam, z)) < ub:
                best, ub = z, value
    return _CountOut(min(closed + [node[0] for node in heap], default=lb), best, ub, nodes)


def _run_binary(
    prob: _Problem, lam: float, time_limit: float, warm_start: np.ndarray | None, mip_gap: float
) -> _Solved:
    """The binary optimum to the relative gap ``mip_gap``: LP bound, reduced-cost fixing,
    branch-and-bound on the free items.

    With y the LP's dual, s = u + P y and θ the score of the b-th unit, every selection z
    satisfies f(z) ≥ LB + Σ_i |s_i − θ|·|z_i − top_i| (top = the top-b of s). So an item whose
    reduced cost |s_i − θ| exceeds UB − LB − tol (UB: the best selection found, tol: the gap
    allowed) stays at top_i in every selection better than UB − tol: only the others are
    searched, by HiGHS from the best selection found, to the absolute gap tol. A free set of
    at most twice the window is searched at once; a larger one after the window (the items
    nearest to θ: they usually hold the optimum, which makes the gap, and so the free set,
    small).

    The first incumbent is the better of a swap search from the LP's rounding and the selection
    of :func:`_count_bound` (whose bound also joins the LP's). Up to ``_SWAP_FULL`` the swaps
    range over all items, not only the window, and a second swap search starts from the top-b
    of u (on digits-size BALD-CB cycles the window's swaps missed selections 1–4% better; at
    λ = 100 it found one 20% better), beyond only while its swaps are cheap (``_SWAP_FAR``:
    at 45,000 × 100 it took the whole time limit for nothing). The swaps take at most half the
    time limit. When more items stay free than one search takes at once, :func:`_count_search`
    runs before HiGHS (its bound and selections join; it proves a confident model at
    45,000 × 10 in 300–400 nodes, about 1 s, where the free set is every item).
    """
    lp = _run_lp(prob, lam, _BINARY_LP_TIME, warm_start)
    t_start = time.perf_counter()
    info: dict[str, Any] = {**lp.info, "lp_status": lp.status, "mip_gap": mip_gap}
    lp_round = _round_lp(prob, lp.z)
    if lp.dual is None or np.array_equal(lp_round, lp.z):  # an integral LP optimum is binary
        return dataclasses.replace(lp, z=lp_round, lp_round=lp_round, info=info)
    s = prob.scores(lp.dual)
    top = prob.topb_z(s)
    r = np.abs(s - s[top > 0].min())
    lb = prob.bound(lp.dual, s)
    k = min(prob.n, max(_BINARY_WINDOW, 4 * (prob.c + 1)))
    near = np.argpartition(r, k - 1)[:k] if k < prob.n else np.arange(prob.n)
    window = np.union1d(near, np.flatnonzero(top != lp_round))
    t_end = t_start + time_limit
    full = prob.b * prob.n * prob.c <= _SWAP_FULL
    cand = np.arange(prob.n) if full else window
    # the far start needs up to _SWAP_MAX_ROUNDS swaps of ~|cand|²·C/4 deltas each
    far = full or _SWAP_MAX_ROUNDS * cand.shape[0] ** 2 * prob.c <= 4 * _SWAP_FAR
    starts = (lp_round, prob.topb_z(prob.u)) if far else (lp_round,)
    best = min(
        (_swap_search(prob, lam, z0, cand, t_start + time_limit / 2) for z0 in starts),
        key=lambda z: prob.value(lam, z),
    )
    ub = prob.value(lam, best)

    def gap_of(value: float) -> float:  # the gap allowed (u and λ are scaled: max|u|, λ ≤ 1)
        return max(mip_gap, _BINARY_GAP_TOL) * max(1.0, abs(value))

    def tol() -> float:
        return gap_of(ub)

    bound = lb
    if ub - bound > tol():
        k_of = np.argmax(prob.P, axis=1)
        gain, t = _count_bound(prob, lam, lp.dual, r, top, k_of)
        bound = max(bound, lb + gain)
        by_counts = _by_counts(prob, r, top, t, k_of)
        if (value := prob.value(lam, by_counts)) < ub:
            best, ub = by_counts, value
    free = np.flatnonzero(r <= ub - lb - tol())
    n_nodes = 0
    if ub - bound > tol() and free.size > 2 * k:  # too many free items for one search
        counted = _count_search(prob, lam, lp.dual, lb, ub, gap_of, t_end)
        bound, n_nodes = max(bound, counted.bound), counted.nodes
        if counted.z is not None:
            best, ub = counted.z, counted.value
        free = np.flatnonzero(r <= ub - lb - tol())
    # a small free set is searched at once: a first search on the window would be a second MIP;
    # a window search takes in the incumbent's own changes, so that the incumbent starts it
    window = np.union1d(window, np.flatnonzero(best != top))
    searched = free if free.size <= 2 * k else window
    proven, n_searched = ub - bound <= tol(), 0
    for attempt in range(2):
        if proven or time.perf_counter() >= t_end:
            break
        asked = tol()
        options = {**_BINARY_HIGHS, "mip_abs_gap": asked}
        out = _branch_and_bound(
            prob, lam, searched, top, t_end - time.perf_counter(), options, best
        )
        n_searched = int(searched.shape[0])
        if out.z is not None and (value := prob.value(lam, out.z)) < ub:
            best, ub = out.z, value
        bound = max(bound, _cover_bound(lb, r, searched, out))
        free = np.flatnonzero(r <= ub - lb - tol())
        covered = bool(np.isin(free, searched).all())
        # HiGHS's own proof counts when no free item was left out and the gap it was held to
        # is still allowed (a lower positive UB allows less)
        proven = ub - bound <= tol() or (out.optimal and covered and asked <= tol())
        # then every free item, when a search can take them all (no proof is possible else)
        if attempt or covered or free.size > _BINARY_MAX_FREE:
            break
        searched = free
    info.update(
        free_items=int(free.shape[0]),
        searched_items=n_searched,
        count_nodes=n_nodes,
        t_search=time.perf_counter() - t_start,
    )
    # the work limits stop the search the same way on every machine; the time limit does not
    status = (
        "optimal" if proven else "time_limit" if info["t_search"] >= time_limit else "work_limit"
    )
    if not proven:
        warnings.warn(
            f"CB binary search stopped ({status}) before proving optimality to a relative gap "
            f"of {mip_gap:g} ({info['free_items']} free items); returning the best selection "
            "found with its certified gap",
            RuntimeWarning,
            stacklevel=4,
        )
    return _Solved(
        best, min(bound, ub), status, proven, lp.dual, info=info, lp_round=lp_round, lp_bound=lb
    )


_THREADPOOL: Any = None
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0  # threads inside _single_thread_blas: the first sets the limit, the last lifts it
_BLAS_LIMIT: Any = None


def _blas_controller() -> Any:
    global _THREADPOOL
    if _THREADPOOL is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _THREADPOOL = False
        else:
            _THREADPOOL = ThreadpoolController()
    return _THREADPOOL


@contextlib.contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Run numpy's BLAS on one thread inside the LP path.

    Its mat-vecs are memory-bound, so more threads buy little on an idle machine, while on a
    busy one OpenBLAS threads that wait for a core make each call 5-100x slower (measured).
    The limit is process-wide, so it is counted: concurrent solves (a λ path's threads, two
    dashboard sessions) share one limit, lifted when the last of them leaves.
    """
    global _BLAS_USERS, _BLAS_LIMIT
    with _BLAS_LOCK:
        controller = _blas_controller()
        if controller is not False and _BLAS_USERS == 0:
            _BLAS_LIMIT = controller.limit(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None


class _SolverFailure(Exception):
    """A method gave no usable solution; the message is the status to report."""


def _dispatch(
    prob: _Problem,
    lam: float,
    method: str,
    time_limit: float,
    warm: np.ndarray | None,
    mip_gap: float,
) -> _Solved:
    if method == "binary":
        return _run_binary(prob, lam, time_limit, warm, mip_gap)
    if method == "lp-round":
        return _run_lp(prob, lam, time_limit, warm)
    if method == "highs":
        return _run_highs(prob, lam, time_limit)
    if method == "cvxpy":
        return _run_cvxpy(prob, lam)
    return _run_milp(prob, lam, time_limit, mip_gap)


def _merges(method: str, lam: float) -> bool:
    """Whether a solve works on the merged identical rows: not for cvxpy (the plain reference),
    nor at λ = 0, where merged rows would break ties by column, not by item (the stable top-b
    of u is kept)."""
    return method != "cvxpy" and lam > 0


def _solve(
    prob: _Problem,
    lam: float,
    method: str,
    time_limit: float,
    warm_start: np.ndarray | None,
    mip_gap: float,
) -> BalancedResult:
    t0 = time.perf_counter()
    # relative tolerances: the solvers see u and lam divided by the larger of the two
    sigma = max(float(np.abs(prob.u).max()), lam) or 1.0
    work = (prob.merged_problem() if _merges(method, lam) else None) or prob
    work = work.scaled(1.0 / sigma)
    lam_s = lam / sigma
    warm = None if warm_start is None else warm_start / sigma
    with _single_thread_blas():
        try:
            sol = _dispatch(work, lam_s, method, time_limit, warm, mip_gap)
        except _SolverFailure as exc:
            status = f"{exc}; fell back to lp rounding"
            warnings.warn(f"CB solver {method!r}: {status}", RuntimeWarning, stacklevel=3)
            sol = dataclasses.replace(
                _run_lp(work, lam_s, time_limit, warm), status=status, optimal=False, fallback=True
            )
    if work.cap is not None:
        sol.info["merged_columns"] = work.n
    return _finish(prob, lam, method, sol.rescaled(work, sigma), t0)


def solve_balanced(
    u: np.ndarray,
    probs: np.ndarray,
    omega: np.ndarray,
    budget: int,
    lam: float,
    method: str = "lp-round",
    time_limit: float = 60.0,
    warm_start: np.ndarray | None = None,
    mip_gap: float = MIP_GAP,
) -> BalancedResult:
    """Select ``budget`` items by the class-balanced problem (Bengar et al., Eq. 3).

    ``minimize −uᵀz + lam·‖Ω − Pᵀz‖₁  s.t.  z ∈ {0,1}^N, Σz = budget``. ``"binary"`` and
    ``"milp"`` solve it as stated; the LP methods relax z to [0, 1] and select the
    top-``budget`` of z (ties by descending u, then index).

    Parameters
    ----------
    u : ndarray, shape (N,)
        Informativeness (entropy, BALD …), real.
    probs : ndarray, shape (N, C)
        Class probabilities, rows summing to 1 (within 1e-4; float16/bfloat16 input within
        8 of its ulps, then renormalized).
    omega : ndarray, shape (C,)
        Target counts Ω (:func:`target_counts`).
    budget : int
        Number of items to select, in [1, N].
    lam : float
        Weight of the balance term, ≥ 0. ``lam = 0`` gives ``argsort(-u, kind="stable")[:b]``.
    method : {"binary", "lp-round", "highs", "cvxpy", "milp"}
        See the module docstring; ``"lp"`` is read as ``"lp-round"``.
    time_limit : float
        Seconds: the binary search after the LP (``binary``; its LP gets up to 60 s), the LP
        (``lp-round``, ``highs``), the branch-and-bound (``milp``). cvxpy ignores it.
    warm_start : ndarray, shape (C,), optional
        A dual y for ``binary`` and ``lp-round``, e.g. ``previous.dual * lam / previous.lam``.
    mip_gap : float, default :data:`MIP_GAP` (1e-4)
        ``binary`` and ``milp`` stop, as ``"optimal"``, once the selection is proved within
        this relative gap of the binary optimum: objective − bound ≤ mip_gap ·
        max(|objective|, max|u|, lam). 1e-4 is how the paper's solver (Gurobi's default
        MIPGap) defined optimal; 0 asks for the optimum itself (to 1e-9, floating point),
        which on big pools usually ends at the time limit with its certified gap.

    Returns
    -------
    BalancedResult
        ``bound`` is a proven lower bound on the binary optimum, so ``gap = objective − bound``
        (≥ 0) bounds how far the selection may be from it; ``binary`` reports in ``info`` the
        LP bound, the LP rounding's objective and how many of its picks the search changed.

    Notes
    -----
    The LP (``binary`` and ``lp-round``) works on the dual
    ``max_{|y|≤lam} yᵀΩ − top_b(u + P y)``, concave in C variables. (1) A first y: above 20
    classes, L-BFGS-B on a smoothed dual, whose score ordering s = u + P y is nearly right;
    else y = 0 (or the warm start), from which a few pricing rounds cost less (if eight do
    not end, the ascent's y after all). (2) Items
    ranked clearly inside (outside) the top-b by s are fixed at z = 1 (0); an exact LP over
    the rest (a few hundred columns, HiGHS dual simplex) gives z and duals (y, θ). (3) Pricing
    all N items with those duals: an outside item with s_i > θ or a fixed item with s_i < θ
    has a reduced cost of the wrong sign and is freed into the LP, which HiGHS resumes from
    its last basis; repeat. When none is left, (z, y, θ)
    satisfy the optimality conditions of the full LP, so z is an exact optimum (to HiGHS's
    tolerances, relative after the scaling). (4) Complementary slackness polishes y, so that
    ``bound`` = dual value at y certifies the LP value to rounding error in practice.
    ``binary`` then searches as :func:`_run_binary` describes.

    A failure or time-out is never silent: a warning, ``optimal=False`` and the status text.
    If ``highs``, ``cvxpy`` or ``milp`` yield no solution, the LP rounding is returned with
    ``fallback=True``; a timed-out ``binary`` or ``milp`` returns its best selection
    (``"time_limit"``) with its certified bound.
    """
    prob = _Problem(u, probs, omega, budget)
    lam_v = _check_lam(lam)
    method = _check_method(method)
    tl = _check_time_limit(time_limit)
    ws = _check_warm_start(warm_start, prob.c)
    return _solve(prob, lam_v, method, tl, ws, _check_mip_gap(mip_gap))


def solve_path(
    u: np.ndarray,
    probs: np.ndarray,
    omega: np.ndarray,
    budget: int,
    lams: Sequence[float] | np.ndarray,
    method: str = "lp-round",
    time_limit: float = 60.0,
    mip_gap: float = MIP_GAP,
) -> list[BalancedResult]:
    """Solve for each λ in ``lams``, each from a cold start, on the cores this process may use
    (``method``, ``time_limit`` and ``mip_gap`` as in :func:`solve_balanced`).

    Validation, the merged rows and the float32 copy of ``probs`` are shared. The λ are solved
    in threads, one per core (at most 8; HiGHS and numpy's mat-vecs release the GIL): every λ
    is its own cold solve, so the results are those of one ``solve_balanced`` call each,
    whatever the number of threads. Warm-starting each λ from the previous one's dual did not
    pay on realistic inputs (float32 peaked P, 45,000 × 100: 3.48–3.53 s warm against
    3.38–3.68 s cold for the 29 later points of 30 in two runs of ``bench/bench_balance.py``)
    and would chain the λ, so the path does not;
    ``solve_balanced(warm_start=...)`` still takes one.

    Returns
    -------
    list of BalancedResult, one per λ, in the order of ``lams``.
    """
    prob = _Problem(u, probs, omega, budget)
    lam_list = [_check_lam(v) for v in np.asarray(lams, dtype=object).reshape(-1)]
    method = _check_method(method)
    tl, gap = _check_time_limit(time_limit), _check_mip_gap(mip_gap)
    prob.share(merge=any(_merges(method, v) for v in lam_list))
    # cvxpy's reference solve stays on one thread: its solvers' thread safety is not ours
    workers = 1 if method == "cvxpy" else path_threads(len(lam_list))
    with _single_thread_blas():
        if workers == 1:
            return [_solve(prob, lam_v, method, tl, None, gap) for lam_v in lam_list]
        with ThreadPoolExecutor(workers, thread_name_prefix="cbal-path") as pool:
            return list(
                pool.map(lambda lam_v: _solve(prob, lam_v, method, tl, None, gap), lam_list)
            )


def path_threads(points: int) -> int:
    """Threads :func:`solve_path` uses for ``points`` λ: one per core this process may run
    on, at most 8 and at most one per λ."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return max(1, min(points, cores, _PATH_MAX_WORKERS))
