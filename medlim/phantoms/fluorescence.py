"""Fluorescence (DAPI) nuclei phantoms with exact instance labels (thesis §3.1 data).

The thesis images are 1024×1376 fluorescence micrographs with DAPI-stained
nuclei in the blue channel, many of them overlapping in clumps. These phantoms
imitate that: textured elliptical nuclei of varied size, orientation and
brightness; clumps of 2–5 overlapping nuclei, some with a visible intensity
valley between members and some without; an uneven background; blur and noise;
faint red/green nuclear spots (the FISH probes of thesis Fig. 3.1).

Ground truth: pixels covered by several nuclei belong to the nucleus whose
normalised elliptical radius there is smallest (ties to the lower label), so
the labels are exact and deterministic. Everything is drawn from one seed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, ellipse_window, rng_for, smooth_noise

__all__ = ["FluorescencePhantom", "generate_fluorescence", "KIND"]


@dataclass(frozen=True)
class FluorescencePhantom:
    """One synthetic fluorescence image and its truth.

    Attributes:
        image: ``np.ndarray[H, W, 3]`` uint8 RGB; DAPI in the blue channel.
        labels: ``np.ndarray[H, W]`` uint16 instance labels, 0 = background.
        clump_of: ``np.ndarray[N + 1]`` int32; ``clump_of[k]`` is the clump id of
            nucleus ``k`` (0 for an isolated nucleus and for the background).
        valley: ``np.ndarray[N + 1]`` bool; nucleus ``k`` belongs to a clump drawn
            with a visible intensity valley between members.
        seed: the seed used.
    """

    image: np.ndarray
    labels: np.ndarray
    clump_of: np.ndarray
    valley: np.ndarray
    seed: int

    @property
    def n_nuclei(self) -> int:
        return int(len(self.clump_of) - 1)


def _radius_along(a: float, b: float, angle: float, direction: float) -> float:
    """Distance from an ellipse's centre to its rim in ``direction`` (radians)."""
    phi = direction - angle
    return float(a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2))


# One nucleus: centre (row, col), semi-axes, orientation, brightness, clump id (0 = alone), drawn with a valley.
_Nucleus = tuple[float, float, float, float, float, float, int, bool]


def _group_centres(rng: np.random.Generator, height: int, width: int, *, cell: float, density: float) -> list:
    """Centres of the groups (single nuclei or clumps), on a grid of ``cell`` px so that groups never touch."""
    centres = [
        (r, c)
        for r in np.arange(cell / 2, height - cell / 2 + 1, cell)
        for c in np.arange(cell / 2, width - cell / 2 + 1, cell)
    ]
    if not centres:
        centres = [(height / 2, width / 2)]
    rng.shuffle(centres)
    n_groups = max(1, int(round(len(centres) * min(1.0, density / 0.35))))
    return centres[:n_groups]


def _touching_centre(
    rng: np.random.Generator, placed: list[tuple[float, float, float, float, float]], a: float, b: float, angle: float,
    *, group: tuple[float, float], cell: float, overlap: tuple[float, float],
) -> tuple[float, float] | None:
    """A centre for a new clump member overlapping one placed member, not too close to the others and inside
    the group's cell (40 tries; None when all fail)."""
    gr, gc = group
    for _attempt in range(40):
        py, px, pa, pb, pangle = placed[int(rng.integers(len(placed)))]
        direction = rng.uniform(0, 2 * np.pi)
        # Centre distance = the two radii along the joining line × an
        # overlap factor < 1, so members overlap with a visible neck.
        reach = _radius_along(pa, pb, pangle, direction) + _radius_along(a, b, angle, direction)
        dist = reach * rng.uniform(*overlap)
        cy, cx = py + dist * np.sin(direction), px + dist * np.cos(direction)
        far_enough = all(
            np.hypot(cy - qy, cx - qx)
            > 0.95
            * overlap[1]
            * (
                _radius_along(qa, qb, qangle, np.arctan2(cy - qy, cx - qx))
                + _radius_along(a, b, angle, np.arctan2(cy - qy, cx - qx))
            )
            for qy, qx, qa, qb, qangle in placed
            if (qy, qx) != (py, px)
        )
        inside = abs(cy - gr) < cell / 2 - a and abs(cx - gc) < cell / 2 - a
        if far_enough and inside:
            return cy, cx
    return None


def _lay_out_nuclei(
    rng: np.random.Generator, centres: list, *, cell: float, radius_range: tuple[float, float],
    clump_fraction: float, valley_fraction: float, overlap: tuple[float, float],
) -> list[_Nucleus]:
    """Every nucleus of every group: a single nucleus, or a clump of 2–5 overlapping members."""
    lo, hi = radius_range
    nuclei: list[_Nucleus] = []
    clump_id = 0
    for gr, gc in centres:
        jitter = (cell - 4 * hi) / 4
        gr += rng.uniform(-jitter, jitter)
        gc += rng.uniform(-jitter, jitter)
        members = int(rng.integers(2, 6)) if rng.random() < clump_fraction else 1
        has_valley = bool(rng.random() < valley_fraction)
        cid = 0
        if members > 1:
            clump_id += 1
            cid = clump_id
        placed: list[tuple[float, float, float, float, float]] = []  # cy, cx, a, b, angle
        for _ in range(members):
            a = rng.uniform(lo, hi)
            b = a * rng.uniform(0.65, 0.92)
            angle = rng.uniform(0, np.pi)
            if not placed:
                cy, cx = gr, gc
            else:
                found = _touching_centre(rng, placed, a, b, angle, group=(gr, gc), cell=cell, overlap=overlap)
                if found is None:
                    continue
                cy, cx = found
            placed.append((cy, cx, a, b, angle))
            bright = rng.uniform(0.45, 0.9)
            nuclei.append((cy, cx, a, b, angle, bright, cid, has_valley))
    return nuclei


def _paint_nuclei(
    nuclei: list[_Nucleus], yy: np.ndarray, xx: np.ndarray, texture: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, intensity, clump_of, valley)``: exact labels (smallest normalised radius wins) and the DAPI signal."""
    height, width = yy.shape
    n = len(nuclei)
    labels = np.zeros((height, width), np.uint16)
    best_radius = np.full((height, width), np.inf)
    intensity = np.zeros((height, width))
    for k, (cy, cx, a, b, angle, bright, _cid, has_valley) in enumerate(nuclei, start=1):
        box, rho = ellipse_window(yy, xx, cy, cx, a, b, angle)
        inside = rho <= 1.0
        window_best = best_radius[box]
        take = inside & (rho < window_best)
        labels[box][take] = k
        window_best[take] = rho[take]
        # A valley clump dims each nucleus toward its rim so that the max over
        # members leaves a dark seam; otherwise the profile is nearly flat.
        falloff = 0.55 if has_valley else 0.12
        profile = bright * (1.0 - falloff * np.clip(rho, 0, 1) ** 3)
        window = intensity[box]
        window[inside] = np.maximum(window[inside], profile[inside])

    clump_of = np.zeros(n + 1, np.int32)
    valley = np.zeros(n + 1, bool)
    for k, nucleus in enumerate(nuclei, start=1):
        clump_of[k] = nucleus[6]
        valley[k] = nucleus[7] and nucleus[6] > 0
    if n:
        # Darken the seam between members of valley clumps: a pixel with a
        # neighbour of a larger label lies on a seam (one side; dilated below).
        seam = (ndimage.grey_dilation(labels, size=3) != labels) & (labels > 0) & valley[labels]
        intensity[ndimage.binary_dilation(seam, iterations=1)] *= 0.6
    intensity *= np.where(labels > 0, texture, 1.0)
    return labels, intensity, clump_of, valley


def _probe_channels(
    rng: np.random.Generator, nuclei: list[_Nucleus], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Red and green channels: faint noise and the FISH probe spots on about three nuclei in four."""
    height, width = shape
    n = len(nuclei)
    red = 0.05 + 0.01 * rng.standard_normal((height, width))
    green = 0.05 + 0.01 * rng.standard_normal((height, width))
    spots = np.zeros((height, width))
    if n:
        for k in rng.choice(np.arange(1, n + 1), size=min(n, 3 * n // 4 + 1), replace=False):
            cy, cx = nuclei[k - 1][0], nuclei[k - 1][1]
            sy, sx = int(cy + rng.uniform(-8, 8)), int(cx + rng.uniform(-8, 8))
            if 0 <= sy < height and 0 <= sx < width:
                spots[sy, sx] = 1.0
        spots = ndimage.gaussian_filter(spots, 2.0) * 40
        red = red + spots * rng.uniform(0.3, 0.8)
        green = green + np.roll(spots, 5, axis=1) * rng.uniform(0.3, 0.8)
    return red, green


def _check_fluorescence_arguments(
    size: tuple[int, int], radius_range: tuple[float, float], overlap: tuple[float, float], density: float
) -> tuple[int, int, float, float]:
    """``(height, width, lo, hi)`` after checking the arguments of :func:`generate_fluorescence`."""
    height, width = (int(v) for v in size)
    if height < 64 or width < 64:
        raise ParameterError(f"`size` must be at least 64×64, got {size}")
    lo, hi = (float(v) for v in radius_range)
    if not 4.0 <= lo <= hi:
        raise ParameterError(f"`radius_range` must satisfy 4 ≤ lo ≤ hi, got {radius_range}")
    if not 0.3 <= overlap[0] <= overlap[1] < 1.0:
        raise ParameterError(f"`overlap` must satisfy 0.3 ≤ lo ≤ hi < 1, got {overlap}")
    if not 0.05 <= density <= 0.6:
        raise ParameterError(f"`density` must be in [0.05, 0.6], got {density}")
    return height, width, lo, hi


def generate_fluorescence(
    seed: int,
    *,
    index: int = 0,
    size: tuple[int, int] = (1024, 1376),
    radius_range: tuple[float, float] = (20.0, 30.0),
    clump_fraction: float = 0.6,
    valley_fraction: float = 0.5,
    density: float = 0.35,
    noise: float = 0.03,
    blur: float = 1.5,
    overlap: tuple[float, float] = (0.7, 0.88),
) -> FluorescencePhantom:
    """Draw one DAPI-like phantom.

    Args:
        seed: non-negative random seed (the image is a pure function of the arguments).
        index: phantom number within the seed's series (independent streams).
        size: ``(height, width)`` in px, each ≥ 64.
        radius_range: semi-major axis range in px (thesis-like magnification:
            nuclei 40–60 px across).
        clump_fraction: fraction of groups that are clumps of 2–5 nuclei.
        valley_fraction: fraction of clumps drawn with a dark valley between members.
        density: fraction of the image area the groups try to fill (0.05–0.6).
        noise: Gaussian noise standard deviation (intensity in [0, 1]).
        blur: Gaussian blur sigma in px.
        overlap: range of the centre distance of two touching clump members as
            a fraction of the sum of their radii along the joining line
            (< 1 overlaps; smaller is heavier overlap).

    Returns:
        :class:`FluorescencePhantom`.
    """
    height, width, lo, hi = _check_fluorescence_arguments(size, radius_range, overlap, density)
    # One random stream, drawn in this order: layout, texture, background, noise, probe channels.
    rng = rng_for(check_seed(seed), "fluorescence", int(index))
    yy, xx = np.mgrid[0:height, 0:width]
    cell = 2.0 * hi * 3.2
    centres = _group_centres(rng, height, width, cell=cell, density=density)
    nuclei = _lay_out_nuclei(rng, centres, cell=cell, radius_range=(lo, hi), clump_fraction=clump_fraction,
                             valley_fraction=valley_fraction, overlap=overlap)
    texture = 1.0 + 0.12 * smooth_noise(rng, (height, width), 2.0)
    labels, intensity, clump_of, valley = _paint_nuclei(nuclei, yy, xx, texture)
    background = 0.06 + 0.05 * (yy / height) + 0.04 * (xx / width) + 0.02 * smooth_noise(rng, (height, width), 60.0)
    blue = np.maximum(intensity, 0) + background
    blue = ndimage.gaussian_filter(blue, blur) + noise * rng.standard_normal((height, width))
    red, green = _probe_channels(rng, nuclei, (height, width))
    rgb = np.stack([red, green, blue], axis=-1)
    image = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    return FluorescencePhantom(image=image, labels=labels, clump_of=clump_of, valley=valley, seed=int(seed))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(1024, 1376),
                        help="image height and width in px (default 1024 1376, the thesis size)")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"size": tuple(args.size)}, {}


#: Registry entry (``medlim phantom fluorescence``): RGB image + uint16 labels.
KIND = PhantomKind(
    name="fluorescence",
    summary="DAPI fluorescence nuclei with clumps of 2-5 overlapping nuclei and exact instance labels",
    generate=generate_fluorescence,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
