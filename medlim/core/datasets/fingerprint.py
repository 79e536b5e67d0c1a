"""A dataset's fingerprint: what names the data in a trained model's record.

Issue 12: "A dataset fingerprint (content hashes, counts, sizes, spacing) goes
into the trained model's manifest entry; the recorded training command names
the data by that fingerprint, never by a path or file name (they often carry
patient names)". nnU-Net keeps a dataset fingerprint beside each plan in the
same spirit.

The hash covers the layout, the sorted per-item content digests (image bytes,
mask bytes, class or labels, site, shift type; see
:attr:`medlim.core.datasets.DatasetCheck.digests`), which items share a patient
(as a pattern, not the patient values) and the summary. Renaming files,
renaming patients consistently or moving the folder leaves it unchanged;
editing one pixel, one mask or one label changes it. It is meaningful for a
dataset without problems (an unreadable file contributes no digest).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from medlim.core.datasets.check import DatasetCheck, SizeRange, check_dataset
from medlim.core.datasets.model import Dataset
from medlim.settings import Settings

__all__ = ["FINGERPRINT_ID_CHARS", "DatasetFingerprint", "dataset_fingerprint"]

#: Hex characters of the SHA-256 kept as the fingerprint's short id.
FINGERPRINT_ID_CHARS = 16


@dataclass(frozen=True)
class DatasetFingerprint:
    """Names a dataset by its content (no paths, file names or patient values).

    Attributes:
        id: the first :data:`FINGERPRINT_ID_CHARS` hex characters of ``sha256``.
        sha256: SHA-256 over the layout, content digests, patient pattern and summary.
        layout: the dataset's layout.
        images: items listed.
        classes: ``(class, images)`` per class.
        labels: ``(label, images)`` per label.
        patients: distinct patients, or ``None`` when the data names none.
        height: image heights in pixels (``None`` when nothing was decoded).
        width: image widths in pixels.
        spacings: ``(row mm, column mm, images)`` per pixel spacing, most frequent first.
        no_spacing: images without a pixel spacing.
        masks_with_foreground: masks with a non-zero pixel, or ``None`` without masks.
        masks_empty: all-zero masks, or ``None``.
    """

    id: str
    sha256: str
    layout: str
    images: int
    classes: tuple[tuple[str, int], ...]
    labels: tuple[tuple[str, int], ...]
    patients: int | None
    height: SizeRange | None
    width: SizeRange | None
    spacings: tuple[tuple[float, float, int], ...]
    no_spacing: int
    masks_with_foreground: int | None
    masks_empty: int | None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict, as recorded beside a trained model."""
        return {"id": self.id, "sha256": self.sha256, **_described(self)}


def _described(fingerprint: DatasetFingerprint) -> dict[str, object]:
    """Every field but the hashes, JSON-ready."""
    return {
        "layout": fingerprint.layout,
        "images": fingerprint.images,
        "classes": dict(fingerprint.classes),
        "labels": dict(fingerprint.labels),
        "patients": fingerprint.patients,
        "height": fingerprint.height.to_json() if fingerprint.height else None,
        "width": fingerprint.width.to_json() if fingerprint.width else None,
        "pixel_spacing_mm": [{"row": r, "column": c, "images": n} for r, c, n in fingerprint.spacings],
        "images_without_spacing": fingerprint.no_spacing,
        "masks_with_foreground": fingerprint.masks_with_foreground,
        "masks_empty": fingerprint.masks_empty,
    }


def dataset_fingerprint(
    dataset: Dataset,
    *,
    check: DatasetCheck | None = None,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetFingerprint:
    """The fingerprint of ``dataset``.

    Args:
        dataset: the dataset.
        check: a :func:`check_dataset` result of this dataset with pixels read
            (its digests and summary are used); ``None``, or a check made without
            reading pixels, reads every file again.
        settings: reader limits (only when the files are read here).
        progress: ``progress(done, total)`` while files are read here.

    Returns:
        A :class:`DatasetFingerprint`.

    Raises:
        ValueError: ``check`` has a different number of items than ``dataset``.
    """
    if check is not None and len(check.digests) != len(dataset):
        raise ValueError(f"the check covers {len(check.digests)} items, the dataset has {len(dataset)}.")
    if check is None or (dataset.items and check.summary.decoded == 0):
        check = check_dataset(dataset, val_fraction=None, settings=settings, progress=progress)
    summary = check.summary
    unhashed = DatasetFingerprint(
        id="",
        sha256="",
        layout=dataset.layout,
        images=summary.images,
        classes=summary.classes,
        labels=summary.labels,
        patients=summary.patients,
        height=summary.height,
        width=summary.width,
        spacings=summary.spacings,
        no_spacing=summary.no_spacing,
        masks_with_foreground=summary.masks_with_foreground,
        masks_empty=summary.masks_empty,
    )
    pairs = sorted(
        ((digest or "unreadable", item.patient) for digest, item in zip(check.digests, dataset.items)),
        key=lambda pair: pair[0],
    )
    payload = {
        "layout": dataset.layout,
        "items": [digest for digest, _ in pairs],
        "patients": _patient_pattern([patient for _, patient in pairs]) if dataset.has_patients else [],
        "summary": _described(unhashed),
    }
    sha256 = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()
    return replace(unhashed, id=sha256[:FINGERPRINT_ID_CHARS], sha256=sha256)


def _patient_pattern(patients: list[str | None]) -> list[int]:
    """Which items share a patient, without the patient values: ``[0, 0, 1, -1, 1]``.

    Each patient is numbered by its first appearance; ``-1`` is an item without one.
    """
    numbers: dict[str, int] = {}
    return [-1 if not patient else numbers.setdefault(patient, len(numbers)) for patient in patients]
