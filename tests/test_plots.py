"""cbal.plots on hand-made store records: the numbers plotted, titles, order, colours."""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import pandas as pd
import pytest

from cbal import plots
from cbal.config import field_names, preset
from cbal.store import RunInfo
from cbal.strategies import STRATEGIES
from cbal.strategies.balance import l1_score, target_counts

C = 10
INITIAL, BUDGET = 40, 20


def make_run(strategy: str, seed: int, accs: list[float], **config) -> RunInfo:
    """A finished run: cycle k has accuracy accs[k]; class c of cycle k's batch gets
    (c + k + seed) % 4 images (scaled to the budget), so runs and cycles differ."""
    cfg = preset(
        "digits",
        strategy=strategy,
        seed=seed,
        initial_labeled=INITIAL,
        budget=BUDGET,
        cycles=len(accs) - 1,
        **config,
    )
    lam = STRATEGIES[strategy].default_lam(C) if STRATEGIES[strategy].uses_lam else 0.0
    counts = np.full(C, INITIAL // C)
    cycles = []
    for k, acc in enumerate(accs):
        record = {
            "cycle": k,
            "strategy": strategy,
            "lam": lam,
            "labeled": int(counts.sum()),
            "accuracy": acc,
            "per_class_accuracy": [acc + 0.01 * c for c in range(C - 1)] + [None],
            "labeled_counts": counts.tolist(),
            "selected_counts": None,
            "batch_l1": None,
            "labeled_l1": l1_score(counts),
            "selection": None,
            "timings": {"train": 0.1},
        }
        if k < len(accs) - 1:
            picked = np.array([(c + k + seed) % 4 for c in range(C)], dtype=float)
            picked = np.floor(picked / picked.sum() * BUDGET).astype(int)
            picked[0] += BUDGET - picked.sum()
            omega = target_counts(counts, BUDGET)
            after = counts + picked
            record.update(
                selected_counts=picked.tolist(),
                batch_l1=l1_score(picked),
                labeled_counts_after=after.tolist(),
                labeled_l1=l1_score(after),
                selection={"omega": omega.tolist()} if STRATEGIES[strategy].uses_lam else {},
            )
            counts = after
        cycles.append(record)
    return RunInfo(f"run-{strategy}-s{seed}", cfg, {"state": "done"}, cycles)


def traces(fig, name: str) -> list:
    return [t for t in fig.data if t.name == name]


def test_learning_curve_mean_and_std_over_seeds():
    runs = [
        make_run("entropy", 0, [0.2, 0.3]),
        make_run("entropy", 1, [0.4, 0.5]),
        make_run("entropy", 2, [0.3, 0.7]),
    ]
    fig = plots.learning_curve(runs).figure
    (line,) = traces(fig, "Entropy")
    assert list(line.x) == [40, 60]
    np.testing.assert_allclose(line.y, [0.3, 0.5])
    (band,) = traces(fig, "Entropy ± std")
    # sample std (ddof=1): 0.1 at 40 labels, 0.2 at 60; the band is upper then lower reversed
    np.testing.assert_allclose(band.y, [0.4, 0.7, 0.3, 0.2])
    assert list(band.x) == [40, 60, 60, 40]
    assert band.fill == "toself" and band.showlegend is False

    tidy = plots.learning_curve_tidy(runs)
    assert len(tidy) == 3 * 2  # one row per run × cycle
    at60 = tidy[tidy["labeled"] == 60]
    np.testing.assert_allclose(at60["mean"], 0.5)
    np.testing.assert_allclose(at60["std"], np.std([0.3, 0.5, 0.7], ddof=1))
    assert set(at60["n_seeds"]) == {3}
    assert "accuracy" in tidy.to_csv(index=False).splitlines()[0]


def test_one_seed_has_no_band_and_strategies_are_separate_series():
    runs = [make_run("entropy", 0, [0.2, 0.3]), make_run("entropy-cb", 0, [0.25, 0.4])]
    fig = plots.learning_curve(runs).figure
    assert [t.name for t in fig.data] == ["Entropy", "Entropy-CB (λ=0.6)"]
    assert plots.learning_curve_tidy(runs)["std"].isna().all()
    np.testing.assert_allclose(traces(fig, "Entropy-CB (λ=0.6)")[0].y, [0.25, 0.4])


def test_series_names_show_lambda_and_what_differs():
    a = make_run("kcenter-cb", 0, [0.1, 0.2])
    b = make_run("kcenter-cb", 1, [0.1, 0.2], imbalance_factor=0.5)
    names = plots.series_names([a, b])
    assert names[a.run_id] == "KCenterGreedy-CB (λ=5) · IF=0.1"
    assert names[b.run_id] == "KCenterGreedy-CB (λ=5) · IF=0.5"
    fig = plots.learning_curve([a, b]).figure
    # same strategy → same colour, told apart by the dash
    assert {t.line.color for t in fig.data} == {plots.strategy_color("kcenter-cb")}
    assert len({t.line.dash for t in fig.data}) == 2


def _hue_lightness(color: str) -> tuple[float, float]:
    """Hue (degrees) and relative luminance (WCAG) of a #RRGGBB colour."""
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    h, _, _ = colorsys.rgb_to_hls(r, g, b)
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return h * 360, 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_colours_are_fixed_okabe_ito_and_shared_by_every_figure():
    colors = {n: plots.strategy_color(n) for n in STRATEGIES}
    assert len(set(colors.values())) == len(STRATEGIES)
    outside = {n for n, c in colors.items() if c not in plots.OKABE_ITO.values()}
    # the paper's nine in Okabe–Ito but for a shade of bluish green; margin and
    # least-confidence beyond the palette's nine colours
    assert outside == {"kcenter-cb", "margin-cb", "leastconf", "leastconf-cb"}
    # every CB variant: its baseline's hue family (within 40°), darker, solid vs dashed
    pairs = [(n, s.baseline) for n, s in STRATEGIES.items() if s.baseline]
    assert sorted(pairs) == [
        ("bald-cb", "bald"),
        ("entropy-cb", "entropy"),
        ("kcenter-cb", "kcenter"),
        ("leastconf-cb", "leastconf"),
        ("margin-cb", "margin"),
    ]
    for cb, base in pairs:
        (h_cb, l_cb), (h_base, l_base) = (
            _hue_lightness(plots.strategy_color(n)) for n in (cb, base)
        )
        assert min(abs(h_cb - h_base), 360 - abs(h_cb - h_base)) < 40, (cb, h_cb, h_base)
        assert l_cb < 0.75 * l_base, (cb, l_cb, l_base)  # darker: apart in greyscale too
        assert plots.strategy_dash(cb) == "solid" and plots.strategy_dash(base) == "dash"
    runs = [make_run("bald", 0, [0.2, 0.3]), make_run("bald-cb", 0, [0.2, 0.35])]
    want = {"BALD": "#E69F00", "BALD-CB (λ=0.6)": "#D55E00"}
    for fig in (plots.learning_curve(runs).figure, plots.l1_curves(runs).figure):
        for t in fig.data:
            if t.name in want:
                assert t.line.color == want[t.name]
    bars = plots.per_class_accuracy(runs, 1).figure
    assert {t.name: t.marker.color for t in bars.data} == want
    hist = plots.selection_histograms(runs, 0).figure
    assert {t.marker.color for t in hist.data if t.type == "bar" and t.name in want} == set(
        want.values()
    )


def test_l1_curves_per_panel_skip_the_last_cycle():
    runs = [make_run("entropy", s, [0.2, 0.3, 0.4]) for s in (0, 1)]
    tidy = plots.l1_tidy(runs)
    assert sorted(set(tidy["cycle"])) == [0, 1]  # cycle 2 only trains
    assert len(tidy) == 2 * 2 * 2  # runs × selecting cycles × panels
    batch = tidy[(tidy["panel"] == "batch") & (tidy["cycle"] == 1)]
    want = [r.cycles[1]["batch_l1"] for r in runs]
    np.testing.assert_allclose(batch["mean"], np.mean(want))
    np.testing.assert_allclose(batch["std"], np.std(want, ddof=1))
    fig = plots.l1_curves(runs).figure
    assert [a.text for a in fig.layout.annotations] == list(plots.L1_PANELS.values())
    lines = traces(fig, "Entropy")
    assert len(lines) == 2 and [t.showlegend for t in lines] == [True, False]


def test_histograms_have_l1_titles_and_omega_only_for_cb():
    runs = [make_run("entropy", 0, [0.2, 0.3]), make_run("entropy-cb", 0, [0.2, 0.3])]
    fig = plots.selection_histograms(runs, 0).figure
    titles = [a.text for a in fig.layout.annotations]
    rec = runs[1].cycles[0]
    assert titles[0] == f"Entropy: batch, L1 = {runs[0].cycles[0]['batch_l1']:.2f}"
    assert titles[3] == f"Entropy-CB (λ=0.6): labeled set after it, L1 = {rec['labeled_l1']:.2f}"
    assert all("L1 = " in t for t in titles) and len(titles) == 4

    omega = [t for t in fig.data if t.name == "Ω target"]
    assert len(omega) == 1  # the CB run's row only
    assert omega[0].xaxis == "x3"  # row 2, batch panel
    np.testing.assert_allclose(omega[0].y, rec["selection"]["omega"])
    batch = [t for t in fig.data if t.type == "bar" and t.xaxis == "x3"]
    assert [list(t.y) for t in batch] == [rec["selected_counts"]]
    stacked = [t for t in fig.data if t.type == "bar" and t.xaxis == "x4"]
    assert [t.name for t in stacked] == ["labeled before", "Entropy-CB (λ=0.6)"]
    np.testing.assert_array_equal(np.add(stacked[0].y, stacked[1].y), rec["labeled_counts_after"])
    tidy = plots.histogram_tidy(runs, 0)
    assert set(tidy[tidy["strategy"] == "entropy"]["kind"]) == {"selected", "labeled before"}
    assert "omega" in set(tidy[tidy["strategy"] == "entropy-cb"]["kind"])


def test_histograms_order_classes_head_to_tail():
    run = make_run("entropy-cb", 0, [0.2, 0.3])
    for profile in ("step", "exp"):  # both profiles put the head first: index order
        cfg = run.config.replace(imbalance_profile=profile)
        assert plots.class_order(cfg, C) == list(range(C))
    names = [f"c{c}" for c in range(C)]
    order = list(range(C))[::-1]
    fig = plots.selection_histograms([run], 0, class_names=names, order=order).figure
    want = [names[c] for c in order]
    assert list(fig.layout.xaxis.categoryarray) == want
    bar = next(t for t in fig.data if t.type == "bar")
    assert list(bar.x) == want
    assert list(bar.y) == [run.cycles[0]["selected_counts"][c] for c in order]


def test_per_class_accuracy_mean_std_and_missing_classes():
    runs = [make_run("random", 0, [0.2, 0.3]), make_run("random", 1, [0.4, 0.5])]
    tidy = plots.per_class_tidy(runs, 1)
    assert len(tidy) == 2 * C
    c3 = tidy[tidy["class"] == 3]
    np.testing.assert_allclose(c3["mean"], 0.43)
    np.testing.assert_allclose(c3["std"], np.std([0.33, 0.53], ddof=1))
    assert tidy[tidy["class"] == C - 1]["accuracy"].isna().all()  # no test image: no value
    fig = plots.per_class_accuracy(runs, 1).figure
    (bars,) = fig.data
    np.testing.assert_allclose(bars.y[:3], [0.4, 0.41, 0.42])
    assert bars.error_y.visible
    other = make_run("random", 2, [0.1, 0.2])
    other.cycles[1]["per_class_accuracy"] = [0.5] * 3
    with pytest.raises(ValueError, match="different numbers of classes"):
        plots.per_class_tidy([*runs, other], 1)


def test_figures_without_data_say_so():
    queued = RunInfo("q", preset("digits", strategy="entropy"), {"state": "queued"}, [])
    assert plots.learning_curve_tidy([queued]).empty
    for fig in (
        plots.learning_curve([queued]).figure,
        plots.l1_curves([queued]).figure,
        plots.selection_histograms([queued], 0).figure,
        plots.per_class_accuracy([queued], 0).figure,
    ):
        assert not fig.data
        assert "yet" in fig.layout.annotations[0].text


def test_figures_are_styled_for_print():
    fig = plots.learning_curve([make_run("entropy", 0, [0.2, 0.3])]).figure
    assert fig.layout.font.size >= 12 and fig.layout.template.layout.paper_bgcolor == "white"
    assert fig.layout.xaxis.title.text == "Labeled images (count)"
    assert fig.layout.yaxis.title.text == "Test accuracy (%)"
    assert fig.layout.yaxis.tickformat == ".0%"


# -- aggregation: one series per experiment, one run per seed -----------------------------------


def _copy(run: RunInfo, run_id: str, created: float, state: str = "done") -> RunInfo:
    return dataclasses.replace(run, run_id=run_id, status={"state": state, "created": created})


def test_duplicates_and_mixed_configurations_are_never_pooled():
    # the case: seed 0 from the CLI and again from the dashboard, and 4-cycle runs
    # among 8-cycle ones, all "Entropy-CB (λ=0.6) · 30 ep"
    eight = [0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.7, 0.7, 0.8]
    cli = _copy(make_run("entropy-cb", 0, eight), "cli-s0", 1.0)
    dash = _copy(make_run("entropy-cb", 0, [a + 0.1 for a in eight]), "dash-s0", 2.0)
    seed1 = _copy(make_run("entropy-cb", 1, [a + 0.05 for a in eight]), "s1", 3.0)
    short = [_copy(make_run("entropy-cb", s, eight[:5]), f"short-s{s}", 4.0 + s) for s in (0, 1)]
    runs = [cli, dash, seed1, *short]
    tidy = plots.learning_curve_tidy(runs)
    names = plots.series_names(runs)
    assert names["cli-s0"] == names["dash-s0"] == names["s1"] == "Entropy-CB (λ=0.6) · 8 cycles"
    assert names["short-s0"] == names["short-s1"] == "Entropy-CB (λ=0.6) · 4 cycles"
    assert set(tidy["run_id"]) == {"dash-s0", "s1", "short-s0", "short-s1"}  # newest seed 0
    by_series = tidy.groupby("series")
    assert by_series["n_seeds"].unique().to_dict() == {
        "Entropy-CB (λ=0.6) · 8 cycles": [2],
        "Entropy-CB (λ=0.6) · 4 cycles": [2],
    }
    assert by_series["duplicates_left_out"].first().to_dict() == {
        "Entropy-CB (λ=0.6) · 8 cycles": 1,
        "Entropy-CB (λ=0.6) · 4 cycles": 0,
    }
    last = tidy[(tidy["series"].str.contains("8 cycles")) & (tidy["cycle"] == 8)]
    np.testing.assert_allclose(last["mean"], np.mean([0.9, 0.85]))  # dash and seed 1 only
    np.testing.assert_allclose(last["std"], np.std([0.9, 0.85], ddof=1))
    # the CSV keeps its columns, and the duplicate is named once for caption and report
    header = tidy.to_csv(index=False).splitlines()[0].split(",")
    assert header[:5] == ["series", "strategy", "run_id", "seed", "duplicates_left_out"]
    assert {"n_seeds", "mean", "std"} <= set(header)
    note = plots.duplicates_note(runs)
    assert note is not None and note.startswith("1 run(s) left out") and "cli-s0" in note
    assert plots.duplicates_note([dash, seed1]) is None
    # the figure: one line per series, in one colour, told apart by dash
    fig = plots.learning_curve(runs).figure
    lines = [t for t in fig.data if t.fill != "toself"]
    assert sorted(t.name for t in lines) == sorted(set(names.values()))
    assert len({t.line.dash for t in lines}) == 2


def test_a_finished_run_beats_a_newer_unfinished_one_of_the_same_seed():
    done = _copy(make_run("entropy", 0, [0.2, 0.3]), "old-done", 1.0)
    failed = _copy(make_run("entropy", 0, [0.4, 0.5]), "new-failed", 2.0, state="failed")
    s = plots.series_set([done, failed])
    assert [r.run_id for r in s.runs] == ["old-done"]
    assert [r.run_id for r in s.left_out] == ["new-failed"] and s.duplicates("Entropy") == 1
    alone = plots.series_set([failed])  # without a finished one, the newest counts
    assert [r.run_id for r in alone.runs] == ["new-failed"]


def test_experiment_key_is_every_field_but_the_seed_and_where_it_ran():
    run = make_run("entropy-cb", 0, [0.2, 0.3])
    key = dict(plots.experiment_key(run))
    # generic: a field added to RunConfig later is part of the experiment unless listed
    assert set(key) == set(field_names()) - plots.NOT_EXPERIMENT_FIELDS
    assert {
        "seed",
        "device",
        "save_pool_arrays",
        "save_embeddings",
        "preset",
        "version",
    } == plots.NOT_EXPERIMENT_FIELDS
    # unset λ and the default it stands for are one experiment; another λ is another
    explicit = make_run("entropy-cb", 1, [0.2, 0.3], lam=0.6)
    assert plots.experiment_key(explicit) == plots.experiment_key(run)
    other = make_run("entropy-cb", 1, [0.2, 0.3], lam=2.0)
    other.cycles[0]["lam"] = 2.0
    assert plots.experiment_key(other) != plots.experiment_key(run)
    # the device and what a run saves do not split series; the solver's time budget does
    moved = make_run("entropy-cb", 1, [0.2, 0.3], device="cpu", save_pool_arrays=False)
    assert plots.experiment_key(moved) == plots.experiment_key(run)
    slower = make_run("entropy-cb", 1, [0.2, 0.3], solver_time_limit=5.0)
    names = plots.series_names([run, slower])
    assert names[slower.run_id] == "Entropy-CB (λ=0.6) · solver_time_limit=5"
    assert names[run.run_id] == "Entropy-CB (λ=0.6) · solver_time_limit=60"


def test_panels_per_if_average_within_the_if_with_one_name_across_panels():
    runs = [
        _copy(make_run("entropy", s, [0.2 + 0.1 * s, 0.4], imbalance_factor=f), f"e{f}-{s}", s)
        for f in (1.0, 0.1)
        for s in (0, 1)
    ]
    runs.append(_copy(runs[0], "e1.0-0-again", 9.0))  # a duplicate of IF 1, seed 0
    tidy = plots.accuracy_by_if_tidy(runs)
    assert set(tidy["series"]) == {"Entropy"}  # the IF is the panel, not part of the name
    assert tidy.groupby("imbalance_factor")["n_seeds"].unique().to_dict() == {0.1: [2], 1.0: [2]}
    assert tidy.groupby("imbalance_factor")["duplicates_left_out"].max().to_dict() == {
        0.1: 0,
        1.0: 1,
    }
    fig = plots.accuracy_by_if(runs).figure
    assert [t.name for t in fig.data if t.showlegend] == ["Entropy"]


def test_accuracy_axis_never_leaves_0_to_100_percent():
    wide = plots.learning_curve(
        [make_run("entropy", 0, [0.33, 0.5]), make_run("entropy", 1, [0.9, 1])]
    ).figure
    axis = wide.layout.yaxis  # a band of ± std (or a single point) must not stretch it
    assert (axis.autorangeoptions.minallowed, axis.autorangeoptions.maxallowed) == (0, 1)
    assert axis.tickformat == ".0%"


def test_figure_builders_return_the_table_they_drew():
    runs = [make_run("entropy", s, [0.2, 0.3, 0.4]) for s in (0, 1)]
    for made, tidy in (
        (plots.learning_curve(runs), plots.learning_curve_tidy(runs)),
        (plots.l1_curves(runs), plots.l1_tidy(runs)),
        (plots.selection_histograms(runs, 0), plots.histogram_tidy(runs, 0)),
        (plots.per_class_accuracy(runs, 1), plots.per_class_tidy(runs, 1)),
    ):
        figure, table = made
        assert len(figure.data) > 0 and len(table) > 0
        pd.testing.assert_frame_equal(table, tidy)
