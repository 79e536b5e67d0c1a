"""Retrieval networks: shapes, the torchvision ResNet-18 layout at width 64, PMS outputs, registry builders."""

from __future__ import annotations

import torch
import torchvision

from medlim.core.weights import resolve_architecture
from medlim.curation.retrieval.nets import EmbeddingNet, PmsNet, ResNet18Trunk


def test_trunk_at_width_64_has_resnet18_parameter_count_for_grey_input() -> None:
    reference = torchvision.models.resnet18(weights=None)
    # torchvision's conv1 takes 3 channels and its fc is the classifier: remove both differences
    expected = sum(p.numel() for p in reference.parameters()) - reference.fc.weight.numel() - reference.fc.bias.numel()
    expected -= reference.conv1.weight.numel() * 2 // 3
    trunk = ResNet18Trunk(channels=1, width=64)
    assert sum(p.numel() for p in trunk.parameters()) == expected
    assert trunk.feature_dim == 512


def test_embedding_and_pms_shapes() -> None:
    x = torch.rand(3, 1, 64, 64)
    net = EmbeddingNet(width=8, n_classes=7).eval()
    assert net(x).shape == (3, 64) and net.logits(x).shape == (3, 7)
    pms = PmsNet(width=8, n_classes=5, branch_dim=16).eval()
    e, p = pms(x)
    assert e.shape == (3, 5, 16) and p.shape == (3, 5)
    assert (e >= 0).all() and ((p > 0) & (p < 1)).all()
    pms.proxies.copy_(torch.ones(5, 16))
    s = pms.class_similarity(e)
    assert s.shape == (3, 5) and (s <= 1 + 1e-6).all()
    assert "proxies" in pms.state_dict()


def test_registry_builders_resolve() -> None:
    assert isinstance(resolve_architecture("retrieval-resnet18")(width=8), EmbeddingNet)
    assert isinstance(resolve_architecture("pms-resnet18")(width=8, n_classes=3), PmsNet)
