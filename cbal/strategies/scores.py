"""Informativeness scores as pure functions over probability arrays (arrays in, scores out)."""

from __future__ import annotations

import numpy as np

# Probabilities are clipped away from 0 before logs so exact zeros never give NaN.
EPS = 1e-12


def _check_probs(probs: np.ndarray, name: str, ndim: int) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"{name} contains NaN or inf")
    return probs


def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy ``-sum_c p log p`` (natural log) of each row of ``probs`` (N, C)."""
    p = _check_probs(probs, "probs", 2)
    return -np.sum(p * np.log(np.clip(p, EPS, 1.0)), axis=1)


def bald(mc_probs: np.ndarray) -> np.ndarray:
    """BALD mutual information ``H(mean_t p_t) - mean_t H(p_t)`` for ``mc_probs`` (T, N, C).

    Clipped at 0: the difference is non-negative in exact arithmetic.
    """
    p = _check_probs(mc_probs, "mc_probs", 3)
    mean_entropy = -np.sum(p * np.log(np.clip(p, EPS, 1.0)), axis=2).mean(axis=0)
    return np.maximum(entropy(p.mean(axis=0)) - mean_entropy, 0.0)


def margin(probs: np.ndarray) -> np.ndarray:
    """Margin sampling: ``1 − (p₍₁₎ − p₍₂₎)``, one minus the gap between the two largest
    probabilities of each row, so the smallest gap has the highest u (picked first)."""
    p = _check_probs(probs, "probs", 2)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """Least-confidence sampling: ``1 − max_c p``, highest for the least confident prediction."""
    p = _check_probs(probs, "probs", 2)
    return 1.0 - p.max(axis=1)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, highest first; ties keep the lower index first."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k].astype(np.int64)
