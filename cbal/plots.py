"""Plotly figures of runs, built from store records; shared by the dashboard and the exports.

Every figure has a ``*_tidy`` twin returning the data frame of exactly the numbers it plots, one
row per run × cycle × series (the figure is drawn from that frame, so the two cannot disagree).
Nothing here imports Streamlit or torch.

Conventions: one fixed, colour-blind-safe colour per strategy (Okabe–Ito), solid lines for the
paper's balanced methods and dashed ones for the classical baselines; seeds of one series are
averaged, with a band of ± one sample standard deviation (ddof = 1; no band for a single seed).
Classes run from the pool's head to its tail (:func:`class_order`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cbal.config import KNOWN_CLASSES, RunConfig, effective_lam
from cbal.data import imbalanced_counts
from cbal.store import RunInfo
from cbal.strategies import STRATEGIES

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Pairs sit in related hues where the palette allows (entropy / entropy-cb).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
    "grey": "#999999",
}
STRATEGY_COLORS: dict[str, str] = {
    "random": OKABE_ITO["grey"],
    "entropy": OKABE_ITO["sky blue"],
    "entropy-cb": OKABE_ITO["blue"],
    "bald": OKABE_ITO["orange"],
    "bald-cb": OKABE_ITO["vermillion"],
    "kcenter": OKABE_ITO["bluish green"],
    "kcenter-cb": OKABE_ITO["reddish purple"],
    "coreset": OKABE_ITO["yellow"],
    "entropy-pl": OKABE_ITO["black"],
}
# marker per family (a CB variant shares its baseline's), so print in grey stays readable
STRATEGY_SYMBOLS: dict[str, str] = {
    "random": "circle-open",
    "entropy": "circle",
    "entropy-cb": "circle",
    "bald": "diamond",
    "bald-cb": "diamond",
    "kcenter": "square",
    "kcenter-cb": "square",
    "coreset": "triangle-up",
    "entropy-pl": "x",
}
OTHER_COLOR = "#7F7F7F"
LABELED_BEFORE_COLOR = "#D9D9D9"
OMEGA_COLOR = "#000000"
FONT = dict(family="Arial, Helvetica, sans-serif", size=14, color="#222222")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def strategy_color(name: str) -> str:
    """The fixed colour of strategy ``name`` (grey for names outside the registry)."""
    return STRATEGY_COLORS.get(name, OTHER_COLOR)


def strategy_dash(name: str, variant: int = 0) -> str:
    """Solid for the paper's balancing methods, dotted for random, dashed for the baselines;
    ``variant`` > 0 (more series of one strategy in a figure) steps to the next dash."""
    if name == "random":
        first = 2
    elif name in STRATEGIES and (STRATEGIES[name].uses_lam or name == "entropy-pl"):
        first = 0
    else:
        first = 1
    return _DASHES[(first + variant) % len(_DASHES)]


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# -- series: which runs are averaged together, and what they are called ------------------------

# config fields that separate series when they differ between the runs of one figure
_SERIES_FIELDS: dict[str, Callable[[Any], str]] = {
    "dataset": str,
    "imbalance_factor": lambda v: f"IF={v:g}",
    "imbalance_profile": str,
    "initial_labeled": lambda v: f"init={v}",
    "budget": lambda v: f"b={v}",
    "model": str,
    "epochs": lambda v: f"{v} ep",
}


def run_lam(info: RunInfo) -> float | None:
    """The λ the run uses (as recorded, else the paper's default); None for strategies without."""
    cfg = info.config
    if not STRATEGIES[cfg.strategy].uses_lam:
        return None
    if info.cycles:
        return float(info.cycles[0]["lam"])
    classes = KNOWN_CLASSES.get(cfg.dataset)
    return effective_lam(cfg, classes) if classes else cfg.lam


def strategy_label(name: str) -> str:
    return STRATEGIES[name].label if name in STRATEGIES else name


def series_names(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Run id → series name: the strategy's label, its λ, and every setting that differs between
    the given runs (seeds aside: the runs of one series are its seeds)."""
    varying = [f for f in _SERIES_FIELDS if len({getattr(r.config, f) for r in runs}) > 1]
    names = {}
    for r in runs:
        name = strategy_label(r.config.strategy)
        lam = run_lam(r)
        if r.config.strategy in STRATEGIES and STRATEGIES[r.config.strategy].uses_lam:
            name += " (λ=default)" if lam is None else f" (λ={lam:g})"
        extra = [_SERIES_FIELDS[f](getattr(r.config, f)) for f in varying]
        names[r.run_id] = " · ".join([name, *extra])
    return names


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
            "symbol": STRATEGY_SYMBOLS.get(strategy, "circle"),
            "strategy": strategy,
        }
    return styles


def _with_stats(df: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    """Add mean, std (ddof=1, NaN for one seed) and n_seeds of ``value`` over groups ``by``."""
    if df.empty:
        return df.assign(mean=[], std=[], n_seeds=[])
    grouped = df.groupby(by, sort=False)[value]
    return df.assign(
        mean=grouped.transform("mean"),
        std=grouped.transform(lambda v: v.std(ddof=1) if len(v) > 1 else np.nan),
        n_seeds=grouped.transform("count").astype(int),
    )


# -- layout ----------------------------------------------------------------------------------


def style(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """The house style: white background, readable fonts, the legend to the right."""
    fig.update_layout(
        template="plotly_white",
        title=dict(text=title, x=0.0, xanchor="left", font=dict(size=17)),
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


# -- accuracy vs labeled-set size --------------------------------------------------------------


def learning_curve_tidy(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """One row per run × finished cycle: the run's test accuracy at its labeled-set size, with
    the series' mean, std and seed count at that size (the plotted line and band)."""
    names = series_names(runs)
    rows = [
        {
            "series": names[r.run_id],
            "strategy": r.config.strategy,
            "run_id": r.run_id,
            "seed": r.config.seed,
            "cycle": c["cycle"],
            "labeled": c["labeled"],
            "accuracy": c["accuracy"],
        }
        for r in runs
        for c in r.cycles
    ]
    cols = ["series", "strategy", "run_id", "seed", "cycle", "labeled", "accuracy"]
    return _with_stats(pd.DataFrame(rows, columns=cols), "accuracy", ["series", "labeled"])


def learning_curve(runs: Sequence[RunInfo], title: str = "Test accuracy") -> go.Figure:
    """Accuracy vs labeled-set size, one line per series (mean over seeds, ± std band)."""
    df = learning_curve_tidy(runs)
    if df.empty:
        return _empty(title, "no finished cycle yet")
    fig = style(go.Figure(), title, height=460)
    hover = "%{x} labels: %{y:.1%} ± %{customdata[0]:.1%} (%{customdata[1]} seeds)"
    _add_bands(fig, df, "labeled", _series_style(runs, series_names(runs)), hover)
    fig.update_xaxes(title_text="Labeled images (count)")
    fig.update_yaxes(title_text="Test accuracy (%)", tickformat=".0%")
    return fig


# -- class balance of the selections (L1) ----------------------------------------------------

L1_PANELS = {"batch": "Selected batch", "labeled": "Labeled set after selection"}


def l1_tidy(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """One row per run × selecting cycle × panel (batch, labeled): the L1 imbalance score, with
    the series' mean, std and seed count at that cycle."""
    names = series_names(runs)
    rows = [
        {
            "series": names[r.run_id],
            "strategy": r.config.strategy,
            "run_id": r.run_id,
            "seed": r.config.seed,
            "cycle": c["cycle"],
            "panel": panel,
            "l1": c["batch_l1"] if panel == "batch" else c["labeled_l1"],
        }
        for r in runs
        for c in r.cycles
        if c.get("selected_counts") is not None
        for panel in L1_PANELS
    ]
    cols = ["series", "strategy", "run_id", "seed", "cycle", "panel", "l1"]
    return _with_stats(pd.DataFrame(rows, columns=cols), "l1", ["series", "panel", "cycle"])


def l1_curves(runs: Sequence[RunInfo], title: str = "Class imbalance (L1) per cycle") -> go.Figure:
    """L1 vs cycle per series, for the batch (top) and the labeled set (bottom); 0 = balanced."""
    df = l1_tidy(runs)
    if df.empty:
        return _empty(title, "no selection yet")
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=list(L1_PANELS.values()),
    )
    style(fig, title, height=460)
    styles = _series_style(runs, series_names(runs))
    hover = "cycle %{x}: L1 %{y:.3f} ± %{customdata[0]:.3f} (%{customdata[1]} seeds)"
    for row, panel in enumerate(L1_PANELS, 1):
        _add_bands(fig, df[df["panel"] == panel], "cycle", styles, hover, row, 1, row == 1)
    fig.update_xaxes(dtick=1)
    fig.update_xaxes(title_text="Cycle", row=2)
    fig.update_yaxes(title_text="L1 (0 = balanced)", range=[0, 1.02])
    return fig


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
    runs: Sequence[RunInfo],
    cycle: int,
    class_names: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per run × class × series of the selection histograms of ``cycle``: panel 'batch'
    (series 'selected', and 'omega' = Ω for balancing strategies) and panel 'labeled' (series
    'labeled before' and 'selected', stacked), with the panel's L1 score."""
    picked = [(r, rec) for r in runs if (rec := _record(r, cycle)) and rec.get("selected_counts")]
    cols = ["series", "strategy", "run_id", "seed", "cycle", "panel", "kind", "class"]
    cols += ["class_name", "position", "count", "l1"]
    if not picked:
        return pd.DataFrame([], columns=cols)
    num_classes = len(picked[0][1]["selected_counts"])
    order, names = _classes(runs, num_classes, class_names, order)
    series = series_names(runs)
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
                        "series": series[r.run_id],
                        "strategy": r.config.strategy,
                        "run_id": r.run_id,
                        "seed": r.config.seed,
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
) -> go.Figure:
    """Per-class counts of the batch selected in ``cycle`` and of the labeled set after it, one
    row per run, L1 in every panel title, classes head → tail; Ω drawn for balancing strategies."""
    title = f"Selection of cycle {cycle} by class (head → tail)"
    df = histogram_tidy(runs, cycle, class_names, order)
    if df.empty:
        return _empty(title, f"no run has finished the selection of cycle {cycle} yet")
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
    return fig


# -- per-class test accuracy -----------------------------------------------------------------


def per_class_tidy(
    runs: Sequence[RunInfo],
    cycle: int,
    class_names: Sequence[str] | None = None,
    order: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per run × class at ``cycle``: the run's test accuracy on the class, with the
    series' mean, std and seed count (the plotted bar and error bar)."""
    picked = [(r, rec) for r in runs if (rec := _record(r, cycle))]
    cols = ["series", "strategy", "run_id", "seed", "cycle", "labeled", "class", "class_name"]
    cols += ["position", "accuracy"]
    if not picked:
        return _with_stats(pd.DataFrame([], columns=cols), "accuracy", ["series", "class"])
    sizes = {len(rec["per_class_accuracy"]) for _, rec in picked}
    if len(sizes) > 1:
        raise ValueError("these runs have different numbers of classes; compare one dataset")
    order, names = _classes(runs, sizes.pop(), class_names, order)
    series = series_names(runs)
    rows = [
        {
            "series": series[r.run_id],
            "strategy": r.config.strategy,
            "run_id": r.run_id,
            "seed": r.config.seed,
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
) -> go.Figure:
    """Test accuracy per class at ``cycle`` (classes head → tail): one bar per series (mean over
    seeds) with a ± std error bar."""
    title = f"Per-class test accuracy at cycle {cycle}"
    df = per_class_tidy(runs, cycle, class_names, order)
    if df.empty:
        return _empty(title, f"no run has finished cycle {cycle} yet")
    fig = style(go.Figure(), title)
    for name, st in _series_style(runs, series_names(runs)).items():
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
                hovertemplate=f"{name}<br>class %{{x}}: %{{y:.1%}}<extra></extra>",
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
    return fig
