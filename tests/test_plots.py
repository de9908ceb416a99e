"""cbal.plots on hand-made store records: the numbers plotted, titles, order, colours."""

from __future__ import annotations

import numpy as np
import pytest

from cbal import plots
from cbal.config import preset
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
    fig = plots.learning_curve(runs)
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
    fig = plots.learning_curve(runs)
    assert [t.name for t in fig.data] == ["Entropy", "Entropy-CB (λ=0.6)"]
    assert plots.learning_curve_tidy(runs)["std"].isna().all()
    np.testing.assert_allclose(traces(fig, "Entropy-CB (λ=0.6)")[0].y, [0.25, 0.4])


def test_series_names_show_lambda_and_what_differs():
    a = make_run("kcenter-cb", 0, [0.1, 0.2])
    b = make_run("kcenter-cb", 1, [0.1, 0.2], imbalance_factor=0.5)
    names = plots.series_names([a, b])
    assert names[a.run_id] == "KCenterGreedy-CB (λ=5) · IF=0.1"
    assert names[b.run_id] == "KCenterGreedy-CB (λ=5) · IF=0.5"
    fig = plots.learning_curve([a, b])
    # same strategy → same colour, told apart by the dash
    assert {t.line.color for t in fig.data} == {plots.STRATEGY_COLORS["kcenter-cb"]}
    assert len({t.line.dash for t in fig.data}) == 2


def test_colours_are_fixed_okabe_ito_and_shared_by_every_figure():
    assert set(plots.STRATEGY_COLORS) == set(STRATEGIES)
    assert len(set(plots.STRATEGY_COLORS.values())) == len(STRATEGIES)
    assert set(plots.STRATEGY_COLORS.values()) <= set(plots.OKABE_ITO.values())
    runs = [make_run("bald", 0, [0.2, 0.3]), make_run("bald-cb", 0, [0.2, 0.35])]
    want = {"BALD": "#E69F00", "BALD-CB (λ=0.6)": "#D55E00"}
    for fig in (plots.learning_curve(runs), plots.l1_curves(runs)):
        for t in fig.data:
            if t.name in want:
                assert t.line.color == want[t.name]
    bars = plots.per_class_accuracy(runs, 1)
    assert {t.name: t.marker.color for t in bars.data} == want
    hist = plots.selection_histograms(runs, 0)
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
    fig = plots.l1_curves(runs)
    assert [a.text for a in fig.layout.annotations] == list(plots.L1_PANELS.values())
    lines = traces(fig, "Entropy")
    assert len(lines) == 2 and [t.showlegend for t in lines] == [True, False]


def test_histograms_have_l1_titles_and_omega_only_for_cb():
    runs = [make_run("entropy", 0, [0.2, 0.3]), make_run("entropy-cb", 0, [0.2, 0.3])]
    fig = plots.selection_histograms(runs, 0)
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
    fig = plots.selection_histograms([run], 0, class_names=names, order=order)
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
    fig = plots.per_class_accuracy(runs, 1)
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
        plots.learning_curve([queued]),
        plots.l1_curves([queued]),
        plots.selection_histograms([queued], 0),
        plots.per_class_accuracy([queued], 0),
    ):
        assert not fig.data
        assert "yet" in fig.layout.annotations[0].text


def test_figures_are_styled_for_print():
    fig = plots.learning_curve([make_run("entropy", 0, [0.2, 0.3])])
    assert fig.layout.font.size >= 12 and fig.layout.template.layout.paper_bgcolor == "white"
    assert fig.layout.xaxis.title.text == "Labeled images (count)"
    assert fig.layout.yaxis.title.text == "Test accuracy (%)"
    assert fig.layout.yaxis.tickformat == ".0%"


def test_accuracy_axis_never_leaves_0_to_100_percent():
    wide = plots.learning_curve(
        [make_run("entropy", 0, [0.33, 0.5]), make_run("entropy", 1, [0.9, 1])]
    )
    axis = wide.layout.yaxis  # a band of ± std (or a single point) must not stretch it
    assert (axis.autorangeoptions.minallowed, axis.autorangeoptions.maxallowed) == (0, 1)
    assert axis.tickformat == ".0%"
