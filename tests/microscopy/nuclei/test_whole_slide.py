"""Nuclei on a whole slide, tile by tile (medlim.microscopy.nuclei.whole_slide): nuclei on seams counted once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from medlim.cli import main
from medlim.core.io.slide import open_slide
from medlim.errors import ParameterError
from medlim.microscopy.nuclei.watershed import watershed_nuclei
from medlim.microscopy.nuclei.whole_slide import segment_nuclei_slide
from medlim.microscopy.objects import MicronSpacing

#: Seams of a 256 px / 64 px overlap grid: tile starts 192, core border 224, tile end 256.
SEAMS = (192, 224, 256)


def _fluorescence(shape: tuple[int, int]) -> np.ndarray:
    """Dark background, round bright nuclei (radius 12) in blue on every crossing of the seams."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = np.zeros((*shape, 3), np.uint8)
    image[..., 2] = 12
    for row in SEAMS:
        for col in SEAMS:
            image[..., 2][(yy - row - 0.5) ** 2 + (xx - col - 0.5) ** 2 <= 12**2] = 220
    return image


def test_nuclei_on_seams_are_kept_once_and_whole(tmp_path) -> None:
    image = _fluorescence((480, 500))
    path = tmp_path / "dapi.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(image, tile=(128, 128), photometric="rgb", compression="deflate", resolution=(20000, 20000),
                   resolutionunit="CENTIMETER")
    single = watershed_nuclei(image.astype(np.float32) / 255)
    areas = sorted(np.bincount(single.labels.ravel())[1:].tolist())
    with open_slide(path) as slide:
        found = segment_nuclei_slide(slide, method="watershed", tile=256, overlap=64,
                                     spacing=MicronSpacing(0.5, "file"))
        with pytest.raises(ParameterError, match="method"):
            segment_nuclei_slide(slide, method="other")
    assert found.count == len(areas) == 9
    assert sorted(found.objects.values("area_px2").tolist()) == areas
    assert found.objects.rows[0]["area_um2"] == found.objects.rows[0]["area_px2"] * 0.25
    document = json.loads(found.exports().geojson)
    assert len(document["features"]) == 9 and found.to_json()["spacing_source"] == "file"


def test_nuclei_cli_reads_a_tiled_tiff_tile_by_tile(tmp_path, capsys) -> None:
    image = _fluorescence((480, 500))
    with tifffile.TiffWriter(tmp_path / "dapi.tif") as tiff:
        tiff.write(image, tile=(128, 128), photometric="rgb", compression="deflate")
    out = tmp_path / "out"
    assert main(["nuclei", "segment", str(tmp_path / "dapi.tif"), "--out", str(out), "--method", "watershed",
                 "--tile", "256", "--csv", "--geojson", "--pixel-spacing-um", "0.25", "--jsonl"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.strip().splitlines()[-1])
    assert row["count"] == 9 and row["labels"] == "" and row["spacing_source"] == "user"
    assert "tile" in captured.err and (out / "dapi.geojson").is_file()
    assert len((out / "dapi_objects.csv").read_text(encoding="utf-8").strip().splitlines()) == 10
