"""Training on weak labels (medlim.microscopy.steatosis.train)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn
from medlim.microscopy.steatosis.train import (
    SteatosisTrainingConfig,
    TrainingTile,
    sample_batch,
    train_maskrcnn,
    weak_training_tiles,
)


def _tile() -> TrainingTile:
    image = np.full((96, 96, 3), 150, np.uint8)
    labels = np.zeros((96, 96), np.int32)
    yy, xx = np.mgrid[0:96, 0:96]
    for k, (cy, cx, r) in enumerate([(30, 30, 10), (60, 66, 14)], start=1):
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        labels[disk] = k
        image[disk] = 245
    return TrainingTile(image=image, labels=labels)


def test_sample_batch_targets_match_masks() -> None:
    images, targets = sample_batch([_tile()], np.random.default_rng(0), batch_size=2, crop=96)
    assert len(images) == 2 and images[0].shape == (3, 96, 96)
    for target in targets:
        assert target["masks"].shape == (2, 96, 96)
        for box, mask in zip(target["boxes"], target["masks"]):
            rows, cols = np.nonzero(mask.numpy())
            assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        assert target["labels"].tolist() == [1, 1]


def test_weak_tiles_never_use_ground_truth() -> None:
    from medlim.phantoms.he import generate_he

    tile = next(weak_training_tiles(seed=3, count=1, size=128))
    truth = generate_he(3, index=0, size=(128, 128)).labels
    assert tile.labels.shape == truth.shape
    assert not np.array_equal(tile.labels, truth)


def test_config_validation() -> None:
    with pytest.raises(ParameterError):
        SteatosisTrainingConfig(iterations=0)
    with pytest.raises(ParameterError):
        SteatosisTrainingConfig(crop=32)
    with pytest.raises(ParameterError):
        train_maskrcnn(build_steatosis_maskrcnn(), [])


def test_training_smoke() -> None:
    model = build_steatosis_maskrcnn()
    seen: list[float] = []
    report = train_maskrcnn(model, [_tile()], config=SteatosisTrainingConfig(iterations=2, batch_size=1, crop=96, warmup=1),
                            device="cpu", progress=lambda step, total, losses: seen.append(losses["total"]))
    assert report.iterations == 2 and report.device == "cpu"
    assert seen and math.isfinite(report.final_loss)
    assert not model.training


@pytest.mark.slow
def test_short_training_reduces_the_loss() -> None:
    from medlim.microscopy.steatosis.train import weak_training_tiles

    tiles = list(weak_training_tiles(seed=5, count=4, size=256))
    model = build_steatosis_maskrcnn()
    losses: list[float] = []
    train_maskrcnn(model, tiles, config=SteatosisTrainingConfig(iterations=60, crop=192, warmup=10),
                   device="cpu", progress=lambda step, total, loss: losses.append(loss["total"]))
    assert losses[-1] < losses[0]


def test_crops_avoid_rejected_areas() -> None:
    # One droplet (radius 8 at 30, 30) in the clean corner; everything at row or
    # column ≥ 60 is covered by rejected masks. A 48-px crop is free of them
    # only when it starts at row and column ≤ 12, and every such crop holds
    # the whole droplet: 1 mask of the disc's area in each target.
    image = np.full((96, 96, 3), 150, np.uint8)
    labels = np.zeros((96, 96), np.int32)
    yy, xx = np.mgrid[0:96, 0:96]
    disk = (yy - 30) ** 2 + (xx - 30) ** 2 <= 64
    labels[disk] = 1
    image[disk] = 245
    rejected = (yy >= 60) | (xx >= 60)
    tile = TrainingTile(image=image, labels=labels, rejected=rejected)
    _images, targets = sample_batch([tile], np.random.default_rng(3), batch_size=6, crop=48, max_rejected=0.0, tries=400)
    assert [int(t["masks"].shape[0]) for t in targets] == [1] * 6
    assert all(int(t["masks"][0].sum()) == int(disk.sum()) for t in targets)
    # Without the rejected map the crops land anywhere: some miss the droplet.
    _images, free = sample_batch([TrainingTile(image=image, labels=labels)], np.random.default_rng(3), batch_size=6, crop=48)
    assert any(int(t["masks"].shape[0]) == 0 or int(t["masks"][0].sum()) < int(disk.sum()) for t in free)


def test_training_is_reproducible_from_its_seed() -> None:
    # The shipped weights are reproducible from `medlim train steatosis`: the
    # same seed and step budget give bit-identical parameters on the CPU.
    import torch

    config = SteatosisTrainingConfig(iterations=3, batch_size=1, crop=96, warmup=1, seed=4)
    states = []
    for _run in range(2):
        torch.manual_seed(0)
        model = build_steatosis_maskrcnn()
        train_maskrcnn(model, [_tile()], config=config, device="cpu")
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    torch.manual_seed(1)
    other = build_steatosis_maskrcnn()
    assert not all(torch.equal(states[0][k], v) for k, v in other.state_dict().items())


@pytest.mark.parametrize("crash_after", [1, 2])
def test_training_in_a_job_resumes_after_its_last_saved_steps(crash_after: int, tmp_path, monkeypatch) -> None:
    """Inside a job (issue 15) a run killed right after the k-th checkpoint takes only the steps after it and
    ends with the weights of an uninterrupted run (CPU, no time limit: bit-equal)."""
    import torch

    from medlim.core.training_resume import ENV_VARIABLE
    from medlim.microscopy.steatosis import train as train_module
    from tests.resume_helpers import Crash, counting, killed_after, same_tensors

    monkeypatch.setattr(train_module, "RESUME_STEPS", 1)  # a checkpoint after every step
    config = SteatosisTrainingConfig(iterations=3, batch_size=1, crop=96, warmup=1)

    def run() -> tuple[dict, int]:
        torch.manual_seed(0)
        model = build_steatosis_maskrcnn()
        report = train_maskrcnn(model, [_tile()], config=config, device="cpu", key=("test",))
        return model.state_dict(), report.iterations

    straight = run()  # outside a job: nothing saved
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "job"))
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, crash_after)
        run()
    with monkeypatch.context() as patch:
        steps = counting(patch, train_module.SteatosisTrainer, "step")
        weights, iterations = run()
    assert steps["step"] == 3 - crash_after and iterations == 3
    assert same_tensors(weights, straight[0])
