"""One calibration rule for every per-class detector (MedShift's and OSCARS's): the CVAD reference range (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.curation.ood.scoring import Detector
from medlim.curation.shift.detectors import class_detector


@pytest.mark.parametrize(("rec", "expected_range", "expected_scores"), [
    # a spread reference: the range is its min and max; S = ½·rec / (0.5 − 0.2) with dis = 0
    ([0.2, 0.5], (0.2, 0.5), [0.5 * 0.2 / 0.3, 0.5 * 0.5 / 0.3]),
    # too alike (span 0.02 < a tenth of 0.52): scaled by the maximum alone
    ([0.50, 0.52], (0.0, 0.52), [0.5 * 0.50 / 0.52, 0.5]),
])
def test_the_cvad_range_comes_from_the_held_back_images(monkeypatch: pytest.MonkeyPatch, rec: list[float],
                                                        expected_range: tuple[float, float],
                                                        expected_scores: list[float]) -> None:
    parts = {"rec": np.array(rec), "dis": np.zeros(len(rec))}
    monkeypatch.setattr(Detector, "parts", lambda self, images: parts)
    reference = np.zeros((len(rec), 8, 8), np.float32)
    detector, scores = class_detector("cvad", torch.nn.Identity(), {"input_size": 8, "id_classes": ["hand"]},
                                      reference, name="hand")
    assert (detector.params["rec_min"], detector.params["rec_max"]) == pytest.approx(expected_range)
    assert scores == pytest.approx(expected_scores)
    assert detector.threshold == pytest.approx(max(expected_scores))  # the reference maximum, unused by MedShift
    assert detector.name == "cvad-hand" and detector.id_classes == ("hand",)


def test_tend_needs_no_range(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = {"p": np.array([0.2, 0.6]), "d": np.array([1.0, 3.0])}
    monkeypatch.setattr(Detector, "parts", lambda self, images: parts)
    detector, scores = class_detector("tend", torch.nn.Identity(), {"input_size": 8, "id_classes": ["hand"],
                                                                    "weight": 0.5, "margin": 2.0},
                                      np.zeros((2, 8, 8), np.float32), name="hand")
    assert "rec_min" not in detector.params
    # S = λ·p + (1 − λ)·d / R = 0.5·p + 0.5·d / 2
    assert scores == pytest.approx([0.5 * 0.2 + 0.25 * 1.0, 0.5 * 0.6 + 0.25 * 3.0])
