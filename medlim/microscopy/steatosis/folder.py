"""Mask R-CNN for steatosis droplets trained on a user's H&E images, without annotation (issue 12; thesis §3.2).

The thesis's point (§3.2.2) is that no droplet needs outlining: weak labels
made from the image itself (:mod:`.weak`), screened, teach the network. So
``medlim train steatosis --data DIR`` takes images only — any layout's images
are accepted and masks, if any, are ignored — and :func:`train_steatosis_on_folder`:

1. checks the folder as ``medlim data check --task steatosis`` does and splits it
   20 % by patient, else by image (or ``--val DIR``), by
   :func:`medlim.core.training.prepare_training_data`;
2. reads every image once and cuts large ones into tiles of at most
   :data:`WEAK_TILE` px (the thesis tile), where the weak labels are computed
   and screened (:func:`~medlim.microscopy.steatosis.weak.weak_labels`); at most
   ``max_tiles`` tiles are kept (a seeded sample);
3. plans the settings from the data and the machine (:func:`plan_steatosis`);
4. starts from the task's default weights (``maskrcnn-steatosis``; ``--init none``:
   a fresh network) and trains under the harness
   (:func:`medlim.core.training.fit`), an epoch being ``steps_per_epoch``
   optimiser steps (:class:`~medlim.microscopy.steatosis.train.SteatosisTrainer`);
5. validates after every epoch by **agreement with the screened weak labels**
   of the validation images' crops — there is no annotation to validate
   against: F1 of droplets matched at mask IoU ≥ 0.5 (the Table 3.2 protocol),
   detections lying mostly on masks the screening rejected left out (there the
   weak method is known to fail); the best state is kept;
6. registers the model in the user registry with the dataset's fingerprint,
   the split, the plan and the figures; the recorded command names the data by
   fingerprint and the starting weights by name and version;
7. fits the "unlike my training data" check (issue 13; :mod:`.familiarity`) on
   the weak-labelled training tiles, its limit chosen with the validation crops,
   and stores it beside the weights: ``medlim steatosis segment`` and the page
   score every image against it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import medlim
from medlim.core.training import (
    Deadline,
    NotValidatedError,
    Progress,
    TrainingData,
    TrainingOutcome,
    TrainingPlan,
    ValidationScore,
    fit,
    prepare_training_data,
    recorded_command,
)
from medlim.core.training_resume import claim_once, fit_resume, register_once
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medlim.core.datasets import Dataset
    from medlim.core.weights import Registries, WeightsEntry
    from medlim.microscopy.steatosis.train import TrainingTile

__all__ = ["STEATOSIS_TASK", "WEAK_TILE", "SteatosisRun", "SteatosisPlan", "ValidationCrop", "plan_steatosis",
           "read_rgb", "weak_tiles", "agreement", "train_steatosis_on_folder"]

#: Registry task of steatosis models.
STEATOSIS_TASK = "steatosis-instance-segmentation"
#: Largest side of the tiles weak labels are computed on (the thesis's 1024 px tiles).
WEAK_TILE = 1024
#: Side of the validation crops (at most).
VAL_CROP = 512
#: ``--init`` value meaning "a freshly initialised network".
NO_INIT = "none"
_LIMITS = {"cpu": {"max_tiles": 120, "val_crops": 8, "steps_per_epoch": 25, "batch_size": 2},
           "cuda": {"max_tiles": 400, "val_crops": 32, "steps_per_epoch": 100, "batch_size": 4}}
_TARGET_STEPS = {("fine-tune", "cpu"): 300, ("fine-tune", "cuda"): 2000, ("fresh", "cpu"): 600,
                 ("fresh", "cuda"): 4000}
PATIENCE = 4


@dataclass(frozen=True)
class SteatosisRun:
    """What ``medlim train steatosis --data DIR`` asked for.

    Attributes:
        data_dir: the folder of H&E images.
        val_dir: a separate validation folder, or ``None`` (20 % held out).
        init: starting weights ``NAME[@VERSION]``, ``"none"`` for a fresh network, or
            ``None`` for the task's default weights.
        backbone: backbone of a fresh network (``resnet10``, ``resnet18``, ``resnet50``).
        name: registry name (default ``maskrcnn-steatosis-<first 8 characters of the fingerprint>``).
        version: registry version (default: the next free one).
        seed: split, sampling and initialisation seed.
        skip_bad: leave out bad rows instead of refusing the dataset.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when present).
        overrides: planned settings given on the command line (``iterations``, ``batch_size``, ``crop``,
            ``learning_rate``, ``threads``, ``steps_per_epoch``).
        command_options: further ``(flag, value)`` pairs of the recorded command (no paths).
    """

    data_dir: Path
    val_dir: Path | None = None
    init: str | None = None
    backbone: str = "resnet10"
    name: str | None = None
    version: str | None = None
    seed: int = 0
    skip_bad: bool = False
    device: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    command_options: Sequence[tuple[str, Any]] = ()


@dataclass(frozen=True)
class ValidationCrop:
    """One validation crop and its screened weak labels (the reference the network is compared with).

    Attributes:
        image: ``np.ndarray[h, w, 3]`` uint8 RGB.
        labels: ``np.ndarray[h, w]`` int32 screened weak droplets 1..k.
        rejected: ``np.ndarray[h, w]`` bool, masks the screening rejected.
    """

    image: np.ndarray
    labels: np.ndarray
    rejected: np.ndarray


@dataclass(frozen=True)
class SteatosisPlan:
    """A planned run: the training settings and the record.

    Attributes:
        iterations: optimiser steps planned (``steps_per_epoch × epochs``).
        steps_per_epoch, epochs: an epoch is the step boundary of validation and of the time budget.
        batch_size, crop, learning_rate, warmup, threads: the trainer's settings.
        patience: validations without improvement before stopping.
        plan: what the manifest records.
    """

    iterations: int
    steps_per_epoch: int
    epochs: int
    batch_size: int
    crop: int
    learning_rate: float
    warmup: int
    threads: int
    patience: int
    plan: TrainingPlan


def _check_overrides(overrides: Mapping[str, Any]) -> None:
    for key in ("iterations", "batch_size", "crop", "threads", "steps_per_epoch"):
        value = overrides.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ParameterError(f"--{key.replace('_', '-')} must be a positive integer; {value!r} is given.")
    if overrides.get("crop") is not None and overrides["crop"] < 64:
        raise ParameterError(f"--crop must be at least 64 px; {overrides['crop']} is given.")
    lr = overrides.get("learning_rate")
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ParameterError(f"--lr must be a positive number; {lr!r} is given.")


def plan_steatosis(
    *, device: str, fine_tune: bool, tiles: int, weak_masks: int, smallest_side: int,
    median_side: tuple[int, int] | None, colour: int, images: int, seed: int = 0,
    overrides: Mapping[str, Any] | None = None, starting_point: str = "",
) -> SteatosisPlan:
    """Plan a steatosis run on a user's images (the shipped recipe's settings as the starting point).

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        fine_tune: whether training starts from registered weights.
        tiles: weak-labelled training tiles; ``weak_masks``: screened droplets in them.
        smallest_side: the smallest side of a training tile in px.
        median_side: median image ``(height, width)`` (for the record).
        colour: colour images read; ``images``: images read.
        seed: sampling seed.
        overrides: settings given on the command line.
        starting_point: where the weights start, for the record.

    Raises:
        ParameterError: a bad override or device.
    """
    if device not in _LIMITS:
        raise ParameterError(f"`device` must be 'cpu' or 'cuda', {device!r} is given.")
    overrides = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    _check_overrides(overrides)
    mode = "fine-tune" if fine_tune else "fresh"
    limits = _LIMITS[device]
    crop = int(overrides.get("crop") or max(64, min(256, (smallest_side // 32) * 32)))
    steps = int(overrides.get("steps_per_epoch") or limits["steps_per_epoch"])
    iterations = int(overrides.get("iterations") or _TARGET_STEPS[(mode, device)])
    settings: dict[str, Any] = {
        "start": starting_point or mode, "device": device, "crop": crop, "batch_size": limits["batch_size"],
        "learning_rate": 2e-4 if fine_tune else 5e-4, "warmup": 0 if fine_tune else 50, "threads": 1,
        "steps_per_epoch": steps, "iterations": iterations, "epochs": max(1, math.ceil(iterations / steps)),
        "patience": PATIENCE, "weak_tile": WEAK_TILE, "val_crop": VAL_CROP, "val_crops": limits["val_crops"],
        "max_tiles": limits["max_tiles"], "seed": seed}
    size = f"median image {median_side[0]}×{median_side[1]} px" if median_side else "no image size measured"
    reasons = {
        "start": f"{mode}: " + ("the task's default weights (--init none trains from scratch)" if fine_tune
                                else "a freshly initialised network (no pretrained weights exist here)"),
        "weak_labels": f"thesis §3.2.2 adapted to bright field, screened by the automatic rule, on tiles of at most "
                       f"{WEAK_TILE} px ({size}): {tiles} tiles, {weak_masks} screened droplets; no annotation",
        "crop": f"{crop} px training crops (the shipped 256, within the smallest tile side {smallest_side} px)",
        "batch_size": f"{limits['batch_size']} crops a step on {device}",
        "learning_rate": ("AdamW 2e-4 when fine-tuning (below the shipped 5e-4 from scratch)" if fine_tune
                          else "AdamW 5e-4 after 50 warm-up steps (the shipped recipe)"),
        "schedule": "cosine to 2 % over the planned steps or the time budget, whichever ends first",
        "iterations": f"about {_TARGET_STEPS[(mode, device)]} steps ({mode} on {device}); the best validated "
                      "epoch is kept",
        "augmentation": "flips, 90° turns, Gaussian blur, stain (optical density) and illumination jitter; crops "
                        "avoid masks the screening rejected (the shipped recipe)",
        "normalisation": "RGB in [0, 1], the network's fixed H&E mean and SD; images are not rescaled",
        "colour": f"{colour} of {images} images are colour" + ("" if colour == images else
                                                                 "; grey ones are repeated to three channels"),
        "validation": f"agreement with the screened weak labels of at most {limits['val_crops']} validation crops "
                      f"of {VAL_CROP} px (there is no annotation): droplet F1 at mask IoU ≥ 0.5, detections on "
                      "rejected masks left out; ties broken by AP",
        "early_stopping": f"after {PATIENCE} validations without a better F1",
        "threads": "1 torch thread on a CPU (the shipped recipe: faster on shared cores)",
    }
    for key in overrides:
        planned = settings.get(key)
        reasons[key] = "given on the command line" + (f" (planned: {planned})" if planned is not None else "")
    settings.update(overrides)
    settings["epochs"] = max(1, math.ceil(int(settings["iterations"]) / int(settings["steps_per_epoch"])))
    record = TrainingPlan(task="steatosis", settings=settings, reasons=reasons, overridden=tuple(sorted(overrides)))
    return SteatosisPlan(iterations=int(settings["epochs"]) * int(settings["steps_per_epoch"]),
                         steps_per_epoch=int(settings["steps_per_epoch"]), epochs=int(settings["epochs"]),
                         batch_size=int(settings["batch_size"]), crop=int(settings["crop"]),
                         learning_rate=float(settings["learning_rate"]), warmup=int(settings["warmup"]),
                         threads=int(settings["threads"]), patience=PATIENCE, plan=record)


def read_rgb(dataset: "Dataset", index: int) -> tuple[np.ndarray, bool]:
    """Item ``index`` as ``np.uint8[H, W, 3]`` RGB, and whether the file was colour (grey is repeated)."""
    from medlim.core.io import read_image

    item = dataset.items[index]
    pixels = read_image(item.image, name=dataset.display_name(item.image)).to_uint8()
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2), False
    return np.ascontiguousarray(pixels[..., :3]), True


def _windows(shape: tuple[int, ...], side: int) -> list[tuple[slice, slice]]:
    """Non-overlapping tiles of at most ``side`` px covering an image (the last row and column snapped)."""
    from medlim.core.tiling import overlapping_tiles

    return [tile.window for tile in overlapping_tiles((int(shape[0]), int(shape[1])), tile=side, overlap=0)]


def weak_tiles(
    dataset: "Dataset", indices: Sequence[int], *, side: int, limit: int, rng: np.random.Generator,
    deadline: Deadline, what: str, progress: Progress | None = None,
) -> tuple[list[ValidationCrop], int]:
    """Weak labels on tiles of at most ``side`` px of the images ``indices``, at most ``limit`` tiles.

    Each image is read once; with more images than ``limit`` a seeded sample of
    them is used, and each image gives at most ``ceil(limit / images)`` of its
    tiles (a seeded sample), so memory holds one image at a time.

    Returns:
        ``(tiles, colour images)``; each tile holds its image, screened labels and rejected masks.

    Raises:
        NotValidatedError: the budget ran out while the labels were made.
    """
    from medlim.microscopy.steatosis.weak import weak_labels

    chosen = list(indices)
    if len(chosen) > limit:
        chosen = sorted(int(i) for i in rng.choice(chosen, size=limit, replace=False))
    quota = max(1, math.ceil(limit / max(1, len(chosen))))
    out: list[ValidationCrop] = []
    colour = 0
    for done, index in enumerate(chosen, start=1):
        if deadline.expired():
            raise NotValidatedError(f"the time budget of {deadline.describe()} ran out while making weak labels for "
                                    f"the {what} ({done - 1} of {len(chosen)} images). Nothing was registered; give "
                                    "more minutes, or fewer or smaller images.")
        image, is_colour = read_rgb(dataset, index)
        colour += int(is_colour)
        windows = _windows(image.shape, side)
        picks = sorted(rng.choice(len(windows), size=min(quota, len(windows)), replace=False).tolist())
        for k in picks:
            tile = np.ascontiguousarray(image[windows[k]])
            weak = weak_labels(tile)
            out.append(ValidationCrop(image=tile, labels=weak.screened,
                                      rejected=(weak.labels > 0) & ~weak.kept[weak.labels]))
        if progress is not None and (done % 10 == 0 or done == len(chosen)):
            progress(f"weak labels: {done}/{len(chosen)} {what} images, {len(out)} tiles")
    return out[:limit], colour


def agreement(model: "torch.nn.Module", crops: Sequence[ValidationCrop], *, tile: int = 1024, overlap: int = 128,
              min_score: float = 0.5) -> dict[str, float]:
    """Mean agreement of the network with the screened weak labels of ``crops`` (thesis Table 3.2 protocol).

    Detections lying mostly (≥ half) on masks the screening rejected are left
    out: there the weak method is known to have failed, so the reference says nothing.

    Returns:
        ``{"f1", "ap", "precision", "recall", "jaccard", "crops", "weak_droplets"}`` (means over the crops).
    """
    from medlim.microscopy.steatosis.analysis import drop_outside_tissue
    from medlim.microscopy.steatosis.evaluation import score_labels
    from medlim.microscopy.steatosis.inference import detect_droplets

    rows = []
    for index, crop in enumerate(crops):
        found = detect_droplets(model, crop.image, tile=tile, overlap=min(overlap, tile - 1), min_score=0.05)
        labels, scores = drop_outside_tissue(found.labels, found.scores, ~crop.rejected)
        rows.append(score_labels("network", index, crop.labels, labels, scores, min_score=min_score))
    means = {key: float(np.mean([getattr(row, key) for row in rows])) for key in
             ("f1", "ap", "precision", "recall", "jaccard")}
    return {**means, "crops": len(rows), "weak_droplets": int(sum(row.n_true for row in rows))}


@dataclass(frozen=True)
class _Start:
    model: "torch.nn.Module"
    entry: "WeightsEntry | None"
    architecture_kwargs: Mapping[str, Any]
    tile: int
    overlap: int

    @property
    def label(self) -> str:
        return NO_INIT if self.entry is None else self.entry.label


def _starting_point(registries: "Registries", run: SteatosisRun, progress: Progress | None) -> _Start:
    """The task's default weights, the ``--init`` weights, or a fresh network of ``run.backbone``."""
    import torch

    from medlim.core.weights import build_model, parse_model_spec
    from medlim.microscopy.steatosis.analysis import DEFAULT_STEATOSIS_WEIGHTS
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    torch.manual_seed(run.seed)
    if run.init is not None and run.init.strip().lower() == NO_INIT:
        return _Start(build_steatosis_maskrcnn(backbone=run.backbone), None, {"backbone": run.backbone}, 1024, 128)
    if run.init is None:
        entry = registries.default(STEATOSIS_TASK) or registries.get(DEFAULT_STEATOSIS_WEIGHTS)
    else:
        spec = parse_model_spec(run.init)
        entry = registries.get(spec.name, spec.version)
    if entry.architecture != "maskrcnn-steatosis":
        raise ParameterError(f"--init must name steatosis Mask R-CNN weights; {entry.label} is a "
                             f"{entry.architecture!r}.")
    if progress is not None:
        progress(f"starting from {entry.label} (fine-tuning; --init none trains from scratch)")
    params = dict(entry.params)
    return _Start(build_model(entry, device="cpu").train(), entry, dict(entry.architecture_kwargs),
                  int(params.get("tile", 1024)), int(params.get("overlap", 128)))


def training_spacing(paths: Sequence[Path]) -> dict[str, Any]:
    """What the weights record of their training images' pixel size (issue 13), as ``input`` contract fields.

    When every training image states its pixel size (TIFF / OME-TIFF metadata, read from the header), the lower
    median is recorded as ``pixel_spacing_mm`` (µm ÷ 1000, the field every image model shares) with the range as
    ``spacing_range_mm``, and inference resizes an image of another size to it
    (:func:`medlim.microscopy.steatosis.analysis.resample_factor`). Otherwise nothing is recorded and ``scale``
    says why: an image without a size cannot be put on a scale, so weights trained on such images run every image
    at its own pixels (the shipped phantom weights do the same).
    """
    from collections import Counter

    from medlim.core.io.slide import file_spacing_um
    from medlim.core.spacing import training_spacing as spacing_fields

    sizes = [found[0] for found in (file_spacing_um(path) for path in paths) if found is not None]
    if not paths or len(sizes) < len(paths):
        return {"scale": f"{len(sizes)} of {len(paths)} training images state a pixel size in µm, so none is recorded "
                         "and images are analysed at their own pixels"}
    fields = spacing_fields([(um / 1000.0, um / 1000.0, n) for um, n in Counter(sizes).items()], where="H&E")
    median, low, high = (1000.0 * fields["pixel_spacing_mm"][0], 1000.0 * fields["spacing_range_mm"][0],
                         1000.0 * fields["spacing_range_mm"][1])
    return {**fields, "scale": f"{median:g} µm per pixel (lower median of {len(paths)} training images, "
                               f"{low:g}–{high:g} µm); images of another size are resized to it for detection"}


def _entry_fields(*, name: str, version: str | None, start: _Start, planned: SteatosisPlan, data: TrainingData,
                  command: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest fields of steatosis weights trained on a user's images."""
    from medlim.microscopy.steatosis.inference import MASK_THRESHOLD

    how = f"fine-tuned from {start.label}" if start.entry is not None else "trained from scratch"
    return {
        "name": name, "version": version, "task": STEATOSIS_TASK, "architecture": "maskrcnn-steatosis",
        "architecture_kwargs": dict(start.architecture_kwargs), "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0],
                           **training_spacing([data.dataset.items[k].image for k in data.train])},
        "output_type": "probability", "thresholds": {"mask": MASK_THRESHOLD, "score": 0.5},
        "params": {"tile": start.tile, "overlap": start.overlap, "classes": ["background", "droplet"]},
        "metrics": dict(metrics),
        "provenance": {"command": command, "seed": int(planned.plan.settings["seed"]),
                       "data_generator": "screened weak labels (medlim.microscopy.steatosis.weak) of the user's images",
                       "data_generator_version": medlim.__version__,
                       "source": f"user dataset {data.fingerprint.id}, {how}"},
        "intended_use": "Research use only, not for diagnosis; trained on a user's images with weak labels",
        "description": (f"Mask R-CNN for steatosis droplets in H&E, {how} on the screened weak labels of the user "
                        f"dataset {data.fingerprint.id} (no annotation)"),
        "data": data.record(), "plan": planned.plan.to_json(),
    }


def _prepare(run: SteatosisRun, data: TrainingData, start: _Start, device: str, deadline: Deadline,
             progress: Progress | None) -> tuple[list["TrainingTile"], list[ValidationCrop], SteatosisPlan]:
    """Weak-labelled training tiles, validation crops and the plan."""
    from medlim.microscopy.steatosis.train import TrainingTile

    limits = _LIMITS[device]
    rng = np.random.default_rng(run.seed)
    train, colour = weak_tiles(data.dataset, data.train, side=WEAK_TILE, limit=limits["max_tiles"], rng=rng,
                               deadline=deadline, what="training", progress=progress)
    val, _ = weak_tiles(data.val_dataset, data.val, side=VAL_CROP, limit=limits["val_crops"], rng=rng,
                        deadline=deadline, what="validation", progress=progress)
    masks = int(sum(int(t.labels.max()) for t in train))
    if masks == 0:
        raise ParameterError("the weak labels found no droplet in the training images (none passed the screening); "
                             "steatosis training needs H&E images with fat droplets.")
    summary = data.check.summary
    side = (summary.height.median, summary.width.median) if summary.height and summary.width else None
    planned = plan_steatosis(device=device, fine_tune=start.entry is not None, tiles=len(train), weak_masks=masks,
                             smallest_side=min(min(t.image.shape[:2]) for t in train), median_side=side,
                             colour=colour, images=min(len(data.train), limits["max_tiles"]), seed=run.seed,
                             overrides=run.overrides, starting_point=start.label if start.entry else "fresh")
    tiles = [TrainingTile(image=t.image, labels=t.labels, rejected=t.rejected) for t in train]
    return tiles, val, planned


def _fit(start: _Start, tiles: Sequence["TrainingTile"], val: Sequence[ValidationCrop], planned: SteatosisPlan,
         *, seed: int, device: str | None, deadline: Deadline, progress: Progress | None,
         key: Sequence[Any] = ()):  # -> FitResult
    """Train under the harness; the best validated state is loaded back into ``start.model``.

    Inside a job the trainer is saved after every epoch (``key``: what identifies the run) and resumed.
    """
    from medlim.microscopy.steatosis.train import (
        SteatosisTrainer,
        SteatosisTrainingConfig,
    )

    seconds = deadline.remaining() if deadline.limited else None
    config = SteatosisTrainingConfig(iterations=planned.iterations, batch_size=planned.batch_size, crop=planned.crop,
                                     learning_rate=planned.learning_rate, warmup=planned.warmup, seed=seed,
                                     threads=planned.threads, max_seconds=seconds if seconds else None)
    trainer = SteatosisTrainer(start.model, tiles, config=config, device=device)

    def train_epoch(epoch: int) -> str:
        for _ in range(planned.steps_per_epoch):
            losses = trainer.step()
        return f"Mask R-CNN epoch {epoch}/{planned.epochs}: loss {losses['total']:.3f} ({trainer.steps} steps)"

    def validate() -> ValidationScore:
        trainer.model.eval()
        metrics = agreement(trainer.model, val, tile=start.tile, overlap=start.overlap)
        trainer.model.train()
        return ValidationScore(score=metrics["f1"], metric="f1", tiebreak=metrics["ap"], metrics=metrics)

    def snapshot() -> dict[str, Any]:
        return {key: value.detach().to("cpu").clone() for key, value in trainer.model.state_dict().items()}

    def parts() -> dict[str, Any]:
        return {"model": trainer.model, "optimiser": trainer.optimiser, "schedule": trainer.schedule,
                "rng": trainer.rng, "steps": trainer.steps, "running": dict(trainer.running),
                "train_elapsed": time.perf_counter() - trainer.start}

    def apply(values: Mapping[str, Any]) -> None:
        trainer.steps, trainer.running = int(values["steps"]), dict(values["running"])
        trainer.start = time.perf_counter() - float(values["train_elapsed"])  # the schedule's time fraction

    result = fit(train_epoch, epochs=planned.epochs, validate=validate, snapshot=snapshot, deadline=deadline,
                 patience=planned.patience, label="Mask R-CNN", progress=progress,
                 resume=fit_resume("maskrcnn", key, parts, apply=apply))
    trainer.model.load_state_dict(result.state)
    return result


def _attach_check(entry: "WeightsEntry", tiles: Sequence["TrainingTile"], val: Sequence[ValidationCrop], *,
                  data: TrainingData, progress: Progress | None) -> tuple["WeightsEntry", dict[str, Any]]:
    """Fit the training-data check on the training tiles as the network reads them, its limit on the validation crops."""
    from medlim.core.familiarity import attach_training_check
    from medlim.microscopy.steatosis.familiarity import BLOCK, he_features

    training = np.stack([he_features(tile.image) for tile in tiles]) if tiles else np.zeros((0, 0))
    validation = np.stack([he_features(crop.image) for crop in val]) if val else None
    selection = {"block": BLOCK, "dataset": data.fingerprint.id,
                 "calibration": {"tiles": len(tiles), "role": "the run's weak-labelled training tiles"},
                 "validation": {"crops": len(val), "role": "the run's validation crops (choose the limit)"}}
    return attach_training_check(entry, training, validation, selection=selection, progress=progress,
                                 source=f"{len(tiles)} training tiles of the user dataset {data.fingerprint.id}, "
                                        f"RGB on {BLOCK} px blocks")


def train_steatosis_on_folder(
    run: SteatosisRun,
    *,
    registries: "Registries",
    deadline: Deadline,
    progress: Progress | None = None,
    allow_shipped_folder: bool = False,
) -> TrainingOutcome:
    """Check, split, weak-label, plan, train, validate and register a steatosis Mask R-CNN from a user's images.

    Args:
        run: what the command asked for.
        registries: where names are looked up and the model written (its user registry).
        deadline: the command's ``--max-minutes`` budget, started when the command started.
        progress: callback for progress lines (the CLI writes them to stderr).
        allow_shipped_folder: see :meth:`medlim.core.weights.Registries.register`.

    Returns:
        The registered entry and its best validation (agreement with the weak labels).

    Raises:
        DatasetProblemsError: the folder has problems (and ``skip_bad`` is off or cannot fix them).
        NotValidatedError: the budget ran out before a validation; nothing is registered.
        ParameterError: no droplet in the weak labels; bad settings.
        WeightsError: unknown ``--init`` weights, or the name and version are taken.
    """
    from medlim.core.device import select_device

    data = prepare_training_data(run.data_dir, "steatosis", val_dir=run.val_dir, skip_bad=run.skip_bad,
                                 seed=run.seed, progress=progress)
    name = run.name or f"maskrcnn-steatosis-{data.fingerprint.id[:8]}"
    claim_once(registries, name, run.version)  # fail before training, not after
    start = _starting_point(registries, run, progress)
    device = select_device(run.device).type
    tiles, val, planned = _prepare(run, data, start, device, deadline, progress)
    if progress is not None:
        progress(f"{len(tiles)} weak-labelled training tiles, {len(val)} validation crops; plan: {planned.crop} px "
                 f"crops, batch {planned.batch_size}, {planned.epochs} epochs of {planned.steps_per_epoch} steps")
    command = recorded_command("medlim train steatosis",
                               [*data.command_options(), ("--init", start.label), *run.command_options])
    result = _fit(start, tiles, val, planned, seed=run.seed, device=run.device, deadline=deadline, progress=progress,
                  key=(command, planned.plan.to_json()))
    model = start.model.to("cpu").eval()
    metrics = {"validation": result.to_json(), "reference": "screened weak labels of the validation crops "
               "(no annotation): agreement, not accuracy", "n_train_tiles": len(tiles),
               "weak_droplets": int(sum(int(t.labels.max()) for t in tiles))}
    fields = _entry_fields(name=name, version=run.version, start=start, planned=planned, data=data, command=command,
                           metrics=metrics)
    entry = register_once(registries, fields, model.state_dict(), allow_shipped_folder=allow_shipped_folder)
    if progress is not None:
        progress(f"registered {entry.label} in {registries.directory}")
    entry, familiarity = _attach_check(entry, tiles, val, data=data, progress=progress)
    extra: dict[str, Any] = {"data": {"fingerprint": data.fingerprint.id, "split": dict(data.split)},
                             "plan": planned.plan.to_json()["settings"], "init": start.label,
                             "familiarity": familiarity}
    if data.dropped is not None:
        extra["data"]["dropped"] = [p.to_json() for report in data.dropped for p in report.dropped]
    return TrainingOutcome(registered=(entry,), validation={entry.name: result.to_json()}, extra=extra)
