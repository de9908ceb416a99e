import numpy as np
import pytest

from cbal.config import ConfigError, preset
from cbal.loop import execute, prepare
from cbal.store import Store
from cbal.strategies.balance import class_counts, l1_score

STRATEGIES = [
    "random",
    "entropy",
    "bald",
    "kcenter",
    "entropy-cb",
    "bald-cb",
    "kcenter-cb",
    "entropy-pl",
    "coreset",
]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_loop_end_to_end_on_digits(tmp_path, tiny_overrides, strategy):
    store = Store(tmp_path)
    cfg = preset("digits", strategy=strategy, device="cpu", **tiny_overrides)
    run_id = store.create_run(cfg)
    records = execute(store, run_id)
    prep = prepare(cfg)
    y = prep.dataset.y_train
    assert [r["cycle"] for r in records] == [0, 1, 2]
    assert [r["labeled"] for r in records] == [40, 60, 80]
    assert store.read_status(run_id)["state"] == "done"
    labeled = prep.pool.labeled
    for k, r in enumerate(records):
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["labeled_counts"] == class_counts(y[labeled], 10).tolist()
        if k == 2:
            assert r["selected_counts"] is None and r["batch_l1"] is None
            break
        arrays = store.load_cycle_arrays(run_id, k)
        sel = arrays["selected"]
        assert len(np.unique(sel)) == 20
        assert np.isin(sel, prep.pool.unlabeled).all() and not np.isin(sel, labeled).any()
        np.testing.assert_array_equal(arrays["pool_indices"][arrays["selected_pos"]], sel)
        assert r["selected_counts"] == class_counts(y[sel], 10).tolist()
        assert r["batch_l1"] == pytest.approx(l1_score(class_counts(y[sel], 10)))
        labeled = np.concatenate([labeled, sel])
        assert r["labeled_l1"] == pytest.approx(l1_score(class_counts(y[labeled], 10)))
        if strategy.endswith("-cb"):
            diag = r["selection"]
            assert len(diag["omega"]) == 10 and len(diag["expected_counts"]) == 10
            assert "status" in diag


def test_digits_preset_pool_is_long_tailed():
    prep = prepare(preset("digits"))
    counts = np.bincount(prep.dataset.y_train[prep.pool.unlabeled], minlength=10)
    assert counts[:5].min() > 5 * counts[5:].max()
    assert len(prep.dataset.y_test) == 300
    assert np.bincount(prep.dataset.y_test).tolist() == [30] * 10


def test_impossible_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="budget × cycles"):
        prepare(preset("digits", budget=200, cycles=8))
