"""Named single shifts of family-A radiograph phantoms, each with a severity (issue 13).

The external site styles of :mod:`medlim.phantoms.radiograph` mix several shift
families per image, so a detector's hit rate cannot be read per kind of
shift. This module applies one named shift at a time to an internal render, at
a severity in [0, 1] where 0 leaves the image exactly unchanged, so the mild
shifts the thesis does not test (blur, lost resolution, casts, noise, grid
lines, exposure, intensity casts) can be reported one by one beside the strong ones:

* ``blur`` — Gaussian blur, σ = 3·s px at the native 256 px;
* ``lowres`` — down-sampling by 1 + 7·s (area) and back (linear), as an image
  acquired or stored at a coarser pixel spacing;
* ``cast`` — a plaster cast: a shell of extra attenuation over the limb and a
  margin around it, with a fine plaster grain, brightening by up to 0.3·s;
* ``noise`` — signal-dependent (quantum-like) noise, σ = 0.1·s·√(0.3 + I);
* ``grid`` — anti-scatter grid lines, amplitude 0.12·s, period 2.2–4.5 px;
* ``exposure`` — a dose and display error: gamma e^{±0.9·s} and a brightness
  offset of ±0.15·s;
* ``tint`` — an intensity cast (what a colour cast becomes in the grey
  preset, or a heel effect): a linear brightness ramp across the image at a
  random angle, ±0.25·s at the edges, plus a uniform shift of up to ±0.1·s.

Noise and blur share their kind with two thesis validation transforms (Table
4.5), which never enter training (:mod:`medlim.curation.ood.distortions`).
Every function is a pure function of ``(image, severity, rng)``; the rng stream
of :func:`shifted_radiograph` is keyed by seed, index, class and shift, so a
set is the same per seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from medlim.errors import ParameterError

__all__ = ["NAMED_SHIFTS", "apply_named_shift", "shifted_radiograph", "evenly_spread_severities"]

#: The named shifts, mild to strong by severity (see the module docstring).
NAMED_SHIFTS: tuple[str, ...] = ("blur", "lowres", "cast", "noise", "grid", "exposure", "tint")
_NATIVE = 256


def _blur(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 3.0 * s * image.shape[0] / _NATIVE)


def _lowres(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = image.shape[0]
    small = max(8, int(round(size / (1.0 + 7.0 * s))))
    reduced = cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(reduced, (size, size), interpolation=cv2.INTER_LINEAR)


def _cast(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = image.shape[0]
    # the limb: anything clearly brighter than the air around it
    limb = (cv2.GaussianBlur(image, (0, 0), 2.0) > np.percentile(image, 20) + 0.08).astype(np.uint8)
    pad = max(1, int(round(0.04 * size)))
    shell = cv2.dilate(limb, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1, 2 * pad + 1)))
    cover = cv2.GaussianBlur(shell.astype(np.float32), (0, 0), 0.012 * size)
    noise = (1.0 + 0.08 * rng.standard_normal(image.shape).astype(np.float32)).astype(np.float32)
    grain = cv2.GaussianBlur(noise, (0, 0), 0.006 * size)  # a fine plaster grain
    return image + np.float32(0.3 * s * rng.uniform(0.8, 1.0)) * cover * grain


def _noise(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    sigma = 0.1 * s
    return image + rng.standard_normal(image.shape).astype(np.float32) * np.float32(sigma) * np.sqrt(0.3 + image)


def _grid(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    period = rng.uniform(2.2, 4.5) * size / _NATIVE
    phase = rng.uniform(0.0, 2 * math.pi)
    lines = np.maximum(np.sin(2 * math.pi * np.arange(size) / period + phase), 0.0) ** 4
    pattern = np.float32(0.12 * s) * lines.astype(np.float32)
    return image + (pattern[None, :] if rng.random() < 0.5 else pattern[:, None])


def _exposure(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    direction = -1.0 if rng.random() < 0.5 else 1.0
    gamma = math.exp(direction * 0.9 * s)
    offset = -direction * 0.15 * s  # under-exposed (gamma > 1 darkens) … shown darker still, and vice versa
    return np.power(np.clip(image, 0.0, 1.0), gamma) + np.float32(offset * rng.uniform(0.5, 1.0))


def _tint(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    angle = rng.uniform(0.0, 2 * math.pi)
    position = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / (size / 2)  # −1 … 1
    ramp = math.cos(angle) * position[None, :] + math.sin(angle) * position[:, None]
    offset = rng.uniform(-0.1, 0.1) * s
    return image + np.float32(0.25 * s) * ramp.astype(np.float32) + np.float32(offset)


_SHIFTS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "blur": _blur, "lowres": _lowres, "cast": _cast, "noise": _noise, "grid": _grid, "exposure": _exposure,
    "tint": _tint,
}


def apply_named_shift(image: np.ndarray, name: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """One named shift of a grey image.

    Args:
        image: ``np.ndarray[H, W]`` float in [0, 1] (square; sides ≥ 16).
        name: one of :data:`NAMED_SHIFTS`.
        severity: in [0, 1]; 0 returns the image unchanged.
        rng: the shift's random stream.

    Returns:
        ``np.ndarray[H, W]`` float32 in [0, 1].
    """
    if name not in _SHIFTS:
        raise ParameterError(f"unknown shift {name!r}; known: {', '.join(NAMED_SHIFTS)}.")
    if isinstance(severity, bool) or not isinstance(severity, (int, float, np.floating)) \
            or not 0.0 <= float(severity) <= 1.0:
        raise ParameterError(f"`severity` must be a number in [0, 1], {severity!r} is given.")
    array = np.ascontiguousarray(image, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] < 16:
        raise ParameterError(f"a named shift takes a square grey image with sides ≥ 16, shape {array.shape} is given.")
    if float(severity) == 0.0:
        return array.copy()
    return np.clip(_SHIFTS[name](array, float(severity), rng), 0.0, 1.0).astype(np.float32)


def shifted_radiograph(*, seed: int, index: int, body_part: str, shift: str, severity: float,
                       variability: float = 0.0) -> np.ndarray:
    """An internal family-A radiograph (native 256 px) with one named shift.

    The anatomy is ``generate_radiograph(seed=seed, index=index, body_part=body_part,
    variability=variability)``; the shift's stream is ``rng_for(seed, "radiograph-named-shift",
    index, body_part, shift)``.

    Returns:
        ``np.ndarray[256, 256]`` float32 in [0, 1].
    """
    from medlim.phantoms.base import rng_for
    from medlim.phantoms.radiograph import generate_radiograph

    clean = generate_radiograph(seed=seed, index=index, body_part=body_part, variability=variability).image
    return apply_named_shift(clean, shift, severity, rng_for(seed, "radiograph-named-shift", int(index), body_part,
                                                             shift))


def evenly_spread_severities(count: int, *, low: float = 0.05, high: float = 1.0) -> np.ndarray:
    """``count`` severities spread evenly from ``low`` (mild) to ``high`` (strong); one image gets the middle."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ParameterError(f"`count` must be a positive integer, {count!r} is given.")
    if not 0.0 <= low <= high <= 1.0:
        raise ParameterError(f"severities need 0 ≤ low ≤ high ≤ 1, ({low!r}, {high!r}) is given.")
    if count == 1:
        return np.array([0.5 * (low + high)])
    return np.linspace(low, high, int(count))
