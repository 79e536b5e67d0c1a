"""Whole-mammogram SCU-Net inference: preprocess, tile, batch, predict, merge (thesis §3.3.2).

A full-field mammogram (4096×3328 or 3328×2560) is far larger than SCU-Net's
512×512 input, so it is cut into overlapping patches, background patches are
skipped, the rest are predicted a batch at a time and merged straight into one
map (:mod:`medlim.core.tiling`). With the ``published`` preset and the
authors' 8-bit checkpoint this reproduces their inference exactly: stride 480
with the last patch snapped to the edge, skip if mean ≤ 20 or std ≤ 10,
``(x/255 − 0.2813)/0.1256`` repeated to 3 channels after ``medianBlur(5)``,
element-wise max merge from a zero map (tested against a naive one-patch-at-a-
time oracle in ``tests/mammography/test_inference.py``).

CUDA runs under float16 autocast; CPU runs in float32. Everything stays in
memory: one batch of patches plus the output map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from medlim.core.device import select_device
from medlim.core.tiling import MergeRule, PatchBatch, PatchMerger, iter_patch_batches, pad_to_patch, patch_grid
from medlim.errors import InputError, ParameterError
from medlim.mammography.preprocess import (
    BacPreset,
    PreprocessedImage,
    as_read_view,
    background_rule,
    get_preset,
    image_floor,
    normalise_patches,
    preprocess_image,
    preprocess_tensor,
)

__all__ = ["BacPrediction", "OutputActivation", "predict_probability_map"]

#: How a model's raw output becomes a probability (a field of the weights' manifest):
#: ``"identity"`` — the raw output is read directly (soft-Dice training, the
#: authors' checkpoints; merged by max from 0 it is ≥ 0 and may slightly exceed 1);
#: ``"sigmoid"`` — logits (BCE training).
OutputActivation = Literal["identity", "sigmoid"]


@dataclass(frozen=True)
class BacPrediction:
    """Result of whole-image SCU-Net inference.

    Attributes:
        probability: ``np.float32[H, W]``, the merged per-pixel output ``p``
            (0 where every covering patch was skipped).
        preprocessed: the preset's grey image (``I`` of eq. 3.8–3.9) and breast mask.
        preset: name of the preprocessing preset used.
        merge: overlap merge rule used.
        stride: patch stride used (overlap = patch − stride).
        patches_total: patches in the grid.
        patches_predicted: patches run through the model.
        device: device the model ran on, e.g. ``"cpu"``, ``"cuda:0"``.
        seconds: wall-clock time of the whole call.
    """

    probability: np.ndarray
    preprocessed: PreprocessedImage
    preset: str
    merge: str
    stride: int
    patches_total: int
    patches_predicted: int
    device: str
    seconds: float

    @property
    def patches_skipped(self) -> int:
        """Grid patches judged background and not predicted."""
        return self.patches_total - self.patches_predicted


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return select_device()
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"Device {str(device)!r} requested but CUDA is not available here.")
    return resolved


def predict_probability_map(
    image: np.ndarray,
    model: nn.Module,
    *,
    preset: str | BacPreset = "published",
    stride: int | None = None,
    merge: MergeRule | None = None,
    skip: bool | str | Callable[[np.ndarray], np.ndarray] = True,
    output_activation: OutputActivation = "identity",
    batch_size: int = 8,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
    preprocess_on: Literal["auto", "host", "device"] = "auto",
) -> BacPrediction:
    """Predict the BAC map of a whole 8-bit mammogram.

    Args:
        image: ``np.uint8[H, W]`` grey mammogram (any size; images smaller than a
            patch are zero-padded and the result cropped back).
        model: SCU-Net (or any ``Tensor[N, C, p, p] → Tensor[N, 1, p, p]`` model).
            It is moved to ``device`` and run in eval mode (its train/eval flag
            is restored afterwards).
        preset: preprocessing preset (name or object); supplies the defaults below.
        stride: patch stride in pixels (``None``: the preset's; 480 published,
            448 thesis). Overlap = ``patch_size − stride``.
        merge: ``"max"`` / ``"mean"`` / ``"gaussian"`` (``None``: the preset's).
        skip: True: the preset's background rule (mean ≤ 20 or std ≤ 10);
            ``"black"``: only black patches (:func:`~medlim.mammography.preprocess.black_patches`);
            False: predict every patch; or a callable ``f(patches[n, p, p]) -> bool[n]``
            (True = skip) that receives ``np.uint8`` patches on the CPU and
            uint8 ``torch.Tensor`` patches on the GPU.
        output_activation: ``"identity"`` (raw output is the probability) or
            ``"sigmoid"`` — from the weights' manifest; applied per patch before merging.
        batch_size: patches per forward pass (CPU memory ≈ 100 MB per patch of the
            batch: +0.8 GiB at 8, measured by ``benchmarks/bench_bac.py``).
        device: ``"cpu"``, ``"cuda"``, … (``None``: CUDA when available).
        progress: called as ``progress(done, total)`` after each batch (grid patches).
        preprocess_on: ``"host"``: numpy/OpenCV preprocessing, then the grey
            image goes to the device; ``"device"``: the 8-bit image goes to the
            device first and is preprocessed there with tensor operations
            (:func:`~medlim.mammography.preprocess.preprocess_tensor`, the same
            result pixel for pixel); ``"auto"``: on the device when it is a GPU.

    Returns:
        :class:`BacPrediction` with ``probability`` as ``np.float32[H, W]``.

    Raises:
        InputError: ``image`` is not a 2-D uint8 array.
        ParameterError: bad stride, merge rule, batch size, activation or device.
    """
    started = time.perf_counter()
    preset = get_preset(preset)
    _check_inputs(image, output_activation=output_activation, preprocess_on=preprocess_on)
    stride = preset.stride if stride is None else stride
    merge = preset.merge if merge is None else merge
    patch = preset.patch_size
    run_device = _resolve_device(device)
    skip_rule = background_rule(skip, preset)
    preprocessed, source = _prepare_source(image, preset, run_device, preprocess_on=preprocess_on)
    merger = PatchMerger(tuple(source.shape), patch=patch, rule=merge, device=run_device)
    total = len(patch_grid(tuple(source.shape), patch=patch, stride=stride))
    batches = iter_patch_batches(source, patch=patch, stride=stride, batch_size=batch_size, skip=skip_rule)
    predicted = _predict_batches(model, batches, merger, preset, run_device, output_activation=output_activation,
                                 progress=progress)
    if predicted == 0 and progress is not None:  # every patch skipped: no batch was reported
        progress(total, total)

    height, width = image.shape
    probability = merger.result()[:height, :width]
    return BacPrediction(
        probability=np.ascontiguousarray(probability),
        preprocessed=preprocessed,
        preset=preset.name,
        merge=merge,
        stride=stride,
        patches_total=total,
        patches_predicted=predicted,
        device=str(run_device),
        seconds=time.perf_counter() - started,
    )


def _check_inputs(image: np.ndarray, *, output_activation: str, preprocess_on: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
        described = f"{image.dtype}{list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"Expected an 8-bit grey mammogram np.uint8[H, W], got {described}.")
    if output_activation not in ("identity", "sigmoid"):
        raise ParameterError(f"`output_activation` must be 'identity' or 'sigmoid', {output_activation!r} is given.")
    if preprocess_on not in ("auto", "host", "device"):
        raise ParameterError(f"`preprocess_on` must be 'auto', 'host' or 'device', {preprocess_on!r} is given.")


def _prepare_source(
    image: np.ndarray, preset: BacPreset, run_device: torch.device, *, preprocess_on: str
) -> tuple[PreprocessedImage, np.ndarray | torch.Tensor]:
    """The preprocessed image and the grey image to cut, padded to a patch (a tensor on the GPU, else numpy)."""
    patch = preset.patch_size
    use_half = run_device.type == "cuda"
    on_device = preprocess_on == "device" or (preprocess_on == "auto" and use_half)
    if on_device:
        # The 8-bit image (13 MB) goes over once and is preprocessed, cut,
        # tested and normalised beside the model.
        # the background floor once, on the host: it sets the air to 0 on the device and tells whether the
        # unfloored view (what the familiarity check scores) is needed
        floor = image_floor(image) if preset.background == "floor" else 0
        grey, mask = preprocess_tensor(torch.from_numpy(image).to(run_device), preset, floor=floor)
        preprocessed = PreprocessedImage(grey=grey.cpu().numpy(), breast_mask=mask.cpu().numpy(),
                                         as_read=as_read_view(image, preset, floor=floor))
        return preprocessed, pad_to_patch(grey, patch=patch)
    preprocessed = preprocess_image(image, preset)
    # on a GPU the grey image goes over once; on the CPU patches are numpy views until they are batched
    source = pad_to_patch(preprocessed.grey, patch=patch)
    if use_half:
        source = torch.from_numpy(source).to(run_device)
    return preprocessed, source


def _predict_batches(
    model: nn.Module,
    batches: Iterator[PatchBatch],
    merger: PatchMerger,
    preset: BacPreset,
    run_device: torch.device,
    *,
    output_activation: OutputActivation,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Run the model on every batch (float16 autocast on CUDA) and merge its output; return the patches predicted.

    The model runs in eval mode; its train/eval flag is restored afterwards.
    """
    use_half = run_device.type == "cuda"
    was_training = model.training
    model.to(run_device).eval()
    predicted = 0
    try:
        with torch.inference_mode():
            for batch in batches:
                patches = torch.as_tensor(batch.patches).to(run_device)[:, None]
                inputs = normalise_patches(patches, preset)
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_half):
                    output = model(inputs)
                output = output[:, 0].float()
                if output_activation == "sigmoid":
                    output = torch.sigmoid(output)
                merger.add(output, batch.origins)
                predicted += len(batch.origins)
                if progress is not None:
                    progress(batch.done, batch.total)
    finally:
        model.train(was_training)
    return predicted
