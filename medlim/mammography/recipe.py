"""The reproducible recipe behind the shipped SCU-Net weights: phantoms from a
seed → patches → training → evaluation on held-out phantoms → registry entry.

``medlim train scunet`` and ``medlim bac evaluate`` call these functions; the
exact command, seed and generator are written into the weights' manifest.
Training and held-out phantoms come from different seeds (the series are
disjoint patients).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import medlim
from medlim.core.weights import Registry, WeightsEntry, build_model, save_weights
from medlim.errors import ParameterError
from medlim.mammography.analysis import bac_model_from_entry
from medlim.mammography.evaluate import BacEvaluation, evaluate_bac
from medlim.mammography.scunet import build_scunet
from medlim.mammography.train import (
    PatchSet,
    TrainingConfig,
    TrainingImage,
    TrainingReport,
    combine_patches,
    extract_image_patches,
    train_scunet,
)
from medlim.phantoms.mammogram import generate_mammogram

__all__ = ["PhantomSpec", "phantom_samples", "phantom_patches", "train_and_register", "HELDOUT_SEED"]

#: Seed of the held-out evaluation phantoms (never used for training).
HELDOUT_SEED = 90_001


@dataclass(frozen=True)
class PhantomSpec:
    """Which mammogram phantoms to draw.

    Attributes:
        seed: series seed.
        count: number of images.
        sizes: phantom sizes to alternate (``"full"``, ``"full-small"``, ``"small"``).
        bac_fraction: fraction of patients with BAC.
    """

    seed: int
    count: int
    sizes: tuple[str, ...] = ("full", "full-small")
    bac_fraction: float = 0.85

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ParameterError(f"`count` must be at least 1, {self.count} is given.")
        if not self.sizes:
            raise ParameterError("`sizes` must name at least one phantom size.")


def _one(args: tuple[int, int, str, float]) -> tuple[str, np.ndarray, np.ndarray, float]:
    seed, index, size, bac_fraction = args
    # One image per patient (index · 4 picks the patient's first view, then views rotate).
    phantom = generate_mammogram(seed=seed, index=index, size=size, bac_fraction=bac_fraction)
    image = np.clip(np.rint(phantom.image * 255.0), 0, 255).astype(np.uint8)
    name = f"phantom-s{seed}-i{index}-{size}-{phantom.metadata.view_label}"
    return name, image, phantom.bac_mask, float(phantom.metadata.pixel_spacing_mm)


def _patches(args: tuple[int, int, str, float, int, bool | str, str]) -> tuple[PatchSet, PatchSet]:
    seed, index, size, bac_fraction, max_negatives, skip, preset = args
    _, image, mask, _spacing = _one((seed, index, size, bac_fraction))
    return extract_image_patches(
        TrainingImage(image=image, bac_mask=mask),
        preset=preset,
        max_negatives=max_negatives,
        rng=np.random.default_rng([seed, index]),
        skip=skip,
    )


def phantom_patches(
    spec: PhantomSpec, *, max_negatives: int, workers: int | None = None, skip: bool | str = True,
    preset: str = "thesis",
) -> Iterator[tuple[PatchSet, PatchSet]]:
    """Per image of the spec: (BAC patches, up to ``max_negatives`` BAC-free patches), preprocessed
    by ``preset``, background by the ``skip`` rule of
    :func:`~medlim.mammography.train.extract_image_patches` — generation and
    preprocessing run in worker processes."""
    jobs = [(spec.seed, i, spec.sizes[i % len(spec.sizes)], spec.bac_fraction, max_negatives, skip, preset)
            for i in range(spec.count)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        yield from map(_patches, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_patches, jobs, chunksize=1)


def phantom_samples(
    spec: PhantomSpec, *, workers: int | None = None
) -> Iterator[tuple[str, np.ndarray, np.ndarray, float]]:
    """Yield ``(name, image np.uint8[H, W], bac_mask np.bool_[H, W], pixel spacing mm)`` for the spec, in order.

    Generation runs in ``workers`` processes (default: all CPUs); the 8-bit image is
    the phantom's presentation image rounded to 0..255, exactly what the reader's
    ``ImageRecord.to_uint8`` gives for the same phantom written as DICOM.
    """
    jobs = [(spec.seed, i, spec.sizes[i % len(spec.sizes)], spec.bac_fraction) for i in range(spec.count)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        yield from map(_one, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_one, jobs, chunksize=1)


def train_and_register(
    *,
    train_spec: PhantomSpec,
    heldout_spec: PhantomSpec,
    config: TrainingConfig,
    negative_fraction: float,
    name: str,
    version: str,
    command: str,
    registry: Registry | None = None,
    device: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] = print,
    skip: bool | str = True,
    preset: str = "thesis",
    init: str | None = None,
) -> tuple[WeightsEntry, BacEvaluation]:
    """Generate phantoms, train SCU-Net, evaluate on held-out phantoms, register.

    ``skip`` is the background-patch rule for both the training patches and
    the registered weights' inference (True: the authors' rule; ``"black"``:
    only black patches, as the thesis text says); ``preset`` the
    preprocessing (``"thesis"`` or ``"thesis-unclipped"``), likewise both;
    ``init`` names registered SCU-Net weights (``name`` or ``name:version``) to
    start from instead of a fresh network (fine-tuning), recorded in the
    provenance.

    Returns:
        The new registry entry (with the measured metrics) and the evaluation.
    """
    if train_spec.seed == heldout_spec.seed:
        raise ParameterError("training and held-out phantoms must come from different seeds.")
    torch.manual_seed(config.seed)
    patches = _training_patches(train_spec, config=config, negative_fraction=negative_fraction, workers=workers,
                                skip=skip, preset=preset, log=log)
    log(f"training patches: {len(patches)} ({int(sum(m.any() for m in patches.mask))} with BAC)")
    registry = Registry.load() if registry is None else registry
    model = _starting_model(registry, init, log=log)
    report = train_scunet(
        model,
        patches,
        preset=preset,
        config=config,
        device=device,
        progress=lambda e, n, loss: log(f"epoch {e}/{n} soft-Dice loss {loss:.4f}"),
        key=("scunet-recipe", command, name, version),  # inside a job: resumed per epoch
    )
    model = model.to("cpu").eval()
    fields = _entry_fields(name=name, version=version, command=command, train_spec=train_spec, config=config,
                           negative_fraction=negative_fraction, skip=skip, preset=preset, init=init)
    entry = save_weights(registry, fields, model.state_dict())
    bac_model = bac_model_from_entry(entry, model)
    summary, _ = evaluate_bac(
        bac_model,
        phantom_samples(heldout_spec, workers=workers),
        progress=lambda done, n: log(f"evaluated {done}/{heldout_spec.count}: {n}"),
    )
    metrics = _heldout_metrics(summary, heldout_spec, report)
    entry = save_weights(registry, {**fields, "metrics": metrics}, model.state_dict())
    return entry, summary


def _training_patches(
    spec: PhantomSpec, *, config: TrainingConfig, negative_fraction: float, workers: int | None, skip: bool | str,
    preset: str, log: Callable[[str], None],
) -> PatchSet:
    """The training phantoms' patches, BAC-free ones mixed in at ``negative_fraction`` (progress every 20 images)."""
    def parts() -> Iterator[tuple[PatchSet, PatchSet]]:
        for done, part in enumerate(phantom_patches(spec, max_negatives=4 if negative_fraction else 0,
                                                    workers=workers, skip=skip, preset=preset), start=1):
            if done % 20 == 0 or done == spec.count:
                log(f"phantoms {done}/{spec.count}")
            yield part

    return combine_patches(parts(), negative_fraction=negative_fraction, rng=np.random.default_rng(config.seed))


def _starting_model(registry: Registry, init: str | None, *, log: Callable[[str], None]) -> torch.nn.Module:
    """A fresh SCU-Net, or one holding the registered SCU-Net weights named by ``init`` (``name[:version]``)."""
    model = build_scunet()
    if init is None:
        return model
    start_name, _, start_version = init.partition(":")
    start = registry.get(start_name, start_version or None)
    if start.architecture != "scunet":
        raise ParameterError(f"--init must name SCU-Net weights; {init!r} is a {start.architecture!r}.")
    model.load_state_dict(build_model(start, device="cpu").state_dict())
    log(f"starting from {start.name} v{start.version}")
    return model


def _entry_fields(
    *, name: str, version: str, command: str, train_spec: PhantomSpec, config: TrainingConfig,
    negative_fraction: float, skip: bool | str, preset: str, init: str | None,
) -> dict[str, Any]:
    """The registry fields of trained SCU-Net weights (metrics still empty)."""
    from medlim.core.spacing import training_spacing
    from medlim.phantoms.mammogram import SIZES

    params = {"overlap": 64, "merge": "max", "skip": skip, "output_activation": "sigmoid", "x": 100.0,
              "negative_fraction": negative_fraction}
    per_size = [sum(1 for i in range(train_spec.count) if train_spec.sizes[i % len(train_spec.sizes)] == size)
                for size in train_spec.sizes]  # images alternate between the sizes
    spacing = training_spacing(((SIZES[size][2], SIZES[size][2], n) for size, n in zip(train_spec.sizes, per_size)),
                               where=f"phantom sizes {','.join(train_spec.sizes)}")
    return {
        "name": name,
        "version": version,
        "task": "bac-segmentation",
        "architecture": "scunet",
        "preset": preset,
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0], **spacing},
        "output_type": "probability",
        "thresholds": {"output": 0.5},
        "params": params,
        "provenance": {
            "command": command,
            "seed": config.seed,
            "data_generator": f"medlim.phantoms.mammogram (seed {train_spec.seed}, {train_spec.count} images, "
            f"sizes {','.join(train_spec.sizes)})",
            "data_generator_version": medlim.__version__,
            "source": None if init is None else f"fine-tuned from registered weights {init}",
        },
        "description": "SCU-Net for breast arterial calcification, trained on synthetic mammogram phantoms",
        "metrics": {},
    }


def _heldout_metrics(summary: BacEvaluation, heldout_spec: PhantomSpec, report: TrainingReport) -> dict[str, Any]:
    """The evaluation on held-out phantoms and the training summary, as manifest metrics (NaN → null)."""
    def num(value: float) -> float | None:
        return None if value != value else round(float(value), 4)  # NaN → null (valid JSON)

    return {
        "heldout": f"medlim.phantoms.mammogram seed {heldout_spec.seed}, {heldout_spec.count} images",
        "whole_image_dice": num(summary.whole_image["f1"]),
        "whole_image_jaccard": num(summary.whole_image["jaccard"]),
        "whole_image_dice_pooled": num(summary.whole_image_pooled["f1"]),
        "whole_image_recall": num(summary.whole_image["recall"]),
        "whole_image_precision": num(summary.whole_image["precision"]),
        "patch_dice": num(summary.patch_wise["f1"]),
        "r2": {k: num(a.r2) for k, a in summary.agreement.items()},
        "tam_relative_bias": num(summary.tam_relative_bias),
        "false_am_mm2_median": None if summary.false_am_mm2_median is None else num(summary.false_am_mm2_median),
        "bland_altman": {k: {"bias": num(a.bias), "loa": [num(a.loa_low), num(a.loa_high)]}
                         for k, a in summary.agreement.items()},
        "training": {"patches": report.patches, "epochs": report.epochs, "final_loss": round(report.final_loss, 4),
                     "seconds": round(report.seconds, 1), "device": report.device},
    }
