"""A detector's acquisition-statistics companion (issues 12–13): fusion, storage, calibration, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.curation.image_statistics import ACQUISITION_FEATURES, fit_acquisition_reference
from medlim.curation.ood.acquisition import COMPANION_KEY, AcquisitionCompanion, fit_companion, statistics_features
from medlim.curation.ood.nets import build_ood_autoencoder
from medlim.curation.ood.scoring import Detector
from medlim.errors import ParameterError

F = len(ACQUISITION_FEATURES)


def _companion(**changes) -> AcquisitionCompanion:
    rng = np.random.default_rng(0)
    reference = fit_acquisition_reference(rng.normal(size=(20, F)))
    fields = {"reference": reference, "deep_median": 2.0, "stats_median": 4.0, "threshold": 1.5}
    return AcquisitionCompanion(**{**fields, **changes})


def test_fused_score_is_the_larger_calibrated_ratio() -> None:
    companion = _companion()
    # detector 2, 6 → ratios 1, 3 (median 2); statistics 8, 4 → ratios 2, 1 (median 4): max 2, 3
    np.testing.assert_allclose(companion.fuse(np.array([2.0, 6.0]), np.array([8.0, 4.0])), [2.0, 3.0])
    # the geometric mean: √(1·2), √(3·1)
    np.testing.assert_allclose(_companion(rule="mean").fuse(np.array([2.0, 6.0]), np.array([8.0, 4.0])),
                               [2 ** 0.5, 3 ** 0.5])
    with pytest.raises(ParameterError):
        _companion(deep_median=0.0)
    with pytest.raises(ParameterError):
        _companion(rule="sum")


def test_companion_round_trips_through_json_and_refuses_a_mangled_one() -> None:
    companion = _companion(metrics={"validation_auroc_fused": 0.9})
    again = AcquisitionCompanion.from_json(companion.to_json())
    np.testing.assert_array_equal(again.reference.precision, companion.reference.precision)
    assert (again.deep_median, again.stats_median, again.threshold, again.size) == (2.0, 4.0, 1.5, 256)
    assert again.metrics == {"validation_auroc_fused": 0.9}
    broken = companion.to_json()
    broken["reference"] = {**broken["reference"], "feature_names": ["noise_all"]}
    with pytest.raises(ParameterError, match="other features"):
        AcquisitionCompanion.from_json(broken)
    with pytest.raises(ParameterError):
        AcquisitionCompanion.from_json({"deep_median": 1.0})


def test_fit_companion_calibrates_on_validation_where_the_detector_alone_cannot_separate() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(40, F))
    val = np.r_[rng.normal(size=(10, F)), rng.normal(size=(10, F)) + 6.0]  # 10 ID rows, 10 far away
    labels = np.r_[np.zeros(10, int), np.ones(10, int)]
    deep = np.ones(20)  # the detector scores every validation image alike
    companion = fit_companion(train, val, labels, deep)
    assert companion.deep_median == 1.0
    assert companion.metrics["validation_auroc_detector"] == pytest.approx(0.5)
    assert companion.metrics["validation_auroc_stats"] == 1.0 and companion.metrics["validation_auroc_fused"] == 1.0
    fused = companion.fuse(deep, companion.reference.score(val))
    assert (fused[labels == 1] >= companion.threshold).all() and (fused[labels == 0] < companion.threshold).all()
    assert (companion.metrics["n_train"], companion.metrics["n_validation_id"]) == (40, 10)
    with pytest.raises(ParameterError, match="OOD examples"):
        fit_companion(train, val[:10], labels[:10], deep[:10])
    with pytest.raises(ParameterError, match="must match"):
        fit_companion(train, val, labels[:5], deep)


def _images(n: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.zeros((256, 256), np.float32)
    base[64:192, 96:160] = 0.7
    return np.clip(base + rng.normal(0.0, noise, (n, 256, 256)).astype(np.float32), 0.0, 1.0)


def test_a_detector_with_statistics_reads_at_256_px_and_scores_fused_unless_told_not_to() -> None:
    torch.manual_seed(0)
    model = build_ood_autoencoder(width=2, input_size=32)
    clean, noisy = _images(12, 0.01, 0), _images(4, 0.08, 1)
    alone = Detector("ae", model, {"input_size": 32}, threshold=0.25)
    deep_val = alone.score(np.r_[clean[8:], noisy]).score
    companion = fit_companion(statistics_features(clean[:8]), statistics_features(np.r_[clean[8:], noisy]),
                              np.r_[np.zeros(4, int), np.ones(4, int)], deep_val)
    params = {"input_size": 32, COMPANION_KEY: companion.to_json()}
    fused = Detector("ae", model, params, threshold=0.25)
    assert fused.fused and fused.read_size == 256 and fused.part_names == ("rec", "stats")
    assert fused.threshold == companion.threshold
    scores = fused.score(noisy)
    expected = companion.fuse(alone.score(noisy).score, companion.distances(noisy))
    np.testing.assert_allclose(scores.score, expected)
    assert (scores.score >= fused.threshold).all()  # the noise the 32 px network cannot see
    plain = Detector("ae", model, params, threshold=0.25, stats=False)
    assert not plain.fused and plain.has_statistics and plain.read_size == 32 and plain.threshold == 0.25
    np.testing.assert_allclose(plain.score(noisy).score, alone.score(noisy).score)
