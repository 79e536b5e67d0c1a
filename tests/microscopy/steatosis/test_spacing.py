"""Steatosis weights that know their pixel size (issue 13): recorded from the training images, images of another
size resized to it for detection, labels and µm² measured on the image's own grid.

A stand-in network that, like one trained at 0.5 µm per pixel, only finds droplets of the sizes it saw (bright
regions of at most 900 px, radius ≤ 17 px) sees the seam slide's droplets (radius 14 px at 0.5 µm) but not the
same tissue scanned at 0.25 µm (radius 28 px) — unless the image is resized to its scale first.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
import torch

from medlim.core.io.slide import open_slide
from medlim.microscopy.objects import NO_SPACING, MicronSpacing
from medlim.microscopy.steatosis.analysis import SteatosisModel, analyse_image, analyse_slide, resample_factor
from medlim.microscopy.steatosis.folder import training_spacing
from medlim.phantoms.base import save_png
from medlim.phantoms.slide import seam_droplet_slide, write_tiled_tiff
from tests.microscopy.test_slides import ThresholdNet


class SizedNet(ThresholdNet):
    """:class:`ThresholdNet` that drops detections larger than 900 px (what a network trained at one scale does)."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for found in super().forward(images):
            keep = found["masks"][:, 0].sum(dim=(1, 2)) <= 900
            outputs.append({key: value[keep] for key, value in found.items()})
        return outputs


def _model(um: float | None, *, tile: int = 2048) -> SteatosisModel:
    return SteatosisModel(model=SizedNet(), label="sized", tile=tile, overlap=64, mask_threshold=0.5,
                          pixel_spacing_um=um)


@pytest.fixture(scope="module")
def scanned() -> tuple[np.ndarray, np.ndarray, float]:
    """The seam slide at 0.5 µm (700 × 760 px) and the same tissue at 0.25 µm (twice the pixels), and one droplet's
    area in µm² at 0.5 µm."""
    truth = seam_droplet_slide((700, 760), seams=(192, 224, 256, 384, 416, 448), radius=14.0, patch=100)
    coarse = truth.render(0, 0, 700, 760)
    fine = cv2.resize(coarse, (1520, 1400), interpolation=cv2.INTER_LINEAR)
    return coarse, fine, truth.droplet_area() * 0.25


def test_the_resize_factor_follows_the_weights_size_and_their_range() -> None:
    assert resample_factor(_model(None), MicronSpacing(0.25, "file")) is None  # weights without a size
    assert resample_factor(_model(0.5), NO_SPACING) is None  # an image without one
    assert resample_factor(_model(0.5), MicronSpacing(0.505, "file")) is None  # within 2 %
    assert resample_factor(_model(0.5), MicronSpacing(0.25, "user")) == pytest.approx(0.5)
    ranged = SteatosisModel(model=None, label="r", tile=512, overlap=64, mask_threshold=0.5, pixel_spacing_um=0.5,
                            spacing_range_um=(0.4, 0.6))
    assert resample_factor(ranged, MicronSpacing(0.6, "file")) is None  # inside the training range
    assert resample_factor(ranged, MicronSpacing(1.0, "file")) == pytest.approx(2.0)


def test_a_finer_scan_is_resized_to_the_weights_scale_and_measured_on_its_own_grid(scanned) -> None:
    coarse, fine, droplet_um2 = scanned
    assert len(analyse_image(_model(0.5), coarse, spacing=MicronSpacing(0.5, "file")).table) == 36
    # at its own pixels the finer scan's droplets are too big for the network: none found (before issue 13's rule)
    assert len(analyse_image(_model(None), fine, spacing=MicronSpacing(0.25, "file")).table) == 0
    resized = analyse_image(_model(0.5), fine, spacing=MicronSpacing(0.25, "file"))
    assert len(resized.table) == 36 and resized.model_spacing_um == 0.5
    assert resized.labels is not None and resized.labels.shape == fine.shape[:2] and resized.labels.max() == 36
    assert resized.tissue is not None and resized.tissue.shape == fine.shape[:2]
    # measured on the image's own grid: each droplet has exactly 4 × the pixels it has in the image the network saw
    # (resized by ½ and its labels enlarged ×2, nearest), so the same µm²; near the truth (the stand-in's threshold
    # loses the droplets' anti-aliased rim twice: scanned finer, then resized)
    seen = analyse_image(_model(None), cv2.resize(fine, (760, 700), interpolation=cv2.INTER_AREA))
    assert sorted(resized.table.area.tolist()) == sorted((4 * seen.table.area).tolist())
    assert resized.report().to_json()["model_spacing_um"] == 0.5  # the page's JSON download is this dict
    assert analyse_image(_model(0.5), coarse, spacing=MicronSpacing(0.5, "file")).report().to_json()[
        "model_spacing_um"] is None  # not resized
    areas_um2 = resized.report().to_json()["kept_area_um2"] / 36
    assert areas_um2 == pytest.approx(seen.report().to_json()["kept_area_px2"] / 36 * 0.25)
    assert areas_um2 == pytest.approx(droplet_um2, rel=0.15)
    assert not resized.warnings
    report = analyse_image(_model(0.5), coarse).report()  # no size stated: the weights' own, said
    assert any("trained at 0.5 µm per pixel and took this image to be at that size" in warning
               for warning in report.warnings)


def test_a_finer_slide_is_resized_tile_by_tile(scanned, tmp_path) -> None:
    _, fine, droplet_um2 = scanned
    path = tmp_path / "fine.tif"
    write_tiled_tiff(path, lambda top, left, h, w: fine[top:top + h, left:left + w], fine.shape[:2], tile=256,
                     levels=0, spacing_um=0.25)
    with open_slide(path) as slide:
        # tiles of 1024 slide px (512 at the weights' scale) and an overlap of 384 (192 there)
        found = analyse_slide(_model(0.5, tile=512), slide, spacing=MicronSpacing(0.25, "file"))
    assert len(found.table) == 36 and found.model_spacing_um == 0.5
    assert found.report().to_json()["kept_area_um2"] / 36 == pytest.approx(droplet_um2, rel=0.15)


def test_training_records_the_lower_median_size_only_when_every_image_states_one(tmp_path) -> None:
    image = np.full((32, 32, 3), 200, np.uint8)
    paths = []
    for k, um in enumerate((0.5, 0.25, 0.5, 1.0)):
        path = tmp_path / f"tile{k}.tif"
        tifffile.imwrite(path, image, resolution=(1e4 / um, 1e4 / um), resolutionunit="CENTIMETER")
        paths.append(path)
    fields = training_spacing(paths)
    assert fields["pixel_spacing_mm"] == pytest.approx([0.0005, 0.0005])  # sorted 0.25, 0.5, 0.5, 1: lower median
    assert fields["spacing_range_mm"] == pytest.approx([0.00025, 0.001]) and "0.5 µm per pixel" in fields["scale"]
    save_png(tmp_path / "plain.png", image)
    none = training_spacing([*paths, tmp_path / "plain.png"])
    assert set(none) == {"scale"} and none["scale"].startswith("4 of 5 training images state a pixel size")


def test_weights_without_a_size_say_that_a_stated_size_could_not_be_used() -> None:
    from medlim.microscopy.steatosis.analysis import spacing_warning

    warning = spacing_warning(_model(None), MicronSpacing(0.25, "file"))
    assert warning is not None and "record no pixel size, so this image's 0.25 µm per pixel could not" in warning
    assert spacing_warning(_model(None), NO_SPACING) is None  # nothing known on either side: nothing to say
    assert spacing_warning(_model(0.5), MicronSpacing(0.25, "file")) is None  # resized instead
    assert "took this image to be at that size" in (spacing_warning(_model(0.5), NO_SPACING) or "")


def test_the_crowding_square_covers_the_same_tissue_at_any_scale(scanned) -> None:
    from medlim.microscopy.steatosis.analysis import crowding_window
    from medlim.microscopy.steatosis.droplets import droplet_crowding

    assert crowding_window(None) == 191.0 and crowding_window(0.5) == 382.0 and crowding_window(2.0) == 95.5
    _, fine, _ = scanned
    seen = cv2.resize(fine, (760, 700), interpolation=cv2.INTER_AREA)  # what the network sees of the finer scan
    at_scale = analyse_image(_model(0.5), seen, spacing=MicronSpacing(0.5, "file")).table
    resized = analyse_image(_model(0.5), fine, spacing=MicronSpacing(0.25, "file")).table
    order = np.lexsort(at_scale.centroid.T[::-1]), np.lexsort(resized.centroid.T[::-1])
    # each droplet 4 × its pixels over a window 2 × as wide: the same share of fat around it
    assert np.array_equal(resized.area[order[1]], 4 * at_scale.area[order[0]])
    assert resized.crowding[order[1]] == pytest.approx(at_scale.crowding[order[0]], abs=0.01)
    assert resized.crowding.max() > 0.05
    # a 191 px square on the finer grid would hold a quarter of the tissue and read other crowding
    own_pixels = droplet_crowding(resized.centroid, resized.area, resized.score)
    assert not np.allclose(own_pixels[order[1]], at_scale.crowding[order[0]], atol=0.01)


def test_the_shipped_weights_record_the_phantoms_pixel_size() -> None:
    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis import recipe
    from medlim.microscopy.steatosis.analysis import load_steatosis_model

    entry = Registry.load().get("maskrcnn-steatosis")
    assert entry.input_contract.pixel_spacing_mm == pytest.approx((0.0005, 0.0005))
    fields = recipe._entry_fields(name="x", version="1", command="c", seed=0, backbone="resnet10", tiles=1, tile_size=64)
    assert fields["input_contract"]["pixel_spacing_mm"] == pytest.approx([0.0005, 0.0005])  # retraining records it
    assert entry.to_dict()["input"]["scale"] == fields["input_contract"]["scale"] == recipe.PHANTOM_SCALE
    assert load_steatosis_model(device="cpu").pixel_spacing_um == pytest.approx(0.5)
