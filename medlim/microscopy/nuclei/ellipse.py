"""Step 4 of the clumped-nuclei method (thesis §3.1.2, eq. 3.3): ellipse-fit quality.

A candidate cut (p, q) splits a region in two. The candidate nucleus — the part
bounded by the outline arc from p to q and the chord — is fitted with a least
squares ellipse (``cv2.fitEllipse``) and scored

    Q = (µ S⁺ + ν ψ) / ((Δx + Δy) + γ1 ΔL + γ2 η),   µ = ν = 10.70, γ1 = 0.67, γ2 = 3.40

with S⁺ the IoU of part and ellipse, ψ the angle (radians) at the ellipse
centre between p and q, Δx, Δy the centroid offsets and ΔL the perimeter
difference (px at the thesis magnification, i.e. divided by ``scale``), and η
the major/minor axis ratio. Cuts are made one at a time, best Q first, while
Q > 0.7 (:func:`select_cuts`). Crossing cuts cannot arise because a cut must
lie inside one current piece; cuts that meet an earlier cut at a sharp angle
are pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage import measure
from skimage.segmentation import expand_labels

__all__ = ["EllipseFit", "fit_ellipse", "ellipse_quality", "cut_region", "segment_inside"]


@dataclass(frozen=True)
class EllipseFit:
    """A fitted ellipse.

    Attributes:
        center: (row, col) in px.
        axes: the two full axis lengths in px (either order).
        angle_deg: OpenCV rotation angle in degrees.
    """

    center: tuple[float, float]
    axes: tuple[float, float]
    angle_deg: float

    @property
    def perimeter(self) -> float:
        """Ramanujan's approximation of the circumference."""
        a, b = self.axes[0] / 2.0, self.axes[1] / 2.0
        h = ((a - b) / (a + b + 1e-12)) ** 2
        return float(np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h))))

    def raster(self, shape: tuple[int, int]) -> np.ndarray:
        """The filled ellipse as ``np.ndarray[H, W]`` bool."""
        canvas = np.zeros(shape, np.uint8)
        cv2.ellipse(
            canvas,
            ((self.center[1], self.center[0]), (self.axes[1], self.axes[0]), self.angle_deg),
            1,
            thickness=-1,
        )
        return canvas.astype(bool)


def fit_ellipse(part: np.ndarray) -> EllipseFit | None:
    """Least-squares ellipse through the outline of a binary region (None if < 5 points)."""
    contours, _ = cv2.findContours(part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    outline = max(contours, key=len)
    if len(outline) < 5:
        return None
    (cx, cy), (w, h), angle = cv2.fitEllipse(outline)
    if not (np.isfinite(w) and np.isfinite(h)) or min(w, h) <= 0:
        return None
    # Axes kept in OpenCV's (height, width) order reversed, so :meth:`raster`
    # can hand OpenCV back exactly what it returned.
    return EllipseFit(center=(float(cy), float(cx)), axes=(float(h), float(w)), angle_deg=float(angle))


def ellipse_quality(
    part: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    *,
    mu: float = 10.70,
    nu: float = 10.70,
    gamma1: float = 0.67,
    gamma2: float = 3.40,
    scale: float = 1.0,
) -> float:
    """Eq. 3.3 for one candidate nucleus.

    Args:
        part: ``np.ndarray[H, W]`` bool candidate nucleus.
        p, q: cut end points (row, col).
        mu, nu, gamma1, gamma2: thesis weights.
        scale: nucleus size relative to the thesis magnification; pixel terms
            (Δx, Δy, ΔL) are divided by it so Q does not depend on resolution.

    Returns:
        Q ≥ 0 (0.0 when no ellipse can be fitted).
    """
    fit = fit_ellipse(part)
    if fit is None:
        return 0.0
    ellipse = fit.raster(part.shape)
    union = np.count_nonzero(part | ellipse)
    overlap = np.count_nonzero(part & ellipse) / union if union else 0.0
    centre = np.array(fit.center)
    vp, vq = np.asarray(p, float) - centre, np.asarray(q, float) - centre
    cosine = np.dot(vp, vq) / (np.linalg.norm(vp) * np.linalg.norm(vq) + 1e-12)
    psi = float(np.arccos(np.clip(cosine, -1.0, 1.0)))
    rows, cols = np.nonzero(part)
    dy, dx = abs(rows.mean() - centre[0]), abs(cols.mean() - centre[1])
    perimeter = measure.perimeter(part)
    delta_l = abs(perimeter - fit.perimeter)
    eta = max(fit.axes) / max(min(fit.axes), 1e-6)
    denominator = (dx + dy) / scale + gamma1 * delta_l / scale + gamma2 * eta
    return float((mu * overlap + nu * psi) / max(denominator, 1e-9))


def segment_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray, *, min_fraction: float = 0.9) -> bool:
    """Whether the straight segment p–q runs through ``mask`` (≥ ``min_fraction`` of samples)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    n = max(2, int(np.ceil(np.linalg.norm(q - p))) + 1)
    t = np.linspace(0.0, 1.0, n)[1:-1] if n > 2 else np.array([0.5])
    pts = np.rint(p[None, :] + t[:, None] * (q - p)[None, :]).astype(int)
    pts[:, 0] = np.clip(pts[:, 0], 0, mask.shape[0] - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, mask.shape[1] - 1)
    return bool(np.mean(mask[pts[:, 0], pts[:, 1]]) >= min_fraction)


def cut_region(region: np.ndarray, path: np.ndarray, *, extend: float = 3.0) -> list[np.ndarray]:
    """Split a region along a polyline and return its 4-connected parts.

    Args:
        region: ``np.ndarray[H, W]`` bool.
        path: ``np.ndarray[M, 2]`` (row, col) from p to q, M ≥ 2; both ends are
            extended by ``extend`` px so the cut leaves the region.

    Returns:
        Parts as bool masks, largest first; the cut pixels are given to the
        neighbouring part with most contact (so the parts tile the region).
    """
    path = np.asarray(path, float)
    start_dir = path[0] - path[min(3, len(path) - 1)]
    end_dir = path[-1] - path[max(len(path) - 4, 0)]
    start_dir /= np.linalg.norm(start_dir) + 1e-12
    end_dir /= np.linalg.norm(end_dir) + 1e-12
    full = np.vstack([path[:1] + extend * start_dir, path, path[-1:] + extend * end_dir])
    barrier = np.zeros(region.shape, np.uint8)
    pts = np.rint(full[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(barrier, [pts], isClosed=False, color=1, thickness=1, lineType=cv2.LINE_8)
    barrier = barrier.astype(bool) & region
    pieces = measure.label(region & ~barrier, connectivity=1)
    if pieces.max() < 2:
        return [region]
    # Hand barrier pixels to the neighbouring piece (nearest label).
    grown = expand_labels(pieces, distance=2)
    pieces = np.where(region, grown, 0)
    parts = [pieces == k for k in range(1, int(pieces.max()) + 1)]
    parts = [part for part in parts if part.any()]
    return sorted(parts, key=lambda m: -int(m.sum()))
