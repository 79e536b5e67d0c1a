"""Training Mask R-CNN on phantoms with weak labels (thesis §3.2.2–3.2.3).

The thesis trains on 451 weak-labelled 1024×1024 tiles (screened by a
pathologist) with SGD, random flips, affine transforms and Gaussian blur. Here
the tiles are H&E phantoms (:mod:`medlim.phantoms.he`), the labels are the
*screened weak labels* of :mod:`.weak` — never the phantoms' ground truth —
and training samples random crops with flips, 90° rotations, occasional
Gaussian blur, and stain/illumination jitter: optical densities
(−log of the RGB) scaled by 0.55–1.35 as sections of uneven thickness
stain, plus a light fall-off ramp and a small gain. Crops avoid the areas of
masks the screening rejected (at most 2 % of a crop when a few draws allow
it): there the weak method is known to have failed, so the droplets it
missed nearby would be taught as background. The optimiser is AdamW with a
linear warm-up and cosine decay (from random initialisation AdamW converged
where SGD at the thesis learning rate 0.02 diverged in the project's first
trials — no COCO start is possible here). The device is picked at run time (:func:`medlim.core.device.select_device`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medlim.core.device import select_device
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.weak import ScreeningRule, WeakLabelParams, weak_labels
from medlim.phantoms.he import generate_he

__all__ = [
    "TrainingTile",
    "SteatosisTrainingConfig",
    "SteatosisTrainingReport",
    "weak_training_tiles",
    "sample_batch",
    "SteatosisTrainer",
    "train_maskrcnn",
]


@dataclass(frozen=True)
class TrainingTile:
    """One training image with its screened weak labels.

    Attributes:
        image: ``np.ndarray[H, W, 3]`` uint8 RGB.
        labels: ``np.ndarray[H, W]`` int32, screened weak masks 1..k (0 elsewhere).
        rejected: ``np.ndarray[H, W]`` bool, pixels of masks the screening
            rejected (None: none known).
    """

    image: np.ndarray
    labels: np.ndarray
    rejected: np.ndarray | None = None


@dataclass(frozen=True)
class SteatosisTrainingConfig:
    """Training hyper-parameters.

    Attributes:
        iterations: optimiser steps.
        batch_size: crops per step.
        crop: crop side in px.
        learning_rate: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        warmup: linear warm-up steps.
        seed: torch / numpy seed of the sampling.
        threads: CPU threads for torch (1 is fastest on a crowded machine:
            with 2 threads on 2 shared cores a step took 5–10× longer).
        max_seconds: wall-time budget of the optimisation (None: none). The
            learning-rate schedule then follows the larger of the step and
            time fractions, so a run cut by the budget still ends annealed.
    """

    iterations: int = 600
    batch_size: int = 2
    crop: int = 256
    learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    threads: int = 1
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "crop", "threads"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"`{name}` must be a positive integer, {getattr(self, name)} is given.")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ParameterError(f"`max_seconds` must be positive or None, {self.max_seconds} is given.")
        if self.crop < 64:
            raise ParameterError(f"`crop` must be at least 64 px, {self.crop} is given.")


@dataclass(frozen=True)
class SteatosisTrainingReport:
    """What a training run did: steps actually taken, final loss, seconds, device."""

    iterations: int
    tiles: int
    weak_masks: int
    final_loss: float
    seconds: float
    device: str


def weak_training_tiles(
    *,
    seed: int,
    count: int,
    size: int = 512,
    params: WeakLabelParams = WeakLabelParams(),
    rule: ScreeningRule = ScreeningRule(),
) -> Iterator[TrainingTile]:
    """H&E phantoms of ``seed`` (indices 0..count−1) with their screened weak labels.

    The phantoms' ground truth is never used.
    """
    for index in range(int(count)):
        phantom = generate_he(seed, index=index, size=(size, size))
        weak = weak_labels(phantom.image, params=params, rule=rule)
        yield TrainingTile(image=phantom.image, labels=weak.screened,
                           rejected=(weak.labels > 0) & ~weak.kept[weak.labels])


def _augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    turns = int(rng.integers(4))
    image, labels = np.rot90(image, turns), np.rot90(labels, turns)
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    image = np.ascontiguousarray(image, dtype=np.float32) / 255.0
    if rng.random() < 0.3:
        sigma = float(rng.uniform(0.5, 1.5))
        image = np.stack([ndimage.gaussian_filter(image[..., c], sigma) for c in range(3)], axis=-1)
    # Stain amount (section thickness): scale the optical densities.
    density = -np.log(np.clip(image, 1.0 / 255.0, 1.0)) * rng.uniform(0.55, 1.35)
    image = np.exp(-density)
    # Uneven illumination: a fall-off ramp across the crop, and a small gain.
    if rng.random() < 0.5:
        size = image.shape[0]
        angle = rng.uniform(0, 2 * np.pi)
        grid = (np.arange(size, dtype=np.float32) / max(size - 1, 1)) - 0.5
        ramp = np.clip(np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None] + 0.5, 0, 1)
        image = image * (1.0 - rng.uniform(0.0, 0.2) * ramp**2)[..., None]
    image = np.clip(image * rng.uniform(0.9, 1.05), 0, 1)
    return image.astype(np.float32), np.ascontiguousarray(labels)


def sample_batch(
    tiles: Sequence[TrainingTile], rng: np.random.Generator, *, batch_size: int, crop: int, min_area: int = 12,
    max_rejected: float = 0.02, tries: int = 8,
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Random augmented crops with Mask R-CNN targets.

    A crop position is drawn up to ``tries`` times until at most
    ``max_rejected`` of the crop is covered by rejected weak masks (the last
    draw is used otherwise).

    Returns:
        ``(images, targets)``: ``Tensor[3, crop, crop]`` float32 in [0, 1] and
        dicts with ``boxes`` (``Tensor[N, 4]`` x0, y0, x1, y1), ``labels``
        (``Tensor[N]`` int64, all 1) and ``masks`` (``Tensor[N, crop, crop]`` uint8).
    """
    images, targets = [], []
    for _ in range(batch_size):
        tile = tiles[int(rng.integers(len(tiles)))]
        height, width = tile.labels.shape
        for _try in range(max(1, int(tries))):
            r0 = int(rng.integers(0, max(1, height - crop + 1)))
            c0 = int(rng.integers(0, max(1, width - crop + 1)))
            if tile.rejected is None or tile.rejected[r0 : r0 + crop, c0 : c0 + crop].mean() <= max_rejected:
                break
        image, labels = _augment(tile.image[r0 : r0 + crop, c0 : c0 + crop], tile.labels[r0 : r0 + crop, c0 : c0 + crop], rng)
        ids = [k for k in np.unique(labels) if k > 0]
        boxes, masks = [], []
        objects = ndimage.find_objects(labels)
        for k in ids:
            window = objects[k - 1]
            if window is None:
                continue
            mask = labels == k
            if mask.sum() < min_area:
                continue
            boxes.append([window[1].start, window[0].start, window[1].stop, window[0].stop])
            masks.append(mask)
        images.append(torch.from_numpy(image.transpose(2, 0, 1).copy()))
        targets.append({
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.ones(len(boxes), dtype=torch.int64),
            "masks": torch.from_numpy(np.stack(masks).astype(np.uint8)) if masks
            else torch.zeros((0, labels.shape[0], labels.shape[1]), dtype=torch.uint8),
        })
    return images, targets


#: Optimiser steps saved as one "epoch" of a job's checkpoint (:func:`train_maskrcnn` inside a job).
RESUME_STEPS = 25


class SteatosisTrainer:
    """One Mask R-CNN optimisation at a time, on weak-labelled tiles (the state :func:`train_maskrcnn` steps).

    The schedule is a linear warm-up then a cosine decay to 2 % by the larger
    of the step fraction (``config.iterations``) and the time fraction
    (``config.max_seconds``), so a run cut by its budget still ends annealed.

    Args:
        model: a :func:`medlim.microscopy.steatosis.network.build_steatosis_maskrcnn` network (trained in place).
        tiles: training tiles (screened weak labels).
        config: hyper-parameters.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; None uses the settings.
    """

    def __init__(self, model: torch.nn.Module, tiles: Sequence[TrainingTile], *,
                 config: SteatosisTrainingConfig = SteatosisTrainingConfig(), device: str | None = None) -> None:
        if not tiles:
            raise ParameterError("no training tiles were given.")
        self.tiles, self.config = tiles, config
        self.device = select_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(int(config.threads))
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.model = model.to(self.device).train()
        self.optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                           lr=config.learning_rate, weight_decay=config.weight_decay)
        self.start = time.perf_counter()
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimiser, self._factor)
        self.running: dict[str, float] = {}
        self.steps = 0

    def _factor(self, step: int) -> float:
        config = self.config
        if step < config.warmup:
            return (step + 1) / config.warmup
        done = (step - config.warmup) / max(1, config.iterations - config.warmup)
        if config.max_seconds is not None:
            done = max(done, (time.perf_counter() - self.start) / config.max_seconds)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    @property
    def total(self) -> float:
        """The running (exponentially averaged) total loss."""
        return sum(self.running.values()) if self.running else float("nan")

    def step(self) -> dict[str, float]:
        """One optimiser step on a fresh augmented batch; the running losses (with ``"total"``)."""
        self.model.train()
        images, targets = sample_batch(self.tiles, self.rng, batch_size=self.config.batch_size, crop=self.config.crop)
        images = [im.to(self.device) for im in images]
        targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
        losses = self.model(images, targets)
        loss = sum(losses.values())
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.optimiser.step()
        self.schedule.step()
        for key, value in losses.items():
            value = float(value.detach())
            self.running[key] = 0.9 * self.running.get(key, value) + 0.1 * value
        self.steps += 1
        return {**self.running, "total": self.total}


def train_maskrcnn(
    model: torch.nn.Module,
    tiles: Sequence[TrainingTile],
    *,
    config: SteatosisTrainingConfig = SteatosisTrainingConfig(),
    device: str | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    key: Sequence[Any] | None = None,
) -> SteatosisTrainingReport:
    """Train ``model`` in place on weak-labelled tiles.

    Args:
        model: a :func:`medlim.microscopy.steatosis.network.build_steatosis_maskrcnn` network.
        tiles: training tiles (screened weak labels).
        config: hyper-parameters.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``; None uses the settings.
        progress: ``progress(step, total, losses)`` called every 10 steps and at the end.
        key: what identifies the run (the recorded command): inside a job every
            :data:`RESUME_STEPS` steps are saved as an "epoch" and a resumed job goes on
            after the last saved one (:func:`medlim.core.training.run_epochs`; the
            ``max_seconds`` clock starts again on resume); ``None``: nothing saved.

    Returns:
        :class:`SteatosisTrainingReport`; the model is left on ``device`` in eval mode.
    """
    from medlim.core.training import run_epochs
    from medlim.core.training_resume import fit_resume

    trainer = SteatosisTrainer(model, tiles, config=config, device=device)

    def train_chunk(chunk: int) -> None:
        for step in range((chunk - 1) * RESUME_STEPS + 1, min(chunk * RESUME_STEPS, config.iterations) + 1):
            if config.max_seconds is not None and time.perf_counter() - trainer.start >= config.max_seconds:
                return
            losses = trainer.step()
            if progress is not None and (step % 10 == 0 or step == config.iterations):
                progress(step, config.iterations, losses)

    def restore(values: Mapping[str, Any]) -> None:
        trainer.running, trainer.steps = dict(values["running"]), int(values["steps"])

    resume = None if key is None else fit_resume(
        "steatosis", (*key, asdict(config), len(tiles)),
        lambda: {"model": trainer.model, "optimiser": trainer.optimiser, "schedule": trainer.schedule,
                 "rng": trainer.rng, "running": dict(trainer.running), "steps": trainer.steps}, apply=restore)
    run_epochs(train_chunk, epochs=math.ceil(config.iterations / RESUME_STEPS), label="Mask R-CNN", resume=resume)
    if progress is not None and trainer.steps % 10:
        progress(trainer.steps, config.iterations, {**trainer.running, "total": trainer.total})
    model.eval()
    return SteatosisTrainingReport(
        iterations=trainer.steps,
        tiles=len(tiles),
        weak_masks=int(sum(int(t.labels.max()) for t in tiles)),
        final_loss=float(trainer.total),
        seconds=time.perf_counter() - trainer.start,
        device=str(trainer.device),
    )
