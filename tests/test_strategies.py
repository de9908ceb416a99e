"""The registry: every strategy on synthetic arrays, λ = 0 equivalences, Entropy-PL by hand."""

import numpy as np
import pytest

from cbal.strategies import STRATEGIES, SelectionContext, get, largest_remainder, scores


def _ctx(seed=0, n=120, c=5, t=6, d=8, lam=0.0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.5), size=n)
    mc = rng.dirichlet(np.full(c, 0.5), size=(t, n)).astype(np.float32)
    return SelectionContext(
        probs=probs,
        labeled_counts=np.array([9, 7, 3, 1, 0][:c]),
        mc_probs=mc,
        embeddings=rng.normal(size=(n, d)),
        labeled_embeddings=rng.normal(size=(20, d)),
        lam=lam,
        rng=np.random.default_rng(seed),
    )


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_returns_budget_distinct_positions(name):
    ctx = _ctx(lam=STRATEGIES[name].default_lam(5))
    sel = STRATEGIES[name].select(ctx, 15)
    assert len(sel.indices) == 15 and len(np.unique(sel.indices)) == 15
    assert sel.indices.min() >= 0 and sel.indices.max() < 120


@pytest.mark.parametrize(
    "cb, base", [("entropy-cb", "entropy"), ("bald-cb", "bald"), ("kcenter-cb", "kcenter")]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lambda_zero_reproduces_the_baseline_exactly(cb, base, seed):
    got = STRATEGIES[cb].select(_ctx(seed, lam=0.0), 17).indices
    want = STRATEGIES[base].select(_ctx(seed, lam=0.0), 17).indices
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cb", ["entropy-cb", "bald-cb", "kcenter-cb"])
def test_balancing_term_moves_the_batch_towards_omega(cb):
    base = STRATEGIES[STRATEGIES[cb].baseline].select(_ctx(3), 20)
    sel = STRATEGIES[cb].select(_ctx(3, lam=50.0), 20)
    ctx = _ctx(3)
    omega = np.asarray(sel.omega)
    p = ctx.probs if cb != "bald-cb" else ctx.mc_probs.mean(0)
    gap = lambda idx: np.abs(omega - p[idx].sum(0)).sum()  # noqa: E731
    assert gap(sel.indices) < 0.8 * gap(base.indices)
    assert sel.diagnostics["balance_l1"] == pytest.approx(gap(sel.indices))


def test_cb_diagnostics_are_recorded():
    sel = get("entropy-cb").select(_ctx(lam=0.6), 10)
    d = sel.diagnostics
    for key in ("omega", "expected_counts", "objective", "bound", "status", "solve_time"):
        assert key in d
    assert d["status"] == "optimal" and d["bound"] <= d["objective"] + 1e-9


def test_largest_remainder():
    np.testing.assert_array_equal(largest_remainder(np.array([1.0, 1.0, 1.0]), 4), [2, 1, 1])
    np.testing.assert_array_equal(largest_remainder(np.array([0.0, 3.0, 1.0]), 8), [0, 6, 2])
    np.testing.assert_array_equal(largest_remainder(np.array([0.0, 0.0]), 3), [2, 1])
    assert largest_remainder(np.array([2.5, 0.5, 7.0]), 10).sum() == 10


def test_entropy_pl_quotas_and_fill_up_by_hand():
    # 3 classes; labeled counts (4, 0, 2), budget 6 -> T* = 4, Ω = (0, 4, 2), quotas (0, 4, 2)
    probs = np.array(
        [
            [0.90, 0.05, 0.05],  # 0: pseudo 0
            [0.50, 0.30, 0.20],  # 1: pseudo 0, high entropy
            [0.10, 0.80, 0.10],  # 2: pseudo 1
            [0.20, 0.60, 0.20],  # 3: pseudo 1
            [0.05, 0.90, 0.05],  # 4: pseudo 1
            [0.30, 0.30, 0.40],  # 5: pseudo 2, highest entropy of class 2
            [0.10, 0.10, 0.80],  # 6: pseudo 2
            [0.05, 0.05, 0.90],  # 7: pseudo 2
        ]
    )
    ctx = SelectionContext(probs=probs, labeled_counts=np.array([4, 0, 2]))
    sel = get("entropy-pl").select(ctx, 6)
    assert sel.diagnostics["quotas"] == [0, 4, 2]
    # class 1 has only 3 candidates (2, 3, 4); class 2 gives its 2 best (5, 6); one fill-up pick
    # is the most uncertain leftover: item 1
    assert sorted(sel.indices.tolist()) == [1, 2, 3, 4, 5, 6]
    assert sel.diagnostics["filled"] == 1
    u = scores.entropy(probs)
    assert u[1] == max(u[[0, 1, 7]])


def test_unknown_strategy_and_missing_arrays():
    with pytest.raises(ValueError, match="strategy='nope'"):
        get("nope")
    ctx = SelectionContext(probs=np.full((5, 2), 0.5), labeled_counts=np.array([1, 1]))
    with pytest.raises(ValueError, match="mc_probs"):
        get("bald").select(ctx, 2)
    with pytest.raises(ValueError, match="embeddings"):
        get("kcenter").select(ctx, 2)


@pytest.mark.parametrize("name", ["entropy-cb", "kcenter-cb", "entropy-pl"])
def test_omega_is_computed_once_per_step_and_carried(name, monkeypatch):
    from cbal.strategies import balance

    calls = []
    real = balance.target_counts
    monkeypatch.setattr(balance, "target_counts", lambda *a: calls.append(a) or real(*a))
    ctx = _ctx(lam=STRATEGIES[name].default_lam(5))
    omega = ctx.omega(15)  # the loop's call
    sel = STRATEGIES[name].select(ctx, 15)
    assert len(calls) == 1 and sel.omega is omega  # the strategy read the carried Ω
    assert ctx.omega(15) is omega


def test_selection_summary_by_hand():
    from cbal.strategies.summary import selection_summary

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    s = selection_summary(
        np.array([0, 1]),
        probs,
        np.array([1.5, 0.5]),
        np.array([0, 1, 1, 0]),
        np.array([3, 1]),
        u=np.array([0.3, 0.5, 0.7, 0.0]),
    )
    np.testing.assert_allclose(s.expected_counts, [1.1, 0.9])
    assert s.balance_l1 == pytest.approx(0.4 + 0.4)
    assert s.batch_counts.tolist() == [1, 1] and s.batch_l1 == 0.0
    assert s.labeled_counts_after.tolist() == [4, 2]
    assert s.labeled_l1 == pytest.approx(abs(4 - 3) * 2 / (2 * 6 * 1) * 2)
    assert s.mean_informativeness == pytest.approx(0.4)
