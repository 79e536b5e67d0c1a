"""BAC evaluation test data whose figures are computed by hand: a flat-output SCU-Net and three two-tone views."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_manifest(root: Path, rows: list[dict[str, str]]) -> None:
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def constant_bac_weights(logit: float = 20.0, name: str = "const-bac") -> str:
    """SCU-Net whose output is ``logit`` everywhere (20: sigmoid ≈ 1, every pixel of a predicted patch is BAC)."""
    import torch

    from medlim.core.weights import Registries
    from medlim.mammography.scunet import build_scunet

    model = build_scunet().eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(logit)
    Registries.load().register({
        "name": name, "version": "1", "task": "bac-segmentation", "architecture": "scunet", "preset": "thesis",
        "input_contract": {"channels": 3, "size": [512, 512], "range": [-1.0, 1.0]}, "output_type": "probability",
        "thresholds": {"output": 0.5},
        "params": {"overlap": 64, "merge": "max", "skip": "black", "output_activation": "sigmoid", "x": 100.0},
    }, model.state_dict())
    return f"{name}@1"


def two_tone_views(root: Path) -> Path:
    """Three 512×512 views, left half dark and right half bright: the thesis preset turns them into 1 | 255.

    BAC outlined in the bright half: 1000 px (view 0), 500 px (view 1), none (view 2).
    """
    from medlim.phantoms.base import save_png

    root.mkdir()
    boxes = [(slice(100, 110), slice(300, 400)), (slice(200, 210), slice(300, 350)), None]
    rows = []
    for index, box in enumerate(boxes):
        image = np.full((512, 512), 200, np.uint8)
        image[:, :256] = 60 + index  # different bytes, the same preprocessed view
        mask = np.zeros((512, 512), bool)
        if box is not None:
            mask[box] = True
        save_png(root / f"v{index}.png", image)
        save_png(root / f"v{index}_mask.png", mask)
        rows.append({"image": f"v{index}.png", "mask": f"v{index}_mask.png"})
    write_manifest(root, rows)
    return root
