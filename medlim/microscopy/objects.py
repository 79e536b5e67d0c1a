"""Per-object measurements of a microscopy label image, in pixels and microns (issue 16, "Pathology").

The one place nuclei (thesis §3.1) and steatosis droplets (thesis §3.2.3) are
measured for tables, histograms and exports:

* :class:`MicronSpacing` — the pixel size in µm and where it came from
  (``"file"``: the TIFF / OME-TIFF metadata, ``"user"``: ``--pixel-spacing-um``
  or the page's field, ``"none"``: unknown, then every measurement stays in
  pixels and :attr:`MicronSpacing.warning` says so);
* :func:`measure_shapes` → :class:`ObjectShapes` — centroid, area, perimeter,
  equivalent diameter, major and minor axis (of the ellipse with the same
  second moments), eccentricity and solidity of every object, in px
  (scikit-image ``regionprops``); shapes of several tiles of a slide are
  joined with :meth:`ObjectShapes.concat`;
* :func:`object_table` → :class:`ObjectTable` — the rows the page shows, the
  CSV downloads and ``medlim nuclei|steatosis segment --csv`` write and the
  GeoJSON measurements carry (:mod:`medlim.microscopy.qupath`): the px columns,
  their µm / µm² twins when the spacing is known, and the room's own columns
  (a droplet's score and whether it is kept, whether a nucleus was cut from a
  clump). The unit is in every column name and title.

Microns assume square pixels: a file stating different x and y sizes gets
their mean, with a warning (:func:`resolve_spacing`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medlim.errors import ParameterError

__all__ = [
    "SPACING_SOURCES",
    "SHAPE_COLUMNS",
    "MICRON_COLUMNS",
    "MicronSpacing",
    "NO_SPACING",
    "resolve_spacing",
    "file_spacing",
    "ObjectShapes",
    "measure_shapes",
    "ObjectTable",
    "object_table",
    "column_title",
]

#: Where a pixel size came from.
SPACING_SOURCES: tuple[str, ...] = ("file", "user", "none")
#: Shape measurements of every object, in pixel units, in table order.
SHAPE_COLUMNS: tuple[str, ...] = (
    "centroid_row_px", "centroid_col_px", "area_px2", "perimeter_px", "equivalent_diameter_px",
    "major_axis_px", "minor_axis_px", "eccentricity", "solidity",
)
#: Pixel column → (micron column, power of the spacing it scales with).
MICRON_COLUMNS: dict[str, tuple[str, int]] = {
    "area_px2": ("area_um2", 2), "perimeter_px": ("perimeter_um", 1),
    "equivalent_diameter_px": ("equivalent_diameter_um", 1), "major_axis_px": ("major_axis_um", 1),
    "minor_axis_px": ("minor_axis_um", 1),
}
_UNIT_SUFFIXES = (("_px2", "px²"), ("_um2", "µm²"), ("_px", "px"), ("_um", "µm"))


@dataclass(frozen=True)
class MicronSpacing:
    """The size of one pixel in µm, and where it came from.

    Attributes:
        um: pixel side in µm (> 0), or ``None`` when unknown.
        source: ``"file"``, ``"user"`` or ``"none"`` (:data:`SPACING_SOURCES`).
        detail: where exactly, in words (e.g. ``"TIFF XResolution (cm)"``), or ``None``.
    """

    um: float | None = None
    source: str = "none"
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SPACING_SOURCES:
            raise ParameterError(f"`source` must be one of {list(SPACING_SOURCES)}, {self.source!r} is given.")
        if (self.um is None) != (self.source == "none"):
            raise ParameterError(f"a spacing of {self.um!r} µm cannot have source {self.source!r}.")
        if self.um is not None:
            if not (math.isfinite(float(self.um)) and float(self.um) > 0):
                raise ParameterError(f"the pixel size must be a positive number of µm, {self.um!r} is given.")
            object.__setattr__(self, "um", float(self.um))

    @property
    def known(self) -> bool:
        """Whether microns can be given."""
        return self.um is not None

    @property
    def warning(self) -> str | None:
        """The plain-language warning of an unknown pixel size (``None`` when known)."""
        if self.known:
            return None
        return ("The image states no pixel size, so sizes are in pixels only. Give it with --pixel-spacing-um "
                "(command line) or the page's “Pixel size (µm)” field to get µm and µm².")

    def to_json(self) -> dict[str, object]:
        """``{"pixel_spacing_um": …, "spacing_source": …}`` as every result carries them."""
        return {"pixel_spacing_um": self.um, "spacing_source": self.source}


#: The spacing of an image whose pixel size nobody stated.
NO_SPACING = MicronSpacing()


def resolve_spacing(file_um: float | None, user_um: float | None, *, file_detail: str | None = None
                    ) -> tuple[MicronSpacing, tuple[str, ...]]:
    """The spacing to use: the user's when stated (it corrects a wrong file), else the file's, else none.

    Args:
        file_um: the pixel size the file states, µm (None: it states none).
        user_um: the size the user gave (``--pixel-spacing-um``, the page field), µm.
        file_detail: where in the file it was found.

    Returns:
        ``(spacing, warnings)``: a warning when the user's value overrides a
        different one from the file (an unknown size has :attr:`MicronSpacing.warning`).

    Raises:
        ParameterError: ``user_um`` is not a positive number.
    """
    if user_um is not None:
        spacing = MicronSpacing(float(user_um), "user", "stated by the user")
        if file_um is not None and not math.isclose(file_um, spacing.um or 0.0, rel_tol=0.01):
            return spacing, (f"The file states {file_um:.4g} µm per pixel; the {spacing.um:.4g} µm you gave is used.",)
        return spacing, ()
    if file_um is not None:
        return MicronSpacing(float(file_um), "file", file_detail), ()
    return NO_SPACING, ()


def file_spacing(path: str | Path, user_um: float | None) -> tuple[MicronSpacing, tuple[str, ...]]:
    """The pixel size of an image file: ``user_um`` when given, else what the TIFF / OME-TIFF metadata states
    (:func:`medlim.core.io.slide.file_spacing_um`; other formats state none), via :func:`resolve_spacing`."""
    from medlim.core.io.slide import file_spacing_um

    found = file_spacing_um(Path(path))
    return resolve_spacing(None if found is None else found[0], user_um,
                           file_detail=None if found is None else found[1])


@dataclass(frozen=True)
class ObjectShapes:
    """Shape measurements of ``n`` objects in pixel units.

    Attributes:
        ids: ``np.ndarray[n]`` int64, each object's label in its label image.
        values: :data:`SHAPE_COLUMNS` → ``np.ndarray[n]`` float64 (centroids in
            image px, row down and column right from the top-left pixel's centre).
    """

    ids: np.ndarray
    values: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.ids))

    def __getitem__(self, column: str) -> np.ndarray:
        return self.values[column]

    @property
    def centroid(self) -> np.ndarray:
        """``np.ndarray[n, 2]`` (row, col) px."""
        return np.stack([self.values["centroid_row_px"], self.values["centroid_col_px"]], axis=1).reshape(-1, 2)

    def take(self, chosen: np.ndarray) -> ObjectShapes:
        """The objects selected by ``chosen`` (bool mask or indices)."""
        return ObjectShapes(ids=self.ids[chosen], values={k: v[chosen] for k, v in self.values.items()})

    def shifted(self, *, top: float, left: float) -> ObjectShapes:
        """The same objects with centroids moved by ``(top, left)`` px (a tile's place in the slide)."""
        values = dict(self.values)
        values["centroid_row_px"] = values["centroid_row_px"] + top
        values["centroid_col_px"] = values["centroid_col_px"] + left
        return ObjectShapes(ids=self.ids, values=values)

    @staticmethod
    def concat(parts: Sequence[ObjectShapes]) -> ObjectShapes:
        """The objects of every part, in order (ids kept as they are)."""
        if not parts:
            return measure_shapes(np.zeros((1, 1), np.int32))
        return ObjectShapes(ids=np.concatenate([p.ids for p in parts]),
                            values={k: np.concatenate([p.values[k] for p in parts]) for k in SHAPE_COLUMNS})


def measure_shapes(labels: np.ndarray) -> ObjectShapes:
    """Measure every object of a label image (scikit-image ``regionprops``), ascending label.

    Args:
        labels: ``np.ndarray[H, W]`` int, 0 = background.

    Returns:
        :class:`ObjectShapes` in px (perimeter: scikit-image's 4-connectivity
        estimate; equivalent diameter: of the disc of the same area).
    """
    from skimage import measure

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ParameterError(f"a label image must be 2-D, shape {labels.shape} is given.")
    regions = measure.regionprops(labels.astype(np.int32, copy=False))
    columns: dict[str, list[float]] = {name: [] for name in SHAPE_COLUMNS}
    for region in regions:
        row, col = region.centroid
        for name, value in (("centroid_row_px", row), ("centroid_col_px", col), ("area_px2", region.area),
                            ("perimeter_px", region.perimeter),
                            ("equivalent_diameter_px", region.equivalent_diameter_area),
                            ("major_axis_px", region.axis_major_length), ("minor_axis_px", region.axis_minor_length),
                            ("eccentricity", region.eccentricity), ("solidity", region.solidity)):
            columns[name].append(float(value))
    return ObjectShapes(ids=np.array([r.label for r in regions], np.int64),
                        values={k: np.asarray(v, np.float64) for k, v in columns.items()})


@dataclass(frozen=True)
class ObjectTable:
    """The per-object table of one image (or slide region) as shown, downloaded and exported.

    Attributes:
        columns: column names in order; units in the names (``_px``, ``_px2``, ``_um``, ``_um2``).
        rows: one dict per object with those keys (``id`` first, then ``class``).
        spacing: the pixel size the µm columns used.
    """

    columns: tuple[str, ...]
    rows: tuple[dict[str, object], ...]
    spacing: MicronSpacing = NO_SPACING

    def __len__(self) -> int:
        return len(self.rows)

    def titles(self) -> dict[str, str]:
        """Column → title with its unit, e.g. ``"area_um2"`` → ``"Area (µm²)"``."""
        return {name: column_title(name) for name in self.columns}

    def values(self, column: str) -> np.ndarray:
        """One numeric column as ``np.ndarray[n]`` float64."""
        return np.asarray([float(row[column]) for row in self.rows], np.float64)  # type: ignore[arg-type]

    def to_csv(self) -> str:
        """CSV text with a header, written by :func:`medlim.core.text.csv_text` (no cell can run as a
        spreadsheet formula, issue 14)."""
        from medlim.core.text import csv_text

        return csv_text([dict(row) for row in self.rows], list(self.columns))


def column_title(name: str) -> str:
    """A column name in words with its unit: ``area_um2`` → ``Area (µm²)``, ``eccentricity`` → ``Eccentricity``."""
    unit = None
    for suffix, text in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            name, unit = name[: -len(suffix)], text
            break
    words = name.replace("_", " ")
    words = words[:1].upper() + words[1:]
    return f"{words} ({unit})" if unit else words


def _rounded(name: str, value: float) -> float:
    """Values as exported: px areas whole, centroids and px lengths to 0.01, µm and ratios to 4 decimals."""
    if name == "area_px2":
        return float(round(value))
    if name.endswith(("_um", "_um2")) or name in ("eccentricity", "solidity"):
        return round(value, 4)
    return round(value, 2)


def object_table(
    shapes: ObjectShapes,
    *,
    classes: Sequence[str],
    spacing: MicronSpacing = NO_SPACING,
    extra: Mapping[str, Sequence[object]] | None = None,
    ids: Sequence[int] | None = None,
) -> ObjectTable:
    """The :class:`ObjectTable` of measured objects.

    Args:
        shapes: the objects' px measurements.
        classes: each object's class name (``"Nucleus"``, ``"Steatosis droplet"``, …).
        spacing: the pixel size; when known every px length and area gets a µm / µm² column beside it.
        extra: the room's own columns (name → one value per object), appended in order.
        ids: each object's id in the table (default: ``shapes.ids``).

    Raises:
        ParameterError: a column does not have one value per object.
    """
    n = len(shapes)
    extra = dict(extra or {})
    ids = shapes.ids if ids is None else ids
    for name, values in (("classes", classes), ("ids", ids), *extra.items()):
        if len(values) != n:
            raise ParameterError(f"{len(values)} values of `{name}` for {n} objects.")
    columns: list[str] = ["id", "class"]
    for name in SHAPE_COLUMNS:
        columns.append(name)
        if spacing.known and name in MICRON_COLUMNS:
            columns.append(MICRON_COLUMNS[name][0])
    columns.extend(extra)
    rows = []
    for i in range(n):
        row: dict[str, object] = {"id": int(ids[i]), "class": str(classes[i])}
        for name in SHAPE_COLUMNS:
            value = float(shapes.values[name][i])
            row[name] = _rounded(name, value)
            if spacing.known and name in MICRON_COLUMNS:
                micron, power = MICRON_COLUMNS[name]
                row[micron] = _rounded(micron, value * (spacing.um or 0.0) ** power)
        for name, values in extra.items():
            value = values[i]
            row[name] = bool(value) if isinstance(value, (bool, np.bool_)) else value
        rows.append(row)
    return ObjectTable(columns=tuple(columns), rows=tuple(rows), spacing=spacing)
