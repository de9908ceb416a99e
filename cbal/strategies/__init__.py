"""The strategy registry: name → :class:`Strategy`, each a pure function of arrays.

A strategy is ``select(ctx, budget) -> Selection``; ``ctx`` carries the pool's probabilities,
MC-dropout probabilities, embeddings and the labeled class counts, so selection is testable
without a network and re-runnable on saved arrays (the λ explorer).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbal.strategies import balance, kcenter, paper, scores, summary


@dataclass
class SelectionContext:
    """Everything a strategy may look at for one acquisition step (pool of N, C classes)."""

    probs: np.ndarray  # (N, C) softmax, eval mode, clean images
    labeled_counts: np.ndarray  # (C,) true class counts of the labeled set
    mc_probs: np.ndarray | None = None  # (T, N, C) MC-dropout softmax
    embeddings: np.ndarray | None = None  # (N, d) penultimate features of the pool
    labeled_embeddings: np.ndarray | None = None  # (L, d) features of the labeled set
    lam: float = 0.0
    solver: str = "binary"
    time_limit: float = 60.0
    mip_gap: float = balance.MIP_GAP
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    compat: str = "clean"  # "paper": the released code's quirks (cbal.strategies.paper)
    # Ω of this step, computed on first use and then carried (the loop, the strategy and the
    # saved arrays all read this one value)
    _omega: tuple[int, np.ndarray] | None = field(default=None, init=False, repr=False)

    @property
    def num_classes(self) -> int:
        return int(self.probs.shape[1])

    def require(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this strategy needs ctx.{name}, which was not computed")
        return np.asarray(value)

    def omega(self, budget: int) -> np.ndarray:
        """Ω for this step: exact threshold, or the released code's truncated one."""
        if self._omega is None or self._omega[0] != budget:
            if self.compat == "paper":
                value = paper.truncated_target_counts(self.labeled_counts, budget)
            else:
                value = balance.target_counts(self.labeled_counts, budget)
            self._omega = (budget, value)
        return self._omega[1]


@dataclass
class Selection:
    """A strategy's answer: pool positions, the scores it ranked by, and diagnostics."""

    indices: np.ndarray  # (budget,) distinct positions into the pool
    scores: np.ndarray | None = None  # (N,) informativeness u, when the strategy has one
    probs: np.ndarray | None = None  # (N, C) the P of the balancing term, when used
    omega: np.ndarray | None = None  # (C,) target counts, when used
    diagnostics: dict[str, Any] = field(default_factory=dict)


# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Each balanced (-CB) variant takes a darker shade of its baseline's colour.
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
# colours and markers handed to registered strategies that bring none, in registration order
_PLUGIN_COLORS = ("#882255", "#44AA99", "#999933", "#AA4499", "#117733", "#332288", "#DDCC77")
_PLUGIN_MARKERS = ("cross", "pentagon", "hexagon", "star-diamond", "hourglass", "bowtie")


@dataclass(frozen=True)
class Strategy:
    """A strategy and everything cbal knows about it: what it needs, its λ, how it is drawn.

    ``score`` names the informativeness u it ranks by (a key of :data:`SCORES`), ``problem``
    what the λ explorer re-solves at another λ (``"cb"``: the balanced LP on u and P,
    ``"kcenter"``: KCenterGreedy-CB on the saved embeddings), ``baseline`` the strategy a CB
    variant adds the balancing term to.
    """

    name: str
    label: str
    select: Callable[[SelectionContext, int], Selection]
    description: str
    reference: str
    needs_mc: bool = False
    needs_embeddings: bool = False
    uses_lam: bool = False
    # the paper's λ: its CIFAR-10 value up to 10 classes, else its CIFAR-100 value
    lam_small: float = 0.0
    lam_large: float = 0.0
    baseline: str | None = None
    score: str | None = None
    problem: str | None = None
    color: str = "#7F7F7F"
    marker: str = "circle"
    dash: str = "dash"  # solid: a balancing method, dash: a baseline, dot: random
    plugin: bool = False

    def default_lam(self, num_classes: int) -> float:
        return self.lam_small if num_classes <= 10 else self.lam_large


@dataclass(frozen=True)
class Score:
    """An informativeness u: ``fn(probs)`` (N, C) → (N,), or ``fn(mc_probs)`` (T, N, C) → (N,)
    with ``needs_mc``; higher is picked first."""

    name: str
    label: str
    fn: Callable[[np.ndarray], np.ndarray]
    needs_mc: bool = False

    def of(self, ctx: SelectionContext) -> np.ndarray:
        source = ctx.require("mc_probs") if self.needs_mc else ctx.probs
        return np.asarray(self.fn(source), dtype=np.float64)

    def probs(self, ctx: SelectionContext) -> np.ndarray:
        """The P of the balancing term: the mean MC softmax for an MC score, else ``probs``."""
        return _mc_mean(ctx) if self.needs_mc else ctx.probs


def _random(ctx: SelectionContext, budget: int) -> Selection:
    n = ctx.probs.shape[0]
    return Selection(indices=ctx.rng.choice(n, size=budget, replace=False).astype(np.int64))


def top_b(score: Score) -> Callable[[SelectionContext, int], Selection]:
    """The plain strategy of a score: the ``budget`` highest u."""

    def select(ctx: SelectionContext, budget: int) -> Selection:
        u = score.of(ctx)
        return Selection(indices=scores.top_k(u, budget), scores=u)

    return select


def class_balanced(score: Score) -> Callable[[SelectionContext, int], Selection]:
    """The CB variant of any score: the paper's Eq. 3, max Σ u·z − λ‖Ω − Pᵀz‖₁ over batches z,
    with u from ``score`` and P its :meth:`Score.probs` (Entropy-CB and BALD-CB are two)."""

    def select(ctx: SelectionContext, budget: int) -> Selection:
        u = score.of(ctx)
        p = score.probs(ctx)
        omega = ctx.omega(budget)
        result = balance.solve_balanced(
            u,
            p,
            omega,
            budget,
            ctx.lam,
            method=ctx.solver,
            time_limit=ctx.time_limit,
            mip_gap=ctx.mip_gap,
        )
        return Selection(
            indices=result.indices,
            scores=u,
            probs=p,
            omega=omega,
            diagnostics=_balance_diagnostics(p, result.indices, omega, result.to_record()),
        )

    return select


def _balance_diagnostics(
    probs: np.ndarray, indices: np.ndarray, omega: np.ndarray, extra: dict[str, Any]
) -> dict[str, Any]:
    expected, gap = summary.predicted_balance(probs, indices, omega)
    return {
        **extra,
        "omega": [float(v) for v in omega],
        "expected_counts": [float(v) for v in expected],
        "balance_l1": gap,
    }


def _mc_mean(ctx: SelectionContext) -> np.ndarray:
    # averaged in the MC probabilities' own dtype (float32 from the network), so the P saved
    # for the λ explorer is exactly the P that was used
    mc = ctx.require("mc_probs")
    mean: np.ndarray = mc.mean(axis=0, dtype=mc.dtype)
    return mean


def kcenter_features(ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray]:
    """(pool, labeled) features as KCenterGreedy(-CB) uses them: rounded for compat=paper."""
    emb, lab = ctx.require("embeddings"), ctx.require("labeled_embeddings")
    if ctx.compat == "paper":
        return paper.round_embeddings(emb), paper.round_embeddings(lab)
    return emb, lab


def _kcenter(ctx: SelectionContext, budget: int) -> Selection:
    emb, lab = kcenter_features(ctx)
    if ctx.lam == 0:
        return Selection(indices=kcenter.kcenter_greedy(emb, lab, budget))
    omega = ctx.omega(budget)
    picks = kcenter.kcenter_greedy(emb, lab, budget, probs=ctx.probs, omega=omega, lam=ctx.lam)
    return Selection(
        indices=picks,
        probs=ctx.probs,
        omega=omega,
        diagnostics=_balance_diagnostics(ctx.probs, picks, omega, {"status": "greedy"}),
    )


def _coreset(ctx: SelectionContext, budget: int) -> Selection:
    result = kcenter.coreset_mip(
        ctx.require("embeddings"),
        ctx.require("labeled_embeddings"),
        budget,
        time_limit=ctx.time_limit,
        rng=ctx.rng,
    )
    return Selection(indices=result.indices, diagnostics=result.to_record())


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (largest-remainder rounding)."""
    w = np.asarray(weights, dtype=np.float64)
    share = w / w.sum() * total if w.sum() > 0 else np.full(len(w), total / len(w))
    quotas = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - quotas), kind="stable")
    quotas[order[: total - int(quotas.sum())]] += 1
    return quotas


def _entropy_pl(ctx: SelectionContext, budget: int) -> Selection:
    """Entropy L1 Pseudo Label: per-class quotas from Ω over argmax pseudo labels, then fill-up
    (compat=paper: the released code's truncated quotas, random drop and random fill)."""
    u = scores.entropy(ctx.probs)
    omega = ctx.omega(budget)
    pseudo = ctx.probs.argmax(axis=1)
    if ctx.compat == "paper":
        quotas = omega.astype(np.int64)
        picks, dropped, shortfall = paper.entropy_pl_picks(u, pseudo, quotas, budget, ctx.rng)
    else:
        quotas = largest_remainder(omega, budget)
        picks, shortfall = _quota_picks(u, pseudo, quotas, budget)
        dropped = 0
    return Selection(
        indices=picks.astype(np.int64),
        scores=u,
        omega=omega,
        diagnostics={
            "quotas": quotas.tolist(),
            "omega": [float(v) for v in omega],
            "filled": int(shortfall),
            "dropped": int(dropped),
        },
    )


def _quota_picks(
    u: np.ndarray, pseudo: np.ndarray, quotas: np.ndarray, budget: int
) -> tuple[np.ndarray, int]:
    """The ``quotas[c]`` highest-entropy members of each pseudo class, then the highest-entropy
    rest up to ``budget`` (largest-remainder quotas sum to ``budget``); and how many filled."""
    order = scores.top_k(u, len(u))  # all pool positions, most informative first
    rank_in_class = np.empty(len(u), dtype=np.int64)
    for c in range(len(quotas)):
        members = order[pseudo[order] == c]
        rank_in_class[members] = np.arange(len(members))
    chosen = rank_in_class < quotas[pseudo]
    picks = order[chosen[order]]
    shortfall = budget - len(picks)
    return np.concatenate([picks, order[~chosen[order]][:shortfall]]), shortfall


_PAPER = "Bengar et al., WACV 2022"
_NAME = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)*$")

SCORES: dict[str, Score] = {}
STRATEGIES: dict[str, Strategy] = {}


class StrategyError(RuntimeError):
    """A strategy raised or returned a selection that cannot be a batch of the pool."""


def _darker(color: str) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{int(v * 0.55):02X}" for v in (r, g, b))


def _add(strategy: Strategy) -> Strategy:
    if not _NAME.match(strategy.name):
        raise ValueError(
            f"strategy name {strategy.name!r} is not allowed: expected lowercase letters, "
            "digits and '_', words joined by '-' (e.g. 'my-score')"
        )
    if strategy.name in STRATEGIES:
        raise ValueError(f"strategy {strategy.name!r} is already registered")
    if strategy.baseline is not None and strategy.baseline not in STRATEGIES:
        raise ValueError(f"baseline={strategy.baseline!r} of {strategy.name!r} is not registered")
    STRATEGIES[strategy.name] = strategy
    return strategy


def _score_pair(
    score: Score,
    descriptions: tuple[str, str],
    references: tuple[str, str],
    looks: tuple[str, str, str],
    lam: tuple[float, float],
    plugin: bool = False,
) -> None:
    """Register ``score``'s plain top-b strategy and its CB variant ``<name>-cb``."""
    color, cb_color, marker = looks
    common = dict(needs_mc=score.needs_mc, score=score.name, marker=marker, plugin=plugin)
    SCORES[score.name] = score
    _add(
        Strategy(
            score.name,
            score.label,
            top_b(score),
            descriptions[0],
            references[0],
            color=color,
            **common,  # type: ignore[arg-type]
        )
    )
    _add(
        Strategy(
            f"{score.name}-cb",
            f"{score.label}-CB",
            class_balanced(score),
            descriptions[1],
            references[1],
            uses_lam=True,
            lam_small=lam[0],
            lam_large=lam[1],
            baseline=score.name,
            problem="cb",
            color=cb_color,
            dash="solid",
            **common,  # type: ignore[arg-type]
        )
    )


def _paper_scores() -> None:
    o = OKABE_ITO
    _add(
        Strategy(
            "random",
            "Random",
            _random,
            "uniform sample of the pool",
            "baseline",
            color=o["grey"],
            marker="circle-open",
            dash="dot",
        )
    )
    _score_pair(
        Score("entropy", "Entropy", scores.entropy),
        ("top-b predictive entropy", "entropy minus λ·‖Ω − Pᵀz‖₁, LP relaxation solved exactly"),
        ("Shannon entropy sampling", _PAPER),
        (o["sky blue"], o["blue"], "circle"),
        (0.6, 2.0),
    )
    _score_pair(
        Score("bald", "BALD", scores.bald, needs_mc=True),
        (
            "top-b mutual information over MC-dropout passes",
            "BALD scores in the Entropy-CB problem, P = mean MC softmax",
        ),
        ("Gal et al., ICML 2017", _PAPER),
        (o["orange"], o["vermillion"], "diamond"),
        (0.6, 2.0),
    )


def _paper_geometry_and_quotas() -> None:
    o = OKABE_ITO
    _add(
        Strategy(
            "kcenter",
            "KCenterGreedy",
            _kcenter,
            "greedy k-center on penultimate features",
            "Sener & Savarese, ICLR 2018",
            needs_embeddings=True,
            color=o["bluish green"],
            marker="square",
        )
    )
    _add(
        Strategy(
            "kcenter-cb",
            "KCenterGreedy-CB",
            _kcenter,
            "greedy k-center with the (λ/C)·‖Ω − Pᵀz‖₁ balancing term",
            _PAPER,
            needs_embeddings=True,
            uses_lam=True,
            lam_small=5.0,
            lam_large=50.0,
            baseline="kcenter",
            problem="kcenter",
            color="#005F45",
            marker="square",
            dash="solid",
        )
    )
    _add(
        Strategy(
            "coreset",
            "CoreSet",
            _coreset,
            "robust k-center MIP (HiGHS, time-limited), started from the greedy",
            "Sener & Savarese, ICLR 2018",
            needs_embeddings=True,
            color=o["black"],
            marker="triangle-up",
        )
    )
    _add(
        Strategy(
            "entropy-pl",
            "Entropy L1 Pseudo Label",
            _entropy_pl,
            "per-class quotas from Ω over pseudo labels, highest entropy within each",
            _PAPER,
            score="entropy",
            color=o["reddish purple"],
            marker="x",
            dash="solid",
        )
    )


def _more_scores() -> None:
    o = OKABE_ITO
    # beyond the paper: two more classical scores, each with its generated CB variant
    _score_pair(
        Score("margin", "Margin", scores.margin),
        (
            "top-b smallest gap between the two most probable classes",
            "margin scores in the Entropy-CB problem",
        ),
        ("Scheffer et al., IDA 2001", _PAPER),
        (o["yellow"], "#847D24", "triangle-down"),
        (0.6, 2.0),
    )
    _score_pair(
        Score("leastconf", "LeastConf", scores.least_confidence),
        ("top-b lowest top-class probability", "least-confidence scores in the Entropy-CB problem"),
        ("Lewis & Gale, SIGIR 1994", _PAPER),
        ("#B3A2D6", "#5E3C99", "star"),
        (0.6, 2.0),
    )


for _register in (_paper_scores, _paper_geometry_and_quotas, _more_scores):  # registry order
    _register()


def get(name: str) -> Strategy:
    """The registered strategy ``name``; ValueError listing the names otherwise."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy={name!r} is unknown: expected one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def cb_variant(name: str) -> str | None:
    """The strategy whose problem re-solves ``name``'s selection at any λ (its ``problem``):
    itself when it has one, else its CB variant; None when neither has."""
    if STRATEGIES[name].problem:
        return name
    return next((s.name for s in STRATEGIES.values() if s.baseline == name and s.problem), None)


def _plugin_look(color: str | None, marker: str | None) -> tuple[str, str]:
    k = sum(s.plugin for s in STRATEGIES.values())
    return (
        color or _PLUGIN_COLORS[k % len(_PLUGIN_COLORS)],
        marker or _PLUGIN_MARKERS[k % len(_PLUGIN_MARKERS)],
    )


def register_strategy(
    name: str,
    select: Callable[[SelectionContext, int], Selection | np.ndarray],
    *,
    uses_lam: bool = False,
    needs_mc: bool = False,
    needs_embeddings: bool = False,
    baseline: str | None = None,
    description: str = "a registered strategy",
    label: str | None = None,
    reference: str = "plug-in",
    lam_small: float = 0.0,
    lam_large: float = 0.0,
    color: str | None = None,
    marker: str | None = None,
) -> Strategy:
    """Add a strategy to cbal: ``select(ctx, budget)`` returns ``budget`` distinct pool
    positions (an array, or a :class:`Selection`). It then appears wherever strategies are
    listed (``cbal run --strategy``, the Launch form, sweeps, figures and exports).

    ``uses_lam``: it reads ``ctx.lam`` (with the defaults ``lam_small`` up to 10 classes, else
    ``lam_large``); ``needs_mc``: ``ctx.mc_probs`` is computed; ``needs_embeddings``:
    ``ctx.embeddings`` and ``ctx.labeled_embeddings`` are. Without ``color``/``marker`` it gets
    the next free ones of the plug-in palette.
    """
    if not callable(select):
        raise TypeError(f"select of strategy {name!r} must be callable, got {type(select)}")
    color, marker = _plugin_look(color, marker)
    return _add(
        Strategy(
            name,
            label or name,
            _as_selection(select),
            description,
            reference,
            needs_mc=needs_mc,
            needs_embeddings=needs_embeddings,
            uses_lam=uses_lam,
            lam_small=lam_small,
            lam_large=lam_large,
            baseline=baseline,
            color=color,
            marker=marker,
            dash="solid" if uses_lam else "dash",
            plugin=True,
        )
    )


def register_score(
    name: str,
    score_fn: Callable[[np.ndarray], np.ndarray],
    *,
    needs_mc: bool = False,
    label: str | None = None,
    description: str | None = None,
    reference: str = "plug-in",
    lam_small: float = 0.6,
    lam_large: float = 2.0,
    color: str | None = None,
    marker: str | None = None,
) -> tuple[Strategy, Strategy]:
    """Add an informativeness score: ``score_fn(probs)`` maps the pool's (N, C) softmax (with
    ``needs_mc``: the (T, N, C) MC softmax) to u of shape (N,), higher picked first. Registers
    ``name`` (the top-b of u) and ``name-cb``, its class-balanced variant (the paper's problem
    with this u; λ defaults as Entropy-CB's), re-solvable at any λ in the λ explorer."""
    if not callable(score_fn):
        raise TypeError(f"score_fn of score {name!r} must be callable, got {type(score_fn)}")
    for taken in (name, f"{name}-cb"):
        if taken in STRATEGIES:
            raise ValueError(f"strategy {taken!r} is already registered")
    color, marker = _plugin_look(color, marker)
    text = description or f"top-b {name} scores"
    _score_pair(
        Score(name, label or name, _checked_score(name, score_fn), needs_mc),
        (text, f"{text} in the Entropy-CB problem"),
        (reference, _PAPER),
        (color, _darker(color), marker),
        (lam_small, lam_large),
        plugin=True,
    )
    return STRATEGIES[name], STRATEGIES[f"{name}-cb"]


def _as_selection(
    select: Callable[[SelectionContext, int], Selection | np.ndarray],
) -> Callable[[SelectionContext, int], Selection]:
    def wrapped(ctx: SelectionContext, budget: int) -> Selection:
        out = select(ctx, budget)
        return out if isinstance(out, Selection) else Selection(indices=np.asarray(out))

    return wrapped


def _checked_score(
    name: str, fn: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    def score(probs: np.ndarray) -> np.ndarray:
        u = np.asarray(fn(probs), dtype=np.float64)
        n = probs.shape[-2]
        if u.shape != (n,):
            raise StrategyError(f"score {name!r} returned shape {u.shape}, not ({n},)")
        if not np.all(np.isfinite(u)):
            raise StrategyError(f"score {name!r} returned NaN or inf")
        return u

    return score


def select_checked(strategy: Strategy, ctx: SelectionContext, budget: int) -> Selection:
    """``strategy.select`` with its answer checked: ``budget`` distinct integer positions in
    the pool. Anything else (or an exception) is a :class:`StrategyError` naming the strategy."""
    n = ctx.probs.shape[0]
    try:
        sel = strategy.select(ctx, budget)
    except Exception as exc:
        what = str(exc) if isinstance(exc, StrategyError) else f"raised {type(exc).__name__}: {exc}"
        raise StrategyError(f"strategy {strategy.name!r} {what}") from exc
    idx = np.asarray(sel.indices)
    why = ""
    if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
        why = f"an array of dtype {idx.dtype} and shape {idx.shape}, not integer positions"
    elif idx.size != budget:
        why = f"{idx.size} indices, not budget={budget}"
    elif idx.min() < 0 or idx.max() >= n:
        why = f"indices outside the pool's positions 0..{n - 1}"
    elif np.unique(idx).size != idx.size:
        why = f"{idx.size - np.unique(idx).size} duplicate indices"
    if why:
        raise StrategyError(f"strategy {strategy.name!r} returned {why}")
    sel.indices = idx.astype(np.int64)
    return sel


PLUGIN_GROUP = "cbal.strategies"
plugin_errors: list[str] = []  # entry points that failed to load, each with its error


def load_plugins() -> list[str]:
    """Import every installed plug-in of the ``cbal.strategies`` entry-point group (a module
    that registers on import, or a callable called once); the names of those loaded. One that
    fails is kept out and noted in :data:`plugin_errors`: cbal itself still works."""
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name in _loaded_plugins:
            continue
        _loaded_plugins.add(ep.name)
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as exc:  # a broken plug-in must not break cbal
            plugin_errors.append(f"plug-in {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}")
            warnings.warn(f"cbal: {plugin_errors[-1]} (left out)", stacklevel=2)
            continue
        loaded.append(ep.name)
    return loaded


_loaded_plugins: set[str] = set()
load_plugins()
