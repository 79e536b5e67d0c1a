"""The watershed baselines: the strong one (h-maxima, size-aware) and the basic one (issue 13).

Hand-made scenes of discs of radius 12 px (area π·12² ≈ 452 px², r = 12):

* two discs whose centres are 18 px apart overlap in a lens of width 6 px; on
  the pixel grid (disc = pixels within 12 px of the centre) the distance map
  peaks at √145 ≈ 12.04 in each centre (the nearest background pixel is at
  (12, 1)) and falls to 8 at the waist (the nearest background pixel is (±8, 0)
  from the midpoint, since 8² + 9² > 12²), a dip of 4.04 px = 0.34 r: markers
  with h = 0.1 r (1.2 px) keep both, so the clump splits in two; h = 0.4 r
  (4.8 px) > 4.04 merges them (skimage's ``h_maxima`` would keep two dome tops);
* a single disc has one maximum whatever h is;
* a fragment smaller than the minimum size gives up its marker.
"""

from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.nuclei.watershed import (
    WatershedParams,
    split_by_watershed,
    watershed_basic_nuclei,
    watershed_nuclei,
)

AREA = float(np.pi * 12**2)


def discs(centres: list[tuple[int, int]], *, radius: int = 12, shape: tuple[int, int] = (80, 120)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return mask


def rgb(mask: np.ndarray) -> np.ndarray:
    image = np.zeros((*mask.shape, 3), np.uint8)
    image[..., 2] = np.where(mask, 200, 10)
    return image


def test_h_decides_whether_a_pair_splits() -> None:
    pair = discs([(40, 40), (40, 58)])
    two = split_by_watershed(pair, mean_area=AREA, params=WatershedParams(h_factor=0.1, sigma_factor=0.0))
    one = split_by_watershed(pair, mean_area=AREA, params=WatershedParams(h_factor=0.4, sigma_factor=0.0))
    assert len(np.unique(two[two > 0])) == 2 and len(np.unique(one[one > 0])) == 1
    # the split runs through the waist: each half keeps its disc's centre
    assert two[40, 40] != two[40, 58] and two[40, 40] > 0 and two[40, 58] > 0
    assert np.count_nonzero(two) == np.count_nonzero(pair)  # every foreground pixel gets a nucleus


def test_single_discs_stay_whole_and_fragments_merge() -> None:
    singles = discs([(30, 30), (40, 90)])
    labels = split_by_watershed(singles, mean_area=AREA, params=WatershedParams())
    assert len(np.unique(labels[labels > 0])) == 2
    # a 6 × 6 knob (36 px² < 0.2 × 452 px²) on a disc's rim: no nucleus of its own
    knob = singles.copy()
    knob[27:33, 42:48] = True
    labels = split_by_watershed(knob, mean_area=AREA, params=WatershedParams(h_factor=0.05, sigma_factor=0.0,
                                                                             min_size_factor=0.2))
    sizes = np.bincount(labels.ravel())[1:]
    assert len(sizes) == 2 and sizes.min() >= 0.2 * AREA


def test_strong_and_basic_watershed_on_an_image() -> None:
    image = rgb(discs([(40, 30), (40, 48), (30, 95)]))
    strong, basic = watershed_nuclei(image), watershed_basic_nuclei(image)
    assert strong.count == 3 and strong.n_clumps == 1  # the pair is split, the lone disc is not
    assert basic.count >= 2 and basic.labels.shape == image.shape[:2]
    empty = np.zeros((50, 50, 3), np.uint8)
    assert watershed_nuclei(empty).count == 0 and watershed_basic_nuclei(empty).count == 0


def test_params_are_validated() -> None:
    with pytest.raises(ParameterError, match="h_factor"):
        WatershedParams(h_factor=-0.1)
