"""Live view of any comparison in the store: progress, curves, histograms, gallery."""

from __future__ import annotations

from collections import Counter

import streamlit as st

from cbal import runner, ui
from cbal.store import RunInfo


def describe(group: str, infos: list[RunInfo]) -> str:
    states = Counter(i.state for i in infos)
    return f"{group} — {ui.group_summary(infos)} — " + ", ".join(
        f"{n} {state}" for state, n in states.items()
    )


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
        group = st.selectbox(
            "Comparison (newest first)",
            names,
            index=start,
            format_func=lambda g: describe(g, groups[g]),
        )
        ui.live_view(store, [i.run_id for i in groups[group]], "page")


main()
