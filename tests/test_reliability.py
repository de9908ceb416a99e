"""Hostile or unlucky situations: stale pids, links and special files in the store, damaged run
folders, foreground runs cancelled or deleted, hostile sizes, runaway grids.

Every process signalled here is one this test started itself; the unrelated ones (a sleeper
whose pid is planted in status.json) must survive.
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from cbal import process, runner
from cbal import sweep as sw
from cbal.cli import main
from cbal.config import make_config, preset
from cbal.loop import Cancelled, CancelRequested, StatusReporter, execute
from cbal.store import DamagedRun, Store, StoreError, atomic_write_json, check_run_id
from tests import fixtures
from tests.fixtures import cycle_record
from tests.test_bad_input import _check

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(initial_labeled=40, budget=20, cycles=1, epochs=2, lr_milestones=(1,), device="cpu")


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "cache")


@pytest.fixture
def sleeper():
    """An unrelated process (its own session): nothing may signal it."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _run(store, **fields):
    run_id = store.create_run(make_config())
    store.append_cycle(run_id, cycle_record(0), {})
    if fields:
        store.write_status(run_id, **fields)
    return run_id


# -- 1. a stale pid never makes a run live, and is never signalled ---------------------------


@pytest.mark.parametrize("start", ["missing", "none", "other"])
def test_a_reused_pid_is_not_the_worker_and_is_never_signalled(store, sleeper, start):
    run_id = _run(store)
    status = store.read_status(run_id)
    status.update(state="running", pid=sleeper.pid)
    if start != "missing":
        status["pid_start"] = None if start == "none" else process.start_time(sleeper.pid) - 1
    atomic_write_json(store.run_dir(run_id) / "status.json", status)

    info = store.run_info(run_id)
    assert info.state == "failed" and not runner.is_alive(store, run_id)
    assert sw._action(info, retry_failed=True) == "resume"  # a sweep resumes it, not "busy"
    assert runner.cancel(store, run_id, timeout=0.2) is False
    assert store.read_status(run_id)["state"] == "cancelled"
    store.write_status(run_id, state="running", pid=sleeper.pid)
    runner.delete(store, run_id)
    assert not store.exists(run_id)
    time.sleep(0.1)
    assert sleeper.poll() is None  # still sleeping: never signalled


def test_the_verified_worker_is_the_one_stopped(store):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process.start_time(child.pid)
        run_id = _run(store, state="running", pid=child.pid, pid_start=start, sigterm=True)
        assert store.run_info(run_id).state == "running" and runner.is_alive(store, run_id)
        assert runner.cancel(store, run_id, timeout=5) is True
        assert child.wait(5) == -signal.SIGTERM
        assert store.read_status(run_id)["state"] == "cancelled"
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def no_signals(monkeypatch):
    """Any signal sent fails the test instead of reaching a process (pid -1 is every one)."""

    def refuse(*args):
        pytest.fail(f"a signal was sent: {args}")

    for module, name in ((os, "kill"), (os, "killpg"), (signal, "pidfd_send_signal")):
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize("pid", [-1, 0, "abc", True, 1.5, [1]])
def test_a_pid_that_is_no_process_id_is_damage_not_a_target(store, no_signals, pid):
    run_id = _run(store)
    status = {**store.read_status(run_id), "state": "running", "pid": pid}
    atomic_write_json(store.run_dir(run_id) / "status.json", status)
    assert process.valid_pid(pid) is None and process.start_time(pid) is None
    assert process.send(pid, 0, 0) is False
    infos, damaged = store.scan_runs()
    assert infos == [] and [(d.run_id, d.file) for d in damaged] == [(run_id, "status.json")]
    assert "pid=" in damaged[0].reason
    with pytest.raises(DamagedRun, match="status.json"):
        runner.cancel(store, run_id)
    runner.delete(store, run_id)  # a damaged run can still be deleted
    assert not os.path.lexists(store.run_dir(run_id))


def test_a_live_lock_holder_is_never_deleted_under(store, tmp_path):
    run_id = _run(store)
    ready = tmp_path / "ready"
    code = (
        "import sys, time; from pathlib import Path; from cbal.store import Store\n"
        f"s = Store({str(store.root)!r})\n"
        f"with s.lock({run_id!r}):\n"
        f"    Path({str(ready)!r}).write_text('x'); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        deadline = time.time() + 30
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(StoreError, match="in use by process"):
            runner.delete(store, run_id)  # its pid is not in status.json: not ours to stop
        assert store.exists(run_id) and holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


# -- 2. nothing is written (or read) through a link ------------------------------------------


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    yield path
    assert path.read_text() == "precious\n"  # never truncated, appended to or replaced


def _link(store, run_id, name, target):
    path = store.run_dir(run_id) / name
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def test_a_linked_lock_is_refused(store, victim):
    run_id = _run(store)
    _link(store, run_id, "lock", victim)
    with pytest.raises(StoreError, match="lock"), store.lock(run_id):
        pass
    with pytest.raises(StoreError):
        execute(store, run_id)


def test_a_linked_cycles_file_is_neither_read_nor_appended(store, victim):
    run_id = _run(store)
    _link(store, run_id, "cycles.jsonl", victim)
    with pytest.raises(DamagedRun, match="symbolic link"):
        store.read_cycles(run_id)
    with pytest.raises(StoreError):
        store.append_cycle(run_id, cycle_record(0), {})


def test_a_linked_worker_log_is_refused_before_any_process(store, victim):
    run_id = _run(store)
    _link(store, run_id, "worker.log", victim)
    with pytest.raises(StoreError, match="worker.log"):
        runner.spawn(store, run_id)
    assert store.read_status(run_id)["pid"] is None


def test_a_linked_status_is_damage_and_not_overwritten(store, victim):
    run_id = _run(store)
    _link(store, run_id, "status.json", victim)
    with pytest.raises(DamagedRun, match="status.json"):
        store.write_status(run_id, state="failed")


def test_a_linked_run_folder_is_listed_as_damaged_and_delete_drops_only_the_link(store, tmp_path):
    good = _run(store)
    outside = tmp_path / "outside"
    os.rename(store.run_dir(good), outside)
    (store.runs_dir / good).symlink_to(outside)
    infos, damaged = store.scan_runs()
    assert infos == [] and [d.file for d in damaged] == ["run folder"]
    with pytest.raises(DamagedRun, match="symbolic link"):
        store.write_status(good, state="failed")
    runner.delete(store, good)
    assert not os.path.lexists(store.runs_dir / good)
    assert (outside / "config.json").is_file()  # the link's target is untouched


def test_a_fifo_in_a_run_folder_never_blocks(store):
    run_id = _run(store)
    for name in ("cycles.jsonl", "lock"):
        path = store.run_dir(run_id) / name
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    with pytest.raises(DamagedRun, match="not a regular file"):
        store.read_cycles(run_id)
    with pytest.raises(StoreError, match="not a regular file"), store.lock(run_id):
        pass


# -- 3. cancel and delete work however the run was started -------------------------------------


def test_a_worker_that_is_no_cbal_command_is_asked_never_signalled(store, no_signals):
    """E.g. a sweep's pool worker: a SIGTERM would kill the pool; the request stops the run."""
    run_id = _run(
        store, state="running", pid=os.getpid(), pid_start=process.start_time(os.getpid())
    )
    with pytest.raises(StoreError, match="cancel requested"):
        runner.cancel(store, run_id, timeout=0.2)
    assert store.cancel_requested(run_id)
    with pytest.raises(CancelRequested):  # what the loop raises at its next step
        StatusReporter(store, run_id, 1)({"cycle": 0, "phase": "train"})


def test_a_cancel_request_stops_the_loop_at_its_next_step(store):
    run_id = store.create_run(preset("digits", **TINY))
    store.request_cancel(run_id)
    with pytest.raises(Cancelled):
        execute(store, run_id)
    assert store.read_status(run_id)["state"] == "cancelled"
    assert not store.cancel_requested(run_id) and store.read_cycles(run_id) == []


def test_ctrl_c_leaves_the_run_cancelled_not_failed(store):
    run_id = store.create_run(preset("digits", **TINY))

    def interrupt(event):
        if event["cycle"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(store, run_id, interrupt)
    status = store.read_status(run_id)
    assert status["state"] == "cancelled" and status["error"] is None
    assert len(store.read_cycles(run_id)) == 1  # cycle 0 is kept

    # a hand-edited selection is refused on resume, naming the file
    arrays = store.load_cycle_arrays(run_id, 0)
    arrays["selected"] = -arrays["selected"] - 1
    np.savez(store.run_dir(run_id) / "cycle_0.npz", **arrays)
    with pytest.raises(DamagedRun, match=r"cycle_0\.npz: 'selected' holds indices outside"):
        execute(store, run_id)


@pytest.mark.slow
def test_delete_of_a_foreground_run_cancels_it_and_waits(store):
    cmd = [sys.executable, "-m", "cbal", "--cache-dir", str(store.root), "run", "--preset"]
    cmd += ["digits", "--device", "cpu", "--epochs", "400", "--lr-milestones", "300"]
    fg = subprocess.Popen(  # not a session leader: the old killpg missed it
        cmd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the cancel line goes to stderr
        text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            infos = store.list_runs()
            if infos and infos[0].status.get("progress"):
                break
            time.sleep(0.1)
        (info,) = store.list_runs()
        assert info.state == "running"
        runner.delete(store, info.run_id)
        assert fg.wait(30) == 130  # stopped by the request/signal, not by "run not found"
        assert "cancelled" in fg.stdout.read()
        assert not os.path.lexists(store.run_dir(info.run_id))
    finally:
        fg.kill()
        fg.wait()


# -- 4. one damaged run folder never hides the others ------------------------------------------


def _write(name, data):
    def damage(store, run_id):
        path = store.run_dir(run_id) / name
        path.unlink(missing_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return damage


def _status(**fields):
    def damage(store, run_id):
        status = {**store.read_status(run_id), **fields}
        atomic_write_json(store.run_dir(run_id) / "status.json", status)

    return damage


def _cycle(drop=None, **fields):
    def damage(store, run_id):
        record = {**cycle_record(0), **fields}
        record.pop(drop, None)
        (store.run_dir(run_id) / "cycles.jsonl").write_text(json.dumps(record) + "\n")

    return damage


def _fifo(name):
    def damage(store, run_id):
        (store.run_dir(run_id) / name).unlink()
        os.mkfifo(store.run_dir(run_id) / name)

    return damage


DAMAGE = {
    "deep config": (_write("config.json", "[" * 100_000 + "]" * 100_000), "config.json"),
    "non-UTF-8 config": (_write("config.json", b'{"seed": "\xff"}'), "config.json"),
    "invalid config": (_write("config.json", '{"budget": 0}'), "config.json"),
    "config not an object": (_write("config.json", "[]"), "config.json"),
    "deep status": (_write("status.json", "[" * 100_000 + "]" * 100_000), "status.json"),
    "non-UTF-8 status": (_write("status.json", b'{"state": "\xff"}'), "status.json"),
    "status []": (_write("status.json", "[]"), "status.json"),
    "status pid abc": (_status(pid="abc", state="running"), "status.json"),
    "status unknown state": (_status(state="exploded"), "status.json"),
    "status heartbeat text": (_status(heartbeat="soon"), "status.json"),
    "cycle without lam": (_cycle(drop="lam"), "cycles.jsonl line 1"),
    "cycle without labeled": (_cycle(drop="labeled"), "cycles.jsonl line 1"),
    "accuracy high": (_cycle(accuracy="high"), "cycles.jsonl line 1"),
    "timings a list": (_cycle(timings=[1]), "cycles.jsonl line 1"),
    "config a FIFO": (_fifo("config.json"), "config.json"),
    "status a FIFO": (_fifo("status.json"), "status.json"),
}


def _damaged_store(store, cases):
    good = [_run(store), _run(store)]
    bad = {}
    for name in cases:
        run_id = _run(store)
        DAMAGE[name][0](store, run_id)
        bad[run_id] = DAMAGE[name][1]
    return good, bad


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_is_listed_as_such_beside_the_others(store, capsys, case):
    good, bad = _damaged_store(store, [case])
    infos, damaged = store.scan_runs()
    assert sorted(i.run_id for i in infos) == sorted(good)
    assert {d.run_id: d.file for d in damaged} == bad
    assert main(["--cache-dir", str(store.root), "list"]) == 0
    out, err = capsys.readouterr()
    assert all(r in out for r in good) and "Traceback" not in out + err
    (run_id,) = bad
    assert f"{run_id}  damaged — {bad[run_id]}: " in out
    # show names the run and the file, on one line
    assert main(["--cache-dir", str(store.root), "show", run_id]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad[run_id] in err and "damaged" in err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("page", ["1_Live", "2_Runs", "3_Lambda_explorer"])
def test_pages_show_the_healthy_runs_and_name_the_damaged(store, monkeypatch, page):
    from streamlit.testing.v1 import AppTest

    _seed_store(store, monkeypatch)
    good, bad = _damaged_store(store, list(DAMAGE))
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert all(f"`{r}`: damaged — {f}" in warnings for r, f in bad.items())
    assert not [e.value for e in at.error]


def _seed_store(store, monkeypatch):
    """The dashboard's store, with the device probe answered (no torch import in the page)."""
    store.root.mkdir(parents=True)
    no_gpu = {"python": sys.executable, "cuda": False, "name": None, "torch": "test"}
    (store.root / runner.DEVICE_FILE).write_text(json.dumps(no_gpu))
    monkeypatch.setenv("CBAL_CACHE", str(store.root))


# -- 5. special files and hostile sizes: refused before any run folder ------------------------


def _cli(tmp_path, capsys, dataset, root, needle, *flags):
    argv = ["run", "--preset", "digits", "--device", "cpu", "--dataset", dataset]
    return _check(tmp_path, capsys, [*argv, "--data-dir", str(root), *flags], needle)


@pytest.mark.timeout(60)
def test_a_fifo_in_an_image_folder_is_refused_without_opening_it(tmp_path, capsys):
    root = fixtures.make_image_folder(tmp_path / "data")
    os.mkfifo(root / "cat" / "pipe.png")
    _cli(tmp_path, capsys, "imagefolder", root, "not a regular file")


@pytest.mark.timeout(120)
def test_the_dashboard_data_check_never_opens_a_fifo(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    _seed_store(Store(tmp_path / "cache"), monkeypatch)
    root = fixtures.make_image_folder(tmp_path / "data")
    os.mkfifo(root / "dog" / "pipe.png")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.selectbox(key="f_dataset").set_value("imagefolder").run()
    at.text_input(key="f_data_dir").set_value(str(root)).run()
    assert not at.exception
    assert "not a regular file" in " ".join(e.value for e in at.error)


@pytest.mark.timeout(60)
def test_a_fifo_as_tiny_imagenet_wnids_is_refused(tmp_path, capsys):
    root = fixtures.make_tiny_imagenet(tmp_path / "data")
    wnids = root / "tiny-imagenet-200" / "wnids.txt"
    wnids.unlink()
    os.mkfifo(wnids)
    _cli(tmp_path, capsys, "tinyimagenet", root, "not a regular file")


@pytest.mark.parametrize("dataset", ["imagefolder", "cifar10", "tinyimagenet"])
def test_a_data_dir_longer_than_a_file_name_is_one_line(tmp_path, capsys, dataset):
    _cli(tmp_path, capsys, dataset, tmp_path / ("x" * 300), "--data-dir")


def test_images_that_cannot_fit_in_memory_are_refused_before_decoding(
    tmp_path, capsys, monkeypatch
):
    from cbal import data

    root = fixtures.make_image_folder(tmp_path / "data")
    monkeypatch.setattr(data, "_memory_bytes", lambda: 100_000)
    monkeypatch.setattr(data, "_decode_all", lambda *a: pytest.fail("decoded anyway"))
    err = _cli(tmp_path, capsys, "imagefolder", root, "--image-size", "--image-size", "64")
    assert "GiB" in err


def test_images_too_small_for_the_model_are_refused_before_the_run_exists(tmp_path, capsys):
    root = fixtures.make_image_folder(tmp_path / "data")
    # the small CNN pools once, so it needs 2x2 images (convfc pools any side to its grid)
    _cli(
        tmp_path,
        capsys,
        "imagefolder",
        root,
        "--image-size",
        "--image-size",
        "1",
        "--model",
        "smallcnn",
    )


def test_a_decompression_bomb_is_one_error_and_no_warning(tmp_path, capsys, monkeypatch):
    from PIL import Image

    root = fixtures.make_image_folder(tmp_path / "data", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 px: a warning, not an error
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _cli(tmp_path, capsys, "imagefolder", root, "DecompressionBomb")
    assert [str(w.message) for w in seen] == []


def _cifar(tmp_path):
    """A tiny CIFAR-10: (the folder to pass, the batches' folder)."""
    root = fixtures.make_cifar10(tmp_path / "data")
    folder = root / "cifar-10-batches-py"
    return root, folder


def test_an_empty_cifar_test_batch_is_refused_before_training(tmp_path, capsys):
    root, folder = _cifar(tmp_path)
    empty = {b"batch_label": b"x", b"labels": [], b"data": np.zeros((0, 3072), np.uint8)}
    fixtures.write_cifar_pickle(folder / "test_batch", empty)
    _cli(tmp_path, capsys, "cifar10", root, "test_batch")


def test_cifar_training_labels_of_one_class_are_refused(tmp_path, capsys):
    root, folder = _cifar(tmp_path)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {b"labels": [0] * 20, b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8)}
        fixtures.write_cifar_pickle(folder / f"data_batch_{i}", batch)
    _cli(tmp_path, capsys, "cifar10", root, "no training image")


def test_the_cifar_unpickler_never_calls_ndarray_directly(tmp_path):
    from cbal.data import DataError, load_cifar

    class Huge:
        def __reduce__(self):
            return (np.ndarray, ((10**9,), "u1"))

    root, folder = _cifar(tmp_path)
    fixtures.write_cifar_pickle(folder / "data_batch_1", {b"data": Huge(), b"labels": []}, "py3")
    with pytest.raises(DataError, match="ndarray"):
        load_cifar(root)


def test_a_symlinked_class_folder_pointing_at_the_root_is_refused(tmp_path, capsys):
    root = fixtures.make_image_folder(tmp_path / "data")
    (root / "zz-all").symlink_to(root)
    _cli(tmp_path, capsys, "imagefolder", root, "zz-all")


def test_a_diverging_training_says_to_lower_the_learning_rate():
    import dataclasses

    import torch

    from cbal.data import load_digits_dataset
    from cbal.models import build_model
    from cbal.train import DeviceImages, TrainingDiverged, train_model

    ds = load_digits_dataset()
    # past the config's bound (a config built without validation): the loss becomes NaN
    cfg = dataclasses.replace(preset("digits", epochs=2, lr_milestones=(1,)), lr=1e30)
    images = DeviceImages.create(ds.x_train, ds.mean, ds.std, torch.device("cpu"))
    model = build_model("smallcnn", 10, 1, 0.3)
    idx = np.arange(64)
    with pytest.raises(TrainingDiverged, match=r"lower the learning rate \(lr=1e\+30\)"):
        train_model(model, images, idx, ds.y_train[idx], cfg, 0)


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--lr", "1e30"], "--lr"),
        (["--momentum", "1e6"], "--momentum"),
        (["--image-size", "1000000"], "--image-size"),
        (["--strategy", "entropy-cb", "--lam", "1e308"], "--lam"),
        (["--test-per-class", "1000"], "--test-per-class"),
    ],
)
def test_hostile_numbers_name_their_flag(tmp_path, capsys, flags, needle):
    _check(tmp_path, capsys, ["run", "--preset", "digits", "--device", "cpu", *flags], needle)


# -- 6. a runaway grid is counted, not expanded ----------------------------------------------


@pytest.mark.timeout(30)
def test_a_grid_of_729_million_runs_is_refused_at_once(tmp_path, capsys):
    values = ", ".join(str(v) for v in range(30))
    axes = ["seed", "epochs", "budget", "initial_labeled", "mc_passes", "batch_size"]
    spec = tmp_path / "huge.yaml"
    spec.write_text("grid:\n" + "".join(f"  {a}: [{values}]\n" for a in axes))
    assert len(spec.read_bytes()) < 1500
    err = _check(tmp_path, capsys, ["sweep", str(spec), "--dry-run"], "--max-runs")
    assert "729,000,000" in err


def test_max_runs_raises_or_lowers_the_limit(tmp_path, capsys):
    argv = ["sweep", "--strategies", "random", "--seeds", "0,1,2", "--dry-run"]
    _check(tmp_path, capsys, [*argv, "--max-runs", "2"], "--max-runs")
    assert main(["--cache-dir", str(tmp_path / "cache"), *argv, "--max-runs", "3"]) == 0


def test_a_non_utf8_sweep_spec_names_the_file(tmp_path, capsys):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"name: caf\xe9\n")
    _check(tmp_path, capsys, ["sweep", str(spec), "--dry-run"], "latin1.yaml")


# -- 7. the smaller ones ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["run\n", "run\r", " run", "a/b", ".."])
def test_run_ids_match_whole(bad):
    with pytest.raises(ValueError):
        check_run_id(bad)


def test_a_bad_max_concurrent_is_an_error_never_a_silent_failure(store, capsys, monkeypatch):
    run_id = _run(store)
    monkeypatch.setenv(runner.ENV_MAX, "abc")
    with pytest.raises(ValueError, match="CBAL_MAX_CONCURRENT='abc'"):
        runner.spawn(store, run_id)
    assert store.read_status(run_id)["pid"] is None  # no worker was started
    # a worker that meets it anyway records why it stopped
    assert main(["--cache-dir", str(store.root), "worker", run_id]) == 1
    status = store.read_status(run_id)
    assert status["state"] == "failed" and "CBAL_MAX_CONCURRENT" in status["error"]


def test_an_empty_cache_dir_is_refused_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _check(tmp_path, capsys, ["--cache-dir", "", "list"], "--cache-dir")
    assert os.listdir(tmp_path) == []
    with pytest.raises(StoreError, match="empty"):
        Store("")


def test_a_failure_that_cannot_be_recorded_does_not_point_at_status_json(
    store, capsys, monkeypatch
):
    from cbal import cli, loop

    run_id = store.create_run(preset("digits", **TINY))

    def boom(*args):
        raise RuntimeError("boom")

    real = Store.update_status

    def read_only(self, rid, change):
        if change({"state": "running"}).get("state") == "failed":
            raise StoreError("read-only store")
        return real(self, rid, change)

    monkeypatch.setattr(loop, "_run_cycles", boom)
    monkeypatch.setattr(Store, "update_status", read_only)
    assert cli._execute(store, run_id, quiet=True) == 1
    err = capsys.readouterr().err
    assert "could not be recorded" in err and "has the traceback" not in err
