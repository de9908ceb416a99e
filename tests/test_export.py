"""cbal.export and ``python -m cbal export``: the paper's figures, their files and numbers.

The numbers in every CSV are checked against the store's records of tiny digits runs; the images
(PNG, SVG, PDF through kaleido's headless Chromium) by their magic bytes and size.
"""

from __future__ import annotations

import dataclasses
import io
import re
import stat

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cbal import explore, export, plots
from cbal.cli import main
from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store

TINY = dict(initial_labeled=40, budget=20, cycles=2, epochs=5, lr_milestones=(4,), device="cpu")
MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "svg": (b"<svg", b"<?xml"), "pdf": (b"%PDF",)}
needs_browser = pytest.mark.skipif(
    export.browser_path() is None, reason="no Chrome/Chromium for kaleido"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Entropy and Entropy-CB on digits, two seeds each."""
    store = Store(tmp_path_factory.mktemp("export"))
    ids = []
    for strategy in ("entropy", "entropy-cb"):
        for seed in (0, 1):
            run_id = store.create_run(preset("digits", strategy=strategy, seed=seed, **TINY))
            execute(store, run_id)
            ids.append(run_id)
    return store, ids


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(path.read_bytes()))


def assert_image(data: bytes, fmt: str) -> None:
    assert data.lstrip().startswith(MAGIC[fmt]), data[:40]
    assert len(data) > 5000, len(data)
    if fmt == "svg":
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")


# --------------------------------------------------------------------------------------------
# The CSVs carry the store's numbers
# --------------------------------------------------------------------------------------------


def test_csvs_equal_the_store_records(runs, tmp_path):
    store, ids = runs
    result = export.export_runs(store, ids, tmp_path, formats=["csv"])
    assert not result.errors and not result.notes
    names = sorted(p.name for p in result.written)
    assert names[:3] + names[4:] == [
        "a_accuracy_digits_IF0.1.csv",
        "b_distribution_digits_IF0.1.csv",
        "c_l1_digits_IF0.1.csv",
        "report.html",
    ]
    lam_file = names[3]  # named after its run and cycle
    assert re.fullmatch(
        r"d_lambda_digits_entropy-cb_IF0\.1_cycle1_[0-9]{8}-[0-9]{6}-.*\.csv", lam_file
    )
    records = {r: store.read_cycles(r) for r in ids}
    strategy = {r: store.load_config(r).strategy for r in ids}

    acc = read_csv(tmp_path / "a_accuracy_digits_IF0.1.csv")
    assert len(acc) == 4 * 3
    for row in acc.to_dict("records"):
        rec = records[row["run_id"]][row["cycle"]]
        assert row["accuracy"] == rec["accuracy"] and row["labeled"] == rec["labeled"]
        seeds = [
            records[r][row["cycle"]]["accuracy"] for r in ids if strategy[r] == row["strategy"]
        ]
        assert row["mean"] == pytest.approx(np.mean(seeds), abs=1e-15)
        assert row["std"] == pytest.approx(np.std(seeds, ddof=1), abs=1e-15)
        assert row["n_seeds"] == 2 and row["imbalance_factor"] == 0.1
        assert row["duplicates_left_out"] == 0

    dist = read_csv(tmp_path / "b_distribution_digits_IF0.1.csv")
    assert len(dist) == 4 * 2 * 10  # runs × selecting cycles × classes
    for row in dist.to_dict("records"):
        rec = records[row["run_id"]][row["cycle"]]
        assert row["count"] == rec["selected_counts"][row["class"]]
        assert row["l1"] == rec["batch_l1"]
    totals = dist.groupby(["run_id", "cycle"])["count"].sum()
    assert (totals == 20).all()

    l1 = read_csv(tmp_path / "c_l1_digits_IF0.1.csv")
    assert set(l1["panel"]) == {"batch", "labeled"} and len(l1) == 4 * 2 * 2
    for row in l1.to_dict("records"):
        rec = records[row["run_id"]][row["cycle"]]
        assert row["l1"] == rec["batch_l1" if row["panel"] == "batch" else "labeled_l1"]

    path = read_csv(tmp_path / lam_file)
    assert len(path) == len(explore.DEFAULT_LAMS) + 1  # and the run's own λ
    (run_id,) = set(path["run_id"])
    assert run_id in ids and store.load_config(run_id).strategy == "entropy-cb"
    (cycle,) = set(path["cycle"])
    assert cycle == 1  # the run's last selection
    ca = explore.load_cycle(store, run_id, cycle)
    at_run_lam = path[path["lam"] == ca.lam]
    assert at_run_lam["batch_l1"].item() == records[run_id][cycle]["batch_l1"]
    assert at_run_lam["labeled_l1"].item() == records[run_id][cycle]["labeled_l1"]
    assert at_run_lam["jaccard"].item() == 1.0  # the run's own λ reproduces its picks
    assert (path["run_lam"] == ca.lam).all()

    report = (tmp_path / "report.html").read_text()
    assert report.count("<h2>") == 4 and ids[0] in report
    # shared files: the umask's mode, not a temp file's 0600
    assert {stat.S_IMODE(p.stat().st_mode) for p in result.written} == {export.file_mode()}
    assert export.file_mode() & 0o044  # readable by others under this test's usual umask


def test_figure_d_is_skipped_with_a_reason_without_a_cb_run(runs, tmp_path):
    store, ids = runs
    entropy_only = [r for r in ids if "-entropy-s" in r]
    result = export.export_runs(store, entropy_only, tmp_path, figures="ad", formats=["csv"])
    assert [p.name for p in result.written] == [
        "a_accuracy_digits_entropy_IF0.1.csv",
        "report.html",
    ]
    (note,) = result.notes
    assert note.startswith("figure d skipped:") and "CB run" in note


@pytest.mark.parametrize("width", ["single", "double"])
def test_figure_set_is_publication_styled(runs, width):
    store, ids = runs
    figs, notes = export.paper_figures(store, [store.run_info(r) for r in ids], width=width)
    names = [f.name for f in figs]
    assert names[:3] == [
        "a_accuracy_digits_IF0.1",
        "b_distribution_digits_IF0.1",
        "c_l1_digits_IF0.1",
    ]
    assert names[3].startswith("d_lambda_digits_entropy-cb_IF0.1_cycle1_")
    for pf in figs:
        layout = pf.fig.layout
        assert not layout.title.text  # no title in the plot area
        assert layout.width == {"single": 336, "double": 672}[width]  # 3.5 / 7 in at 96 px/in
        assert plots.font_pt(layout.font.size) >= 7
        assert all(ax.title.text for ax in pf.fig.select_yaxes(col=1))  # labeled axes
    titles = [a.text for a in figs[1].fig.layout.annotations]
    assert len(titles) == 2 * 2 and all(re.search(r"L1 = \d\.\d\d ± \d\.\d\d", t) for t in titles)
    curve = figs[0].fig  # one legend entry per series, in the strategy's fixed colour and dash
    lines = {t.name: (t.line.color, t.line.dash) for t in curve.data if t.showlegend}
    assert lines == {
        "Entropy": (plots.strategy_color("entropy"), "dash"),
        "Entropy-CB (λ=0.6)": (plots.strategy_color("entropy-cb"), "solid"),
    }
    assert "duplicates" not in figs[0].caption


def test_duplicate_runs_are_left_out_and_named(runs, tmp_path):
    store, ids = runs
    again = store.create_run(store.load_config(ids[0]))  # the same configuration and seed
    try:
        (store.run_dir(again) / "cycles.jsonl").write_bytes(
            (store.run_dir(ids[0]) / "cycles.jsonl").read_bytes()
        )
        store.write_status(again, state="done")
        infos = [store.run_info(r) for r in [*ids, again]]
        figs, _ = export.paper_figures(store, infos, "a")
        (pf,) = figs
        assert "1 run(s) left out as duplicates" in pf.caption and ids[0] in pf.caption
        assert set(pf.tidy["n_seeds"]) == {2}
        assert pf.tidy.groupby("strategy")["duplicates_left_out"].max().to_dict() == {
            "entropy": 1,
            "entropy-cb": 0,
        }
        report = export.html_report(figs, infos)
        assert report.count("no: a duplicate") == 1
    finally:
        store.delete_run(again)


def test_safe_names_stay_in_the_folder(tmp_path):
    assert export.safe_name("../../etc/passwd") == "etc_passwd"
    assert export.safe_name("b_distribution_IF0.1") == "b_distribution_IF0.1"
    assert export.safe_name("...") == "figure"
    path = export._target(tmp_path, "../escape.csv")
    assert path.parent == tmp_path and path.name == "escape.csv"


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@needs_browser
def test_figure_bytes_png_svg_pdf():
    fig = plots.style(go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="a")), "three points")
    files = {fmt: export.figure_bytes(fig, fmt) for fmt in export.IMAGE_FORMATS}
    for fmt, data in files.items():
        assert_image(data, fmt)
    width = int.from_bytes(files["png"][16:20], "big")  # the IHDR chunk
    assert width == export.DEFAULT_WIDTH * export.PNG_SCALE
    with pytest.raises(ValueError, match="format"):
        export.figure_bytes(fig, "gif")


def test_no_browser_is_one_clear_line(monkeypatch, runs, tmp_path):
    export.close_browser()
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    fig = go.Figure(go.Bar(x=[1], y=[1]))
    with pytest.raises(export.BrowserMissing) as err:
        export.figure_bytes(fig, "png")
    message = str(err.value)
    assert "\n" not in message and "Chromium" in message and "BROWSER_PATH" in message
    store, ids = runs
    result = export.export_runs(store, ids[:1], tmp_path / "out", figures="a")
    assert [p.name for p in result.written] == [
        "a_accuracy_digits_entropy_IF0.1.csv",
        "report.html",
    ]
    (error,) = result.errors
    assert error.startswith("PDF, SVG, PNG not written: ")


@pytest.mark.slow
@needs_browser
def test_cli_export_end_to_end(runs, tmp_path, capsys):
    store, ids = runs
    out = tmp_path / "figures"
    code = main(
        ["--cache-dir", str(store.root), "export", "--runs", ",".join(ids), "--out", str(out)]
    )
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    stems = sorted({p.stem for p in out.iterdir() if p.suffix == ".csv"})
    assert [s.split("_digits")[0] for s in stems] == [
        "a_accuracy",
        "b_distribution",
        "c_l1",
        "d_lambda",
    ]
    expected = {f"{s}.{fmt}" for s in stems for fmt in export.FORMATS} | {"report.html"}
    assert {p.name for p in out.iterdir()} == expected
    assert f"wrote {len(expected)} files" in stdout
    for stem in stems:
        for fmt in export.IMAGE_FORMATS:
            assert_image((out / f"{stem}.{fmt}").read_bytes(), fmt)
        assert len(read_csv(out / f"{stem}.csv")) > 0
    report = (out / "report.html").read_text()
    # self-contained: plotly.js embedded once, no script fetched from elsewhere
    assert report.count("plotly.js v") == 1 and 'src="http' not in report
    assert report.count("Plotly.newPlot") == len(stems)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["export", "--out", "x"], "--runs --all"),
        (["export", "--all"], "--out"),
        (["export", "--all", "--out", "x", "--format", "gif"], "--format"),
        (["export", "--all", "--out", "x", "--figures", "a,z"], "--figures"),
        (["export", "--runs", "../../etc", "--out", "x"], "run_id"),
        (["export", "--runs", "no-such-run", "--out", "x"], "no-such-run"),
        (["export", "--all", "--out", "x", "--lambda-cycle", "one"], "--lambda-cycle"),
    ],
)
def test_bad_export_flags_are_one_line_exit_2(runs, tmp_path, capsys, args, flag):
    store, _ = runs
    code = main(["--cache-dir", str(store.root), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cbal: error:") and flag in err


def test_export_into_a_file_is_refused(runs, tmp_path, capsys):
    store, ids = runs
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["export", "--runs", ids[0], "--out", str(blocker / "out"), "--format", "csv"]
    assert main(["--cache-dir", str(store.root), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cbal: error: --out: cannot create") and err.count("\n") == 1


def test_file_stems_name_group_figure_data_strategy_if_and_cycle():
    from tests.test_plots import make_run

    def tagged(run, group):
        return dataclasses.replace(run, status={"state": "done", "tags": {"group": group}})

    a = tagged(make_run("entropy", 0, [0.2, 0.3], imbalance_factor=1.0), "g20261201-abcd")
    b = tagged(make_run("entropy-cb", 0, [0.2, 0.3]), "g20261201-abcd")
    assert export.figure_stem([a, b], "accuracy") == "g20261201-abcd_accuracy_digits_IF1-0.1"
    assert export.figure_stem([b], "selection_seed0", 3) == (
        "g20261201-abcd_selection_seed0_digits_entropy-cb_IF0.1_cycle3"
    )
    # the dashboard's histogram downloads of two cycles no longer overwrite each other
    assert export.figure_stem([b], "selection", 1) != export.figure_stem([b], "selection", 2)
    other = tagged(make_run("entropy", 1, [0.2, 0.3]), "g-other")
    assert export.figure_stem([a, other], "l1").startswith("l1_digits_")  # no common group
