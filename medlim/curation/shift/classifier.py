"""Classifier G and its TOP-k evaluation on the external data (thesis ch. 5, MedShift step 4, Table 5.2).

G is a torchvision ResNet (18 by default; 34, 50, 101, 152 selectable) built
from scratch (``weights=None``) and adapted to small grey inputs: the first
convolution takes one channel with a 3×3 kernel and stride 1 (the 7×7/2 stem
would throw away most of a 32-pixel image); the max-pool stays, so a 32×32
input reaches layer 4 at 2×2. Its pooled penultimate vector is the embedding
used for OTDD (512-d for ResNet-18/34, 2048-d for the deeper ones).

The TOP-k evaluation of G (:func:`topk_table`, :class:`TopKRow`) lives in
:mod:`medlim.curation.shift.topk` (no torch) and is importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medlim.curation.shift.topk import (
    ClassReport,
    TopKRow,
    classification_report,
    topk_table,
)
from medlim.errors import ParameterError

__all__ = [
    "ARCHITECTURES",
    "ClassifierConfig",
    "build_classifier",
    "train_classifier",
    "predict",
    "ClassReport",
    "TopKRow",
    "classification_report",
    "topk_table",
]

ARCHITECTURES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
Log = Callable[[str], None]


@dataclass(frozen=True)
class ClassifierConfig:
    """Training settings of G.

    Attributes:
        architecture: one of :data:`ARCHITECTURES`.
        epochs, batch_size, lr, weight_decay: Adam settings.
        augment: random horizontal flips and ±2 px shifts during training.
        seed: torch seed; threads: torch CPU threads.
    """

    architecture: str = "resnet18"
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"`architecture` must be one of {ARCHITECTURES}, {self.architecture!r} is given.")
        for name in ("epochs", "batch_size", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Classifier(nn.Module):
    """A torchvision ResNet with a grey 3×3 stem; ``embed`` returns the pooled features."""

    def __init__(self, architecture: str, n_classes: int) -> None:
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, architecture)(weights=None, num_classes=n_classes)
        net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.net = net

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.embed(x))


def build_classifier(n_classes: int, *, architecture: str = "resnet18") -> nn.Module:
    """G: a from-scratch ResNet for ``n_classes`` grey classes (``forward`` → logits, ``embed`` → features)."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ParameterError(f"G needs at least 2 classes, {n_classes!r} is given.")
    if architecture not in ARCHITECTURES:
        raise ParameterError(f"`architecture` must be one of {ARCHITECTURES}, {architecture!r} is given.")
    return _Classifier(architecture, n_classes)


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(batch), generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    return torch.roll(batch, shifts=(dy, dx), dims=(-2, -1))


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    config: ClassifierConfig,
    *,
    log: Log | None = None,
) -> nn.Module:
    """Train G with cross-entropy on internal images.

    Args:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        labels: ``np.ndarray[N]`` int class indices in ``[0, n_classes)``.
        n_classes: number of classes.
        config: settings.
        log: progress callback (one line per epoch).

    Returns:
        G in eval mode.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or len(images) < 2 or labels.shape != (len(images),):
        raise ParameterError(f"G needs images [N ≥ 2, s, s] and labels [N]; shapes {images.shape}, {labels.shape} are given.")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ParameterError(f"labels must be in [0, {n_classes}), range {labels.min()}..{labels.max()} is given.")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = build_classifier(n_classes, architecture=config.architecture)
    data = torch.from_numpy(images).unsqueeze(1)
    target = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        total, correct = 0.0, 0
        for index in order.split(config.batch_size):
            if len(index) < 2:  # batch norm needs two samples
                continue
            batch = data[index]
            if config.augment:
                batch = _augment(batch, generator)
            logits = model(batch)
            loss = nn.functional.cross_entropy(logits, target[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == target[index]).sum())
        if log:
            log(f"classifier epoch {epoch + 1}/{config.epochs}: loss {total / len(data):.4f}, "
                f"train accuracy {correct / len(data):.3f}")
    _refresh_batch_norm(model, data, config.batch_size)
    return model.eval()


def _refresh_batch_norm(model: nn.Module, data: torch.Tensor, batch_size: int) -> None:
    # After a short training the running statistics (momentum 0.1) lag far behind the
    # weights; re-estimate them as plain averages over the training images.
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data[start : start + batch_size]
            if len(batch) > 1:
                model(batch)
    for norm in norms:
        norm.momentum = 0.1


def predict(
    model: nn.Module, images: np.ndarray, *, embed: bool = False, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (and optionally embeddings) of G.

    Args:
        model: G from :func:`train_classifier`.
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        embed: also return the penultimate features.

    Returns:
        ``(probabilities np.ndarray[N, C] float64, embeddings np.ndarray[N, F] float32 or None)``.
    """
    device = next(model.parameters()).device
    probabilities, features = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], np.float32)).unsqueeze(1)
            hidden = model.embed(batch.to(device))
            probabilities.append(torch.softmax(model.net.fc(hidden), 1).double().cpu().numpy())
            if embed:
                features.append(hidden.float().cpu().numpy())
    n_classes = model.net.fc.out_features
    probs = np.concatenate(probabilities) if probabilities else np.zeros((0, n_classes))
    if not embed:
        return probs, None
    return probs, (np.concatenate(features) if features else np.zeros((0, model.net.fc.in_features), np.float32))
