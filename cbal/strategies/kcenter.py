"""KCenterGreedy, KCenterGreedy-CB and the CoreSet robust k-center MIP (DESIGN.md section 1).

Pure numpy/scipy over embedding arrays: no torch, no I/O.

* :func:`kcenter_greedy` -- farthest-first traversal (Sener & Savarese, ICLR 2018) and, with
  ``lam > 0``, the class-balanced variant of Bengar et al. (WACV 2022): at each step pick
  ``argmin_j [-d_j + (lam / C) * ||Omega - P^T z - p_j||_1]``.
* :func:`coreset_mip` -- Sener & Savarese's robust k-center: binary search on the covering
  radius, each radius a feasibility MIP solved by HiGHS (``scipy.optimize.milp``) under a time
  limit, started from (and falling back to) the greedy solution.

Memory: no N x N (or N x L) matrix is ever formed. Distances to the labeled set are computed in
blocks of at most ``chunk_size`` x ``chunk_size``; each greedy step is one matrix-vector product
over the pool, O(N * d). The coreset MIP works on at most ``max_points`` pool points, whose
pairwise distances (``max_points ** 2`` floats) it does form.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.spatial.distance import cdist

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "CoresetResult",
    "coreset_mip",
    "kcenter_greedy",
    "kcenter_greedy_path",
]

#: Rows per block when distances to the labeled set are computed (block = chunk x chunk floats).
DEFAULT_CHUNK_SIZE = 2048
#: Default cap on the number of pool points in the coreset MIP (pairwise matrix = 32 MB).
DEFAULT_MAX_POINTS = 2000
# Lazy greedy: a step that meets this many stale leaders in a row refreshes the
# _ESCALATE_WIDTH best bounds at once (then 4x as many, ...).
_ESCALATE_AFTER = 4
_ESCALATE_WIDTH = 64


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if out < low or (high is not None and out > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bound}, got {out}")
    return out


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def _check_finite(arr: np.ndarray, name: str, block: int = 1 << 20) -> None:
    # Blockwise so that checking a (45000, 512) pool does not allocate an N x d boolean array.
    flat = arr.reshape(-1)
    for start in range(0, flat.size, block):
        if not np.isfinite(flat[start : start + block]).all():
            raise ValueError(f"{name} contains NaN or inf")


def _as_matrix(x: Any, name: str) -> np.ndarray:
    """2-D float32/float64 view (float32 kept as is, anything else as float64), finite."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    _check_finite(arr, name)
    return arr


def _check_pool(embeddings: Any, labeled_embeddings: Any) -> tuple[np.ndarray, np.ndarray]:
    x = _as_matrix(embeddings, "embeddings")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"embeddings must have at least one row and column, got {x.shape}")
    if labeled_embeddings is None or np.asarray(labeled_embeddings).size == 0:
        lab = np.empty((0, x.shape[1]), dtype=x.dtype)
    else:
        lab = _as_matrix(labeled_embeddings, "labeled_embeddings")
        if lab.shape[1] != x.shape[1]:
            raise ValueError(
                f"labeled_embeddings must have {x.shape[1]} columns like embeddings, "
                f"got shape {lab.shape}"
            )
    return x, lab


# --------------------------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------------------------


def _centered(x: np.ndarray, mean: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    # Translating by the pool mean leaves distances unchanged but keeps ||a||^2 + ||b||^2 - 2ab
    # from cancelling catastrophically when features sit far from the origin (e.g. after ReLU).
    out = np.asarray(x, dtype=dtype) - mean.astype(dtype)
    contiguous: np.ndarray = np.ascontiguousarray(out)
    return contiguous


def _sq_norms(x: np.ndarray) -> np.ndarray:
    norms: np.ndarray = np.einsum("ij,ij->i", x, x)
    return norms


def _min_dist(
    x: np.ndarray, x_norms: np.ndarray, y: np.ndarray, y_norms: np.ndarray, chunk: int
) -> np.ndarray:
    """Distance from each row of ``x`` to its nearest row of ``y`` (float64, shape (len(x),)).

    Blocks of ``chunk`` x ``chunk``: never an ``len(x) x len(y)`` matrix. Uses
    ``min_j ||x_i - y_j||^2 = ||x_i||^2 + min_j (||y_j||^2 - 2 x_i.y_j)``, with the -2 folded into
    the (small) block of ``y``, so each block costs one matrix product and two passes.
    """
    best = np.full(x.shape[0], np.inf, dtype=x.dtype)
    if y.shape[0] == 0:
        return best.astype(np.float64)
    for l0 in range(0, y.shape[0], chunk):
        l1 = min(l0 + chunk, y.shape[0])
        y_m2 = y[l0:l1] * np.asarray(-2.0, dtype=y.dtype)
        for p0 in range(0, x.shape[0], chunk):
            p1 = min(p0 + chunk, x.shape[0])
            g = x[p0:p1] @ y_m2.T
            g += y_norms[None, l0:l1]
            np.minimum(best[p0:p1], g.min(axis=1), out=best[p0:p1])
    out = best.astype(np.float64)
    out += x_norms
    np.maximum(out, 0.0, out=out)  # rounding can make a squared distance slightly negative
    np.sqrt(out, out=out)
    return out


# --------------------------------------------------------------------------------------------
# KCenterGreedy(-CB)
# --------------------------------------------------------------------------------------------


class _L1Tracker:
    """Maintains ``g_j = ||r - p_j||_1 - K`` for all pool rows j as ``r = Omega - P^T z`` moves.

    ``K`` is a j-independent constant, so ``argmin_j`` of the CB objective is unchanged. Per
    class c, with ``hi_c = max_j p_jc`` and ``lo_c = min_j p_jc``: if ``r_c >= hi_c`` then
    ``|r_c - p_jc| = r_c - p_jc`` for every j; if ``r_c <= lo_c`` it is ``p_jc - r_c``. Only the
    "mixed" classes (``lo_c < r_c < hi_c``) need an O(N) absolute value per step; the other
    classes contribute ``-p_jc`` or ``+p_jc``, kept in a running sum that changes only when a
    class changes side. Exact (up to float rounding), usually far cheaper than O(N * C) per step.
    """

    def __init__(self, probs: np.ndarray, omega: np.ndarray) -> None:
        # Fortran order makes each class column contiguous for the per-column passes.
        self.p = np.asfortranarray(probs, dtype=np.float64)
        self.hi = self.p.max(axis=0)
        self.lo = self.p.min(axis=0)
        self.r = np.array(omega, dtype=np.float64)
        n, c = self.p.shape
        # side: +1 -> r_c >= hi_c (term -p_jc), -1 -> r_c <= lo_c (term +p_jc), 0 -> mixed
        self.side = np.zeros(c, dtype=np.int8)
        self.fixed = np.zeros(n)
        self.g = np.empty(n)
        self._tmp = np.empty(n)
        self._update_sides()
        self._recompute()

    def _new_sides(self) -> np.ndarray:
        side = np.zeros_like(self.side)
        side[self.r <= self.lo] = -1
        side[self.r >= self.hi] = 1
        return side

    def _update_sides(self) -> None:
        new = self._new_sides()
        for c in np.flatnonzero(new != self.side):
            # remove the old contribution of class c, add the new one (-side * p_jc)
            delta = int(self.side[c]) - int(new[c])
            if delta:
                self.fixed += delta * self.p[:, c]
        self.side = new

    def _recompute(self) -> None:
        np.copyto(self.g, self.fixed)
        tmp = self._tmp
        for c in np.flatnonzero(self.side == 0):
            np.subtract(self.p[:, c], self.r[c], out=tmp)
            np.abs(tmp, out=tmp)
            self.g += tmp

    def pick(self, k: int) -> None:
        self.r -= self.p[k]
        self._update_sides()
        self._recompute()


class _LazyMinDist:
    """Min distance of every pool point to the centers, brought up to date only where needed.

    An eager greedy step is one pass over the pool (``x @ x_k``): memory bound, ~6 ms at
    N = 45,000, d = 512, and most of the run time. Here a new center is only recorded; ``d`` is
    then an *upper bound* on the true distance (unapplied centers can only lower it), and a
    point's value is made exact on demand (:meth:`refresh`). A greedy step needs the exact value
    of the few points that can still win. When the on-demand work since the last full update
    reaches the cost of applying the unapplied centers to the whole pool, they are applied to
    the whole pool (one blocked matrix product; ski-rental rule: never worse than about twice
    the eager cost, usually far less).
    """

    def __init__(
        self, x: np.ndarray, x_norms: np.ndarray, d: np.ndarray, budget: int, chunk: int
    ) -> None:
        self.x, self.x_norms, self.d = x, x_norms, d
        self.chunk = chunk
        self.centers = np.empty((budget, x.shape[1]), dtype=x.dtype)  # contiguous: fast gemv
        self.center_norms = np.empty(budget, dtype=x_norms.dtype)
        self.t = 0  # centers added so far
        self.flushed = 0  # centers applied to every point
        self.upto = np.zeros(x.shape[0], dtype=np.int64)  # centers applied to each point
        self.work = 0  # point-center distances computed on demand since the last flush
        self.n_flushes = 0

    def exact(self, j: int) -> bool:
        return bool(self.upto[j] >= self.t)

    def _dist_to_centers(self, rows: np.ndarray | slice, first: int) -> np.ndarray:
        """Min distance of each point in ``rows`` to centers ``first .. t-1``."""
        seg = slice(first, self.t)
        sq = self.x[rows] @ self.centers[seg].T
        sq *= -2.0
        sq += self.x_norms[rows][:, None]
        sq += self.center_norms[seg][None, :]
        best: np.ndarray = sq.min(axis=1)
        np.maximum(best, 0.0, out=best)
        np.sqrt(best, out=best)
        return best

    def refresh(self, idx: np.ndarray) -> None:
        """Make ``d[idx]`` exact (all centers applied)."""
        idx = idx[self.upto[idx] < self.t]
        if idx.size == 0:
            return
        first = int(self.upto[idx].min())
        if idx.size == 1:
            j = int(idx[0])
            # einsum, not BLAS: a threaded gemv this small loses more to thread hand-offs
            # (badly so on a busy machine) than it gains
            sq = np.einsum("ij,j->i", self.centers[first : self.t], self.x[j])
            sq *= -2.0
            sq += self.center_norms[first : self.t]
            best = max(float(sq.min()) + float(self.x_norms[j]), 0.0)
            self.d[j] = min(float(self.d[j]), math.sqrt(best))
        else:
            self.d[idx] = np.minimum(self.d[idx], self._dist_to_centers(idx, first))
        self.upto[idx] = self.t
        self.work += idx.size * (self.t - first)
        if self.work >= self.x.shape[0] * (self.t - self.flushed):
            self.flush()

    def flush(self) -> None:
        """Apply every unapplied center to the whole pool (one blocked matrix product)."""
        if self.t > self.flushed:
            n = self.x.shape[0]
            for r0 in range(0, n, self.chunk):
                rows = slice(r0, min(r0 + self.chunk, n))
                # points refreshed on demand get some centers again: harmless for a minimum
                np.minimum(
                    self.d[rows], self._dist_to_centers(rows, self.flushed), out=self.d[rows]
                )
        self.flushed = self.t
        self.upto[:] = self.t
        self.work = 0
        self.n_flushes += 1

    def add(self, k: int, replace: bool = False) -> None:
        """Make pool point ``k`` a center; ``replace`` forgets all previous distances."""
        self.centers[self.t] = self.x[k]
        self.center_norms[self.t] = self.x_norms[k]
        self.t += 1
        if replace:
            # the pool mean stood in as the only center for the first pick: forget it
            self.d[:] = np.inf
            self.flush()
        self.d[k] = -np.inf
        self.upto[k] = self.t


def _exact_argmin(
    obj: np.ndarray, lazy: _LazyMinDist, exact_obj: Callable[[np.ndarray], np.ndarray]
) -> int:
    """``argmin`` of the true objective, given ``obj`` = lower bounds (exact where d is exact).

    Refreshes stale leaders until the smallest bound belongs to a point whose distance is
    exact; its bound is then its true value, and every other point's true value is >= its bound,
    so it is the true minimizer (lowest index on ties, as ``np.argmin``). ``obj`` is updated in
    place.
    """
    n = obj.size
    misses, width = 0, _ESCALATE_WIDTH
    while True:
        k = int(np.argmin(obj))
        if lazy.exact(k):
            return k
        flushes = lazy.n_flushes
        if misses and misses % _ESCALATE_AFTER == 0:
            # many stale leaders (e.g. the neighbors of a recent pick): refresh in bulk
            if width >= n // 4:
                lazy.flush()
            else:
                cand = np.argpartition(obj, width)[:width]
                lazy.refresh(cand)
                obj[cand] = exact_obj(cand)
                width *= 4
        else:
            idx = np.array([k])
            lazy.refresh(idx)
            obj[k] = exact_obj(idx)[0]
        misses += 1
        if lazy.n_flushes != flushes:
            # every distance changed: recompute every bound (now all exact)
            obj[:] = exact_obj(np.arange(n))


def _greedy(
    x: np.ndarray,
    x_norms: np.ndarray,
    d: np.ndarray,
    budget: int,
    virtual_first: bool,
    tracker: _L1Tracker | None,
    coef: float,
    chunk: int,
    final_radius: bool = False,
) -> tuple[np.ndarray, float]:
    """Greedy loop over ``d`` (float64, the initial distances; updated in place).

    Each step picks ``argmin_j obj_j`` with ``obj_j = coef * g_j - d_j`` (``-d_j`` when
    ``tracker`` is None). With lazily updated ``d`` (an upper bound), ``coef * g - d`` is a lower
    bound of the objective; a point whose bound is the smallest and whose distance is exact is
    the true minimizer, lowest index first on ties, exactly as in the eager algorithm. Picked
    points hold ``-inf`` in ``d``, which excludes them from every argmin.

    Returns the picks and, with ``final_radius``, the exact covering radius after the last pick
    (max distance of an unpicked point to labeled + picks; 0 if none is left), else NaN.
    """
    picks = np.empty(budget, dtype=np.int64)
    lazy = _LazyMinDist(x, x_norms, d, budget, chunk)
    obj = np.empty_like(d)
    g = tracker.g if tracker is not None else None  # updated in place by tracker.pick

    def exact_obj(idx: np.ndarray) -> np.ndarray:
        out: np.ndarray = (coef * g[idx] - d[idx]) if g is not None else -d[idx]
        return out

    def plain_obj(idx: np.ndarray) -> np.ndarray:
        out: np.ndarray = -d[idx]
        return out

    for step in range(budget):
        if g is not None:
            np.multiply(g, coef, out=obj)
            obj -= d
        else:
            np.negative(d, out=obj)
        k = _exact_argmin(obj, lazy, exact_obj)
        picks[step] = k
        lazy.add(k, replace=step == 0 and virtual_first)
        if tracker is not None and step + 1 < budget:
            tracker.pick(k)
    radius = float("nan")
    if final_radius:
        radius = 0.0
        if budget < x.shape[0]:
            np.negative(d, out=obj)
            radius = float(d[_exact_argmin(obj, lazy, plain_obj)])
    return picks, radius


@dataclass
class _PoolState:
    """A validated pool: centered features, their norms and the distances to the labeled set
    (independent of λ, so a λ path computes them once)."""

    x: np.ndarray
    x_norms: np.ndarray
    d: np.ndarray
    lab: np.ndarray
    virtual_first: bool
    budget: int
    chunk_size: int
    probs: np.ndarray | None
    omega: np.ndarray | None

    def check_lam(self, lam: Any) -> float:
        val = _check_real(lam, "lam")
        if val < 0:
            raise ValueError(f"lam must be >= 0, got {val}")
        if val > 0 and self.probs is None:
            raise ValueError("probs is required when lam > 0 (the balancing term uses P)")
        if val > 0 and self.omega is None:
            raise ValueError("omega is required when lam > 0 (the balancing term uses Omega)")
        return val

    def greedy(self, lam: float, final_radius: bool = False) -> tuple[np.ndarray, float]:
        tracker, coef = None, 0.0
        if lam > 0:
            assert self.probs is not None and self.omega is not None
            tracker = _L1Tracker(self.probs, self.omega)
            coef = lam / self.probs.shape[1]
        return _greedy(
            self.x,
            self.x_norms,
            self.d.copy(),  # the greedy updates its distances in place
            self.budget,
            self.virtual_first,
            tracker,
            coef,
            self.chunk_size,
            final_radius,
        )


def _pool_state(
    embeddings: Any,
    labeled_embeddings: Any,
    budget: Any,
    probs: Any,
    omega: Any,
    chunk_size: Any,
) -> _PoolState:
    """Validate the inputs and compute the distances of the pool to the labeled set."""
    x_in, lab_in = _check_pool(embeddings, labeled_embeddings)
    n = x_in.shape[0]
    budget = _check_int(budget, "budget", 1, n)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)

    p = om = None
    if probs is not None:
        p = _as_matrix(probs, "probs")
        if p.shape[0] != n or p.shape[1] < 1:
            raise ValueError(f"probs must have shape ({n}, C) like the pool, got {p.shape}")
    if omega is not None:
        om = np.asarray(omega, dtype=np.float64)
        n_classes = p.shape[1] if p is not None else om.size
        if om.shape != (n_classes,):
            raise ValueError(f"omega must have shape ({n_classes},) like probs, got {om.shape}")
        _check_finite(om, "omega")

    dtype = np.dtype(np.float32) if x_in.dtype == np.float32 else np.dtype(np.float64)
    mean = x_in.mean(axis=0, dtype=np.float64)
    x = _centered(x_in, mean, dtype)
    x_norms = _sq_norms(x)
    lab = _centered(lab_in, mean, dtype)
    virtual_first = lab.shape[0] == 0
    if virtual_first:
        # No labeled set: the first pick is the point farthest from the pool mean (x is centered).
        d = np.sqrt(x_norms.astype(np.float64))
    else:
        d = _min_dist(x, x_norms, lab, _sq_norms(lab), chunk_size)
    return _PoolState(x, x_norms, d, lab, virtual_first, budget, chunk_size, p, om)


def kcenter_greedy(
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray | None,
    budget: int,
    *,
    probs: np.ndarray | None = None,
    omega: np.ndarray | None = None,
    lam: float = 0.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> np.ndarray:
    """KCenterGreedy (``lam == 0``) or KCenterGreedy-CB (``lam > 0``) selection.

    At step k = 1..budget pick ``argmin_j [-d_j + (lam / C) * ||Omega - P^T z - p_j||_1]`` over
    the not yet picked pool points, where ``d_j`` is the Euclidean distance from pool point j to
    the nearest labeled or already picked point and ``z`` marks the picks so far. With
    ``lam == 0`` this is exactly farthest-first traversal (Sener & Savarese): ``argmax_j d_j``.
    Ties go to the lowest index.

    Parameters
    ----------
    embeddings : ndarray of shape (N, d)
        Pool features (penultimate layer). float32 input is computed in float32, anything else
        in float64.
    labeled_embeddings : ndarray of shape (L, d) or None
        Labeled-set features. With none (``L == 0`` or ``None``) the pool mean stands in as the
        only center for the first pick, i.e. the first pick is the pool point farthest from the
        pool mean; from the second pick on only real picks count as centers.
    budget : int
        Number of points to select, ``1 <= budget <= N``.
    probs : ndarray of shape (N, C), optional
        Class probabilities ``P`` of the pool; required when ``lam > 0``.
    omega : ndarray of shape (C,), optional
        Target counts ``Omega`` (see ``cbal.strategies.balance.target_counts``); required when
        ``lam > 0``.
    lam : float, default=0.0
        Weight of the balancing term (paper: 5 for CIFAR-10, 50 for CIFAR-100). ``0`` = plain
        KCenterGreedy; ``probs`` and ``omega`` are then validated if given but not used.
    chunk_size : int, default=2048
        Block side for the pool-to-labeled distances (memory ``chunk_size ** 2`` floats).

    Returns
    -------
    indices : ndarray of shape (budget,), dtype int64
        Distinct pool positions in pick order.

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, ``budget`` outside ``[1, N]``, negative or non-finite ``lam``,
        or ``probs`` / ``omega`` missing while ``lam > 0``; the message names the argument.

    Notes
    -----
    Cost: one blocked pass of O(N * L * d) (a matrix product) for the distances to the labeled
    set. Then each step is O(N) plus the distance updates, which are lazy (``_LazyMinDist``):
    a new center's distances are computed only for the points that could still win the next
    step, and for the whole pool only when that on-demand work adds up to a full pass -- never
    more than the eager O(N * d) per step, usually far less; the picks are exactly those of the
    eager algorithm. Distances use ``||a||^2 + ||b||^2 - 2 a.b`` on mean-centered features,
    clipped at 0. The balancing term is kept incrementally (``_L1Tracker``): per step O(N) for
    each class whose residual ``Omega_c - (P^T z)_c`` lies strictly inside the range of
    ``p_jc``, O(N * C) at worst. No N x N or N x L matrix is formed; extra memory is
    O(N * (C + d) + budget * d + chunk_size ** 2).
    """
    lam = _check_real(lam, "lam")  # before the distances: a bad λ fails fast
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    state = _pool_state(embeddings, labeled_embeddings, budget, probs, omega, chunk_size)
    return state.greedy(state.check_lam(lam))[0]


def kcenter_greedy_path(
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray | None,
    budget: int,
    lams: Any,
    *,
    probs: np.ndarray | None = None,
    omega: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[np.ndarray]:
    """:func:`kcenter_greedy` at every λ of ``lams``, in that order.

    The distances of the pool to the labeled set do not depend on λ: they are computed once
    (the O(N · L · d) pass that dominates one run), then the greedy runs per λ. Each entry
    equals ``kcenter_greedy(..., lam=λ)``.
    """
    state = _pool_state(embeddings, labeled_embeddings, budget, probs, omega, chunk_size)
    checked = [state.check_lam(v) for v in np.asarray(lams, dtype=object).reshape(-1)]
    return [state.greedy(v)[0] for v in checked]


# --------------------------------------------------------------------------------------------
# CoreSet (robust k-center MIP)
# --------------------------------------------------------------------------------------------


@dataclass
class CoresetResult:
    """Outcome of :func:`coreset_mip`.

    Attributes
    ----------
    indices : ndarray of shape (budget,), dtype int64
        Selected pool positions.
    radius : float
        Robust covering radius achieved by ``indices`` (with the labeled set as fixed centers)
        over the points the MIP used: the ``(n_outliers + 1)``-th largest distance from a used
        point to its nearest center.
    greedy_radius : float
        The same quantity for the greedy selection over the same points.
    status : str
        ``"optimal"``, ``"time_limit"`` (stopped early, returns a MIP solution better than the
        greedy), ``"incomplete: ..."`` (a solver failure after an improvement was found) or
        ``"greedy_fallback: <reason>"``.
    optimal : bool
        True when the binary search finished with every MIP solved to proven feasibility or
        infeasibility: ``radius`` is then optimal for the points used.
    solve_time : float
        Seconds spent in the MIP search (distance set-up included, greedy excluded).
    fallback : bool
        True when the greedy selection was returned because the MIP gave nothing better.
    greedy_radius_full : float
        Greedy covering radius over the whole pool (max distance of a pool point to its nearest
        labeled or picked point).
    lower_bound : float
        A proven lower bound on the optimal radius over the points used: the classic
        ``greedy_radius / 2`` (0 with outliers), raised by every radius the search proved
        infeasible; equal to ``radius`` when ``optimal``.
    n_points : int
        Pool points in the MIP (the greedy picks plus a seeded random sample).
    n_outliers : int
        Points allowed to stay uncovered, ``floor(outlier_fraction * n_points)``.
    n_solves : int
        MIPs solved.
    subsampled : bool
        True when ``n_points < N``.
    """

    indices: np.ndarray
    radius: float
    greedy_radius: float
    status: str
    optimal: bool
    solve_time: float
    fallback: bool
    greedy_radius_full: float = float("nan")
    lower_bound: float = 0.0
    n_points: int = 0
    n_outliers: int = 0
    n_solves: int = 0
    subsampled: bool = False

    def to_record(self) -> dict[str, Any]:
        """JSON-safe summary (no arrays; NaN/inf become None)."""

        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "method": "coreset_mip",
            "status": self.status,
            "optimal": bool(self.optimal),
            "fallback": bool(self.fallback),
            "radius": num(self.radius),
            "greedy_radius": num(self.greedy_radius),
            "greedy_radius_full": num(self.greedy_radius_full),
            "lower_bound": num(self.lower_bound),
            "solve_time": float(self.solve_time),
            "n_selected": len(self.indices),
            "n_points": int(self.n_points),
            "n_outliers": int(self.n_outliers),
            "n_solves": int(self.n_solves),
            "subsampled": bool(self.subsampled),
        }


def _robust_radius(cover: np.ndarray, n_outliers: int) -> float:
    """(n_outliers + 1)-th largest coverage distance; 0 when every point may be an outlier."""
    if n_outliers >= cover.size:
        return 0.0
    if n_outliers == 0:
        return float(cover.max())
    return float(np.partition(cover, cover.size - 1 - n_outliers)[cover.size - 1 - n_outliers])


def _coverage(dist: np.ndarray, dist_lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Distance of every used point to its nearest labeled point or chosen center."""
    if centers.size == 0:
        return dist_lab.copy()
    cover: np.ndarray = np.minimum(dist_lab, dist[centers].min(axis=0))
    return cover


def _solve_radius(
    dist: np.ndarray,
    dist_lab: np.ndarray,
    budget: int,
    n_outliers: int,
    delta: float,
    time_limit: float,
) -> tuple[str, np.ndarray | None, str]:
    """Is there a set of ``budget`` centers covering all but ``n_outliers`` points within delta?

    Returns ``(outcome, centers, message)`` with outcome ``"feasible"``, ``"infeasible"``,
    ``"time_limit"`` or ``"error"``.

    Set-cover form of Sener & Savarese's MIP: binary ``u_i`` (point i is a new center) and, with
    outliers, binary ``o_j`` (point j left uncovered); ``sum u = budget``; for every point j not
    already within ``delta`` of the labeled set (whose centers are fixed),
    ``sum_{i: d_ij <= delta} u_i + o_j >= 1``; ``sum o <= n_outliers``. It has the same feasible
    center sets as their assignment form (``w_ij``, ``xi_ij``) with far fewer variables.
    """
    m = dist.shape[0]
    rows = np.flatnonzero(dist_lab > delta)
    n_rows = rows.size
    cover = sparse.csr_array(dist[rows] <= delta, dtype=np.float64)
    use_o = n_outliers > 0 and n_rows > 0
    n_var = m + (n_rows if use_o else 0)
    constraints = [
        LinearConstraint(np.concatenate([np.ones(m), np.zeros(n_var - m)])[None, :], budget, budget)
    ]
    if n_rows:
        if use_o:
            ident = np.arange(n_rows)
            eye = sparse.csr_array((np.ones(n_rows), (ident, ident)), shape=(n_rows, n_rows))
            a = sparse.hstack([cover, eye], format="csr")
        else:
            a = cover
        constraints.append(LinearConstraint(a, 1.0, np.inf))
        if use_o:
            row = np.concatenate([np.zeros(m), np.ones(n_rows)])[None, :]
            constraints.append(LinearConstraint(row, 0.0, n_outliers))
    try:
        res = milp(
            np.zeros(n_var),  # pure feasibility: HiGHS stops at the first integer solution
            integrality=np.ones(n_var),
            bounds=Bounds(0.0, 1.0),
            constraints=constraints,
            options={"time_limit": max(time_limit, 1e-3), "presolve": True, "disp": False},
        )
    except Exception as exc:  # any solver failure must end in the fallback, never propagate
        return "error", None, f"{type(exc).__name__}: {exc}"
    x = getattr(res, "x", None)
    status = getattr(res, "status", 4)
    message = str(getattr(res, "message", ""))
    if x is not None and status in (0, 1):
        # round: the `budget` largest u (integrality tolerance cannot change the count)
        centers = np.sort(np.argsort(-np.asarray(x)[:m], kind="stable")[:budget])
        return "feasible", centers, message
    if status == 2:
        return "infeasible", None, message
    if status == 1:
        return "time_limit", None, message
    return "error", None, f"HiGHS status {status}: {message}"


def coreset_mip(
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray | None,
    budget: int,
    *,
    time_limit: float = 60.0,
    outlier_fraction: float = 0.0,
    max_points: int = DEFAULT_MAX_POINTS,
    rng: np.random.Generator | int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> CoresetResult:
    """CoreSet selection: Sener & Savarese's robust k-center MIP, solved with HiGHS.

    1. Run :func:`kcenter_greedy` (``lam = 0``).
    2. Choose the MIP's points (:func:`_mip_points`): the whole pool up to ``max_points``, else
       the greedy picks plus a random sample of the others.
    3. Bound the optimal radius from below (:func:`_lower_bound`: the classic
       ``delta_greedy / 2``, proven on exact distances; 0 with outliers), then bisect on the
       candidate radii up to the greedy's (:func:`_bisect_radius`), each probe a feasibility
       MIP (:func:`_solve_radius`) with the remaining share of ``time_limit``.
    4. Return the best selection found; if none beats the greedy because a solve timed out or
       failed, return the greedy selection with ``fallback=True`` and a warning.

    Parameters
    ----------
    embeddings : ndarray of shape (N, d)
        Pool features.
    labeled_embeddings : ndarray of shape (L, d) or None
        Labeled-set features: fixed centers. They enter the MIP only through each used point's
        exact distance to its nearest labeled point, so they need no pairwise matrix.
    budget : int
        Number of points to select, ``1 <= budget <= N``.
    time_limit : float, default=60.0
        Seconds for the whole MIP search (all solves together); > 0.
    outlier_fraction : float, default=0.0
        Fraction of the used points that may stay uncovered (Sener & Savarese's Xi), in
        ``[0, 1)``. 0 gives plain k-center.
    max_points : int, default=2000
        Cap on the pool points in the MIP (the pairwise matrix has ``max_points ** 2`` entries).
        Must exceed ``budget`` when ``N > max_points``; otherwise the greedy is returned with a
        warning.
    rng : numpy Generator, int or None, default=None
        Source of the subsample; ``None`` means seed 0, so the result is deterministic.
    chunk_size : int, default=2048
        Block side for distances to the labeled set.

    Returns
    -------
    CoresetResult

    Notes
    -----
    What the subsample approximates: when ``N > max_points`` the MIP is solved exactly (up to
    the time limit) for the *restricted* problem -- candidate centers and points to cover are
    the used points only; the labeled set is exact. Its optimum is the optimal robust k-center of
    the used points, not of the whole pool, so ``radius`` and ``optimal`` refer to the used
    points; ``greedy_radius_full`` gives the greedy's radius over the whole pool for contrast.
    With ``N <= max_points`` nothing is approximated.
    """
    time_limit, outlier_fraction, max_points, gen = _mip_args(
        time_limit, outlier_fraction, max_points, rng
    )
    state = _pool_state(embeddings, labeled_embeddings, budget, None, None, chunk_size)
    picks, greedy_full = state.greedy(0.0, final_radius=True)
    n = state.x.shape[0]
    budget = len(picks)
    if n > max_points and budget >= max_points:
        return _fallback(
            picks,
            f"budget {budget} needs more than max_points={max_points} points in the MIP "
            f"(pool of {n}); raise max_points or use the greedy",
            greedy_full,
            greedy_radius_full=greedy_full,
            solve_time=0.0,
        )
    t0 = time.perf_counter()
    used = _mip_points(n, picks, max_points, gen)
    mip = _MipPoints.build(state.x, state.lab, used, picks, outlier_fraction, chunk_size)
    lower = _lower_bound(mip)
    search = _bisect_radius(mip, lower, budget, time_limit)
    common: dict[str, Any] = {
        "greedy_radius_full": greedy_full,
        "n_points": int(used.size),
        "n_outliers": mip.n_outliers,
        "subsampled": bool(used.size < n),
        # every candidate below the search's low end was proven infeasible
        "lower_bound": max(lower, search.lower),
        "n_solves": search.n_solves,
        "solve_time": time.perf_counter() - t0,
    }
    if search.best_radius >= mip.greedy_radius and not search.proven:
        return _fallback(
            picks,
            f"{search.stop_reason} after {search.n_solves} MIP solve(s) without beating the "
            f"greedy radius {mip.greedy_radius:.6g}",
            mip.greedy_radius,
            **common,
        )
    indices = picks if search.best_pos is mip.pos else used[search.best_pos].astype(np.int64)
    if search.proven:
        status = "optimal"
    else:
        why = search.stop_reason
        status = "time_limit" if why.startswith("time") else f"incomplete: {why}"
        warnings.warn(
            f"coreset_mip: {why}; returning the best MIP solution found "
            f"(radius {search.best_radius:.6g} vs greedy {mip.greedy_radius:.6g}), "
            "not proven optimal",
            RuntimeWarning,
            stacklevel=2,
        )
    return CoresetResult(
        indices=indices,
        radius=search.best_radius,
        greedy_radius=mip.greedy_radius,
        status=status,
        optimal=search.proven,
        fallback=False,
        **common,
    )


def _mip_args(
    time_limit: float, outlier_fraction: float, max_points: int, rng: Any
) -> tuple[float, float, int, np.random.Generator]:
    """coreset_mip's options, checked; ``rng`` as a Generator (None: seed 0)."""
    time_limit = _check_real(time_limit, "time_limit")
    if time_limit <= 0:
        raise ValueError(f"time_limit must be > 0, got {time_limit}")
    outlier_fraction = _check_real(outlier_fraction, "outlier_fraction")
    if not 0.0 <= outlier_fraction < 1.0:
        raise ValueError(f"outlier_fraction must be in [0, 1), got {outlier_fraction}")
    max_points = _check_int(max_points, "max_points", 2)
    if rng is None or isinstance(rng, numbers.Integral):
        gen = np.random.default_rng(0 if rng is None else int(rng))
    elif isinstance(rng, np.random.Generator):
        gen = rng
    else:
        raise ValueError(f"rng must be a numpy Generator, an int or None, got {rng!r}")
    return time_limit, outlier_fraction, max_points, gen


def _fallback(picks: np.ndarray, reason: str, radius: float, **extra: Any) -> CoresetResult:
    """The greedy selection, with a warning saying why the MIP could not improve on it."""
    status = f"greedy_fallback: {reason}"
    warnings.warn(
        f"coreset_mip: {status}; returning the greedy selection", RuntimeWarning, stacklevel=3
    )
    return CoresetResult(
        indices=picks,
        radius=radius,
        greedy_radius=radius,
        status=status,
        optimal=False,
        fallback=True,
        **extra,
    )


def _mip_points(n: int, picks: np.ndarray, max_points: int, gen: np.random.Generator) -> np.ndarray:
    """The pool points of the MIP: all of them up to ``max_points``, else the greedy picks plus
    a random sample of the others (``max_points`` in all)."""
    if n <= max_points:
        return np.arange(n)
    unpicked = np.ones(n, dtype=bool)
    unpicked[picks] = False
    others = np.flatnonzero(unpicked)
    extra = gen.choice(others, size=max_points - len(picks), replace=False)
    return np.sort(np.concatenate([picks, extra]))


@dataclass(frozen=True)
class _MipPoints:
    """The MIP's points in float64 (exact-enough distances for proving bounds): pairwise and
    labeled-set distances, and the greedy's picks and robust radius among them."""

    dist: np.ndarray  # (m, m)
    dist_lab: np.ndarray  # (m,) to the nearest labeled point
    pos: np.ndarray  # positions of the greedy picks among the used points
    greedy_cover: np.ndarray  # (m,) coverage distance under the greedy's centers
    greedy_radius: float
    n_outliers: int

    @classmethod
    def build(
        cls,
        x: np.ndarray,
        lab: np.ndarray,
        used: np.ndarray,
        picks: np.ndarray,
        outlier_fraction: float,
        chunk_size: int,
    ) -> _MipPoints:
        n_outliers = math.floor(outlier_fraction * used.size)
        xs = x[used].astype(np.float64)
        dist = cdist(xs, xs)
        lab64 = lab.astype(np.float64)
        dist_lab = _min_dist(xs, _sq_norms(xs), lab64, _sq_norms(lab64), chunk_size)
        pos = np.searchsorted(used, picks)
        cover = _coverage(dist, dist_lab, pos)
        radius = _robust_radius(cover, n_outliers)
        return cls(dist, dist_lab, pos, cover, radius, n_outliers)


def _lower_bound(mip: _MipPoints) -> float:
    """A proven lower bound on the optimal radius: 0 with outliers.

    The greedy picks and the farthest used point are b + 1 points, each farther than s from
    the labeled set and from one another. A radius r < s/2 would need b + 1 distinct new
    centers (one center within r of two of them puts them within 2r < s), so the optimum is
    >= s/2 -- proven on these exact distances, whatever rounding the greedy saw."""
    if mip.n_outliers or mip.greedy_radius <= 0:
        return 0.0
    far = int(np.argmax(mip.greedy_cover))
    q = np.append(mip.pos, far)
    sub = mip.dist[np.ix_(q, q)]
    np.fill_diagonal(sub, np.inf)
    return 0.5 * float(min(sub.min(), mip.dist_lab[q].min()))


@dataclass(frozen=True)
class _Search:
    best_pos: np.ndarray
    best_radius: float
    lower: float  # the smallest candidate not proven infeasible (0 when none)
    n_solves: int
    proven: bool
    stop_reason: str


def _bisect_radius(mip: _MipPoints, lower: float, budget: int, time_limit: float) -> _Search:
    """Binary search for the smallest feasible radius among the candidate radii (distinct
    distances between ``lower`` and the greedy's radius), one MIP per probe, all of them
    within ``time_limit`` seconds of solving."""
    dist, dist_lab, greedy_radius = mip.dist, mip.dist_lab, mip.greedy_radius
    values = np.concatenate([dist.ravel(), dist_lab[np.isfinite(dist_lab)], [greedy_radius]])
    cands = np.unique(values[(values >= lower) & (values <= greedy_radius)])
    best_pos, best_radius = mip.pos, greedy_radius
    lo_i, hi_i = 0, int(np.searchsorted(cands, greedy_radius))
    n_solves, proven, stop_reason, solve_time = 0, True, "", 0.0
    while lo_i < hi_i:
        remaining = time_limit - solve_time
        if remaining <= 1e-3:
            proven, stop_reason = False, f"time limit of {time_limit:g} s reached"
            break
        mid = (lo_i + hi_i) // 2
        delta = float(cands[mid])
        t_solve = time.perf_counter()
        outcome, centers, message = _solve_radius(
            dist, dist_lab, budget, mip.n_outliers, delta, remaining
        )
        solve_time += time.perf_counter() - t_solve
        n_solves += 1
        if outcome == "feasible" and centers is not None:
            radius = _robust_radius(_coverage(dist, dist_lab, centers), mip.n_outliers)
            if radius <= delta * (1 + 1e-12):
                if radius < best_radius:
                    best_pos, best_radius = centers, radius
                hi_i = min(mid, int(np.searchsorted(cands, best_radius)))
                continue
            outcome, message = "error", f"rounded MIP solution has radius {radius} > {delta}"
        if outcome == "infeasible":
            lo_i = mid + 1
            continue
        proven = False
        stop_reason = (
            f"time limit of {time_limit:g} s reached"
            if outcome == "time_limit"
            else f"solver failure ({message})"
        )
        break
    # the optimum is one of the candidates and lo_i only moves on proofs of infeasibility
    low = float(cands[lo_i]) if cands.size and lo_i < cands.size else 0.0
    return _Search(best_pos, best_radius, low, n_solves, proven, stop_reason)
