"""The retrieval trainer's planned options for a user's folders (issue 12): strong augmentation, semi-hard mining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.core.training import Deadline
from medlim.curation.retrieval.train import (
    EmbeddingTrainer,
    RetrievalTrainingConfig,
    StrongAugmentation,
    _set_learning_rate,
    augment_batch_strong,
)
from medlim.errors import ParameterError


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now

_OFF = StrongAugmentation(zoom=0.0, rotate_degrees=0.0, contrast_p=0.0, gamma_p=0.0, noise_p=0.0, blur_p=0.0,
                          resolution_p=0.0)


def test_strong_augmentation_with_every_range_closed_is_the_identity() -> None:
    batch = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    out = augment_batch_strong(batch, torch.Generator().manual_seed(1), _OFF)
    assert torch.allclose(out, batch, atol=1e-5)


def test_strong_augmentation_turns_and_stays_in_range() -> None:
    # a vertical bar turned by 10° at most: its pixels move, the image stays in [1/255, 1]
    batch = torch.zeros(16, 1, 32, 32)
    batch[:, :, :, 15:17] = 1.0
    turned = StrongAugmentation(zoom=0.0, rotate_degrees=10.0, contrast_p=0.0, gamma_p=0.0, noise_p=0.0,
                                blur_p=0.0, resolution_p=0.0)
    out = augment_batch_strong(batch, torch.Generator().manual_seed(2), turned)
    assert float(out.min()) >= 1 / 255 - 1e-6 and float(out.max()) <= 1.0
    moved = (out[:, 0, 0, 15:17] < 0.5).any(dim=1) | (out[:, 0, -1, 15:17] < 0.5).any(dim=1)
    # the same stream's draws: zoom first, then the angle (2u − 1)·10°; the bar's ends, 16 px from the
    # centre, shift sideways by 16·sin(angle): off its 2 columns beyond about 3.6°, inside them below 1.5°
    stream = torch.Generator().manual_seed(2)
    torch.rand(16, generator=stream)
    angle = ((2.0 * torch.rand(16, generator=stream) - 1.0) * 10.0).abs()
    assert moved[angle > 5.0].all() and not moved[angle < 1.5].any() and (angle > 5.0).sum() >= 3
    assert (out[:, 0, 14:18, 15:17] > 0.5).all()  # the turn is about the centre: the bar's middle stays
    again = augment_batch_strong(batch, torch.Generator().manual_seed(2), turned)
    assert torch.equal(out, again)  # the stream decides everything
    full = augment_batch_strong(batch, torch.Generator().manual_seed(3))
    assert full.shape == batch.shape and not torch.allclose(full, batch, atol=0.05)


def test_semihard_mining_replaces_only_the_negative_with_a_farther_other_class_item() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((24, 16, 16)).astype(np.float32)
    classes = np.repeat(np.arange(3), 8)
    config = RetrievalTrainingConfig(input_size=16, width=4, epochs=1, anchors=8, mining="semihard", seed=0)
    trainer = EmbeddingTrainer(images, classes, method="triplet", config=config)
    batch = np.arange(24)
    embeddings = trainer.model(trainer.data[torch.from_numpy(batch)]).detach()
    rows = np.array([[0, 1, 20], [9, 10, 0], [17, 18, 2]])
    mined = trainer._mined(rows, embeddings, batch)
    assert (mined[:, :2] == rows[:, :2]).all()
    distances = torch.cdist(embeddings, embeddings).numpy()
    for (a, p, _), n in zip(rows, mined[:, 2]):
        others = [j for j in range(24) if classes[j] != classes[a] and distances[a, j] > distances[a, p]]
        assert n == (min(others, key=lambda j: distances[a, j]) if others else _)
        assert classes[n] != classes[a]
    random = EmbeddingTrainer(images, classes, method="triplet",
                              config=RetrievalTrainingConfig(input_size=16, width=4, epochs=1, anchors=8, seed=0))
    assert (random._mined(rows, embeddings, batch) == rows).all()  # the thesis's random negatives stay



def test_semihard_all_mines_the_intra_class_negative_then_the_inter_class_one_against_it() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((24, 16, 16)).astype(np.float32)
    classes = np.repeat(np.arange(3), 8)
    bins = np.tile([0, 0, 0, 0, 1, 1, 1, 1], 3)
    config = RetrievalTrainingConfig(input_size=16, width=4, epochs=1, anchors=8, mining="semihard-all", seed=0)
    trainer = EmbeddingTrainer(images, classes, method="oscars", config=config, bins=bins)
    batch = np.arange(24)
    embeddings = trainer.model(trainer.data[torch.from_numpy(batch)]).detach()
    rows = np.array([[0, 1, 5, 20], [12, 13, 9, 0]])
    mined = trainer._mined(rows, embeddings, batch)
    distances = torch.cdist(embeddings, embeddings).numpy()
    assert (mined[:, :2] == rows[:, :2]).all()
    for (a, p, intra, inter), (_, _, m_intra, m_inter) in zip(rows, mined):
        same = [j for j in range(24) if classes[j] == classes[a] and bins[j] != bins[a] and distances[a, j] > distances[a, p]]
        assert m_intra == (min(same, key=lambda j: distances[a, j]) if same else intra)
        others = [j for j in range(24) if classes[j] != classes[a] and distances[a, j] > distances[a, m_intra]]
        assert m_inter == (min(others, key=lambda j: distances[a, j]) if others else inter)
    # "semihard" keeps the random intra-class negative and mines the inter-class one against it
    plain = EmbeddingTrainer(images, classes, method="oscars", bins=bins,
                             config=RetrievalTrainingConfig(input_size=16, width=4, epochs=1, anchors=8,
                                                            mining="semihard", seed=0))
    kept = plain._mined(rows, embeddings, batch)
    assert (kept[:, :3] == rows[:, :3]).all()

def test_poly_schedule_follows_the_larger_of_the_epoch_and_the_budget_fraction() -> None:
    optimiser = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    config = RetrievalTrainingConfig(lr=1e-3, lr_schedule="poly")
    clock = _Clock()
    budget = Deadline(1.0, clock=clock)
    _set_learning_rate(optimiser, config, 10, 100, budget)  # epoch fraction 0.1, budget 0
    assert optimiser.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.9 ** 0.9)
    clock.now += 45.0  # three quarters of the budget spent, a tenth of the epochs
    _set_learning_rate(optimiser, config, 10, 100, budget)
    assert optimiser.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25 ** 0.9)
    _set_learning_rate(optimiser, config, 10, 100)  # no budget: the epochs alone (the phantom recipes)
    assert optimiser.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.9 ** 0.9)


def test_oscars_lambda_weights_the_intra_class_hinge_of_the_batch_loss() -> None:
    from medlim.curation.retrieval.oscars import LAMBDA, sample_quadruplets

    rng = np.random.default_rng(2)
    images = rng.random((24, 16, 16)).astype(np.float32)
    classes = np.repeat(np.arange(3), 8)
    bins = np.tile([0, 0, 0, 0, 1, 1, 1, 1], 3)
    assert RetrievalTrainingConfig().oscars_weight == LAMBDA == 0.05  # the thesis's λ by default
    config = RetrievalTrainingConfig(input_size=16, width=4, epochs=1, anchors=8, seed=0, oscars_weight=0.3)
    trainer = EmbeddingTrainer(images, classes, method="oscars", config=config, bins=bins)
    batch = np.arange(24)
    trainer.rng = np.random.default_rng(5)
    loss, count = trainer._batch_loss(batch)
    rows = sample_quadruplets(classes, bins, np.random.default_rng(5))
    with torch.no_grad():
        e = trainer.model(trainer.data).numpy().astype(np.float64)
    d = lambda i, j: float(np.sqrt(((e[i] - e[j]) ** 2).sum()))  # noqa: E731
    by_hand = np.mean([0.3 * max(d(a, p) - d(a, ni) + 1.0, 0.0) + 0.7 * max(d(a, ni) - d(a, nx) + 2.0, 0.0)
                       for a, p, ni, nx in rows])
    assert count == len(rows) and float(loss.detach()) == pytest.approx(by_hand, rel=1e-4)
    with pytest.raises(ParameterError, match="oscars_weight"):
        RetrievalTrainingConfig(oscars_weight=1.5)
