"""Breast anatomy of phantom family B: a compressed superellipse with a curved pectoral wedge.

Coordinates. Each breast has *canonical* coordinates ``(u, v)``: ``u`` runs
from the chest wall (0) to the nipple (1) along the breast axis, ``v`` across
it, −1 at the top and +1 at the bottom of the outline at the chest wall. The
outline is the superellipse ``u^n + |v|^m = 1`` (``u ≥ 0``) with a few smooth
harmonic wiggles; behind ``u = 0`` the breast continues to the image edge.
Structures that must stay inside the breast (vessels, ligaments) are laid out
in ``(u, w)`` with ``w = v / (1 − u^n)^{1/m}``, the relative position across
the breast at depth ``u`` (|w| < 1 is inside). A *view* (CC or MLO) maps
canonical coordinates to pixels by its own depth, half-heights (top and bottom
differ), tilt and vertical centre, so one breast keeps its anatomy in both
views; the MLO view is taller (axillary tail running off the top edge), tilted
down, and carries the pectoral muscle as a curved wedge
``x < W · (1 − y/L)^κ`` at the upper chest-wall corner.

Tissue is projected along the beam (compressed thickness ``T``, a rounded edge
of radius ``T/2``, a 1.4 mm skin shell — so the skin line is a bright rim where
the beam runs tangent to it) with fat and glandular attenuation mixed by the
glandular fraction, a thresholded power-law field (Burgess et al. 2001) whose
threshold is set by the density class (BI-RADS a–d). Linear attenuation
coefficients are those of 20 keV photons (Johns & Yaffe, Phys. Med. Biol.
32:675, 1987), in mm⁻¹.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from medlim.phantoms.family_b.fields import power_law_field, resample_polyline, smoothstep

__all__ = [
    "DENSITY_CLASSES",
    "MU_FAT",
    "MU_GLAND",
    "MU_SKIN",
    "BreastAnatomy",
    "Ligament",
    "LigamentCrossing",
    "ViewGeometry",
    "draw_breast_anatomy",
    "view_geometry",
    "to_pixels",
    "to_canonical",
    "half_width",
    "nipple_centre",
    "uw_to_pixels",
    "breast_and_pectoral_masks",
    "tissue_attenuation",
]

#: Density class → (BI-RADS letter, target glandular fraction).
DENSITY_CLASSES: dict[str, tuple[str, float]] = {
    "fatty": ("a", 0.07),
    "scattered": ("b", 0.22),
    "heterogeneous": ("c", 0.45),
    "dense": ("d", 0.7),
}

MU_FAT = 0.045  # mm⁻¹ at 20 keV, adipose
MU_GLAND = 0.080  # mm⁻¹, fibroglandular
MU_SKIN = 0.082  # mm⁻¹
MU_MUSCLE = 0.085  # mm⁻¹

_SKIN_MM = 1.4
_SUBCUTANEOUS_FAT_MM = 6.0
# Canonical grid of the glandular field: u ∈ [−0.2, 1.2] (columns), v ∈ [−1.2, 1.2] (rows).
_GRID_U = (-0.2, 1.2)
_GRID_V = (-1.2, 1.2)
_GRID_SHAPE = (448, 320)


@dataclass(frozen=True)
class Ligament:
    """A Cooper's-ligament strand: a curve in ``(u, w)``.

    Attributes:
        points_uw: ``np.ndarray[N, 2]`` float64, ``(u, w)`` along the strand.
        width_mm: projected width; strength: added attenuation ``μ·t`` at full coverage.
    """

    points_uw: np.ndarray
    width_mm: float
    strength: float


@dataclass(frozen=True)
class LigamentCrossing:
    """Where two strands cross and overlap into a bright knot (a BAC look-alike).

    Attributes:
        u, w: canonical position; radius_mm: knot radius; strength: added ``μ·t``.
    """

    u: float
    w: float
    radius_mm: float
    strength: float


@dataclass(frozen=True)
class BreastAnatomy:
    """View-independent anatomy of one breast.

    Attributes:
        depth_mm: chest wall to nipple (CC view); half_height_mm: at the chest wall.
        asymmetry: top / bottom half-height ratio in the CC view.
        exp_u, exp_v: superellipse exponents along and across the axis.
        wiggles: ``(amplitude, phase)`` of outline harmonics 2, 3, 4 (relative radius).
        nipple_radius_mm: radius of the nipple bump.
        thickness_mm: compressed thickness.
        density_class: a key of :data:`DENSITY_CLASSES`.
        gland_field: ``np.ndarray[448, 320]`` float32 in [0, 1], glandular
            fraction on the canonical grid (rows over v, columns over u).
        ligaments, crossings: Cooper's ligaments and their bright crossings.
    """

    depth_mm: float
    half_height_mm: float
    asymmetry: float
    exp_u: float
    exp_v: float
    wiggles: tuple[tuple[float, float], ...]
    nipple_radius_mm: float
    thickness_mm: float
    density_class: str
    gland_field: np.ndarray
    ligaments: tuple[Ligament, ...]
    crossings: tuple[LigamentCrossing, ...]


@dataclass(frozen=True)
class ViewGeometry:
    """How one view maps a breast's canonical coordinates to pixels (chest wall on the left).

    Attributes:
        rows, cols: image shape; spacing_mm: pixel spacing.
        view: ``"CC"`` or ``"MLO"``.
        origin_x, centre_row: pixel position of canonical ``(0, 0)``.
        depth_px: length of ``u = 1``; top_px, bottom_px: length of ``v = −1`` / ``v = +1``.
        tilt: axis angle (rad, positive = nipple lower).
        exp_u, exp_v, wiggles: the breast's outline shape.
        nipple_radius_px: nipple bump radius.
        pectoral: ``(width_px at the top edge, length_px down the chest wall, κ)`` or ``None`` (CC).
    """

    rows: int
    cols: int
    spacing_mm: float
    view: str
    origin_x: float
    centre_row: float
    depth_px: float
    top_px: float
    bottom_px: float
    tilt: float
    exp_u: float
    exp_v: float
    wiggles: tuple[tuple[float, float], ...]
    nipple_radius_px: float
    pectoral: tuple[float, float, float] | None


def _canonical_grid() -> tuple[np.ndarray, np.ndarray]:
    v = np.linspace(*_GRID_V, _GRID_SHAPE[0], dtype=np.float32)[:, None]
    u = np.linspace(*_GRID_U, _GRID_SHAPE[1], dtype=np.float32)[None, :]
    return u, v


def _gland_field(rng: np.random.Generator, target: float, exp_u: float, exp_v: float) -> np.ndarray:
    """Glandular fraction on the canonical grid: a thresholded multi-scale field around a central cone."""
    u, v = _canonical_grid()
    coarse = power_law_field(rng, _GRID_SHAPE, 3.1)
    middle = power_law_field(rng, _GRID_SHAPE, 2.0)
    centre_u = rng.uniform(0.42, 0.62)
    envelope = np.exp(-((u - centre_u) / 0.4) ** 2 - (v / rng.uniform(0.5, 0.75)) ** 2)
    score = coarse + 0.35 * middle + 1.8 * envelope
    inside = (u >= 0) & (np.abs(u) ** exp_u + np.abs(v) ** exp_v <= 1.0)
    threshold = float(np.quantile(score[inside], 1.0 - target))
    # A ray crosses fat and gland in depth: its glandular fraction is graded, rarely 0 or 1.
    gland = 0.85 / (1.0 + np.exp(-(score - threshold) / 0.55))
    return np.clip(gland + 0.06 * middle, 0.0, 1.0).astype(np.float32)


def _quadratic_curve(start: np.ndarray, control: np.ndarray, end: np.ndarray, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t ** 2 * end


def _ligaments(rng: np.random.Generator, density_class: str) -> tuple[tuple[Ligament, ...], tuple[LigamentCrossing, ...]]:
    """Strands running from the parenchyma out to the skin, plus 1–3 deliberate crossings."""
    fatty = density_class in ("fatty", "scattered")
    strands: list[Ligament] = []
    for _ in range(int(rng.integers(12, 24) if fatty else rng.integers(6, 14))):
        # From the parenchyma obliquely forward to the skin, bowed towards the axis.
        side = 1.0 if rng.random() < 0.5 else -1.0
        start = np.array([rng.uniform(0.05, 0.8), side * rng.uniform(0.45, 0.85)])
        end = np.array([min(0.97, start[0] + rng.uniform(0.03, 0.25)), side * 0.985])
        control = 0.5 * (start + end) + np.array([rng.uniform(-0.08, 0.08), -side * rng.uniform(0.0, 0.12)])
        strands.append(Ligament(_quadratic_curve(start, control, end), float(rng.uniform(0.2, 0.5)),
                                float(rng.uniform(0.12, 0.4))))
    crossings: list[LigamentCrossing] = []
    for _ in range(int(rng.integers(1, 4))):
        centre = np.array([rng.uniform(0.2, 0.8), rng.uniform(-0.7, 0.7)])
        first = rng.uniform(0, math.pi)
        for angle in (first, first + rng.uniform(0.6, 1.4)):
            half = rng.uniform(0.06, 0.12) * np.array([math.cos(angle), 0.8 * math.sin(angle)])
            strands.append(Ligament(resample_polyline(np.stack([centre - half, centre + half]), 0.01),
                                    float(rng.uniform(0.3, 0.5)), float(rng.uniform(0.2, 0.4))))
        crossings.append(LigamentCrossing(float(centre[0]), float(centre[1]), float(rng.uniform(0.5, 1.0)),
                                          float(rng.uniform(0.25, 0.5))))
    return tuple(strands), tuple(crossings)


def draw_breast_anatomy(rng: np.random.Generator, *, density_class: str) -> BreastAnatomy:
    """Draw one breast (all views share it).

    Args:
        rng: the breast's own stream.
        density_class: a key of :data:`DENSITY_CLASSES`.
    """
    _, target = DENSITY_CLASSES[density_class]
    target = float(np.clip(target * rng.uniform(0.8, 1.2), 0.03, 0.9))
    exp_u, exp_v = float(rng.uniform(1.7, 2.6)), float(rng.uniform(1.6, 2.5))
    ligaments, crossings = _ligaments(rng, density_class)
    return BreastAnatomy(
        depth_mm=float(rng.uniform(65.0, 130.0)),
        half_height_mm=float(rng.uniform(60.0, 95.0)),
        asymmetry=float(rng.uniform(0.85, 1.2)),
        exp_u=exp_u,
        exp_v=exp_v,
        wiggles=tuple((float(rng.uniform(0.0, 0.025)), float(rng.uniform(0, 2 * math.pi))) for _ in range(3)),
        nipple_radius_mm=float(rng.uniform(3.5, 6.5)),
        thickness_mm=float(rng.uniform(35.0, 70.0)),
        density_class=density_class,
        gland_field=_gland_field(rng, target, exp_u, exp_v),
        ligaments=ligaments,
        crossings=crossings,
    )


def view_geometry(anatomy: BreastAnatomy, view: str, rows: int, cols: int, spacing_mm: float,
                  rng: np.random.Generator) -> ViewGeometry:
    """Place a breast in a CC or MLO view of ``rows × cols`` pixels of ``spacing_mm``."""
    a = math.sqrt(anatomy.asymmetry)
    depth = anatomy.depth_mm / spacing_mm
    top, bottom = anatomy.half_height_mm * a / spacing_mm, anatomy.half_height_mm / a / spacing_mm
    pectoral = None
    if view == "CC":
        tilt = math.radians(rng.normal(0.0, 3.0))
        centre = rows * (0.5 + rng.normal(0.0, 0.03))
        scale = min(1.0, 0.47 * rows / max(top, bottom))
        top, bottom = top * scale, bottom * scale
    else:
        depth *= rng.uniform(1.0, 1.12)
        tilt = math.radians(rng.uniform(12.0, 24.0))
        centre = rows * rng.uniform(0.36, 0.46)
        top *= rng.uniform(1.7, 2.3)
        bottom = min(bottom * rng.uniform(0.95, 1.15), 0.95 * (rows - centre) / math.cos(tilt))
        pectoral = (float(depth * rng.uniform(0.25, 0.45)), float(centre * rng.uniform(0.8, 1.25)),
                    float(rng.uniform(0.6, 1.5)))
    depth = min(depth, (0.9 * cols - anatomy.nipple_radius_mm / spacing_mm) / math.cos(tilt))
    return ViewGeometry(rows=rows, cols=cols, spacing_mm=spacing_mm, view=view, origin_x=-0.01 * cols,
                        centre_row=float(centre), depth_px=float(depth), top_px=float(top), bottom_px=float(bottom),
                        tilt=float(tilt), exp_u=anatomy.exp_u, exp_v=anatomy.exp_v, wiggles=anatomy.wiggles,
                        nipple_radius_px=anatomy.nipple_radius_mm / spacing_mm, pectoral=pectoral)


def to_pixels(geometry: ViewGeometry, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical ``(u, v)`` → pixel ``(x, y)`` (column, row), chest wall on the left."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    along = u * geometry.depth_px
    across = v * np.where(v < 0, geometry.top_px, geometry.bottom_px)
    cos, sin = math.cos(geometry.tilt), math.sin(geometry.tilt)
    return geometry.origin_x + along * cos - across * sin, geometry.centre_row + along * sin + across * cos


def to_canonical(geometry: ViewGeometry, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``(x, y)`` → canonical ``(u, v)``; the inverse of :func:`to_pixels`."""
    dx, dy = x - np.float32(geometry.origin_x), y - np.float32(geometry.centre_row)
    cos, sin = np.float32(math.cos(geometry.tilt)), np.float32(math.sin(geometry.tilt))
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    scale = np.where(across < 0, np.float32(geometry.top_px), np.float32(geometry.bottom_px))
    return along / np.float32(geometry.depth_px), across / scale


def half_width(geometry: ViewGeometry | BreastAnatomy, u: np.ndarray) -> np.ndarray:
    """``(1 − u^n)^{1/m}``: the outline's |v| at depth ``u`` (1 behind the chest wall)."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return (1.0 - u ** geometry.exp_u) ** (1.0 / geometry.exp_v)


def uw_to_pixels(geometry: ViewGeometry, points_uw: np.ndarray) -> np.ndarray:
    """``(u, w)`` points → pixel ``(x, y)`` points, ``np.ndarray[N, 2]`` float64."""
    u, w = points_uw[:, 0], points_uw[:, 1]
    x, y = to_pixels(geometry, u, w * half_width(geometry, u))
    return np.stack([x, y], axis=1)


def _outline_uv(geometry: ViewGeometry, n: int = 720) -> np.ndarray:
    v = np.linspace(-1.0, 1.0, n)
    phase = (v + 1.0) * math.pi / 2.0
    wiggle = 1.0 + sum(amp * np.sin((k + 2) * phase + ph) * np.sin(phase)
                       for k, (amp, ph) in enumerate(geometry.wiggles))
    u = (1.0 - np.abs(v) ** geometry.exp_v) ** (1.0 / geometry.exp_u) * wiggle
    behind = np.array([[-2.0, 1.0], [-2.0, -1.0]])
    return np.concatenate([np.stack([u, v], axis=1), behind])


def nipple_centre(geometry: ViewGeometry) -> tuple[float, float]:
    """Pixel ``(x, y)`` of the nipple bump's centre."""
    x, y = to_pixels(geometry, np.array([1.0 + 0.3 * geometry.nipple_radius_px / geometry.depth_px]), np.array([0.0]))
    return float(x[0]), float(y[0])


def breast_and_pectoral_masks(geometry: ViewGeometry, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The breast (pectoral included) and pectoral masks, drawn at ``scale`` × the view's size.

    Returns:
        ``(breast, pectoral)``: ``np.ndarray[round(rows·scale), round(cols·scale)]`` uint8 in {0, 1}.
    """
    rows, cols = int(math.ceil(geometry.rows * scale)), int(math.ceil(geometry.cols * scale))
    uv = _outline_uv(geometry)
    x, y = to_pixels(geometry, uv[:, 0], uv[:, 1])
    shift = 4
    points = np.rint(np.stack([(x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5], axis=1) * (1 << shift))
    breast = np.zeros((rows, cols), np.uint8)
    cv2.fillPoly(breast, [points.astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift)
    nx, ny = nipple_centre(geometry)
    cv2.circle(breast, (int(round(((nx + 0.5) * scale - 0.5) * 16)), int(round(((ny + 0.5) * scale - 0.5) * 16))),
               int(round(geometry.nipple_radius_px * scale * 16)), 1, -1, lineType=cv2.LINE_8, shift=shift)
    pectoral = np.zeros_like(breast)
    if geometry.pectoral is not None:
        width, length, kappa = geometry.pectoral
        ys = np.linspace(0.0, length, 64)
        xs = width * (1.0 - ys / length) ** kappa
        edge = np.stack([np.concatenate([[-2.0], xs, [-2.0]]), np.concatenate([[-2.0], ys, [length]])], axis=1)
        cv2.fillPoly(pectoral, [np.rint(((edge + 0.5) * scale - 0.5) * 16).astype(np.int32)], 1, shift=shift)
        pectoral &= breast
    return breast, pectoral


def _projected_paths(distance_mm: np.ndarray, thickness_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Path lengths (mm) through tissue and through skin at ``distance_mm`` inside the outline.

    The compressed breast's free edge is a half-cylinder of radius ``T/2``
    wrapped in a skin shell; a ray ``d`` inside the outline crosses the outer
    and the inner circle along chords ``2√(R² − (R − d)²)`` and ``2√((R − s)² − (R − d)²)``.
    """
    radius = thickness_mm / 2.0
    depth = np.minimum(distance_mm, radius)
    offset2 = (radius - depth) ** 2
    outer = 2.0 * np.sqrt(np.maximum(radius ** 2 - offset2, 0.0))
    inner = 2.0 * np.sqrt(np.maximum((radius - _SKIN_MM) ** 2 - offset2, 0.0))
    return inner, outer - inner


def tissue_attenuation(anatomy: BreastAnatomy, geometry: ViewGeometry, scale: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Projected attenuation ``∫μ dz`` of skin, fat, gland and muscle on a grid ``scale`` × the view.

    Returns:
        ``(mu_t, breast, density)``: ``np.ndarray[h, w]`` float32 (0 outside
        the breast), the breast mask ``np.ndarray[h, w]`` uint8 at that scale,
        and the mean glandular fraction over the breast.
    """
    breast, pectoral = breast_and_pectoral_masks(geometry, scale)
    rows, cols = breast.shape
    spacing = geometry.spacing_mm / scale
    distance = cv2.distanceTransform(breast, cv2.DIST_L2, 5) * np.float32(spacing)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u, v = to_canonical(geometry, (xx + 0.5) / scale - 0.5, (yy + 0.5) / scale - 0.5)
    map_x = (u - _GRID_U[0]) / (_GRID_U[1] - _GRID_U[0]) * (_GRID_SHAPE[1] - 1)
    map_y = (v - _GRID_V[0]) / (_GRID_V[1] - _GRID_V[0]) * (_GRID_SHAPE[0] - 1)
    gland = cv2.remap(anatomy.gland_field, map_x.astype(np.float32), map_y.astype(np.float32),
                      interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    gland *= smoothstep(_SKIN_MM, _SKIN_MM + _SUBCUTANEOUS_FAT_MM, distance)
    muscle = cv2.GaussianBlur(pectoral.astype(np.float32), (0, 0), max(0.5, 1.0 / spacing))
    striation = 1.0 + 0.04 * power_law_field(rng, (rows, cols), 1.5) if geometry.pectoral is not None else 1.0
    tissue, skin = _projected_paths(distance, anatomy.thickness_mm)
    mu = MU_FAT + (MU_GLAND - MU_FAT) * gland
    mu = mu * (1.0 - muscle) + MU_MUSCLE * striation * muscle
    mu_t = (tissue * mu + skin * MU_SKIN) * breast
    inside = breast.astype(bool) & ~pectoral.astype(bool)
    density = float(gland[inside].mean()) if inside.any() else 0.0
    return mu_t.astype(np.float32), breast, density
