"""The teaching pages: the 2-D playground's logic (cbal.playground) and, through Streamlit's
AppTest, the Explainer and Playground pages."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cbal import runner
from cbal.data import imbalanced_counts
from cbal.playground import STRATEGY_NAMES, Playground, Setup, l1_worked, make_pool
from cbal.strategies import balance

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60
# strongly imbalanced: 4 head classes of 150 points, 4 tail classes of 15
STRONG = Setup(num_classes=8, imbalance_factor=0.1, profile="step", seed=0)
STRONG_BUDGET = 20


# -- cbal.playground ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup",
    [Setup(), Setup(num_classes=2, imbalance_factor=0.02), STRONG, Setup(10, 0.05, "exp", seed=3)],
)
def test_the_pool_has_the_imbalanced_counts_and_balanced_extra_sets(setup):
    pool = make_pool(setup)
    expected = imbalanced_counts(
        setup.n_max, setup.num_classes, setup.imbalance_factor, setup.profile
    )
    assert balance.class_counts(pool.y, setup.num_classes).tolist() == expected.tolist()
    assert len(pool.x) == expected.sum() and pool.x.shape[1] == 2
    c = setup.num_classes
    assert balance.class_counts(pool.y_init, c).tolist() == [setup.initial_per_class] * c
    assert len(set(balance.class_counts(pool.y_test, c).tolist())) == 1


def test_the_pool_and_every_pick_are_determined_by_the_seed():
    a, b = make_pool(Setup(seed=7)), make_pool(Setup(seed=7))
    for name in ("x", "y", "x_init", "y_init", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x, make_pool(Setup(seed=8)).x)
    runs = Playground(a), Playground(b)
    for name in STRATEGY_NAMES:  # random included: its generator is seeded by seed and cycle
        first, second = (r.next_cycle(name, 6) for r in runs)
        np.testing.assert_array_equal(first.indices, second.indices)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_next_cycle_labels_exactly_the_budget_and_reset_undoes_it(name):
    run = Playground(make_pool(Setup()))
    start = len(run.labeled_points()[1])
    picked = [run.next_cycle(name, 7).indices for _ in range(2)]
    labeled = np.concatenate(picked)
    assert run.cycle == 2 and len(run.labeled_points()[1]) == start + 14
    assert len(np.unique(labeled)) == 14 and not np.isin(labeled, run.unlabeled).any()
    assert run.labeled_counts.sum() == start + 14
    run.reset()
    assert run.cycle == 0 and len(run.labeled_points()[1]) == start and len(run.revealed) == 0


@pytest.mark.parametrize("seed", range(5))
def test_entropy_cb_picks_a_more_balanced_batch_than_entropy(seed):
    run = Playground(make_pool(dataclasses.replace(STRONG, seed=seed)))
    plain = run.propose("entropy", STRONG_BUDGET)
    balanced = run.propose("entropy-cb", STRONG_BUDGET)  # the paper's λ = 0.6
    assert balanced.lam == 0.6 and plain.lam is None
    assert balanced.l1 < plain.l1
    # Ω after a balanced initial set: the budget spread evenly
    np.testing.assert_allclose(balanced.omega, STRONG_BUDGET / STRONG.num_classes)


def test_the_playground_solves_with_the_exact_lp_rounded(monkeypatch):
    # a step must answer at once: binary may search for seconds where it cannot prove
    methods = []
    real = balance.solve_balanced

    def spy(*args, **kw):
        methods.append(kw.get("method"))
        return real(*args, **kw)

    monkeypatch.setattr(balance, "solve_balanced", spy)
    run = Playground(make_pool(STRONG))
    run.next_cycle("entropy-cb", STRONG_BUDGET, lam=100.0)
    run.propose("entropy-cb", STRONG_BUDGET, lam=20.0)
    assert methods == ["lp-round", "lp-round"]


@pytest.mark.parametrize("cb, baseline", [("entropy-cb", "entropy"), ("kcenter-cb", "kcenter")])
def test_lambda_zero_picks_exactly_the_baseline_batch(cb, baseline):
    run = Playground(make_pool(STRONG))
    run.next_cycle(cb, 10)  # an imbalanced labeled set: Ω is no longer uniform
    same = run.propose(cb, STRONG_BUDGET, lam=0.0).indices
    np.testing.assert_array_equal(same, run.propose(baseline, STRONG_BUDGET).indices)
    assert not np.array_equal(run.propose(cb, STRONG_BUDGET).indices, same)


def test_bad_requests_say_what_is_wrong():
    run = Playground(make_pool(Setup(num_classes=2, imbalance_factor=0.02)))  # 150 + 3 points
    with pytest.raises(ValueError, match="more than the 153 unlabeled points left"):
        run.propose("entropy", 154)
    with pytest.raises(ValueError, match="does not run on the playground"):
        run.propose("bald", 5)
    with pytest.raises(ValueError, match="budget"):
        run.propose("entropy", 0)
    with pytest.raises(ValueError, match="num_classes"):
        make_pool(Setup(num_classes=1))


def test_l1_worked_shows_the_numbers_of_the_formula():
    w = l1_worked([6, 2, 1, 1])
    assert (w.total, w.mean, w.deviations, w.spread) == (10, 2.5, (3.5, 0.5, 1.5, 1.5), 7)
    assert w.scale == pytest.approx(4 / 60)
    assert w.score == balance.l1_score([6, 2, 1, 1]) == pytest.approx(7 * 4 / 60)
    with pytest.raises(ValueError, match="non-negative"):
        l1_worked([3, -1])


# -- the pages -----------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The dashboard on an empty run store, with the GPU probe answered "no GPU"."""
    monkeypatch.setenv("CBAL_CACHE", str(tmp_path))
    no_gpu = {"python": sys.executable, "cuda": False, "name": None, "torch": "test"}
    (tmp_path / runner.DEVICE_FILE).write_text(json.dumps(no_gpu))

    def open_page(page: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
        assert "Explainer" in [link.proto.page for link in at.get("page_link")]  # home links it
        at.switch_page(page).run()
        assert not at.exception, at.exception
        return at

    return open_page


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def titles(chart: dict) -> str:
    return " | ".join(a["text"] for a in chart["layout"].get("annotations", []))


def test_the_explainer_renders_formulas_and_a_pool_that_follows_the_imbalance_factor(app):
    at = app("pages/5_Explainer.py")
    formulas = "\n".join(e.value for e in at.latex)
    assert r"\lVert \Omega - P^\top z \rVert_1" in formulas and r"\Omega_c = \max" in formulas
    assert r"\mathrm{L1}" in formulas and "= 0.467" in formulas  # the worked example 6, 2, 1, 1
    pool = charts(at)[0]["data"][0]["y"]
    assert pool == imbalanced_counts(4500, 10, 0.1, "step").tolist()
    at.select_slider(key="ex_if").set_value(0.01).run()
    assert charts(at)[0]["data"][0]["y"] == [4500] * 5 + [45] * 5
    at.radio(key="ex_profile").set_value("exp").run()
    assert charts(at)[0]["data"][0]["y"] == imbalanced_counts(4500, 10, 0.01, "exp").tolist()
    at.text_input(key="ex_h").set_value("3, x").run()
    assert "Class histogram" in at.error[0].value and not at.exception


def batch_l1s(at: AppTest) -> list[float]:
    """The batch L1 of the left and right playground figures, read from their panel titles."""
    return [float(re.search(r"Next batch: L1 = ([\d.]+)", titles(c)).group(1)) for c in charts(at)]


def test_the_playground_steps_both_loops_by_exactly_the_budget(app):
    at = app("pages/4_Playground.py")
    at.slider(key="pg_budget").set_value(7).run()
    start = [len(r.labeled_points()[1]) for r in at.session_state["pg_loops"].values()]
    at.button(key="pg_next").click().run()
    at.button(key="pg_next").click().run()
    assert not at.exception and "Cycle 2" in at.success[0].value
    runs = at.session_state["pg_loops"].values()
    assert [len(r.labeled_points()[1]) for r in runs] == [n + 14 for n in start]
    captions = " ".join(c.value for c in at.caption)
    assert all(f"Cycle 2 · {n + 14} labeled" in captions for n in start)
    at.button(key="pg_reset").click().run()
    assert [len(r.labeled_points()[1]) for r in at.session_state["pg_loops"].values()] == start


def test_the_playground_shows_entropy_cb_balancing_and_lambda_zero_undoing_it(app):
    at = app("pages/4_Playground.py")
    at.slider(key="pg_classes").set_value(STRONG.num_classes)
    at.slider(key="pg_budget").set_value(STRONG_BUDGET).run()
    plain, balanced = batch_l1s(at)
    run = Playground(make_pool(STRONG))  # the page's numbers are the API's
    assert plain == round(run.propose("entropy", STRONG_BUDGET).l1, 2)
    assert balanced == round(run.propose("entropy-cb", STRONG_BUDGET).l1, 2) < plain
    at.select_slider(key="pg_lam_right_entropy-cb").set_value(0.0).run()
    shared = f"The two batches share {STRONG_BUDGET} of {STRONG_BUDGET} points."
    assert shared in [c.value for c in at.caption]
    assert batch_l1s(at) == [plain, plain]
    left, right = ([t["y"] for t in c["data"] if t["type"] == "bar"][0] for c in charts(at))
    assert left == right  # the same batch histogram


def test_the_playground_explains_an_exhausted_pool_inline(app):
    at = app("pages/4_Playground.py")
    at.slider(key="pg_classes").set_value(2)
    at.select_slider(key="pg_if").set_value(0.02)
    at.slider(key="pg_budget").set_value(40).run()  # a pool of 153 points: 3 cycles, then 33 left
    for _ in range(4):
        at.button(key="pg_next").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "more than the 33 unlabeled points left" in errors and "reset" in errors
