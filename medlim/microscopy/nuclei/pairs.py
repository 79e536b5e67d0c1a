"""Step 3 of the clumped-nuclei method (thesis §3.1.2): close point pair screening.

Candidate points are classified by proximity: pairs closer than ``r1`` (thesis
45 px) are examined whether adjacent (consecutive on the outline) or not;
non-adjacent pairs are also examined in the ring ``r1 ≤ D < r2`` (thesis
r2 = 70 px; the authors' code uses 76).

* Adjacent pairs: the Walking Energy E = ∫κ ds along the outline from p to q is
  the turning one must do to walk between them. A low E (the two points sit on
  one concave dent) merges them, keeping the point of higher curvature
  magnitude; a high E (a convex bulge lies between them) keeps both.
* Non-adjacent pairs: V = αθ / (D + β(κp + κq)) (eq. 3.2), α = 100, β = 0.34,
  accepted when V > 200 in the ring; pairs inside r1 are accepted as in the
  thesis. θ is the angle between the outward normals **in degrees** and κ enters
  by magnitude: with θ in radians no pair could reach V = 200 at the thesis
  distances (πα/45 ≈ 7), so degrees is the only reading under which the
  thesis threshold is meaningful.
"""

from __future__ import annotations

import numpy as np

from medlim.microscopy.nuclei.curvature import Contour

__all__ = [
    "walking_energy",
    "v_measure",
    "merge_adjacent_points",
    "close_pairs",
]


def walking_energy(kappa: np.ndarray, start: int, end: int, *, step: np.ndarray | None = None) -> float:
    """E = ∫ κ ds over the outline walked forward from ``start`` to ``end``.

    Args:
        kappa: ``np.ndarray[N]`` curvature (convex > 0).
        start, end: outline indices; the walk wraps past N − 1.
        step: ``np.ndarray[N]`` arc element ds per sample (:attr:`Contour.step`);
            None means unit steps. Weighting by the smoothed ds keeps E a
            turning angle even where smoothing pinches the outline.

    Returns:
        The total turning in radians (positive over convex stretches).
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    if step is not None:
        kappa = kappa * np.asarray(step, dtype=np.float64)
    n = len(kappa)
    start, end = int(start) % n, int(end) % n
    if end >= start:
        return float(kappa[start : end + 1].sum())
    return float(kappa[start:].sum() + kappa[: end + 1].sum())


def v_measure(
    contour: Contour, p: int, q: int, *, alpha: float = 100.0, beta: float = 0.34
) -> float:
    """Eq. 3.2: V = αθ / (D + β(|κp| + |κq|)), θ in degrees, D in px."""
    normal_p, normal_q = contour.normals[p], contour.normals[q]
    cosine = float(np.clip(np.dot(normal_p, normal_q), -1.0, 1.0))
    theta = np.degrees(np.arccos(cosine))
    distance = float(np.linalg.norm(contour.points[p] - contour.points[q]))
    return float(alpha * theta / (distance + beta * (abs(contour.kappa[p]) + abs(contour.kappa[q])) + 1e-9))


def merge_adjacent_points(
    contour: Contour,
    points: np.ndarray,
    *,
    r1: float = 45.0,
    energy_threshold: float = 0.4,
) -> np.ndarray:
    """Merge adjacent close points that need little Walking Energy.

    Consecutive candidates (cyclic) closer than ``r1`` whose forward walk turns
    by less than ``energy_threshold`` radians are merged, keeping the point with
    the larger |κ|; repeated until nothing changes. The thesis gives no value
    for "low energy"; π/3 (a 60° turn, far less than the ≈ π a nucleus bulge
    turns) is this project's choice.

    Returns:
        ``np.ndarray[K']`` the surviving outline indices, sorted.
    """
    kept = sorted(int(p) for p in points)
    changed = True
    while changed and len(kept) > 1:
        changed = False
        for i in range(len(kept)):
            a, b = kept[i], kept[(i + 1) % len(kept)]
            if a == b:
                continue
            distance = float(np.linalg.norm(contour.points[a] - contour.points[b]))
            if distance < r1 and walking_energy(contour.kappa, a, b, step=contour.step) < energy_threshold:
                loser = a if abs(contour.kappa[a]) < abs(contour.kappa[b]) else b
                kept.remove(loser)
                changed = True
                break
    return np.array(kept, dtype=np.int64)


def close_pairs(
    contour: Contour,
    points: np.ndarray,
    *,
    r1: float = 45.0,
    r2: float = 70.0,
    alpha: float = 100.0,
    beta: float = 0.34,
    v_threshold: float = 200.0,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Adjacent and accepted non-adjacent close pairs.

    Returns:
        ``(adjacent, non_adjacent)`` lists of outline-index pairs ``(p, q)``:
        ``adjacent`` are consecutive candidates with D < r1 (the set C⁺);
        ``non_adjacent`` are the rest with D < r1, plus ring pairs
        (r1 ≤ D < r2) with V > ``v_threshold`` (the set C⁻ = C⁻₁ ∪ C⁻₂).
    """
    ordered = sorted(int(p) for p in points)
    k = len(ordered)
    adjacent: list[tuple[int, int]] = []
    non_adjacent: list[tuple[int, int]] = []
    for i in range(k):
        for j in range(i + 1, k):
            p, q = ordered[i], ordered[j]
            distance = float(np.linalg.norm(contour.points[p] - contour.points[q]))
            consecutive = j == i + 1 or (i == 0 and j == k - 1)
            if consecutive and k > 2 or (k == 2):
                if distance < r1:
                    adjacent.append((p, q))
                continue
            if distance < r1:
                non_adjacent.append((p, q))
            elif distance < r2 and v_measure(contour, p, q, alpha=alpha, beta=beta) > v_threshold:
                non_adjacent.append((p, q))
    return adjacent, non_adjacent
