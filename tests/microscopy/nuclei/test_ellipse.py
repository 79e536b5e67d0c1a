from __future__ import annotations

import numpy as np
import pytest
from skimage import measure

from medlim.microscopy.nuclei.ellipse import cut_region, ellipse_quality, fit_ellipse, segment_inside


def _ellipse(shape, centre, a, b):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) / b) ** 2 + ((xx - centre[1]) / a) ** 2 <= 1


def test_fit_recovers_an_ellipse():
    part = _ellipse((100, 120), (50, 60), 30, 18)
    fit = fit_ellipse(part)
    assert fit is not None
    assert sorted(fit.axes) == pytest.approx([36, 60], abs=2.0)
    assert fit.center == pytest.approx((50, 60), abs=0.5)
    assert np.count_nonzero(fit.raster(part.shape) ^ part) < 0.05 * part.sum()
    assert fit_ellipse(np.zeros((5, 5), bool)) is None


def test_quality_prefers_an_ellipse_to_a_wedge():
    good = _ellipse((100, 120), (50, 60), 30, 18)
    p, q = np.array([32.0, 60.0]), np.array([68.0, 60.0])  # ψ = π at the centre
    q_good = ellipse_quality(good, p, q)
    # oracle of eq. 3.3 from the fit's own pieces: ψ = π (p, q straddle the centre)
    fit = fit_ellipse(good)
    ellipse = fit.raster(good.shape)
    overlap = (good & ellipse).sum() / (good | ellipse).sum()
    rows, cols = np.nonzero(good)
    shift = abs(rows.mean() - fit.center[0]) + abs(cols.mean() - fit.center[1])
    delta_l = abs(measure.perimeter(good) - fit.perimeter)
    eta = max(fit.axes) / min(fit.axes)
    expected = (10.70 * overlap + 10.70 * np.pi) / (shift + 0.67 * delta_l + 3.40 * eta)
    assert q_good == pytest.approx(expected, rel=1e-3)
    assert eta == pytest.approx(30 / 18, rel=0.05) and overlap > 0.95
    assert q_good > 0.7  # a clean nucleus clears the thesis threshold
    wedge = np.zeros((100, 120), bool)
    for r in range(20, 80):
        wedge[r, 60 : 60 + (r - 20)] = True
    assert ellipse_quality(wedge, np.array([20.0, 60.0]), np.array([79.0, 60.0])) < q_good
    # scale divides the pixel terms: a doubled scale cannot lower Q
    assert ellipse_quality(good, p, q, scale=2.0) >= q_good


def test_cut_region_splits_and_tiles():
    region = np.zeros((40, 60), bool)
    region[5:35, 5:55] = True
    parts = cut_region(region, np.array([[5.0, 30.0], [34.0, 30.0]]))
    assert len(parts) == 2
    assert (parts[0] | parts[1]).sum() == region.sum() and not (parts[0] & parts[1]).any()
    assert abs(int(parts[0].sum()) - int(parts[1].sum())) <= 60
    # a path that does not cross leaves it whole
    assert len(cut_region(region, np.array([[10.0, 10.0], [12.0, 12.0]]))) == 1


def test_segment_inside():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    assert segment_inside(mask, np.array([6, 6]), np.array([14, 14]))
    assert not segment_inside(mask, np.array([0, 0]), np.array([19, 19]))
