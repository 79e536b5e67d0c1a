"""Projected limb anatomy of phantom family B (radiographs of seven upper-extremity parts).

Bones are polylines with a radius at each vertex — tapered cylinders with
rounded ends, unioned (per bone, by maximum) — or ellipsoids (carpal bones,
humeral head, condyles); each has a cortical shell of a given share of its
radius around a medullary cavity. A ray at distance ``d`` from a bone's axis
crosses the outer cylinder along ``2√(r² − d²)`` and the cavity along
``2√(r_i² − d²)``, so the cortex shows as two bright lines along the shaft.
Soft tissue is a union of tubes whose cross-section is a superellipse
(chord ``2R(1 − |d/R|^p)^{1/p}``, p 2.5–4, flatter than a cylinder). Joints are
gaps of 1.5–4 mm between bone ends. Coordinates are millimetres in a field of
view chosen per body part; a pose (rotation, zoom, shift, mirror) is applied
before projection. Attenuation coefficients are those of ~50 keV photons
(cortical bone 0.065 mm⁻¹, fatty marrow with sparse trabeculae 0.016 mm⁻¹, soft tissue 0.022 mm⁻¹).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medlim.phantoms.family_b.fields import power_law_field

__all__ = ["FIELDS_MM", "Bone", "Blob", "Limb", "build_limb", "project_limb", "soft_paths", "LimbProjection"]

#: Field of view (mm, square) per body part.
FIELDS_MM: dict[str, float] = {
    "hand": 220.0, "finger": 90.0, "wrist": 120.0, "forearm": 330.0,
    "elbow": 210.0, "humerus": 380.0, "shoulder": 280.0,
}

MU_CORTEX, MU_MARROW, MU_SOFT = 0.065, 0.016, 0.022


@dataclass(frozen=True)
class Bone:
    """A long or short bone: ``points`` ``np.ndarray[K, 2]`` (x, y mm), ``radii`` ``np.ndarray[K]`` mm,
    ``cortex`` the cortical share of the radius, ``density`` a mineral factor."""

    points: np.ndarray
    radii: np.ndarray
    cortex: float
    density: float = 1.0


@dataclass(frozen=True)
class Blob:
    """An ellipsoid bone: centre (mm), in-plane semi-axes ``a``, ``b`` (mm), ``angle`` (rad),
    depth semi-axis ``c`` (mm), cortical share and mineral factor."""

    centre: tuple[float, float]
    a: float
    b: float
    angle: float
    c: float
    cortex: float
    density: float = 1.0


@dataclass(frozen=True)
class Tube:
    """A soft-tissue tube: ``points`` ``np.ndarray[K, 2]`` (mm), in-plane half-widths ``radii``
    ``np.ndarray[K]`` (mm) and ``depth``, the half-thickness along the beam as a share of the half-width."""

    points: np.ndarray
    radii: np.ndarray
    depth: float = 1.0


@dataclass(frozen=True)
class Limb:
    """Everything of one body part: bones, blobs, soft-tissue tubes,
    the superellipse exponent of the tubes, and the field of view (mm)."""

    bones: tuple[Bone, ...]
    blobs: tuple[Blob, ...]
    tubes: tuple[Tube, ...]
    tube_power: float
    field_mm: float


def _line(rng: np.random.Generator, start: tuple[float, float], angle: float, length: float,
          r_ends: tuple[float, float], r_shaft: float, cortex: float = 0.3) -> Bone:
    """A long bone from ``start`` along ``angle`` (rad, 0 = +y): flared ends, a slight bow."""
    direction = np.array([math.sin(angle), math.cos(angle)])
    normal = np.array([direction[1], -direction[0]])
    t = np.array([0.0, 0.12, 0.5, 0.88, 1.0])
    bow = rng.normal(0.0, 0.015) * length * np.sin(np.pi * t)
    points = np.asarray(start) + np.outer(t * length, direction) + np.outer(bow, normal)
    radii = np.array([r_ends[0], r_shaft * 1.05, r_shaft, r_shaft * 1.05, r_ends[1]])
    return Bone(points, radii, cortex * rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15))


def _end(bone: Bone, gap: float) -> tuple[float, float]:
    """The point ``gap`` mm beyond the bone's far end, along its last segment."""
    tip, before = bone.points[-1], bone.points[-2]
    direction = (tip - before) / np.linalg.norm(tip - before)
    return tuple(tip + direction * (gap + bone.radii[-1]))


def _ray(rng: np.random.Generator, base: tuple[float, float], angle: float, lengths: tuple[float, ...],
         radius: float, bend: float) -> list[Bone]:
    """A finger ray: bones end to end with joint gaps, each a little narrower and bent by ``bend``."""
    bones, start = [], base
    for number, length in enumerate(lengths):
        r = radius * (0.82 ** number)
        bone = _line(rng, start, angle + number * bend, length * rng.uniform(0.92, 1.08), (1.3 * r, 1.25 * r), r)
        bones.append(bone)
        start = _end(bone, rng.uniform(1.5, 2.8) + 1.3 * radius * 0.82 ** (number + 1))  # past the next cap
    return bones


def _tube(points: list[tuple[float, float]], radii: list[float], depth: float = 1.0) -> Tube:
    return Tube(np.asarray(points, dtype=float), np.asarray(radii, dtype=float), depth)


def _carpals(rng: np.random.Generator, centre: tuple[float, float], size: float) -> list[Blob]:
    """Eight carpal bones in two rows of four."""
    blobs = []
    for row, y in enumerate((-0.55, 0.55)):
        for column in range(4):
            x = (column - 1.5) * 0.95 + rng.normal(0, 0.08)
            blobs.append(Blob((centre[0] + x * size, centre[1] + (y + rng.normal(0, 0.08)) * size),
                              size * rng.uniform(0.42, 0.6), size * rng.uniform(0.35, 0.5), rng.uniform(0, math.pi),
                              size * rng.uniform(0.4, 0.55), 0.22, rng.uniform(0.85, 1.1)))
    return blobs


def _hand(rng: np.random.Generator) -> Limb:
    centre = 110.0
    forearm = [_line(rng, (centre - 14, 235.0), math.pi, 45, (9, 13), 9), _line(rng, (centre + 13, 235.0), math.pi,
                                                                                 40, (6, 8), 6)]
    blobs = _carpals(rng, (centre, 172.0), 11.0)
    bones, tubes = list(forearm), [_tube([(centre, 235), (centre, 150), (centre, 105)], [38, 40, 42], 0.4)]
    spread = rng.uniform(0.7, 1.3)
    for finger, (angle, lengths, radius) in enumerate((
            (0.95, (42, 32, 24), 4.8), (0.22, (64, 40, 24, 18), 4.4), (0.05, (62, 44, 28, 19), 4.5),
            (-0.1, (58, 41, 26, 18), 4.2), (-0.27, (54, 33, 21, 17), 3.9))):
        base = (centre - 22 + 11 * finger + (0 if finger else -8), 158.0 if finger else 170.0)
        ray = _ray(rng, base, math.pi + angle * spread, lengths, radius, rng.normal(0, 0.04))
        bones += ray
        tip = ray[-1].points[-1]
        tubes.append(_tube([tuple(ray[0].points[0]), tuple(ray[1].points[0]), tuple(tip)], [12, 9.5, 8], 0.9))
    return Limb(tuple(bones), tuple(blobs), tuple(tubes), rng.uniform(2.5, 4.0), FIELDS_MM["hand"])


def _finger(rng: np.random.Generator) -> Limb:
    ray = _ray(rng, (45.0 + rng.normal(0, 3), 105.0), math.pi + rng.normal(0, 0.1), (48, 34, 22, 16), 5.5,
               rng.normal(0, 0.06))
    tip = tuple(ray[-1].points[-1])
    tubes = [_tube([tuple(ray[0].points[0]), tuple(ray[1].points[0]), tip], [16, 11, 9.5])]
    bones = list(ray)
    if rng.random() < 0.5:  # a neighbouring finger at the edge of the field
        side = 1 if rng.random() < 0.5 else -1
        neighbour = _ray(rng, (45.0 + side * 26, 108.0), math.pi + side * 0.08, (46, 32, 20, 15), 5.0, 0.0)
        bones += neighbour
        tubes.append(_tube([tuple(neighbour[0].points[0]), tuple(neighbour[1].points[0]),
                           tuple(neighbour[-1].points[-1])], [15, 11, 9]))
    return Limb(tuple(bones), (), tuple(tubes), rng.uniform(2.5, 4.0), FIELDS_MM["finger"])


def _wrist(rng: np.random.Generator) -> Limb:
    radius = _line(rng, (52.0, 125.0), math.pi, 45, (14, 18), 11)
    ulna = _line(rng, (80.0, 125.0), math.pi, 42, (7, 9), 7)
    blobs = _carpals(rng, (62.0, 58.0), 10.0)
    bases = [_line(rng, (38.0 + 11 * k, 34.0 - (6 if k else 0)), math.pi + 0.15 - 0.08 * k, 30, (5, 4.5), 4.2)
             for k in range(5)]
    tubes = [_tube([(62, 125), (62, 60), (60, -5)], [36, 38, 40], 0.55)]
    return Limb((radius, ulna, *bases), tuple(blobs), tuple(tubes), rng.uniform(2.5, 4.0), FIELDS_MM["wrist"])


def _forearm(rng: np.random.Generator) -> Limb:
    radius = _line(rng, (150.0, 25.0), rng.normal(0, 0.03), 265, (10, 15), 6.5)
    ulna = _line(rng, (180.0, 18.0), rng.normal(0, 0.03), 270, (13, 8), 6.0)
    blobs = [Blob((185.0, 12.0), 14, 11, 0.3, 12, 0.25), Blob((150.0, 20.0), 11, 7, 0.0, 10, 0.25)]
    tubes = [_tube([(165, -10), (165, 160), (165, 320)], [50, 42, 36], 0.8)]
    return Limb((radius, ulna), tuple(blobs), tuple(tubes), rng.uniform(2.5, 4.0), FIELDS_MM["forearm"])


def _elbow(rng: np.random.Generator) -> Limb:
    flexion = rng.uniform(0.0, 1.2)  # 0 = straight (AP-like), up to about 70° of flexion
    humerus = _line(rng, (105.0, -10.0), 0.0, 100, (11, 12), 11)
    condyles = Blob((105.0, 102.0), 27, 14, 0.0, 15, 0.2)
    joint = np.array([105.0, 120.0])
    angle = flexion * (1 if rng.random() < 0.5 else -1)
    ulna = _line(rng, tuple(joint + [8, 0]), angle, 110, (13, 8), 7)
    radius = _line(rng, tuple(joint + [-12, 4]), angle, 105, (9, 10), 6.5)
    blobs = [condyles, Blob(tuple(joint + [8, -4]), 11, 9, 0.0, 12, 0.25)]
    far = tuple(joint + 130 * np.array([math.sin(angle), math.cos(angle)]))
    tubes = [_tube([(105, -20), (105, 110)], [45, 40], 0.85), _tube([(105, 110), far], [40, 32], 0.85)]
    return Limb((humerus, ulna, radius), tuple(blobs), tuple(tubes), rng.uniform(2.5, 4.0), FIELDS_MM["elbow"])


def _humerus(rng: np.random.Generator) -> Limb:
    shaft = _line(rng, (190.0, 55.0), rng.normal(0, 0.04), 285, (22, 20), 11, 0.32)
    head = Blob((185.0 + rng.normal(0, 4), 38.0), 25, 24, 0.0, 24, 0.15)
    glenoid = Blob((150.0, 30.0), 10, 26, 0.2, 9, 0.3, 0.8)
    condyles = Blob(tuple(shaft.points[-1] + [0, 6]), 28, 13, 0.0, 14, 0.2)
    tubes = [_tube([(190, -10), (190, 200), (190, 390)], [60, 52, 45], 0.8)]
    return Limb((shaft,), (head, glenoid, condyles), tuple(tubes), rng.uniform(2.5, 4.0), FIELDS_MM["humerus"])


def _shoulder(rng: np.random.Generator) -> Limb:
    head = Blob((175.0, 120.0), 30, 29, 0.0, 28, 0.15)
    shaft = _line(rng, (180.0, 140.0), rng.normal(0, 0.05), 170, (20, 14), 13, 0.3)
    scapula = [Blob((130.0, 150.0), 22, 45, 0.35, 6, 0.35, 0.8), Blob((140.0, 115.0), 9, 20, 0.1, 10, 0.3)]
    clavicle = Bone(np.array([[20.0, 60.0], [80.0, 72.0], [140.0, 70.0], [175.0, 80.0]]),
                    np.array([8.0, 7.0, 6.5, 8.0]), 0.35, rng.uniform(0.85, 1.1))
    acromion = Blob((178.0, 85.0), 20, 8, -0.2, 8, 0.3)
    ribs = [Bone(np.array([[0.0, y], [50.0, y + 25], [100.0, y + 60]]), np.array([4.0, 4.0, 4.0]), 0.4, 0.6)
            for y in (100.0, 140.0, 180.0, 220.0)]
    tubes = [_tube([(175, 60), (180, 300)], [60, 55], 0.9), _tube([(40, 60), (60, 280)], [110, 120], 0.45)]
    return Limb((shaft, clavicle, *ribs), (head, *scapula, acromion), tuple(tubes), rng.uniform(2.5, 4.0),
                FIELDS_MM["shoulder"])


_BUILDERS: dict[str, Callable[[np.random.Generator], Limb]] = {
    "hand": _hand, "finger": _finger, "wrist": _wrist, "forearm": _forearm,
    "elbow": _elbow, "humerus": _humerus, "shoulder": _shoulder,
}


def _posed(limb: Limb, rng: np.random.Generator) -> Limb:
    """Rotate (±20°), zoom (0.9–1.1), shift (±6 %) and maybe mirror the limb about the field's centre."""
    angle, zoom = math.radians(rng.uniform(-20, 20)), rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.06, 0.06, size=2) * limb.field_mm
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    centre = np.array([limb.field_mm / 2, limb.field_mm / 2])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def move(points: np.ndarray) -> np.ndarray:
        offset = (np.atleast_2d(points) - centre) * [mirror, 1.0]
        return offset @ rotation.T * zoom + centre + shift

    def bone(b: Bone) -> Bone:
        return Bone(move(b.points), b.radii * zoom, b.cortex, b.density)

    def tube(t: Tube) -> Tube:
        return Tube(move(t.points), t.radii * zoom, t.depth)

    blobs = tuple(Blob(tuple(move(np.array(b.centre))[0]), b.a * zoom, b.b * zoom, mirror * b.angle + angle,
                       b.c * zoom, b.cortex, b.density) for b in limb.blobs)
    return Limb(tuple(bone(b) for b in limb.bones), blobs, tuple(tube(t) for t in limb.tubes), limb.tube_power,
                limb.field_mm)


def build_limb(body_part: str, rng: np.random.Generator) -> Limb:
    """The posed anatomy of ``body_part`` (a key of :data:`FIELDS_MM`)."""
    return _posed(_BUILDERS[body_part](rng), rng)


@dataclass(frozen=True)
class LimbProjection:
    """A limb projected on a square grid.

    Attributes:
        bone: ``np.ndarray[N, N]`` float32, ``∫μ dz`` of cortex and marrow.
        soft_mm: ``np.ndarray[N, N]`` float32, path length (mm) through soft tissue.
        mm_per_px: pixel size.
    """

    bone: np.ndarray
    soft_mm: np.ndarray
    mm_per_px: float


def _window(points: np.ndarray, reach: float, mm_per_px: float, size: int) -> tuple[slice, slice]:
    low = np.floor((points.min(axis=0) - reach) / mm_per_px).astype(int)
    high = np.ceil((points.max(axis=0) + reach) / mm_per_px).astype(int) + 1
    return slice(max(0, low[1]), min(size, high[1])), slice(max(0, low[0]), min(size, high[0]))


def _axis_distance(xs: np.ndarray, ys: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t, d)``: the clamped position along the segment ``p0 → p1`` and the distance to it."""
    direction = p1 - p0
    length2 = max(float(direction @ direction), 1e-9)
    t = np.clip(((xs - p0[0]) * direction[0] + (ys - p0[1]) * direction[1]) / length2, 0.0, 1.0)
    return t, np.hypot(xs - (p0[0] + t * direction[0]), ys - (p0[1] + t * direction[1]))


def _tube_chords(tube: Tube, xs: np.ndarray, ys: np.ndarray, extra_mm: float,
                 power: float) -> np.ndarray:
    """Union (max) over a tube's segments of the superellipse chord ``2R(1 − (d/R)^p)^{1/p}``."""
    chord = np.zeros(xs.shape, np.float32)
    for k in range(len(tube.points) - 1):
        t, d = _axis_distance(xs, ys, tube.points[k], tube.points[k + 1])
        radius = tube.radii[k] + (tube.radii[k + 1] - tube.radii[k]) * t + extra_mm
        ratio = np.clip(d / np.maximum(radius, 1e-6), 0.0, 1.0)
        depth = radius * tube.depth + extra_mm * (1.0 - tube.depth)  # a cast is as thick as it is wide
        chord = np.maximum(chord, 2.0 * depth * (1.0 - ratio ** power) ** (1.0 / power))
    return chord


def soft_paths(limb: Limb, size: int, extra_mm: float = 0.0) -> np.ndarray:
    """Soft-tissue path length (mm) on an ``size × size`` grid; ``extra_mm`` widens every tube (a cast).

    Returns:
        ``np.ndarray[size, size]`` float32.
    """
    mm_per_px = limb.field_mm / size
    soft = np.zeros((size, size), np.float32)
    for tube in limb.tubes:
        rows, cols = _window(tube.points, float(tube.radii.max()) + extra_mm, mm_per_px, size)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        ys, xs = np.mgrid[rows, cols].astype(np.float32)
        chord = _tube_chords(tube, (xs + 0.5) * mm_per_px, (ys + 0.5) * mm_per_px, extra_mm, limb.tube_power)
        soft[rows, cols] = np.maximum(soft[rows, cols], chord)
    return soft


def _bone_paths(bone: Bone, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    outer = np.zeros(xs.shape, np.float32)
    inner = np.zeros(xs.shape, np.float32)
    for k in range(len(bone.points) - 1):
        t, d = _axis_distance(xs, ys, bone.points[k], bone.points[k + 1])
        radius = bone.radii[k] + (bone.radii[k + 1] - bone.radii[k]) * t
        cavity = radius * (1.0 - bone.cortex)
        outer = np.maximum(outer, 2.0 * np.sqrt(np.maximum(radius ** 2 - d ** 2, 0.0)))
        inner = np.maximum(inner, 2.0 * np.sqrt(np.maximum(cavity ** 2 - d ** 2, 0.0)))
    return outer - inner, inner


def _blob_paths(blob: Blob, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = xs - blob.centre[0], ys - blob.centre[1]
    cos, sin = math.cos(blob.angle), math.sin(blob.angle)
    rho2 = ((dx * cos + dy * sin) / blob.a) ** 2 + ((-dx * sin + dy * cos) / blob.b) ** 2
    keep = 1.0 - blob.cortex
    outer = 2.0 * blob.c * np.sqrt(np.maximum(1.0 - rho2, 0.0))
    inner = 2.0 * blob.c * keep * np.sqrt(np.maximum(1.0 - rho2 / keep ** 2, 0.0))
    return outer - inner, inner


def project_limb(limb: Limb, size: int, rng: np.random.Generator) -> LimbProjection:
    """Project a limb's bones (with a trabecular texture in the marrow) and soft tissue on ``size × size`` px."""
    mm_per_px = limb.field_mm / size
    bone = np.zeros((size, size), np.float32)
    trabecular = 1.0 + 0.25 * power_law_field(rng, (size, size), 1.6)
    parts: list[tuple[Bone | Blob, np.ndarray, float]] = [
        (b, b.points, float(b.radii.max())) for b in limb.bones]
    parts += [(b, np.array([b.centre]), max(b.a, b.b)) for b in limb.blobs]
    for part, points, reach in parts:
        rows, cols = _window(points, reach, mm_per_px, size)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        ys, xs = np.mgrid[rows, cols].astype(np.float32)
        xs, ys = (xs + 0.5) * mm_per_px, (ys + 0.5) * mm_per_px
        cortical, marrow = _bone_paths(part, xs, ys) if isinstance(part, Bone) else _blob_paths(part, xs, ys)
        bone[rows, cols] += part.density * (MU_CORTEX * cortical + MU_MARROW * marrow * trabecular[rows, cols])
    return LimbProjection(bone, soft_paths(limb, size), mm_per_px)
