"""The training loop's structure: fixed-size batches, crops by shift, a step loop that never
reads a device value back, and one upload per inference (all checked on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbal.config import preset
from cbal.data import load_digits_dataset
from cbal.models import build_model, small_cnn
from cbal.train import (
    DeviceImages,
    augmentation,
    batch_shape,
    crop_flip,
    draw_augmentation,
    epoch_order,
    epoch_size,
    forward_sets,
    infer,
    train_model,
    train_steps,
)

# what reads a device tensor on the host (each a synchronization on CUDA)
READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "nonzero")


@pytest.fixture
def reads(monkeypatch):
    """Names of the host reads of tensors made while the test runs."""
    seen: list[str] = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return seen


@pytest.mark.parametrize(
    "n, batch, shape",
    [
        (50, 32, (2, 25)),
        (70, 32, (3, 24)),
        (170, 32, (6, 29)),
        (20, 32, (1, 20)),
        (5000, 256, (20, 250)),
        (17500, 256, (69, 254)),
        (5, 2, (3, 2)),
    ],
)
def test_every_batch_has_one_size_and_every_image_is_seen(n, batch, shape):
    assert batch_shape(n, batch) == shape
    order = epoch_order(n, batch, torch.Generator().manual_seed(n))
    batches, size = shape
    assert len(order) == epoch_size(n, batch) == batches * size < n + batches
    assert set(order.tolist()) == set(range(n))
    for b in order.split(size):
        assert len(b) == size and len(set(b.tolist())) == size  # no repeat within a batch


def _gather_crop(batch, plan, pad):
    """The straightforward reference: pad, then index each image's window."""
    n, c, h, w = batch.shape
    padded = F.pad(batch, (pad,) * 4)
    rows = (plan[0][:, None] + torch.arange(h))[:, None, :, None]
    cols = (plan[1][:, None] + torch.arange(w))[:, None, None, :]
    out = padded[
        torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]
    return torch.where(plan[2].bool()[:, None, None, None], out.flip(3), out)


@pytest.mark.parametrize("pad", [1, 4])
def test_crop_by_shift_equals_the_indexed_window(pad):
    x = torch.randint(0, 256, (64, 3, 12, 12), dtype=torch.uint8)
    plan = draw_augmentation(64, pad, True, torch.Generator().manual_seed(pad))
    got = crop_flip(F.pad(x, (pad,) * 4), plan, pad, True)
    assert torch.equal(got, _gather_crop(x, plan, pad))
    assert set(plan[0].tolist()) == set(range(2 * pad + 1)) and set(plan[2].tolist()) == {0, 1}


def test_images_are_padded_once():
    images = DeviceImages.create(
        np.ones((5, 1, 8, 8), np.uint8), (0.5,), (0.2,), torch.device("cpu")
    )
    first = images.padded(1)
    assert first.shape == (5, 1, 10, 10) and first is images.padded(1)
    assert images.padded(0) is images.x


def _digits_setup(n=70, **overrides):
    ds = load_digits_dataset()
    images = DeviceImages.create(ds.x_train, ds.mean, ds.std, torch.device("cpu"))
    cfg = preset("digits", device="cpu", **{"epochs": 3, "lr_milestones": (2,), **overrides})
    idx = np.arange(n)
    return ds, images, cfg, idx


def test_the_step_loop_reads_nothing_back(reads):
    ds, images, cfg, idx = _digits_setup()
    torch.manual_seed(0)
    model = small_cnn(10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pad, flip = augmentation(cfg, images)
    gen = torch.Generator().manual_seed(0)
    order = epoch_order(len(idx), cfg.batch_size, gen)
    plan = draw_augmentation(len(order), pad, flip, gen)
    picks, targets = torch.as_tensor(idx)[order], torch.as_tensor(ds.y_train[idx])[order]
    size = batch_shape(len(idx), cfg.batch_size)[1]
    loss = train_steps(
        model, opt, images, images.padded(pad), picks, targets, plan, size, (pad, flip)
    )
    assert reads == []
    assert loss.shape == () and float(loss) > 0
    assert reads == ["__float__"]  # the counter sees a read


def test_training_reads_the_loss_once_an_epoch(reads):
    ds, images, cfg, idx = _digits_setup(epochs=4, lr_milestones=(3,))
    train_model(small_cnn(10), images, idx, ds.y_train[idx], cfg, 0)
    assert reads == ["item"] * 4


def test_inference_uploads_once_and_reads_once(monkeypatch, reads):
    ds, images, _, _ = _digits_setup()
    uploads: list[int] = []
    original = torch.Tensor.to
    monkeypatch.setattr(
        torch.Tensor, "to", lambda self, *a, **k: uploads.append(1) or original(self, *a, **k)
    )
    out = infer(small_cnn(10), images, np.arange(300), 64)
    assert out.probs.shape == (300, 10) and out.probs.dtype == np.float64
    assert reads.count("cpu") == 2 and uploads == []  # probabilities and features; CPU: no copy


@pytest.mark.parametrize("side", [1, 3, 8, 32])
def test_convfc_takes_any_image_side_and_pools_only_off_its_grid(monkeypatch, side):
    pooled = []
    real = torch.nn.functional.adaptive_avg_pool2d
    monkeypatch.setattr(
        torch.nn.functional,
        "adaptive_avg_pool2d",
        lambda x, s: pooled.append(x.shape) or real(x, s),
    )
    model = build_model("convfc", 10, 3, 0.0).eval()
    logits, feats = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 10) and feats.shape == (2, 128)
    # an 8x8 digit is on the 4x4 grid after the stride-2 conv: no pooling op at all
    assert (pooled == []) == (side in (7, 8))


def test_joint_passes_equal_separate_ones():
    _, images, _, _ = _digits_setup()
    torch.manual_seed(3)
    model = small_cnn(10)
    sets = [np.arange(0, 90), np.arange(200, 230), np.arange(500, 640)]
    joint = forward_sets(model, images, sets, 64)
    for s, (logits, feats) in zip(sets, joint, strict=True):
        alone = infer(model, images, s, 64)
        np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), alone.probs, atol=1e-5)
        np.testing.assert_allclose(feats.numpy(), alone.embeddings, atol=1e-5)
