"""The paper figures as a browser lays them out: nothing overlaps, nothing is cut off, the report
never scrolls sideways; and the exported files themselves (PDF metadata, PNG size, file modes).

Headless Chromium (through Selenium) opens the exported ``report.html``, which holds every paper
figure at its print size, and reads the boxes of the legend, the axis titles, the tick labels
and the panel titles of each figure.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cbal import export, plots
from cbal.store import Store
from cbal.strategies import STRATEGIES
from tests.test_browser import CHROMEDRIVER, CHROMIUM, _missing
from tests.test_plots import make_run

CYCLES = 8
FEW = ("random", "kcenter", "kcenter-cb")  # the longest label, for the distribution grid


def _runs(strategies=tuple(STRATEGIES), factors=(1.0, 0.3, 0.1)) -> list:
    """Two seeds of eight cycles each: with every strategy and three IFs, the longest legends;
    a grid of cycles wraps at both widths."""
    runs = []
    for factor in factors:
        for strategy in strategies:
            for seed in (0, 1):
                accs = [0.2 + 0.05 * k + 0.01 * seed for k in range(CYCLES + 1)]
                run = make_run(strategy, seed, accs, imbalance_factor=factor)
                runs.append(
                    type(run)(f"{run.run_id}-IF{factor:g}", run.config, run.status, run.cycles)
                )
    return runs


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(dir=tmp_path_factory.mktemp("chromium"))
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_page_load_timeout(120)
    try:
        yield browser
    finally:
        browser.quit()


_BOXES = """
const box = e => {
  const r = e.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
};
const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
return [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const texts = (kind, sel) => [...gd.querySelectorAll(sel)].filter(shown)
      .map(e => [kind, e.textContent, box(e)]);
  return {
    svg: box(gd.querySelector('.main-svg')),
    legend: [...gd.querySelectorAll('g.legend')].filter(shown).map(box),
    titles: texts('axis title', '.infolayer text[class$="title"]'),
    ticks: texts('tick label', '.xtick text, .ytick text'),
    panels: texts('panel title', '.annotation-text'),
  };
});
"""


def _overlap(a: list[float], b: list[float], slack: float = 0.5) -> bool:
    return (
        a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack
    )


def _inside(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


@pytest.mark.slow
@pytest.mark.parametrize("width", list(plots.PAPER_WIDTHS))
def test_paper_figures_lay_out_without_overlap(driver, tmp_path: Path, width: str) -> None:
    runs, few = _runs(), _runs(FEW, (0.1,))
    store = Store(tmp_path / "store")
    figs, notes = export.paper_figures(store, runs, "ac", width=width)
    grid, more = export.paper_figures(store, few, "b", width=width)
    figs += grid
    assert not notes + more and len(figs) == 3
    html = export.html_report(figs, runs)
    (tmp_path / "report.html").write_text(html)
    driver.get((tmp_path / "report.html").as_uri())
    driver.set_window_size(1280, 900)
    layouts = driver.execute_script(_BOXES)
    assert len(layouts) == len(figs)
    for pf, lay in zip(figs, layouts, strict=True):
        where = f"{pf.name} at {width} width"
        assert lay["svg"][2] - lay["svg"][0] == pytest.approx(plots.paper_width_px(width), abs=1)
        assert len(lay["legend"]) == (0 if pf.name.startswith("b_") else 1), where
        labels = lay["titles"] + lay["ticks"] + lay["panels"]
        assert lay["titles"] and lay["ticks"], where
        for kind, text, b in labels + [("legend", "", b) for b in lay["legend"]]:
            assert _inside(b, lay["svg"]), f"{where}: {kind} {text!r} is cut off"
        for legend in lay["legend"]:
            for kind, text, b in labels:
                assert not _overlap(legend, b), f"{where}: the legend covers {kind} {text!r}"
        for i, (_, text, b) in enumerate(lay["panels"]):
            for _, other, c in lay["panels"][i + 1 :]:
                assert not _overlap(b, c), f"{where}: panel titles {text!r} and {other!r}"
            for kind, label, c in lay["titles"] + lay["ticks"]:
                assert not _overlap(b, c), f"{where}: panel title {text!r} on {kind} {label!r}"
    # the page itself never scrolls sideways: every figure fits the report's column
    overflow = driver.execute_script(
        "const d = document.documentElement; return [d.scrollWidth, d.clientWidth];"
    )
    assert overflow[0] <= overflow[1], overflow
    wide = driver.execute_script(
        "return [...document.querySelectorAll('.figure')]"
        ".filter(f => f.scrollWidth > f.clientWidth + 1).length;"
    )
    assert wide == 0


@pytest.mark.parametrize("width", list(plots.PAPER_WIDTHS))
def test_paper_figures_print_at_their_width_with_type_of_7pt_or_more(width: str) -> None:
    store = Store(tempfile.mkdtemp())
    figs, _ = export.paper_figures(store, _runs(), "ac", width=width)
    figs += export.paper_figures(store, _runs(FEW, (0.1,)), "b", width=width)[0]
    for pf in figs:
        layout = pf.fig.layout
        assert layout.width == round(plots.PAPER_WIDTHS[width] * plots.PX_PER_IN)
        sizes = [layout.font.size, layout.legend.font.size]
        sizes += [a.font.size for a in layout.annotations]
        sizes += [ax.tickfont.size for ax in [*pf.fig.select_xaxes(), *pf.fig.select_yaxes()]]
        assert all(s is not None and plots.font_pt(s) >= plots.MIN_FONT_PT for s in sizes), (
            pf.name,
            sizes,
        )
    per_row = {"double": 4, "single": 2}[width]
    distribution = next(pf for pf in figs if pf.name.startswith("b_"))
    assert len({ax.domain for ax in distribution.fig.select_xaxes()}) == per_row


needs_browser = pytest.mark.skipif(export.browser_path() is None, reason="no Chromium for kaleido")


@needs_browser
def test_exported_files_pdf_title_png_size_and_modes(tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    runs = _runs(("entropy", "entropy-cb"))
    store = Store(tmp_path / "store")
    figs, _ = export.paper_figures(store, runs, "a", width="single")
    (pf,) = figs
    pdf = export.figure_bytes(pf.fig, "pdf", pf.heading)
    path = tmp_path / "a.pdf"
    path.write_bytes(pdf)
    reader = pypdf.PdfReader(path, strict=True)
    assert reader.metadata.title == "Test accuracy vs labeled images"
    assert "Kaleido" not in str(reader.metadata)
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(3.5 * 72, abs=1)  # 3.5 in
    png = export.figure_bytes(pf.fig, "png")
    assert int.from_bytes(png[16:20], "big") == round(3.5 * 300)  # 300 dpi at print size


def test_export_files_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        mode = export.file_mode()
        export.write_file(tmp_path / "x.csv", b"a,b\n")
    finally:
        os.umask(old)
    assert mode == 0o640
    assert stat.S_IMODE((tmp_path / "x.csv").stat().st_mode) == 0o640
