"""Image transforms for TEND: fake-OOD distortions and validation transforms (thesis §4.1.2).

Training distortions (thesis Fig. 4.2, blue box; ImageMagick ``distort`` in the
authors' code) are strong geometric warps that turn an in-distribution image
into a fake outlier: barrel, perspective, arc, polar, tile and affine. They are
written here with OpenCV remaps. Validation transforms (yellow box) are
moderate changes used only to test detectors (thesis Tables 4.5–4.6): random
cut, random crop + resize, additive noise and Gaussian blur. Their strengths
are set relative to the image side, so they mean the same at any size.

Beyond the thesis's six, two further strong distortions may be added to the
fake-OOD set (the thesis leaves "more transformations worthwhile being
explored"; both are ImageMagick operations like the six): ``spread`` (every
pixel replaced by a random neighbour within a radius of 3–6 % of the side,
ImageMagick ``-spread``) and ``motion_blur`` (a straight smear 10–20 % of the
side long at a random angle, ImageMagick ``-motion-blur``). They destroy the
fine texture and sharpness of the image, which the six warps keep. The four
validation transforms stay unseen in kind: no additive Gaussian noise and no
isotropic Gaussian blur is ever used for training — but the two are related in
effect (texture, sharpness), so a detector trained with them is tested on
transforms less foreign to its training than in the thesis. Each of the three
extras resembles one Table 4.5 transform (:data:`LOOKALIKES`: spread ~ noise,
motion blur ~ blur, cut-paste ~ random cut); ``--distortions thesis`` (or
``thesis`` in :func:`distortion_names`) trains without them, and the README's
OOD section reports both (issue 13).

Every function takes a grey ``np.ndarray[H, W]`` float32 in [0, 1] and a
``numpy.random.Generator`` and returns a new array of the same shape and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "TRAIN_DISTORTIONS",
    "VALIDATION_TRANSFORMS",
    "barrel",
    "perspective",
    "arc",
    "polar",
    "tile",
    "affine",
    "spread",
    "motion_blur",
    "cut_paste",
    "EXTRA_DISTORTIONS",
    "random_cut",
    "crop_resize",
    "additive_noise",
    "gaussian_blur",
    "distort",
    "validation_transform",
    "LOOKALIKES",
    "DISTORTION_SETS",
    "distortion_names",
]

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _check(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2 or min(array.shape) < 8:
        raise ParameterError(f"transforms take a grey image [H, W] with sides ≥ 8, shape {array.shape} is given.")
    return np.ascontiguousarray(array, dtype=np.float32)


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def barrel(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strong barrel (or pincushion) lens distortion about a jittered centre."""
    image = _check(image)
    h, w = image.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = w / 2 * (1 + rng.uniform(-0.2, 0.2))
    cy = h / 2 * (1 + rng.uniform(-0.2, 0.2))
    nx, ny = (x - cx) / (w / 2), (y - cy) / (h / 2)
    r2 = nx * nx + ny * ny
    k = rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 0.9)
    factor = 1.0 + k * r2
    return _remap(image, cx + nx * factor * (w / 2), cy + ny * factor * (h / 2))


def perspective(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Perspective warp moving each corner by 20–40 % of the side."""
    import cv2

    image = _check(image)
    h, w = image.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(0.2, 0.4, (4, 2)) * rng.choice((-1.0, 1.0), (4, 2)) * np.float32([w, h])
    dst = (src + jitter).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def arc(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bend the image into an arc of 120–300 degrees (ImageMagick ``arc``)."""
    image = _check(image)
    h, w = image.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    span = math.radians(rng.uniform(120.0, 300.0))
    cx, cy = w / 2, h * rng.uniform(0.6, 0.9)
    inner, outer = 0.1 * h, 0.75 * h
    angle = np.arctan2(y - cy, x - cx) + math.pi / 2  # 0 = up
    radius = np.hypot(x - cx, y - cy)
    src_x = (angle / span + 0.5) * w
    src_y = (outer - radius) / (outer - inner) * h
    return _remap(image, src_x, src_y)


def polar(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cartesian → polar resampling about a jittered centre (ImageMagick ``polar``)."""
    image = _check(image)
    h, w = image.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = w / 2 * (1 + rng.uniform(-0.3, 0.3))
    cy = h / 2 * (1 + rng.uniform(-0.3, 0.3))
    theta = (x / w) * 2 * math.pi + rng.uniform(0, 2 * math.pi)
    radius = (y / h) * 0.5 * math.hypot(w, h) * rng.uniform(0.6, 1.0)
    return _remap(image, cx + radius * np.cos(theta), cy + radius * np.sin(theta))


def tile(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Repeat a shrunken copy 2×2 to 4×4 times, with shuffled flips."""
    import cv2

    image = _check(image)
    h, w = image.shape
    n = int(rng.integers(2, 5))
    th, tw = -(-h // n), -(-w // n)
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    rows = []
    for _ in range(n):
        row = []
        for _ in range(n):
            piece = small
            if rng.random() < 0.5:
                piece = piece[:, ::-1]
            if rng.random() < 0.5:
                piece = piece[::-1, :]
            row.append(piece)
        rows.append(np.hstack(row))
    return np.ascontiguousarray(np.vstack(rows)[:h, :w], dtype=np.float32)


def affine(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strong affine warp: shear 0.5–1.0, anisotropic scale, rotation."""
    import cv2

    image = _check(image)
    h, w = image.shape
    shear = rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.0)
    sx, sy = rng.uniform(0.5, 1.6, 2)
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    linear = np.array([[c, -s], [s, c]]) @ np.array([[sx, shear], [0.0, sy]])
    centre = np.array([w / 2, h / 2])
    offset = centre - linear @ centre
    matrix = np.hstack([linear, offset[:, None]]).astype(np.float32)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def spread(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scatter pixels: each takes the value at a random offset within 3–6 % of the side (ImageMagick ``spread``)."""
    image = _check(image)
    h, w = image.shape
    radius = rng.uniform(0.03, 0.06) * max(h, w)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = rng.uniform(-radius, radius, (h, w)).astype(np.float32)
    dy = rng.uniform(-radius, radius, (h, w)).astype(np.float32)
    return _remap(image, x + dx, y + dy)


def motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smear along a random direction over 10–20 % of the side (ImageMagick ``motion-blur``)."""
    import cv2

    image = _check(image)
    length = max(3, int(round(rng.uniform(0.10, 0.20) * max(image.shape))))
    angle = rng.uniform(0.0, math.pi)
    kernel = np.zeros((length, length), np.float32)
    centre = (length - 1) / 2
    for t in np.linspace(-centre, centre, 4 * length):
        kernel[int(round(centre + t * math.sin(angle))), int(round(centre + t * math.cos(angle)))] = 1.0
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def cut_paste(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy a patch of 15–30 % of each side, flip or rotate it, and paste it elsewhere (CutPaste).

    The patch is centred on a random pixel brighter than the median (as in
    :func:`random_cut`), so it carries anatomy rather than empty background.
    """
    image = _check(image).copy()
    h, w = image.shape
    ph, pw = max(2, int(h * rng.uniform(0.15, 0.3))), max(2, int(w * rng.uniform(0.15, 0.3)))
    bright = np.argwhere(image > np.median(image))
    cy, cx = bright[int(rng.integers(0, len(bright)))] if len(bright) else (h // 2, w // 2)
    y0 = int(np.clip(cy - ph // 2, 0, h - ph))
    x0 = int(np.clip(cx - pw // 2, 0, w - pw))
    patch = np.rot90(image[y0 : y0 + ph, x0 : x0 + pw], 2 * int(rng.integers(0, 2)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    y1, x1 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    image[y1 : y1 + ph, x1 : x1 + pw] = patch
    return image


def random_cut(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Black out a rectangle of 25–50 % of each side over the object (validation only).

    The rectangle is centred on a random pixel brighter than the image's median,
    so the cut removes part of the anatomy rather than empty background.
    """
    image = _check(image).copy()
    h, w = image.shape
    ch, cw = int(h * rng.uniform(0.25, 0.5)), int(w * rng.uniform(0.25, 0.5))
    bright = np.argwhere(image > np.median(image))
    cy, cx = bright[int(rng.integers(0, len(bright)))] if len(bright) else (h // 2, w // 2)
    y0 = int(np.clip(cy - ch // 2, 0, h - ch))
    x0 = int(np.clip(cx - cw // 2, 0, w - cw))
    image[y0 : y0 + ch, x0 : x0 + cw] = 0.0
    return image


def crop_resize(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop 40–65 % of each side at a random place and resize back (validation only)."""
    import cv2

    image = _check(image)
    h, w = image.shape
    ch, cw = max(4, int(h * rng.uniform(0.4, 0.65))), max(4, int(w * rng.uniform(0.4, 0.65)))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return cv2.resize(image[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def additive_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise with σ in [0.08, 0.15] (validation only)."""
    image = _check(image)
    noisy = image + rng.normal(0.0, rng.uniform(0.08, 0.15), image.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def gaussian_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with σ of 2–3 % of the side (validation only)."""
    import cv2

    image = _check(image)
    sigma = rng.uniform(0.02, 0.03) * max(image.shape)
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


#: Fake-OOD distortions used to train TEND's classifier and margin learner.
TRAIN_DISTORTIONS: dict[str, Transform] = {
    "barrel": barrel,
    "perspective": perspective,
    "arc": arc,
    "polar": polar,
    "tile": tile,
    "affine": affine,
}
#: Further strong distortions that may be added to the fake-OOD set (not in the thesis's six).
EXTRA_DISTORTIONS: dict[str, Transform] = {
    "spread": spread,
    "motion_blur": motion_blur,
    "cut_paste": cut_paste,
}
#: Validation-only transforms (thesis Table 4.5 columns).
VALIDATION_TRANSFORMS: dict[str, Transform] = {
    "random_cut": random_cut,
    "crop_resize": crop_resize,
    "noise": additive_noise,
    "blur": gaussian_blur,
}


#: Extra training distortion → the validation transform (Table 4.5) it resembles in effect.
LOOKALIKES: dict[str, str] = {"spread": "noise", "motion_blur": "blur", "cut_paste": "random_cut"}
#: Named sets a command line may give instead of a list: the thesis's six (no look-alikes) or all nine.
DISTORTION_SETS: dict[str, tuple[str, ...]] = {
    "thesis": tuple(TRAIN_DISTORTIONS),
    "all": tuple(TRAIN_DISTORTIONS) + tuple(EXTRA_DISTORTIONS),
}


def distortion_names(text: str) -> tuple[str, ...]:
    """A ``--distortions`` value as names: a set of :data:`DISTORTION_SETS` or a comma-separated list.

    ``"thesis"`` gives the six warps without the Table 4.5 look-alikes; ``"all"`` the nine.
    Names are checked when the training configuration is built.
    """
    value = str(text).strip()
    if value in DISTORTION_SETS:
        return DISTORTION_SETS[value]
    return tuple(name.strip() for name in value.split(",") if name.strip())


def distort(image: np.ndarray, rng: np.random.Generator, *, kinds: tuple[str, ...] | None = None) -> np.ndarray:
    """One training distortion chosen uniformly from ``kinds`` (default: the thesis's six).

    ``kinds`` may name keys of :data:`TRAIN_DISTORTIONS` and :data:`EXTRA_DISTORTIONS`.
    """
    known = {**TRAIN_DISTORTIONS, **EXTRA_DISTORTIONS}
    names = tuple(TRAIN_DISTORTIONS) if kinds is None else tuple(kinds)
    unknown = [k for k in names if k not in known]
    if unknown or not names:
        raise ParameterError(f"unknown distortions {unknown or names}; known: {', '.join(known)}.")
    return known[names[int(rng.integers(0, len(names)))]](image, rng)


def validation_transform(image: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """Apply the validation transform ``name`` (a key of :data:`VALIDATION_TRANSFORMS`)."""
    if name not in VALIDATION_TRANSFORMS:
        raise ParameterError(f"unknown validation transform {name!r}; known: {', '.join(VALIDATION_TRANSFORMS)}.")
    return VALIDATION_TRANSFORMS[name](image, rng)
