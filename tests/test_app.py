"""The dashboard through Streamlit's AppTest: form, validation, launch, live view, faults.

Every test uses its own run store ($CBAL_CACHE in a tmp dir). The device probe is seeded with a
"no GPU" answer, except in the test of the probe itself.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
    assert "Entropy: conv + fully connected net, no dropout; no MC passes" in texts(at.caption)
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


INTERNAL_NAMES = ("imbalance_factor", "data_dir", "lam=", "budget=", "cycles=", "seed=")


@pytest.mark.parametrize(
    "key, value, label, allowed",
    [
        ("f_imbalance_factor", 2.0, "Imbalance factor (IF)", "in (0, 1]"),
        ("f_imbalance_factor", 0.0, "Imbalance factor (IF)", "in (0, 1]"),
        ("f_lam_entropy-cb_10", -1.0, "λ for Entropy-CB", "a number in [0, 1e+06]"),
        ("f_budget", 0, "Budget per cycle", ">= 1"),
        ("f_budget", 5000, "Budget per cycle", "Budget per cycle = 5000"),
        ("f_lr", -0.1, "Learning rate", "> 0"),
    ],
)
def test_a_rejected_number_keeps_launch_disabled_and_names_the_label(
    store, key, value, label, allowed
):
    at = home()
    at.number_input(key=key).set_value(value).run()
    assert at.number_input(key=key).value == value  # kept as typed, not reverted
    message = texts(at.error)
    assert f"**{label}**" in message and allowed in message, message
    assert not any(name in message for name in INTERNAL_NAMES), message
    assert launch_button(at).disabled and launch_button(at).label == "Launch"
    assert not at.exception


def test_messages_use_labels_and_seeds_stay_within_32_bits(store):
    at = home()
    at.selectbox(key="f_dataset").set_value("cifar10").run()
    message = texts(at.error)
    assert "**Data folder**: missing" in message and "cifar10" in message
    assert not any(name in message for name in INTERNAL_NAMES), message
    at.selectbox(key="f_dataset").set_value("digits").run()
    at.text_input(key="f_seeds").set_value("0, " + "9" * 130).run()
    message = texts(at.error)
    assert "**Seeds**" in message and "4294967295" in message and "9" * 30 not in message
    assert launch_button(at).disabled
    at.text_input(key="f_seeds").set_value("4294967295").run()
    assert not at.error and not launch_button(at).disabled
    assert not store.list_runs()


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
    assert info.status["tags"]["sweep"] == runner.group_of(info)  # one grid path: a sweep
    assert "Launched 1 run(s)" in texts(at.success)

    assert runner.wait(store, [info.run_id], timeout=180) == {info.run_id: "done"}
    at.run()
    assert not at.exception and not at.error
    assert "done in" in at.get("progress")[1].proto.text  # [0]: the comparison's summary
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
    assert "cancelled after 0 of 2 cycles" in at.get("progress")[3].proto.text
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
    assert "cancelled after 0 of 2 cycles" in at.get("progress")[1].proto.text
    assert len(at.get("plotly_chart")) == 4  # placeholders saying what is missing
    picker.set_value(ids[0]).run()
    assert "RuntimeError: boom" in texts(at.error)


def test_comparisons_count_each_configuration_and_seed_once(store):
    from tests.test_plots import make_run

    made = [make_run("entropy", seed, [0.2 + 0.1 * seed, 0.5]) for seed in (0, 0, 1)]
    ids = []
    for fake in made:  # seed 0 twice: started from the CLI and from the dashboard
        run_id = store.create_run(fake.config)
        for record in fake.cycles:
            store.append_cycle(run_id, record, {})
        store.write_status(run_id, state="done")
        ids.append(run_id)
    at = home()
    at.switch_page("pages/2_Runs.py").run()
    at.multiselect(key="runs-chosen").set_value(ids).run()
    assert not at.exception
    assert "1 run(s) left out as duplicates" in texts(at.caption) and ids[0] in texts(at.caption)
    curve = charts(at)[0]
    lines = [t for t in curve["data"] if t.get("fill") != "toself"]
    assert [t["name"] for t in lines] == ["Entropy"]
    custom = lines[0]["customdata"]  # (std, n_seeds) per point, maybe as plotly's typed array
    if isinstance(custom, dict):
        shape = [int(v) for v in str(custom["shape"]).split(",")]
        data = np.frombuffer(base64.b64decode(custom["bdata"]), dtype=custom["dtype"])
        custom = data.reshape(shape).tolist()
    assert [n for _, n in custom] == [2, 2]  # two distinct seeds, not three runs
    assert at.dataframe[0].value["cycles"].tolist() == ["1/1"] * 3


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
        "done in 1 min 05 s · accuracy 50.00% with 100 labels",
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


def test_runs_page_keeps_a_chosen_run_when_its_state_changes(store):
    ids = failed_runs(store)  # crashed, died (both failed), cancelled
    at = home()
    at.switch_page("pages/2_Runs.py").run()
    at.multiselect(key="runs-filter-status").set_value(["failed"]).run()
    at.multiselect(key="runs-chosen").set_value([ids[0]]).run()
    assert "Comparison" in texts(at.header)
    store.write_status(ids[0], state="cancelled", error=None)  # e.g. from another tab
    at.run()
    assert not at.exception
    assert list(at.dataframe[0].value["run"]) == [ids[1]]  # the filter hides it now...
    assert at.multiselect(key="runs-chosen").value == [ids[0]]  # ...but it stays chosen
    assert "Comparison" in texts(at.header)
    assert "cancelled after 0 of 2 cycles" in at.get("progress")[1].proto.text


def test_live_page_keeps_its_comparison_when_a_state_changes(store):
    ids = failed_runs(store)
    at = home()
    at.switch_page("pages/1_Live.py").run()
    at.selectbox(key="live-group").set_value(ids[0]).run()
    assert "1 run(s): 1 failed" in texts(at.caption)
    store.write_status(ids[0], state="cancelled", error=None)
    at.run()
    assert at.selectbox(key="live-group").value == ids[0]
    assert "1 run(s): 1 cancelled" in texts(at.caption)


def test_the_launch_page_live_view_comes_back_from_the_address(store):
    ids = failed_runs(store)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["group"] = ids[1]  # a run started alone is a group of its own id
    at.run()
    assert not at.exception
    assert "Live view" in texts(at.subheader) and "its process died" in texts(at.error)
    assert at.session_state["live_runs"] == [ids[1]]


def test_presentation_mode_shows_the_curves_large_with_fewer_controls(store):
    ids = failed_runs(store)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["live_runs"] = ids
    at.run()
    summary = at.get("progress")[0].proto.text
    assert summary == "3 run(s): 2 failed, 1 cancelled"
    normal = charts(at)[:2]
    assert [c["layout"]["legend"]["orientation"] for c in normal] == ["h", "h"]  # under
    assert [e.label for e in at.expander] == [
        "Each run: progress, Cancel, Resume (3)",
        "Launch a comparison",
    ]
    assert not at.title  # the introduction gives way to the live view
    assert len(at.get("progress")) == 4  # the summary, then one row per run (folded)

    at.toggle(key=ui.PRESENTATION).set_value(True).run()
    assert not at.exception
    big = charts(at)[:2]
    assert all(c["layout"]["font"]["size"] == ui.PRESENT_FONT for c in big)
    assert all(
        b["layout"]["height"] > n["layout"]["height"] for b, n in zip(big, normal, strict=True)
    )
    assert not at.expander  # no form, no rows
    assert len(at.get("progress")) == 1 and texts(at.error).count("failed") == 2  # errors stay
    at.toggle(key=ui.PRESENTATION).set_value(False).run()
    assert len(at.expander) == 2
