"""Breast arteries of phantom family B and their calcification (BAC) by severity grade.

Arteries are grown as random walks in a breast's ``(u, w)`` coordinates
(:mod:`medlim.phantoms.family_b.breast`) from the chest wall towards the nipple
(lines of constant ``w`` converge on the nipple, so a walk that keeps its ``w``
heads there), smoothed, made tortuous with a short sinusoid, and given 0–2
branches that bend out towards the skin. Calcification is laid out once per
breast as *dashes* along the vessels, in fractions of each vessel's length, so
that the CC and MLO views show the same deposits:

* ``"rim"`` — one wall, a thin line offset by half the lumen;
* ``"tram"`` — both walls, the "tram-track" of a calcified media (Iribarren
  et al., Radiology 2005 describe the appearance);
* ``"bead"`` — a string of small ellipses along a wall (fragmented deposits).

Grades (per patient): ``none``; ``mild`` — a few short, faint fragments on
one or two vessels; ``moderate`` — several segments mixing beads, rims and
tram tracks; ``heavy`` — long, bright, nearly continuous tram tracks on most
vessels. The BAC mask of a view is exactly the pixels the dashes are drawn on,
inside the breast and outside the pectoral muscle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from medlim.phantoms.family_b.breast import BreastAnatomy, ViewGeometry, half_width, uw_to_pixels
from medlim.phantoms.family_b.fields import polyline_normals, resample_polyline

__all__ = [
    "GRADES",
    "Vessel",
    "CalcifiedDash",
    "grow_vessels",
    "calcify",
    "VesselRender",
    "render_vessels",
]

#: Severity grades, from none to heavy.
GRADES: tuple[str, ...] = ("none", "mild", "moderate", "heavy")

@dataclass(frozen=True)
class _GradePlan:
    """How one grade calcifies a breast: vessels calcified, segments, lengths (mm), forms, strength."""

    vessels: tuple[int, int]
    segments: tuple[int, int]
    segment_mm: tuple[float, float]
    dash_mm: tuple[float, float]
    gap_mm: tuple[float, float]
    forms: dict[str, float]
    strength: tuple[float, float]  # added attenuation μ·t at full pixel coverage


_PLAN: dict[str, _GradePlan] = {
    "mild": _GradePlan((1, 2), (2, 5), (1.5, 5.0), (0.4, 1.6), (0.8, 2.5), {"rim": 0.55, "bead": 0.45}, (0.25, 0.5)),
    "moderate": _GradePlan((2, 3), (4, 9), (4.0, 15.0), (1.0, 4.0), (0.5, 1.8),
                           {"rim": 0.3, "bead": 0.35, "tram": 0.35}, (0.45, 0.9)),
    "heavy": _GradePlan((3, 9), (4, 8), (15.0, 60.0), (6.0, 25.0), (0.2, 1.0), {"bead": 0.15, "tram": 0.85},
                        (0.8, 1.6)),
}


@dataclass(frozen=True)
class Vessel:
    """One artery: a centre line in ``(u, w)`` and its lumen.

    Attributes:
        points_uw: ``np.ndarray[N, 2]`` float64, from the chest wall end.
        diameter_mm: outer diameter at the start; taper: end / start diameter.
        reference_mm: length in the breast's own millimetres (lays dashes out).
    """

    points_uw: np.ndarray
    diameter_mm: float
    taper: float
    reference_mm: float


@dataclass(frozen=True)
class CalcifiedDash:
    """One calcified stretch of a vessel.

    Attributes:
        vessel: index into the breast's vessels.
        start, stop: fractions of the vessel's length, ``0 ≤ start < stop ≤ 1``.
        form: ``"rim"``, ``"tram"`` or ``"bead"``; side: ``±1`` wall (rim, bead), 0 both (tram).
        strength: added attenuation ``μ·t`` at full pixel coverage.
        width_mm: rim width or bead diameter.
    """

    vessel: int
    start: float
    stop: float
    form: str
    side: int
    strength: float
    width_mm: float


def _reference_length(anatomy: BreastAnatomy, points_uw: np.ndarray) -> float:
    u, w = points_uw[:, 0], points_uw[:, 1]
    x = u * anatomy.depth_mm
    y = w * half_width(anatomy, u) * anatomy.half_height_mm
    return float(np.hypot(np.diff(x), np.diff(y)).sum())


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def _walk(rng: np.random.Generator, u0: float, w0: float, u_end: float, outward: float) -> np.ndarray:
    """A smoothed, tortuous random walk in ``(u, w)`` from ``(u0, w0)`` to depth ``u_end``."""
    u = np.arange(u0, u_end, 0.008)
    steps = rng.normal(outward * 0.012, 0.02, size=u.size)
    w = w0 + np.cumsum(_smooth(steps, 4.0))
    period, amplitude = rng.uniform(0.08, 0.2), rng.uniform(0.0, 0.012)
    w = w + amplitude * np.sin(2 * math.pi * u / period + rng.uniform(0, 2 * math.pi))
    return np.stack([u, 0.88 * np.tanh(w / 0.88)], axis=1)  # a soft wall keeps it inside


def grow_vessels(rng: np.random.Generator, anatomy: BreastAnatomy) -> tuple[Vessel, ...]:
    """2–4 arteries from the chest wall towards the nipple, each with 0–2 branches to the skin."""
    vessels: list[Vessel] = []
    for _ in range(int(rng.integers(2, 5))):
        trunk = _walk(rng, rng.uniform(-0.02, 0.08), rng.uniform(-0.75, 0.75), rng.uniform(0.6, 0.92), 0.0)
        diameter = float(rng.uniform(1.2, 2.8))
        vessels.append(Vessel(trunk, diameter, float(rng.uniform(0.55, 0.8)), _reference_length(anatomy, trunk)))
        for _ in range(int(rng.integers(0, 3))):
            at = int(rng.integers(len(trunk) // 5, max(len(trunk) // 5 + 1, 3 * len(trunk) // 5)))
            u0, w0 = trunk[at]
            side = 1.0 if (w0 > 0) == (rng.random() < 0.8) else -1.0
            branch = _walk(rng, u0, w0, min(0.93, u0 + rng.uniform(0.15, 0.35)), side)
            vessels.append(Vessel(branch, 0.6 * diameter, float(rng.uniform(0.6, 0.85)),
                                  _reference_length(anatomy, branch)))
    return tuple(vessels)


def _segment_dashes(rng: np.random.Generator, plan: _GradePlan, vessel: int, reference_mm: float, start_mm: float,
                    length_mm: float) -> list[CalcifiedDash]:
    names, weights = list(plan.forms), np.array(list(plan.forms.values()))
    dashes: list[CalcifiedDash] = []
    position = start_mm
    while position < start_mm + length_mm and position < reference_mm:
        dash = min(rng.uniform(*plan.dash_mm), start_mm + length_mm - position)
        form = str(rng.choice(names, p=weights / weights.sum()))
        width = rng.uniform(0.4, 0.9) if form == "bead" else rng.uniform(0.2, 0.5)
        dashes.append(CalcifiedDash(
            vessel=vessel, start=position / reference_mm, stop=min(1.0, (position + max(dash, 0.3)) / reference_mm),
            form=form, side=0 if form == "tram" else int(rng.choice((-1, 1))),
            strength=float(rng.uniform(*plan.strength)), width_mm=float(width)))
        position += dash + rng.uniform(*plan.gap_mm)
    return dashes


def calcify(rng: np.random.Generator, vessels: tuple[Vessel, ...], grade: str) -> tuple[CalcifiedDash, ...]:
    """Lay out the calcified dashes of one breast for a severity ``grade`` (see :data:`GRADES`)."""
    if grade == "none" or not vessels:
        return ()
    plan = _PLAN[grade]
    chosen = rng.permutation(len(vessels))[: int(rng.integers(plan.vessels[0], plan.vessels[1] + 1))]
    dashes: list[CalcifiedDash] = []
    for _ in range(int(rng.integers(plan.segments[0], plan.segments[1] + 1))):
        vessel = int(chosen[int(rng.integers(len(chosen)))])
        reference = vessels[vessel].reference_mm
        length = rng.uniform(*plan.segment_mm)
        start = rng.uniform(0.2, 0.9) * max(reference - length, 1.0)
        dashes.extend(_segment_dashes(rng, plan, vessel, reference, start, length))
    return tuple(dashes)


@dataclass(frozen=True)
class VesselRender:
    """The arteries of one view, drawn at full resolution.

    Attributes:
        calcium: ``np.ndarray[H, W]`` float32, added ``μ·t`` of the calcified dashes (0 elsewhere).
        lumen: ``np.ndarray[H, W]`` float32, added ``μ·t`` of the (soft) vessel bodies.
        centrelines: pixel ``(x, y)`` polylines of the vessels, ``np.ndarray[N, 2]`` each.
        dash_lengths_mm: centre-line length of each dash in this view.
        dash_midpoints: pixel ``(x, y)`` of each dash's middle.
    """

    calcium: np.ndarray
    lumen: np.ndarray
    centrelines: tuple[np.ndarray, ...]
    dash_lengths_mm: tuple[float, ...]
    dash_midpoints: tuple[tuple[float, float], ...]


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.rint(points * 16.0).astype(np.int32).reshape(-1, 1, 2)


def _draw_dash(canvas: np.ndarray, dash: CalcifiedDash, centre: np.ndarray, normals: np.ndarray,
               radius_px: np.ndarray, spacing_mm: float, rng: np.random.Generator) -> None:
    """Draw one dash (its rim(s) or beads) on the calcium canvas, overwriting."""
    thickness = max(1, int(round(dash.width_mm / spacing_mm)))
    coverage = min(1.0, dash.width_mm / (thickness * spacing_mm))
    sides = (-1, 1) if dash.side == 0 else (dash.side,)
    jitter = rng.normal(0.0, 0.08 / spacing_mm, size=len(centre))[:, None]
    for side in sides:
        wall = centre + normals * (side * radius_px[:, None] + jitter)
        if dash.form == "bead":
            pitch = max(1, int(round(rng.uniform(1.2, 2.2) * dash.width_mm / spacing_mm / 0.5)))  # points 0.5 px apart
            for x, y in wall[::pitch]:
                axes = (max(0.5, 0.5 * dash.width_mm / spacing_mm * rng.uniform(0.8, 1.4)),
                        max(0.5, 0.5 * dash.width_mm / spacing_mm * rng.uniform(0.5, 0.9)))
                cv2.ellipse(canvas, (int(round(x * 16)), int(round(y * 16))),
                            (int(round(axes[0] * 16)), int(round(axes[1] * 16))), float(rng.uniform(0, 180)),
                            0, 360, float(dash.strength * rng.uniform(0.7, 1.0)), -1, cv2.LINE_8, 4)
            continue
        pieces = max(1, int(len(wall) * 0.5 * spacing_mm))  # about one piece per mm
        for piece in np.array_split(np.arange(len(wall)), pieces):
            if len(piece) < 2:
                continue
            value = float(dash.strength * coverage * rng.uniform(0.7, 1.0))
            cv2.polylines(canvas, [_fixed(wall[piece[0]: piece[-1] + 2])], False, value, thickness, cv2.LINE_8, 4)


def render_vessels(geometry: ViewGeometry, vessels: tuple[Vessel, ...], dashes: tuple[CalcifiedDash, ...],
                   rng: np.random.Generator) -> VesselRender:
    """Draw a breast's arteries and calcified dashes in one view (chest wall on the left).

    Args:
        geometry: the view; vessels, dashes: the breast's (:func:`grow_vessels`, :func:`calcify`).
        rng: the view's rendering stream (wall jitter, bead shapes, piece strengths).
    """
    shape = (geometry.rows, geometry.cols)
    calcium = np.zeros(shape, np.float32)
    lumen = np.zeros(shape, np.float32)
    lines, lengths, middles = [], [], []
    spacing = geometry.spacing_mm
    for vessel in vessels:
        centre = resample_polyline(uw_to_pixels(geometry, vessel.points_uw), 0.5)
        lines.append(centre)
        thickness = max(1, int(round(vessel.diameter_mm * (1 + vessel.taper) / 2 / spacing)))
        cv2.polylines(lumen, [_fixed(centre)], False, float(0.027 * vessel.diameter_mm), thickness, cv2.LINE_AA, 4)
    for dash in dashes:
        vessel, centre = vessels[dash.vessel], lines[dash.vessel]
        fraction = np.linspace(0.0, 1.0, len(centre))
        keep = (fraction >= dash.start) & (fraction <= dash.stop)
        if keep.sum() < 2:
            keep[np.searchsorted(fraction, dash.start, side="left").clip(0, len(centre) - 2) + np.arange(2)] = True
        radius = 0.5 * vessel.diameter_mm * (1.0 - (1.0 - vessel.taper) * fraction[keep]) / spacing
        points = centre[keep]
        _draw_dash(calcium, dash, points, polyline_normals(centre)[keep], radius, spacing, rng)
        lengths.append(float(np.hypot(*np.diff(points, axis=0).T).sum() * spacing))
        middles.append((float(points[len(points) // 2, 0]), float(points[len(points) // 2, 1])))
    return VesselRender(calcium, lumen, tuple(lines), tuple(lengths), tuple(middles))
