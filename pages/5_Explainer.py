"""Explainer: active learning, imbalanced pools, the class-balanced objective, the L1 score and
how to read the dashboard's figures (Bengar et al., WACV 2022; DESIGN.md section 1)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from cbal import plots, ui
from cbal.data import PROFILES, imbalanced_counts
from cbal.playground import l1_worked
from cbal.strategies import STRATEGIES, balance

IFS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
PAPER_POOL = 45_000  # the paper's unlabeled pool: CIFAR's 50,000 minus the 5,000 initial labels
OMEGA_EXAMPLE = ((40, 25, 10, 5), 20)  # labeled class counts n_c, budget b
MAX_TERMS = 8  # the worked L1 example writes out its sum up to this many classes


def active_learning() -> None:
    st.header("Active learning")
    st.markdown(
        "A model is trained on a small **labeled set** L. It then scores a large **unlabeled "
        "pool**, an **acquisition strategy** picks a batch of b images, an annotator reveals "
        "their classes, they join L, and the model is trained again: one **cycle**. The "
        "question is which b images teach the model most per label paid.\n\n"
        "The classical strategies rank by **informativeness**: *Entropy* picks the images whose "
        "predicted class distribution is most uncertain, *BALD* those on which several "
        "MC-dropout passes disagree, *KCenterGreedy* those farthest (in feature space) from "
        "everything labeled so far. None of them looks at classes."
    )


def imbalanced_pool() -> None:
    st.header("An imbalanced pool")
    st.markdown(
        "Real unlabeled pools are long-tailed: a few classes are common, the others rare. cbal "
        "builds such pools as the paper does. The **imbalance factor** IF is the size of the "
        "smallest class over the largest; the **profile** says how the classes shrink: *step* "
        "keeps the first half of the classes at n_max and cuts the rest to n_max·IF (the "
        "paper's released index files), *exp* shrinks class c to n_max·IF^(c/(C−1))."
    )
    c1, c2, c3 = st.columns(3)
    classes = c1.slider("Classes C", 2, 200, 10, key="ex_classes")
    factor = c2.select_slider(
        "Imbalance factor IF", IFS, 0.1, format_func=lambda v: f"{v:g}", key="ex_if"
    )
    profile = c3.radio("Profile", PROFILES, horizontal=True, key="ex_profile")
    n_max = PAPER_POOL // classes
    counts = imbalanced_counts(n_max, classes, factor, profile)
    tail_share = counts[classes // 2 :].sum() / counts.sum()
    title = (
        f"Pool of {counts.sum():,} images: {counts.max():,} in the largest class, "
        f"{counts.min():,} in the smallest"
    )
    st.plotly_chart(plots.class_bars(counts, title), key="ex-pool", theme=None)
    st.caption(
        f"n_max = 45,000 / C = {n_max:,} (the paper's pool of 45,000 CIFAR images, balanced "
        f"before the cut). The second half of the classes holds {tail_share:.0%} of the pool."
    )
    st.markdown(
        "An informativeness score does not see classes, so its picks tend to follow the pool: "
        "mostly head classes. The labeled set inherits the imbalance, and the tail classes are "
        "learned from few examples."
    )


def objective() -> None:
    st.header("The class-balanced objective")
    st.markdown(
        "Class-balanced active learning (Bengar et al., WACV 2022) adds a balancing term to the "
        "informativeness. One acquisition step picks the batch z by"
    )
    st.latex(
        r"\min_{z \in \{0,1\}^N} \; -u^\top z \;+\; \lambda \,"
        r"\lVert \Omega - P^\top z \rVert_1 \qquad \text{subject to} \quad \sum_{i=1}^N z_i = b"
    )
    cb = STRATEGIES["entropy-cb"]
    left, right = st.columns(2)
    with left:
        st.markdown(
            "- **z** ∈ {0, 1}ᴺ marks the picked pool images; Σz = b picks exactly the budget.\n"
            "- **u** ∈ ℝᴺ: informativeness of each image, the entropy "
            "H(pᵢ) = −Σ_c p_ic log p_ic (BALD-CB: the mutual information).\n"
            "- **P** ∈ ℝᴺˣᶜ: the model's softmax on the pool. Pᵀz is the *expected* number of "
            "picks per class: the true classes are unknown until the annotator reveals them.\n"
            "- **λ** ≥ 0 trades the two terms: λ = 0 is plain top-b entropy; a large λ puts "
            f"balance first. The paper uses {cb.lam_small:g} (CIFAR-10) and {cb.lam_large:g} "
            "(CIFAR-100)."
        )
    with right:
        st.markdown(
            "- **Ω** ∈ ℝᶜ: target counts, what each class still needs for a perfectly balanced "
            "labeled set after this step (n_c = labeled images of class c):"
        )
        st.latex(r"\Omega_c = \max\Big(0,\; \frac{|L| + b}{C} - n_c\Big)")
        labeled, budget = OMEGA_EXAMPLE
        omega = balance.target_counts(labeled, budget)
        st.markdown(
            f"For instance n = {labeled} and b = {budget}: (|L| + b)/C = "
            f"{(sum(labeled) + budget) / len(labeled):g}, so Ω = "
            f"({', '.join(f'{v:g}' for v in omega)}). Ω may ask for more than b in total "
            f"(here {omega.sum():g}): then every batch that gives no class more than its target "
            f"(in expectation, Pᵀz ≤ Ω) scores the same on the balance term, ΣΩ − b = "
            f"{omega.sum() - budget:g}, and u decides among them."
        )
    st.markdown(
        "cbal solves this binary problem itself (solver `binary`): the relaxation 0 ≤ z ≤ 1 "
        "solved exactly (a linear program, HiGHS) gives a lower bound and duals; an optimal "
        "vertex has at most C + 1 fractional entries, so its rounding to the b largest z is "
        "close; swaps improve it, and a branch-and-bound over the few items the duals leave "
        "undecided proves it optimal to a relative gap of 1e-4 (how the paper's solver defines "
        "optimal; `--solver-mip-gap 0` asks for the optimum itself), or reports the certified "
        "gap where its work limits stop it. `lp-round` keeps the rounding alone (faster).\n\n"
        "**KCenterGreedy-CB** adds the same term to the greedy k-center: step k picks"
    )
    st.latex(
        r"j_k = \arg\min_{j} \Big[ -d_j + \frac{\lambda}{C}\,"
        r"\big\lVert \Omega - P^\top z - p_j \big\rVert_1 \Big]"
    )
    st.markdown(
        "with d_j the distance from j to the nearest labeled or already picked image, z the "
        f"picks so far (paper: λ = {STRATEGIES['kcenter-cb'].lam_small:g} and "
        f"{STRATEGIES['kcenter-cb'].lam_large:g}). **Entropy L1 Pseudo Label** skips the "
        "solver: it splits b over the classes in proportion to Ω and fills each class's quota "
        "with the highest-entropy images predicted as that class."
    )
    st.page_link("pages/4_Playground.py", label="Try it: 2-D playground", icon=":material/tune:")


def l1_section() -> None:
    st.header("The L1 score")
    st.markdown(
        "How imbalanced is a class histogram h? The paper's L1 score (Section 5.1) is the "
        "distance to the uniform histogram, scaled to [0, 1]: 0 = every class equally often, "
        "1 = everything in one class. The dashboard shows it for each selected batch and for "
        "the labeled set after it."
    )
    st.latex(
        r"\mathrm{L1}(h) = \frac{C}{2n(C-1)} \sum_{c=1}^{C} \Big| h_c - \frac{n}{C} \Big|,"
        r"\qquad n = \sum_c h_c"
    )
    text = st.text_input("A class histogram h (counts, comma-separated)", "6, 2, 1, 1", key="ex_h")
    try:
        worked = l1_worked([float(v) for v in text.replace(",", " ").split()])
    except ValueError as exc:
        st.error(f"**Class histogram**: {exc} (e.g. 6, 2, 1, 1)")
        return
    c = len(worked.counts)
    terms = " + ".join(f"{d:.4g}" for d in worked.deviations[:MAX_TERMS])
    if c > MAX_TERMS:
        terms += r" + \dots"
    left, right = st.columns([3, 2])
    with left:
        title = f"h: L1 = {worked.score:.3f}"
        fig = plots.class_bars(worked.counts, title, level=worked.mean, height=300)
        st.plotly_chart(fig, key="ex-l1", theme=None)
    with right:
        st.markdown(f"n = {worked.total:g}, C = {c}, n/C = {worked.mean:.4g}")
        st.latex(rf"\sum_c \Big| h_c - \tfrac{{n}}{{C}} \Big| = {terms} = {worked.spread:.4g}")
        st.latex(
            rf"\mathrm{{L1}} = \frac{{{c}}}{{2 \cdot {worked.total:g} \cdot {c - 1}}} \cdot "
            rf"{worked.spread:.4g} = {worked.scale:.4g} \cdot {worked.spread:.4g} "
            rf"= {worked.score:.3f}"
        )
        st.caption(
            f"For comparison: the uniform histogram scores "
            f"{balance.l1_score(np.full(c, worked.mean)):g}, all {worked.total:g} in one class "
            f"{balance.l1_score(np.eye(c)[0] * worked.total):g}."
        )


def reading_guide() -> None:
    st.header("Reading the dashboard")
    st.markdown(
        "Every strategy keeps its colour on every figure; the paper's balancing methods are "
        "drawn solid, the classical baselines dashed, Random dotted. Classes run from the head "
        "of the pool to its tail."
    )
    guide = {
        "Test accuracy": "Accuracy on the (balanced) test set against the number of labeled "
        "images, one line per strategy: the mean over seeds, with a band of ± one standard "
        "deviation across seeds (no band for a single seed). Higher at the same label count is "
        "better; since the test set is balanced, the tail classes count as much as the head.",
        "Class imbalance (L1) per cycle": "The L1 score of the batch each cycle selected (top) "
        "and of the labeled set after it (bottom); 0 = balanced. A balancing strategy should "
        "sit below its baseline, above all in the bottom panel: its batches need not be "
        "uniform, they aim at Ω, which favours the classes the labeled set lacks.",
        "Selection of a cycle by class": "For one cycle, per run: the batch (left, L1 in the "
        "title; black ticks at Ω for the strategies that aim at it) and the labeled set after it "
        "(right, L1 in the title; grey = labeled before the cycle, colour = the batch). Bars "
        "that reach the ticks mean the batch went where balance needed it.",
        "Per-class test accuracy": "Accuracy on each class after a cycle, one bar per strategy "
        "(mean over seeds, error bar ± one standard deviation). The tail classes, on the right, "
        "are where balancing should pay off.",
        "λ explorer": "Re-solves one saved cycle at many λ without retraining. The trade-off "
        "curve shows, against λ on a log axis (λ = 0 at the far left), the L1 of the batch "
        "(solid) and of the labeled set after it (dashed) on top, and the batch's mean "
        "informativeness below; the dotted line marks the run's own λ. Balance is bought with "
        "informativeness: the curves show how much, and from which λ on.",
    }
    for name, text in guide.items():
        st.markdown(f"**{name}.** {text}")


def main() -> None:
    ui.page("Explainer")
    st.title("How class-balanced active learning works")
    sections = {
        "Active learning": active_learning,
        "Imbalanced pool": imbalanced_pool,
        "Objective": objective,
        "L1 score": l1_section,
        "Reading guide": reading_guide,
    }
    for name, section in sections.items():
        with ui.guard(name):
            section()


main()
