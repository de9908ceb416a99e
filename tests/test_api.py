"""``cbal.run`` from Python: the caller's arrays and network, the same store, resumable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

import cbal
from cbal import explore, runner, ui
from cbal.cli import main
from cbal.config import preset
from cbal.data import DataError, load_digits_dataset
from cbal.loop import Cancelled, NotReloadable
from cbal.store import Store

ROOT = Path(__file__).resolve().parent.parent
SHORT = dict(initial_labeled=40, budget=20, cycles=2, epochs=4, lr_milestones=(3,), device="cpu")


def _arrays():
    ds = load_digits_dataset()
    return {
        "x_train": ds.x_train[:, 0],
        "y_train": ds.y_train,
        "x_test": ds.x_test[:, 0],
        "y_test": ds.y_test,
        "class_names": ds.class_names,
    }  # (n, H, W) grey images


class Tiny(nn.Module):
    """A user's network: forward returns (logits, features), as cbal's models do."""

    def __init__(self, num_classes: int, shape: tuple[int, int, int]):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), 32), nn.ReLU())
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(x)
        return self.fc(feats), feats


def _stop_at_cycle_1(event):
    if event["cycle"] == 1 and event["phase"] == "train":
        raise Cancelled("test")


def test_images_and_a_custom_model_complete_and_resume(tmp_path, capsys):
    cfg = preset("digits", strategy="entropy-cb", seed=2, **SHORT)
    whole = cbal.run(cfg, dataset=_arrays(), model_fn=Tiny, cache_dir=str(tmp_path / "a"))
    store = Store(tmp_path / "b")
    with pytest.raises(Cancelled):
        cbal.run(cfg, _arrays(), Tiny, cache_dir=str(store.root), progress=_stop_at_cycle_1)
    (run_id,) = [i.run_id for i in store.list_runs()]
    assert len(store.read_cycles(run_id)) == 1 and store.run_info(run_id).state == "cancelled"
    stored = store.load_config(run_id)
    assert (stored.dataset, stored.model) == ("memory", "custom")
    with pytest.raises(NotReloadable, match="dataset=memory.*pass dataset=.*model_fn="):
        cbal.run(cfg, cache_dir=str(store.root), resume=run_id)
    with pytest.raises(NotReloadable, match=f"run {run_id} cannot be resumed from its config"):
        runner.resume(store, run_id)  # the dashboard's Resume says so, and starts nothing
    assert main(["--cache-dir", str(store.root), "resume", run_id]) == 2
    assert "cannot be resumed from its config alone" in capsys.readouterr().err
    assert store.run_info(run_id).state == "cancelled"
    other = {**_arrays(), "y_train": np.roll(_arrays()["y_train"], 1)}
    with pytest.raises(DataError, match="differ from the ones it started with"):
        cbal.run(cfg, other, Tiny, cache_dir=str(store.root), resume=run_id)
    assert cbal.run(cfg, _arrays(), Tiny, cache_dir=str(store.root), resume=run_id) == run_id
    resumed = store.read_cycles(run_id)
    first = Store(tmp_path / "a").read_cycles(whole)
    assert len(resumed) == 3 and store.run_info(run_id).state == "done"
    for a, b in zip(first, resumed, strict=True):  # a resume computes what one go computes
        assert (a["accuracy"], a["selected_counts"]) == (b["accuracy"], b["selected_counts"])


def test_features_with_a_linear_head_show_in_the_store_and_the_explorer(tmp_path, monkeypatch):
    ds = load_digits_dataset()
    feats = {
        "x_train": ds.x_train.reshape(len(ds.x_train), -1) / 16.0,
        "y_train": ds.y_train,
        "x_test": ds.x_test.reshape(len(ds.x_test), -1) / 16.0,
        "y_test": ds.y_test,
    }
    cfg = preset("digits", strategy="margin-cb", **{**SHORT, "cycles": 1})
    run_id = cbal.run(cfg, dataset=feats, cache_dir=str(tmp_path))
    store = Store(tmp_path)
    info = store.run_info(run_id)
    assert info.state == "done" and len(info.cycles) == 2
    c = info.config
    assert (c.dataset, c.model, c.augment) == ("memory", "linear", "none")
    assert info.cycles[-1]["accuracy"] > 0.5  # a linear head learns digits from pixels
    assert ui.runs_table([info])["λ"].tolist() == [0.6]
    own = explore.reselect(explore.load_cycle(store, run_id, 0))
    assert own.same_set and own.u_source == "saved scores (Margin)"
    # and on the dashboard's Runs page, like any run
    monkeypatch.setenv("CBAL_CACHE", str(tmp_path))
    no_gpu = {"python": sys.executable, "cuda": False, "name": None, "torch": "test"}
    (tmp_path / runner.DEVICE_FILE).write_text(json.dumps(no_gpu))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/2_Runs.py").run()
    at.multiselect(key="runs-chosen").set_value([run_id]).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["strategy"].tolist() == ["margin-cb"] and table["dataset"].tolist() == ["memory"]


def test_bad_arrays_fail_before_a_run_folder_exists(tmp_path):
    cfg = preset("digits", **SHORT)
    bad = {**_arrays(), "x_train": _arrays()["x_train"].astype(np.float64)}
    with pytest.raises(DataError, match="x_train must be uint8 images"):
        cbal.run(cfg, dataset=bad, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="lacks y_test"):
        cbal.run(cfg, dataset={"x_train": 1, "y_train": 1, "x_test": 1}, cache_dir=str(tmp_path))
    assert not Store(tmp_path).list_runs()
