"""Live view of any comparison in the store: progress, curves, histograms, gallery."""

from __future__ import annotations

from collections import Counter

import streamlit as st

from cbal import runner, ui
from cbal.store import RunInfo


def states(infos: list[RunInfo]) -> str:
    return ", ".join(f"{n} {state}" for state, n in Counter(i.state for i in infos).items())


def main() -> None:
    store = ui.page("Live")
    st.title("Live view")
    ui.show_flashes()
    with ui.guard("Reading the run store"):
        ui.damaged_notice(store, store.scan_runs()[1])
        groups = runner.groups(store)
        if not groups:
            st.info("No runs yet: launch a comparison on the home page.")
            return
        mine = st.session_state.get("live_runs") or []
        names = list(groups)
        start = next(
            (k for k, g in enumerate(groups.values()) if any(i.run_id in mine for i in g)), 0
        )
        if st.session_state.get("live-group") not in groups:
            st.session_state["live-group"] = names[start]
        group = st.selectbox(  # keyed by group id, labelled without the states that change
            "Comparison (newest first)",
            names,
            format_func=lambda g: f"{g} — {ui.group_summary(groups[g])}",
            key="live-group",
        )
        st.caption(f"{len(groups[group])} run(s): {states(groups[group])}")
        ui.live_view(store, [i.run_id for i in groups[group]], "page")


main()
