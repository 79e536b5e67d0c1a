"""OSCARS quadruplets obey their definition; eq. 6.1 and the triplet loss by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.curation.retrieval.oscars import (
    oscars_loss,
    sample_quadruplets,
    sample_triplets,
    semihard_intra_negatives,
    semihard_negatives,
    semihard_partners,
    triplet_loss,
)
from medlim.errors import ParameterError


def test_quadruplets_respect_class_and_bin() -> None:
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 120)
    bins = rng.integers(0, 5, 120)
    rows = sample_quadruplets(classes, bins, rng)
    assert len(rows) > 100
    a, p, n_intra, n_inter = rows.T
    assert (classes[p] == classes[a]).all() and (bins[p] == bins[a]).all() and (p != a).all()
    assert (classes[n_intra] == classes[a]).all() and (bins[n_intra] != bins[a]).all()
    assert (classes[n_inter] != classes[a]).all()


def test_anchors_without_partners_are_skipped_and_pool_is_honoured() -> None:
    classes = np.array([0, 0, 0, 1])
    bins = np.array([0, 0, 1, 0])
    rows = sample_quadruplets(classes, bins, np.random.default_rng(1))
    # only items 0 and 1 have a same-bin partner, another-bin item and another class
    assert sorted(rows[:, 0].tolist()) == [0, 1]
    assert sample_quadruplets(classes, bins, np.random.default_rng(1), pool=np.array([0, 2, 3])).shape == (0, 4)
    triplets = sample_triplets(classes, np.random.default_rng(2))
    assert sorted(triplets[:, 0].tolist()) == [0, 1, 2] and (classes[triplets[:, 2]] == 1).all()
    with pytest.raises(ParameterError):
        sample_quadruplets(classes, bins[:3], np.random.default_rng(0))


def test_oscars_loss_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0]])
    p = torch.tensor([[3.0, 0.0]])  # d = 3
    n_intra = torch.tensor([[0.0, 1.0]])  # d = 1
    n_inter = torch.tensor([[0.0, 2.0]])  # d = 2
    # λ·max(3 − 1 + 1, 0) + (1 − λ)·max(1 − 2 + 2, 0) = 0.05·3 + 0.95·1
    assert float(oscars_loss(a, p, n_intra, n_inter)) == pytest.approx(0.05 * 3 + 0.95 * 1, rel=1e-5)
    far = torch.tensor([[0.0, 10.0]])
    assert float(oscars_loss(a, a, far, 3 * far)) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ParameterError):
        oscars_loss(a, p, n_intra, n_inter, weight=1.5)


def test_triplet_loss_by_hand() -> None:
    a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert float(triplet_loss(a, p, n)) == pytest.approx(1.0 - 2.0 + 2.0, rel=1e-5)
    assert float(triplet_loss(a, p, n, margin=0.5)) == pytest.approx(0.0, abs=1e-6)


def test_semihard_negative_is_the_closest_other_class_item_beyond_the_reference() -> None:
    # items on a line at 0, 1, 2, 3, 5; classes 0, 0, 1, 1, 2; the anchor is item 0
    places = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    distances = np.abs(places[:, None] - places[None, :])
    classes = np.array([0, 0, 1, 1, 2])
    anchors, fallback = np.array([0, 0, 0, 1]), np.array([4, 3, 3, 4])
    # reference 1 (its positive at 1): items 2 (d 2), 3 (d 3), 4 (d 5) qualify → 2;
    # reference 2.5: 3 (d 3) and 4 (d 5) → 3; reference 6: none → the fallback 3;
    # anchor 1 (at 1) with reference 1.5: item 2 (d 1) is too close, 3 (d 2) qualifies → 3
    chosen = semihard_negatives(distances, classes, anchors, np.array([1.0, 2.5, 6.0, 1.5]), fallback=fallback)
    assert chosen.tolist() == [2, 3, 3, 3]
    # never the anchor's own class, even when it is the closest item beyond the reference
    assert semihard_negatives(distances, np.array([0, 1, 0, 1, 1]), np.array([0]), np.array([1.5]),
                              fallback=np.array([1])).tolist() == [3]
    with pytest.raises(ParameterError):
        semihard_negatives(distances[:4], classes, anchors, np.zeros(4), fallback=fallback)


def test_semihard_intra_negative_is_the_closest_own_class_item_of_another_bin_beyond_the_positive() -> None:
    # items on a line at 0, 1, 2, 3, 4, 6; classes 0, 0, 0, 0, 1, 0; bins 0, 0, 1, 1, 0, 2; the anchor is item 0
    places = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 6.0])
    distances = np.abs(places[:, None] - places[None, :])
    classes, bins = np.array([0, 0, 0, 0, 1, 0]), np.array([0, 0, 1, 1, 0, 2])
    anchors, fallback = np.array([0, 0, 0]), np.array([5, 5, 3])
    # reference 1 (positive at 1): own class, other bin, farther than 1: items 2 (d 2), 3 (d 3), 5 (d 6) → 2
    # (item 1 shares the anchor's bin, item 4 is another class); reference 2.5 → 3; reference 7 → the fallback 3
    chosen = semihard_intra_negatives(distances, classes, bins, anchors, np.array([1.0, 2.5, 7.0]), fallback=fallback)
    assert chosen.tolist() == [2, 3, 3]
    # the general form takes any candidate mask: here only item 5
    only_five = np.zeros((1, 6), bool)
    only_five[0, 5] = True
    assert semihard_partners(distances, only_five, np.array([0]), np.array([0.5]), fallback=np.array([1])).tolist() == [5]
    with pytest.raises(ParameterError):
        semihard_intra_negatives(distances, classes, bins[:5], anchors, np.zeros(3), fallback=fallback)
    with pytest.raises(ParameterError):
        semihard_partners(distances, only_five[:, :5], np.array([0]), np.array([0.5]), fallback=np.array([1]))
