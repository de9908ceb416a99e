"""Benchmark of the class-balanced selection problem on the inputs a trained network produces.

    python bench/bench_balance.py [--quick] [--repeats R] [--binary-limit S] [--milp-limit S]
                                  [--mip-gap G]

Each case is timed against the strongest plain baseline, a plain HiGHS LP of the same relaxation
(scipy ``linprog``, standard form, all N columns), in the same process, interleaved, median of
``--repeats``. Per case it prints the time of cbal's ``lp-round`` (exact LP + rounding) and the
ratio to plain HiGHS, then the ``binary`` method under ``--binary-limit`` seconds, proving to the
relative gap ``--mip-gap`` (proof status, its objective against the LP bound, its certified
relative gap, picks changed from the LP rounding) and, for pools up to 5,000 items, plain HiGHS
MILP on the binary problem under ``--milp-limit`` seconds. The suite's median and worst ratio
close the table, then binary's proofs and seconds over the suite and over the paper's sizes;
then a 30-point λ path, and warm starts against cold ones along it.

Inputs (b = 2,500 above N = 20,000, else N/20; Ω from a labeled set of 5,000 unless said):
peaked softmax (logits = k·onehot + N(0, 1), k ∈ {2, 5, 10, 15}), float32 P, duplicated rows
and a collapsed model (≤ 50 distinct rows), one-hot P with constant u, Ω from a near-balanced
labeled set and from a long tail (ΣΩ > b), the paper's sizes (CIFAR-10 45k × 10 at λ 0.6,
CIFAR-100 45k/40k/35k × 100 at λ 2, Tiny ImageNet 95k × 200 at λ 2), λ ∈ {0, 0.6, 2, 10, 100,
1e4}, and the old easy instance (Dirichlet P, labeled counts uniform in 0..100).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbal.strategies.balance import (  # noqa: E402
    MIP_GAP,
    path_threads,
    relative_gap,
    solve_balanced,
    solve_path,
    target_counts,
)

SEED = 0


@dataclass
class Case:
    name: str
    u: np.ndarray
    probs: np.ndarray
    omega: np.ndarray
    budget: int
    lam: float


def _budget(n: int) -> int:
    return 2500 if n >= 20000 else n // 20


def _entropy(p: np.ndarray) -> np.ndarray:
    p64 = np.asarray(p, dtype=np.float64)
    return -(p64 * np.log(np.clip(p64, 1e-12, None))).sum(axis=1)


def _labels(rng: np.random.Generator, n: int, c: int, tail: bool) -> np.ndarray:
    w = 0.1 ** (np.arange(c) / max(c - 1, 1)) if tail else np.ones(c)
    return rng.choice(c, size=n, p=w / w.sum())


def peaked(n: int, c: int, k: float, rng: np.random.Generator, tail: bool = False) -> np.ndarray:
    """Softmax of k·onehot(label) + N(0, 1) noise: a trained network's confident outputs."""
    logits = k * np.eye(c)[_labels(rng, n, c, tail)] + rng.normal(size=(n, c))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def omega_for(c: int, b: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Ω from a labeled set of 5,000: near-balanced (the state after a CB cycle), a long tail
    (ΣΩ > b), or the old easy draw (counts uniform in 0..2·5000/C)."""
    if kind == "balanced":
        counts = 5000 // c + rng.integers(-2, 3, size=c)
    elif kind == "tail":
        w = 0.05 ** (np.arange(c) / max(c - 1, 1))
        counts = np.floor(5000 * w / w.sum())
    else:
        counts = rng.integers(0, 2 * 5000 // c + 1, size=c)
    return target_counts(counts, b)


def make(
    name: str,
    n: int,
    c: int,
    lam: float,
    k: float = 5.0,
    dtype: Any = np.float64,
    omega: str = "balanced",
    tail: bool = False,
) -> Case:
    rng = np.random.default_rng(SEED)
    p = peaked(n, c, k, rng, tail).astype(dtype)
    b = _budget(n)
    return Case(name, _entropy(p), p, omega_for(c, b, rng, omega), b, lam)


def special_cases(n: int) -> list[Case]:
    """Ties, duplicates, a collapsed model, one-hot P and the old easy instance."""
    rng = np.random.default_rng(SEED)
    b, c = _budget(n), 10
    base = peaked(n // 3, c, 5.0, rng)
    dup = np.concatenate([base, base, base])[:n]
    collapsed = peaked(50, c, 5.0, rng)[rng.integers(0, 50, size=n)]
    onehot = np.eye(c)[_labels(rng, n, c, True)]
    easy = rng.dirichlet(np.full(100, 0.3), size=n)
    om10 = omega_for(c, b, rng, "balanced")
    om_easy = omega_for(100, b, rng, "easy")
    return [
        Case("duplicated rows ×3", _entropy(dup), dup, om10, b, 0.6),
        Case("collapsed model (50 rows)", _entropy(collapsed), collapsed, om10, b, 0.6),
        Case("one-hot P, constant u", np.full(n, 0.5), onehot, om10, b, 0.6),
        Case("old easy (Dirichlet, C=100)", _entropy(easy), easy, om_easy, b, 2.0),
    ]


def suite(quick: bool) -> list[Case]:
    n = 45000
    cases = [make(f"peaked k={k:g}, C=10", n, 10, 0.6, k=k) for k in (2, 5, 10, 15)]
    cases += [
        make("float32 P, C=100", n, 100, 2.0, dtype=np.float32),
        make("Ω long tail (ΣΩ > b), C=10", n, 10, 0.6, omega="tail", tail=True),
        make("CIFAR-10 45k×10 λ=0.6", n, 10, 0.6),
        make("CIFAR-100 45k×100 λ=2", n, 100, 2.0),
    ]
    cases += special_cases(n)
    cases += [make(f"λ={lam:g}, C=10", n, 10, lam) for lam in (0.0, 2.0, 10.0, 100.0, 1e4)]
    cases += [make("small 3k×10 λ=100 (MILP ref)", 3000, 10, 100.0)]
    if not quick:
        cases += [make(f"CIFAR-100 {m // 1000}k×100 λ=2", m, 100, 2.0) for m in (40000, 35000)]
        cases += [make("Tiny ImageNet 95k×200 λ=2", 95000, 200, 2.0)]
    return cases


def plain_highs_lp(case: Case) -> float:
    """The relaxation as one standard-form LP over all N columns, straight to HiGHS."""
    p = np.asarray(case.probs, dtype=np.float64)
    n, c = p.shape
    eye = sp.identity(c, format="csr")
    a_eq = sp.vstack(
        [
            sp.hstack([sp.csr_matrix(p.T), eye, -eye]),
            sp.hstack([sp.csr_matrix(np.ones((1, n))), sp.csr_matrix((1, 2 * c))]),
        ],
        format="csr",
    )
    cost = np.concatenate([-case.u, np.full(2 * c, case.lam)])
    bounds = [(0.0, 1.0)] * n + [(0.0, None)] * (2 * c)
    res = linprog(cost, A_eq=a_eq, b_eq=np.append(case.omega, case.budget), bounds=bounds)
    if res.status != 0:
        raise RuntimeError(f"plain HiGHS LP: {res.message}")
    return float(res.fun)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_case(
    case: Case, repeats: int, binary_limit: float, milp_limit: float, mip_gap: float
) -> dict[str, Any]:
    args = (case.u, case.probs, case.omega, case.budget, case.lam)
    ours: list[float] = []
    plain: list[float] = []
    lp_value = res = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(repeats):  # interleaved, so that load changes hit both alike
            t, res = timed(lambda: solve_balanced(*args, method="lp-round"))
            ours.append(t)
            t, lp_value = timed(lambda: plain_highs_lp(case))
            plain.append(t)
        t_bin, bi = timed(
            lambda: solve_balanced(*args, method="binary", time_limit=binary_limit, mip_gap=mip_gap)
        )
        mi = None
        if case.u.shape[0] <= 5000:
            mi = solve_balanced(*args, method="milp", time_limit=milp_limit, mip_gap=mip_gap)
    assert res is not None and lp_value is not None
    return {
        "lp": statistics.median(ours),
        "plain": statistics.median(plain),
        "lp_rel_err": abs(res.lp_objective - lp_value) / max(1.0, abs(lp_value)),
        "lp_round": res.objective,
        "lp_bound": res.bound,
        "binary_s": t_bin,
        "binary": bi,
        "milp": mi,
        "warnings": len(caught),
    }


def binary_summary(rows: list[tuple[str, float, bool]], mip_gap: float) -> str:
    """Proofs and seconds of ``binary``: over the suite and over the paper's pool sizes."""

    def line(label: str, sel: list[tuple[str, float, bool]]) -> str:
        times = [t for _, t, _ in sel]
        proved = sum(ok for _, _, ok in sel)
        return (
            f"{label}: proved {proved} of {len(sel)}, seconds median "
            f"{statistics.median(times):.2f}, worst {max(times):.2f}"
        )

    paper = [row for row in rows if row[0].startswith(("CIFAR", "Tiny"))]
    return (
        f"binary to a relative gap of {mip_gap:g}, {line('all cases', rows)}; "
        f"{line('paper sizes at the paper λ', paper)}"
    )


def path_timing(case: Case) -> str:
    """30 λ through solve_path (validation shared, the λ solved in threads) against 30
    separate calls, and each later call warm-started from the previous λ's dual against the
    same call cold."""
    lams = np.logspace(-2, 2, 30)
    args = (case.u, case.probs, case.omega, case.budget)
    t_path, path = timed(lambda: solve_path(*args, lams, method="lp-round"))
    cold = [timed(lambda: solve_balanced(*args, float(lam)))[0] for lam in lams]  # noqa: B023
    warm = 0.0
    for prev, lam in zip(path, lams[1:], strict=False):
        ws = prev.dual * (lam / prev.lam)
        warm += timed(lambda: solve_balanced(*args, float(lam), warm_start=ws))[0]  # noqa: B023
    return (
        f"λ path, 30 points np.logspace(-2, 2, 30), {case.name}: solve_path {t_path:.2f} s "
        f"on {path_threads(len(lams))} thread(s), 30 separate calls {sum(cold):.2f} s; the 29 "
        f"later points warm-started {warm:.2f} s against cold {sum(cold[1:]):.2f} s "
        f"(warm/cold {warm / sum(cold[1:]):.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="leave out the 35k/40k and 95k cases")
    ap.add_argument("--repeats", type=int, default=3, help="timings per method, median (3)")
    ap.add_argument("--binary-limit", type=float, default=2.0, help="binary search seconds (2)")
    ap.add_argument("--milp-limit", type=float, default=60.0, help="MILP reference seconds (60)")
    ap.add_argument(
        "--mip-gap", type=float, default=MIP_GAP, help=f"relative gap of a proof ({MIP_GAP:g})"
    )
    args = ap.parse_args(argv)
    print(f"cbal CB benchmark; {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    header = (
        f"{'case':<30} {'N':>6} {'C':>4} {'λ':>6} | {'lp-round':>8} {'HiGHS LP':>8} "
        f"{'ratio':>6} | {'binary':>6} {'status':>10} {'obj − LP bound':>14} {'rel. gap':>9} "
        f"{'vs lp-round':>11} {'moved':>5} | {'MILP ref':>16}"
    )
    print(header)
    print("-" * len(header))
    ratios: list[float] = []
    binary: list[tuple[str, float, bool]] = []
    for case in suite(args.quick):
        r = run_case(case, args.repeats, args.binary_limit, args.milp_limit, args.mip_gap)
        ratio = r["plain"] / r["lp"]
        ratios.append(ratio)
        bi, mi = r["binary"], r["milp"]
        milp = "—" if mi is None else f"{mi.status[:10]} {mi.objective - bi.objective:+.2g}"
        n, c = case.probs.shape
        print(
            f"{case.name:<30} {n:>6} {c:>4} {case.lam:>6g} | {r['lp']:8.3f} {r['plain']:8.3f} "
            f"{ratio:6.1f} | {r['binary_s']:6.2f} {bi.status[:10]:>10} "
            f"{bi.objective - bi.info.get('lp_bound', bi.bound):14.4g} "
            f"{relative_gap(bi.objective, bi.bound, case.u, case.lam):9.1e} "
            f"{bi.objective - r['lp_round']:+11.4g} {bi.info.get('picks_changed', 0):>5} | "
            f"{milp:>16}",
            flush=True,
        )
        binary.append((case.name, r["binary_s"], bi.optimal))
        if r["lp_rel_err"] > 1e-7:
            print(f"  note: lp-round's LP value differs from plain HiGHS by {r['lp_rel_err']:.1e}")
    print("-" * len(header))
    med, worst, best = statistics.median(ratios), min(ratios), max(ratios)
    print(
        f"lp-round vs plain HiGHS LP over {len(ratios)} cases: median {med:.1f}×, "
        f"worst {worst:.1f}×, best {best:.1f}×"
    )
    print(binary_summary(binary, args.mip_gap))
    print(path_timing(make("CIFAR-100 float32 45k×100", 45000, 100, 2.0, dtype=np.float32)))
    print(f"load average at end: {os.getloadavg()}")
    print(
        "columns: lp-round / HiGHS LP = seconds (median), ratio = HiGHS LP / lp-round; binary = "
        "seconds of the binary method, its status, its objective minus the LP bound (0 = the "
        "LP bound reached), its certified relative gap (objective − bound) / max(|objective|, "
        "max|u|, λ), minus the LP rounding's objective (negative = better) and the picks "
        "it moved; MILP ref = plain HiGHS MILP's status and its objective minus binary's "
        "(positive = binary better), pools ≤ 5,000 only"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
