"""BAC metrics (thesis eq. 3.8–3.9) on hand-computed 3×3 examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.errors import InputError, ParameterError
from medlim.mammography.inference import BacPrediction
from medlim.mammography.preprocess import PreprocessedImage
from medlim.mammography.quantify import quantify_bac, quantify_prediction

# p > 0.5 at (0,0) I=120, (0,2) I=100, (1,1) I=99 (p = 0.65 exactly), (2,0) I=100, (2,2) I=255;
# (1,0) has p = 0.5 exactly, so it is not BAC at t = 0.5 (the cut-off is strict).
PROBABILITY = np.array([[0.9, 0.2, 0.7], [0.5, 0.65, 0.1], [1.0, 0.0, 0.8]], dtype=np.float32)
IMAGE = np.array([[120, 0, 100], [200, 99, 50], [100, 30, 255]], dtype=np.uint8)


def test_thesis_rule_at_cutoff_half() -> None:
    metrics = quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, intensity_rule=">")
    assert metrics.pm == pytest.approx(4.85, abs=1e-6)
    assert metrics.am == 5
    assert metrics.sim == 120 + 100 + 99 + 100 + 255
    assert metrics.tam_x == 2  # 120, 255 (100 is not > 100)
    assert metrics.tsim_x == 375
    assert metrics.breast_area == 8 and metrics.breast_area_rule == "nonzero"  # I > 0: all but (0,1)
    assert metrics.tam_x_per_breast_area == pytest.approx(2 / 8)
    assert (metrics.x, metrics.threshold, metrics.intensity_rule) == (100.0, 0.5, ">")


def test_published_rule_at_cutoff_065() -> None:
    metrics = quantify_bac(PROBABILITY, IMAGE, threshold=0.65, x=100, intensity_rule=">=")
    assert metrics.am == 4  # p = 0.65 is not > 0.65
    assert metrics.sim == 120 + 100 + 100 + 255
    assert metrics.tam_x == 4  # 120, 100, 100, 255 are all ≥ 100
    assert metrics.tsim_x == 575
    assert metrics.pm == pytest.approx(4.85, abs=1e-6)  # PM does not depend on t


def test_rules_differ_only_at_equality() -> None:
    strict = quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, intensity_rule=">")
    inclusive = quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, intensity_rule=">=")
    assert inclusive.tam_x - strict.tam_x == 2 and inclusive.tsim_x - strict.tsim_x == 200
    # On integer intensities, I > 99 and I ≥ 100 select the same pixels.
    below = quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=99, intensity_rule=">")
    assert (below.tam_x, below.tsim_x) == (inclusive.tam_x, inclusive.tsim_x)


def test_breast_mask_and_mm2() -> None:
    mask = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=bool)
    metrics = quantify_bac(
        PROBABILITY, IMAGE, threshold=0.5, x=100, breast_mask=mask, pixel_spacing_mm=(0.1, 0.2), spacing_source="PixelSpacing"
    )
    assert metrics.breast_area == 6 and metrics.breast_area_rule == "mask"
    assert metrics.tam_x_per_breast_area == pytest.approx(2 / 6)
    assert metrics.am_mm2 == pytest.approx(5 * 0.02) and metrics.tam_x_mm2 == pytest.approx(2 * 0.02)
    assert metrics.pixel_spacing_mm == (0.1, 0.2) and metrics.spacing_source == "PixelSpacing"


def test_no_spacing_means_pixels_only() -> None:
    metrics = quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, spacing_source="ignored")
    assert metrics.am_mm2 is None and metrics.tam_x_mm2 is None and metrics.spacing_source is None
    assert quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, pixel_spacing_mm=0.1).am_mm2 == pytest.approx(0.05)


def test_empty_breast_gives_nan_ratio() -> None:
    metrics = quantify_bac(PROBABILITY, np.zeros((3, 3), np.uint8), threshold=0.5, x=100)
    assert metrics.breast_area == 0 and math.isnan(metrics.tam_x_per_breast_area)
    assert metrics.sim == 0 and metrics.am == 5


def test_matches_direct_formulas_on_random_data() -> None:
    rng = np.random.default_rng(7)
    p = rng.random((64, 48), dtype=np.float32)
    image = rng.integers(0, 256, (64, 48), dtype=np.uint8)
    for rule, op in ((">", np.greater), (">=", np.greater_equal)):
        metrics = quantify_bac(p, image, threshold=0.3, x=77, intensity_rule=rule)
        bac = p > 0.3
        assert metrics.am == bac.sum()
        assert metrics.sim == image[bac].astype(np.int64).sum()
        assert metrics.tam_x == (bac & op(image, 77)).sum()
        assert metrics.tsim_x == image[bac & op(image, 77)].astype(np.int64).sum()
        assert metrics.pm == pytest.approx(float(p.astype(np.float64).sum()))


def test_quantify_prediction_uses_preset_defaults() -> None:
    mask = IMAGE > 0
    prediction = BacPrediction(
        probability=PROBABILITY,
        preprocessed=PreprocessedImage(grey=IMAGE, breast_mask=mask),
        preset="published",
        merge="max",
        stride=480,
        patches_total=1,
        patches_predicted=1,
        device="cpu",
        seconds=0.0,
    )
    published = quantify_prediction(prediction)
    assert (published.threshold, published.intensity_rule, published.am, published.tam_x) == (0.65, ">=", 4, 4)
    thesis = quantify_prediction(prediction, threshold=0.5, intensity_rule=">")
    assert (thesis.am, thesis.tam_x) == (5, 2)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="int64"):
        quantify_bac(PROBABILITY, IMAGE.astype(np.int64), threshold=0.5, x=100)
    with pytest.raises(InputError, match="2, 3"):
        quantify_bac(PROBABILITY[:2], IMAGE, threshold=0.5, x=100)
    with pytest.raises(ParameterError, match="'=>'"):
        quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, intensity_rule="=>")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="-0.1"):
        quantify_bac(PROBABILITY, IMAGE, threshold=0.5, x=100, pixel_spacing_mm=-0.1)
    with pytest.raises(ParameterError, match="nan"):
        quantify_bac(PROBABILITY, IMAGE, threshold=float("nan"), x=100)
