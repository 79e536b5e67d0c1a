"""Patch tiling for whole-image inference: grid, batching with a skip rule, and merging.

The one implementation of tile grids in medlim: SCU-Net patches (square,
merged pixel by pixel, below) and steatosis tiles (:func:`overlapping_tiles`:
tiles cut short at the image edge, each owning a *core* so that an object is
kept from exactly one tile) share :func:`patch_starts`.

Generic (any 2-D image, any patch model). Large images (a 4096×3328 mammogram,
thesis §3.3.2: "we crop images into fixed-size patches of 512×512") are cut
into square patches on a regular grid whose last start is snapped to the edge
(``n − patch``), batched a few at a time, and the predictions accumulated
straight into one output map — memory stays bounded by one batch plus the
map, never the full set of patches, and nothing goes through temporary files.

Merge rules for overlapping pixels:

* ``"max"`` — element-wise maximum into a map initialised to 0 (the SCU-Net
  authors' code; negative values therefore clip to 0, uncovered pixels are 0);
* ``"mean"`` — average of the patches that cover a pixel;
* ``"gaussian"`` — average weighted by a Gaussian centred on each patch
  (σ = patch/8), which down-weights the less reliable patch borders.

Pixels covered by no predicted patch (all covering patches skipped) are 0 for
every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from medlim.errors import ParameterError

__all__ = [
    "MergeRule",
    "patch_starts",
    "patch_grid",
    "Tile",
    "core_spans",
    "overlapping_tiles",
    "pad_to_patch",
    "gaussian_weight",
    "PatchBatch",
    "iter_patch_batches",
    "PatchMerger",
]

MergeRule = Literal["max", "mean", "gaussian"]
_MERGE_RULES = ("max", "mean", "gaussian")


def _check_patch_stride(patch: int, stride: int) -> None:
    if not isinstance(patch, int) or patch < 1:
        raise ParameterError(f"`patch` must be a positive integer, {patch!r} is given.")
    if not isinstance(stride, int) or not 1 <= stride <= patch:
        raise ParameterError(f"`stride` must be an integer in [1, patch={patch}], {stride!r} is given.")


def patch_starts(length: int, *, patch: int, stride: int) -> np.ndarray:
    """Start offsets along one axis: ``0, stride, 2·stride, …`` below ``length − patch``, then ``length − patch``.

    Args:
        length: axis length in pixels, ≥ ``patch`` (pad smaller images first,
            see :func:`pad_to_patch`).
        patch: patch side.
        stride: step between starts, in [1, patch].

    Returns:
        ``np.int64[K]``, strictly increasing, first 0, last ``length − patch``.
    """
    _check_patch_stride(patch, stride)
    if length < patch:
        raise ParameterError(f"Axis length {length} is smaller than the patch {patch}; pad the image first.")
    regular = np.arange(0, length - patch, stride, dtype=np.int64)
    return np.append(regular, np.int64(length - patch))


def patch_grid(shape: tuple[int, int], *, patch: int, stride: int) -> np.ndarray:
    """Top-left corners of all patches covering a ``shape`` image, row-major.

    Returns:
        ``np.int64[K, 2]`` of (row, column) starts.
    """
    rows = patch_starts(int(shape[0]), patch=patch, stride=stride)
    cols = patch_starts(int(shape[1]), patch=patch, stride=stride)
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1)
    return grid.reshape(-1, 2)


@dataclass(frozen=True)
class Tile:
    """One tile of :func:`overlapping_tiles` and the part of the plane it owns.

    Attributes:
        top, left, bottom, right: the tile's box in px (bottom and right
            exclusive), cut short at the image edge.
        core: ``(top, left, bottom, right)`` float bounds of the tile's core —
            up to the middle of each overlap with a neighbour, ±inf on the image
            border; the cores of a grid partition the plane.
    """

    top: int
    left: int
    bottom: int
    right: int
    core: tuple[float, float, float, float]

    @property
    def window(self) -> tuple[slice, slice]:
        """``image[tile.window]`` is the tile's view of the image."""
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def owns(self, row: float, col: float) -> bool:
        """Whether ``(row, col)`` (image px) lies in the tile's core (lower bounds inclusive)."""
        core_top, core_left, core_bottom, core_right = self.core
        return core_top <= row < core_bottom and core_left <= col < core_right


def _tile_starts(length: int, *, tile: int, stride: int) -> np.ndarray:
    """:func:`patch_starts`, except that an axis no longer than the tile is one tile at 0 (cut short)."""
    if length <= tile:
        _check_patch_stride(tile, stride)
        return np.zeros(1, dtype=np.int64)
    return patch_starts(length, patch=tile, stride=stride)


def core_spans(starts: np.ndarray, *, tile: int) -> list[tuple[float, float]]:
    """Per tile along one axis, the span it owns: from the middle of the overlap with
    the previous tile to the middle of the overlap with the next one.

    Args:
        starts: ``np.int64[K]`` tile starts, increasing, consecutive tiles
            overlapping or touching (as :func:`patch_starts` gives).
        tile: tile side.

    Returns:
        ``K`` pairs ``(low, high)``; the first ``low`` is −inf and the last
        ``high`` +inf, so every position belongs to exactly one span.
    """
    positions = [int(s) for s in starts]
    middles = [(positions[i + 1] + positions[i] + tile) / 2 for i in range(len(positions) - 1)]
    return list(zip([-np.inf, *middles], [*middles, np.inf]))


def overlapping_tiles(shape: tuple[int, int], *, tile: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering an image, each with the core it owns, row by row.

    Tiles start every ``tile − overlap`` px with the last one snapped to the edge
    (:func:`patch_starts`), so neighbours overlap by at least ``overlap`` px; an
    image side no longer than ``tile`` is one tile, cut short.

    Args:
        shape: ``(H, W)`` of the image.
        tile: tile side in px (≥ 1).
        overlap: overlap of neighbouring tiles in px, in ``[0, tile)``.

    Returns:
        :class:`Tile` per grid position, row-major.
    """
    if not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise ParameterError(f"`overlap` must be an integer in [0, tile={tile}), {overlap!r} is given.")
    height, width = int(shape[0]), int(shape[1])
    row_starts = _tile_starts(height, tile=tile, stride=tile - overlap)
    col_starts = _tile_starts(width, tile=tile, stride=tile - overlap)
    row_cores = core_spans(row_starts, tile=tile)
    col_cores = core_spans(col_starts, tile=tile)
    return [
        Tile(
            top=int(top), left=int(left), bottom=min(int(top) + tile, height), right=min(int(left) + tile, width),
            core=(row_core[0], col_core[0], row_core[1], col_core[1]),
        )
        for top, row_core in zip(row_starts, row_cores)
        for left, col_core in zip(col_starts, col_cores)
    ]


def pad_to_patch(image: np.ndarray | torch.Tensor, *, patch: int, value: float = 0) -> np.ndarray | torch.Tensor:
    """Pad an image at the bottom and right to at least ``patch`` along both axes.

    Args:
        image: ``np.ndarray[H, W]`` or ``torch.Tensor[H, W]`` (padded where it lives) of any dtype.
        patch: minimum side.
        value: fill value.

    Returns:
        The image itself when already large enough, else a padded copy
        ``[max(H, patch), max(W, patch)]`` (crop results back with ``[:H, :W]``).
    """
    pad_rows = max(0, patch - image.shape[0])
    pad_cols = max(0, patch - image.shape[1])
    if pad_rows == 0 and pad_cols == 0:
        return image
    if isinstance(image, torch.Tensor):
        return torch.nn.functional.pad(image, (0, pad_cols, 0, pad_rows), mode="constant", value=value)
    return np.pad(image, ((0, pad_rows), (0, pad_cols)), mode="constant", constant_values=value)


def gaussian_weight(patch: int, *, sigma_scale: float = 0.125, floor: float = 1e-3) -> np.ndarray:
    """Separable Gaussian importance map for one patch, peak 1.

    Args:
        patch: patch side.
        sigma_scale: σ as a fraction of the patch side.
        floor: smallest weight (keeps every covered pixel's total weight > 0).

    Returns:
        ``np.float32[patch, patch]`` in [floor, 1].
    """
    if sigma_scale <= 0:
        raise ParameterError(f"`sigma_scale` must be positive, {sigma_scale} is given.")
    centre = (patch - 1) / 2.0
    axis = np.exp(-0.5 * ((np.arange(patch) - centre) / (sigma_scale * patch)) ** 2)
    weight = np.outer(axis, axis)
    return np.maximum(weight / weight.max(), floor).astype(np.float32)


@dataclass(frozen=True)
class PatchBatch:
    """Patches to predict, with where they came from.

    Attributes:
        origins: ``np.int64[n, 2]`` (row, column) of each patch's top-left corner.
        patches: ``[n, patch, patch]`` copies in the image's type and dtype
            (``np.ndarray``, or ``torch.Tensor`` on the image's device).
        done: grid patches handled so far, this batch and skipped ones included.
        total: grid patches in all.
    """

    origins: np.ndarray
    patches: np.ndarray | torch.Tensor
    done: int
    total: int


def iter_patch_batches(
    image: np.ndarray | torch.Tensor,
    *,
    patch: int,
    stride: int,
    batch_size: int,
    skip: Callable[[Any], Any] | None = None,
) -> Iterator[PatchBatch]:
    """Cut an image into grid patches and yield them ``batch_size`` at a time.

    Only one batch of patches exists at a time. Patches for which ``skip``
    returns True are dropped (never yielded); count them as
    ``total − Σ len(origins)``.

    Args:
        image: ``np.ndarray[H, W]`` or ``torch.Tensor[H, W]`` (cut where it lives,
            e.g. on the GPU), H and W ≥ ``patch`` (see :func:`pad_to_patch`).
        patch: patch side.
        stride: step between patch starts.
        batch_size: patches per yielded batch (the last may be smaller), ≥ 1.
        skip: ``f(patches[n, patch, patch]) -> bool[n]`` (patches of the image's
            type; array-like result), True = do not predict.

    Yields:
        :class:`PatchBatch` with at least one patch.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"`batch_size` must be a positive integer, {batch_size!r} is given.")
    if image.ndim != 2:
        raise ParameterError(f"Tiling expects a 2-D image, got shape {image.shape}.")
    as_tensor = isinstance(image, torch.Tensor)
    origins = patch_grid(tuple(image.shape), patch=patch, stride=stride)
    total = len(origins)
    pending_origins: list[np.ndarray] = []
    pending_patches: list[np.ndarray | torch.Tensor] = []
    for begin in range(0, total, batch_size):
        chunk = origins[begin : begin + batch_size]
        patches = _stack_like([image[r : r + patch, c : c + patch] for r, c in chunk.tolist()], tensor=as_tensor)
        if skip is not None:
            decision = skip(patches)
            if isinstance(decision, torch.Tensor):
                decision = decision.cpu().numpy()
            keep = np.flatnonzero(~np.asarray(decision, dtype=bool))
            chunk = chunk[keep]
            patches = patches[torch.from_numpy(keep).to(patches.device)] if isinstance(patches, torch.Tensor) else patches[keep]
        pending_origins.extend(chunk)
        pending_patches.extend(patches)
        done = min(begin + batch_size, total)
        while len(pending_origins) >= batch_size or (done == total and pending_origins):
            take = min(batch_size, len(pending_origins))
            yield PatchBatch(
                origins=np.asarray(pending_origins[:take], dtype=np.int64).reshape(-1, 2),
                patches=_stack_like(pending_patches[:take], tensor=as_tensor),
                done=done,
                total=total,
            )
            del pending_origins[:take], pending_patches[:take]


def _stack_like(parts: Sequence[np.ndarray | torch.Tensor], *, tensor: bool) -> np.ndarray | torch.Tensor:
    """``torch.stack(parts)`` for a tensor image, ``np.stack(parts)`` for an array (parts of that type)."""
    if tensor:
        return torch.stack([torch.as_tensor(part) for part in parts])
    return np.stack([np.asanyarray(part) for part in parts])


class PatchMerger:
    """Accumulates patch predictions into one full-size map (torch, on any device).

    Args:
        shape: (H, W) of the output map.
        patch: patch side.
        rule: ``"max"``, ``"mean"`` or ``"gaussian"``.
        device: where the accumulators live (the model's device avoids copies).
    """

    def __init__(
        self, shape: tuple[int, int], *, patch: int, rule: MergeRule = "max", device: str | torch.device = "cpu"
    ) -> None:
        if rule not in _MERGE_RULES:
            raise ParameterError(f"Merge rule must be one of {_MERGE_RULES}, {rule!r} is given.")
        self.shape = (int(shape[0]), int(shape[1]))
        self.patch = patch
        self.rule = rule
        self.device = torch.device(device)
        self._values = torch.zeros(self.shape, dtype=torch.float32, device=self.device)
        self._weights: torch.Tensor | None = None
        self._patch_weight: torch.Tensor | None = None
        if rule != "max":
            self._weights = torch.zeros(self.shape, dtype=torch.float32, device=self.device)
            if rule == "gaussian":
                self._patch_weight = torch.from_numpy(gaussian_weight(patch)).to(self.device)
            else:
                self._patch_weight = torch.ones((patch, patch), dtype=torch.float32, device=self.device)
        self.patches_added = 0

    def add(self, predictions: torch.Tensor | np.ndarray, origins: np.ndarray) -> None:
        """Merge ``predictions`` (``[n, patch, patch]``, float) placed at ``origins`` (``[n, 2]``)."""
        values = torch.as_tensor(predictions).to(device=self.device, dtype=torch.float32)
        if values.ndim != 3 or tuple(values.shape[1:]) != (self.patch, self.patch) or len(values) != len(origins):
            raise ParameterError(
                f"Predictions must be [n, {self.patch}, {self.patch}] with one origin each; "
                f"got {tuple(values.shape)} and {len(origins)} origins."
            )
        places = np.asarray(origins).tolist()
        if self.rule == "max":
            for prediction, (row, col) in zip(values, places):
                region = (slice(row, row + self.patch), slice(col, col + self.patch))
                torch.maximum(self._values[region], prediction, out=self._values[region])
        else:
            weights, patch_weight = self._mean_accumulators()
            for prediction, (row, col) in zip(values, places):
                region = (slice(row, row + self.patch), slice(col, col + self.patch))
                self._values[region] += prediction * patch_weight
                weights[region] += patch_weight
        self.patches_added += len(values)

    def _mean_accumulators(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight sums, one patch's weights)`` of the ``"mean"`` and ``"gaussian"`` rules."""
        if self._weights is None or self._patch_weight is None:
            raise RuntimeError(f"the {self.rule!r} merge rule keeps no weights")
        return self._weights, self._patch_weight

    def result(self) -> np.ndarray:
        """The merged map, ``np.float32[H, W]`` (0 where no patch was added)."""
        if self.rule == "max":
            merged = self._values
        else:
            weights, _ = self._mean_accumulators()
            merged = torch.where(weights > 0, self._values / weights.clamp_min(1e-12), 0.0)
        if merged.device.type == "cuda":
            # A 4096×3328 float32 map takes ~50 ms to reach pageable memory on an H200
            # and ~1 ms through a pinned buffer (benchmarks/bench_bac.py); the final
            # copy gives the caller ordinary memory.
            staging = torch.empty(merged.shape, dtype=merged.dtype, pin_memory=True)
            staging.copy_(merged)
            return staging.numpy().copy()
        return merged.cpu().numpy()
