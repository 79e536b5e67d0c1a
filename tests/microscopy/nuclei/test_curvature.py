from __future__ import annotations

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.nuclei.curvature import (
    concave_runs,
    contour_curvature,
    outer_contour,
    vote_concave_points,
)


def _two_disks():
    yy, xx = np.mgrid[:100, :140]
    return ((yy - 50) ** 2 + (xx - 45) ** 2 < 25**2) | ((yy - 50) ** 2 + (xx - 90) ** 2 < 25**2)


def test_circle_curvature_is_one_over_radius_and_normals_point_out():
    yy, xx = np.mgrid[:120, :120]
    disk = (yy - 60) ** 2 + (xx - 60) ** 2 < 40**2
    for points in (outer_contour(disk), outer_contour(disk)[::-1]):  # either walking direction
        contour = contour_curvature(points, sigma=3.0)
        assert np.median(contour.kappa) == pytest.approx(1 / 40, rel=0.08)
        radial = contour.points - 60.0
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        assert np.all(np.sum(radial * contour.normals, axis=1) > 0.9)
        assert np.sum(contour.kappa * contour.step) == pytest.approx(2 * np.pi, rel=0.02)


def test_two_disk_clump_votes_one_point_per_neck():
    contour = contour_curvature(outer_contour(_two_disks()), sigma=6.0)
    points = vote_concave_points(contour.kappa)
    assert len(points) == 2
    found = sorted(contour.points[points].tolist())
    # the necks are at column ≈ 67.5, rows 50 ± sqrt(25² − 22.5²) ≈ 50 ± 10.9
    assert found[0][0] == pytest.approx(39.1, abs=2.5) and found[1][0] == pytest.approx(60.9, abs=2.5)
    assert all(abs(p[1] - 67.5) < 2.5 for p in found)


def test_concave_runs_wrap_and_vote_formula():
    kappa = np.array([-1.0, -3.0, 1.0, 1.0, 1.0, -2.0, -2.0, -2.0])
    runs = concave_runs(kappa)
    # the run 5, 6, 7, 0, 1 wraps past the end
    assert [list(r) for r in runs] == [[5, 6, 7, 0, 1]]
    # s = 0, .25, .5, .75, 1; κ = −2, −2, −2, −1, −3 → s* = (0.5+1+0.75+3)/10 = 0.525 → index round(2.1) = 2 → point 7
    assert list(vote_concave_points(kappa)) == [7]
    assert concave_runs(kappa, min_depth=5.0) == []
    assert concave_runs(np.ones(5)) == []


def test_curvature_rejects_bad_input():
    with pytest.raises(ParameterError, match="N ≥ 8"):
        contour_curvature(np.zeros((3, 2)))
    with pytest.raises(ParameterError, match="sigma"):
        contour_curvature(np.zeros((10, 2)), sigma=0)
    with pytest.raises(ParameterError, match="no foreground"):
        outer_contour(np.zeros((5, 5), bool))
