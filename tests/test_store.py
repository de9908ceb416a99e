import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cbal.config import make_config
from cbal.store import Store, StoreError, atomic_write_json, check_run_id


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "cache")


def _record(k):
    return {"cycle": k, "accuracy": 0.5 + k / 100, "labeled": 10 + k}


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
    store.write_status(run_id, state="running", pid=os.getpid())
    assert store.run_info(run_id).state == "running"


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
