"""Data for the OOD detectors: the input preset, phantom sets and labelled folders.

The preset ``ood-grey`` (thesis §4.1.3 resizes every image to one size): grey
pixels in [0, 1] from :func:`medlim.core.io.read_image` (colour → luminance),
resized to the detector's square input side (area interpolation when
shrinking), float32. Nothing depends on the other images of a batch.

Radiograph phantoms (:mod:`medlim.phantoms.radiograph`) supply the training,
calibration and held-out sets in memory from a seed, or a folder written by
``medlim phantom radiograph`` (``DIR/<class>/*.png`` + ``manifest.csv``) is read.
A user's dataset (any layout of :mod:`medlim.core.datasets`) is read with
:func:`read_dataset`, which keeps each item's class, site and shift type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medlim.core.io.files import IMAGE_SUFFIXES as _CORE_IMAGE_SUFFIXES
from medlim.core.io.files import has_image_suffix
from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.datasets import Dataset

__all__ = [
    "PRESET",
    "IMAGE_SUFFIXES",
    "LabelledImages",
    "to_model_input",
    "stack_inputs",
    "phantom_set",
    "read_folder",
    "list_image_files",
    "read_inputs",
    "DatasetImages",
    "read_dataset",
]

PRESET = "ood-grey"
#: Re-exported from :mod:`medlim.core.io.files` (the one list of image suffixes).
IMAGE_SUFFIXES = _CORE_IMAGE_SUFFIXES


@dataclass(frozen=True)
class LabelledImages:
    """Images at the model input size with their class and site.

    Attributes:
        images: ``np.ndarray[N, s, s]`` float32 in [0, 1].
        classes: ``tuple[str, ...]`` of length N (body part / folder name).
        sites: ``tuple[str, ...]`` of length N (``"internal"`` when unknown).
        files: ``tuple[str, ...]`` of length N (source name, for display).
    """

    images: np.ndarray
    classes: tuple[str, ...]
    sites: tuple[str, ...]
    files: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def select(self, mask: np.ndarray) -> "LabelledImages":
        """The rows where the boolean ``mask`` is true."""
        index = np.nonzero(np.asarray(mask, dtype=bool))[0]
        return LabelledImages(self.images[index], tuple(self.classes[i] for i in index),
                              tuple(self.sites[i] for i in index), tuple(self.files[i] for i in index))

    def in_classes(self, names: Iterable[str]) -> np.ndarray:
        """Boolean ``np.ndarray[N]``: the class is one of ``names``."""
        wanted = set(names)
        return np.array([c in wanted for c in self.classes], dtype=bool)

    @staticmethod
    def concatenate(parts: Sequence["LabelledImages"], size: int) -> "LabelledImages":
        """The rows of ``parts`` one after the other (an empty set at side ``size`` when none)."""
        parts = [part for part in parts if len(part)]
        if not parts:
            return LabelledImages(np.zeros((0, size, size), np.float32), (), (), ())
        return LabelledImages(np.concatenate([part.images for part in parts]),
                              tuple(c for part in parts for c in part.classes),
                              tuple(s for part in parts for s in part.sites),
                              tuple(f for part in parts for f in part.files))


@dataclass(frozen=True)
class DatasetImages:
    """Items of a user's dataset at the model input size (see :func:`read_dataset`).

    Attributes:
        images: the items' pixels with class (``""`` when the item has none), site and display name.
        shift_types: per item, its ``shift_type`` column (``""`` when none).
        colour: how many of the items were colour images (scored as luminance).
    """

    images: LabelledImages
    shift_types: tuple[str, ...]
    colour: int


def to_model_input(pixels: np.ndarray, size: int) -> np.ndarray:
    """Apply the ``ood-grey`` preset to one image.

    Args:
        pixels: ``np.ndarray[H, W]`` or ``[H, W, 3]`` float in [0, 1] (an
            ``ImageRecord.pixels``); colour becomes luminance (Rec. 601 weights).
        size: square output side.

    Returns:
        ``np.ndarray[size, size]`` float32 in [0, 1].
    """
    import cv2

    array = np.asarray(pixels, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if array.ndim != 2 or min(array.shape) < 2:
        raise ParameterError(f"an OOD input must be a grey or RGB image, shape {np.shape(pixels)} is given.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ParameterError(f"`size` must be an integer ≥ 8, {size!r} is given.")
    if array.shape != (size, size):
        shrink = array.shape[0] > size or array.shape[1] > size
        array = cv2.resize(array, (int(size), int(size)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.clip(array, 0.0, 1.0).astype(np.float32)


def stack_inputs(images: Sequence[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Preset every image and stack: ``np.ndarray[N, size, size]`` float32."""
    if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[1:] == (size, size):
        return np.clip(images.astype(np.float32, copy=False), 0.0, 1.0)
    if not len(images):
        return np.zeros((0, size, size), np.float32)
    return np.stack([to_model_input(image, size) for image in images])


def phantom_set(
    *,
    seed: int,
    per_class: int,
    body_parts: Sequence[str],
    size: int,
    site: str = "internal",
    variability: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> LabelledImages:
    """``per_class`` radiograph phantoms of each body part, at the model input size.

    Sample ``k`` of class ``b`` is ``generate_radiograph(seed=seed, index=k, body_part=b, site=site,
    variability=variability)``, so a larger set extends a smaller one.
    """
    from medlim.phantoms.radiograph import BODY_PARTS, generate_radiograph

    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 0:
        raise ParameterError(f"`per_class` must be a non-negative integer, {per_class!r} is given.")
    unknown = [b for b in body_parts if b not in BODY_PARTS]
    if unknown:
        raise ParameterError(f"unknown body parts {unknown}; known: {', '.join(BODY_PARTS)}.")
    images, classes, sites, files = [], [], [], []
    total = per_class * len(body_parts)
    for part in body_parts:
        for k in range(per_class):
            phantom = generate_radiograph(seed=seed, index=k, body_part=part, site=site, variability=variability)
            images.append(to_model_input(phantom.image, size))
            classes.append(part)
            sites.append(phantom.site)
            files.append(f"phantom:{seed}:{part}:{k}")
            if progress is not None:
                progress(len(images), total)
    array = np.stack(images) if images else np.zeros((0, size, size), np.float32)
    return LabelledImages(array, tuple(classes), tuple(sites), tuple(files))


def list_image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files given directly plus image files found (recursively, sorted) under folders."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and has_image_suffix(p)))
        elif path.is_file():
            found.append(path)
        else:
            raise ParameterError(f"no such file or folder: {str(path)!r}.")
    return found


def read_inputs(files: Sequence[str | Path], size: int) -> np.ndarray:
    """Read image files with :func:`medlim.core.io.read_image` and preset them: ``[N, size, size]``."""
    from medlim.core.io import read_image

    return stack_inputs([read_image(Path(f)).pixels for f in files], size)


def read_folder(directory: str | Path, *, size: int, sites: Sequence[str] | None = None) -> LabelledImages:
    """Read ``DIR/<class>/*`` images (classes from ``manifest.csv`` when present, else folder names).

    Args:
        directory: a folder written by ``medlim phantom radiograph`` or laid out the same way.
        size: model input side.
        sites: keep only rows whose site is listed (needs ``manifest.csv``; ``None`` keeps all).
    """
    from medlim.core.datasets import open_dataset

    root = Path(directory)
    if not root.is_dir():
        raise ParameterError(f"data folder {str(root)!r} does not exist.")
    # The one folder reader (issue 17): class folders or a manifest.csv with file/class (the manifest wins).
    dataset = open_dataset(root, task="ood")
    if dataset.layout not in ("class_folders", "manifest_class"):
        raise ParameterError(f"{str(root)!r} needs one sub-folder per class or a manifest.csv with 'file' and "
                             f"'class' columns (found the {dataset.layout.replace('_', ' ')} layout).")
    rows: list[tuple[Path, str, str]] = [
        (Path(item.image), str(item.label), item.site or "internal") for item in dataset.items if item.label is not None
    ]
    if sites is not None:
        wanted = set(sites)
        rows = [r for r in rows if r[2] in wanted or (r[2].startswith("external") and "external" in wanted)]
    if not rows:
        raise ParameterError(f"no images found under {str(root)!r}.")
    images = read_inputs([r[0] for r in rows], size)
    return LabelledImages(images, tuple(r[1] for r in rows), tuple(r[2] for r in rows),
                          tuple(str(r[0].relative_to(root)) if r[0].is_relative_to(root) else str(r[0]) for r in rows))


def read_dataset(dataset: "Dataset", indices: Sequence[int] | None = None, *, size: int,
                 progress: Callable[[int, int], None] | None = None) -> DatasetImages:
    """Read items of a dataset (:func:`medlim.core.datasets.open_dataset`) and preset them.

    Args:
        dataset: the dataset (checked beforehand, so every file decodes).
        indices: which items (default all), in this order.
        size: model input side.
        progress: ``progress(done, total)`` after each image.

    Returns:
        A :class:`DatasetImages`; the display names are relative to the dataset folder.
    """
    from medlim.core.io import read_image

    chosen = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    arrays, colour = [], 0
    for done, index in enumerate(chosen, start=1):
        pixels = read_image(dataset.items[index].image).pixels
        colour += int(np.ndim(pixels) == 3)
        arrays.append(to_model_input(pixels, size))
        if progress is not None:
            progress(done, len(chosen))
    items = [dataset.items[i] for i in chosen]
    images = LabelledImages(np.stack(arrays) if arrays else np.zeros((0, size, size), np.float32),
                            tuple(item.label or "" for item in items),
                            tuple(item.site or "internal" for item in items),
                            tuple(dataset.display_name(item.image) for item in items))
    return DatasetImages(images=images, shift_types=tuple(item.shift_type or "" for item in items), colour=colour)
