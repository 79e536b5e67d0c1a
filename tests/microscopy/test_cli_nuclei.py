from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from medlim.cli import main
from medlim.core.io.pseudonym import file_label
from medlim.microscopy.objects import NO_SPACING
from medlim.phantoms.base import save_png
from medlim.phantoms.fluorescence import generate_fluorescence


def test_segment_writes_uint16_labels_and_jsonl(tmp_path, capsys):
    phantom = generate_fluorescence(21, size=(200, 260))
    save_png(tmp_path / "cells.png", phantom.image)
    for method in ("thesis", "watershed", "watershed-basic"):
        out = tmp_path / method
        assert main(["nuclei", "segment", str(tmp_path / "cells.png"), "--out", str(out), "--method", method, "--jsonl"]) == 0
        row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert set(row) == {"file", "count", "clumps_split", "from_split_clumps", "cuts", "clump_candidates",
                            "mean_area_px2", "seconds", "labels", "warnings", "pixel_spacing_um", "spacing_source",
                            "mean_area_um2"} and row["count"] > 0
        # A PNG states no pixel size: pixel units only, and a plain warning that says so.
        assert (row["pixel_spacing_um"], row["spacing_source"], row["mean_area_um2"]) == (None, "none", None)
        assert row["labels"] == str(out / "cells_labels.png") and row["warnings"] == [NO_SPACING.warning]
        labels = cv2.imread(str(out / "cells_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == (200, 260)
        assert len(np.unique(labels[labels > 0])) == row["count"]


def test_segment_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["nuclei", "segment", str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert "nope.png" in capsys.readouterr().err


def test_evaluate_jsonl(capsys):
    assert main(["nuclei", "evaluate", "--n", "1", "--size", "200", "260", "--jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line.get("method") for line in lines[:3]] == ["thesis", "watershed", "watershed-basic"]
    assert {"jaccard", "precision", "recall", "f1", "hausdorff", "object_f1"} <= set(lines[0])
    assert set(lines[-1]["summary"]) == {"thesis", "watershed", "watershed-basic"}


def _rows(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_segment_answers_every_file_and_goes_on_after_bad_ones(tmp_path, capsys):
    save_png(tmp_path / "a.png", generate_fluorescence(21, size=(120, 160)).image)
    (tmp_path / "b_broken.png").write_bytes(b"not an image")
    (tmp_path / "c_empty.png").write_bytes(b"")
    save_png(tmp_path / "d.png", generate_fluorescence(22, size=(120, 160)).image)
    out = tmp_path / "out"
    assert main(["nuclei", "segment", str(tmp_path), "--out", str(out), "--jsonl"]) == 0
    rows = _rows(capsys)
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b_broken.png", "c_empty.png", "d.png"]
    assert rows[0]["count"] > 0 and rows[3]["count"] > 0  # the file after the bad ones is still analysed
    assert {k: rows[1][k] for k in ("file", "error")} == {"file": str(tmp_path / "b_broken.png"),
                                                          "error": "UnsupportedFormatError"}
    assert rows[2]["error"] == "EmptyFileError" and "empty" in rows[2]["message"]
    assert set(rows[1]) == {"file", "error", "message"}
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.png", "d_labels.png"]


def test_segment_keeps_outputs_of_same_named_files_apart(tmp_path, capsys):
    for study, seed in (("study1", 21), ("study2", 22)):
        save_png(tmp_path / study / "IMG0001.png", generate_fluorescence(seed, size=(120, 160)).image)
    out = tmp_path / "out"
    args = ["nuclei", "segment", str(tmp_path / "study1"), str(tmp_path / "study2"), "--out", str(out), "--jsonl"]
    assert main(args) == 0
    rows = _rows(capsys)
    assert [r["file"] for r in rows] == [str(tmp_path / "study1" / "IMG0001.png"), str(tmp_path / "study2" / "IMG0001.png")]
    assert [r["labels"] for r in rows] == [str(out / "study1__IMG0001_labels.png"), str(out / "study2__IMG0001_labels.png")]
    first, second = (cv2.imread(row["labels"], cv2.IMREAD_UNCHANGED) for row in rows)
    assert not np.array_equal(first, second)  # each file's labels, not the last one's twice
    for row, labels in zip(rows, (first, second)):
        assert len(np.unique(labels[labels > 0])) == row["count"]


def test_segment_table_and_progress_cannot_be_forged_by_a_file_name(tmp_path, capsys):
    name = "x.png: 999 nuclei\nfake.png"
    save_png(tmp_path / name, generate_fluorescence(21, size=(120, 160)).image)
    (tmp_path / "bad\nline.png").write_bytes(b"not an image")
    assert main(["nuclei", "segment", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(str(tmp_path / "bad\\nline.png") + ": not analysed: ")
    assert lines[1].startswith(str(tmp_path / "x.png: 999 nuclei\\nfake.png") + ": ") and "nuclei in" in lines[1]
    progress = captured.err.splitlines()
    assert len(progress) == 2 and progress[1].startswith("[2/2] ") and "\\nfake.png" in progress[1]
    # nothing analysed: the exit status says so (one file failing among others does not)
    assert main(["nuclei", "segment", str(tmp_path / "bad\nline.png"), "--out", str(tmp_path / "out")]) == 1


def test_segment_pseudonymise_names_uses_labels_for_rows_and_outputs(tmp_path, capsys):
    good, bad = tmp_path / "Smith_John_1970.png", tmp_path / "Doe_Jane_1980.png"
    save_png(good, generate_fluorescence(21, size=(120, 160)).image)
    bad.write_bytes(b"")
    out = tmp_path / "out"
    args = ["nuclei", "segment", str(good), str(bad), "--out", str(out), "--jsonl", "--pseudonymise-names"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "Smith" not in captured.out + captured.err and "Doe" not in captured.out + captured.err
    rows = [json.loads(line) for line in captured.out.splitlines()]
    labels = [file_label(str(good)), file_label(str(bad))]
    assert [r["file"] for r in rows] == labels
    assert rows[0]["labels"] == str(out / (labels[0].removesuffix(".png") + "_labels.png"))
    assert rows[1]["error"] == "EmptyFileError" and labels[1] in rows[1]["message"]
    assert [p.name for p in out.iterdir()] == [Path(rows[0]["labels"]).name]


def test_segment_rows_carry_the_readers_warnings(tmp_path, capsys, monkeypatch):
    import dataclasses

    import medlim.core.io as io
    from medlim.core.io.record import ImageRecord

    warning = "3 pixels were not numbers (NaN)\nand were shown as black."
    original = io.read_image

    def warned(source, **kwargs):
        record = original(source, **kwargs)
        metadata = dataclasses.replace(record.metadata, warnings=(warning,))
        return ImageRecord(record.pixels, record.raw, metadata, record.name)

    monkeypatch.setattr(io, "read_image", warned)
    save_png(tmp_path / "cells.png", generate_fluorescence(21, size=(120, 160)).image)
    args = ["nuclei", "segment", str(tmp_path / "cells.png"), "--out", str(tmp_path / "out"), "--pixel-spacing-um", "0.5"]
    assert main([*args, "--jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == [warning]
    assert main(args) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("[warning: 3 pixels were not numbers (NaN)\\nand were shown as black.]")


def test_segment_csv_and_geojson_are_the_pages_exports_in_microns(tmp_path, capsys):
    """``--csv --geojson`` write <stem>_objects.csv and <stem>.geojson: what the page downloads for the same
    image (one builder), with µm from a TIFF's resolution tags or from --pixel-spacing-um (which wins)."""
    import tifffile

    from medlim.microscopy.nuclei.measure import nuclei_exports, nucleus_outlines, nucleus_table
    from medlim.microscopy.nuclei.pipeline import segment_nuclei
    from medlim.microscopy.objects import MicronSpacing

    phantom = generate_fluorescence(21, size=(200, 260))
    # 2 pixels per µm in centimetres: 20,000 px/cm → 0.5 µm per pixel.
    tifffile.imwrite(tmp_path / "cells.tif", phantom.image, photometric="rgb", resolution=(20000, 20000),
                     resolutionunit="CENTIMETER")
    out = tmp_path / "out"
    assert main(["nuclei", "segment", str(tmp_path / "cells.tif"), "--out", str(out), "--csv", "--geojson",
                 "--jsonl"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["pixel_spacing_um"], row["spacing_source"], row["warnings"]) == (0.5, "file", [])
    assert row["mean_area_um2"] == round(row["mean_area_px2"] * 0.25, 4)
    assert row["csv"] == str(out / "cells_objects.csv") and row["geojson"] == str(out / "cells.geojson")
    from medlim.core.io import read_image

    labels = segment_nuclei(read_image(tmp_path / "cells.tif").pixels).labels
    table = nucleus_table(labels, spacing=MicronSpacing(0.5, "file", "TIFF XResolution/YResolution (cm)"))
    page = nuclei_exports(nucleus_outlines(labels, table), table.objects)
    assert (out / "cells_objects.csv").read_text(encoding="utf-8") == page.csv
    assert (out / "cells.geojson").read_text(encoding="utf-8") == page.geojson
    document = json.loads(page.geojson)
    assert len(document["features"]) == row["count"]
    assert document["features"][0]["properties"]["classification"]["name"] == "Nucleus"
    assert "Area µm^2" in document["features"][0]["properties"]["measurements"]
    assert main(["nuclei", "segment", str(tmp_path / "cells.tif"), "--out", str(out), "--pixel-spacing-um", "0.25",
                 "--csv", "--jsonl"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["pixel_spacing_um"], row["spacing_source"]) == (0.25, "user") and "0.5 µm" in row["warnings"][0]


def test_dapi_in_another_channel_is_said_on_the_command_line_as_on_the_page(tmp_path, capsys) -> None:
    from medlim.phantoms.fluorescence import generate_fluorescence

    rgb = generate_fluorescence(seed=5, index=0, size=(128, 128)).image
    red = np.zeros_like(rgb)
    red[..., 0] = rgb[..., 2]  # the DAPI signal saved in the red channel
    assert cv2.imwrite(str(tmp_path / "red.png"), np.ascontiguousarray(red[..., ::-1]))
    assert main(["nuclei", "segment", str(tmp_path / "red.png"), "--out", str(tmp_path / "out"), "--jsonl"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["count"] == 0 and any("blue channel is nearly empty while the red one" in w for w in row["warnings"])


def test_frame_picks_the_dapi_channel_of_a_stack(tmp_path, capsys):
    """An ImageJ / OME export holds one channel per page; the reader's advice ('choose one with frame=…') is
    now an option of the command (session-21 probe: the stack could not be analysed at all)."""
    import tifffile

    dapi = generate_fluorescence(21, size=(120, 160)).image
    grey = dapi.max(axis=2) if dapi.ndim == 3 else dapi
    stack = tmp_path / "stack.tif"
    for page in (np.zeros_like(grey), np.full_like(grey, 7), grey):  # two other channels, then DAPI
        tifffile.imwrite(stack, page, append=True)
    save_png(tmp_path / "alone.png", grey)
    out = tmp_path / "out"
    assert main(["nuclei", "segment", str(stack), "--out", str(out), "--jsonl"]) == 1  # nothing analysed
    assert "holds 3 images" in json.loads(capsys.readouterr().out)["message"]
    assert main(["nuclei", "segment", str(stack), "--frame", "2", "--out", str(out), "--jsonl"]) == 0
    from_stack = json.loads(capsys.readouterr().out)
    assert main(["nuclei", "segment", str(tmp_path / "alone.png"), "--out", str(out), "--jsonl"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert from_stack["count"] == alone["count"] > 0
