"""Tests of cbal.strategies.balance: Ω, L1 score, and the class-balanced selection problem."""

from __future__ import annotations

import itertools
import json
import warnings
from types import SimpleNamespace

import highspy
import numpy as np
import pytest

from cbal.strategies import balance
from cbal.strategies.balance import (
    BalancedResult,
    class_counts,
    dual_bound,
    l1_score,
    objective,
    relative_gap,
    relaxed_objective,
    solve_balanced,
    solve_path,
    target_counts,
)


def _instance(
    n: int, c: int, seed: int, budget: int | None = None, alpha: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Dirichlet probabilities, entropy scores, Ω from a random labeled set."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, alpha), size=n)
    u = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    b = budget if budget is not None else max(1, n // 10)
    labeled = rng.integers(0, 3 * b // c + 2, size=c)
    return u, probs, target_counts(labeled, b), b


def _one_hot_pool(per_class: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-hot probabilities (exact balance is reachable), labels, and u favouring class 0."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(c), per_class)
    probs = np.eye(c)[labels]
    u = rng.random(labels.size) + (labels == 0) * 1.0  # class 0 is the most informative
    return u, probs, labels


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(a), abs(b))


def _check_result(res: BalancedResult, u: np.ndarray, probs: np.ndarray, omega, lam) -> None:
    b = res.budget
    assert res.indices.dtype == np.int64
    assert res.indices.shape == (b,)
    assert np.unique(res.indices).size == b
    assert res.z.shape == u.shape
    assert abs(res.z.sum() - b) < 1e-4
    # ordering rule: descending z, then descending u
    zs, us = res.z[res.indices], u[res.indices]
    assert np.all(np.diff(zs) <= 1e-12)
    same = np.abs(np.diff(zs)) <= 1e-12
    assert np.all(np.diff(us)[same] <= 0)
    # the selection's objective is the shared objective function
    assert res.objective == pytest.approx(objective(u, probs, omega, lam, res.indices), abs=1e-9)
    assert res.lp_objective == pytest.approx(
        relaxed_objective(u, probs, omega, lam, res.z), abs=1e-9
    )
    np.testing.assert_allclose(res.expected_counts, probs[res.indices].sum(axis=0))
    scale = 1e-9 * max(1.0, abs(res.objective))
    assert res.objective >= res.bound - scale


# ----------------------------------------------------------------------------------------------
# counts, targets, L1
# ----------------------------------------------------------------------------------------------


def test_class_counts_hand_values():
    np.testing.assert_array_equal(class_counts([0, 2, 2, 3], 5), [1, 0, 2, 1, 0])
    assert class_counts(np.array([], dtype=np.int64), 3).tolist() == [0, 0, 0]
    assert class_counts(np.array([1, 1]), 2).dtype == np.int64


@pytest.mark.parametrize(
    ("labels", "num_classes", "match"),
    [
        ([0, 3], 3, "labels"),
        ([-1, 0], 3, "labels"),
        ([0.5], 3, "labels"),
        ([[0, 1]], 3, "labels"),
        ([0], 0, "num_classes"),
        ([0], 2.0, "num_classes"),
    ],
)
def test_class_counts_rejects(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        class_counts(np.asarray(labels), num_classes)


def test_target_counts_hand_values():
    # T* = (15 + 15) / 3 = 10
    np.testing.assert_allclose(target_counts([10, 0, 5], 15), [0.0, 10.0, 5.0])
    # a class above T* = (30 + 6) / 3 = 12 gets 0, the absent ones 12 each
    np.testing.assert_allclose(target_counts(np.array([30, 0, 0]), 6), [0.0, 12.0, 12.0])
    # balanced labeled set: the budget splits evenly
    np.testing.assert_allclose(target_counts([4, 4, 4, 4], 8), [2.0, 2.0, 2.0, 2.0])
    assert target_counts([1, 2], 3).dtype == np.float64
    with pytest.raises(ValueError, match="budget"):
        target_counts([1, 2], -1)
    with pytest.raises(ValueError, match="labeled_counts"):
        target_counts([1, -2], 1)


def test_l1_score_hand_values():
    assert l1_score([5, 5, 5]) == 0.0
    assert l1_score([9, 0, 0]) == pytest.approx(1.0)
    assert l1_score([0, 0, 7, 0]) == pytest.approx(1.0)
    # n = 4, C = 2: (|3 - 2| + |1 - 2|) * 2 / (2 * 4 * 1)
    assert l1_score([3, 1]) == pytest.approx(0.5)
    # n = 3, C = 3: (1 + 0 + 1) * 3 / (2 * 3 * 2)
    assert l1_score(np.array([2, 1, 0])) == pytest.approx(0.5)
    assert l1_score([0, 0, 0]) == 0.0
    assert l1_score([7]) == 0.0
    with pytest.raises(ValueError, match="hist"):
        l1_score([-1, 2])


# ----------------------------------------------------------------------------------------------
# the LP: fast path vs. HiGHS on all columns vs. cvxpy
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "budget"), [(30, 3, 7), (200, 10, 20), (400, 5, 300), (2000, 50, 100)]
)
@pytest.mark.parametrize("lam", [0.0, 0.1, 1.0, 10.0])
def test_lp_matches_highs_and_cvxpy(n, c, budget, lam):
    u, probs, omega, b = _instance(n, c, seed=n + c, budget=budget)
    lp = solve_balanced(u, probs, omega, b, lam, method="lp-round")
    hi = solve_balanced(u, probs, omega, b, lam, method="highs")
    cv = solve_balanced(u, probs, omega, b, lam, method="cvxpy")
    for res in (lp, hi, cv):
        _check_result(res, u, probs, omega, lam)
        assert not res.fallback
    assert lp.optimal and lp.status == "optimal"
    assert hi.optimal and hi.status == "optimal"
    assert cv.status.startswith("optimal")
    assert _rel(lp.lp_objective, hi.lp_objective) <= 1e-6
    assert _rel(lp.lp_objective, cv.lp_objective) <= 1e-6
    # lp is exact: its bound certifies its LP value
    assert _rel(lp.bound, lp.lp_objective) <= 1e-9
    # every bound is a valid lower bound on the LP optimum
    tol = 1e-9 * max(1.0, abs(lp.lp_objective))
    for res in (lp, hi, cv):
        assert res.bound <= lp.lp_objective + tol
    # a vertex has at most C + 1 fractional entries
    assert np.count_nonzero((lp.z > 1e-9) & (lp.z < 1 - 1e-9)) <= c + 1


def test_lp_budget_equals_pool():
    u, probs, omega, _ = _instance(40, 4, seed=3)
    res = solve_balanced(u, probs, omega, 40, 2.0)
    assert res.optimal
    assert sorted(res.indices.tolist()) == list(range(40))
    assert res.objective == pytest.approx(res.bound)


@pytest.mark.parametrize(
    ("start", "min_c", "cold_rounds"),
    [("ascent", 1, 3), ("cold", 10**6, 10**6), ("cold, then the ascent", 10**6, 1)],
)
def test_lp_larger_instance_is_exact_against_highs(monkeypatch, start, min_c, cold_rounds):
    # pricing from the dual ascent's y, from y = 0 to the end, and from y = 0 for one round
    # only (which does not end here), then from the ascent
    monkeypatch.setattr(balance, "_ASCENT_MIN_C", min_c)
    monkeypatch.setattr(balance, "_COLD_ROUNDS", cold_rounds)
    u, probs, omega, b = _instance(6000, 20, seed=11, budget=300)
    for lam in (0.5, 5.0):
        lp = solve_balanced(u, probs, omega, b, lam, method="lp-round")
        hi = solve_balanced(u, probs, omega, b, lam, method="highs")
        assert lp.optimal
        assert ("dual_evals" in lp.info) == (start != "cold")
        if start == "ascent":
            assert "cold_rounds" not in lp.info
        elif start == "cold":  # its pricing rounds added the columns the first LP lacked
            assert lp.info["cold_rounds"] == lp.info["cg_rounds"] >= 2
        else:
            assert lp.info["cold_rounds"] == 1
        assert _rel(lp.lp_objective, hi.lp_objective) <= 1e-8
        assert _rel(lp.bound, hi.lp_objective) <= 1e-8


def test_dual_bound_is_a_lower_bound():
    u, probs, omega, b = _instance(300, 6, seed=5, budget=30)
    lam = 1.5
    opt = solve_balanced(u, probs, omega, b, lam, method="lp-round")
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.uniform(-3 * lam, 3 * lam, size=6)  # clipped into the box
        assert dual_bound(u, probs, omega, b, lam, y) <= opt.lp_objective + 1e-9
    assert dual_bound(u, probs, omega, b, lam, opt.dual) == pytest.approx(
        opt.lp_objective, rel=1e-9
    )


# ----------------------------------------------------------------------------------------------
# exhaustive search on tiny instances
# ----------------------------------------------------------------------------------------------


def _brute_force(u, probs, omega, b, lam) -> float:
    return min(
        objective(u, probs, omega, lam, np.array(s))
        for s in itertools.combinations(range(u.size), b)
    )


@pytest.mark.parametrize(
    ("n", "c", "b", "seed"), [(8, 2, 3, 0), (10, 3, 4, 1), (12, 3, 5, 2), (12, 4, 6, 3)]
)
@pytest.mark.parametrize("lam", [0.3, 3.0])
def test_tiny_instances_against_brute_force(n, c, b, seed, lam):
    u, probs, omega, _ = _instance(n, c, seed=seed, budget=b, alpha=0.5)
    best = _brute_force(u, probs, omega, b, lam)
    mi = solve_balanced(u, probs, omega, b, lam, method="milp")
    assert mi.status == "optimal" and mi.optimal and not mi.fallback
    assert mi.objective == pytest.approx(best, abs=1e-7)
    assert mi.bound <= best + 1e-7
    _check_result(mi, u, probs, omega, lam)
    lp = solve_balanced(u, probs, omega, b, lam, method="lp-round")
    assert lp.bound <= best + 1e-9
    assert best <= lp.objective + 1e-9
    exact = solve_balanced(u, probs, omega, b, lam, method="binary")
    assert exact.optimal and exact.status == "optimal"
    assert exact.objective == pytest.approx(best, abs=1e-9)
    assert 0.0 <= exact.gap <= 1e-8


# ----------------------------------------------------------------------------------------------
# λ = 0, λ large, the λ path
# ----------------------------------------------------------------------------------------------


def test_lam_zero_is_top_b_of_u_with_stable_ties():
    u, probs, omega, b = _instance(500, 10, seed=7, budget=40)
    u = np.round(u, 1)  # many exact ties
    res = solve_balanced(u, probs, omega, b, 0.0)
    np.testing.assert_array_equal(res.indices, np.argsort(-u, kind="stable")[:b])
    assert res.optimal and res.objective == pytest.approx(res.bound)
    # same through a path that starts elsewhere
    path = solve_path(u, probs, omega, b, [1.0, 0.0])
    np.testing.assert_array_equal(path[1].indices, np.argsort(-u, kind="stable")[:b])


@pytest.mark.parametrize("method", ["binary", "lp-round", "lp", "highs", "milp"])
def test_large_lam_reaches_exact_balance(method):
    u, probs, labels = _one_hot_pool(per_class=30, c=5, seed=1)
    labeled_counts = np.array([8, 2, 4, 6, 0])
    b = 20
    omega = target_counts(labeled_counts, b)  # T* = 8: [0, 6, 4, 2, 8], sums to b
    np.testing.assert_allclose(omega, [0, 6, 4, 2, 8])
    unbalanced = solve_balanced(u, probs, omega, b, 0.0)
    assert class_counts(labels[unbalanced.indices], 5)[0] > 0  # u alone prefers class 0
    res = solve_balanced(u, probs, omega, b, 50.0, method=method)
    assert np.abs(omega - res.expected_counts).sum() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(class_counts(labels[res.indices], 5), omega.astype(int))
    # within each class, the most informative items are the ones taken
    for cls in range(5):
        taken = np.sort(u[res.indices][labels[res.indices] == cls])
        pool = np.sort(u[labels == cls])[::-1][: taken.size]
        np.testing.assert_allclose(np.sort(pool), taken)


def test_l1_of_selection_decreases_along_lambda_path():
    u, probs, labels = _one_hot_pool(per_class=40, c=4, seed=2)
    b = 24
    omega = target_counts(np.full(4, 10), b)  # uniform target: 6 per class
    lams = np.concatenate(([0.0], np.logspace(-2, 1.5, 12)))
    path = solve_path(u, probs, omega, b, lams)
    scores = [l1_score(r.expected_counts) for r in path]
    assert scores[0] > 0.5
    assert scores[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(s2 <= s1 + 1e-12 for s1, s2 in zip(scores, scores[1:], strict=False))


def test_balance_term_of_lp_optimum_is_monotone_in_lambda():
    # parametric LP: for optimal z(λ1), z(λ2) with λ1 < λ2, ‖Ω − Pᵀz(λ2)‖₁ ≤ ‖Ω − Pᵀz(λ1)‖₁
    u, probs, omega, b = _instance(3000, 15, seed=4, budget=150)
    path = solve_path(u, probs, omega, b, np.logspace(-2, 1, 10), method="lp-round")
    terms = [np.abs(omega - r.z @ probs).sum() for r in path]
    assert all(t2 <= t1 + 1e-6 * max(1.0, t1) for t1, t2 in zip(terms, terms[1:], strict=False))
    assert terms[-1] < terms[0]


@pytest.mark.parametrize("method", ["binary", "lp-round"])
def test_path_in_threads_equals_one_call_per_lam(monkeypatch, method):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    u, probs, omega, b = _instance(600, 8, seed=21, budget=30)
    # a third of the rows repeated: the merged problem is shared by the threads too
    u, probs = np.concatenate([u, u[:200]]), np.concatenate([probs, probs[:200]])
    lams = [0.0, 0.05, 0.3, 1.0, 3.0, 10.0, 0.3]
    blas_before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    monkeypatch.setattr(balance, "path_threads", lambda points: 3)  # more threads than cores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # binary may stop on its work limits
        path = solve_path(u, probs, omega, b, lams, method=method)
        alone = [solve_balanced(u, probs, omega, b, lam, method=method) for lam in lams]
    for res, ref in zip(path, alone, strict=True):
        np.testing.assert_array_equal(res.indices, ref.indices)
        assert (res.objective, res.bound, res.status) == (ref.objective, ref.bound, ref.status)
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == blas_before


def test_single_thread_blas_is_lifted_by_the_last_of_concurrent_users():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def threads() -> list[int]:
        info = threadpoolctl.threadpool_info()
        return [i["num_threads"] for i in info if i["user_api"] == "blas"]

    # the tests run numpy's BLAS on one thread (conftest): give it two to see the limit work
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = threads()
        assert 2 in before  # numpy's (other BLAS libraries, e.g. torch's, may be loaded too)
        first, second = balance._single_thread_blas(), balance._single_thread_blas()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first to leave while the other is still inside
        assert set(threads()) == {1}
        second.__exit__(None, None, None)
        assert threads() == before


def test_warm_started_path_equals_independent_solves():
    u, probs, omega, b = _instance(5000, 30, seed=9, budget=250)
    lams = np.logspace(-1.5, 1.5, 8)
    path = solve_path(u, probs, omega, b, lams, method="lp-round")
    for lam, res in zip(lams, path, strict=True):
        alone = solve_balanced(u, probs, omega, b, float(lam), method="lp-round")
        assert res.optimal and alone.optimal
        assert res.lam == pytest.approx(lam)
        assert _rel(res.lp_objective, alone.lp_objective) <= 1e-9
        assert res.objective == pytest.approx(alone.objective, rel=1e-9)
        np.testing.assert_array_equal(np.sort(res.indices), np.sort(alone.indices))
    # warm start by hand, as the λ explorer does it
    first = path[3]
    again = solve_balanced(
        u,
        probs,
        omega,
        b,
        float(lams[4]),
        method="lp-round",
        warm_start=first.dual * lams[4] / lams[3],
    )
    assert _rel(again.lp_objective, path[4].lp_objective) <= 1e-9


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _bad_inputs():
    u, probs, omega, _ = _instance(12, 3, seed=0)
    not_norm = probs.copy()
    not_norm[0] *= 1.1
    negative = probs.copy()
    negative[0, :2] = [-0.1, negative[0, 0] + negative[0, 1] + 0.1]
    nan_u = u.copy()
    nan_u[3] = np.nan
    inf_p = probs.copy()
    inf_p[1, 1] = np.inf
    return [
        ({"budget": 0}, r"budget=0 must be an integer in \[1, N=12\]"),
        ({"budget": 50}, r"budget=50 must be an integer in \[1, N=12\]"),
        ({"budget": 2.5}, "budget"),
        ({"budget": True}, "budget"),
        ({"lam": -1.0}, "lam"),
        ({"lam": np.nan}, "lam"),
        ({"lam": np.inf}, "lam"),
        ({"lam": "big"}, "lam"),
        ({"u": nan_u}, "u"),
        ({"u": u[:-1]}, "u"),
        ({"probs": inf_p}, "probs"),
        ({"probs": probs[:, 0]}, "probs"),
        ({"probs": not_norm}, "probs"),
        ({"probs": negative}, "probs"),
        ({"omega": np.array([1.0, np.nan, 2.0])}, "omega"),
        ({"omega": omega[:2]}, "omega"),
        ({"method": "gurobi"}, "method"),
        ({"time_limit": 0.0}, "time_limit"),
        ({"warm_start": np.zeros(5)}, "warm_start"),
        ({"warm_start": np.full(3, np.nan)}, "warm_start"),
    ], (u, probs, omega)


_BAD, _BASE = _bad_inputs()


@pytest.mark.parametrize(("override", "match"), _BAD)
def test_invalid_arguments_raise_value_error(override, match):
    u, probs, omega = _BASE
    kwargs = {"u": u, "probs": probs, "omega": omega, "budget": 4, "lam": 1.0}
    kwargs.update(override)
    with pytest.raises(ValueError, match=match):
        solve_balanced(**kwargs)


def test_solve_path_validates():
    u, probs, omega = _BASE
    with pytest.raises(ValueError, match="lam"):
        solve_path(u, probs, omega, 4, [0.1, -1.0])
    with pytest.raises(ValueError, match="method"):
        solve_path(u, probs, omega, 4, [0.1], method="nope")
    with pytest.raises(ValueError, match="budget"):
        solve_path(u, probs, omega, 13, [0.1])


# ----------------------------------------------------------------------------------------------
# failures and time-outs are never silent
# ----------------------------------------------------------------------------------------------


def test_milp_time_limit_is_reported():
    u, probs, omega, b = _instance(400, 20, seed=12, budget=40, alpha=0.5)
    with pytest.warns(RuntimeWarning):
        res = solve_balanced(u, probs, omega, b, 1.0, method="milp", time_limit=0.02)
    assert not res.optimal
    assert res.status.startswith("time_limit")
    assert res.fallback == ("fell back" in res.status)
    _check_result(res, u, probs, omega, 1.0)


def _stopped_highs(*args, **kwargs):
    """What HiGHS reports when its time limit stops it before any incumbent or node."""
    info = SimpleNamespace(
        mip_node_count=0,
        mip_dual_bound=-np.inf,
        primal_solution_status=highspy.SolutionStatus.kSolutionStatusNone,
        valid=True,
    )
    return info, np.empty(0), highspy.HighsModelStatus.kTimeLimit, "Time limit reached"


def test_milp_without_incumbent_falls_back(monkeypatch):
    u, probs, omega, b = _instance(60, 4, seed=6, budget=6)
    monkeypatch.setattr(balance, "_highs_mip", _stopped_highs)
    with pytest.warns(RuntimeWarning, match="fell back"):
        res = solve_balanced(u, probs, omega, b, 1.0, method="milp", time_limit=1.0)
    assert res.fallback and not res.optimal
    assert res.status == "time_limit; fell back to lp rounding"
    assert res.method == "milp"
    ref = solve_balanced(u, probs, omega, b, 1.0, method="lp-round")
    np.testing.assert_array_equal(res.indices, ref.indices)


def test_binary_survives_a_search_stopped_before_its_first_node(monkeypatch):
    u, probs, omega, b = _instance(300, 5, seed=6, budget=30)
    ref = solve_balanced(u, probs, omega, b, 3.0, method="binary")
    monkeypatch.setattr(balance, "_highs_mip", _stopped_highs)
    with pytest.warns(RuntimeWarning, match="before proving optimality"):
        res = solve_balanced(u, probs, omega, b, 3.0, method="binary")
    assert not res.optimal and not res.fallback
    _check_result(res, u, probs, omega, 3.0)
    # no search: the swaps' incumbent, never better than the proved optimum
    assert ref.optimal and res.objective >= ref.objective - 1e-12
    assert res.info["lp_bound"] <= res.bound <= res.objective


def test_a_failed_search_proves_nothing(monkeypatch):
    # HiGHS after a failed run: an unknown status, no solution, and a number as its bound
    failed = SimpleNamespace(
        mip_node_count=0,
        mip_dual_bound=1e9,
        primal_solution_status=highspy.SolutionStatus.kSolutionStatusNone,
        valid=True,
    )
    unknown = highspy.HighsModelStatus.kUnknown
    monkeypatch.setattr(
        balance, "_highs_mip", lambda *a, **k: (failed, np.empty(0), unknown, "Unknown")
    )
    u, probs, omega, b = _instance(300, 5, seed=6, budget=30)
    with pytest.warns(RuntimeWarning, match="before proving optimality"):
        res = solve_balanced(u, probs, omega, b, 3.0, method="binary")
    assert not res.optimal and res.bound == res.info["lp_bound"]  # only the LP's own bound
    _check_result(res, u, probs, omega, 3.0)


def _best_single_swap(u, probs, omega, lam, indices) -> float:
    """The objective change of the best one-in, one-out swap over every item (brute force)."""
    z = np.zeros(u.size)
    z[indices] = 1.0
    resid = omega - probs.T @ z
    out, inn = np.flatnonzero(z), np.flatnonzero(z == 0)
    moved = resid[None, None, :] + probs[out][:, None, :] - probs[inn][None, :, :]
    base = np.abs(resid).sum()
    return float((u[out][:, None] - u[inn][None, :] + lam * (np.abs(moved).sum(2) - base)).min())


@pytest.mark.parametrize("full", [True, False])
def test_binary_swaps_range_over_every_item_on_small_instances(monkeypatch, full):
    u, probs, omega, b = _instance(400, 6, seed=2, budget=20, alpha=1.0)
    if not full:
        monkeypatch.setattr(balance, "_SWAP_FULL", 20 * 400 * 6 - 1)
    seen = []
    real = balance._swap_search

    def spy(prob, lam, z, cand, t_end):
        seen.append((z.copy(), cand.copy()))
        return real(prob, lam, z, cand, t_end)

    monkeypatch.setattr(balance, "_swap_search", spy)
    monkeypatch.setattr(balance, "_highs_mip", _stopped_highs)
    with pytest.warns(RuntimeWarning, match="before proving optimality"):
        res = solve_balanced(u, probs, omega, b, 0.6, method="binary")
    # two starts: the LP's rounding and the top-b of u alone
    assert len(seen) == 2
    assert np.flatnonzero(seen[1][0]).tolist() == sorted(np.argsort(-u, kind="stable")[:b])
    sizes = {cand.size for _, cand in seen}
    if full:
        assert sizes == {400}
        # no search after the swaps: their result admits no improving swap over any item
        assert _best_single_swap(u, probs, omega, 0.6, res.indices) >= -1e-12
    else:
        assert max(sizes) < 400
    _check_result(res, u, probs, omega, 0.6)


def test_highs_failure_falls_back(monkeypatch):
    u, probs, omega, b = _instance(80, 4, seed=8, budget=8)
    real = balance._lp_run
    runs = []

    def failing_for_full_lp(h):
        runs.append(h.getNumCol())
        if len(runs) <= len(balance._LP_ATTEMPTS):  # each attempt at the "highs" LP fails
            real(h)
            return highspy.HighsModelStatus.kSolveError, "numerical difficulties (injected)"
        return real(h)

    monkeypatch.setattr(balance, "_lp_run", failing_for_full_lp)
    with pytest.warns(RuntimeWarning, match="fell back to lp rounding"):
        res = solve_balanced(u, probs, omega, b, 1.0, method="highs")
    assert res.fallback and not res.optimal
    assert res.status.startswith("failed: numerical difficulties (injected)")
    assert res.status.endswith("fell back to lp rounding")
    assert runs[0] == 80 + 2 * 4  # the full LP: all items and the 2C slacks
    _check_result(res, u, probs, omega, 1.0)


def test_cvxpy_failure_falls_back(monkeypatch):
    import cvxpy as cp

    u, probs, omega, b = _instance(50, 3, seed=2, budget=5)

    def boom(self, *args, **kwargs):
        raise cp.error.SolverError("solver exploded (injected)")

    monkeypatch.setattr(cp.Problem, "solve", boom)
    with pytest.warns(RuntimeWarning, match="fell back"):
        res = solve_balanced(u, probs, omega, b, 1.0, method="cvxpy")
    assert res.fallback and not res.optimal
    assert "solver exploded (injected)" in res.status
    _check_result(res, u, probs, omega, 1.0)


def test_lp_solver_failure_is_not_silent(monkeypatch):
    u, probs, omega, b = _instance(500, 5, seed=4, budget=50)
    attempts = []

    def always_fails(h):
        attempts.append(h.getOptions().solver)
        return highspy.HighsModelStatus.kUnknown, "injected failure"

    monkeypatch.setattr(balance, "_lp_run", always_fails)
    with pytest.warns(RuntimeWarning, match="injected failure"):
        res = solve_balanced(u, probs, omega, b, 1.0, method="lp-round")
    assert attempts == ["simplex", "ipm", "choose"]  # each fallback of HiGHS tried once
    assert res.fallback and not res.optimal
    assert res.status == "failed: injected failure; fell back to dual rounding"
    assert res.indices.size == b and np.unique(res.indices).size == b
    assert res.objective >= res.bound


def test_lp_time_limit_is_not_silent():
    u, probs, omega, b = _instance(3000, 20, seed=4, budget=150)
    with pytest.warns(RuntimeWarning, match="time_limit"):
        res = solve_balanced(u, probs, omega, b, 1.0, method="lp-round", time_limit=1e-9)
    assert not res.optimal
    assert res.status.startswith("time_limit")
    assert res.indices.size == b and np.unique(res.indices).size == b


def test_optimal_solves_do_not_warn():
    u, probs, omega, b = _instance(300, 6, seed=1, budget=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("binary", "lp-round", "highs", "milp"):
            assert solve_balanced(u, probs, omega, b, 1.0, method=method).optimal


def test_objective_rejects_bad_indices():
    u, probs, omega, _ = _instance(20, 3, seed=0)
    with pytest.raises(ValueError, match="distinct"):
        objective(u, probs, omega, 1.0, [1, 1, 2])
    with pytest.raises(ValueError, match="indices"):
        objective(u, probs, omega, 1.0, [0, 25])


def test_solve_path_other_methods_match_lp():
    u, probs, omega, b = _instance(150, 4, seed=13, budget=15)
    lams = [0.0, 0.5, 5.0]
    for a, h in zip(
        solve_path(u, probs, omega, b, lams, method="lp-round"),
        solve_path(u, probs, omega, b, lams, method="highs"),
        strict=True,
    ):
        assert h.method == "highs" and h.optimal
        assert _rel(a.lp_objective, h.lp_objective) <= 1e-9


# ----------------------------------------------------------------------------------------------
# the record
# ----------------------------------------------------------------------------------------------


def test_to_record_is_json_safe_and_small():
    u, probs, omega, b = _instance(2000, 8, seed=3, budget=100)
    res = solve_balanced(u, probs, omega, b, 1.0)
    rec = res.to_record()
    text = json.dumps(rec)
    assert json.loads(text)["status"] == "optimal"
    assert rec["optimal"] is True and rec["fallback"] is False
    assert len(rec["dual"]) == 8 and len(rec["expected_counts"]) == 8
    assert rec["gap"] == pytest.approx(res.objective - res.bound)
    assert rec["n_fractional"] <= 9
    assert len(text) < 5000  # no N-sized arrays


# ----------------------------------------------------------------------------------------------
# the binary method against scipy's milp, reductions, scaling and input dtypes
# ----------------------------------------------------------------------------------------------


def _milp_optimum(u, probs, omega, b, lam) -> float:
    """An independent oracle: the binary problem stated directly for scipy's milp."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, c = probs.shape
    a = np.block(
        [
            [probs.T, np.eye(c)],
            [-probs.T, np.eye(c)],
            [np.ones((1, n)), np.zeros((1, c))],
        ]
    )
    lo = np.concatenate([omega, -omega, [b]])
    hi = np.concatenate([np.full(2 * c, np.inf), [b]])
    res = milp(
        np.concatenate([-u, np.full(c, lam)]),
        constraints=LinearConstraint(a, lo, hi),
        integrality=np.concatenate([np.ones(n), np.zeros(c)]),
        bounds=Bounds(np.zeros(n + c), np.concatenate([np.ones(n), np.full(c, np.inf)])),
        options={"mip_rel_gap": 0.0},
    )
    assert res.status == 0
    return float(res.fun)


def _small_cases():
    """≥ 50 small instances over the λ regimes, budgets, ties and Ω shapes the issue names."""
    cases = []
    for seed in range(60):
        rng = np.random.default_rng(1000 + seed)
        n = int(rng.integers(6, 40))
        c = int(rng.choice([2, 3, 5]))
        b = int(rng.choice([1, n - 1, n, max(1, n // 3)]))
        lam = float(rng.choice([0.0, 0.05, 0.6, 2.0, 10.0, 100.0, 1e4]))
        probs = rng.dirichlet(np.full(c, 0.5), size=n)
        u = -(probs * np.log(probs)).sum(axis=1)
        kind = seed % 4
        if kind == 1:  # duplicated rows: exact ties in (u, p)
            probs[n // 2 :] = probs[: n - n // 2]
            u[n // 2 :] = u[: n - n // 2]
        elif kind == 2:  # Ω all zero
            omega = np.zeros(c)
        if kind != 2:
            labeled = rng.integers(0, 3 * b + 1, size=c)
            omega = target_counts(labeled, b)
        if kind == 3:  # ΣΩ > b: a long tail the budget cannot fill
            omega = omega + rng.integers(0, 3 * b + 1, size=c)
        cases.append((u, probs, omega, b, lam))
    return cases


@pytest.mark.parametrize("case", range(60))
def test_binary_equals_scipy_milp(case):
    u, probs, omega, b, lam = _small_cases()[case]
    res = solve_balanced(u, probs, omega, b, lam, method="binary", time_limit=30.0)
    best = _milp_optimum(u, probs, omega, b, lam)
    assert res.optimal and res.status == "optimal"
    assert res.objective == pytest.approx(best, rel=1e-9, abs=1e-9)
    assert objective(u, probs, omega, lam, res.indices) == pytest.approx(res.objective)
    assert res.gap >= 0.0 and res.gap <= 1e-8 * max(1.0, abs(best))
    assert np.unique(res.indices).size == b
    np.testing.assert_array_equal(np.isin(np.arange(u.size), res.indices), res.z == 1.0)


@pytest.mark.parametrize("method", ["binary", "lp-round", "highs", "cvxpy", "milp"])
def test_every_z_is_feasible_and_every_gap_nonnegative(method):
    for seed in range(4):
        u, probs, omega, b = _instance(300, 6, seed=seed, budget=40)
        probs = probs.astype(np.float32)  # float32 P, as a network gives it
        probs = probs / probs.sum(axis=1, keepdims=True)
        for lam in (0.6, 56.0, 300.0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = solve_balanced(u, probs, omega, b, lam, method=method, time_limit=5.0)
            assert abs(res.z.sum() - b) <= 1e-12 * b
            assert res.z.min() >= 0.0 and res.z.max() <= 1.0
            assert res.gap >= 0.0
            assert res.bound <= res.lp_objective


def test_binary_is_no_worse_than_lp_rounding_and_says_what_changed():
    u, probs, omega, b = _instance(400, 5, seed=21, budget=40)
    lp = solve_balanced(u, probs, omega, b, 3.0, method="lp-round")
    ex = solve_balanced(u, probs, omega, b, 3.0, method="binary", time_limit=30.0)
    assert ex.objective <= lp.objective + 1e-12
    assert ex.info["lp_round_objective"] == pytest.approx(lp.objective)
    assert ex.info["lp_bound"] == pytest.approx(lp.bound, rel=1e-9)
    changed = b - np.intersect1d(ex.indices, lp.indices).size
    assert ex.info["picks_changed"] == changed
    assert ex.info["lp_bound"] <= ex.bound <= ex.objective


def test_binary_time_limit_is_reported_with_a_certified_gap():
    u, probs, omega, b = _instance(2000, 8, seed=3, budget=100)
    with pytest.warns(RuntimeWarning, match="before proving optimality"):
        res = solve_balanced(u, probs, omega, b, 1.0, method="binary", time_limit=0.05)
    assert res.status == "time_limit" and not res.optimal and not res.fallback
    assert res.info["lp_bound"] <= res.bound <= res.objective
    assert res.objective <= res.info["lp_round_objective"] + 1e-12


def test_branch_and_bound_starts_from_the_selection_it_is_given():
    u, probs, omega, b = _instance(400, 5, seed=21, budget=40)
    prob = balance._Problem(u, probs, omega, b)
    start = prob.topb_z(prob.u)
    no_work = {"mip_max_nodes": 0, "presolve": "off", "mip_heuristic_effort": 0.0}
    everything, none = np.arange(prob.n), np.zeros(prob.n)
    out = balance._branch_and_bound(prob, 3.0, everything, none, 1e-3, no_work, start)
    np.testing.assert_array_equal(out.z, start)  # stopped at once, with the start as incumbent
    assert out.status == "work_limit" and not out.optimal
    assert balance._branch_and_bound(prob, 3.0, everything, none, 1e-3, no_work).z is None
    # a start that differs from the base outside the searched columns is not a start of this search
    inside = np.flatnonzero(start == 0)[:50]
    out = balance._branch_and_bound(prob, 3.0, inside, start * 0, 1e-3, no_work, start)
    assert out.z is None


def test_binary_work_limit_gives_the_same_selection_every_time(monkeypatch):
    # a node limit, unlike a time limit, stops the search at the same point on any machine
    monkeypatch.setitem(balance._BINARY_HIGHS, "mip_max_nodes", 1)
    u, probs, omega, b = _instance(2000, 8, seed=3, budget=100)
    runs = []
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match=r"\(work_limit\) before proving"):
            runs.append(solve_balanced(u, probs, omega, b, 1.0, method="binary", time_limit=600))
    assert all(r.status == "work_limit" and not r.optimal for r in runs)
    assert runs[0].indices.tolist() == runs[1].indices.tolist()
    assert runs[0].info["lp_bound"] <= runs[0].bound <= runs[0].objective


def _near_one_hot(n, c, b, seed, k=15.0):
    """A confident network's outputs: softmax(k·onehot + noise), Ω with fractional parts."""
    rng = np.random.default_rng(seed)
    logits = k * np.eye(c)[rng.integers(0, c, size=n)] + rng.normal(size=(n, c))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    u = -(probs * np.log(probs)).sum(axis=1)
    return u, probs, target_counts(rng.integers(0, 2 * b, size=c), b), b


def _count_bound_at(u, probs, omega, b, lam, y):
    prob = balance._Problem(u, probs, omega, b)
    s = prob.scores(y)
    top = prob.topb_z(s)
    r = np.abs(s - s[top > 0].min())
    k = np.argmax(prob.P, axis=1)
    gain, t = balance._count_bound(prob, lam, y, r, top, k)
    return prob, prob.bound(y, s), gain, t, r, top, k


@pytest.mark.parametrize("seed", range(12))
def test_count_bound_is_a_bound_at_any_dual(seed):
    # near-one-hot and soft P, at the LP's dual and at random duals in the box
    rng = np.random.default_rng(seed)
    n, c, b = int(rng.integers(6, 13)), int(rng.choice([2, 3, 4])), int(rng.integers(1, 6))
    lam = float(rng.choice([0.3, 2.0, 30.0]))
    u, probs, omega, b = _near_one_hot(n, c, b, seed, k=float(rng.choice([2.0, 15.0])))
    best = _brute_force(u, probs, omega, b, lam)
    lp_dual = solve_balanced(u, probs, omega, b, lam, method="lp-round").dual
    for y in (lp_dual, rng.uniform(-lam, lam, size=c), np.full(c, lam)):
        prob, lb, gain, t, r, top, k = _count_bound_at(u, probs, omega, b, lam, y)
        assert lb + gain <= best + 1e-9
        assert t.sum() == 0 and t.dtype.kind == "i"
        z = balance._by_counts(prob, r, top, t, k)  # the selection it points to is one
        assert z.sum() == b and set(np.unique(z)) <= {0.0, 1.0}


@pytest.mark.parametrize("seed", range(6))
def test_count_bound_holds_on_merged_columns(seed):
    # a collapsed model: 4 distinct rows, each a column whose capacity is its multiplicity
    rng = np.random.default_rng(seed)
    u0, p0, _, _ = _near_one_hot(4, 3, 2, seed, k=float(rng.choice([2.0, 15.0])))
    rows = rng.integers(0, 4, size=11)
    u, probs, b, lam = u0[rows], p0[rows], int(rng.integers(2, 7)), float(rng.choice([0.5, 5.0]))
    omega = target_counts(rng.integers(0, 2 * b, size=3), b)
    best = _brute_force(u, probs, omega, b, lam)
    prob = balance._Problem(u, probs, omega, b).merged_problem()
    assert prob is not None and prob.cap.sum() == 11
    for y in (np.zeros(3), rng.uniform(-lam, lam, size=3), np.full(3, -lam)):
        s = prob.scores(y)
        top = prob.topb_z(s)
        r = np.abs(s - s[top > 0].min())
        k = np.argmax(prob.P, axis=1)
        gain, t = balance._count_bound(prob, lam, y, r, top, k)
        assert prob.bound(y, s) + gain <= best + 1e-9
        z = balance._by_counts(prob, r, top, t, k)
        assert z.sum() == b and np.all((z >= 0) & (z <= prob.cap)) and np.all(z == np.rint(z))


def test_count_bound_holds_when_a_probability_exceeds_one():
    # rows may sum to 1 + 1e-4: an entry above 1 leaks p − 1, not 1 − p
    rng = np.random.default_rng(3)
    probs = (1.0 + 9e-5) * np.eye(2)[rng.integers(0, 2, size=8)]
    u = rng.random(8) * 1e-3
    omega, b, lam = np.array([1.5, 2.5]), 4, 1.0
    best = _brute_force(u, probs, omega, b, lam)
    for y in (np.zeros(2), np.full(2, lam), np.array([-lam, lam])):
        _, lb, gain, *_ = _count_bound_at(u, probs, omega, b, lam, y)
        assert lb + gain <= best + 1e-12


def test_count_bound_beats_the_lp_bound_on_a_confident_model():
    # the LP balances each class with a fraction of an item; a selection cannot, and the
    # bound from whole class counts says so (here it is the optimum, to the leak of P)
    u, probs, omega, b = _near_one_hot(12, 3, 5, seed=0)
    lam = 1.0
    best = _brute_force(u, probs, omega, b, lam)
    lp = solve_balanced(u, probs, omega, b, lam, method="lp-round")
    _, lb, gain, *_ = _count_bound_at(u, probs, omega, b, lam, lp.dual)
    assert lb == pytest.approx(lp.bound, abs=1e-9)
    assert best - lb > 1.0  # the LP's integrality gap is real here
    assert best - (lb + gain) < 1e-3 * (best - lb)


def _lp_with_counts(u, probs, omega, b, lam, groups, lo, hi) -> float:
    """An independent oracle: the LP relaxation with lo ≤ (Σ z over group g) ≤ hi, in scipy."""
    from scipy.optimize import linprog

    n, c = probs.shape
    member = (groups[None, :] == np.arange(lo.shape[0])[:, None]).astype(float)
    a_ub = np.block([[-probs.T, -np.eye(c)], [probs.T, -np.eye(c)]])
    a_ub = np.vstack([a_ub, np.hstack([member, np.zeros_like(member[:, :c])])])
    a_ub = np.vstack([a_ub, np.hstack([-member, np.zeros_like(member[:, :c])])])
    b_ub = np.concatenate([-omega, omega, hi, -lo])
    res = linprog(
        np.concatenate([-u, np.full(c, lam)]),
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.concatenate([np.ones(n), np.zeros(c)])[None, :],
        b_eq=[b],
        bounds=[(0, 1)] * n + [(0, None)] * c,
    )
    return float(res.fun) if res.status == 0 else np.inf


def _count_lp(u, probs, omega, b, lam, half=2):
    prob = balance._Problem(u, probs, omega, b)
    groups = np.argmax(prob.P, axis=1)
    y = solve_balanced(u, probs, omega, b, lam, method="lp-round").dual
    state = balance._window_state(prob.scores(y), b, half)
    free, fixed = np.flatnonzero(state == 2), np.flatnonzero(state == 1)
    return prob, groups, state, balance._WorkingLP(prob, lam, free, fixed, groups)


@pytest.mark.parametrize("seed", range(8))
def test_count_dual_is_the_lp_with_class_counts(seed):
    # nodes of the class-count search: column generation from a 4-item window, against scipy's
    # LP with the same count rows; its dual bound holds for every selection with those counts
    rng = np.random.default_rng(seed)
    n, c, b = 12, 3, int(rng.integers(3, 7))
    lam = float(rng.choice([0.3, 2.0, 30.0]))
    u, probs, omega, b = _near_one_hot(n, c, b, seed, k=float(rng.choice([3.0, 15.0])))
    prob, groups, state, lp = _count_lp(u, probs, omega, b, lam)
    units = np.bincount(groups, minlength=c).astype(float)
    checked = 0
    for _ in range(12):
        lo = np.floor(rng.random(c) * (units + 1)) * (rng.random(c) < 0.5)
        hi = np.maximum(lo, np.ceil(rng.random(c) * units))
        if not lo.sum() <= b <= hi.sum():
            continue
        checked += 1
        run = balance._solve_node(lp, state, 2, lo, hi, units, np.inf)
        assert run.optimal
        value = balance._count_dual(run, prob, lo, hi)
        assert value == pytest.approx(
            _lp_with_counts(u, probs, omega, b, lam, groups, lo, hi), abs=1e-7
        )
        within = [
            objective(u, probs, omega, lam, np.array(sel))
            for sel in itertools.combinations(range(n), b)
            if np.all((lo <= (k := np.bincount(groups[list(sel)], minlength=c))) & (k <= hi))
        ]
        assert value <= min(within) + 1e-9
        counts = np.bincount(groups, weights=run.z, minlength=c)
        assert np.all(counts >= lo - 1e-9) and np.all(counts <= hi + 1e-9)
    assert checked >= 3


def test_round_counts_keeps_the_units_of_each_group():
    z = np.array([1.0, 0.5, 0.5, 0.25, 0.75, 0.0, 1.0, 0.6, 0.4])
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    s = np.array([0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    out = balance._round_counts(z, np.arange(1, 9), groups, np.ones(9), s)
    # group 0: 2 units, the tie at 0.5 goes to the higher score; group 1: 1; group 2: 2
    np.testing.assert_array_equal(out, [1, 1, 0, 0, 1, 0, 1, 1, 0])


@pytest.mark.parametrize("seed", range(10))
def test_count_search_bounds_every_selection(seed, monkeypatch):
    # run to the end (no stall), its bound is the least LP over all whole count vectors, which
    # bounds the binary optimum; its selections are selections
    monkeypatch.setattr(balance, "_COUNT_STALL_NODES", -1)
    rng = np.random.default_rng(50 + seed)
    n, c, b = int(rng.integers(9, 13)), 3, int(rng.integers(2, 6))
    lam = float(rng.choice([0.3, 1.0, 30.0]))
    u, probs, omega, b = _near_one_hot(n, c, b, seed, k=float(rng.choice([4.0, 15.0])))
    if seed % 2:  # a fourth class that no item has as its most probable one
        probs = np.column_stack([probs * (1 - 1e-3), np.full(n, 1e-3)])
        omega, c = np.append(omega * 0.8, omega.sum() * 0.2), 4
    best = _brute_force(u, probs, omega, b, lam)
    prob, groups, _, _ = _count_lp(u, probs, omega, b, lam)
    units = np.bincount(groups, minlength=c)
    least = min(
        _lp_with_counts(u, probs, omega, b, lam, groups, np.array(k, float), np.array(k, float))
        for k in itertools.product(*(range(m + 1) for m in units))
        if sum(k) == b
    )
    lp = solve_balanced(u, probs, omega, b, lam, method="lp-round")
    worst = max(
        objective(u, probs, omega, lam, np.array(sel))
        for sel in itertools.combinations(range(n), b)
    )
    out = balance._count_search(prob, lam, lp.dual, lp.bound, worst + 1.0, lambda v: 0.0, np.inf)
    assert least <= best + 1e-9
    assert out.bound == pytest.approx(least, abs=1e-7)
    if out.z is not None:
        assert out.z.sum() == b and set(np.unique(out.z)) <= {0.0, 1.0}
        assert prob.value(lam, out.z) == pytest.approx(out.value, abs=1e-12)
        assert out.value >= best - 1e-9


def test_binary_proves_a_confident_model_by_its_class_counts():
    # 200 confident items over 4 classes, Ω with fractional parts: every item stays free of the
    # reduced-cost fixing and the LP bound is 0.6 below the optimum; the class-count search
    # proves it (at this size HiGHS on all 200 items could too, in seconds rather than 0.03 s)
    u, probs, _, b = _near_one_hot(200, 4, 24, seed=0, k=12.0)
    omega, lam = np.array([6.3, 5.7, 6.2, 5.8]), 0.6
    res = solve_balanced(u, probs, omega, b, lam, method="binary", time_limit=60.0)
    best = _milp_optimum(u, probs, omega, b, lam)
    assert res.optimal and res.status == "optimal" and res.info["count_nodes"] > 0
    assert res.info["free_items"] == 200
    assert best - res.info["lp_bound"] > 0.5
    allowed = balance.MIP_GAP * max(abs(res.objective), np.abs(u).max(), lam)
    assert res.bound <= best + 1e-9 and res.objective - best <= allowed


@pytest.mark.parametrize("seed", [20, 25])
def test_binary_stops_at_its_gap_and_certifies_it(seed):
    # the default stops once the gap is within 1e-4 (seed 20: at a selection 1.4e-3 worse than
    # the optimum, within that gap); mip_gap=0 asks for the optimum itself, as scipy's milp
    u, probs, omega, b = _instance(300, 5, seed=seed, budget=30)
    lam = 1.0
    best = _milp_optimum(u, probs, omega, b, lam)
    scale = max(np.abs(u).max(), lam)
    for gap in (balance.MIP_GAP, 0.0):
        res = solve_balanced(u, probs, omega, b, lam, method="binary", mip_gap=gap)
        assert res.optimal and res.status == "optimal" and res.info["mip_gap"] == gap
        assert res.bound <= best + 1e-9 <= res.objective + 2e-9
        allowed = max(gap, 1e-9) * max(abs(res.objective), scale)
        assert 0.0 <= res.objective - res.bound <= allowed * (1 + 1e-9)
        assert relative_gap(res.objective, res.bound, u, lam) <= max(gap, 1e-9) * (1 + 1e-9)
        if gap:
            assert res.objective - res.bound > 1e-6 * scale  # it did stop before the optimum
        else:
            assert res.objective == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("bad", [-1e-3, 1.0, float("nan"), "tight", None])
def test_mip_gap_is_checked(bad):
    u, probs, omega, b = _instance(30, 3, seed=1, budget=5)
    with pytest.raises(ValueError, match=r"mip_gap=.* must be a number in \[0, 1\)"):
        solve_balanced(u, probs, omega, b, 1.0, method="binary", mip_gap=bad)
    with pytest.raises(ValueError, match="mip_gap"):
        solve_path(u, probs, omega, b, [1.0], method="binary", mip_gap=bad)


def test_swap_deltas_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(6), size=40)
    u, resid = rng.random(40), rng.normal(size=6)
    out, inn = np.arange(0, 40, 2), np.arange(1, 40, 2)
    whole = balance._best_swap(p, u, resid, out, inn, 0.7)
    monkeypatch.setattr(balance, "_SWAP_BLOCK", 7)  # one out row per block
    assert balance._best_swap(p, u, resid, out, inn, 0.7) == whole
    moved = resid[None, None, :] + p[out][:, None, :] - p[inn][None, :, :]
    ref = u[out][:, None] - u[inn][None, :] + 0.7 * (np.abs(moved).sum(2) - np.abs(resid).sum())
    assert whole[0] == pytest.approx(ref.min(), rel=1e-12)


@pytest.mark.parametrize("method", ["binary", "lp-round", "highs", "milp"])
@pytest.mark.parametrize("factor", [1e-8, 1e6])
def test_scaling_u_and_lam_together_changes_nothing(method, factor):
    u, probs, omega, b = _instance(120, 4, seed=17, budget=12)
    lam = 0.8
    ref = solve_balanced(u, probs, omega, b, lam, method=method, time_limit=30.0)
    res = solve_balanced(u * factor, probs, omega, b, lam * factor, method=method, time_limit=30.0)
    np.testing.assert_array_equal(res.indices, ref.indices)
    assert res.status == ref.status and res.optimal == ref.optimal
    assert res.objective == pytest.approx(ref.objective * factor, rel=1e-9)
    assert res.bound == pytest.approx(ref.bound * factor, rel=1e-7)


@pytest.mark.parametrize("method", ["binary", "lp-round", "highs", "milp"])
def test_duplicate_rows_are_merged_exactly(method):
    rng = np.random.default_rng(5)
    distinct = rng.dirichlet(np.full(6, 0.4), size=30)  # a collapsed model: 30 distinct rows
    rows = rng.integers(0, 30, size=600)
    probs = distinct[rows]
    u = -(probs * np.log(probs)).sum(axis=1)
    omega = target_counts(rng.integers(0, 30, size=6), 60)
    lam = 1.5
    merged = solve_balanced(u, probs, omega, 60, lam, method=method, time_limit=30.0)
    assert merged.info["merged_columns"] == 30
    # the same instance with the duplicates made distinct by a tiny, objective-neutral amount
    # cannot be merged; both must reach the same optimum
    jitter = u + np.arange(600) * 1e-13
    alone = solve_balanced(jitter, probs, omega, 60, lam, method=method, time_limit=30.0)
    assert "merged_columns" not in alone.info
    assert merged.optimal and alone.optimal
    assert merged.objective == pytest.approx(alone.objective, abs=1e-8)
    if method in ("binary", "milp"):
        assert merged.objective == pytest.approx(_milp_optimum(u, probs, omega, 60, lam), abs=1e-8)
    # the units of a merged column go to its lowest-index members
    for r in set(rows[merged.indices].tolist()):
        members = np.flatnonzero(rows == r)
        taken = np.intersect1d(members, merged.indices)
        np.testing.assert_array_equal(taken, members[: taken.size])


@pytest.mark.parametrize("seed", range(6))
def test_distinct_count_and_top_sum_equal_their_sorting_references(seed):
    rng = np.random.default_rng(seed)
    limit = 50
    # short and long arrays (the prefix decides, or the whole array must be looked at), with
    # fewer and more distinct values than the limit, the extra ones early, late or nowhere
    for n, distinct in ((60, 40), (60, 51), (1000, 50), (1000, 51), (1000, 900), (1000, 1000)):
        v = rng.integers(0, distinct, size=n).astype(np.float64)
        v[rng.permutation(n)[:distinct]] = np.arange(distinct)  # exactly `distinct` values
        if seed % 2:  # one more, at the very end
            v[-1] = distinct + 0.5
        assert balance._distinct_exceed(v, limit) == (np.unique(v).size > limit)
    s = rng.normal(size=300).round(1)  # ties at the rank-b threshold
    for b in (0, 1, 17, 150, 299, 300, 400):
        ref = float(np.sort(s)[::-1][: min(b, s.size)].sum())
        assert balance._top_sum(s, b) == pytest.approx(ref, abs=1e-12)


def test_rows_that_share_a_hash_are_still_told_apart(monkeypatch):
    rng = np.random.default_rng(3)
    distinct = rng.dirichlet(np.ones(4), size=7)
    rows = rng.integers(0, 7, size=60)
    probs, u = distinct[rows], rng.random(7)[rows]
    # the groups by hand: numbered by first occurrence
    number: dict[int, int] = {}
    groups = np.array([number.setdefault(int(r), len(number)) for r in rows])
    first = np.array([int(np.flatnonzero(groups == g)[0]) for g in range(len(number))])
    for hashes in (None, np.zeros(60)):  # the projection, and one number for every row
        got_first, got_groups = balance._row_groups(u, probs, hashes)
        np.testing.assert_array_equal(got_first, first)
        np.testing.assert_array_equal(got_groups, groups)


def test_one_hot_probabilities_with_constant_u_are_solved_exactly():
    probs = np.eye(5)[np.arange(2000) % 5]
    u = np.full(2000, 0.7)
    omega = np.array([10.0, 0.0, 5.0, 3.0, 2.0])
    res = solve_balanced(u, probs, omega, 20, 2.0, method="binary")
    assert res.optimal and res.info["merged_columns"] == 5
    np.testing.assert_array_equal(np.bincount(np.arange(2000)[res.indices] % 5, minlength=5), omega)


def test_half_precision_probabilities_are_accepted_and_renormalized():
    u, probs, omega, b = _instance(200, 10, seed=8, budget=20)
    p16 = probs.astype(np.float16)
    assert np.abs(p16.astype(np.float64).sum(axis=1) - 1).max() > 1e-4  # rounded off
    res = solve_balanced(u, p16, omega, b, 1.0)
    ref_p = p16.astype(np.float64)
    ref_p /= ref_p.sum(axis=1, keepdims=True)
    ref = solve_balanced(u, ref_p, omega, b, 1.0)
    np.testing.assert_array_equal(res.indices, ref.indices)
    # float32 input is held to the tight tolerance and not silently rescaled
    with pytest.raises(ValueError, match=r"within 0.0001 for dtype float32"):
        solve_balanced(u, p16.astype(np.float32) * 1.01, omega, b, 1.0)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("probs", lambda u, p, o: (u, p.astype(np.complex128), o)),
        ("u", lambda u, p, o: (u.astype(np.complex128), p, o)),
        ("omega", lambda u, p, o: (u, p, o.astype(str))),
        ("u", lambda u, p, o: (u.astype(str), p, o)),
        ("probs", lambda u, p, o: (u, p.astype(object).astype(str), o)),
    ],
)
def test_complex_and_text_arrays_are_refused_by_name(name, make):
    u, probs, omega, b = _instance(20, 3, seed=2, budget=4)
    uu, pp, oo = make(u, probs, omega)
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        solve_balanced(uu, pp, oo, b, 1.0)
