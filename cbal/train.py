"""Training, evaluation and pool inference: one compact loop, fast on a GPU, exact on a CPU.

Images stay on the device as uint8; crop/flip and normalization happen there per batch; on CUDA
the model runs channels-last under bf16 autocast. No DataLoader: the datasets fit in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cbal.config import ConfigError, RunConfig
from cbal.models import Classifier

Progress = Callable[[int, int], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when one is visible, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "auto or cpu: no CUDA GPU is visible to torch")
    if name not in ("cpu", "cuda"):
        raise ConfigError("device", name, "one of auto, cpu, cuda")
    return torch.device(name)


@dataclass
class DeviceImages:
    """uint8 NCHW images resident on ``device`` with the dataset's normalization."""

    x: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    divisor: float = 255.0  # uint8 images to [0, 1]; 1 for float features

    @classmethod
    def create(
        cls, x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
    ) -> DeviceImages:
        shape = (1, len(mean), 1, 1)
        return cls(
            torch.from_numpy(np.ascontiguousarray(x)).to(device),
            torch.tensor(mean, dtype=torch.float32, device=device).view(shape),
            torch.tensor(std, dtype=torch.float32, device=device).view(shape),
            255.0 if x.dtype == np.uint8 else 1.0,
        )

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        out = (batch.float() / self.divisor - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last) if out.is_cuda else out


def random_crop_flip(
    batch: torch.Tensor, pad: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Per-sample random crop (zero padding ``pad``) and optional horizontal flip, on device.

    Random numbers come from a CPU generator so a CPU run and its resume draw the same ones.
    """
    n, _, h, w = batch.shape
    dev = batch.device
    if pad > 0:
        padded = F.pad(batch, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        idx = torch.arange(n, device=dev)[:, None, None, None]
        ch = torch.arange(batch.shape[1], device=dev)[None, :, None, None]
        batch = padded[idx, ch, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(dev)[:, None, None, None]
        batch = torch.where(mask, batch.flip(3), batch)
    return batch


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[None]:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the step size is too large."""


def train_model(
    model: Classifier,
    images: DeviceImages,
    indices: np.ndarray,
    labels: np.ndarray,
    cfg: RunConfig,
    seed: int,
    progress: Progress | None = None,
) -> Classifier:
    """Train ``model`` from its current (fresh) weights on ``images[indices]`` as the paper does:
    SGD with Nesterov momentum, weight decay, step decay at ``cfg.lr_milestones``."""
    device = images.x.device
    torch.manual_seed(seed)  # dropout masks
    gen = torch.Generator().manual_seed(seed)  # order and augmentation
    idx = torch.as_tensor(indices, dtype=torch.long, device=device)
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=list(cfg.lr_milestones), gamma=cfg.lr_gamma
    )
    pad, flip = augmentation(cfg, images)
    n = len(idx)
    model.train()
    loss = None
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, cfg.batch_size):
            b = order[start : start + cfg.batch_size]
            if len(b) < 2 and n >= 2:  # BatchNorm needs two samples; skip a lone tail
                continue
            x = images.normalize(random_crop_flip(images.x[idx[b]], pad, flip, gen))
            with _autocast(device):
                logits, _ = model(x)
                loss = F.cross_entropy(logits.float(), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if loss is not None and not torch.isfinite(loss.detach()).item():  # one sync an epoch
            raise TrainingDiverged(
                f"training diverged (loss {loss.item()} in epoch {epoch + 1}): lower the "
                f"learning rate (lr={cfg.lr:g}) or the momentum (momentum={cfg.momentum:g})"
            )
        sched.step()
        if progress is not None:
            progress(epoch + 1, cfg.epochs)
    return model


def augmentation(cfg: RunConfig, images: DeviceImages) -> tuple[int, bool]:
    """(crop padding, flip) of the run's training augmentation: pad = image side / 8."""
    pad = 0 if cfg.augment == "none" else max(1, images.x.shape[-1] // 8)
    return pad, cfg.augment == "crop-flip"


@dataclass
class Inference:
    """Model outputs on a set of images (clean unless ``infer`` was given an augmentation)."""

    probs: np.ndarray  # (N, C) float64 softmax, eval mode
    embeddings: np.ndarray  # (N, d) float32 penultimate features
    mc_probs: np.ndarray | None = None  # (T, N, C) float32 softmax of the MC passes


@torch.no_grad()
def infer(
    model: Classifier,
    images: DeviceImages,
    indices: np.ndarray,
    batch_size: int,
    mc_passes: int = 0,
    seed: int = 0,
    mc_source: str = "dropout",
    augment: tuple[int, bool] | None = None,
) -> Inference:
    """Probabilities, penultimate embeddings and (``mc_passes`` > 0) MC probabilities.

    ``mc_source="dropout"``: dropout sits only before the classifier, so the T passes reuse one
    feature pass (the same outputs as T full stochastic passes at a fraction of the cost).
    ``"batchnorm"``: T full passes with BatchNorm in train mode (see :func:`batchnorm_passes`).
    ``augment=(pad, flip)`` scores randomly cropped/flipped images, as the paper's released code
    does (``compat=paper``); the random numbers come from ``seed``.
    """
    device = images.x.device
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    feats, logits = [], []
    for start in range(0, len(indices), batch_size):
        b = torch.as_tensor(indices[start : start + batch_size], dtype=torch.long, device=device)
        with _autocast(device):
            out, f = model(images.normalize(_maybe_augment(images.x[b], augment, gen)))
        feats.append(f.float())
        logits.append(out.float())
    if not feats:
        raise ValueError("infer needs at least one image")
    features = torch.cat(feats)
    probs = torch.softmax(torch.cat(logits), dim=1)
    mc = None
    if mc_passes > 0 and mc_source == "batchnorm":
        mc = batchnorm_passes(model, images, indices, batch_size, mc_passes, gen, augment)
    elif mc_passes > 0:
        torch.manual_seed(seed)
        model.dropout.train()
        mc = torch.stack(
            [torch.softmax(model.fc(model.dropout(features)), dim=1) for _ in range(mc_passes)]
        )
        model.dropout.eval()
    return Inference(
        probs=probs.double().cpu().numpy(),
        embeddings=features.cpu().numpy(),
        mc_probs=None if mc is None else mc.cpu().numpy(),
    )


def _maybe_augment(
    x: torch.Tensor, augment: tuple[int, bool] | None, gen: torch.Generator
) -> torch.Tensor:
    return x if augment is None else random_crop_flip(x, augment[0], augment[1], gen)


@torch.no_grad()
def batchnorm_passes(
    model: Classifier,
    images: DeviceImages,
    indices: np.ndarray,
    batch_size: int,
    passes: int,
    gen: torch.Generator,
    augment: tuple[int, bool] | None = None,
) -> torch.Tensor:
    """(T, N, C) softmax of T passes with BatchNorm in train mode (batch statistics), the
    released code's source of MC randomness. Its running statistics are restored afterwards:
    the passes leave the model exactly as they found it.

    Batch statistics differ between passes only if the batches do: without ``augment`` each
    pass splits the pool in a fresh random order; with it the order is fixed (as in the
    released code's loaders) and the augmentation differs. Every batch has at least two images.
    """
    device = images.x.device
    n = len(indices)
    saved = [buf.clone() for buf in model.buffers()]
    chunks = max(1, n // max(2, batch_size))
    out = torch.empty((passes, n, model.fc.out_features), device=device)
    model.train()
    try:
        for t in range(passes):
            order = torch.arange(n) if augment is not None else torch.randperm(n, generator=gen)
            for pos in torch.tensor_split(order, chunks):
                b = torch.as_tensor(indices[pos.numpy()], dtype=torch.long, device=device)
                with _autocast(device):
                    logits, _ = model(images.normalize(_maybe_augment(images.x[b], augment, gen)))
                out[t, pos.to(device)] = torch.softmax(logits.float(), dim=1)
    finally:
        model.eval()
        for buf, old in zip(model.buffers(), saved, strict=True):
            buf.copy_(old)
    return out


def evaluate(
    model: nn.Module, images: DeviceImages, labels: np.ndarray, num_classes: int, batch_size: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Overall accuracy, per-class accuracy (NaN for a class with no test image), predictions."""
    out = infer(model, images, np.arange(len(labels)), batch_size)  # type: ignore[arg-type]
    pred = out.probs.argmax(axis=1)
    correct = pred == labels
    totals = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[correct], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)
    return float(correct.mean()), per_class, pred
