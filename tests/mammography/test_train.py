from __future__ import annotations

import numpy as np
import pytest
import torch

from medlim.mammography.train import (
    PatchSet,
    TrainingConfig,
    TrainingImage,
    augment_batch,
    extract_training_patches,
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
