"""CUDA checks (``-m cuda``; skipped without a GPU, so CI and CPU machines never run them):
CPU and CUDA agree, training learns, the step loop never synchronizes, kill and resume complete.
``bench/gpu_check.sh`` runs them on a GPU machine."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbal.config import preset
from cbal.data import load_digits_dataset
from cbal.loop import execute
from cbal.models import small_cnn
from cbal.store import Store
from cbal.strategies import STRATEGIES, SelectionContext
from cbal.train import (
    DeviceImages,
    Inference,
    augmentation,
    crop_flip,
    draw_augmentation,
    forward,
    infer,
    train_epoch,
    train_model,
)
from tests import faultworker

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def _images(device):
    ds = load_digits_dataset()
    return ds, DeviceImages.create(ds.x_train, ds.mean, ds.std, device)


def _trained(n=200, epochs=6):
    ds, images = _images(CPU)
    cfg = preset("digits", device="cpu", epochs=epochs, lr_milestones=(epochs - 1,))
    torch.manual_seed(0)
    model = small_cnn(10)
    train_model(model, images, np.arange(n), ds.y_train[:n], cfg, 0)
    return ds, model


def test_cpu_and_cuda_give_the_same_selections_from_the_same_probabilities():
    ds, model = _trained()
    pool = np.arange(300, 1000)
    _, cpu_images = _images(CPU)
    _, gpu_images = _images(CUDA)
    on_cpu = infer(model, cpu_images, pool, 256)
    on_gpu = infer(model.to(CUDA), gpu_images, pool, 256)  # bf16 autocast: close, not equal
    assert np.abs(on_cpu.probs - on_gpu.probs).max() < 0.05
    assert (on_cpu.probs.argmax(1) == on_gpu.probs.argmax(1)).mean() > 0.97
    # the same float32 probabilities, held on either device, select the same images
    logits = torch.log(torch.as_tensor(on_gpu.probs, dtype=torch.float32))
    feats = torch.as_tensor(on_gpu.embeddings)
    for name in ("entropy", "entropy-cb", "kcenter-cb"):
        picks = []
        for device in (CPU, CUDA):
            out = Inference.from_device(logits.to(device), feats.to(device))
            ctx = SelectionContext(
                probs=out.probs,
                labeled_counts=np.full(10, 5),
                embeddings=out.embeddings,
                labeled_embeddings=out.embeddings[:50],
                lam=1.0,
                rng=np.random.default_rng(0),
            )
            picks.append(list(STRATEGIES[name].select(ctx, 20).indices))
        assert picks[0] == picks[1], name


def test_crops_on_cuda_equal_crops_on_cpu():
    x = torch.randint(0, 256, (128, 3, 40, 40), dtype=torch.uint8)
    plan = draw_augmentation(128, 4, True, torch.Generator().manual_seed(1))
    cpu = crop_flip(x, plan, 4, True)
    assert torch.equal(crop_flip(x.to(CUDA), plan.to(CUDA), 4, True).cpu(), cpu)


def _loss(model, images, idx, y):
    logits, _ = forward(model, images, idx, 512)
    return F.cross_entropy(logits, torch.as_tensor(y, device=CUDA)).item()


def test_training_on_cuda_lowers_the_loss_and_learns():
    ds, images = _images(CUDA)
    idx = np.arange(400)
    cfg = preset("digits", device="cuda", epochs=10, lr_milestones=(8,))
    torch.manual_seed(0)
    model = small_cnn(10).to(CUDA)
    before = _loss(model, images, idx, ds.y_train[idx])
    train_model(model, images, idx, ds.y_train[idx], cfg, 0)
    after = _loss(model, images, idx, ds.y_train[idx])
    assert after < 0.5 * before
    test = np.arange(1000, 1700)
    logits, _ = forward(model, images, test, 512)
    assert (logits.argmax(1).cpu().numpy() == ds.y_train[test]).mean() > 0.8


def test_the_step_loop_never_synchronizes():
    ds, images = _images(CUDA)
    cfg = preset("digits", device="cuda", augment="crop-flip")
    idx = torch.arange(300, device=CUDA)
    y = torch.as_tensor(ds.y_train[:300], device=CUDA)
    model = small_cnn(10).to(CUDA).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    pad, flip = augmentation(cfg, images)
    gen = torch.Generator().manual_seed(0)

    def epoch():  # what train_model runs each epoch, the plan's copy included
        return train_epoch(model, opt, images, idx, y, cfg.batch_size, (pad, flip), gen)

    epoch()  # warm-up: cuDNN autotuning and the allocator may synchronize once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).item()


def test_kill_and_resume_on_cuda_completes(tmp_path):
    store = Store(tmp_path)
    cfg = preset(
        "digits", strategy="entropy-cb", device="cuda", cycles=3, epochs=4, lr_milestones=(3,)
    )
    run_id = store.create_run(cfg)
    mark = tmp_path / "mark"
    env = {"CBAL_FAULT_PAUSE": "infer@1", "CBAL_FAULT_MARK": str(mark)}
    proc = faultworker.context().Process(
        target=faultworker.resume, args=(str(store.root), run_id, env)
    )
    proc.start()
    deadline = time.time() + 120
    while not mark.exists() and proc.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert mark.exists(), "the run never reached infer@1"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    first = store.read_cycles(run_id)
    assert len(first) == 1
    records = execute(store, run_id)
    assert store.read_status(run_id)["state"] == "done"
    assert len(records) == 4 and records[0] == first[0]
    assert records[-1]["labeled"] == cfg.initial_labeled + 3 * cfg.budget
