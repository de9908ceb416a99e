"""Networks: ResNet-18 with the CIFAR stem, two small networks for 8x8 digits, and a linear head,
each with an optional dropout head.

``forward`` returns ``(logits, features)``: the penultimate features feed KCenterGreedy. With
``dropout > 0`` a dropout layer sits before the classifier, what MC dropout (BALD) samples; with
0 (every strategy but MC-dropout BALD) there is none, as in the paper's ResNet-18.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    """A feature extractor, dropout (an identity when ``dropout == 0``) and a linear classifier."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.features = features
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return self.fc(self.dropout(feats)), feats


def resnet18(num_classes: int, in_channels: int = 3, dropout: float = 0.0) -> Classifier:
    """ResNet-18 with the CIFAR stem: a 3x3 stride-1 first conv and no max-pool."""
    import torchvision  # seconds to import: only runs that use ResNet pay for it

    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return Classifier(net, 512, num_classes, dropout)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def small_cnn(num_classes: int, in_channels: int = 1, dropout: float = 0.0) -> Classifier:
    """Three conv-BN-ReLU blocks and global pooling: enough for 8x8 digits, fast on a CPU."""
    features = nn.Sequential(
        *_conv_bn(in_channels, 16),
        *_conv_bn(16, 32),
        nn.MaxPool2d(2),
        *_conv_bn(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Classifier(features, 64, num_classes, dropout)


class _Grid(nn.Module):
    """Average-pools a feature map to ``side`` x ``side``; free when it already has that size
    (on CPU the adaptive pool costs more than the rest of the digits network's step)."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.side, self.side):
            return x
        return F.adaptive_avg_pool2d(x, self.side)


def conv_fc(num_classes: int, in_channels: int = 1, dropout: float = 0.0) -> Classifier:
    """A stride-2 conv-BN-ReLU block on a 4x4 grid and a 128-unit fully connected layer: the
    digits preset's network. On 8x8 digits it is as accurate as :func:`small_cnn` at about a
    third of its CPU time: it keeps where each stroke is, which global pooling drops. Its
    fully connected BatchNorm needs two or more images per training batch."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        _Grid(4),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 128, bias=False),
        nn.BatchNorm1d(128),
        nn.ReLU(),
    )
    return Classifier(features, 128, num_classes, dropout)


def linear(num_classes: int, in_channels: int, dropout: float = 0.0) -> Classifier:
    """A linear classifier on precomputed features of shape (d, 1, 1): ``in_channels`` is d."""
    return Classifier(nn.Flatten(), in_channels, num_classes, dropout)


MODELS = {"resnet18": resnet18, "smallcnn": small_cnn, "convfc": conv_fc, "linear": linear}


def build_model(name: str, num_classes: int, in_channels: int, dropout: float) -> Classifier:
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown: expected one of {', '.join(MODELS)}")
    return MODELS[name](num_classes, in_channels=in_channels, dropout=dropout)
