"""Architectures: thesis Table 4.1 shapes, TEND head size follows the input, CVAD branch encoder is one conv."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medlim.curation.ood.nets import ConvAutoencoder, CvadNet, TendNet
from medlim.errors import ParameterError


def test_autoencoder_table_4_1_channels() -> None:
    model = ConvAutoencoder(width=16, input_size=64).eval()
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 16), (16, 32), (32, 64), (64, 128), (128, 256)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    x = torch.rand(2, 1, 64, 64)
    assert model.encode(x).shape == (2, 256, 2, 2)
    out = model(x)
    assert out.shape == x.shape and 0 <= float(out.min().detach()) and float(out.max().detach()) <= 1


@pytest.mark.parametrize(("size", "fc_in"), [(64, 512), (128, 2048)])
def test_tend_first_fc_follows_the_input_size(size: int, fc_in: int) -> None:
    # Table 4.1's FC(2048, 512) is the 128×128 case
    model = TendNet(width=16, input_size=size).eval()
    assert model.embed.in_features == fc_in and model.embed.out_features == 512
    p, c = model(torch.rand(3, 1, size, size))
    assert p.shape == (3,) and c.shape == (3, 512)
    assert torch.allclose(model.distance(c), (c ** 2).sum(1))  # centre starts at 0


def test_cvad_branch_encoder_is_one_convolution() -> None:
    model = CvadNet(width=16, input_size=64, latent=512).eval()
    assert isinstance(model.generator.e2, nn.Conv2d)
    assert not any(isinstance(m, nn.Linear) and m.in_features > 100_000 for m in model.modules())
    out = model.generator(torch.rand(2, 1, 64, 64))
    assert out.image.shape == (2, 1, 64, 64)
    assert out.mu1.shape == (2, 512) and out.mu2[0].numel() == 4 * 512  # branch latent 4K
    assert model.discriminator(torch.rand(2, 1, 64, 64)).shape == (2,)
    total = sum(p.numel() for p in model.parameters())
    assert total < 10_000_000  # the authors' Linear E2 alone had ~700 M


def test_cvad_inference_is_deterministic() -> None:
    model = CvadNet(width=4, input_size=32, latent=16).eval()
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(model.generator(x).image, model.generator(x).image)


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(ParameterError, match="multiple of 64"):
        TendNet(input_size=96)
    with pytest.raises(ParameterError, match="divisible"):
        CvadNet(input_size=64, latent=3)
