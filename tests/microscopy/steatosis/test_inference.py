"""Tiled droplet detection and tile-border merging (medlim.microscopy.steatosis.inference).

A stand-in "network" finds white disks by thresholding each tile, so the
tiling and merging logic is tested without trained weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medlim.core.tiling import overlapping_tiles
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.inference import MASK_THRESHOLD, Detection, detect_droplets, merge_detections


class ThresholdNet(torch.nn.Module):
    """Mask R-CNN look-alike: every connected bright region of a tile is one detection."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls += 1
        outputs = []
        for image in images:
            bright = image.mean(dim=0).numpy() > 0.8
            labels, n = ndimage.label(bright)
            boxes, masks = [], []
            for k, window in enumerate(ndimage.find_objects(labels), start=1):
                boxes.append([window[1].start, window[0].start, window[1].stop, window[0].stop])
                masks.append((labels == k).astype(np.float32))
            outputs.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.full((n,), 0.9),
                "labels": torch.ones(n, dtype=torch.int64),
                "masks": torch.from_numpy(np.stack(masks)[:, None] if masks else np.zeros((0, 1) + bright.shape, np.float32)),
            })
        return outputs


def _disk(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_tile_grid_covers_with_overlap() -> None:
    grid = overlapping_tiles((300, 200), tile=128, overlap=32)
    covered = np.zeros((300, 200), int)
    for box in grid:
        assert box.bottom - box.top <= 128 and box.right - box.left <= 128
        covered[box.window] += 1
    assert covered.min() >= 1
    tops = sorted({box.top for box in grid})
    assert all(b - a <= 128 - 32 for a, b in zip(tops, tops[1:]))
    assert [(b.top, b.left, b.bottom, b.right) for b in overlapping_tiles((50, 60), tile=128, overlap=32)] == [(0, 0, 50, 60)]


def test_bad_tiling_is_refused() -> None:
    image = np.zeros((100, 100, 3), np.float32)
    with pytest.raises(ParameterError, match="overlap"):
        detect_droplets(ThresholdNet(), image, tile=64, overlap=64, device="cpu")
    with pytest.raises(ParameterError, match="tile ≥ 32"):
        detect_droplets(ThresholdNet(), image, tile=16, overlap=0, device="cpu")


def test_droplet_straddling_a_tile_border_is_one_droplet() -> None:
    shape = (160, 300)
    # With tile 160 / overlap 64 the column tiles start at 0, 96 and 140: a disk
    # at column 128 lies across the first tile's right edge.
    straddling = _disk(shape, (80, 128), 18)
    inner = _disk(shape, (40, 30), 10)
    image = np.full(shape + (3,), 0.5, np.float32)
    image[straddling | inner] = 1.0
    net = ThresholdNet()
    found = detect_droplets(net, image, tile=160, overlap=64, device="cpu")
    assert net.calls == len(overlapping_tiles(shape, tile=160, overlap=64)) == 3
    assert found.count == 2
    assert found.labels.max() == 2
    for mask in (straddling, inner):
        values = np.unique(found.labels[mask])
        assert len(values) == 1 and values[0] > 0
        assert (found.labels == values[0]).sum() == mask.sum()


def test_merge_unites_overlapping_detections_of_different_tiles() -> None:
    a = Detection(top=0, left=0, mask=np.ones((4, 6), bool), score=0.7)
    b = Detection(top=0, left=2, mask=np.ones((4, 6), bool), score=0.9)
    merged = merge_detections([[a], [b]])
    assert len(merged) == 1
    assert merged[0].mask.shape == (4, 8) and merged[0].mask.all() and merged[0].score == 0.9
    # Within one tile the network's own decision stands (no merge).
    assert len(merge_detections([[a, b]])) == 2


def test_uint8_input_and_empty_image() -> None:
    net = ThresholdNet()
    found = detect_droplets(net, np.full((64, 64, 3), 100, np.uint8), tile=64, overlap=16, device="cpu")
    assert found.count == 0 and found.labels.shape == (64, 64)
    with pytest.raises(ParameterError):
        detect_droplets(net, np.zeros((64, 64)), device="cpu")


class RimNet(torch.nn.Module):
    """One detection: probability 0.9 on a disk of radius 6 at (16, 16) and 0.45 on the ring out to radius 7."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        height, width = images[0].shape[-2:]
        probability = np.where(_disk((height, width), (16, 16), 6), 0.9,
                               np.where(_disk((height, width), (16, 16), 7), 0.45, 0.0)).astype(np.float32)
        return [{"boxes": torch.tensor([[9.0, 9.0, 24.0, 24.0]]), "scores": torch.tensor([0.8]),
                 "labels": torch.ones(1, dtype=torch.int64), "masks": torch.from_numpy(probability)[None, None]}]


def test_mask_threshold_decides_whether_the_rim_is_droplet() -> None:
    image = np.zeros((32, 32, 3), np.float32)
    inner, outer = int(_disk((32, 32), (16, 16), 6).sum()), int(_disk((32, 32), (16, 16), 7).sum())
    assert (inner, outer) == (113, 149)  # lattice points within radius 6 and 7
    at_half = detect_droplets(RimNet(), image, tile=32, overlap=0, device="cpu")
    below = detect_droplets(RimNet(), image, tile=32, overlap=0, device="cpu", mask_threshold=MASK_THRESHOLD)
    assert int((at_half.labels > 0).sum()) == inner
    assert int((below.labels > 0).sum()) == outer
    with pytest.raises(ParameterError, match="mask_threshold"):
        detect_droplets(RimNet(), image, tile=32, overlap=0, device="cpu", mask_threshold=1.0)


def test_the_page_and_cli_use_the_weights_mask_threshold() -> None:
    from medlim.microscopy.steatosis.analysis import SteatosisModel, analyse_image

    assert MASK_THRESHOLD == 0.35
    # A mid-grey field is tissue, so the droplet is kept; its area follows the model's own threshold.
    image = np.full((32, 32, 3), 0.5, np.float32)
    for threshold, area in ((0.5, 113), (MASK_THRESHOLD, 149)):
        model = SteatosisModel(model=RimNet(), label="rim:1", tile=32, overlap=0, mask_threshold=threshold)
        assert analyse_image(model, image).table.area.tolist() == [float(area)]


def test_a_smaller_tile_gets_the_networks_limits_scaled_to_its_area() -> None:
    from medlim.microscopy.steatosis.inference import density_matched
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    model = build_steatosis_maskrcnn(detections_per_image=6000).eval()
    model.rpn._pre_nms_top_n["testing"] = model.rpn._post_nms_top_n["testing"] = 12_000
    quarter = density_matched(model, 512 * 512 / 1024**2)  # a 512² slide tile under 1024² limits
    assert quarter.rpn._pre_nms_top_n["testing"] == quarter.rpn._post_nms_top_n["testing"] == 3000
    assert quarter.roi_heads.detections_per_img == 1500
    # the model itself is untouched (the page's cached model may be running an image meanwhile); weights shared
    assert model.rpn._pre_nms_top_n["testing"] == 12_000 and model.roi_heads.detections_per_img == 6000
    assert model.rpn is not quarter.rpn and model.backbone is quarter.backbone
    assert quarter.roi_heads.mask_predictor is model.roi_heads.mask_predictor
    # a full tile, or something that is not a Mask R-CNN, comes back as it is; never fewer than one
    assert density_matched(model, 1.0) is model and density_matched(model, 2.0) is model
    plain = torch.nn.Linear(2, 2)
    assert density_matched(plain, 0.1) is plain
    assert density_matched(model, 1e-9).roi_heads.detections_per_img == 1
