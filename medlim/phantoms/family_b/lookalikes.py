"""Look-alikes of breast arterial calcification in phantom family B (never in the BAC mask).

What a BAC detector must not call BAC (issue 13: "look-alikes such as benign
calcifications and bright linear tissue"): benign round calcifications (solid
or eggshell rings), coarse "popcorn" calcifications, clusters of
microcalcifications, metal biopsy clips, Cooper's ligaments and the bright
knots where two ligaments cross. Discrete look-alikes are laid out once per
breast in ``(u, w)`` coordinates, at least :data:`CLEARANCE_MM` from every
artery, so the BAC truth stays unambiguous; each view draws them at full
resolution into an attenuation canvas and a code mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from medlim.phantoms.family_b.arteries import Vessel
from medlim.phantoms.family_b.breast import BreastAnatomy, ViewGeometry, half_width, uw_to_pixels

__all__ = ["LOOKALIKE_CODES", "CLEARANCE_MM", "LookalikeSpec", "place_lookalikes", "LookalikeRender",
           "render_lookalikes"]

#: Codes of ``lookalike_mask`` (0 = none). 1, 2 and 5 mean what they mean for family A
#: (:data:`medlim.phantoms.mammogram.LOOKALIKE_CODES`); the others are family B's own.
LOOKALIKE_CODES: dict[str, int] = {
    "benign_round": 1,
    "cluster": 2,
    "ligament": 5,
    "popcorn": 7,
    "ligament_crossing": 8,
    "clip": 9,
}

#: Least distance (breast mm) between a discrete look-alike's centre and any artery.
CLEARANCE_MM = 5.0


@dataclass(frozen=True)
class LookalikeSpec:
    """One discrete look-alike of a breast.

    Attributes:
        kind: a key of :data:`LOOKALIKE_CODES`.
        u, w: canonical centre.
        parts: ``np.ndarray[K, 3]`` float64 discs ``(dx_mm, dy_mm, radius_mm)``
            (a clip: its wire's polyline points with the wire radius).
        strength: added ``μ·t`` at full coverage; ring: drawn as a ring (eggshell calcification).
    """

    kind: str
    u: float
    w: float
    parts: np.ndarray
    strength: float
    ring: bool = False


def _reference_points(anatomy: BreastAnatomy, points_uw: np.ndarray) -> np.ndarray:
    u, w = points_uw[:, 0], points_uw[:, 1]
    return np.stack([u * anatomy.depth_mm, w * half_width(anatomy, u) * anatomy.half_height_mm], axis=1)


def _parts(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, float, bool]:
    if kind == "benign_round":
        ring = bool(rng.random() < 0.35)
        return np.array([[0.0, 0.0, rng.uniform(0.6, 1.8)]]), float(rng.uniform(0.8, 1.8)), ring
    if kind == "popcorn":
        count = int(rng.integers(4, 9))
        offsets = rng.normal(0.0, rng.uniform(0.8, 1.8), size=(count, 2))
        return np.column_stack([offsets, rng.uniform(0.4, 1.1, count)]), float(rng.uniform(0.9, 1.8)), False
    if kind == "cluster":
        count = int(rng.integers(5, 16))
        offsets = rng.normal(0.0, rng.uniform(1.2, 2.8), size=(count, 2))
        return np.column_stack([offsets, rng.uniform(0.1, 0.35, count)]), float(rng.uniform(0.4, 0.9)), False
    # clip: a U-shaped or coiled wire 3–5 mm long (metal, saturates the detector)
    t = np.linspace(0.0, 1.0, 16)
    size = rng.uniform(3.0, 5.0)
    if rng.random() < 0.5:
        path = np.column_stack([size * 0.35 * np.cos(np.pi * t), size * (t - 0.5)])
    else:
        path = np.column_stack([size * 0.25 * np.sin(6 * np.pi * t), size * (t - 0.5)])
    angle = rng.uniform(0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    path = path @ rotation.T
    return np.column_stack([path, np.full(len(t), rng.uniform(0.2, 0.35))]), 6.0, False


def place_lookalikes(rng: np.random.Generator, anatomy: BreastAnatomy,
                     vessels: tuple[Vessel, ...]) -> tuple[LookalikeSpec, ...]:
    """Draw a breast's discrete look-alikes, each ≥ :data:`CLEARANCE_MM` from every artery."""
    wanted = ["benign_round"] * int(rng.poisson(0.9))
    wanted += ["popcorn"] * int(rng.random() < 0.15) + ["cluster"] * int(rng.random() < 0.3)
    wanted += ["clip"] * int(rng.random() < 0.12)
    arteries = np.concatenate([_reference_points(anatomy, v.points_uw) for v in vessels]) if vessels else None
    specs: list[LookalikeSpec] = []
    for kind in wanted:
        for _ in range(30):  # rejection sampling; a crowded breast may go without this one
            centre = np.array([[rng.uniform(0.12, 0.85), rng.uniform(-0.8, 0.8)]])
            here = _reference_points(anatomy, centre)
            if arteries is None or np.hypot(*(arteries - here).T).min() >= CLEARANCE_MM:
                parts, strength, ring = _parts(rng, kind)
                specs.append(LookalikeSpec(kind, float(centre[0, 0]), float(centre[0, 1]), parts, strength, ring))
                break
    return tuple(specs)


@dataclass(frozen=True)
class LookalikeRender:
    """Look-alikes of one view at full resolution.

    Attributes:
        attenuation: ``np.ndarray[H, W]`` float32, added ``μ·t``.
        codes: ``np.ndarray[H, W]`` uint8, :data:`LOOKALIKE_CODES` (0 elsewhere).
        placed: ``(kind, x, y, size_px)`` of each drawn look-alike (chest wall on the left).
    """

    attenuation: np.ndarray
    codes: np.ndarray
    placed: tuple[tuple[str, float, float, float], ...]


def _disc(canvas: np.ndarray, codes: np.ndarray, code: int, x: float, y: float, radius_px: float,
          value: float, ring: bool) -> None:
    centre = (int(round(x * 16)), int(round(y * 16)))
    if radius_px < 0.5:  # below one pixel: one pixel carrying the disc's share of the signal
        col, row = int(round(x)), int(round(y))
        if 0 <= row < canvas.shape[0] and 0 <= col < canvas.shape[1]:
            canvas[row, col] = max(canvas[row, col], value * np.pi * radius_px ** 2)
            codes[row, col] = code
        return
    if ring:
        thickness = max(1, int(round(0.3 * radius_px)))
        cv2.circle(canvas, centre, int(round(radius_px * 16)), float(value), thickness, cv2.LINE_8, 4)
    else:
        # A sphere's chord 2√(1 − ρ²) in four steps: disc k of radius R·√(1 − (k/4)²) carries (k + ½)/4.
        thickness = -1
        for k in range(4):
            ring_radius = radius_px * np.sqrt(1.0 - (k / 4.0) ** 2)
            cv2.circle(canvas, centre, int(round(ring_radius * 16)), float(value * (k + 0.5) / 4.0), -1,
                       cv2.LINE_8, 4)
    cv2.circle(codes, centre, int(round(radius_px * 16)), code, thickness, cv2.LINE_8, 4)


def _draw_ligaments(geometry: ViewGeometry, anatomy: BreastAnatomy, canvas: np.ndarray, codes: np.ndarray) -> None:
    spacing = geometry.spacing_mm
    for strand in anatomy.ligaments:
        points = np.rint(uw_to_pixels(geometry, strand.points_uw) * 16).astype(np.int32).reshape(-1, 1, 2)
        thickness = max(1, int(round(strand.width_mm / spacing)))
        value = strand.strength * min(1.0, strand.width_mm / (thickness * spacing))
        cv2.polylines(canvas, [points], False, float(value), thickness, cv2.LINE_8, 4)
        cv2.polylines(codes, [points], False, LOOKALIKE_CODES["ligament"], thickness, cv2.LINE_8, 4)
    for knot in anatomy.crossings:
        (x, y), = uw_to_pixels(geometry, np.array([[knot.u, knot.w]]))
        _disc(canvas, codes, LOOKALIKE_CODES["ligament_crossing"], x, y, knot.radius_mm / spacing,
              knot.strength, False)


def render_lookalikes(geometry: ViewGeometry, anatomy: BreastAnatomy,
                      specs: tuple[LookalikeSpec, ...]) -> LookalikeRender:
    """Draw ligaments, crossings and the discrete look-alikes of a breast in one view."""
    shape = (geometry.rows, geometry.cols)
    canvas = np.zeros(shape, np.float32)
    codes = np.zeros(shape, np.uint8)
    _draw_ligaments(geometry, anatomy, canvas, codes)
    spacing = geometry.spacing_mm
    placed = []
    for spec in specs:
        (x, y), = uw_to_pixels(geometry, np.array([[spec.u, spec.w]]))
        code = LOOKALIKE_CODES[spec.kind]
        if spec.kind == "clip":
            wire = np.column_stack([x + spec.parts[:, 0] / spacing, y + spec.parts[:, 1] / spacing])
            thickness = max(1, int(round(2 * spec.parts[0, 2] / spacing)))
            cv2.polylines(canvas, [np.rint(wire * 16).astype(np.int32)], False, spec.strength, thickness,
                          cv2.LINE_8, 4)
            cv2.polylines(codes, [np.rint(wire * 16).astype(np.int32)], False, code, thickness, cv2.LINE_8, 4)
        else:
            for dx, dy, radius in spec.parts:
                _disc(canvas, codes, code, x + dx / spacing, y + dy / spacing, radius / spacing, spec.strength,
                      spec.ring)
        extent = np.abs(spec.parts[:, :2]).max() + spec.parts[:, 2].max()
        placed.append((spec.kind, float(x), float(y), float(2 * extent / spacing)))
    return LookalikeRender(canvas, codes, tuple(placed))
