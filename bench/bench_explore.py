"""Benchmark of the λ explorer: one re-selection and a 30-point λ path on saved cycle arrays.

    python bench/bench_explore.py [--quick] [--repeats R]

Synthetic saved arrays per size, as a run with ``save_pool_arrays`` leaves them: float32
Dirichlet(0.3) probabilities, u = their entropy (float64 ``scores``), labeled counts of a random
labeled set of ~5,000, Ω from them, the budget of the paper (2,500) or N/20 for small pools,
strategy entropy-cb at the paper's λ (0.6 for C = 10, 2 for C = 100). Sizes: N ∈ {1,447 (the
digits train set), 45,000 (the paper's pool)} × C ∈ {10, 100}, all in this one process.

- ``reselect``: wall time of :func:`cbal.explore.reselect` at the run's λ, cold (first call) and
  the median of ``--repeats`` further calls (validation, float64 copy of P, solve, summary);
- ``path``: wall time of :func:`cbal.explore.lambda_path` over the default 30-point grid
  (0 and logspace(-2, 3, 29)), every λ cold, in threads (one per core).

Both solve with ``lp-round``: a run's default, ``binary``, adds its search after the same LP
(``bench/bench_balance.py`` times it), bounded in the explorer by ``EXPLORE_TIME_LIMIT`` per λ.

Targets: one re-selection < 0.5 s and a 30-point path < 10 s at 45,000 × 100.
The 1-minute load average is printed because a busy machine changes the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbal import explore  # noqa: E402
from cbal.strategies.balance import target_counts  # noqa: E402

SIZES = [(1447, 10), (1447, 100), (45_000, 10), (45_000, 100)]
QUICK_SIZES = [(1447, 10), (1447, 100), (10_000, 100)]
TARGET_RESELECT = 0.5
TARGET_PATH = 10.0


METHOD = "lp-round"


def budget_for(n: int) -> int:
    """The paper's 2,500 per cycle; N/20 for pools too small for that."""
    return 2500 if n >= 20000 else n // 20


def make_cycle(n: int, c: int, seed: int = 0) -> explore.CycleArrays:
    """Saved arrays of one entropy-cb cycle, as cbal.loop writes them."""
    rng = np.random.default_rng([seed, n, c])
    probs = rng.dirichlet(np.full(c, 0.3), size=n).astype(np.float32)
    u = -(probs.astype(np.float64) * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    budget = budget_for(n)
    labeled = rng.integers(0, 2 * 5000 // c + 1, size=c).astype(np.int64)
    lam = 0.6 if c <= 10 else 2.0
    return explore.CycleArrays(
        strategy="entropy-cb",
        lam=lam,
        selected_pos=rng.choice(n, size=budget, replace=False).astype(np.int64),
        probs=probs,
        omega=target_counts(labeled, budget),
        labeled_counts=labeled,
        pool_labels=probs.argmax(axis=1).astype(np.int64),
        pool_indices=np.arange(n, dtype=np.int64),
        scores=u,
    )


def bench_one(n: int, c: int, repeats: int) -> dict[str, float | int | str]:
    ca = make_cycle(n, c)
    t = time.perf_counter()
    first = explore.reselect(ca, method=METHOD)
    cold = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        explore.reselect(ca, method=METHOD)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    path = explore.lambda_path(ca, method=METHOD)
    path_time = time.perf_counter() - t
    solves = [p.solve_time for p in path.points]
    return {
        "N": n,
        "C": c,
        "b": ca.budget,
        "reselect_cold": cold,
        "reselect": statistics.median(times) if times else cold,
        "optimal": "yes" if first.optimal else "NO",
        "path": path_time,
        "path_max": max(solves),
        "path_opt": f"{sum(bool(p.optimal) for p in path.points)}/{len(path.points)}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    ap.add_argument("--repeats", type=int, default=3, help="warm re-selections to take a median")
    args = ap.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    print(f"load average at start: {os.getloadavg()}  (cpus: {os.cpu_count()})")
    header = (
        f"{'N':>7} {'C':>4} {'b':>5} | {'reselect cold':>13} {'reselect med':>12} {'opt':>4} | "
        f"{'λ path (30)':>11} {'max/λ':>7} {'optimal':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for n, c in sizes:
        r = bench_one(n, c, args.repeats)
        rows.append(r)
        print(
            f"{r['N']:>7,} {r['C']:>4} {r['b']:>5} | {r['reselect_cold']:>12.3f}s "
            f"{r['reselect']:>11.3f}s {r['optimal']:>4} | {r['path']:>10.2f}s "
            f"{r['path_max']:>6.3f}s {r['path_opt']:>7}",
            flush=True,
        )
    print(f"load average at end: {os.getloadavg()}")
    big = [r for r in rows if r["N"] == 45_000 and r["C"] == 100]
    if big:
        r = big[0]
        ok1 = float(r["reselect_cold"]) < TARGET_RESELECT
        ok2 = float(r["path"]) < TARGET_PATH
        print(
            f"targets at 45,000 × 100: reselect {float(r['reselect_cold']):.3f} s "
            f"(< {TARGET_RESELECT} s: {'met' if ok1 else 'MISSED'}), λ path "
            f"{float(r['path']):.2f} s (< {TARGET_PATH} s: {'met' if ok2 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
