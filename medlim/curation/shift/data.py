"""Datasets for MedShift, read lazily so that 100,000 images never sit in memory (thesis ch. 5).

A dataset is a list of files with one class each: a folder laid out as
``DIR/<class>/*`` (``manifest.csv`` from ``medlim phantom radiograph`` gives the
class, site and shift severity when present; an optional ``labels`` column
holds the ``|``-separated findings of multi-label data such as chest X-rays),
a zip of such a folder (checked against the zip limits before it is unpacked), or
radiograph phantoms generated on demand from a seed (no files at all). Pixels
are read only in batches (:func:`iter_batches`) through the ``ood-grey``
preset of :mod:`medlim.curation.ood.data`. A folder's file that is no image is
left out when the folder is listed (from its first bytes); one whose pixels do
not decode (a truncated PNG) is left out when its batch is read, with the
reader's message (``iter_batches(..., on_unreadable=...)``), so neither stops a run.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlim.core.archives import ZipLimits
from medlim.core.datasets.layouts import LABEL_SEPARATOR
from medlim.errors import ParameterError

__all__ = [
    "LABEL_SEPARATOR",
    "PhantomSource",
    "ImageSet",
    "DecodedBatch",
    "folder_set",
    "phantom_image_set",
    "extract_zip",
    "keep_dataset",
    "iter_batches",
    "write_image_set",
    "parse_dataset",
]

Progress = Callable[[int, int], None]
Unreadable = Callable[[int, str], None]
# LABEL_SEPARATOR (the dataset layer's "|") separates the findings of a manifest's ``labels`` ("Effusion|Fracture").


@dataclass(frozen=True)
class PhantomSource:
    """Radiograph phantoms generated on demand.

    With ``severity_range=None`` sample ``k`` of class ``b`` is
    ``generate_radiograph(seed=seed, index=k, body_part=b, site=site)`` (external
    severity uniform in [0, 1]). With a ``(low, high)`` range the site shift mix
    is set through the generator's public parts instead: the anatomy of
    ``render_anatomy``, and, with probability ``shifted_fraction``, one
    ``apply_site_shift`` style at a severity uniform in ``[low, high]``. With
    ``named=True`` a shifted sample gets one named shift of
    :mod:`medlim.phantoms.radiograph_shifts` (blur, lowres, cast, noise, grid,
    exposure, tint) instead of a style, so results can be read per shift type.
    """

    seed: int
    site: str
    severity_range: tuple[float, float] | None = None
    shifted_fraction: float = 0.5
    named: bool = False

    def site_draw(self, index: int, body_part: str) -> tuple[str, float]:
        """``(style, severity)`` of one sample without rendering it (``"internal"``, 0 when unshifted)."""
        from medlim.phantoms.base import rng_for
        from medlim.phantoms.radiograph import EXTERNAL_STYLES

        if self.severity_range is None:
            site_rng = rng_for(int(self.seed), "radiograph-site", int(index))
            external = self.site == "external" or (self.site == "mixed" and site_rng.random() < 0.5)
            if not external:
                return "internal", 0.0
            return str(site_rng.choice(sorted(EXTERNAL_STYLES))), float(site_rng.uniform(0.0, 1.0))
        site_rng = rng_for(int(self.seed), "medshift-site", int(index), body_part)
        if site_rng.random() >= self.shifted_fraction:
            return "internal", 0.0
        low, high = self.severity_range
        if self.named:
            from medlim.phantoms.radiograph_shifts import NAMED_SHIFTS

            return str(site_rng.choice(NAMED_SHIFTS)), float(site_rng.uniform(low, high))
        return str(site_rng.choice(sorted(EXTERNAL_STYLES))), float(site_rng.uniform(low, high))

    def render(self, index: int, body_part: str) -> np.ndarray:
        """The sample's native image ``np.ndarray[256, 256]`` float32 in [0, 1]."""
        from medlim.phantoms.base import rng_for
        from medlim.phantoms.radiograph import (
            apply_site_shift,
            generate_radiograph,
            render_anatomy,
        )

        if self.severity_range is None:
            return generate_radiograph(seed=self.seed, index=index, body_part=body_part, site=self.site).image
        image = render_anatomy(body_part, rng_for(int(self.seed), "radiograph", int(index), body_part))
        style, severity = self.site_draw(index, body_part)
        if style == "internal":
            return image
        # a fresh stream after the draw of style and severity
        stream = rng_for(int(self.seed), "medshift-shift", int(index), body_part)
        if self.named:
            from medlim.phantoms.radiograph_shifts import apply_named_shift

            return apply_named_shift(image, style, severity, stream)
        return apply_site_shift(image, style, severity, stream)


@dataclass(frozen=True)
class ImageSet:
    """A labelled image collection whose pixels are read on demand.

    Attributes:
        name: a label for display and for the results store.
        files: ``tuple[str, ...]`` of length N: paths relative to ``root`` (folder
            sets) or ``"<class>/<stem>"`` names (phantom sets).
        classes: ``tuple[str, ...]`` of length N.
        root: the folder the files are relative to (``None`` for phantoms).
        phantom: the generator of a phantom set (``None`` for folders).
        indices: phantom sample index of each file (phantom sets only).
        severity: ``np.ndarray[N]`` float shift severity in [0, 1] when known
            (phantom manifest or generator), else ``None``.
        sites: acquisition site of each file when known (``"internal"`` or ``"external-*"``).
        findings: multi-label data: the labels of each file (``tuple[tuple[str, ...], ...]``
            of length N, possibly empty per file); ``()`` when the set is single-label.
        shift_types: the shift type of each file (``""`` when unshifted) when known — a
            manifest's ``shift_type`` column, a phantom's style or named shift — else ``()``.
        left_out: ``(file, why)`` of the folder's images that could not be read, left out of the set (a folder
            set; :func:`folder_set`).
    """

    name: str
    files: tuple[str, ...]
    classes: tuple[str, ...]
    root: Path | None = None
    phantom: PhantomSource | None = None
    indices: tuple[int, ...] = ()
    severity: np.ndarray | None = None
    sites: tuple[str, ...] = ()
    findings: tuple[tuple[str, ...], ...] = ()
    shift_types: tuple[str, ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.files)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Sorted distinct classes."""
        return tuple(sorted(set(self.classes)))

    def label_matrix(self, names: Sequence[str]) -> np.ndarray:
        """Multi-label indicator ``np.ndarray[N, len(names)]`` int64 in {0, 1}.

        A file has label ``names[j]`` when it is among its ``findings``; a
        single-label set (no ``findings``) has exactly its class.
        """
        column = {name: j for j, name in enumerate(names)}
        matrix = np.zeros((len(self), len(column)), np.int64)
        for i, labels in enumerate(self.findings or tuple((c,) for c in self.classes)):
            for label in labels:
                if label in column:
                    matrix[i, column[label]] = 1
        return matrix

    @property
    def label_names(self) -> tuple[str, ...]:
        """Sorted distinct labels: the findings of a multi-label set, else the classes."""
        if not self.findings:
            return self.class_names
        return tuple(sorted({label for labels in self.findings for label in labels}))

    @property
    def shifted(self) -> np.ndarray | None:
        """Ground-truth flag ``np.ndarray[N]`` bool: the image comes from an external site or carries a
        shift type (``None`` if unknown)."""
        if not self.sites:
            return np.array([bool(kind) for kind in self.shift_types], dtype=bool) if self.shift_types else None
        return np.array([site != "internal" for site in self.sites], dtype=bool)

    @property
    def source(self) -> str:
        """A spec :func:`parse_dataset` turns back into this set (folder path or phantom spec)."""
        if self.phantom is not None:
            per_class = max(self.indices) + 1 if self.indices else 0
            site = self.phantom.site
            if self.phantom.severity_range is not None:
                low, high = self.phantom.severity_range
                site = f"{'named' if self.phantom.named else 'mix'}{low:g}-{high:g}x{self.phantom.shifted_fraction:g}"
            return f"phantom:{site}:{self.phantom.seed}:{per_class}:{','.join(dict.fromkeys(self.classes))}"
        return str(self.root) if self.root is not None else ""

    def read(self, positions: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
        """Pixels of the images at ``positions``: ``np.ndarray[B, size, size]`` float32 in [0, 1]."""
        from medlim.curation.ood.data import read_inputs, to_model_input

        positions = [int(p) for p in positions]
        if not positions:
            return np.zeros((0, size, size), np.float32)
        if self.phantom is not None:
            return np.stack([to_model_input(self.phantom.render(self.indices[p], self.classes[p]), size)
                             for p in positions])
        if self.root is None:
            raise ParameterError(f"image set {self.name!r} has neither a folder nor a phantom source.")
        return read_inputs([self.root / self.files[p] for p in positions], size)

    def read_decodable(self, positions: Sequence[int] | np.ndarray, size: int) -> DecodedBatch:
        """Pixels of the images at ``positions`` that decode; each one that does not is named with why.

        Each file is read once, like :meth:`read`; a file the reader refuses
        (:class:`medlim.errors.InputError`: truncated, damaged, too large…) is
        left out of the pixels instead of stopping the batch. Phantoms always decode.
        """
        from medlim.core.io import read_image
        from medlim.curation.ood.data import to_model_input
        from medlim.errors import InputError

        positions = [int(p) for p in positions]
        if self.phantom is not None or not positions:
            return DecodedBatch(np.asarray(positions, np.int64), self.read(positions, size))
        if self.root is None:
            raise ParameterError(f"image set {self.name!r} has neither a folder nor a phantom source.")
        kept: list[int] = []
        pixels: list[np.ndarray] = []
        unreadable: list[tuple[int, str]] = []
        for position in positions:
            try:
                image = read_image(self.root / self.files[position]).pixels
            except InputError as exc:
                unreadable.append((position, exc.message))
                continue
            kept.append(position)
            pixels.append(to_model_input(image, size))
        return DecodedBatch(np.asarray(kept, np.int64),
                            np.stack(pixels) if pixels else np.zeros((0, size, size), np.float32), tuple(unreadable))

    def subset(self, mask: np.ndarray, *, name: str | None = None) -> ImageSet:
        """The images where the boolean ``mask`` (``np.ndarray[N]``) is true."""
        keep = np.nonzero(np.asarray(mask, dtype=bool))[0]
        pick = lambda values: tuple(values[i] for i in keep) if values else ()  # noqa: E731
        return ImageSet(name=name or self.name, files=pick(self.files), classes=pick(self.classes), root=self.root,
                        phantom=self.phantom, indices=pick(self.indices),
                        severity=None if self.severity is None else self.severity[keep], sites=pick(self.sites),
                        findings=pick(self.findings), shift_types=pick(self.shift_types), left_out=self.left_out)


@dataclass(frozen=True)
class DecodedBatch:
    """The images of a batch whose pixels decoded (:meth:`ImageSet.read_decodable`).

    Attributes:
        positions: ``np.ndarray[B]`` int64 positions in the set of the decoded images, in the order asked.
        pixels: ``np.ndarray[B, size, size]`` float32 in [0, 1].
        unreadable: ``(position, why)`` of each image left out: the reader's message.
    """

    positions: np.ndarray
    pixels: np.ndarray
    unreadable: tuple[tuple[int, str], ...] = ()


def folder_set(directory: str | Path, *, name: str | None = None) -> ImageSet:
    """List ``DIR/<class>/*`` images (no pixels are read) through the dataset layer.

    :func:`medlim.core.datasets.open_dataset` finds the layout: a
    ``manifest.csv`` with ``file`` and ``class`` columns wins (optionally
    ``site``, ``shift_severity`` and ``labels``, the ``|``-separated findings
    of multi-label data), else the class sub-folders. Images lying directly in
    ``DIR`` beside class folders have no class and are left out. Every file is
    kept as its path relative to ``DIR``: a manifest row naming a file outside
    the folder is refused (the results store records only paths inside it).

    Raises:
        ParameterError: no such folder, no images in class folders, a manifest
            without ``file`` and ``class`` columns, a manifest row without a
            value or listed twice, or a file outside the folder.
    """
    from medlim.core.datasets import MANIFEST_NAME, open_dataset
    from medlim.errors import InputError

    root = Path(directory)
    if not root.is_dir():
        raise ParameterError(f"dataset folder {str(root)!r} does not exist.")
    try:
        dataset = open_dataset(root)
    except InputError as exc:
        raise ParameterError(exc.message) from None
    if (root / MANIFEST_NAME).exists():
        return _readable(_manifest_set(root, dataset, name=name))
    if dataset.layout != "class_folders" or not dataset.items:
        raise ParameterError(f"no images in class sub-folders under {root.name!r} (expected DIR/<class>/*.png).")
    files = tuple(_inside_root(root, item.image, None) for item in dataset.items)
    return _readable(ImageSet(name=name or root.name, files=files,
                              classes=tuple(str(item.label) for item in dataset.items), root=root))


def _readable(image_set: ImageSet) -> ImageSet:
    """``image_set`` without the files that are no image the reader takes (empty, a text file named ``.png``, a
    BMP: :func:`medlim.core.io.reader.image_format`, from each file's first bytes, so a folder of 100,000 images
    is not read twice), each kept in ``left_out`` with why: one such file used to fail a whole MedShift run,
    minutes in, naming only itself (session-21 browser probe). A truncated image passes this test; it is left
    out when its pixels are read (:func:`iter_batches` with ``on_unreadable``), once, in the run.

    Raises:
        ParameterError: no file of the folder is an image the reader takes.
    """
    from medlim.core.io.reader import image_format
    from medlim.core.text import counted
    from medlim.errors import MedlimError

    assert image_set.root is not None
    readable = np.ones(len(image_set), bool)
    left_out: list[tuple[str, str]] = []
    for index, file in enumerate(image_set.files):
        try:
            image_format(image_set.root / file, name=file)
        except MedlimError as exc:
            readable[index] = False
            left_out.append((file, exc.message))
    if not left_out:
        return image_set
    if not readable.any():
        raise ParameterError(f"no image of the folder could be read ({counted(len(left_out), 'file')}); the first: "
                             f"{left_out[0][1]}")
    return dataclasses.replace(image_set.subset(readable), left_out=tuple(left_out))


def _inside_root(root: Path, image: Path, row: int | None) -> str:
    """``image`` as a ``/``-separated path relative to ``root``; refused when it lies outside."""
    try:
        return Path(os.path.normpath(image)).relative_to(os.path.normpath(root)).as_posix()
    except ValueError:
        where = f"manifest.csv row {row}" if row is not None else "a file"
        raise ParameterError(f"{where} names a file outside the dataset folder; a dataset may list only "
                             "files inside its folder.") from None


def _severity(cell: str, row: int | None) -> float:
    """A ``shift_severity`` cell as a number (0 when empty)."""
    try:
        return float(cell or 0.0)
    except ValueError:
        raise ParameterError(f"manifest.csv row {row} has shift_severity {cell!r}; give a number in [0, 1] "
                             "or leave the cell empty.") from None


def _manifest_set(root: Path, dataset: Any, *, name: str | None) -> ImageSet:
    """The image set of a ``file,class`` manifest listed by the dataset layer."""
    from medlim.core.datasets import MANIFEST_NAME
    from medlim.core.manifest import read_manifest_columns

    refused = [p for p in dataset.problems if p.kind in ("bad_manifest", "duplicate_entry")]
    if refused:
        more = f" ({len(refused) - 1} more: `medlim data check` lists them)" if len(refused) > 1 else ""
        raise ParameterError(refused[0].message + more)
    if dataset.layout != "manifest_class":
        raise ParameterError(f"{MANIFEST_NAME} in {str(root)!r} needs 'file' and 'class' columns.")
    extra = read_manifest_columns(root / MANIFEST_NAME, ("shift_severity",))
    items = dataset.items
    if not items:
        raise ParameterError(f"no images in class sub-folders under {root.name!r} (expected DIR/<class>/*.png).")
    files = tuple(_inside_root(root, item.image, item.row) for item in items)
    sites = tuple(item.site or "" for item in items)
    known_sites = all(sites)
    severity = np.asarray([_severity(extra.value(item.row, "shift_severity"), item.row) for item in items], np.float64)
    return ImageSet(name=name or root.name, files=files, classes=tuple(str(item.label) for item in items), root=root,
                    severity=severity if known_sites else None, sites=sites if known_sites else (),
                    findings=tuple(item.labels for item in items) if "labels" in extra.header else (),
                    shift_types=_shift_types(items))


def _shift_types(items: Sequence[Any]) -> tuple[str, ...]:
    """The items' ``shift_type`` cells (``""`` for none or ``none``); ``()`` when no item has one."""
    kinds = tuple("" if (item.shift_type or "").strip().lower() in ("", "none") else str(item.shift_type).strip()
                  for item in items)
    return kinds if any(kinds) else ()


def phantom_image_set(
    *,
    seed: int,
    per_class: int,
    site: str = "internal",
    body_parts: Sequence[str] | None = None,
    name: str | None = None,
    severity_range: tuple[float, float] | None = None,
    shifted_fraction: float = 0.5,
    named_shifts: bool = False,
) -> ImageSet:
    """A radiograph phantom set, generated on demand (the ground truth is computed here, pixels later).

    Args:
        seed: phantom series seed (use different seeds for internal and external sets).
        per_class: images per body part.
        site: ``"internal"``, ``"external"`` or ``"mixed"`` (half internal, half shifted).
        body_parts: classes (default: all seven).
        name: dataset name (default ``"phantoms-<site>-<seed>"``).
        severity_range: ``(low, high)`` in [0, 1] sets the shift mix (see
            :class:`PhantomSource`; ``site`` is then ignored); ``None`` uses
            :func:`~medlim.phantoms.radiograph.generate_radiograph` as is.
        shifted_fraction: share of shifted images when ``severity_range`` is given.
        named_shifts: with ``severity_range``, one named shift per shifted image
            (blur, lowres, cast, noise, grid, exposure, tint) instead of a site style.
    """
    from medlim.phantoms.radiograph import BODY_PARTS, SITES

    if site not in SITES:
        raise ParameterError(f"`site` must be one of {SITES}, {site!r} is given.")
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ParameterError(f"`per_class` must be a positive integer, {per_class!r} is given.")
    parts = tuple(body_parts) if body_parts is not None else BODY_PARTS
    unknown = [b for b in parts if b not in BODY_PARTS]
    if unknown:
        raise ParameterError(f"unknown body parts {unknown}; known: {', '.join(BODY_PARTS)}.")
    if severity_range is not None:
        low, high = (float(v) for v in severity_range)
        if not 0.0 <= low <= high <= 1.0:
            raise ParameterError(f"`severity_range` must be (low, high) with 0 ≤ low ≤ high ≤ 1, {severity_range!r} is given.")
        if not 0.0 <= float(shifted_fraction) <= 1.0:
            raise ParameterError(f"`shifted_fraction` must be in [0, 1], {shifted_fraction!r} is given.")
        source = PhantomSource(int(seed), "mix", (low, high), float(shifted_fraction), bool(named_shifts))
        site = f"{'named' if named_shifts else 'mix'}{low:g}-{high:g}x{float(shifted_fraction):g}"
    else:
        source = PhantomSource(int(seed), site)
    files, classes, indices, sites, severity = [], [], [], [], []
    for part in parts:
        for k in range(int(per_class)):
            style, level = source.site_draw(k, part)
            files.append(f"{part}/{site}-{seed}-{k:05d}")
            classes.append(part)
            indices.append(k)
            sites.append(style)
            severity.append(level)
    return ImageSet(name=name or f"phantoms-{site}-{seed}", files=tuple(files), classes=tuple(classes),
                    phantom=source, indices=tuple(indices),
                    severity=np.asarray(severity, np.float64), sites=tuple(sites),
                    shift_types=tuple("" if style == "internal" else style for style in sites))


def extract_zip(data: bytes, directory: str | Path, *, label: str = "the upload",
                limits: ZipLimits | None = None) -> Path:
    """Unpack a zip of ``<class>/*`` images into ``directory/<sha1 of the bytes>`` (once) and return that folder.

    The archive is checked against the zip limits (``MEDLIM_ZIP_MAX_*``) before
    anything is written and unpacked into a fresh folder renamed into place
    (:func:`medlim.core.archives.extract_zip`), so a refused, failed or
    concurrent extraction never leaves a half folder. A zip whose single
    top-level folder holds the class folders is unpacked to that inner folder.

    Args:
        data: the archive's bytes.
        directory: where the content-named folder is made (a session's temporary folder in the app).
        label: how messages name the archive (its upload name; never a server path).
        limits: the zip budgets; from the current settings when ``None``.

    Raises:
        ArchiveError: not a zip, or it holds paths leaving the folder, nested
            archives or duplicate members.
        ArchiveBudgetError: beyond the size, member-count or compression-ratio limit.
    """
    from medlim.core.archives import extract_zip as extract_checked

    target = Path(directory) / hashlib.sha1(data).hexdigest()[:16]
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # emptied by keep_dataset: unpack afresh
    extract_checked(data, target, limits=limits, label=label)
    return _unwrapped(target)


def _unwrapped(target: Path) -> Path:
    """``target``'s single top-level folder when every image lies two levels below it, else ``target``."""
    names = [path.relative_to(target).parts for path in target.rglob("*") if path.is_file()]
    tops = {parts[0] for parts in names if len(parts) > 2}
    if len(tops) == 1 and all(len(parts) > 2 for parts in names if parts[-1] != "manifest.csv"):
        inner = target / tops.pop()
        if inner.is_dir():
            return inner
    return target


def keep_dataset(folder: str | Path, datasets_dir: str | Path, name: str) -> Path:
    """Move an unpacked dataset to ``datasets_dir/<name>``, where it persists, in one rename.

    Args:
        folder: the unpacked dataset (from :func:`extract_zip`).
        datasets_dir: ``Settings.datasets_dir`` (a data root by default).
        name: the name the user chose (checked by :func:`medlim.core.paths.validate_name`).

    Returns:
        The kept folder.

    Raises:
        InvalidNameError: the name is not a safe name.
        ParameterError: a dataset of that name exists already, or ``folder`` is not a folder.
    """
    from medlim.core.paths import validate_name

    name = validate_name(name, what="dataset name")
    source = Path(folder)
    if not source.is_dir():
        raise ParameterError("the unpacked dataset is no longer on the server; upload the zip again.")
    destination = Path(datasets_dir) / name
    if destination.exists():
        raise ParameterError(f"a dataset named {name!r} is kept already; choose another name.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise ParameterError(f"the dataset could not be kept as {name!r} ({exc.strerror}).") from None
        staging = destination.with_name(f".{name}.{os.getpid()}.partial")  # another file system: copy, then rename
        try:
            shutil.copytree(source, staging)
            os.rename(staging, destination)
        except OSError as copy_error:
            shutil.rmtree(staging, ignore_errors=True)
            raise ParameterError(f"the dataset could not be kept as {name!r} ({copy_error.strerror}).") from None
        shutil.rmtree(source, ignore_errors=True)
    return destination


def iter_batches(
    image_set: ImageSet,
    *,
    size: int,
    batch_size: int = 256,
    positions: Sequence[int] | np.ndarray | None = None,
    progress: Progress | None = None,
    on_unreadable: Unreadable | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(positions np.ndarray[B] int64, pixels np.ndarray[B, size, size] float32)`` batches.

    Memory holds one batch at a time; ``progress(done, total)`` is called after each.
    With ``on_unreadable``, an image whose pixels do not decode is left out of its
    batch and ``on_unreadable(position, why)`` is called with the reader's message
    (a batch left empty is not yielded); without it the reader's error stops the iteration.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"`batch_size` must be a positive integer, {batch_size!r} is given.")
    order = np.arange(len(image_set)) if positions is None else np.asarray(positions, dtype=np.int64)
    total = len(order)
    for start in range(0, total, batch_size):
        chunk = order[start : start + batch_size]
        if on_unreadable is None:
            yield chunk, image_set.read(chunk, size)
        else:
            batch = image_set.read_decodable(chunk, size)
            for position, why in batch.unreadable:
                on_unreadable(position, why)
            if len(batch.positions):
                yield batch.positions, batch.pixels
        if progress is not None:
            progress(min(start + batch_size, total), total)


def write_image_set(image_set: ImageSet, directory: str | Path, *, size: int = 256) -> Path:
    """Write an image set as ``DIR/<class>/*.png`` plus ``manifest.csv`` (file, class, site, shift_severity[, labels])."""
    from medlim.phantoms.base import save_png

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for positions, pixels in iter_batches(image_set, size=size, batch_size=64):
        for p, image in zip(positions, pixels):
            relative = image_set.files[p] if image_set.files[p].lower().endswith(".png") else f"{image_set.files[p]}.png"
            save_png(root / relative, image)
            rows.append({"file": relative, "class": image_set.classes[p],
                         "site": image_set.sites[p] if image_set.sites else "",
                         "shift_severity": float(image_set.severity[p]) if image_set.severity is not None else ""})
            if image_set.shift_types:
                rows[-1]["shift_type"] = image_set.shift_types[p]
            if image_set.findings:
                rows[-1]["labels"] = LABEL_SEPARATOR.join(image_set.findings[p])
    columns = ["file", "class", "site", "shift_severity"] + (["labels"] if image_set.findings else []) \
        + (["shift_type"] if image_set.shift_types else [])
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return root


def parse_dataset(spec: str | Path, *, name: str | None = None) -> ImageSet:
    """A dataset from the command line: a folder, or ``phantom:SITE:SEED:PER_CLASS[:PART,PART…]`` (generated on demand).

    ``SITE`` is ``internal``, ``external``, ``mixed``, a shift mix
    ``mixLOW-HIGHxFRACTION`` (that share shifted by a site style, severity uniform in [LOW, HIGH]) or
    ``namedLOW-HIGHxFRACTION`` (the same with one named shift per shifted image: blur, lowres,
    cast, noise, grid, exposure or tint, kept as the image's shift type).
    Examples: ``data/internal``, ``phantom:internal:101:60``, ``phantom:mixed:202:40:hand,elbow``,
    ``phantom:mix0.3-1x0.5:202:60``.
    """
    text = str(spec)
    if text.startswith("phantom:"):
        parts = text.split(":")
        if len(parts) not in (4, 5) or not parts[2].isdigit() or not parts[3].isdigit():
            raise ParameterError(f"a phantom dataset is 'phantom:SITE:SEED:PER_CLASS[:PARTS]', {text!r} is given.")
        body_parts = parts[4].split(",") if len(parts) == 5 and parts[4] else None
        site, severity_range, fraction = parts[1], None, 0.5
        named = site.startswith("named")
        if (site.startswith("mix") and site != "mixed") or named:  # mixLOW-HIGHxFRACTION: a chosen shift mix
            try:
                span, fraction_text = site[5 if named else 3:].split("x")
                low, high = (float(v) for v in span.split("-"))
                severity_range, fraction = (low, high), float(fraction_text)
            except ValueError:
                raise ParameterError(f"a shift mix is 'mixLOW-HIGHxFRACTION' (e.g. mix0.3-1x0.5), {site!r} is given.") from None
        return phantom_image_set(seed=int(parts[2]), per_class=int(parts[3]), site=site if severity_range is None else "mixed",
                                 body_parts=body_parts, name=name, severity_range=severity_range,
                                 shifted_fraction=fraction, named_shifts=named)
    return folder_set(text, name=name)
