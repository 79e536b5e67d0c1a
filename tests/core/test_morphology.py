"""Tensor morphology: hand-computed cases and agreement with OpenCV on random masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from medlim.core.morphology import dilate_disk, erode_disk, largest_component, mask_runs, open_disk
from medlim.errors import InputError, ParameterError


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.uint8)


def test_dilating_one_pixel_draws_the_disk() -> None:
    mask = torch.zeros((9, 9), dtype=torch.bool)
    mask[4, 4] = True
    grown = dilate_disk(mask, 2).numpy()
    expected = np.zeros((9, 9), bool)
    expected[2:7, 2:7] = _disk(2).astype(bool)  # the 13-pixel disk: a 5×5 square without its corners
    np.testing.assert_array_equal(grown, expected)
    assert grown.sum() == 13


def test_erosion_treats_outside_as_foreground() -> None:
    mask = torch.ones((4, 6), dtype=torch.bool)
    mask[1, 3] = False
    eroded = erode_disk(mask, 1).numpy()
    # only the hole's 4-neighbours (radius-1 disk = a plus) and the hole itself go; the image edge does not erode
    expected = np.ones((4, 6), bool)
    for r, c in [(1, 3), (0, 3), (2, 3), (1, 2), (1, 4)]:
        expected[r, c] = False
    np.testing.assert_array_equal(eroded, expected)


def test_opening_matches_opencv_on_random_masks() -> None:
    rng = np.random.default_rng(3)
    for _ in range(25):
        rows, cols = (int(v) for v in rng.integers(4, 50, 2))
        mask = rng.random((rows, cols)) < rng.uniform(0.3, 0.9)
        radius = int(rng.integers(0, 6))
        expected = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _disk(radius)) > 0
        np.testing.assert_array_equal(open_disk(torch.from_numpy(mask), radius).numpy(), expected)


def test_runs_by_hand() -> None:
    mask = torch.tensor([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    rows, starts, ends = mask_runs(mask)
    assert rows.tolist() == [0, 0, 1] and starts.tolist() == [1, 4, 0] and ends.tolist() == [3, 5, 5]


def test_largest_component_uses_diagonal_links() -> None:
    # a diagonal staircase of 4 pixels (one 8-connected component) against a 3-pixel bar
    mask = np.zeros((6, 8), bool)
    for k in range(4):
        mask[k, k] = True
    mask[5, 5:8] = True
    expected = np.eye(6, 8, dtype=bool) & (np.arange(6)[:, None] < 4)
    np.testing.assert_array_equal(largest_component(torch.from_numpy(mask)).numpy(), expected)


def test_tie_goes_to_the_first_component_like_opencv() -> None:
    mask = np.zeros((5, 5), bool)
    mask[0, 3:5] = True  # area 2, first pixel (0, 3)
    mask[3, 0:2] = True  # area 2, first pixel (3, 0)
    chosen = largest_component(torch.from_numpy(mask)).numpy()
    assert chosen[0, 3] and chosen[0, 4] and not chosen[3].any()
    assert not largest_component(torch.zeros((3, 3), dtype=torch.bool)).any()


def test_largest_component_matches_opencv_on_random_masks() -> None:
    rng = np.random.default_rng(4)
    for _ in range(40):
        rows, cols = (int(v) for v in rng.integers(2, 60, 2))
        mask = rng.random((rows, cols)) < rng.uniform(0.2, 0.7)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if count <= 1:
            continue
        expected = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        np.testing.assert_array_equal(largest_component(torch.from_numpy(mask)).numpy(), expected)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="uint8"):
        dilate_disk(torch.zeros((3, 3), dtype=torch.uint8), 1)
    with pytest.raises(ParameterError, match="radius"):
        dilate_disk(torch.zeros((3, 3), dtype=torch.bool), -1)
