"""Acquisition statistics (issue 13): hand-computed features, the reference's distance and the fusion rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.curation.image_statistics import (
    ACQUISITION_FEATURES,
    acquisition_feature_matrix,
    acquisition_features,
    fit_acquisition_reference,
    fused_scores,
    score_ratio,
)
from medlim.errors import ParameterError

F = {name: i for i, name in enumerate(ACQUISITION_FEATURES)}


def _noise(sigma: float, seed: int = 0, level: float = 0.5) -> np.ndarray:
    return (level + sigma * np.random.default_rng(seed).standard_normal((256, 256))).astype(np.float32)


def test_white_noise_gives_its_sigma_and_a_difference_correlation_of_minus_a_half() -> None:
    # Immerkær's kernel / 6 has unit energy (1+4+1+4+16+4+1+4+1 = 36 = 6²), so white noise of σ gives σ;
    # neighbouring differences of white noise share one sample with opposite signs: correlation −σ²/2σ² = −0.5
    features = acquisition_features(_noise(0.02))
    assert features[F["noise_all"]] == pytest.approx(0.02, rel=0.03)
    # (not the dark fifth: on pure noise, choosing the darkest pixels chooses large residuals)
    assert features[F["difference_correlation"]] == pytest.approx(-0.5, abs=0.03)


def test_a_blurred_image_has_less_laplacian_energy_less_noise_and_correlated_differences() -> None:
    import cv2

    sharp = _noise(0.02)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.0)
    a, b = acquisition_features(sharp), acquisition_features(blurred)
    assert b[F["laplacian_log_energy"]] < a[F["laplacian_log_energy"]] - 1.0
    assert b[F["noise_all"]] < 0.5 * a[F["noise_all"]]
    assert b[F["difference_correlation"]] > a[F["difference_correlation"]] + 0.3


def test_grid_lines_raise_the_periodic_peak() -> None:
    clean = _noise(0.02)
    lines = np.float32(0.02) * np.sin(2 * math.pi * np.arange(256) / 3.0).astype(np.float32)
    assert acquisition_features(clean + lines[None, :])[F["periodic_peak"]] \
        > acquisition_features(clean)[F["periodic_peak"]] + 3.0


def test_a_constant_image_has_its_grey_as_every_percentile_and_no_noise() -> None:
    features = acquisition_features(np.full((64, 64), 0.3, np.float32))
    for name in ("q01", "q20", "q50", "q80", "q99", "mean"):
        assert features[F[name]] == pytest.approx(0.3, abs=1e-6)
    assert features[F["noise_all"]] == pytest.approx(0.0, abs=1e-6) and features[F["air_left_right"]] == 0.0
    assert acquisition_feature_matrix([]).shape == (0, len(ACQUISITION_FEATURES))
    with pytest.raises(ParameterError, match="sides ≥ 16"):
        acquisition_features(np.zeros((8, 8), np.float32))


def test_one_feature_reference_is_the_standardised_distance() -> None:
    # rows 0…4: median 2, population std √2, the standardised rows have mean 0 and variance 1; with one
    # feature the shrinkage target equals the sample variance, so the distance is |x − 2| / √2
    reference = fit_acquisition_reference(np.arange(5.0).reshape(5, 1))
    assert reference.score(np.array([[6.0], [2.0], [0.0]])) == pytest.approx([4 / math.sqrt(2), 0.0, math.sqrt(2)])
    with pytest.raises(ParameterError, match="at least 3 rows"):
        fit_acquisition_reference(np.zeros((2, 3)))


def test_fusion_divides_by_the_held_back_median_and_keeps_the_larger_ratio() -> None:
    deep, stats = np.array([1.0, 4.0]), np.array([9.0, 3.0])
    # deep / median(1, 2, 3) = (0.5, 2); stats / median(3, 3, 3) = (3, 1)
    assert score_ratio(deep, np.array([1.0, 2.0, 3.0])) == pytest.approx([0.5, 2.0])
    assert fused_scores(deep, np.array([1.0, 2.0, 3.0]), stats, np.array([3.0, 3.0, 3.0])) == pytest.approx([3.0, 2.0])
    assert fused_scores(deep, np.array([1.0, 2.0, 3.0]), stats, np.array([3.0, 3.0, 3.0]), rule="mean") \
        == pytest.approx([math.sqrt(1.5), math.sqrt(2.0)])
    with pytest.raises(ParameterError, match="`rule`"):
        fused_scores(deep, deep, stats, stats, rule="sum")


def test_the_statistics_as_a_detector_flag_noise_at_their_calibrated_threshold() -> None:
    from medlim.curation.ood.scoring import fit_acquisition_detector

    clean = np.stack([_noise(0.02, seed=s) for s in range(10)])  # ID: one noise level
    detector = fit_acquisition_detector(clean, id_classes=("flat",), name="stats-flat")
    assert detector.threshold == pytest.approx(float(detector.reference.score(
        acquisition_feature_matrix(clean[[4, 9]])).max()))  # images 5 and 10 are held back
    noisy = detector.score(np.stack([_noise(0.04, seed=20), _noise(0.02, seed=21)]))
    assert noisy.score[0] > detector.threshold and noisy.score[0] > noisy.score[1]
    with pytest.raises(ParameterError, match="at least 10"):
        fit_acquisition_detector(clean[:5], id_classes=("flat",))


def _half_clipped(sigma: float, seed: int = 0) -> np.ndarray:
    """Rows 0–127 burnt to black, rows 128–159 burnt to white, rows 160–255 grey 0.5 with white noise of σ."""
    image = _noise(sigma, seed)
    image[:128], image[128:160] = 0.0, 1.0  # the noisy rows stay > 12 σ away from either end
    return image


def test_noise_on_a_half_clipped_image_is_read_on_its_unclipped_pixels() -> None:
    image = _half_clipped(0.02)
    # grey range 0…1, so "clipped" is ≤ 0.01 or ≥ 0.99: 128 black rows and 32 white rows of 256
    assert image.min() == 0.0 and image.max() == 1.0
    features = acquisition_features(image)
    assert features[F["clipped_dark"]] == pytest.approx(128 / 256)
    assert features[F["clipped_bright"]] == pytest.approx(32 / 256)
    # more than half the pixels are flat, so the whole-image MAD reads no noise at all …
    assert features[F["noise_all"]] == pytest.approx(0.0, abs=1e-6)
    # … while the 94 noisy rows left after one pixel's erosion on each side give σ, and their grey its median
    assert features[F["noise_unclipped"]] == pytest.approx(0.02, rel=0.05)
    assert features[F["difference_correlation_unclipped"]] == pytest.approx(-0.5, abs=0.05)
    assert features[F["unclipped_q50"]] == pytest.approx(0.5, abs=0.002)
    # 10th / 90th percentiles of N(0.5, 0.02): 0.5 ∓ 1.2816 · 0.02
    assert features[F["unclipped_q10"]] == pytest.approx(0.5 - 1.2816 * 0.02, abs=0.002)
    assert features[F["unclipped_q90"]] == pytest.approx(0.5 + 1.2816 * 0.02, abs=0.002)
    assert acquisition_features(_half_clipped(0.04))[F["noise_unclipped"]] == pytest.approx(0.04, rel=0.05)


def test_a_reference_stored_by_the_first_version_scores_on_its_own_seventeen_features() -> None:
    from medlim.curation.image_statistics import FIRST_FEATURES, AcquisitionReference

    rng = np.random.default_rng(3)
    rows = rng.normal(size=(30, len(ACQUISITION_FEATURES)))
    first = fit_acquisition_reference(rows[:, :17])
    stored = {**first.to_dict(), "feature_names": list(FIRST_FEATURES)}
    loaded = AcquisitionReference.from_dict(stored)
    assert loaded.feature_names == FIRST_FEATURES == ACQUISITION_FEATURES[:17]
    # today's full rows: the old reference takes its first 17 columns
    assert loaded.score(rows[:5]) == pytest.approx(first.score(rows[:5, :17]))
    full = fit_acquisition_reference(rows)
    assert AcquisitionReference.from_dict(full.to_dict()).feature_names == ACQUISITION_FEATURES
    with pytest.raises(ParameterError, match="other features"):
        AcquisitionReference.from_dict({**stored, "feature_names": ["noise_all"] * 17})
