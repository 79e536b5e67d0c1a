"""Whole-slide runs as jobs: the argv a page queues and the files it reads back (issues 15 and 16, "Pathology").

A whole slide is analysed tile by tile for minutes, so a page does not run it
in its script: it queues ``medlim steatosis|nuclei segment SLIDE --out DIR
--csv --geojson --pseudonymise-names`` as a job (kinds ``steatosis.segment``
and ``nuclei.segment``, :mod:`medlim.cli.job_kinds`), with the slide and the
output folder inside the data roots (:mod:`medlim.core.job_folders`), and once
the job is done reads back what the command wrote: the row it printed (its
numbers), ``<stem>_objects.csv`` (the per-object table) and ``<stem>.geojson``
(QuPath). What the page shows is therefore exactly what the command emits.

No streamlit: the pages call these, and a command line could.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.microscopy.steatosis.droplets import Cutoffs

__all__ = [
    "SLIDE_JOB_KINDS",
    "SlideRun",
    "keep_slide_upload",
    "read_slide_run",
    "slide_job_argv",
    "steatosis_options",
    "table_from_csv",
]

#: Room → the job kind of its whole-slide command.
SLIDE_JOB_KINDS: dict[str, str] = {"steatosis": "steatosis.segment", "nuclei": "nuclei.segment"}
#: The commands' own whole-slide tile sides (``--tile``'s defaults: steatosis 512, nuclei 1024).
SLIDE_TILES: dict[str, int] = {"steatosis": 512, "nuclei": 1024}


def slide_job_argv(room: str, slide: str | Path, out: str | Path, *, region: str | None = None,
                   options: Sequence[str] = ()) -> list[str]:
    """``[room, "segment", slide, "--out", out, "--csv", "--geojson", "--pseudonymise-names", ...]``.

    Args:
        room: ``"steatosis"`` or ``"nuclei"``.
        slide: the slide file (inside the data roots for a page's job).
        out: the folder the command writes its files into.
        region: ``"x,y,w,h"`` in level-0 px, or None / blank for the whole tissue.
        options: the command's other options (cutoffs, method, pixel size), as text.

    Raises:
        ParameterError: an unknown room, or a region that is not ``x,y,w,h``.
    """
    if room not in SLIDE_JOB_KINDS:
        raise ParameterError(f"whole-slide jobs exist for {sorted(SLIDE_JOB_KINDS)}; {room!r} is given.")
    argv = [room, "segment", str(slide), "--out", str(out), "--csv", "--geojson", "--pseudonymise-names"]
    if region is not None and region.strip():
        from medlim.microscopy.slides import parse_region

        argv += ["--region", parse_region(region.strip()).as_text()]
    if "--tile" not in options:  # a tile side keeps a small tiled TIFF on the whole-slide path the page reads back
        argv += ["--tile", str(SLIDE_TILES[room])]
    return [*argv, *(str(option) for option in options)]


def steatosis_options(cutoffs: Cutoffs, *, weights: str | None = None,
                      pixel_spacing_um: float | None = None) -> list[str]:
    """``medlim steatosis segment`` options that give exactly ``cutoffs`` (the preset of their reference droplet,
    every bound and both score floors stated), the weights ``NAME@VERSION`` and the pixel size a page chose."""
    preset = "thesis" if cutoffs.reference == "all-detections" else "default"
    options = ["--preset", preset]
    for name in ("area", "perimeter", "eccentricity"):
        options += [f"--{name}", *(_bound(value) for value in getattr(cutoffs, name))]
    options += ["--min-score", _bound(cutoffs.min_score)]
    # the crowded-fat floor; without one, the minimum score itself (a floor at or above it is none)
    crowded = cutoffs.min_score if cutoffs.crowded_min_score is None else cutoffs.crowded_min_score
    options += ["--crowded-min-score", _bound(crowded)]
    if cutoffs.absolute:
        options += ["--area-um2", *(_bound(value) for value in cutoffs.area_um2)]
    if weights is not None:
        options += ["--weights", weights]
    if pixel_spacing_um is not None:
        options += ["--pixel-spacing-um", _bound(pixel_spacing_um)]
    return options


def _bound(value: float) -> str:
    return "inf" if math.isinf(value) else repr(float(value))


def keep_slide_upload(name: str, data: bytes) -> Path | None:
    """An uploaded whole slide written into ``.medlim-jobs/uploads/slide-<sha>`` inside the data roots (once per
    content), so a worker can read it after the tab closes; None when the bytes are not a slide (SVS, NDPI,
    tiled TIFF).

    Raises:
        ParameterError: no data root is configured.
    """
    from medlim.core.io.slide import SLIDE_SUFFIXES, is_slide
    from medlim.core.job_folders import job_folder, write_job_files

    suffix = Path(name).suffix.lower()
    if suffix not in SLIDE_SUFFIXES and (suffix not in (".tif", ".tiff") or data[:2] not in (b"II", b"MM")):
        return None
    folder = job_folder("uploads", f"slide-{hashlib.sha256(data).hexdigest()[:20]}")
    kept = sorted(folder.glob("00001-*"))
    path = kept[0] if kept else write_job_files(folder, [(name, data)])[0]
    if is_slide(path):
        return path
    path.unlink(missing_ok=True)
    return None


@dataclass(frozen=True)
class SlideRun:
    """What a finished whole-slide job wrote, read back.

    Attributes:
        row: the command's JSON row for the slide (counts, fractions, the files it wrote).
        table: the per-object table of ``<stem>_objects.csv`` (its columns and units).
        csv_name, csv_text: the CSV's file name and text, as written.
        geojson_name, geojson_text: the GeoJSON's file name and text, as written.
    """

    row: Mapping[str, Any]
    table: Any
    csv_name: str
    csv_text: str
    geojson_name: str
    geojson_text: str


def read_slide_run(row: Mapping[str, Any]) -> SlideRun:
    """Read the files a whole-slide job's row names (``csv``, ``geojson``), confined to the data roots.

    Raises:
        ParameterError: the row names no CSV or GeoJSON (the run failed: its ``message`` says why).
        PathNotAllowedError: a file outside the data roots.
        MedlimError: a file is gone (swept, removed).
    """
    from medlim.core.paths import confine_to_data_roots
    from medlim.errors import MedlimError

    if "error" in row or not isinstance(row.get("csv"), str) or not isinstance(row.get("geojson"), str):
        raise ParameterError(f"the slide was not analysed: {row.get('message') or 'its row names no exported files'}.")
    paths = [confine_to_data_roots(str(row[key]), what="file the job wrote") for key in ("csv", "geojson")]
    try:
        texts = [path.read_text(encoding="utf-8") for path in paths]
    except OSError as exc:
        raise MedlimError(f"the job's files are no longer there ({exc.strerror}): run the slide again.") from None
    table = table_from_csv(texts[0], spacing_um=row.get("pixel_spacing_um"),
                           spacing_source=str(row.get("spacing_source") or "none"))
    return SlideRun(row=dict(row), table=table, csv_name=paths[0].name, csv_text=texts[0],
                    geojson_name=paths[1].name, geojson_text=texts[1])


def _cell(text: str) -> object:
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text[1:] if text.startswith("'") else text  # the formula guard of medlim.core.text.csv_cell


def table_from_csv(text: str, *, spacing_um: float | None = None, spacing_source: str = "none") -> Any:
    """An ``<stem>_objects.csv`` as the :class:`medlim.microscopy.objects.ObjectTable` it was written from
    (numbers as numbers, ``True``/``False`` as booleans), with the pixel size the command's row states."""
    from medlim.microscopy.objects import NO_SPACING, MicronSpacing, ObjectTable

    reader = csv.DictReader(io.StringIO(text))
    columns = tuple(reader.fieldnames or ())
    rows = tuple({name: _cell(value) for name, value in row.items()} for row in reader)
    known = spacing_um is not None and spacing_source != "none"
    spacing = MicronSpacing(float(spacing_um), spacing_source) if known else NO_SPACING  # type: ignore[arg-type]
    return ObjectTable(columns=columns, rows=rows, spacing=spacing)
