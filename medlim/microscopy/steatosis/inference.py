"""Droplet detection with Mask R-CNN, tile by tile, with tile-border droplets merged (thesis §3.2.3, Fig. 3.4).

Whole-slide regions are larger than one network input, so the image is cut
into overlapping tiles (default 1024 px, the thesis tile, with 128 px
overlap — more than the widest droplet; the grid is
:func:`medlim.core.tiling.overlapping_tiles`). A detection is kept only from the
tile whose *core* (the tile minus half the overlap on every side that has a
neighbour) holds its mask centre, so each droplet comes from the one tile that
sees it whole. Detections of neighbouring tiles that still overlap (a centre
right on a core border) are merged into one: their masks are united and the
higher score kept. Finally every pixel goes to the highest-scoring droplet
covering it, giving an instance label image.

Tiles, batches and merges stay in memory (no temporary files).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from medlim.core.tiling import overlapping_tiles
from medlim.errors import ParameterError

__all__ = [
    "density_matched",
    "Detection",
    "DropletDetections",
    "detect_tile",
    "merge_detections",
    "detect_droplets",
    "MASK_THRESHOLD",
]

#: Mask probability at or above which a pixel belongs to a droplet, for the shipped weights and for weights
#: trained by ``medlim train steatosis`` (their manifests record it as ``thresholds["mask"]``). Below
#: torchvision's 0.5: the mask head's probability falls off across the droplet's rim, and at 0.5 the masks
#: missed 4–7 % of the droplet area on the validation phantoms (seeds 7000–7007, pixels within 1 px of a
#: mask), which read the steatosis % of tissue low (issue 13). 0.35 was the best of 0.3–0.5 on validation
#: phantoms 7000–7007 and 7100–7107. 0.25 read the validation-dense phantoms 7200–7207 closer still (2.5 vs
#: 4.7 points with 6,000 detections) but was not kept: a duplicate detection's wider rim then outlives the
#: better detection of the same droplet as a sliver of its own (36 objects for 18 droplets on the seam slide of
#: ``tests/microscopy/test_slides_memory.py``).
MASK_THRESHOLD = 0.35


@dataclass(frozen=True)
class Detection:
    """One droplet found by the network.

    Attributes:
        top, left: position of ``mask`` in the image (px).
        mask: ``np.ndarray[h, w]`` bool, the droplet inside its box.
        score: detection score in [0, 1].
    """

    top: int
    left: int
    mask: np.ndarray
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        rows, cols = np.nonzero(self.mask)
        return (self.top + float(rows.mean()), self.left + float(cols.mean())) if len(rows) else (
            self.top + self.mask.shape[0] / 2, self.left + self.mask.shape[1] / 2)


@dataclass(frozen=True)
class DropletDetections:
    """All droplets of one image.

    Attributes:
        labels: ``np.ndarray[H, W]`` int32 instance labels 1..n (0 = none),
            each pixel given to the highest-scoring droplet covering it.
        scores: ``np.ndarray[n]`` float32, score of droplet ``k`` at index ``k − 1``.
        tiles: number of tiles the network ran on.
        seconds: wall time.
    """

    labels: np.ndarray
    scores: np.ndarray
    tiles: int
    seconds: float

    @property
    def count(self) -> int:
        return int(len(self.scores))


def density_matched(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    """``model`` with its per-image limits — region proposals before and after NMS, detections kept — × ``scale``
    (each at least 1), so that a tile smaller than the one the limits were set for gets as many proposals per
    pixel: with the full limits a 512² slide tile had four times the proposal density of a 1024² image, and
    its extra faint detections read dense tissue 4–7 points higher than the same image in one piece. A shallow
    copy sharing the weights; ``model`` itself is unchanged (it may be in use elsewhere). A model without
    Mask R-CNN's heads, or ``scale`` ≥ 1, comes back as it is.
    """
    rpn, heads = getattr(model, "rpn", None), getattr(model, "roi_heads", None)
    if scale >= 1 or rpn is None or heads is None:
        return model
    scaled = copy.copy(model)
    scaled._modules = dict(model._modules)  # the copy's own children table: the original keeps its heads
    proposals = copy.copy(rpn)
    proposals._pre_nms_top_n = {k: max(1, round(v * scale)) for k, v in rpn._pre_nms_top_n.items()}
    proposals._post_nms_top_n = {k: max(1, round(v * scale)) for k, v in rpn._post_nms_top_n.items()}
    boxes = copy.copy(heads)
    boxes.detections_per_img = max(1, round(heads.detections_per_img * scale))
    scaled.rpn, scaled.roi_heads = proposals, boxes
    return scaled


def detect_tile(model: torch.nn.Module, tile: np.ndarray, *, device: torch.device, mask_threshold: float = 0.5,
                min_score: float = 0.05) -> list[Detection]:
    """Run the network on one tile.

    Args:
        model: a Mask R-CNN in eval mode on ``device``.
        tile: ``np.ndarray[h, w, 3]`` float32 RGB in [0, 1].
        device: the model's device.
        mask_threshold: mask probability cut (0.5, torchvision's convention).
        min_score: detections below this are dropped.

    Returns:
        Detections in tile coordinates.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32)).to(device)
    with torch.inference_mode():
        output = model([tensor])[0]
    boxes = output["boxes"].cpu().numpy()
    scores = output["scores"].cpu().numpy()
    found: list[Detection] = []
    height, width = tile.shape[:2]
    for index, (box, score) in enumerate(zip(boxes, scores)):
        if score < min_score:
            continue
        x0, y0 = max(int(np.floor(box[0])) - 1, 0), max(int(np.floor(box[1])) - 1, 0)
        x1, y1 = min(int(np.ceil(box[2])) + 1, width), min(int(np.ceil(box[3])) + 1, height)
        mask = _mask_window(output, index, (y0, y1, x0, x1)) >= mask_threshold
        if mask.sum() < 4:
            continue
        found.append(Detection(top=y0, left=x0, mask=mask, score=float(score)))
    return found


def _mask_window(output: dict, index: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """Detection ``index``'s mask probabilities over ``window`` (y0, y1, x0, x1) of the tile, float32.

    From the per-box ``"mask_crops"`` of :class:`~medlim.microscopy.steatosis.network.NativeScaleTransform`
    (0 outside the crop), or from full-size ``"masks"`` (torchvision's output, and stand-in networks').
    """
    y0, y1, x0, x1 = window
    if "mask_crops" not in output:
        return output["masks"][index, 0, y0:y1, x0:x1].cpu().numpy()
    top, left, crop = output["mask_crops"][index]
    crop = crop.cpu().numpy()
    values = np.zeros((y1 - y0, x1 - x0), np.float32)
    rows = slice(max(top, y0), min(top + crop.shape[0], y1))
    cols = slice(max(left, x0), min(left + crop.shape[1], x1))
    if rows.start < rows.stop and cols.start < cols.stop:
        values[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0] = \
            crop[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
    return values


def _iou(a: Detection, b: Detection) -> float:
    top, left = max(a.top, b.top), max(a.left, b.left)
    bottom = min(a.top + a.mask.shape[0], b.top + b.mask.shape[0])
    right = min(a.left + a.mask.shape[1], b.left + b.mask.shape[1])
    if bottom <= top or right <= left:
        return 0.0
    inter = np.logical_and(
        a.mask[top - a.top : bottom - a.top, left - a.left : right - a.left],
        b.mask[top - b.top : bottom - b.top, left - b.left : right - b.left],
    ).sum()
    union = a.mask.sum() + b.mask.sum() - inter
    return float(inter / union) if union else 0.0


def _union(a: Detection, b: Detection) -> Detection:
    top, left = min(a.top, b.top), min(a.left, b.left)
    bottom = max(a.top + a.mask.shape[0], b.top + b.mask.shape[0])
    right = max(a.left + a.mask.shape[1], b.left + b.mask.shape[1])
    mask = np.zeros((bottom - top, right - left), bool)
    for d in (a, b):
        mask[d.top - top : d.top - top + d.mask.shape[0], d.left - left : d.left - left + d.mask.shape[1]] |= d.mask
    return Detection(top=top, left=left, mask=mask, score=max(a.score, b.score))


def merge_detections(groups: list[list[Detection]], *, iou_threshold: float = 0.3) -> list[Detection]:
    """Merge detections of different tiles that are one droplet (mask IoU ≥ threshold).

    Args:
        groups: detections per tile, already in image coordinates.
        iou_threshold: two detections from *different* tiles overlapping at
            least this much are united (mask union, higher score).

    Returns:
        The merged list.
    """
    merged: list[Detection] = []
    owner: list[int] = []
    for tile_index, group in enumerate(groups):
        for detection in group:
            match = -1
            for k, existing in enumerate(merged):
                if owner[k] != tile_index and _iou(existing, detection) >= iou_threshold:
                    match = k
                    break
            if match >= 0:
                merged[match] = _union(merged[match], detection)
            else:
                merged.append(detection)
                owner.append(tile_index)
    return merged


def _paint(detections: list[Detection], shape: tuple[int, int], *, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """Label image where higher scores win overlaps; droplets left with < min_area px are dropped."""
    order = sorted(range(len(detections)), key=lambda i: detections[i].score)
    canvas = np.zeros(shape, np.int32)
    for rank, i in enumerate(order, start=1):
        d = detections[i]
        window = canvas[d.top : d.top + d.mask.shape[0], d.left : d.left + d.mask.shape[1]]
        window[d.mask[: window.shape[0], : window.shape[1]]] = rank
    scores_by_rank = np.array([0.0] + [detections[i].score for i in order], np.float32)
    areas = np.bincount(canvas.ravel(), minlength=len(order) + 1)
    keep = (areas >= min_area) & (np.arange(len(order) + 1) > 0)
    # Highest score first in the output numbering.
    ranks = np.nonzero(keep)[0][::-1]
    lookup = np.zeros(len(order) + 1, np.int32)
    lookup[ranks] = np.arange(1, len(ranks) + 1, dtype=np.int32)
    return lookup[canvas], scores_by_rank[ranks]


def detect_droplets(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    tile: int = 1024,
    overlap: int = 128,
    device: torch.device | str | None = None,
    min_score: float = 0.05,
    min_area: int = 6,
    mask_threshold: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
) -> DropletDetections:
    """Detect droplets in an image of any size.

    Args:
        model: the steatosis Mask R-CNN (eval mode).
        image: ``np.ndarray[H, W, 3]`` RGB, uint8 or float in [0, 1].
        tile: tile side in px (thesis 1024); the network's per-image limits hold for a tile of this side, a
            smaller piece (an image or a slide tile under it) gets them scaled to its area (:func:`density_matched`).
        overlap: overlap of neighbouring tiles in px (> widest droplet).
        device: where to run; None = the model's device.
        min_score: detections below this are not returned.
        min_area: droplets left with fewer px after overlaps are resolved are dropped.
        mask_threshold: mask probability cut in (0, 1) (0.5, torchvision's convention; the weights'
            own is :attr:`medlim.microscopy.steatosis.analysis.SteatosisModel.mask_threshold`).
        progress: ``progress(done, total)`` after each tile.

    Returns:
        :class:`DropletDetections`.
    """
    start = time.perf_counter()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ParameterError(f"expected an H×W×3 RGB image, got shape {image.shape}")
    if tile < 32 or not 0 <= overlap < tile:
        raise ParameterError(f"need tile ≥ 32 and 0 ≤ overlap < tile; tile={tile}, overlap={overlap} given.")
    if not 0 < mask_threshold < 1:
        raise ParameterError(f"`mask_threshold` must be in (0, 1), {mask_threshold} is given.")
    if np.issubdtype(image.dtype, np.integer):
        pixels = image[..., :3].astype(np.float32) / float(np.iinfo(image.dtype).max)
    else:
        pixels = np.clip(image[..., :3].astype(np.float32), 0, 1)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    model.to(device).eval()
    height, width = pixels.shape[:2]
    tiles = overlapping_tiles((height, width), tile=tile, overlap=overlap)
    groups: list[list[Detection]] = []
    for done, box in enumerate(tiles, start=1):
        kept = []
        window = pixels[box.window]
        net = density_matched(model, window.shape[0] * window.shape[1] / float(tile * tile))
        for d in detect_tile(net, window, device=device, mask_threshold=mask_threshold, min_score=min_score):
            shifted = Detection(top=d.top + box.top, left=d.left + box.left, mask=d.mask, score=d.score)
            if box.owns(*shifted.centre):
                kept.append(shifted)
        groups.append(kept)
        if progress is not None:
            progress(done, len(tiles))
    detections = merge_detections(groups)
    labels, scores = _paint(detections, (height, width), min_area=min_area)
    return DropletDetections(labels=labels, scores=scores, tiles=len(tiles), seconds=time.perf_counter() - start)

