"""Pixel spacing at inference (issue 13): the decision, the resampling and the manifest record."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.core.spacing import (
    MODEL_DEFAULT,
    USER,
    area_median,
    decide_spacing,
    grid_shape,
    resample_to_shape,
    spacing_pair,
    training_spacing,
)
from medlim.core.weights.entry import InputContract
from medlim.errors import InputError, ParameterError, WeightsError

MODEL = (0.07, 0.07)


def test_precedence_user_then_file_then_model() -> None:
    user = decide_spacing(file_spacing_mm=(0.1, 0.1), file_source="PixelSpacing", model_spacing_mm=MODEL,
                          user_spacing_mm=0.07)  # fmt: skip
    assert (user.pixel_spacing_mm, user.spacing_source, user.resampled) == ((0.07, 0.07), USER, False)
    file = decide_spacing(file_spacing_mm=(0.1, 0.1), file_source="ImagerPixelSpacing", model_spacing_mm=MODEL)
    assert file.spacing_source == "ImagerPixelSpacing" and file.model_spacing_mm == MODEL and file.warning is None
    none = decide_spacing(file_spacing_mm=None, file_source=None, model_spacing_mm=MODEL, model_label="scunet-bac v2")
    assert (none.pixel_spacing_mm, none.spacing_source, none.resampled) == (MODEL, MODEL_DEFAULT, False)
    assert "scunet-bac v2's own, 0.07 × 0.07 mm" in none.warning
    nothing = decide_spacing(file_spacing_mm=None, file_source=None, model_spacing_mm=None)
    assert (nothing.pixel_spacing_mm, nothing.spacing_source, nothing.warning) == (None, None, None)


def test_resampling_only_outside_the_training_range() -> None:
    def resampled(spacing: float) -> bool:
        return decide_spacing(file_spacing_mm=(spacing, spacing), file_source="PixelSpacing", model_spacing_mm=MODEL,
                              model_range_mm=(0.07, 0.085)).resampled  # fmt: skip

    # range 0.07–0.085 widened by 2 %: 0.0686 … 0.0867 mm
    assert not resampled(0.0687) and not resampled(0.085) and not resampled(0.0866)
    assert resampled(0.0685) and resampled(0.0868) and resampled(0.28) and resampled(0.05)
    # one axis outside is enough
    assert decide_spacing(file_spacing_mm=(0.07, 0.1), file_source="PixelSpacing", model_spacing_mm=MODEL).resampled


def test_grid_shape_and_model_shape() -> None:
    assert grid_shape((1024, 832), (0.28, 0.28), MODEL) == (4096, 3328)
    assert grid_shape((3, 3), (0.01, 0.01), (1.0, 1.0)) == (1, 1)  # never empty
    decision = decide_spacing(file_spacing_mm=(0.14, 0.105), file_source="PixelSpacing", model_spacing_mm=MODEL)
    assert decision.model_shape((640, 512)) == (1280, 768)


def test_resample_preserves_area_and_values() -> None:
    image = np.zeros((8, 8), np.uint8)
    image[2:6, 2:6] = 200
    # 2× down by area: each 2×2 block averaged: the 4×4 square becomes a 2×2 square of 200
    down = resample_to_shape(image, (4, 4))
    assert down.dtype == np.uint8 and down[1:3, 1:3].tolist() == [[200, 200], [200, 200]] and down.sum() == 800
    # a mask keeps pixels at least half covered: rows/columns 3–8 at half size cover the 2×2 blocks
    # 1..4 by ½, 1, 1, ½, so 4 cells are covered fully, 8 by ½ (kept) and 4 corners by ¼ (dropped): 12
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    half = resample_to_shape(mask, (6, 6))
    assert half.dtype == np.bool_ and half.sum() == 12 and not half[1, 1] and half[1, 2]
    aligned = np.zeros((12, 12), bool)
    aligned[4:8, 4:8] = True
    assert resample_to_shape(aligned, (6, 6)).sum() == 4
    # 2× up is bilinear: values stay within the input's range; a constant stays constant
    probability = np.full((4, 5), 0.75, np.float32)
    up = resample_to_shape(probability, (8, 10))
    assert up.dtype == np.float32 and np.allclose(up, 0.75)
    # one axis shrinks, the other grows
    mixed = resample_to_shape(np.ones((10, 4), np.float32), (5, 8))
    assert mixed.shape == (5, 8) and np.allclose(mixed, 1.0)
    with pytest.raises(Exception, match="2-D"):
        resample_to_shape(np.zeros((2, 2, 5), np.uint8), (1, 1))  # channels last, at most 4
    with pytest.raises(Exception, match="2-D"):
        resample_to_shape(np.zeros((2, 2, 3), bool), (1, 1))
    # a colour image (H&E) resizes channel by channel: a 2 × 2 block of one colour averages to that colour
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2, :2] = (200, 100, 50)
    small = resample_to_shape(rgb, (2, 2))
    assert small.shape == (2, 2, 3) and small[0, 0].tolist() == [200, 100, 50] and small[1, 1].tolist() == [0, 0, 0]


def test_area_median_keeps_a_coarse_pixel_where_half_of_it_passes_any_cutoff() -> None:
    """By hand, 8×8 → 2×2 (4 × 4 blocks of 16 values; the value is the 8th largest of each block)."""
    fine = np.zeros((8, 8), np.float32)
    fine[0:2, 0:4] = 0.9  # top left: 8 of 16 at 0.9 and 4 at 0.3 → 0.9
    fine[2, 0:4] = 0.3
    fine[0, 4:8] = 0.9  # top right: 7 of 16 at 0.9 → 0 (less than half of the pixel above any cut-off)
    fine[1, 4:7] = 0.9
    fine[4:8, 0:4] = 0.4  # bottom left: all 16 at 0.4 → 0.4
    fine[4:6, 4:8] = 0.6  # bottom right: 8 at 0.6 and 8 at 0.2 → 0.6
    fine[6:8, 4:8] = 0.2
    coarse = area_median(fine, (2, 2))
    np.testing.assert_allclose(coarse, [[0.9, 0.0], [0.4, 0.6]])
    for cutoff in (0.1, 0.25, 0.35, 0.5, 0.8):  # at every cut-off: kept ⇔ at least half of the block passes it
        share = (fine > cutoff).reshape(2, 4, 2, 4).mean(axis=(1, 3))
        np.testing.assert_array_equal(coarse > cutoff, share >= 0.5)
    # the area-averaged map counts the 7/16 block at 0.39 and the whole 0.2/0.6 block above 0.35
    np.testing.assert_allclose(resample_to_shape(fine, (2, 2)), [[0.525, 0.39375], [0.4, 0.4]], atol=1e-6)
    np.testing.assert_array_equal(area_median(fine, (8, 8)), fine)  # same grid: unchanged
    odd = area_median(np.ones((7, 5), np.float32), (3, 2))  # not a whole-number factor: nearest to 9 × 6 first
    assert odd.shape == (3, 2) and odd.dtype == np.float32 and np.all(odd == 1.0)
    with pytest.raises(InputError, match="coarser grid"):
        area_median(fine, (9, 2))


def test_training_spacing_is_the_lower_median() -> None:
    even = training_spacing([(0.07, 0.07, 80), (0.085, 0.085, 80)], where="phantoms")
    assert even["pixel_spacing_mm"] == [0.07, 0.07] and even["spacing_range_mm"] == [0.07, 0.085]
    assert training_spacing([(0.1, 0.1, 3), (0.05, 0.05, 1)], where="x")["pixel_spacing_mm"] == [0.1, 0.1]
    assert set(training_spacing([], where="a folder")) == {"scale"}


def test_input_contract_round_trip_and_validation() -> None:
    old = {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0]}
    assert InputContract.from_dict(old).to_dict() == old  # manifests without a spacing write back unchanged
    new = {**old, "pixel_spacing_mm": [0.07, 0.07], "spacing_range_mm": [0.07, 0.085], "scale": "mm at the breast"}
    contract = InputContract.from_dict(new)
    assert contract.pixel_spacing_mm == (0.07, 0.07) and contract.to_dict() == new
    with pytest.raises(WeightsError, match="pixel_spacing_mm"):
        InputContract(channels=1, pixel_spacing_mm=(0.07, -1.0))
    with pytest.raises(WeightsError, match="finest, coarsest"):
        InputContract(channels=1, spacing_range_mm=(0.1, 0.05))
    with pytest.raises(ParameterError, match="positive"):
        spacing_pair((0.1, 0.0))
