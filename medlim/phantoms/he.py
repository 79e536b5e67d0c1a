"""H&E bright-field liver phantoms with steatosis droplets and exact instance labels (thesis §3.2 data).

The thesis trains on 1024×1024 RGB patches of H&E-stained liver sections,
where fat (steatosis) droplets are round or ovoid white vacuoles of widely
varying size, many touching in clumps with weak dividing borders. These
phantoms imitate that with a Beer–Lambert stain model: every pixel holds a
haematoxylin and an eosin concentration, and the colour is
``exp(-(c_H · h + c_E · e))`` for stain optical-density vectors ``h`` and ``e``
drawn per image (so stain colours vary from slide to slide).

Drawn per image: textured eosin cytoplasm; hepatocyte nuclei (dark, round);
sinusoids (thin, light, elongated channels with flat nuclei — *not*
steatosis); white non-tissue areas (a central-vein lumen and/or glass beyond a
tissue edge — *not* steatosis); droplets with radii from a log-uniform range
(micro- and macro-vesicular), a target droplet area fraction of the tissue
(0–70 %), clumps of touching and overlapping droplets, a thin eosin rim around
each droplet and seams of random visibility between touching droplets; blur
and noise; and the artefacts of real slides that defeat a global threshold —
uneven section thickness and staining, illumination fall-off, tears (glass
channels inside the tissue) and droplets holding pale material.

Ground truth: a pixel covered by several droplets belongs to the droplet whose
normalised elliptical radius there is smallest (ties to the lower label), so
labels are exact and deterministic. Everything comes from one seed.

Scale: the generator draws in pixels; its nominal pixel size is
:data:`PIXEL_SIZE_UM` (0.5 µm, a 20× whole-slide scan), declared on
2026-12-07 from the anatomy it draws — hepatocyte nuclei 8–13 px across
(4–6.5 µm), one hepatocyte nucleus per ~1,400 px² of tissue (~350 µm²), droplet
radii 4–36 px (2–18 µm, micro- to macro-vesicular). The writer records it in
every manifest row (``pixel_size_um``) and, with ``--format tiff``, in the
image file itself (TIFF resolution), the way a scanner states it; the shipped
steatosis weights, trained on these phantoms, record it as their scale.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, ellipse_window, rng_for, smooth_noise, write_generic

__all__ = ["HEPhantom", "PIXEL_SIZE_UM", "generate_he", "KIND"]

#: Nominal pixel size of the phantoms, µm (see the module docstring: declared from the anatomy drawn in pixels).
PIXEL_SIZE_UM = 0.5


@dataclass(frozen=True)
class HEPhantom:
    """One synthetic H&E liver image and its truth.

    Attributes:
        image: ``np.ndarray[H, W, 3]`` uint8 RGB.
        labels: ``np.ndarray[H, W]`` uint16 droplet instance labels, 0 = none.
        tissue: ``np.ndarray[H, W]`` bool, the section (droplets and sinusoids
            included); False on glass, tears and vessel lumina.
        density: the droplet area fraction of the tissue that was aimed at.
        seed: the seed used.
        lumen: ``np.ndarray[H, W]`` bool, the sinusoid lumina inside the section
            not covered by a droplet (None: not recorded).
    """

    image: np.ndarray
    labels: np.ndarray
    tissue: np.ndarray
    density: float
    seed: int
    lumen: np.ndarray | None = None

    @property
    def n_droplets(self) -> int:
        return int(self.labels.max())

    @property
    def steatosis_fraction(self) -> float:
        """Droplet area / tissue area, tissue as issue 13 defines it: the section without sinusoid lumina
        (:attr:`steatosis_fraction_with_lumina` counts them as tissue, as this property did before); 0.0 with no
        tissue."""
        tissue = self.tissue if self.lumen is None else self.tissue & ~self.lumen
        area = int(tissue.sum())
        return float((self.labels > 0).sum() / area) if area else 0.0

    @property
    def steatosis_fraction_with_lumina(self) -> float:
        """Droplet area / area of the whole section, sinusoid lumina included (0.0 when there is no tissue)."""
        area = int(self.tissue.sum())
        return float((self.labels > 0).sum() / area) if area else 0.0


def _stain_vectors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Optical-density vectors (R, G, B) of haematoxylin and eosin, jittered per slide."""
    haematoxylin = np.array([0.65, 0.70, 0.29]) + rng.uniform(-0.12, 0.12, 3)
    eosin = np.array([0.07, 0.99, 0.11]) + rng.uniform(-0.06, 0.06, 3) + np.array([rng.uniform(0, 0.15), 0, rng.uniform(0, 0.25)])
    haematoxylin = np.clip(haematoxylin, 0.05, None)
    eosin = np.clip(eosin, 0.02, None)
    return haematoxylin / np.linalg.norm(haematoxylin), eosin / np.linalg.norm(eosin)


def _non_tissue(rng: np.random.Generator, height: int, width: int, yy: np.ndarray, xx: np.ndarray,
                vein_probability: float, edge_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """White areas that are not steatosis: a vein lumen and glass beyond a tissue edge.

    Returns:
        ``(glass, vein_wall)`` bool masks.
    """
    glass = np.zeros((height, width), bool)
    wall = np.zeros((height, width), bool)
    scale = min(height, width)
    if rng.random() < edge_probability:
        # A wavy tissue edge across one side of the image.
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0.25, 0.45) * scale
        along = -np.sin(angle) * (xx - width / 2) + np.cos(angle) * (yy - height / 2)
        across = np.cos(angle) * (xx - width / 2) + np.sin(angle) * (yy - height / 2)
        wave = 0.05 * scale * np.sin(along / (0.12 * scale) + rng.uniform(0, 6.3))
        glass |= across + wave > offset
    if rng.random() < vein_probability:
        radius = rng.uniform(0.06, 0.12) * scale + 20
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        squash = rng.uniform(0.6, 1.0)
        theta = np.arctan2(yy - cy, xx - cx)
        wobble = 1 + 0.08 * np.sin(3 * theta + rng.uniform(0, 6.3))
        rho = np.hypot(yy - cy, (xx - cx) * squash) / (radius * wobble)
        glass |= rho <= 1.0
        wall |= (rho > 1.0) & (rho <= 1.0 + 6.0 / radius)
    return glass, wall & ~glass


def _random_walks(rng: np.random.Generator, height: int, width: int, count: int, *, steps: tuple[int, int],
                  step_length: tuple[float, float], turn: float, thickness: tuple[int, int]) -> np.ndarray:
    """``count`` curved polylines (random walks from random starts) drawn into a bool mask.

    Each walk draws its start, heading, number of steps (``steps`` as an
    integer range), per-step turn (normal, sd ``turn`` rad) and length, then
    its line thickness (integer range), in that order.
    """
    import cv2

    canvas = np.zeros((height, width), np.uint8)
    for _ in range(count):
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        heading = rng.uniform(0, 2 * np.pi)
        points = [(x, y)]
        for _step in range(int(rng.integers(*steps))):
            heading += rng.normal(0, turn)
            length = rng.uniform(*step_length)
            x, y = x + length * np.cos(heading), y + length * np.sin(heading)
            points.append((x, y))
        cv2.polylines(canvas, [np.round(np.array(points)).astype(np.int32)], False, 1, int(rng.integers(*thickness)))
    return canvas.astype(bool)


def _sinusoids(rng: np.random.Generator, height: int, width: int, count: int) -> np.ndarray:
    """Thin curved channels (random walks) as a bool mask."""
    return _random_walks(rng, height, width, count, steps=(4, 12), step_length=(8, 18), turn=0.35, thickness=(2, 6))


def _tears(rng: np.random.Generator, height: int, width: int, count: int) -> np.ndarray:
    """Cracks in the section (knife chatter, drying): thin jagged white channels, as a bool mask."""
    return _random_walks(rng, height, width, count, steps=(3, 14), step_length=(5, 14), turn=0.5, thickness=(2, 8))


def _place_droplets(
    rng: np.random.Generator,
    allowed_distance: np.ndarray,
    *,
    target_area: float,
    radius_range: tuple[float, float],
    clump_probability: float,
    overlap: tuple[float, float],
) -> list[tuple[float, float, float, float, float]]:
    """Droplets (cy, cx, a, b, angle) until their area reaches ``target_area``."""
    height, width = allowed_distance.shape
    lo, hi = radius_range
    # Per image a mix of micro- and macro-vesicular droplets (log-uniform radii,
    # skewed small or large).
    skew = rng.uniform(0.35, 1.3)
    placed: list[tuple[float, float, float, float, float]] = []
    capacity = 64
    centres = np.zeros((capacity, 2))
    radii = np.zeros(capacity)
    # A coarse grid of droplet indices keeps the overlap test local (O(1) per try).
    cell = 2.0 * hi + 2.0
    grid: dict[tuple[int, int], list[int]] = {}
    area = 0.0
    attempts = 0
    max_attempts = 200 + int(6 * target_area / (np.pi * lo * lo))
    while area < target_area and attempts < max_attempts:
        attempts += 1
        a = float(np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * rng.random() ** skew))
        b = a * rng.uniform(0.72, 1.0)
        angle = rng.uniform(0, np.pi)
        mean_r = 0.5 * (a + b)
        parent = -1
        if placed and rng.random() < clump_probability:
            parent = int(rng.integers(len(placed)))
            direction = rng.uniform(0, 2 * np.pi)
            dist = (radii[parent] + mean_r) * rng.uniform(*overlap)
            cy = centres[parent, 0] + dist * np.sin(direction)
            cx = centres[parent, 1] + dist * np.cos(direction)
        else:
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        iy, ix = int(round(cy)), int(round(cx))
        if not (0 <= iy < height and 0 <= ix < width) or allowed_distance[iy, ix] < 0.9 * a:
            continue
        gy, gx = int(cy // cell), int(cx // cell)
        near = [j for dy in (-1, 0, 1) for dx in (-1, 0, 1) for j in grid.get((gy + dy, gx + dx), ())]
        if near:
            idx = np.array(near)
            gaps = np.hypot(centres[idx, 0] - cy, centres[idx, 1] - cx) / (radii[idx] + mean_r)
            limit = np.where(idx == parent, overlap[0] - 1e-9, overlap[1] + 0.02)
            if np.any(gaps < limit):
                continue
        k = len(placed)
        if k == capacity:
            capacity *= 2
            centres = np.resize(centres, (capacity, 2))
            radii = np.resize(radii, capacity)
        placed.append((float(cy), float(cx), a, b, float(angle)))
        centres[k] = (cy, cx)
        radii[k] = mean_r
        grid.setdefault((gy, gx), []).append(k)
        area += np.pi * a * b * (0.85 if parent >= 0 else 1.0)
    return placed


@dataclass(frozen=True)
class _Look:
    """The per-image choices of :func:`generate_he`, given or drawn (see its arguments)."""

    density: float
    clump_probability: float
    blur: float
    noise: float
    thickness: float
    illumination: float
    tears: float
    filled_fraction: float


def _check_he_arguments(
    size: tuple[int, int], radius_range: tuple[float, float], overlap: tuple[float, float],
    density_range: tuple[float, float],
) -> tuple[int, int, float, float]:
    """``(height, width, lo, hi)`` after checking the shape arguments of :func:`generate_he`."""
    height, width = (int(v) for v in size)
    if height < 64 or width < 64:
        raise ParameterError(f"`size` must be at least 64×64, got {size}")
    lo, hi = (float(v) for v in radius_range)
    if not 2.0 <= lo <= hi:
        raise ParameterError(f"`radius_range` must satisfy 2 ≤ lo ≤ hi, got {radius_range}")
    if not 0.3 <= overlap[0] <= overlap[1] < 1.0:
        raise ParameterError(f"`overlap` must satisfy 0.3 ≤ lo ≤ hi < 1, got {overlap}")
    if not 0.0 <= density_range[0] <= density_range[1] <= 0.7:
        raise ParameterError(f"`density_range` must lie in [0, 0.7], got {density_range}")
    return height, width, lo, hi


def _draw_look(
    rng: np.random.Generator, artefacts: np.random.Generator, *, density: float | None,
    density_range: tuple[float, float], clump_probability: float | None, blur: float | None, noise: float | None,
    thickness: float | None, illumination: float | None, tears: float | None, filled_fraction: float | None,
) -> _Look:
    """The choices left as None drawn (the artefacts from their own stream), then all checked."""
    if density is None:
        density = float(rng.uniform(*density_range))
    if not 0.0 <= float(density) <= 0.7:
        raise ParameterError(f"`density` must be in [0, 0.7], got {density}")
    clump_probability = float(rng.uniform(0.3, 0.85)) if clump_probability is None else float(clump_probability)
    blur = float(rng.uniform(0.4, 1.6)) if blur is None else float(blur)
    noise = float(rng.uniform(0.005, 0.03)) if noise is None else float(noise)
    thickness = float(artefacts.uniform(0.0, 0.6)) if thickness is None else float(thickness)
    illumination = float(artefacts.uniform(0.0, 0.15)) if illumination is None else float(illumination)
    tears = float(artefacts.uniform(0.0, 1.5)) if tears is None else float(tears)
    filled_fraction = float(artefacts.uniform(0.0, 0.3)) if filled_fraction is None else float(filled_fraction)
    for name, value, top in (("thickness", thickness, 2.0), ("illumination", illumination, 0.5),
                             ("tears", tears, 20.0), ("filled_fraction", filled_fraction, 1.0)):
        if not 0.0 <= value <= top:
            raise ParameterError(f"`{name}` must be in [0, {top}], got {value}")
    return _Look(float(density), clump_probability, blur, noise, thickness, illumination, tears, filled_fraction)


def _slide_layout(
    rng: np.random.Generator, artefacts: np.random.Generator, yy: np.ndarray, xx: np.ndarray, *, tears: float,
    vein_probability: float, edge_probability: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(glass, vein_wall, sinusoid)``: non-tissue (vein lumen, glass beyond an edge, tears), the vein's wall, and
    the sinusoids in the tissue; bool ``[H, W]`` each."""
    height, width = yy.shape
    glass, vein_wall = _non_tissue(rng, height, width, yy, xx, vein_probability, edge_probability)
    n_tears = int(artefacts.poisson(tears * height * width / 1e5)) if tears > 0 else 0
    if n_tears:
        glass |= _tears(artefacts, height, width, n_tears) & ~vein_wall
    sinusoid = _sinusoids(rng, height, width, count=int(height * width / 9000 * rng.uniform(0.5, 1.5))) & ~glass
    return glass, vein_wall, sinusoid


def _label_droplets(
    droplets: list[tuple[float, float, float, float, float]], yy: np.ndarray, xx: np.ndarray, allowed: np.ndarray
) -> np.ndarray:
    """Exact droplet labels 1..n, uint16: smallest normalised radius wins, renumbered without gaps (a droplet
    can be fully covered by others)."""
    height, width = yy.shape
    labels = np.zeros((height, width), np.uint16)
    best = np.full((height, width), np.inf, np.float32)
    for k, (cy, cx, a, b, angle) in enumerate(droplets, start=1):
        window, rho = ellipse_window(yy, xx, cy, cx, a, b, angle)
        take = (rho <= 1.0) & (rho < best[window]) & allowed[window]
        labels[window][take] = k
        best[window][take] = rho[take]
    present = np.unique(labels[labels > 0])
    lookup = np.zeros(len(droplets) + 1, np.uint16)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    return lookup[labels]


def _tissue_stains(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, *, sinusoid: np.ndarray, allowed: np.ndarray,
    droplet: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(eosin, haematoxylin, texture)`` of the tissue: textured cytoplasm, pale sinusoids, and hepatocyte
    nuclei (round) and flat sinusoid-lining nuclei, never on droplets or glass."""
    height, width = yy.shape
    texture = (smooth_noise(rng, (height, width), 1.5, dtype=np.float32) * 0.07
               + smooth_noise(rng, (height, width), 12.0, dtype=np.float32) * 0.07)
    eosin = rng.uniform(0.5, 0.9) + texture
    haematoxylin = rng.uniform(0.04, 0.12) + 0.03 * smooth_noise(rng, (height, width), 3.0, dtype=np.float32)
    eosin = np.where(sinusoid, eosin * rng.uniform(0.15, 0.35), eosin)
    n_nuclei = int(height * width / 1400 * rng.uniform(0.6, 1.2))
    nucleus = np.zeros((height, width), np.float32)
    for _ in range(n_nuclei):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        iy, ix = int(cy), int(cx)
        if not allowed[iy, ix] or droplet[iy, ix]:
            continue
        flat = bool(sinusoid[iy, ix])
        a = rng.uniform(4.0, 6.5) * (1.3 if flat else 1.0)
        b = a * (rng.uniform(0.3, 0.45) if flat else rng.uniform(0.8, 1.0))
        angle = rng.uniform(0, np.pi)
        window, rho = ellipse_window(yy, xx, cy, cx, a, b, angle)
        blob = np.clip(1.3 - rho, 0, 1) * rng.uniform(0.8, 1.3)
        nucleus[window] = np.maximum(nucleus[window], blob)
    nucleus *= ~droplet
    haematoxylin = haematoxylin + 1.1 * nucleus * (1 + 0.2 * texture)
    eosin = eosin * (1 - 0.5 * np.clip(nucleus, 0, 1))
    return eosin, haematoxylin, texture


def _droplet_stains(
    rng: np.random.Generator, artefacts: np.random.Generator, labels: np.ndarray, eosin: np.ndarray,
    haematoxylin: np.ndarray, texture: np.ndarray, *, filled_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Droplets: near-empty interior (some holding pale material), a thin eosin rim against the tissue, and a
    seam of random visibility between touching droplets (weak borders)."""
    droplet = labels > 0
    n_droplets = int(labels.max())
    inside_level = rng.uniform(0.0, 0.06)
    fill = np.zeros(n_droplets + 1, np.float32)
    if filled_fraction > 0 and n_droplets:
        filled = artefacts.random(n_droplets) < filled_fraction
        fill[1:] = np.where(filled, artefacts.uniform(0.08, 0.25, n_droplets), 0.0)
    eosin = np.where(droplet, inside_level + fill[labels] + 0.02 * texture, eosin)
    haematoxylin = np.where(droplet, 0.01, haematoxylin)
    grown = ndimage.grey_dilation(labels, size=3)
    shrunk = np.where(labels > 0, -ndimage.grey_dilation(-labels.astype(np.int32), size=3), 0)
    rim = droplet & (ndimage.binary_dilation(~droplet, iterations=1))
    seam = droplet & ((grown != labels) | ((shrunk != labels) & (shrunk > 0))) & ~rim
    seam_strength = rng.uniform(0.05, 0.9, n_droplets + 1)
    eosin = np.where(rim, np.maximum(eosin, rng.uniform(0.5, 1.0)), eosin)
    eosin = np.where(seam, np.maximum(eosin, seam_strength[labels]), eosin)
    return eosin, haematoxylin


def _stain_concentrations(
    rng: np.random.Generator, artefacts: np.random.Generator, yy: np.ndarray, xx: np.ndarray, labels: np.ndarray,
    *, sinusoid: np.ndarray, allowed: np.ndarray, glass: np.ndarray, vein_wall: np.ndarray, look: _Look,
) -> tuple[np.ndarray, np.ndarray]:
    """``(eosin, haematoxylin)`` ≥ 0 everywhere: tissue, droplets, a denser vein wall, nothing on glass, and the
    section's uneven thickness."""
    height, width = yy.shape
    eosin, haematoxylin, texture = _tissue_stains(rng, yy, xx, sinusoid=sinusoid, allowed=allowed, droplet=labels > 0)
    eosin, haematoxylin = _droplet_stains(rng, artefacts, labels, eosin, haematoxylin, texture,
                                          filled_fraction=look.filled_fraction)
    eosin = np.where(vein_wall, eosin + 0.4, eosin)
    eosin = np.where(glass, 0.0, eosin)
    haematoxylin = np.where(glass, 0.0, haematoxylin)
    if look.thickness > 0:
        section = np.clip(1.0 + look.thickness * smooth_noise(artefacts, (height, width), 60.0, dtype=np.float32),
                          0.25, None)
        eosin, haematoxylin = eosin * section, haematoxylin * section
    return np.clip(eosin, 0, None), np.clip(haematoxylin, 0, None)


def _bright_field(
    rng: np.random.Generator, artefacts: np.random.Generator, eosin: np.ndarray, haematoxylin: np.ndarray,
    yy: np.ndarray, xx: np.ndarray, look: _Look,
) -> np.ndarray:
    """The RGB image, uint8: Beer–Lambert colour of the stains, background white, illumination fall-off,
    blur and noise."""
    height, width = yy.shape
    h_vec, e_vec = _stain_vectors(rng)
    optical_density = haematoxylin[..., None] * h_vec + eosin[..., None] * e_vec
    rgb = np.exp(-optical_density * rng.uniform(0.8, 1.3))
    background_white = rng.uniform(0.90, 0.99, 3)
    rgb = rgb * background_white
    if look.illumination > 0:
        angle = artefacts.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5)) + 0.5
        rgb = rgb * (1.0 - look.illumination * np.clip(ramp, 0, 1) ** 2)[..., None]
    for channel in range(3):
        rgb[..., channel] = ndimage.gaussian_filter(rgb[..., channel], look.blur)
    rgb = rgb + look.noise * rng.standard_normal(rgb.shape).astype(np.float32)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def generate_he(
    seed: int,
    *,
    index: int = 0,
    size: tuple[int, int] = (1024, 1024),
    density: float | None = None,
    density_range: tuple[float, float] = (0.0, 0.7),
    radius_range: tuple[float, float] = (4.0, 36.0),
    clump_probability: float | None = None,
    overlap: tuple[float, float] = (0.72, 0.95),
    vein_probability: float = 0.35,
    edge_probability: float = 0.35,
    blur: float | None = None,
    noise: float | None = None,
    thickness: float | None = None,
    illumination: float | None = None,
    tears: float | None = None,
    filled_fraction: float | None = None,
) -> HEPhantom:
    """Draw one H&E liver phantom.

    Args:
        seed: non-negative random seed (the image is a pure function of the arguments).
        index: phantom number within the seed's series (independent streams).
        size: ``(height, width)`` in px, each ≥ 64 (tiles 512 and 1024; larger
            for whole-slide-like regions).
        density: droplet area fraction of the tissue to aim at, in [0, 0.7];
            None draws it from ``density_range``.
        density_range: range for a drawn density.
        radius_range: droplet semi-major axis range in px (log-uniform).
        clump_probability: chance that a droplet is placed touching an earlier
            one; None draws it in [0.3, 0.85].
        overlap: centre distance of a droplet and the one it touches, as a
            fraction of the sum of their mean radii (< 1 overlaps).
        vein_probability: chance of a white central-vein lumen.
        edge_probability: chance of a tissue edge with glass beyond it.
        blur: Gaussian blur sigma in px; None draws it in [0.4, 1.6].
        noise: Gaussian noise standard deviation on [0, 1] intensities; None
            draws it in [0.005, 0.03].
        thickness: amplitude of the section's uneven thickness and staining
            (stain amounts are multiplied by ``1 + thickness · f`` for a smooth
            unit-variance field ``f`` of ~60 px correlation, floored at 0.25;
            thin areas turn pale, close to the droplets' white); None draws it
            in [0, 0.6].
        illumination: fractional light fall-off of the microscope field
            towards one off-centre side (uneven illumination / stitching
            shading); None draws it in [0, 0.15].
        tears: cracks in the section per 100,000 px² (thin jagged white
            channels inside the tissue — glass, *not* steatosis); None draws
            it in [0, 1.5].
        filled_fraction: fraction of droplets holding pale eosinophilic
            material (greyer than empty ones); None draws it in [0, 0.3].

    The last four are the artefacts that defeat a global-threshold method on
    real slides (thesis §3.2: weak labels reached F1 0.45 there); they come
    from a random stream of their own, so ``thickness = illumination = tears
    = filled_fraction = 0`` gives the phantom without them.

    Returns:
        :class:`HEPhantom`.
    """
    height, width, lo, hi = _check_he_arguments(size, radius_range, overlap, density_range)
    # Two random streams, each drawn in the order below: the slide's and its artefacts'.
    rng, artefacts = (rng_for(check_seed(seed), stream, int(index)) for stream in ("he", "he-artefacts"))
    look = _draw_look(rng, artefacts, density=density, density_range=density_range,
                      clump_probability=clump_probability, blur=blur, noise=noise, thickness=thickness,
                      illumination=illumination, tears=tears, filled_fraction=filled_fraction)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    glass, vein_wall, sinusoid = _slide_layout(rng, artefacts, yy, xx, tears=look.tears,
                                               vein_probability=vein_probability, edge_probability=edge_probability)
    tissue, allowed = ~glass, ~glass & ~vein_wall  # droplets and nuclei stay off glass and the vein wall
    droplets = _place_droplets(rng, ndimage.distance_transform_edt(allowed),
                               target_area=look.density * float(tissue.sum()), radius_range=(lo, hi),
                               clump_probability=look.clump_probability, overlap=overlap)
    labels = _label_droplets(droplets, yy, xx, allowed)
    eosin, haematoxylin = _stain_concentrations(rng, artefacts, yy, xx, labels, sinusoid=sinusoid, allowed=allowed,
                                                glass=glass, vein_wall=vein_wall, look=look)
    image = _bright_field(rng, artefacts, eosin, haematoxylin, yy, xx, look)
    return HEPhantom(image=image, labels=labels, tissue=tissue, density=look.density, seed=int(seed),
                     lumen=sinusoid & tissue & (labels == 0))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(1024, 1024),
                        help="image height and width in px (default 1024 1024, the thesis tile)")
    parser.add_argument("--density", type=float, default=None,
                        help="droplet area fraction of the tissue in [0, 0.7] (default: drawn per image)")
    parser.add_argument("--format", dest="fmt", choices=("png", "tiff"), default="png",
                        help=f"image file format (default png); tiff states the pixel size ({PIXEL_SIZE_UM:g} µm) in "
                             "the file, as a scanner does")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"size": tuple(args.size), "density": args.density}, {"fmt": getattr(args, "fmt", "png")}


def write_he(phantom: HEPhantom, out_dir: Path, *, stem: str, fmt: str = "png") -> list[dict[str, Any]]:
    """Write one phantom: the image as PNG (``fmt="png"``) or as an RGB TIFF that states :data:`PIXEL_SIZE_UM`
    (``fmt="tiff"``), the truth as PNG (:func:`medlim.phantoms.base.write_generic`), and the pixel size in the
    manifest row (``pixel_size_um``)."""
    if fmt not in ("png", "tiff"):
        raise ParameterError(f"`fmt` must be 'png' or 'tiff', {fmt!r} is given.")
    rows = write_generic(phantom, Path(out_dir), stem=stem, skip=("image",) if fmt == "tiff" else ())
    if fmt == "tiff":
        import tifffile

        name = f"{stem}_image.tif"
        per_cm = 1e4 / PIXEL_SIZE_UM
        tifffile.imwrite(Path(out_dir) / name, np.ascontiguousarray(phantom.image), photometric="rgb",
                         resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
        rows[0] = {"stem": rows[0]["stem"], "image": name, **{k: v for k, v in rows[0].items() if k != "stem"}}
    rows[0]["pixel_size_um"] = PIXEL_SIZE_UM
    return rows


#: Registry entry (``medlim phantom he``): RGB image + uint16 droplet labels + tissue mask.
KIND = PhantomKind(
    name="he",
    summary="H&E liver tissue with steatosis droplets (clumped, varied size), sinusoids, glass; exact labels",
    generate=generate_he,
    write=write_he,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
