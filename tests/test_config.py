import json

import numpy as np
import pytest

from cbal.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    lam_text,
    make_config,
    preset,
    run_lam,
)


def test_presets_validate_and_round_trip():
    for name in PRESETS:
        kwargs = {} if name == "digits" else {"data_dir": "/data"}
        cfg = preset(name, **kwargs)
        assert cfg.preset == name
        again = RunConfig.from_json(cfg.to_json())
        assert again == cfg


def test_paper_preset_is_the_protocol():
    cfg = preset("paper-cifar10", data_dir="/d")
    assert (cfg.initial_labeled, cfg.budget, cfg.cycles, cfg.epochs) == (5000, 2500, 5, 100)
    assert (cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay) == (0.02, 0.9, True, 5e-4)
    assert cfg.lr_milestones == (60, 80) and cfg.lr_gamma == 0.5 and cfg.batch_size == 256
    assert cfg.model == "resnet18" and cfg.augment == "crop-flip"


def test_lam_defaults_follow_the_paper():
    assert run_lam(make_config(strategy="entropy-cb"), 10) == 0.6
    assert run_lam(make_config(strategy="entropy-cb"), 100) == 2.0
    assert run_lam(make_config(strategy="kcenter-cb"), 10) == 5.0
    assert run_lam(make_config(strategy="kcenter-cb"), 100) == 50.0
    assert run_lam(make_config(strategy="entropy-cb", lam=3), 100) == 3.0
    assert run_lam(make_config(strategy="entropy"), 10) is None


def test_one_lam_for_every_view():
    """A queued CB run shows its default, a recorded one its record, Random none ("–")."""
    queued = make_config(strategy="entropy-cb")  # digits: 10 classes known before loading
    assert run_lam(queued) == 0.6 and lam_text(queued) == "0.6"
    assert lam_text(queued, [{"lam": 1.5}]) == "1.5"
    folder = make_config(strategy="entropy-cb", dataset="imagefolder", data_dir="/x")
    assert run_lam(folder) is None and lam_text(folder) == "default"
    random = make_config(strategy="random")
    assert run_lam(random, cycles=[{"lam": 0.0}]) is None and lam_text(random) == "–"


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("imbalance_factor", 0, "(0, 1]"),
        ("imbalance_factor", -0.5, "(0, 1]"),
        ("imbalance_factor", 1.5, "(0, 1]"),
        ("imbalance_factor", float("nan"), "(0, 1]"),
        ("imbalance_profile", "linear", "step, exp"),
        ("strategy", "magic", "entropy-cb"),
        ("lam", -1, "[0, 1e+06]"),
        ("lam", float("nan"), "[0, 1e+06]"),
        ("lam", 1e308, "[0, 1e+06]"),
        ("lr", 1e30, "[0, 10]"),
        ("momentum", 1e6, "[0, 1)"),
        ("image_size", 1_000_000, "[1, 1024]"),
        ("budget", 0, ">= 1"),
        ("cycles", "many", "integer"),
        ("device", "tpu", "auto, cpu, cuda"),
        ("model", "vgg", "smallcnn"),
        ("solver", "gurobi", "binary, lp-round, highs, cvxpy, milp"),
        ("dataset", "mnist", "digits"),
        ("dropout", 1.0, "[0, 1)"),
        ("lr", 0, "> 0"),
        ("lr_milestones", [50, 10], "increasing"),
        ("nesterov", "maybe", "true or false"),
        ("solver_mip_gap", 1.0, "a number in [0, 1)"),
        ("solver_mip_gap", -1e-4, "a number in [0, 1)"),
        ("version", 99, "re-create"),
        ("colour", "red", "a field of RunConfig"),
        ("batch_size", 1, ">= 2 for convfc (images per training batch)"),
        ("initial_labeled", 1, ">= 2 for convfc (images per training batch)"),
    ],
)
def test_bad_values_name_the_field(field, value, allowed):
    with pytest.raises(ConfigError) as info:
        make_config(**{field: value})
    assert info.value.field == field
    assert field in str(info.value) and allowed in str(info.value)


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="data_dir"):
        make_config(dataset="cifar10")
    with pytest.raises(ConfigError, match="lam"):
        make_config(strategy="entropy", lam=2.0)
    with pytest.raises(ConfigError, match="mc_passes"):
        make_config(strategy="bald", mc_passes=1)
    with pytest.raises(ConfigError, match="preset"):
        preset("paper-imagenet")


def test_json_errors_are_config_errors():
    with pytest.raises(ConfigError, match="JSON"):
        RunConfig.from_json("{not json")
    with pytest.raises(ConfigError, match="object"):
        RunConfig.from_json(json.dumps([1, 2]))
    assert make_config(lr_milestones="10,20", epochs=30).lr_milestones == (10, 20)


def test_solver_lp_stored_by_older_runs_reads_as_lp_round():
    from cbal.config import make_config

    assert make_config(solver="lp").solver == "lp-round"
    assert make_config(solver="binary").solver == "binary"


def test_a_run_solves_with_the_first_listed_solver_wherever_it_starts():
    from cbal.strategies import SelectionContext
    from cbal.strategies.balance import METHODS

    assert RunConfig().solver == next(iter(METHODS)) == "binary"
    assert SelectionContext(np.ones((1, 2)) / 2, np.zeros(2)).solver == RunConfig().solver
