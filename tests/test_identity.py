"""One configuration and seed gives the same numbers whichever entry point starts the run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from cbal import runner
from cbal import sweep as sw
from cbal.cli import main
from cbal.config import preset
from cbal.loop import run_threads
from cbal.store import Store

TINY = dict(initial_labeled=40, budget=20, cycles=2, epochs=8, lr_milestones=(6,), device="cpu")
FLAGS = ["--initial-labeled", "40", "--budget", "20", "--cycles", "2", "--epochs", "8"]
FLAGS += ["--lr-milestones", "6", "--device", "cpu", "--strategy", "entropy-cb", "--seed", "3"]


def _timing(key: str) -> bool:
    return key in ("timings", "solve_time") or key.startswith("t_")


def _without_timings(record: Any) -> Any:
    """The record with every wall-clock field (timings, solve_time, the solver's t_*) removed."""
    if isinstance(record, dict):
        return {k: _without_timings(v) for k, v in record.items() if not _timing(k)}
    return record


def _result(store: Store, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records = store.read_cycles(run_id)
    arrays = [dict(store.load_cycle_arrays(run_id, k)) for k in range(len(records) - 1)]
    return [_without_timings(r) for r in records], arrays


@pytest.mark.slow  # a background worker process, like the other multi-process checks
def test_cli_dashboard_and_sweep_runs_are_identical(tmp_path, monkeypatch):
    monkeypatch.delenv(runner.ENV_MAX, raising=False)
    store = Store(tmp_path)
    cfg = preset("digits", strategy="entropy-cb", seed=3, **TINY)
    # the foreground process has torch's default (all cores); on this machine's 1-2 cores the
    # probabilities of 1 and 2 threads differ in their last bits
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["--cache-dir", str(tmp_path), "run", "--preset", "digits", *FLAGS]) == 0
        assert torch.get_num_threads() == 2  # restored after the run
    finally:
        torch.set_num_threads(before)
    (cli_id,) = [i.run_id for i in store.list_runs()]
    assert store.load_config(cli_id) == cfg

    dash_id = runner.start(store, cfg)  # what the dashboard's launch button calls
    assert runner.wait(store, [dash_id], timeout=300) == {dash_id: "done"}

    spec = sw.spec_from_flags(name="same", preset="digits", strategies="entropy-cb", seeds="3")
    spec = sw.SweepSpec(name=spec.name, preset="digits", base=dict(TINY), grid=spec.grid)
    summary = sw.run_sweep(store, sw.expand(spec), n_jobs=1)
    (row,) = summary.rows
    assert row.state == "done" and store.load_config(row.run_id) == cfg

    ids = [cli_id, dash_id, row.run_id]
    threads = {store.read_status(r)["threads"] for r in ids}
    assert threads == {runner.threads_per_run()}
    records, arrays = _result(store, cli_id)
    assert len(records) == 3 and records[-1]["accuracy"] > 0.2  # it learned something
    assert len(arrays) == 2 and "probs" in arrays[0]
    for other in ids[1:]:
        other_records, other_arrays = _result(store, other)
        for mine, theirs in zip(records, other_records, strict=True):
            assert {k for k in mine if mine[k] != theirs.get(k)} == set()
            assert mine == theirs
        for mine, theirs in zip(arrays, other_arrays, strict=True):
            assert mine.keys() == theirs.keys()
            for name in mine:
                np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)


def test_run_threads_rule():
    default = runner.threads_per_run()
    assert run_threads({}) == default
    assert run_threads({}, 3) == 3
    # a resumed run keeps the count its first execution recorded, whatever is asked now
    assert run_threads({"threads": 2}, 5) == 2
    assert run_threads({"threads": "2"}) == default  # not a count cbal wrote


def test_a_bad_thread_count_is_one_line_before_any_run(tmp_path, capsys):
    assert main(["--cache-dir", str(tmp_path), "run", "--threads", "0", *FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cbal: error: --threads:") and err.count("\n") == 1
    assert Store(tmp_path).list_runs() == []
