import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cbal import process
from cbal.config import make_config
from cbal.store import Store, StoreError, atomic_write_json, check_run_id
from tests.fixtures import cycle_record


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "cache")


def _record(k):
    return cycle_record(k, accuracy=0.5 + k / 100)


def test_create_and_read_back(store):
    cfg = make_config(strategy="entropy-cb", lam=1.5, seed=3)
    run_id = store.create_run(cfg, tags={"group": "g1"})
    assert check_run_id(run_id) == run_id and "entropy-cb-s3" in run_id
    assert store.load_config(run_id) == cfg
    status = store.read_status(run_id)
    assert status["state"] == "queued" and status["tags"] == {"group": "g1"}
    assert store.read_cycles(run_id) == []
    assert [i.run_id for i in store.list_runs()] == [run_id]
    # nothing temporary is left beside the run
    assert sorted(os.listdir(store.runs_dir)) == [run_id]


def test_cycles_append_and_arrays(store):
    run_id = store.create_run(make_config())
    for k in range(3):
        store.append_cycle(run_id, _record(k), {"selected": np.arange(k, k + 4)})
    assert [c["cycle"] for c in store.read_cycles(run_id)] == [0, 1, 2]
    arrays = store.load_cycle_arrays(run_id, 2)
    np.testing.assert_array_equal(arrays["selected"], [2, 3, 4, 5])
    with pytest.raises(StoreError, match="cycle 5"):
        store.append_cycle(run_id, _record(5), {})
    assert store.run_info(run_id).last_accuracy == pytest.approx(0.52)


def test_torn_tail_line_is_skipped_then_repaired(store):
    run_id = store.create_run(make_config())
    store.append_cycle(run_id, _record(0), {})
    path = store.run_dir(run_id) / "cycles.jsonl"
    with open(path, "a") as f:
        f.write('{"cycle": 1, "accur')  # a kill in the middle of an append
    with pytest.warns(UserWarning, match="corrupt"):
        assert len(store.read_cycles(run_id)) == 1
    with pytest.warns(UserWarning):
        store.append_cycle(run_id, _record(1), {})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["cycle"] for line in lines] == [0, 1]


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 200, "a..b"])
def test_bad_run_ids_are_refused(store, bad):
    with pytest.raises(ValueError, match="run_id"):
        store.run_dir(bad)


def test_unknown_run(store):
    with pytest.raises(StoreError, match="not found"):
        store.read_cycles("nope")


def test_status_of_dead_process_reads_failed(store):
    run_id = store.create_run(make_config())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store.write_status(run_id, state="running", pid=proc.pid)
    assert store.run_info(run_id).state == "failed"
    me = process.start_time(os.getpid())
    store.write_status(run_id, state="running", pid=os.getpid(), pid_start=me)
    assert store.run_info(run_id).state == "running"
    # the same pid with another start time is another process: pid reuse reads 'failed'
    store.write_status(run_id, state="running", pid=os.getpid(), pid_start=me - 1)
    assert store.run_info(run_id).state == "failed"
    store.write_status(run_id, state="running", pid=os.getpid(), pid_start=None)
    assert store.run_info(run_id).state == "failed"


def test_lock_excludes_a_second_process(store):
    run_id = store.create_run(make_config())
    code = (
        "import sys; from cbal.store import Store, StoreError\n"
        f"s = Store({str(store.root)!r})\n"
        "try:\n"
        f"    with s.lock({run_id!r}): print('got')\n"
        "except StoreError as e: print('refused', e)\n"
    )
    with store.lock(run_id):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        assert out.startswith("refused") and str(os.getpid()) in out
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "got"


def test_delete_and_unwritable_root(store, tmp_path):
    run_id = store.create_run(make_config())
    store.delete_run(run_id)
    assert store.list_runs() == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        Store(blocker / "cache").create_run(make_config())


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert os.listdir(tmp_path) == ["a.json"]


def test_runs_on_another_host_are_judged_by_heartbeat(store):
    import time

    run_id = store.create_run(make_config())
    store.write_status(run_id, state="running", pid=999999, host="elsewhere")
    assert store.run_info(run_id).state == "running"  # fresh heartbeat from a Dask worker
    status = store.read_status(run_id)
    status["heartbeat"] = time.time() - 3600
    atomic_write_json(store.run_dir(run_id) / "status.json", status)
    assert store.run_info(run_id).state == "failed"


def test_small_paths(store, tmp_path, monkeypatch):
    from cbal.store import default_root, fault_point, hold_first_free

    monkeypatch.setenv("CBAL_CACHE", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere"
    run_id = store.create_run(make_config())
    assert store.exists(run_id) and not store.exists("other")
    with pytest.raises(ValueError, match="state="):
        store.write_status(run_id, state="exploded")
    with pytest.raises(StoreError, match="no arrays"):
        store.load_cycle_arrays(run_id, 3)
    # a line out of order is skipped, not trusted
    (store.run_dir(run_id) / "cycles.jsonl").write_text('{"cycle": 1}\n')
    with pytest.warns(UserWarning, match="out-of-order"):
        assert store.read_cycles(run_id) == []
    # leftovers of a killed writer go away
    (store.run_dir(run_id) / ".cycle_0.npz.x.tmp").write_bytes(b"partial")
    store.remove_temp_files(run_id)
    assert not list(store.run_dir(run_id).glob(".*.tmp"))
    # a config that no longer validates is a StoreError naming the run
    (store.run_dir(run_id) / "config.json").write_text('{"budget": 0}')
    with pytest.raises(StoreError, match=run_id):
        store.load_config(run_id)
    with pytest.warns(UserWarning, match="skipping run folder"):
        assert store.list_runs() == []
    # the kill-test hook marks where it stopped
    monkeypatch.setenv("CBAL_FAULT_PAUSE", "train@2")
    monkeypatch.setenv("CBAL_FAULT_MARK", str(tmp_path / "mark"))
    monkeypatch.setenv("CBAL_FAULT_SECONDS", "0")
    fault_point("train", 1)
    assert not (tmp_path / "mark").exists()
    fault_point("train", 2)
    assert (tmp_path / "mark").read_text() == "train@2"
    # lock slots: the second holder gets the next free one
    paths = [tmp_path / "slots" / f"{i}" for i in range(2)]
    with hold_first_free(paths) as a, hold_first_free(paths) as b:
        assert (a, b) == (0, 1)
    assert process.start_time(None) is None and process.start_time(os.getpid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert process.start_time(zombie.pid) is None
    zombie.wait()
