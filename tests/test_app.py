"""The dashboard through Streamlit's AppTest: form, validation, launch, live view, faults.

Every test uses its own run store ($CBAL_CACHE in a tmp dir). The device probe is seeded with a
"no GPU" answer, except in the test of the probe itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cbal import runner, ui
from cbal.config import preset
from cbal.store import RunInfo, Store
from tests.fixtures import make_cifar10

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # AppTest's default is 3 s; the first run loads digits and sklearn
TINY = {"f_initial_labeled": 40, "f_budget": 20, "f_cycles": 2, "f_epochs": 8}


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    store = Store(tmp_path / "cache")
    store.root.mkdir()
    monkeypatch.setenv("CBAL_CACHE", str(store.root))
    no_gpu = {"python": sys.executable, "cuda": False, "name": None, "torch": "test"}
    (store.root / runner.DEVICE_FILE).write_text(json.dumps(no_gpu))
    yield store
    for info in store.list_runs():  # no worker outlives its test
        runner.cancel(store, info.run_id)


def home() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def launch_button(at: AppTest):
    return at.button(key="launch")


def wait_for_device(at: AppTest, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while "Checking whether torch" in texts(at.caption) and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()


def test_home_renders_with_the_digits_preset(store):
    at = home()
    wait_for_device(at)
    assert at.selectbox(key="f_preset").value == "digits"
    assert at.selectbox(key="f_dataset").value == "digits"
    assert at.number_input(key="f_budget").value == 20  # digits preset: 50 → +20 × 6
    assert at.multiselect(key="f_strategies").value == ["entropy", "entropy-cb"]
    assert "Entropy: small CNN, no dropout; no MC passes" in texts(at.caption)
    assert at.number_input(key="f_lam_entropy-cb_10").value == 0.6  # the paper's λ for C = 10
    assert not at.error
    assert "10 classes" in texts(at.caption)
    assert "No CUDA GPU visible to torch test" in texts(at.caption)
    assert not launch_button(at).disabled and launch_button(at).label == "Launch 2 run(s)"


def test_a_preset_fills_the_form_and_needs_a_data_folder(store):
    at = home()
    at.selectbox(key="f_preset").set_value("paper-cifar100").run()
    assert at.selectbox(key="f_dataset").value == "cifar100"
    assert at.number_input(key="f_budget").value == 2500
    assert at.selectbox(key="f_model").value == "resnet18"
    assert "Data folder" in texts(at.error) and "cifar100" in texts(at.error)
    assert at.number_input(key="f_lam_entropy-cb_100").value == 2.0  # the paper's, C = 100
    assert launch_button(at).disabled
    assert not at.exception


def test_a_bad_data_folder_shows_the_error_inline(store, tmp_path):
    at = home()
    at.selectbox(key="f_dataset").set_value("cifar10").run()
    assert "Data folder" in texts(at.error)  # required, and empty
    at.text_input(key="f_data_dir").set_value(str(tmp_path / "no-such-folder")).run()
    assert not at.exception
    message = texts(at.error)
    assert "Data folder" in message and "no-such-folder" in message
    assert launch_button(at).disabled


def test_a_local_cifar10_folder_is_checked_on_the_spot(store, tmp_path):
    data_dir = make_cifar10(tmp_path / "data")  # 100 train, 20 test images
    at = home()
    at.selectbox(key="f_dataset").set_value("cifar10").run()
    at.text_input(key="f_data_dir").set_value(str(data_dir)).run()
    assert "size of this pool" in texts(at.error)  # the digits sizes do not fit 100 images
    at.number_input(key="f_initial_labeled").set_value(20)
    at.number_input(key="f_budget").set_value(5)
    at.number_input(key="f_cycles").set_value(2).run()
    assert not at.error and not at.exception
    assert "10 classes · 100 train images, 20 test" in texts(at.caption)
    assert not launch_button(at).disabled


def test_impossible_settings_are_explained_before_launch(store):
    at = home()
    at.number_input(key="f_budget").set_value(5000).run()
    assert "Budget per cycle" in texts(at.error) and "size of this pool" in texts(at.error)
    assert launch_button(at).disabled
    at.number_input(key="f_budget").set_value(20)
    at.text_input(key="f_seeds").set_value("0, one").run()
    assert "Seeds" in texts(at.error)
    at.text_input(key="f_seeds").set_value("0, 1")
    at.number_input(key="f_epochs").set_value(10).run()  # milestones 20, 25 > 10 epochs
    assert "LR milestones" in texts(at.error)
    at.text_input(key="f_lr_milestones").set_value("6").run()
    assert not at.error and launch_button(at).label == "Launch 4 run(s)"
    assert not at.exception


@pytest.mark.slow
def test_launch_a_tiny_run_and_watch_it_finish(store):
    at = home()
    for key, value in TINY.items():
        at.number_input(key=key).set_value(value)
    at.text_input(key="f_lr_milestones").set_value("6")
    at.multiselect(key="f_strategies").set_value(["entropy-cb"]).run()
    launch_button(at).click().run()
    assert not at.exception and not at.error
    (info,) = store.list_runs()
    assert info.config.budget == 20 and info.config.strategy == "entropy-cb"
    assert runner.group_of(info) and at.session_state["live_runs"] == [info.run_id]
    assert "Launched 1 run(s)" in texts(at.success)

    assert runner.wait(store, [info.run_id], timeout=180) == {info.run_id: "done"}
    at.run()
    assert not at.exception and not at.error
    assert "done in" in at.get("progress")[0].proto.text
    specs = charts(at)
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert titles[0] == "Test accuracy"
    (curve,) = specs[0]["data"]
    assert curve["x"] == [40, 60, 80]
    hist = specs[titles.index("Selection of cycle 1 by class (head → tail)")]
    notes = [a["text"] for a in hist["layout"]["annotations"]]
    assert any(n.startswith("Entropy-CB (λ=0.6): batch, L1 = ") for n in notes)
    assert any(t["name"] == "Ω target" for t in hist["data"])
    assert len(at.get("image")) == 1  # the gallery of cycle 1's 20 images


def failed_runs(store: Store) -> list[str]:
    """A run that crashed with an error, one whose process died silently, one cancelled."""
    cfg = preset("digits", strategy="entropy", initial_labeled=40, budget=20, cycles=2)
    crashed, died, cancelled = (store.create_run(cfg.replace(seed=s)) for s in range(3))
    store.write_status(crashed, state="failed", pid=None, error="RuntimeError: boom")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.write_status(died, state="running", pid=dead.pid, started=time.time())
    store.write_status(cancelled, state="cancelled", pid=None)
    return [crashed, died, cancelled]


def test_failed_runs_show_their_error_inline_and_leave_the_others(store):
    ids = failed_runs(store)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["live_runs"] = ids
    at.run()
    assert not at.exception
    errors = texts(at.error)
    assert "RuntimeError: boom" in errors
    assert "its process died" in errors
    assert [b.label for b in at.button if b.label == "Resume"] == ["Resume"] * 3
    assert "cancelled after 0 of 3 cycles" in at.get("progress")[2].proto.text
    assert all(store.exists(r) for r in ids)


def test_runs_page_lists_filters_and_deletes_after_confirmation(store):
    ids = failed_runs(store)
    at = home()
    at.switch_page("pages/2_Runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["run"]) == set(ids)
    assert "RuntimeError: boom" in set(table["error"])
    at.multiselect(key="runs-filter-status").set_value(["cancelled"]).run()
    assert list(at.dataframe[0].value["run"]) == [ids[2]]

    at.multiselect(key="runs-chosen").set_value([ids[2]]).run()
    at.button(key="runs-delete").click().run()
    assert "cannot be undone" in texts(at.warning) and store.exists(ids[2])
    at.button(key="runs-delete-no").click().run()
    assert not at.warning and store.exists(ids[2])
    at.button(key="runs-delete").click().run()
    at.button(key="runs-delete-yes").click().run()
    assert not at.exception and "Deleted 1 run(s)" in texts(at.success)
    assert not store.exists(ids[2]) and store.exists(ids[0]) and store.exists(ids[1])


@pytest.mark.slow
def test_resume_and_cancel_from_the_runs_page(store, monkeypatch):
    ids = failed_runs(store)
    monkeypatch.setenv(runner.ENV_MAX, "1")
    at = home()
    at.switch_page("pages/2_Runs.py").run()
    at.multiselect(key="runs-chosen").set_value(ids[:1]).run()
    with runner.slot(store):  # the resumed worker queues behind the test: it never trains
        at.button(key="runs-resume").click().run()
        assert "Resumed 1 run(s)" in texts(at.success)
        assert store.run_info(ids[0]).state == "queued"
        assert runner.is_alive(store, ids[0])
        at.button(key="runs-cancel").click().run()
    assert "Cancelled 1 run(s)" in texts(at.success)
    assert store.run_info(ids[0]).state == "cancelled"
    assert not runner.is_alive(store, ids[0])


def test_live_page_shows_the_newest_comparison(store):
    ids = failed_runs(store)  # started one by one: three comparisons of one run each
    at = home()
    at.switch_page("pages/1_Live.py").run()
    assert not at.exception
    picker = at.selectbox[0]
    assert len(picker.options) == 3 and picker.value == ids[2]
    assert "cancelled after 0 of 3 cycles" in at.get("progress")[0].proto.text
    assert len(at.get("plotly_chart")) == 4  # placeholders saying what is missing
    picker.set_value(ids[0]).run()
    assert "RuntimeError: boom" in texts(at.error)


def run_info(state: str, status: dict, cycles: int = 0) -> RunInfo:
    cfg = preset("digits", strategy="entropy-cb", cycles=2, epochs=8, lr_milestones=(6,))
    records = [{"cycle": k, "accuracy": 0.5, "labeled": 50 + 25 * k} for k in range(cycles)]
    return RunInfo("r", cfg, {"state": state, **status}, records)


def test_progress_line_names_the_phase_and_eta():
    now = 1000.0
    progress = {"cycle": 1, "phase": "train", "step": 5, "steps": 8, "fraction": 0.5, "eta_s": 75}
    running = run_info("running", {"pid": None, "heartbeat": now - 5, "progress": progress}, 1)
    fraction, text = ui.progress_line(running, now)
    assert fraction == 0.5
    assert text == "cycle 1/2 · train epoch 5/8 · ETA 1 min 10 s"
    progress = {"cycle": 1, "phase": "select", "fraction": 0.64, "eta_s": None}
    running = run_info("running", {"heartbeat": now, "progress": progress}, 1)
    assert ui.progress_line(running, now)[1] == "cycle 1/2 · selection · ETA –"
    stale = run_info("running", {"heartbeat": now, "progress": progress}, 2)  # resumed
    assert ui.progress_line(stale, now) == (2 / 3, "cycle 2/2 · starting")
    assert ui.progress_line(run_info("queued", {}), now)[1].startswith("queued")
    done = run_info("done", {"started": now - 65, "finished": now}, 3)
    assert ui.progress_line(done, now) == (
        1.0,
        "done in 1 min 05 s · accuracy 50.0% with 100 labels",
    )


@pytest.mark.slow
def test_device_probe_runs_once_and_is_cached(tmp_path):
    store = Store(tmp_path / "cache")
    info = runner.device_info(store)
    assert {"cuda", "name", "torch", "python"} <= set(info)
    assert info["torch"] and not info.get("error")
    cached = json.loads((store.root / runner.DEVICE_FILE).read_text())
    assert cached == info
    start = time.monotonic()
    assert runner.device_info(store) == info  # from the file: no child process
    assert time.monotonic() - start < 0.5


@pytest.mark.slow
def test_pages_never_import_torch(store):
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"for page in (None, 'pages/1_Live.py', 'pages/2_Runs.py'):\n"
        f"    at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=60)\n"
        "    (at.run() if page is None else at.run().switch_page(page).run())\n"
        "    assert not at.exception, at.exception\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run(  # a fresh interpreter; the store fixture has set $CBAL_CACHE
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
