"""Evaluation protocol: setting names and validation-transform sets."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.ood.evaluate import setting_name, transformed_set

CLASSES = ("hand", "finger", "wrist")


def test_setting_follows_the_id_classes() -> None:
    assert setting_name(("hand",), CLASSES) == "one-vs-rest"
    assert setting_name(("finger", "wrist"), CLASSES) == "rest-vs-one"
    assert setting_name(("hand",), ("hand", "finger", "wrist", "elbow")) == "one-vs-rest"
    assert setting_name(("hand", "finger"), ("hand", "finger", "wrist", "elbow")) == "custom"


def test_transformed_set_is_seeded_per_image() -> None:
    images = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    first = transformed_set(images, "noise", seed=1)
    np.testing.assert_array_equal(first, transformed_set(images, "noise", seed=1))
    # image k's transform depends on (seed, k) only, not on the other images
    np.testing.assert_array_equal(first[0], transformed_set(images[:1], "noise", seed=1)[0])
    different = images.copy()
    different[2] = 0.5
    np.testing.assert_array_equal(first[:2], transformed_set(different, "noise", seed=1)[:2])
    assert not np.array_equal(first, transformed_set(images, "noise", seed=2))


def test_transform_accuracy_by_hand() -> None:
    """Table 4.5 protocol on a detector whose score is the mean of x² (a zero 'reconstruction')."""
    import torch

    from medlim.curation.ood.data import LabelledImages
    from medlim.curation.ood.evaluate import evaluate_detector
    from medlim.curation.ood.scoring import Detector

    class Zero(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

    images = np.concatenate([np.full((4, 32, 32), 0.5, np.float32), np.full((4, 32, 32), 0.9, np.float32)])
    data = LabelledImages(images, ("hand",) * 4 + ("finger",) * 4, ("internal",) * 8, ("",) * 8)
    detector = Detector("ae", Zero(), {"input_size": 32, "id_classes": ["hand"]}, threshold=0.24)
    evaluation = evaluate_detector(detector, data, seed=0)
    # ID scores 0.25, OOD 0.81: AUROC 1, held-out G-mean threshold at the midpoint 0.53
    assert evaluation.metrics.auroc == 1.0 and evaluation.metrics.threshold == pytest.approx(0.53)
    # at the stored t = 0.24: a black cut of ≥ 1/16 of the area lowers 0.25 to ≤ 0.234 (missed); crop+resize and
    # blur of a constant image keep 0.25, noise raises it to 0.25 + σ² (all detected)
    assert evaluation.transform_accuracy == {"random_cut": 0.0, "crop_resize": 1.0, "noise": 1.0, "blur": 1.0}
    # at t = 0.53 nothing transformed reaches the threshold
    assert set(evaluation.transform_accuracy_gmean.values()) == {0.0}
    assert evaluation.stored_tpr == 1.0 and evaluation.stored_fpr == 1.0
