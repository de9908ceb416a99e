"""Benchmark of the class-balanced selection LP: cbal's ``lp`` path against cvxpy.

    python bench/bench_balance.py [--quick] [--max-cvxpy-seconds S] [--cvxpy-max-size NC]

Per size (Dirichlet(0.3) probabilities, u = entropy, Ω from a random labeled set, λ = 2,
budget 2,500, or N/20 below N = 20,000) it times ``solve_balanced(method="lp")`` and the cvxpy
reference (default solver), each in a fresh child process so that the peak memory (peak RSS
above the process's level before the solve) is the solver's own, reports the ratio, the
relative difference of their LP objectives and lp's certified gap, then a warm-started re-solve
for λ = 2.5, and a 30-point λ path (np.logspace(-2, 2, 30)) at 45,000 × 100.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAM = 2.0
LAM_WARM = 2.5
SEED = 0


def budget_for(n: int) -> int:
    """The paper's 2,500 per cycle; N/20 for pools too small for that."""
    return 2500 if n >= 20000 else n // 20


def make_instance(
    n: int, c: int, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    from cbal.strategies.balance import target_counts

    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.3), size=n)
    u = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    budget = budget_for(n)
    labeled = rng.integers(0, 2 * 5000 // c + 1, size=c)  # a random labeled set of ~5,000
    return u, probs, target_counts(labeled, budget), budget


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


def _worker(kind: str, n: int, c: int, conn: Any) -> None:
    """Solve one instance in this (fresh) process and send timings and peak memory back."""
    import warnings

    from cbal.strategies.balance import solve_balanced, solve_path

    u, probs, omega, b = make_instance(n, c)
    if kind == "cvxpy":
        import cvxpy  # noqa: F401  (import time is not solve time)
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base_kb = _status_kb("VmRSS:")
        peak_ok = _reset_peak()
        t0 = time.perf_counter()
        res = solve_balanced(u, probs, omega, b, LAM, method="lp" if kind == "path" else kind)
        out["time"] = time.perf_counter() - t0
        out["peak_mb"] = (_status_kb("VmHWM:") - base_kb) / 1024 if peak_ok else float("nan")
        out.update(
            lp_objective=res.lp_objective,
            objective=res.objective,
            bound=res.bound,
            status=res.status,
            optimal=res.optimal,
            info={k: v for k, v in res.info.items() if isinstance(v, (int, float, str))},
        )
        if kind == "lp" and res.dual is not None:
            t0 = time.perf_counter()
            warm = solve_balanced(
                u, probs, omega, b, LAM_WARM, warm_start=res.dual * (LAM_WARM / LAM)
            )
            out["warm_time"] = time.perf_counter() - t0
            cold = solve_balanced(u, probs, omega, b, LAM_WARM)
            out["warm_same"] = abs(warm.lp_objective - cold.lp_objective) <= 1e-9 * max(
                1.0, abs(cold.lp_objective)
            )
            out["warm_optimal"] = warm.optimal
        if kind == "path":
            lams = np.logspace(-2, 2, 30)
            t0 = time.perf_counter()
            path = solve_path(u, probs, omega, b, lams)
            out["path_time"] = time.perf_counter() - t0
            out["path_max"] = max(r.solve_time for r in path)
            out["path_optimal"] = all(r.optimal for r in path)
            out["path_gap"] = max(
                (r.lp_objective - r.bound) / max(1.0, abs(r.lp_objective)) for r in path
            )
    out["warnings"] = [str(w.message)[:120] for w in caught]
    conn.send(out)
    conn.close()


def run_child(kind: str, n: int, c: int, timeout: float) -> dict[str, Any] | None:
    """Run _worker in a spawned process; None when it ran past ``timeout`` seconds."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(kind, n, c, child))
    proc.start()
    child.close()
    got: dict[str, Any] | None = None
    if parent.poll(timeout):
        try:
            got = parent.recv()
        except EOFError:
            got = {"error": "child died"}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if got is None and proc.exitcode not in (None, 0, -9):
        got = {"error": f"child exit code {proc.exitcode}"}
    return got


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5k×{10,100} and 45k×100 only")
    ap.add_argument(
        "--max-cvxpy-seconds", type=float, default=600.0, help="kill cvxpy after this (600)"
    )
    ap.add_argument(
        "--cvxpy-max-size",
        type=float,
        default=4.5e6,
        help="skip cvxpy when N·C exceeds this (default 4.5e6: 45k×100 is included)",
    )
    args = ap.parse_args(argv)

    if args.quick:
        sizes = [(5000, 10), (5000, 100), (45000, 100)]
    else:
        sizes = [(n, c) for n in (5000, 45000, 100000) for c in (10, 100, 200)]

    print(
        f"cbal CB-LP benchmark: λ = {LAM}, warm re-solve at λ = {LAM_WARM}; {os.cpu_count()} CPUs"
    )
    print(f"load average at start: {os.getloadavg()}")
    header = (
        f"{'N':>7} {'C':>4} {'b':>5} | {'lp s':>6} {'warm s':>6} {'rounds':>6} {'lp MB':>6} "
        f"{'gap':>8} | {'cvxpy s':>8} {'cvx MB':>7} {'ratio':>7} {'rel diff':>8}"
    )
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for n, c in sizes:
        b = budget_for(n)
        lp = run_child("lp", n, c, timeout=600)
        if lp is None or "error" in lp:
            print(f"{n:>7} {c:>4} {b:>5} | lp failed: {lp}")
            continue
        gap = (lp["lp_objective"] - lp["bound"]) / max(1.0, abs(lp["lp_objective"]))
        cv: dict[str, Any] | None = None
        cv_note = ""
        if n * c > args.cvxpy_max_size:
            cv_note = "skipped (size)"
            notes.append(f"{n}×{c}: cvxpy skipped, N·C = {n * c:.2g} > --cvxpy-max-size")
        else:
            cv = run_child("cvxpy", n, c, timeout=args.max_cvxpy_seconds)
            if cv is None:
                cv_note = f"> {args.max_cvxpy_seconds:.0f} s"
                notes.append(f"{n}×{c}: cvxpy killed after {args.max_cvxpy_seconds:.0f} s")
            elif "error" in cv:
                cv_note = cv["error"]
                cv = None
        ratio = rel = None
        if cv is not None:
            ratio = cv["time"] / lp["time"]
            rel = abs(cv["lp_objective"] - lp["lp_objective"]) / max(1.0, abs(lp["lp_objective"]))
            if not str(cv["status"]).startswith("optimal"):
                notes.append(f"{n}×{c}: cvxpy status {cv['status']}")
        if not (lp["optimal"] and lp.get("warm_optimal") and lp.get("warm_same")):
            notes.append(f"{n}×{c}: lp status {lp['status']}, warm ok {lp.get('warm_same')}")
        if lp["warnings"]:
            notes.append(f"{n}×{c}: lp warnings {lp['warnings']}")
        cv_time = _fmt(cv["time"], "8.2f") if cv is not None else f"{cv_note:>8}"
        print(
            f"{n:>7} {c:>4} {b:>5} | {lp['time']:6.3f} {_fmt(lp.get('warm_time'), '6.3f')} "
            f"{lp['info'].get('cg_rounds', 0):>6} {_fmt(lp['peak_mb'], '6.0f')} {gap:8.1e} | "
            f"{cv_time} {_fmt(cv['peak_mb'] if cv else None, '7.0f')} "
            f"{_fmt(ratio, '7.0f')} {_fmt(rel, '8.1e')}",
            flush=True,
        )

    path = run_child("path", 45000, 100, timeout=600)
    print()
    if path is None or "error" in path:
        print(f"λ path at 45000×100: failed ({path})")
    else:
        print(
            f"λ path, 30 points np.logspace(-2, 2, 30), 45000×100: {path['path_time']:.2f} s "
            f"total, slowest λ {path['path_max']:.3f} s, all optimal: {path['path_optimal']}, "
            f"max relative gap {path['path_gap']:.1e}"
        )
    print(f"load average at end: {os.getloadavg()}")
    print(
        "columns: lp s / warm s = solve_balanced(method='lp') cold at λ=2 / warm-started at "
        "λ=2.5; rounds = column-generation rounds; MB = peak RSS above the pre-solve level; "
        "gap = (LP value − certified bound)/|LP value|; ratio = cvxpy s / lp s; rel diff = "
        "|LP value cvxpy − lp| / |lp|"
    )
    for note in notes:
        print("note:", note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
