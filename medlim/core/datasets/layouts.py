"""Finding a dataset's layout and listing its items (no pixels are read).

Issue 12 ("Datasets a user brings") names the layouts imaging people already
use, looked for in this order:

1. ``DIR/manifest.csv`` (it wins over sub-folders), by its columns:
   ``image,mask`` (binary masks) or ``image,instances`` (uint16 instance
   labels) for segmentation (``file`` may stand for ``image``); ``file,class``
   (one label); ``file,labels`` (several, ``|``-separated); optional ``site``,
   ``patient``, ``shift_type``; a manifest with only ``file`` lists unlabelled
   images. Paths are relative to ``DIR`` or absolute.
2. ``DIR/dataset.json`` of the Medical Segmentation Decathlon
   (``"training": [{"image": …, "label": …}]``), any non-zero label as foreground;
   an nnU-Net v2 ``dataset.json`` (``"file_ending"``, no ``"training"`` list)
   pairs ``labelsTr/CASE<ending>`` with its first channel ``imagesTr/CASE_0000<ending>``
   (nnU-Net's naming; further channels are not read).
3. class folders ``DIR/<class>/*`` (torchvision ``ImageFolder``), searched recursively.
4. a plain folder of images (unlabelled).

A manifest that cannot be used, or a row that lacks a value, becomes a
``bad_manifest`` problem of the returned :class:`Dataset`, not an exception:
``medlim data check`` lists every problem at once.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from medlim.core.datasets.model import TASKS, Dataset, DatasetItem, DatasetProblem, display_name
from medlim.core.io.files import (
    NIFTI_SUFFIXES,
    RASTER_SUFFIXES,
    UNREAD_SUFFIXES,
    image_suffix,
    is_derived_file,
    is_regular_file,
    open_regular_file,
)
from medlim.core.io.formats import DICOM_SUFFIXES, has_dicom_preamble, looks_like_bare_dicom
from medlim.core.paths import data_roots_confined, existing_form, lies_within
from medlim.core.text import escape_control
from medlim.errors import InputError, MedlimError, ParameterError
from medlim.settings import Settings

__all__ = ["MANIFEST_NAME", "MSD_NAME", "LABEL_SEPARATOR", "NO_FINDING", "open_dataset", "is_image_name"]

#: The manifest file looked for in a dataset folder.
MANIFEST_NAME = "manifest.csv"

#: The Medical Segmentation Decathlon description file.
MSD_NAME = "dataset.json"

#: Separator between the labels of one image in a ``labels`` column.
LABEL_SEPARATOR = "|"
#: The label of an image without findings in a multi-label manifest (ChestX-ray14 and MIMIC-CXR spell it so).
NO_FINDING = "No Finding"

#: Largest manifest or dataset.json read (a larger one is surely not a manifest).
_MAX_DESCRIPTION_BYTES = 256 << 20


def open_dataset(directory: str | os.PathLike, *, task: str | None = None) -> Dataset:
    """Describe the dataset in ``directory``: its layout, items and listing problems.

    Args:
        directory: the dataset folder.
        task: one of :data:`medlim.core.datasets.TASKS`, or ``None``. It breaks
            a tie: a manifest with both ``class`` and ``labels`` is read as
            ``manifest_labels`` for ``pms`` and as ``manifest_class`` otherwise;
            and for ``steatosis``, which needs no classes, a folder with
            sub-folders is one unlabelled tree (:func:`_unlabelled_tree`), not
            class folders whose names (often cases or patients) a model would record.

    Returns:
        A :class:`Dataset`; its ``problems`` hold what was wrong with the listing.

    Raises:
        InputError: ``directory`` is not a folder.
        ParameterError: ``task`` is not a known task.
    """
    if task is not None and task not in TASKS:
        raise ParameterError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    root = Path(directory)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise InputError(f"{escape_control(root)} {what}; give the folder that holds the dataset.")
    if (root / MANIFEST_NAME).exists():
        dataset = _manifest_dataset(root, prefer_labels=task == "pms", task=task)
    elif (root / MSD_NAME).exists():
        dataset = _msd_dataset(root)
    elif task == "steatosis":
        dataset = _unlabelled_tree(root)
    else:
        dataset = _folder_dataset(root)
    return _confined(dataset) if data_roots_confined() else dataset


def _confined(dataset: Dataset) -> Dataset:
    """``dataset`` without the items naming a file outside its folder and the data roots (a manifest's absolute or
    ``../`` path, a link), each an ``outside_data_roots`` problem. Decided on the paths alone, before any file is
    opened, so the message is the same whether or not such a file exists (issue 14: a page's data may not reach
    outside the data roots)."""
    from medlim.settings import get_settings

    settings = get_settings()  # read once, not per file
    kept: list[DatasetItem] = []
    problems = list(dataset.problems)
    through_links: dict[Path, list[DatasetItem]] = {}
    for item in dataset.items:
        outside = [path for path in (item.image, item.mask, item.instances)
                   if path is not None and not lies_within(path, [dataset.root], settings)]
        if not outside:
            kept.append(item)
            continue
        link = _folder_link_out(outside[0], dataset.root, settings)
        if link is not None:  # the names behind a linked folder are not the dataset's to show: one problem per link
            through_links.setdefault(link, []).append(item)
            continue
        name = dataset.display_name(outside[0])
        problems.append(DatasetProblem(
            kind="outside_data_roots", row=item.row, item=name,
            message=f"{name} lies outside the dataset folder and the data folders this app may read; copy it into "
                    "the dataset folder and name it by a path inside it."))
    for link, items in through_links.items():
        name = escape_control(link.relative_to(dataset.root).as_posix())
        problems.append(DatasetProblem(
            kind="outside_data_roots", row=items[0].row, item=name,
            message=f"the folder {name} is a link that leads outside the dataset folder and the data folders this "
                    f"app may read; its {len(items)} image{'s are' if len(items) > 1 else ' is'} left out (their "
                    "names are not shown). Copy the images into the dataset folder instead of linking them."))
    if len(kept) == len(dataset.items):
        return dataset
    classes = dataset.classes if dataset.layout == "class_folders" else tuple(
        sorted({item.label for item in kept if item.label is not None}))
    return dataclasses.replace(dataset, items=tuple(kept), classes=classes, problems=tuple(problems),
                               label_set=tuple(sorted({label for item in kept for label in item.labels})))


def _folder_link_out(path: Path, root: Path, settings: Settings) -> Path | None:
    """The first folder on ``path`` below ``root`` that is a link leading outside ``root`` and the data roots, or
    ``None`` (``path`` does not lie below ``root`` as written, or no folder on it is such a link)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink() and not lies_within(folder, [root], settings):
            return folder
    return None


def is_image_name(path: Path) -> bool:
    """True for names an image may have: raster, DICOM and NIfTI suffixes, no suffix, or a DICOM UID's digits.

    ``DICOMDIR`` (the index of a DICOM CD export, not an image) is not one.
    """
    suffix = path.suffix.lower()
    if path.name.upper() == "DICOMDIR":
        return False
    if image_suffix(path) in NIFTI_SUFFIXES:
        return True
    return suffix in RASTER_SUFFIXES or suffix in DICOM_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def _listing(folder: Path, *, recursive: bool) -> tuple[list[Path], Counter[str]]:
    """One walk of ``folder``: its image-like regular files (no hidden files, notes, or masks medlim writes), sorted,
    and per suffix the image files in formats the reader does not take (``UNREAD_SUFFIXES``; hidden ones left out).

    A file without a suffix is taken only when its first bytes are DICOM's (archives often store DICOM so):
    a Mac's ``Icon\\r``, a ``LICENSE`` or ``README`` beside the images is no image and no problem.
    """
    images: list[Path] = []
    unread: Counter[str] = Counter()
    for path in folder.rglob("*") if recursive else folder.iterdir():
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.suffix.lower() in UNREAD_SUFFIXES:
            unread[path.suffix.lower()] += 1
        elif (is_image_name(path) and not is_derived_file(path) and is_regular_file(path)
              and (path.suffix != "" or _starts_like_dicom(path))):
            images.append(path)
    return sorted(images), unread


def _counted(unread: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(unread.items()))


def _starts_like_dicom(path: Path) -> bool:
    """True when the file's first bytes are a DICOM file's (the ``DICM`` marker, or a bare data set)."""
    try:
        with open_regular_file(path) as handle:
            head = handle.read(132)
    except MedlimError:
        return False
    return has_dicom_preamble(head) or looks_like_bare_dicom(head)


def _unlabelled_tree(root: Path) -> Dataset:
    """Every image under ``root``, unlabelled; a sub-folder of ``root`` is taken as one case (patient).

    Tiles cut from one case stay on one side of the validation split when the
    images lie in two or more sub-folders (loose images then count as cases of
    their own); the folder names only group items and are never recorded.
    """
    files, unread = _listing(root, recursive=True)
    tops = {path.relative_to(root).parts[0] for path in files if len(path.relative_to(root).parts) > 1}
    grouped = len(tops) >= 2

    def case(path: Path) -> str | None:
        parts = path.relative_to(root).parts
        return parts[0] if grouped and len(parts) > 1 else None

    return Dataset(root=root, layout="unlabelled", items=tuple(DatasetItem(image=path, patient=case(path))
                                                               for path in files),
                   unread_formats=_counted(unread))


def _folder_dataset(root: Path) -> Dataset:
    """Class folders when a sub-folder holds images, else a plain folder of images."""
    sub_folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    per_class: dict[str, list[Path]] = {}
    unread: Counter[str] = Counter()
    for folder in sub_folders:  # two folders whose names differ only in Unicode form are one class
        files, folder_unread = _listing(folder, recursive=True)
        per_class.setdefault(_class_name(folder.name), []).extend(files)
        unread += folder_unread
    loose, loose_unread = _listing(root, recursive=False)
    unread += loose_unread
    if not any(per_class.values()):
        items = tuple(DatasetItem(image=path) for path in loose)
        return Dataset(root=root, layout="unlabelled", items=items, unread_formats=_counted(unread))
    per_class = {name: sorted(per_class[name]) for name in sorted(per_class)}
    items = tuple(DatasetItem(image=path, label=name) for name, files in per_class.items() for path in files)
    problems = [
        DatasetProblem(
            kind="empty_class",
            message=f"class folder {escape_control(name)!r} holds no image; add images or remove the folder.",
        )
        for name, files in per_class.items()
        if not files
    ]
    problems.extend(
        DatasetProblem(
            kind="no_class",
            item=escape_control(path.name),
            message=f"{escape_control(path.name)} lies directly in the dataset folder, outside every class "
            "folder; move it into the folder of its class.",
        )
        for path in loose
    )
    return Dataset(root=root, layout="class_folders", items=items, classes=tuple(per_class), problems=tuple(problems),
                   unread_formats=_counted(unread), sub_folders=_one_class_sub_folders(root, items))


def _one_class_sub_folders(root: Path, items: tuple[DatasetItem, ...]) -> tuple[str, ...]:
    """For a single class, the sub-folders directly under it that hold its images, when there are two or more:
    ``clinic/{hand,elbow}/`` beside a README reads as one class ``clinic``, which a check should point out."""
    if len({item.label for item in items}) != 1:
        return ()
    names = sorted({item.image.relative_to(root).parts[1] for item in items if len(item.image.relative_to(root).parts) > 2})
    return tuple(names) if len(names) >= 2 else ()


def _read_description(path: Path) -> str:
    """The text of a manifest or dataset.json (UTF-8, a leading byte-order mark dropped).

    Raises:
        ValueError: not a regular file, too large, or not UTF-8 (the message says which).
    """
    if not is_regular_file(path):
        raise ValueError(f"{path.name} is not a regular file")
    if path.stat().st_size > _MAX_DESCRIPTION_BYTES:
        raise ValueError(f"{path.name} is larger than {_MAX_DESCRIPTION_BYTES >> 20} MiB")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'") from exc


def _bad_description(root: Path, layout: str, message: str) -> Dataset:
    return Dataset(root=root, layout=layout, items=(), problems=(DatasetProblem(kind="bad_manifest", message=message),))


def _manifest_table(text: str, task: str | None = None) -> tuple[set[str], list[tuple[int, dict[str, str]]]]:
    """The column names (lower-cased, stripped) and ``(row, cells)`` of each non-blank data row.

    A header without commas but with semicolons (a spreadsheet's export in some
    locales) is read with ``;`` between cells; a first line ``sep=;`` (Excel's way of
    naming the separator) names it and is not the header.

    Raises:
        csv.Error: the text is not CSV.
    """
    header_line, _, after = text.partition("\n")
    named = re.fullmatch(r"\s*sep=(.)\s*", header_line, flags=re.IGNORECASE)
    if named is not None:
        text, header_line = after, after.partition("\n")[0]
    delimiter = (named.group(1) if named is not None else "," if "," in header_line else ";" if ";" in header_line
                 else "\t" if "\t" in header_line else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = _canonical_columns([name.strip().lower() for name in next(reader, [])], task)
    rows = [
        (number, {name: cell.strip() for name, cell in zip(header, cells) if name})
        for number, cells in enumerate(reader, start=2 if named is None else 3)
        if any(cell.strip() for cell in cells)
    ]
    return {name for name in header if name}, rows


#: Column names spreadsheets and other tools use for medlim's ``patient``, ``file`` and ``labels`` columns (lower
#: case, runs of spaces, ``_`` and ``-`` read as one space; NIH ChestX-ray14's ``Image Index`` and ``Finding
#: Labels``); taken only when the manifest lacks the column itself.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "patient": ("patient id", "patientid", "patient number", "subject", "subject id", "case id"),
    "file": ("filename", "file name", "path", "file path", "image path", "image index"),
    "labels": ("finding labels", "findings"),
}


#: What a ``label`` column (the Decathlon's word for a segmentation) holds for each task.
LABEL_COLUMN: dict[str, str] = {"bac": "mask", "nuclei": "instances", "steatosis": "instances", "ood": "class",
                                "oscars": "class", "pms": "labels"}


def _canonical_columns(header: list[str], task: str | None = None) -> list[str]:
    """``header`` with the first alias of each missing medlim column renamed to it (``Patient ID`` → ``patient``;
    ``label`` → the task's target column, :data:`LABEL_COLUMN`)."""
    spaced = [re.sub(r"[\s_\-]+", " ", name).strip() for name in header]
    renamed = list(header)
    target = LABEL_COLUMN.get(task or "")
    if target is not None and "label" in header and not {"mask", "instances", "class", "labels"} & set(header):
        renamed[header.index("label")] = target
    for column, aliases in COLUMN_ALIASES.items():
        if column in header or (column == "file" and "image" in header):
            continue
        found = next((i for i, name in enumerate(spaced) if name in aliases), None)
        if found is not None:
            renamed[found] = column
    return renamed


def _manifest_layout(columns: set[str], *, prefer_labels: bool) -> tuple[str, str, str | None]:
    """``(layout, image column, target column)`` from a manifest's columns.

    Raises:
        ValueError: no image column, or both ``mask`` and ``instances``.
    """
    image_column = "image" if "image" in columns else "file" if "file" in columns else None
    if image_column is None:
        raise ValueError(
            "it has no 'file' or 'image' column; its first line must name the columns, e.g. 'file,class', "
            "'file,labels', 'image,mask' or 'image,instances'"
        )
    if {"mask", "instances"} <= columns:
        raise ValueError("it has both a 'mask' and an 'instances' column; keep the one the task needs")
    if "mask" in columns:
        return "segmentation_mask", image_column, "mask"
    if "instances" in columns:
        return "segmentation_instances", image_column, "instances"
    if "labels" in columns and (prefer_labels or "class" not in columns):
        return "manifest_labels", image_column, "labels"
    if "class" in columns:
        return "manifest_class", image_column, "class"
    return "unlabelled", image_column, None


def _manifest_dataset(root: Path, *, prefer_labels: bool, task: str | None = None) -> Dataset:
    manifest = root / MANIFEST_NAME
    try:
        columns, rows = _manifest_table(_read_description(manifest), task)
        layout, image_column, target_column = _manifest_layout(columns, prefer_labels=prefer_labels)
        if not rows:
            raise ValueError(f"it lists no image under its first line (columns {', '.join(sorted(columns))})")
    except (ValueError, csv.Error) as exc:
        return _bad_description(root, "unlabelled", f"{MANIFEST_NAME} cannot be used: {exc}.")
    builder = _ItemBuilder(root, source=MANIFEST_NAME)
    for number, cells in rows:
        builder.add(number, cells, image_column=image_column, target_column=target_column, layout=layout)
    return builder.dataset(layout)


def _msd_dataset(root: Path) -> Dataset:
    try:
        document = json.loads(_read_description(root / MSD_NAME))
    except (ValueError, RecursionError) as exc:
        return _bad_description(root, "msd", f"{MSD_NAME} cannot be used: {exc}.")
    entries = document.get("training") if isinstance(document, dict) else None
    if entries is None and isinstance(document, dict) and isinstance(document.get("file_ending"), str):
        entries = _nnunet_entries(root, document["file_ending"])
    if not isinstance(entries, list):
        example = '"training": [{"image": "imagesTr/a.png", "label": "labelsTr/a.png"}]'
        return _bad_description(root, "msd", f"{MSD_NAME} has no \"training\" list; write {example} (or, for "
                                              "nnU-Net v2's layout, give \"file_ending\" and a labelsTr folder).")
    builder = _ItemBuilder(root, source=MSD_NAME)
    for number, entry in enumerate(entries, start=1):
        cells = entry if isinstance(entry, dict) else {}
        cells = {key: value.strip() for key, value in cells.items() if isinstance(value, str)}
        builder.add(number, cells, image_column="image", target_column="label", layout="msd")
    return builder.dataset("msd")


def _nnunet_entries(root: Path, ending: str) -> list[dict[str, str]] | None:
    """nnU-Net v2's raw layout as Decathlon entries: ``labelsTr/CASE<ending>`` → ``imagesTr/CASE_0000<ending>``
    (``None`` without a ``labelsTr`` folder). A missing image is then reported as any missing file is."""
    labels = root / "labelsTr"
    if not ending.startswith(".") or not labels.is_dir():
        return None
    cases = sorted(path.name[: -len(ending)] for path in labels.iterdir()
                   if path.name.endswith(ending) and not path.name.startswith(".") and is_regular_file(path))
    return [{"image": f"imagesTr/{case}_0000{ending}", "label": f"labelsTr/{case}{ending}"} for case in cases]


def _class_name(text: str) -> str:
    """A class or label as medlim keeps it: in Unicode's composed form (NFC), so that a folder unpacked from a Mac
    and the same name typed on a keyboard are one class."""
    return unicodedata.normalize("NFC", text)


class _ItemBuilder:
    """Turns manifest rows (or dataset.json entries) into items, collecting row problems and duplicates."""

    def __init__(self, root: Path, *, source: str) -> None:
        self.root = root
        self.source = source
        self.items: list[DatasetItem] = []
        self.problems: list[DatasetProblem] = []
        self._first_row: dict[str, int] = {}

    def _path(self, cell: str) -> Path:
        if os.sep == "/" and "\\" in cell and not Path(cell).is_absolute():
            cell = cell.replace("\\", "/")  # a manifest written on Windows
        path = Path(cell)
        return existing_form(path) if path.is_absolute() else self.root / existing_form(path, under=self.root)

    def _bad_row(self, number: int, column: str, item: str | None, hint: str) -> None:
        where = "entry" if self.source != MANIFEST_NAME else "row"
        self.problems.append(
            DatasetProblem(
                kind="bad_manifest",
                row=number,
                item=item,
                message=f"{self.source} {where} {number} has no {column}; {hint}.",
            )
        )

    def add(
        self, number: int, cells: Mapping[str, str], *, image_column: str, target_column: str | None, layout: str
    ) -> None:
        """Add one row: an item, a ``bad_manifest`` problem or a ``duplicate_entry`` problem."""
        if not cells.get(image_column):
            self._bad_row(number, f"{image_column!r} value", None, "give the image's path or delete the row")
            return
        image = self._path(cells[image_column])
        name = self._display(image)
        target = cells.get(target_column) if target_column else None
        if target_column == "labels" and target and not target.replace(LABEL_SEPARATOR, "").strip():
            target = None  # only separators (" | "): no label, as an empty cell
        if target_column and not target:
            self._bad_row(number, f"{target_column!r} value", name, _TARGET_HINTS[layout])
            return
        key = os.path.normpath(image)
        if key in self._first_row:
            self.problems.append(
                DatasetProblem(
                    kind="duplicate_entry",
                    row=number,
                    item=name,
                    message=f"{name} is listed again (first on {self.source} row {self._first_row[key]}); "
                    "delete one of the rows.",
                )
            )
            return
        self._first_row[key] = number
        self.items.append(_item(image, cells, layout=layout, target=target, path=self._path, row=number))

    def _display(self, path: Path) -> str:
        return display_name(self.root, path)

    def dataset(self, layout: str) -> Dataset:
        classes = sorted({item.label for item in self.items if item.label is not None})
        labels = sorted({label for item in self.items for label in item.labels})
        return Dataset(
            root=self.root,
            layout=layout,
            items=tuple(self.items),
            classes=tuple(classes),
            label_set=tuple(labels),
            problems=tuple(self.problems),
        )


#: What to write when a row lacks its target, per layout.
_TARGET_HINTS: dict[str, str] = {
    "segmentation_mask": "give the mask's path (an all-zero mask for an image with nothing to outline)",
    "segmentation_instances": "give the instance label image's path (all zero when it holds no object)",
    "msd": "give the label image's path (all zero when nothing is present)",
    "manifest_class": "give the image's class or delete the row",
    "manifest_labels": f"give its labels separated by '|' ({NO_FINDING!r} for an image without findings)",
}


def _item(
    image: Path, cells: Mapping[str, str], *, layout: str, target: str | None, path: Callable[[str], Path], row: int
) -> DatasetItem:
    """The item of one manifest row whose image and target cells are present."""
    # a segmentation manifest's `labels` column (a phantom's instance image, say) is not a label set
    labels_cell = "" if layout in ("segmentation_mask", "segmentation_instances", "msd") else cells.get("labels") or ""
    labels = tuple(dict.fromkeys(_class_name(part.strip()) for part in labels_cell.split(LABEL_SEPARATOR)
                                 if part.strip()))
    target_path = path(target) if target is not None else None
    return DatasetItem(
        image=image,
        mask=target_path if layout in ("segmentation_mask", "msd") else None,
        instances=target_path if layout == "segmentation_instances" else None,
        label=_class_name(cells["class"]) if cells.get("class") else None,
        labels=labels,
        site=cells.get("site") or None,
        patient=cells.get("patient") or None,
        shift_type=cells.get("shift_type") or None,
        row=row,
    )
