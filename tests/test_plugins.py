"""Bring your own strategy: the generated scores and CB variants, the registration API, plug-in
discovery through entry points, and clear errors for a plug-in that misbehaves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cbal
from cbal import explore, plots, strategies
from cbal.cli import build_parser
from cbal.config import ConfigError, make_config, preset
from cbal.loop import execute
from cbal.store import Store
from cbal.strategies import (
    SCORES,
    STRATEGIES,
    SelectionContext,
    StrategyError,
    balance,
    class_balanced,
    scores,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cbal-ratio-plugin"
ONE_CYCLE = dict(initial_labeled=40, budget=20, cycles=1, epochs=4, lr_milestones=(3,))
FLAGS = ["--initial-labeled", "40", "--budget", "20", "--cycles", "1", "--epochs", "4"]
FLAGS += ["--lr-milestones", "3", "--device", "cpu"]


@pytest.fixture
def registry():
    """The registry as it was before the test, restored after (registrations are global)."""
    saved, saved_scores = dict(STRATEGIES), dict(SCORES)
    yield STRATEGIES
    STRATEGIES.clear()
    STRATEGIES.update(saved)
    SCORES.clear()
    SCORES.update(saved_scores)


@pytest.fixture
def example_plugin(tmp_path, monkeypatch, registry):
    """The example package under examples/, made visible as an installed distribution with a
    ``cbal.strategies`` entry point (here and in every subprocess the test starts)."""
    site = tmp_path / "site"
    info = site / "cbal_ratio-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cbal-ratio\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[cbal.strategies]\nratio = cbal_ratio:register\n")
    for path in (EXAMPLE, site):
        monkeypatch.syspath_prepend(str(path))
    paths = [str(EXAMPLE), str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setattr(strategies, "_loaded_plugins", set())
    assert "ratio" in strategies.load_plugins()
    return site


def _ctx(seed=0, n=150, c=6, t=5, lam=0.6):
    rng = np.random.default_rng(seed)
    return SelectionContext(
        probs=rng.dirichlet(np.full(c, 0.4), size=n),
        labeled_counts=np.array([12, 9, 5, 3, 1, 0][:c]),
        mc_probs=rng.dirichlet(np.full(c, 0.4), size=(t, n)).astype(np.float32),
        lam=lam,
        rng=np.random.default_rng(seed),
    )


# -- scores against baal's heuristics ------------------------------------------------------------
# baal.active.heuristics (v2.1): Margin scores sort(p)[-1] - sort(p)[-2] and Certainty max(p),
# each ranked lowest first (reverse=False); on (N, C) input neither averages MC passes.


def _baal_margin(p):
    s = np.sort(p, axis=1)
    return s[:, -1] - s[:, -2]


def _baal_certainty(p):
    return np.max(p, axis=1)


@pytest.mark.parametrize("c", [2, 3, 10, 100])
def test_margin_and_least_confidence_equal_baal(c):
    p = np.random.default_rng(c).dirichlet(np.full(c, 0.3), size=400)
    for ours, theirs in ((scores.margin, _baal_margin), (scores.least_confidence, _baal_certainty)):
        u = ours(p)
        np.testing.assert_allclose(u, 1.0 - theirs(p), rtol=0, atol=1e-15)
        # the same order: ours highest first, baal's lowest first (no ties in these draws)
        np.testing.assert_array_equal(scores.top_k(u, len(u)), np.argsort(theirs(p)))


def test_margin_and_least_confidence_hand_values():
    p = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(scores.margin(p), [0.8, 1.0, 0.0])
    np.testing.assert_allclose(scores.least_confidence(p), [0.5, 0.6, 0.0])


def test_scores_equal_the_installed_baal_when_there_is_one():
    heuristics = pytest.importorskip("baal.active.heuristics")
    p = np.random.default_rng(1).dirichlet(np.full(7, 0.3), size=300)
    np.testing.assert_allclose(1 - heuristics.Margin().compute_score(p), scores.margin(p))
    np.testing.assert_allclose(
        1 - heuristics.Certainty().compute_score(p), scores.least_confidence(p)
    )


# -- one generic constructor ---------------------------------------------------------------------


def _paper_cb(u, p, ctx, budget):
    """Entropy-CB / BALD-CB as written before the generic constructor: Eq. 3 on (u, P)."""
    omega = balance.target_counts(ctx.labeled_counts, budget)
    return balance.solve_balanced(u, p, omega, budget, ctx.lam, method=ctx.solver).indices


@pytest.mark.parametrize("lam", [0.0, 0.6, 2.0, 50.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generic_constructor_reproduces_entropy_cb_and_bald_cb(seed, lam):
    ctx = _ctx(seed, lam=lam)
    entropy_cb = _paper_cb(scores.entropy(ctx.probs), ctx.probs, ctx, 25)
    mc_mean = ctx.mc_probs.mean(axis=0, dtype=ctx.mc_probs.dtype)
    bald_cb = _paper_cb(scores.bald(ctx.mc_probs), mc_mean, ctx, 25)
    for name, want in (("entropy-cb", entropy_cb), ("bald-cb", bald_cb)):
        np.testing.assert_array_equal(STRATEGIES[name].select(ctx, 25).indices, want)
        fresh = class_balanced(SCORES[STRATEGIES[name].score])  # a new instance: the same picks
        np.testing.assert_array_equal(fresh(ctx, 25).indices, want)


@pytest.mark.parametrize("name", ["margin", "leastconf"])
def test_generated_pairs(name):
    plain, cb = STRATEGIES[name], STRATEGIES[f"{name}-cb"]
    assert cb.baseline == name and cb.uses_lam and cb.problem == "cb" and cb.score == name
    ctx = _ctx(3, lam=0.0)
    u = SCORES[name].fn(ctx.probs)
    np.testing.assert_array_equal(plain.select(ctx, 20).indices, scores.top_k(u, 20))
    assert set(cb.select(ctx, 20).indices) == set(plain.select(ctx, 20).indices)  # λ = 0
    picks = plain.select(ctx, 20).indices
    plain_l1 = np.abs(ctx.omega(20) - ctx.probs[picks].sum(axis=0)).sum()
    assert cb.select(_ctx(3, lam=50.0), 20).diagnostics["balance_l1"] < plain_l1


# -- the registration API ------------------------------------------------------------------------


def _top_confident(ctx, budget):  # a plug-in strategy: the most confident images
    return np.argsort(-ctx.probs.max(axis=1), kind="stable")[:budget]


def test_register_strategy_and_score_reach_every_list(registry):
    cbal.register_strategy("confident", _top_confident, description="most confident first")
    plain, cb = cbal.register_score("gini", lambda p: 1 - (p**2).sum(axis=1), label="Gini")
    assert (plain.name, cb.name, cb.label, cb.baseline) == ("gini", "gini-cb", "Gini-CB", "gini")
    assert {"confident", "gini", "gini-cb"} <= set(STRATEGIES)
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "gini-cb" in help_text and "most confident first" in help_text
    assert make_config(strategy="gini-cb").strategy == "gini-cb"
    with pytest.raises(ConfigError, match="lam.*gini"):
        make_config(strategy="gini", lam=1.0)
    colors = [plots.strategy_color(n) for n in STRATEGIES]
    assert len(set(colors)) == len(colors)  # each its own colour, from the registry
    assert plots.strategy_symbol("gini") == plots.strategy_symbol("gini-cb")
    with pytest.raises(ValueError, match="already registered"):
        cbal.register_score("gini", np.ones_like)
    with pytest.raises(ValueError, match="not allowed"):
        cbal.register_strategy("Bad Name", _top_confident)


def test_a_registered_cb_variant_re_solves_in_the_lambda_explorer(registry):
    cbal.register_score("gini", lambda p: 1 - (p**2).sum(axis=1))
    ctx = _ctx(4, lam=0.6)
    sel = STRATEGIES["gini-cb"].select(ctx, 20)
    ca = explore.CycleArrays(
        strategy="gini-cb",
        lam=0.6,
        selected_pos=sel.indices,
        probs=ctx.probs.astype(np.float32),
        omega=sel.omega,
        labeled_counts=ctx.labeled_counts,
        pool_labels=ctx.probs.argmax(axis=1),
        scores=sel.scores,
    )
    own = explore.reselect(ca)
    assert own.mode == "cb" and own.same_set and own.u_source == "saved scores (gini)"
    path = explore.lambda_path(ca, [0.0, 0.6, 100.0])
    assert path.run_lam == 0.6 and path.points[1].jaccard == 1.0
    assert path.points[2].balance_l1 <= path.points[0].balance_l1


BAD = {
    "raises": (lambda ctx, b: 1 / 0, "raised ZeroDivisionError"),
    "short": (lambda ctx, b: np.arange(b - 1), "19 indices, not budget=20"),
    "duplicates": (lambda ctx, b: np.r_[np.arange(b - 1), 0], "1 duplicate indices"),
    "outside": (lambda ctx, b: np.arange(b) + len(ctx.probs) - 5, "outside the pool"),
    "floats": (lambda ctx, b: np.arange(b) + 0.5, "not integer positions"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_plugin_output_is_a_clear_error_naming_the_strategy(registry, case):
    select, why = BAD[case]
    s = cbal.register_strategy(f"bad-{case}", select)
    with pytest.raises(StrategyError, match=f"strategy 'bad-{case}' .*{why}"):
        strategies.select_checked(s, _ctx(), 20)


def test_a_bad_score_is_named_too(registry):
    cbal.register_score("nans", lambda p: np.full(len(p), np.nan))
    with pytest.raises(StrategyError, match="strategy 'nans-cb' score 'nans' returned NaN"):
        strategies.select_checked(STRATEGIES["nans-cb"], _ctx(), 20)


def test_a_failing_plugin_fails_its_run_and_keeps_the_finished_cycles(tmp_path, registry):
    calls = []

    def flaky(ctx, budget):  # fine in cycle 0, then out of range
        calls.append(budget)
        return np.arange(budget) if len(calls) == 1 else np.arange(budget) + 10**6

    cbal.register_strategy("flaky", flaky)
    store = Store(tmp_path)
    run_id = store.create_run(preset("digits", strategy="flaky", **{**ONE_CYCLE, "cycles": 2}))
    with pytest.raises(StrategyError, match="strategy 'flaky' returned indices outside"):
        execute(store, run_id, threads=1)
    info = store.run_info(run_id)
    assert info.state == "failed" and "strategy 'flaky'" in info.status["error"]
    assert len(info.cycles) == 1 and info.cycles[0]["selected_counts"] is not None


# -- an installed plug-in: entry-point discovery, CLI, sweep, the Launch form ---------------------


def _cli(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "cbal", "--cache-dir", str(tmp_path / "cache"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_broken_plugin_is_left_out_with_a_warning(tmp_path, monkeypatch, registry):
    info = tmp_path / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[cbal.strategies]\nbroken = no_such_module:x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(strategies, "plugin_errors", [])
    with pytest.warns(UserWarning, match="plug-in 'broken'.*left out"):
        assert "broken" not in strategies.load_plugins()
    assert "no_such_module" in strategies.plugin_errors[0]


def test_the_example_plugin_runs_one_cycle_from_the_cli(tmp_path, example_plugin):
    assert STRATEGIES["ratio-cb"].baseline == "ratio" and STRATEGIES["ratio"].plugin
    help_run = _cli(tmp_path, "run", "--help")
    assert "ratio-cb" in help_run.stdout and "second to the first" in help_run.stdout
    done = _cli(tmp_path, "run", "--preset", "digits", "--strategy", "ratio-cb", *FLAGS)
    assert done.returncode == 0, done.stderr
    store = Store(tmp_path / "cache")
    (info,) = store.list_runs()
    assert info.state == "done" and [c["lam"] for c in info.cycles] == [0.6, 0.6]
    assert (
        explore.reselect(explore.load_cycle(store, info.run_id, 0)).u_source
        == "saved scores (Ratio)"
    )
    listed = _cli(tmp_path, "list").stdout.splitlines()[1].split()
    assert listed[4:6] == ["ratio-cb", "0.6"]


def test_the_example_plugin_in_a_sweep(tmp_path, example_plugin):
    sets = [
        x
        for k, v in ONE_CYCLE.items()
        for x in ("--set", f"{k}={v if not isinstance(v, tuple) else v[0]}")
    ]
    out = _cli(
        tmp_path,
        "sweep",
        "--preset",
        "digits",
        "--strategies",
        "ratio",
        "--seeds",
        "0",
        *sets,
        "--set",
        "device=cpu",
    )
    assert out.returncode == 0, out.stderr
    (info,) = Store(tmp_path / "cache").list_runs()
    assert info.config.strategy == "ratio" and info.state == "done"
    # reproduce's grid takes it when asked
    grid = ("reproduce", "--preset", "digits", "--strategies", "ratio,ratio-cb", "--seeds", "0")
    dry = _cli(tmp_path, *grid, "--ifs", "0.1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "strategy=ratio,seed=0" in dry.stdout and "strategy=ratio-cb,seed=0" in dry.stdout


@pytest.mark.slow
def test_the_example_plugin_in_the_launch_form(tmp_path, monkeypatch, example_plugin):
    from streamlit.testing.v1 import AppTest

    from cbal import runner

    store = Store(tmp_path / "cache")
    store.root.mkdir()
    monkeypatch.setenv("CBAL_CACHE", str(store.root))
    no_gpu = {"python": sys.executable, "cuda": False, "name": None, "torch": "test"}
    (store.root / runner.DEVICE_FILE).write_text(json.dumps(no_gpu))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert "Ratio-CB" in at.multiselect(key="f_strategies").options
    for key, value in {
        "f_initial_labeled": 40,
        "f_budget": 20,
        "f_cycles": 1,
        "f_epochs": 4,
    }.items():
        at.number_input(key=key).set_value(value)
    at.text_input(key="f_lr_milestones").set_value("3")
    at.multiselect(key="f_strategies").set_value(["ratio-cb"]).run()
    assert "λ for Ratio-CB" in [n.label for n in at.number_input]
    at.button(key="launch").click().run()
    assert not at.exception and not at.error
    (info,) = store.list_runs()
    try:
        assert runner.wait(store, [info.run_id], timeout=180) == {info.run_id: "done"}
    finally:
        runner.cancel(store, info.run_id)
    assert store.run_info(info.run_id).config.strategy == "ratio-cb"


def test_the_readme_example_registers_ratio_and_its_cb_variant(registry, monkeypatch):
    section = (ROOT / "README.md").read_text().split("## Add your own strategy")[1]
    (code,) = re.findall(r"```python\n(.*?)\n```", section.split("\n## ")[0], re.S)
    started = []
    monkeypatch.setattr(cbal, "run", lambda cfg, **kw: started.append(cfg) or "id", raising=False)
    exec(code, {})
    assert [c.strategy for c in started] == ["ratio-cb"]
    assert STRATEGIES["ratio-cb"].label == "Ratio-CB" and STRATEGIES["ratio-cb"].baseline == "ratio"
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from cbal_ratio import ratio  # the example package computes the same u

    p = np.random.default_rng(0).dirichlet(np.full(5, 0.5), size=200)
    np.testing.assert_allclose(SCORES["ratio"].fn(p), ratio(p), rtol=1e-12)


def test_a_plugin_with_lam_but_no_resolver_shows_its_own_selection(registry):
    cbal.register_strategy("own-lam", _top_confident, uses_lam=True, lam_small=1.0)
    ctx = _ctx(5)
    sel = strategies.select_checked(STRATEGIES["own-lam"], ctx, 20)
    ca = explore.CycleArrays(
        strategy="own-lam",
        lam=1.0,
        selected_pos=sel.indices,
        probs=ctx.probs.astype(np.float32),
        omega=ctx.omega(20),
        labeled_counts=ctx.labeled_counts,
        pool_labels=ctx.probs.argmax(axis=1),
    )
    assert strategies.cb_variant("own-lam") is None
    r = explore.reselect(ca)
    assert r.mode == "run" and r.same_order
    assert explore.reselect(ca, strategy="entropy-cb").mode == "cb"  # any run admits this one
