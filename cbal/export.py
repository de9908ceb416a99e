"""Exports: figures as PNG / SVG / PDF, their numbers as CSV, the paper's figure set for any group
of runs, and a one-page self-contained HTML report.

- :func:`figure_bytes` draws any plotly figure (the dashboard's included) as PNG (300 dpi at
  the layout's size), SVG or PDF (with a document title of ours); :func:`csv_bytes` writes a
  ``*_tidy`` frame of :mod:`cbal.plots`.
- :func:`paper_figures` builds the paper's figure set for a group of runs, at a print width of
  one column (3.5 in) or the text width (7 in): (a) accuracy vs
  labeled images per strategy, mean ± std over seeds, one panel per imbalance factor (Figs. 7–10);
  (b) the per-class distribution of each cycle's selected batch, one small multiple per
  strategy × cycle with its L1 score, classes head → tail (Figs. 11–13; one figure per data set ×
  IF); (c) the L1 score per cycle; (d) the λ trade-off of one CB run's cycle
  (:func:`cbal.explore.lambda_path`, when the run saved its pool arrays).
- :func:`export_runs` writes them all under one folder (files named after what they show,
  :func:`figure_stem`; nothing outside the folder; the umask's file mode) with ``report.html``;
  ``python -m cbal export`` is its command line. Runs are averaged per configuration, one run
  per seed (:func:`cbal.plots.series_set`); captions name the duplicates left out.

Static images come from plotly's kaleido (1.x), which renders in a headless Chrome/Chromium. The
browser is looked up once (:func:`browser_path`: ``$BROWSER_PATH``, else ``chromium`` /
``google-chrome`` on ``PATH``, e.g. Debian's ``/usr/bin/chromium``, else a browser fetched with
``kaleido_get_chrome``), started on the first image and kept for the process (≈4 s to start,
then ≈0.5 s per image). No browser: :class:`ExportError`, one line saying what to install; CSV
and HTML need none. No torch, no Streamlit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import html
import os
import re
import shutil
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cbal import explore, plots
from cbal.config import lam_text
from cbal.store import RunInfo, Store, StoreError, accuracy_text, atomic_write_bytes
from cbal.strategies import STRATEGIES

__all__ = [
    "FIGURES",
    "FORMATS",
    "IMAGE_FORMATS",
    "MIME",
    "BrowserMissing",
    "ExportError",
    "ExportResult",
    "PaperFigure",
    "browser_path",
    "close_browser",
    "csv_bytes",
    "export_runs",
    "figure_bytes",
    "html_report",
    "paper_figures",
    "safe_name",
]

IMAGE_FORMATS = ("pdf", "svg", "png")
FORMATS = (*IMAGE_FORMATS, "csv")
MIME = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png", "csv": "text/csv"}
#: The paper's figure set: letter → what it shows.
FIGURES = {
    "a": "accuracy vs labeled images, one panel per IF",
    "b": "per-class distribution of the selected images, strategy × cycle",
    "c": "L1 score per cycle",
    "d": "λ trade-off of one CB run's cycle",
}
PNG_SCALE = 300 / plots.PX_PER_IN  # 300 dpi at a paper figure's print size (its layout size)
DEFAULT_WIDTH = 1000  # px, for a figure without a width (the dashboard's fill the page)
RENDER_TIMEOUT = 120.0  # seconds for the browser to start or to draw one figure
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
REPORT = "report.html"
_INSTALL = (
    "install Chromium (Debian/Ubuntu: apt-get install chromium) or Chrome, set BROWSER_PATH to "
    "its executable, or run kaleido_get_chrome"
)


class ExportError(RuntimeError):
    """An export cannot be made; the message is one line naming what is missing."""


class BrowserMissing(ExportError):
    """No Chrome/Chromium for the static image export (PNG, SVG, PDF)."""


# --------------------------------------------------------------------------------------------
# Bytes of one figure
# --------------------------------------------------------------------------------------------


def browser_path() -> str | None:
    """The Chrome/Chromium the image export starts, or None.

    ``$BROWSER_PATH`` when set (kaleido's own override), else the first of :data:`BROWSER_NAMES`
    on ``PATH``, else what kaleido's browser library finds (a ``kaleido_get_chrome`` download,
    the usual install folders)."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    for name in BROWSER_NAMES:
        if found := shutil.which(name):
            return found
    try:
        from choreographer.browsers.chromium import Chromium

        local = Chromium.find_browser(skip_local=False)
    except Exception:  # an optional fallback: any failure means "not found"
        return None
    return str(local) if local else None


def _missing_browser() -> BrowserMissing:
    env = os.environ.get("BROWSER_PATH")
    if env:
        return BrowserMissing(
            f"PNG/SVG/PDF export needs Chrome or Chromium: BROWSER_PATH={env!r} is not an "
            f"executable file; {_INSTALL}"
        )
    return BrowserMissing(f"PNG/SVG/PDF export needs Chrome or Chromium, none found: {_INSTALL}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class _Renderer:
    """One headless browser for the process, started on the first image and reused.

    kaleido's coroutines run on a private event loop in a daemon thread (so this works from
    Streamlit's script threads and from code that has its own loop); a lock serializes the
    callers. A failure closes the browser: the next image starts a fresh one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kaleido: Any = None
        atexit.register(self.close)

    def render(self, fig: dict[str, Any], opts: dict[str, Any]) -> bytes:
        with self._lock:
            if self._kaleido is None:
                self._start()
            try:
                data = self._call(self._kaleido.calc_fig(fig, opts=opts))
            except Exception as exc:
                self._stop()
                raise ExportError(
                    f"the browser could not draw the figure: {_one_line(exc)}"
                ) from None
        return bytes(data)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> None:
        path = browser_path()
        if path is None:
            raise _missing_browser()
        import kaleido

        async def open_browser() -> Any:
            k = kaleido.Kaleido(path=path, mathjax=False, timeout=RENDER_TIMEOUT)
            await k.open()
            return k

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="cbal-kaleido", daemon=True).start()
        try:
            self._kaleido = self._call(open_browser())
        except Exception as exc:
            self._stop()
            raise BrowserMissing(
                f"PNG/SVG/PDF export could not start the browser {path}: {_one_line(exc)}"
            ) from None

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(RENDER_TIMEOUT)

    def _stop(self) -> None:
        k, loop = self._kaleido, self._loop
        self._kaleido = self._loop = None
        if loop is None:
            return
        if k is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(k.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


_RENDERER = _Renderer()


def figure_bytes(fig: go.Figure, fmt: str, title: str | None = None) -> bytes:
    """``fig`` as a PNG (:data:`PNG_SCALE` × its layout size), SVG or PDF file's bytes; a PDF's
    document title is ``title`` (default: the figure's title, else "cbal figure").

    The size is the figure's layout width × height (``DEFAULT_WIDTH`` when it has no width, as
    the dashboard's figures that fill the page). Raises :class:`BrowserMissing` when no
    Chrome/Chromium can be started, :class:`ExportError` when drawing fails."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format={fmt!r} must be one of {', '.join(IMAGE_FORMATS)}")
    layout = fig.layout
    opts = {
        "format": fmt,
        "width": int(layout.width or DEFAULT_WIDTH),
        "height": int(layout.height or 500),
        "scale": PNG_SCALE if fmt == "png" else 1,
    }
    data = _RENDERER.render(fig.to_dict(), opts)
    if fmt == "pdf":
        data = pdf_with_info(data, title or fig.layout.title.text or "cbal figure")
    return data


def _pdf_text(text: str) -> bytes:
    """A PDF text string: UTF-16BE with its byte-order mark, in hex (any character, no escapes)."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def pdf_with_info(pdf: bytes, title: str) -> bytes:
    """``pdf`` with a document information dictionary of our own (Title ``title``, Creator
    cbal; the browser's says "Kaleido-fier"), appended as an incremental update: a new version
    of the info object, an xref section for it and a trailer pointing back to the old one, so
    no byte of the original moves."""
    trailers = re.findall(rb"trailer\s*<<(.*?)>>\s*startxref\s*(\d+)", pdf, re.S)
    if not trailers:
        raise ExportError("the browser's PDF has no classic trailer; cannot set its title")
    trailer, prev = trailers[-1]
    size = re.search(rb"/Size\s+(\d+)", trailer)
    root = re.search(rb"/Root\s+(\d+\s+\d+\s+R)", trailer)
    if size is None or root is None:
        raise ExportError("the browser's PDF trailer lacks /Size or /Root; cannot set its title")
    info = re.search(rb"/Info\s+(\d+)\s+0\s+R", trailer)
    number = int(info.group(1)) if info else int(size.group(1))
    new_size = max(int(size.group(1)), number + 1)
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    obj_at = len(body)
    obj = (
        f"{number} 0 obj\n<</Title ".encode()
        + _pdf_text(title)
        + b" /Creator "
        + _pdf_text("cbal (plotly, kaleido)")
        + time.strftime("/CreationDate (D:%Y%m%d%H%M%SZ)>>\nendobj\n", time.gmtime()).encode()
    )
    xref_at = obj_at + len(obj)
    tail = (
        f"xref\n0 1\n0000000000 65535 f \n{number} 1\n{obj_at:010d} 00000 n \ntrailer\n"
        f"<</Size {new_size} /Root {root.group(1).decode()} /Info {number} 0 R "
        f"/Prev {prev.decode()}>>\nstartxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return body + obj + tail


def close_browser() -> None:
    """Stop the export's browser now (it also stops at exit); the next image starts one."""
    _RENDERER.close()


def csv_bytes(tidy: pd.DataFrame) -> bytes:
    """A ``*_tidy`` frame as UTF-8 CSV (no index; floats at full precision)."""
    return tidy.to_csv(index=False).encode("utf-8")


# --------------------------------------------------------------------------------------------
# The paper's figure set
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PaperFigure:
    """One figure of the set: its file stem, a heading and caption for the report, the
    figure (publication style) and the numbers it plots."""

    name: str
    heading: str
    caption: str
    fig: go.Figure
    tidy: pd.DataFrame


def safe_name(text: str) -> str:
    """A file stem of letters, digits, '.', '_' and '-' only (never empty, never hidden)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:120]
    return name or "figure"


def _values(infos: Sequence[RunInfo], get: Any) -> list[Any]:
    return list(dict.fromkeys(get(i) for i in infos))


def figure_stem(infos: Sequence[RunInfo], what: str, cycle: int | None = None) -> str:
    """A file stem naming what a figure of ``infos`` shows: their group (when they share one),
    ``what``, the data set(s), the strategy (when there is one), the imbalance factor(s) and
    the ``cycle``, e.g. ``g20261201-abcd_accuracy_digits_IF1-0.1``."""
    from cbal.runner import group_of

    groups = _values(infos, group_of)
    parts = [groups[0]] if len(groups) == 1 and groups[0] else []
    parts.append(what)
    parts += _values(infos, lambda i: i.config.dataset)
    strategies = _values(infos, lambda i: i.config.strategy)
    if len(strategies) == 1:
        parts.append(strategies[0])
    ifs = sorted(_values(infos, lambda i: i.config.imbalance_factor), reverse=True)
    if ifs:
        parts.append("IF" + "-".join(f"{v:g}" for v in ifs))
    if cycle is not None:
        parts.append(f"cycle{cycle}")
    return safe_name("_".join(parts))


def _selecting(info: RunInfo) -> list[int]:
    return [c["cycle"] for c in info.cycles if c.get("selected_counts") is not None]


def _lambda_candidates(infos: Sequence[RunInfo]) -> list[RunInfo]:
    """CB runs with pool arrays and a selection: the LP family first (fast), KCenterGreedy-CB
    last (it re-runs the greedy per λ)."""
    cb = [
        i
        for i in infos
        if STRATEGIES[i.config.strategy].problem and i.config.save_pool_arrays and _selecting(i)
    ]
    return sorted(cb, key=lambda i: STRATEGIES[i.config.strategy].problem == "kcenter")


def _lambda_figure(
    store: Store, infos: Sequence[RunInfo], run_id: str | None, cycle: int | None, width: str
) -> PaperFigure:
    if run_id is not None:
        info = store.run_info(run_id)
    else:
        found = _lambda_candidates(infos)
        if not found:
            raise explore.NoPoolArrays(
                "no run of these is a CB run (a strategy with λ) that saved its pool arrays and "
                "finished a selection"
            )
        info = found[0]
    k = cycle if cycle is not None else (_selecting(info) or [0])[-1]
    ca = explore.load_cycle(store, info.run_id, k)
    path = explore.lambda_path(ca, np.union1d(explore.DEFAULT_LAMS, [ca.lam]))  # + the run's λ
    label = plots.strategy_label(path.strategy)
    caption = (
        f"{label}, run {info.run_id} (seed {info.config.seed}), cycle {k} re-selected at "
        f"{len(path.points)} values of λ from its saved pool arrays (no retraining): L1 score of "
        f"the batch and of the labeled set after it (top), mean informativeness of the batch "
        f"({path.u_source}; bottom); dotted: the run's λ."
    )
    made = plots.lambda_tradeoff(path)
    return PaperFigure(
        safe_name(f"{figure_stem([info], 'd_lambda', k)}_{info.run_id}"),
        f"λ trade-off ({label}, cycle {k})",
        caption,
        plots.paper_style(made.figure, width, aspect=0.45),
        made.table.assign(run_id=info.run_id, cycle=k),
    )


_SEEDS = (
    "Lines: mean over the seeds of each configuration, bands: ± one sample standard deviation "
    "(two seeds or more; n_seeds in the CSV)."
)


def _counted(infos: Sequence[RunInfo], caption: str) -> str:
    """``caption`` and, when some runs repeat a configuration and seed, which were left out."""
    note = plots.duplicates_note(infos)
    return f"{caption} {note}" if note else caption


def paper_figures(
    store: Store,
    infos: Sequence[RunInfo],
    figures: Iterable[str] = tuple(FIGURES),
    lambda_run: str | None = None,
    lambda_cycle: int | None = None,
    width: str = "double",
) -> tuple[list[PaperFigure], list[str]]:
    """The figures ``figures`` (letters of :data:`FIGURES`) for the runs ``infos`` at print
    ``width`` (:data:`cbal.plots.PAPER_WIDTHS`), and a note for each one that could not be made
    (no finished cycle, no pool arrays...). Runs are averaged per configuration and seed as
    :func:`cbal.plots.series_set` says; captions name the duplicates left out."""
    wanted = list(dict.fromkeys(figures))
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        raise ValueError(f"figures {', '.join(unknown)} unknown: choose from {', '.join(FIGURES)}")
    plots.paper_width_px(width)  # a bad width fails before any work
    out: list[PaperFigure] = []
    notes: list[str] = []
    if "a" in wanted:
        made = plots.accuracy_by_if(infos)
        if made.table.empty:
            notes.append("figure a skipped: no run has finished a cycle")
        else:
            caption = (
                "Test accuracy after each cycle vs the size of the labeled set, one panel per "
                f"imbalance factor of the unlabeled pool. {_SEEDS}"
            )
            out.append(
                PaperFigure(
                    figure_stem(infos, "a_accuracy"),
                    "Test accuracy vs labeled images",
                    _counted(infos, caption),
                    plots.paper_style(made.figure, width),
                    made.table,
                )
            )
    if "b" in wanted:
        out += _distribution_figures([i for i in infos if _selecting(i)], width, notes)
    if "c" in wanted:
        made = plots.l1_by_if(infos)
        if made.table.empty:
            notes.append("figure c skipped: no run has finished a selection")
        else:
            caption = (
                "L1 score of the batch selected in each cycle (top) and of the labeled set after "
                f"it (bottom), one column per imbalance factor; 0 = balanced. {_SEEDS}"
            )
            out.append(
                PaperFigure(
                    figure_stem(infos, "c_l1"),
                    "Class imbalance (L1) per cycle",
                    _counted(infos, caption),
                    plots.paper_style(made.figure, width, aspect=0.6),
                    made.table,
                )
            )
    if "d" in wanted:
        try:
            out.append(_lambda_figure(store, infos, lambda_run, lambda_cycle, width))
        except (StoreError, ValueError) as exc:  # NoPoolArrays is a StoreError
            notes.append(f"figure d skipped: {_one_line(exc)}")
    return out, notes


def _distribution_figures(
    selected: Sequence[RunInfo], width: str, notes: list[str]
) -> list[PaperFigure]:
    """Figure b, one per data set × IF: four cycles a row at double width, two at single."""
    groups: dict[tuple[str, float], list[RunInfo]] = {}
    for i in sorted(selected, key=lambda i: -i.config.imbalance_factor):
        groups.setdefault((i.config.dataset, i.config.imbalance_factor), []).append(i)
    if not groups:
        notes.append("figure b skipped: no run has finished a selection")
    caption = (
        "Class histogram of the batch each strategy selected in each cycle, classes from the "
        "head of the pool to its tail; above each panel its L1 score (0 = uniform, 1 = one "
        "class; mean ± std over seeds, bars: mean counts)."
    )
    per_row = 4 if width == "double" else 2
    out = []
    for (dataset, factor), runs in groups.items():
        made = plots.distribution_grid(runs, max_cols=per_row)
        out.append(
            PaperFigure(
                figure_stem(runs, "b_distribution"),
                f"Selected images per class, {dataset}, IF = {factor:g}",
                _counted(runs, caption),
                plots.paper_style(made.figure, width, legend=False, aspect=0.75),
                made.table,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Writing a folder of exports
# --------------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What :func:`export_runs` wrote, what it skipped (notes) and which formats failed."""

    out: Path
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _target(out: Path, filename: str) -> Path:
    """``out / filename`` for a plain file name; never a path outside ``out``."""
    path = out / safe_name(filename)
    if path.resolve().parent != out.resolve():
        raise ExportError(f"refusing to write {filename!r} outside {out}")
    return path


def file_mode() -> int:
    """The mode a new file gets from this process's umask (0644 under the usual 022): exports
    are for sharing, unlike the 0600 of a plain temp file. Read from /proc, because setting the
    umask to learn it would race with other threads (the dashboard's)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return 0o644


def write_file(path: Path, data: bytes) -> None:
    """``data`` to ``path`` atomically (a 0600 temp file renamed), then :func:`file_mode`."""
    atomic_write_bytes(path, data)
    os.chmod(path, file_mode())


def _write(result: ExportResult, filename: str, data: bytes) -> None:
    path = _target(result.out, filename)
    try:
        write_file(path, data)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    result.written.append(path)


def export_runs(
    store: Store,
    run_ids: Sequence[str],
    out: str | Path,
    figures: Iterable[str] = tuple(FIGURES),
    formats: Iterable[str] = FORMATS,
    lambda_run: str | None = None,
    lambda_cycle: int | None = None,
    report: bool = True,
    width: str = "double",
) -> ExportResult:
    """Write the paper figures of ``run_ids`` under ``out`` at print ``width`` (single: 3.5 in,
    double: 7 in): ``<figure>.<format>`` for each figure and format (stems name what the figure
    shows, :func:`figure_stem`), and ``report.html`` (all figures, interactive,
    self-contained). Files get the mode of :func:`file_mode`.

    A format that cannot be made (PNG/SVG/PDF without a browser) is reported once in
    ``errors`` and the others are still written. Raises StoreError / ValueError for unknown
    runs, figures or formats, ExportError when ``out`` cannot be written."""
    fmts = list(dict.fromkeys(formats))
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown:
        raise ValueError(f"formats {', '.join(unknown)} unknown: choose from {', '.join(FORMATS)}")
    if not run_ids:
        raise ValueError("no runs to export")
    infos = [store.run_info(r) for r in dict.fromkeys(run_ids)]
    result = ExportResult(Path(out))
    try:
        result.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {result.out}: {exc.strerror or exc}") from None
    figs, result.notes = paper_figures(store, infos, figures, lambda_run, lambda_cycle, width)
    failed: set[str] = set()
    for pf in figs:
        for fmt in fmts:
            if fmt in failed:
                continue
            try:
                data = csv_bytes(pf.tidy) if fmt == "csv" else figure_bytes(pf.fig, fmt, pf.heading)
            except BrowserMissing as exc:
                lost = [f for f in fmts if f in IMAGE_FORMATS]
                failed.update(lost)
                result.errors.append(f"{', '.join(lost).upper()} not written: {exc}")
                continue
            except ExportError as exc:
                failed.add(fmt)
                result.errors.append(f"{fmt.upper()} not written: {exc}")
                continue
            _write(result, f"{pf.name}.{fmt}", data)
    if report:
        _write(result, REPORT, html_report(figs, infos, result.notes).encode("utf-8"))
    return result


def _runs_table(infos: Sequence[RunInfo]) -> str:
    head = ["run", "strategy", "λ", "seed", "dataset", "IF", "state", "cycles", "accuracy"]
    head.append("counted")
    counted = {r.run_id for r in plots.series_set(infos).runs}
    rows = []
    for i in infos:
        c = i.config
        acc = i.last_accuracy
        cells = [
            i.run_id,
            plots.strategy_label(c.strategy),
            lam_text(c, i.cycles),
            str(c.seed),
            c.dataset,
            f"{c.imbalance_factor:g} ({c.imbalance_profile})",
            i.state,
            i.cycles_text,
            accuracy_text(acc),
            "yes" if i.run_id in counted else "no: a duplicate",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    table = f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="wide">{table}</div>'


_CSS = """
body { font-family: Arial, Helvetica, sans-serif; color: #222; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.caption { color: #444; max-width: 900px; }
.wide { max-width: 100%; overflow-x: auto; }
.note { color: #8a4b00; }
"""


def html_report(
    figs: Sequence[PaperFigure],
    infos: Sequence[RunInfo],
    notes: Sequence[str] = (),
    title: str = "cbal: class-balanced active learning",
) -> str:
    """One self-contained HTML page: the runs, then every figure (interactive; plotly.js is
    embedded once) with its caption, and the notes on figures that were skipped."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(infos)} run(s), exported {time.strftime('%Y-%m-%d %H:%M')}.</p>",
        _runs_table(infos),
    ]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for k, pf in enumerate(figs):
        parts.append(f"<h2>{html.escape(pf.heading)}</h2>")
        # at its print size (never wider than the page: figures wrap their panels); a narrow
        # window scrolls the figure, not the page
        div = pf.fig.to_html(
            full_html=False, include_plotlyjs=k == 0, config={"displaylogo": False}
        )
        parts.append(f'<div class="wide figure">{div}</div>')
        parts.append(f'<p class="caption">{html.escape(pf.caption)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)
