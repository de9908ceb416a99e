"""Every run in the store: filter, compare several on the same axes, cancel, resume, delete."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from cbal import runner, ui
from cbal.store import RunInfo, Store

FILTERS = {"status": "Status", "dataset": "Dataset", "strategy": "Strategy", "group": "Group"}


def filtered(table: pd.DataFrame) -> pd.DataFrame:
    """The rows matching every filter; an empty filter lets everything through."""
    cols = st.columns(len(FILTERS))
    keep = pd.Series(True, index=table.index)
    for col, (field, label) in zip(cols, FILTERS.items(), strict=True):
        chosen = col.multiselect(label, sorted(set(table[field])), key=f"runs-filter-{field}")
        if chosen:
            keep &= table[field].isin(chosen)
    return table[keep]


def actions(store: Store, chosen: Sequence[RunInfo]) -> None:
    """Cancel, resume and (after a confirmation) delete the chosen runs."""
    active = [i.run_id for i in chosen if i.state in runner.ACTIVE]
    stopped = [i.run_id for i in chosen if ui.resumable(i)]
    ids = [i.run_id for i in chosen]
    c1, c2, c3 = st.columns(3)
    c1.button(
        f"Cancel {len(active)} active",
        disabled=not active,
        key="runs-cancel",
        on_click=ui.safely,
        args=(lambda: ui.cancel_runs(store, active),),
    )
    c2.button(
        f"Resume {len(stopped)} failed/cancelled",
        disabled=not stopped,
        key="runs-resume",
        on_click=ui.safely,
        args=(lambda: ui.resume_runs(store, stopped),),
    )
    c3.button(
        f"Delete {len(ids)}…",
        disabled=not ids,
        key="runs-delete",
        on_click=lambda: st.session_state.update(runs_confirm=ids),
    )
    pending = [r for r in st.session_state.get("runs_confirm") or [] if store.exists(r)]
    if pending:
        st.warning(
            f"Delete {len(pending)} run(s) and all their files? Live ones are stopped first. "
            "This cannot be undone."
        )
        yes, no = st.columns([1, 6])

        def confirm() -> None:
            st.session_state.pop("runs_confirm", None)
            ui.safely(lambda: ui.delete_runs(store, pending))

        yes.button("Yes, delete", type="primary", key="runs-delete-yes", on_click=confirm)
        no.button(
            "Keep them",
            key="runs-delete-no",
            on_click=lambda: st.session_state.pop("runs_confirm", None),
        )


def live_table(store: Store, run_ids: Sequence[str], drawn: ui.Signature) -> None:
    """The rows of ``run_ids``, re-read every REFRESH_S while any run is active; a change of
    state or cycle count (or a new or deleted run) redraws the whole page, buttons included."""
    table_config = {
        "IF": st.column_config.NumberColumn(format="%g"),
        "λ": st.column_config.NumberColumn(format="%g"),
        "last accuracy": st.column_config.NumberColumn(format="%.2f%%"),
    }
    active = any(state in runner.ACTIVE for _, state, _ in drawn)

    @st.fragment(run_every=ui.REFRESH_S if active else None)
    def rows() -> None:
        now = {i.run_id: i for i in store.list_runs()}
        if ui.signature(now.values()) != drawn:
            st.rerun()
        shown = [now[r] for r in run_ids if r in now]
        st.dataframe(
            ui.runs_table(shown), hide_index=True, column_config=table_config, key="runs-table"
        )

    rows()


def main() -> None:
    store = ui.page("Runs")
    st.title("Runs")
    ui.show_flashes()
    st.button("Refresh", key="runs-refresh", type="tertiary")
    infos: dict[str, RunInfo] = {}
    with ui.guard("Reading the run store"):
        runs, damaged = store.scan_runs()
        infos = {i.run_id: i for i in runs}
        ui.damaged_notice(store, damaged, manage=True)
    if not infos:
        st.info("No runs yet: launch a comparison on the home page.")
        return
    shown = list(filtered(ui.runs_table(list(infos.values())))["run"])
    live_table(store, shown, ui.signature(infos.values()))
    # keyed by run id with a label that never changes: a chosen run stays chosen when its state
    # changes or a filter hides it
    kept = [r for r in st.session_state.get("runs-chosen") or [] if r in infos]
    st.session_state["runs-chosen"] = kept
    chosen_ids = st.multiselect(
        "Runs to compare or manage",
        list(dict.fromkeys([*shown, *kept])),
        format_func=lambda r: f"{ui.run_label(infos[r])} · {r}",
        key="runs-chosen",
        placeholder="choose runs from the table",
    )
    chosen = [infos[r] for r in chosen_ids]
    actions(store, chosen)
    if chosen:
        st.header("Comparison")
        ui.live_view(store, [i.run_id for i in chosen], "runs")


main()
