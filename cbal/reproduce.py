"""Reproduce the paper's comparison grid as a sweep and check its claims on cbal's numbers.

The grid is the paper's: Random, Entropy, Entropy-CB, BALD, BALD-CB, KCenterGreedy,
KCenterGreedy-CB, CoreSet and Entropy L1 Pseudo Label, at IF ∈ {1, 0.3, 0.1}, over ≥ 3 seeds.
:func:`check_claims` states for each claim whether cbal's runs agree, with the numbers behind the
verdict, and :func:`write_report` writes them beside an accuracy table (and the paper figure set).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbal.store import RunInfo, accuracy_text, atomic_write_bytes
from cbal.sweep import SweepSpec

GRID_STRATEGIES = (
    "random",
    "entropy",
    "entropy-cb",
    "bald",
    "bald-cb",
    "kcenter",
    "kcenter-cb",
    "coreset",
    "entropy-pl",
)
PAPER_IFS = (1.0, 0.3, 0.1)


def cb_pairs(cells: Cells) -> list[tuple[str, str]]:
    """(CB variant, its baseline) from the registry: the grid's pairs, and any other pair
    with runs here (a registered strategy's, when the grid was asked for it)."""
    from cbal.strategies import STRATEGIES

    present = set(GRID_STRATEGIES) | {k[1] for k in cells}
    return [
        (s.name, s.baseline)
        for s in STRATEGIES.values()
        if s.baseline and (s.name in present or s.baseline in present)
    ]


def reproduce_spec(
    preset: str,
    seeds: Sequence[int] = (0, 1, 2),
    ifs: Sequence[float] = PAPER_IFS,
    strategies: Sequence[str] = GRID_STRATEGIES,
    base: Mapping[str, Any] | None = None,
) -> SweepSpec:
    """The comparison grid of ``preset`` as a sweep spec (name ``reproduce-<preset>``)."""
    return SweepSpec(
        name=f"reproduce-{preset}",
        preset=preset,
        base=dict(base or {}),
        grid={"imbalance_factor": list(ifs), "strategy": list(strategies), "seed": list(seeds)},
    )


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, checked: ``verdict`` is agrees / disagrees / not enough runs."""

    claim: str
    scope: str
    verdict: str
    evidence: str


Cells = dict[tuple[float, str], list[RunInfo]]


def _cells(runs: Iterable[RunInfo]) -> Cells:
    """Finished runs by (imbalance factor, strategy)."""
    cells: Cells = defaultdict(list)
    for info in runs:
        if info.state == "done" and info.cycles:
            cells[(info.config.imbalance_factor, info.config.strategy)].append(info)
    return cells


def _curve(runs: list[RunInfo], key: str) -> np.ndarray:
    """(seeds, cycles) array of a per-cycle number; cycles without it (the last for L1s) dropped."""
    rows = [[c[key] for c in info.cycles if c.get(key) is not None] for info in runs]
    n = min(len(r) for r in rows)
    return np.array([r[:n] for r in rows], dtype=float)


def _mean_acc(runs: list[RunInfo]) -> np.ndarray:
    """Per seed: mean test accuracy over the cycles after the first selection (cycle 0 trains on
    the same initial set for every strategy, so it carries no signal)."""
    acc = _curve(runs, "accuracy")
    return acc[:, 1:].mean(axis=1) if acc.shape[1] > 1 else acc[:, 0]


def _fmt(values: np.ndarray) -> str:
    """Accuracies' mean ± sample std over seeds, in the precision of :func:`accuracy_text`."""
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{accuracy_text(float(values.mean()))} ± {spread:.2%}"


def _missing(scope: str, claim: str, *names: str) -> Claim:
    return Claim(claim, scope, "not enough runs", f"needs finished runs of {', '.join(names)}")


_L1_CLAIMS = {
    "batch_l1": "CB variants select batches with lower L1 than their baselines at every cycle",
    "labeled_l1": "CB variants keep the labeled set more balanced (lower L1) at every cycle",
}


def claim_cb_lower_l1(cells: Cells, key: str = "batch_l1") -> list[Claim]:
    """CB variants have a lower L1 (of each batch, or of the labeled set) at every cycle."""
    text = _L1_CLAIMS[key]
    what = "batch" if key == "batch_l1" else "labeled-set"
    out = []
    for cb, base in cb_pairs(cells):
        for imf in sorted({k[0] for k in cells}, reverse=True):
            scope = f"{cb} vs {base}, IF={imf:g}"
            a, b = cells.get((imf, cb)), cells.get((imf, base))
            if not a or not b:
                out.append(_missing(scope, text, cb, base))
                continue
            la, lb = _curve(a, key).mean(axis=0), _curve(b, key).mean(axis=0)
            n = min(len(la), len(lb))
            lower = int((la[:n] < lb[:n]).sum())
            out.append(
                Claim(
                    text,
                    scope,
                    "agrees" if lower == n else "disagrees",
                    f"lower in {lower}/{n} cycles; mean {what} L1 {la[:n].mean():.3f} vs "
                    f"{lb[:n].mean():.3f} (over {len(a)} and {len(b)} seeds)",
                )
            )
    return out


def _compare_accuracy(
    cells: Cells, imf: float, better: str, worse: str, text: str, strict: bool
) -> Claim:
    scope = f"{better} vs {worse}, IF={imf:g}"
    a, b = cells.get((imf, better)), cells.get((imf, worse))
    if not a or not b:
        return _missing(scope, text, better, worse)
    ma, mb = _mean_acc(a), _mean_acc(b)
    holds = ma.mean() > mb.mean() if strict else ma.mean() >= mb.mean()
    return Claim(
        text,
        scope,
        "agrees" if holds else "disagrees",
        f"mean accuracy over cycles 1..end: {better} {_fmt(ma)}, {worse} {_fmt(mb)} "
        f"(mean ± std over {len(a)} and {len(b)} seeds)",
    )


def check_claims(runs: Iterable[RunInfo]) -> list[Claim]:
    """Every claim of the paper this grid can check, on the finished runs given."""
    cells = _cells(runs)
    claims = claim_cb_lower_l1(cells, "batch_l1") + claim_cb_lower_l1(cells, "labeled_l1")
    claims.append(
        _compare_accuracy(
            cells, 0.1, "entropy-cb", "entropy", "Entropy-CB ≥ Entropy in accuracy at IF=0.1", False
        )
    )
    for imf in (0.3, 0.1):
        claims.append(
            _compare_accuracy(
                cells,
                imf,
                "kcenter-cb",
                "coreset",
                "CoreSet falls behind KCenterGreedy-CB on imbalanced pools",
                True,
            )
        )
    return claims


def accuracy_table(runs: Iterable[RunInfo]) -> list[dict[str, Any]]:
    """One row per (IF, strategy): final and mean accuracy and final labeled-set L1 over seeds."""
    rows = []
    for (imf, strategy), cell in sorted(_cells(runs).items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        final = _curve(cell, "accuracy")[:, -1]
        l1 = np.array([info.cycles[-1]["labeled_l1"] for info in cell])
        rows.append(
            {
                "imbalance_factor": imf,
                "strategy": strategy,
                "seeds": len(cell),
                "final_accuracy": _fmt(final),
                "mean_accuracy": _fmt(_mean_acc(cell)),
                "final_labeled_l1": f"{l1.mean():.3f}",
                "labels": cell[0].cycles[-1]["labeled"],
            }
        )
    return rows


def _markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no finished runs)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(
    runs: Sequence[RunInfo], out: Path, title: str, figures: Sequence[Path] = ()
) -> Path:
    """Write ``report.md`` (claims and accuracy table) and ``claims.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    claims = check_claims(runs)
    table = accuracy_table(runs)
    agree = sum(c.verdict == "agrees" for c in claims)
    text = (
        f"# {title}\n\n"
        f"{len(runs)} runs; {agree} of {len(claims)} checks agree with the paper.\n\n"
        "## The paper's claims\n\n"
        + _markdown([asdict(c) for c in claims])
        + "\n## Accuracy and balance (mean ± std over seeds)\n\n"
        + _markdown(table)
    )
    if figures:
        text += "\n## Figures\n\n" + "".join(f"- [{p.name}]({p.name})\n" for p in figures)
    path = out / "report.md"
    atomic_write_bytes(path, text.encode())
    atomic_write_bytes(
        out / "claims.json",
        json.dumps({"claims": [asdict(c) for c in claims], "table": table}, indent=2).encode(),
    )
    return path
