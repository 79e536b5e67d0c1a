"""Intensity augmentation shared by the trainers (issue 12: augmentation suited to the modality).

One image at a time, with its random draws given, so that each trainer keeps
its own draw order and random stream: contrast and brightness, gamma,
Gaussian noise, Gaussian blur and a simulated lower resolution — the
intensity part of nnU-Net's augmentation. ``region`` limits the change to
part of the image (a mammogram's breast: black background stays black, as
in a real image); without it the whole image is augmented.

The ranges come from a policy (:class:`IntensityRanges`): the mammography
trainer's :class:`~medlim.mammography.plan.AugmentationPolicy` and the
retrieval trainer's radiograph policy both satisfy it.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

__all__ = ["INTENSITY_DRAWS", "IntensityRanges", "augment_intensity", "gaussian_blur"]

#: Uniform draws one image's intensity augmentation reads (``draws[0:11]``).
INTENSITY_DRAWS = 11


class IntensityRanges(Protocol):
    """Probabilities and ranges of :func:`augment_intensity` (see the mammography ``AugmentationPolicy``)."""

    contrast_p: float
    contrast: float
    brightness: float
    gamma_p: float
    gamma: tuple[float, float]
    noise_p: float
    noise: float
    blur_p: float
    blur: tuple[float, float]
    resolution_p: float
    resolution: float


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``Tensor[1, H, W]`` blurred by a separable Gaussian of SD ``sigma`` px (reflected borders)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = nn.functional.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    rows = nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1))
    return nn.functional.conv2d(rows, kernel.view(1, 1, -1, 1))[0]


def augment_intensity(g: torch.Tensor, draws: torch.Tensor, policy: IntensityRanges, generator: torch.Generator,
                      *, region: torch.Tensor | None = None) -> torch.Tensor:
    """One image's intensity augmentation.

    Args:
        g: ``Tensor[1, H, W]`` float in [0, 1].
        draws: at least :data:`INTENSITY_DRAWS` uniform numbers in [0, 1): whether each step runs and its
            strength (contrast 0–2, gamma 3–4, noise 5–6, blur 7–8, resolution 9–10).
        policy: the probabilities and ranges.
        generator: the stream of the noise pixels.
        region: ``Tensor[1, H, W]`` bool — where the image is augmented (the mean for the contrast is taken
            there; outside it the pixels become 0); ``None``: everywhere.

    Returns:
        ``Tensor[1, H, W]`` in [1/255, 1] inside the region (0 outside).
    """
    inside = torch.ones_like(g, dtype=torch.bool) if region is None else region
    if not bool(inside.any()):
        return g
    if draws[0] < policy.contrast_p:
        factor = 1.0 + policy.contrast * (2 * float(draws[1]) - 1)
        shift = policy.brightness * (2 * float(draws[2]) - 1)
        mean = g[inside].mean()
        g = (g - mean) * factor + mean + shift
    if draws[3] < policy.gamma_p:
        low, high = policy.gamma
        g = g.clamp(0.0, 1.0) ** (low + (high - low) * float(draws[4]))
    if draws[5] < policy.noise_p:
        g = g + torch.randn(g.shape, generator=generator, dtype=g.dtype) * (policy.noise * float(draws[6]))
    if draws[7] < policy.blur_p:
        low, high = policy.blur
        g = gaussian_blur(g, low + (high - low) * float(draws[8]))
    if draws[9] < policy.resolution_p:
        scale = policy.resolution + (1.0 - policy.resolution) * float(draws[10])
        small = nn.functional.interpolate(g[None], scale_factor=scale, mode="area")
        g = nn.functional.interpolate(small, size=g.shape[-2:], mode="bilinear", align_corners=False)[0]
    return torch.where(inside, g.clamp(1.0 / 255.0, 1.0), torch.zeros_like(g))
