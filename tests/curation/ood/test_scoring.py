"""Scores: hand-computed combinations, single-image independence, loading from the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlim.core.weights import Registry
from medlim.curation.ood.scoring import OodScores, combine_parts, list_detectors, load_detector
from medlim.errors import ParameterError, WeightsError
from medlim.phantoms.radiograph import generate_radiograph


def test_tend_score_is_lambda_p_plus_scaled_distance() -> None:
    parts = {"p": np.array([0.2, 1.0]), "d": np.array([30.0, 300.0])}
    score = combine_parts("tend", parts, {"weight": 0.5, "margin": 150.0})
    np.testing.assert_allclose(score, [0.5 * 0.2 + 0.5 * 0.2, 0.5 + 0.5 * 2.0])


def test_cvad_score_is_eq_4_8_with_stored_range() -> None:
    parts = {"rec": np.array([0.02, 0.05]), "dis": np.array([0.1, 0.9])}
    score = combine_parts("cvad", parts, {"rec_min": 0.01, "rec_max": 0.06})
    np.testing.assert_allclose(score, [0.5 * (0.02 / 0.05 + 0.1), 0.5 * (0.05 / 0.05 + 0.9)])
    with pytest.raises(ParameterError, match="range"):
        combine_parts("cvad", parts, {"rec_min": 0.1, "rec_max": 0.1})


def test_rows_and_threshold() -> None:
    scores = OodScores(score=np.array([0.1, 0.5]), threshold=0.5, parts={"rec": np.array([1.0, 2.0])}, files=("a", "b"))
    assert [r["is_ood"] for r in scores.rows()] == [False, True]
    assert scores.rows()[1] == {"file": "b", "score": 0.5, "threshold": 0.5, "is_ood": True, "rec": 2.0}


@pytest.mark.parametrize("name", ["ae-test", "tend-test", "cvad-test"])
def test_one_image_alone_scores_as_in_a_batch(ood_registry: Path, name: str) -> None:
    detector = load_detector(name, registry=Registry.load(ood_registry))
    images = [generate_radiograph(seed=4, index=k).image for k in range(7)]
    batch = detector.score(images)
    for k in (0, 3, 6):
        alone = detector.score([images[k]])
        np.testing.assert_allclose(alone.score[0], batch.score[k], rtol=1e-5, atol=1e-7)
        for part in batch.parts:
            np.testing.assert_allclose(alone.parts[part][0], batch.parts[part][k], rtol=1e-5, atol=1e-7)
    # reordering the batch does not change any image's score
    shuffled = detector.score(images[::-1])
    np.testing.assert_allclose(shuffled.score[::-1], batch.score, rtol=1e-5, atol=1e-7)


def test_detector_carries_its_calibration(ood_registry: Path) -> None:
    registry = Registry.load(ood_registry)
    assert [e.name for e in list_detectors(registry)] == ["ae-test", "cvad-test", "tend-test"]
    detector = load_detector("tend-test", registry=registry)
    assert detector.kind == "tend" and detector.threshold == 0.3 and detector.margin == 150.0
    assert detector.id_classes == ("hand",)
    # any input size and colour go through the preset
    rgb = np.random.default_rng(0).random((90, 70, 3)).astype(np.float32)
    assert detector.score([rgb]).score.shape == (1,)


def test_non_detector_weights_are_refused(ood_registry: Path) -> None:
    with pytest.raises(WeightsError):
        load_detector("no-such-detector", registry=Registry.load(ood_registry))
