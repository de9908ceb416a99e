"""The 2-D playground: the active-learning loop small enough to step through by hand.

A long-tailed pool of points in the plane (one Gaussian blob per class, centres on a circle,
class sizes from :func:`cbal.data.imbalanced_counts`), a small balanced initial labeled set, a
multinomial logistic regression trained on the labeled points, and the registry's own
strategies (``STRATEGIES[name].select``) picking the next batch: the pool's class probabilities
are P, their entropies u, the 2-D coordinates are the embeddings of KCenterGreedy(-CB).

Pure numpy + scikit-learn: no torch, no plotting, no UI. Everything is seeded, and a whole step
(select, reveal, retrain) takes milliseconds: the CB strategies solve with :data:`SOLVER`, the
exact LP rounded, since a run's default, ``binary``, can search for seconds at a large λ where
it cannot prove its optimum (measured here: up to 4 s per step at λ = 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from cbal.data import imbalanced_counts
from cbal.strategies import STRATEGIES, SelectionContext, balance
from cbal.strategies.summary import selection_summary

__all__ = [
    "STRATEGY_NAMES",
    "Batch",
    "L1Worked",
    "Playground",
    "Pool2D",
    "Setup",
    "l1_worked",
    "make_pool",
]

#: The registry's strategies that run on the playground (BALD needs MC dropout, which a logistic
#: regression has not; the CoreSet MIP is not instant).
STRATEGY_NAMES = ("random", "entropy", "entropy-cb", "entropy-pl", "kcenter", "kcenter-cb")
# Distance between the centres of neighbouring classes, in blob standard deviations.
_NEIGHBOUR_GAP = 3.0
_TEST_PER_CLASS = 100


#: The CB solver of the playground's strategies (see the module docstring).
SOLVER = "lp-round"


@dataclass(frozen=True)
class Setup:
    """The pool's knobs. The pool has ``imbalanced_counts(n_max, num_classes, IF, profile)``
    points per class; the initial labeled set ``initial_per_class`` more per class."""

    num_classes: int = 4
    imbalance_factor: float = 0.1
    profile: str = "step"
    n_max: int = 150
    initial_per_class: int = 5
    seed: int = 0


@dataclass(frozen=True, eq=False)
class Pool2D:
    """The points: the unlabeled pool, the balanced initial labeled set and a balanced test set."""

    setup: Setup
    x: np.ndarray  # (N, 2) pool coordinates
    y: np.ndarray  # (N,) true classes, hidden until a strategy picks the point
    x_init: np.ndarray  # (C · initial_per_class, 2)
    y_init: np.ndarray
    x_test: np.ndarray  # (C · 100, 2), for the accuracy
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return self.setup.num_classes


def _blobs(
    rng: np.random.Generator, centers: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(len(counts)), counts)
    return centers[y] + rng.standard_normal((len(y), 2)), y


def make_pool(setup: Setup) -> Pool2D:
    """The points of ``setup``; the same seed gives the same points."""
    c = setup.num_classes
    if isinstance(c, bool) or not isinstance(c, int) or c < 2:
        raise ValueError(f"num_classes={c!r} must be an integer ≥ 2")
    if isinstance(setup.initial_per_class, bool) or setup.initial_per_class < 1:
        raise ValueError(f"initial_per_class={setup.initial_per_class!r} must be ≥ 1")
    counts = imbalanced_counts(setup.n_max, c, setup.imbalance_factor, setup.profile)
    # unit-variance blobs whose neighbouring centres lie _NEIGHBOUR_GAP apart: their tails overlap
    angles = 2 * np.pi * np.arange(c) / c + np.pi / 2
    radius = _NEIGHBOUR_GAP / (2 * math.sin(math.pi / c))
    centers = radius * np.column_stack([np.cos(angles), np.sin(angles)])
    rng = np.random.default_rng(setup.seed)
    x, y = _blobs(rng, centers, counts)
    x_init, y_init = _blobs(rng, centers, np.full(c, setup.initial_per_class))
    x_test, y_test = _blobs(rng, centers, np.full(c, _TEST_PER_CLASS))
    return Pool2D(setup, x, y, x_init, y_init, x_test, y_test)


@dataclass(frozen=True, eq=False)
class Batch:
    """What a strategy picks next, and the classes the annotator will reveal."""

    strategy: str
    lam: float | None  # None for strategies without λ
    indices: np.ndarray  # (b,) pool positions, in the strategy's order
    counts: np.ndarray  # (C,) true class histogram of the batch
    l1: float  # L1 score of ``counts``
    omega: np.ndarray  # (C,) Ω: what each class needs for a balanced labeled set after the batch
    labeled_counts: np.ndarray  # (C,) the labeled set before the batch
    labeled_l1: float  # L1 score of the labeled set once the batch is labeled


class Playground:
    """One active-learning loop on ``pool``: labeled set, cycle, model; step it by hand."""

    def __init__(self, pool: Pool2D):
        self.pool = pool
        self.reset()

    def reset(self) -> None:
        """Back to the initial labeled set (cycle 0)."""
        self.revealed = np.empty(0, dtype=np.int64)  # pool positions labeled so far, in order
        self.cycle = 0
        self._fit()

    # -- the state ---------------------------------------------------------------------------

    @property
    def labeled_counts(self) -> np.ndarray:
        """Class counts of the labeled set: the initial set plus what was revealed."""
        return balance.class_counts(self.labeled_points()[1], self.pool.num_classes)

    @property
    def unlabeled(self) -> np.ndarray:
        """Pool positions not labeled yet."""
        mask = np.ones(len(self.pool.y), dtype=bool)
        mask[self.revealed] = False
        return np.flatnonzero(mask)

    def labeled_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The labeled set: coordinates (L, 2) and classes (L,), the initial set first."""
        x = np.concatenate([self.pool.x_init, self.pool.x[self.revealed]])
        return x, np.concatenate([self.pool.y_init, self.pool.y[self.revealed]])

    def unlabeled_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The unlabeled pool: coordinates and true (hidden) classes."""
        ids = self.unlabeled
        return self.pool.x[ids], self.pool.y[ids]

    def _fit(self) -> None:
        x, y = self.labeled_points()
        self.model = LogisticRegression(max_iter=1000).fit(x, y)  # multinomial for C > 2

    def accuracy(self) -> float:
        """Accuracy of the current model on a balanced test set (100 points per class)."""
        return float(self.model.score(self.pool.x_test, self.pool.y_test))

    def decision_grid(self, resolution: int = 70) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The predicted class on a ``resolution`` × ``resolution`` grid over the points:
        (xs, ys, classes) with ``classes[i, j]`` the prediction at (xs[j], ys[i])."""
        pts = np.concatenate([self.pool.x, self.pool.x_init])
        lo, hi = pts.min(axis=0) - 0.5, pts.max(axis=0) + 0.5
        xs, ys = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
        gx, gy = np.meshgrid(xs, ys)
        pred = self.model.predict(np.column_stack([gx.ravel(), gy.ravel()]))
        return xs, ys, np.asarray(pred).reshape(gx.shape)

    # -- one step ----------------------------------------------------------------------------

    def propose(self, strategy: str, budget: int, lam: float | None = None) -> Batch:
        """The batch ``strategy`` would pick now, by the registry's own ``select``.

        ``lam`` (strategies with λ only) defaults to the paper's λ for this class count.
        """
        if strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"strategy={strategy!r} does not run on the playground: "
                f"expected one of {', '.join(STRATEGY_NAMES)}"
            )
        spec = STRATEGIES[strategy]
        c = self.pool.num_classes
        lam_v = (spec.default_lam(c) if lam is None else float(lam)) if spec.uses_lam else None
        pool_ids = self.unlabeled
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"budget={budget!r} must be a positive integer")
        if budget > len(pool_ids):
            raise ValueError(
                f"budget={budget} is more than the {len(pool_ids)} unlabeled points left: "
                "reset, or lower the budget"
            )
        x_lab, _ = self.labeled_points()
        counts = self.labeled_counts
        ctx = SelectionContext(
            probs=np.asarray(self.model.predict_proba(self.pool.x[pool_ids])),
            labeled_counts=counts,
            embeddings=self.pool.x[pool_ids],
            labeled_embeddings=x_lab,
            lam=lam_v if lam_v is not None else 0.0,
            rng=np.random.default_rng([self.pool.setup.seed, self.cycle]),
            solver=SOLVER,
        )
        sel = spec.select(ctx, budget)
        omega = ctx.omega(budget)
        summary = selection_summary(sel.indices, ctx.probs, omega, self.pool.y[pool_ids], counts)
        return Batch(
            strategy=strategy,
            lam=lam_v,
            indices=pool_ids[sel.indices],
            counts=summary.batch_counts,
            l1=summary.batch_l1,
            omega=omega,
            labeled_counts=counts,
            labeled_l1=summary.labeled_l1,
        )

    def next_cycle(self, strategy: str, budget: int, lam: float | None = None) -> Batch:
        """Label the batch ``strategy`` picks (its true classes are revealed), then retrain."""
        batch = self.propose(strategy, budget, lam)
        self.revealed = np.concatenate([self.revealed, batch.indices])
        self.cycle += 1
        self._fit()
        return batch


@dataclass(frozen=True)
class L1Worked:
    """The L1 score of a histogram with the numbers of its formula, for the explainer."""

    counts: tuple[float, ...]  # h
    total: float  # n = Σ h
    mean: float  # n / C
    deviations: tuple[float, ...]  # |h_c − n/C|
    spread: float  # Σ_c |h_c − n/C|
    scale: float  # C / (2 n (C − 1))
    score: float  # balance.l1_score(h) = spread · scale


def l1_worked(counts: np.ndarray | list[float]) -> L1Worked:
    """Break :func:`cbal.strategies.balance.l1_score` of ``counts`` into its formula's terms."""
    score = balance.l1_score(counts)  # validates: 1-D, finite, non-negative
    h = np.asarray(counts, dtype=np.float64)
    n, c = float(h.sum()), h.size
    if n == 0 or c < 2:
        raise ValueError("give at least two classes and at least one item")
    return L1Worked(
        counts=tuple(h.tolist()),
        total=n,
        mean=n / c,
        deviations=tuple(np.abs(h - n / c).tolist()),
        spread=float(np.abs(h - n / c).sum()),
        scale=c / (2 * n * (c - 1)),
        score=score,
    )
