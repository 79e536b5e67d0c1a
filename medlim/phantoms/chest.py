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

How hard the findings are to see. Real findings are often subtle: the thesis's
classifiers reach per-class AUCs of 0.50–0.82 on MIMIC-CXR and CheXpert
(Table 6.3, macro 0.60). Drawn at full conspicuity, every finding here but
nodule and fracture was found with AUC ≥ 0.999 (macro 0.971), which is not a
realistic test of retrieval. Three parameters of :func:`generate_chest` set
the look, each in [0, 1]:

* ``subtlety`` (default :data:`SUBTLETY`): each finding gets a random grade —
  a borderline or gross heart (normal hearts also vary in width), an effusion
  from a blunted costophrenic angle to a high meniscus, dense or a faint
  layering haze, a small faint nodule over ribs and vessels, a faint or dense
  opacity, a thin apical pneumothorax rim with a faint pleural line, dimmer
  devices (sometimes only a line), an undisplaced rib break;
* ``mimic_rate`` (default :data:`MIMIC_RATE`): look-alikes on normal anatomy,
  each with this probability — a nipple shadow or end-on vessel (nodule),
  basal soft-tissue shadows (opacity, effusion), a skin fold (pneumothorax
  line), ECG leads (devices), a healed rib callus (fracture);
* ``acquisition`` (default :data:`ACQUISITION`): AP films (30 %) that magnify
  the heart, inspiration depth, patient rotation, shift and scale, exposure
  (gamma, gain, offset), detector blur and noise.

The defaults were fixed on classifier difficulty alone, before any retrieval
comparison: the shipped PMS recipe (1,200 phantoms of seed 1, 64×64) scored
on validation phantoms (seed 5000, n = 600) at subtlety 1.0 reached macro AUC
0.787 and at 0.8 reached 0.824 (training seeds 2 and 3: 0.845, 0.849; the
chosen band was 0.80–0.92, taking the hardest tried setting inside it).
Per class at 0.8, seed 1: no finding 0.944, enlarged heart 0.946, effusion
0.981, nodule 0.543, opacity 0.959, pneumothorax 0.762, support devices 0.984,
fracture 0.476 — like the thesis, some classes are found well and the rare,
small ones about as well as chance. ``subtlety=0, mimic_rate=0,
acquisition=0`` gives the first, easy look (not bit-identical to it).
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
    "SUBTLETY",
    "MIMIC_RATE",
    "ACQUISITION",
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
#: Default finding subtlety (0 = every finding at full conspicuity; see :func:`generate_chest`).
SUBTLETY = 0.8
#: Default probability of each look-alike of a finding on normal anatomy.
MIMIC_RATE = 0.3
#: Default spread of acquisition variation (0 = fixed exposure and position).
ACQUISITION = 1.0


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


def _amplitude(rng: np.random.Generator, subtlety: float) -> float:
    # conspicuity of one finding: 1 with subtlety 0; uniform in [0.1, 1] (mean 0.55) with subtlety 1
    return float((1.0 - subtlety) + subtlety * rng.uniform(0.1, 1.0))


def _render(rng: np.random.Generator, present: set[str], size: int, *, subtlety: float, mimic_rate: float,
            acquisition: float) -> np.ndarray:
    import cv2

    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    # acquisition: an AP (bedside) film with probability 0.3 magnifies the heart; breath-hold depth varies
    ap_view = rng.random() < 0.3 * acquisition
    inspiration = 1.0 + acquisition * rng.uniform(-0.08, 0.05)
    body = 0.30 + 0.05 * rng.standard_normal()
    image = np.full((size, size), 0.05, np.float32)
    image += body * _soft(_ellipse(x, y, 0.5, 0.55, 0.47, 0.55), 0.05)  # soft tissue of the trunk
    tilt = rng.uniform(-0.03, 0.03)
    lungs = np.zeros_like(image)
    lung_boxes = []
    for side in (-1, 1):
        cx = 0.5 + side * rng.uniform(0.18, 0.21) + tilt
        cy = 0.48 + rng.uniform(-0.02, 0.02)
        rx, ry = rng.uniform(0.13, 0.16), rng.uniform(0.27, 0.31) * inspiration
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
    # heart: bright silhouette left of the midline (patient's left = image right); normal hearts vary in
    # width, cardiomegaly ranges from borderline to gross, and AP films magnify every heart
    normal_rx = rng.uniform(0.12, 0.14) + subtlety * rng.uniform(-0.008, 0.012)
    enlargement = 1.0 + 0.45 * _amplitude(rng, subtlety) if "enlarged heart" in present else 1.0
    heart_rx = normal_rx * enlargement * (1.0 + 0.12 * acquisition if ap_view else 1.0)
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
    rib_brightness = 0.10 * (1.0 + acquisition * rng.uniform(-0.2, 0.6))
    for side in (-1, 1):
        for k in range(6):
            top = 0.26 + k * 0.085
            t = np.linspace(0.0, 1.0, 12)
            px = 0.5 + side * (0.05 + 0.32 * t)
            py = top + 0.06 * np.sin(t * math.pi) - 0.04 * t + 0.01 * rng.standard_normal()
            path = np.stack([px, py], axis=1)
            rib_paths.append(path)
            _draw_line(ribs, path, 1.0, max(1, size // 64))
    image += rib_brightness * ribs
    for side in (-1, 1):  # clavicles
        _draw_line(image, np.array([[0.5 + side * 0.04, 0.2], [0.5 + side * 0.3, 0.16]]), 0.55, max(1, size // 48))

    # look-alikes of findings on normal anatomy (real films have them): a nipple shadow or end-on vessel
    # (nodule), breast and soft-tissue shadows over the bases (opacity, effusion), a skin fold (pneumothorax
    # line), ECG leads (devices), a healed rib callus (fracture)
    if rng.random() < mimic_rate:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        mx, my, radius = cx + rng.uniform(-0.4, 0.4) * rx, cy + rng.uniform(0.1, 0.6) * ry, rng.uniform(0.015, 0.03)
        image += rng.uniform(0.05, 0.2) * _soft(_ellipse(x, y, mx, my, radius, radius), 0.25)
    if rng.random() < mimic_rate:
        shadow = _soft(_ellipse(x, y, 0.5 + tilt, 0.86, 0.42, 0.16 + rng.uniform(0.0, 0.06)), 0.3)
        image += rng.uniform(0.04, 0.12) * shadow * lungs
    if rng.random() < mimic_rate:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        fold = np.abs(_ellipse(x, y, cx, cy + 0.05, rx * rng.uniform(0.75, 0.95), ry * 0.95) - 1.0) < 0.05
        image[fold & (lungs > 0.5)] += rng.uniform(0.04, 0.1)
    if rng.random() < mimic_rate:
        for _ in range(int(rng.integers(1, 4))):
            start = np.array([rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)])
            bend = start + np.array([rng.uniform(-0.2, 0.2), rng.uniform(0.2, 0.5)])
            _draw_line(image, np.stack([start, bend, bend + rng.uniform(-0.1, 0.1, 2)]),
                       rng.uniform(0.4, 0.7), 1)
    if rng.random() < mimic_rate:
        path = rib_paths[int(rng.integers(0, len(rib_paths)))]
        j = int(rng.integers(3, 9))
        bump = np.zeros_like(image)
        _draw_line(bump, path[j - 1 : j + 1], 1.0, max(2, size // 40))
        image += rng.uniform(0.05, 0.15) * bump

    if "effusion" in present:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        grade = _amplitude(rng, subtlety)
        # fluid fills the lung base up to a meniscus that rises towards the lateral wall; a small effusion
        # only blunts the costophrenic angle, and a layering one (supine film) is a faint haze
        level = cy + ry * (0.9 - grade * rng.uniform(0.6, 1.0))
        meniscus = level - 0.08 * np.abs(x - cx) / rx
        fluid = _soft(_ellipse(x, y, cx, cy, rx * 1.05, ry * 1.05)) * np.clip((y - meniscus) / 0.03, 0.0, 1.0)
        density = 1.0 - subtlety * rng.uniform(0.0, 0.5)
        image = np.maximum(image, image * (1.0 - density * fluid) + density * fluid * (body + 0.15))
    if "nodule" in present:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        nx, ny = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.5, 0.4) * ry
        grade = _amplitude(rng, subtlety)
        radius = rng.uniform(0.03, 0.045) * (1.0 - subtlety * 0.45 * rng.random())
        image += 0.35 * grade * _soft(_ellipse(x, y, nx, ny, radius, radius), 0.25)
    if "opacity" in present:
        cx, cy, rx, ry = lung_boxes[int(rng.integers(0, 2))]
        grade = _amplitude(rng, subtlety)
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / 24)
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
        patch = _soft(_ellipse(x, y, cx + rng.uniform(-0.3, 0.3) * rx, cy + rng.uniform(-0.3, 0.3) * ry,
                               rx * 0.7, ry * 0.45), 0.3)
        image += 0.28 * grade * patch * (0.5 + noise) * lungs
    if "pneumothorax" in present:
        side = int(rng.integers(0, 2))
        cx, cy, rx, ry = lung_boxes[side]
        grade = _amplitude(rng, subtlety)
        # collapsed lung: the outer rim of the lung is air with no markings, bounded by a pleural line; a
        # small pneumothorax is a thin apical rim with a faint line
        shrink = 1.0 - 0.3 * grade
        inner = _ellipse(x, y, cx, cy + 0.03 + 0.05 * (1.0 - grade), rx * shrink, ry * (1.0 - 0.2 * grade))
        top = y < cy + (0.5 * grade - 0.3 * (1.0 - grade)) * ry
        rim = _soft(_ellipse(x, y, cx, cy, rx, ry)) * np.clip((inner - 1.0) / 0.1, 0.0, 1.0) * top
        image = image * (1.0 - rim) + rim * (0.02 + 0.06 * (1.0 - grade))
        line = (np.abs(inner - 1.0) < 0.06) & top & (rim > 0.0)
        image[line] = np.maximum(image[line], image[line] + 0.06 + 0.2 * grade)
    if "support devices" in present:
        grade = 1.0 - 0.5 * subtlety * rng.random()
        tube = np.array([[0.5 + tilt, 0.02], [0.5 + tilt, 0.30], [0.5 + tilt + rng.uniform(-0.02, 0.02), 0.55]])
        if rng.random() < 1.0 - 0.4 * subtlety:  # an endotracheal or feeding tube
            _draw_line(image, tube, 0.95 * grade, max(1, size // 48))
        if rng.random() < 0.7:  # a central line from a shoulder
            start = np.array([0.85 + rng.uniform(-0.05, 0.05), 0.18])
            _draw_line(image, np.stack([start, [0.62, 0.22], [0.53, 0.33]]), 0.9 * grade, max(1, size // 64))
        if rng.random() < 0.5:  # a pacemaker can and lead
            px, py = 0.25 + rng.uniform(-0.05, 0.05), 0.2 + rng.uniform(-0.03, 0.03)
            can = _ellipse(x, y, px, py, 0.06, 0.04) < 1.0
            image[can] = grade
            _draw_line(image, np.array([[px, py], [0.45, 0.4], [0.55, 0.6]]), 0.95 * grade, max(1, size // 96))
    if "fracture" in present:
        path = rib_paths[int(rng.integers(0, len(rib_paths)))]
        grade = _amplitude(rng, subtlety)
        j = int(rng.integers(4, 8))
        gap = np.zeros_like(image)
        _draw_line(gap, path[j - 1 : j + 1], 1.0, max(2, size // 40))
        image -= 0.25 * grade * gap  # a dark break across the rib
        shifted = path[j:] + np.array([0.0, rng.choice((-1.0, 1.0)) * 0.02 * grade])
        _draw_line(image, shifted, 0.6 * (1.0 - 0.5 * subtlety) + 0.5 * subtlety * rib_brightness, max(1, size // 64))
    if acquisition > 0.0:
        # exposure (gamma, window), patient position (shift, rotation, scale), detector blur and noise
        angle = acquisition * rng.uniform(-4.0, 4.0)
        scale = 1.0 + acquisition * rng.uniform(-0.06, 0.06)
        shift = acquisition * rng.uniform(-0.03, 0.03, 2) * size
        matrix = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), angle, scale)
        matrix[:, 2] += shift
        image = cv2.warpAffine(np.clip(image, 0.0, 1.0), matrix, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.05)
        blur = acquisition * rng.uniform(0.0, 1.0)
        if blur > 0.2:
            image = cv2.GaussianBlur(image, (0, 0), blur)
        gamma = math.exp(acquisition * rng.uniform(-0.3, 0.3))
        image = np.clip(image, 0.0, 1.0) ** gamma
        image = image * (1.0 + acquisition * rng.uniform(-0.15, 0.15)) + acquisition * rng.uniform(-0.05, 0.05)
    noise_sd = 0.015 + acquisition * rng.uniform(0.0, 0.025)
    image = image + noise_sd * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def generate_chest(*, seed: int, index: int = 0, size: int = NATIVE_SIZE, subtlety: float = SUBTLETY,
                  mimic_rate: float = MIMIC_RATE, acquisition: float = ACQUISITION) -> ChestPhantom:
    """One chest phantom; a pure function of its arguments.

    Args:
        seed: non-negative series seed.
        index: sample index (each index draws its findings independently with
            :data:`PREVALENCE`).
        size: output side in pixels (a resize of the 128×128 native render).
        subtlety: in [0, 1]; 0 draws every finding at full conspicuity (the
            first, easy look), 1 draws each one with a random grade (a
            borderline heart, a blunted angle, a faint small nodule, a thin
            apical rim...). Default :data:`SUBTLETY`.
        mimic_rate: in [0, 1], the probability of each look-alike on normal
            anatomy (nipple shadow, basal soft-tissue shadow, skin fold, ECG
            leads, healed rib callus). Default :data:`MIMIC_RATE`.
        acquisition: in [0, 1], the spread of acquisition variation (AP films
            that magnify the heart, inspiration depth, patient position,
            exposure, blur, noise); 0 is a fixed exposure. Default :data:`ACQUISITION`.

    Returns:
        :class:`ChestPhantom`.
    """
    import cv2

    seed = check_seed(seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 2048:
        raise ParameterError(f"`size` must be an integer in [16, 2048], {size!r} is given.")
    for name, value in (("subtlety", subtlety), ("mimic_rate", mimic_rate), ("acquisition", acquisition)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ParameterError(f"`{name}` must be a number in [0, 1], {value!r} is given.")
    label_rng = rng_for(seed, "chest-labels", int(index))
    present = {name for name in FINDINGS[1:] if label_rng.random() < PREVALENCE[name]}
    image = _render(rng_for(seed, "chest-render", int(index)), present, NATIVE_SIZE, subtlety=float(subtlety),
                    mimic_rate=float(mimic_rate), acquisition=float(acquisition))
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
    parser.add_argument("--subtlety", type=float, default=SUBTLETY,
                        help=f"finding subtlety in [0, 1] (0 = every finding obvious; default {SUBTLETY})")
    parser.add_argument("--mimic-rate", type=float, default=MIMIC_RATE,
                        help=f"probability of each finding look-alike on normal anatomy (default {MIMIC_RATE})")
    parser.add_argument("--acquisition", type=float, default=ACQUISITION,
                        help=f"spread of acquisition variation in [0, 1] (default {ACQUISITION})")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"size": int(args.size), "subtlety": float(args.subtlety), "mimic_rate": float(args.mimic_rate),
            "acquisition": float(args.acquisition)}, {}


#: Registry entry (``medlim phantom chest``): ``DIR/images/*.png`` + manifest with exact labels.
KIND = PhantomKind(
    name="chest",
    summary="frontal chest radiographs with 8 co-occurring, imbalanced finding labels (multi-label retrieval)",
    generate=generate_chest,
    write=write_chest,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
