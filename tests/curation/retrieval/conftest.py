"""Shared fixtures: a weights registry with tiny untrained retrieval models and small phantom folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medlim.core.weights import Registry, save_weights
from medlim.curation.retrieval.nets import EmbeddingNet, PmsNet
from medlim.phantoms.chest import FINDINGS
from medlim.phantoms.radiograph import BODY_PARTS


def _fields(name: str, architecture: str, kwargs: dict, params: dict) -> dict:
    return {"name": name, "version": "1", "task": "image-retrieval", "architecture": architecture,
            "architecture_kwargs": kwargs, "preset": "ood-grey",
            "input_contract": {"channels": 1, "size": [32, 32], "dtype": "float32", "range": [0.0, 1.0]},
            "params": {"input_size": 32, **params}}


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """``tiny-embed`` (untrained, width 4) and ``tiny-pms`` (untrained, random proxies)."""
    registry = Registry(tmp_path_factory.mktemp("weights"))
    torch.manual_seed(0)
    embed = EmbeddingNet(width=4).eval()
    save_weights(registry, _fields("tiny-embed", "retrieval-resnet18", {"width": 4},
                                   {"method": "oscars", "classes": list(BODY_PARTS)}), embed.state_dict())
    pms = PmsNet(width=4, n_classes=len(FINDINGS), branch_dim=8).eval()
    pms.proxies.copy_(torch.rand(len(FINDINGS), 8))
    save_weights(registry, _fields("tiny-pms", "pms-resnet18", {"width": 4, "n_classes": len(FINDINGS), "branch_dim": 8},
                                   {"method": "pms", "classes": list(FINDINGS)}), pms.state_dict())
    return registry


@pytest.fixture(scope="session")
def radiograph_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medlim.cli import main

    out = tmp_path_factory.mktemp("radiographs")
    assert main(["phantom", "radiograph", "--n", "14", "--seed", "3", "--size", "32", "--site", "mixed",
                 "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def chest_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medlim.cli import main

    out = tmp_path_factory.mktemp("chest")
    assert main(["phantom", "chest", "--n", "20", "--seed", "3", "--size", "32", "--quiet", "--out", str(out)]) == 0
    return out
