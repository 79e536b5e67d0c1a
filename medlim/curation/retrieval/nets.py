"""Retrieval networks: a ResNet-18 embedding for small grey inputs and the PMS multi-branch head (thesis §6.1–6.2).

Both OSCARS and PMS use ResNet-18 (thesis: ImageNet-pretrained, 512-d). Here
the networks are trained from scratch on phantoms, so the topology is
torchvision's ResNet-18 (``BasicBlock`` × [2, 2, 2, 2], 7×7 stride-2 stem, max
pool, global average pool) with two adaptations: one grey input channel, and
a configurable base width (shipped 16, i.e. 16-32-64-128 channels and a
128-d feature; torchvision's is 64 → 512-d) so that a model trains in minutes
on a CPU and its file stays well under 10 MB. ``width=64`` gives the exact
torchvision layer shapes.

Networks only: training lives in :mod:`medlim.curation.retrieval.train`.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from medlim.errors import ParameterError

__all__ = ["ResNet18Trunk", "EmbeddingNet", "PmsNet", "build_retrieval_resnet", "build_pms"]


def _check_positive(name: str, value: int, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"`{name}` must be an integer ≥ {minimum}, {value!r} is given.")
    return value


class ResNet18Trunk(nn.Module):
    """ResNet-18 feature extractor: ``[N, C, H, W]`` → ``[N, 8·width]`` (after global average pooling).

    Args:
        channels: input channels (1 for grey radiographs).
        width: channels of the first stage (64 in torchvision's ResNet-18).
    """

    def __init__(self, *, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        _check_positive("channels", channels)
        _check_positive("width", width, minimum=4)
        self.feature_dim = 8 * width
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages = []
        in_planes = width
        for stage, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or in_planes != planes:
                downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                           nn.BatchNorm2d(planes))
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride, downsample), BasicBlock(planes, planes)))
            in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


class EmbeddingNet(nn.Module):
    """The retrieval embedding (OSCARS, plain triplet, classification baseline).

    ``forward(x)`` returns the trunk feature ``[N, 8·width]`` used for search
    (cosine similarity). With ``n_classes > 0`` a linear classifier sits on the
    feature (the classification-trained baseline; :meth:`logits`).
    """

    def __init__(self, *, channels: int = 1, width: int = 16, n_classes: int = 0) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 0:
            raise ParameterError(f"`n_classes` must be a non-negative integer, {n_classes!r} is given.")
        self.trunk = ResNet18Trunk(channels=channels, width=width)
        self.classifier = nn.Linear(self.trunk.feature_dim, n_classes) if n_classes else None

    @property
    def embedding_dim(self) -> int:
        return self.trunk.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, n_classes]`` (only when built with ``n_classes > 0``)."""
        if self.classifier is None:
            raise ParameterError("this embedding network has no classifier (n_classes = 0).")
        return self.classifier(self.trunk(x))


class PmsNet(nn.Module):
    """PMS (thesis §6.2, Fig. 6.6): ResNet-18 → one branch per class.

    Branch ``i``: ``e_i = ReLU(Linear(F → branch_dim)(f))`` and
    ``p_i = sigmoid(Linear(branch_dim → 1)(e_i))``. The class proxies
    ``c_i`` (means of the memory bank, thesis "voted centres") are a buffer so
    they travel with the weights.

    ``forward(x)`` returns ``(e [N, k, branch_dim], p [N, k])``.
    """

    def __init__(self, *, channels: int = 1, width: int = 16, n_classes: int = 8, branch_dim: int = 256) -> None:
        super().__init__()
        _check_positive("n_classes", n_classes)
        _check_positive("branch_dim", branch_dim)
        self.trunk = ResNet18Trunk(channels=channels, width=width)
        self.embed = nn.ModuleList(nn.Linear(self.trunk.feature_dim, branch_dim) for _ in range(n_classes))
        self.classify = nn.ModuleList(nn.Linear(branch_dim, 1) for _ in range(n_classes))
        self.register_buffer("proxies", torch.zeros(n_classes, branch_dim))

    @property
    def n_classes(self) -> int:
        return len(self.embed)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.trunk(x)
        embeddings = torch.stack([torch.relu(layer(feature)) for layer in self.embed], dim=1)
        logits = torch.cat([head(embeddings[:, i]) for i, head in enumerate(self.classify)], dim=1)
        return embeddings, torch.sigmoid(logits)

    def class_similarity(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``s_i = cos(c_i, e_i)`` (thesis eq. 6.4): ``[N, k, D]`` → ``[N, k]``."""
        return nn.functional.cosine_similarity(embeddings, self.proxies.unsqueeze(0), dim=2, eps=1e-8)


def build_retrieval_resnet(*, channels: int = 1, width: int = 16, n_classes: int = 0) -> EmbeddingNet:
    """Registry builder (architecture ``retrieval-resnet18``)."""
    return EmbeddingNet(channels=channels, width=width, n_classes=n_classes)


def build_pms(*, channels: int = 1, width: int = 16, n_classes: int = 8, branch_dim: int = 256) -> PmsNet:
    """Registry builder (architecture ``pms-resnet18``)."""
    return PmsNet(channels=channels, width=width, n_classes=n_classes, branch_dim=branch_dim)
