"""Step 5 of the clumped-nuclei method (thesis §3.1.2, eq. 3.4): dividing curves.

From p the curve walks pixel by pixel towards q through the intensity valley
between two overlapping nuclei. With the Hessian H_I of the (lightly smoothed)
DAPI image, a valley pixel has eigenvalues 0 ≈ λ1 ≪ λ2: nearly flat along the
valley, strongly curved across it. Each step goes to the 8-neighbour inside a
±45° sector around the direction to q that maximises λ2 − |λ1| (ties go to the
straighter step). This follows the thesis; the authors' code instead walks a
grey-weighted geodesic distance map. If the walk leaves the region, or does
not reach q within ``max_steps_factor`` × |pq| steps, the straight segment p–q
is used (the fallback named in the thesis).
"""

from __future__ import annotations

import numpy as np
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

__all__ = ["valley_strength", "dividing_curve", "straight_path"]

_NEIGHBOURS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)], float)


def valley_strength(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """λ2 − |λ1| of the Hessian at every pixel (large in dark valleys).

    Args:
        image: ``np.ndarray[H, W]`` float intensity.
        sigma: Gaussian scale of the Hessian in px.

    Returns:
        ``np.ndarray[H, W]`` float64 (λ2 ≥ λ1 are the Hessian eigenvalues).
    """
    elements = hessian_matrix(np.asarray(image, float), sigma=sigma, order="rc", use_gaussian_derivatives=False)
    large, small = hessian_matrix_eigvals(elements)
    return large - np.abs(small)


def straight_path(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Points every ≤ 1 px on the segment p–q, ``np.ndarray[M, 2]`` float (row, col)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    n = max(2, int(np.ceil(np.linalg.norm(q - p))) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return p[None, :] + t * (q - p)[None, :]


def dividing_curve(
    strength: np.ndarray,
    region: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    *,
    sector_deg: float = 45.0,
    max_steps_factor: float = 3.0,
) -> tuple[np.ndarray, bool]:
    """Walk from p to q along the valley (thesis eq. 3.4 and the ±45° sector).

    Args:
        strength: ``np.ndarray[H, W]`` from :func:`valley_strength`.
        region: ``np.ndarray[H, W]`` bool; the walk must stay inside it.
        p, q: end points (row, col), float.
        sector_deg: half-angle of the search sector (thesis ±45°).
        max_steps_factor: give up after this many × |pq| steps.

    Returns:
        ``(path, followed_valley)``: ``path`` ``np.ndarray[M, 2]`` float from p
        to q; ``followed_valley`` is False when the straight fallback was used.
    """
    p, q = np.asarray(p, float), np.asarray(q, float)
    distance = float(np.linalg.norm(q - p))
    height, width = strength.shape
    current = np.rint(p).astype(int)
    target = np.rint(q).astype(int)
    path = [p.copy()]
    cos_limit = np.cos(np.radians(sector_deg)) - 1e-9
    unit = _NEIGHBOURS / np.linalg.norm(_NEIGHBOURS, axis=1)[:, None]
    for _ in range(int(max_steps_factor * distance) + 2):
        to_target = target - current
        gap = float(np.linalg.norm(to_target))
        if gap <= 1.5:
            path.append(q.copy())
            return np.array(path), True
        direction = to_target / gap
        cosines = unit @ direction
        best, best_score = None, -np.inf
        for k in np.nonzero(cosines >= cos_limit)[0]:
            r, c = current + _NEIGHBOURS[k].astype(int)
            if not (0 <= r < height and 0 <= c < width):
                continue
            score = strength[r, c] + 1e-6 * cosines[k]
            if score > best_score:
                best, best_score = (r, c), score
        if best is None:
            break
        current = np.array(best)
        # p and q sit on the outline, so the first and last steps may graze the edge.
        near_end = np.linalg.norm(current - p) <= 2.5 or np.linalg.norm(target - current) <= 2.5
        if not region[current[0], current[1]] and not near_end:
            break
        path.append(current.astype(float))
    return straight_path(p, q), False
