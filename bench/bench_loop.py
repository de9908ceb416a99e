"""Wall time of a digits comparison (preset sizes, one seed) and its split by phase.

    python bench/bench_loop.py [--strategies random,entropy,entropy-cb,kcenter-cb] [--seed 0]

Runs each strategy in this process on a throw-away store and prints, per strategy and in total,
the wall time and the seconds spent in train / eval / infer / select (from the cycle records).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from cbal.config import preset
from cbal.loop import execute
from cbal.store import Store

PHASES = ("train", "eval", "infer", "select")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="random,entropy,entropy-cb,kcenter-cb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="digits")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        for name in args.strategies.split(","):
            cfg = preset(args.preset, strategy=name, seed=args.seed)
            run_id = store.create_run(cfg)
            t = time.perf_counter()
            records = execute(store, run_id)
            wall = time.perf_counter() - t
            split = {p: sum(r["timings"].get(p, 0.0) for r in records) for p in PHASES}
            rows.append((name, wall, split, records[-1]["accuracy"], records[-1]["labeled_l1"]))
    print(
        f"{'strategy':<12} {'wall s':>7} "
        + " ".join(f"{p + ' s':>8}" for p in PHASES)
        + f" {'final acc':>9} {'final L1':>8}"
    )
    for name, wall, split, acc, l1 in rows:
        print(
            f"{name:<12} {wall:7.2f} "
            + " ".join(f"{split[p]:8.2f}" for p in PHASES)
            + f" {acc:9.4f} {l1:8.3f}"
        )
    total = sum(r[1] for r in rows)
    shares = {p: sum(r[2][p] for r in rows) for p in PHASES}
    print(f"{'total':<12} {total:7.2f} " + " ".join(f"{shares[p]:8.2f}" for p in PHASES))
    print("share of wall: " + ", ".join(f"{p} {shares[p] / total:.0%}" for p in PHASES))


if __name__ == "__main__":
    main()
