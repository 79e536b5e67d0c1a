"""Detection per shift type: how often each kind of shift is caught, detectors side by side (issue 13).

Wherever images carry a shift type (a ``shift_type`` column of a dataset's
``manifest.csv``, the family-B phantoms' named shifts, or the named shifts of
:mod:`medlim.phantoms.radiograph_shifts` applied to held-out ID phantoms), each
detector is reported per shift type with

* ``images`` — how many shifted images carry the type;
* ``detected`` — the share flagged at the detector's calibrated threshold
  (``s ≥ t``, the rule every score in medlim uses);
* ``auroc`` — AUROC of the shifted images (positive) against the reference
  images (the in-distribution images of the same evaluation: the detector's ID
  classes without a shift), ties counted one half;
* ``mean_severity`` — the mean stated severity when known (NaN otherwise).

The table is a frozen dataclass with a JSON round trip; ``medlim ood evaluate``
prints it and the OOD page shows it from the same function
(:func:`phantom_shift_comparison`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.weights import WeightsEntry
    from medlim.curation.ood.data import LabelledImages
    from medlim.curation.ood.scoring import Detector

__all__ = [
    "ShiftTypeRow",
    "ShiftTypeTable",
    "shift_type_rows",
    "ShiftedSet",
    "shifted_phantom_set",
    "compare_shift_types",
    "phantom_shift_comparison",
    "companion_entries",
]


def _nan_to_none(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _none_to_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class ShiftTypeRow:
    """One detector on one shift type.

    Attributes:
        shift_type: the shift's name (``"blur"``, ``"lowres"``, …).
        detector: the detector's label (``"tend-humerus@1"``).
        images: shifted images of this type.
        detected: share of them with ``score ≥ threshold``, in [0, 1].
        auroc: shifted (positive) against the reference images, in [0, 1]; NaN without reference images.
        threshold: the detector's calibrated threshold used for ``detected``.
        mean_severity: mean severity of the images, or NaN when unknown.
    """

    shift_type: str
    detector: str
    images: int
    detected: float
    auroc: float
    threshold: float
    mean_severity: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"shift_type": self.shift_type, "detector": self.detector, "images": self.images,
                "detected": self.detected, "auroc": _nan_to_none(self.auroc), "threshold": _nan_to_none(self.threshold),
                "mean_severity": _nan_to_none(self.mean_severity)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShiftTypeRow:
        return cls(shift_type=str(data["shift_type"]), detector=str(data["detector"]), images=int(data["images"]),
                   detected=float(data["detected"]), auroc=_none_to_nan(data.get("auroc")),
                   threshold=_none_to_nan(data.get("threshold")), mean_severity=_none_to_nan(data.get("mean_severity")))


@dataclass(frozen=True)
class ShiftTypeTable:
    """Per-shift-type rows of one or more detectors on the same images.

    Attributes:
        rows: one row per (shift type, detector), shift types sorted, detectors in the given order.
        reference_images: detector → how many reference (ID, unshifted) images its AUROC used.
        source: what the images were (``"phantoms seed 9000, 6 shift types × 12"``, a folder name).
    """

    rows: tuple[ShiftTypeRow, ...]
    reference_images: Mapping[str, int]
    source: str = ""

    @property
    def detectors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(row.detector for row in self.rows))

    @property
    def shift_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(row.shift_type for row in self.rows))

    def row(self, shift_type: str, detector: str) -> ShiftTypeRow:
        """The row of ``shift_type`` and ``detector``."""
        for item in self.rows:
            if item.shift_type == shift_type and item.detector == detector:
                return item
        raise ParameterError(f"no row for shift type {shift_type!r} and detector {detector!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"source", "reference_images", "rows": [...]}``."""
        return {"source": self.source, "reference_images": dict(self.reference_images),
                "rows": [row.to_dict() for row in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShiftTypeTable:
        return cls(rows=tuple(ShiftTypeRow.from_dict(item) for item in data.get("rows", ())),
                   reference_images={str(k): int(v) for k, v in (data.get("reference_images") or {}).items()},
                   source=str(data.get("source", "")))

    def wide_rows(self) -> list[dict[str, Any]]:
        """One dict per shift type: ``shift type``, ``images`` and per detector ``<det> detected``, ``<det> AUROC``."""
        out = []
        for kind in self.shift_types:
            line: dict[str, Any] = {"shift type": kind}
            for name in self.detectors:
                try:
                    item = self.row(kind, name)
                except ParameterError:
                    continue
                line["images"] = item.images
                line[f"{name} detected"] = round(item.detected, 3)
                line[f"{name} AUROC"] = None if math.isnan(item.auroc) else round(item.auroc, 3)
            out.append(line)
        return out

    def lines(self) -> list[str]:
        """The table as text: one line per shift type, detected share and AUROC per detector."""
        from medlim.core.text import escape_control

        names = self.detectors
        header = ["shift type", "images", *[f"{escape_control(n)} det / AUROC" for n in names]]
        body = []
        for line in self.wide_rows():
            cells = [escape_control(line["shift type"]), str(line.get("images", ""))]
            for name in names:
                detected, auc = line.get(f"{name} detected"), line.get(f"{name} AUROC")
                cells.append("—" if detected is None else
                             f"{detected:.3f} / " + ("n/a" if auc is None else f"{auc:.3f}"))
            body.append(cells)
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]


def shift_type_rows(*, detector: str, scores: np.ndarray, shift_types: Sequence[str], reference_scores: np.ndarray,
                    threshold: float | np.ndarray,
                    severities: Sequence[float] | np.ndarray | None = None) -> tuple[ShiftTypeRow, ...]:
    """Rows of one detector: per shift type the count, share ``≥ threshold`` and AUROC against the reference.

    Args:
        detector: the detector's label.
        scores: ``np.ndarray[N]`` scores of the shifted images (higher = more OOD).
        shift_types: the shift type of each shifted image (length N; empty names are refused).
        reference_scores: ``np.ndarray[M]`` scores of the reference (ID, unshifted) images; may be empty.
        threshold: the calibrated threshold, or ``np.ndarray[N]`` one per image (a per-class
            detector's; the rows then record NaN as their threshold).
        severities: ``[N]`` severities, or ``None``.

    Returns:
        One :class:`ShiftTypeRow` per shift type, sorted by name.
    """
    from medlim.curation.ood.calibration import auroc

    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference_scores, dtype=np.float64).reshape(-1)
    kinds = np.asarray([str(k) for k in shift_types], dtype=object)
    if len(kinds) != len(score):
        raise ParameterError(f"give one shift type per score ({len(score)}), {len(kinds)} are given.")
    if any(not k for k in kinds):
        raise ParameterError("every shifted image needs a shift type; an empty one is given.")
    cut = np.broadcast_to(np.asarray(threshold, dtype=np.float64), score.shape)
    shown = float(threshold) if np.ndim(threshold) == 0 else float("nan")
    level = None if severities is None else np.asarray(severities, dtype=np.float64).reshape(-1)
    if level is not None and len(level) != len(score):
        raise ParameterError(f"give one severity per score ({len(score)}), {len(level)} are given.")
    rows = []
    for kind in sorted(set(kinds.tolist())):
        mine = score[kinds == kind]
        area = float("nan")
        if len(reference):
            labels = np.r_[np.zeros(len(reference), int), np.ones(len(mine), int)]
            area = auroc(labels, np.r_[reference, mine])
        rows.append(ShiftTypeRow(shift_type=kind, detector=detector, images=int(len(mine)),
                                 detected=float((mine >= cut[kinds == kind]).mean()), auroc=area, threshold=shown,
                                 mean_severity=float("nan") if level is None else float(level[kinds == kind].mean())))
    return tuple(rows)


@dataclass(frozen=True)
class ShiftedSet:
    """Shifted images with their type and severity.

    Attributes:
        images: the pixels with class, site (``"internal"``) and a display name per image.
        shift_types: the shift type of each image.
        severities: ``np.ndarray[N]`` float severity in [0, 1] (NaN when unknown).
    """

    images: LabelledImages
    shift_types: tuple[str, ...]
    severities: np.ndarray


def shifted_phantom_set(*, seed: int, per_type: int, body_parts: Sequence[str], size: int,
                        shifts: Sequence[str] | None = None, variability: float = 0.0,
                        progress: Callable[[int, int], None] | None = None) -> ShiftedSet:
    """Held-out ID phantoms under each named shift, severities spread evenly from mild (0.05) to strong (1).

    Image ``k`` of shift ``name`` is :func:`~medlim.phantoms.radiograph_shifts.shifted_radiograph` of
    ``seed``, index ``50_000 + k`` (anatomy apart from the clean held-out set), class
    ``body_parts[k % len(body_parts)]`` and severity ``evenly_spread_severities(per_type)[k]``.
    """
    from medlim.curation.ood.data import LabelledImages, to_model_input
    from medlim.phantoms.radiograph_shifts import NAMED_SHIFTS, evenly_spread_severities, shifted_radiograph

    names = tuple(NAMED_SHIFTS if shifts is None else shifts)
    unknown = [n for n in names if n not in NAMED_SHIFTS]
    if unknown or not body_parts:
        raise ParameterError(f"unknown shifts {unknown}; known: {', '.join(NAMED_SHIFTS)}." if unknown
                             else "give at least one body part.")
    levels = evenly_spread_severities(per_type)
    images, classes, files, kinds, severity = [], [], [], [], []
    total = len(names) * int(per_type)
    for name in names:
        for k, level in enumerate(levels):
            part = body_parts[k % len(body_parts)]
            pixels = shifted_radiograph(seed=seed, index=50_000 + k, body_part=part, shift=name,
                                        severity=float(level), variability=variability)
            images.append(to_model_input(pixels, size))
            classes.append(part)
            files.append(f"phantom:{seed}:{part}:{name}:{float(level):.3f}")
            kinds.append(name)
            severity.append(float(level))
            if progress is not None:
                progress(len(images), total)
    stacked = np.stack(images) if images else np.zeros((0, size, size), np.float32)
    return ShiftedSet(LabelledImages(stacked, tuple(classes), ("internal",) * len(classes), tuple(files)),
                      tuple(kinds), np.asarray(severity, np.float64))


def compare_shift_types(detectors: Sequence[Detector], *, reference: Callable[[int], LabelledImages],
                        shifted: Callable[[int], ShiftedSet], source: str = "") -> ShiftTypeTable:
    """Per-shift-type rows of several detectors on the same images (each at its own input size).

    Args:
        detectors: loaded detectors (TEND, CVAD, AE …); each scores at its calibrated threshold.
        reference: ``reference(size)`` — the unshifted images at that input side; a detector's
            reference images are those of its ID classes.
        shifted: ``shifted(size)`` — the shifted images at that side; only those of the
            detector's ID classes (or with no class) count, so a shift is judged on ID anatomy.
        source: a description of the images for the table.
    """
    from medlim.curation.ood.labels import folder_labels

    def class_labels(classes: Sequence[str], id_classes: Sequence[str]) -> Any:
        return folder_labels([(c,) if c else () for c in classes], id_classes)

    rows: list[ShiftTypeRow] = []
    counts: dict[str, int] = {}
    for detector in detectors:
        clean, moved = reference(detector.read_size), shifted(detector.read_size)
        ref = clean.select(~class_labels(clean.classes, detector.id_classes).is_ood)
        keep = np.array([not c or not flag for c, flag in
                         zip(moved.images.classes, class_labels(moved.images.classes, detector.id_classes).is_ood)],
                        dtype=bool)
        if not keep.any():
            continue
        chosen = moved.images.select(keep)
        rows += shift_type_rows(detector=detector.name, scores=detector.score(chosen.images).score,
                                shift_types=[t for t, k in zip(moved.shift_types, keep) if k],
                                reference_scores=detector.score(ref.images).score if len(ref) else np.zeros(0),
                                threshold=detector.threshold, severities=moved.severities[keep])
        counts[detector.name] = len(ref)
    order = {name: i for i, name in enumerate(d.name for d in detectors)}
    rows.sort(key=lambda r: (r.shift_type, order.get(r.detector, 0)))
    return ShiftTypeTable(rows=tuple(rows), reference_images=counts, source=source)


def phantom_shift_comparison(detectors: Sequence[Detector], *, seed: int = 9000, per_class: int = 20,
                             per_type: int = 20, variability: float | None = None) -> ShiftTypeTable:
    """TEND, CVAD, AE … on held-out phantoms: ``per_class`` clean images of each ID class as the
    reference, ``per_type`` images of each named shift (severities 0.05 … 1).

    The ID classes are the union of the detectors'. ``variability`` defaults to the first detector's
    training data. The page and ``medlim ood evaluate`` call this.
    """
    from medlim.curation.ood.data import phantom_set

    if not detectors:
        raise ParameterError("give at least one detector.")
    for name, value in (("per_class", per_class), ("per_type", per_type)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")
    parts = tuple(dict.fromkeys(c for d in detectors for c in d.id_classes))
    if not parts:
        raise ParameterError("the detectors record no ID classes; cannot make ID phantoms for them.")
    if variability is None:
        variability = float(detectors[0].params.get("data", {}).get("variability", 0.0))
    level = float(variability)
    refs: dict[int, LabelledImages] = {}
    moved: dict[int, ShiftedSet] = {}

    def reference(size: int) -> LabelledImages:
        if size not in refs:
            refs[size] = phantom_set(seed=seed, per_class=per_class, body_parts=parts, size=size, variability=level)
        return refs[size]

    def shifted(size: int) -> ShiftedSet:
        if size not in moved:
            moved[size] = shifted_phantom_set(seed=seed, per_type=per_type, body_parts=parts, size=size,
                                              variability=level)
        return moved[size]

    source = f"phantoms seed {seed}: {per_class} clean per ID class, {per_type} per shift type (severity 0.05–1)"
    return compare_shift_types(detectors, reference=reference, shifted=shifted, source=source)


def companion_entries(entries: Sequence[WeightsEntry], *, id_classes: Sequence[str],
                      exclude: str = "") -> tuple[WeightsEntry, ...]:
    """The detectors to set beside one: OOD detectors (TEND, CVAD, AE) trained on the same ID classes.

    Args:
        entries: registry entries sorted by name then version (``Registries.list(...)``).
        id_classes: the ID classes of the detector being evaluated.
        exclude: the name of that detector (left out).

    Returns:
        The latest version of each other detector name whose recorded ID classes are the same
        set, in the order TEND, CVAD, AE, then by name.
    """
    from medlim.curation.ood.scoring import ARCHITECTURE_OF

    wanted = set(id_classes)
    latest: dict[str, WeightsEntry] = {}
    for entry in entries:
        if entry.architecture in ARCHITECTURE_OF.values() and entry.name != exclude \
                and set(entry.params.get("id_classes", ())) == wanted and wanted:
            latest[entry.name] = entry  # sorted input: the last one is the latest version
    rank = {"tend": 0, "cvad": 1, "ood-autoencoder": 2}
    return tuple(sorted(latest.values(), key=lambda e: (rank.get(e.architecture, 3), e.name)))
