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
    assert set(output) == {"boxes", "labels", "scores", "masks"}
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
