"""Plotly figures of runs, built from store records; shared by the dashboard and the exports.

Every figure has a ``*_tidy`` twin returning the data frame of exactly the numbers it plots, one
row per run × cycle × series (the figure is drawn from that frame, so the two cannot disagree).
Nothing here imports Streamlit or torch.

Conventions: one fixed, colour-blind-safe colour per strategy (Okabe–Ito), each balanced
variant in its baseline's colour family; solid lines for the paper's balanced methods and dashed
ones for the classical baselines. A series is one experiment configuration (every setting but
the seed, :func:`experiment_key`), counted once per seed (:func:`series_set`); its seeds are
averaged, with a band of ± one sample standard deviation (ddof = 1; no band for a single seed).
Classes run from the pool's head to its tail (:func:`class_order`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from cbal import strategies
from cbal.config import RunConfig, run_lam
from cbal.data import imbalanced_counts
from cbal.store import RunInfo
from cbal.strategies import STRATEGIES

if TYPE_CHECKING:  # annotations only: the explorer's result types
    from cbal.explore import CycleArrays, LambdaPath, Reselection

OKABE_ITO = strategies.OKABE_ITO  # the palette the registry draws from
OTHER_COLOR = "#7F7F7F"
LABELED_BEFORE_COLOR = "#D9D9D9"
OMEGA_COLOR = "#000000"
FONT = dict(family="Arial, Helvetica, sans-serif", size=14, color="#222222")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def strategy_color(name: str) -> str:
    """The registry's colour of strategy ``name`` (grey for names outside the registry)."""
    return STRATEGIES[name].color if name in STRATEGIES else OTHER_COLOR


def strategy_symbol(name: str) -> str:
    """The registry's marker of strategy ``name`` (a circle for names outside it)."""
    return STRATEGIES[name].marker if name in STRATEGIES else "circle"


def strategy_dash(name: str, variant: int = 0) -> str:
    """The registry's line (solid for the balancing methods, dotted for random, dashed for the
    baselines); ``variant`` > 0 (more series of one strategy in a figure) steps to the next."""
    first = _DASHES.index(STRATEGIES[name].dash) if name in STRATEGIES else 1
    return _DASHES[(first + variant) % len(_DASHES)]


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# -- series: which runs are averaged together, and what they are called ------------------------

# RunConfig fields that never split series: the seed (a series' runs are its seeds) and what
# changes neither the experiment nor its result's meaning: where it ran, what it saved, its
# preset's name (the preset's values are fields of their own) and the file format. Every other
# field, those added later included, is part of a run's experiment (:func:`experiment_key`).
NOT_EXPERIMENT_FIELDS = frozenset(
    {"seed", "device", "save_pool_arrays", "save_embeddings", "preset", "version"}
)
# how a field that differs between a figure's series reads in their names (others: field=value)
_SERIES_FIELDS: dict[str, Callable[[Any], str]] = {
    "dataset": str,
    "imbalance_factor": lambda v: f"IF={v:g}",
    "imbalance_profile": str,
    "initial_labeled": lambda v: f"init={v}",
    "budget": lambda v: f"b={v}",
    "cycles": lambda v: f"{v} cycles",
    "model": str,
    "epochs": lambda v: f"{v} ep",
    "initial_sampling": lambda v: f"init {v}",
    "mc_source": lambda v: f"MC {v}",
    "compat": lambda v: f"compat={v}",
}


def strategy_label(name: str) -> str:
    return STRATEGIES[name].label if name in STRATEGIES else name


def experiment_key(info: RunInfo) -> tuple[tuple[str, Any], ...]:
    """The run's whole experiment configuration minus the seed: (field, value) for every
    RunConfig field outside :data:`NOT_EXPERIMENT_FIELDS`, λ as the run uses it (unset and the
    default it stands for are one experiment). Runs with equal keys are seeds of one series."""
    values = info.config.to_dict()
    values["lam"] = run_lam(info.config, cycles=info.cycles)
    if values.get("data_dir"):
        values["data_dir"] = os.path.normpath(values["data_dir"])
    return tuple(
        (name, tuple(v) if isinstance(v, list) else v)
        for name, v in sorted(values.items())
        if name not in NOT_EXPERIMENT_FIELDS
    )


def _newest_finished_first(info: RunInfo) -> tuple[bool, float, str]:
    return (info.state == "done", float(info.status.get("created") or 0.0), info.run_id)


@dataclass(frozen=True)
class SeriesSet:
    """Runs as a figure averages them: ``runs`` holds one run per (experiment, seed) (the newest
    finished one; else the newest), in the given order; ``names`` maps every given run's id to
    its series' name; ``left_out`` holds the duplicates (another run of the same experiment and
    seed), which no figure or table counts."""

    runs: list[RunInfo]
    names: dict[str, str]
    left_out: list[RunInfo]

    def subset(self, keep: Callable[[RunInfo], bool]) -> SeriesSet:
        return SeriesSet(
            [r for r in self.runs if keep(r)], self.names, [r for r in self.left_out if keep(r)]
        )

    def duplicates(self, series: str) -> int:
        """How many runs of ``series`` were left out as duplicates."""
        return sum(self.names[r.run_id] == series for r in self.left_out)


def series_set(runs: Sequence[RunInfo], omit: Sequence[str] = ()) -> SeriesSet:
    """Group ``runs`` into series by :func:`experiment_key`, keep one run per (experiment, seed)
    and name the series (:func:`series_names`; fields in ``omit`` are left out of the names,
    e.g. the imbalance factor of a figure with one panel per IF)."""
    keys = {r.run_id: experiment_key(r) for r in runs}
    best: dict[tuple[Any, int], RunInfo] = {}
    for r in runs:
        slot = (keys[r.run_id], r.config.seed)
        if slot not in best or _newest_finished_first(r) > _newest_finished_first(best[slot]):
            best[slot] = r
    kept = {r.run_id for r in best.values()}
    return SeriesSet(
        [r for r in runs if r.run_id in kept],
        _names(runs, keys, omit),
        [r for r in runs if r.run_id not in kept],
    )


def _names(
    runs: Sequence[RunInfo], keys: dict[str, tuple[tuple[str, Any], ...]], omit: Sequence[str]
) -> dict[str, str]:
    fields = [f for f, _ in next(iter(keys.values()))] if keys else []
    skip = {"strategy", "lam", *omit}
    varying = [f for f in fields if f not in skip and len({dict(k)[f] for k in keys.values()}) > 1]
    names: dict[str, str] = {}
    taken: dict[str, tuple[Any, ...]] = {}
    for r in runs:
        name = strategy_label(r.config.strategy)
        lam = dict(keys[r.run_id])["lam"]
        if r.config.strategy in STRATEGIES and STRATEGIES[r.config.strategy].uses_lam:
            name += " (λ=default)" if lam is None else f" (λ={lam:g})"
        values = dict(keys[r.run_id])
        extra = [_field_text(f, values[f]) for f in varying]
        name = " · ".join([name, *extra])
        key = tuple(v for f, v in keys[r.run_id] if f not in omit)
        while taken.setdefault(name, key) != key:  # never two experiments under one name
            name += "′"
        names[r.run_id] = name
    return names


def _field_text(name: str, value: Any) -> str:
    if name in _SERIES_FIELDS:
        return _SERIES_FIELDS[name](value)
    if isinstance(value, float):
        return f"{name}={value:g}"
    if isinstance(value, tuple):
        return f"{name}={','.join(map(str, value))}"
    return f"{name}={value}"


def series_names(runs: Sequence[RunInfo], omit: Sequence[str] = ()) -> dict[str, str]:
    """Run id → series name: the strategy's label, its λ, and every experiment setting that
    differs between the given runs (seeds aside: the runs of one series are its seeds)."""
    return series_set(runs, omit).names


def duplicates_note(runs: Sequence[RunInfo]) -> str | None:
    """A sentence naming the runs left out as duplicates of one experiment and seed, or None."""
    left = sorted(r.run_id for r in series_set(runs).left_out)
    if not left:
        return None
    return (
        f"{len(left)} run(s) left out as duplicates (same configuration and seed as another; the "
        f"newest finished run of each is counted): {', '.join(left)}."
    )


def _as_set(runs: Sequence[RunInfo] | SeriesSet) -> SeriesSet:
    return runs if isinstance(runs, SeriesSet) else series_set(runs)


def _styles(runs: Sequence[RunInfo] | SeriesSet) -> dict[str, dict[str, str]]:
    s = _as_set(runs)
    return _series_style(s.runs, s.names)


def _series_style(runs: Sequence[RunInfo], names: dict[str, str]) -> dict[str, dict[str, str]]:
    """Series name → colour, dash and marker; series of one strategy differ in dash."""
    order = {s: i for i, s in enumerate(STRATEGIES)}
    by_series = {names[r.run_id]: r.config.strategy for r in runs}
    ordered = sorted(by_series, key=lambda n: (order.get(by_series[n], len(order)), n))
    styles: dict[str, dict[str, str]] = {}
    seen: dict[str, int] = {}
    for name in ordered:
        strategy = by_series[name]
        variant = seen.get(strategy, 0)
        seen[strategy] = variant + 1
        styles[name] = {
            "color": strategy_color(strategy),
            "dash": strategy_dash(strategy, variant),
            "symbol": strategy_symbol(strategy),
            "strategy": strategy,
        }
    return styles


def _with_stats(df: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    """Add mean, std (ddof=1, NaN for one seed) of ``value`` and n_seeds (distinct seeds
    averaged: one run each, see :func:`series_set`) over groups ``by``."""
    if df.empty:
        return df.assign(mean=[], std=[], n_seeds=[])
    grouped = df.groupby(by, sort=False)[value]
    return df.assign(
        mean=grouped.transform("mean"),
        std=grouped.transform(lambda v: v.std(ddof=1) if v.count() > 1 else np.nan),
        n_seeds=df.groupby(by, sort=False)["seed"].transform("nunique").astype(int),
    )


# -- layout ----------------------------------------------------------------------------------


_TEMPLATE = pio.templates["plotly_white"]


def _white_template(fig: go.Figure) -> None:
    """plotly_white on ``fig``. plotly validates a template on every assignment, the largest
    part of building a small figure (30 of 80 ms for the λ explorer's histograms); this one
    is plotly's own and valid, so it goes in unchecked."""
    layout = fig.layout
    layout._validate = False
    try:
        layout.template = _TEMPLATE
    finally:
        layout._validate = True


def style(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """The house style: white background, readable fonts, the legend to the right."""
    _white_template(fig)
    fig.update_layout(
        # aligned with the plot area, not flush against the figure's edge
        title=dict(text=title, x=0.0, xref="paper", xanchor="left", font=dict(size=17)),
        font=FONT,
        height=height,
        margin=dict(l=70, r=20, t=80, b=60),
        legend=dict(x=1.02, xanchor="left", y=1.0, yanchor="top", tracegroupgap=4),
        hoverlabel=dict(font_size=13),
    )
    fig.update_xaxes(showline=True, linecolor="#444444", ticks="outside", mirror=False)
    fig.update_yaxes(showline=True, linecolor="#444444", ticks="outside", gridcolor="#E5E5E5")
    return fig


def _empty(title: str, message: str) -> go.Figure:
    fig = style(go.Figure(), title, height=300)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _add_bands(
    fig: go.Figure,
    df: pd.DataFrame,
    x: str,
    styles: dict[str, dict[str, str]],
    hover: str,
    row: int | None = None,
    col: int | None = None,
    showlegend: bool = True,
) -> None:
    """One mean line per series and, where it has two or more seeds, its ± std band."""
    where = {} if row is None else {"row": row, "col": col}
    for name, st in styles.items():
        pts = df[df["series"] == name].drop_duplicates(x).sort_values(x)
        if pts.empty:
            continue
        band = pts[pts["std"].notna()]
        if not band.empty:
            xs = band[x].tolist()
            upper = (band["mean"] + band["std"]).tolist()
            lower = (band["mean"] - band["std"]).tolist()
            fig.add_trace(
                go.Scatter(
                    x=xs + xs[::-1],
                    y=upper + lower[::-1],
                    fill="toself",
                    mode="lines",  # without it plotly marks the band's corners
                    fillcolor=_rgba(st["color"], 0.18),
                    line=dict(width=0),
                    name=f"{name} ± std",
                    legendgroup=name,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                **where,
            )
        fig.add_trace(
            go.Scatter(
                x=pts[x].tolist(),
                y=pts["mean"].tolist(),
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=showlegend,
                line=dict(color=st["color"], dash=st["dash"], width=2.5),
                marker=dict(symbol=st["symbol"], size=8, color=st["color"]),
                customdata=np.column_stack([pts["std"].fillna(0.0), pts["n_seeds"]]),
                hovertemplate=f"{name}<br>{hover}<extra></extra>",
            ),
            **where,
        )


_KEY_COLUMNS = ["series", "strategy", "run_id", "seed", "duplicates_left_out"]


def _run_keys(r: RunInfo, s: SeriesSet) -> dict[str, Any]:
    """The columns that identify a run in every tidy table (:data:`_KEY_COLUMNS`): series,
    strategy, run id, seed and how many duplicate runs of the series were left out."""
    name = s.names[r.run_id]
    return {
        "series": name,
        "strategy": r.config.strategy,
        "run_id": r.run_id,
        "seed": r.config.seed,
        "duplicates_left_out": s.duplicates(name),
    }


class Chart(NamedTuple):
    """A figure and the tidy table it was drawn from (one row per plotted value), built
    together so that a caller showing or exporting both builds the table once."""

    figure: go.Figure
    table: pd.DataFrame


# -- accuracy vs labeled-set size --------------------------------------------------------------


def learning_curve_tidy(runs: Sequence[RunInfo] | SeriesSet) -> pd.DataFrame:
    """One row per run × finished cycle: the run's test accuracy at its labeled-set size, with
    the series' mean, std and seed count at that size (the plotted line and band)."""
    s = _as_set(runs)
    rows = [
        {
            **_run_keys(r, s),
            "cycle": c["cycle"],
            "labeled": c["labeled"],
            "accuracy": c["accuracy"],
        }
        for r in s.runs
        for c in r.cycles
    ]
    cols = [*_KEY_COLUMNS, "cycle", "labeled", "accuracy"]
    return _with_stats(pd.DataFrame(rows, columns=cols), "accuracy", ["series", "labeled"])


def learning_curve(runs: Sequence[RunInfo], title: str = "Test accuracy") -> Chart:
    """Accuracy vs labeled-set size, one line per series (mean over seeds, ± std band)."""
    df = learning_curve_tidy(runs)
    if df.empty:
        return Chart(_empty(title, "no finished cycle yet"), df)
    fig = style(go.Figure(), title, height=460)
    hover = "%{x} labels: %{y:.2%} ± %{customdata[0]:.2%} (%{customdata[1]} seeds)"
    _add_bands(fig, df, "labeled", _styles(runs), hover)
    fig.update_xaxes(title_text="Labeled images (count)")
    fig.update_yaxes(  # autorange, but never beyond 0-100 % (a band or one point would)
        title_text="Test accuracy (%)",
        tickformat=".0%",
        autorangeoptions=dict(minallowed=0, maxallowed=1),
    )
    return Chart(fig, df)


# -- class balance of the selections (L1) ----------------------------------------------------

L1_PANELS = {"batch": "Selected batch", "labeled": "Labeled set after selection"}


def l1_tidy(runs: Sequence[RunInfo] | SeriesSet) -> pd.DataFrame:
    """One row per run × selecting cycle × panel (batch, labeled): the L1 imbalance score, with
    the series' mean, std and seed count at that cycle."""
    s = _as_set(runs)
    rows = [
        {
            **_run_keys(r, s),
            "cycle": c["cycle"],
            "panel": panel,
            "l1": c["batch_l1"] if panel == "batch" else c["labeled_l1"],
        }
        for r in s.runs
        for c in r.cycles
        if c.get("selected_counts") is not None
        for panel in L1_PANELS
    ]
    cols = [*_KEY_COLUMNS, "cycle", "panel", "l1"]
    return _with_stats(pd.DataFrame(rows, columns=cols), "l1", ["series", "panel", "cycle"])


def l1_curves(runs: Sequence[RunInfo], title: str = "Class imbalance (L1) per cycle") -> Chart:
    """L1 vs cycle per series, for the batch (top) and the labeled set (bottom); 0 = balanced."""
    df = l1_tidy(runs)
    if df.empty:
        return Chart(_empty(title, "no selection yet"), df)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=list(L1_PANELS.values()),
    )
    style(fig, title, height=460)
    styles = _styles(runs)
    hover = "cycle %{x}: L1 %{y:.3f} ± %{customdata[0]:.3f} (%{customdata[1]} seeds)"
    for row, panel in enumerate(L1_PANELS, 1):
        _add_bands(fig, df[df["panel"] == panel], "cycle", styles, hover, row, 1, row == 1)
    fig.update_xaxes(dtick=1)
    fig.update_xaxes(title_text="Cycle", row=2)
    # short: a title spans its whole panel's height, and two long ones overlap in large type
    fig.update_yaxes(title_text="L1 score", range=[0, 1.02])
    return Chart(fig, df)


# -- per-class histograms of one cycle's selection -------------------------------------------


def class_order(cfg: RunConfig, num_classes: int) -> list[int]:
    """Classes from the head of the pool to its tail: the configured profile's target counts,
    largest first, ties in index order. Both profiles (step, exp) shrink classes with their
    index, so this is index order for every pool cbal builds."""
    counts = imbalanced_counts(10**6, num_classes, cfg.imbalance_factor, cfg.imbalance_profile)
    return np.argsort(-counts, kind="stable").tolist()


def _classes(
    runs: Sequence[RunInfo],
    num_classes: int,
    class_names: Sequence[str] | None,
    order: Sequence[int] | None,
) -> tuple[list[int], list[str]]:
    order = list(order) if order is not None else class_order(runs[0].config, num_classes)
    names = [str(n) for n in class_names] if class_names else [str(c) for c in range(num_classes)]
    return order, names


def _record(info: RunInfo, cycle: int) -> dict[str, Any] | None:
    return info.cycles[cycle] if 0 <= cycle < len(info.cycles) else None


def histogram_tidy(
    runs: Sequence[RunInfo] | SeriesSet,
    cycle: int,
    class_names: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per run × class × series of the selection histograms of ``cycle``: panel 'batch'
    (series 'selected', and 'omega' = Ω for balancing strategies) and panel 'labeled' (series
    'labeled before' and 'selected', stacked), with the panel's L1 score."""
    s = _as_set(runs)
    picked = [(r, rec) for r in s.runs if (rec := _record(r, cycle)) and rec.get("selected_counts")]
    cols = [*_KEY_COLUMNS, "cycle", "panel", "kind", "class", "class_name", "position"]
    cols += ["count", "l1"]
    if not picked:
        return pd.DataFrame([], columns=cols)
    num_classes = len(picked[0][1]["selected_counts"])
    order, names = _classes(s.runs, num_classes, class_names, order)
    rows = []
    for r, rec in picked:
        omega = (rec.get("selection") or {}).get("omega")
        parts = [
            ("batch", "selected", rec["selected_counts"], rec["batch_l1"]),
            ("labeled", "labeled before", rec["labeled_counts"], rec["labeled_l1"]),
            ("labeled", "selected", rec["selected_counts"], rec["labeled_l1"]),
        ]
        if omega is not None:
            parts.insert(1, ("batch", "omega", omega, rec["batch_l1"]))
        for panel, kind, counts, l1 in parts:
            for pos, c in enumerate(order):
                rows.append(
                    {
                        **_run_keys(r, s),
                        "cycle": cycle,
                        "panel": panel,
                        "kind": kind,
                        "class": c,
                        "class_name": names[c],
                        "position": pos,
                        "count": counts[c],
                        "l1": l1,
                    }
                )
    return pd.DataFrame(rows, columns=cols)


def histogram_titles(tidy: pd.DataFrame) -> list[str]:
    """Panel titles, two per run (batch, labeled set), each with its L1 score."""
    seeds = tidy.groupby("series")["run_id"].nunique().max() > 1
    titles = []
    for (_, panel), part in tidy.groupby(["run_id", "panel"], sort=False):
        row = part.iloc[0]
        name = f"{row['series']} · seed {row['seed']}" if seeds else row["series"]
        where = "batch" if panel == "batch" else "labeled set after it"
        titles.append(f"{name}: {where}, L1 = {row['l1']:.2f}")
    return titles


def selection_histograms(
    runs: Sequence[RunInfo],
    cycle: int,
    class_names: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
) -> Chart:
    """Per-class counts of the batch selected in ``cycle`` and of the labeled set after it, one
    row per run, L1 in every panel title, classes head → tail; Ω drawn for balancing strategies."""
    title = f"Selection of cycle {cycle} by class (head → tail)"
    df = histogram_tidy(runs, cycle, class_names, order)
    if df.empty:
        return Chart(_empty(title, f"no run has finished the selection of cycle {cycle} yet"), df)
    run_ids = list(dict.fromkeys(df["run_id"]))
    fig = make_subplots(
        rows=len(run_ids),
        cols=2,
        subplot_titles=histogram_titles(df),
        horizontal_spacing=0.08,
        vertical_spacing=min(0.3 / len(run_ids), 0.12) if len(run_ids) > 1 else 0.1,
    )
    style(fig, title, height=150 + 260 * len(run_ids))
    fig.update_layout(barmode="stack", bargap=0.15)
    in_legend: set[str] = set()
    for row, run_id in enumerate(run_ids, 1):
        part = df[df["run_id"] == run_id]
        color = strategy_color(part["strategy"].iloc[0])
        for (panel, kind), bars in part.groupby(["panel", "kind"], sort=False):
            x, y = bars["class_name"].tolist(), bars["count"].tolist()
            trace: go.Scatter | go.Bar
            if kind == "omega":
                trace = go.Scatter(
                    x=x,
                    y=y,
                    mode="markers",
                    name="Ω target",
                    marker=dict(symbol="line-ew", size=22, line=dict(width=3, color=OMEGA_COLOR)),
                    hovertemplate="class %{x}: Ω = %{y:.2f}<extra></extra>",
                )
            else:
                before = kind == "labeled before"
                trace = go.Bar(
                    x=x,
                    y=y,
                    name="labeled before" if before else bars["series"].iloc[0],
                    marker_color=LABELED_BEFORE_COLOR if before else color,
                    hovertemplate=f"class %{{x}}: %{{y}} {kind}<extra></extra>",
                )
            # one legend entry for Ω and for "labeled before"; panel titles name the strategies
            trace.update(legendgroup=kind, showlegend=kind != "selected" and kind not in in_legend)
            in_legend.add(kind)
            fig.add_trace(trace, row=row, col=1 if panel == "batch" else 2)
    names = df.sort_values("position")["class_name"].drop_duplicates().tolist()
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names)
    fig.update_xaxes(title_text="Class (head → tail)", row=len(run_ids))
    fig.update_yaxes(title_text="Images (count)", col=1)
    fig.update_annotations(font=dict(size=14))
    return Chart(fig, df)


# -- per-class test accuracy -----------------------------------------------------------------


def per_class_tidy(
    runs: Sequence[RunInfo] | SeriesSet,
    cycle: int,
    class_names: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per run × class at ``cycle``: the run's test accuracy on the class, with the
    series' mean, std and seed count (the plotted bar and error bar)."""
    s = _as_set(runs)
    picked = [(r, rec) for r in s.runs if (rec := _record(r, cycle))]
    cols = [*_KEY_COLUMNS, "cycle", "labeled", "class", "class_name", "position", "accuracy"]
    if not picked:
        return _with_stats(pd.DataFrame([], columns=cols), "accuracy", ["series", "class"])
    sizes = {len(rec["per_class_accuracy"]) for _, rec in picked}
    if len(sizes) > 1:
        raise ValueError("these runs have different numbers of classes; compare one dataset")
    order, names = _classes(s.runs, sizes.pop(), class_names, order)
    rows = [
        {
            **_run_keys(r, s),
            "cycle": cycle,
            "labeled": rec["labeled"],
            "class": c,
            "class_name": names[c],
            "position": pos,
            "accuracy": np.nan
            if rec["per_class_accuracy"][c] is None
            else rec["per_class_accuracy"][c],
        }
        for r, rec in picked
        for pos, c in enumerate(order)
    ]
    return _with_stats(pd.DataFrame(rows, columns=cols), "accuracy", ["series", "class"])


def per_class_accuracy(
    runs: Sequence[RunInfo],
    cycle: int,
    class_names: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
) -> Chart:
    """Test accuracy per class at ``cycle`` (classes head → tail): one bar per series (mean over
    seeds) with a ± std error bar."""
    title = f"Per-class test accuracy at cycle {cycle}"
    df = per_class_tidy(runs, cycle, class_names, order)
    if df.empty:
        return Chart(_empty(title, f"no run has finished cycle {cycle} yet"), df)
    fig = style(go.Figure(), title)
    for name, st in _styles(runs).items():
        bars = df[df["series"] == name].drop_duplicates("class").sort_values("position")
        if bars.empty:
            continue
        fig.add_trace(
            go.Bar(
                x=bars["class_name"].tolist(),
                y=bars["mean"].tolist(),
                name=name,
                marker=dict(color=st["color"]),
                error_y=dict(
                    type="data",
                    array=bars["std"].fillna(0.0).tolist(),
                    visible=bool(bars["std"].notna().any()),
                    thickness=1.2,
                ),
                hovertemplate=f"{name}<br>class %{{x}}: %{{y:.2%}}<extra></extra>",
            )
        )
    names = df.sort_values("position")["class_name"].drop_duplicates().tolist()
    fig.update_layout(barmode="group", bargap=0.2, bargroupgap=0.05)
    fig.update_xaxes(
        title_text="Class (head → tail)",
        type="category",
        categoryorder="array",
        categoryarray=names,
    )
    fig.update_yaxes(title_text="Test accuracy (%)", tickformat=".0%", range=[0, 1.05])
    return Chart(fig, df)


# -- teaching pages: class-count bars and the 2-D playground -----------------------------------

# one colour per class of the playground (Tol's "safe" palette, colour-blind safe; 10 classes)
CLASS_COLORS = (
    "#88CCEE",
    "#CC6677",
    "#DDCC77",
    "#117733",
    "#332288",
    "#AA4499",
    "#44AA99",
    "#999933",
    "#882255",
    "#661100",
)


def _add_class_bars(
    fig: go.Figure,
    counts: Sequence[float] | np.ndarray,
    color: str,
    name: str = "count",
    before: Sequence[float] | np.ndarray | None = None,
    omega: Sequence[float] | np.ndarray | None = None,
    row: int | None = None,
    col: int | None = None,
) -> None:
    """Bars of per-class counts named ``name``, stacked on ``before`` (grey) when given, with
    Ω ticks when ``omega`` is given."""
    where = {} if row is None else {"row": row, "col": col}
    names = [str(c) for c in range(len(counts))]
    if before is not None:
        fig.add_trace(
            go.Bar(
                x=names,
                y=list(before),
                name="labeled before",
                marker_color=LABELED_BEFORE_COLOR,
                hovertemplate="class %{x}: %{y} labeled before<extra></extra>",
            ),
            **where,
        )
    fig.add_trace(
        go.Bar(
            x=names,
            y=list(counts),
            name=name,
            marker_color=color,
            hovertemplate="class %{x}: %{y}<extra></extra>",
        ),
        **where,
    )
    if omega is not None:
        fig.add_trace(
            go.Scatter(
                x=names,
                y=list(omega),
                mode="markers",
                name="Ω target",
                marker=dict(symbol="line-ew", size=22, line=dict(width=3, color=OMEGA_COLOR)),
                hovertemplate="class %{x}: Ω = %{y:.2f}<extra></extra>",
            ),
            **where,
        )
    fig.update_xaxes(title_text="Class (head → tail)", type="category", **where)


def class_bars(
    counts: Sequence[float] | np.ndarray,
    title: str,
    level: float | None = None,
    height: int = 320,
) -> go.Figure:
    """Per-class counts as bars, classes in index order (head → tail for cbal's pools), with a
    dashed line at ``level`` (e.g. the uniform share n / C) when given."""
    fig = style(go.Figure(), title, height=height)
    _add_class_bars(fig, counts, OTHER_COLOR)
    if level is not None:
        fig.add_hline(
            y=level,
            line=dict(dash="dash", color=OMEGA_COLOR, width=1.5),
            annotation_text=f"n / C = {level:g}",
            annotation_position="top right",
        )
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title_text="Count")
    return fig


def playground_figure(
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    unlabeled: tuple[np.ndarray, np.ndarray],
    labeled: tuple[np.ndarray, np.ndarray],
    batch_xy: np.ndarray,
    batch_counts: np.ndarray,
    omega: np.ndarray,
    labeled_before: np.ndarray,
    l1: tuple[float, float],
    strategy: str,
    title: str,
) -> go.Figure:
    """One loop of the 2-D playground (:mod:`cbal.playground`) and the batch it picks next.

    Top: the model's decision regions (``grid`` = xs, ys and the predicted class of each cell),
    the ``unlabeled`` pool (points, true classes) coloured by its hidden class, the ``labeled``
    points outlined and the batch as stars in the ``strategy``'s colour. Below: the batch's true
    class histogram with the Ω ticks, and the labeled set once the batch is labeled (grey: the
    ``labeled_before`` counts); ``l1`` = (batch, labeled set after it) in the panel titles.
    """
    c = len(batch_counts)
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"colspan": 2}, None], [{}, {}]],
        row_heights=[0.68, 0.32],
        vertical_spacing=0.1,
        subplot_titles=[
            "",
            f"Next batch: L1 = {l1[0]:.2f}",
            f"Labeled after it: L1 = {l1[1]:.2f}",
        ],
    )
    style(fig, title, height=820)
    color = strategy_color(strategy)
    _add_playground_points(fig, c, grid, unlabeled, labeled, batch_xy, color)
    _add_class_bars(fig, batch_counts, color, "next batch", omega=omega, row=2, col=1)
    _add_class_bars(fig, batch_counts, color, "next batch", before=labeled_before, row=2, col=2)
    _playground_layout(fig, grid)
    return fig


def _add_playground_points(
    fig: go.Figure,
    c: int,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    unlabeled: tuple[np.ndarray, np.ndarray],
    labeled: tuple[np.ndarray, np.ndarray],
    batch_xy: np.ndarray,
    color: str,
) -> None:
    """The playground's top panel (``c`` classes): decision regions, the pool by hidden class,
    the labeled points outlined and the next batch as stars in ``color``."""
    xs, ys, regions = grid
    fig.add_trace(
        go.Heatmap(
            x=xs,
            y=ys,
            z=regions,
            zmin=-0.5,
            zmax=c - 0.5,
            colorscale=[[pos / c, CLASS_COLORS[k]] for k in range(c) for pos in (k, k + 1)],
            opacity=0.25,
            showscale=False,
            hovertemplate="predicted class %{z}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    pool_xy, pool_y = unlabeled
    for k in range(c):
        pts = pool_xy[pool_y == k]
        fig.add_trace(
            go.Scatter(
                x=pts[:, 0],
                y=pts[:, 1],
                mode="markers",
                name=f"class {k} ({len(pts)})",
                marker=dict(size=5, color=CLASS_COLORS[k], opacity=0.6),
                hovertemplate=f"unlabeled, class {k}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    lab_xy, lab_y = labeled
    fig.add_trace(
        go.Scatter(
            x=lab_xy[:, 0],
            y=lab_xy[:, 1],
            mode="markers",
            name="labeled",
            marker=dict(
                size=10,
                color=[CLASS_COLORS[k] for k in lab_y],
                line=dict(width=1.5, color="#000000"),
            ),
            text=[str(k) for k in lab_y],
            hovertemplate="labeled, class %{text}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=batch_xy[:, 0],
            y=batch_xy[:, 1],
            mode="markers",
            name="next batch",
            marker=dict(symbol="star", size=15, color=color, line=dict(width=1, color="#000000")),
            hovertemplate="picked next<extra></extra>",
        ),
        row=1,
        col=1,
    )


def _playground_layout(fig: go.Figure, grid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """One legend entry per name, the legend below, the scatter's axes fitted to ``grid``."""
    xs, ys, _ = grid
    seen: set[str] = set()
    for trace in fig.data:  # one legend entry per name: the stars stand for the batch's bars
        if trace.name in seen:
            trace.showlegend = False
        seen.add(trace.name)
    fig.update_layout(
        barmode="stack",
        bargap=0.15,
        margin=dict(r=20, b=150),  # the legend goes below: the page shows two of these abreast
        legend=dict(
            orientation="h", x=0.0, xanchor="left", y=-0.12, yanchor="top", traceorder="normal"
        ),
    )
    scatter_axes = dict(
        showgrid=False, zeroline=False, showticklabels=False, ticks="", constrain="domain"
    )
    scatter_axes.update(row=1, col=1)
    fig.update_xaxes(range=[xs[0], xs[-1]], **scatter_axes)
    fig.update_yaxes(range=[ys[0], ys[-1]], scaleanchor="x", scaleratio=1, **scatter_axes)
    fig.update_yaxes(title_text="Count", row=2, col=1)
    fig.update_annotations(font=dict(size=14))
    return fig


# -- paper figures (exports) and the λ explorer ----------------------------------------------
# Appended with cbal.export: the paper's figure set (accuracy and L1 per imbalance factor, the
# per-class distribution of the selections, the λ trade-off) and the λ explorer's histograms.

PX_PER_IN = 96  # CSS pixels per inch: the browser lays a figure out in them, and prints at it
#: Print widths (inches): one column of a two-column paper, and the full text width.
PAPER_WIDTHS = {"single": 3.5, "double": 7.0}
MIN_FONT_PT = 7.0  # the smallest type a figure may print with
PAPER_FONT_PX = 10  # 7.5 pt at print size
_AXIS_SPACE = 46  # px under the plot area: x tick labels and the x-axis title (10 px type)
_LEGEND_ROW = 19  # px per row of a horizontal legend (10 px type)


def font_pt(px: float) -> float:
    """Points at print size of ``px`` CSS pixels (a paper figure's layout is its print size)."""
    return px * 72 / PX_PER_IN


def paper_width_px(width: str) -> int:
    if width not in PAPER_WIDTHS:
        raise ValueError(f"width={width!r} must be one of {', '.join(PAPER_WIDTHS)}")
    return round(PAPER_WIDTHS[width] * PX_PER_IN)


def _legend_rows(fig: go.Figure, room: float) -> int:
    """Rows of a horizontal legend of ``fig``'s entries in ``room`` px (an upper estimate:
    average glyph width ≈ 0.6 em; the browser test checks the result)."""
    names = [t.name for t in fig.data if t.showlegend is not False and t.name]
    rows, used = (1, 0.0) if names else (0, 0.0)
    for name in dict.fromkeys(names):
        item = 46 + 0.6 * PAPER_FONT_PX * len(name)
        if used and used + item > room:
            rows, used = rows + 1, 0.0
        used += item
    return rows


def paper_style(
    fig: go.Figure, width: str = "double", legend: bool = True, aspect: float = 0.72
) -> go.Figure:
    """Publication styling on top of :func:`style`: the layout is the print size, ``width``
    (:data:`PAPER_WIDTHS`: 3.5 in or 7 in at :data:`PX_PER_IN`), so 10 px type prints at 7.5 pt;
    no title in the plot area; panels ``aspect`` (height / width) of their share of the width;
    the legend under the x-axis titles in a bottom margin sized for its rows."""
    cols = len({tuple(ax.domain or (0, 1)) for ax in fig.select_xaxes()})
    rows = len({tuple(ax.domain or (0, 1)) for ax in fig.select_yaxes()})
    total = paper_width_px(width)
    has_titles = any(
        a.yref == "paper" and a.y is not None and a.y >= 1 for a in fig.layout.annotations
    )
    m = dict(l=54, r=10, t=30 if has_titles else 10, b=_AXIS_SPACE)
    panel_w = (total - m["l"] - m["r"]) / cols
    panel_h = min(max(panel_w * aspect, 110.0), 230.0)
    plot_h = panel_h * rows + 44 * (rows - 1)  # the gaps hold the subplot titles
    n_rows = _legend_rows(fig, total - 20) if legend else 0
    if n_rows:
        m["b"] += n_rows * _LEGEND_ROW + 8
    fig.update_layout(
        title_text="",
        font=dict(FONT, size=PAPER_FONT_PX),
        width=total,
        height=round(m["t"] + m["b"] + plot_h),
        margin=m,
        showlegend=legend and n_rows > 0,
        legend=dict(
            orientation="h",
            x=0.5,
            xanchor="center",
            y=-_AXIS_SPACE / plot_h,
            yanchor="top",
            font=dict(size=PAPER_FONT_PX),
            itemwidth=30,
            tracegroupgap=0,
        ),
        hoverlabel=dict(font_size=PAPER_FONT_PX),
    )
    fig.update_xaxes(title_standoff=4, tickfont_size=PAPER_FONT_PX, automargin=False)
    fig.update_yaxes(title_standoff=4, tickfont_size=PAPER_FONT_PX, automargin=False)
    fig.update_annotations(font_size=PAPER_FONT_PX)
    for trace in fig.data:  # thinner lines and markers at print size; bands keep no outline
        if trace.type == "scatter" and trace.fill != "toself" and trace.mode != "markers":
            trace.update(line_width=1.5, marker_size=5)
    return fig


def if_groups(runs: Sequence[RunInfo]) -> list[tuple[float, list[RunInfo]]]:
    """The runs by imbalance factor, balanced first (the paper's panel order: IF 1, 0.3, 0.1)."""
    ifs = sorted({r.config.imbalance_factor for r in runs}, reverse=True)
    return [(v, [r for r in runs if r.config.imbalance_factor == v]) for v in ifs]


_BY_IF = ("imbalance_factor",)


def _with_if(value: float) -> Callable[[RunInfo], bool]:
    return lambda r: r.config.imbalance_factor == value


def _tidy_by_if(runs: Sequence[RunInfo], tidy: Callable[[SeriesSet], pd.DataFrame]) -> pd.DataFrame:
    """``tidy`` of each IF's runs (seeds averaged within the IF; one series name across the
    panels), with an imbalance_factor column."""
    s = series_set(runs, omit=_BY_IF)
    parts = [tidy(s.subset(_with_if(v))).assign(imbalance_factor=v) for v, _ in if_groups(s.runs)]
    return pd.concat(parts, ignore_index=True) if parts else tidy(s).assign(imbalance_factor=[])


def _legend_once(fig: go.Figure) -> None:
    """One legend entry per series across all panels: its first line (bands have none, and no
    markers at their corners)."""
    seen: set[str] = set()
    for trace in fig.data:
        band = trace.fill == "toself"
        if band:
            trace.mode = "lines"
        first = not band and trace.legendgroup not in seen
        trace.showlegend = bool(first)
        if first:
            seen.add(trace.legendgroup)


def _curves_by_if(
    runs: Sequence[RunInfo],
    df: pd.DataFrame,
    x: str,
    panels: dict[str, str] | None,
    hover: str,
    title: str,
) -> go.Figure:
    """Mean ± std curves per series: one column per IF (titled above the top row), one row per
    panel (``panels``: the values of df's 'panel' column → the row's y-axis title; None for a
    single row)."""
    groups = if_groups(runs)
    rows = list(panels or {"": ""})
    titles = [f"IF = {v:g}" if k == 0 else "" for k in range(len(rows)) for v, _ in groups]
    fig = make_subplots(
        rows=len(rows),
        cols=len(groups),
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=titles,
        horizontal_spacing=0.04,
        vertical_spacing=0.12,
    )
    style(fig, title, height=80 + 360 * len(rows))
    styles = _styles(series_set(runs, omit=_BY_IF))  # one style per series in every panel
    for col, (v, _) in enumerate(groups, 1):
        part = df[df["imbalance_factor"] == v]
        for row, p in enumerate(rows, 1):
            sub = part[part["panel"] == p] if panels else part
            _add_bands(fig, sub, x, styles, hover, row, col, showlegend=False)
    for row, p in enumerate(rows, 1):
        if panels:
            fig.update_yaxes(title_text=panels[p], row=row, col=1)
    _legend_once(fig)
    return fig


def _middle(runs: Sequence[RunInfo]) -> int:
    """The middle column of a figure with one column per imbalance factor."""
    return (len(if_groups(runs)) + 1) // 2


def accuracy_by_if_tidy(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """:func:`learning_curve_tidy` per imbalance factor (the paper's Figs. 7–10)."""
    return _tidy_by_if(runs, learning_curve_tidy)


def accuracy_by_if(runs: Sequence[RunInfo], title: str = "Test accuracy") -> Chart:
    """Accuracy vs labeled-set size, one panel per imbalance factor, mean ± std over seeds."""
    df = accuracy_by_if_tidy(runs)
    if df.empty:
        return Chart(_empty(title, "no finished cycle yet"), df)
    hover = "%{x} labels: %{y:.2%} ± %{customdata[0]:.2%} (%{customdata[1]} seeds)"
    fig = _curves_by_if(runs, df, "labeled", None, hover, title)
    # one x title, under the middle panel: a title per narrow panel would run into the next
    fig.update_xaxes(title_text="Labeled images (count)", row=1, col=_middle(runs))
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title_text="Test accuracy (%)", col=1)
    return Chart(fig, df)


def l1_by_if_tidy(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """:func:`l1_tidy` per imbalance factor."""
    return _tidy_by_if(runs, l1_tidy)


_L1_ROWS = {"batch": "L1 of the batch", "labeled": "L1 of the labeled set"}


def l1_by_if(runs: Sequence[RunInfo], title: str = "Class imbalance (L1) per cycle") -> Chart:
    """L1 score vs cycle, one column per imbalance factor; the selected batch (top row) and the
    labeled set after it (bottom row); mean ± std over seeds."""
    df = l1_by_if_tidy(runs)
    if df.empty:
        return Chart(_empty(title, "no selection yet"), df)
    hover = "cycle %{x}: L1 %{y:.3f} ± %{customdata[0]:.3f} (%{customdata[1]} seeds)"
    fig = _curves_by_if(runs, df, "cycle", _L1_ROWS, hover, title)
    fig.update_xaxes(dtick=1 if df["cycle"].max() <= 5 else 2)  # room for the labels of 8
    fig.update_xaxes(title_text="Cycle", row=len(_L1_ROWS), col=_middle(runs))
    fig.update_yaxes(range=[0, 1.02])
    return Chart(fig, df)


def distribution_tidy(runs: Sequence[RunInfo] | SeriesSet) -> pd.DataFrame:
    """One row per run × selecting cycle × class (index order: head → tail for cbal's pools):
    the class count of the batch the run selected and its L1 score, as recorded, with the
    series' mean count and mean / std L1 over seeds (the plotted bar and the panel's score)."""
    s = _as_set(runs)
    cols = [*_KEY_COLUMNS, "cycle", "class", "count", "l1"]
    selecting = [(r, c) for r in s.runs for c in r.cycles if c.get("selected_counts") is not None]
    sizes = {len(c["selected_counts"]) for _, c in selecting}
    if len(sizes) > 1:
        raise ValueError("these runs have different numbers of classes; compare one dataset")
    rows = [
        {
            **_run_keys(r, s),
            "cycle": c["cycle"],
            "class": k,
            "count": n,
            "l1": c["batch_l1"],
        }
        for r, c in selecting
        for k, n in enumerate(c["selected_counts"])
    ]
    df = pd.DataFrame(rows, columns=cols)
    df["mean_count"] = df.groupby(["series", "cycle", "class"], sort=False)["count"].transform(
        "mean"
    )
    df = _with_stats(df, "l1", ["series", "cycle", "class"])
    return df.rename(columns={"mean": "l1_mean", "std": "l1_std"})


def distribution_grid(
    runs: Sequence[RunInfo],
    title: str = "Distribution of the selected images",
    max_cols: int | None = None,
) -> Chart:
    """The paper's Figs. 11–13: per-class counts of each cycle's selected batch, one small
    multiple per series × cycle (rows of at most ``max_cols`` cycles per series), classes
    head → tail, the series, cycle and L1 score in every panel title (mean ± std over seeds when
    the series has several; bars: mean counts)."""
    df = distribution_tidy(runs)
    if df.empty:
        return Chart(_empty(title, "no selection yet"), df)
    styles = _styles(runs)
    series = [name for name in styles if name in set(df["series"])]
    cycles = sorted(set(df["cycle"]))
    per_row = min(len(cycles), max_cols or len(cycles))
    blocks = -(-len(cycles) // per_row)  # panel rows per series
    panels = {key: part for key, part in df.groupby(["series", "cycle"], sort=False)}
    where: dict[tuple[str, int], tuple[int, int]] = {}
    titles = [""] * (len(series) * blocks * per_row)
    for i, name in enumerate(series):
        for j, k in enumerate(cycles):
            row, col = i * blocks + j // per_row + 1, j % per_row + 1
            where[(name, k)] = (row, col)
            if (name, k) in panels:
                first = panels[(name, k)].iloc[0]
                spread = "" if pd.isna(first["l1_std"]) else f" ± {first['l1_std']:.2f}"
                titles[(row - 1) * per_row + col - 1] = (
                    f"{name}<br>cycle {k}: L1 = {first['l1_mean']:.2f}{spread}"
                )
    n_rows = len(series) * blocks
    fig = make_subplots(
        rows=n_rows,
        cols=per_row,
        shared_yaxes=True,
        subplot_titles=titles,
        horizontal_spacing=0.03,
        vertical_spacing=min(0.4 / n_rows, 0.15) if n_rows > 1 else 0.1,
    )
    style(fig, title, height=120 + 250 * n_rows)
    for (name, k), (row, col) in where.items():
        if (name, k) in panels:
            bars = panels[(name, k)].drop_duplicates("class").sort_values("class")
            _add_class_bars(
                fig, bars["mean_count"].tolist(), styles[name]["color"], row=row, col=col
            )
    fig.update_layout(bargap=0.1, showlegend=False)
    fig.update_xaxes(title_text="", row=None)
    fig.update_xaxes(title_text="Class (head → tail)", row=n_rows)
    fig.update_yaxes(title_text="Images (count)", col=1)
    return Chart(fig, df)


# -- the λ explorer ----------------------------------------------------------------------------

_EXPLORER_PANELS = {
    "predicted": "Batch, predicted classes (Pᵀz) and Ω: ‖Ω − Pᵀz‖₁ = {:.1f}",
    "true": "Batch, true classes: L1 = {:.2f}",
    "labeled": "Labeled set after the batch: L1 = {:.2f}",
}


def explorer_tidy(ca: CycleArrays, r: Reselection) -> pd.DataFrame:
    """One row per panel × layer × class (index order: head → tail) of
    :func:`explorer_histograms` for re-selection ``r`` of cycle ``ca``: panel 'predicted'
    (kinds 'predicted' = Pᵀz and 'omega' = Ω), 'true' (the batch's true class counts) and
    'labeled' ('labeled before' and 'selected', stacked), with the panel's score: ‖Ω − Pᵀz‖₁
    for 'predicted', the L1 score for the others."""
    parts = [
        ("predicted", "predicted", r.expected_counts, r.balance_l1),
        ("predicted", "omega", ca.omega, r.balance_l1),
        ("true", "selected", r.batch_counts, r.batch_l1),
        ("labeled", "labeled before", ca.labeled_counts, r.labeled_l1),
        ("labeled", "selected", r.batch_counts, r.labeled_l1),
    ]
    rows = [
        {
            "run_id": ca.run_id,
            "cycle": ca.cycle,
            "strategy": r.strategy,
            "lam": r.lam,
            "panel": panel,
            "kind": kind,
            "class": k,
            "count": float(n),
            "score": float(score),
        }
        for panel, kind, counts, score in parts
        for k, n in enumerate(counts)
    ]
    return pd.DataFrame(rows)


def explorer_histograms(
    ca: CycleArrays, r: Reselection, title: str | None = None, into: go.Figure | None = None
) -> Chart:
    """What re-selection ``r`` of cycle ``ca`` picked, by class (head → tail): the predicted
    class histogram Pᵀz with Ω on top, the true class histogram (L1 in the title), and the
    labeled set after the batch (L1 in the title).

    ``into``: a figure this function drew for the same cycle and strategy; its numbers and
    titles are replaced in place and it is returned. Building the figure costs ~100× more
    (plotly validates every property), and a λ step changes only the numbers."""
    df = explorer_tidy(ca, r)
    layer = {key: part["count"].tolist() for key, part in df.groupby(["panel", "kind"])}
    fig = into if into is not None else _explorer_figure(ca, r, layer)
    score = df.groupby("panel")["score"].first()
    with fig.batch_update():
        for trace, key in zip(fig.data, _EXPLORER_LAYERS, strict=True):
            trace.y = layer[key]
        panels = _EXPLORER_PANELS.items()
        for note, (panel, text) in zip(fig.layout.annotations, panels, strict=True):
            note.text = text.format(score[panel])
        what = "its own selection" if r.mode == "run" else f"at λ = {r.lam:g}"
        fig.layout.title.text = title or f"{strategy_label(r.strategy)} {what}: cycle {ca.cycle}"
    return Chart(fig, df)


# the (panel, kind) layer each trace of the explorer's figure draws, in trace order
_EXPLORER_LAYERS = (
    ("predicted", "predicted"),
    ("predicted", "omega"),
    ("true", "selected"),
    ("labeled", "labeled before"),
    ("labeled", "selected"),
)


def _explorer_figure(
    ca: CycleArrays, r: Reselection, layer: dict[tuple[str, str], list[float]]
) -> go.Figure:
    """The explorer's three panels, their traces in :data:`_EXPLORER_LAYERS` order."""
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.09,
        subplot_titles=list(_EXPLORER_PANELS.values()),
    )
    style(fig, "", height=760)
    label = strategy_label(r.strategy)
    color = strategy_color(r.strategy)
    omega = layer[("predicted", "omega")]
    _add_class_bars(fig, layer[("predicted", "predicted")], color, omega=omega, row=1, col=1)
    fig.data[-2].update(name="predicted (Pᵀz)", legendgroup="predicted", opacity=0.6)
    _add_class_bars(fig, layer[("true", "selected")], color, row=2, col=1)
    fig.data[-1].update(name=f"selected ({label})")
    before = layer[("labeled", "labeled before")]
    _add_class_bars(fig, layer[("labeled", "selected")], color, before=before, row=3, col=1)
    fig.data[-1].update(showlegend=False)  # the same bars as the panel above
    fig.update_layout(barmode="stack", bargap=0.15)
    fig.update_xaxes(title_text="", row=None)
    fig.update_xaxes(title_text="Class (head → tail)", row=3)
    fig.update_yaxes(title_text="Images (count)")
    return fig


def _lam_positions(lams: np.ndarray) -> tuple[np.ndarray, float]:
    """Where each λ is drawn on a log axis: λ itself, and 0 one decade left of the smallest
    positive λ; returns (positions, position of 0)."""
    positive = lams[lams > 0]
    zero = float(positive.min()) / 10 if positive.size else 1e-3
    return np.where(lams > 0, lams, zero), zero


def lambda_tradeoff_tidy(path: LambdaPath) -> pd.DataFrame:
    """One row per λ of ``path``: the plotted batch and labeled-set L1 scores and mean
    informativeness, x = where λ is drawn on the log axis (0 one decade left of the smallest
    positive λ), the overlap with the run's picks and the run's own λ."""
    cols = path.columns()
    x, _ = _lam_positions(cols["lam"])
    return pd.DataFrame(
        {
            "strategy": path.strategy,
            "lam": cols["lam"],
            "x": x,
            "batch_l1": cols["batch_l1"],
            "labeled_l1": cols["labeled_l1"],
            "mean_informativeness": cols["mean_informativeness"],
            "jaccard": cols["jaccard"],
            "run_lam": path.run_lam,
        }
    )


_TRADEOFF = {
    "batch_l1": ("Batch L1", "solid", 1),
    "labeled_l1": ("Labeled-set L1", "dash", 1),
    "mean_informativeness": ("Mean informativeness", "solid", 2),
}


def lambda_tradeoff(path: LambdaPath, title: str | None = None) -> Chart:
    """The λ trade-off of one cycle: L1 scores of the batch and of the labeled set after it
    (top) and the batch's mean informativeness (bottom) vs λ on a log axis, the run's λ
    marked. Balance costs informativeness: the curves show how much, and where."""
    df = lambda_tradeoff_tidy(path)
    label = strategy_label(path.strategy)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    style(fig, title or f"{label}: balance vs informativeness over λ", height=560)
    color = strategy_color(path.strategy)
    hover = "λ = %{customdata[0]:.3g}: %{y:.3f} (Jaccard with the run's picks %{customdata[1]:.2f})"
    custom = np.column_stack([df["lam"], df["jaccard"]])
    for column, (name, dash, row) in _TRADEOFF.items():
        fig.add_trace(
            go.Scatter(
                x=df["x"].tolist(),
                y=df[column].tolist(),
                mode="lines+markers",
                name=name,
                line=dict(color=color, dash=dash, width=2.5),
                marker=dict(size=6, color=color, symbol="circle" if row == 1 else "diamond"),
                customdata=custom,
                hovertemplate=f"{name}<br>{hover}<extra></extra>",
            ),
            row=row,
            col=1,
        )
    lams = df["lam"].to_numpy(dtype=float)
    x, zero = _lam_positions(lams)
    if np.isfinite(path.run_lam):
        x_run = path.run_lam if path.run_lam > 0 else zero
        for row, columns in ((1, ["batch_l1", "labeled_l1"]), (2, ["mean_informativeness"])):
            values = df[columns].to_numpy(dtype=float)
            low, high = (0.0, 1.0) if row == 1 else (np.nanmin(values), np.nanmax(values))
            fig.add_trace(
                go.Scatter(
                    x=[x_run, x_run],
                    y=[low, high],
                    mode="lines",
                    name=f"run's λ = {path.run_lam:g}",
                    legendgroup="run-lam",
                    showlegend=row == 1,
                    line=dict(color=OMEGA_COLOR, dash="dot", width=1.5),
                    hoverinfo="skip",
                ),
                row=row,
                col=1,
            )
    decades = np.arange(np.floor(np.log10(x.min())), np.ceil(np.log10(x.max())) + 1)
    ticks = [10.0**d for d in decades if 10.0**d > zero or not (lams == 0).any()]
    labels = [f"{t:g}" for t in ticks]
    if (lams == 0).any():
        ticks, labels = [zero, *ticks], ["0", *labels]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=labels)
    fig.update_xaxes(title_text="λ (log scale; 0 at the left)", row=2)
    fig.update_yaxes(title_text="L1 score (0 = balanced)", range=[0, 1.02], row=1)
    fig.update_yaxes(title_text="Mean informativeness (nats)", row=2)
    return Chart(fig, df)
