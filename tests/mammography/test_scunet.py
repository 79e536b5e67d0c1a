"""SCU-Net architecture: parameter count, every parameter used, shapes, raw output."""

from __future__ import annotations

import importlib

import numpy as np
import torch

from medlim.mammography.scunet import SCUNET_PARAMETER_COUNT, build_scunet


def test_parameter_count_matches_methods() -> None:
    model = build_scunet()
    assert SCUNET_PARAMETER_COUNT == 169_711
    assert sum(p.numel() for p in model.parameters()) == 169_711


def test_every_parameter_is_used_in_forward() -> None:
    torch.manual_seed(0)
    model = build_scunet()
    model.train()
    output = model(torch.randn(2, 3, 64, 64))
    output.square().mean().backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert unused == []


def test_output_shape_for_a_full_patch() -> None:
    model = build_scunet().eval()
    with torch.inference_mode():
        output = model(torch.zeros(1, 3, 512, 512))
    assert output.shape == (1, 1, 512, 512)
    assert output.dtype == torch.float32


def test_output_is_raw_not_sigmoid() -> None:
    model = build_scunet().eval()
    with torch.inference_mode():
        model.head.bias.fill_(-5.0)
        model.head.weight.zero_()
        output = model(torch.randn(1, 3, 16, 16))
    # A sigmoid output could never be negative.
    np.testing.assert_allclose(output.numpy(), -5.0, rtol=0, atol=1e-6)


def test_builder_options() -> None:
    model = build_scunet(in_channels=1, classes=2, dropout=0.0).eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_lazy_builder_string_resolves() -> None:
    module_name, attribute = "medlim.mammography.scunet:build_scunet".split(":")
    builder = getattr(importlib.import_module(module_name), attribute)
    assert builder is build_scunet
