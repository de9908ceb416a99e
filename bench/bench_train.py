"""Training and inference throughput on this machine's device, and the projected wall time of
one strategy's run of a preset's protocol.

    python bench/bench_train.py [--preset paper-cifar10] [--device auto] [--steps 20]
                                [--data-dir DIR | --synthetic DIR] [--compile]

Measures images/s of the real training step (crop/flip on device, channels-last, bf16 autocast
and cuDNN autotuning on CUDA) and of clean inference, then projects the seconds of each cycle:
epochs × (images in an epoch's whole batches) / train ips + (|pool| + |test|) / infer ips; for
paper-cifar10 that is 6 trainings of 100 epochs on 5,000 → 17,500 labels and 5 pool inferences.
Without --data-dir, ``--synthetic DIR`` writes a full-size CIFAR-10 in the official pickle format
filled with random pixels (for timing only; its accuracy means nothing) and uses it.
``--compile`` trains through torch.compile (CUDA only; its compile time is excluded).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbal.config import preset  # noqa: E402
from cbal.loop import prepare  # noqa: E402
from cbal.models import build_model  # noqa: E402
from cbal.train import (  # noqa: E402
    DeviceImages,
    epoch_size,
    infer,
    resolve_device,
    train_model,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--synthetic", default=None, help="folder for a synthetic CIFAR-10")
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    parser.add_argument("--compile", action="store_true", help="torch.compile (CUDA only)")
    args = parser.parse_args()
    data_dir = args.data_dir
    if args.synthetic and not data_dir:
        from tests.fixtures import make_cifar10

        root = Path(args.synthetic)
        if not (root / "cifar-10-batches-py" / "test_batch").exists():
            make_cifar10(root, n_per_batch=10_000, n_test=10_000)
        data_dir = str(root)
    overrides = {"device": args.device}
    if data_dir:
        overrides["data_dir"] = data_dir
    cfg = preset(args.preset, **overrides)
    prep = prepare(cfg)
    ds = prep.dataset
    device = resolve_device(cfg.device)
    images = DeviceImages.create(ds.x_train, ds.mean, ds.std, device)
    model = build_model(cfg.model, ds.num_classes, ds.image_shape[0], cfg.dropout)

    n_train = min(len(ds.y_train), cfg.batch_size * args.steps)
    idx = np.arange(n_train)
    timing = cfg.replace(epochs=1, lr_milestones=())
    warm = idx[: cfg.batch_size * 2]  # cuDNN autotuning, the allocator, compilation
    train_model(model, images, warm, ds.y_train[warm], timing, 0, compile_model=args.compile)
    _sync(device)
    t = time.perf_counter()
    train_model(model, images, idx, ds.y_train[idx], timing, 0, compile_model=args.compile)
    _sync(device)
    train_ips = epoch_size(n_train, cfg.batch_size) / (time.perf_counter() - t)

    pool = prep.pool.unlabeled[: max(cfg.eval_batch_size * 4, 1)]
    infer(model, images, pool[: cfg.eval_batch_size], cfg.eval_batch_size)
    _sync(device)
    t = time.perf_counter()
    infer(model, images, pool, cfg.eval_batch_size)
    _sync(device)
    infer_ips = len(pool) / (time.perf_counter() - t)

    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"preset {args.preset} on {name} (torch {torch.__version__})")
    print(f"train: {train_ips:,.0f} images/s   inference: {infer_ips:,.0f} images/s")
    total = 0.0
    n_pool, n_test = len(prep.pool.unlabeled), len(ds.y_test)
    for k in range(cfg.cycles + 1):
        labeled = cfg.initial_labeled + k * cfg.budget
        secs = cfg.epochs * epoch_size(labeled, cfg.batch_size) / train_ips + n_test / infer_ips
        if k < cfg.cycles:
            secs += (n_pool - k * cfg.budget) / infer_ips
        total += secs
        print(f"cycle {k}: {labeled:>6} labels  ~{secs:8.1f} s")
    print(
        f"whole run (one strategy, {cfg.cycles + 1} trainings of {cfg.epochs} epochs, "
        f"{cfg.cycles} pool inferences): ~{total:,.0f} s = {total / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
