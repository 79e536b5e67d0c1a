"""MURA-like musculoskeletal radiograph phantoms with site shifts (thesis §4.1–4.2, ch. 5 data).

The curation chapters of the thesis use MURA (upper-extremity radiographs of
seven body parts) and external hospital data whose acquisition differs from
the internal site. These phantoms imitate both:

* anatomy: seven body-part classes (hand, finger, wrist, forearm, elbow,
  humerus, shoulder), each drawn from bone-like tubes (a hollow cortical shell
  projected along the beam, so edges are brighter than the marrow) inside
  soft tissue, with per-sample view (PA, oblique, lateral: side-by-side
  bones closer together), pose (rotation, zoom, shift), size and proportions;
* acquisition: an ``"internal"`` site style (fixed exposure, mild noise and
  blur) and four ``"external-*"`` site styles that each shift acquisition the
  way real sites do — exposure and gamma, noise, blur and lost resolution,
  collimation borders, burned-in markers, rotation and cropping, inverted
  polarity, detector artefacts (grid lines, dead columns, vignetting). Every
  external sample carries its shift severity in [0, 1] as ground truth;
* within-site variation (``variability`` in [0, 1], default 0 = none): what one
  hospital's archive spans — patient habitus and bone density, casts, plates
  and screws, positioning and zoom, dose, display processing, collimator
  shutters, lead side markers — drawn from a stream of its own.

Images are grey ``float32`` in [0, 1] at 256×256 (native); other sizes are a
resize of the native render, so content does not depend on the size.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, rng_for, save_png

__all__ = [
    "BODY_PARTS",
    "SITES",
    "EXTERNAL_STYLES",
    "RadiographPhantom",
    "generate_radiograph",
    "MAX_VARIABILITY",
    "render_anatomy",
    "apply_site_shift",
    "write_radiograph",
    "KIND",
]

#: The seven MURA-like body-part classes, in label order.
BODY_PARTS: tuple[str, ...] = ("hand", "finger", "wrist", "forearm", "elbow", "humerus", "shoulder")
#: ``--site`` choices: every sample internal, every sample external, or half and half.
SITES: tuple[str, ...] = ("internal", "external", "mixed")
#: External site styles → the shift families each one applies (scaled by severity).
EXTERNAL_STYLES: dict[str, tuple[str, ...]] = {
    "external-a": ("exposure", "noise", "markers"),
    "external-b": ("blur", "collimation", "rotation"),
    "external-c": ("inversion", "detector", "exposure"),
    "external-d": ("noise", "blur", "rotation", "markers", "detector", "collimation"),
}
NATIVE_SIZE = 256


@dataclass(frozen=True)
class RadiographPhantom:
    """One synthetic radiograph and its ground truth.

    Attributes:
        image: ``np.ndarray[H, W]`` float32 in [0, 1] (bone bright, air dark,
            unless the polarity was inverted by an external site).
        body_part: one of :data:`BODY_PARTS`.
        site: ``"internal"`` or a key of :data:`EXTERNAL_STYLES`.
        shift_severity: 0 for internal samples, in [0, 1] for external ones.
        shifts: names of the shift families applied (empty for internal).
        seed: generator seed; index: sample index.
    """

    image: np.ndarray
    body_part: str
    site: str
    shift_severity: float
    shifts: tuple[str, ...]
    seed: int
    index: int

    @property
    def label(self) -> int:
        """Class index of :attr:`body_part` in :data:`BODY_PARTS`."""
        return BODY_PARTS.index(self.body_part)


# ---------------------------------------------------------------- anatomy (projected tubes)
class _Film:
    """Accumulates projected thickness of soft tissue and bone on a grid."""

    def __init__(self, size: int, *, margin: float = 0.0) -> None:
        # the grid covers [-margin, 1 + margin]², so a later pose change finds tissue beyond the frame
        self.size = size
        self.offset = int(round(margin * size))
        total = size + 2 * self.offset
        coords = (np.arange(total, dtype=np.float32) + 0.5 - self.offset) / size
        self.x, self.y = np.meshgrid(coords, coords)
        self.soft = np.zeros((total, total), np.float32)
        self.bone = np.zeros((total, total), np.float32)

    def _window(self, a: tuple[float, float], b: tuple[float, float], radius: float) -> tuple[slice, slice] | None:
        # only pixels within the capsule's bounding box can be touched
        n, s, o = self.x.shape[0], self.size, self.offset
        x0 = max(0, int(math.floor((min(a[0], b[0]) - radius) * s)) + o)
        x1 = min(n, int(math.ceil((max(a[0], b[0]) + radius) * s)) + o + 1)
        y0 = max(0, int(math.floor((min(a[1], b[1]) - radius) * s)) + o)
        y1 = min(n, int(math.ceil((max(a[1], b[1]) + radius) * s)) + o + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0, y1), slice(x0, x1)

    def _distance(self, a: tuple[float, float], b: tuple[float, float], window: tuple[slice, slice]) -> np.ndarray:
        x, y = self.x[window], self.y[window]
        ax, ay = a
        bx, by = b
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        if length2 < 1e-12:
            return np.hypot(x - ax, y - ay)
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / length2, 0.0, 1.0)
        return np.hypot(x - (ax + t * dx), y - (ay + t * dy))

    @staticmethod
    def _chord(distance: np.ndarray, radius: float) -> np.ndarray:
        # Path length of a ray through a cylinder of this radius at this offset.
        return 2.0 * np.sqrt(np.clip(radius * radius - distance * distance, 0.0, None))

    def tissue(self, a: tuple[float, float], b: tuple[float, float], radius: float) -> None:
        window = self._window(a, b, radius)
        if window is not None:
            self.soft[window] = np.maximum(self.soft[window], self._chord(self._distance(a, b, window), radius))

    def bone_tube(self, a: tuple[float, float], b: tuple[float, float], radius: float, *, marrow: float = 0.6) -> None:
        window = self._window(a, b, radius)
        if window is None:
            return
        d = self._distance(a, b, window)
        # hollow shell: cortex bright at the edges, marrow darker in the middle
        shell = self._chord(d, radius) - 0.75 * self._chord(d, marrow * radius)
        self.bone[window] = np.maximum(self.bone[window], shell)

    def bone_blob(self, centre: tuple[float, float], radius: float, *, stretch: float = 1.0, angle: float = 0.0) -> None:
        c, s = math.cos(angle), math.sin(angle)
        a = (centre[0] - c * radius * (stretch - 1.0), centre[1] - s * radius * (stretch - 1.0))
        b = (centre[0] + c * radius * (stretch - 1.0), centre[1] + s * radius * (stretch - 1.0))
        self.bone_tube(a, b, radius, marrow=0.5)


def _polar(origin: tuple[float, float], angle: float, length: float) -> tuple[float, float]:
    return (origin[0] + length * math.cos(angle), origin[1] + length * math.sin(angle))


def _finger_ray(film: _Film, base: tuple[float, float], angle: float, lengths: tuple[float, ...],
                radius: float, *, gap: float, tissue: float) -> tuple[float, float]:
    """Draw consecutive phalanges from ``base`` along ``angle``; return the tip."""
    point = base
    start = base
    for k, length in enumerate(lengths):
        end = _polar(point, angle, length)
        film.bone_tube(_polar(point, angle, gap), _polar(end, angle, -gap), radius * (1.0 - 0.12 * k))
        point = end
    film.tissue(start, _polar(point, angle, tissue * 0.3), radius + tissue)
    return point


def _view_spread(rng: np.random.Generator) -> float:
    # PA, oblique or lateral view: how far side-by-side bones are apart
    return float(rng.choice((1.0, 0.55, 0.2), p=(0.5, 0.25, 0.25)))


def _draw_hand(film: _Film, rng: np.random.Generator) -> None:
    wrist = (0.5 + rng.uniform(-0.04, 0.04), 0.93)
    up = -math.pi / 2 + rng.uniform(-0.12, 0.12)
    scale = rng.uniform(0.85, 1.05)
    spread = _view_spread(rng)
    r = 0.016 * scale
    film.tissue(wrist, _polar(wrist, up, 0.34 * scale), (0.06 + 0.09 * spread) * scale)
    fan = rng.uniform(0.14, 0.24) * spread
    for k in range(4):
        offset = (k - 1.5) * 0.055 * scale * spread
        base = (wrist[0] + offset, wrist[1] - 0.14 * scale)
        angle = up + (k - 1.5) * fan * 0.5
        film.bone_tube(_polar(base, angle, 0.0), _polar(base, angle, 0.2 * scale), r * 1.1)  # metacarpal
        tip_base = _polar(base, angle, 0.215 * scale)
        lengths = tuple(v * scale * rng.uniform(0.9, 1.1) for v in (0.13, 0.08, 0.055))
        _finger_ray(film, tip_base, angle, lengths, r, gap=0.008, tissue=0.025 * scale)
    thumb_base = (wrist[0] - (0.05 + 0.08 * spread) * scale, wrist[1] - 0.12 * scale)
    thumb_angle = up - rng.uniform(0.6, 0.9)
    film.bone_tube(thumb_base, _polar(thumb_base, thumb_angle, 0.12 * scale), r * 1.15)
    _finger_ray(film, _polar(thumb_base, thumb_angle, 0.135 * scale), thumb_angle,
                (0.09 * scale, 0.06 * scale), r * 1.1, gap=0.008, tissue=0.03 * scale)
    for k in range(6):  # a few carpals at the bottom edge
        film.bone_blob((wrist[0] + (k % 3 - 1) * 0.045 * scale * spread, wrist[1] - 0.03 - (k // 3) * 0.045 * scale),
                       0.02 * scale)


def _draw_finger(film: _Film, rng: np.random.Generator) -> None:
    angle = -math.pi / 2 + rng.uniform(-0.25, 0.25)
    scale = rng.uniform(0.85, 1.1)
    base = (0.5 + rng.uniform(-0.06, 0.06), 0.97)
    lengths = tuple(v * scale * rng.uniform(0.9, 1.1) for v in (0.36, 0.22, 0.15))
    tip = _finger_ray(film, base, angle, lengths, 0.055 * scale, gap=0.02 * scale, tissue=0.06 * scale)
    film.tissue(base, tip, 0.1 * scale)


def _draw_wrist(film: _Film, rng: np.random.Generator) -> None:
    scale = rng.uniform(0.85, 1.05)
    cx = 0.5 + rng.uniform(-0.05, 0.05)
    tilt = rng.uniform(-0.15, 0.15)
    down = math.pi / 2 + tilt
    spread = _view_spread(rng)
    film.tissue((cx, 1.05), (cx + 0.3 * math.sin(-tilt), -0.05), (0.18 + 0.12 * spread) * scale)
    radius_top = (cx - 0.08 * scale * spread, 0.58)
    ulna_top = (cx + 0.09 * scale * spread, 0.61)
    film.bone_tube(radius_top, _polar(radius_top, down, 0.5), 0.055 * scale)
    film.bone_tube(ulna_top, _polar(ulna_top, down, 0.5), 0.035 * scale)
    for row in range(2):  # proximal and distal carpal rows
        for k in range(4):
            film.bone_blob((cx + (k - 1.5) * 0.065 * scale * (0.4 + 0.6 * spread), 0.5 - row * 0.075 * scale),
                           0.03 * scale * rng.uniform(0.85, 1.15), stretch=1.2, angle=rng.uniform(0, math.pi))
    for k in range(4):
        base = (cx + (k - 1.5) * 0.06 * scale * spread, 0.37 - 0.02 * scale)
        film.bone_tube(base, _polar(base, -math.pi / 2 + (k - 1.5) * 0.1, 0.4), 0.022 * scale)


def _draw_forearm(film: _Film, rng: np.random.Generator) -> None:
    angle = math.pi / 2 + rng.uniform(-0.3, 0.3)
    scale = rng.uniform(0.85, 1.1)
    centre = (0.5 + rng.uniform(-0.05, 0.05), 0.5)
    normal = angle + math.pi / 2
    a = _polar(centre, angle, -0.62)
    b = _polar(centre, angle, 0.62)
    film.tissue(a, b, 0.26 * scale)
    spread = rng.uniform(0.07, 0.1) * scale * _view_spread(rng)
    for side, r in ((-1, 0.042), (1, 0.036)):
        shift_a = _polar(a, normal, side * spread)
        shift_b = _polar(b, normal, side * spread * 0.8)
        film.bone_tube(_polar(shift_a, angle, 0.12), _polar(shift_b, angle, -0.12), r * scale)


def _draw_elbow(film: _Film, rng: np.random.Generator) -> None:
    scale = rng.uniform(0.85, 1.05)
    joint = (0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.05))
    upper = -math.pi / 2 + rng.uniform(-0.3, 0.3)
    bend = rng.uniform(0.9, 2.0)  # elbow flexion angle between the segments
    lower = upper + math.pi - bend
    shaft_top = _polar(joint, upper, 0.62)
    film.tissue(joint, shaft_top, 0.2 * scale)
    film.tissue(joint, _polar(joint, lower, 0.62), 0.17 * scale)
    film.bone_tube(_polar(joint, upper, 0.06), shaft_top, 0.05 * scale)
    normal = upper + math.pi / 2
    for side in (-1, 1):  # condyles
        film.bone_blob(_polar(_polar(joint, upper, 0.055), normal, side * 0.05 * scale), 0.045 * scale)
    for side, r in ((-1, 0.035), (1, 0.03)):
        start = _polar(_polar(joint, lower, 0.09), lower + math.pi / 2, side * 0.035 * scale)
        film.bone_tube(start, _polar(start, lower, 0.6), r * scale)
    film.bone_blob(_polar(joint, lower, 0.05), 0.035 * scale)  # olecranon


def _draw_humerus(film: _Film, rng: np.random.Generator) -> None:
    angle = math.pi / 2 + rng.uniform(-0.25, 0.25)
    scale = rng.uniform(0.85, 1.05)
    centre = (0.5 + rng.uniform(-0.05, 0.05), 0.5)
    top = _polar(centre, angle, -0.36)
    bottom = _polar(centre, angle, 0.36)
    film.tissue(_polar(top, angle, -0.2), _polar(bottom, angle, 0.2), 0.24 * scale)
    film.bone_tube(top, bottom, 0.05 * scale, marrow=0.55)
    film.bone_blob(_polar(top, angle, -0.03), 0.1 * scale)  # humeral head
    normal = angle + math.pi / 2
    for side in (-1, 1):
        film.bone_blob(_polar(_polar(bottom, angle, 0.02), normal, side * 0.045 * scale), 0.045 * scale)


def _draw_shoulder(film: _Film, rng: np.random.Generator) -> None:
    scale = rng.uniform(0.85, 1.05)
    head = (0.52 + rng.uniform(-0.05, 0.05), 0.42 + rng.uniform(-0.05, 0.05))
    film.tissue((-0.1, 0.45), (1.1, 0.5), 0.5)
    arm = math.pi / 2 + rng.uniform(-0.35, 0.1)
    film.bone_blob(head, 0.11 * scale)
    film.bone_tube(head, _polar(head, arm, 0.7), 0.055 * scale)
    glenoid = (head[0] - 0.14 * scale, head[1])
    film.bone_blob(glenoid, 0.04 * scale, stretch=1.8, angle=math.pi / 2)
    # scapula blade: a fan of thin plates toward the far edge
    for k in range(4):
        film.bone_tube(glenoid, (glenoid[0] - 0.35, glenoid[1] + (k - 0.5) * 0.12), 0.018 * scale, marrow=0.3)
    clavicle_y = head[1] - 0.2 * scale
    film.bone_tube((head[0] + 0.05, clavicle_y + 0.03), (-0.1, clavicle_y - rng.uniform(0.0, 0.08)), 0.03 * scale)
    for k in range(3):  # rib arcs
        y = head[1] + 0.1 + 0.14 * k
        film.bone_tube((-0.05, y), (head[0] - 0.2, y + 0.08), 0.012, marrow=0.3)


_DRAW = {
    "hand": _draw_hand,
    "finger": _draw_finger,
    "wrist": _draw_wrist,
    "forearm": _draw_forearm,
    "elbow": _draw_elbow,
    "humerus": _draw_humerus,
    "shoulder": _draw_shoulder,
}


# ---------------------------------------------------------------- within-site variation
#: Largest ``variability``; 1 is the spread of one hospital's archive as modelled below.
MAX_VARIABILITY = 1.0


def _check_variability(variability: float) -> float:
    if isinstance(variability, bool) or not isinstance(variability, (int, float, np.floating)) \
            or not 0.0 <= float(variability) <= MAX_VARIABILITY:
        raise ParameterError(f"`variability` must be a number in [0, {MAX_VARIABILITY}], {variability!r} is given.")
    return float(variability)


def _cast(film: _Film, rng: np.random.Generator) -> np.ndarray:
    """Projected thickness of a plaster or fibreglass cast around a stretch of the limb."""
    import cv2

    from medlim.phantoms.base import smooth_noise

    limb = (film.soft > 0).astype(np.uint8)
    if not limb.any():
        return np.zeros_like(film.soft)
    pad = max(1, int(round(0.035 * film.size)))
    shell = cv2.dilate(limb, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1, 2 * pad + 1)))
    # the cast covers a band across the limb: positions along a random axis within a window
    theta = rng.uniform(0.0, math.pi)
    along = film.x * math.cos(theta) + film.y * math.sin(theta)
    ys, xs = np.nonzero(limb)
    pick = int(rng.integers(0, len(ys)))
    middle = along[ys[pick], xs[pick]]
    half = rng.uniform(0.15, 0.35)
    band = (np.abs(along - middle) < half).astype(np.float32)
    cast = cv2.GaussianBlur(shell.astype(np.float32) * band, (0, 0), 0.012 * film.size)
    texture = 1.0 + 0.05 * smooth_noise(rng, cast.shape, 0.008 * film.size, dtype=np.float32)  # plaster grain
    return (rng.uniform(0.5, 1.1) * cast * texture).astype(np.float32)


def _hardware(film: _Film, rng: np.random.Generator) -> np.ndarray:
    """Projected thickness of a fixation plate with screws along a bone (metal, near-opaque)."""
    metal = np.zeros_like(film.bone)
    ys, xs = np.nonzero(film.bone > 0.5 * float(film.bone.max()))
    if len(ys) < 3:
        return metal
    pick = int(rng.integers(0, len(ys)))
    centre = (float(film.x[ys[pick], xs[pick]]), float(film.y[ys[pick], xs[pick]]))
    # local bone direction: principal axis of the bone pixels around the chosen point
    px, py = film.x[ys, xs], film.y[ys, xs]
    near = np.hypot(px - centre[0], py - centre[1]) < 0.12
    cov = np.cov(np.stack([px[near], py[near]])) if int(near.sum()) > 2 else np.eye(2)
    _, vectors = np.linalg.eigh(cov)
    angle = math.atan2(float(vectors[1, 1]), float(vectors[0, 1]))
    half = rng.uniform(0.07, 0.14)
    a, b = _polar(centre, angle, -half), _polar(centre, angle, half)
    window = film._window(a, b, 0.06)
    if window is None:
        return metal
    width = rng.uniform(0.008, 0.013)
    metal[window] = np.where(film._distance(a, b, window) < width, 1.0, 0.0)
    for t in np.linspace(-0.8, 0.8, int(rng.integers(3, 7))):
        screw = _polar(centre, angle, t * half)
        length = rng.uniform(0.03, 0.05)
        end_a = _polar(screw, angle + math.pi / 2, -length)
        end_b = _polar(screw, angle + math.pi / 2, length)
        metal[window] = np.maximum(metal[window], np.where(film._distance(end_a, end_b, window) < 0.004, 1.0, 0.0))
    return metal


def _varied_attenuation(film: _Film, v: float, rng: np.random.Generator) -> np.ndarray:
    """Attenuation with patient and treatment variation (draw order fixed, scaled by ``v``).

    Soft-tissue thickness (habitus, age) × lognormal σ 0.3·v; bone density
    (age, osteopenia) × lognormal σ 0.2·v; a cast with probability 0.15·v;
    a plate with screws with probability 0.08·v.
    """
    soft_gain = float(np.clip(math.exp(rng.normal(0.0, 0.3 * v)), 0.5, 2.0))
    bone_gain = float(np.clip(math.exp(rng.normal(0.0, 0.2 * v)), 0.6, 1.5))
    attenuation = 2.2 * soft_gain * film.soft + 9.0 * bone_gain * film.bone
    if rng.random() < 0.15 * v:
        attenuation = attenuation + _cast(film, rng)
    if rng.random() < 0.08 * v:
        attenuation = attenuation + 12.0 * _hardware(film, rng)
    return attenuation.astype(np.float32)


def _varied_pose(pose: np.ndarray, size: int, v: float, rng: np.random.Generator) -> np.ndarray:
    """Extra positioning spread: rotation σ 12°·v, zoom lognormal σ 0.12·v, shift σ 4 %·v of the side."""
    import cv2

    extra = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.normal(0.0, 12.0 * v)),
                                    float(np.clip(math.exp(rng.normal(0.0, 0.12 * v)), 0.7, 1.4)))
    extra[:, 2] += rng.normal(0.0, 0.04 * v, 2) * size
    return extra[:, :2] @ pose + np.concatenate([np.zeros((2, 2)), extra[:, 2:]], axis=1)


def _varied_acquisition(image: np.ndarray, v: float, rng: np.random.Generator) -> np.ndarray:
    """Dose, processing and framing within one site (scaled by ``v``).

    Extra quantum noise σ uniform in [0, 0.015·v]; display processing gamma
    lognormal σ 0.25·v, gain lognormal σ 0.12·v, offset σ 0.04·v; collimator
    shutters on some sides with probability 0.3·v (up to 8 % of the side); a
    lead side marker (L/R) with probability 0.6·v.
    """
    import cv2

    size = image.shape[0]
    out = image + rng.normal(0.0, 1.0, image.shape).astype(np.float32) * float(rng.uniform(0.0, 0.015 * v))
    gamma = math.exp(rng.normal(0.0, 0.25 * v))
    gain = math.exp(rng.normal(0.0, 0.12 * v))
    offset = rng.normal(0.0, 0.04 * v)
    out = np.clip(gain * np.power(np.clip(out, 0.0, 1.0), gamma) + offset, 0.0, 1.0).astype(np.float32)
    if rng.random() < 0.3 * v:
        value = 0.02 if rng.random() < 0.7 else 0.9
        for side in range(4):
            width = int(round(rng.uniform(0.0, 0.08) * size)) if rng.random() < 0.5 else 0
            if width > 0:
                region = (slice(0, width), slice(None)), (slice(size - width, size), slice(None)), \
                    (slice(None), slice(0, width)), (slice(None), slice(size - width, size))
                out[region[side]] = value
    if rng.random() < 0.6 * v:
        ink = np.zeros(out.shape, np.uint8)
        scale = rng.uniform(0.5, 0.8) * size / NATIVE_SIZE
        corner_x = rng.uniform(0.04, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 0.9)
        corner_y = rng.uniform(0.1, 0.2) if rng.random() < 0.5 else rng.uniform(0.85, 0.95)
        cv2.putText(ink, str(rng.choice(("L", "R"))), (int(corner_x * size), int(corner_y * size)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, 255, max(1, int(round(2 * scale))), cv2.LINE_AA)
        alpha = ink.astype(np.float32) / 255.0
        out = out * (1.0 - alpha) + 0.95 * alpha
    return out


def render_anatomy(
    body_part: str,
    rng: np.random.Generator,
    *,
    size: int = NATIVE_SIZE,
    variability: float = 0.0,
    variation_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Internal-site radiograph of one body part.

    Args:
        body_part: one of :data:`BODY_PARTS`.
        rng: random stream for pose, size and proportions.
        size: side in pixels of the square render.
        variability: within-site variation in [0, 1] (see
            :func:`generate_radiograph`); 0 renders exactly as without it.
        variation_rng: random stream of that variation (required when
            ``variability > 0``; ``rng`` is consumed the same either way).

    Returns:
        ``np.ndarray[size, size]`` float32 in [0, 1]; bone bright, air dark.
    """
    import cv2

    if body_part not in _DRAW:
        raise ParameterError(f"unknown body part {body_part!r}; known: {', '.join(BODY_PARTS)}.")
    vary = _check_variability(variability) > 0.0
    if vary and variation_rng is None:
        raise ParameterError("`variation_rng` is required when `variability` > 0.")
    film = _Film(size, margin=0.25)
    _DRAW[body_part](film, rng)
    flip = rng.random() < 0.5
    if vary:
        attenuation = _varied_attenuation(film, float(variability), variation_rng)
    else:
        attenuation = 2.2 * film.soft + 9.0 * film.bone
    # positioning differs from patient to patient: rotation, zoom, shift (air outside)
    centre = film.offset + size / 2
    pose = cv2.getRotationMatrix2D((centre, centre), float(rng.uniform(-20.0, 20.0)), float(rng.uniform(0.85, 1.2)))
    pose[:, 2] += rng.uniform(-0.06, 0.06, 2) * size - film.offset  # then crop the frame
    if vary:
        pose = _varied_pose(pose, size, float(variability), variation_rng)
    attenuation = cv2.warpAffine(attenuation.astype(np.float32), pose, (size, size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    image = 0.04 + 0.9 * (1.0 - np.exp(-attenuation))
    image = image[:, ::-1] if flip else image
    # internal site: a fixed, clean acquisition (varied within the site when asked)
    sigma = 0.6 if not vary else 0.6 + float(variation_rng.uniform(0.0, 0.6)) * variability
    image = cv2.GaussianBlur(np.ascontiguousarray(image, dtype=np.float32), (0, 0), sigma * size / NATIVE_SIZE)
    image = image + rng.normal(0.0, 0.012, image.shape).astype(np.float32)
    if vary:
        image = _varied_acquisition(image, float(variability), variation_rng)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------- external site shifts
def _shift_exposure(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    gamma = math.exp(rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.0) * 0.9 * s)
    gain = 1.0 + rng.uniform(-0.35, 0.2) * s
    offset = rng.uniform(-0.05, 0.15) * s
    return np.clip(gain * np.power(np.clip(image, 0.0, 1.0), gamma) + offset, 0.0, 1.0)


def _shift_noise(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    sigma = 0.01 + 0.09 * s
    # signal-dependent (quantum-like) plus electronic noise
    noisy = image + rng.normal(0.0, 1.0, image.shape) * sigma * np.sqrt(0.3 + image)
    return np.clip(noisy, 0.0, 1.0)


def _shift_blur(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = image.shape[0]
    factor = 1.0 + 5.0 * s * rng.uniform(0.6, 1.0)
    small = max(8, int(round(size / factor)))
    low = cv2.resize(image.astype(np.float32), (small, small), interpolation=cv2.INTER_AREA)
    back = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(back, (0, 0), 0.3 + 2.0 * s * size / NATIVE_SIZE)


def _shift_collimation(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    out = image.copy()
    value = rng.choice((0.02, 0.95))
    for side in range(4):
        width = int(round(size * rng.uniform(0.05, 0.25) * s))
        if width <= 0:
            continue
        if side == 0:
            out[:width] = value
        elif side == 1:
            out[-width:] = value
        elif side == 2:
            out[:, :width] = value
        else:
            out[:, -width:] = value
    return out


def _shift_markers(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = image.shape[0]
    out = np.ascontiguousarray(image.astype(np.float32))
    ink = np.zeros(out.shape, np.uint8)  # OpenCV draws text on 8-bit images only
    count = 1 + int(round(3 * s))
    for _ in range(count):
        text = str(rng.choice(("L", "R", "AP", "PA", "LAT", "OBL", "#2")))
        scale = (0.6 + 1.6 * s * rng.random()) * size / NATIVE_SIZE
        x = int(rng.uniform(0.02, 0.75) * size)
        y = int(rng.uniform(0.1, 0.95) * size)
        if rng.random() < 0.5:  # a lead-marker box behind the letters
            cv2.rectangle(out, (x - 3, y - int(22 * scale)), (x + int(26 * scale * len(text)), y + 4), 0.0, -1)
        cv2.putText(ink, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                    max(1, int(round(2 * scale))), cv2.LINE_AA)
    alpha = ink.astype(np.float32) / 255.0
    return out * (1.0 - alpha) + alpha


def _shift_rotation(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = image.shape[0]
    angle = rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 1.0) * 60.0 * s
    zoom = 1.0 + rng.uniform(0.0, 0.6) * s
    centre = (size / 2 + rng.uniform(-0.15, 0.15) * s * size, size / 2 + rng.uniform(-0.15, 0.15) * s * size)
    matrix = cv2.getRotationMatrix2D(centre, float(angle), float(zoom))
    return cv2.warpAffine(image.astype(np.float32), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=float(image.min()))


def _shift_inversion(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    # a MONOCHROME1-style polarity mistake, partially blended at low severity
    weight = min(1.0, 0.25 + s)
    return (1.0 - weight) * image + weight * (1.0 - image)


def _shift_detector(image: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    period = rng.uniform(3.0, 6.0) * size / NATIVE_SIZE
    grid = 0.08 * s * np.sin(2 * np.pi * (x if rng.random() < 0.5 else y) * size / period)
    vignette = 1.0 - 0.5 * s * ((x - 0.5) ** 2 + (y - 0.5) ** 2) * 2.0
    out = image * vignette + grid
    for _ in range(int(round(4 * s))):  # dead or hot detector lines
        col = int(rng.integers(0, size))
        out[:, col : col + max(1, size // 128)] = rng.choice((0.0, 1.0))
    return np.clip(out, 0.0, 1.0)


_SHIFTS = {
    "exposure": _shift_exposure,
    "noise": _shift_noise,
    "blur": _shift_blur,
    "collimation": _shift_collimation,
    "markers": _shift_markers,
    "rotation": _shift_rotation,
    "inversion": _shift_inversion,
    "detector": _shift_detector,
}
# geometric and physical shifts first, display-level ones (markers, inversion) last
_ORDER = ("rotation", "blur", "exposure", "detector", "noise", "collimation", "markers", "inversion")


def apply_site_shift(image: np.ndarray, style: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Apply an external site style at a given severity.

    Args:
        image: ``np.ndarray[H, W]`` float in [0, 1] (an internal render).
        style: a key of :data:`EXTERNAL_STYLES`.
        severity: in [0, 1]; 0 leaves almost nothing changed, 1 is the strongest shift.
        rng: random stream for the shift parameters.

    Returns:
        ``np.ndarray[H, W]`` float32 in [0, 1].
    """
    if style not in EXTERNAL_STYLES:
        raise ParameterError(f"unknown external style {style!r}; known: {', '.join(EXTERNAL_STYLES)}.")
    if not 0.0 <= float(severity) <= 1.0:
        raise ParameterError(f"`severity` must be in [0, 1], {severity!r} is given.")
    families = EXTERNAL_STYLES[style]
    out = np.asarray(image, dtype=np.float32)
    for name in _ORDER:
        if name in families:
            out = _SHIFTS[name](out, float(severity), rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def generate_radiograph(
    *,
    seed: int,
    index: int = 0,
    site: str = "internal",
    body_part: str | None = None,
    size: int = NATIVE_SIZE,
    variability: float = 0.0,
) -> RadiographPhantom:
    """One radiograph phantom; a pure function of its arguments.

    Args:
        seed: non-negative series seed.
        index: sample index; the class is ``BODY_PARTS[index % 7]`` unless
            ``body_part`` fixes it (so any ``n`` gives balanced classes).
        site: ``"internal"``, ``"external"`` (a random external style, severity
            uniform in [0, 1]) or ``"mixed"`` (each sample internal or external
            with probability 1/2).
        body_part: force one class.
        size: output side in pixels (a resize of the 256×256 native render).
        variability: within-site variation in [0, 1]. 0 (default) is the
            fixed internal acquisition (images unchanged from earlier
            releases). 1 is this module's model of one real hospital's
            archive: patient habitus and bone density, casts (15 %), plates
            and screws (8 %), wider positioning and zoom, dose, display
            processing (gamma, gain, offset), collimator shutters (30 %) and
            lead side markers (60 %); values between scale the spreads and
            probabilities. Drawn from its own stream, so the anatomy and the
            site shift of a sample do not change with it.

    Returns:
        :class:`RadiographPhantom`.
    """
    import cv2

    seed = check_seed(seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    if site not in SITES:
        raise ParameterError(f"`site` must be one of {SITES}, {site!r} is given.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 4096:
        raise ParameterError(f"`size` must be an integer in [16, 4096], {size!r} is given.")
    part = BODY_PARTS[int(index) % len(BODY_PARTS)] if body_part is None else body_part
    if part not in BODY_PARTS:
        raise ParameterError(f"unknown body part {part!r}; known: {', '.join(BODY_PARTS)}.")
    variability = _check_variability(variability)
    rng = rng_for(seed, "radiograph", int(index), part)
    variation_rng = rng_for(seed, "radiograph-variability", int(index), part) if variability > 0 else None
    image = render_anatomy(part, rng, size=NATIVE_SIZE, variability=variability, variation_rng=variation_rng)
    site_rng = rng_for(seed, "radiograph-site", int(index))
    external = site == "external" or (site == "mixed" and site_rng.random() < 0.5)
    style, severity, shifts = "internal", 0.0, ()
    if external:
        style = str(site_rng.choice(sorted(EXTERNAL_STYLES)))
        severity = float(site_rng.uniform(0.0, 1.0))
        shifts = EXTERNAL_STYLES[style]
        image = apply_site_shift(image, style, severity, site_rng)
    if size != NATIVE_SIZE:
        interp = cv2.INTER_AREA if size < NATIVE_SIZE else cv2.INTER_CUBIC
        image = np.clip(cv2.resize(image, (int(size), int(size)), interpolation=interp), 0.0, 1.0)
    return RadiographPhantom(image=image.astype(np.float32), body_part=part, site=style,
                             shift_severity=round(severity, 6), shifts=tuple(shifts), seed=seed, index=int(index))


def write_radiograph(phantom: RadiographPhantom, out_dir: Path, *, stem: str) -> list[dict[str, Any]]:
    """Write ``out_dir/<class>/<stem>.png`` (8-bit grey) and return its manifest row.

    Returns:
        ``[{"file", "class", "site", "shift_severity", "shifts"}]``; ``file`` is
        relative to ``out_dir``.
    """
    relative = Path(phantom.body_part) / f"{stem}.png"
    save_png(Path(out_dir) / relative, phantom.image)
    return [{
        "file": relative.as_posix(),
        "class": phantom.body_part,
        "site": phantom.site,
        "shift_severity": phantom.shift_severity,
        "shifts": "+".join(phantom.shifts),
    }]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", choices=SITES, default="internal",
                        help="acquisition site style: internal, external (shifted) or mixed (default internal)")
    parser.add_argument("--size", type=int, default=NATIVE_SIZE, help="image side in px (default 256, native)")
    parser.add_argument("--body-part", choices=BODY_PARTS, default=None, help="only this class (default: all seven)")
    parser.add_argument("--variability", type=float, default=0.0,
                        help="within-site variation in [0, 1] (patients, casts, hardware, positioning, "
                             "processing, markers; 1 = one real hospital's spread; default 0 = fixed acquisition)")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"site": args.site, "size": int(args.size), "body_part": args.body_part,
            "variability": float(args.variability)}, {}


#: Registry entry (``medlim phantom radiograph``): ``DIR/<class>/*.png`` + manifest.
KIND = PhantomKind(
    name="radiograph",
    summary="MURA-like radiographs of 7 body parts, internal or external-site styles with shift severity",
    generate=generate_radiograph,
    write=write_radiograph,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
