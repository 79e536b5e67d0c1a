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

The MIMIC-like label set (``label_set="mimic14"``). The default (``chest8``)
has 8 independent labels and well-separated findings; MIMIC-CXR and CheXpert
have the 14 CheXpert classes (:data:`MIMIC14_FINDINGS`, thesis order), a label
hierarchy, strong co-occurrence and many visually overlapping classes. The
option imitates that, with the same anatomy, look-alikes and acquisition:

* prevalences (:data:`MIMIC14_PREVALENCE`) are approximately the published
  MIMIC-CXR positive-label frequencies from the CheXpert labeler (Johnson et
  al., *MIMIC-CXR-JPG*, arXiv:1901.07042, 2019, label statistics table):
  No Finding 33 %, Support Devices 29 %, Pleural Effusion 24 %, Lung Opacity
  23 %, Atelectasis 20 %, Cardiomegaly 20 %, Edema 12 %, Pneumonia 7 %,
  Consolidation 5 %, Pneumothorax 4.5 %, Enlarged Cardiomediastinum 3 %,
  Lung Lesion 3 %, Fracture 2 %, Pleural Other 1 % (rounded; the model
  reaches them within about 0.02, No Finding about 0.35);
* co-occurrence comes from a noisy-OR model (:data:`MIMIC14_CONDITIONS`,
  :data:`MIMIC14_CAUSES`), set a priori from clinical knowledge rather than
  fitted to a table: three latent conditions — heart failure (cardiomegaly,
  edema, effusion), infection (pneumonia, consolidation, effusion) and
  critical care (support devices, effusion, atelectasis, pneumothorax) —
  plus a leak per finding; effusion causes compressive atelectasis;
* hierarchy as in CheXpert: Lung Opacity is the parent of edema,
  consolidation, pneumonia, atelectasis and lung lesion, and Enlarged
  Cardiomediastinum of cardiomegaly. Every child *looks* like an opacity (or
  an enlarged silhouette), and the parent label is reported with it only
  part of the time (about 0.4 of images with a child carry Lung Opacity, as
  in the real labels, where the parent is much rarer than its children
  together); the parent alone is an unspecified opacity;
* No Finding is positive exactly when no pathology is (support devices do
  not count, as in the CheXpert labeler), so most images carry one or two
  labels;
* overlapping looks: consolidation (dense lobar patch, air bronchograms),
  pneumonia (half the time drawn the same way, else patchy multifocal
  opacities), edema (bilateral perihilar haze, upper-zone vessels, Kerley
  lines), lung opacity (an unspecified cloudy patch), atelectasis
  (plate-like bands, or a collapsed lower lobe by the heart with a raised
  hemidiaphragm — next to effusion), lung lesion (nodule or lobulated mass),
  pleural other (lateral thickening, apical cap or calcified plaques — next
  to effusion and ribs), enlarged cardiomediastinum (a wide upper
  mediastinum that also broadens the heart shadow — next to cardiomegaly and
  AP magnification); effusion, pneumothorax, fracture and devices are drawn
  as in ``chest8``.

How the ``mimic14`` look (:data:`MIMIC14_LOOK`) is fixed — a rule written
before any ``mimic14`` retrieval figure was computed: ``mimic_rate`` and
``acquisition`` stay at the ``chest8`` defaults; ``subtlety`` is the value of
{0.4, 0.6, 0.8, 1.0} whose classifier macro AUC is closest to 0.675 (the
middle of the 0.60–0.75 band around thesis Table 6.3, macro 0.60), measured
with the shipped PMS recipe (training seed 1, 1,200 phantoms, 64×64, 5 + 10
epochs) on validation phantoms (seed 5000, n = 600), computing AUCs only.
Measured: macro AUC 0.839 / 0.821 / 0.803 / 0.740 at subtlety 0.4 / 0.6 /
0.8 / 1.0, so the rule gives **subtlety 1.0** (the only setting inside the
band). Per class at 1.0: No Finding 0.876, Enlarged Cardiomediastinum 0.730,
Cardiomegaly 0.845, Lung Lesion 0.602, Lung Opacity 0.833, Edema 0.920,
Consolidation 0.899, Pneumonia 0.790, Atelectasis 0.719, Pneumothorax
0.695, Pleural Effusion 0.884, Pleural Other 0.278 (4 positives), Fracture
0.358, Support Devices 0.927 — still easier than the thesis's MIMIC
classifier for the common classes (Table 6.3: 0.50–0.80, edema 0.71,
consolidation 0.50), with the rare classes near or below chance as there.
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
    "LABEL_SETS",
    "DEFAULT_LABEL_SET",
    "MIMIC14_FINDINGS",
    "MIMIC14_PREVALENCE",
    "MIMIC14_CONDITIONS",
    "MIMIC14_CAUSES",
    "MIMIC14_LOOK",
    "ChestPhantom",
    "generate_chest",
    "label_names",
    "default_look",
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


#: Label sets: ``chest8`` (the default, :data:`FINDINGS`) and ``mimic14`` (:data:`MIMIC14_FINDINGS`).
LABEL_SETS: tuple[str, ...] = ("chest8", "mimic14")
DEFAULT_LABEL_SET = "chest8"
#: The 14 MIMIC-CXR / CheXpert classes in the thesis's order (§6.2.3, Table 6.3: NF, EC, CM, LL, LO, EM,
#: CD, PN, AT, PX, PE, PO, FT, SD).
MIMIC14_FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
#: Target positive rates (fraction of images), approximately the published MIMIC-CXR label frequencies
#: (module docstring); the label model (:data:`MIMIC14_CONDITIONS`, :data:`MIMIC14_CAUSES`) reproduces them.
MIMIC14_PREVALENCE: dict[str, float] = {
    "No Finding": 0.33, "Enlarged Cardiomediastinum": 0.03, "Cardiomegaly": 0.20, "Lung Lesion": 0.03,
    "Lung Opacity": 0.23, "Edema": 0.12, "Consolidation": 0.05, "Pneumonia": 0.07, "Atelectasis": 0.20,
    "Pneumothorax": 0.045, "Pleural Effusion": 0.24, "Pleural Other": 0.01, "Fracture": 0.02,
    "Support Devices": 0.29,
}
#: Latent conditions of the label model and their rates (drawn first, independently).
MIMIC14_CONDITIONS: dict[str, float] = {"heart failure": 0.18, "infection": 0.10, "critical care": 0.28}
_LUNG_OPACITY_CHILDREN = ("Edema", "Consolidation", "Pneumonia", "Atelectasis", "Lung Lesion")
#: Noisy-OR label model, drawn in this order: ``(finding, leak, {cause: weight})``; a cause is a latent
#: condition, an earlier finding, or a tuple of findings (any of them); P(finding) =
#: 1 − (1 − leak)·Π over active causes (1 − weight).
MIMIC14_CAUSES: tuple[tuple[str, float, dict[str | tuple[str, ...], float]], ...] = (
    ("Cardiomegaly", 0.12, {"heart failure": 0.52}),
    ("Edema", 0.035, {"heart failure": 0.40, "critical care": 0.06}),
    ("Pleural Effusion", 0.125, {"heart failure": 0.40, "critical care": 0.18, "infection": 0.12}),
    ("Pneumonia", 0.012, {"infection": 0.55}),
    ("Consolidation", 0.01, {"infection": 0.33, "critical care": 0.04}),
    ("Atelectasis", 0.125, {"critical care": 0.16, "Pleural Effusion": 0.20}),
    ("Pneumothorax", 0.02, {"critical care": 0.09}),
    ("Support Devices", 0.11, {"critical care": 0.70}),
    ("Lung Lesion", 0.03, {}),
    ("Fracture", 0.018, {"critical care": 0.01}),
    ("Pleural Other", 0.01, {}),
    ("Lung Opacity", 0.125, {_LUNG_OPACITY_CHILDREN: 0.30}),
    ("Enlarged Cardiomediastinum", 0.015, {"Cardiomegaly": 0.07}),
)
#: Default look of the ``mimic14`` phantoms (fixed by classifier difficulty on validation; module docstring).
MIMIC14_LOOK: dict[str, float] = {"subtlety": 1.0, "mimic_rate": MIMIC_RATE, "acquisition": ACQUISITION}


@dataclass(frozen=True)
class ChestPhantom:
    """One synthetic frontal chest radiograph and its exact labels.

    Attributes:
        image: ``np.ndarray[H, W]`` float32 in [0, 1] (bone and fluid bright, air dark).
        labels: the findings present, in the label set's order (``("no finding",)``
            or ``("No Finding", ...)`` when none).
        seed: generator seed; index: sample index.
        label_set: ``"chest8"`` or ``"mimic14"`` (:data:`LABEL_SETS`).
    """

    image: np.ndarray
    labels: tuple[str, ...]
    seed: int
    index: int
    label_set: str = DEFAULT_LABEL_SET

    @property
    def vector(self) -> np.ndarray:
        """Multi-hot ``np.ndarray[k]`` uint8 in the label set's order (k = 8 or 14)."""
        return labels_to_vector(self.labels, label_set=self.label_set)


def labels_to_vector(labels: tuple[str, ...] | list[str], *, label_set: str = DEFAULT_LABEL_SET) -> np.ndarray:
    """Multi-hot ``np.ndarray[k]`` uint8 for a set of finding names of ``label_set`` (unknown names raise)."""
    names = label_names(label_set)
    vector = np.zeros(len(names), dtype=np.uint8)
    for name in labels:
        if name not in names:
            raise ParameterError(f"unknown finding {name!r}; known: {', '.join(names)}.")
        vector[names.index(name)] = 1
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


@dataclass
class _Film:
    # the film being drawn and the anatomy that findings are placed on (coordinates in [0, 1])
    image: np.ndarray
    x: np.ndarray
    y: np.ndarray
    lungs: np.ndarray
    lung_boxes: list[tuple[float, float, float, float]]
    rib_paths: list[np.ndarray]
    rib_brightness: float
    tilt: float
    body: float
    size: int


def _draw_anatomy(rng: np.random.Generator, size: int, *, subtlety: float, acquisition: float, enlarged: bool,
                  widening: float = 0.0) -> _Film:
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
    # width, cardiomegaly ranges from borderline to gross, and AP films magnify every heart; a widened
    # mediastinum (``widening`` > 0) also broadens the cardiac shadow a little
    normal_rx = rng.uniform(0.12, 0.14) + subtlety * rng.uniform(-0.008, 0.012)
    enlargement = 1.0 + 0.45 * _amplitude(rng, subtlety) if enlarged else 1.0
    heart_rx = normal_rx * enlargement * (1.0 + 0.12 * acquisition if ap_view else 1.0) * (1.0 + 0.15 * widening)
    heart = _soft(_ellipse(x, y, 0.53 + tilt + 0.3 * (heart_rx - 0.13), 0.62, heart_rx, 0.13))
    mediastinum = _soft(_ellipse(x, y, 0.5 + tilt, 0.35, 0.06 * (1.0 + widening), 0.3))
    image = np.maximum(image, 0.05 + (body + 0.12) * np.maximum(heart, mediastinum))
    # diaphragm domes below each lung
    for cx, cy, rx, ry in lung_boxes:
        dome = _soft(_ellipse(x, y, cx, cy + ry + 0.08, rx * 1.2, 0.12))
        image = np.maximum(image, 0.05 + (body + 0.1) * dome * (y > cy + ry - 0.05))
    # ribs: bright arcs over each lung; remember them for a possible fracture
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
    return _Film(image=image, x=x, y=y, lungs=lungs, lung_boxes=lung_boxes, rib_paths=rib_paths,
                 rib_brightness=rib_brightness, tilt=tilt, body=body, size=size)


def _draw_lookalikes(rng: np.random.Generator, film: _Film, mimic_rate: float) -> None:
    # look-alikes of findings on normal anatomy (real films have them): a nipple shadow or end-on vessel
    # (nodule), breast and soft-tissue shadows over the bases (opacity, effusion), a skin fold (pneumothorax
    # line), ECG leads (devices), a healed rib callus (fracture)
    image, x, y, lungs, size = film.image, film.x, film.y, film.lungs, film.size
    if rng.random() < mimic_rate:
        cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
        mx, my, radius = cx + rng.uniform(-0.4, 0.4) * rx, cy + rng.uniform(0.1, 0.6) * ry, rng.uniform(0.015, 0.03)
        image += rng.uniform(0.05, 0.2) * _soft(_ellipse(x, y, mx, my, radius, radius), 0.25)
    if rng.random() < mimic_rate:
        shadow = _soft(_ellipse(x, y, 0.5 + film.tilt, 0.86, 0.42, 0.16 + rng.uniform(0.0, 0.06)), 0.3)
        image += rng.uniform(0.04, 0.12) * shadow * lungs
    if rng.random() < mimic_rate:
        cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
        fold = np.abs(_ellipse(x, y, cx, cy + 0.05, rx * rng.uniform(0.75, 0.95), ry * 0.95) - 1.0) < 0.05
        image[fold & (lungs > 0.5)] += rng.uniform(0.04, 0.1)
    if rng.random() < mimic_rate:
        for _ in range(int(rng.integers(1, 4))):
            start = np.array([rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)])
            bend = start + np.array([rng.uniform(-0.2, 0.2), rng.uniform(0.2, 0.5)])
            _draw_line(image, np.stack([start, bend, bend + rng.uniform(-0.1, 0.1, 2)]),
                       rng.uniform(0.4, 0.7), 1)
    if rng.random() < mimic_rate:
        path = film.rib_paths[int(rng.integers(0, len(film.rib_paths)))]
        j = int(rng.integers(3, 9))
        bump = np.zeros_like(image)
        _draw_line(bump, path[j - 1 : j + 1], 1.0, max(2, size // 40))
        image += rng.uniform(0.05, 0.15) * bump
    film.image = image


def _draw_effusion(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    x, y = film.x, film.y
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    grade = _amplitude(rng, subtlety)
    # fluid fills the lung base up to a meniscus that rises towards the lateral wall; a small effusion
    # only blunts the costophrenic angle, and a layering one (supine film) is a faint haze
    level = cy + ry * (0.9 - grade * rng.uniform(0.6, 1.0))
    meniscus = level - 0.08 * np.abs(x - cx) / rx
    fluid = _soft(_ellipse(x, y, cx, cy, rx * 1.05, ry * 1.05)) * np.clip((y - meniscus) / 0.03, 0.0, 1.0)
    density = 1.0 - subtlety * rng.uniform(0.0, 0.5)
    film.image = np.maximum(film.image, film.image * (1.0 - density * fluid) + density * fluid * (film.body + 0.15))


def _draw_nodule(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    nx, ny = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.5, 0.4) * ry
    grade = _amplitude(rng, subtlety)
    radius = rng.uniform(0.03, 0.045) * (1.0 - subtlety * 0.45 * rng.random())
    film.image += 0.35 * grade * _soft(_ellipse(film.x, film.y, nx, ny, radius, radius), 0.25)


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    # texture in [0, 1]: white noise blurred at sigma = size / scale
    import cv2

    noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / scale)
    return (noise - noise.min()) / (np.ptp(noise) + 1e-6)


def _draw_opacity(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    grade = _amplitude(rng, subtlety)
    noise = _smooth_noise(rng, film.size, 24)
    patch = _soft(_ellipse(film.x, film.y, cx + rng.uniform(-0.3, 0.3) * rx, cy + rng.uniform(-0.3, 0.3) * ry,
                           rx * 0.7, ry * 0.45), 0.3)
    film.image += 0.28 * grade * patch * (0.5 + noise) * film.lungs


def _draw_pneumothorax(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    x, y, image = film.x, film.y, film.image
    side = int(rng.integers(0, 2))
    cx, cy, rx, ry = film.lung_boxes[side]
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
    film.image = image


def _draw_devices(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    image, size, tilt = film.image, film.size, film.tilt
    grade = 1.0 - 0.5 * subtlety * rng.random()
    tube = np.array([[0.5 + tilt, 0.02], [0.5 + tilt, 0.30], [0.5 + tilt + rng.uniform(-0.02, 0.02), 0.55]])
    if rng.random() < 1.0 - 0.4 * subtlety:  # an endotracheal or feeding tube
        _draw_line(image, tube, 0.95 * grade, max(1, size // 48))
    if rng.random() < 0.7:  # a central line from a shoulder
        start = np.array([0.85 + rng.uniform(-0.05, 0.05), 0.18])
        _draw_line(image, np.stack([start, [0.62, 0.22], [0.53, 0.33]]), 0.9 * grade, max(1, size // 64))
    if rng.random() < 0.5:  # a pacemaker can and lead
        px, py = 0.25 + rng.uniform(-0.05, 0.05), 0.2 + rng.uniform(-0.03, 0.03)
        can = _ellipse(film.x, film.y, px, py, 0.06, 0.04) < 1.0
        image[can] = grade
        _draw_line(image, np.array([[px, py], [0.45, 0.4], [0.55, 0.6]]), 0.95 * grade, max(1, size // 96))


def _draw_fracture(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    path = film.rib_paths[int(rng.integers(0, len(film.rib_paths)))]
    grade = _amplitude(rng, subtlety)
    j = int(rng.integers(4, 8))
    gap = np.zeros_like(film.image)
    _draw_line(gap, path[j - 1 : j + 1], 1.0, max(2, film.size // 40))
    film.image -= 0.25 * grade * gap  # a dark break across the rib
    shifted = path[j:] + np.array([0.0, rng.choice((-1.0, 1.0)) * 0.02 * grade])
    _draw_line(film.image, shifted, 0.6 * (1.0 - 0.5 * subtlety) + 0.5 * subtlety * film.rib_brightness,
               max(1, film.size // 64))


def _acquire(rng: np.random.Generator, image: np.ndarray, acquisition: float) -> np.ndarray:
    import cv2

    size = image.shape[0]
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


def _render(rng: np.random.Generator, present: set[str], size: int, *, subtlety: float, mimic_rate: float,
            acquisition: float) -> np.ndarray:
    # the 8-class film (label set "chest8"); the draw order fixes its random stream, keep it
    film = _draw_anatomy(rng, size, subtlety=subtlety, acquisition=acquisition, enlarged="enlarged heart" in present)
    _draw_lookalikes(rng, film, mimic_rate)
    for name, draw in (("effusion", _draw_effusion), ("nodule", _draw_nodule), ("opacity", _draw_opacity),
                       ("pneumothorax", _draw_pneumothorax), ("support devices", _draw_devices),
                       ("fracture", _draw_fracture)):
        if name in present:
            draw(rng, film, subtlety)
    return _acquire(rng, film.image, acquisition)


# ---- the MIMIC-like label set ("mimic14") -----------------------------------------------------------------


def _airspace(rng: np.random.Generator, film: _Film, *, centre: tuple[float, float], radii: tuple[float, float],
              strength: float, mottle: float, edge: float, texture: float = 24.0) -> np.ndarray:
    # an airspace patch inside the lungs: ``mottle`` 0 is homogeneous, 1 patchy; returns the patch mask
    noise = _smooth_noise(rng, film.size, texture)
    patch = _soft(_ellipse(film.x, film.y, centre[0], centre[1], radii[0], radii[1]), edge)
    film.image += strength * patch * ((1.0 - mottle) + 2.0 * mottle * noise) * film.lungs
    return patch


def _draw_consolidation(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    # a dense, fairly homogeneous lobar patch, mid or lower zone, often with air bronchograms
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    grade = _amplitude(rng, subtlety)
    centre = (cx + rng.uniform(-0.3, 0.3) * rx, cy + rng.uniform(0.0, 0.55) * ry)
    radii = (rx * rng.uniform(0.5, 0.8), ry * rng.uniform(0.28, 0.42))
    patch = _airspace(rng, film, centre=centre, radii=radii, strength=0.34 * grade, mottle=0.25, edge=0.15,
                      texture=16.0)
    if rng.random() < 0.6:
        bronchi = np.zeros_like(film.image)
        for _ in range(int(rng.integers(2, 4))):
            start = np.array(centre) + rng.uniform(-0.5, 0.5, 2) * np.array(radii)
            end = start + rng.uniform(-0.6, 0.6, 2) * np.array(radii)
            _draw_line(bronchi, np.stack([start, end]), 1.0, 1)
        film.image -= 0.15 * grade * bronchi * (patch > 0.5)


def _draw_pneumonia(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    # pneumonia is a clinical reading of airspace disease: half the time it looks like a lobar
    # consolidation, otherwise patchy multifocal opacities in the lower zones (bronchopneumonia)
    if rng.random() < 0.5:
        _draw_consolidation(rng, film, subtlety)
        return
    grade = _amplitude(rng, subtlety)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
        centre = (cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(0.0, 0.7) * ry)
        radii = (rx * rng.uniform(0.18, 0.35), ry * rng.uniform(0.1, 0.18))
        _airspace(rng, film, centre=centre, radii=radii, strength=0.26 * grade, mottle=0.7, edge=0.3)


def _draw_edema(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    # bilateral perihilar haze ("bat wing"), upper-zone vessel prominence and, when marked, Kerley B lines
    grade = _amplitude(rng, subtlety)
    for cx, cy, rx, ry in film.lung_boxes:
        hilum_x = 0.5 + 0.6 * (cx - 0.5)
        _airspace(rng, film, centre=(hilum_x, cy + rng.uniform(-0.05, 0.1) * ry), radii=(rx * 0.75, ry * 0.55),
                  strength=0.2 * grade, mottle=0.3, edge=0.6)
        vessels = np.zeros_like(film.image)
        for _ in range(3):
            start = np.array([hilum_x, cy])
            end = start + np.array([rng.uniform(-0.6, 0.6) * rx, -rng.uniform(0.3, 0.6) * ry])
            _draw_line(vessels, np.stack([start, end]), 1.0, 1)
        film.image += 0.06 * grade * vessels * film.lungs
        if grade > 0.4:
            lines = np.zeros_like(film.image)
            lateral = cx + np.sign(cx - 0.5) * 0.8 * rx
            for _ in range(int(rng.integers(3, 7))):
                level = cy + rng.uniform(0.45, 0.8) * ry
                _draw_line(lines, np.array([[lateral, level], [lateral - np.sign(cx - 0.5) * 0.04, level]]), 1.0, 1)
            film.image += 0.1 * grade * lines * film.lungs


def _draw_atelectasis(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    # plate-like (discoid) bands at a base, or a collapsed lower lobe by the heart with a raised hemidiaphragm
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    grade = _amplitude(rng, subtlety)
    if rng.random() < 0.6:
        band = np.zeros_like(film.image)
        level = cy + rng.uniform(0.35, 0.7) * ry
        slope = rng.uniform(-0.05, 0.05)
        _draw_line(band, np.array([[cx - 0.6 * rx, level - slope], [cx + 0.6 * rx, level + slope]]), 1.0,
                   max(1, film.size // 50))
        film.image += 0.18 * grade * band * film.lungs
    else:
        medial = cx - np.sign(cx - 0.5) * 0.45 * rx
        _airspace(rng, film, centre=(medial, cy + 0.65 * ry), radii=(rx * 0.35, ry * 0.25), strength=0.28 * grade,
                  mottle=0.15, edge=0.2)
        dome = _soft(_ellipse(film.x, film.y, cx, cy + ry + 0.08 - 0.06 * grade, rx * 1.2, 0.12))
        film.image = np.maximum(film.image, 0.05 + (film.body + 0.1) * dome * (film.y > cy + ry - 0.05 - 0.06 * grade))


def _draw_lesion(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    # a nodule (most), or a mass: larger, lobulated
    if rng.random() < 0.65:
        _draw_nodule(rng, film, subtlety)
        return
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    grade = _amplitude(rng, subtlety)
    mx, my, radius = cx + rng.uniform(-0.4, 0.4) * rx, cy + rng.uniform(-0.5, 0.3) * ry, rng.uniform(0.045, 0.075)
    mass = _soft(_ellipse(film.x, film.y, mx, my, radius, radius), 0.2)
    for _ in range(int(rng.integers(1, 4))):
        ox, oy = rng.uniform(-0.7, 0.7, 2) * radius
        lobe = radius * rng.uniform(0.4, 0.7)
        mass = np.maximum(mass, _soft(_ellipse(film.x, film.y, mx + ox, my + oy, lobe, lobe), 0.2))
    film.image += 0.3 * grade * mass


def _draw_pleural_other(rng: np.random.Generator, film: _Film, subtlety: float) -> None:
    # pleural thickening along the lateral wall, an apical cap, or calcified plaques
    cx, cy, rx, ry = film.lung_boxes[int(rng.integers(0, 2))]
    grade = _amplitude(rng, subtlety)
    kind = rng.random()
    if kind < 0.75:
        outer = _ellipse(film.x, film.y, cx, cy, rx, ry)
        inner = _ellipse(film.x, film.y, cx, cy, rx * (0.88 - 0.06 * grade), ry * 0.95)
        shell = (_soft(outer) * np.clip((inner - 1.0) / 0.1, 0.0, 1.0))
        if kind < 0.5:  # lateral thickening over a stretch of the wall
            lo, hi = sorted(rng.uniform(-0.6, 0.9, 2))
            lateral = np.abs(film.x - 0.5) > abs(cx - 0.5)
            zone = (film.y > cy + lo * ry) & (film.y < cy + max(hi, lo + 0.3) * ry) & lateral
        else:  # an apical cap
            zone = film.y < cy - 0.55 * ry
        film.image += 0.2 * grade * shell * zone
    else:
        for _ in range(int(rng.integers(2, 5))):
            angle = rng.uniform(-0.5, 1.2) * math.pi / 2.0
            px = cx + np.sign(cx - 0.5) * 0.95 * rx * math.cos(angle)
            py = cy + 0.95 * ry * math.sin(angle)
            plaque = _ellipse(film.x, film.y, px, py, rng.uniform(0.008, 0.02), rng.uniform(0.015, 0.035)) < 1.0
            film.image[plaque] += 0.1 + 0.3 * grade


def _render_mimic14(rng: np.random.Generator, present: set[str], size: int, *, subtlety: float, mimic_rate: float,
                    acquisition: float) -> np.ndarray:
    widening = 0.8 * _amplitude(rng, subtlety) if "Enlarged Cardiomediastinum" in present else 0.0
    film = _draw_anatomy(rng, size, subtlety=subtlety, acquisition=acquisition, enlarged="Cardiomegaly" in present,
                         widening=widening)
    _draw_lookalikes(rng, film, mimic_rate)
    for name, draw in (("Pleural Effusion", _draw_effusion), ("Atelectasis", _draw_atelectasis),
                       ("Edema", _draw_edema), ("Consolidation", _draw_consolidation),
                       ("Pneumonia", _draw_pneumonia), ("Lung Opacity", _draw_opacity), ("Lung Lesion", _draw_lesion),
                       ("Pleural Other", _draw_pleural_other), ("Pneumothorax", _draw_pneumothorax),
                       ("Support Devices", _draw_devices), ("Fracture", _draw_fracture)):
        if name in present:
            draw(rng, film, subtlety)
    return _acquire(rng, film.image, acquisition)


def _draw_mimic14_labels(rng: np.random.Generator) -> set[str]:
    # noisy-OR over latent conditions, earlier findings and the label hierarchy (module docstring)
    active = {name for name, rate in MIMIC14_CONDITIONS.items() if rng.random() < rate}
    present: set[str] = set()
    for name, leak, causes in MIMIC14_CAUSES:
        keep = 1.0 - leak
        for cause, weight in causes.items():
            members = (cause,) if isinstance(cause, str) else cause
            if any(m in active or m in present for m in members):
                keep *= 1.0 - weight
        if rng.random() < 1.0 - keep:
            present.add(name)
    return present


def label_names(label_set: str = DEFAULT_LABEL_SET) -> tuple[str, ...]:
    """Class names of a label set, in multi-hot order (index 0 is the no-finding class).

    Args:
        label_set: ``"chest8"`` (:data:`FINDINGS`) or ``"mimic14"`` (:data:`MIMIC14_FINDINGS`).
    """
    if label_set not in LABEL_SETS:
        raise ParameterError(f"`label_set` must be one of {', '.join(LABEL_SETS)}, {label_set!r} is given.")
    return FINDINGS if label_set == "chest8" else MIMIC14_FINDINGS


def default_look(label_set: str = DEFAULT_LABEL_SET) -> dict[str, float]:
    """The default ``subtlety``, ``mimic_rate`` and ``acquisition`` of a label set (module docstring)."""
    label_names(label_set)
    if label_set == "chest8":
        return {"subtlety": SUBTLETY, "mimic_rate": MIMIC_RATE, "acquisition": ACQUISITION}
    return dict(MIMIC14_LOOK)


def generate_chest(*, seed: int, index: int = 0, size: int = NATIVE_SIZE, subtlety: float | None = None,
                   mimic_rate: float | None = None, acquisition: float | None = None,
                   label_set: str = DEFAULT_LABEL_SET) -> ChestPhantom:
    """One chest phantom; a pure function of its arguments.

    Args:
        seed: non-negative series seed.
        index: sample index (each index draws its findings independently of
            the others: with :data:`PREVALENCE` for ``chest8``, with the
            MIMIC-like label model for ``mimic14``).
        size: output side in pixels (a resize of the 128×128 native render).
        subtlety: in [0, 1]; 0 draws every finding at full conspicuity (the
            first, easy look), 1 draws each one with a random grade (a
            borderline heart, a blunted angle, a faint small nodule, a thin
            apical rim...). ``None``: the label set's default
            (:data:`SUBTLETY` for ``chest8``, :data:`MIMIC14_LOOK` for ``mimic14``).
        mimic_rate: in [0, 1], the probability of each look-alike on normal
            anatomy (nipple shadow, basal soft-tissue shadow, skin fold, ECG
            leads, healed rib callus). ``None``: the label set's default.
        acquisition: in [0, 1], the spread of acquisition variation (AP films
            that magnify the heart, inspiration depth, patient position,
            exposure, blur, noise); 0 is a fixed exposure. ``None``: the label set's default.
        label_set: ``"chest8"`` (default; 8 independent findings) or
            ``"mimic14"`` (the 14 MIMIC-CXR/CheXpert classes with their
            hierarchy and co-occurrence).

    Returns:
        :class:`ChestPhantom`.
    """
    import cv2

    seed = check_seed(seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 2048:
        raise ParameterError(f"`size` must be an integer in [16, 2048], {size!r} is given.")
    names = label_names(label_set)
    look = default_look(label_set)
    chosen = {"subtlety": subtlety, "mimic_rate": mimic_rate, "acquisition": acquisition}
    for name, value in chosen.items():
        if value is None:
            chosen[name] = look[name]
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ParameterError(f"`{name}` must be a number in [0, 1], {value!r} is given.")
    settings = {name: float(value) for name, value in chosen.items()}
    if label_set == "chest8":
        label_rng = rng_for(seed, "chest-labels", int(index))
        present = {name for name in FINDINGS[1:] if label_rng.random() < PREVALENCE[name]}
        image = _render(rng_for(seed, "chest-render", int(index)), present, NATIVE_SIZE, **settings)
        labels = tuple(name for name in FINDINGS if name in present) or ("no finding",)
    else:
        present = _draw_mimic14_labels(rng_for(seed, "chest-mimic14-labels", int(index)))
        image = _render_mimic14(rng_for(seed, "chest-mimic14-render", int(index)), present, NATIVE_SIZE, **settings)
        pathology = present - {"Support Devices"}
        labels = tuple(name for name in names if name in present or (name == "No Finding" and not pathology))
    if size != NATIVE_SIZE:
        interp = cv2.INTER_AREA if size < NATIVE_SIZE else cv2.INTER_CUBIC
        image = np.clip(cv2.resize(image, (int(size), int(size)), interpolation=interp), 0.0, 1.0)
    return ChestPhantom(image=image.astype(np.float32), labels=labels, seed=seed, index=int(index),
                        label_set=label_set)


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
    parser.add_argument("--label-set", choices=LABEL_SETS, default=DEFAULT_LABEL_SET,
                        help="chest8: 8 independent findings (default); mimic14: the 14 MIMIC-CXR classes with "
                             "their hierarchy and co-occurrence")
    parser.add_argument("--subtlety", type=float, default=None,
                        help=f"finding subtlety in [0, 1] (0 = every finding obvious; default {SUBTLETY} for "
                             f"chest8, {MIMIC14_LOOK['subtlety']} for mimic14)")
    parser.add_argument("--mimic-rate", type=float, default=None,
                        help=f"probability of each finding look-alike on normal anatomy (default {MIMIC_RATE})")
    parser.add_argument("--acquisition", type=float, default=None,
                        help=f"spread of acquisition variation in [0, 1] (default {ACQUISITION})")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    look = default_look(args.label_set)
    params: dict[str, Any] = {"size": int(args.size)}
    for name in ("subtlety", "mimic_rate", "acquisition"):
        value = getattr(args, name)
        params[name] = float(look[name] if value is None else value)
    if args.label_set != DEFAULT_LABEL_SET:
        params["label_set"] = args.label_set
    return params, {}


#: Registry entry (``medlim phantom chest``): ``DIR/images/*.png`` + manifest with exact labels.
KIND = PhantomKind(
    name="chest",
    summary="frontal chest radiographs with 8 (or, --label-set mimic14, 14 MIMIC-like) co-occurring, imbalanced "
            "finding labels (multi-label retrieval)",
    generate=generate_chest,
    write=write_chest,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
