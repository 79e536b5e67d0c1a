"""Options ``medlim nuclei segment`` and ``medlim steatosis segment`` share (issue 16, "Pathology").

``--pixel-spacing-um`` (the pixel size when the file states none, or to
correct it), ``--csv`` / ``--geojson`` (``<stem>_objects.csv`` and
``<stem>.geojson``, the page's downloads), ``--region x,y,w,h`` and
``--tile N`` for whole slides, and the per-tile progress line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from medlim.microscopy.qupath import ObjectExports
    from medlim.microscopy.slides import Region

__all__ = ["add_microscopy_options", "region_option", "exports_writer", "tile_progress"]


def add_microscopy_options(parser: argparse.ArgumentParser, *, objects: str) -> None:
    """Add the shared microscopy options to a ``segment`` parser (``objects``: "nuclei", "droplets")."""
    parser.add_argument("--pixel-spacing-um", type=float, default=None, metavar="UM",
                        help="pixel size in µm, used instead of the file's (TIFF / OME-TIFF metadata); without "
                             "either, sizes are in pixels only")
    parser.add_argument("--frame", type=int, default=None, metavar="N",
                        help="which image of a multi-page file to analyse, from 0 (a channel of an ImageJ or "
                             "OME-TIFF stack, e.g. the DAPI one; a frame of a multi-frame DICOM); `medlim image "
                             "info FILE --frame N` shows each")
    parser.add_argument("--csv", action="store_true",
                        help=f"also write <stem>_objects.csv: the per-object table of the {objects} the page shows "
                             "(px, and µm / µm² when the pixel size is known)")
    parser.add_argument("--geojson", action="store_true",
                        help=f"also write <stem>.geojson: the {objects} as QuPath detections (outlines with holes, "
                             "classification, measurements)")
    parser.add_argument("--region", default=None, metavar="X,Y,W,H",
                        help="whole slides: analyse only this region (level-0 px); default the whole tissue")
    parser.add_argument("--tile", type=int, default=None, metavar="N",
                        help="whole slides: tile side in px (memory follows it); default 512 for steatosis (the shipped "
                             "Mask R-CNN peaks at ~1.2 GiB), 1024 for nuclei")


def region_option(text: str | None) -> Region | None:
    """``--region`` parsed (None when absent)."""
    from medlim.microscopy.slides import parse_region

    return None if text is None else parse_region(text)


def exports_writer(out: Path, stem: str, *, csv: bool, geojson: bool
                   ) -> Callable[[ObjectExports], Mapping[str, str]] | None:
    """What writes the chosen exports of one image into ``out`` (None when neither is asked for)."""
    if not (csv or geojson):
        return None
    return lambda exports: exports.write(out, stem, csv=csv, geojson=geojson)


def tile_progress(name: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` printing ``tile done/total: name`` on stderr about twenty times per slide.

    The line starts with the stage and its count, the ``stage done/total`` form a job reads as its progress
    (:func:`medlim.cli.job_kinds.run_command`), so digits in a file's name are never taken for the count.
    """

    from medlim.core.text import escape_control

    shown = escape_control(name)

    def report(done: int, total: int) -> None:
        step = max(1, total // 20)
        if total > 1 and (done % step == 0 or done == total):
            print(f"  tile {done}/{total}: {shown}", file=sys.stderr, flush=True)

    return report
