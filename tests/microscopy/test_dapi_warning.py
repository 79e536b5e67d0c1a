"""The DAPI warning (session-21 probe): empty and saturated images were segmented without a word."""

from __future__ import annotations

import numpy as np

from medlim.microscopy.nuclei.foreground import SATURATED_SHARE, dapi_warning
from medlim.phantoms.fluorescence import generate_fluorescence


def _grey(seed: int) -> np.ndarray:
    image = generate_fluorescence(seed, size=(256, 256)).image
    return image[..., 2].astype(np.float32) / 255.0


def test_phantoms_pass_and_one_value_everywhere_is_said() -> None:
    assert all(dapi_warning(_grey(seed)) is None for seed in range(5))
    for value in (0.0, 1.0):
        warning = dapi_warning(np.full((64, 64), value, np.float32))
        assert warning is not None and warning.startswith("The image holds one value everywhere")


def test_an_image_exposed_four_times_too_long_is_called_saturated() -> None:
    saturated = np.clip(_grey(2) * 4.0, 0.0, 1.0)  # the probe's image: its blue channel × 4, clipped
    warning = dapi_warning(saturated)
    assert warning is not None and "are at the brightest value (saturated)" in warning
    share = int(warning.split("%")[0]) / 100
    assert share >= SATURATED_SHARE
