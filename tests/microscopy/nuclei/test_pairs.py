from __future__ import annotations

import numpy as np
import pytest

from medlim.microscopy.nuclei.curvature import Contour, contour_curvature, outer_contour, vote_concave_points
from medlim.microscopy.nuclei.pairs import close_pairs, merge_adjacent_points, v_measure, walking_energy


def _contour(points, kappa, normals):
    points = np.asarray(points, float)
    return Contour(points=points, kappa=np.asarray(kappa, float), normals=np.asarray(normals, float),
                   step=np.ones(len(points)))


def test_walking_energy_sums_forward_with_wrap():
    kappa = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert walking_energy(kappa, 1, 3) == 9.0
    assert walking_energy(kappa, 3, 1) == 4.0 + 5.0 + 1.0 + 2.0
    assert walking_energy(kappa, 0, 1, step=np.array([0.5, 0.5, 1, 1, 1])) == 1.5


def test_v_measure_hand_computed():
    # opposite normals (θ = 180°), D = 60, |κ| = 0.1 each: V = 100·180 / (60 + 0.34·0.2)
    contour = _contour([[0, 0], [0, 60]], [-0.1, -0.1], [[0, -1], [0, 1]])
    assert v_measure(contour, 0, 1) == pytest.approx(18000 / 60.068)
    # parallel normals: θ = 0 → V = 0
    parallel = _contour([[0, 0], [0, 60]], [-0.1, -0.1], [[1, 0], [1, 0]])
    assert v_measure(parallel, 0, 1) == pytest.approx(0.0)


def test_close_pairs_adjacent_and_ring():
    # four points on a square of side 40 (diagonal 56.6, inside the 45–70 ring)
    points = [[0, 0], [0, 40], [40, 40], [40, 0]]
    centre = np.array([20.0, 20.0])
    normals = [(centre - p) / np.linalg.norm(centre - p) for p in np.array(points, float)]  # facing each other
    contour = _contour(points, [-0.1] * 4, normals)
    adjacent, non_adjacent = close_pairs(contour, np.arange(4))
    assert sorted(adjacent) == [(0, 1), (0, 3), (1, 2), (2, 3)]
    # diagonals: θ = 180°, D = 56.6 → V ≈ 318 > 200
    assert sorted(non_adjacent) == [(0, 2), (1, 3)]
    _, strict = close_pairs(contour, np.arange(4), v_threshold=400)
    assert strict == []
    _, none_in_ring = close_pairs(contour, np.arange(4), r2=50)
    assert none_in_ring == []


def test_merge_keeps_the_sharper_point_of_a_flat_walk():
    kappa = np.full(100, 0.08)
    kappa[10:16] = [-0.3, -0.2, 0.0, 0.0, -0.1, -0.5]  # one dent with a flat middle
    points = np.c_[np.arange(100), np.zeros(100)].astype(float)
    contour = _contour(points, kappa, np.tile([1.0, 0.0], (100, 1)))
    merged = merge_adjacent_points(contour, np.array([10, 15]), r1=15.0, energy_threshold=0.4)
    assert list(merged) == [15]  # |κ| 0.5 > 0.3
    # E(10 → 15) = −0.3 − 0.2 − 0.1 − 0.5 = −1.1 and the way back is convex:
    # with a threshold below −1.1 neither walk is easy enough to merge
    kept = merge_adjacent_points(contour, np.array([10, 15]), r1=15.0, energy_threshold=-1.2)
    assert list(kept) == [10, 15]


def test_three_disk_chain_has_four_points_and_adjacent_pairs():
    yy, xx = np.mgrid[:100, :180]
    mask = np.zeros(yy.shape, bool)
    for cx in (45, 88, 131):
        mask |= (yy - 50) ** 2 + (xx - cx) ** 2 < 25**2
    contour = contour_curvature(outer_contour(mask), sigma=6.0)
    points = vote_concave_points(contour.kappa)
    assert len(points) == 4
    adjacent, _ = close_pairs(contour, points)
    # the two necks (top/bottom pairs ≈ 27 px apart) are adjacent close pairs
    lengths = sorted(np.linalg.norm(contour.points[a] - contour.points[b]) for a, b in adjacent)
    assert lengths[0] < 35 and lengths[1] < 35
