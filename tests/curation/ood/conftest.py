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


SHAPES = ("disc", "square", "stripes")


def write_shapes(root: Path, *, per_class: int = 18, classes: tuple[str, ...] = SHAPES, seed: int = 0,
                 size: int = 32) -> Path:
    """A tiny class-folder dataset ``root/<class>/<class>_NN.png``: grey noise with a disc, a square or stripes.

    18 per class gives a stratified 20 % validation part of 4 per class (≥ 10 images, as the check requires).
    """
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            image = rng.normal(0.2, 0.05, (size, size))
            cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
            radius = rng.uniform(0.15 * size, 0.28 * size)
            if name == "disc":
                image[(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] += 0.6
            elif name == "square":
                image[(abs(xx - cx) < radius) & (abs(yy - cy) < radius)] += 0.6
            else:
                image += 0.3 * (np.sin(xx / rng.uniform(1.5, 3.0)) > 0)
            cv2.imwrite(str(root / name / f"{name}_{k:02d}.png"), (np.clip(image, 0, 1) * 255).astype(np.uint8))
    return root


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    return write_shapes(tmp_path / "shapes")


@pytest.fixture
def make_shapes():
    """:func:`write_shapes`, for tests that need other sizes or seeds."""
    return write_shapes
