"""Faults for real: SIGKILL a run in every phase, a corrupt store, racing resumes, concurrency."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store, StoreError
from tests import faultworker
from tests.fixtures import cycle_record

CYCLES = 3
TINY = dict(initial_labeled=40, budget=20, cycles=CYCLES, epochs=4, lr_milestones=(3,))
# every point of a selecting cycle, in the order a run reaches them; the last cycle only trains
POINTS = ["train", "infer", "select", "record", "write-npz", "write-line"]
LAST = ["train", "record", "write-npz", "write-line"]


def _config(strategy="entropy-cb", **overrides):
    return preset("digits", strategy=strategy, device="cpu", seed=2, **{**TINY, **overrides})


def _worker(store, run_id, env):
    """Resume ``run_id`` in a child forked from a warm forkserver; ``env`` holds fault settings."""
    proc = faultworker.context().Process(
        target=faultworker.resume, args=(str(store.root), run_id, env)
    )
    proc.start()
    return proc


def _comparable(store, run_id):
    out = []
    for k, r in enumerate(store.read_cycles(run_id)):
        r = {key: v for key, v in r.items() if key not in ("timings",)}
        if r.get("selection"):
            timing = ("solve_time", "info")  # wall-clock figures differ run to run
            r["selection"] = {k2: v for k2, v in r["selection"].items() if k2 not in timing}
        arrays = store.load_cycle_arrays(run_id, k)
        out.append((r, {name: a.tolist() for name, a in arrays.items()}))
    return out


@pytest.mark.slow
def test_sigkill_in_every_phase_loses_nothing_and_resumes_identically(tmp_path):
    ref = Store(tmp_path / "ref")
    ref_id = ref.create_run(_config())
    execute(ref, ref_id)

    store = Store(tmp_path / "killed")
    run_id = store.create_run(_config())
    mark = tmp_path / "mark"
    kills = 0
    finished_before = 0
    plan = [(p, k) for k in range(CYCLES) for p in POINTS] + [(p, CYCLES) for p in LAST]
    for point, cycle in plan:
        mark.unlink(missing_ok=True)
        env = {"CBAL_FAULT_PAUSE": f"{point}@{cycle}", "CBAL_FAULT_MARK": str(mark)}
        proc = _worker(store, run_id, env)
        deadline = time.time() + 120
        while not mark.exists() and proc.is_alive() and time.time() < deadline:
            time.sleep(0.02)
        assert mark.exists(), f"the run never reached {point}@{cycle}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        kills += 1
        # the store stays readable and no finished cycle is lost
        info = store.run_info(run_id)
        assert info.state == "failed"
        assert len(info.cycles) >= finished_before
        assert len(info.cycles) == cycle  # killed inside cycle `cycle`: the earlier ones are done
        for k in range(len(info.cycles)):
            store.load_cycle_arrays(run_id, k)
        finished_before = len(info.cycles)
        # after a kill in the final rename of the JSONL line the cycle must still be pending
        if point == "write-line":
            assert (store.run_dir(run_id) / f"cycle_{cycle}.npz").exists()
        # the next resume (the next loop iteration) passes this point
    assert kills >= 20
    proc = _worker(store, run_id, {})
    proc.join(timeout=240)
    assert proc.exitcode == 0
    assert store.read_status(run_id)["state"] == "done"
    assert not list(store.run_dir(run_id).glob(".*.tmp"))
    assert _comparable(store, run_id) == _comparable(ref, ref_id)


@pytest.mark.slow
def test_two_resumes_at_once_only_one_wins(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(_config("entropy"))
    env = {
        **os.environ,
        "CBAL_FAULT_PAUSE": "train@0",
        "CBAL_FAULT_MARK": str(tmp_path / "m"),
        "CBAL_FAULT_SECONDS": "3",
    }
    first = _worker(store, run_id, env)
    deadline = time.time() + 60
    while not (tmp_path / "m").exists() and time.time() < deadline:
        time.sleep(0.02)
    second = subprocess.run(
        [sys.executable, "-m", "cbal", "--cache-dir", str(store.root), "resume", run_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2
    assert f"in use by process {first.pid}" in second.stderr
    first.join(timeout=240)
    assert first.exitcode == 0
    assert len(store.read_cycles(run_id)) == CYCLES + 1


@pytest.mark.slow
def test_four_concurrent_runs_do_not_interfere(tmp_path):
    stores = [Store(tmp_path / f"s{i}") for i in range(2)]
    runs = [
        (s, s.create_run(_config(strat, cycles=2, epochs=2, lr_milestones=(1,))))
        for s in stores
        for strat in ("entropy", "random")
    ]
    procs = [_worker(s, r, {}) for s, r in runs]
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    for s, r in runs:
        assert s.read_status(r)["state"] == "done"
        assert len(s.read_cycles(r)) == 3
    # the same config in two stores gives the same result: nothing shared between them
    a, b = (_comparable(s, r) for s, r in runs[::2])
    assert a == b


def test_corrupt_lines_never_break_the_list(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(_config())
    path = store.run_dir(run_id) / "cycles.jsonl"
    path.write_text(json.dumps(cycle_record(0)) + "\n" + "\x00garbage{\n")
    with pytest.warns(UserWarning, match="corrupt"):
        infos = store.list_runs()
    assert infos[0].last_accuracy == 0.5
    (store.run_dir(run_id) / "status.json").write_text("{broken")
    infos, damaged = store.scan_runs()  # listed apart, naming the file
    assert infos == [] and [(d.run_id, d.file) for d in damaged] == [(run_id, "status.json")]
    assert "not valid JSON" in damaged[0].reason


def test_deleted_run_folder_and_unwritable_store(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(_config())
    store.delete_run(run_id)
    with pytest.raises(Exception, match="not found"):
        store.run_info(run_id)
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(Exception, match="cannot"):
            Store(ro).create_run(_config())


def test_store_never_unpickles(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(_config())
    evil = np.array([{"a": 1}], dtype=object)
    with open(store.run_dir(run_id) / "cycle_0.npz", "wb") as f:
        np.savez(f, selected=evil)
    with pytest.raises(StoreError, match="pickle"):
        store.load_cycle_arrays(run_id, 0)


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_disk_full_leaves_no_half_written_run(tmp_path, monkeypatch):
    store = Store(tmp_path)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(StoreError, match="No space left"):
        store.create_run(_config())
    assert os.listdir(store.runs_dir) == []


def test_disk_full_during_a_cycle_keeps_the_finished_ones(tmp_path, monkeypatch):
    store = Store(tmp_path)
    run_id = store.create_run(_config())
    store.append_cycle(run_id, cycle_record(0), {"selected": np.arange(3)})
    before = (store.run_dir(run_id) / "cycles.jsonl").read_bytes()
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.append_cycle(run_id, cycle_record(1, 0.6), {"selected": np.arange(3)})
    monkeypatch.undo()
    assert (store.run_dir(run_id) / "cycles.jsonl").read_bytes() == before
    assert not (store.run_dir(run_id) / "cycle_1.npz").exists()
    assert not list(store.run_dir(run_id).glob(".*.tmp"))
    np.testing.assert_array_equal(store.load_cycle_arrays(run_id, 0)["selected"], np.arange(3))
