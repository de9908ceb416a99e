"""The λ explorer's engine (cbal.explore): re-selection on saved arrays, λ paths, errors."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cbal import explore
from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store, atomic_save_npz
from cbal.strategies.balance import target_counts

TINY = dict(initial_labeled=40, budget=20, cycles=2, epochs=5, lr_milestones=(4,), device="cpu")
REPRODUCED = ("entropy-cb", "bald-cb", "kcenter-cb")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One store with a tiny digits run per CB strategy, and one without pool arrays."""
    store = Store(tmp_path_factory.mktemp("explore"))
    ids = {}
    for strategy in REPRODUCED:
        ids[strategy] = store.create_run(preset("digits", strategy=strategy, **TINY))
        execute(store, ids[strategy])
    bare = {**TINY, "cycles": 1, "epochs": 1, "lr_milestones": (1,)}
    ids["no-arrays"] = store.create_run(
        preset("digits", strategy="entropy-cb", save_pool_arrays=False, **bare)
    )
    execute(store, ids["no-arrays"])
    return store, ids


# --------------------------------------------------------------------------------------------
# Re-selection reproduces the runs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", REPRODUCED)
def test_reselect_reproduces_the_runs_selection(runs, strategy):
    store, ids = runs
    run_id = ids[strategy]
    records = store.read_cycles(run_id)
    selecting = [r["cycle"] for r in records if r["selected_counts"] is not None]
    assert selecting == [0, 1]
    for k in selecting:
        ca = explore.load_cycle(store, run_id, k)
        rec = records[k]
        assert ca.strategy == strategy and ca.lam == rec["lam"] > 0 and ca.budget == 20
        assert ca.probs.dtype == np.float32 and ca.config is not None
        r = explore.reselect(ca)  # at the stored λ
        assert r.lam == rec["lam"]
        assert set(r.selected.tolist()) == set(ca.selected_pos.tolist())
        # both the CB solver and the greedy define an order: it must match too
        np.testing.assert_array_equal(r.selected, ca.selected_pos)
        assert r.same_set and r.same_order and r.jaccard == 1.0
        explicit = explore.reselect(ca, lam=rec["lam"])  # the same λ, given explicitly
        assert explicit.lam == rec["lam"] and explicit.same_order
        np.testing.assert_array_equal(ca.selected, store.load_cycle_arrays(run_id, k)["selected"])
        # the numbers the run recorded
        assert r.batch_counts.tolist() == rec["selected_counts"]
        assert r.batch_l1 == pytest.approx(rec["batch_l1"], abs=1e-12)
        assert r.labeled_counts_after.tolist() == rec["labeled_counts_after"]
        assert r.labeled_l1 == pytest.approx(rec["labeled_l1"], abs=1e-12)
        # (the run's diagnostics summed float32 probs in float32: equal up to its rounding)
        np.testing.assert_allclose(r.expected_counts, rec["selection"]["expected_counts"], 1e-6)
        assert r.balance_l1 == pytest.approx(rec["selection"]["balance_l1"], rel=1e-6)
        if strategy == "kcenter-cb":
            assert r.mode == "kcenter" and r.status == "greedy" and r.objective is None
            assert r.u_source == "entropy of the saved probs"
        else:
            # the run's work limits: proved, or stopped, as in the run
            assert r.mode == "cb" and r.status == rec["selection"]["status"]
            assert r.objective == pytest.approx(rec["selection"]["objective"])
            assert r.u_source.startswith("saved scores")
            assert r.dual is not None and r.dual.shape == (10,)
        json.dumps(r.to_record())


def test_a_lam_the_run_did_not_use_gets_the_explorers_search_budget(runs, monkeypatch):
    store, ids = runs
    ca = explore.load_cycle(store, ids["entropy-cb"], 0)
    assert ca.solver == "binary" and ca.time_limit == 60.0 > explore.EXPLORE_TIME_LIMIT
    seen: list[tuple[str, float]] = []
    solve_balanced, solve_path = explore.balance.solve_balanced, explore.balance.solve_path

    def spy_one(*args, **kw):
        seen.append(("one", kw["time_limit"]))
        return solve_balanced(*args, **kw)

    def spy_path(*args, **kw):
        seen.append(("path", kw["time_limit"]))
        return solve_path(*args, **kw)

    monkeypatch.setattr(explore.balance, "solve_balanced", spy_one)
    monkeypatch.setattr(explore.balance, "solve_path", spy_path)
    own = explore.reselect(ca)  # the run's own λ: the run's limit, so the run's picks
    assert own.jaccard == 1.0
    explore.reselect(ca, lam=ca.lam * 3)
    explore.reselect(ca, lam=ca.lam * 3, time_limit=7.5)  # asked for: as asked
    explore.lambda_path(ca, [0.1, ca.lam])
    assert seen == [
        ("one", 60.0),
        ("one", explore.EXPLORE_TIME_LIMIT),
        ("one", 7.5),
        ("path", explore.EXPLORE_TIME_LIMIT),
    ]


def test_lambda_changes_the_selection_somewhere(runs):
    """Guards the reproduction test against a trivial pass: λ = 0 must pick differently."""
    store, ids = runs
    differs = 0
    for strategy in REPRODUCED:
        for k in (0, 1):
            ca = explore.load_cycle(store, ids[strategy], k)
            differs += not explore.reselect(ca, lam=0.0).same_set
    assert differs >= 1


def test_kcenter_path_on_a_run(runs):
    store, ids = runs
    ca = explore.load_cycle(store, ids["kcenter-cb"], 1)
    path = explore.lambda_path(ca, lams=[0.0, ca.lam, 1e3])
    assert path.mode == "kcenter" and path.run_lam == ca.lam
    assert path.points[1].same_order
    assert all(p.estimated_time is not None and not p.slow for p in path.points)


def test_entropy_cb_path_on_a_bald_run_uses_bald_scores(runs):
    store, ids = runs
    ca = explore.load_cycle(store, ids["bald-cb"], 0)
    path = explore.lambda_path(ca, lams=[0.0, ca.lam])
    assert path.strategy == "bald-cb" and path.u_source == "saved scores (BALD)"
    assert path.points[1].same_order
    np.testing.assert_array_equal(
        path.points[0].selected, np.argsort(-ca.scores, kind="stable")[: ca.budget]
    )
    other = explore.reselect(ca, strategy="entropy-cb")
    assert other.u_source == "entropy of the saved MC-mean probs"


# --------------------------------------------------------------------------------------------
# Missing arrays
# --------------------------------------------------------------------------------------------


def test_no_pool_arrays(runs):
    store, ids = runs
    run_id = ids["no-arrays"]
    assert store.read_cycles(run_id)[0]["selected_counts"] is not None
    with pytest.raises(explore.NoPoolArrays) as err:
        explore.load_cycle(store, run_id, 0)
    msg = str(err.value)
    assert "save_pool_arrays=false" in msg and "--save-pool-arrays true" in msg
    assert "N×C float32" in msg


def test_npz_without_probs_is_no_pool_arrays(runs, tmp_path):
    store, ids = runs
    src = store.run_dir(ids["entropy-cb"])
    copy = Store(tmp_path)
    shutil.copytree(src, copy.run_dir("copied"))
    arrays = copy.load_cycle_arrays("copied", 0)
    del arrays["probs"]
    atomic_save_npz(copy.run_dir("copied") / "cycle_0.npz", arrays)
    with pytest.raises(explore.NoPoolArrays, match="lack probs.*--save-pool-arrays true"):
        explore.load_cycle(copy, "copied", 0)
    explore.load_cycle(copy, "copied", 1)  # the other cycle is intact


def test_cycle_without_a_selection(runs):
    store, ids = runs
    with pytest.raises(ValueError, match="cycle 2 made no selection.*only trains"):
        explore.load_cycle(store, ids["entropy-cb"], 2)
    with pytest.raises(ValueError, match="cycle 7 made no selection"):
        explore.load_cycle(store, ids["entropy-cb"], 7)


def test_kcenter_without_embeddings_says_so(runs):
    store, ids = runs
    assert not explore.load_cycle(store, ids["entropy-cb"], 0).has_embeddings  # not read
    ca = explore.load_cycle(store, ids["entropy-cb"], 0, embeddings=True)
    assert ca.has_embeddings  # digits preset saves them: drop them
    bare = explore.CycleArrays(
        strategy="kcenter-cb",
        lam=5.0,
        selected_pos=ca.selected_pos,
        probs=ca.probs,
        omega=ca.omega,
        labeled_counts=ca.labeled_counts,
        pool_labels=ca.pool_labels,
    )
    with pytest.raises(explore.NoEmbeddings, match="--save-embeddings true"):
        explore.reselect(bare)
    with pytest.raises(explore.NoPoolArrays):  # NoEmbeddings is a NoPoolArrays
        explore.lambda_path(bare)
    # the CB problem needs no embeddings
    assert explore.reselect(bare, strategy="entropy-cb", lam=0.6).mode == "cb"


# --------------------------------------------------------------------------------------------
# λ paths on constructed instances
# --------------------------------------------------------------------------------------------


def _synthetic(
    probs: np.ndarray,
    labels: np.ndarray,
    labeled_counts: np.ndarray,
    budget: int,
    strategy: str = "entropy",
    selected: np.ndarray | None = None,
) -> explore.CycleArrays:
    probs = np.asarray(probs, dtype=np.float32)
    sel = np.arange(budget) if selected is None else np.asarray(selected)
    return explore.CycleArrays(
        strategy=strategy,
        lam=0.0,
        selected_pos=sel.astype(np.int64),
        probs=probs,
        omega=target_counts(labeled_counts, budget),
        labeled_counts=np.asarray(labeled_counts, dtype=np.int64),
        pool_labels=np.asarray(labels, dtype=np.int64),
    )


def _non_increasing(values: list[float], tol: float = 1e-7) -> bool:
    return all(b <= a + tol * max(1.0, abs(a)) for a, b in zip(values, values[1:], strict=False))


def test_lambda_path_on_soft_probs():
    rng = np.random.default_rng(3)
    n, c, b = 400, 6, 40
    probs = rng.dirichlet(np.full(c, 0.4), size=n)
    probs[:, 0] += 2.0 * probs.max(axis=1)  # skew the pool towards class 0
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(c, p=p) for p in probs])
    ca = _synthetic(probs, labels, rng.integers(0, 30, c), b)
    path = explore.lambda_path(ca)
    assert len(path.points) == 30
    np.testing.assert_array_equal(path.lams, np.concatenate([[0.0], np.logspace(-2, 3, 29)]))
    assert all(p.optimal for p in path.points)
    # λ = 0: the top-b of u (entropy of the saved probs), in that order
    u = -(ca.probs.astype(np.float64) * np.log(np.clip(ca.probs, 1e-12, 1))).sum(axis=1)
    np.testing.assert_array_equal(path.points[0].selected, np.argsort(-u, kind="stable")[:b])
    # the LP optimum's balance term ‖Ω − Pᵀz‖₁ can only shrink as λ grows
    lp = [p.lp_balance_l1 for p in path.points]
    assert _non_increasing(lp) and lp[-1] < lp[0] - 1.0
    # warm-started points equal cold solves
    for i in (5, 17, 29):
        cold = explore.reselect(ca, lam=float(path.lams[i]))
        np.testing.assert_array_equal(cold.selected, path.points[i].selected)
    rows = path.rows()
    assert len(rows) == 30 and list(rows[0]) == list(explore.PATH_COLUMNS)
    cols = path.columns()
    np.testing.assert_allclose(cols["balance_l1"], [p.balance_l1 for p in path.points])
    assert path.run_lam == 0.0  # an entropy run: Entropy-CB at λ = 0


def test_lambda_path_on_one_hot_probs():
    rng = np.random.default_rng(5)
    c, b = 5, 25
    labels = np.concatenate([np.full(120, 0), np.repeat(np.arange(1, c), 20)])
    probs = np.eye(c)[labels]
    ca = _synthetic(probs, labels, np.full(c, 4), b, strategy="random")
    # entropy is 0 everywhere on one-hot probs: give class 0 the high scores instead
    u = rng.uniform(0.0, 1.0, labels.size) + (labels == 0)
    ca = explore.CycleArrays(**{**ca.__dict__, "strategy": "entropy-cb", "scores": u})
    path = explore.lambda_path(ca)
    for key in ("balance_l1", "batch_l1", "labeled_l1"):
        values = [getattr(p, key) for p in path.points]
        assert _non_increasing(values), (key, values)
    first, last = path.points[0], path.points[-1]
    assert first.batch_counts.tolist() == [25, 0, 0, 0, 0] and first.batch_l1 == 1.0
    assert last.batch_counts.tolist() == [5] * 5 and last.batch_l1 == 0.0
    assert last.labeled_l1 == 0.0
    np.testing.assert_array_equal(first.selected, np.argsort(-u, kind="stable")[:b])
    np.testing.assert_allclose(first.expected_counts, first.batch_counts)


# --------------------------------------------------------------------------------------------
# Numbers by hand
# --------------------------------------------------------------------------------------------

_P = np.array(
    [
        [1, 0, 0],
        [0, 1, 0],
        [0.5, 0.5, 0],
        [1 / 3, 1 / 3, 1 / 3],
        [0.5, 0, 0.5],
        [0, 0.5, 0.5],
    ]
)
_LABELS = np.array([0, 1, 0, 2, 2, 1])


def test_jaccard_by_hand():
    assert explore.jaccard([0, 1, 2], [1, 2, 3]) == 0.5
    assert explore.jaccard([0, 1], [2, 3]) == 0.0
    assert explore.jaccard([4, 2], [2, 4]) == 1.0
    assert explore.jaccard([1, 2, 3, 4], [4, 5]) == pytest.approx(1 / 5)


def test_histograms_by_hand_for_the_runs_own_selection():
    ca = _synthetic(_P, _LABELS, [2, 2, 0], 3, strategy="random", selected=[0, 1, 2])
    # Ω: T* = (4 + 3) / 3 = 7/3 → (1/3, 1/3, 7/3)
    np.testing.assert_allclose(ca.omega, [1 / 3, 1 / 3, 7 / 3])
    r = explore.reselect(ca)
    assert r.mode == "run" and r.status == "run's own selection" and r.optimal is None
    np.testing.assert_array_equal(r.selected, [0, 1, 2])
    np.testing.assert_allclose(r.expected_counts, [1.5, 1.5, 0.0])
    assert r.balance_l1 == pytest.approx(7 / 6 + 7 / 6 + 7 / 3)
    assert r.batch_counts.tolist() == [2, 1, 0]
    assert r.batch_l1 == pytest.approx((1 + 0 + 1) * 3 / (2 * 3 * 2))  # 0.5
    assert r.labeled_counts_after.tolist() == [4, 3, 0]
    assert r.labeled_l1 == pytest.approx((5 / 3 + 2 / 3 + 7 / 3) * 3 / (2 * 7 * 2))  # 0.5
    assert r.mean_informativeness == pytest.approx(math.log(2) / 3, rel=1e-6)
    assert r.u_source == "entropy of the saved probs"
    assert r.jaccard == 1.0 and r.same_order
    # a random run has no λ: a λ is ignored, with a note, and there is no path
    r5 = explore.reselect(ca, lam=5.0)
    assert r5.mode == "run" and "has no λ" in r5.notes[0]
    with pytest.raises(ValueError, match="strategy='entropy-cb'"):
        explore.lambda_path(ca)


def test_histograms_by_hand_for_a_reselection():
    ca = _synthetic(_P, _LABELS, [2, 2, 0], 3, strategy="random", selected=[0, 1, 2])
    r = explore.reselect(ca, strategy="entropy-cb", lam=0.0)
    # entropies: 0, 0, ln2, ln3, ln2, ln2 → top-3 (stable) = 3, 2, 4
    np.testing.assert_array_equal(r.selected, [3, 2, 4])
    np.testing.assert_allclose(r.expected_counts, [4 / 3, 5 / 6, 5 / 6], rtol=1e-6)
    assert r.balance_l1 == pytest.approx(1 + 0.5 + 1.5, rel=1e-6)
    assert r.batch_counts.tolist() == [1, 0, 2]  # labels 2, 0, 2
    assert r.batch_l1 == pytest.approx(0.5)
    assert r.labeled_counts_after.tolist() == [3, 2, 2]
    assert r.labeled_l1 == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) * 3 / (2 * 7 * 2))  # 1/7
    assert r.mean_informativeness == pytest.approx((math.log(3) + 2 * math.log(2)) / 3, 1e-6)
    assert r.jaccard == pytest.approx(1 / 5)  # {2} over {0, 1, 2, 3, 4}
    assert (
        not r.same_set and r.optimal and r.objective == pytest.approx(-3 * r.mean_informativeness)
    )
    assert r.gap == pytest.approx(0.0, abs=1e-9)
    assert r.lam == 0.0 and r.strategy == "entropy-cb"


def test_modes_of_an_entropy_run():
    ca = _synthetic(_P, _LABELS, [2, 2, 0], 3, strategy="entropy", selected=[3, 2, 4])
    assert explore.reselect(ca).mode == "run"
    r = explore.reselect(ca, lam=0.0)  # a λ turns Entropy into its CB problem
    assert r.mode == "cb" and r.same_order
    assert explore.reselect(ca, strategy="entropy-cb").lam == 0.6  # the paper's default
    assert explore.reselect(ca, lam=2.5).lam == 2.5
    with pytest.raises(ValueError, match="BALD scores"):
        explore.reselect(ca, strategy="bald-cb")
    with pytest.raises(ValueError, match="cannot re-run coreset"):
        explore.reselect(ca, strategy="coreset")
    with pytest.raises(ValueError, match="lam"):
        explore.reselect(ca, lam=-1.0)
    with pytest.raises(ValueError, match="finite"):
        explore.lambda_path(ca, lams=[0.0, float("nan")])


def test_kcenter_time_estimate_flags_big_pools():
    n, c, d = 45_000, 100, 512
    big = explore.CycleArrays(
        strategy="kcenter-cb",
        lam=50.0,
        selected_pos=np.arange(2500),
        probs=np.broadcast_to(np.float32(1 / c), (n, c)),  # zero-stride: no memory
        omega=np.full(c, 25.0),
        labeled_counts=np.full(c, 50),
        pool_labels=np.zeros(n, dtype=np.int64),
        embeddings=np.broadcast_to(np.float32(0), (n, d)),
        labeled_embeddings=np.broadcast_to(np.float32(0), (5000, d)),
    )
    est = explore.estimate_seconds(big)
    assert est > explore.SLOW_SECONDS
    small = explore.CycleArrays(**{**big.__dict__, "labeled_embeddings": big.embeddings[:10]})
    assert explore.estimate_seconds(small) < est


@pytest.mark.slow
def test_explore_does_not_import_torch():
    code = "import sys, cbal.explore; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
