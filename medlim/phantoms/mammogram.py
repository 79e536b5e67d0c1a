"""Mammogram phantoms with breast arterial calcifications (BAC) and exact ground truth.

The training data for SCU-Net (thesis §3.3): full-field 2-D mammograms in the
four screening views (LCC, RCC, LMLO, RMLO), patients followed over yearly
exams. Every image is a pure function of ``(seed, index, parameters)``.

How a phantom is made (all random numbers from :func:`medlim.phantoms.base.rng_for`):

* **Anatomy per breast** (constant over the years) lives in breast millimetres
  ``(p, q)``: ``p`` is the depth from the chest wall, ``q`` the position across
  the breast. It holds the outline (an ellipse-like shape with a few harmonics
  and a nipple bump), the fibroglandular density and fat texture (sampled on a
  canonical grid), Cooper's-ligament strands, tortuous arteries with branches,
  their calcified segments (fragmented, tram-track or solid dashes laid out
  once along the vessel) and the look-alikes (benign round, clustered and
  ductal calcifications, skin calcifications, bright tissue strands).
* **A view** (CC or MLO, per exam) maps breast millimetres to pixels with a
  positioning that moves a little every year (scale, tilt, offset); MLO views
  tilt the breast, stretch it towards the axilla and add the pectoral muscle.
* **Progression**: a calcified segment grows along its vessel each year for
  progressing patients (and may appear at a later exam); stable patients keep
  theirs. The visible calcified length is therefore non-decreasing over exams.
* **Rendering**: tissue signal → vendor tone curve → slight blur → noise, plus
  a burned-in view label; the BAC mask is the set of pixels the calcified
  dashes are drawn on (inside the breast, outside the pectoral muscle).

Grey levels: brighter = denser, as in a "For Presentation" image; the DICOM
writer (:mod:`medlim.phantoms.dicom`) stores the values so that a reader's
standard chain (rescale → window → MONOCHROME1 inversion) gives them back.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, rng_for, save_png
from medlim.phantoms.dicom import style_for, write_mammogram_dicom
from medlim.phantoms.mammogram_records import Lookalike, MammogramMetadata, MammogramPhantom

__all__ = [
    "SIZES",
    "VIEWS",
    "LOOKALIKE_CODES",
    "MammogramParams",
    "MammogramMetadata",
    "Lookalike",
    "MammogramPhantom",
    "generate_mammogram",
    "image_position",
    "write_mammogram",
    "KIND",
]

#: Size name → (rows, columns, pixel spacing at the breast in mm).
SIZES: dict[str, tuple[int, int, float]] = {
    "full": (4096, 3328, 0.07),
    "full-small": (3328, 2560, 0.085),
    "small": (1024, 832, 0.28),
}

#: The four screening views, in the order they are generated within an exam.
VIEWS: tuple[str, ...] = ("LCC", "RCC", "LMLO", "RMLO")

#: Codes of ``MammogramPhantom.lookalike_mask`` (0 = none).
LOOKALIKE_CODES: dict[str, int] = {
    "benign_round": 1,
    "cluster": 2,
    "ductal": 3,
    "skin": 4,
    "tissue_strand": 5,
    "paddle_edge": 6,
}

# Look-alikes are placed at least this far (mm) from any artery so that the
# BAC mask and the look-alike mask stay disjoint and the truth is unambiguous.
_VESSEL_CLEARANCE_MM = 3.0


@dataclass(frozen=True)
class MammogramParams:
    """Parameters of a mammogram phantom series.

    Attributes:
        size: ``"full"`` (4096×3328, 0.07 mm), ``"full-small"`` (3328×2560,
            0.085 mm) or ``"small"`` (1024×832, 0.28 mm).
        years: yearly exams per patient (≥ 1); each exam has the four views.
        bac_fraction: fraction of patients with BAC in [0, 1] (others have none).
        progress_fraction: fraction of BAC patients whose calcifications grow.
        artefacts: add grid lines, paddle edges and vendor tone variety.
        patient_offset: added to the patient number in the pseudonym
            (``PHANTOM-0001`` is patient index 0 with offset 0).
        first_year: earliest calendar year of a first exam.
    """

    size: str = "small"
    years: int = 1
    bac_fraction: float = 0.75
    progress_fraction: float = 0.7
    artefacts: bool = True
    patient_offset: int = 0
    first_year: int = 2010

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ParameterError(f"`size` must be one of {', '.join(SIZES)}; {self.size!r} is given.")
        if isinstance(self.years, bool) or not isinstance(self.years, int) or not 1 <= self.years <= 30:
            raise ParameterError(f"`years` must be an integer in 1..30, {self.years!r} is given.")
        for name in ("bac_fraction", "progress_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ParameterError(f"`{name}` must be in [0, 1], {value!r} is given.")
        if not isinstance(self.patient_offset, int) or self.patient_offset < 0:
            raise ParameterError(f"`patient_offset` must be a non-negative integer, {self.patient_offset!r} is given.")
        if not isinstance(self.first_year, int) or not 1990 <= self.first_year <= 2090:
            raise ParameterError(f"`first_year` must be in 1990..2090, {self.first_year!r} is given.")

    @property
    def images_per_patient(self) -> int:
        return 4 * self.years


# --------------------------------------------------------------------------------------
# index → (patient, exam, view)


def image_position(index: int, *, years: int) -> tuple[int, int, str]:
    """``(patient_index, exam_index, view_label)`` of image ``index`` in a series.

    Images run patient by patient, exam by exam, in the view order of :data:`VIEWS`.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    per_patient = 4 * years
    patient, rest = divmod(int(index), per_patient)
    exam, view = divmod(rest, 4)
    return patient, exam, VIEWS[view]


# --------------------------------------------------------------------------------------
# noise fields


def _power_law_field(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-std random field with power spectrum ∝ 1/f^beta, float32."""
    rows, cols = shape
    white = rng.standard_normal(shape, dtype=np.float32)
    spectrum = np.fft.rfft2(white)
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum *= (radius ** (-beta / 2.0)).astype(np.float32)
    spectrum[0, 0] = 0.0
    out = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    out -= out.mean()
    out /= out.std() + 1e-12
    return out


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# --------------------------------------------------------------------------------------
# patient and breast anatomy

_STYLES: tuple[str, ...] = ("A", "B", "C", "D")


@dataclass(frozen=True)
class _Patient:
    density: float
    has_bac: bool
    progressing: bool
    severity: float
    first_date: _dt.date
    style_seq: tuple[str, ...]


@dataclass(frozen=True)
class _Vessel:
    points_mm: np.ndarray  # [N, 2] (p, q), 0.25 mm apart
    diameter_mm: float
    dashes: tuple[tuple[float, float, float, str, float, int, float, float], ...]
    # each dash: (s_start, s_end, amplitude, form ∈ {solid, tram}, width_mm,
    #             sides bitmask (1 = one wall, 2 = other wall), segment centre, segment id)


@dataclass(frozen=True)
class _Segment:
    centre_mm: float
    half_length_mm: float
    growth_mm_per_year: float
    onset_exam: int


@dataclass(frozen=True)
class _Breast:
    depth_mm: float  # A
    half_height_mm: float  # B
    harmonics: tuple[tuple[int, float, float], ...]
    nipple_bump: float
    density_field: np.ndarray  # canonical grid, [GY, GX] float32 in [0, 1]
    fat_texture: np.ndarray  # canonical grid, zero-mean
    vessels: tuple[_Vessel, ...]
    segments: tuple[tuple[_Segment, ...], ...]  # per vessel
    ligaments: tuple[np.ndarray, ...]  # polylines in mm
    lookalikes: tuple[tuple[str, float, float, float, float], ...]  # kind, p, q, size_mm, angle
    strands: tuple[np.ndarray, ...]


# Canonical grid of normalised breast coordinates X = p / A, Y = q / B.
_GRID_X = (-0.15, 1.25)
_GRID_Y = (-2.2, 1.35)
_GRID_SHAPE = (448, 192)  # (rows over Y, cols over X)


def _patient(seed: int, patient: int, params: MammogramParams) -> _Patient:
    rng = rng_for(seed, "mammogram", "patient", patient)
    density = float(np.clip(rng.beta(2.0, 2.6), 0.02, 0.98))
    has_bac = bool(rng.random() < params.bac_fraction)
    progressing = bool(has_bac and rng.random() < params.progress_fraction)
    severity = float(rng.uniform(0.0, 1.0))
    year = params.first_year + int(rng.integers(0, 9))
    first_date = _dt.date(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    styles = [str(rng.choice(_STYLES))]
    for _ in range(1, params.years):
        styles.append(styles[-1] if rng.random() < 0.75 else str(rng.choice(_STYLES)))
    return _Patient(density, has_bac, progressing, severity, first_date, tuple(styles))


def _radial_streaks(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Unit-std noise on the canonical grid, correlated along rays from the nipple (X=1, Y=0)."""
    n_theta, n_r = 720, 96
    noise = rng.standard_normal((n_theta, n_r)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=float(rng.uniform(3.0, 6.0)), sigmaY=2.5,
                             borderType=cv2.BORDER_REFLECT)
    noise /= noise.std() + 1e-6
    r = np.hypot(X - 1.0, Y / 1.5)
    theta = np.arctan2(Y / 1.5, 1.0 - X)  # 0 along the breast axis towards the chest wall
    map_r = (r / 2.2 * (n_r - 1)).astype(np.float32)
    map_theta = ((theta + np.pi) / (2 * np.pi) * (n_theta - 1)).astype(np.float32)
    streaks = cv2.remap(noise, map_r, map_theta, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # Fade out towards the nipple, where all rays would meet in a starburst.
    return streaks * _smoothstep(0.1, 0.6, r).astype(np.float32)


def _outline_radius(phi: np.ndarray, harmonics: tuple[tuple[int, float, float], ...], nipple_bump: float) -> np.ndarray:
    radius = np.ones_like(phi)
    for k, amplitude, phase in harmonics:
        radius = radius + amplitude * np.cos(k * phi + phase)
    # The nipple sits at the tip of the breast (phi ≈ 0).
    radius = radius + nipple_bump * np.exp(-(phi / 0.07) ** 2)
    return radius


def _normalised_radius(X: np.ndarray, Y: np.ndarray, breast: _Breast) -> np.ndarray:
    phi = np.arctan2(Y, np.maximum(X, 1e-6))
    return np.sqrt(X * X + Y * Y) / _outline_radius(phi, breast.harmonics, breast.nipple_bump)


def _random_walk_vessel(
    rng: np.random.Generator,
    start: tuple[float, float],
    heading: float,
    target: tuple[float, float],
    length_mm: float,
    inside: Callable[[np.ndarray], bool],
) -> np.ndarray:
    """A tortuous path in breast mm from ``start`` drawn towards ``target``, stopping where ``inside`` fails."""
    step = 1.0
    points = [np.asarray(start, dtype=np.float64)]
    theta = heading
    for _ in range(int(length_mm / step)):
        pos = points[-1]
        to_target = math.atan2(target[1] - pos[1], target[0] - pos[0])
        diff = (to_target - theta + math.pi) % (2 * math.pi) - math.pi
        theta += 0.06 * diff + rng.normal(0.0, 0.16)
        nxt = pos + step * np.array([math.cos(theta), math.sin(theta)])
        if not inside(nxt):
            break
        points.append(nxt)
    path = np.array(points)
    if len(path) < 8:
        return path
    # Smooth, then add a small meander (arteries are tortuous at the mm scale).
    path = gaussian_filter1d(path, 2.0, axis=0, mode="nearest")
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    fine_s = np.arange(0.0, s[-1], 0.25)
    fine = np.stack([np.interp(fine_s, s, path[:, 0]), np.interp(fine_s, s, path[:, 1])], axis=1)
    tangent = np.gradient(fine, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    # Irregular meander: smoothed white noise (correlation length a few mm), not a sine.
    corr = rng.uniform(8.0, 20.0)  # samples of 0.25 mm
    wiggle = gaussian_filter1d(rng.standard_normal(len(fine_s)), corr)
    wiggle *= rng.uniform(0.3, 1.2) / (wiggle.std() + 1e-9)
    wiggle *= np.clip(fine_s / 5.0, 0.0, 1.0)  # leave the start in place (branch points)
    return fine + normal * wiggle[:, None]


def _layout_dashes(
    rng: np.random.Generator, length_mm: float, segments: tuple[_Segment, ...], diameter_mm: float, max_exam: int
) -> tuple[tuple[float, float, float, str, float, int, float, float], ...]:
    """Lay out the calcified dashes once along a vessel (over the widest extent any exam shows)."""
    dashes = []
    for seg_id, seg in enumerate(segments):
        widest = seg.half_length_mm + seg.growth_mm_per_year * max(0, max_exam - seg.onset_exam)
        lo, hi = max(0.0, seg.centre_mm - widest), min(length_mm, seg.centre_mm + widest)
        form_roll = rng.random()
        pattern = "fragmented" if form_roll < 0.55 else ("tram" if form_roll < 0.8 else "solid")
        width_mm = float(rng.uniform(0.07, 0.42)) if pattern != "solid" else float(rng.uniform(0.15, 0.42))
        base_amp = float(rng.uniform(0.12, 0.55))
        s = lo
        while s < hi:
            if pattern == "fragmented":
                dash_len = float(rng.uniform(0.3, 3.0))
                gap = float(rng.uniform(0.2, 2.2))
            else:  # continuous, drawn in short pieces so brightness varies along the wall
                dash_len = float(rng.uniform(1.0, 3.0))
                gap = 0.0 if rng.random() < 0.85 else float(rng.uniform(0.2, 0.8))
            end = min(hi, s + dash_len)
            if pattern == "solid" or (pattern == "fragmented" and rng.random() < 0.45):
                form, sides = "solid", 3
            else:
                form = "tram"
                roll = rng.random()
                sides = 3 if roll < 0.6 else (1 if roll < 0.8 else 2)
            amp = float(np.clip(base_amp * rng.uniform(0.6, 1.3), 0.08, 0.7))
            width = float(np.clip(width_mm * rng.uniform(0.7, 1.3), 0.07, 0.45))
            dashes.append((s, end, amp, form, width, sides, seg.centre_mm, float(seg_id)))
            s = end + gap
    return tuple(dashes)


def _inside_outline(
    pt: np.ndarray, depth: float, half_height: float, harmonics: tuple[tuple[int, float, float], ...],
    nipple_bump: float, margin: float = 0.93,
) -> bool:
    """Whether a point (breast mm) lies inside the outline shrunk to ``margin``, axillary tail included."""
    X_ = pt[0] / depth
    Y_ = pt[1] / half_height
    if X_ < -0.02:
        return False
    if Y_ < -0.8 and X_ < 0.45:  # towards the axillary tail (mostly seen on MLO views)
        return Y_ > -1.6
    phi = math.atan2(Y_, max(X_, 1e-6))
    radius = 1.0 + sum(a * math.cos(k * phi + ph) for k, a, ph in harmonics)
    radius += nipple_bump * math.exp(-((phi / 0.07) ** 2))
    return math.hypot(X_, Y_) / radius < margin


def _tissue_fields(rng: np.random.Generator, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Fibroglandular density and fat texture on the canonical grid, both ``float32[GY, GX]``.

    Density clouds concentrate behind the nipple and in the upper-outer part;
    ducts and fibrous strands add streaks converging on the nipple.
    """
    gy, gx = _GRID_SHAPE
    Y, X = np.meshgrid(
        np.linspace(*_GRID_Y, gy, dtype=np.float32), np.linspace(*_GRID_X, gx, dtype=np.float32), indexing="ij"
    )
    cloud = _power_law_field(rng, (gy, gx), beta=3.4)
    lobes = _power_law_field(rng, (gy, gx), beta=2.4)
    centre_q = float(rng.normal(-0.1, 0.12))
    envelope = np.exp(-(((X - 0.42) / 0.38) ** 2) - (((Y - centre_q) / 0.62) ** 2))
    envelope += 0.5 * np.exp(-(((X - 0.2) / 0.25) ** 2) - (((Y + 0.75) / 0.45) ** 2))  # towards the axilla
    d = density
    threshold = 1.2 - 1.1 * d
    raw = 1.1 * envelope + 0.45 * cloud + 0.15 * lobes - threshold
    density_field = 1.0 / (1.0 + np.exp(-raw / (0.06 + 0.08 * rng.random())))
    density_field = (density_field * (0.55 + 0.45 * d)).astype(np.float32)
    fat_texture = _power_law_field(rng, (gy, gx), beta=2.0)
    # Ducts and fibrous strands converge on the nipple: streaks along rays from it,
    # made as noise that is long along the ray and thin across it.
    streaks = _radial_streaks(rng, X, Y)
    density_field = np.clip(density_field * (1.0 + 0.18 * streaks), 0.0, 1.0).astype(np.float32)
    fat_texture = (fat_texture + 0.35 * streaks).astype(np.float32)
    return density_field, fat_texture


def _arteries(
    rng: np.random.Generator, depth: float, half_height: float, inside: Callable[[np.ndarray], bool]
) -> list[_Vessel]:
    """Tortuous arterial trunks running towards the nipple, with branches (not yet calcified)."""
    nipple = (depth * 0.97, 0.0)
    vessels: list[_Vessel] = []
    n_trunks = int(rng.integers(2, 6))
    for t in range(n_trunks):
        if t == 0 and rng.random() < 0.7:  # lateral thoracic artery from the axilla
            start = (float(rng.uniform(2.0, 0.2 * depth)), float(rng.uniform(-1.35, -0.95) * half_height))
        else:
            start = (float(rng.uniform(0.0, 6.0)), float(rng.uniform(-0.8, 0.7) * half_height))
        target = (nipple[0] * rng.uniform(0.75, 1.0), nipple[1] + rng.normal(0.0, 0.25 * half_height))
        heading = math.atan2(target[1] - start[1], target[0] - start[0]) + rng.normal(0.0, 0.35)
        trunk = _random_walk_vessel(rng, start, heading, target, rng.uniform(0.8, 1.6) * depth + abs(start[1]), inside)
        if len(trunk) < 40:
            continue
        vessels.append(_Vessel(trunk, float(rng.uniform(0.9, 2.0)), ()))
        for _ in range(int(rng.integers(0, 4))):
            k = int(rng.integers(len(trunk) // 5, max(len(trunk) // 5 + 1, 3 * len(trunk) // 4)))
            tangent = trunk[min(k + 4, len(trunk) - 1)] - trunk[max(k - 4, 0)]
            theta = math.atan2(tangent[1], tangent[0]) + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)
            end = trunk[k] + 40.0 * np.array([math.cos(theta), math.sin(theta)])
            branch = _random_walk_vessel(rng, tuple(trunk[k]), theta, (float(end[0]), float(end[1])),
                                         rng.uniform(0.3, 0.8) * depth, inside)
            if len(branch) >= 30:
                vessels.append(_Vessel(branch, float(rng.uniform(0.5, 1.2)), ()))
    return vessels


def _calcify(
    rng: np.random.Generator, vessels: list[_Vessel], person: _Patient, params: MammogramParams
) -> tuple[list[_Vessel], list[tuple[_Segment, ...]]]:
    """Calcified segments per vessel and their dashes (same stream whatever the exam, so anatomy is stable)."""
    max_exam = params.years - 1
    all_segments: list[tuple[_Segment, ...]] = []
    final_vessels: list[_Vessel] = []
    calcified_share = 0.25 + 0.75 * person.severity
    # The longest vessel of a BAC patient is always calcified somewhere.
    longest = int(np.argmax([len(v.points_mm) for v in vessels])) if vessels else -1
    for v_idx, vessel in enumerate(vessels):
        length = 0.25 * (len(vessel.points_mm) - 1)
        segs: list[_Segment] = []
        if person.has_bac and (v_idx == longest or rng.random() < calcified_share):
            for _ in range(int(rng.integers(1, 2 + int(3 * person.severity) + 1))):
                centre = float(rng.uniform(0.1, 0.9) * length)
                half = float(rng.uniform(2.0, 6.0 + 22.0 * person.severity))
                growth = float(rng.uniform(1.5, 6.0)) if person.progressing else 0.0
                onset = 0 if (rng.random() < 0.7 or max_exam == 0) else int(rng.integers(0, max_exam + 1))
                segs.append(_Segment(centre, half, growth, onset))
        dashes = _layout_dashes(rng, length, tuple(segs), vessel.diameter_mm, max_exam) if segs else ()
        final_vessels.append(_Vessel(vessel.points_mm, vessel.diameter_mm, dashes))
        all_segments.append(tuple(segs))
    return final_vessels, all_segments


def _ligaments(rng: np.random.Generator, depth: float, half_height: float) -> list[np.ndarray]:
    """Cooper's ligaments: short arcs roughly parallel to the skin, in the outer breast (polylines in mm)."""
    ligaments = []
    for _ in range(int(rng.integers(25, 70))):
        rho = rng.uniform(0.45, 0.93)
        phi = rng.uniform(-1.35, 1.35)
        span = rng.uniform(0.06, 0.25)
        bend = rng.normal(0.0, 0.04)
        t = np.linspace(-0.5, 0.5, 24)
        rr = rho + bend * (1 - (2 * t) ** 2) + rng.normal(0, 0.01)
        pp = phi + span * t
        ligaments.append(np.stack([rr * np.cos(pp) * depth, rr * np.sin(pp) * half_height], axis=1))
    return ligaments


@dataclass(frozen=True)
class _Placer:
    """Places look-alikes inside the outline, clear of every artery."""

    rng: np.random.Generator
    tree: cKDTree
    depth: float
    half_height: float
    harmonics: tuple[tuple[int, float, float], ...]
    nipple_bump: float

    def place(self, rho_lo: float, rho_hi: float, size: float, tries: int = 40) -> tuple[float, float] | None:
        """A point (breast mm) at a normalised radius in ``[rho_lo, rho_hi)`` farther than the clearance + size
        from every artery, or None after ``tries`` draws."""
        rng = self.rng
        for _ in range(tries):
            rho = rng.uniform(rho_lo, rho_hi)
            phi = rng.uniform(-1.3, 1.3)
            radius = _outline_radius(np.array(phi), self.harmonics, self.nipple_bump)
            p = float(rho * radius * math.cos(phi) * self.depth)
            q = float(rho * radius * math.sin(phi) * self.half_height)
            if self.tree.query((p, q))[0] > _VESSEL_CLEARANCE_MM + size:
                return p, q
        return None


def _lookalike_calcifications(
    placer: _Placer, nipple: tuple[float, float]
) -> list[tuple[str, float, float, float, float]]:
    """Benign round, clustered, ductal and skin calcifications: ``(kind, p, q, size_mm, extra)`` each."""
    rng = placer.rng
    lookalikes: list[tuple[str, float, float, float, float]] = []
    counts = {
        "benign_round": int(rng.integers(0, 6)),
        "cluster": int(rng.integers(0, 3)),
        "ductal": int(rng.integers(0, 5)),
        "skin": int(rng.integers(0, 4)),
    }
    for _ in range(counts["benign_round"]):
        size = float(rng.uniform(0.6, 3.5))
        at = placer.place(0.15, 0.85, size)
        if at:
            lookalikes.append(("benign_round", at[0], at[1], size, float(rng.random())))
    for _ in range(counts["cluster"]):
        at = placer.place(0.2, 0.8, 6.0)
        if at:
            lookalikes.append(("cluster", at[0], at[1], float(rng.uniform(3.0, 7.0)), float(rng.uniform(0, 1e6))))
    for _ in range(counts["ductal"]):
        size = float(rng.uniform(2.0, 9.0))
        at = placer.place(0.2, 0.8, size)
        if at:
            # Ducts converge on the nipple: rods point towards it.
            angle = math.atan2(nipple[1] - at[1], nipple[0] - at[0]) + rng.normal(0.0, 0.25)
            lookalikes.append(("ductal", at[0], at[1], size, angle))
    for _ in range(counts["skin"]):
        size = float(rng.uniform(0.6, 2.0))
        at = placer.place(0.96, 0.985, size)
        if at:
            lookalikes.append(("skin", at[0], at[1], size, float(rng.random())))
    return lookalikes


def _tissue_strands(placer: _Placer) -> list[np.ndarray]:
    """Bright tissue strands (look-alikes of a calcified vessel), polylines in mm clear of every artery."""
    rng = placer.rng
    strands: list[np.ndarray] = []
    for _ in range(int(rng.integers(0, 4))):
        at = placer.place(0.3, 0.8, 25.0)
        if at is None:
            continue
        theta = rng.uniform(0, 2 * np.pi)
        t = np.linspace(0.0, rng.uniform(10.0, 28.0), 30)
        curve = rng.normal(0.0, 0.02)
        angles = theta + curve * t
        path = np.stack([at[0] + np.cumsum(np.cos(angles)) * (t[1] - t[0]),
                         at[1] + np.cumsum(np.sin(angles)) * (t[1] - t[0])], axis=1)
        if placer.tree.query(path)[0].min() > _VESSEL_CLEARANCE_MM + 1.0:
            strands.append(path)
    return strands


@functools.lru_cache(maxsize=32)
def _breast(seed: int, patient: int, laterality: str, person: _Patient, params: MammogramParams) -> _Breast:
    """The anatomy of one breast (cached: all views and exams of a breast share it).

    One random stream, drawn in this order: outline, tissue fields, arteries,
    calcified segments, ligaments, look-alikes.
    """
    rng = rng_for(seed, "mammogram", "patient", patient, "breast", laterality)
    depth = float(rng.uniform(95.0, 165.0))
    half_height = float(rng.uniform(78.0, 118.0))
    harmonics = tuple((k, float(rng.normal(0.0, 0.03 / k)), float(rng.uniform(0, 2 * np.pi))) for k in (2, 3, 4, 5))
    nipple_bump = float(rng.uniform(0.0, 0.05))
    density_field, fat_texture = _tissue_fields(rng, person.density)
    inside = functools.partial(_inside_outline, depth=depth, half_height=half_height, harmonics=harmonics,
                               nipple_bump=nipple_bump)
    vessels, segments = _calcify(rng, _arteries(rng, depth, half_height, inside), person, params)
    ligaments = _ligaments(rng, depth, half_height)
    # Look-alikes, kept clear of every artery.
    vessel_points = np.concatenate([v.points_mm for v in vessels]) if vessels else np.zeros((1, 2)) + 1e6
    placer = _Placer(rng, cKDTree(vessel_points), depth, half_height, harmonics, nipple_bump)
    lookalikes = _lookalike_calcifications(placer, nipple=(depth * 0.97, 0.0))
    strands = _tissue_strands(placer)
    return _Breast(depth, half_height, harmonics, nipple_bump, density_field, fat_texture, tuple(vessels),
                   tuple(segments), tuple(ligaments), tuple(lookalikes), tuple(strands))


# --------------------------------------------------------------------------------------
# view geometry


@dataclass(frozen=True)
class _ViewGeometry:
    spacing: float
    x0: float  # chest-wall origin, pixels (canonical orientation: chest wall at the left)
    yc: float
    alpha: float  # tilt of the breast axis (radians, + = nipple lower)
    sx: float
    sy: float
    up_stretch: float  # MLO: the upper breast is drawn out towards the axilla
    pectoral: tuple[float, float, float] | None  # (width px at top, height px at chest wall, bow)

    def to_pixels(self, pq: np.ndarray, half_height: float) -> np.ndarray:
        """Breast mm [N, 2] → canonical pixel (x, y) [N, 2]."""
        p, q = pq[:, 0], pq[:, 1]
        q = np.where(q < 0, q * self.up_stretch, q)
        u = p * self.sx / self.spacing
        v = q * self.sy / self.spacing
        ca, sa = math.cos(self.alpha), math.sin(self.alpha)
        return np.stack([self.x0 + u * ca - v * sa, self.yc + u * sa + v * ca], axis=1)

    def to_breast(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical pixel coordinates → breast mm (p, q), arrays of any shape."""
        dx, dy = x - self.x0, y - self.yc
        ca, sa = math.cos(self.alpha), math.sin(self.alpha)
        u = dx * ca + dy * sa
        v = -dx * sa + dy * ca
        p = u * self.spacing / self.sx
        q = v * self.spacing / self.sy
        q = np.where(q < 0, q / self.up_stretch, q)
        return p, q


def _view_geometry(seed: int, patient: int, laterality: str, view: str, exam: int, breast: _Breast,
                   shape: tuple[int, int], spacing: float) -> _ViewGeometry:
    rows, cols = shape
    base = rng_for(seed, "mammogram", "patient", patient, "breast", laterality, "view", view)
    jitter = rng_for(seed, "mammogram", "patient", patient, "breast", laterality, "view", view, "exam", exam)
    height_mm = rows * spacing
    if view == "CC":
        alpha = float(base.normal(0.0, 0.05)) + float(jitter.normal(0.0, 0.02))
        yc = rows * (0.5 + float(base.normal(0.0, 0.03)) + float(jitter.normal(0.0, 0.012)))
        sx, sy, up = 1.0, 1.0, 1.0
        pectoral = None
    else:
        alpha = float(base.uniform(0.12, 0.32)) + float(jitter.normal(0.0, 0.025))
        yc = rows * (0.44 + float(base.normal(0.0, 0.03)) + float(jitter.normal(0.0, 0.012)))
        sx = float(base.uniform(1.0, 1.12))
        sy = float(base.uniform(1.02, 1.15))
        up = float(base.uniform(1.5, 2.0))
        pw = cols * float(base.uniform(0.18, 0.36)) * (1 + float(jitter.normal(0.0, 0.04)))
        ph = rows * float(base.uniform(0.3, 0.52)) * (1 + float(jitter.normal(0.0, 0.04)))
        pectoral = (pw, ph, float(base.uniform(0.0, 0.06)))
    # Scale: the breast must fit the detector height; positioning moves it a little each year.
    fit = min(1.0, 0.86 * height_mm / (2.0 * breast.half_height_mm * sy))
    scale = fit * (1.0 + float(jitter.normal(0.0, 0.025)))
    x0 = -cols * abs(float(jitter.normal(0.0, 0.01)))
    return _ViewGeometry(spacing, x0, yc, alpha, sx * scale, sy * scale, up, pectoral)


# --------------------------------------------------------------------------------------
# rendering helpers


def _sample_canonical(field_: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    gy, gx = field_.shape
    map_x = ((X - _GRID_X[0]) / (_GRID_X[1] - _GRID_X[0]) * (gx - 1)).astype(np.float32)
    map_y = ((Y - _GRID_Y[0]) / (_GRID_Y[1] - _GRID_Y[0]) * (gy - 1)).astype(np.float32)
    return cv2.remap(field_, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _to_int_points(xy: np.ndarray, shift: int) -> np.ndarray:
    return np.rint(xy * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)


def _pectoral_polygon(geometry: _ViewGeometry, n: int = 64) -> np.ndarray:
    assert geometry.pectoral is not None
    pw, ph, bow = geometry.pectoral
    t = np.linspace(0.0, 1.0, n)
    x = pw * (1 - t)
    y = ph * t
    # Bow the edge outwards (the muscle is convex towards the breast).
    length = math.hypot(pw, ph)
    nx, ny = ph / length, pw / length
    offset = bow * length * np.sin(np.pi * t)
    edge = np.stack([x + nx * offset, y + ny * offset], axis=1)
    return np.concatenate([np.array([[-2.0, -2.0]]), edge, np.array([[-2.0, ph + 2.0]])], axis=0)


# Vendor-style looks: (gamma range, contrast range, noise range, blur range px at full size, grid prob).
_Look = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float], float]
_STYLE_LOOK: dict[str, _Look] = {
    "A": ((0.85, 1.1), (5.0, 7.0), (0.006, 0.012), (0.3, 0.9), 0.3),
    "B": ((1.0, 1.35), (4.0, 6.0), (0.008, 0.016), (0.5, 1.3), 0.1),
    "C": ((0.75, 0.95), (6.0, 8.5), (0.004, 0.010), (0.2, 0.7), 0.4),
    "D": ((0.9, 1.2), (3.5, 5.0), (0.010, 0.020), (0.6, 1.5), 0.2),
}


# Sub-pixel bits of the OpenCV drawing calls (coordinates in 1/16 px).
_SHIFT = 4


def _shifted_year(first: _dt.date, years: int) -> _dt.date:
    return first.replace(year=first.year + years)  # day ≤ 28, so always valid


@dataclass(frozen=True)
class _Frame:
    """One image's pixel grid: full size, and the coarser working grid of the smooth fields.

    Attributes:
        rows, cols: image size in px.
        spacing: pixel spacing at the breast in mm.
        work: working-grid divisor (smooth fields are computed at ``rows // work``
            × ``cols // work`` px, then upsampled).
    """

    rows: int
    cols: int
    spacing: float
    work: int

    @property
    def full_scale(self) -> float:
        """Pixel lengths in this module are quoted at full size (0.07 mm); multiply by this."""
        return 0.07 / self.spacing

    @property
    def working_shape(self) -> tuple[int, int]:
        return self.rows // self.work, self.cols // self.work

    def up(self, field_: np.ndarray) -> np.ndarray:
        """A working-grid field upsampled to the image, float32."""
        if self.work == 1:
            return field_.astype(np.float32, copy=False)
        return cv2.resize(field_.astype(np.float32), (self.cols, self.rows), interpolation=cv2.INTER_LINEAR)


def _soft_tissue_lines(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, render: np.random.Generator
) -> np.ndarray:
    """Faint soft-tissue arteries and ligaments drawn on the working grid, float32 in [0, 1]."""
    spacing, work = frame.spacing, frame.work
    soft = np.zeros(frame.working_shape, np.uint8)
    for vessel in breast.vessels:
        xy = geometry.to_pixels(vessel.points_mm, breast.half_height_mm) / work
        thickness = max(1, int(round(vessel.diameter_mm * geometry.sx / spacing / work)))
        cv2.polylines(soft, [_to_int_points(xy, 4)], False, int(render.uniform(50, 110)), thickness, cv2.LINE_AA, 4)
    for ligament in breast.ligaments:
        xy = geometry.to_pixels(ligament, breast.half_height_mm) / work
        cv2.polylines(soft, [_to_int_points(xy, 4)], False, int(render.uniform(40, 120)),
                      max(1, int(round(0.35 / spacing / work))), cv2.LINE_AA, 4)
    return cv2.GaussianBlur(soft.astype(np.float32) / 255.0, (0, 0), max(0.6, 0.25 / spacing / work))


def _working_tissue(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, render: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rho, density, tissue)`` on the working grid: normalised breast radius, glandular density, tissue signal."""
    rows, cols = frame.rows, frame.cols
    wr, wc = frame.working_shape
    ys, xs = np.meshgrid(
        (np.arange(wr, dtype=np.float32) + 0.5) * (rows / wr) - 0.5,
        (np.arange(wc, dtype=np.float32) + 0.5) * (cols / wc) - 0.5,
        indexing="ij",
    )
    p, q = geometry.to_breast(xs, ys)
    X = (p / breast.depth_mm).astype(np.float32)
    Y = (q / breast.half_height_mm).astype(np.float32)
    rho = _normalised_radius(X, Y, breast).astype(np.float32)
    rho = np.where(X < 0, np.maximum(rho, 0.0), rho)
    density = _sample_canonical(breast.density_field, X, Y)
    fat_tex = _sample_canonical(breast.fat_texture, X, Y)
    # Subcutaneous fat: no glandular tissue in the outer rim of the breast.
    density = density * (1.0 - _smoothstep(0.72, 0.95, rho))
    tissue = 0.24 + 0.40 * density + 0.045 * fat_tex * (1.0 - 0.3 * density)
    tissue = tissue + 0.12 * _soft_tissue_lines(frame, geometry, breast, render)
    return rho, density, tissue


def _parenchyma(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, render: np.random.Generator,
    rho: np.ndarray, density: np.ndarray, tissue: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, breast_mask, edge_px, tissue_full)`` at full size: the tissue signal with fine texture, the thinner
    periphery and the skin line; the breast; the distance to the skin in px; the upsampled smooth tissue."""
    rows, cols, spacing = frame.rows, frame.cols, frame.spacing
    rho_full = frame.up(rho)
    breast_mask = rho_full < 1.0
    tissue_full = frame.up(tissue)
    # Fine parenchymal texture at (up to) half the full resolution.
    fine_rows = min(rows, 2048)
    fine_cols = int(round(cols * fine_rows / rows))
    fine = _power_law_field(render, (fine_rows, fine_cols), beta=2.6)
    if fine_rows != rows:
        fine = cv2.resize(fine, (cols, rows), interpolation=cv2.INTER_LINEAR)
    density_full = frame.up(density)
    mu = tissue_full + (0.018 + 0.05 * density_full) * fine
    # Periphery: thinner compressed tissue, then the skin line.
    edge_px = (1.0 - rho_full) * breast.depth_mm * geometry.sx / spacing  # ≈ distance to the skin, px
    mu *= 0.72 + 0.28 * _smoothstep(0.0, 14.0 / spacing, edge_px)
    skin_px = render.uniform(1.2, 2.4) / spacing
    mu += 0.10 * np.exp(-((edge_px / max(skin_px, 0.8)) ** 2)) * breast_mask
    return mu, breast_mask, edge_px, tissue_full


def _add_pectoral(
    frame: _Frame, geometry: _ViewGeometry, render: np.random.Generator, mu: np.ndarray, breast_mask: np.ndarray,
    tissue_full: np.ndarray, tissue: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, pectoral_mask)``: the pectoral muscle blended in on MLO views (unchanged, all False on CC)."""
    rows, cols, work, full_scale = frame.rows, frame.cols, frame.work, frame.full_scale
    pectoral_mask = np.zeros((rows, cols), bool)
    if geometry.pectoral is None:
        return mu, pectoral_mask
    wr, wc = frame.working_shape
    poly = _pectoral_polygon(geometry)
    canvas = np.zeros((rows, cols), np.uint8)
    cv2.fillPoly(canvas, [_to_int_points(poly, 4)], 1, cv2.LINE_8, 4)
    pectoral_mask = canvas.astype(bool) & breast_mask
    pw, ph, _ = geometry.pectoral
    length = math.hypot(pw, ph)
    # Muscle fibres run along the muscle edge: stripes in the distance from it.
    yy, xx = np.mgrid[0:wr, 0:wc].astype(np.float32) * work
    dist = (xx * ph + yy * pw - pw * ph) / length
    fibres = np.sin(dist / (render.uniform(30, 60) * full_scale) + 3.0 * _bending_noise(render, (wr, wc)))
    muscle = render.uniform(0.42, 0.58) + 0.015 * fibres + 0.08 * _smoothstep(0, -0.3 * length, dist)
    muscle_full = frame.up(muscle.astype(np.float32)) + 0.3 * (tissue_full - float(np.median(tissue)))
    soft_edge = cv2.GaussianBlur(pectoral_mask.astype(np.float32), (0, 0), max(0.8, 1.5 * full_scale * 3))
    return mu * (1 - soft_edge) + muscle_full * soft_edge, pectoral_mask


def _wall_lines(xy: np.ndarray, form: str, sides: int, half_sep: float) -> list[np.ndarray]:
    """The polylines of one dash: its centre line when solid, else the walls named by ``sides`` (tram track)."""
    if form == "solid":
        return [xy]
    tangent = np.gradient(xy, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    lines = []
    if sides & 1:
        lines.append(xy + normal * half_sep)
    if sides & 2:
        lines.append(xy - normal * half_sep)
    return lines


def _draw_calcified_dashes(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, render: np.random.Generator, *, exam: int, years: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(calc, bac_canvas, bac_length)``: the calcified dashes visible at ``exam`` drawn anti-aliased
    (uint8 brightness) and as the exact mask (uint8 0/1), and their length along the vessels (mm)."""
    spacing, shift = frame.spacing, _SHIFT
    calc = np.zeros((frame.rows, frame.cols), np.uint8)
    bac_canvas = np.zeros((frame.rows, frame.cols), np.uint8)
    bac_length = 0.0
    for vessel, segs in zip(breast.vessels, breast.segments):
        if not vessel.dashes:
            continue
        pts = vessel.points_mm
        s_axis = np.arange(len(pts)) * 0.25
        sep_mm = vessel.diameter_mm * float(render.uniform(0.75, 1.0))
        for (s0, s1, amp, form, width_mm, sides, centre, seg_id) in vessel.dashes:
            seg = segs[int(seg_id)]
            if exam < seg.onset_exam:
                continue
            half = seg.half_length_mm + seg.growth_mm_per_year * (exam - seg.onset_exam)
            lo, hi = max(s0, seg.centre_mm - half), min(s1, seg.centre_mm + half)
            if hi - lo < 0.1:
                continue
            ss = np.arange(lo, hi + 1e-9, max(0.05, min(0.25, (hi - lo) / 4)))
            centre_line = np.stack([np.interp(ss, s_axis, pts[:, 0]), np.interp(ss, s_axis, pts[:, 1])], axis=1)
            xy = geometry.to_pixels(centre_line, breast.half_height_mm)
            if len(xy) < 2:
                xy = np.vstack([xy, xy + 0.5])
            thickness = max(1, int(round(width_mm / spacing)))
            colour = int(round(255 * amp * (1.0 + 0.25 * exam / max(1, years))))  # calcium densifies
            half_sep = max(1.5, 0.5 * sep_mm * geometry.sx / spacing)
            for line in _wall_lines(xy, form, sides, half_sep):
                pts_i = _to_int_points(line, shift)
                cv2.polylines(calc, [pts_i], False, min(colour, 255), thickness, cv2.LINE_AA, shift)
                cv2.polylines(bac_canvas, [pts_i], False, 1, thickness, cv2.LINE_8, shift)
            bac_length += hi - lo
    return calc, bac_canvas, bac_length


def _calcium_signal(
    calc: np.ndarray, allowed: np.ndarray, grain_rng: np.random.Generator, full_scale: float
) -> np.ndarray:
    """The calcium's added signal, float32: the dashes inside ``allowed``, blotchy inside each dash
    (calcium is deposited unevenly; the mask is unchanged)."""
    calc_f = calc.astype(np.float32) / 255.0
    calc_f *= allowed
    ys_c, xs_c = np.nonzero(calc)
    if len(ys_c):
        top, bottom, left, right = ys_c.min(), ys_c.max() + 1, xs_c.min(), xs_c.max() + 1
        grain = grain_rng.standard_normal((bottom - top, right - left), dtype=np.float32)
        grain = cv2.GaussianBlur(grain, (0, 0), max(0.7, 1.2 * full_scale))
        grain /= grain.std() + 1e-6
        calc_f[top:bottom, left:right] *= np.clip(1.0 + 0.3 * grain, 0.45, 1.6)
    return calc_f


def _draw_lookalike(
    canvas: np.ndarray, labels: np.ndarray, kind: str, centre: tuple[float, float], size_mm: float, extra: float,
    *, local: np.random.Generator, seed: int, spacing: float,
) -> float:
    """Draw one calcification look-alike at ``centre`` (x, y px) on ``canvas`` (brightness) and ``labels`` (its code);
    return its size in px (diameter, or length for ductal rods). ``local`` is its own random stream; a cluster
    draws its members from the series' cluster stream named by ``extra``."""
    shift = _SHIFT
    cx, cy = centre
    code = LOOKALIKE_CODES[kind]
    radius_px = max(1.0, 0.5 * size_mm / spacing)
    brightness = int(local.uniform(90, 200))
    if kind in ("benign_round", "skin"):
        c = _to_int_points(np.array([[cx, cy]]), shift)[0, 0]
        r = int(round(radius_px * (1 << shift)))
        if kind == "skin" or extra < 0.35:  # rim ("eggshell") calcification with a lucent centre
            ring = max(1, int(round(radius_px * 0.35)))
            cv2.circle(canvas, tuple(c), r, brightness, ring, cv2.LINE_AA, shift)
            cv2.circle(labels, tuple(c), r, code, ring, cv2.LINE_8, shift)
        else:
            cv2.circle(canvas, tuple(c), r, brightness, -1, cv2.LINE_AA, shift)
            cv2.circle(labels, tuple(c), r, code, -1, cv2.LINE_8, shift)
    elif kind == "cluster":
        rng = rng_for(seed, "mammogram", "cluster", int(extra))
        for _ in range(int(rng.integers(5, 16))):
            off = rng.normal(0.0, 0.3 * size_mm / spacing, 2)
            rr = max(0.6, rng.uniform(0.1, 0.3) / spacing)
            c = _to_int_points(np.array([[cx + off[0], cy + off[1]]]), shift)[0, 0]
            cv2.circle(canvas, tuple(c), int(rr * (1 << shift)), int(rng.uniform(90, 180)), -1, cv2.LINE_AA, shift)
            cv2.circle(labels, tuple(c), int(rr * (1 << shift)), code, -1, cv2.LINE_8, shift)
    elif kind == "ductal":
        length_px = size_mm / spacing
        direction = np.array([math.cos(extra), math.sin(extra)])
        start = np.array([cx, cy]) - 0.5 * length_px * direction
        end = start + length_px * direction
        thickness = max(1, int(round(local.uniform(0.25, 0.8) / spacing)))
        seg_pts = [np.stack([start, end])]
        if local.random() < 0.4:  # a branching rod
            turn = extra + local.choice([-1, 1]) * local.uniform(0.4, 0.8)
            seg_pts.append(np.stack([end - 0.3 * length_px * direction,
                                     end - 0.3 * length_px * direction
                                     + 0.5 * length_px * np.array([math.cos(turn), math.sin(turn)])]))
        for sp in seg_pts:
            cv2.polylines(canvas, [_to_int_points(sp, shift)], False, brightness, thickness, cv2.LINE_AA, shift)
            cv2.polylines(labels, [_to_int_points(sp, shift)], False, code, thickness, cv2.LINE_8, shift)
    return 2 * radius_px if kind != "ductal" else size_mm / spacing


def _draw_lookalikes(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, breast_mask: np.ndarray, pectoral_mask: np.ndarray,
    *, seed: int, patient_index: int, laterality: str,
) -> tuple[np.ndarray, np.ndarray, list[Lookalike]]:
    """``(canvas, labels, lookalikes)``: the breast's calcification look-alikes that fall on the breast (not
    the muscle) in this view, as uint8 brightness, uint8 codes and records (each from its own random stream)."""
    rows, cols = frame.rows, frame.cols
    canvas = np.zeros((rows, cols), np.uint8)
    labels = np.zeros((rows, cols), np.uint8)
    lookalikes: list[Lookalike] = []
    for kind, lp, lq, size_mm, extra in breast.lookalikes:
        centre = geometry.to_pixels(np.array([[lp, lq]]), breast.half_height_mm)[0]
        cx, cy = float(centre[0]), float(centre[1])
        if not (0 <= cx < cols and 0 <= cy < rows) or not breast_mask[int(cy), int(cx)] or pectoral_mask[int(cy), int(cx)]:
            continue
        local = rng_for(seed, "mammogram", "lookalike", patient_index, laterality, kind, f"{lp:.3f},{lq:.3f}")
        size_px = _draw_lookalike(
            canvas, labels, kind, (cx, cy), size_mm, extra, local=local, seed=seed, spacing=frame.spacing
        )
        lookalikes.append(Lookalike(kind, cy, cx, size_px))
    return canvas, labels, lookalikes


def _draw_strands_and_paddle(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, render: np.random.Generator, canvas: np.ndarray,
    labels: np.ndarray, lookalikes: list[Lookalike], *, artefacts: bool,
) -> None:
    """Draw the bright tissue strands and, sometimes, the compression paddle's edge (edits in place)."""
    spacing, shift = frame.spacing, _SHIFT
    for strand in breast.strands:
        xy = geometry.to_pixels(strand, breast.half_height_mm)
        thickness = max(1, int(round(render.uniform(0.4, 1.2) / spacing)))
        cv2.polylines(canvas, [_to_int_points(xy, shift)], False, int(render.uniform(22, 50)), thickness,
                      cv2.LINE_AA, shift)
        cv2.polylines(labels, [_to_int_points(xy, shift)], False, LOOKALIKE_CODES["tissue_strand"], thickness,
                      cv2.LINE_8, shift)
        mid = xy[len(xy) // 2]
        lookalikes.append(Lookalike("tissue_strand", float(mid[1]), float(mid[0]), float(len(xy))))
    # Artefacts: the compression paddle's edge across the breast.
    if artefacts and render.random() < 0.2:
        rows, cols = frame.rows, frame.cols
        x_edge = float(render.uniform(0.15, 0.5)) * cols
        tilt = render.normal(0.0, 0.01) * rows
        line = np.array([[x_edge, 0.0], [x_edge + tilt, rows - 1.0]])
        thickness = max(1, int(round(3 * frame.full_scale)))
        cv2.polylines(canvas, [_to_int_points(line, shift)], False, int(render.uniform(15, 35)), thickness,
                      cv2.LINE_AA, shift)
        cv2.polylines(labels, [_to_int_points(line, shift)], False, LOOKALIKE_CODES["paddle_edge"], thickness,
                      cv2.LINE_8, shift)


def _add_lookalikes(
    frame: _Frame, geometry: _ViewGeometry, breast: _Breast, render: np.random.Generator, mu: np.ndarray,
    breast_mask: np.ndarray, pectoral_mask: np.ndarray, bac_mask: np.ndarray, *, seed: int, patient_index: int,
    laterality: str, artefacts: bool,
) -> tuple[np.ndarray, list[Lookalike]]:
    """Draw every look-alike and add its signal to ``mu`` in place, on the breast but never on BAC pixels.

    Returns:
        ``(lookalike_mask, lookalikes)``: uint8 codes of :data:`LOOKALIKE_CODES`, and the records.
    """
    canvas, labels, lookalikes = _draw_lookalikes(frame, geometry, breast, breast_mask, pectoral_mask, seed=seed,
                                                  patient_index=patient_index, laterality=laterality)
    _draw_strands_and_paddle(frame, geometry, breast, render, canvas, labels, lookalikes, artefacts=artefacts)
    inside_soft = breast_mask & ~bac_mask
    mu += (canvas.astype(np.float32) / 255.0) * inside_soft
    return np.where(inside_soft, labels, 0).astype(np.uint8), lookalikes


@dataclass(frozen=True)
class _Tone:
    """The rendering choices drawn for one image (recorded in its metadata)."""

    gamma: float
    noise_sigma: float
    blur_sigma: float


def _tone_blur_noise(
    frame: _Frame, render: np.random.Generator, look: _Look, mu: np.ndarray, breast_mask: np.ndarray, *,
    artefacts: bool,
) -> tuple[np.ndarray, _Tone]:
    """The presentation image from the tissue signal: vendor tone curve, blur, grid lines, quantum noise;
    background exact zeros or faint detector noise. Returns the image (float, in [0, 0.995]) and the choices."""
    rows, cols, full_scale = frame.rows, frame.cols, frame.full_scale
    gamma = float(render.uniform(*look[0]))
    contrast = float(render.uniform(*look[1]))
    mu = np.clip(mu, 0.0, 1.2)
    lo_t = 1.0 / (1.0 + math.exp(contrast * 0.45))
    hi_t = 1.0 / (1.0 + math.exp(-contrast * 0.65))
    toned = (1.0 / (1.0 + np.exp(-contrast * (mu - 0.45))) - lo_t) / (hi_t - lo_t)
    image = np.clip(toned, 0.0, 1.0) ** gamma
    image = np.where(breast_mask, image, 0.0).astype(np.float32)
    # A narrow dark halo outside the skin is how processed images look; keep background at 0.
    blur_sigma = float(render.uniform(*look[3])) * full_scale
    if blur_sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    if artefacts and render.random() < look[4]:
        period = float(render.uniform(3.0, 9.0))
        axis_cols = render.random() < 0.5
        n = cols if axis_cols else rows
        stripe = (0.006 * np.sin(2 * np.pi * np.arange(n, dtype=np.float32) / period)).astype(np.float32)
        image += stripe[None, :] if axis_cols else stripe[:, None]
    # Quoted per full-size pixel; larger pixels average the quantum noise down.
    noise_sigma = float(render.uniform(*look[2])) * max(0.3, full_scale)
    noise = render.standard_normal((rows, cols), dtype=np.float32)
    image += noise * (noise_sigma * (0.5 + 0.5 * np.sqrt(np.clip(image, 0, 1))))
    # Background: exact zeros, with faint detector noise on some styles (half the pixels stay 0).
    background = np.maximum(noise, 0.0) * (0.004 if render.random() < 0.5 else 0.0)
    image = np.where(breast_mask, image, background)
    image = np.clip(image, 0.0, 0.995)
    return image, _Tone(gamma=gamma, noise_sigma=noise_sigma, blur_sigma=blur_sigma)


def _mirrored(
    arrays: tuple[np.ndarray, ...], lookalikes: list[Lookalike], *, cols: int
) -> tuple[tuple[np.ndarray, ...], list[Lookalike]]:
    """Images and look-alike records flipped left to right (contiguous copies)."""
    flipped = tuple(np.ascontiguousarray(a[:, ::-1]) for a in arrays)
    return flipped, [Lookalike(item.kind, item.row, cols - 1 - item.col, item.size_px) for item in lookalikes]


def _metadata(
    *, seed: int, index: int, params: MammogramParams, person: _Patient, patient_index: int, exam: int,
    view_label: str, frame: _Frame, style: str, bac_length: float, bac_area_px: int, tone: _Tone,
) -> MammogramMetadata:
    laterality = view_label[0]
    number = patient_index + 1 + params.patient_offset
    return MammogramMetadata(
        seed=seed,
        index=int(index),
        patient_index=patient_index,
        patient_id=f"PHANTOM-{number:04d}",
        patient_name=f"Phantom^{number:04d}",
        exam_index=exam,
        study_date=_shifted_year(person.first_date, exam).isoformat(),
        laterality=laterality,
        view=view_label[1:],
        view_label=view_label,
        size=params.size,
        shape=(frame.rows, frame.cols),
        pixel_spacing_mm=frame.spacing,
        density=round(person.density, 4),
        birads_density="abcd"[min(3, int(person.density * 4))],
        has_bac=person.has_bac,
        progressing=person.progressing,
        bac_length_mm=round(bac_length, 3),
        bac_area_px=bac_area_px,
        style=style,
        tone_gamma=round(tone.gamma, 4),
        noise_sigma=round(tone.noise_sigma, 5),
        blur_sigma_px=round(tone.blur_sigma, 3),
        chest_wall="left" if laterality == "L" else "right",
    )


def generate_mammogram(
    *,
    seed: int,
    index: int = 0,
    size: str = "small",
    years: int = 1,
    bac_fraction: float = 0.75,
    progress_fraction: float = 0.7,
    artefacts: bool = True,
    patient_offset: int = 0,
    first_year: int = 2010,
) -> MammogramPhantom:
    """Generate mammogram ``index`` of the series defined by ``seed`` and the parameters.

    Image ``index`` is patient ``index // (4·years)``, exam ``(index // 4) % years``,
    view ``VIEWS[index % 4]``; see :func:`image_position`. The same breast keeps
    its anatomy in every view and exam.

    Args:
        seed: non-negative integer; with ``index`` and the parameters it fixes the image.
        index: image number in the series (≥ 0).
        size, years, bac_fraction, progress_fraction, artefacts, patient_offset,
            first_year: see :class:`MammogramParams`.

    Returns:
        A :class:`MammogramPhantom`; ``image`` is ``[rows, cols]`` float32 in [0, 1].

    Raises:
        ParameterError: a parameter out of range.
    """
    seed = check_seed(seed)
    params = MammogramParams(size=size, years=years, bac_fraction=bac_fraction, progress_fraction=progress_fraction,
                             artefacts=artefacts, patient_offset=patient_offset, first_year=first_year)
    patient_index, exam, view_label = image_position(index, years=params.years)
    laterality, view = view_label[0], view_label[1:]
    rows, cols, spacing = SIZES[params.size]
    frame = _Frame(rows, cols, spacing, work=max(1, rows // 1024))
    person = _patient(seed, patient_index, params)
    breast = _breast(seed, patient_index, laterality, person, params)
    geometry = _view_geometry(seed, patient_index, laterality, view, exam, breast, (rows, cols), spacing)
    # The image's own random stream, drawn in the order of the steps below.
    render = rng_for(seed, "mammogram", "image", patient_index, exam, view_label)

    rho, density, tissue = _working_tissue(frame, geometry, breast, render)
    mu, breast_mask, edge_px, tissue_full = _parenchyma(frame, geometry, breast, render, rho, density, tissue)
    mu, pectoral_mask = _add_pectoral(frame, geometry, render, mu, breast_mask, tissue_full, tissue)
    # Calcified arteries: the exact BAC mask (inside the breast, off the muscle, off the skin line).
    calc, bac_canvas, bac_length = _draw_calcified_dashes(frame, geometry, breast, render, exam=exam,
                                                          years=params.years)
    allowed = breast_mask & ~pectoral_mask & (edge_px > 1.5 / spacing * 0.5)
    bac_mask = bac_canvas.astype(bool) & allowed
    grain_rng = rng_for(seed, "mammogram", "calcium-grain", patient_index, exam, view_label)
    mu += _calcium_signal(calc, allowed, grain_rng, frame.full_scale)
    # Look-alikes (never on BAC pixels).
    lookalike_mask, lookalikes = _add_lookalikes(frame, geometry, breast, render, mu, breast_mask, pectoral_mask,
                                                 bac_mask, seed=seed, patient_index=patient_index,
                                                 laterality=laterality, artefacts=params.artefacts)
    # Presentation image, mirrored for right breasts (chest wall at the right image edge), then the view label.
    image, tone = _tone_blur_noise(frame, render, _STYLE_LOOK[person.style_seq[exam]], mu, breast_mask,
                                   artefacts=params.artefacts)
    if laterality == "R":
        (image, bac_mask, breast_mask, pectoral_mask, lookalike_mask), lookalikes = _mirrored(
            (image, bac_mask, breast_mask, pectoral_mask, lookalike_mask), lookalikes, cols=cols)
    label_mask = _draw_label(view_label, breast_mask, rows, cols, chest_wall_left=laterality == "L")
    image[label_mask] = 1.0
    breast_mask, bac_mask, pectoral_mask = (mask & ~label_mask for mask in (breast_mask, bac_mask, pectoral_mask))
    lookalike_mask[label_mask] = 0
    metadata = _metadata(seed=seed, index=index, params=params, person=person, patient_index=patient_index,
                         exam=exam, view_label=view_label, frame=frame, style=person.style_seq[exam],
                         bac_length=bac_length, bac_area_px=int(bac_mask.sum()), tone=tone)
    return MammogramPhantom(
        image=image.astype(np.float32),
        bac_mask=bac_mask,
        breast_mask=breast_mask,
        pectoral_mask=pectoral_mask,
        lookalike_mask=lookalike_mask,
        label_mask=label_mask,
        lookalikes=tuple(lookalikes),
        metadata=metadata,
    )


def _bending_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth noise (float32, unit std) used to bend the muscle fibres."""
    return _power_law_field(rng, shape, beta=4.0)


def _label_box(view_label: str, rows: int, cols: int) -> tuple[float, int, tuple[int, int], int]:
    scale = rows / 1024 * 1.3
    thickness = max(1, int(round(rows / 1024 * 2.5)))
    (w, h), base = cv2.getTextSize(view_label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return scale, thickness, (w, h + base), base


def _draw_label(view_label: str, breast_mask: np.ndarray, rows: int, cols: int, *, chest_wall_left: bool) -> np.ndarray:
    """Mask of the burned-in view label: top or bottom corner on the side away from the
    chest wall, whichever overlaps the breast less."""
    scale, thickness, (w, h), base = _label_box(view_label, rows, cols)
    margin = int(rows * 0.03)
    best = None
    for top in (True, False):
        y = margin + h - base if top else rows - margin - base
        x = cols - margin - w if chest_wall_left else margin
        box = breast_mask[max(0, y - h):y + base + 1, max(0, x - margin // 2):x + w + margin // 2]
        overlap = int(box.sum())
        if best is None or overlap < best[0]:
            best = (overlap, x, y)
    assert best is not None
    canvas = np.zeros((rows, cols), np.uint8)
    cv2.putText(canvas, view_label, (best[1], best[2]), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_8)
    return canvas > 0


# --------------------------------------------------------------------------------------
# writing


def write_mammogram(
    phantom: MammogramPhantom,
    out_dir: Path,
    *,
    stem: str | None = None,
    fmt: str = "dicom",
    png_bits: int = 8,
    transfer_syntax: str = "explicit",
    photometric: str = "auto",
    for_processing: bool = False,
) -> list[dict[str, Any]]:
    """Write one mammogram phantom: the image (DICOM or PNG) and its masks (PNG, 0/255).

    Files: ``<stem>.dcm`` or ``<stem>.png``; ``<stem>_bac.png``; ``<stem>_breast.png``;
    ``<stem>_lookalike.png`` (uint8 codes of :data:`LOOKALIKE_CODES`; mostly dark).

    Args:
        phantom: the phantom.
        out_dir: target folder (created).
        stem: file stem; default ``PHANTOM-0001_2014-03-05_LCC``.
        fmt: ``"dicom"`` or ``"png"``.
        png_bits: 8 or 16 (PNG images only).
        transfer_syntax: ``"explicit"``, ``"rle"``, ``"jpeg2000"`` or ``"auto"`` (DICOM only).
        photometric: ``"auto"`` (the vendor style decides), ``"MONOCHROME1"`` or ``"MONOCHROME2"``.
        for_processing: write "For Processing" objects (raw-like values, no window).

    Returns:
        One manifest row (a flat dict, paths relative to ``out_dir``).
    """
    if fmt not in ("dicom", "png"):
        raise ParameterError(f"`fmt` must be 'dicom' or 'png', {fmt!r} is given.")
    if png_bits not in (8, 16):
        raise ParameterError(f"`png_bits` must be 8 or 16, {png_bits!r} is given.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = phantom.metadata
    stem = stem or f"{meta.patient_id}_{meta.study_date}_{meta.view_label}"
    row: dict[str, Any] = {
        "file": "",
        "bac_mask": f"{stem}_bac.png",
        "breast_mask": f"{stem}_breast.png",
        "lookalike_mask": f"{stem}_lookalike.png",
    }
    if fmt == "dicom":
        dicom_style = style_for(meta, transfer_syntax=transfer_syntax, photometric=photometric,
                                presentation_intent="FOR PROCESSING" if for_processing else "FOR PRESENTATION")
        path = write_mammogram_dicom(phantom, out_dir / f"{stem}.dcm", style=dicom_style)
        row["file"] = path.name
        row.update({f"dicom_{k}": v for k, v in dicom_style.as_row().items()})
    else:
        if png_bits == 8:
            data = np.clip(np.rint(phantom.image * 255.0), 0, 255).astype(np.uint8)
        else:
            data = np.clip(np.rint(phantom.image * 65535.0), 0, 65535).astype(np.uint16)
        save_png(out_dir / f"{stem}.png", data)
        row["file"] = f"{stem}.png"
    save_png(out_dir / row["bac_mask"], phantom.bac_mask)
    save_png(out_dir / row["breast_mask"], phantom.breast_mask)
    save_png(out_dir / row["lookalike_mask"], phantom.lookalike_mask)
    for key, value in meta.__dict__.items():
        if key in ("patient_name",):
            continue  # synthetic, but no name goes into a table
        row[key] = list(value) if isinstance(value, tuple) else value
    row["n_lookalikes"] = len(phantom.lookalikes)
    # the columns the dataset layer reads (image,mask,patient), so `medlim bac evaluate --data` and
    # `medlim train scunet --data` take the folder as written
    row["mask"] = row["bac_mask"]
    row.setdefault("patient", meta.patient_id)
    return [row]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("mammogram options")
    group.add_argument("--size", choices=tuple(SIZES), default="small",
                       help="full = 4096×3328, full-small = 3328×2560, small = 1024×832 (default)")
    group.add_argument("--patients", type=int, default=None,
                       help="number of patients (images = patients × years × 4; default from --n)")
    group.add_argument("--years", type=int, default=1, help="yearly exams per patient (default 1)")
    group.add_argument("--format", dest="fmt", choices=("dicom", "png"), default="dicom")
    group.add_argument("--png-bits", type=int, choices=(8, 16), default=8)
    group.add_argument("--transfer-syntax", choices=("explicit", "rle", "jpeg2000", "auto"), default="explicit",
                       help="DICOM transfer syntax (auto: varies per image)")
    group.add_argument("--photometric", choices=("auto", "MONOCHROME1", "MONOCHROME2"), default="auto")
    group.add_argument("--for-processing", action="store_true",
                       help='DICOM "For Processing" objects instead of "For Presentation"')
    group.add_argument("--bac-fraction", type=float, default=0.75, help="fraction of patients with BAC")
    group.add_argument("--progress-fraction", type=float, default=0.7)
    group.add_argument("--no-artefacts", action="store_true", help="no grid lines or paddle edges")
    group.add_argument("--patient-offset", type=int, default=0)


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    generate_params = {
        "size": args.size,
        "years": args.years,
        "bac_fraction": args.bac_fraction,
        "progress_fraction": args.progress_fraction,
        "artefacts": not args.no_artefacts,
        "patient_offset": args.patient_offset,
    }
    write_options = {
        "fmt": args.fmt,
        "png_bits": args.png_bits,
        "transfer_syntax": args.transfer_syntax,
        "photometric": args.photometric,
        "for_processing": args.for_processing,
    }
    return generate_params, write_options


def _write_kind(phantom: MammogramPhantom, out_dir: Path, *, stem: str | None = None, **options: Any) -> list[dict[str, Any]]:
    return write_mammogram(phantom, out_dir, stem=None, **options)


KIND = PhantomKind(
    name="mammogram",
    summary="full-field 2-D mammograms with calcified arteries (BAC) and look-alikes; four views per yearly exam",
    generate=generate_mammogram,
    write=_write_kind,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
