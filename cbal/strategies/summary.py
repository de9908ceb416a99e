"""What one selection did, in numbers: the one place they are computed.

The loop records these numbers for every cycle, the λ explorer for every re-selection and the
playground for every batch, so all three show the same figures for the same picks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbal.strategies.balance import class_counts, l1_score


@dataclass(frozen=True, eq=False)
class SelectionSummary:
    """The numbers of one batch ``z`` picked from a pool of N with C classes."""

    expected_counts: np.ndarray  # (C,) predicted class histogram Pᵀz
    balance_l1: float  # ‖Ω − Pᵀz‖₁, the balance term of the CB objective
    batch_counts: np.ndarray  # (C,) int64 true class histogram of the batch
    batch_l1: float  # l1_score(batch_counts)
    labeled_counts_after: np.ndarray  # (C,) labeled counts once the batch is labeled
    labeled_l1: float  # l1_score(labeled_counts_after)
    mean_informativeness: float | None  # mean u over the picks; None without u


def predicted_balance(
    probs: np.ndarray, picks: np.ndarray, omega: np.ndarray
) -> tuple[np.ndarray, float]:
    """(Pᵀz, ‖Ω − Pᵀz‖₁) of the picks. Summed in P's own dtype: the P the strategy used."""
    expected = np.asarray(probs)[picks].sum(axis=0)
    return expected, float(np.abs(np.asarray(omega) - expected).sum())


def selection_summary(
    picks: np.ndarray,
    probs: np.ndarray,
    omega: np.ndarray,
    pool_labels: np.ndarray,
    labeled_counts: np.ndarray,
    u: np.ndarray | None = None,
) -> SelectionSummary:
    """Summarise the batch ``picks`` (pool positions) of a pool with class probabilities
    ``probs`` (N, C), true labels ``pool_labels`` (N,) and informativeness ``u`` (N,), picked
    for target counts ``omega`` with ``labeled_counts`` already labeled."""
    picks = np.asarray(picks, dtype=np.int64)
    expected, gap = predicted_balance(probs, picks, omega)
    batch = class_counts(np.asarray(pool_labels)[picks], len(labeled_counts))
    after = np.asarray(labeled_counts, dtype=np.int64) + batch
    return SelectionSummary(
        expected_counts=expected,
        balance_l1=gap,
        batch_counts=batch,
        batch_l1=l1_score(batch),
        labeled_counts_after=after,
        labeled_l1=l1_score(after),
        mean_informativeness=None if u is None else float(np.asarray(u)[picks].mean()),
    )
