"""A random-weight TEND carrying acquisition statistics, as `medlim train tend --data` stores them (shared by the
OOD page's AppTest and browser tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_tend_with_statistics(directory: Path, *, name: str, description: str, default: bool = False) -> Path:
    """Register ``name@1`` in the registry folder ``directory``: TEND (ID = hand, width 2, 64 px, threshold 0.3) with
    acquisition statistics fitted on 8 hand phantoms and calibrated on 4 more hands against 4 elbows (256 px)."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.ood.acquisition import fit_companion, statistics_features
    from medlim.curation.ood.nets import build_tend
    from medlim.curation.ood.scoring import Detector
    from medlim.phantoms.radiograph import generate_radiograph

    torch.manual_seed(0)
    model = build_tend(width=2, embedding=16).eval()
    params = {"input_size": 64, "id_classes": ["hand"], "weight": 0.5, "margin": 150.0}

    def images(part: str, first: int, n: int) -> np.ndarray:
        return np.stack([generate_radiograph(seed=3, index=first + k, body_part=part, size=256).image
                         for k in range(n)]).astype(np.float32)

    val = np.r_[images("hand", 8, 4), images("elbow", 0, 4)]
    companion = fit_companion(statistics_features(images("hand", 0, 8)), statistics_features(val),
                              np.r_[np.zeros(4, int), np.ones(4, int)],
                              Detector("tend", model, params, threshold=0.3).score(val).score)
    save_weights(Registry(directory), {
        "name": name, "version": "1", "task": "ood-detection", "architecture": "tend",
        "architecture_kwargs": {"channels": 1, "input_size": 64, "width": 2, "embedding": 16}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [64, 64]}, "thresholds": {"score": 0.3},
        "params": {**params, "acquisition": companion.to_json()}, "description": description, "default": default,
    }, model.state_dict())
    return directory
