"""Whole-slide segmentation in overlapping tiles (medlim.microscopy.slides, steatosis ``analyse_slide``).

A small pyramidal tiled TIFF (256 px tiles, two sub-resolution levels) holds droplets centred on the seams of
the analysis grid — where tiles start and end and where their cores meet; every droplet must come out once,
whole, exactly as a single-image run finds it. A stand-in "network" (every bright region of a tile is one
detection, as in ``steatosis/test_inference.py``) lets the steatosis path run without trained weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medlim.core.io.slide import open_slide
from medlim.errors import ParameterError
from medlim.microscopy.slides import Region, TileSegmentation, parse_region, segment_slide
from medlim.phantoms.slide import seam_droplet_slide, write_tiled_tiff

#: Seams of a 256 px / 64 px overlap grid: tile 1 starts at 192, tile 0 ends at 256, their cores meet at 224;
#: tile 2 starts at 384, cores 1|2 meet at 416, tile 1 ends at 448.
SEAMS = (192, 224, 256, 384, 416, 448)


def _threshold_segmenter(pixels: np.ndarray) -> TileSegmentation:
    labels, _ = ndimage.label(pixels.min(axis=2) > 248)
    return TileSegmentation(labels=labels, tissue=pixels.min(axis=2) < 230)


def _large_bright_segmenter(pixels: np.ndarray) -> TileSegmentation:
    """Bright regions of at least 100 px (JPEG ringing leaves specks)."""
    labels, n = ndimage.label(pixels.min(axis=2) > 244)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.zeros(n + 1, np.int32)
    keep[1:][sizes[1:] >= 100] = np.arange(1, int((sizes[1:] >= 100).sum()) + 1)
    return TileSegmentation(labels=keep[labels])


@pytest.fixture
def seam_slide(tmp_path):
    slide = seam_droplet_slide((700, 760), seams=SEAMS, radius=14.0, patch=100)
    path = tmp_path / "seams.tif"
    write_tiled_tiff(path, slide.render, (700, 760), tile=256, levels=2, compression="deflate", spacing_um=0.5)
    return slide, path


def test_seam_droplets_are_counted_once_and_whole(seam_slide) -> None:
    truth, path = seam_slide
    with open_slide(path) as slide:
        assert slide.level_shapes == ((700, 760), (350, 380), (175, 190)) and slide.spacing[0] == pytest.approx(0.5)
        found = segment_slide(slide, _threshold_segmenter, tile=256, overlap=64, foreground=None)
    assert len(found) == len(truth.centres) == 36
    assert found.shapes["area_px2"].tolist() == [truth.droplet_area()] * 36
    got = sorted(map(tuple, found.shapes.centroid.round(6).tolist()))
    assert got == sorted(map(tuple, truth.centres.tolist()))
    # The single-image result: the same droplets, and tissue counted once per pixel.
    whole = truth.render(0, 0, 700, 760)
    single = _threshold_segmenter(whole)
    assert int(single.labels.max()) == 36 and found.tissue_px == float(single.tissue.sum())
    assert all(outline.area == pytest.approx(found.outlines[0].area) for outline in found.outlines)
    assert found.tiles == 16 and found.skipped == 0  # starts 0, 192, 384 and the edge-snapped last, per axis


def test_background_tiles_are_skipped_on_the_overview(tmp_path) -> None:
    truth = seam_droplet_slide((1200, 1200), seams=(192, 224, 256), radius=14.0, patch=100)
    path = tmp_path / "sparse.tif"
    write_tiled_tiff(path, truth.render, (1200, 1200), tile=256, levels=2)
    with open_slide(path) as slide:
        everything = segment_slide(slide, _threshold_segmenter, tile=256, overlap=64, foreground=None)
        skipping = segment_slide(slide, _threshold_segmenter, tile=256, overlap=64, overview_side=400)
    assert len(everything) == len(skipping) == 9
    assert skipping.skipped > 0 and skipping.tiles + skipping.skipped == everything.tiles == 36
    assert skipping.tissue_px == everything.tissue_px


def test_without_a_pyramid_glass_tiles_are_skipped_by_the_tile_itself(tmp_path) -> None:
    # a plain tiled TIFF has no overview: each tile read is checked as an overview would show it, so tiles of
    # glass never reach the segmenter (a 20,000² px blank slide ran the network on all 3,844 tiles before)
    truth = seam_droplet_slide((1200, 1200), seams=(192, 224, 256), radius=14.0, patch=100)
    path = tmp_path / "flat.tif"
    write_tiled_tiff(path, truth.render, (1200, 1200), tile=256, levels=0)
    seen = []

    def counting(pixels: np.ndarray) -> TileSegmentation:
        seen.append(pixels.shape)
        return _threshold_segmenter(pixels)

    with open_slide(path) as slide:
        assert len(slide.level_shapes) == 1
        everything = segment_slide(slide, _threshold_segmenter, tile=256, overlap=64, foreground=None)
        skipping = segment_slide(slide, counting, tile=256, overlap=64)
    assert len(everything) == len(skipping) == 9 and skipping.tissue_px == everything.tissue_px
    assert skipping.skipped > 0 and len(seen) == skipping.tiles == 36 - skipping.skipped
    # a speck of dust (2 × 2 px) on glass vanishes in the check's 8 px blocks: still glass; stained tissue does not
    blank = np.full((256, 256, 3), 240, np.uint8)
    specked = blank.copy()
    specked[100:102, 100:102] = (150, 60, 120)
    stained = blank.copy()
    stained[100:140, 100:140] = (150, 60, 120)
    from medlim.microscopy.slides import _tile_shows_tissue, bright_field_foreground

    assert [_tile_shows_tissue(tile, bright_field_foreground) for tile in (blank, specked, stained)] == [
        False, False, True]


def test_regions_and_progress(seam_slide) -> None:
    truth, path = seam_slide
    calls = []
    with open_slide(path) as slide:
        found = segment_slide(slide, _threshold_segmenter, region=parse_region("150,150,330,330"), tile=256,
                              overlap=64, foreground=None, progress=lambda done, total: calls.append((done, total)))
        with pytest.raises(ParameterError, match="outside"):
            segment_slide(slide, _threshold_segmenter, region=Region(600, 600, 200, 200))
    # Region x, y 150–480: droplets centred on 192, 224, 256, 384, 416, 448 lie wholly inside (radius 14).
    assert len(found) == 36 and calls[-1] == (len(calls), len(calls))
    assert sorted(map(tuple, found.shapes.centroid.round(6).tolist())) == sorted(map(tuple, truth.centres.tolist()))
    with pytest.raises(ParameterError, match="x,y,w,h"):
        parse_region("1,2,3")


def test_jpeg_slides_read_tile_by_tile(tmp_path) -> None:
    truth = seam_droplet_slide((600, 600), seams=(192, 256), radius=14.0, patch=100)
    write_tiled_tiff(tmp_path / "jpeg.tif", truth.render, (600, 600), tile=256, levels=1, compression="jpeg")
    with open_slide(tmp_path / "jpeg.tif") as slide:
        region = slide.read_region(150, 150, 150, 150)
        found = segment_slide(slide, _large_bright_segmenter, tile=256, overlap=64, foreground=None)
    error = np.abs(region.astype(int) - truth.render(150, 150, 150, 150).astype(int))
    assert error.mean() < 1.5 and error.max() <= 40  # lossy: ringing along the droplets' edges only
    assert len(found) == 4


class ThresholdNet(torch.nn.Module):
    """Mask R-CNN look-alike: every connected bright region of a tile is one detection (score 0.9)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for image in images:
            labels, n = ndimage.label(image.min(dim=0).values.numpy() > 0.97)
            boxes, masks = [], []
            for k, window in enumerate(ndimage.find_objects(labels), start=1):
                boxes.append([window[1].start, window[0].start, window[1].stop, window[0].stop])
                masks.append((labels == k).astype(np.float32))
            outputs.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.full((n,), 0.9), "labels": torch.ones(n, dtype=torch.int64),
                "masks": torch.from_numpy(np.stack(masks)[:, None] if masks else np.zeros((0, 1, *labels.shape),
                                                                                          np.float32)),
            })
        return outputs


def test_steatosis_on_a_slide_matches_the_single_image(seam_slide) -> None:
    from medlim.microscopy.objects import MicronSpacing
    from medlim.microscopy.steatosis.analysis import SteatosisModel, analyse_image, analyse_slide

    truth, path = seam_slide
    model = SteatosisModel(model=ThresholdNet(), label="threshold", tile=256, overlap=64, mask_threshold=0.5)
    with open_slide(path) as slide:
        tiled = analyse_slide(model, slide, tile=256, overlap=64, spacing=MicronSpacing(0.5, "file"))
    whole_model = SteatosisModel(model=ThresholdNet(), label="threshold", tile=1024, overlap=64, mask_threshold=0.5)
    single = analyse_image(whole_model, truth.render(0, 0, 700, 760))
    assert len(tiled.table) == len(single.table) == 36
    assert sorted(tiled.table.area.tolist()) == sorted(single.table.area.tolist()) == [truth.droplet_area()] * 36
    assert tiled.table.tissue_area == single.table.tissue_area  # each pixel counted once, glass found alike
    report = tiled.report()
    assert report.to_json()["kept_area_um2"] == pytest.approx(36 * truth.droplet_area() * 0.25)
    assert len(tiled.droplet_outlines()) == 36 and tiled.labels is None
