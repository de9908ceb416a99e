"""Wall time of a digits comparison (preset sizes) and its split by phase, against the digits
preset's previous settings (and optionally a candidate), all timed in the same run.

    python bench/bench_loop.py [--strategies random,entropy,entropy-cb,kcenter-cb] [--seeds 0]
    python bench/bench_loop.py --seeds 0,1,2,3,4 --candidate '{"epochs": 15, "lr_milestones": [10]}'

Runs each strategy and seed in this process on a throw-away store and prints, per setting and
strategy, the wall time, the seconds spent in train / eval / infer / select (from the cycle
records), the slowest selection of a cycle, how many of the optimization selections (CB solves,
CoreSet's MIP) were proved optimal, and the final accuracy and labeled-set L1 (means over the
seeds). The settings run interleaved, after one untimed warm-up run, so that all see the same
machine load. Then, per setting against the preset, the change in final accuracy and L1, and the
speed-up, the line ``speedup vs previous preset: N.N×`` for the preset's total wall time against
its previous settings' (``PREVIOUS``: the small CNN at batch 32 and lr 0.05).
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
    """One run to the end: its wall time, phase split, slowest selection, proofs of optimality
    (of the selections that solve an optimization problem), final accuracy and labeled-set L1."""
    run_id = store.create_run(preset(**cfg_args))
    t = time.perf_counter()
    records = execute(store, run_id)
    wall = time.perf_counter() - t
    split = {p: sum(r["timings"].get(p, 0.0) for r in records) for p in PHASES}
    solved = [r["selection"]["optimal"] for r in records if "optimal" in (r["selection"] or {})]
    return dict(
        wall=wall,
        **split,
        slowest=max(r["timings"].get("select", 0.0) for r in records),
        proved=sum(solved),
        solved=len(solved),
        acc=records[-1]["accuracy"],
        l1=records[-1]["labeled_l1"],
    )


def table(title: str, rows: dict[str, list[dict[str, Any]]]) -> float:
    """Per strategy: the total wall and phase seconds over its seeds, and the mean final
    accuracy and L1; returns the total wall time."""
    print(f"\n{title}")
    print(
        f"{'strategy':<12} {'wall s':>7} "
        + " ".join(f"{p + ' s':>8}" for p in PHASES)
        + f" {'max sel s':>9} {'proved':>7} {'final acc':>9} {'final L1':>8}"
    )
    for name, runs in rows.items():
        total = {k: sum(r[k] for r in runs) for k in ("wall", *PHASES, "proved", "solved")}
        proved = f"{total['proved']}/{total['solved']}" if total["solved"] else "—"
        print(
            f"{name:<12} {total['wall']:7.2f} "
            + " ".join(f"{total[p]:8.2f}" for p in PHASES)
            + f" {max(r['slowest'] for r in runs):9.2f} {proved:>7}"
            + f" {np.mean([r['acc'] for r in runs]):9.4f} {np.mean([r['l1'] for r in runs]):8.3f}"
        )
    every = [r for runs in rows.values() for r in runs]
    wall = sum(r["wall"] for r in every)
    shares = {p: sum(r[p] for r in every) for p in PHASES}
    print(f"{'total':<12} {wall:7.2f} " + " ".join(f"{shares[p]:8.2f}" for p in PHASES))
    print("share of wall: " + ", ".join(f"{p} {shares[p] / wall:.0%}" for p in PHASES))
    return wall


PREVIOUS = {"digits": dict(model="smallcnn", batch_size=32, lr=0.05)}


def mean_of(rows: dict[str, list[dict[str, Any]]], key: str) -> dict[str, float]:
    return {name: float(np.mean([r[key] for r in runs])) for name, runs in rows.items()}


def compare(label: str, rows: dict[str, dict[str, list[dict[str, Any]]]], ref: str) -> None:
    """``label``'s change in final accuracy (points) and L1 against ``ref``, per strategy."""
    for key, unit, scale in (("acc", "points", 100.0), ("l1", "L1", 1.0)):
        before, after = mean_of(rows[ref], key), mean_of(rows[label], key)
        change = ", ".join(
            f"{s} {scale * (after[s] - before[s]):+.{1 if scale > 1 else 3}f}" for s in before
        )
        print(f"{label} vs {ref}, final {key} change ({unit}, mean over seeds): {change}")


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
    settings: dict[str, dict[str, Any]] = {"preset": {}}
    if args.preset in PREVIOUS:
        settings["previous preset"] = PREVIOUS[args.preset]
    if args.candidate:
        settings["candidate"] = args.candidate
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {k: {} for k in settings}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        # imports, data and kernels warm up here, not in the first timed setting
        one_run(store, dict(name=args.preset, epochs=1, lr_milestones=(), cycles=1))
        for name in args.strategies.split(","):
            for seed in seeds:
                for label, over in settings.items():  # interleaved: the same load for all
                    cfg_args = dict(name=args.preset, strategy=name, seed=seed, **over)
                    rows[label].setdefault(name, []).append(one_run(store, cfg_args))
    walls = {label: table(f"{label}: seeds {args.seeds}", rows[label]) for label in rows}
    print()
    if "previous preset" in walls:
        compare("preset", rows, "previous preset")
        print(f"speedup vs previous preset: {walls['previous preset'] / walls['preset']:.1f}×")
    if "candidate" in walls:
        compare("candidate", rows, "preset")
        print(f"candidate speedup vs preset: {walls['preset'] / walls['candidate']:.1f}×")


if __name__ == "__main__":
    main()
