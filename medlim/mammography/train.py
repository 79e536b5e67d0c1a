"""Training SCU-Net on mammogram phantoms (thesis §3.3.2, METHODS.md §1 "Training").

The recipe follows the thesis and the authors' code where they agree:

* patches of 512×512 cut from the preprocessed whole image (the preset's
  preprocessing, so training sees exactly what inference sees);
* only patches that contain calcification are used (thesis: "only patches that
  contain calcifications are left for segmentation training"). The phantoms
  place BAC look-alikes (benign round and ductal calcifications, bright edges)
  next to the arteries, so the network still learns to reject them. A fraction
  of BAC-free patches can be added with ``negative_fraction`` — 0 by default
  (thesis); a trained file records the value it used in its manifest;
* soft Dice loss ``1 − 2Σ(y·ŷ) / (Σy² + Σŷ² + 1e-6)`` over the batch;
* AdamW (thesis lr 1e-3; weight decay 0.01 as in the published code);
* augmentation: random horizontal/vertical flips, rotation by 90° or 270°,
  brightness and contrast jitter. (The published code also jitters
  saturation, which has no meaning for a grey image; it is left out.)

Deviation, stated: the published network returns raw scores trained with
soft Dice directly on them. Here the network's output goes through a sigmoid
before the Dice loss, so the shipped weights' output activation is
``"sigmoid"`` (a manifest field) and ``p`` is a probability in [0, 1].

Long work takes a ``progress`` callback; nothing is written to disk between stages.

For a user's folder (:mod:`medlim.mammography.folder`) the same patches are
cut into crops (:func:`crop_corners`, centred near a calcification for BAC
patches and near the last false positive for hard negatives — BAC-free patches
where the network fired, :func:`false_positive_spots`, drawn again by
:func:`draw_negatives`; :func:`interleave` gives every batch its BAC crops) and augmented with the fuller policy of
:class:`~medlim.mammography.plan.AugmentationPolicy` (:func:`augment_patches`:
flips, turns, and inside the breast brightness/contrast, gamma, noise, blur
and a lower resolution); :func:`augment_batch` stays the phantom recipe's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from medlim.core.augmentation import augment_intensity
from medlim.core.device import select_device
from medlim.core.tiling import pad_to_patch, patch_grid
from medlim.errors import ParameterError
from medlim.mammography.plan import AugmentationPolicy
from medlim.mammography.preprocess import (
    BacPreset,
    PreprocessedImage,
    background_rule,
    get_preset,
    normalise_patches,
    preprocess_image,
)

__all__ = [
    "TrainingImage",
    "PatchSet",
    "TrainingConfig",
    "TrainingReport",
    "soft_dice_loss",
    "segmentation_loss",
    "extract_image_patches",
    "combine_patches",
    "extract_training_patches",
    "augment_batch",
    "crop_corners",
    "cut_crops",
    "sample_crops",
    "interleave",
    "draw_negatives",
    "false_positive_spots",
    "augment_patches",
    "train_scunet",
]


@dataclass(frozen=True)
class TrainingImage:
    """One annotated mammogram.

    Attributes:
        image: ``np.uint8[H, W]``, the 8-bit presentation image (reader output).
        bac_mask: ``np.bool_[H, W]``, ground-truth calcified-vessel pixels.
    """

    image: np.ndarray
    bac_mask: np.ndarray


@dataclass(frozen=True)
class PatchSet:
    """Training patches, already preprocessed by the preset.

    Attributes:
        grey: ``np.uint8[N, P, P]`` preprocessed grey patches.
        mask: ``np.bool_[N, P, P]`` ground truth.
    """

    grey: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return int(self.grey.shape[0])


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters (thesis values by default, see module docstring)."""

    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    brightness: float = 0.2
    contrast: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did."""

    epochs: int
    patches: int
    final_loss: float
    losses: tuple[float, ...]
    seconds: float
    device: str
    extra: dict[str, float] = field(default_factory=dict)


def soft_dice_loss(prediction: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss ``1 − 2Σ(y·ŷ) / (Σy² + Σŷ² + eps)`` over the whole batch.

    Args:
        prediction: ``Tensor[N, 1, H, W]`` in [0, 1] (ŷ).
        target: ``Tensor[N, 1, H, W]`` in {0, 1} (y).

    Returns:
        Scalar tensor in [0, 1].
    """
    if prediction.shape != target.shape:
        raise ParameterError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape.")
    prediction = prediction.float()
    target = target.float()
    intersection = (prediction * target).sum()
    denominator = (target * target).sum() + (prediction * prediction).sum() + eps
    return 1.0 - 2.0 * intersection / denominator


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, kind: str = "dice") -> torch.Tensor:
    """The training loss of SCU-Net on a user's views.

    ``"dice"``: :func:`soft_dice_loss` of ``sigmoid(logits)`` over the batch (the thesis's loss). ``"dice+bce"``:
    that plus the mean pixel-wise binary cross-entropy, as nnU-Net trains (Dice + CE; a stated deviation). Over the
    batch, Dice weighs a calcification by its share of the batch's BAC pixels, so a few faint specks of mild BAC
    among heavy BAC barely move it; cross-entropy charges every missed pixel by its own probability.
    ``"dice+crop"``: the batch's soft Dice plus the mean of each BAC-holding crop's own soft Dice, so a crop with
    a few specks weighs as much as one with a long calcified artery (a stated deviation, tried for mild BAC).

    Args:
        logits: ``Tensor[N, 1, H, W]`` the network's output before the sigmoid.
        target: ``Tensor[N, 1, H, W]`` in {0, 1}.
        kind: ``"dice"``, ``"dice+bce"`` or ``"dice+crop"``.
    """
    probability = torch.sigmoid(logits.float())
    loss = soft_dice_loss(probability, target)
    if kind == "dice":
        return loss
    if kind == "dice+bce":
        return loss + nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float())
    if kind == "dice+crop":
        holding = [i for i in range(target.shape[0]) if bool(target[i].any())]
        if not holding:
            return loss
        return loss + torch.stack([soft_dice_loss(probability[i], target[i]) for i in holding]).mean()
    raise ParameterError(f"unknown loss {kind!r}; known: dice, dice+bce, dice+crop.")


def extract_image_patches(
    item: TrainingImage,
    *,
    preset: str | BacPreset = "thesis",
    patch_size: int = 512,
    stride: int | None = None,
    max_negatives: int = 0,
    rng: np.random.Generator | None = None,
    skip: bool | str = True,
    preprocessed: PreprocessedImage | None = None,
    line_negatives: int = 0,
) -> tuple[PatchSet, PatchSet]:
    """Cut one image's grid patches: those with calcification, and up to ``max_negatives`` without.

    Patches lie on the preset's inference grid, so training sees the same
    framing as inference; patches the skip rule calls background are never
    used.

    Args:
        skip: the background rule, as at inference: True — the preset's
            (the authors' mean ≤ 20 or std ≤ 10); ``"black"`` — only black
            patches (:func:`~medlim.mammography.preprocess.black_patches`, the
            thesis text), which keeps edge patches holding a sliver of breast;
            False — none.
        preprocessed: ``item.image`` already preprocessed by ``preset`` (not preprocessed again).
        line_negatives: besides, up to this many BAC-free patches not drawn at random: those with the highest
            :func:`line_scores` (the brightest thin lines), in grid order after the random ones.

    Returns:
        ``(positives, negatives)`` as :class:`PatchSet`; negatives chosen at random by ``rng``, then by line score.
    """
    preset = get_preset(preset)
    rule = background_rule(skip, preset)
    stride = preset.stride if stride is None else stride
    if item.image.shape != item.bac_mask.shape:
        raise ParameterError(f"image {item.image.shape} and mask {item.bac_mask.shape} differ in shape.")
    if preprocessed is None:
        preprocessed = preprocess_image(item.image, preset)
    grey = np.asarray(pad_to_patch(preprocessed.grey, patch=patch_size))
    mask = np.asarray(pad_to_patch(item.bac_mask.astype(np.uint8), patch=patch_size)).astype(bool)
    positive: list[tuple[int, int]] = []
    negative: list[tuple[int, int]] = []
    for top, left in patch_grid((grey.shape[0], grey.shape[1]), patch=patch_size, stride=stride):
        g = grey[top : top + patch_size, left : left + patch_size]
        if rule is not None and rule(g[None])[0]:
            continue
        (positive if mask[top : top + patch_size, left : left + patch_size].any() else negative).append((top, left))
    if len(negative) > max_negatives:
        rng = rng or np.random.default_rng(0)
        drawn = set(rng.choice(len(negative), size=max_negatives, replace=False).tolist())
        rest = [i for i in range(len(negative)) if i not in drawn]
        if line_negatives > 0 and rest:
            scores = line_scores(grey, [negative[i] for i in rest], patch=patch_size)
            best = np.argsort(-scores, kind="stable")[:line_negatives]
            drawn |= {rest[i] for i in best if scores[i] > 0}
        negative = [negative[i] for i in sorted(drawn)]

    def cut(corners: list[tuple[int, int]]) -> PatchSet:
        if not corners:
            return PatchSet(np.zeros((0, patch_size, patch_size), np.uint8), np.zeros((0, patch_size, patch_size), bool))
        return PatchSet(
            grey=np.stack([grey[t : t + patch_size, left : left + patch_size] for t, left in corners]),
            mask=np.stack([mask[t : t + patch_size, left : left + patch_size] for t, left in corners]),
        )

    return cut(positive), cut(negative)


#: Side of the white top-hat's structuring element (px): a bright structure narrower than this is a thin line.
LINE_WIDTH_PX = 15


def line_scores(grey: np.ndarray, corners: Sequence[tuple[int, int]], *, patch: int) -> np.ndarray:
    """How much bright thin structure each patch holds: the 99th percentile of the white top-hat (the grey minus
    its opening by a :data:`LINE_WIDTH_PX` disc) inside the patch, in grey levels.

    Ligaments, vessel walls, skin folds and calcified arteries all score high; a patch of plain fat or dense
    tissue scores low. Used to keep BAC-free patches that look most like BAC in the training pool.

    Args:
        grey: the preprocessed, padded view (uint8).
        corners: ``(top, left)`` of each patch.
        patch: the patch side.

    Returns:
        ``np.float64[len(corners)]``.
    """
    import cv2

    if not corners:
        return np.zeros(0)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (LINE_WIDTH_PX, LINE_WIDTH_PX))
    top_hat = cv2.morphologyEx(np.ascontiguousarray(grey), cv2.MORPH_TOPHAT, disc)
    return np.array([float(np.percentile(top_hat[t: t + patch, left: left + patch], 99)) for t, left in corners])


def combine_patches(
    parts: Iterable[tuple[PatchSet, PatchSet]],
    *,
    negative_fraction: float = 0.0,
    rng: np.random.Generator | None = None,
) -> PatchSet:
    """All positive patches plus ``negative_fraction`` × as many negatives (0: thesis recipe)."""
    if not 0.0 <= negative_fraction <= 10.0:
        raise ParameterError(f"`negative_fraction` must be in [0, 10], {negative_fraction} is given.")
    positives, negatives = [], []
    for pos, neg in parts:
        positives.append(pos)
        negatives.append(neg)
    pos_grey = [p.grey for p in positives if len(p)]
    pos_mask = [p.mask for p in positives if len(p)]
    neg_grey = np.concatenate([n.grey for n in negatives]) if negatives else np.zeros((0, 1, 1), np.uint8)
    neg_mask = np.concatenate([n.mask for n in negatives]) if negatives else np.zeros((0, 1, 1), bool)
    n_pos = int(sum(len(g) for g in pos_grey))
    n_neg = min(len(neg_grey), int(round(negative_fraction * n_pos)))
    if n_neg:
        chosen = np.sort((rng or np.random.default_rng(0)).choice(len(neg_grey), size=n_neg, replace=False))
        pos_grey.append(neg_grey[chosen])
        pos_mask.append(neg_mask[chosen])
    if not pos_grey:
        size = neg_grey.shape[-1] if neg_grey.ndim == 3 else 512
        return PatchSet(np.zeros((0, size, size), np.uint8), np.zeros((0, size, size), bool))
    return PatchSet(grey=np.concatenate(pos_grey), mask=np.concatenate(pos_mask))


def extract_training_patches(
    images: Iterable[TrainingImage],
    *,
    preset: str | BacPreset = "thesis",
    patch_size: int = 512,
    stride: int | None = None,
    negative_fraction: float = 0.0,
    rng: np.random.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> PatchSet:
    """Training patches from many images: every grid patch with calcification, plus
    ``negative_fraction`` × as many BAC-free patches (0: thesis recipe)."""
    rng = rng or np.random.default_rng(0)

    def parts():
        for done, item in enumerate(images, start=1):
            yield extract_image_patches(
                item, preset=preset, patch_size=patch_size, stride=stride,
                max_negatives=4 if negative_fraction > 0 else 0, rng=rng,
            )
            if progress:
                progress(done)

    return combine_patches(parts(), negative_fraction=negative_fraction, rng=rng)


def augment_batch(
    grey: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator, brightness: float, contrast: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips, 90°/270° rotations and brightness/contrast jitter, per sample.

    Args:
        grey: ``Tensor[N, 1, P, P]`` float in [0, 1].
        mask: ``Tensor[N, 1, P, P]`` float in {0, 1}.
        generator: torch random generator (CPU).
        brightness: additive jitter range ±brightness (in [0, 1] units).
        contrast: multiplicative jitter range 1 ± contrast around the patch mean.

    Returns:
        Augmented ``(grey, mask)``; the geometric transforms are applied to both.
    """
    n = grey.shape[0]
    draws = torch.rand(n, 5, generator=generator)
    out_grey, out_mask = [], []
    for i in range(n):
        g, m = grey[i], mask[i]
        if draws[i, 0] < 0.5:
            g, m = g.flip(-1), m.flip(-1)
        if draws[i, 1] < 0.5:
            g, m = g.flip(-2), m.flip(-2)
        turn = draws[i, 2]
        if turn < 1 / 3:
            g, m = torch.rot90(g, 1, (-2, -1)), torch.rot90(m, 1, (-2, -1))
        elif turn < 2 / 3:
            g, m = torch.rot90(g, 3, (-2, -1)), torch.rot90(m, 3, (-2, -1))
        factor = 1.0 + contrast * (2 * draws[i, 3].item() - 1)
        shift = brightness * (2 * draws[i, 4].item() - 1)
        mean = g.mean()
        # Black (outside-breast) pixels stay black, as in real images.
        g = torch.where(g > 0, ((g - mean) * factor + mean + shift).clamp(0.0, 1.0), g)
        out_grey.append(g)
        out_mask.append(m)
    return torch.stack(out_grey), torch.stack(out_mask)


def crop_corners(
    grey: np.ndarray, mask: np.ndarray, *, size: int, rng: np.random.Generator, tries: int = 4,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """Top-left corners of square crops of ``size`` px, one per patch.

    A patch with calcification is cut around one of its BAC pixels (drawn at
    random, placed between a quarter and three quarters of the crop); so is a
    BAC-free patch around its ``centres`` row (a hard negative's false positive,
    :func:`false_positive_spots`); any other BAC-free patch is cut where the most
    breast (non-zero) pixels are among ``tries`` random positions.

    Args:
        grey: ``np.uint8[N, P, P]`` preprocessed patches.
        mask: ``np.bool_[N, P, P]`` ground truth.
        size: crop side (≤ P).
        rng: draws positions.
        tries: positions compared for a BAC-free patch without a centre.
        centres: ``np.int64[N, 2]`` (row, column) in patch pixels to cut around, −1 for none.

    Returns:
        ``np.int64[N, 2]`` (top, left).
    """
    n, side = grey.shape[0], grey.shape[-1]
    if not 0 < size <= side:
        raise ParameterError(f"crop size must be in (0, {side}], {size} is given.")
    corners = np.zeros((n, 2), np.int64)
    if size == side:
        return corners
    limit = side - size
    for i in range(n):
        bac = np.flatnonzero(mask[i])
        centre = None if centres is None or centres[i][0] < 0 else (int(centres[i][0]), int(centres[i][1]))
        if len(bac):
            centre = divmod(int(bac[int(rng.integers(len(bac)))]), side)
        if centre is not None:
            offset = rng.integers(size // 4, 3 * size // 4 + 1, size=2)
            corners[i] = np.clip(np.asarray(centre) - offset, 0, limit)
        else:
            draws = rng.integers(0, limit + 1, size=(max(1, tries), 2))
            filled = [np.count_nonzero(grey[i, t : t + size, left : left + size]) for t, left in draws]
            corners[i] = draws[int(np.argmax(filled))]
    return corners


def cut_crops(grey: np.ndarray, mask: np.ndarray, corners: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(np.uint8[N, size, size], np.bool_[N, size, size])`` cut at ``corners`` (``np.int64[N, 2]``, top, left)."""
    out_grey = np.stack([g[t : t + size, left : left + size] for g, (t, left) in zip(grey, corners)])
    out_mask = np.stack([m[t : t + size, left : left + size] for m, (t, left) in zip(mask, corners)])
    return out_grey, out_mask


def sample_crops(
    grey: np.ndarray, mask: np.ndarray, *, size: int, rng: np.random.Generator, tries: int = 4,
    centres: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Square crops of ``size`` px, one per patch, placed by :func:`crop_corners`.

    Returns:
        ``(np.uint8[N, size, size], np.bool_[N, size, size])``.
    """
    corners = crop_corners(grey, mask, size=size, rng=rng, tries=tries, centres=centres)
    return cut_crops(grey, mask, corners, size)


def interleave(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Both index arrays in one order with the positives spread evenly (every batch gets its share of BAC crops:
    a batch of BAC-free crops alone gives the soft Dice loss nothing to learn from).

    Slot ``k`` of ``n = len(positives) + len(negatives)`` takes the next positive when
    ``⌊(k + 1)·p / n⌋ > ⌊k·p / n⌋`` (``p = len(positives)``), else the next negative.
    """
    total = len(positives) + len(negatives)
    slots = np.arange(total)
    is_positive = (slots + 1) * len(positives) // max(1, total) > slots * len(positives) // max(1, total)
    order = np.empty(total, np.int64)
    order[is_positive] = positives
    order[~is_positive] = negatives
    return order


def draw_negatives(hardness: np.ndarray, count: int, *, hard_share: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` BAC-free patches: a ``hard_share`` of them hard (drawn with probability ∝ their
    false-positive pixels at their last visit, among those with any), the rest uniformly from the others.

    Args:
        hardness: ``np.float64[M]``, false-positive pixels of each BAC-free patch at its last visit (0: none or
            not visited yet).
        count: patches to draw (at most ``M``).
        hard_share: share in [0, 1] drawn by hardness.
        rng: draws.

    Returns:
        ``np.int64[count]`` distinct indices into ``hardness``.
    """
    if not 0.0 <= hard_share <= 1.0:
        raise ParameterError(f"`hard_share` must be in [0, 1], {hard_share} is given.")
    count = min(int(count), len(hardness))
    hard = np.flatnonzero(hardness > 0)
    take_hard = min(len(hard), int(round(hard_share * count)))
    chosen = (rng.choice(hard, take_hard, replace=False, p=hardness[hard] / hardness[hard].sum())
              if take_hard else np.zeros(0, np.int64))
    rest = np.setdiff1d(np.arange(len(hardness)), chosen)
    return np.r_[chosen, rng.choice(rest, count - take_hard, replace=False)].astype(np.int64)


def false_positive_spots(probability: np.ndarray, coordinates: np.ndarray, *,
                         threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Where BAC-free crops fire: their pixels above ``threshold`` and the most probable one.

    Args:
        probability: ``np.float32[N, s, s]``, the network's output on (augmented) BAC-free crops.
        coordinates: ``np.float32[N, 2, s, s]``, each output pixel's (row, column) in its patch before
            augmentation (the crop's corner added; flips and turns moved them with the image).
        threshold: the cut-off counted.

    Returns:
        ``(np.int64[N] pixels above threshold, np.int64[N, 2] patch (row, column) of the maximum, −1 where none
        is above)``.
    """
    n = probability.shape[0]
    flat = probability.reshape(n, -1)
    counts = (flat > threshold).sum(axis=1).astype(np.int64)
    peak = flat.argmax(axis=1)
    spots = np.rint(coordinates.reshape(n, 2, -1)[np.arange(n), :, peak]).astype(np.int64)
    spots[counts == 0] = -1
    return counts, spots


def augment_patches(
    grey: torch.Tensor, mask: torch.Tensor, *, generator: torch.Generator, policy: AugmentationPolicy
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mammography augmentation of a batch (CPU tensors): geometry on both, intensity on the image.

    Args:
        grey: ``Tensor[N, 1, P, P]`` float in [0, 1] (0 outside the breast).
        mask: ``Tensor[N, 1, P, P]`` float in {0, 1}.
        generator: torch random generator (CPU).
        policy: probabilities and ranges (:class:`~medlim.mammography.plan.AugmentationPolicy`).

    Returns:
        Augmented ``(grey, mask)``.
    """
    n = grey.shape[0]
    draws = torch.rand(n, 14, generator=generator)
    out_grey, out_mask = [], []
    for i in range(n):
        g, m = grey[i], mask[i]
        if draws[i, 11] < policy.flip:
            g, m = g.flip(-1), m.flip(-1)
        if draws[i, 12] < policy.flip:
            g, m = g.flip(-2), m.flip(-2)
        if draws[i, 13] < policy.rotate:
            turns = 1 if draws[i, 13] < policy.rotate / 2 else 3
            g, m = torch.rot90(g, turns, (-2, -1)), torch.rot90(m, turns, (-2, -1))
        out_grey.append(augment_intensity(g, draws[i], policy, generator, region=g > 0))
        out_mask.append(m)
    return torch.stack(out_grey), torch.stack(out_mask)


def _scunet_step(model: nn.Module, optimizer: torch.optim.Optimizer, grey_u8: torch.Tensor, mask: torch.Tensor, *,
                 generator: torch.Generator, config: TrainingConfig, preset: BacPreset, device: torch.device) -> float:
    """One optimiser step on a batch of patches (augmented, normalised; bf16 autocast on CUDA); its loss."""
    grey = grey_u8.to(device, non_blocking=True).unsqueeze(1).float().div_(255.0)
    target = mask.to(device, non_blocking=True).unsqueeze(1).float()
    grey, target = augment_batch(grey, target, generator=generator, brightness=config.brightness,
                                 contrast=config.contrast)
    inputs = normalise_patches((grey * 255.0).round().to(torch.uint8), preset)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(inputs)
    loss = soft_dice_loss(torch.sigmoid(logits.float()), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_scunet(
    model: nn.Module,
    patches: PatchSet,
    *,
    preset: str | BacPreset = "thesis",
    config: TrainingConfig = TrainingConfig(),
    device: str | torch.device | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    key: Sequence[Any] | None = None,
) -> TrainingReport:
    """Train SCU-Net with soft Dice on sigmoid outputs (see module docstring).

    Args:
        model: an SCU-Net (raw output); trained in place.
        patches: training patches (preprocessed, :func:`extract_training_patches`).
        preset: preset whose patch normalisation is applied.
        config: hyper-parameters.
        device: torch device (None: CUDA when present, else CPU). On CUDA, bf16
            autocast is used for speed.
        progress: called as ``progress(epoch, epochs, mean_loss)`` after each epoch.
        key: what identifies the run (the recorded command): inside a job each epoch is
            saved and a resumed job goes on after the last saved one
            (:func:`medlim.core.training.run_epochs`); ``None``: nothing saved.

    Returns:
        :class:`TrainingReport`.
    """
    from medlim.core.training import run_epochs
    from medlim.core.training_resume import fit_resume

    if len(patches) == 0:
        raise ParameterError("No training patches: the images hold no calcification inside the breast.")
    preset = get_preset(preset)
    device = torch.device(device) if device is not None else select_device()
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    generator = torch.Generator().manual_seed(config.seed)
    grey_all = torch.from_numpy(patches.grey)
    mask_all = torch.from_numpy(patches.mask)
    losses: list[float] = []
    started = time.perf_counter()
    n = len(patches)
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))

    def train_epoch(epoch: int) -> None:
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            total += _scunet_step(model, optimizer, grey_all[index], mask_all[index], generator=generator,
                                  config=config, preset=preset, device=device)
        scheduler.step()
        losses.append(total / steps_per_epoch)
        if progress:
            progress(epoch, config.epochs, losses[-1])

    def restore_losses(values: Mapping[str, Any]) -> None:
        losses[:] = list(values["losses"])

    resume = None if key is None else fit_resume(
        "scunet", (*key, asdict(config), len(patches)),
        lambda: {"model": model, "optimiser": optimizer, "scheduler": scheduler, "generator": generator,
                 "losses": list(losses)}, apply=restore_losses)
    run_epochs(train_epoch, epochs=config.epochs, label="SCU-Net", resume=resume)
    model.eval()
    return TrainingReport(
        epochs=config.epochs,
        patches=n,
        final_loss=losses[-1],
        losses=tuple(losses),
        seconds=time.perf_counter() - started,
        device=str(device),
    )


def split_seeds(seeds: Sequence[int], *, holdout: float) -> tuple[list[int], list[int]]:
    """Split patient seeds into training and held-out lists (held-out: the last ones)."""
    if not 0.0 < holdout < 1.0:
        raise ParameterError(f"`holdout` must be in (0, 1), {holdout} is given.")
    cut = max(1, int(round(len(seeds) * (1 - holdout))))
    return list(seeds[:cut]), list(seeds[cut:])
