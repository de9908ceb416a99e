"""The λ explorer page (pages/3_Lambda_explorer.py) through Streamlit's AppTest, on tiny digits
runs in a store of its own ($CBAL_CACHE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cbal import explore, export, plots, runner
from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "3_Lambda_explorer.py")
TIMEOUT = 120  # AppTest's default is 3 s; the first run imports the engine
TINY = dict(initial_labeled=40, budget=20, cycles=2, epochs=10, lr_milestones=(8,), device="cpu")
BARE = {**TINY, "cycles": 1, "epochs": 1, "lr_milestones": (1,)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Entropy-CB (pool arrays saved, the default), the same without them, and Random."""
    store = Store(tmp_path_factory.mktemp("explorer"))
    ids = {
        "cb": store.create_run(preset("digits", strategy="entropy-cb", **TINY)),
        "bare": store.create_run(
            preset("digits", strategy="entropy-cb", save_pool_arrays=False, **BARE)
        ),
        "random": store.create_run(preset("digits", strategy="random", **BARE)),
        # IF 0.02: two pool images per tail class, so cycle 1's Ω asks more than the pool holds
        "dry": store.create_run(
            preset("digits", strategy="entropy-cb", imbalance_factor=0.02, **TINY)
        ),
    }
    for run_id in ids.values():
        execute(store, run_id)
    no_gpu = {"python": sys.executable, "cuda": False, "name": None, "torch": "test"}
    (store.root / runner.DEVICE_FILE).write_text(json.dumps(no_gpu))
    return store, ids


@pytest.fixture
def page(runs, monkeypatch):
    store, ids = runs
    monkeypatch.setenv("CBAL_CACHE", str(store.root))

    def open_run(key: str) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
        assert not at.exception, at.exception
        at.selectbox(key="lx-run").set_value(ids[key]).run()
        assert not at.exception, at.exception
        return at

    return open_run


def metric(at: AppTest, label: str) -> str:
    (m,) = [m for m in at.metric if m.label == label]
    return str(m.value)


def chart(at: AppTest, title_start: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    (spec,) = [s for s in specs if s["layout"]["title"]["text"].startswith(title_start)]
    return spec


def histogram(at: AppTest) -> tuple[list, list[str]]:
    spec = chart(at, "Entropy-CB at λ")
    bars = [t["y"] for t in spec["data"] if t["type"] == "bar"]
    return bars, [a["text"] for a in spec["layout"]["annotations"]]


def test_explorer_reproduces_the_run_then_moves_with_the_slider(page, runs):
    store, ids = runs
    at = page("cb")
    record = store.read_cycles(ids["cb"])[1]  # the last selecting cycle is the default
    assert at.selectbox(key=f"lx-cycle-{ids['cb']}").value == 1
    assert not at.error and not at.warning
    # at the run's own λ the re-selection is the run's selection
    slider = at.select_slider[0]
    assert slider.value == 0.6 and at.number_input[0].value == 0.6  # the run's λ is a stop
    assert metric(at, "Jaccard with the run's picks") == "1.00"
    assert metric(at, "Batch L1") == f"{record['batch_l1']:.3f}"
    assert metric(at, "Labeled-set L1") == f"{record['labeled_l1']:.3f}"
    bars, titles = histogram(at)
    assert titles[1] == f"Batch, true classes: L1 = {record['batch_l1']:.2f}"
    assert bars[1] == record["selected_counts"]  # predicted, true, labeled before, selected
    solver = [c.value for c in at.caption if c.value.startswith("Solver")]
    assert solver and "optimal" in solver[0] and "bound" in solver[0]
    # the λ path of a slow solver (binary, the run's own) waits for a click
    assert not [s for s in at.get("plotly_chart") if "over λ" in s.proto.spec]
    (ask,) = [b for b in at.button if b.label.endswith("values of λ")]
    ask.click().run()
    assert not at.exception, at.exception
    path = chart(at, "Entropy-CB: balance vs informativeness")
    assert path["layout"]["xaxis2"]["type"] == "log"
    assert any(t["name"] == "run's λ = 0.6" for t in path["data"])

    # move the slider until the batch's balance changes: the histogram and L1 follow
    for lam in (1000.0, 0.0, 10.0, 0.1, 100.0):
        at.select_slider[0].set_value(lam).run()
        assert not at.exception, at.exception
        assert at.number_input[0].value == lam  # the exact λ follows the slider
        if metric(at, "Batch L1") != f"{record['batch_l1']:.3f}":
            break
    else:
        pytest.fail("no λ changed the batch's L1 score on this run")
    moved, moved_titles = histogram(at)
    assert moved[1] != bars[1] and moved_titles[1] != titles[1]
    assert float(metric(at, "Jaccard with the run's picks")) < 1
    assert chart(at, f"Entropy-CB at λ = {lam:g}")

    at.number_input[0].set_value(0.6).run()  # the exact value brings the run's picks back
    assert at.select_slider[0].value == 0.6
    assert metric(at, "Jaccard with the run's picks") == "1.00"


def test_a_lambda_step_redraws_the_held_figure_as_a_fresh_one(runs):
    """The page keeps its histogram figure and replaces its numbers per λ: the result must be
    the figure a fresh build draws, for a λ that changes the batch."""
    store, ids = runs
    ca = explore.load_cycle(store, ids["cb"], 1)
    first = explore.reselect(ca, strategy="entropy-cb", lam=0.6)
    held = plots.explorer_histograms(ca, first).figure
    for lam in (1000.0, 0.0, 0.6):
        r = explore.reselect(ca, strategy="entropy-cb", lam=lam)
        redrawn = plots.explorer_histograms(ca, r, into=held)
        assert redrawn.figure is held
        assert held.to_plotly_json() == plots.explorer_histograms(ca, r).figure.to_plotly_json()
        assert redrawn.table.equals(plots.explorer_tidy(ca, r))
    assert not np.array_equal(
        explore.reselect(ca, strategy="entropy-cb", lam=1000.0).batch_counts, first.batch_counts
    )


def test_a_run_without_pool_arrays_says_why_and_how(page):
    at = page("bare")
    assert not at.exception and not at.error
    (warning,) = at.warning
    assert "save_pool_arrays=false" in warning.value and "--save-pool-arrays true" in warning.value
    assert not at.select_slider and not at.get("plotly_chart")


def test_a_strategy_without_lambda_shows_its_own_selection(page, runs):
    store, ids = runs
    at = page("random")
    assert not at.exception and not at.error
    assert at.radio(key=f"lx-problem-{ids['random']}").value == "random"
    assert any("Random has no λ" in i.value for i in at.info)
    assert not at.select_slider
    assert metric(at, "Jaccard with the run's picks") == "1.00"
    at.radio(key=f"lx-problem-{ids['random']}").set_value("entropy-cb").run()
    assert not at.exception and at.select_slider  # Entropy-CB on the random run's arrays
    assert at.number_input[0].value == 0.6  # Entropy-CB's default λ for 10 classes


@pytest.mark.slow
@pytest.mark.skipif(export.browser_path() is None, reason="no Chrome/Chromium for kaleido")
def test_figures_download_as_png_svg_pdf_csv(page):
    at = page("cb")
    downloads = {d.proto.label for d in at.get("download_button")}
    assert downloads == {"Plotted numbers (CSV)"}  # images are drawn only when asked for
    at.button(key="lx-hist-prepare").click().run()
    assert not at.exception and not at.warning
    downloads = {d.proto.label for d in at.get("download_button")}
    assert {"PNG", "SVG", "PDF", "Plotted numbers (CSV)"} <= downloads


@pytest.mark.slow
def test_the_page_never_imports_torch(runs):
    store, _ = runs
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({PAGE!r}, default_timeout=120).run()\n"
        "assert not at.exception, at.exception\n"
        "assert at.get('plotly_chart'), 'nothing drawn'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "CBAL_CACHE": str(store.root)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_balance_limits_match_each_cycles_own_pool(runs, tmp_path):
    """Read from the records, they equal what each saved pool shows; a pool that has run out
    of tail classes is reported."""
    import numpy as np

    from cbal import explore

    store = Store(tmp_path)
    run_id = store.create_run(
        preset("digits", strategy="entropy-cb", imbalance_factor=0.02, **TINY)
    )
    execute(store, run_id)
    limits = explore.balance_limits(store, run_id)
    assert sorted(limits) == [0, 1] and limits[1]  # 2 % tails: 3 images per tail class
    for cycle, short in limits.items():
        ca = explore.load_cycle(store, run_id, cycle)
        left = np.bincount(ca.pool_labels, minlength=ca.num_classes)
        want = [(c, int(left[c]), float(ca.omega[c])) for c in np.flatnonzero(left < ca.omega)]
        assert short == want
    # read from the records: a run without saved arrays has them too
    assert sorted(explore.balance_limits(runs[0], runs[1]["bare"])) == [0]


def test_an_exhausted_cycle_is_flagged(page):
    at = page("dry")
    run_key = f"lx-cycle-{at.selectbox(key='lx-run').value}"
    assert at.selectbox(key=run_key).value == 0  # opens on the latest cycle Ω can be met in
    at.selectbox(key=run_key).set_value(1).run()
    warnings = " ".join(w.value for w in at.warning)
    assert "the pool ran out" in warnings and "class 5: " in warnings and "Ω asks" in warnings
    at.selectbox(key=run_key).set_value(0).run()
    assert not any("the pool ran out" in w.value for w in at.warning)
