"""2-D playground: two active-learning loops on one long-tailed pool of points, stepped by hand.

Everything is computed by :mod:`cbal.playground` (a logistic regression and the registry's own
strategies, no torch) and drawn by :mod:`cbal.plots`; this page only lays it out.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbal import plots, ui
from cbal.playground import STRATEGY_NAMES, Playground, Setup, make_pool
from cbal.strategies import STRATEGIES

SIDES = {"left": "entropy", "right": "entropy-cb"}  # side → its strategy at first
IFS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02)
LAMS = (0.0, 0.1, 0.3, 0.6, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def setup_fields() -> tuple[Setup, int]:
    c1, c2, c3, c4, c5 = st.columns(5)
    classes = c1.slider("Classes", 2, len(plots.CLASS_COLORS), 4, key="pg_classes")
    factor = c2.select_slider(
        "Imbalance factor",
        IFS,
        0.1,
        format_func=lambda v: f"{v:g}",
        key="pg_if",
        help="Smallest over largest class of the pool; 1 = balanced.",
    )
    profile = c3.radio("Profile", ("step", "exp"), horizontal=True, key="pg_profile")
    budget = c4.slider("Budget b", 1, 40, 10, key="pg_budget", help="Points labeled per cycle.")
    seed = c5.number_input("Seed", min_value=0, value=0, step=1, key="pg_seed")
    return Setup(classes, float(factor), profile, seed=int(seed)), int(budget)


def loops(setup: Setup) -> dict[str, Playground]:
    """The two loops, on one pool; a new setup starts both afresh."""
    ss = st.session_state
    if ss.get("pg_setup") != setup:
        pool = make_pool(setup)
        ss["pg_loops"] = {side: Playground(pool) for side in SIDES}
        ss["pg_setup"] = setup
    loops_: dict[str, Playground] = ss["pg_loops"]
    return loops_


def strategy_fields(side: str, num_classes: int) -> tuple[str, float | None]:
    name = st.selectbox(
        "Strategy",
        STRATEGY_NAMES,
        index=STRATEGY_NAMES.index(SIDES[side]),
        format_func=lambda s: STRATEGIES[s].label,
        key=f"pg_strategy_{side}",
    )
    spec = STRATEGIES[name]
    if not spec.uses_lam:
        return name, None
    lam = st.select_slider(
        "λ",
        LAMS,
        spec.default_lam(num_classes),
        format_func=lambda v: f"{v:g}",
        key=f"pg_lam_{side}_{name}",  # another strategy brings its own (paper) default back
        help=f"Paper default: {spec.default_lam(num_classes):g}. λ = 0 drops the balancing term.",
    )
    return name, float(lam)


def step(runs: dict[str, Playground], plan: dict[str, tuple[str, float | None]], b: int) -> str:
    picks = []
    for side, (name, lam) in plan.items():
        batch = runs[side].next_cycle(name, b, lam)
        picks.append(f"{STRATEGIES[name].label} labeled {b} (batch L1 {batch.l1:.2f})")
    return f"Cycle {runs['left'].cycle}: " + "; ".join(picks) + "."


def reset(runs: dict[str, Playground]) -> str:
    for run in runs.values():
        run.reset()
    return "Back to the initial labeled set."


def side_view(side: str, run: Playground, name: str, lam: float | None, budget: int) -> np.ndarray:
    """One loop: its points and decision regions, its next batch and the class histograms."""
    batch = run.propose(name, budget, lam)
    st.caption(
        f"Cycle {run.cycle} · {len(run.labeled_points()[1])} labeled · accuracy on a balanced "
        f"test set {run.accuracy():.1%}"
    )
    label = STRATEGIES[name].label + ("" if lam is None else f" (λ = {lam:g})")
    fig = plots.playground_figure(
        run.decision_grid(),
        run.unlabeled_points(),
        run.labeled_points(),
        run.pool.x[batch.indices],
        batch.counts,
        batch.omega,
        batch.labeled_counts,
        (batch.l1, batch.labeled_l1),
        name,
        f"{label}: next {budget} picks",
    )
    st.plotly_chart(fig, key=f"pg-{side}", theme=None, config={"displaylogo": False})
    return batch.indices


def main() -> None:
    ui.page("Playground")
    st.title("2-D playground")
    st.caption(
        "A long-tailed pool of points, one blob per class; a logistic regression trained on the "
        "labeled points; and the dashboard's own strategies picking the next batch. The two "
        "sides start from the same pool and the same small balanced labeled set; each labels "
        "its own picks. Step the loop by hand."
    )
    ui.show_flashes()
    with ui.guard("Settings"):
        setup, budget = setup_fields()
        runs = loops(setup)
        plan = {}
        for col, side in zip(st.columns(2), SIDES, strict=True):
            with col:
                plan[side] = strategy_fields(side, setup.num_classes)
        b1, b2, _ = st.columns([2, 1, 5])
        b1.button(
            "Next cycle: label both batches",
            type="primary",
            key="pg_next",
            on_click=ui.safely,
            args=(lambda: step(runs, plan, budget),),
        )
        b2.button("Reset", key="pg_reset", on_click=ui.safely, args=(lambda: reset(runs),))
        picked = {}
        for col, side in zip(st.columns(2), SIDES, strict=True):
            with col, ui.guard(STRATEGIES[plan[side][0]].label):
                picked[side] = side_view(side, runs[side], *plan[side], budget)
        if len(picked) == 2:
            shared = np.intersect1d(picked["left"], picked["right"]).size
            st.caption(f"The two batches share {shared} of {budget} points.")
    with st.expander("How to read this page"):
        st.markdown(
            "- **Shaded regions**: the class the model predicts there; it moves as labels "
            "arrive.\n"
            "- **Small dots**: the unlabeled pool, coloured by its true class (the model does "
            "not see it). The legend counts each class: the tail classes are rare.\n"
            "- **Outlined dots**: the labeled set. **Rings**: the batch the strategy picks next, "
            "in the strategy's colour.\n"
            "- **Histograms**: the true classes of that batch, with black ticks at Ω (what each "
            "class still needs for a balanced labeled set), and the labeled set once the batch "
            "is labeled (grey: labeled before). L1 = 0 is perfectly balanced, 1 all in one "
            "class.\n"
            "- **λ**: the weight of the balancing term. At λ = 0 Entropy-CB is Entropy and "
            "KCenterGreedy-CB is KCenterGreedy: the two sides pick the same points (as long as "
            "their labeled sets are the same)."
        )


main()
