"""The clumped-nuclei method end to end (thesis §3.1.2), from RGB image to labels.

Steps (each its own module and testable alone): foreground and clump
candidates (:mod:`.foreground`), curvature voting (:mod:`.curvature`), close
pair screening (:mod:`.pairs`), ellipse-fit quality with iterative connection
(:mod:`.ellipse`), dividing curves (:mod:`.dividing`). Regions that are not
clump candidates are single nuclei.

Scale. The thesis gives r1, r2 and σ in px at its magnification and does not
state the nucleus size there; this project assumes a mean nucleus area of
:data:`REFERENCE_NUCLEUS_AREA` px² (≈ 44 px across, so r1 = 45 px is about one
nucleus diameter). With ``scale="auto"`` every length (r1, r2, σ, the Hessian
scale) is multiplied, and the pixel terms of Q divided, by
sqrt(mean area / reference area); ``scale=1.0`` uses the thesis numbers as px.

Choices between the thesis and the authors' code (each a parameter):
threshold Otsu (thesis "global adaptive") rather than 0.25 of the range (code);
r2 = 70 (thesis) rather than 76 (code); σ = 6 (code; the thesis gives none);
dividing curves by the Hessian valley walk (thesis) rather than a geodesic map
(code); θ of eq. 3.2 in degrees (see :mod:`.pairs`). Project choices, tuned on
development phantoms (seeds 1000–1019) and named in :class:`NucleiParams`:
``merge_radius`` 15 px instead of r1, ``min_part_fraction``, ``min_concavity``,
``sharp_angle_deg``, ``energy_threshold`` and the ``split_unpaired`` addition.
On held-out phantoms (seed 7, five 1024×1376 images) the defaults reach object
F1 0.887 (thesis-only variant ``split_unpaired=False``: 0.866) against 0.738
for the watershed baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from skimage import measure
from skimage.segmentation import expand_labels

from medlim.errors import ParameterError
from medlim.microscopy.nuclei.curvature import Contour, contour_curvature, outer_contour, vote_concave_points
from medlim.microscopy.nuclei.dividing import dividing_curve, straight_path, valley_strength
from medlim.microscopy.nuclei.ellipse import cut_region, ellipse_quality, segment_inside
from medlim.microscopy.nuclei.foreground import (
    clump_candidates,
    dapi_channel,
    foreground_mask,
    mean_nucleus_area,
    remove_small_regions,
)
from medlim.microscopy.nuclei.pairs import close_pairs, merge_adjacent_points

__all__ = [
    "REFERENCE_NUCLEUS_AREA",
    "NucleiParams",
    "Cut",
    "NucleiResult",
    "split_clump",
    "split_clumps",
    "segment_nuclei",
]

#: Assumed mean nucleus area (px²) at the thesis magnification (see module docstring).
REFERENCE_NUCLEUS_AREA = 1500.0


@dataclass(frozen=True)
class NucleiParams:
    """Every parameter of the method, with the thesis value as default.

    Attributes:
        threshold: ``"otsu"`` (thesis: global adaptive threshold) or a fraction
            of the intensity range (authors' code: 0.25).
        area_factor: clump candidate when area ≥ this × mean area (thesis 1.5).
        max_solidity: … or when solidity is below this (0.95, the solidity
            cut of thesis §3.2).
        min_area_fraction: regions < this × mean area are removed (thesis 1/10).
        sigma: contour smoothing in px (authors' code 6).
        min_concavity: a concave run must reach κ < −this (1/px at scale 1);
            0 is the thesis (sign only); the project default 0.02 ignores
            ripples from noise (tuned on development seeds).
        r1, r2: search radius and ring outer radius in px (thesis 45, 70).
        energy_threshold: Walking Energy below which adjacent points merge
            (radians; the thesis gives no value; project choice 0.4, tuned on
            development seeds).
        merge_radius: adjacent points are merged only when closer than this
            (px at scale 1). The thesis uses r1 here; on development phantoms
            that merged the two dents flanking the short exposed arc of a
            middle nucleus in a chain (object F1 0.80 vs 0.91), so the project
            default is 15 px (points on one dent); set ``merge_radius=r1`` for
            the thesis behaviour.
        alpha, beta, v_threshold: eq. 3.2 weights and threshold (100, 0.34, 200).
        mu, nu, gamma1, gamma2: eq. 3.3 weights (10.70, 10.70, 0.67, 3.40).
        q_threshold: connect while Q > this (thesis 0.7).
        min_part_fraction: a cut may not leave a part smaller than this × mean
            area (project choice 0.5, tuned on development seeds; not in the thesis).
        sharp_angle_deg: prune a cut meeting an earlier cut at less than this
            angle (project choice 30°; the thesis names no value).
        sector_deg: dividing-curve search sector half-angle (thesis 45°).
        hessian_sigma: Hessian scale in px for the valley search (project 2).
        use_curves: follow intensity valleys (True) or cut straight (False).
        split_unpaired: project addition, not in the thesis: after the thesis
            connections, a concave point left without a partner in a piece that
            is still a clump candidate may cut along its inward normal to the
            far side of the piece (which may be an earlier cut: a three-way
            junction the point pairs cannot express), if the cut-off part
            passes the same Q test. ``False`` gives the thesis method alone.
        scale: ``"auto"`` or a positive float (see module docstring).
        mean_area: mean single-nucleus area in px² when known; None estimates
            it from the isolated nuclei of the image (thesis). Give it for
            images (or crops) that hold clumps only.
    """

    threshold: str | float = "otsu"
    area_factor: float = 1.5
    max_solidity: float = 0.95
    min_area_fraction: float = 0.1
    sigma: float = 6.0
    min_concavity: float = 0.02
    r1: float = 45.0
    r2: float = 70.0
    energy_threshold: float = 0.4
    merge_radius: float = 15.0
    alpha: float = 100.0
    beta: float = 0.34
    v_threshold: float = 200.0
    mu: float = 10.70
    nu: float = 10.70
    gamma1: float = 0.67
    gamma2: float = 3.40
    q_threshold: float = 0.7
    min_part_fraction: float = 0.5
    sharp_angle_deg: float = 30.0
    sector_deg: float = 45.0
    hessian_sigma: float = 2.0
    use_curves: bool = True
    split_unpaired: bool = True
    scale: str | float = "auto"
    mean_area: float | None = None

    def __post_init__(self) -> None:
        positive = ("area_factor", "sigma", "r1", "r2", "alpha", "v_threshold", "hessian_sigma")
        for name in positive:
            if not float(getattr(self, name)) > 0:
                raise ParameterError(f"`{name}` must be positive, {getattr(self, name)} is given.")
        if self.r2 < self.r1:
            raise ParameterError(f"`r2` ({self.r2}) must not be smaller than `r1` ({self.r1}).")
        if not 0 < self.sector_deg < 90:
            raise ParameterError(f"`sector_deg` must be in (0, 90), {self.sector_deg} is given.")
        if self.scale != "auto" and not (isinstance(self.scale, (int, float)) and self.scale > 0):
            raise ParameterError(f"`scale` must be 'auto' or a positive number, {self.scale!r} is given.")
        if self.mean_area is not None and not self.mean_area > 0:
            raise ParameterError(f"`mean_area` must be positive or None, {self.mean_area!r} is given.")


@dataclass(frozen=True)
class Cut:
    """One accepted connection and the dividing curve drawn for it.

    Attributes:
        p, q: end points (row, col) in image px.
        kind: ``"non_adjacent"`` (eq. 3.2 / within r1), ``"ellipse"`` (eq. 3.3)
            or ``"unpaired"`` (the project's ``split_unpaired`` addition).
        quality: Q of the connection (NaN for non-adjacent pairs).
        path: ``np.ndarray[M, 2]`` float (row, col) of the dividing curve.
        followed_valley: False when the straight fallback was used.
    """

    p: tuple[float, float]
    q: tuple[float, float]
    kind: str
    quality: float
    path: np.ndarray = field(repr=False)
    followed_valley: bool = False


@dataclass(frozen=True)
class NucleiResult:
    """Result of :func:`segment_nuclei`.

    Attributes:
        labels: ``np.ndarray[H, W]`` int32 instance labels, 0 = background.
        foreground: ``np.ndarray[H, W]`` bool.
        cuts: every accepted connection with its dividing curve.
        mean_area: estimated mean single-nucleus area in px².
        scale: the length scale used.
        n_clumps: number of clump candidates examined.
        seconds: wall time.
    """

    labels: np.ndarray
    foreground: np.ndarray
    cuts: tuple[Cut, ...]
    mean_area: float
    scale: float
    n_clumps: int
    seconds: float

    @property
    def count(self) -> int:
        return int(len(np.unique(self.labels[self.labels > 0])))


# A connection before its dividing curve is drawn: end points, kind, Q.
_Connection = tuple[np.ndarray, np.ndarray, str, float]


def _splittable(piece: np.ndarray, mean_area: float, params: NucleiParams) -> bool:
    area = int(piece.sum())
    if area >= params.area_factor * mean_area:
        return True
    props = measure.regionprops(piece.astype(np.uint8))
    return bool(props) and props[0].solidity < params.max_solidity


def _near(mask: np.ndarray, point: np.ndarray) -> bool:
    r, c = int(round(point[0])), int(round(point[1]))
    window = mask[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3]
    return bool(window.any())


def _sharp(p: np.ndarray, q: np.ndarray, cuts: list[tuple[np.ndarray, np.ndarray]], *, limit_deg: float, radius: float) -> bool:
    """Whether cut p–q meets an earlier cut at a shared end point at less than ``limit_deg``."""
    for a, b in cuts:
        for shared, other_new in ((p, q), (q, p)):
            for end, far in ((a, b), (b, a)):
                if np.linalg.norm(shared - end) <= radius:
                    u, v = other_new - shared, far - end
                    cosine = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12)
                    if np.degrees(np.arccos(np.clip(cosine, -1, 1))) < limit_deg:
                        return True
    return False


def _two_parts(piece: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """The first two parts of a cut piece, with any further crumbs given to the nearer of them."""
    canvas = np.zeros(piece.shape, np.int32)
    canvas[parts[0]] = 1
    canvas[parts[1]] = 2
    canvas = np.where(piece, expand_labels(canvas, distance=max(piece.shape)), 0)
    return [canvas == 1, canvas == 2]


def _try_split(
    pieces: list[np.ndarray],
    accepted: list[_Connection],
    p: np.ndarray,
    q: np.ndarray,
    *,
    mean_area: float,
    scale: float,
    params: NucleiParams,
) -> tuple[int, list[np.ndarray]] | None:
    """The first piece that the straight cut p–q may split, and its two parts (None: no piece may).

    A piece may be cut when both ends lie on it, it is still a clump candidate,
    the segment runs inside it, the second part keeps ``min_part_fraction`` ×
    mean area and the cut meets no earlier cut at a sharp angle.
    """
    min_part = params.min_part_fraction * mean_area
    for k, piece in enumerate(pieces):
        if not (_near(piece, p) and _near(piece, q)):
            continue
        if not _splittable(piece, mean_area, params) or not segment_inside(piece, p, q):
            continue
        parts = cut_region(piece, straight_path(p, q))
        if len(parts) < 2 or parts[1].sum() < min_part:
            continue
        if _sharp(p, q, [(a, b) for a, b, _, _ in accepted], limit_deg=params.sharp_angle_deg, radius=4 * scale):
            continue
        if len(parts) > 2:
            parts = _two_parts(piece, parts)
        return k, parts
    return None


def _connect_non_adjacent(
    pieces: list[np.ndarray],
    accepted: list[_Connection],
    done: set[tuple[int, int]],
    non_adjacent: list[tuple[int, int]],
    xy: np.ndarray,
    *,
    mean_area: float,
    scale: float,
    params: NucleiParams,
) -> None:
    """C⁻: the non-adjacent pairs partition the clump first, nearest pairs first (edits in place)."""
    for p_idx, q_idx in sorted(non_adjacent, key=lambda pq: np.linalg.norm(xy[pq[0]] - xy[pq[1]])):
        found = _try_split(pieces, accepted, xy[p_idx], xy[q_idx], mean_area=mean_area, scale=scale, params=params)
        if found is not None:
            k, parts = found
            pieces[k : k + 1] = parts
            accepted.append((xy[p_idx], xy[q_idx], "non_adjacent", float("nan")))
            done.add((p_idx, q_idx))


def _free_part_quality(
    parts: list[np.ndarray], p_idx: int, q_idx: int, others: list[int], xy: np.ndarray, *, scale: float,
    params: NucleiParams,
) -> float | None:
    """Q of a cut over its part(s) holding no other candidate point (the minimum when both do; None when neither)."""
    # A part is free when no other candidate point lies on it and not on the other part too.
    free = [
        part for part in parts
        if not any(_near(part, xy[i]) and not _near(parts[0] if part is parts[1] else parts[1], xy[i]) for i in others)
    ]
    if not free:
        return None
    return min(
        ellipse_quality(part, xy[p_idx], xy[q_idx], mu=params.mu, nu=params.nu,
                        gamma1=params.gamma1, gamma2=params.gamma2, scale=scale)
        for part in free
    )


def _best_adjacent_cut(
    pieces: list[np.ndarray],
    accepted: list[_Connection],
    done: set[tuple[int, int]],
    points: np.ndarray,
    xy: np.ndarray,
    *,
    mean_area: float,
    scale: float,
    params: NucleiParams,
) -> tuple[float, int, int, int, list[np.ndarray]] | None:
    """Among consecutive candidate points of each piece closer than r1 (C⁺), the cut with the largest Q > threshold.

    Returns:
        ``(Q, piece index, p index, q index, parts)``, or None when no cut passes.
    """
    best: tuple[float, int, int, int, list[np.ndarray]] | None = None
    for piece in pieces:
        if not _splittable(piece, mean_area, params):
            continue
        on_piece = [int(i) for i in points if _near(piece, xy[i])]
        if len(on_piece) < 2:
            continue
        for a in range(len(on_piece)):
            p_idx, q_idx = on_piece[a], on_piece[(a + 1) % len(on_piece)]
            if p_idx == q_idx or (min(p_idx, q_idx), max(p_idx, q_idx)) in done:
                continue
            if np.linalg.norm(xy[p_idx] - xy[q_idx]) >= params.r1 * scale:
                continue
            found = _try_split(pieces, accepted, xy[p_idx], xy[q_idx], mean_area=mean_area, scale=scale, params=params)
            if found is None:
                continue
            k, parts = found
            others = [i for i in on_piece if i not in (p_idx, q_idx)]
            quality = _free_part_quality(parts, p_idx, q_idx, others, xy, scale=scale, params=params)
            if quality is None:
                continue
            if quality > params.q_threshold and (best is None or quality > best[0]):
                best = (quality, k, p_idx, q_idx, parts)
    return best


def _connect_adjacent(
    pieces: list[np.ndarray],
    accepted: list[_Connection],
    done: set[tuple[int, int]],
    points: np.ndarray,
    xy: np.ndarray,
    *,
    mean_area: float,
    scale: float,
    params: NucleiParams,
) -> None:
    """C⁺ in every piece: make the best adjacent cut while its Q > threshold (edits in place)."""
    while True:
        best = _best_adjacent_cut(pieces, accepted, done, points, xy, mean_area=mean_area, scale=scale, params=params)
        if best is None:
            return
        quality, k, p_idx, q_idx, parts = best
        pieces[k : k + 1] = parts
        accepted.append((xy[p_idx], xy[q_idx], "ellipse", quality))
        done.add((min(p_idx, q_idx), max(p_idx, q_idx)))


def _cut_along_curves(
    region: np.ndarray,
    strength: np.ndarray | None,
    accepted: list[_Connection],
    *,
    min_part: float,
    params: NucleiParams,
) -> tuple[np.ndarray, list[Cut]]:
    """Replace the straight connections by dividing curves (straight fallback) and cut the clump along them."""
    final: list[np.ndarray] = [region]
    cuts: list[Cut] = []
    for p, q, kind, quality in accepted:
        if params.use_curves and strength is not None:
            path, followed = dividing_curve(strength, region, p, q, sector_deg=params.sector_deg)
        else:
            path, followed = straight_path(p, q), False
        for candidate, flag in ((path, followed), (straight_path(p, q), False)):
            if _cut_first_piece(final, p, q, candidate, min_part=min_part):
                cuts.append(Cut(p=tuple(p), q=tuple(q), kind=kind, quality=quality, path=candidate,
                                followed_valley=flag))
                break
    labels = np.zeros(region.shape, np.int32)
    for k, piece in enumerate(final, start=1):
        labels[piece] = k
    return labels, cuts


def _cut_first_piece(
    final: list[np.ndarray], p: np.ndarray, q: np.ndarray, path: np.ndarray, *, min_part: float
) -> bool:
    """Cut the first piece holding p and q along ``path`` when that leaves a second part of at least half
    ``min_part``; edits ``final`` in place and says whether it cut."""
    for k, piece in enumerate(final):
        if not (_near(piece, p) and _near(piece, q)):
            continue
        parts = cut_region(piece, path)
        if len(parts) >= 2 and parts[1].sum() >= 0.5 * min_part:
            final[k : k + 1] = _two_parts(piece, parts)
            return True
    return False


def split_clump(
    region: np.ndarray,
    strength: np.ndarray | None,
    *,
    mean_area: float,
    scale: float = 1.0,
    params: NucleiParams = NucleiParams(),
) -> tuple[np.ndarray, list[Cut]]:
    """Split one clump (a cropped binary region) into nuclei.

    Order of work: curvature voting → merging of adjacent points on one dent →
    the C⁻ pairs (non-adjacent within r1, or in the ring with V > 200) cut
    first, nearest first → then, repeatedly, among consecutive candidate points
    of each piece closer than r1 (C⁺), the cut with the largest Q is made while
    Q > ``q_threshold``. Q is taken over the part(s) of the cut that hold no
    other candidate point (the thesis' "candidate nucleus" bounded by the arc
    p→q and the chord; the minimum when both parts qualify). Every cut must run
    inside one current piece (so connections never cross), leave parts of at
    least ``min_part_fraction`` × mean area, not meet an earlier cut at a sharp
    angle, and only pieces that are still clump candidates are cut. Finally the
    straight connections are replaced by dividing curves (straight fallback).

    Args:
        region: ``np.ndarray[h, w]`` bool, one connected clump with a margin.
        strength: ``np.ndarray[h, w]`` valley strength (:func:`valley_strength`)
            or None for straight cuts.
        mean_area: mean single-nucleus area in px².
        scale: length scale (see module docstring).
        params: method parameters.

    Returns:
        ``(labels, cuts)``: ``labels`` ``np.ndarray[h, w]`` int32 (1..k inside
        the region); cuts in crop coordinates.
    """
    region = np.asarray(region, bool)
    contour = contour_curvature(outer_contour(region), sigma=params.sigma * scale)
    points = vote_concave_points(contour.kappa, min_depth=params.min_concavity / scale)
    points = merge_adjacent_points(
        contour, points, r1=params.merge_radius * scale, energy_threshold=params.energy_threshold
    )
    if len(points) < 2:
        return region.astype(np.int32), []
    _, non_adjacent = close_pairs(
        contour, points, r1=params.r1 * scale, r2=params.r2 * scale,
        alpha=params.alpha, beta=params.beta, v_threshold=params.v_threshold,
    )
    pieces: list[np.ndarray] = [region]
    accepted: list[_Connection] = []
    done: set[tuple[int, int]] = set()
    xy = contour.points
    _connect_non_adjacent(pieces, accepted, done, non_adjacent, xy, mean_area=mean_area, scale=scale, params=params)
    _connect_adjacent(pieces, accepted, done, points, xy, mean_area=mean_area, scale=scale, params=params)
    if params.split_unpaired:
        _split_unpaired(pieces, accepted, points, contour, mean_area=mean_area, scale=scale, params=params)
    if not accepted:
        return region.astype(np.int32), []
    return _cut_along_curves(region, strength, accepted, min_part=params.min_part_fraction * mean_area, params=params)


def _split_unpaired(
    pieces: list[np.ndarray],
    accepted: list[_Connection],
    points: np.ndarray,
    contour: Contour,
    *,
    mean_area: float,
    scale: float,
    params: NucleiParams,
) -> None:
    """Cut from lone concave points along the inward normal (see ``split_unpaired``); edits in place."""
    used = [a for a, _, _, _ in accepted] + [b for _, b, _, _ in accepted]
    min_part = params.min_part_fraction * mean_area
    progress = True
    while progress:
        progress = False
        best = None
        for idx in points:
            p = contour.points[int(idx)]
            if any(np.linalg.norm(p - u) < 3 * scale for u in used):
                continue
            inward = -contour.normals[int(idx)]
            for k, piece in enumerate(pieces):
                if not _near(piece, p) or not _splittable(piece, mean_area, params):
                    continue
                # March inwards until the piece ends (its far side or an earlier cut).
                q = None
                for t in np.arange(2.0, params.r2 * scale, 0.5):
                    r, c = np.rint(p + t * inward).astype(int)
                    if not (0 <= r < piece.shape[0] and 0 <= c < piece.shape[1]) or not piece[r, c]:
                        q = p + (t - 0.5) * inward
                        break
                if q is None or np.linalg.norm(q - p) < 5:
                    continue
                parts = cut_region(piece, straight_path(p, q))
                if len(parts) < 2 or parts[1].sum() < min_part:
                    continue
                if len(parts) > 2:
                    continue
                quality = min(
                    ellipse_quality(part, p, q, mu=params.mu, nu=params.nu, gamma1=params.gamma1,
                                    gamma2=params.gamma2, scale=scale)
                    for part in parts
                )
                if quality > params.q_threshold and (best is None or quality > best[0]):
                    best = (quality, k, p, q, parts)
        if best is not None:
            quality, k, p, q, parts = best
            pieces[k : k + 1] = parts
            accepted.append((p, q, "unpaired", quality))
            used.extend([p, q])
            progress = True


def split_clumps(
    regions: np.ndarray,
    is_clump: np.ndarray,
    intensity: np.ndarray,
    *,
    mean_area: float,
    scale: float,
    params: NucleiParams,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[Cut]]:
    """Instance labels of a labelled foreground: each region whole, or split by :func:`split_clump` when a clump.

    Every clump is cropped with a margin wide enough for the Hessian, and split
    with the valley strength of ``intensity`` (dark valleys between bright
    objects) when ``params.use_curves``. Used by :func:`segment_nuclei` (DAPI)
    and by the steatosis weak labels (the normalised grey image of bright field).

    Args:
        regions: ``np.ndarray[H, W]`` int connected regions 1..n (0 = background).
        is_clump: ``np.ndarray[n + 1]`` bool indexed by region label, True = split it.
        intensity: ``np.ndarray[H, W]`` float image in which objects are bright.
        mean_area: mean single-object area in px².
        scale: length scale (see module docstring).
        params: method parameters.
        progress: optional ``progress(done, total)`` called once per clump.

    Returns:
        ``(labels, cuts)``: ``labels`` ``np.ndarray[H, W]`` int32 numbered 1..k in
        region order; cuts in image coordinates.
    """
    labels = np.zeros(regions.shape, np.int32)
    total = int(np.count_nonzero(is_clump[1:]))
    pad = int(np.ceil(4 * params.hessian_sigma * scale)) + 3
    next_label = 1
    cuts: list[Cut] = []
    done = 0
    for k, window in enumerate(ndimage.find_objects(regions), start=1):
        if window is None:
            continue
        if not is_clump[k]:
            labels[window][regions[window] == k] = next_label
            next_label += 1
            continue
        r0, r1 = max(window[0].start - pad, 0), min(window[0].stop + pad, regions.shape[0])
        c0, c1 = max(window[1].start - pad, 0), min(window[1].stop + pad, regions.shape[1])
        region = regions[r0:r1, c0:c1] == k
        strength = None
        if params.use_curves:
            strength = valley_strength(intensity[r0:r1, c0:c1], sigma=params.hessian_sigma * scale)
        sub_labels, sub_cuts = split_clump(region, strength, mean_area=mean_area, scale=scale, params=params)
        for sub in range(1, int(sub_labels.max()) + 1):
            selected = sub_labels == sub
            if selected.any():
                labels[r0:r1, c0:c1][selected] = next_label
                next_label += 1
        offset = np.array([r0, c0], float)
        for cut in sub_cuts:
            cuts.append(replace(cut, p=tuple(np.add(cut.p, offset)), q=tuple(np.add(cut.q, offset)),
                                path=cut.path + offset))
        done += 1
        if progress is not None:
            progress(done, total)
    return labels, cuts


def segment_nuclei(
    image: np.ndarray,
    *,
    params: NucleiParams = NucleiParams(),
    progress: Callable[[int, int], None] | None = None,
) -> NucleiResult:
    """Segment nuclei, splitting clumps (thesis §3.1.2).

    Args:
        image: ``np.ndarray[H, W, 3]`` RGB with DAPI in blue, or ``[H, W]`` grey;
            uint8, uint16 or float in [0, 1].
        params: method parameters (thesis defaults).
        progress: optional ``progress(done, total)`` called once per clump.

    Returns:
        :class:`NucleiResult`.
    """
    start = time.perf_counter()
    dapi = dapi_channel(image)
    mask = foreground_mask(dapi, threshold=params.threshold)
    mean_area = mean_nucleus_area(mask) if params.mean_area is None else float(params.mean_area)
    if mean_area <= 0:
        return NucleiResult(np.zeros(dapi.shape, np.int32), mask, (), 0.0, 1.0, 0, time.perf_counter() - start)
    mask = remove_small_regions(mask, min_area=params.min_area_fraction * mean_area)
    if params.mean_area is None:
        mean_area = mean_nucleus_area(mask, min_area=int(params.min_area_fraction * mean_area))
    scale = float(np.sqrt(mean_area / REFERENCE_NUCLEUS_AREA)) if params.scale == "auto" else float(params.scale)
    scale = float(np.clip(scale, 0.1, 10.0))
    regions, is_clump = clump_candidates(
        mask, mean_area=mean_area, area_factor=params.area_factor, max_solidity=params.max_solidity
    )
    labels, cuts = split_clumps(regions, is_clump, dapi, mean_area=mean_area, scale=scale, params=params,
                                progress=progress)
    return NucleiResult(
        labels=labels,
        foreground=mask,
        cuts=tuple(cuts),
        mean_area=mean_area,
        scale=scale,
        n_clumps=int(np.count_nonzero(is_clump[1:])),
        seconds=time.perf_counter() - start,
    )
