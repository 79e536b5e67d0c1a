"""Fixtures for the OOD tests: a registry holding small, untrained but calibrated detectors."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_registry(directory: Path, *, input_size: int = 64, width: int = 2) -> Path:
    """Register random-weight AE, TEND and CVAD detectors (ID = hand) under ``directory``."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.ood.nets import build_cvad, build_ood_autoencoder, build_tend

    torch.manual_seed(0)
    registry = Registry(directory)
    common = {"input_size": input_size, "id_classes": ["hand"]}
    specs = [
        ("ae-test", "ood-autoencoder", build_ood_autoencoder(width=width, input_size=input_size),
         {"channels": 1, "width": width, "input_size": input_size}, dict(common)),
        ("tend-test", "tend", build_tend(width=width, input_size=input_size, embedding=16),
         {"channels": 1, "width": width, "input_size": input_size, "embedding": 16},
         {**common, "weight": 0.5, "margin": 150.0}),
        ("cvad-test", "cvad", build_cvad(width=width, input_size=input_size, latent=16),
         {"channels": 1, "width": width, "input_size": input_size, "latent": 16},
         {**common, "rec_min": 0.01, "rec_max": 0.2}),
    ]
    for name, architecture, model, kwargs, params in specs:
        model.eval()
        save_weights(registry, {
            "name": name, "version": "1", "task": "ood-detection", "architecture": architecture,
            "architecture_kwargs": kwargs, "preset": "ood-grey",
            "input_contract": {"channels": 1, "size": [input_size, input_size], "range": [0.0, 1.0]},
            "thresholds": {"score": 0.3}, "params": params,
        }, model.state_dict())
    return directory


@pytest.fixture
def ood_registry(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "weights")
