"""Step 2 of the clumped-nuclei method (thesis §3.1.2, eq. 3.1): curvature voting.

The outline of a clump is resampled at unit arc length, smoothed with a
Gaussian (σ = 6 px in the authors' code), and its curvature
κ = (x′y″ − y′x″) / (x′² + y′²)^{3/2} computed with periodic differences. The
sign is fixed so that a convex outline has κ > 0. Each run of concave points
(κ < 0) votes for one representative at the normalised arc length
s* = ∫κ(s) s ds / ∫κ(s) ds (eq. 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import measure

from medlim.errors import ParameterError

__all__ = ["Contour", "outer_contour", "contour_curvature", "concave_runs", "vote_concave_points"]


@dataclass(frozen=True)
class Contour:
    """A closed outline with its smoothed curvature.

    Attributes:
        points: ``np.ndarray[N, 2]`` float64 (row, col), unit arc-length spacing,
            counter-clockwise in the sense that the interior is on the left of
            the walk when ``kappa`` sums to +2π.
        kappa: ``np.ndarray[N]`` float64 curvature in 1/px (convex > 0).
        normals: ``np.ndarray[N, 2]`` float64 unit outward normals (row, col).
        step: ``np.ndarray[N]`` float64 arc length of the smoothed outline per
            sample (ds), so that Σ κ·ds is the turning angle (≈ 2π in total).
    """

    points: np.ndarray
    kappa: np.ndarray
    normals: np.ndarray
    step: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def outer_contour(mask: np.ndarray) -> np.ndarray:
    """Outer boundary of the largest region of a binary mask, resampled at 1 px.

    Args:
        mask: ``np.ndarray[H, W]`` bool.

    Returns:
        ``np.ndarray[N, 2]`` float64 (row, col), closed (last point not repeated).
    """
    padded = np.pad(np.asarray(mask, bool), 1).astype(np.float32)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        raise ParameterError("the mask has no foreground, so it has no contour")
    outline = max(contours, key=len)[:-1] - 1.0
    segment = np.linalg.norm(np.diff(outline, axis=0, append=outline[:1]), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    total = arc[-1]
    n = max(8, int(round(total)))
    samples = np.linspace(0.0, total, n, endpoint=False)
    closed = np.vstack([outline, outline[:1]])
    rows = np.interp(samples, arc, closed[:, 0])
    cols = np.interp(samples, arc, closed[:, 1])
    return np.stack([rows, cols], axis=1)


def _periodic_derivative(values: np.ndarray) -> np.ndarray:
    return (np.roll(values, -1) - np.roll(values, 1)) / 2.0


def contour_curvature(points: np.ndarray, *, sigma: float = 6.0) -> Contour:
    """Curvature of a closed outline after Gaussian smoothing.

    Args:
        points: ``np.ndarray[N, 2]`` (row, col) at unit spacing.
        sigma: Gaussian smoothing of the coordinates in px (authors' code: 6).

    Returns:
        :class:`Contour` with the *unsmoothed* points (so representatives lie on
        the real outline), the smoothed curvature, and outward normals.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 8:
        raise ParameterError(f"`points` must be an N×2 array with N ≥ 8, got shape {points.shape}")
    if sigma <= 0:
        raise ParameterError(f"`sigma` must be positive, got {sigma}")
    y = ndimage.gaussian_filter1d(points[:, 0], sigma, mode="wrap")
    x = ndimage.gaussian_filter1d(points[:, 1], sigma, mode="wrap")
    dx, dy = _periodic_derivative(x), _periodic_derivative(y)
    ddx, ddy = _periodic_derivative(dx), _periodic_derivative(dy)
    kappa = (dx * ddy - dy * ddx) / np.maximum((dx * dx + dy * dy) ** 1.5, 1e-12)
    speed = np.hypot(dx, dy)
    if np.sum(kappa * speed) < 0:  # the walk ran the other way round: convex must be > 0
        kappa = -kappa
        orientation = -1.0
    else:
        orientation = 1.0
    tangent = np.stack([dy, dx], axis=1) / np.maximum(speed, 1e-12)[:, None]
    # Outward normal: the tangent turned away from the interior.
    normals = -orientation * np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return Contour(points=points, kappa=kappa, normals=normals, step=speed)


def concave_runs(kappa: np.ndarray, *, min_depth: float = 0.0) -> list[np.ndarray]:
    """Index runs of consecutive concave points (κ < 0) on a closed outline.

    Args:
        kappa: ``np.ndarray[N]`` curvature (convex > 0).
        min_depth: keep a run only when its most negative κ is below
            ``-min_depth`` (0 = thesis: the sign alone).

    Returns:
        Runs as index arrays in walking order; a run crossing the start wraps.
    """
    concave = np.asarray(kappa) < 0
    n = len(concave)
    if concave.all() or not concave.any():
        return []
    start = int(np.argmin(concave))  # a convex index: no run crosses it
    order = (np.arange(n) + start) % n
    runs: list[np.ndarray] = []
    current: list[int] = []
    for index in order:
        if concave[index]:
            current.append(int(index))
        elif current:
            runs.append(np.array(current))
            current = []
    if current:
        runs.append(np.array(current))
    return [run for run in runs if -np.min(kappa[run]) > min_depth]


def vote_concave_points(kappa: np.ndarray, *, min_depth: float = 0.0) -> np.ndarray:
    """One representative point per concave run at s* (thesis eq. 3.1).

    Within a run of L points, s runs from 0 to 1; s* = Σκ s / Σκ and the chosen
    index is the run point nearest to s*. (Because every κ in the run has the
    same sign, s* is a κ-weighted mean position, so it stays inside the run.)

    Returns:
        ``np.ndarray[K]`` int indices into the outline, in walking order.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    chosen = []
    for run in concave_runs(kappa, min_depth=min_depth):
        if len(run) == 1:
            chosen.append(int(run[0]))
            continue
        s = np.linspace(0.0, 1.0, len(run))
        weights = kappa[run]
        s_star = float(np.sum(weights * s) / np.sum(weights))
        chosen.append(int(run[int(round(s_star * (len(run) - 1)))]))
    return np.array(sorted(chosen), dtype=np.int64)
