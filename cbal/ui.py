"""Streamlit pieces shared by the dashboard's pages (app.py, pages/*.py).

The pages only call the cbal API and read the run store: runs train in background workers
(:mod:`cbal.runner`), figures come from :mod:`cbal.plots`, and nothing here imports torch (the
GPU question is answered by :func:`cbal.runner.device_info` in a child process). Problems are
shown inline with :func:`guard`, never as a traceback.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cbal import plots, runner
from cbal.config import KNOWN_CLASSES, RunConfig, run_lam
from cbal.data import DataError, Dataset, load_dataset
from cbal.export import figure_stem, safe_name
from cbal.records import Damage
from cbal.store import RunInfo, Store, StoreError, accuracy_text

REFRESH_S = 1.5
PRESENTATION = "presentation"  # the session key of the presentation-mode toggle
PRESENT_FONT = 22
LATEST = -1  # the "latest cycle" choice of the cycle pickers
PHASES = {"infer": "inference on the pool", "select": "selection", "record": "saving the cycle"}
_PROBES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cbal-device-probe")


def page(title: str) -> Store:
    """Page config, the sidebar (store, slots, device) and the store every page reads."""
    st.set_page_config(page_title=f"cbal · {title}", layout="wide")
    store = Store()
    with st.sidebar:
        st.caption(f"Run store: `{store.root}`")
        with guard("Concurrency setting"):
            st.caption(
                f"{runner.max_concurrent()} run(s) train at a time "
                f"(`{runner.ENV_MAX}`); the others queue."
            )
        device_status(store)
    return store


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Show any error of the block as one inline message (never a traceback) and go on."""
    try:
        yield
    except (StoreError, DataError, ValueError, OSError) as exc:
        st.error(f"{what}: {exc}")
    except Exception as exc:  # the page must survive whatever a run's files hold
        st.error(f"{what} failed: {type(exc).__name__}: {exc}")


def flash(message: str, kind: str = "success") -> None:
    """Queue a message for the next run of the page (callbacks run before the page draws)."""
    st.session_state.setdefault("_flash", []).append((kind, message))


def show_flashes() -> None:
    for kind, message in st.session_state.pop("_flash", []):
        getattr(st, kind)(message)


def safely(action: Callable[[], str]) -> None:
    """Run a button callback's ``action``; its message, or its error, is flashed."""
    try:
        flash(action())
    except Exception as exc:  # a callback's traceback would replace the page
        flash(f"{type(exc).__name__}: {exc}", "error")


# -- the GPU question, answered without importing torch here -------------------------------------


@st.cache_resource(show_spinner=False)
def _device_probe(root: str, generation: int) -> Future[dict[str, Any]]:
    return _PROBES.submit(runner.device_info, Store(root), generation > 0)


def device_info(store: Store) -> dict[str, Any] | None:
    """The cached device probe, or None while it is still running (it runs in a thread)."""
    future = _device_probe(str(store.root), st.session_state.get("_probe_generation", 0))
    return future.result() if future.done() else None


def device_text(info: dict[str, Any] | None) -> str:
    if info is None:
        return "Checking whether torch sees a GPU…"
    if info.get("error"):
        return f"GPU check failed ({info['error']}): auto runs on the CPU."
    if info.get("cuda"):
        return f"GPU available: {info['name']} (torch {info['torch']}); auto uses it."
    return f"No CUDA GPU visible to torch {info.get('torch')}: auto runs on the CPU."


def device_status(store: Store) -> None:
    """Sidebar line on the GPU; polls until the probe has answered."""
    waiting = device_info(store) is None

    @st.fragment(run_every=REFRESH_S if waiting else None)
    def line() -> None:
        info = device_info(store)
        if waiting and info is not None:
            st.rerun()  # the answer is in: redraw the page (the device field) and stop polling
        st.caption(device_text(info))

    line()

    def recheck() -> None:
        st.session_state["_probe_generation"] = st.session_state.get("_probe_generation", 0) + 1

    st.button("Re-check the GPU", on_click=recheck, key="recheck_gpu", type="tertiary")


# -- describing runs -----------------------------------------------------------------------------


def run_label(info: RunInfo) -> str:
    return f"{plots.series_names([info])[info.run_id]} · seed {info.config.seed}"


def human_seconds(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "–"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_line(info: RunInfo, now: float | None = None) -> tuple[float, str]:
    """Fraction done and a one-line state: phase (train epoch k/E, inference, selection), ETA."""
    now = time.time() if now is None else now
    cfg, done, state = info.config, len(info.cycles), info.state
    total = cfg.cycles + 1
    if state == "done":
        acc = info.last_accuracy
        acc_text = (
            ""
            if acc is None
            else f" · accuracy {accuracy_text(acc)} with {info.cycles[-1]['labeled']} labels"
        )
        return 1.0, f"done in {human_seconds(runner.duration(info, now))}{acc_text}"
    if state == "queued":
        return done / total, "queued: waiting for a free slot"
    if state != "running":
        return done / total, f"{state} after {info.cycles_done} of {cfg.cycles} cycles"
    p = info.status.get("progress") or {}
    if p.get("cycle", -1) < done:  # no event of this attempt yet
        return done / total, f"cycle {done}/{cfg.cycles} · starting"
    if p["phase"] == "train" and "steps" in p:
        what = f"train epoch {p['step']}/{p['steps']}"
    else:
        what = PHASES.get(p["phase"], p["phase"])
    eta = p.get("eta_s")
    if eta is not None:  # as of the last heartbeat
        eta -= now - float(info.status.get("heartbeat") or now)
    text = f"cycle {p['cycle']}/{cfg.cycles} · {what} · ETA {human_seconds(eta)}"
    return float(p["fraction"]), text


def error_text(info: RunInfo) -> str | None:
    """Why a run stopped early, in a sentence; None if it did not fail."""
    if info.state != "failed":
        return None
    error = info.status.get("error") or "its process died (killed, or the machine restarted)"
    return (
        f"{run_label(info)} failed: {error}. Its {len(info.cycles)} finished cycle(s) are kept; "
        "Resume continues after the last one."
    )


def runs_table(infos: Sequence[RunInfo], now: float | None = None) -> pd.DataFrame:
    """One row per run for the Runs page."""
    rows = []
    for i in infos:
        c = i.config
        lam = run_lam(c, cycles=i.cycles)
        rows.append(
            {
                "status": i.state,
                "strategy": c.strategy,
                "λ": np.nan if lam is None else lam,
                "seed": c.seed,
                "dataset": c.dataset,
                "IF": c.imbalance_factor,
                "profile": c.imbalance_profile,
                "cycles": i.cycles_text,
                "labeled": i.cycles[-1]["labeled"] if i.cycles else None,
                # in percent, for the page's "%.2f%%" (the two decimals of accuracy_text)
                "last accuracy": None if i.last_accuracy is None else 100 * i.last_accuracy,
                "duration": human_seconds(runner.duration(i, now)),
                "group": runner.group_of(i) or "",
                "run": i.run_id,
                "error": i.status.get("error") or "",
            }
        )
    return pd.DataFrame(rows)


# -- run controls --------------------------------------------------------------------------------


def cancel_runs(store: Store, run_ids: Sequence[str]) -> str:
    stopped = sum(runner.cancel(store, r) for r in run_ids)
    return (
        f"Cancelled {len(run_ids)} run(s) ({stopped} had a live process); finished cycles are kept."
    )


def resume_runs(store: Store, run_ids: Sequence[str]) -> str:
    for r in run_ids:
        runner.resume(store, r)
    return f"Resumed {len(run_ids)} run(s) from their last finished cycle."


def delete_runs(store: Store, run_ids: Sequence[str]) -> str:
    for r in run_ids:
        runner.delete(store, r)
    return f"Deleted {len(run_ids)} run(s)."


def damaged_notice(store: Store, damaged: Sequence[Damage], manage: bool = False) -> None:
    """One line per run folder that cannot be read (the other runs are shown as usual), with a
    Delete button each when ``manage``."""
    if not damaged:
        return
    with st.expander(f"{len(damaged)} damaged run folder(s) not shown", expanded=manage):
        for d in damaged:
            text, button = st.columns([10, 1], vertical_alignment="center")
            text.warning(f"`{d.run_id}`: {d}")
            if manage:
                button.button(
                    "Delete",
                    key=f"damaged-delete-{d.run_id}",
                    on_click=safely,
                    args=(lambda ids=[d.run_id]: delete_runs(store, ids),),
                )


def resumable(info: RunInfo) -> bool:
    return info.state in ("failed", "cancelled")


def run_rows(store: Store, infos: Sequence[RunInfo], key: str) -> None:
    """A progress bar per run with its phase and ETA, a Cancel or Resume button."""
    for info in infos:
        fraction, text = progress_line(info)
        bar, button = st.columns([10, 1], vertical_alignment="bottom")
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"**{run_label(info)}** — {text}")
        ids = [info.run_id]
        if info.state in runner.ACTIVE:
            button.button(
                "Cancel",
                key=f"{key}-cancel-{info.run_id}",
                on_click=safely,
                args=(lambda ids=ids: cancel_runs(store, ids),),
            )
        elif resumable(info):
            button.button(
                "Resume",
                key=f"{key}-resume-{info.run_id}",
                on_click=safely,
                args=(lambda ids=ids: resume_runs(store, ids),),
            )


def group_progress(infos: Sequence[RunInfo], now: float | None = None) -> tuple[float, str]:
    """The comparison's progress in one bar: the mean fraction done, the state counts and what
    the least advanced active run is doing."""
    lines = [progress_line(i, now) for i in infos]
    counts = ", ".join(f"{n} {s}" for s, n in Counter(i.state for i in infos).items())
    text = f"{len(infos)} run(s): {counts}"
    active = [(f, t, i) for (f, t), i in zip(lines, infos, strict=True) if i.state == "running"]
    if active:
        _, what, info = min(active, key=lambda a: a[0])
        text += f" · {run_label(info)}: {what}"
    return sum(f for f, _ in lines) / len(lines), text


# -- figures -------------------------------------------------------------------------------------


def presenting() -> bool:
    return bool(st.session_state.get(PRESENTATION))


def for_screen(fig: go.Figure) -> go.Figure:
    """A curve figure for the page: the legend under the plot, so the lines get the width;
    taller in presentation mode."""
    size = PRESENT_FONT if presenting() else (fig.layout.font.size or 14)
    height = int(fig.layout.height or 460) + (120 if presenting() else 0)
    plot_height = height - (fig.layout.margin.t or 0) - (fig.layout.margin.b or 0)
    under_axis_title = -(3.4 * size + 14) / plot_height
    fig.update_layout(
        height=height,
        legend=dict(orientation="h", x=0, xanchor="left", y=under_axis_title, yanchor="top"),
    )
    return fig


def chart(made: plots.Chart, key: str, stem: str | None = None) -> None:
    """A figure, and the numbers it plots (its tidy table) as a CSV download; downloads are
    named ``stem`` (what the figure shows, e.g. :func:`cbal.export.figure_stem`), else ``key``.
    In presentation mode: type that reads from the back of a room, and no downloads."""
    fig, tidy = made
    if presenting():
        fig.update_layout(
            font_size=PRESENT_FONT, title_font_size=PRESENT_FONT + 6, hoverlabel_font_size=18
        )
        fig.update_annotations(font_size=PRESENT_FONT)  # subplot and panel titles
    st.plotly_chart(fig, key=key, theme=None, config={"displaylogo": False})
    if not tidy.empty and not presenting():
        stem = safe_name(stem or key)
        st.download_button(
            "Plotted numbers (CSV)",
            tidy.to_csv(index=False),
            file_name=f"{stem}.csv",
            mime="text/csv",
            key=f"{key}-csv",
            on_click="ignore",
            type="tertiary",
            icon=":material/download:",
        )
        export_panel(fig, key, stem)


@st.cache_resource(show_spinner="Loading the images…", max_entries=4)
def _dataset(name: str, data_dir: str | None, image_size: int, test_per_class: int) -> Dataset:
    return load_dataset(name, data_dir, image_size=image_size, test_per_class=test_per_class)


def dataset_of(cfg: RunConfig) -> Dataset:
    """The run's data set, loaded once per server (DataError when its files have gone)."""
    return _dataset(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.test_per_class)


def class_names(cfg: RunConfig) -> list[str] | None:
    """The class names for the figures' axes; None (class indices) when there are more than 20
    (the axis could not show them) or the data cannot be read any more."""
    if KNOWN_CLASSES.get(cfg.dataset, 0) > 20:
        return None
    with contextlib.suppress(DataError, ValueError, OSError):
        names = list(dataset_of(cfg).class_names)
        return names if len(names) <= 20 else None
    return None


def cycle_picker(label: str, count: int, key: str) -> int:
    """A cycle among 0..count-1, or LATEST (the default, which follows a live run)."""
    options = [LATEST, *range(count)]
    fmt = {LATEST: "latest"}
    return int(st.selectbox(label, options, format_func=lambda c: fmt.get(c, str(c)), key=key))


def latest(infos: Sequence[RunInfo], selecting: bool) -> int | None:
    """The last cycle any run has finished (``selecting``: the last one with a selection)."""
    found = [
        c["cycle"]
        for i in infos
        for c in i.cycles
        if not selecting or c.get("selected_counts") is not None
    ]
    return max(found) if found else None


def _resolve(cycle: int, infos: Sequence[RunInfo], selecting: bool) -> int:
    return (latest(infos, selecting) or 0) if cycle == LATEST else cycle


def figures(store: Store, infos: Sequence[RunInfo], key: str) -> None:
    """Accuracy curve, L1 per cycle, one cycle's histograms, per-class accuracy and a gallery.

    Runs are averaged per experiment configuration, one run per seed (:func:`plots.series_set`);
    a caption names the duplicates left out."""
    if (note := plots.duplicates_note(infos)) is not None:
        st.caption(note)
    left, right = st.columns(2)
    with left, guard("Accuracy curve"):
        curve = plots.learning_curve(infos)
        for_screen(curve.figure)
        chart(curve, f"{key}-curve", figure_stem(infos, "accuracy"))
    with right, guard("L1 curves"):
        l1 = plots.l1_curves(infos)
        for_screen(l1.figure)
        chart(l1, f"{key}-l1", figure_stem(infos, "l1"))
    same_data = len({(i.config.dataset, i.config.data_dir) for i in infos}) == 1
    names = class_names(infos[0].config) if same_data else None
    cycles = max(i.config.cycles for i in infos)  # selecting cycles: 0 .. cycles - 1

    st.subheader("What each strategy selected")
    seeds = sorted({i.config.seed for i in infos})
    pick_cycle, pick_seed = st.columns(2)
    with pick_cycle:
        cycle = _resolve(cycle_picker("Cycle", cycles, f"{key}-hist-cycle"), infos, True)
    with pick_seed:
        seed = st.selectbox("Seed", seeds, key=f"{key}-hist-seed")
    shown = [i for i in infos if i.config.seed == seed]
    with guard("Selection histograms"):
        chart(
            plots.selection_histograms(shown, cycle, names),
            f"{key}-hist",
            figure_stem(shown, f"selection_seed{seed}", cycle),
        )
    st.caption(
        "Classes run from the head of the pool to its tail (both imbalance profiles shrink "
        "classes with their index). Black ticks: Ω, what each class still needed for a balanced "
        "labeled set, the target of the balancing strategies. Grey: labeled before the cycle."
    )
    exhaustion_warning(shown, cycle)

    st.subheader("Per-class test accuracy")
    with st.columns(2)[0]:
        acc_cycle = _resolve(
            cycle_picker("After cycle", cycles + 1, f"{key}-pc-cycle"), infos, False
        )
    with guard("Per-class accuracy"):
        chart(
            plots.per_class_accuracy(infos, acc_cycle, names),
            f"{key}-perclass",
            figure_stem(infos, "per_class_accuracy", acc_cycle),
        )

    st.subheader("Gallery of a selection")
    by_id = {i.run_id: i for i in infos}
    pick_run, pick_cycle = st.columns(2)
    with pick_run:
        run_id = st.selectbox(
            "Run", list(by_id), format_func=lambda r: run_label(by_id[r]), key=f"{key}-gal-run"
        )
    with pick_cycle:
        gal_cycle = cycle_picker("Cycle", cycles, f"{key}-gal-cycle")
    cfg = by_id[run_id].config
    # digits loads in a blink; the others are read into this server only when asked for
    if cfg.dataset == "digits" or st.toggle(
        f"Show the images (reads {cfg.dataset} into the dashboard once)", key=f"{key}-gal-load"
    ):
        with guard("Gallery"):
            gallery(store, by_id[run_id], _resolve(gal_cycle, [by_id[run_id]], True))


def _tile(image: np.ndarray, side: int = 80, frame: int = 3) -> np.ndarray:
    """CHW uint8 → HW(C) uint8, enlarged by pixel repetition to about ``side`` pixels, in a
    white frame so that neighbouring tiles stay apart."""
    hwc = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    k = max(1, side // hwc.shape[0])
    big = np.repeat(np.repeat(hwc, k, axis=0), k, axis=1)
    pad = ((frame, frame), (frame, frame)) + ((0, 0),) * (big.ndim - 2)
    return np.pad(big, pad, constant_values=255)


@st.cache_data(show_spinner=False, max_entries=32)
def _gallery_tiles(
    root: str, run_id: str, cycle: int, cfg_json: str
) -> tuple[list[np.ndarray], list[str], int]:
    cfg = RunConfig.from_json(cfg_json)
    arrays = Store(root).load_cycle_arrays(run_id, cycle, ("selected", "selected_pred"))
    ds = dataset_of(cfg)
    selected, pred = arrays["selected"], arrays["selected_pred"]
    true = ds.y_train[selected]
    names = ds.class_names
    captions = [
        f"{names[t]} → {names[p]}" + ("" if t == p else " ✗")
        for t, p in zip(true, pred, strict=True)
    ]
    return [_tile(ds.x_train[i]) for i in selected], captions, int((true == pred).sum())


def gallery(store: Store, info: RunInfo, cycle: int) -> None:
    """The images ``info`` selected in ``cycle``, captioned true label → the model's prediction."""
    if info.state == "queued" and not info.cycles:
        st.info(f"{run_label(info)} is queued: it starts when a slot is free.")
        return
    if not any(c["cycle"] == cycle and c.get("selected_counts") for c in info.cycles):
        st.info(f"{run_label(info)} has not finished the selection of cycle {cycle} yet.")
        return
    tiles, captions, right = _gallery_tiles(
        str(store.root), info.run_id, cycle, info.config.to_json()
    )
    st.caption(
        f"{run_label(info)}, cycle {cycle}: {len(tiles)} images, caption = true label → the "
        f"model's prediction before the label was revealed ({right} right, ✗ = wrong)."
    )
    st.image(tiles, caption=captions, width=86)


def exhaustion_warning(infos: Sequence[RunInfo], cycle: int) -> None:
    """A warning naming each class whose Ω asked for more than the pool held at ``cycle``."""
    from cbal.loop import describe_exhaustion

    for info in infos:
        record = next((r for r in info.cycles if r["cycle"] == cycle), None)
        if lines := describe_exhaustion(record or {}):
            st.warning(
                f"{run_label(info)}, cycle {cycle}: the pool ran out of some classes that Ω "
                f"asks for — {'; '.join(lines)}. No batch can meet Ω here, so its L1 and the "
                "λ trade-off say less about the method."
            )


def live_view(store: Store, run_ids: Sequence[str], key: str) -> None:
    """Progress of ``run_ids`` (refreshed every REFRESH_S while any is active) and their figures
    (redrawn only when a cycle finishes or a run changes state, to leave the CPU to training)."""
    infos = read_runs(store, run_ids)
    if not infos:
        st.info("These runs are no longer in the store.")
        return
    drawn = signature(infos)

    @st.fragment(run_every=REFRESH_S if any(i.state in runner.ACTIVE for i in infos) else None)
    def progress() -> None:
        now = read_runs(store, run_ids)
        if signature(now) != drawn:
            st.rerun()  # new data (or a run stopped, resumed, vanished): redraw the whole page
        fraction, text = group_progress(now)
        st.progress(min(max(fraction, 0.0), 1.0), text=text)
        if not presenting():  # one row per run, folded: the charts stay on the first screen
            with st.expander(f"Each run: progress, Cancel, Resume ({len(now)})"):
                run_rows(store, now, key)
        for info in now:
            if (message := error_text(info)) is not None:
                st.error(message)

    st.toggle(
        "Presentation mode",
        key=PRESENTATION,
        help="For a projector: larger type, the curves first, fewer controls.",
    )
    with st.container():  # the fragment's own block: its reruns never touch the figures
        progress()
    figures(store, infos, key)


Signature = tuple[tuple[str, str, int], ...]


def signature(infos: Iterable[RunInfo]) -> Signature:
    """What a page's figures and buttons depend on: which runs, their states and cycle counts."""
    return tuple((i.run_id, i.state, len(i.cycles)) for i in infos)


def read_runs(store: Store, run_ids: Sequence[str], active_only: bool = False) -> list[RunInfo]:
    infos = []
    for r in run_ids:
        with contextlib.suppress(StoreError, ValueError):
            info = store.run_info(r)
            if not active_only or info.state in runner.ACTIVE:
                infos.append(info)
    return infos


def group_summary(infos: Sequence[RunInfo]) -> str:
    """One line on the runs' settings: data, imbalance, budget, cycles, epochs (every value
    that occurs, for a sweep whose runs differ)."""

    def values(fmt: Callable[[RunConfig], str]) -> str:
        return ", ".join(dict.fromkeys(fmt(i.config) for i in infos))

    strategies = len({i.config.strategy for i in infos})
    seeds = len({i.config.seed for i in infos})
    return (
        f"{values(lambda c: c.dataset)} · "
        f"IF {values(lambda c: f'{c.imbalance_factor:g} ({c.imbalance_profile})')} · "
        f"{values(lambda c: f'{c.initial_labeled} labels + {c.budget} × {c.cycles} cycles')} · "
        f"{values(lambda c: f'{c.epochs} epochs')} · "
        f"{strategies} strateg{'y' if strategies == 1 else 'ies'} × {seeds} seed(s)"
    )


# -- exports: each figure as PNG, SVG and PDF ----------------------------------------------------


@st.cache_data(show_spinner="Drawing the figure as PNG, SVG and PDF…", max_entries=32)
def _figure_files(spec: str, title: str) -> dict[str, bytes]:
    import plotly.io as pio

    from cbal import export

    fig = pio.from_json(spec)
    return {fmt: export.figure_bytes(fig, fmt, title) for fmt in export.IMAGE_FORMATS}


def export_panel(fig: go.Figure, key: str, stem: str | None = None) -> None:
    """Download buttons for ``fig`` as PNG (300 dpi at the layout size), SVG and PDF, the same
    files as ``python -m cbal export`` makes, named ``stem`` (else ``key``). Drawing takes a
    headless browser (a few seconds for the first figure, about half a second after), so the
    files are drawn only when asked for, for the figure as it is then, and cached; a missing
    browser is said inline."""
    import hashlib

    from cbal import export

    spec = fig.to_json()
    digest = hashlib.sha1(spec.encode()).hexdigest()
    state = f"{key}-images"
    if st.session_state.get(state) != digest:
        st.button(
            "PNG · SVG · PDF",
            key=f"{key}-prepare",
            type="tertiary",
            icon=":material/image:",
            help="Draw this figure as image files to download (PNG, SVG, PDF).",
            on_click=lambda: st.session_state.update({state: digest}),
        )
        return
    try:
        files = _figure_files(spec, stem or key)
    except export.ExportError as exc:
        st.warning(f"Image export: {exc}")
        return
    with st.container(horizontal=True):
        for fmt, data in files.items():
            st.download_button(
                fmt.upper(),
                data,
                file_name=f"{safe_name(stem or key)}.{fmt}",
                mime=export.MIME[fmt],
                key=f"{key}-{fmt}",
                on_click="ignore",
                type="tertiary",
                icon=":material/download:",
            )
