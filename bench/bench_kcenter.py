"""Benchmark KCenterGreedy, KCenterGreedy-CB and the CoreSet MIP at the paper's pool size.

    python bench/bench_kcenter.py            # N = 45,000, d = 512, b = 2,500, L = 5,000
    python bench/bench_kcenter.py --quick    # N = 10,000, d = 128, b = 500, L = 1,000

Random Gaussian float32 embeddings, Dirichlet(1) probabilities, Omega for a balanced labeled
set (``Omega_c = max(0, (L + b) / C - L / C)``), the paper's lambda (5 for C = 10, 50 for
C = 100). Each configuration runs in a fresh process, so ``ru_maxrss`` growth is its own: one
timed run (no tracing), then one run under ``tracemalloc`` for the traced peak. The CB / plain
time ratio compares runs of this invocation, on the same data and machine. The 1-minute load
average is printed because a busy machine changes the numbers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbal.strategies.kcenter import coreset_mip, kcenter_greedy  # noqa: E402

PAPER_LAM = {10: 5.0, 100: 50.0}


def _features(n: int, d: int, n_lab: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, d), dtype=np.float32),
        rng.standard_normal((n_lab, d), dtype=np.float32),
    )


def _balance(n: int, n_lab: int, n_classes: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet(1) probs (own seed per C) and Omega for a balanced labeled set."""
    rng = np.random.default_rng([1, n_classes])
    probs = rng.dirichlet(np.ones(n_classes), size=n).astype(np.float32)
    omega = np.full(n_classes, max(0.0, (n_lab + budget) / n_classes - n_lab / n_classes))
    return probs, omega


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _greedy_job(cfg: dict, out: Any) -> None:
    x, lab = _features(cfg["n"], cfg["d"], cfg["n_lab"])
    lam, n_classes = cfg["lam"], cfg["n_classes"]
    kwargs: dict[str, Any] = {}
    if lam > 0:
        probs, omega = _balance(cfg["n"], cfg["n_lab"], n_classes, cfg["budget"])
        kwargs = {"probs": probs, "omega": omega, "lam": lam}
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    picks = kcenter_greedy(x, lab, cfg["budget"], **kwargs)
    seconds = time.perf_counter() - t0
    rss_growth = _rss_mb() - rss0
    tracemalloc.start()
    kcenter_greedy(x, lab, cfg["budget"], **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # ||Omega - P^T z||_1 of the picks, for each C (plain greedy ignores P: the baseline)
    balance_l1 = {}
    for c in (10, 100):
        probs, omega = _balance(cfg["n"], cfg["n_lab"], c, cfg["budget"])
        balance_l1[c] = float(np.abs(omega - probs[picks].sum(axis=0)).sum())
    out.put(
        {
            "seconds": seconds,
            "traced_peak_mb": peak / 1e6,
            "rss_growth_mb": rss_growth,
            "balance_l1": balance_l1,
        }
    )


def _coreset_job(cfg: dict, out: Any) -> None:
    rng = np.random.default_rng(1)
    n, d = cfg["n"], cfg["d"]
    # clustered features (like real embeddings), so the MIP has structure to exploit
    means = rng.normal(scale=4.0, size=(20, d))
    x = (means[rng.integers(0, 20, n)] + rng.standard_normal((n, d))).astype(np.float32)
    lab = means[rng.integers(0, 20, cfg["n_lab"])] + rng.standard_normal((cfg["n_lab"], d))
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = coreset_mip(
            x,
            lab.astype(np.float32),
            cfg["budget"],
            time_limit=cfg["time_limit"],
            max_points=cfg["max_points"],
        )
    seconds = time.perf_counter() - t0
    rec = res.to_record()
    rec.update(
        seconds=seconds,
        rss_growth_mb=_rss_mb() - rss0,
        warnings=[str(w.message)[:160] for w in caught],
    )
    out.put(rec)


def _run(job: Any, cfg: dict) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=job, args=(cfg, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~1 minute)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    cs: dict[str, Any]
    if args.quick:
        n, d, n_lab, budget = 10_000, 128, 1_000, 500
        cs = {"n": 3_000, "d": 16, "n_lab": 200, "budget": 30, "max_points": 500}
    else:
        n, d, n_lab, budget = 45_000, 512, 5_000, 2_500
        cs = {"n": 10_000, "d": 64, "n_lab": 1_000, "budget": 200, "max_points": 2_000}
    cs["time_limit"] = 60.0

    print(f"pool N={n:,} d={d} labeled L={n_lab:,} budget b={budget:,}, float32 features")
    print(
        f"avoided: N x N float64 = {n * n * 8 / 1e9:.1f} GB, N x L float64 = "
        f"{n * n_lab * 8 / 1e9:.2f} GB (input pool itself: {n * d * 4 / 1e6:.0f} MB)"
    )
    print(f"cpus={os.cpu_count()} load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    results: dict[str, Any] = {"config": {"n": n, "d": d, "n_lab": n_lab, "budget": budget}}

    base = {"n": n, "d": d, "n_lab": n_lab, "budget": budget}
    plain = _run(_greedy_job, {**base, "n_classes": 0, "lam": 0.0})
    results["kcenter"] = plain
    print(
        f"KCenterGreedy          : {plain['seconds']:6.2f} s, traced peak "
        f"{plain['traced_peak_mb']:6.1f} MB, ru_maxrss growth {plain['rss_growth_mb']:6.1f} MB"
    )
    for n_classes in (10, 100):
        lam = PAPER_LAM[n_classes]
        cb = _run(_greedy_job, {**base, "n_classes": n_classes, "lam": lam})
        cb["ratio_to_plain"] = cb["seconds"] / plain["seconds"]
        results[f"kcenter_cb_C{n_classes}"] = cb
        print(
            f"KCenterGreedy-CB C={n_classes:<3d}: {cb['seconds']:6.2f} s, traced peak "
            f"{cb['traced_peak_mb']:6.1f} MB, ru_maxrss growth {cb['rss_growth_mb']:6.1f} MB, "
            f"CB/plain = {cb['ratio_to_plain']:.2f}, lam={lam:g}, "
            f"||Omega - P^T z||_1 = {cb['balance_l1'][n_classes]:.1f} "
            f"(plain: {plain['balance_l1'][n_classes]:.1f})"
        )
    print(f"load average (1 min) after greedy runs: {os.getloadavg()[0]:.2f}")

    core = _run(_coreset_job, cs)
    results["coreset_mip"] = {"config": cs, **core}
    print(
        f"coreset_mip N={cs['n']:,} d={cs['d']} L={cs['n_lab']:,} b={cs['budget']} "
        f"max_points={cs['max_points']:,} time_limit={cs['time_limit']:g}s: "
        f"{core['seconds']:.2f} s, status={core['status']!r}, radius {core['radius']:.4f} vs "
        f"greedy {core['greedy_radius']:.4f} on the {core['n_points']} points used "
        f"(greedy over the whole pool {core['greedy_radius_full']:.4f}), "
        f"{core['n_solves']} MIP solves, ru_maxrss growth {core['rss_growth_mb']:.0f} MB"
    )
    for w in core["warnings"]:
        print(f"  warning: {w}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
