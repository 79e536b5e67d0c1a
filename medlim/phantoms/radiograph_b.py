"""Radiograph phantoms, family B: another limb model and acquisition chain (issues 12 and 13).

Written from a description, not from :mod:`medlim.phantoms.radiograph`
(family A), with the same seven body-part classes and the same record
(:class:`~medlim.phantoms.radiograph.RadiographPhantom`), so OOD, shift and
retrieval code trained on one family can be tested on the other.

* **Anatomy** (:mod:`medlim.phantoms.family_b.limbs`): bones as tapered,
  cortical-shelled cylinders and ellipsoids with joint gaps, a superellipse
  soft-tissue envelope, a trabecular texture; per body part a layout of its
  own (a hand is carpals, five metacarpal rays and phalanges; a forearm radius
  and ulna; a shoulder humeral head, scapula, clavicle and ribs; …), posed by
  rotation, zoom, shift and mirroring.
* **Acquisition**: beam hardening (``A/(1 + hA)``), scatter (a wide blur of
  the attenuated share added back), collimation borders, a lead side marker,
  quantum + electronic detector noise, a percentile window, unsharp masking and
  a tone curve. The ``"internal"`` and ``"external"`` sites differ in tone
  curve, sharpening, noise level and texture, hardening and scatter
  (:data:`SITE_LOOKS`).
* **Shifts** (:data:`SHIFTS`), each a named transform with a severity in
  [0, 1] (severity 0 gives the unshifted image exactly): ``blur``, ``lowres``
  (down- and up-sampling), ``cast`` (a plaster shell around the limb),
  ``noise`` (coarse added noise), ``grid`` (anti-scatter grid lines) and
  ``exposure`` (dose × e^{±1.2·severity}: under-exposure raises the noise,
  over-exposure saturates thin tissue; the display's brightness is off by
  ±0.15·severity).

Images are grey ``float32`` in [0, 1], bone bright, rendered at
:data:`NATIVE_SIZE` px and resized to ``size``; the same ``(seed, index)``
gives the same anatomy at either site and under any shift.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, rng_for, save_png, write_manifest
from medlim.phantoms.family_b.fields import detector_noise, lowpass, power_law_field
from medlim.phantoms.family_b.limbs import MU_SOFT, LimbProjection, build_limb, project_limb, soft_paths
from medlim.phantoms.radiograph import BODY_PARTS, RadiographPhantom

__all__ = [
    "BODY_PARTS",
    "SITES",
    "SHIFTS",
    "NATIVE_SIZE",
    "SiteLook",
    "SITE_LOOKS",
    "generate_radiograph_b",
    "write_radiograph_b",
    "write_radiographs_b",
    "KIND",
]

#: Acquisition sites.
SITES: tuple[str, ...] = ("internal", "external")
#: Named shifts (see the module docstring).
SHIFTS: tuple[str, ...] = ("blur", "lowres", "cast", "noise", "grid", "exposure")
#: Side of the native render (px); other sizes are a resize of it.
NATIVE_SIZE = 384

_STREAM = "radiograph-b"


@dataclass(frozen=True)
class SiteLook:
    """A site's detector and display processing.

    Attributes:
        lut: ``"filmic"`` (tanh S-curve) or ``"log"``; contrast: its steepness; gamma: display gamma.
        unsharp_amount, unsharp_sigma_px: unsharp masking (native pixels).
        noise_texture: detector-noise texture; quanta: quanta per pixel at unit dose; electronic: electronic noise.
        hardening: beam-hardening factor ``h``; scatter: scatter share.
    """

    lut: str
    contrast: float
    gamma: float
    unsharp_amount: float
    unsharp_sigma_px: float
    noise_texture: str
    quanta: float
    electronic: float
    hardening: float
    scatter: float


#: The two sites' looks.
SITE_LOOKS: dict[str, SiteLook] = {
    "internal": SiteLook("filmic", 4.0, 1.0, 0.5, 4.0, "fine", 6000.0, 6.0, 0.10, 0.25),
    "external": SiteLook("log", 4.0, 0.85, 1.2, 1.5, "coarse", 3500.0, 12.0, 0.18, 0.4),
}


def _tone(x: np.ndarray, look: SiteLook) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    if look.lut == "filmic":
        y = 0.5 + 0.5 * np.tanh(look.contrast * (x - 0.5)) / math.tanh(look.contrast / 2)
    else:
        y = np.log1p(look.contrast * x) / math.log1p(look.contrast)
    return y ** look.gamma


def _collimation(rng: np.random.Generator, size: int) -> np.ndarray:
    """The exposed field: the whole image, or (70 %) a slightly rotated rectangle inside it."""
    field = np.ones((size, size), np.uint8)
    if rng.random() < 0.3:
        return field.astype(bool)
    margins = rng.uniform(0.0, 0.12, size=4) * size
    corners = np.array([[margins[0], margins[1]], [size - margins[2], margins[1]],
                        [size - margins[2], size - margins[3]], [margins[0], size - margins[3]]])
    angle = math.radians(rng.uniform(-3, 3))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = (corners - size / 2) @ rotation.T + size / 2
    field[:] = 0
    cv2.fillPoly(field, [np.rint(corners * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return field.astype(bool)


def _marker(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """A lead side letter (``L`` or ``R``) in a corner of the exposed field."""
    size = field.shape[0]
    letter = "L" if rng.random() < 0.5 else "R"
    scale, thickness = size / 220.0, max(1, size // 110)
    (width, height), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    rows, cols = np.nonzero(field)
    left = int(cols.min() + 0.04 * size) if rng.random() < 0.5 else int(cols.max() - 0.04 * size - width)
    base = int(rows.min() + 0.04 * size + height) if rng.random() < 0.5 else int(rows.max() - 0.04 * size)
    marker = np.zeros(field.shape, np.uint8)
    cv2.putText(marker, letter, (left, base), cv2.FONT_HERSHEY_DUPLEX, scale, 1, thickness, cv2.LINE_8)
    return marker.astype(bool) & field


def _window(log_signal: np.ndarray, exposed: np.ndarray, look: SiteLook) -> np.ndarray:
    """Percentile window over the anatomy (direct exposure, collimator and marker excluded), sharpening, tone.

    Like an anatomy-based exposure recognition: the window spans the body's
    log signals (above 0.25, where the beam met tissue), so air goes black.
    """
    body = exposed & (log_signal > 0.25)
    sample = log_signal[body if body.sum() > 0.01 * body.size else exposed][::2]
    low, high = (float(v) for v in np.percentile(sample, (1.0, 99.7))) if sample.size else (0.0, 1.0)
    x = (log_signal - low) / max(high - low, 1e-6)
    x = x + look.unsharp_amount * (x - lowpass(x, look.unsharp_sigma_px))
    return _tone(x, look).astype(np.float32)


def _cast(projection: LimbProjection, limb: Any, size: int, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A plaster shell 14·severity mm thick around the soft tissue, with a grainy texture (``∫μ dz``)."""
    thickness = 14.0 * severity
    shell = soft_paths(limb, size, extra_mm=thickness) - projection.soft_mm
    grain = 1.0 + 0.12 * power_law_field(rng, (size, size), 2.2)
    return (0.035 * shell * grain).astype(np.float32)


def _expose(attenuation: np.ndarray, look: SiteLook, dose: float, rng: np.random.Generator) -> np.ndarray:
    """Detector signal → log signal: hardening, scatter, collimation, marker, saturation and noise.

    Every random number comes from ``rng`` in the same order whatever the dose,
    so the exposure shift changes only what it should.
    """
    size = attenuation.shape[0]
    primary = np.exp(-attenuation / (1.0 + look.hardening * attenuation))
    signal = primary + np.float32(look.scatter) * lowpass(1.0 - primary, 0.06 * size)
    field = _collimation(rng, size)
    marker = _marker(rng, field)
    signal = np.where(field & ~marker, signal, np.float32(0.01))
    quanta = look.quanta * dose
    sigma = np.sqrt(signal / quanta + (look.electronic / quanta) ** 2)
    # The nominal dose fills 40 % of the detector's range: a 2.5× over-exposure saturates the air first.
    noisy = np.minimum(signal + detector_noise(rng, signal.shape, look.noise_texture) * sigma, 2.5 / dose)
    return _window(-np.log(np.maximum(noisy, 1e-4)).astype(np.float32), field & ~marker, look)


def _blur(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), 3.5 * s)


def _lowres(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    small = max(8, int(round(size / (1.0 + 7.0 * s))))
    reduced = cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(reduced, (size, size), interpolation=cv2.INTER_LINEAR)


def _noise(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return image + np.float32(0.15 * s) * detector_noise(rng, image.shape, "coarse")


def _grid(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    period, phase = rng.uniform(2.2, 4.5), rng.uniform(0, 2 * math.pi)
    lines = np.maximum(np.sin(2 * math.pi * np.arange(size) / period + phase), 0.0) ** 4
    pattern = np.float32(0.12 * s) * lines.astype(np.float32)
    return image + (pattern[None, :] if rng.random() < 0.5 else pattern[:, None])


#: Shifts applied to the displayed image (cast and exposure act inside the chain).
_IMAGE_SHIFTS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "blur": _blur, "lowres": _lowres, "noise": _noise, "grid": _grid,
}


def _check(body_part: str | None, index: int, site: str, size: int, shift: str | None, severity: float) -> str:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    if site not in SITES:
        raise ParameterError(f"`site` must be one of {', '.join(SITES)}; {site!r} is given.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 32 <= size <= 2048:
        raise ParameterError(f"`size` must be an integer in [32, 2048], {size!r} is given.")
    if shift is not None and shift not in SHIFTS:
        raise ParameterError(f"`shift` must be None or one of {', '.join(SHIFTS)}; {shift!r} is given.")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)) or not 0.0 <= float(severity) <= 1.0:
        raise ParameterError(f"`severity` must be a number in [0, 1], {severity!r} is given.")
    part = BODY_PARTS[int(index) % len(BODY_PARTS)] if body_part is None else body_part
    if part not in BODY_PARTS:
        raise ParameterError(f"unknown body part {part!r}; known: {', '.join(BODY_PARTS)}.")
    return part


def generate_radiograph_b(
    *,
    seed: int,
    index: int = 0,
    body_part: str | None = None,
    site: str = "internal",
    size: int = 256,
    shift: str | None = None,
    severity: float = 0.5,
) -> RadiographPhantom:
    """Family-B radiograph ``index`` of the series ``seed``; a pure function of its arguments.

    Args:
        seed: non-negative series seed.
        index: sample number; the class is ``BODY_PARTS[index % 7]`` unless ``body_part`` is given.
        body_part: one of :data:`BODY_PARTS`, or ``None``.
        site: ``"internal"`` or ``"external"`` (:data:`SITE_LOOKS`).
        size: output side in px, 32–2048 (a resize of the 384 px render).
        shift: ``None`` or one of :data:`SHIFTS`.
        severity: the shift's strength in [0, 1] (ignored, and recorded as 0, without a shift).

    Returns:
        :class:`~medlim.phantoms.radiograph.RadiographPhantom`: ``image``
        ``np.ndarray[size, size]`` float32 in [0, 1]; ``shifts`` is ``(shift,)`` or ``()``.
    """
    seed = check_seed(seed)
    part = _check(body_part, index, site, size, shift, severity)
    severity = float(severity) if shift is not None else 0.0
    anatomy_rng = rng_for(seed, _STREAM, "anatomy", int(index), part)
    limb = build_limb(part, anatomy_rng)
    projection = project_limb(limb, NATIVE_SIZE, anatomy_rng)
    attenuation = projection.bone + np.float32(MU_SOFT) * projection.soft_mm
    shift_rng = rng_for(seed, _STREAM, "shift", int(index), shift or "none")
    active = shift is not None and severity > 0.0
    if active and shift == "cast":
        attenuation = attenuation + _cast(projection, limb, NATIVE_SIZE, severity, shift_rng)
    direction = -1.0 if shift_rng.random() < 0.6 else 1.0  # under- or over-exposure
    dose = math.exp(direction * 1.2 * severity) if active and shift == "exposure" else 1.0
    image = _expose(attenuation, SITE_LOOKS[site], dose, rng_for(seed, _STREAM, "acquisition", int(index), site))
    if active and shift == "exposure":
        image = image - np.float32(direction * 0.15 * severity)  # the display's wrong brightness
    if active and shift in _IMAGE_SHIFTS:
        image = _IMAGE_SHIFTS[shift](image, severity, shift_rng)
    image = np.clip(image, 0.0, 1.0)
    if size != NATIVE_SIZE:
        interpolation = cv2.INTER_AREA if size < NATIVE_SIZE else cv2.INTER_CUBIC
        image = np.clip(cv2.resize(image, (int(size), int(size)), interpolation=interpolation), 0.0, 1.0)
    return RadiographPhantom(image=image.astype(np.float32), body_part=part, site=site,
                             shift_severity=round(severity, 6), shifts=(shift,) if shift else (), seed=seed,
                             index=int(index))


def write_radiograph_b(phantom: RadiographPhantom, out_dir: Path, *, stem: str) -> list[dict[str, Any]]:
    """Write ``out_dir/<class>/<stem>.png`` (8-bit grey) and return its manifest row.

    Returns:
        ``[{"file", "class", "site", "shift_type", "shift_severity"}]``; ``file``
        relative to ``out_dir``; ``shift_type`` empty without a shift.
    """
    relative = Path(phantom.body_part) / f"{stem}.png"
    save_png(Path(out_dir) / relative, phantom.image)
    return [{"file": relative.as_posix(), "class": phantom.body_part, "site": phantom.site,
             "shift_type": "+".join(phantom.shifts), "shift_severity": phantom.shift_severity}]


def write_radiographs_b(out_dir: Path, *, seed: int, n: int, site: str = "internal", size: int = 256,
                        shift: str | None = None, severity: float = 0.5) -> Path:
    """Write ``n`` radiographs as class folders plus ``manifest.csv``/``manifest.json``; returns the CSV's path.

    The folder opens with ``medlim.core.datasets.open_dataset(out_dir, task="ood")``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"`n` must be a positive integer, {n!r} is given.")
    rows: list[dict[str, Any]] = []
    for index in range(n):
        phantom = generate_radiograph_b(seed=seed, index=index, site=site, size=size, shift=shift, severity=severity)
        rows.extend(write_radiograph_b(phantom, out_dir, stem=f"radiograph-b_{index:05d}"))
    _, csv_path = write_manifest(rows, out_dir, kind="radiograph-b", seed=seed,
                                 params={"site": site, "size": size, "shift": shift, "severity": severity, "n": n})
    return csv_path


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("radiograph-b options")
    group.add_argument("--site", choices=SITES, default="internal", help="acquisition site (default internal)")
    group.add_argument("--size", type=int, default=256, help="image side in px (default 256)")
    group.add_argument("--body-part", choices=BODY_PARTS, default=None, help="only this class (default: all seven)")
    group.add_argument("--shift", choices=SHIFTS, default=None, help="apply this named shift")
    group.add_argument("--severity", type=float, default=0.5, help="shift severity in [0, 1] (default 0.5)")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"site": args.site, "size": int(args.size), "body_part": args.body_part, "shift": args.shift,
            "severity": float(args.severity)}, {}


#: Registry entry (``medlim phantom radiograph-b``): ``DIR/<class>/*.png`` + manifest.
KIND = PhantomKind(
    name="radiograph-b",
    summary="family B radiographs (other limb model and acquisition chain): 7 body parts, 2 sites, named shifts",
    generate=generate_radiograph_b,
    write=write_radiograph_b,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
