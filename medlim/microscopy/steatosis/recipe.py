"""``medlim train steatosis``: phantoms → weak labels → Mask R-CNN → held-out evaluation → registry (thesis §3.2).

The recipe reproduces the shipped steatosis weights from a seed: training
phantoms of one seed get screened weak labels (:mod:`.weak`; the phantoms'
ground truth is not used), the network (:mod:`.network`) is trained on them
(:mod:`.train`), saved through :func:`medlim.core.weights.save_weights`, then
evaluated against the ground truth of held-out phantoms of another seed
(:mod:`.evaluation`) and saved again with the measured metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

import medlim
from medlim.core.weights import Registry, WeightsEntry, save_weights
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.evaluation import evaluate_methods
from medlim.microscopy.steatosis.inference import MASK_THRESHOLD
from medlim.microscopy.steatosis.network import DENSE_TILE_SETTINGS, build_steatosis_maskrcnn
from medlim.microscopy.steatosis.train import (
    SteatosisTrainingConfig,
    SteatosisTrainingReport,
    TrainingTile,
    train_maskrcnn,
    weak_training_tiles,
)
from medlim.phantoms.he import PIXEL_SIZE_UM

__all__ = ["TRAIN_SEED", "WEIGHTS_NAME", "train_and_register"]

#: Seed of the shipped weights' training phantoms.
TRAIN_SEED = 11
#: Registry name of the shipped weights.
WEIGHTS_NAME = "maskrcnn-steatosis"
#: What the weights' ``input.scale`` says of phantom-trained weights (issue 13: every image model records its scale).
PHANTOM_SCALE = (f"H&E phantoms of medlim.phantoms.he at its nominal {PIXEL_SIZE_UM:g} µm per pixel (the generator draws "
                 "in pixels; the size was declared on 2026-12-07 from the anatomy it draws, see the module docstring): "
                 "an image that states another size is resized to it for detection, and one that states none is "
                 "taken to be at it, with a warning")


def train_and_register(
    *,
    seed: int = TRAIN_SEED,
    tiles: int = 40,
    tile_size: int = 512,
    heldout_seed: int = 7,
    heldout_n: int = 8,
    heldout_size: int = 512,
    backbone: str = "resnet10",
    config: SteatosisTrainingConfig = SteatosisTrainingConfig(),
    name: str = WEIGHTS_NAME,
    version: str = "1",
    command: str = "medlim train steatosis",
    registry: Registry | None = None,
    device: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> WeightsEntry:
    """Train, register and evaluate the steatosis network; return the registry entry.

    Args:
        seed: training phantom seed (indices 0..tiles−1).
        tiles: number of training phantoms.
        tile_size: side of each training phantom in px (random crops of
            ``config.crop`` are sampled from them).
        heldout_seed: evaluation phantom seed (must differ from ``seed``).
        heldout_n: evaluation phantoms.
        heldout_size: side of each evaluation phantom.
        backbone: ``"resnet10"``, ``"resnet18"`` or ``"resnet50"``.
        config: training hyper-parameters.
        name, version: registry key.
        command: the command line recorded in the provenance.
        registry: a :class:`medlim.core.weights.Registry` (default: settings).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        log: receives progress lines.
    """
    if seed == heldout_seed:
        raise ParameterError(f"training and held-out phantoms must use different seeds, both are {seed}.")
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    training_tiles = _weak_tiles(seed=seed, tiles=tiles, tile_size=tile_size, log=log)
    data_seconds = time.perf_counter() - start
    model = build_steatosis_maskrcnn(backbone=backbone)
    report = train_maskrcnn(
        model, training_tiles, config=config, device=device,
        progress=lambda step, total, losses: log(
            f"step {step}/{total} loss {losses['total']:.3f} (mask {losses.get('loss_mask', 0):.3f}, "
            f"cls {losses.get('loss_classifier', 0):.3f}, rpn {losses.get('loss_objectness', 0):.3f})"
        ),
        key=("steatosis-recipe", command, name, version, seed, tiles, tile_size, backbone),  # in a job: resumed
    )
    model = model.to("cpu").eval()
    log(f"trained {report.iterations} steps in {report.seconds:.0f} s on {report.device}")
    fields = _entry_fields(name=name, version=version, command=command, seed=seed, backbone=backbone, tiles=tiles,
                           tile_size=tile_size)
    registry = Registry.load() if registry is None else registry
    training = _training_summary(report, config=config, backbone=backbone, data_seconds=data_seconds)
    entry = save_weights(registry, {**fields, "metrics": {"training": training}}, model.state_dict())
    log(f"saved {entry.label}; evaluating on held-out seed {heldout_seed}")
    summary = evaluate_methods(model, seed=heldout_seed, n=heldout_n, size=heldout_size, log=log)
    metrics = {"training": training, "heldout": f"medlim.phantoms.he seed {heldout_seed}, {heldout_n} images "
               f"{heldout_size}px", **summary}
    return save_weights(registry, {**fields, "metrics": metrics}, model.state_dict())


def _weak_tiles(*, seed: int, tiles: int, tile_size: int, log: Callable[[str], None]) -> list[TrainingTile]:
    """The training phantoms with their screened weak labels (a progress line every 10)."""
    start = time.perf_counter()
    training_tiles = []
    for index, tile in enumerate(weak_training_tiles(seed=seed, count=tiles, size=tile_size), start=1):
        training_tiles.append(tile)
        if index % 10 == 0 or index == tiles:
            log(f"weak labels {index}/{tiles} ({time.perf_counter() - start:.0f} s)")
    return training_tiles


def _entry_fields(
    *, name: str, version: str, command: str, seed: int, backbone: str, tiles: int, tile_size: int
) -> dict[str, Any]:
    """The registry fields of trained steatosis weights (metrics still empty)."""
    return {
        "name": name,
        "version": version,
        "task": "steatosis-instance-segmentation",
        "architecture": "maskrcnn-steatosis",
        "architecture_kwargs": {"backbone": backbone, **DENSE_TILE_SETTINGS},
        "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0],
                           "pixel_spacing_mm": [PIXEL_SIZE_UM / 1000.0, PIXEL_SIZE_UM / 1000.0], "scale": PHANTOM_SCALE},
        "output_type": "probability",
        "thresholds": {"mask": MASK_THRESHOLD, "score": 0.5},
        "params": {"tile": 1024, "overlap": 128, "classes": ["background", "droplet"]},
        "provenance": {
            "command": command,
            "seed": int(seed),
            "data_generator": "medlim.phantoms.he (weak labels from medlim.microscopy.steatosis.weak, screened)",
            "data_generator_version": medlim.__version__,
        },
        "description": (
            f"Mask R-CNN (torchvision, 2 classes, backbone {backbone}-FPN, no pretrained weights) for steatosis "
            f"droplets in H&E, trained on {tiles} phantoms {tile_size}px with screened weak labels"
        ),
        "metrics": {},
    }


def _training_summary(
    report: SteatosisTrainingReport, *, config: SteatosisTrainingConfig, backbone: str, data_seconds: float
) -> dict[str, Any]:
    """The training settings and outcome recorded in the manifest's metrics."""
    settings = {("max_iterations" if k == "iterations" else k): v for k, v in asdict(config).items()}
    return {"backbone": backbone, **settings,
            "steps": report.iterations, "tiles": report.tiles, "weak_masks": report.weak_masks,
            "final_loss": round(report.final_loss, 4), "seconds": round(report.seconds, 1),
            "data_seconds": round(data_seconds, 1), "device": report.device}
