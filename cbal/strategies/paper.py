"""The released code's selection quirks, for ``compat="paper"`` (pure numpy, arrays in and out).

Each function reproduces one rule of the paper's released implementation so that its effect can
be measured against cbal's ``clean`` choice; the README's "Known deviations" lists them.
"""

from __future__ import annotations

import numpy as np

from cbal.strategies.scores import top_k


def truncated_target_counts(labeled_counts: np.ndarray, budget: int) -> np.ndarray:
    """Ω with the per-class threshold truncated to an integer: ``max(0, ⌊(|L| + b)/C⌋ − n_c)``.

    The clean Ω uses the exact threshold ``(|L| + b)/C``; with it Σ Ω = b whenever no class is
    above the threshold, with the truncated one Σ Ω can fall short of b by up to C − 1.
    """
    n = np.asarray(labeled_counts, dtype=np.int64)
    threshold = (int(n.sum()) + int(budget)) // n.size
    return np.maximum(0, threshold - n).astype(np.float64)


def round_embeddings(x: np.ndarray) -> np.ndarray:
    """KCenterGreedy's features rounded to 2 decimals in their own dtype, as the original does."""
    return np.around(np.asarray(x), decimals=2)


def entropy_pl_picks(
    u: np.ndarray, pseudo: np.ndarray, quotas: np.ndarray, budget: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """Entropy L1 Pseudo Label with the original quota and fill rules.

    Class c takes its ``quotas[c]`` highest-entropy members by pseudo label (all of them when it
    has fewer). Too many picks: the surplus is dropped at random among the picks of the classes
    that had enough members. Too few: the shortfall is filled at random from the rest of the
    pool (not by entropy). Returns (picks, dropped, filled).
    """
    order = top_k(u, len(u))  # most informative first
    picks: list[np.ndarray] = []
    full: list[np.ndarray] = []  # picks of classes that had at least their quota
    for c in np.flatnonzero(quotas > 0):
        members = order[pseudo[order] == c]
        take = members[: int(quotas[c])]
        picks.append(take)
        if len(members) >= quotas[c]:
            full.append(take)
    chosen = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    dropped = max(0, len(chosen) - budget)
    if dropped:
        pool = np.concatenate(full) if full else chosen
        pool = pool if len(pool) >= dropped else chosen  # (the original would fail here)
        chosen = np.setdiff1d(chosen, rng.permutation(pool)[:dropped], assume_unique=True)
    filled = budget - len(chosen)
    if filled > 0:
        rest = np.setdiff1d(np.arange(len(u)), chosen, assume_unique=True)
        chosen = np.concatenate([chosen, rng.choice(rest, size=filled, replace=False)])
    return chosen.astype(np.int64), dropped, filled
