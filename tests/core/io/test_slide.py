"""Whole-slide reading and the pixel size TIFF files state (medlim.core.io.slide)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from medlim.core.io.slide import file_spacing_um, is_slide, open_slide
from medlim.errors import DecodeBudgetError, ParameterError, UnsupportedFormatError
from medlim.settings import Settings

IMAGE = np.full((64, 80, 3), 200, np.uint8)


def test_resolution_tags_in_centimetres_and_inches(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "cm.tif", IMAGE, photometric="rgb", resolution=(40000, 40000),
                     resolutionunit="CENTIMETER")
    assert file_spacing_um(tmp_path / "cm.tif") == (0.25, "TIFF XResolution/YResolution (cm)")  # 1e4 µm / 40000
    tifffile.imwrite(tmp_path / "inch.tif", IMAGE, photometric="rgb", resolution=(50800, 50800), resolutionunit="INCH")
    assert file_spacing_um(tmp_path / "inch.tif")[0] == pytest.approx(0.5)  # 25400 µm / 50800
    tifffile.imwrite(tmp_path / "xy.tif", IMAGE, photometric="rgb", resolution=(40000, 20000),
                     resolutionunit="CENTIMETER")
    value, detail = file_spacing_um(tmp_path / "xy.tif")
    assert value == pytest.approx(0.375) and "averaged" in detail
    assert file_spacing_um((tmp_path / "cm.tif").read_bytes())[0] == pytest.approx(0.25)


def test_print_resolutions_and_other_formats_state_no_microscope_pixel(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "dpi.tif", IMAGE, photometric="rgb", resolution=(72, 72), resolutionunit="INCH")
    assert file_spacing_um(tmp_path / "dpi.tif") is None  # 352.8 µm: a print setting
    tifffile.imwrite(tmp_path / "none.tif", IMAGE, photometric="rgb", resolution=(4, 4), resolutionunit="NONE")
    assert file_spacing_um(tmp_path / "none.tif") is None
    tifffile.imwrite(tmp_path / "plain.tif", IMAGE, photometric="rgb")
    assert file_spacing_um(tmp_path / "plain.tif") is None
    assert file_spacing_um(b"\x89PNG\r\n\x1a\n") is None


def test_ome_and_imagej_sizes(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "a.ome.tif", IMAGE, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 325.0, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 0.325, "PhysicalSizeYUnit": "µm"})
    assert file_spacing_um(tmp_path / "a.ome.tif") == (pytest.approx(0.325), "OME-TIFF PhysicalSizeX/Y")
    tifffile.imwrite(tmp_path / "ij.tif", IMAGE[..., 0], imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "micron"})
    assert file_spacing_um(tmp_path / "ij.tif") == (0.5, "ImageJ TIFF resolution (µm)")


def test_slides_open_lazily_and_regions_fit_the_budget(tmp_path) -> None:
    path = tmp_path / "tiled.tif"
    image = np.arange(600 * 640 * 3, dtype=np.uint32).reshape(600, 640, 3).astype(np.uint8)
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(image, tile=(64, 64), photometric="rgb", compression="deflate", subifds=1)
        tiff.write(image[::2, ::2], tile=(64, 64), photometric="rgb", compression="deflate", subfiletype=1)
    assert is_slide(path) and not is_slide(tmp_path / "nope.tif")
    tifffile.imwrite(tmp_path / "strips.tif", image, photometric="rgb")
    assert not is_slide(tmp_path / "strips.tif")
    tight = Settings.from_env({"MEDLIM_DECODE_BUDGET_MB": "1"})
    with open_slide(path, settings=tight) as slide:
        assert (slide.height, slide.width, slide.level_shapes) == (600, 640, ((600, 640), (300, 320)))
        assert np.array_equal(slide.read_region(10, 20, 30, 40), image[10:40, 20:60])
        assert np.array_equal(slide.read_region(0, 0, 64, 80, level=1), image[::2, ::2][:64, :80])
        # A budget of 1 MiB, below the whole slide (600 × 640 × 3 B = 1.1 MiB): tile-sized regions are read,
        # the whole level 0 (4 B + 4 B per pixel while decoding and converting = 2.9 MiB) is refused.
        for top in range(0, 600, 256):
            assert slide.read_region(top, 0, min(256, 600 - top), 256).shape == (min(256, 600 - top), 256, 3)
        with pytest.raises(DecodeBudgetError):
            slide.read_region(0, 0, 600, 640)
        with pytest.raises(ParameterError, match="outside"):
            slide.read_region(700, 0, 10, 10)
        assert slide.overview_level(max_side=400) == 1
    (tmp_path / "junk.svs").write_bytes(b"not a slide")
    with pytest.raises(UnsupportedFormatError):
        open_slide(tmp_path / "junk.svs")


def test_a_tiled_tiff_too_big_to_decode_whole_says_where_slides_are_read(tmp_path, monkeypatch) -> None:
    """Issue 16: `read_image` refuses a tiled TIFF over the decode budget and names the commands and pages that
    read whole slides tile by tile; a strip TIFF over the budget gets the plain refusal."""
    from medlim.core.io import read_image

    image = np.full((600, 640, 3), 200, np.uint8)
    tifffile.imwrite(tmp_path / "tiled.tif", image, photometric="rgb", tile=(256, 256), compression="deflate")
    tifffile.imwrite(tmp_path / "strips.tif", image, photometric="rgb", compression="deflate")
    monkeypatch.setenv("MEDLIM_DECODE_BUDGET_MB", "1")
    with pytest.raises(DecodeBudgetError) as refused:
        read_image(tmp_path / "tiled.tif")
    assert "tile by tile by `medlim steatosis segment` and `medlim nuclei segment`" in str(refused.value)
    assert "microscopy pages" in str(refused.value)
    with pytest.raises(DecodeBudgetError) as plain:
        read_image(tmp_path / "strips.tif")
    assert "tile by tile" not in str(plain.value)
    monkeypatch.setenv("MEDLIM_DECODE_BUDGET_MB", "1024")
    monkeypatch.setenv("MEDLIM_MAX_PIXELS", "100000")
    with pytest.raises(Exception, match="MEDLIM_MAX_PIXELS.*tile by tile") as too_many:
        read_image(tmp_path / "tiled.tif")
    assert type(too_many.value).__name__ == "ImageTooLargeError"


def test_a_small_tiled_tiff_is_read_whole_and_a_large_one_as_a_slide(tmp_path, monkeypatch) -> None:
    import medlim.core.io.slide as slide_module
    from medlim.core.io.slide import read_whole

    image = np.zeros((300, 200, 3), np.uint8)
    tifffile.imwrite(tmp_path / "tiled.tif", image, tile=(64, 64), photometric="rgb")
    assert is_slide(tmp_path / "tiled.tif") and read_whole(tmp_path / "tiled.tif")
    monkeypatch.setattr(slide_module, "WHOLE_READ_PIXELS", 300 * 200 - 1)
    assert not read_whole(tmp_path / "tiled.tif")
    assert not read_whole(tmp_path / "missing.tif") and not read_whole(tmp_path / "x.svs")


def test_nuclei_in_a_small_tiled_tiff_read_as_the_same_pixels_in_a_png(tmp_path, capsys) -> None:
    import json

    import cv2

    from medlim.cli import main
    from medlim.phantoms.fluorescence import generate_fluorescence

    rgb = np.ascontiguousarray(generate_fluorescence(seed=4, index=0, size=(256, 256)).image)
    assert cv2.imwrite(str(tmp_path / "cells.png"), rgb[..., ::-1])
    tifffile.imwrite(tmp_path / "cells.tif", rgb, tile=(128, 128), photometric="rgb")
    assert main(["nuclei", "segment", str(tmp_path / "cells.png"), str(tmp_path / "cells.tif"), "--out",
                 str(tmp_path / "out"), "--jsonl"]) == 0
    png, tif = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert png["count"] == tif["count"] > 0 and png["mean_area_px2"] == tif["mean_area_px2"]
    assert tif["labels"] and "clumps_split" in tif
