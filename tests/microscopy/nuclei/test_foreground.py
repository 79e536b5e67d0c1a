from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.nuclei.foreground import (
    clump_candidates,
    dapi_channel,
    foreground_mask,
    mean_nucleus_area,
    remove_small_regions,
)


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_dapi_channel_takes_blue_and_scales():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 2] = [[0, 255], [51, 102]]
    rgb[..., 0] = 200  # red must be ignored
    np.testing.assert_allclose(dapi_channel(rgb), [[0, 1], [0.2, 0.4]], atol=1e-6)
    assert dapi_channel(np.full((2, 2), 2.0)).max() == 1.0
    with pytest.raises(ParameterError, match=r"\(2, 2, 5\)"):
        dapi_channel(np.zeros((2, 2, 5)))


def test_foreground_fills_holes_and_fixed_fraction():
    image = np.zeros((40, 40), np.float32)
    image[10:30, 10:30] = 0.8
    image[18:22, 18:22] = 0.0  # a hole inside the nucleus
    mask = foreground_mask(image)
    assert mask[20, 20] and mask.sum() == 400
    # the authors' fixed fraction of the range
    image[0:5, 0:5] = 0.15  # below 0.25 of the range: background
    assert not foreground_mask(image, threshold=0.25)[2, 2]
    assert foreground_mask(image, threshold=0.1)[2, 2]
    with pytest.raises(ParameterError, match="1.5"):
        foreground_mask(image, threshold=1.5)
    assert not foreground_mask(np.zeros((5, 5))).any()


def test_mean_area_uses_isolated_convex_regions():
    mask = np.zeros((200, 200), bool)
    for centre in [(30, 30), (30, 100), (100, 30), (100, 100)]:
        mask |= _disk(mask.shape, centre, 10)
    # a clump of two overlapping disks: concave, must not count
    mask |= _disk(mask.shape, (160, 150), 15) | _disk(mask.shape, (160, 175), 15)
    single = _disk(mask.shape, (30, 30), 10).sum()
    assert mean_nucleus_area(mask) == pytest.approx(single)
    assert mean_nucleus_area(np.zeros((5, 5), bool)) == 0.0


def test_remove_small_and_clump_candidates():
    mask = np.zeros((100, 100), bool)
    mask |= _disk(mask.shape, (20, 20), 15)
    mask[90, 5] = True  # speck
    mask |= _disk(mask.shape, (65, 45), 14) | _disk(mask.shape, (65, 70), 14)
    cleaned = remove_small_regions(mask, min_area=20)
    assert not cleaned[90, 5] and cleaned[20, 20]
    single = _disk(mask.shape, (20, 20), 15).sum()
    labels, is_clump = clump_candidates(cleaned, mean_area=single)
    assert is_clump[labels[65, 57]] and not is_clump[labels[20, 20]]
    # by solidity alone: with a huge mean area only the concave clump is flagged
    labels, is_clump = clump_candidates(cleaned, mean_area=10 * single)
    assert is_clump[labels[65, 57]] and not is_clump[labels[20, 20]]
