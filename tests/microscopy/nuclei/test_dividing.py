from __future__ import annotations

import numpy as np

from medlim.microscopy.nuclei.dividing import dividing_curve, straight_path, valley_strength


def test_straight_path_steps_at_most_one_pixel():
    path = straight_path(np.array([0.0, 0.0]), np.array([3.0, 4.0]))
    assert len(path) == 6
    assert np.all(np.linalg.norm(np.diff(path, axis=0), axis=1) <= 1.0 + 1e-9)


def test_curve_follows_a_bent_valley():
    # two bright blobs separated by a dark valley at column 30 + 4·sin(row / 12)
    yy, xx = np.mgrid[:60, :60].astype(float)
    valley_col = 30 + 4 * np.sin(yy / 12)
    image = 0.8 - 0.5 * np.exp(-((xx - valley_col) ** 2) / 8.0)
    region = np.ones(image.shape, bool)
    strength = valley_strength(image, sigma=2.0)
    p = np.array([2.0, 30 + 4 * np.sin(2 / 12)])
    q = np.array([57.0, 30 + 4 * np.sin(57 / 12)])
    path, followed = dividing_curve(strength, region, p, q)
    assert followed
    off_valley = np.abs(path[:, 1] - (30 + 4 * np.sin(path[:, 0] / 12)))
    assert np.median(off_valley) <= 1.5
    # the straight line strays further from the valley
    line = straight_path(p, q)
    assert np.median(np.abs(line[:, 1] - (30 + 4 * np.sin(line[:, 0] / 12)))) > np.median(off_valley)


def test_walk_falls_back_to_straight_line_outside_region():
    strength = np.zeros((30, 30))
    strength[:, 0] = 10.0  # a lure outside the allowed region
    region = np.zeros((30, 30), bool)
    region[:, 10:20] = True
    path, followed = dividing_curve(strength, region, np.array([0.0, 15.0]), np.array([29.0, 15.0]))
    assert np.allclose(path[:, 1], 15.0)
