"""Plot data: distance points lie on circles of radius d; outcome groups partition the samples."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.ood.plots import distance_figure, distance_points, outcome_groups, roc_figure
from medlim.errors import ParameterError


def test_points_have_radius_d_and_seeded_angles() -> None:
    d = np.array([0.0, 10.0, 150.0, 400.0])
    x, y = distance_points(d, seed=3)
    np.testing.assert_allclose(np.hypot(x, y), d)
    x2, _ = distance_points(d, seed=3)
    x3, _ = distance_points(d, seed=4)
    np.testing.assert_array_equal(x, x2)
    assert not np.allclose(x[1:], x3[1:])
    with pytest.raises(ParameterError):
        distance_points(np.array([-1.0]))


def test_outcome_groups_by_hand() -> None:
    truth = np.array([1, 1, 0, 0, 1])
    predicted = np.array([1, 0, 1, 0, 1])
    groups = outcome_groups(truth, predicted)
    assert {k: v.tolist() for k, v in groups.items()} == {"TP": [0, 4], "FP": [2], "TN": [3], "FN": [1]}


def test_figures_have_the_margin_circle_and_two_panels() -> None:
    d = np.array([10.0, 200.0, 50.0])
    figure = distance_figure(d, margin=150.0, predicted_ood=np.array([0, 1, 0]), is_ood=np.array([0, 1, 1]))
    names = [t.name for t in figure.data]
    assert names.count("margin R = 150") == 2 and "ID" in names and "predicted OOD" in names
    circle = next(t for t in figure.data if t.name == "margin R = 150")
    np.testing.assert_allclose(np.hypot(circle.x, circle.y), 150.0)
    roc = roc_figure(np.array([0, 1, 1]), np.array([0.1, 0.9, 0.5]), threshold=0.5)
    assert "AUROC 1.000" in roc.data[0].name
