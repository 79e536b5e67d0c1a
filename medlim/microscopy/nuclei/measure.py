"""Per-nucleus measurements and the readout of one segmentation (thesis §3.1).

What the clumped-nuclei page shows and ``medlim nuclei segment`` prints comes
from here, so both give the same numbers for the same image (issue 17):

* :func:`nucleus_table` → :class:`NucleusTable`: one :class:`NucleusRow` per
  nucleus (area, centroid, perimeter, eccentricity, solidity, whether it was
  cut from a clump) and the number of clumps that were split — the per-nucleus
  CSV of the page's download and of ``medlim nuclei segment --csv``;
* :func:`nuclei_readout` → :class:`NucleiReadout`: the counts the page shows
  as metrics and the CLI prints per image;
* :func:`nuclei_exports` → the per-object CSV and QuPath GeoJSON (issue 16),
  built by the microscopy rooms' one builder (:mod:`medlim.microscopy.qupath`)
  from :attr:`NucleusTable.objects`: the shared per-object table
  (:mod:`medlim.microscopy.objects`) with sizes in px and, when the pixel size
  is known, µm / µm², plus ``from_split_clump``.

A nucleus "comes from a split clump" when its 8-connected foreground region
holds another nucleus as well: the method cut that region along a dividing
curve (a region is never split into touching parts otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from medlim.microscopy.nuclei.pipeline import NucleiResult
from medlim.microscopy.objects import NO_SPACING, MicronSpacing, ObjectShapes, ObjectTable, measure_shapes, object_table
from medlim.microscopy.qupath import ObjectExports, label_polygons, object_exports

__all__ = [
    "NUCLEUS_COLUMNS",
    "NucleusRow",
    "NucleusTable",
    "NucleiReadout",
    "split_clump_labels",
    "split_clump_count",
    "nucleus_rows",
    "nucleus_table",
    "nuclei_readout",
    "NUCLEUS_CLASS",
    "nucleus_object_table",
    "nucleus_outlines",
    "nuclei_exports",
]

#: QuPath class of a nucleus (name, RGB): Okabe–Ito sky blue.
NUCLEUS_CLASS: tuple[str, tuple[int, int, int]] = ("Nucleus", (86, 180, 233))


def _region_members(labels: np.ndarray) -> np.ndarray:
    """Distinct ``(region, instance)`` pairs, regions = 8-connected foreground components; ``int64[m, 2]``."""
    from skimage import measure

    labels = np.asarray(labels)
    inside = labels > 0
    components = measure.label(inside, connectivity=2)
    if not inside.any():
        return np.zeros((0, 2), np.int64)
    return np.unique(np.stack([components[inside], labels[inside]], 1).astype(np.int64), axis=0)


def split_clump_labels(labels: np.ndarray) -> set[int]:
    """Instances that share an 8-connected foreground region with another instance (cut from a clump).

    Args:
        labels: ``np.ndarray[H, W]`` integer instance labels, 0 = background.

    Returns:
        The instance labels, as a set of ints.
    """
    pairs = _region_members(labels)
    if not len(pairs):
        return set()
    ids, counts = np.unique(pairs[:, 0], return_counts=True)
    shared = set(ids[counts > 1].tolist())
    return {int(label) for region, label in pairs if int(region) in shared}


def split_clump_count(labels: np.ndarray) -> int:
    """Connected foreground regions holding two or more instances (clumps that were split)."""
    pairs = _region_members(labels)
    if not len(pairs):
        return 0
    _, counts = np.unique(pairs[:, 0], return_counts=True)
    return int((counts > 1).sum())


@dataclass(frozen=True)
class NucleusRow:
    """Measurements of one nucleus (pixel units).

    Attributes:
        id: instance label in the label image.
        area_px2: area in px².
        centroid_row, centroid_col: centroid in px (row down, column right, from the top-left pixel).
        perimeter_px: perimeter in px (scikit-image, 4-connectivity estimate).
        eccentricity: of the ellipse with the same second moments, in [0, 1).
        solidity: area / convex hull area, in (0, 1].
        from_split_clump: the nucleus was cut from a clump.
    """

    id: int
    area_px2: int
    centroid_row: float
    centroid_col: float
    perimeter_px: float
    eccentricity: float
    solidity: float
    from_split_clump: bool

    def to_json(self) -> dict[str, object]:
        """The row as a JSON-able dict (keys are the field names)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: CSV columns of the per-nucleus table, in order.
NUCLEUS_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NucleusRow))


@dataclass(frozen=True)
class NucleusTable:
    """Every nucleus of one label image, by id.

    Attributes:
        rows: one :class:`NucleusRow` per instance, ascending id (hover text, readouts).
        clumps_split: foreground regions holding two or more nuclei.
        objects: the per-object table the page shows and the CSV / GeoJSON carry (px and µm).
    """

    rows: tuple[NucleusRow, ...]
    clumps_split: int
    objects: ObjectTable

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def from_split_clumps(self) -> int:
        """Nuclei cut from a clump."""
        return sum(row.from_split_clump for row in self.rows)

    @property
    def spacing(self) -> MicronSpacing:
        """The pixel size the µm columns used."""
        return self.objects.spacing

    def to_csv_rows(self) -> list[dict[str, object]]:
        """One dict per nucleus with the :data:`NUCLEUS_COLUMNS` keys."""
        return [row.to_json() for row in self.rows]

    def to_csv(self) -> str:
        """The per-object CSV (:meth:`ObjectTable.to_csv` of :attr:`objects`), ``<stem>_objects.csv``."""
        return self.objects.to_csv()

    def to_json(self) -> dict[str, object]:
        """``{"count", "clumps_split", "from_split_clumps", "nuclei": [row, …]}``."""
        return {"count": len(self.rows), "clumps_split": self.clumps_split,
                "from_split_clumps": self.from_split_clumps, "nuclei": self.to_csv_rows()}


def _rows_of(shapes: ObjectShapes, split: set[int]) -> tuple[NucleusRow, ...]:
    values = shapes.values
    return tuple(
        NucleusRow(id=int(label), area_px2=int(round(values["area_px2"][i])),
                   centroid_row=round(float(values["centroid_row_px"][i]), 2),
                   centroid_col=round(float(values["centroid_col_px"][i]), 2),
                   perimeter_px=round(float(values["perimeter_px"][i]), 2),
                   eccentricity=round(float(values["eccentricity"][i]), 4),
                   solidity=round(float(values["solidity"][i]), 4), from_split_clump=int(label) in split)
        for i, label in enumerate(shapes.ids)
    )


def nucleus_rows(labels: np.ndarray) -> tuple[NucleusRow, ...]:
    """One :class:`NucleusRow` per instance of ``labels`` (``np.ndarray[H, W]`` int, 0 = background), by id.

    Values are rounded for display and export: centroids and perimeters to
    0.01 px, eccentricity and solidity to 4 decimals.
    """
    labels = np.asarray(labels)
    return _rows_of(measure_shapes(labels), split_clump_labels(labels))


def nucleus_object_table(shapes: ObjectShapes, from_split_clump: np.ndarray, *,
                         spacing: MicronSpacing = NO_SPACING) -> ObjectTable:
    """The per-object table of nuclei: the shared shape columns (px, µm when known) and ``from_split_clump``."""
    return object_table(shapes, classes=[NUCLEUS_CLASS[0]] * len(shapes), spacing=spacing,
                        extra={"from_split_clump": [bool(v) for v in from_split_clump]})


def nucleus_table(labels: np.ndarray, *, spacing: MicronSpacing = NO_SPACING) -> NucleusTable:
    """The :class:`NucleusTable` of an instance label image (``np.ndarray[H, W]`` int, 0 = background).

    Args:
        labels: the instance labels.
        spacing: the pixel size (µm columns when known).
    """
    labels = np.asarray(labels)
    shapes = measure_shapes(labels)
    split = split_clump_labels(labels)
    flags = np.array([int(label) in split for label in shapes.ids], bool)
    return NucleusTable(rows=_rows_of(shapes, split), clumps_split=split_clump_count(labels),
                        objects=nucleus_object_table(shapes, flags, spacing=spacing))


def nuclei_exports(outlines: list[Any] | tuple[Any, ...], table: ObjectTable) -> ObjectExports:
    """The per-nucleus CSV and QuPath GeoJSON (detections classified "Nucleus").

    Args:
        outlines: one shapely outline per row of ``table`` (:func:`nucleus_outlines`, or a slide's).
        table: :attr:`NucleusTable.objects`.
    """
    return object_exports(outlines, table, colours=dict((NUCLEUS_CLASS,)), kind="nucleus")


def nucleus_outlines(labels: np.ndarray, table: NucleusTable) -> list[Any]:
    """One shapely outline per nucleus of ``table``, from its label image."""
    return label_polygons(labels, [row.id for row in table.rows])


@dataclass(frozen=True)
class NucleiReadout:
    """The numbers of one segmentation, as the page's metrics and the CLI's row give them.

    Attributes:
        count: nuclei found.
        clumps_split: foreground regions cut into two or more nuclei.
        from_split_clumps: nuclei that came from those regions.
        cuts: dividing curves drawn.
        clump_candidates: regions examined as clump candidates.
        mean_area_px2: mean single-nucleus area the method used (px², 0.1 px² precision).
        seconds: the method's wall time.
        pixel_spacing_um: the pixel size, µm (``None``: unknown, sizes in px only).
        spacing_source: ``"file"``, ``"user"`` or ``"none"``.
        mean_area_um2: ``mean_area_px2`` in µm² (``None`` without a pixel size).
    """

    count: int
    clumps_split: int
    from_split_clumps: int
    cuts: int
    clump_candidates: int
    mean_area_px2: float
    seconds: float
    pixel_spacing_um: float | None = None
    spacing_source: str = "none"
    mean_area_um2: float | None = None

    def to_json(self) -> dict[str, object]:
        """The readout as a JSON-able dict (keys are the field names)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def nuclei_readout(result: NucleiResult, table: NucleusTable | None = None) -> NucleiReadout:
    """The readout of a segmentation (thesis method or watershed baseline).

    Args:
        result: from :func:`medlim.microscopy.nuclei.pipeline.segment_nuclei` or the watershed.
        table: its :func:`nucleus_table`, when already computed (else computed here).
    """
    table = nucleus_table(result.labels) if table is None else table
    spacing = table.spacing
    mean_area = round(float(result.mean_area), 1)
    return NucleiReadout(count=len(table), clumps_split=table.clumps_split, from_split_clumps=table.from_split_clumps,
                         cuts=len(result.cuts), clump_candidates=int(result.n_clumps),
                         mean_area_px2=mean_area, seconds=round(float(result.seconds), 3),
                         pixel_spacing_um=spacing.um, spacing_source=spacing.source,
                         mean_area_um2=None if spacing.um is None else round(mean_area * spacing.um**2, 4))
