"""Classifier G: the grey small-input ResNet and the TOP-k metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.curation.shift.classifier import (
    ClassifierConfig,
    build_classifier,
    classification_report,
    predict,
    topk_table,
    train_classifier,
)
from medlim.errors import ParameterError


def test_report_by_hand() -> None:
    # truth 0 0 1 1, predicted 0 1 1 1
    probs1 = np.array([0.2, 0.6, 0.7, 0.9])
    probabilities = np.stack([1 - probs1, probs1], axis=1)
    row = classification_report(np.array([0, 0, 1, 1]), probabilities, ["a", "b"], level=2)
    a, b = row.per_class
    assert (a.precision, a.recall, a.f1, a.count) == pytest.approx((1.0, 0.5, 2 / 3, 2))
    assert (b.precision, b.recall, b.f1, b.count) == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert a.auc == pytest.approx(1.0) and b.auc == pytest.approx(1.0)
    assert row.macro.f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert row.weighted.precision == pytest.approx((1 + 2 / 3) / 2)
    assert row.accuracy == pytest.approx(0.75) and row.level == 2 and row.count == 4


def test_auc_undefined_for_a_class_alone_and_topk_levels() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    rows = topk_table(np.array([0, 0, 1]), probabilities, np.array([0, 1, 1]), ["a", "b"], 2)
    assert [r.level for r in rows] == [2, 1] and [r.count for r in rows] == [3, 1]
    assert np.isnan(rows[1].per_class[0].auc) and rows[1].per_class[1].count == 0
    assert rows[1].macro.f1 == pytest.approx(1.0)  # the absent class is not averaged
    empty = topk_table(np.array([0]), np.array([[0.5, 0.5]]), np.array([1]), ["a", "b"], 1)[0]
    assert empty.count == 0 and np.isnan(empty.macro.f1)


def test_grey_small_input_resnet() -> None:
    model = build_classifier(3).eval()
    assert model.net.conv1.in_channels == 1 and model.net.conv1.kernel_size == (3, 3)
    with torch.no_grad():
        x = torch.rand(2, 1, 32, 32)
        assert model(x).shape == (2, 3) and model.embed(x).shape == (2, 512)
    assert build_classifier(2, architecture="resnet50").net.fc.in_features == 2048
    with pytest.raises(ParameterError):
        build_classifier(1)
    with pytest.raises(ParameterError):
        ClassifierConfig(architecture="vgg16")


def test_training_learns_two_easy_classes() -> None:
    rng = np.random.default_rng(0)
    dark = rng.uniform(0.0, 0.2, (12, 32, 32))
    bright = rng.uniform(0.8, 1.0, (12, 32, 32))
    images = np.concatenate([dark, bright]).astype(np.float32)
    labels = np.array([0] * 12 + [1] * 12)
    model = train_classifier(images, labels, 2, ClassifierConfig(epochs=3, batch_size=8, lr=3e-3))
    probabilities, features = predict(model, images, embed=True)
    assert features.shape == (24, 512)
    assert (probabilities.argmax(1) == labels).mean() >= 0.9
