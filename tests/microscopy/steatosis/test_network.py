"""The Mask R-CNN builder (medlim.microscopy.steatosis.network) and its registry entry."""

from __future__ import annotations

import pytest
import torch

from medlim.core.weights import resolve_architecture
from medlim.errors import ParameterError
from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn


def test_shipped_backbone_is_small_and_runs_at_native_scale() -> None:
    model = build_steatosis_maskrcnn()
    n_bytes = sum(p.numel() for p in model.state_dict().values()) * 4
    assert n_bytes < 50e6
    model.eval()
    with torch.inference_mode():
        image = torch.rand(3, 96, 80)
        output = model([image])[0]
        transformed, _ = model.transform([image])
    # Masks come pasted into their own boxes (issue 16: no full-size mask per detection).
    assert set(output) == {"boxes", "labels", "scores", "mask_crops"}
    assert len(output["mask_crops"]) == len(output["scores"])
    # No resizing: only padding to a multiple of 32.
    assert tuple(transformed.tensors.shape[-2:]) == (96, 96)
    assert transformed.image_sizes == [(96, 80)]


def test_two_classes_and_validation() -> None:
    model = build_steatosis_maskrcnn()
    assert model.roi_heads.box_predictor.cls_score.out_features == 2
    with pytest.raises(ParameterError):
        build_steatosis_maskrcnn(backbone="vgg")
    with pytest.raises(ParameterError):
        build_steatosis_maskrcnn(num_classes=1)


def test_registered_architecture() -> None:
    assert resolve_architecture("maskrcnn-steatosis") is build_steatosis_maskrcnn


def test_thesis_backbone_builds() -> None:
    model = build_steatosis_maskrcnn(backbone="resnet50")
    assert model.backbone.out_channels == 256


def test_mask_crops_equal_torchvision_full_size_masks_inside_their_boxes() -> None:
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from medlim.microscopy.steatosis.network import NativeScaleTransform

    transform = NativeScaleTransform(min_size=800, max_size=4096, image_mean=[0.5] * 3, image_std=[0.2] * 3).eval()
    torch.manual_seed(0)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 15.0], [30.0, 1.0, 47.0, 39.0], [-3.0, 35.0, 10.0, 45.0]])
    masks = torch.rand(3, 1, 28, 28)
    (lean,) = transform.postprocess([{"boxes": boxes, "masks": masks}], [(40, 48)], [(40, 48)])
    full = paste_masks_in_image(masks, boxes, (40, 48))[:, 0]
    for (top, left, crop), reference in zip(lean["mask_crops"], full):
        rebuilt = torch.zeros_like(reference)
        rebuilt[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        assert torch.equal(rebuilt, reference)


def test_inference_keeps_dense_tiles_and_touching_droplets() -> None:
    # Issue 13: 1,000 (then 3,000) detections capped dense 1024² tiles.
    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.network import DENSE_TILE_SETTINGS

    assert DENSE_TILE_SETTINGS == {"detections_per_image": 6000}
    model = build_steatosis_maskrcnn(**DENSE_TILE_SETTINGS)
    assert (model.roi_heads.detections_per_img, model.roi_heads.nms_thresh) == (6000, 0.5)
    assert model.rpn._pre_nms_top_n["testing"] == model.rpn._post_nms_top_n["testing"] == 12000
    default = build_steatosis_maskrcnn()  # torchvision's NMS, 1,000 detections, proposals 3,000 / 2,000 as before
    assert (default.roi_heads.detections_per_img, default.roi_heads.nms_thresh) == (1000, 0.5)
    assert (default.rpn._pre_nms_top_n["testing"], default.rpn._post_nms_top_n["testing"]) == (3000, 2000)
    shipped = Registry.load().get("maskrcnn-steatosis")
    assert dict(shipped.architecture_kwargs) == {"backbone": "resnet10", **DENSE_TILE_SETTINGS}
    assert shipped.thresholds["mask"] == 0.35
    with pytest.raises(ParameterError, match="detections_per_image"):
        build_steatosis_maskrcnn(detections_per_image=0)
    with pytest.raises(ParameterError, match="box_nms_threshold"):
        build_steatosis_maskrcnn(box_nms_threshold=0.0)
    assert build_steatosis_maskrcnn(box_nms_threshold=0.7).roi_heads.nms_thresh == 0.7


def test_mask_crops_do_not_hold_the_full_size_paste() -> None:
    from medlim.microscopy.steatosis.network import NativeScaleTransform

    transform = NativeScaleTransform(min_size=800, max_size=4096, image_mean=[0.5] * 3, image_std=[0.2] * 3).eval()
    boxes = torch.tensor([[2.0, 3.0, 12.0, 11.0], [100.0, 100.0, 110.0, 120.0]])
    (lean,) = transform.postprocess([{"boxes": boxes, "masks": torch.rand(2, 1, 28, 28)}], [(256, 256)],
                                    [(256, 256)])
    for _top, _left, crop in lean["mask_crops"]:
        # A view would keep the whole 256×256 float32 paste (262,144 bytes) alive per detection.
        assert crop.untyped_storage().nbytes() == crop.numel() * 4 < 256 * 256 * 4
