from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medlim.errors import ParameterError
from medlim.mammography.train import (
    PatchSet,
    TrainingConfig,
    TrainingImage,
    augment_batch,
    extract_image_patches,
    extract_training_patches,
    line_scores,
    segmentation_loss,
    soft_dice_loss,
    train_scunet,
)


def test_soft_dice_hand_computed() -> None:
    y = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    p = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])
    # Σ y·ŷ = 0.5 + 1 = 1.5; Σ y² = 2; Σ ŷ² = 0.25 + 0.25 + 1 = 1.5
    expected = 1 - 2 * 1.5 / (2 + 1.5 + 1e-6)
    assert float(soft_dice_loss(p, y)) == pytest.approx(expected, rel=1e-6)
    assert float(soft_dice_loss(y, y)) == pytest.approx(0.0, abs=1e-6)


def test_segmentation_loss_dice_and_dice_plus_bce_hand_computed() -> None:
    logits = torch.zeros(1, 1, 1, 2)  # ŷ = 0.5 everywhere
    y = torch.tensor([[[[1.0, 0.0]]]])
    # Dice: Σ y·ŷ = 0.5, Σ y² = 1, Σ ŷ² = 0.5 → 1 − 1/1.5 = 1/3; BCE of ŷ = 0.5 is ln 2 on every pixel
    dice = 1 - 2 * 0.5 / (1 + 0.5 + 1e-6)
    assert float(segmentation_loss(logits, y)) == pytest.approx(dice, rel=1e-6)
    assert float(segmentation_loss(logits, y, kind="dice+bce")) == pytest.approx(dice + math.log(2), rel=1e-6)
    with pytest.raises(ParameterError):
        segmentation_loss(logits, y, kind="focal")


def test_dice_plus_crop_adds_each_bac_crop_s_own_dice_hand_computed() -> None:
    # two 2×2 crops at ŷ = 0.5, one BAC pixel in the first. Batch: Σ y·ŷ = 0.5, Σ y² = 1, Σ ŷ² = 8 × 0.25 = 2
    # → 1 − 1/3; first crop alone: Σ ŷ² = 1 → 1 − 1/2; the second holds no BAC and adds nothing
    logits = torch.zeros(2, 1, 2, 2)
    y = torch.zeros(2, 1, 2, 2)
    y[0, 0, 0, 0] = 1.0
    expected = (1 - 2 * 0.5 / (1 + 2 + 1e-6)) + (1 - 2 * 0.5 / (1 + 1 + 1e-6))
    assert float(segmentation_loss(logits, y, kind="dice+crop")) == pytest.approx(expected, rel=1e-6)
    empty = torch.zeros(2, 1, 2, 2)
    assert float(segmentation_loss(logits, empty, kind="dice+crop")) == pytest.approx(
        float(segmentation_loss(logits, empty)), rel=1e-6)


def _image_with_bac(size: int = 1100) -> TrainingImage:
    rng = np.random.default_rng(0)
    image = np.zeros((size, size), np.uint8)
    image[:, : size * 3 // 4] = (100 + rng.normal(0, 25, (size, size * 3 // 4))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((size, size), bool)
    mask[100:110, 50:300] = True  # BAC only in the top-left grid patch
    image[mask] = 250
    return TrainingImage(image=image, bac_mask=mask)


def test_only_patches_with_calcification_are_kept() -> None:
    patches = extract_training_patches([_image_with_bac()], preset="thesis")
    assert len(patches) >= 1
    assert all(m.any() for m in patches.mask)
    with_negatives = extract_training_patches(
        [_image_with_bac()], preset="thesis", negative_fraction=1.0, rng=np.random.default_rng(1)
    )
    assert len(with_negatives) == 2 * len(patches)
    assert sum(not m.any() for m in with_negatives.mask) == len(patches)


def test_black_skip_rule_keeps_edge_patches_for_training() -> None:
    # 512×1024, stride 512: the left patch holds a 30-px strip of breast (mean at most
    # 30·255/512 ≈ 15 → the authors' rule calls it background) with BAC in it; the right patch is black.
    rng = np.random.default_rng(2)
    image = np.zeros((512, 1024), np.uint8)
    image[:, :30] = rng.integers(90, 130, (512, 30))
    mask = np.zeros((512, 1024), bool)
    mask[200:260, 10:14] = True
    image[mask] = 200
    item = TrainingImage(image=image, bac_mask=mask)
    authors, _ = extract_image_patches(item, preset="thesis", stride=512, skip=True)
    black, black_negatives = extract_image_patches(item, preset="thesis", stride=512, skip="black", max_negatives=5)
    everything, negatives = extract_image_patches(item, preset="thesis", stride=512, skip=False, max_negatives=5)
    assert len(authors) == 0
    assert len(black) == 1 and black.mask[0].sum() == 60 * 4 and len(black_negatives) == 0
    assert len(everything) == 1 and len(negatives) == 1  # the black patch, kept only without a skip rule
    with pytest.raises(ParameterError, match="skip"):
        extract_image_patches(item, preset="thesis", skip="grey")


def test_line_scores_hand_computed() -> None:
    # two 64 px patches of grey 50; the second holds a 3 px line of 200 (192 of its 4,096 pixels, 4.7 % > 1 %):
    # the 15 px opening removes the line, so the top-hat is 150 on it and 0 elsewhere; its 99th percentile is 150
    grey = np.full((64, 128), 50, np.uint8)
    grey[:, 90:93] = 200
    assert line_scores(grey, [(0, 0), (0, 64)], patch=64).tolist() == [0.0, 150.0]
    assert line_scores(grey, [], patch=64).shape == (0,)


def test_line_negatives_keep_the_bac_free_patch_with_a_bright_line() -> None:
    # four BAC-free 512 px patches of smooth tissue (a ramp); the third holds a thin bright line (a ligament). With
    # no random negative and one line negative, that patch is the one kept.
    image = np.tile(np.linspace(90, 130, 2048), (512, 1)).astype(np.uint8)
    image[:, 1200:1206] = 250  # 6 × 512 px: 1.2 % of the patch, above the 99th percentile
    item = TrainingImage(image=image, bac_mask=np.zeros(image.shape, bool))
    _, kept = extract_image_patches(item, preset="thesis", stride=512, skip=False, max_negatives=0, line_negatives=1)
    assert len(kept) == 1 and kept.grey[0][:, 1200 - 1024:1206 - 1024].min() > kept.grey[0].mean() + 50
    _, random_only = extract_image_patches(item, preset="thesis", stride=512, skip=False, max_negatives=2,
                                           rng=np.random.default_rng(0))
    _, both = extract_image_patches(item, preset="thesis", stride=512, skip=False, max_negatives=2,
                                    rng=np.random.default_rng(0), line_negatives=4)
    # seed 0 draws the line patch among its two; the two ramp patches left have no top-hat at all (score 0), so no
    # line negative is added
    assert len(random_only) == 2 and np.array_equal(both.grey, random_only.grey)
    assert any(patch[:, 1200 - 1024:1206 - 1024].min() == 255 for patch in both.grey)


def test_augmentation_moves_mask_with_image() -> None:
    grey = torch.zeros(8, 1, 16, 16)
    grey[:, :, 2, 3] = 1.0
    mask = (grey > 0).float()
    out_grey, out_mask = augment_batch(grey, mask, generator=torch.Generator().manual_seed(3), brightness=0.0, contrast=0.0)
    assert torch.equal(out_grey > 0.5, out_mask > 0.5)
    assert out_mask.sum() == 8


def test_training_reduces_dice_loss_on_tiny_problem() -> None:
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    grey = (rng.normal(90, 20, (4, 64, 64))).clip(1, 255).astype(np.uint8)
    mask = np.zeros((4, 64, 64), bool)
    mask[:, 30:34, :] = True
    grey[mask] = 240
    patches = PatchSet(grey=grey, mask=mask)
    model = build_scunet()
    report = train_scunet(model, patches, config=TrainingConfig(epochs=25, batch_size=4, learning_rate=1e-2), device="cpu")
    assert report.losses[-1] < report.losses[0] - 0.2


@pytest.mark.parametrize("crash_after", [1, 2])
def test_the_scunet_recipe_loop_resumes_after_its_last_saved_epoch(crash_after: int, tmp_path, monkeypatch) -> None:
    """Inside a job (issue 15) a run killed right after epoch k's checkpoint trains epochs k+1… only, and ends
    with the weights and losses of an uninterrupted run (CPU, same seed: bit-equal)."""
    from medlim.core.training_resume import ENV_VARIABLE
    from medlim.mammography.scunet import build_scunet
    from tests.resume_helpers import Crash, killed_after, same_tensors

    rng = np.random.default_rng(1)
    grey = rng.normal(90, 20, (4, 64, 64)).clip(1, 255).astype(np.uint8)
    mask = np.zeros((4, 64, 64), bool)
    mask[:, 20:23, :] = True
    patches = PatchSet(grey=grey, mask=mask)
    config = TrainingConfig(epochs=3, batch_size=2, learning_rate=1e-3)

    def run() -> tuple[dict, tuple[float, ...], list[int]]:
        torch.manual_seed(0)
        model, epochs = build_scunet(), []
        report = train_scunet(model, patches, config=config, device="cpu", key=("test",),
                              progress=lambda e, n, loss: epochs.append(e))
        return model.state_dict(), report.losses, epochs

    straight = run()  # outside a job: nothing saved
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "job"))
    with monkeypatch.context() as patch, pytest.raises(Crash):
        killed_after(patch, crash_after)
        run()
    weights, losses, epochs = run()
    assert epochs == list(range(crash_after + 1, 4))
    assert losses == straight[1] and same_tensors(weights, straight[0])
