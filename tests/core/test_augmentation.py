"""The shared intensity augmentation (issue 12), by hand: each step alone on a known image."""

from __future__ import annotations

import torch

from medlim.core.augmentation import INTENSITY_DRAWS, augment_intensity, gaussian_blur


class _Ranges:
    """Every step off unless switched on (probability 1)."""

    def __init__(self, **on: object) -> None:
        self.contrast_p, self.contrast, self.brightness = 0.0, 0.0, 0.0
        self.gamma_p, self.gamma = 0.0, (1.0, 1.0)
        self.noise_p, self.noise = 0.0, 0.0
        self.blur_p, self.blur = 0.0, (1.0, 1.0)
        self.resolution_p, self.resolution = 0.0, 1.0
        for key, value in on.items():
            setattr(self, key, value)


def _draws(**values: float) -> torch.Tensor:
    draws = torch.full((INTENSITY_DRAWS,), 0.5)
    for index, value in values.items():
        draws[int(index[1:])] = value
    return draws


def test_contrast_and_gamma_by_hand() -> None:
    image = torch.tensor([[[0.2, 0.4], [0.6, 0.8]]])
    # contrast factor 1 + 0.5·(2·1 − 1) = 1.5 about the mean 0.5, brightness 0.1·(2·0.75 − 1) = +0.05
    out = augment_intensity(image, _draws(d0=0.0, d1=1.0, d2=0.75), _Ranges(contrast_p=1.0, contrast=0.5,
                                                                               brightness=0.1), torch.Generator())
    assert torch.allclose(out, torch.tensor([[[0.10, 0.40], [0.70, 1.0]]]), atol=1e-6)  # 1.05 clipped to 1
    # gamma 1 + (3 − 1)·0.5 = 2: x²
    out = augment_intensity(image, _draws(d3=0.0, d4=0.5), _Ranges(gamma_p=1.0, gamma=(1.0, 3.0)), torch.Generator())
    assert torch.allclose(out, image ** 2, atol=1e-6)


def test_region_keeps_the_background_black_and_sets_the_mean() -> None:
    image = torch.tensor([[[0.0, 0.4], [0.0, 0.8]]])
    region = image > 0
    out = augment_intensity(image, _draws(d0=0.0, d1=1.0, d2=0.5), _Ranges(contrast_p=1.0, contrast=1.0),
                            torch.Generator(), region=region)
    # factor 2 about the region's mean 0.6: 0.4 → 0.2, 0.8 → 1.0; outside stays 0
    assert torch.allclose(out, torch.tensor([[[0.0, 0.2], [0.0, 1.0]]]), atol=1e-6)
    # the whole image without a region: mean 0.3, 0 → 1/255 (the floor), 0.4 → 0.5, 0.8 → 1
    out = augment_intensity(image, _draws(d0=0.0, d1=1.0, d2=0.5), _Ranges(contrast_p=1.0, contrast=1.0),
                            torch.Generator())
    assert torch.allclose(out, torch.tensor([[[1 / 255, 0.5], [1 / 255, 1.0]]]), atol=1e-6)


def test_blur_noise_and_resolution_leave_a_flat_image_flat_in_the_mean() -> None:
    flat = torch.full((1, 16, 16), 0.5)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat, atol=1e-6)
    ranges = _Ranges(blur_p=1.0, blur=(0.5, 1.5), resolution_p=1.0, resolution=0.5)
    assert torch.allclose(augment_intensity(flat, _draws(d7=0.0, d9=0.0), ranges, torch.Generator()), flat, atol=1e-6)
    noisy = augment_intensity(flat, _draws(d5=0.0, d6=1.0), _Ranges(noise_p=1.0, noise=0.05),
                              torch.Generator().manual_seed(0))
    assert 0.03 < float(noisy.std()) < 0.07 and abs(float(noisy.mean()) - 0.5) < 0.02
    # a single bright pixel spreads under the blur and keeps its sum (away from the border)
    spot = torch.zeros(1, 15, 15)
    spot[0, 7, 7] = 1.0
    blurred = gaussian_blur(spot, 1.0)
    assert abs(float(blurred.sum()) - 1.0) < 1e-5 and float(blurred[0, 7, 7]) < 0.2
