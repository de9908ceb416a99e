"""Training, evaluation and pool inference: one compact loop, fast on a GPU, exact on a CPU.

Images stay on the device as uint8 (padded once for random crops); crop/flip and normalization
happen there per batch; on CUDA the model runs channels-last under bf16 autocast with cuDNN's
autotuner. No DataLoader: the datasets fit in memory.

The step loop never waits for the device: each epoch's order, crop shifts and flips are drawn
from a CPU generator at once (so a CPU run and its resume draw the same numbers) and reach the
device in one copy; every batch of an epoch has one size (see :func:`epoch_order`); the
divergence check reads the loss once an epoch, outside the step loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

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
    _padded: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

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

    def padded(self, pad: int) -> torch.Tensor:
        """All images zero-padded by ``pad`` on each side, computed once (crops slice it)."""
        if pad not in self._padded:
            self._padded[pad] = F.pad(self.x, (pad, pad, pad, pad)) if pad else self.x
        return self._padded[pad]

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        out = (batch.float() / self.divisor - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last) if out.is_cuda else out


def draw_augmentation(n: int, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """(3, n) int64 on the CPU: each image's row shift, column shift (0..2·pad) and flip bit."""
    shifts = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    flips = (torch.rand(n, generator=generator) < 0.5).long() if flip else torch.zeros(n).long()
    return torch.cat([shifts, flips[None]])


def crop_flip(padded: torch.Tensor, plan: torch.Tensor, pad: int, flip: bool) -> torch.Tensor:
    """Crop each padded image at its (row, column) shift in ``plan`` (see
    :func:`draw_augmentation`, on the images' device) and flip the marked ones.

    One masked select per shift value and axis: no index tensors, no host synchronization."""
    if pad > 0:
        h, w = padded.shape[2] - 2 * pad, padded.shape[3] - 2 * pad
        dy, dx = plan[0].view(-1, 1, 1, 1), plan[1].view(-1, 1, 1, 1)
        rows = padded[:, :, :h]
        for s in range(1, 2 * pad + 1):
            rows = torch.where(dy == s, padded[:, :, s : s + h], rows)
        padded = rows[..., :w]
        for s in range(1, 2 * pad + 1):
            padded = torch.where(dx == s, rows[..., s : s + w], padded)
    if flip:
        padded = torch.where(plan[2].view(-1, 1, 1, 1).bool(), padded.flip(3), padded)
    return padded


def random_crop_flip(
    batch: torch.Tensor, pad: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Per-sample random crop (zero padding ``pad``) and optional flip of one batch, with the
    random numbers of :func:`draw_augmentation` (what :func:`infer` does with ``augment``)."""
    plan = draw_augmentation(len(batch), pad, flip, generator).to(batch.device)
    return crop_flip(F.pad(batch, (pad, pad, pad, pad)), plan, pad, flip)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[None]:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One host→device copy that does not block the host (pinned memory on CUDA)."""
    if device.type != "cuda":
        return x
    return x.pin_memory().to(device, non_blocking=True)


def prepare_device(device: torch.device) -> None:
    """cuDNN autotuning on CUDA: every batch has one shape, so the tuned kernels are reused."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the step size is too large."""


def batch_shape(n: int, batch_size: int) -> tuple[int, int]:
    """(batches, images per batch) of an epoch over ``n`` images: ceil(n / batch_size) batches
    of one size, at most ``batch_size`` (5,000 images at 256: 20 batches of 250)."""
    batches = -(-n // batch_size)
    return batches, -(-n // batches)


def epoch_size(n: int, batch_size: int) -> int:
    """Images one epoch trains on: ``n`` and fewer repeats than there are batches."""
    batches, size = batch_shape(n, batch_size)
    return batches * size


def epoch_order(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch's training order: a random permutation of the ``n`` images, extended by its own
    first images to whole batches of :func:`batch_shape`, so that every image is seen once an
    epoch (a few twice) and every batch has one shape (for cuDNN and torch.compile). A batch
    never holds an image twice: the repeats come from the first batch and go to the last."""
    order = torch.randperm(n, generator=generator)
    return torch.cat([order, order[: epoch_size(n, batch_size) - n]])


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    images: DeviceImages,
    idx: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    aug: tuple[int, bool],
    gen: torch.Generator,
) -> torch.Tensor:
    """One epoch over ``images[idx]``: its order, shifts and flips drawn on the CPU from ``gen``
    and sent in one copy, then :func:`train_steps`; the last loss, left on the device."""
    pad, flip = aug
    order = epoch_order(len(idx), batch_size, gen)
    plan = _to_device(
        torch.cat([order[None], draw_augmentation(len(order), pad, flip, gen)]), idx.device
    )
    return train_steps(
        model,
        opt,
        images,
        images.padded(pad),
        idx[plan[0]],
        y[plan[0]],
        plan[1:],
        batch_shape(len(idx), batch_size)[1],
        aug,
    )


def train_model(
    model: Classifier,
    images: DeviceImages,
    indices: np.ndarray,
    labels: np.ndarray,
    cfg: RunConfig,
    seed: int,
    progress: Progress | None = None,
    compile_model: bool = False,
) -> Classifier:
    """Train ``model`` from its current (fresh) weights on ``images[indices]`` as the paper does:
    SGD with Nesterov momentum, weight decay, step decay at ``cfg.lr_milestones``.
    ``compile_model`` runs the steps through ``torch.compile`` (CUDA only; off by default)."""
    device = images.x.device
    prepare_device(device)
    torch.manual_seed(seed)  # dropout masks
    gen = torch.Generator().manual_seed(seed)  # order and augmentation
    idx = torch.as_tensor(indices, dtype=torch.long).to(device)
    y = torch.as_tensor(labels, dtype=torch.long).to(device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    step_model: nn.Module = model
    if compile_model and device.type == "cuda":
        step_model = cast(nn.Module, torch.compile(model))
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
    model.train()
    for epoch in range(cfg.epochs):
        loss = train_epoch(step_model, opt, images, idx, y, cfg.batch_size, (pad, flip), gen)
        if not torch.isfinite(loss).item():  # one sync an epoch, after its steps
            raise TrainingDiverged(
                f"training diverged (loss {loss.item()} in epoch {epoch + 1}): lower the "
                f"learning rate (lr={cfg.lr:g}) or the momentum (momentum={cfg.momentum:g})"
            )
        sched.step()
        if progress is not None:
            progress(epoch + 1, cfg.epochs)
    return model


def train_steps(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    images: DeviceImages,
    padded: torch.Tensor,
    picks: torch.Tensor,
    targets: torch.Tensor,
    augment_plan: torch.Tensor,
    batch_size: int,
    augment: tuple[int, bool],
) -> torch.Tensor:
    """One epoch's SGD steps on the images ``picks`` (device indices, in order) with their
    ``targets`` and crop/flip plan; returns the last step's loss as a device tensor.

    Nothing here reads a device value on the host, so on CUDA the host queues steps ahead."""
    loss = torch.zeros((), device=padded.device)
    for start in range(0, len(picks), batch_size):
        b = slice(start, start + batch_size)
        x = crop_flip(padded[picks[b]], augment_plan[:, b], *augment)
        with _autocast(padded.device):
            logits, _ = model(images.normalize(x))
            loss = F.cross_entropy(logits.float(), targets[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.detach()


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

    @classmethod
    def from_device(
        cls, logits: torch.Tensor, features: torch.Tensor, mc: torch.Tensor | None = None
    ) -> Inference:
        return cls(
            probs=torch.softmax(logits, dim=1).cpu().numpy().astype(np.float64),
            embeddings=features.cpu().numpy(),
            mc_probs=None if mc is None else mc.cpu().numpy(),
        )


@torch.no_grad()
def forward(
    model: Classifier,
    images: DeviceImages,
    indices: np.ndarray,
    batch_size: int,
    augment: tuple[int, bool] | None = None,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode float32 logits and features of ``images[indices]``, on the device. The indices
    (and with ``augment`` their crop/flip plan, drawn from ``gen`` at once) reach the device in
    one copy."""
    if len(indices) == 0:
        raise ValueError("infer needs at least one image")
    device = images.x.device
    prepare_device(device)
    pad, flip = augment or (0, False)
    plan = torch.as_tensor(indices, dtype=torch.long)[None]
    if augment is not None:
        plan = torch.cat(
            [plan, draw_augmentation(len(indices), pad, flip, gen or torch.Generator())]
        )
    plan = _to_device(plan, device)
    source = images.padded(pad)
    model.eval()
    feats, logits = [], []
    for start in range(0, len(indices), batch_size):
        x = source[plan[0, start : start + batch_size]]
        if augment is not None:
            x = crop_flip(x, plan[1:, start : start + batch_size], pad, flip)
        with _autocast(device):
            out, f = model(images.normalize(x))
        feats.append(f.float())
        logits.append(out.float())
    return torch.cat(logits), torch.cat(feats)


def forward_sets(
    model: Classifier, images: DeviceImages, sets: list[np.ndarray], batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Clean (logits, features) of several index sets in one pass: one upload, and batches run
    across the sets' boundaries."""
    logits, feats = forward(model, images, np.concatenate(sets), batch_size)
    sizes = [len(s) for s in sets]
    return list(zip(logits.split(sizes), feats.split(sizes), strict=True))


@torch.no_grad()
def mc_dropout(model: Classifier, features: torch.Tensor, passes: int, seed: int) -> torch.Tensor:
    """(T, N, C) softmax of T dropout passes over the classifier head. Dropout sits only before
    the classifier, so the passes reuse one feature pass (the same outputs as T full stochastic
    passes at a fraction of the cost)."""
    torch.manual_seed(seed)
    model.dropout.train()
    try:
        return torch.stack(
            [torch.softmax(model.fc(model.dropout(features)), dim=1) for _ in range(passes)]
        )
    finally:
        model.dropout.eval()


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

    ``mc_source="dropout"``: see :func:`mc_dropout`; ``"batchnorm"``: T full passes with
    BatchNorm in train mode (see :func:`batchnorm_passes`). ``augment=(pad, flip)`` scores
    randomly cropped/flipped images, as the paper's released code does (``compat=paper``); the
    random numbers come from ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    logits, features = forward(model, images, indices, batch_size, augment, gen)
    mc = monte_carlo(
        model, images, indices, features, batch_size, mc_passes, seed, mc_source, gen, augment
    )
    return Inference.from_device(logits, features, mc)


def monte_carlo(
    model: Classifier,
    images: DeviceImages,
    indices: np.ndarray,
    features: torch.Tensor,
    batch_size: int,
    passes: int,
    seed: int,
    mc_source: str,
    gen: torch.Generator,
    augment: tuple[int, bool] | None = None,
) -> torch.Tensor | None:
    """The MC probabilities :func:`infer` returns, given the eval-mode ``features`` of
    ``images[indices]`` (None when ``passes`` is 0)."""
    if passes > 0 and mc_source == "batchnorm":
        return batchnorm_passes(model, images, indices, batch_size, passes, gen, augment)
    return mc_dropout(model, features, passes, seed) if passes > 0 else None


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
    pad, flip = augment or (0, False)
    source = images.padded(pad)
    idx = _to_device(torch.as_tensor(indices, dtype=torch.long), device)
    saved = [buf.clone() for buf in model.buffers()]
    chunks = max(1, n // max(2, batch_size))
    out = torch.empty((passes, n, model.fc.out_features), device=device)
    model.train()
    try:
        for t in range(passes):
            order = torch.arange(n) if augment is not None else torch.randperm(n, generator=gen)
            if augment is not None:
                order = torch.cat([order[None], draw_augmentation(n, pad, flip, gen)])
            plan = _to_device(order.view(-1, n), device)
            for pos in torch.tensor_split(torch.arange(n, device=device), chunks):
                x = source[idx[plan[0, pos]]]
                if augment is not None:
                    x = crop_flip(x, plan[1:, pos], pad, flip)
                with _autocast(device):
                    logits, _ = model(images.normalize(x))
                out[t, plan[0, pos]] = torch.softmax(logits.float(), dim=1)
    finally:
        model.eval()
        for buf, old in zip(model.buffers(), saved, strict=True):
            buf.copy_(old)
    return out


def accuracy(
    logits: torch.Tensor, labels: np.ndarray, num_classes: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Overall accuracy, per-class accuracy (NaN for a class with no test image), predictions:
    the argmax is taken on the device, only the predicted labels come to the host."""
    pred = logits.argmax(dim=1).cpu().numpy()
    correct = pred == labels
    totals = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[correct], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)
    return float(correct.mean()), per_class, pred
