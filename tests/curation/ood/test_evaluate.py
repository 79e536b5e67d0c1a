"""Evaluation protocol: setting names and validation-transform sets."""

from __future__ import annotations

import numpy as np

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
