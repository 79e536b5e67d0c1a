from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.core.metrics import (
    hausdorff_distance,
    instance_metrics,
    iou_matrix,
    jaccard,
    match_instances,
    pixel_metrics,
)
from medlim.errors import ParameterError


def test_pixel_metrics_2x2_table():
    truth = np.array([[1, 1], [0, 0]])
    pred = np.array([[1, 0], [1, 0]])
    m = pixel_metrics(truth, pred)
    assert (m.tp, m.fp, m.fn, m.tn) == (1, 1, 1, 1)
    assert m.recall == 0.5 and m.precision == 0.5 and m.accuracy == 0.5
    assert m.f1 == pytest.approx(0.5)  # 2/(2+1+1)
    assert m.jaccard == pytest.approx(1 / 3)


def test_pixel_metrics_3x3_table():
    truth = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0]], bool)
    pred = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 1]], bool)
    m = pixel_metrics(truth, pred)
    # TP = 4, FP = 2, FN = 1, TN = 2
    assert (m.tp, m.fp, m.fn, m.tn) == (4, 2, 1, 2)
    assert m.recall == pytest.approx(4 / 5)
    assert m.precision == pytest.approx(4 / 6)
    assert m.accuracy == pytest.approx(6 / 9)
    assert m.f1 == pytest.approx(8 / 11)
    assert m.jaccard == pytest.approx(4 / 7)


def test_empty_masks_conventions():
    z = np.zeros((3, 3), bool)
    m = pixel_metrics(z, z)
    assert (m.recall, m.precision, m.f1, m.jaccard, m.accuracy) == (1.0, 1.0, 1.0, 1.0, 1.0)
    one = z.copy()
    one[1, 1] = True
    m = pixel_metrics(one, z)
    assert (m.recall, m.precision, m.f1, m.jaccard) == (0.0, 0.0, 0.0, 0.0)
    assert hausdorff_distance(z, z) == 0.0
    assert math.isinf(hausdorff_distance(one, z))


def test_shape_mismatch_raises():
    with pytest.raises(ParameterError, match=r"\(2, 2\)"):
        jaccard(np.zeros((2, 2)), np.zeros((3, 3)))


def test_hausdorff_hand_computed():
    a = np.zeros((5, 7), bool)
    b = np.zeros((5, 7), bool)
    a[2, 1] = True
    b[2, 1] = True
    b[2, 5] = True  # farthest point of b is 4 px from a
    assert hausdorff_distance(a, b) == pytest.approx(4.0)
    # asymmetric case: a ⊂ b, the sup over b dominates
    a2 = np.zeros((5, 5), bool)
    a2[0, 0] = True
    b2 = np.zeros((5, 5), bool)
    b2[0, 0] = True
    b2[3, 4] = True
    assert hausdorff_distance(a2, b2) == pytest.approx(5.0)


def test_hausdorff_boundary_vs_full():
    a = np.zeros((9, 9), bool)
    a[1:8, 1:8] = True
    b = np.zeros((9, 9), bool)
    b[4, 4] = True
    # full-pixel: a's corner (1,1) is 3√2 from (4,4); boundary: same here
    assert hausdorff_distance(a, b, use_boundary=False) == pytest.approx(3 * math.sqrt(2))
    assert hausdorff_distance(a, b) == pytest.approx(3 * math.sqrt(2))


def test_iou_matrix_and_matching():
    truth = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0]])
    pred = np.array([[5, 5, 0, 0], [5, 0, 0, 7], [0, 0, 0, 7]])
    iou, t_ids, p_ids = iou_matrix(truth, pred)
    assert list(t_ids) == [1, 2] and list(p_ids) == [5, 7]
    # 1∩5 = 3, union = 4 ; 2∩7 = 1, union = 3
    np.testing.assert_allclose(iou, [[0.75, 0.0], [0.0, 1 / 3]])
    assert match_instances(truth, pred) == ((1, 5, 0.75),)
    m = instance_metrics(truth, pred)
    assert (m.n_true, m.n_pred, m.n_matched) == (2, 2, 1)
    assert m.precision == 0.5 and m.recall == 0.5 and m.f1 == 0.5
    assert m.mean_matched_jaccard == pytest.approx(0.75)


def test_instance_metrics_split_and_merge():
    truth = np.zeros((4, 8), int)
    truth[:, :4] = 1
    truth[:, 4:] = 2
    merged = (truth > 0).astype(int)  # one object covering both: IoU 0.5 with each
    m = instance_metrics(truth, merged)
    assert m.n_matched == 1  # one-to-one: only one of the two can take it
    assert m.f1 == pytest.approx(2 / 3)
    m_strict = instance_metrics(truth, merged, iou_threshold=0.51)
    assert m_strict.n_matched == 0 and m_strict.f1 == 0.0


def test_instance_metrics_empty():
    z = np.zeros((3, 3), int)
    m = instance_metrics(z, z)
    assert (m.precision, m.recall, m.f1, m.mean_matched_jaccard) == (1.0, 1.0, 1.0, 1.0)
    one = z.copy()
    one[0, 0] = 3
    m = instance_metrics(one, z)
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)


def test_bad_labels():
    with pytest.raises(ParameterError, match="float"):
        instance_metrics(np.zeros((2, 2), float), np.zeros((2, 2), int))
    with pytest.raises(ParameterError, match="iou_threshold"):
        match_instances(np.zeros((2, 2), int), np.zeros((2, 2), int), iou_threshold=0)
