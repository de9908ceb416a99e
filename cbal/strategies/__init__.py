"""The strategy registry: name → :class:`Strategy`, each a pure function of arrays.

A strategy is ``select(ctx, budget) -> Selection``; ``ctx`` carries the pool's probabilities,
MC-dropout probabilities, embeddings and the labeled class counts, so selection is testable
without a network and re-runnable on saved arrays (the λ explorer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbal.strategies import balance, kcenter, paper, scores, summary


@dataclass
class SelectionContext:
    """Everything a strategy may look at for one acquisition step (pool of N, C classes)."""

    probs: np.ndarray  # (N, C) softmax, eval mode, clean images
    labeled_counts: np.ndarray  # (C,) true class counts of the labeled set
    mc_probs: np.ndarray | None = None  # (T, N, C) MC-dropout softmax
    embeddings: np.ndarray | None = None  # (N, d) penultimate features of the pool
    labeled_embeddings: np.ndarray | None = None  # (L, d) features of the labeled set
    lam: float = 0.0
    solver: str = "lp-round"
    time_limit: float = 60.0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    compat: str = "clean"  # "paper": the released code's quirks (cbal.strategies.paper)
    # Ω of this step, computed on first use and then carried (the loop, the strategy and the
    # saved arrays all read this one value)
    _omega: tuple[int, np.ndarray] | None = field(default=None, init=False, repr=False)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])

    def require(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this strategy needs ctx.{name}, which was not computed")
        return np.asarray(value)

    def omega(self, budget: int) -> np.ndarray:
        """Ω for this step: exact threshold, or the released code's truncated one."""
        if self._omega is None or self._omega[0] != budget:
            if self.compat == "paper":
                value = paper.truncated_target_counts(self.labeled_counts, budget)
            else:
                value = balance.target_counts(self.labeled_counts, budget)
            self._omega = (budget, value)
        return self._omega[1]


@dataclass
class Selection:
    """A strategy's answer: pool positions, the scores it ranked by, and diagnostics."""

    indices: np.ndarray  # (budget,) distinct positions into the pool
    scores: np.ndarray | None = None  # (N,) informativeness u, when the strategy has one
    probs: np.ndarray | None = None  # (N, C) the P of the balancing term, when used
    omega: np.ndarray | None = None  # (C,) target counts, when used
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    name: str
    label: str
    select: Callable[[SelectionContext, int], Selection]
    description: str
    reference: str
    needs_mc: bool = False
    needs_embeddings: bool = False
    uses_lam: bool = False
    # the paper's λ: its CIFAR-10 value up to 10 classes, else its CIFAR-100 value
    lam_small: float = 0.0
    lam_large: float = 0.0
    baseline: str | None = None

    def default_lam(self, num_classes: int) -> float:
        return self.lam_small if num_classes <= 10 else self.lam_large


def _random(ctx: SelectionContext, budget: int) -> Selection:
    n = ctx.probs.shape[0]
    return Selection(indices=ctx.rng.choice(n, size=budget, replace=False).astype(np.int64))


def _top(score_fn: Callable[[SelectionContext], np.ndarray]) -> Callable[..., Selection]:
    def select(ctx: SelectionContext, budget: int) -> Selection:
        u = score_fn(ctx)
        return Selection(indices=scores.top_k(u, budget), scores=u)

    return select


def _entropy_u(ctx: SelectionContext) -> np.ndarray:
    return scores.entropy(ctx.probs)


def _bald_u(ctx: SelectionContext) -> np.ndarray:
    return scores.bald(ctx.require("mc_probs"))


def _balanced(
    score_fn: Callable[[SelectionContext], np.ndarray],
    probs_fn: Callable[[SelectionContext], np.ndarray],
) -> Callable[..., Selection]:
    """Entropy-CB / BALD-CB: the paper's Eq. 3 with u from ``score_fn`` and P from ``probs_fn``."""

    def select(ctx: SelectionContext, budget: int) -> Selection:
        u = score_fn(ctx)
        p = probs_fn(ctx)
        omega = ctx.omega(budget)
        result = balance.solve_balanced(
            u, p, omega, budget, ctx.lam, method=ctx.solver, time_limit=ctx.time_limit
        )
        return Selection(
            indices=result.indices,
            scores=u,
            probs=p,
            omega=omega,
            diagnostics=_balance_diagnostics(p, result.indices, omega, result.to_record()),
        )

    return select


def _balance_diagnostics(
    probs: np.ndarray, indices: np.ndarray, omega: np.ndarray, extra: dict[str, Any]
) -> dict[str, Any]:
    expected, gap = summary.predicted_balance(probs, indices, omega)
    return {
        **extra,
        "omega": [float(v) for v in omega],
        "expected_counts": [float(v) for v in expected],
        "balance_l1": gap,
    }


def _mc_mean(ctx: SelectionContext) -> np.ndarray:
    # averaged in the MC probabilities' own dtype (float32 from the network), so the P saved
    # for the λ explorer is exactly the P that was used
    mc = ctx.require("mc_probs")
    mean: np.ndarray = mc.mean(axis=0, dtype=mc.dtype)
    return mean


def kcenter_features(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """(pool, labeled) features as KCenterGreedy(-CB) uses them: rounded for compat=paper."""
    emb, lab = ctx.require("embeddings"), ctx.require("labeled_embeddings")
    if ctx.compat == "paper":
        return paper.round_embeddings(emb), paper.round_embeddings(lab)
    return emb, lab


def _kcenter(ctx: SelectionContext, budget: int) -> Selection:
    emb, lab = kcenter_features(ctx)
    if ctx.lam == 0:
        return Selection(indices=kcenter.kcenter_greedy(emb, lab, budget))
    omega = ctx.omega(budget)
    picks = kcenter.kcenter_greedy(emb, lab, budget, probs=ctx.probs, omega=omega, lam=ctx.lam)
    return Selection(
        indices=picks,
        probs=ctx.probs,
        omega=omega,
        diagnostics=_balance_diagnostics(ctx.probs, picks, omega, {"status": "greedy"}),
    )


def _coreset(ctx: SelectionContext, budget: int) -> Selection:
    result = kcenter.coreset_mip(
        ctx.require("embeddings"),
        ctx.require("labeled_embeddings"),
        budget,
        time_limit=ctx.time_limit,
        rng=ctx.rng,
    )
    return Selection(indices=result.indices, diagnostics=result.to_record())


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (largest-remainder rounding)."""
    w = np.asarray(weights, dtype=np.float64)
    share = w / w.sum() * total if w.sum() > 0 else np.full(len(w), total / len(w))
    quotas = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - quotas), kind="stable")
    quotas[order[: total - int(quotas.sum())]] += 1
    return quotas


def _entropy_pl(ctx: SelectionContext, budget: int) -> Selection:
    """Entropy L1 Pseudo Label: per-class quotas from Ω over argmax pseudo labels, then fill-up
    (compat=paper: the released code's truncated quotas, random drop and random fill)."""
    u = scores.entropy(ctx.probs)
    omega = ctx.omega(budget)
    pseudo = ctx.probs.argmax(axis=1)
    if ctx.compat == "paper":
        quotas = omega.astype(np.int64)
        picks, dropped, shortfall = paper.entropy_pl_picks(u, pseudo, quotas, budget, ctx.rng)
    else:
        quotas = largest_remainder(omega, budget)
        picks, shortfall = _quota_picks(u, pseudo, quotas, budget)
        dropped = 0
    return Selection(
        indices=picks.astype(np.int64),
        scores=u,
        omega=omega,
        diagnostics={
            "quotas": quotas.tolist(),
            "omega": [float(v) for v in omega],
            "filled": int(shortfall),
            "dropped": int(dropped),
        },
    )


def _quota_picks(
    u: np.ndarray, pseudo: np.ndarray, quotas: np.ndarray, budget: int
) -> tuple[np.ndarray, int]:
    """The ``quotas[c]`` highest-entropy members of each pseudo class, then the highest-entropy
    rest up to ``budget`` (largest-remainder quotas sum to ``budget``); and how many filled."""
    order = scores.top_k(u, len(u))  # all pool positions, most informative first
    rank_in_class = np.empty(len(u), dtype=np.int64)
    for c in range(len(quotas)):
        members = order[pseudo[order] == c]
        rank_in_class[members] = np.arange(len(members))
    chosen = rank_in_class < quotas[pseudo]
    picks = order[chosen[order]]
    shortfall = budget - len(picks)
    return np.concatenate([picks, order[~chosen[order]][:shortfall]]), shortfall


_PAPER = "Bengar et al., WACV 2022"
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("random", "Random", _random, "uniform sample of the pool", "baseline"),
        Strategy(
            "entropy",
            "Entropy",
            _top(_entropy_u),
            "top-b predictive entropy",
            "Shannon entropy sampling",
        ),
        Strategy(
            "entropy-cb",
            "Entropy-CB",
            _balanced(_entropy_u, lambda ctx: ctx.probs),
            "entropy minus λ·‖Ω − Pᵀz‖₁, LP relaxation solved exactly",
            _PAPER,
            uses_lam=True,
            lam_small=0.6,
            lam_large=2.0,
            baseline="entropy",
        ),
        Strategy(
            "bald",
            "BALD",
            _top(_bald_u),
            "top-b mutual information over MC-dropout passes",
            "Gal et al., ICML 2017",
            needs_mc=True,
        ),
        Strategy(
            "bald-cb",
            "BALD-CB",
            _balanced(_bald_u, _mc_mean),
            "BALD scores in the Entropy-CB problem, P = mean MC softmax",
            _PAPER,
            needs_mc=True,
            uses_lam=True,
            lam_small=0.6,
            lam_large=2.0,
            baseline="bald",
        ),
        Strategy(
            "kcenter",
            "KCenterGreedy",
            _kcenter,
            "greedy k-center on penultimate features",
            "Sener & Savarese, ICLR 2018",
            needs_embeddings=True,
        ),
        Strategy(
            "kcenter-cb",
            "KCenterGreedy-CB",
            _kcenter,
            "greedy k-center with the (λ/C)·‖Ω − Pᵀz‖₁ balancing term",
            _PAPER,
            needs_embeddings=True,
            uses_lam=True,
            lam_small=5.0,
            lam_large=50.0,
            baseline="kcenter",
        ),
        Strategy(
            "coreset",
            "CoreSet",
            _coreset,
            "robust k-center MIP (HiGHS, time-limited), started from the greedy",
            "Sener & Savarese, ICLR 2018",
            needs_embeddings=True,
        ),
        Strategy(
            "entropy-pl",
            "Entropy L1 Pseudo Label",
            _entropy_pl,
            "per-class quotas from Ω over pseudo labels, highest entropy within each",
            _PAPER,
        ),
    ]
}


def get(name: str) -> Strategy:
    """The registered strategy ``name``; ValueError listing the names otherwise."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy={name!r} is unknown: expected one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
