"""Columns of a dataset's ``manifest.csv`` that the dataset layer does not model.

:func:`medlim.core.datasets.open_dataset` lists a manifest's images with their
class, labels, site, patient and shift type. Some rooms read one more column of
the same rows: MedShift the ``shift_severity`` that ``medlim phantom
radiograph`` writes (the ground truth of its evidence), retrieval the
``anomaly_score`` shown beside each neighbour. :func:`read_manifest_columns`
reads those cells by the row numbers :attr:`medlim.core.datasets.DatasetItem.row`
carries, parsing the file exactly as the dataset layer does (UTF-8 with an
optional byte-order mark, ``;`` between cells when the header has no comma,
names lower-cased and stripped, blank rows skipped, the header is row 1).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medlim.core.io.files import is_regular_file

__all__ = ["ManifestColumns", "read_manifest_columns"]

#: Largest manifest read (the dataset layer's limit).
_MAX_MANIFEST_BYTES = 256 << 20


@dataclass(frozen=True)
class ManifestColumns:
    """Chosen cells of a manifest, by row.

    Attributes:
        header: every column name of the manifest (lower-cased, stripped).
        cells: row number (header = 1) → column → the stripped cell, for the chosen columns present.
    """

    header: frozenset[str] = frozenset()
    cells: Mapping[int, Mapping[str, str]] = field(default_factory=dict)

    def value(self, row: int | None, column: str) -> str:
        """The cell of ``column`` on ``row`` (``""`` when the row or the column is absent)."""
        return "" if row is None else self.cells.get(row, {}).get(column, "")


def read_manifest_columns(manifest: str | os.PathLike, columns: Iterable[str]) -> ManifestColumns:
    """The cells of ``columns`` on every row of ``manifest`` (empty when it cannot be read).

    A manifest that cannot be read gives an empty result: the dataset layer,
    which reads the same file, reports why.

    Args:
        manifest: the ``manifest.csv`` file.
        columns: column names (lower case).

    Returns:
        A :class:`ManifestColumns`.
    """
    path = Path(manifest)
    wanted = [name.strip().lower() for name in columns]
    try:
        if not is_regular_file(path) or path.stat().st_size > _MAX_MANIFEST_BYTES:
            return ManifestColumns()
        text = path.read_bytes().decode("utf-8-sig")
        header_line = text.split("\n", 1)[0]
        delimiter = ";" if "," not in header_line and ";" in header_line else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [name.strip().lower() for name in next(reader, [])]
        cells = {
            number: {name: cell.strip() for name, cell in zip(header, row) if name in wanted}
            for number, row in enumerate(reader, start=2)
            if any(cell.strip() for cell in row)
        }
    except (OSError, UnicodeDecodeError, csv.Error):
        return ManifestColumns()
    return ManifestColumns(header=frozenset(name for name in header if name), cells=cells)
