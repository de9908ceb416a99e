"""Wall time of a digits comparison (preset sizes) and its split by phase; with ``--candidate``,
the same comparison under other settings, timed against the preset in the same run.

    python bench/bench_loop.py [--strategies random,entropy,entropy-cb,kcenter-cb] [--seeds 0]
    python bench/bench_loop.py --seeds 0,1,2,3,4 --candidate '{"epochs": 15, "lr_milestones": [10]}'

Runs each strategy and seed in this process on a throw-away store and prints, per strategy, the
wall time, the seconds spent in train / eval / infer / select (from the cycle records), and the
final accuracy and labeled-set L1 (means over the seeds). A candidate (JSON of configuration
fields over the preset) runs interleaved with the preset, so that both see the same machine
load; the last line is ``speedup vs previous preset: N.N×``, the preset's total wall time over
the candidate's, with the accuracy change beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np

from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store

PHASES = ("train", "eval", "infer", "select")


def one_run(store: Store, cfg_args: dict[str, Any]) -> dict[str, Any]:
    """One run to the end: its wall time, phase split, final accuracy and labeled-set L1."""
    run_id = store.create_run(preset(**cfg_args))
    t = time.perf_counter()
    records = execute(store, run_id)
    wall = time.perf_counter() - t
    split = {p: sum(r["timings"].get(p, 0.0) for r in records) for p in PHASES}
    return dict(wall=wall, **split, acc=records[-1]["accuracy"], l1=records[-1]["labeled_l1"])


def table(title: str, rows: dict[str, list[dict[str, Any]]]) -> float:
    """Per strategy: the total wall and phase seconds over its seeds, and the mean final
    accuracy and L1; returns the total wall time."""
    print(f"\n{title}")
    print(
        f"{'strategy':<12} {'wall s':>7} "
        + " ".join(f"{p + ' s':>8}" for p in PHASES)
        + f" {'final acc':>9} {'final L1':>8}"
    )
    for name, runs in rows.items():
        total = {k: sum(r[k] for r in runs) for k in ("wall", *PHASES)}
        print(
            f"{name:<12} {total['wall']:7.2f} "
            + " ".join(f"{total[p]:8.2f}" for p in PHASES)
            + f" {np.mean([r['acc'] for r in runs]):9.4f} {np.mean([r['l1'] for r in runs]):8.3f}"
        )
    every = [r for runs in rows.values() for r in runs]
    wall = sum(r["wall"] for r in every)
    shares = {p: sum(r[p] for r in every) for p in PHASES}
    print(f"{'total':<12} {wall:7.2f} " + " ".join(f"{shares[p]:8.2f}" for p in PHASES))
    print("share of wall: " + ", ".join(f"{p} {shares[p] / wall:.0%}" for p in PHASES))
    return wall


def mean_acc(rows: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    return {name: float(np.mean([r["acc"] for r in runs])) for name, runs in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="random,entropy,entropy-cb,kcenter-cb")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--preset", default="digits")
    parser.add_argument(
        "--candidate", type=json.loads, help="JSON object of configuration fields over the preset"
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {"preset": {}, "candidate": args.candidate} if args.candidate else {"preset": {}}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {k: {} for k in settings}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        for name in args.strategies.split(","):
            for seed in seeds:
                for label, over in settings.items():  # interleaved: the same load for both
                    cfg_args = dict(name=args.preset, strategy=name, seed=seed, **over)
                    rows[label].setdefault(name, []).append(one_run(store, cfg_args))
    walls = {label: table(f"{label}: seeds {args.seeds}", rows[label]) for label in rows}
    if args.candidate:
        before, after = mean_acc(rows["preset"]), mean_acc(rows["candidate"])
        change = ", ".join(f"{s} {100 * (after[s] - before[s]):+.1f}" for s in before)
        print(f"\nfinal accuracy change, points (mean over seeds): {change}")
        print(f"speedup vs previous preset: {walls['preset'] / walls['candidate']:.1f}×")


if __name__ == "__main__":
    main()
