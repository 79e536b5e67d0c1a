"""The dataset a user brings, as medlim sees it: items, layout, and what is wrong.

Issue 12 ("Datasets a user brings"): one description of a folder of images,
whatever its layout, shared by every trainer, evaluator, page and ``medlim data
check``. Nothing here reads pixels; :mod:`.layouts` builds a :class:`Dataset`
from a folder and :mod:`.check` reads the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medlim.core.text import escape_control

__all__ = [
    "LAYOUTS",
    "TASKS",
    "TASK_LAYOUTS",
    "PROBLEM_KINDS",
    "DatasetItem",
    "DatasetProblem",
    "Dataset",
    "display_name",
]

#: Layouts a folder can have, in the order they are looked for (see :func:`medlim.core.datasets.open_dataset`).
LAYOUTS: tuple[str, ...] = (
    "segmentation_mask",  # manifest.csv with image,mask
    "segmentation_instances",  # manifest.csv with image,instances
    "manifest_class",  # manifest.csv with file,class
    "manifest_labels",  # manifest.csv with file,labels (| between labels)
    "msd",  # Medical Segmentation Decathlon dataset.json
    "class_folders",  # DIR/<class>/*
    "unlabelled",  # images only (a plain folder, or a manifest with a file column only)
)

#: Tasks whose data can be checked, each with the layouts its trainer or evaluator accepts.
TASK_LAYOUTS: dict[str, tuple[str, ...]] = {
    "bac": ("segmentation_mask", "msd"),
    "nuclei": ("segmentation_instances",),
    "steatosis": LAYOUTS,  # weak labels are made from the images themselves: any layout, images only
    "ood": ("class_folders", "manifest_class", "unlabelled"),
    "oscars": ("class_folders", "manifest_class"),
    "pms": ("manifest_labels",),
}

#: Task names, in help order.
TASKS: tuple[str, ...] = tuple(TASK_LAYOUTS)

#: Every problem kind a check reports, with what it means.
PROBLEM_KINDS: dict[str, str] = {
    "bad_manifest": "manifest.csv or dataset.json cannot be read, lacks a column, or a row lacks a value",
    "missing_file": "a file the manifest names does not exist",
    "outside_data_roots": "a file the dataset names lies outside the dataset folder and the data folders the app "
                          "may read (checked for folders given to a page)",
    "unreadable": "a file exists but is not an image the reader can decode",
    "mask_size_mismatch": "a mask or instance image is not the size of its image",
    "bad_mask": "an instance image is not one grey channel, or a mask or instance image is a (lossy) JPEG",
    "label_outside_set": "a class or label is not in the label set given",
    "label_spelling": "two classes or labels differ only in capitals or spacing (one finding written two ways)",
    "duplicate_entry": "the same image is listed twice",
    "duplicate_image": "two entries hold byte-identical images",
    "empty_class": "a class (folder or label of the set) has no image",
    "no_class": "an image lies outside every class folder",
    "no_images": "the folder holds no images",
    "wrong_layout": "the layout is not one the task accepts",
    "too_few_images": "the training or validation part has fewer images than training needs",
    "too_few_patients": "the training or validation part has fewer patients than training needs",
}


@dataclass(frozen=True)
class DatasetItem:
    """One image and what the dataset says about it.

    Attributes:
        image: the image file (absolute, as listed; links not resolved).
        mask: binary mask file (non-zero = foreground), or ``None``.
        instances: instance label image (uint16, 0 = background), or ``None``.
        label: its one class (class folders, ``class`` column), or ``None``.
        labels: its labels (``labels`` column, ``|``-separated), possibly empty.
        site: the ``site`` column, or ``None``.
        patient: the ``patient`` column, or ``None`` (never printed: it may identify).
        shift_type: the ``shift_type`` column, or ``None``.
        row: the manifest row (header = row 1, as a spreadsheet numbers it) or
            the 1-based entry of ``dataset.json``'s ``training`` list; ``None`` for folders.
    """

    image: Path
    mask: Path | None = None
    instances: Path | None = None
    label: str | None = None
    labels: tuple[str, ...] = ()
    site: str | None = None
    patient: str | None = None
    shift_type: str | None = None
    row: int | None = None


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with a dataset, worded for the person who owns it.

    Attributes:
        kind: a key of :data:`PROBLEM_KINDS`.
        message: what is wrong and what to do.
        row: manifest row (see :attr:`DatasetItem.row`), or ``None``.
        item: the file concerned, relative to the dataset folder, control
            characters escaped; ``None`` for problems of the whole dataset.
        index: position of the item in :attr:`Dataset.items`, or ``None`` (a row
            that did not become an item, or the whole dataset).
    """

    kind: str
    message: str
    row: int | None = None
    item: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown dataset problem kind {self.kind!r}; known: {', '.join(PROBLEM_KINDS)}.")

    def to_json(self) -> dict[str, object]:
        """``{"kind", "row", "item", "message"}`` (names withheld inside a job: :meth:`shown`)."""
        shown = self.shown()
        return {"kind": shown.kind, "row": shown.row, "item": shown.item, "message": shown.message}

    def shown(self) -> "DatasetProblem":
        """The problem as outputs may show it: itself, or — while names are withheld (a job's log, result and
        error are read by every user of the app) — its file as a pseudonymous label and the kind's plain
        meaning instead of a message that names files."""
        from medlim.core.io.pseudonym import file_label, names_withheld

        if not names_withheld() or (self.item is None and self.row is None):
            return self
        return DatasetProblem(kind=self.kind, row=self.row, index=self.index,
                              item=None if self.item is None else file_label(self.item),
                              message=f"{PROBLEM_KINDS[self.kind]}; `medlim data check DIR` names the file")


@dataclass(frozen=True)
class Dataset:
    """A folder of images with its layout, items and the problems found while listing them.

    Attributes:
        root: the dataset folder.
        layout: one of :data:`LAYOUTS`.
        items: the images, in listing order (manifest order, or sorted paths).
        classes: sorted class names (class folders, empty ones included, or the
            ``class`` values of a manifest); empty for other layouts.
        label_set: sorted labels seen in a ``labels`` column; empty otherwise.
        problems: problems found while listing (bad manifest rows, duplicates,
            empty class folders); :func:`medlim.core.datasets.check_dataset` adds the rest.
        unread_formats: ``(suffix, files)`` per image format found in the folder that the reader does not take
            (``.bmp``, ``.webp`` …): left out of the items, and said in the check's summary.
        sub_folders: class folders with a single class: the sub-folders of that class holding its images, when
            two or more (perhaps the real classes, one level down); else ``()``.
    """

    root: Path
    layout: str
    items: tuple[DatasetItem, ...]
    classes: tuple[str, ...] = ()
    label_set: tuple[str, ...] = ()
    problems: tuple[DatasetProblem, ...] = ()
    unread_formats: tuple[tuple[str, int], ...] = ()
    sub_folders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown dataset layout {self.layout!r}; known: {', '.join(LAYOUTS)}.")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_patients(self) -> bool:
        """True when at least one item names its patient (the split then goes by patient)."""
        return any(item.patient for item in self.items)

    def display_name(self, path: Path) -> str:
        """``path`` relative to :attr:`root` when inside it (else as given), control characters escaped."""
        return display_name(self.root, path)


def display_name(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when inside it, else as given; control characters escaped."""
    try:
        text = Path(os.path.normpath(path)).relative_to(os.path.normpath(root)).as_posix()
    except ValueError:
        text = str(path)
    return escape_control(text)
