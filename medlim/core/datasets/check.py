"""Checking a dataset before any training: a summary and one problem per thing wrong.

Issue 12 (``medlim data check``; trainers run the same check): counts per class
or label, patients, image sizes, pixel spacing and empty vs non-empty masks; a
problem for each missing or unreadable file, mask of the wrong size, label
outside the set, duplicate, class without images, layout the task does not
take, and training or validation part with fewer than
:data:`MIN_IMAGES_PER_PART` images or :data:`MIN_PATIENTS_PER_PART` patients.

Files are read one at a time through :func:`medlim.core.io.read_image` (so any
format it takes, DICOM included, and its memory limits) and hashed (SHA-256 of
the bytes) for :func:`medlim.core.datasets.dataset_fingerprint`; at most one
image and its mask are held at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from medlim.core.datasets.layouts import MANIFEST_NAME, NO_FINDING
from medlim.core.datasets.model import TASK_LAYOUTS, TASKS, Dataset, DatasetProblem
from medlim.core.datasets.split import (
    DEFAULT_VAL_FRACTION,
    MIN_PATIENTS_PER_SIDE,
    DatasetSplit,
    split_dataset,
    validate_split_options,
)
from medlim.core.io.files import open_regular_file
from medlim.core.io.reader import read_image, read_labels
from medlim.core.text import escape_control
from medlim.errors import MedlimError, MultiFrameError, ParameterError
from medlim.settings import Settings, get_settings

__all__ = [
    "MIN_IMAGES_PER_PART",
    "MIN_PATIENTS_PER_PART",
    "SizeRange",
    "DatasetSummary",
    "DatasetCheck",
    "DropReport",
    "check_dataset",
    "drop_bad_items",
]

#: Fewest images the training and the validation part may each have.
MIN_IMAGES_PER_PART = 10

#: Fewest patients each part may have (when the dataset names its patients).
MIN_PATIENTS_PER_PART = MIN_PATIENTS_PER_SIDE
#: Problems that only concern training (a split too small to train and validate): an evaluation reads a
#: small folder (a handful of annotated views is fine) and leaves them aside.
TRAINING_ONLY_PROBLEMS: tuple[str, ...] = ("too_few_images", "too_few_patients")
#: Tasks with no trainer on a user's folder (the thesis's nuclei method is not learned): their data is
#: evaluated only, so no split is made and no split problem is reported.
EVALUATION_ONLY_TASKS: tuple[str, ...] = ("nuclei",)

#: How to lay out the data of each layout, for ``wrong_layout`` messages.
_LAYOUT_HOWTO: dict[str, str] = {
    "segmentation_mask": "a manifest.csv with columns image,mask",
    "segmentation_instances": "a manifest.csv with columns image,instances (uint16 instance labels)",
    "manifest_class": "a manifest.csv with columns file,class",
    "manifest_labels": "a manifest.csv with columns file,labels ('|' between labels)",
    "msd": "a Decathlon dataset.json with a \"training\" list of image/label pairs",
    "class_folders": "one sub-folder of images per class",
    "unlabelled": "a plain folder of images",
}

#: A binary mask whose foreground covers at least this share of its image is reported (``bad_mask``): a BAC or
#: lesion mask never does; an export with the colours swapped always does.
MAX_MASK_SHARE = 0.5
#: An instance image holding one value in at least this many separate pieces is reported as a binary mask.
MIN_PIECES_OF_ONE_VALUE = 3

#: Problem kinds that concern the whole dataset: dropping rows cannot remove them.
_DATASET_KINDS = frozenset({"empty_class", "no_images", "wrong_layout", "too_few_images", "too_few_patients",
                            "label_spelling"})


@dataclass(frozen=True)
class SizeRange:
    """Smallest, median (the lower middle value) and largest of a size in pixels."""

    minimum: int
    median: int
    maximum: int

    @classmethod
    def of(cls, values: Sequence[int]) -> SizeRange | None:
        """The range of ``values`` (``None`` when empty)."""
        if not values:
            return None
        return cls(min(values), statistics.median_low(values), max(values))

    def to_json(self) -> dict[str, int]:
        return {"min": self.minimum, "median": self.median, "max": self.maximum}


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset holds (no paths, no patient identifiers).

    Attributes:
        layout: the dataset's layout.
        task: the task it was checked for, or ``None``.
        images: items listed.
        decoded: images whose file was decoded (0 when pixels were not read).
        classes: ``(class, images)`` per class, sorted by class (empty classes with 0).
        labels: ``(label, images)`` per label of a ``labels`` column, sorted by label.
        patients: distinct patients (an item without one counts as its own), or
            ``None`` when no item names one.
        sites: ``(site, images)`` per ``site`` value.
        shift_types: ``(shift type, images)`` per ``shift_type`` value.
        height: image heights in pixels, or ``None`` when nothing was decoded.
        width: image widths in pixels, or ``None``.
        spacings: ``(row mm, column mm, images)`` per pixel spacing the files
            carry, most frequent first.
        no_spacing: decoded images whose file carries no pixel spacing.
        masks_with_foreground: masks (or instance images) with a non-zero pixel, or
            ``None`` when the layout has no masks or pixels were not read.
        masks_empty: all-zero masks ("none present"), or ``None``.
        instances: objects in all instance images together, or ``None``.
        unread_formats: ``(suffix, files)`` per image format in the folder the reader does not take (left out).
        sub_folders: one class's sub-folders holding its images, when two or more (``Dataset.sub_folders``).
        no_finding_mixed: items whose labels hold ``No Finding`` beside another label (a note, not a problem:
            ``No Finding`` is a label like any other, issue 12).
    """

    layout: str
    task: str | None
    images: int
    decoded: int
    classes: tuple[tuple[str, int], ...] = ()
    labels: tuple[tuple[str, int], ...] = ()
    patients: int | None = None
    sites: tuple[tuple[str, int], ...] = ()
    shift_types: tuple[tuple[str, int], ...] = ()
    height: SizeRange | None = None
    width: SizeRange | None = None
    spacings: tuple[tuple[float, float, int], ...] = ()
    no_spacing: int = 0
    masks_with_foreground: int | None = None
    masks_empty: int | None = None
    instances: int | None = None
    unread_formats: tuple[tuple[str, int], ...] = ()
    sub_folders: tuple[str, ...] = ()
    no_finding_mixed: int = 0

    def one_class_text(self) -> str | None:
        """For one class whose images lie in several sub-folders, a hint that those may be the classes."""
        if not self.sub_folders or len(self.classes) != 1:
            return None
        shown = ", ".join(self.sub_folders[:6]) + (f" and {len(self.sub_folders) - 6} more"
                                                    if len(self.sub_folders) > 6 else "")
        return (f"one class, {self.classes[0][0]!r}, whose images lie in the sub-folders {shown}; if these are the "
                f"classes, give the folder {self.classes[0][0]!r} itself as the dataset")

    def unread_text(self) -> str | None:
        """The files left out for their format, in words (``None``: none)."""
        if not self.unread_formats:
            return None
        files = ", ".join(f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in self.unread_formats)
        return f"{files} (medlim reads PNG, TIFF, JPEG, DICOM and NIfTI: convert them, e.g. to PNG)"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (counts as objects, sizes as ``{"min", "median", "max"}``)."""
        return {
            "layout": self.layout,
            "task": self.task,
            "images": self.images,
            "decoded": self.decoded,
            "classes": dict(self.classes),
            "labels": dict(self.labels),
            "patients": self.patients,
            "sites": dict(self.sites),
            "shift_types": dict(self.shift_types),
            "height": self.height.to_json() if self.height else None,
            "width": self.width.to_json() if self.width else None,
            "pixel_spacing_mm": [{"row": r, "column": c, "images": n} for r, c, n in self.spacings],
            "images_without_spacing": self.no_spacing,
            "masks_with_foreground": self.masks_with_foreground,
            "masks_empty": self.masks_empty,
            "instances": self.instances,
            "unread_formats": dict(self.unread_formats),
            "sub_folders": list(self.sub_folders),
            "no_finding_mixed": self.no_finding_mixed,
            "notes": list(self.notes()),
        }

    def notes(self) -> tuple[str, ...]:
        """What the check noticed that is no problem but may not be what the user meant, in words."""
        notes = [text for text in [self.one_class_text()] if text]
        if self.no_finding_mixed:
            notes.append(f"{self.no_finding_mixed} image{'s carry' if self.no_finding_mixed > 1 else ' carries'} "
                         f"'{NO_FINDING}' together with a finding; '{NO_FINDING}' is treated as a label like any "
                         "other, so such an image matches queries of both")
        if self.task == "steatosis" and self.layout in ("segmentation_mask", "msd"):
            notes.append("steatosis training reads the images only (its labels are made from them); "
                         "'medlim steatosis evaluate' needs droplet instances (a manifest.csv with image,instances), "
                         "not binary masks")
        return tuple(notes)

    def rows(self, *, split: DatasetSplit | None = None, fingerprint: str | None = None) -> tuple[tuple[str, str], ...]:
        """``(what, value)`` per line of the summary, the one wording of ``medlim data check`` and the Models page.

        Args:
            split: the validation split checked, if any.
            fingerprint: the dataset fingerprint's id, if computed.
        """
        def counts(pairs: tuple[tuple[str, int], ...]) -> str:
            return ", ".join(f"{escape_control(name)}: {count}" for name, count in pairs)

        rows = [("layout", self.layout + (f" (checked for the {self.task} task)" if self.task else "")),
                ("images", f"{self.images}" + (f" ({self.decoded} decoded)" if self.decoded != self.images else ""))]
        rows += [("not read", text) for text in [self.unread_text()] if text]
        rows += [("images per class", counts(self.classes))] if self.classes else []
        rows += [("images per label", counts(self.labels))] if self.labels else []
        rows.append(("patients", str(self.patients) if self.patients is not None else "not given (split by image)"))
        rows += [("images per site", counts(self.sites))] if self.sites else []
        rows += [("images per shift type", counts(self.shift_types))] if self.shift_types else []
        if self.height and self.width:
            rows.append(("size (px)", f"height {self.height.minimum}–{self.height.maximum} (median {self.height.median}), "
                                      f"width {self.width.minimum}–{self.width.maximum} (median {self.width.median})"))
        if self.decoded:
            spacing = [f"{r:g}×{c:g} mm ({n} images)" for r, c, n in self.spacings]
            spacing += [f"none in the file ({self.no_spacing} images)"] if self.no_spacing else []
            rows.append(("pixel spacing", ", ".join(spacing)))
        if self.masks_with_foreground is not None:
            rows.append(("masks", f"{self.masks_with_foreground} with foreground, {self.masks_empty} empty"))
        if self.instances is not None:
            rows.append(("instances", f"{self.instances} objects"))
        if split is not None:
            patients = f" ({split.train_patients} / {split.val_patients} patients)" if split.by == "patient" else ""
            rows.append(("validation split", f"{len(split.train)} training / {len(split.val)} validation images, "
                                             f"{split.fraction:.0%} held out by {split.by}{patients}, seed {split.seed}"))
        rows += [("fingerprint", fingerprint)] if fingerprint else []
        rows += [("note", escape_control(note)) for note in self.notes()]
        return tuple(rows)


@dataclass(frozen=True)
class DatasetCheck:
    """The result of :func:`check_dataset`.

    Attributes:
        summary: what the dataset holds.
        problems: everything wrong: listing problems (bad rows, duplicate entries,
            empty class folders), then the files of each item in order, duplicate
            images, labels outside the set, and last the problems of the whole
            dataset (wrong layout, no images, too few images or patients per part).
        split: the validation split checked (``None`` when the dataset was
            checked as one part, or holds no image).
        digests: per item, a SHA-256 over its image bytes, mask bytes and labels
            (``None`` where a file is missing or unreadable, or pixels were not read).
    """

    summary: DatasetSummary
    problems: tuple[DatasetProblem, ...]
    split: DatasetSplit | None
    digests: tuple[str | None, ...] = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_json(self) -> dict[str, object]:
        """``{"summary", "problems", "split"}``."""
        return {
            "summary": self.summary.to_json(),
            "problems": [problem.to_json() for problem in self.problems],
            "split": self.split.to_json() if self.split else None,
        }


@dataclass(frozen=True)
class DropReport:
    """What ``--skip-bad`` dropped and what it could not fix.

    Attributes:
        kept: items left.
        dropped: the problems of the rows or items dropped.
        remaining: problems of the whole dataset (dropping rows does not fix them).
    """

    kept: int
    dropped: tuple[DatasetProblem, ...]
    remaining: tuple[DatasetProblem, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "dropped": [problem.to_json() for problem in self.dropped],
            "remaining": [problem.to_json() for problem in self.remaining],
        }


@dataclass
class _FileFacts:
    """What reading one file found (internal)."""

    shape: tuple[int, ...] | None = None
    spacing: tuple[float, float] | None = None
    sha256: str | None = None
    foreground: bool | None = None
    objects: int | None = None
    lossy: bool = False
    foreground_share: float | None = None
    pieces: int | None = None  # connected pieces of an instance image that holds a single value


def check_dataset(
    dataset: Dataset,
    *,
    task: str | None = None,
    labels: Sequence[str] | None = None,
    read_pixels: bool = True,
    val_fraction: float | None = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetCheck:
    """Read every file of ``dataset`` and list what is wrong with it.

    Args:
        dataset: from :func:`medlim.core.datasets.open_dataset`.
        task: one of :data:`medlim.core.datasets.TASKS` (its accepted layouts
            are checked), or ``None``.
        labels: the label set the model knows (``--labels``): a class or label
            outside it is a problem, and so is a label of it without images.
        read_pixels: decode and hash every file; ``False`` only checks that files
            exist (no sizes, spacing, mask checks or digests).
        val_fraction: the share held out for validation (the split whose parts
            must each hold enough images and patients); ``None`` checks the
            dataset as one part (a separate validation folder, ``--val DIR``).
        seed: the split's seed.
        settings: reader limits; :func:`get_settings` when ``None``.
        progress: called as ``progress(done, total)`` after each item.

    Returns:
        A :class:`DatasetCheck`.

    Raises:
        ParameterError: an unknown task, an empty label in ``labels``, or a bad
            ``val_fraction`` or ``seed``.
    """
    if task is not None and task not in TASKS:
        raise ParameterError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    label_set = _label_set(labels)
    if val_fraction is not None:
        validate_split_options(val_fraction, seed)  # before any file is read
    settings = settings or get_settings()
    problems = list(dataset.problems)
    facts: list[tuple[_FileFacts, _FileFacts | None]] = []
    for index in range(len(dataset)):
        facts.append(_inspect_item(dataset, index, problems, read_pixels=read_pixels, settings=settings))
        if progress is not None:
            progress(index + 1, len(dataset))
    digests = tuple(_item_digest(dataset, index, image, target) for index, (image, target) in enumerate(facts))
    problems.extend(_duplicate_images(dataset, [image.sha256 for image, _ in facts]))
    if label_set is not None:
        problems.extend(_label_problems(dataset, label_set))
    problems.extend(_layout_problems(dataset, task))
    problems.extend(_spelling_problems(dataset))
    problems.extend(_patient_problems(dataset))
    split = None
    if not dataset.items:
        problems.append(DatasetProblem(kind="no_images", message=_no_images_message(dataset)))
    elif val_fraction is not None and task not in EVALUATION_ONLY_TASKS:
        keys = [digest or f"~{index:012d}" for index, digest in enumerate(digests)]
        split = split_dataset(dataset, fraction=val_fraction, seed=seed, order_keys=keys)
    if task not in EVALUATION_ONLY_TASKS:
        problems.extend(_part_problems(dataset, split))
    summary = _summary(dataset, task, facts)
    return DatasetCheck(summary=summary, problems=tuple(problems), split=split, digests=digests)


def drop_bad_items(dataset: Dataset, check: DatasetCheck) -> tuple[Dataset, DropReport]:
    """``dataset`` without the items the check found problems with (``--skip-bad``).

    Rows that never became items (a bad manifest row, a duplicate entry) are
    already out of the dataset and are reported as dropped too. Problems of the
    whole dataset (too few images, an empty class, a wrong layout) remain: check
    the returned dataset again before training on it.

    Returns:
        ``(kept dataset, report)``; the kept dataset has no listing problems.
    """
    dropped = tuple(p for p in check.problems if _concerns_one_entry(p))
    remaining = tuple(p for p in check.problems if not _concerns_one_entry(p))
    bad = {p.index for p in dropped if p.index is not None}
    items = tuple(item for index, item in enumerate(dataset.items) if index not in bad)
    kept = Dataset(
        root=dataset.root, layout=dataset.layout, items=items, classes=dataset.classes, label_set=dataset.label_set
    )
    return kept, DropReport(kept=len(items), dropped=dropped, remaining=remaining)


def unfixable_problems(check: DatasetCheck) -> tuple[DatasetProblem, ...]:
    """The problems that leaving out rows (``--skip-bad``) cannot fix: those of the whole dataset (too few images
    or patients, an empty class, a wrong layout …). A page keeps Train disabled while one remains."""
    return tuple(p for p in check.problems if not _concerns_one_entry(p))


def _concerns_one_entry(problem: DatasetProblem) -> bool:
    if problem.kind in _DATASET_KINDS:
        return False
    return problem.kind != "bad_manifest" or problem.row is not None


def _label_set(labels: Sequence[str] | None) -> frozenset[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise ParameterError(f"`labels` must be a sequence of label names, the string {labels!r} is given.")
    names = [str(label).strip() for label in labels]
    if not names or not all(names):
        raise ParameterError(f"`labels` must hold at least one non-empty label, {list(labels)!r} is given.")
    return frozenset(names)


def _layout_problems(dataset: Dataset, task: str | None) -> list[DatasetProblem]:
    if task is None or dataset.layout in TASK_LAYOUTS[task]:
        return []
    wanted = " or ".join(_LAYOUT_HOWTO[layout] for layout in TASK_LAYOUTS[task])
    found = _LAYOUT_HOWTO[dataset.layout]
    columns = _manifest_columns(dataset.root)
    if columns is not None:
        found = f"a manifest.csv with columns {columns}"
    return [
        DatasetProblem(
            kind="wrong_layout",
            message=f"the {task} task needs {wanted}; this folder holds {found} (layout {dataset.layout}).",
        )
    ]


def _manifest_columns(root: Path) -> str | None:
    """The first line of ``root``'s manifest.csv, for a message (``None`` without one or when unreadable)."""
    try:
        with open_regular_file(root / MANIFEST_NAME) as handle:
            first = handle.read(4096).decode("utf-8-sig", errors="replace").splitlines()
    except (OSError, MedlimError):
        return None
    return escape_control(first[0].strip())[:200] if first else "(none: the file is empty)"


def _no_images_message(dataset: Dataset) -> str:
    if dataset.layout in ("unlabelled", "class_folders") and not dataset.problems:
        if dataset.unread_formats:
            found = ", ".join(f"{n} {suffix}" for suffix, n in dataset.unread_formats)
            return (f"the folder holds no image medlim reads, only files in other formats ({found}); convert them "
                    "to PNG (or TIFF, JPEG, DICOM).")
        return (
            "the folder holds no images; put images (PNG, TIFF, JPEG or DICOM) in it, one sub-folder per class, "
            "or add a manifest.csv that lists them."
        )
    return "no usable image is listed; fix the problems above."


def _other_capitals(path: Path) -> Path | None:
    """The existing file whose path differs from ``path`` only in capitals, folder by folder (``None``: none, or a
    folder along the way too large to look through)."""
    parts = path.parts
    found = Path(parts[0]) if path.is_absolute() else Path()
    for part in parts[1:] if path.is_absolute() else parts:
        if (found / part).exists():
            found = found / part
            continue
        try:
            with os.scandir(found) as entries:
                matches = [entry.name for _, entry in zip(range(_MAX_LISTED), entries)
                           if entry.name.casefold() == part.casefold()]
        except OSError:
            return None
        if len(matches) != 1:
            return None
        found = found / matches[0]
    return found if found != path and found.exists() else None


#: Most entries of one folder looked through for a name in other capitals.
_MAX_LISTED = 100_000


def _inspect_item(
    dataset: Dataset, index: int, problems: list[DatasetProblem], *, read_pixels: bool, settings: Settings
) -> tuple[_FileFacts, _FileFacts | None]:
    """Read an item's image and mask, appending the problems found; the facts of both."""
    item = dataset.items[index]
    image = _read_file(dataset, index, item.image, "image", problems, read_pixels=read_pixels, settings=settings)
    target_path = item.mask or item.instances
    if target_path is None:
        return image, None
    role = "mask" if item.mask is not None else "instance image"
    target = _read_file(dataset, index, target_path, role, problems, read_pixels=read_pixels, settings=settings)
    name = dataset.display_name(target_path)

    def add(kind: str, message: str) -> None:
        problems.append(DatasetProblem(kind=kind, row=item.row, item=name, index=index, message=message))

    if image.shape and target.shape and image.shape[:2] != target.shape[:2]:
        swapped = tuple(target.shape[:2]) == tuple(image.shape[:2])[::-1]
        advice = (f"its rows and columns are swapped (a NIfTI file written straight from an array stores them so: "
                  f"medlim reads NIfTI in ITK's axis order); export the {role} with the image's axes" if swapped
                  else f"export the {role} at the image's size")
        add("mask_size_mismatch", f"{role} {name} is {_size(target.shape)} px but its image "
            f"{dataset.display_name(item.image)} is {_size(image.shape)} px; {advice}.")
    if target.lossy:
        add("bad_mask", f"{role} {name} is a JPEG: lossy compression leaves faint non-zero pixels around every "
            "edge, which count as foreground; save masks and instance images as PNG or TIFF.")
    if item.mask is not None and (target.foreground_share or 0.0) >= MAX_MASK_SHARE:
        add("bad_mask", f"mask {name} marks {target.foreground_share:.0%} of its image as foreground: most likely "
            "an export with background and foreground swapped (the background must be 0, black); export it again.")
    if (target.pieces or 0) >= MIN_PIECES_OF_ONE_VALUE:
        add("bad_mask", f"instance image {name} gives one value to {target.pieces} separate objects: it looks like "
            "a binary mask; instance labels give each object a value of its own (1, 2, 3, …).")
    if item.instances is not None and target.shape and len(target.shape) == 3:
        add("bad_mask", f"instance image {name} has {target.shape[2]} channels; save instance labels as one grey "
            "channel (uint16 PNG or TIFF, 0 = background, 1, 2, … one value per object).")
    return image, target


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}×{shape[1]}"


def _read_file(
    dataset: Dataset,
    index: int,
    path: Path,
    role: str,
    problems: list[DatasetProblem],
    *,
    read_pixels: bool,
    settings: Settings,
) -> _FileFacts:
    """Decode and hash one file; a ``missing_file`` or ``unreadable`` problem when that fails."""
    item = dataset.items[index]
    name = dataset.display_name(path)

    def problem(kind: str, message: str) -> _FileFacts:
        problems.append(DatasetProblem(kind=kind, row=item.row, item=name, index=index, message=message))
        return _FileFacts()

    if not path.exists():
        other = _other_capitals(path)
        if other is not None:  # a manifest written where names ignore capitals (Windows, macOS)
            return problem("missing_file", f"{role} {name} does not exist, but {dataset.display_name(other)} does: "
                           "file names here tell capitals apart; write the path as the disk does.")
        return problem("missing_file", f"{role} {name} does not exist; check the path or copy the file.")
    if not read_pixels:
        return _FileFacts()
    try:
        if role == "image":
            record = read_image(path, name=name, settings=settings)
            raw = record.raw
        else:  # a mask or instance image: a palette PNG's values are its indices
            record, raw = read_labels(path, name=name, settings=settings)
        facts = _FileFacts(spacing=record.metadata.pixel_spacing_mm, lossy=record.metadata.source_format == "jpeg")
        facts.shape = tuple(int(size) for size in raw.shape)
        if role != "image":
            foreground = raw != 0
            facts.foreground = bool(foreground.any())
            facts.objects = int(np.unique(raw[foreground]).size) if raw.ndim == 2 else None
            facts.foreground_share = float(foreground.mean()) if foreground.size else None
            if role == "instance image" and facts.objects == 1:
                facts.pieces = int(cv2.connectedComponents(foreground.astype(np.uint8), connectivity=8)[0]) - 1
        del record, raw
        facts.sha256 = _content_sha256(path)
    except MultiFrameError as exc:  # the reader's own advice (frame=…) cannot be followed in a dataset
        return problem("unreadable", f"{role} {name} holds {exc.count or 'several'} images (frames, pages or slices); "
                       "a dataset lists single 2-D images: export the one you mean as a file of its own "
                       "(`medlim image info FILE --frame N` shows each).")
    except MedlimError as exc:
        return problem("unreadable", f"{role} {name} cannot be read: {exc.message}")
    except MemoryError:
        return problem(
            "unreadable",
            f"{role} {name} needs more memory than is free; lower MEDLIM_DECODE_BUDGET_MB so that such "
            "images are refused before decoding, or remove it.",
        )
    return facts


def _content_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open_regular_file(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _item_digest(dataset: Dataset, index: int, image: _FileFacts, target: _FileFacts | None) -> str | None:
    """SHA-256 over an item's content: image bytes, mask bytes and what the dataset says of it (no names)."""
    if image.sha256 is None or (target is not None and target.sha256 is None):
        return None
    item = dataset.items[index]
    payload = [image.sha256, target.sha256 if target else None, item.label, list(item.labels), item.site,
               item.shift_type]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=True).encode("ascii")).hexdigest()


def _duplicate_images(dataset: Dataset, image_hashes: Sequence[str | None]) -> list[DatasetProblem]:
    first: dict[str, int] = {}
    problems = []
    for index, content in enumerate(image_hashes):
        if content is None:
            continue
        if content not in first:
            first[content] = index
            continue
        item = dataset.items[index]
        name = dataset.display_name(item.image)
        original = dataset.display_name(dataset.items[first[content]].image)
        problems.append(
            DatasetProblem(
                kind="duplicate_image",
                row=item.row,
                item=name,
                index=index,
                message=f"image {name} has the same bytes as {original}; keep one (a copy on both sides of the "
                "validation split inflates the figures).",
            )
        )
    return problems


def _item_classes(dataset: Dataset, index: int) -> tuple[str, ...]:
    item = dataset.items[index]
    if dataset.layout == "manifest_labels":
        return item.labels
    return (item.label,) if item.label is not None else ()


def _patient_problems(dataset: Dataset) -> list[DatasetProblem]:
    """``bad_manifest`` per manifest row without a patient when other rows name one: each such row would be a
    patient of its own, and one patient's images could fall on both sides of the validation split."""
    if not dataset.has_patients:
        return []
    return [DatasetProblem(kind="bad_manifest", row=item.row, item=dataset.display_name(item.image), index=index,
                           message=f"row {item.row} has no 'patient' value while other rows have one; give its "
                                   "patient (one patient's images stay on one side of the validation split), or "
                                   "delete the row.")
            for index, item in enumerate(dataset.items) if item.row is not None and not item.patient]


def _spelling_problems(dataset: Dataset) -> list[DatasetProblem]:
    """``label_spelling`` per group of classes or labels that are one name in other capitals or spacing.

    ``Effusion`` and ``effusion`` would train as two findings and split each one's images; a model trained
    on one spelling would not know the other. The user says which is meant (nothing is merged silently).
    """
    counts: dict[str, int] = {}
    for item in dataset.items:
        for name in ((item.label,) if item.label else ()) + tuple(item.labels):
            counts[name] = counts.get(name, 0) + 1
    groups: dict[str, list[str]] = {}
    for name in counts:
        groups.setdefault(" ".join(name.casefold().split()), []).append(name)
    problems = []
    for names in groups.values():
        if len(names) > 1:
            shown = " and ".join(f"{escape_control(name)!r} ({counts[name]} images)" for name in sorted(names))
            problems.append(DatasetProblem(
                kind="label_spelling",
                message=f"{shown} are one class or label written in different ways; write it the same way "
                        "everywhere (medlim keeps capitals and spacing as given)."))
    return problems


def _label_problems(dataset: Dataset, label_set: frozenset[str]) -> list[DatasetProblem]:
    """``label_outside_set`` per item, then ``empty_class`` per label of the set without images."""
    problems = []
    seen: set[str] = set()
    allowed = ", ".join(sorted(label_set))
    for index, item in enumerate(dataset.items):
        names = _item_classes(dataset, index)
        seen.update(names)
        outside = [name for name in names if name not in label_set]
        if outside:
            shown = ", ".join(repr(escape_control(name)) for name in outside)
            problems.append(
                DatasetProblem(
                    kind="label_outside_set",
                    row=item.row,
                    item=dataset.display_name(item.image),
                    index=index,
                    message=f"{dataset.display_name(item.image)} has {shown}, not in the label set "
                    f"({escape_control(allowed)}); correct the label or add it to the set.",
                )
            )
    for name in sorted(label_set - seen - set(dataset.classes)):  # empty class folders are already listed
        problems.append(
            DatasetProblem(
                kind="empty_class",
                message=f"label {escape_control(name)!r} of the label set has no image; add images or drop it from "
                "the set.",
            )
        )
    return problems


def _part_problems(dataset: Dataset, split: DatasetSplit | None) -> list[DatasetProblem]:
    """``too_few_images`` / ``too_few_patients`` for each part of the split (or the whole dataset)."""
    if not dataset.items:
        return []
    if split is None:
        parts = [("the dataset", len(dataset), _patient_count(dataset))]
        how = "checked as one part"
    else:
        parts = [
            ("the training part", len(split.train), split.train_patients),
            ("the validation part", len(split.val), split.val_patients),
        ]
        how = f"{split.fraction:.0%} held out by {split.by} from {len(dataset)} images"
    problems = []
    for part, images, patients in parts:
        if images < MIN_IMAGES_PER_PART:
            problems.append(
                DatasetProblem(
                    kind="too_few_images",
                    message=f"{part} has {images} images ({how}); training needs at least {MIN_IMAGES_PER_PART} "
                    "in each part: add images, or give a separate validation folder (--val DIR).",
                )
            )
        if patients is not None and patients < MIN_PATIENTS_PER_PART:
            problems.append(
                DatasetProblem(
                    kind="too_few_patients",
                    message=f"{part} has {patients} patient(s) ({how}); training needs at least "
                    f"{MIN_PATIENTS_PER_PART} in each part: add patients' images, or give a separate validation "
                    "folder (--val DIR).",
                )
            )
    return problems


def _patient_count(dataset: Dataset) -> int | None:
    """Distinct patients (an item without one is its own), or ``None`` when no item names one."""
    if not dataset.has_patients:
        return None
    anonymous = sum(1 for item in dataset.items if not item.patient)
    return len({item.patient for item in dataset.items if item.patient}) + anonymous


def _counts(values: Sequence[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(values).items()))


def _summary(dataset: Dataset, task: str | None, facts: list[tuple[_FileFacts, _FileFacts | None]]) -> DatasetSummary:
    images = [image for image, _ in facts if image.shape is not None]
    shapes = [image.shape for image in images if image.shape is not None]
    # masks are counted where both the image and the mask decoded
    masks = [mask for image, mask in facts if image.shape and mask is not None and mask.foreground is not None]
    class_counts = Counter(item.label for item in dataset.items if item.label is not None)
    classes = tuple((name, class_counts.get(name, 0)) for name in sorted(set(dataset.classes) | set(class_counts)))
    spacing_counts = Counter(
        (round(float(image.spacing[0]), 6), round(float(image.spacing[1]), 6)) for image in images if image.spacing
    )
    has_masks = bool(images) and dataset.layout in ("segmentation_mask", "segmentation_instances", "msd")
    has_instances = bool(images) and dataset.layout == "segmentation_instances"
    return DatasetSummary(
        layout=dataset.layout,
        task=task,
        images=len(dataset),
        decoded=len(images),
        classes=classes,
        labels=_counts([label for item in dataset.items for label in item.labels]),
        patients=_patient_count(dataset),
        sites=_counts([item.site for item in dataset.items if item.site]),
        shift_types=_counts([item.shift_type for item in dataset.items if item.shift_type]),
        height=SizeRange.of([shape[0] for shape in shapes]),
        width=SizeRange.of([shape[1] for shape in shapes]),
        spacings=tuple((r, c, n) for (r, c), n in sorted(spacing_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        no_spacing=sum(1 for image in images if not image.spacing),
        masks_with_foreground=sum(1 for mask in masks if mask.foreground) if has_masks else None,
        masks_empty=sum(1 for mask in masks if not mask.foreground) if has_masks else None,
        instances=sum(mask.objects or 0 for mask in masks) if has_instances else None,
        unread_formats=dataset.unread_formats,
        sub_folders=dataset.sub_folders,
        no_finding_mixed=sum(1 for item in dataset.items if len(item.labels) > 1
                             and any(label.casefold() == NO_FINDING.casefold() for label in item.labels)),
    )
