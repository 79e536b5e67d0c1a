"""Chest-radiograph phantoms with co-occurring findings (multi-label data of thesis §6.2).

PMS (thesis §6.2) is trained and judged on MIMIC-CXR and CheXpert, where an
image carries any subset of 14 findings, most images carry one or two, and the
findings are very unequally frequent. These phantoms imitate that label
structure on a frontal chest film drawn from simple shapes:

* anatomy: two lungs (dark, with faint vessel markings), mediastinum and heart
  (bright), diaphragm domes, a rib cage of curved bright bands, clavicles;
* findings (:data:`FINDINGS`): an enlarged heart (wider cardiac silhouette),
  pleural effusion (a bright meniscus filling a lung base), a nodule (a small
  bright disc inside a lung), airspace opacity (a bright cloudy patch),
  pneumothorax (a dark crescent without markings at a lung edge, with a thin
  pleural line), support devices (a tube down the midline, a line, a
  pacemaker can), and a rib fracture (a displaced gap in one rib);
* ``no finding`` exactly when no other finding is present.

Finding probabilities (:data:`PREVALENCE`) are fixed and unequal, like real
collections (support devices and opacity common, fracture rare); each one is
drawn independently, so combinations co-occur. Labels in the manifest are the
exact drawn labels. Images are grey ``float32`` in [0, 1], rendered at 128×128
and resized for other sizes.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, rng_for, save_png

__all__ = [
    "FINDINGS",
    "PREVALENCE",
    "ChestPhantom",
    "generate_chest",
    "labels_to_vector",
    "write_chest",
    "KIND",
]

#: Label order of the multi-hot vectors; index 0 is "no finding".
FINDINGS: tuple[str, ...] = (
    "no finding",
    "enlarged heart",
    "effusion",
    "nodule",
    "opacity",
    "pneumothorax",
    "support devices",
    "fracture",
)
#: Independent probability of each finding (no finding = none drawn).
PREVALENCE: dict[str, float] = {
    "enlarged heart": 0.22,
    "effusion": 0.25,
    "nodule": 0.12,
    "opacity": 0.30,
    "pneumothorax": 0.08,
    "support devices": 0.32,
    "fracture": 0.06,
}
NATIVE_SIZE = 128


@dataclass(frozen=True)
class ChestPhantom:
    """One synthetic frontal chest radiograph and its exact labels.

    Attributes:
        image: ``np.ndarray[H, W]`` float32 in [0, 1] (bone and fluid bright, air dark).
        labels: the findings present, in :data:`FINDINGS` order (``("no finding",)`` when none).
        seed: generator seed; index: sample index.
    """

    image: np.ndarray
    labels: tuple[str, ...]
    seed: int
    index: int

    @property
    def vector(self) -> np.ndarray:
        """Multi-hot ``np.ndarray[len(FINDINGS)]`` uint8 in :data:`FINDINGS` order."""
        return labels_to_vector(self.labels)


def labels_to_vector(labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Multi-hot ``np.ndarray[8]`` uint8 for a set of finding names (unknown names raise)."""
    vector = np.zeros(len(FINDINGS), dtype=np.uint8)
    for name in labels:
        if name not in FINDINGS:
            raise ParameterError(f"unknown finding {name!r}; known: {', '.join(FINDINGS)}.")
        vector[FINDINGS.index(name)] = 1
    return vector


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def _soft(inside: np.ndarray, width: float = 0.08) -> np.ndarray:
    # 1 well inside a shape (value < 1), falling smoothly to 0 past its edge
    return np.clip((1.0 + width - inside) / (2.0 * width), 0.0, 1.0)


def _draw_line(canvas: np.ndarray, points: np.ndarray, value: float, thickness: int) -> None:
    import cv2

    n = canvas.shape[0]
    pts = np.round(points * n).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, float(value), thickness=thickness, lineType=cv2.LINE_AA)


def _render(rng: np.random.Generator, present: set[str], size: int) -> np.ndarray:
    import cv2

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    body = 0.30 + 0.05 * rng.standard_normal()
    image = np.full((size, size), 0.05, np.float32)
    image += body * _soft(_ellipse(x, y, 0.5, 0.55, 0.47, 0.55), 0.05)  # soft tissue of the trunk
    tilt = rng.uniform(-0.03, 0.03)
    lungs = np.zeros_like(image)
    lung_boxes = []
    for side in (-1, 1):
        cx = 0.5 + side * rng.uniform(0.18, 0.21) + tilt
        cy = 0.48 + rng.uniform(-0.02, 0.02)
        rx, ry = rng.uniform(0.13, 0.16), rng.uniform(0.27, 0.31)
        lungs = np.maximum(lungs, _soft(_ellipse(x, y, cx, cy, rx, ry)))
        lung_boxes.append((cx, cy, rx, ry))
    image -= 0.22 * lungs
    # vessel markings: a few faint branching strokes in each lung
    markings = np.zeros_like(image)
    for cx, cy, rx, ry in lung_boxes:
        hilum = np.array([0.5 + 0.4 * (cx - 0.5), cy])
        for _ in range(6):
            angle = rng.uniform(0.0, 2.0 * math.pi)
            length = rng.uniform(0.08, 0.16)
            end = hilum + length * np.array([math.cos(angle) * rx / 0.15, math.sin(angle) * ry / 0.3])
            _draw_line(markings, np.stack([hilum, end]), 0.06, 1)
    image += markings * lungs
    # heart: bright silhouette left of the midline (patient's left = image right)
    heart_rx = rng.uniform(0.12, 0.14) * (1.45 if "enlarged heart" in present else 1.0)
    heart = _soft(_ellipse(x, y, 0.53 + tilt + 0.3 * (heart_rx - 0.13), 0.62, heart_rx, 0.13))
    mediastinum = _soft(_ellipse(x, y, 0.5 + tilt, 0.35, 0.06, 0.3))
    image = np.maximum(image, 0.05 + (body + 0.12) * np.maximum(heart, mediastinum))
    # diaphragm domes below each lung
    for cx, cy, rx, ry in lung_boxes:
        dome = _soft(_ellipse(x, y, cx, cy + ry + 0.08, rx * 1.2, 0.12))
        image = np.maximum(image, 0.05 + (body + 0.1) * dome * (y > cy + ry - 0.05))
    # ribs: bright arcs over each lung; remember one for a possible fracture
    ribs = np.zeros_like(image)
    rib_paths = []
    for side in (-1, 1):
        for k in range(6):
            top = 0.26 + k * 0.085
            t = np.linspace(0.0, 1.0, 12)
            px = 0.5 + side * (0.05 + 0.32 * t)
            py = top + 0.06 * np.sin(t * math.pi) - 0.04 * t + 0.01 * rng.standard_normal()
            path = np.stack([px, py], axis=1)
            rib_paths.append(path)
            _draw_line(ribs, path, 1.0, max(1, size // 64))
    image += 0.10 * ribs
    for side in (-1, 1):  # clavicles
        _draw_line(image, np.array([[0.5 + side * 0.04, 0.2], [0.5 + side * 0.3, 0.16]]), 0.55, max(1, size // 48))

    if "effusion" in present:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        level = cy + ry * rng.uniform(-0.1, 0.4)
        # fluid fills the lung base up to a meniscus that rises towards the lateral wall
        meniscus = level - 0.08 * np.abs(x - cx) / rx
        fluid = _soft(_ellipse(x, y, cx, cy, rx * 1.05, ry * 1.05)) * np.clip((y - meniscus) / 0.03, 0.0, 1.0)
        image = np.maximum(image, fluid * (body + 0.15))
    if "nodule" in present:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        nx, ny = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.5, 0.4) * ry
        radius = rng.uniform(0.03, 0.045)
        image += 0.35 * _soft(_ellipse(x, y, nx, ny, radius, radius), 0.25)
    if "opacity" in present:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / 24)
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
        patch = _soft(_ellipse(x, y, cx + rng.uniform(-0.3, 0.3) * rx, cy + rng.uniform(-0.3, 0.3) * ry,
                               rx * 0.7, ry * 0.45), 0.3)
        image += 0.28 * patch * (0.5 + noise) * lungs
    if "pneumothorax" in present:
        side = int(rng.integers(0, 2))
        cx, cy, rx, ry = lung_boxes[side]
        # collapsed lung: the outer rim of the lung is air with no markings, bounded by a pleural line
        inner = _ellipse(x, y, cx - (1 if side else -1) * 0.0, cy + 0.03, rx * 0.7, ry * 0.8)
        rim = _soft(_ellipse(x, y, cx, cy, rx, ry)) * np.clip((inner - 1.0) / 0.1, 0.0, 1.0) * (y < cy + 0.5 * ry)
        image = image * (1.0 - rim) + rim * 0.02
        line = (np.abs(inner - 1.0) < 0.06) & (y < cy + 0.5 * ry)
        image[line] = np.maximum(image[line], 0.32)
    if "support devices" in present:
        tube = np.array([[0.5 + tilt, 0.02], [0.5 + tilt, 0.30], [0.5 + tilt + rng.uniform(-0.02, 0.02), 0.55]])
        _draw_line(image, tube, 0.95, max(1, size // 48))
        if rng.random() < 0.7:  # a central line from a shoulder
            start = np.array([0.85 + rng.uniform(-0.05, 0.05), 0.18])
            _draw_line(image, np.stack([start, [0.62, 0.22], [0.53, 0.33]]), 0.9, max(1, size // 64))
        if rng.random() < 0.5:  # a pacemaker can and lead
            px, py = 0.25 + rng.uniform(-0.05, 0.05), 0.2 + rng.uniform(-0.03, 0.03)
            can = _ellipse(x, y, px, py, 0.06, 0.04) < 1.0
            image[can] = 1.0
            _draw_line(image, np.array([[px, py], [0.45, 0.4], [0.55, 0.6]]), 0.95, max(1, size // 96))
    if "fracture" in present:
        path = rib_paths[int(rng.integers(0, len(rib_paths)))]
        j = int(rng.integers(4, 8))
        gap = np.zeros_like(image)
        _draw_line(gap, path[j - 1 : j + 1], 1.0, max(2, size // 40))
        image -= 0.25 * gap  # a dark break across the rib
        shifted = path[j:] + np.array([0.0, rng.choice((-1.0, 1.0)) * 0.02])
        _draw_line(image, shifted, 0.6, max(1, size // 64))  # displaced fragment
    image += 0.015 * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def generate_chest(*, seed: int, index: int = 0, size: int = NATIVE_SIZE) -> ChestPhantom:
    """One chest phantom; a pure function of its arguments.

    Args:
        seed: non-negative series seed.
        index: sample index (each index draws its findings independently with
            :data:`PREVALENCE`).
        size: output side in pixels (a resize of the 128×128 native render).

    Returns:
        :class:`ChestPhantom`.
    """
    import cv2

    seed = check_seed(seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 2048:
        raise ParameterError(f"`size` must be an integer in [16, 2048], {size!r} is given.")
    label_rng = rng_for(seed, "chest-labels", int(index))
    present = {name for name in FINDINGS[1:] if label_rng.random() < PREVALENCE[name]}
    image = _render(rng_for(seed, "chest-render", int(index)), present, NATIVE_SIZE)
    if size != NATIVE_SIZE:
        interp = cv2.INTER_AREA if size < NATIVE_SIZE else cv2.INTER_CUBIC
        image = np.clip(cv2.resize(image, (int(size), int(size)), interpolation=interp), 0.0, 1.0)
    labels = tuple(name for name in FINDINGS if name in present) or ("no finding",)
    return ChestPhantom(image=image.astype(np.float32), labels=labels, seed=seed, index=int(index))


def write_chest(phantom: ChestPhantom, out_dir: Path, *, stem: str) -> list[dict[str, Any]]:
    """Write ``out_dir/images/<stem>.png`` (8-bit grey) and return its manifest row.

    Returns:
        ``[{"file", "labels"}]``; ``labels`` joins the findings with ``|``.
    """
    relative = Path("images") / f"{stem}.png"
    save_png(Path(out_dir) / relative, phantom.image)
    return [{"file": relative.as_posix(), "labels": "|".join(phantom.labels)}]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=NATIVE_SIZE, help="image side in px (default 128, native)")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"size": int(args.size)}, {}


#: Registry entry (``medlim phantom chest``): ``DIR/images/*.png`` + manifest with exact labels.
KIND = PhantomKind(
    name="chest",
    summary="frontal chest radiographs with 8 co-occurring, imbalanced finding labels (multi-label retrieval)",
    generate=generate_chest,
    write=write_chest,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
