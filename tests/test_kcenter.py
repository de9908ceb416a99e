"""KCenterGreedy(-CB) and the CoreSet MIP against brute-force references (DESIGN.md section 1)."""

from __future__ import annotations

import itertools
import json
import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.optimize import OptimizeResult
from scipy.optimize import milp as real_milp
from scipy.spatial.distance import cdist

from cbal.strategies import kcenter
from cbal.strategies.kcenter import CoresetResult, coreset_mip, kcenter_greedy

# --------------------------------------------------------------------------------------------
# slow references
# --------------------------------------------------------------------------------------------


def ref_greedy(x, lab, budget, probs=None, omega=None, lam=0.0):
    """Textbook KCenterGreedy(-CB): full distance matrix, exact objective for every candidate."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    full = cdist(x, x)
    if len(lab):
        d = cdist(x, np.asarray(lab, dtype=np.float64)).min(axis=1)
    else:
        d = np.linalg.norm(x - x.mean(axis=0), axis=1)  # the pool mean stands in for the 1st pick
    n_classes = probs.shape[1] if probs is not None else 1
    picked_sum = np.zeros(n_classes)
    picks: list[int] = []
    for step in range(budget):
        best, best_j = np.inf, -1
        for j in range(n):
            if j in picks:
                continue
            obj = -d[j]
            if lam > 0:
                obj += lam / n_classes * np.abs(omega - picked_sum - probs[j]).sum()
            if obj < best:  # strict: the lowest index wins ties
                best, best_j = obj, j
        picks.append(best_j)
        d = full[best_j].copy() if (step == 0 and len(lab) == 0) else np.minimum(d, full[best_j])
        if probs is not None:
            picked_sum = picked_sum + probs[best_j]
    return np.array(picks)


def ref_radius(x, lab, centers, n_outliers=0):
    """Robust covering radius of the pool by labeled + centers (brute force)."""
    x = np.asarray(x, dtype=np.float64)
    cover = np.full(len(x), np.inf)
    if len(lab):
        cover = cdist(x, lab).min(axis=1)
    if len(centers):
        cover = np.minimum(cover, cdist(x, x[list(centers)]).min(axis=1))
    return np.sort(cover)[::-1][n_outliers]


def ref_kcenter_opt(x, lab, budget, n_outliers=0):
    return min(
        ref_radius(x, lab, subset, n_outliers)
        for subset in itertools.combinations(range(len(x)), budget)
    )


def make_data(seed, n, d, n_lab, n_classes=4, clustered=False):
    rng = np.random.default_rng(seed)
    if clustered:
        means = rng.normal(scale=6.0, size=(5, d))
        x = means[rng.integers(0, 5, n)] + rng.normal(size=(n, d))
        lab = means[rng.integers(0, 5, n_lab)] + rng.normal(size=(n_lab, d))
    else:
        x = rng.normal(size=(n, d))
        lab = rng.normal(size=(n_lab, d))
    probs = rng.dirichlet(np.full(n_classes, 0.5), size=n)
    omega = rng.uniform(0, 8, n_classes)
    return x, lab, probs, omega


# --------------------------------------------------------------------------------------------
# kcenter_greedy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed,n,d,n_lab,budget,clustered",
    [
        (0, 50, 3, 0, 12, False),
        (1, 120, 5, 10, 30, False),
        (2, 200, 8, 40, 40, False),
        (3, 150, 2, 5, 40, True),
        (4, 90, 4, 0, 90, True),  # budget == N
    ],
)
@pytest.mark.parametrize("lam_scale", [0.0, 0.3, 2.0])
def test_greedy_matches_brute_force(seed, n, d, n_lab, budget, clustered, lam_scale):
    x, lab, probs, omega = make_data(seed, n, d, n_lab, clustered=clustered)
    lam = lam_scale * probs.shape[1]
    expected = ref_greedy(x, lab, budget, probs, omega, lam)
    got = kcenter_greedy(x, lab, budget, probs=probs, omega=omega, lam=lam)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", [5, 6])
def test_greedy_lazy_paths_match_brute_force(monkeypatch, seed):
    """Force the bulk-refresh escalation on every stale leader and a tiny distance block."""
    monkeypatch.setattr(kcenter, "_ESCALATE_AFTER", 1)
    monkeypatch.setattr(kcenter, "_ESCALATE_WIDTH", 2)
    x, lab, probs, omega = make_data(seed, 400, 3, 20, n_classes=6, clustered=True)
    for lam in (0.0, 4.0):
        expected = ref_greedy(x, lab, 60, probs, omega, lam)
        got = kcenter_greedy(x, lab, 60, probs=probs, omega=omega, lam=lam, chunk_size=7)
        np.testing.assert_array_equal(got, expected)


def ref_greedy_vectorized(x, lab, budget, probs=None, omega=None, lam=0.0):
    """Same as ref_greedy, candidates vectorized per step (for pools too big for a Python loop)."""
    full = cdist(x, x)
    d = cdist(x, lab).min(axis=1)
    n_classes = probs.shape[1] if probs is not None else 1
    picked_sum = np.zeros(n_classes)
    picked = np.zeros(len(x), dtype=bool)
    picks = []
    for _ in range(budget):
        obj = -d.copy()
        if lam > 0:
            obj += lam / n_classes * np.abs(omega - picked_sum - probs).sum(axis=1)
        obj[picked] = np.inf
        j = int(np.argmin(obj))
        picks.append(j)
        picked[j] = True
        d = np.minimum(d, full[j])
        if probs is not None:
            picked_sum = picked_sum + probs[j]
    return np.array(picks)


@pytest.mark.parametrize("clustered", [False, True])
def test_greedy_medium_pool_matches_reference(clustered):
    """A pool large enough that stale points are refreshed one by one between full updates."""
    x, lab, probs, omega = make_data(12, 3000, 4, 30, n_classes=5, clustered=clustered)
    omega = omega * 10
    for lam in (0.0, 5.0):
        expected = ref_greedy_vectorized(x, lab, 150, probs, omega, lam)
        got = kcenter_greedy(x, lab, 150, probs=probs, omega=omega, lam=lam)
        np.testing.assert_array_equal(got, expected)


def test_cb_term_changes_the_selection():
    # guards against a test suite where the balancing term never matters
    x, lab, probs, omega = make_data(2, 200, 8, 40)
    plain = kcenter_greedy(x, lab, 40)
    cb = kcenter_greedy(x, lab, 40, probs=probs, omega=omega, lam=2.0 * probs.shape[1])
    assert not np.array_equal(plain, cb)


def test_float32_input_matches_float64_reference():
    x, lab, _, _ = make_data(7, 150, 6, 20)
    got = kcenter_greedy(x.astype(np.float32), lab.astype(np.float32), 30)
    np.testing.assert_array_equal(got, ref_greedy(x, lab, 30))


def test_lam_zero_is_plain_greedy_and_ignores_probs():
    x, lab, probs, omega = make_data(8, 300, 10, 30)
    plain = kcenter_greedy(x, lab, 50)
    with_probs = kcenter_greedy(x, lab, 50, probs=probs, omega=omega, lam=0.0)
    np.testing.assert_array_equal(plain, with_probs)
    assert len(set(plain.tolist())) == 50
    # farthest-first: each pick is the farthest point from labeled + earlier picks
    first = int(np.argmax(cdist(x, lab).min(axis=1)))
    assert plain[0] == first


def test_empty_labeled_first_pick_is_farthest_from_mean():
    x, _, _, _ = make_data(9, 100, 4, 0)
    expected = int(np.argmax(np.linalg.norm(x - x.mean(axis=0), axis=1)))
    for lab in (None, np.empty((0, 4)), np.empty(0)):
        assert kcenter_greedy(x, lab, 5)[0] == expected


def test_huge_lam_tracks_omega_on_one_hot_probs():
    rng = np.random.default_rng(10)
    n, n_classes = 400, 4
    x = rng.normal(size=(n, 5))
    lab = rng.normal(size=(20, 5))
    labels = rng.integers(0, n_classes, n)
    probs = np.eye(n_classes)[labels]
    omega = np.array([9.0, 6.0, 4.0, 1.0])
    picks = kcenter_greedy(x, lab, 20, probs=probs, omega=omega, lam=1e6)
    np.testing.assert_array_equal(np.bincount(labels[picks], minlength=n_classes), omega)
    plain = kcenter_greedy(x, lab, 20)
    assert not np.array_equal(np.bincount(labels[plain], minlength=n_classes), omega)


def test_deterministic_ties_lowest_index():
    # four identical far points: the lowest index is picked first
    x = np.array([[0.0, 0.0], [5.0, 5.0], [5.0, 5.0], [0.1, 0.0], [5.0, 5.0]])
    lab = np.array([[0.0, 0.0]])
    assert kcenter_greedy(x, lab, 1)[0] == 1


def test_no_n_by_n_allocation():
    rng = np.random.default_rng(11)
    n, n_lab, d, n_classes = 20_000, 5_000, 16, 10
    x = rng.normal(size=(n, d))
    lab = rng.normal(size=(n_lab, d))
    probs = rng.dirichlet(np.ones(n_classes), size=n)
    omega = np.full(n_classes, 30.0)
    tracemalloc.start()
    try:
        picks = kcenter_greedy(x, lab, 300, probs=probs, omega=omega, lam=5.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(np.unique(picks)) == 300
    # N x N float64 would be 3.2 GB and N x L 800 MB; the chunked code needs ~50 MB
    assert peak < 80e6, f"peak traced memory {peak / 1e6:.0f} MB"
    assert peak < n * n_lab * 8 / 10


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"embeddings": np.zeros(5)}, "embeddings"),
        ({"embeddings": np.array([[0.0, np.nan]] * 5)}, "embeddings"),
        ({"embeddings": np.zeros((0, 2))}, "embeddings"),
        ({"embeddings": np.array([["a", "b"]] * 5)}, "embeddings"),
        ({"labeled_embeddings": np.zeros((3, 3))}, "labeled_embeddings"),
        ({"labeled_embeddings": np.array([[np.inf, 0.0]])}, "labeled_embeddings"),
        ({"budget": 0}, "budget"),
        ({"budget": 6}, "budget"),
        ({"budget": 2.5}, "budget"),
        ({"budget": True}, "budget"),
        ({"lam": -1.0}, "lam"),
        ({"lam": np.nan}, "lam"),
        ({"lam": "5"}, "lam"),
        ({"lam": 1.0, "probs": None}, "probs"),
        ({"lam": 1.0, "omega": None}, "omega"),
        ({"lam": 1.0, "probs": np.full((4, 3), 1 / 3)}, "probs"),
        ({"lam": 1.0, "probs": np.full((5, 3), np.nan)}, "probs"),
        ({"lam": 1.0, "omega": np.ones(4)}, "omega"),
        ({"lam": 1.0, "omega": np.array([1.0, np.nan, 1.0])}, "omega"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_greedy_validation_names_the_argument(kwargs, name):
    args = {
        "embeddings": np.arange(10.0).reshape(5, 2),
        "labeled_embeddings": np.zeros((1, 2)),
        "budget": 2,
        "probs": np.full((5, 3), 1 / 3),
        "omega": np.ones(3),
        "lam": 0.0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        kcenter_greedy(
            args.pop("embeddings"), args.pop("labeled_embeddings"), args.pop("budget"), **args
        )


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"time_limit": 0.0}, "time_limit"),
        ({"time_limit": np.inf}, "time_limit"),
        ({"outlier_fraction": 1.0}, "outlier_fraction"),
        ({"outlier_fraction": -0.1}, "outlier_fraction"),
        ({"max_points": 1}, "max_points"),
        ({"rng": "seed"}, "rng"),
        ({"budget": 0}, "budget"),
    ],
)
def test_coreset_validation_names_the_argument(kwargs, name):
    x = np.arange(10.0).reshape(5, 2)
    budget = kwargs.pop("budget", 2)
    with pytest.raises(ValueError, match=name):
        coreset_mip(x, np.zeros((1, 2)), budget, **kwargs)


# --------------------------------------------------------------------------------------------
# coreset_mip
# --------------------------------------------------------------------------------------------


def small_instance(seed, n=12, n_lab=2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, size=(n, 2))
    lab = rng.uniform(0, 10, size=(n_lab, 2))
    return x, lab


@pytest.mark.parametrize("n_lab", [0, 2])
def test_coreset_finds_the_brute_force_optimum(n_lab):
    improved = 0
    for seed in range(6):
        x, lab = small_instance(seed, n_lab=n_lab)
        res = coreset_mip(x, lab, 3, time_limit=30.0)
        opt = ref_kcenter_opt(x, lab, 3)
        greedy = kcenter_greedy(x, lab, 3)
        assert res.status == "optimal" and res.optimal and not res.fallback
        assert res.radius == pytest.approx(opt, rel=1e-9)
        assert ref_radius(x, lab, res.indices) == pytest.approx(opt, rel=1e-9)
        assert res.greedy_radius == pytest.approx(ref_radius(x, lab, greedy), rel=1e-9)
        assert res.radius <= res.greedy_radius + 1e-12
        assert res.lower_bound == pytest.approx(opt, rel=1e-9)
        assert len(np.unique(res.indices)) == 3
        improved += res.radius < res.greedy_radius - 1e-9
    assert improved > 0  # the MIP must beat the greedy somewhere, or this test proves little


def test_coreset_on_a_line_known_optimum():
    # two clusters on a line, one labeled point at 0; 2 centers: optimum is 0.5 (centers at the
    # middles of the clusters), greedy starts at the far end and does worse
    x = np.array([[v, 0.0] for v in (4.0, 4.5, 5.0, 9.0, 9.5, 10.0)])
    lab = np.array([[0.0, 0.0]])
    res = coreset_mip(x, lab, 2)
    assert res.radius == pytest.approx(0.5)
    assert sorted(res.indices.tolist()) == [1, 4]
    assert res.greedy_radius == pytest.approx(1.0)


def test_coreset_with_outliers_matches_brute_force():
    for seed in range(3):
        x, lab = small_instance(seed + 20, n=11)
        res = coreset_mip(x, lab, 2, outlier_fraction=0.2)  # floor(0.2 * 11) = 2 outliers
        assert res.n_outliers == 2
        assert res.optimal
        assert res.radius == pytest.approx(ref_kcenter_opt(x, lab, 2, n_outliers=2), rel=1e-9)


def test_coreset_subsample_and_record():
    rng = np.random.default_rng(30)
    x = rng.normal(size=(300, 4))
    lab = rng.normal(size=(15, 4))
    res = coreset_mip(x, lab, 10, max_points=60, time_limit=30.0, rng=1)
    assert isinstance(res, CoresetResult)
    assert res.subsampled and res.n_points == 60
    assert len(np.unique(res.indices)) == 10 and res.indices.max() < 300
    assert res.radius <= res.greedy_radius + 1e-12
    assert res.greedy_radius <= res.greedy_radius_full + 1e-9
    greedy = kcenter_greedy(x, lab, 10)
    assert res.greedy_radius_full == pytest.approx(ref_radius(x, lab, greedy), rel=1e-9)
    rec = res.to_record()
    json.dumps(rec, allow_nan=False)
    assert "indices" not in rec and rec["n_selected"] == 10
    again = coreset_mip(x, lab, 10, max_points=60, time_limit=30.0, rng=1)
    np.testing.assert_array_equal(res.indices, again.indices)


def _timeout_result(*args, **kwargs):
    return OptimizeResult(status=1, x=None, success=False, message="Time limit reached.")


def test_coreset_time_out_falls_back_to_greedy(monkeypatch):
    x, lab = small_instance(1)
    monkeypatch.setattr(kcenter, "milp", _timeout_result)
    with pytest.warns(RuntimeWarning, match="greedy_fallback"):
        res = coreset_mip(x, lab, 3, time_limit=5.0)
    assert res.fallback and not res.optimal
    assert res.status.startswith("greedy_fallback:") and "time limit" in res.status
    np.testing.assert_array_equal(res.indices, kcenter_greedy(x, lab, 3))
    assert res.radius == res.greedy_radius
    assert 0 < res.lower_bound <= ref_kcenter_opt(x, lab, 3) + 1e-12
    assert res.to_record()["fallback"] is True


def test_coreset_solver_error_falls_back_to_greedy(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("HiGHS exploded")

    x, lab = small_instance(2)
    monkeypatch.setattr(kcenter, "milp", boom)
    with pytest.warns(RuntimeWarning, match="HiGHS exploded"):
        res = coreset_mip(x, lab, 3)
    assert res.fallback and "solver failure" in res.status


def test_coreset_real_time_limit_is_reported():
    rng = np.random.default_rng(40)
    x = rng.normal(size=(400, 8))
    with pytest.warns(RuntimeWarning):
        res = coreset_mip(x, None, 40, time_limit=1e-6)
    assert res.fallback and "time limit" in res.status
    assert len(np.unique(res.indices)) == 40


def test_coreset_time_out_after_an_improvement_keeps_it(monkeypatch):
    """MIPs after the first feasible one "time out": the improvement found is kept."""
    state = {"found": False}

    def patched(*args, **kwargs):
        if state["found"]:
            return _timeout_result()
        res = real_milp(*args, **kwargs)
        state["found"] = res.x is not None
        return res

    monkeypatch.setattr(kcenter, "milp", patched)
    cut_short = 0
    for seed in range(12):
        x, lab = small_instance(seed, n=14)
        state["found"] = False
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            res = coreset_mip(x, lab, 3)
        if res.status == "time_limit":
            cut_short += 1
            assert not res.fallback and not res.optimal
            assert res.radius < res.greedy_radius
            assert res.radius == pytest.approx(ref_radius(x, lab, res.indices), rel=1e-9)
            assert any("not proven optimal" in str(w.message) for w in record)
        else:  # the feasible solve was the search's last one
            assert res.status == "optimal" and not record
    assert cut_short > 0


def test_coreset_budget_above_max_points_falls_back():
    rng = np.random.default_rng(50)
    x = rng.normal(size=(100, 3))
    with pytest.warns(RuntimeWarning, match="max_points"):
        res = coreset_mip(x, None, 30, max_points=20)
    assert res.fallback and res.status.startswith("greedy_fallback:")
    np.testing.assert_array_equal(res.indices, kcenter_greedy(x, None, 30))


def test_coreset_budget_equals_pool():
    x, lab = small_instance(3, n=5)
    res = coreset_mip(x, lab, 5)
    assert res.optimal and res.radius == 0.0 and sorted(res.indices.tolist()) == list(range(5))


def test_greedy_path_equals_one_greedy_per_lambda(monkeypatch):
    from cbal.strategies import balance

    rng = np.random.default_rng(3)
    emb = rng.normal(size=(400, 8))
    lab = rng.normal(size=(30, 8))
    probs = rng.dirichlet(np.full(5, 0.5), size=400)
    omega = balance.target_counts(np.array([10, 2, 8, 6, 4]), 25)
    lams = [0.0, 0.5, 5.0, 50.0]
    calls = []
    real = kcenter._min_dist
    monkeypatch.setattr(kcenter, "_min_dist", lambda *a: calls.append(1) or real(*a))
    path = kcenter.kcenter_greedy_path(emb, lab, 25, lams, probs=probs, omega=omega)
    assert len(calls) == 1  # the labeled-set distances once for the whole path
    for lam, picks in zip(lams, path, strict=True):
        alone = kcenter.kcenter_greedy(emb, lab, 25, probs=probs, omega=omega, lam=lam)
        np.testing.assert_array_equal(picks, alone)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        kcenter.kcenter_greedy_path(emb, lab, 25, [1.0, -1.0], probs=probs, omega=omega)
    with pytest.raises(ValueError, match="probs is required"):
        kcenter.kcenter_greedy_path(emb, lab, 25, [1.0])
