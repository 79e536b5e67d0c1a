"""Fake-OOD distortions and validation transforms: shape, range, determinism, real change."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.ood.distortions import (
    EXTRA_DISTORTIONS,
    TRAIN_DISTORTIONS,
    VALIDATION_TRANSFORMS,
    cut_paste,
    distort,
    motion_blur,
    spread,
    validation_transform,
)
from medlim.errors import ParameterError
from medlim.phantoms.radiograph import generate_radiograph


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return generate_radiograph(seed=3, index=0, body_part="hand", size=64).image


@pytest.mark.parametrize("name", [*TRAIN_DISTORTIONS, *EXTRA_DISTORTIONS, *VALIDATION_TRANSFORMS])
def test_transform_keeps_shape_and_changes_the_image(image: np.ndarray, name: str) -> None:
    fn = TRAIN_DISTORTIONS.get(name) or EXTRA_DISTORTIONS.get(name) or VALIDATION_TRANSFORMS[name]
    out = fn(image, np.random.default_rng(0))
    again = fn(image, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    np.testing.assert_array_equal(out, again)
    if name == "cut_paste":  # local: one patch of 2–9 % of the area is replaced
        assert 0.02 <= np.mean(out != image) <= 0.09, name
    else:
        assert np.abs(out - image).mean() > 0.005, name


def test_training_distortions_are_stronger_than_validation_noise(image: np.ndarray) -> None:
    # geometric warps move most of the anatomy: mean change far above the blur's
    rng = np.random.default_rng(1)
    warp = np.mean([np.abs(distort(image, rng) - image).mean() for _ in range(12)])
    blur = np.abs(validation_transform(image, "blur", np.random.default_rng(1)) - image).mean()
    assert warp > 2 * blur


def test_random_cut_blacks_out_a_rectangle(image: np.ndarray) -> None:
    out = validation_transform(image, "random_cut", np.random.default_rng(5))
    changed = np.argwhere(out != image)
    rows, cols = changed[:, 0], changed[:, 1]
    block = out[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert (block == 0).all() and block.shape[0] >= 16 and block.shape[1] >= 16


def test_unknown_names_are_refused(image: np.ndarray) -> None:
    with pytest.raises(ParameterError, match="twirl"):
        distort(image, np.random.default_rng(0), kinds=("twirl",))
    with pytest.raises(ParameterError, match="unknown validation"):
        validation_transform(image, "jpeg", np.random.default_rng(0))
    with pytest.raises(ParameterError, match="grey image"):
        distort(np.zeros((4, 4, 3), np.float32), np.random.default_rng(0))


def test_extra_distortions_by_hand() -> None:
    # a vertical step edge: motion blur along x smears it over ≥ 3 columns, keeps rows identical
    step = np.zeros((32, 32), np.float32)
    step[:, 16:] = 1.0
    smeared = motion_blur(step, np.random.default_rng(0))
    np.testing.assert_allclose(smeared.sum(), step.sum(), rtol=0.05)  # a normalised kernel keeps the mean
    assert ((smeared > 0.02) & (smeared < 0.98)).any(axis=1).all()
    # spread only moves values around: a constant image stays constant
    np.testing.assert_allclose(spread(np.full((32, 32), 0.4, np.float32), np.random.default_rng(1)), 0.4, atol=1e-6)
    # cut-paste leaves all but one pasted rectangle unchanged
    ramp = np.add.outer(np.arange(40), 40 * np.arange(40)).astype(np.float32) / 1600  # every pixel distinct
    pasted = cut_paste(ramp, np.random.default_rng(2))
    rows, cols = np.nonzero(pasted != ramp)
    assert 0 < rows.size <= (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) <= 12 * 12


def test_extra_distortions_are_opt_in(image: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    only = distort(image, rng, kinds=("spread",))
    assert only.shape == image.shape
    with pytest.raises(ParameterError, match="spread"):
        distort(image, rng, kinds=("spread", "gaussian"))
