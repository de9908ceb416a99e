"""Benchmark of reading a cycle's arrays by key: what resume and the λ explorer read.

    python bench/bench_npz_keys.py

One ``cycle_0.npz`` as a CIFAR-100-sized run with ``save_pool_arrays`` and ``save_embeddings``
leaves it (N = 45,000 pool, C = 100, d = 512 features, L = 5,000 labeled), in a temporary
store. Best of 5 wall times of :meth:`cbal.store.Store.load_cycle_arrays` for every key (the
plain baseline: what both readers did before), the explorer's keys (no embeddings) and
``selected`` only (what resuming a run reads), printed as ratios to the baseline.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import numpy as np

from cbal.config import preset
from cbal.explore import _ARRAYS
from cbal.store import Store, atomic_save_npz


def _best(fn: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    n, c, d, n_lab, b = 45_000, 100, 512, 5_000, 2_500
    rng = np.random.default_rng(0)
    arrays = {
        "selected": np.arange(b),
        "selected_pos": np.arange(b),
        "selected_pred": np.zeros(b, np.int64),
        "pool_indices": np.arange(n),
        "pool_labels": rng.integers(0, c, n),
        "probs": rng.dirichlet(np.ones(c), n).astype(np.float32),
        "omega": np.full(c, 25.0),
        "labeled_counts": np.full(c, 50),
        "scores": rng.random(n),
        "embeddings": rng.normal(size=(n, d)).astype(np.float32),
        "labeled_embeddings": rng.normal(size=(n_lab, d)).astype(np.float32),
    }
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        run_id = store.create_run(preset("digits", strategy="entropy-cb"))
        atomic_save_npz(store.run_dir(run_id) / "cycle_0.npz", arrays)
        full = _best(lambda: store.load_cycle_arrays(run_id, 0))
        explorer = _best(lambda: store.load_cycle_arrays(run_id, 0, _ARRAYS))
        resume = _best(lambda: store.load_cycle_arrays(run_id, 0, ("selected",)))
    print(f"cycle_0.npz: N={n:,} C={c} d={d} L={n_lab:,}")
    print(f"every key (baseline)   {full * 1e3:8.1f} ms  1.0x")
    print(f"explorer keys          {explorer * 1e3:8.1f} ms  {full / explorer:.1f}x faster")
    print(f"'selected' (resume)    {resume * 1e3:8.1f} ms  {full / resume:.0f}x faster")


if __name__ == "__main__":
    main()
