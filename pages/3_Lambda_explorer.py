"""λ explorer: re-run one cycle's selection at any λ and solver, from the arrays the run saved.

Nothing is retrained: :mod:`cbal.explore` re-solves the cycle's selection problem on its saved
pool probabilities P, informativeness u and targets Ω, and :mod:`cbal.plots` draws the result.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbal import explore, plots, ui
from cbal.store import RunInfo, Store, StoreError
from cbal.strategies import STRATEGIES, cb_variant
from cbal.strategies.balance import METHODS, SLOW_METHODS

# the slider's stops: 0, then 10 per decade from 0.01 to 1000 (rounded for display)
LAMS = (0.0, *(float(f"{v:.3g}") for v in np.logspace(-2, 3, 51)))


def selecting(info: RunInfo) -> list[int]:
    return [c["cycle"] for c in info.cycles if c.get("selected_counts") is not None]


def problems(strategy: str) -> list[str]:
    """What the slider re-solves on a run's arrays: its own CB problem (a baseline's CB
    variant), else its own selection for comparison; and Entropy-CB, which any run admits."""
    return list(dict.fromkeys([cb_variant(strategy) or strategy, "entropy-cb"]))


def nearest(options: list[float], lam: float) -> float:
    """The slider stop closest to ``lam`` on the log scale (0 for 0)."""
    if lam <= 0:
        return options[0]
    positive = np.array([v for v in options if v > 0])
    return float(positive[np.argmin(np.abs(np.log(positive) - np.log(lam)))])


@st.cache_resource(show_spinner="Loading the cycle's arrays…", max_entries=4)
def cycle_arrays(root: str, run_id: str, cycle: int) -> explore.CycleArrays:
    """A selecting cycle's saved arrays, read once (they never change once written)."""
    return explore.load_cycle(Store(root), run_id, cycle)


@st.cache_data(show_spinner="Re-selecting…", max_entries=256)
def reselect(
    root: str, run_id: str, cycle: int, problem: str, lam: float | None, method: str
) -> explore.Reselection:
    ca = cycle_arrays(root, run_id, cycle)
    return explore.reselect(ca, strategy=problem, lam=lam, method=method)


@st.cache_data(show_spinner="Re-selecting at every λ of the path…", max_entries=32)
def lambda_path(
    root: str, run_id: str, cycle: int, problem: str, method: str
) -> explore.LambdaPath:
    """The default λ grid (30 values) and the run's own λ."""
    ca = cycle_arrays(root, run_id, cycle)
    lams = np.union1d(explore.DEFAULT_LAMS, [ca.lam])
    return explore.lambda_path(ca, lams, strategy=problem, method=method)


@st.cache_resource(show_spinner=False, max_entries=32)
def tradeoff_chart(
    root: str, run_id: str, cycle: int, problem: str, method: str, presenting: bool
) -> plots.Chart:
    """The λ path's figure, drawn once per path (a cycle switch back, or any rerun of the page,
    reuses it); keyed by presentation mode too, since :func:`cbal.ui.chart` restyles it."""
    return plots.lambda_tradeoff(lambda_path(root, run_id, cycle, problem, method))


@st.cache_data(show_spinner=False, max_entries=64)
def balance_limits(root: str, run_id: str, n_cycles: int) -> dict[int, list[explore.Shortfall]]:
    """Per cycle, the classes the pool could not supply as Ω asked ({} for an unreadable
    run); ``n_cycles`` keys the cache to the run's progress."""
    try:
        return explore.balance_limits(Store(root), run_id)
    except (StoreError, ValueError):
        return {}


def lam_controls(key: str, start: float) -> float:
    """The λ slider (log-spaced stops) and an exact number, kept in step; the exact λ."""
    options = sorted({*LAMS, start})
    exact, stop = f"{key}-exact", f"{key}-stop"
    st.session_state.setdefault(exact, start)
    st.session_state.setdefault(stop, nearest(options, start))

    def from_stop() -> None:
        st.session_state[exact] = st.session_state[stop]

    def from_exact() -> None:
        st.session_state[stop] = nearest(options, st.session_state[exact])

    left, right = st.columns([4, 1])
    left.select_slider(
        "λ (log scale)",
        options,
        key=stop,
        format_func=lambda v: f"{v:g}",
        on_change=from_stop,
        help="Weight of the balancing term ‖Ω − Pᵀz‖₁ against informativeness; 0 = the "
        "baseline's own top-b.",
    )
    right.number_input(
        "exact λ", min_value=0.0, max_value=1e6, format="%g", key=exact, on_change=from_exact
    )
    return float(st.session_state[exact])


def versus(value: float, run: float) -> str | None:
    """The change from the run's own number, when there is one to show."""
    return None if round(value - run, 3) == 0 else f"{value - run:+.3f} vs the run"


def metrics(ca: explore.CycleArrays, r: explore.Reselection) -> None:
    rec = ca.record
    cols = st.columns(4)
    cols[0].metric(
        "Batch L1",
        f"{r.batch_l1:.3f}",
        versus(r.batch_l1, rec["batch_l1"]),
        delta_color="inverse",
        help="L1 score of the batch's true class histogram: 0 = uniform, 1 = one class.",
    )
    cols[1].metric(
        "Labeled-set L1",
        f"{r.labeled_l1:.3f}",
        versus(r.labeled_l1, rec["labeled_l1"]),
        delta_color="inverse",
        help="L1 score of the labeled set once this batch is labeled.",
    )
    cols[2].metric("Mean informativeness", f"{r.mean_informativeness:.4f}", help=r.u_source)
    cols[3].metric(
        "Jaccard with the run's picks",
        f"{r.jaccard:.2f}",
        help="|S ∩ S_run| / |S ∪ S_run|: 1 = the very images the run selected.",
    )

    def num(v: float | None, fmt: str = ".4g") -> str:
        return "–" if v is None else format(v, fmt)

    st.caption(
        f"Solver **{r.method}**: {r.status} in {r.solve_time * 1000:.0f} ms · objective "
        f"{num(r.objective)} · bound {num(r.bound)} · gap {num(r.gap, '.2e')} · "
        f"‖Ω − Pᵀz‖₁ = {r.balance_l1:.2f} · u: {r.u_source}"
    )
    for note in r.notes:
        st.caption(note)


def explorer(root: str, run_id: str, cycle: int, ca: explore.CycleArrays) -> None:
    """The problem and solver choice, then the λ fragment and the λ path (which does not
    depend on λ: a λ change reruns only :func:`at_lambda`)."""
    choices = problems(ca.strategy)
    problem = st.radio(
        "Re-solve",
        choices,
        format_func=plots.strategy_label,
        horizontal=True,
        key=f"lx-problem-{run_id}",
        help="The run's own problem, or Entropy-CB on this cycle's arrays for comparison.",
    )
    method = ran_with = ca.solver
    if STRATEGIES[problem].problem:
        kcenter = STRATEGIES[problem].problem == "kcenter"
        method = st.radio(
            "Solver",
            list(METHODS),
            index=list(METHODS).index(ran_with),  # the run's own: its λ gives its picks
            horizontal=True,
            key="lx-solver",
            disabled=kcenter,
            help="\n\n".join(f"{name}: {line}" for name, line in METHODS.items()),
        )
        if method in SLOW_METHODS and not kcenter:
            st.caption(
                f"{method} can take much longer than lp-round on a big pool: binary and milp "
                f"search for at most {explore.EXPLORE_TIME_LIMIT:g} s at a λ the run did not "
                f"use ({ca.time_limit:g} s, the run's limit, at its own λ) and say where they "
                "stopped short of a proof."
            )
    if at_lambda(root, run_id, cycle, ca, problem, method):
        trade_off(root, run_id, cycle, ca, problem, method)


@st.fragment
def at_lambda(
    root: str, run_id: str, cycle: int, ca: explore.CycleArrays, problem: str, method: str
) -> bool:
    """λ controls, the re-selection's numbers and histograms; False when it waits for a click.
    A fragment: moving λ reruns this alone, with the cycle's arrays already in memory."""
    if not STRATEGIES[problem].problem:
        st.info(
            f"{plots.strategy_label(problem)} has no λ: below is the run's own selection, for "
            "comparison. Choose Entropy-CB above to see what balancing would pick from this "
            "cycle's arrays."
        )
        lam = None
    else:
        lam = lam_controls(f"lx-lam-{run_id}-{cycle}-{problem}", explore.start_lam(ca, problem))
    estimate = explore.estimate_seconds(ca, problem, lam)
    if STRATEGIES[problem].problem == "kcenter":
        st.caption(
            "KCenterGreedy-CB is greedy: no solver, it re-runs on the saved embeddings "
            f"({'under a second' if estimate < 1 else ui.human_seconds(estimate)} per λ here)."
        )
    if estimate > explore.SLOW_SECONDS:
        asked = f"lx-go-{run_id}-{cycle}-{problem}-{lam}"
        st.warning(
            f"This re-selection is estimated at {ui.human_seconds(estimate)} "
            f"(N = {ca.n_pool:,} pool images); it runs when you ask."
        )
        if not st.session_state.get(asked):
            st.button(
                f"Re-select at λ = {lam:g}",
                key=f"{asked}-button",
                on_click=lambda: st.session_state.update({asked: True}),
            )
            return False
    try:
        r = reselect(root, run_id, cycle, problem, lam, method)
    except explore.NoEmbeddings as exc:
        st.warning(f"{exc}. Entropy-CB (above) needs only the saved probabilities.")
        return False
    metrics(ca, r)
    stem = f"{run_id}_{problem}_lam{r.lam:g}_cycle{cycle}"
    ui.chart(histograms(run_id, ca, r), "lx-hist", f"{stem}_batch")
    st.caption(
        "Classes from the head of the pool to its tail. Top: the batch as the model saw it "
        "(expected class counts Pᵀz, what the balancing term compares with Ω, black ticks). "
        "Middle: its true classes. Bottom: the labeled set after it (grey: labeled before)."
    )
    return True


def histograms(run_id: str, ca: explore.CycleArrays, r: explore.Reselection) -> plots.Chart:
    """The histograms of ``r``: the figure this session drew last for the same cycle and
    problem, with its numbers replaced (a λ step), else a new one."""
    held = "lx-hist-figure"
    drawn_for = (run_id, ca.cycle, r.strategy, ui.presenting())
    last = st.session_state.get(held)
    made = plots.explorer_histograms(ca, r, into=last[1] if last and last[0] == drawn_for else None)
    st.session_state[held] = (drawn_for, made.figure)
    return made


def trade_off(
    root: str, run_id: str, cycle: int, ca: explore.CycleArrays, problem: str, method: str
) -> None:
    """L1 and informativeness over the default λ grid (cached per cycle, problem, solver)."""
    st.subheader("Trade-off over λ")
    if not STRATEGIES[problem].problem:
        st.info("A strategy without λ has no trade-off curve: choose Entropy-CB above.")
        return
    n = len(explore.DEFAULT_LAMS)
    cost = n * explore.estimate_seconds(ca, problem, ca.lam)
    asked = f"lx-path-{run_id}-{cycle}-{problem}-{method}"
    solved = STRATEGIES[problem].problem == "cb"  # KCenterGreedy-CB has no solver to choose
    slow = cost > explore.SLOW_SECONDS or (solved and method in SLOW_METHODS)
    if slow and not st.session_state.get(asked):
        about = "" if cost <= explore.SLOW_SECONDS else f" (about {ui.human_seconds(cost)})"
        st.button(
            f"Re-select at {n} values of λ{about}",
            key=f"{asked}-button",
            on_click=lambda: st.session_state.update({asked: True}),
        )
        return
    path = lambda_path(root, run_id, cycle, problem, method)
    stem = f"{run_id}_{problem}_cycle{cycle}_lambda_tradeoff"
    made = tradeoff_chart(root, run_id, cycle, problem, method, ui.presenting())
    ui.chart(made, "lx-path", stem)
    how = "the CB problem solved per λ" if path.mode == "cb" else "the greedy re-run per λ"
    st.caption(
        f"{len(path.points)} values of λ (0, 0.01 … 1000 log-spaced, and the run's own, "
        f"dotted) in {path.total_time:.1f} s, {how}. Balance is bought with informativeness: "
        "where the curves bend is where λ starts to matter."
    )


def main() -> None:
    store = ui.page("λ explorer")
    st.title("λ explorer")
    st.caption(
        "Re-run the selection of one cycle at another λ or with another solver, on the arrays "
        "the run saved (pool probabilities P, informativeness u, targets Ω): nothing is "
        "retrained, so each λ answers at once. Compare with what the run actually picked."
    )
    infos: list[RunInfo] = []
    with ui.guard("Reading the run store"):
        runs, damaged = store.scan_runs()
        ui.damaged_notice(store, damaged)
        infos = [i for i in runs if selecting(i)]
    if not infos:
        st.info("No run has finished a selection yet: launch a comparison on the home page.")
        return
    by_id = {i.run_id: i for i in infos}
    pick_run, pick_cycle = st.columns([3, 1])
    run_id = pick_run.selectbox(
        "Run (finished or running)",
        list(by_id),
        index=next((k for k, i in enumerate(infos) if i.config.save_pool_arrays), 0),
        format_func=lambda r: f"{ui.run_label(by_id[r])} · {r}",  # stable: the key is the id
        key="lx-run",
    )
    cycles = selecting(by_id[run_id])
    limits = balance_limits(str(store.root), run_id, len(cycles))
    free = [c for c in cycles if not limits.get(c)]
    start = free[-1] if free else cycles[-1]  # the latest cycle that balancing can fully serve
    cycle = pick_cycle.selectbox(
        "Cycle", cycles, index=cycles.index(start), key=f"lx-cycle-{run_id}"
    )
    ui.exhaustion_warning([by_id[run_id]], cycle)
    with ui.guard("λ explorer"):
        try:
            ca = cycle_arrays(str(store.root), run_id, cycle)
        except explore.NoPoolArrays as exc:
            st.warning(f"This cycle cannot be re-selected. {exc}.")
            return
        try:
            explorer(str(store.root), run_id, cycle, ca)
        except explore.NoEmbeddings as exc:  # the λ path of KCenterGreedy-CB
            st.warning(f"{exc}. Entropy-CB (above) needs only the saved probabilities.")


main()
