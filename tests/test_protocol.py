"""The paper's protocol: balanced initial sets, the paper's network, BatchNorm MC passes,
``compat=paper``'s quirks against hand-computed cases, and pool exhaustion."""

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from cbal.config import ConfigError, RunConfig, describe_network, make_config, preset
from cbal.data import build_pool
from cbal.loop import describe_exhaustion, exhausted_classes, prepare
from cbal.models import build_model, small_cnn
from cbal.strategies import STRATEGIES, SelectionContext, paper
from cbal.strategies.balance import class_counts
from cbal.train import DeviceImages, infer, random_crop_flip

# --------------------------------------------------------------------------------------------
# Balanced initial set
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_train, classes, initial, per_class",
    [(50_000, 10, 5000, 500), (50_000, 100, 5000, 50), (100_000, 200, 5000, 25)],
    ids=["cifar10", "cifar100", "tinyimagenet"],
)
def test_balanced_initial_set_at_paper_sizes(n_train, classes, initial, per_class):
    y = np.random.default_rng(0).permutation(np.arange(n_train) % classes)
    pool = build_pool(y, classes, initial, 1.0, "step", seed=4)
    assert class_counts(y[pool.labeled], classes).tolist() == [per_class] * classes
    # IF = 1 keeps every other image, each class capped at the same n_max (the paper's files)
    assert pool.pool_counts.tolist() == [n_train // classes - per_class] * classes


def test_balanced_initial_set_on_digits_for_every_seed():
    for seed in range(5):
        prep = prepare(preset("digits", seed=seed))
        counts = class_counts(prep.dataset.y_train[prep.pool.labeled], 10)
        assert counts.tolist() == [5] * 10


def test_balanced_remainder_is_spread_by_the_seed():
    y = np.arange(1000) % 10
    shares = [np.bincount(y[build_pool(y, 10, 53, 0.5, "step", s).labeled]) for s in range(6)]
    for counts in shares:
        assert sorted(counts.tolist()) == [5] * 7 + [6] * 3
    assert len({tuple(c) for c in shares}) > 1


def test_random_initial_sampling_is_the_old_uniform_draw():
    y = np.arange(500) % 10
    pool = build_pool(y, 10, 37, 0.3, "step", seed=11, initial_sampling="random")
    want = np.sort(np.random.default_rng(11).choice(500, size=37, replace=False))
    np.testing.assert_array_equal(pool.labeled, want)


def test_a_class_too_small_for_its_share_is_an_error_before_any_run():
    y = np.array([0] * 50 + [1] * 3)
    with pytest.raises(ValueError, match="class 1"):
        build_pool(y, 2, 10, 0.5, "step", 0)
    assert len(build_pool(y, 2, 10, 0.5, "step", 0, initial_sampling="random").labeled) == 10
    with pytest.raises(ConfigError) as info:
        prepare(preset("digits", initial_labeled=1480))
    assert info.value.field == "initial_labeled" and "initial_sampling=random" in str(info.value)


# --------------------------------------------------------------------------------------------
# Configuration: new fields, derived network, old configs
# --------------------------------------------------------------------------------------------


def test_new_fields_validate_naming_the_field():
    for field, value in [("initial_sampling", "x"), ("mc_source", "noise"), ("compat", "v0")]:
        with pytest.raises(ConfigError) as info:
            make_config(**{field: value})
        assert info.value.field == field
    with pytest.raises(ConfigError, match="dropout"):
        make_config(strategy="bald", mc_source="batchnorm", dropout=0.3)


def test_dropout_only_where_mc_dropout_needs_it():
    base = preset("digits")
    assert (base.dropout, base.mc_source, base.initial_sampling, base.compat) == (
        0.0,
        "dropout",
        "balanced",
        "clean",
    )
    bald = base.replace(strategy="bald")
    assert bald.dropout == 0.3
    assert bald.replace(mc_source="batchnorm").dropout == 0.0
    assert bald.replace(compat="paper").mc_source == "batchnorm"
    assert bald.replace(strategy="entropy").dropout == 0.0
    assert base.replace(dropout=0.5, strategy="bald").dropout == 0.5  # explicit values stay
    assert "no dropout; no MC passes" in describe_network(base)
    assert "dropout 0.3 before the classifier; 10 MC-dropout passes" in describe_network(bald)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_no_dropout_module_in_models_without_mc_dropout(strategy):
    cfg = preset("digits", strategy=strategy)
    model = build_model(cfg.model, 10, 1, cfg.dropout)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if STRATEGIES[strategy].needs_mc:
        assert [m.p for m in dropouts] == [0.3]
    else:
        assert dropouts == []
    paper_cfg = cfg.replace(compat="paper")
    model = build_model(paper_cfg.model, 10, 1, paper_cfg.dropout)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_stored_config_records_the_effective_network(tmp_path):
    from cbal.store import Store

    store = Store(tmp_path)
    for strategy, dropout in [("entropy", 0.0), ("bald", 0.3)]:
        run_id = store.create_run(preset("digits", strategy=strategy))
        data = json.loads((store.run_dir(run_id) / "config.json").read_text())
        assert data["dropout"] == dropout and data["version"] == 3


def test_version_1_config_loads_as_the_run_it_was():
    v1 = json.loads(preset("digits").to_json())
    for name in ("initial_sampling", "mc_source", "compat"):
        del v1[name]
    v1.update(version=1, dropout=0.3)
    del v1["solver_mip_gap"]
    cfg = RunConfig.from_dict(v1)
    assert (cfg.initial_sampling, cfg.dropout, cfg.mc_source, cfg.version) == (
        "random",
        0.3,
        "dropout",
        3,
    )
    assert cfg.solver_mip_gap == 0.0


def test_version_2_config_resumes_with_the_gap_it_was_solved_to():
    # version 2's binary solver proved optimality to a relative gap of 1e-9; version 3 stops
    # at 1e-4 unless told otherwise, so a stored version-2 run keeps its strict gap
    v2 = json.loads(preset("digits", strategy="entropy-cb").to_json())
    del v2["solver_mip_gap"]
    v2["version"] = 2
    cfg = RunConfig.from_dict(v2)
    assert (cfg.solver_mip_gap, cfg.version) == (0.0, 3)
    assert preset("digits").solver_mip_gap == 1e-4


# --------------------------------------------------------------------------------------------
# BatchNorm MC passes and augmented inference
# --------------------------------------------------------------------------------------------


def _model_and_images(seed=0):
    torch.manual_seed(seed)
    model = small_cnn(4, in_channels=1)
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = np.random.default_rng(seed).integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    return model, DeviceImages.create(x, (0.5,), (0.25,), torch.device("cpu"))


@pytest.mark.parametrize("augment", [None, (1, True)])
def test_batchnorm_passes_leave_running_statistics_unchanged(augment):
    model, images = _model_and_images()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idx = np.arange(3, 40)
    out = infer(model, images, idx, 8, mc_passes=5, seed=2, mc_source="batchnorm", augment=augment)
    after = model.state_dict()
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert not model.training
    assert out.mc_probs is not None and out.mc_probs.shape == (5, 37, 4)
    np.testing.assert_allclose(out.mc_probs.sum(axis=2), 1.0, atol=1e-5)
    assert np.abs(out.mc_probs[0] - out.mc_probs[1]).max() > 1e-4  # the passes differ
    again = infer(
        model, images, idx, 8, mc_passes=5, seed=2, mc_source="batchnorm", augment=augment
    )
    np.testing.assert_array_equal(out.mc_probs, again.mc_probs)


def test_augmented_inference_scores_cropped_flipped_images():
    model, images = _model_and_images(1)
    model.eval()
    idx = np.arange(0, 40, 2)
    got = infer(model, images, idx, 64, seed=7, augment=(1, True))
    gen = torch.Generator().manual_seed(7)
    x = random_crop_flip(images.x[torch.as_tensor(idx)], 1, True, gen)
    with torch.no_grad():
        logits, feats = model(images.normalize(x))
    np.testing.assert_allclose(got.probs, torch.softmax(logits, 1).double().numpy(), atol=1e-6)
    np.testing.assert_allclose(got.embeddings, feats.numpy(), atol=1e-6)
    clean = infer(model, images, idx, 64, seed=7)
    assert np.abs(clean.probs - got.probs).max() > 1e-3


# --------------------------------------------------------------------------------------------
# compat=paper quirks, each against a hand-computed case
# --------------------------------------------------------------------------------------------


def _ctx(probs, counts, compat, **kw):
    return SelectionContext(
        probs=np.asarray(probs, dtype=np.float64),
        labeled_counts=np.asarray(counts),
        compat=compat,
        **kw,
    )


def test_truncated_omega():
    probs = np.full((4, 3), 1 / 3)
    # |L| = 4, b = 4, C = 3: exact threshold 8/3, truncated 2
    np.testing.assert_allclose(_ctx(probs, [3, 1, 0], "clean").omega(4), [0, 5 / 3, 8 / 3])
    np.testing.assert_array_equal(_ctx(probs, [3, 1, 0], "paper").omega(4), [0, 1, 2])
    np.testing.assert_array_equal(paper.truncated_target_counts(np.array([5, 5]), 3), [1, 1])


def test_kcenter_features_rounded_to_two_decimals():
    # labeled at the origin; a is farther than b unrounded, b is farther once rounded
    emb = np.array([[0.0149, 0.0149], [0.0205, 0.0]], dtype=np.float32)
    lab = np.zeros((1, 2), dtype=np.float32)
    probs = np.full((2, 2), 0.5)
    for compat, want in [("clean", 0), ("paper", 1)]:
        ctx = _ctx(probs, [1, 0], compat, embeddings=emb, labeled_embeddings=lab)
        assert STRATEGIES["kcenter"].select(ctx, 1).indices.tolist() == [want]
    rounded = paper.round_embeddings(emb)
    assert rounded.dtype == np.float32 and np.array_equal(paper.round_embeddings(rounded), rounded)


def _original_kcenter_cb(emb, lab, probs, omega, budget, lam):
    """The released code's greedy rule, written out: minimise −d_min(i) + (λ/C)·‖Ω − Pᵀz − p_i‖₁."""
    emb, lab = np.around(emb, 2).astype(np.float64), np.around(lab, 2).astype(np.float64)
    centers = list(lab)
    z = np.zeros(probs.shape[1])
    picks: list[int] = []
    for _ in range(budget):
        best, best_val = -1, np.inf
        for i in range(len(emb)):
            if i in picks:
                continue
            d = min(np.linalg.norm(emb[i] - c) for c in centers)
            val = -d + lam / probs.shape[1] * np.abs(omega - z - probs[i]).sum()
            if val < best_val:
                best, best_val = i, val
        picks.append(best)
        centers.append(emb[best])
        z = z + probs[best]
    return picks


def test_kcenter_cb_paper_follows_the_original_rule():
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(30, 3)).astype(np.float32)
    lab = rng.normal(size=(6, 3)).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), size=30)
    counts = np.array([4, 2, 0])
    ctx = _ctx(probs, counts, "paper", embeddings=emb, labeled_embeddings=lab, lam=5.0)
    got = STRATEGIES["kcenter-cb"].select(ctx, 5).indices.tolist()
    omega = paper.truncated_target_counts(counts, 5)  # ⌊11/3⌋ = 3 → [0, 1, 3]
    np.testing.assert_array_equal(omega, [0, 1, 3])
    assert got == _original_kcenter_cb(emb, lab, probs, omega, 5, 5.0)


def test_entropy_cb_paper_with_the_binary_solver_is_the_original_optimum():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(3, 0.7), size=9)
    counts = np.array([3, 1, 0])
    ctx = _ctx(probs, counts, "paper", lam=0.6, solver="milp")
    got = set(STRATEGIES["entropy-cb"].select(ctx, 3).indices.tolist())
    omega = np.array([0.0, 1.0, 2.0])  # ⌊(4 + 3)/3⌋ = 2
    u = (probs * np.log(probs)).sum(axis=1)  # the original minimises Σ p log p ...

    def cost(z):  # ... plus λ‖Pᵀz − Ω‖₁ over binary z with b ones
        return u[list(z)].sum() + 0.6 * np.abs(probs[list(z)].sum(axis=0) - omega).sum()

    assert got == set(min(itertools.combinations(range(9), 3), key=cost))


def _pl_case():
    u = np.array([0.9, 0.8, 0.7, 0.5, 0.6, 0.4, 0.1, 0.95])
    pseudo = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    return u, pseudo


def test_entropy_pl_paper_fills_a_shortfall_at_random():
    u, pseudo = _pl_case()
    quotas = np.array([0, 2, 2])  # class 2 has one member: 3 quota picks for a budget of 4
    seen = set()
    for seed in range(60):
        picks, dropped, filled = paper.entropy_pl_picks(
            u, pseudo, quotas, 4, np.random.default_rng(seed)
        )
        assert (dropped, filled) == (0, 1) and len(picks) == 4
        assert {3, 4, 6} <= set(picks.tolist())  # class 1's two best, class 2's only member
        seen |= set(picks.tolist()) - {3, 4, 6}
    assert seen == {0, 1, 2, 5, 7}  # random fill, not the highest entropy (7) every time


def test_entropy_pl_paper_drops_a_surplus_among_full_classes():
    u = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    pseudo = np.array([0, 0, 0, 1, 2, 2, 2])
    quotas = np.array([2, 2, 2])  # picks {0, 1} + {3} (class 1 short) + {4, 5} = 5 for 3
    dropped_seen = set()
    for seed in range(60):
        picks, dropped, filled = paper.entropy_pl_picks(
            u, pseudo, quotas, 3, np.random.default_rng(seed)
        )
        assert (dropped, filled) == (2, 0) and len(picks) == 3
        assert 3 in picks and set(picks.tolist()) <= {0, 1, 3, 4, 5}
        dropped_seen |= {0, 1, 4, 5} - set(picks.tolist())
    assert dropped_seen == {0, 1, 4, 5}


def test_entropy_pl_registry_uses_the_truncated_quotas():
    probs = np.array([[0.8, 0.1, 0.1]] * 3 + [[0.1, 0.8, 0.1]] * 3 + [[0.1, 0.1, 0.8]] * 3)
    counts = np.array([3, 1, 0])  # b = 3: truncated Ω = ⌊7/3⌋ − n = [0, 1, 2]
    sel = STRATEGIES["entropy-pl"].select(_ctx(probs, counts, "paper"), 3)
    assert sel.diagnostics["quotas"] == [0, 1, 2]
    assert sorted(np.argmax(probs[sel.indices], axis=1).tolist()) == [1, 2, 2]
    clean = STRATEGIES["entropy-pl"].select(_ctx(probs, counts, "clean"), 3)
    assert sum(clean.diagnostics["quotas"]) == 3


# --------------------------------------------------------------------------------------------
# Pool exhaustion
# --------------------------------------------------------------------------------------------


def test_exhaustion_detection_and_wording():
    omega = np.array([0.0, 6.0, 1.5, 3.0])
    pool = np.array([10, 2, 1, 3])
    assert exhausted_classes(omega, pool) == [1, 2]  # Ω = pool (class 3) is not exhausted
    record = {"exhausted_classes": [1, 2], "omega": omega.tolist(), "pool_counts": pool.tolist()}
    assert describe_exhaustion(record) == [
        "class 1: 2 images left in the pool, Ω asks 6",
        "class 2: 1 images left in the pool, Ω asks 1.5",
    ]
    assert describe_exhaustion({"cycle": 0}) == []  # records from before cbal recorded it


def test_loop_records_exhaustion(tmp_path, tiny_overrides, capsys):
    from cbal.cli import main
    from cbal.loop import execute
    from cbal.store import Store

    # IF 0.02: 2 pool images per tail class; 4 initial + 2 = 6 < the 8 a balanced set of 80 needs
    cfg = preset("digits", strategy="random", imbalance_factor=0.02, **tiny_overrides)
    store = Store(tmp_path)
    run_id = store.create_run(cfg)
    records = execute(store, run_id)
    assert records[0]["exhausted_classes"] == []
    assert records[1]["exhausted_classes"] == [5, 6, 7, 8, 9]
    for c in range(5, 10):
        assert records[1]["omega"][c] > records[1]["pool_counts"][c]
    assert "exhausted_classes" not in records[2]  # the last cycle selects nothing
    assert main(["--cache-dir", str(tmp_path), "show", run_id]) == 0
    out = capsys.readouterr().out
    assert "cycle 1: pool exhausted for class 5:" in out and "no dropout" in out


def _simulate(cfg, policy):
    """Every cycle's exhausted classes for a pick policy on cfg's pool (no training): Ω_c minus
    what the pool holds of c is T* − (initial_c + pool_c) whatever was picked, so the extreme
    policies cover every strategy."""
    prep = prepare(cfg)
    y = prep.dataset.y_train
    labeled, pool = list(prep.pool.labeled), list(prep.pool.unlabeled)
    rng = np.random.default_rng(cfg.seed)
    found = []
    for _ in range(cfg.cycles):
        counts = class_counts(y[labeled], 10)
        omega = _ctx(np.full((1, 10), 0.1), counts, cfg.compat).omega(cfg.budget)
        found.append(exhausted_classes(omega, class_counts(y[pool], 10)))
        keys = {"random": rng.permutation(len(pool)), "tail": -y[pool], "head": y[pool]}[policy]
        take = set(np.argsort(keys, kind="stable")[: cfg.budget].tolist())
        labeled += [p for k, p in enumerate(pool) if k in take]
        pool = [p for k, p in enumerate(pool) if k not in take]
    return found


@pytest.mark.parametrize("compat", ["clean", "paper"])
def test_digits_preset_never_runs_out_of_tail_images(compat):
    for seed in range(5):
        cfg = preset("digits", seed=seed, compat=compat)
        for policy in ("random", "tail", "head"):
            assert _simulate(cfg, policy) == [[]] * cfg.cycles, (seed, policy)


def test_paper_compat_run_end_to_end(tmp_path, tiny_overrides):
    from cbal.loop import execute
    from cbal.store import Store

    cfg = preset("digits", strategy="bald-cb", compat="paper", **{**tiny_overrides, "budget": 25})
    assert (cfg.mc_source, cfg.dropout) == ("batchnorm", 0.0)
    store = Store(tmp_path)
    run_id = store.create_run(cfg)
    records = execute(store, run_id)
    counts = np.array(records[0]["labeled_counts"])
    want = np.maximum(0, (40 + 25) // 10 - counts)  # ⌊6.5⌋ = 6, not 6.5
    assert records[0]["omega"] == want.tolist() == records[0]["selection"]["omega"]
    np.testing.assert_array_equal(store.load_cycle_arrays(run_id, 0)["omega"], want)
    assert records[1]["labeled"] == 65 and records[2]["labeled"] == 90
