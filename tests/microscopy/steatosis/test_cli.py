"""``medlim steatosis segment|evaluate`` with a small registry of untrained-but-valid weights."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from medlim.cli import main
from medlim.phantoms.base import save_png
from medlim.phantoms.he import generate_he


@pytest.fixture
def registry_dir(tmp_path):
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    torch.manual_seed(0)
    model = build_steatosis_maskrcnn()
    folder = tmp_path / "weights"
    fields = {
        "name": "maskrcnn-steatosis", "version": "0", "task": "steatosis-instance-segmentation",
        "architecture": "maskrcnn-steatosis", "architecture_kwargs": {"backbone": "resnet10", "detections_per_image": 40},
        "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0]},
        "output_type": "probability", "thresholds": {"mask": 0.5, "score": 0.5},
        "params": {"tile": 128, "overlap": 32},
    }
    save_weights(Registry.load(folder), fields, model.state_dict())
    return folder


def test_segment_writes_kept_labels_and_jsonl(tmp_path, registry_dir, capsys):
    save_png(tmp_path / "liver.png", generate_he(4, size=(150, 200)).image)
    out = tmp_path / "out"
    code = main(["steatosis", "segment", str(tmp_path / "liver.png"), "--out", str(out), "--weights-dir",
                 str(registry_dir), "--min-score", "0.0", "--area", "0", "100", "--jsonl"])
    assert code == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(row) == {"file", "detected", "kept", "steatosis_fraction", "nash_crn_band", "donor_band", "preset",
                        "seconds", "labels", "warnings", "unlike_training", "pixel_spacing_um", "spacing_source",
                        "model_spacing_um"}
    assert (row["pixel_spacing_um"], row["spacing_source"], row["model_spacing_um"]) == (None, "none", None)
    assert 0 <= row["kept"] <= row["detected"] and 0.0 <= row["steatosis_fraction"] <= 1.0
    labels = cv2.imread(str(out / "liver_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint16 and labels.shape == (150, 200)
    assert len(np.unique(labels[labels > 0])) == row["kept"]


def test_loading_lowers_the_networks_score_threshold_to_the_cutoffs_floor(registry_dir):
    from medlim.core.weights import Registry
    from medlim.microscopy.steatosis.analysis import DETECTION_MIN_SCORE, load_steatosis_model

    model = load_steatosis_model("maskrcnn-steatosis", registry=Registry.load(registry_dir), device="cpu")
    assert model.model.roi_heads.score_thresh == DETECTION_MIN_SCORE == 0.02


def test_segment_takes_the_crowded_fat_floor(tmp_path, registry_dir, capsys):
    save_png(tmp_path / "liver.png", generate_he(4, size=(96, 96)).image)
    rows = []
    for extra in ([], ["--crowded-min-score", "0.05"], ["--crowded-min-score", "0.2"]):
        code = main(["steatosis", "segment", str(tmp_path / "liver.png"), "--out", str(tmp_path / "out"),
                     "--weights-dir", str(registry_dir), "--jsonl", *extra])
        assert code == 0
        rows.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    # the preset's floor (0.02) is the default; another makes the cutoffs custom; one ≥ the minimum score (0.2)
    # is no floor at all, which is not the default preset either
    assert [row["preset"] for row in rows] == ["default", "custom", "custom"]
    assert main(["steatosis", "segment", str(tmp_path / "liver.png"), "--out", str(tmp_path / "out"),
                 "--weights-dir", str(registry_dir), "--crowded-min-score", "2"]) == 2
    assert "crowded_min_score" in capsys.readouterr().err


def test_segment_rejects_bad_cutoffs_and_missing_files(tmp_path, registry_dir, capsys):
    assert main(["steatosis", "segment", str(tmp_path / "nope.png"), "--out", str(tmp_path),
                 "--weights-dir", str(registry_dir)]) == 2
    save_png(tmp_path / "a.png", generate_he(4, size=(96, 96)).image)
    assert main(["steatosis", "segment", str(tmp_path / "a.png"), "--out", str(tmp_path), "--weights-dir",
                 str(registry_dir), "--area", "3", "1"]) == 2
    assert "area" in capsys.readouterr().err


def test_evaluate_weak_only_jsonl(capsys):
    assert main(["steatosis", "evaluate", "--n", "1", "--size", "160", "--weights", "none", "--jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["method"] for line in lines[:2]] == ["weak", "weak_screened"]
    assert {"ap", "recall", "f1", "jaccard"} <= set(lines[0])
    assert set(lines[-1]["summary"]) >= {"weak", "weak_screened", "protocol"}


def test_segment_finds_your_model_by_name_at_version_and_uses_the_default(tmp_path, registry_dir, capsys):
    """``--weights NAME@VERSION`` finds models of the user registry; without it the task default is used."""
    import torch

    from medlim.cli import build_parser
    from medlim.cli.steatosis import _load_model
    from medlim.core.weights import Registries
    from medlim.microscopy.steatosis import analysis
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    user = tmp_path / "models"
    fields = {
        "name": "maskrcnn-steatosis", "task": "steatosis-instance-segmentation", "architecture": "maskrcnn-steatosis",
        "architecture_kwargs": {"backbone": "resnet10", "detections_per_image": 40}, "preset": "rgb-unit",
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0]},
        "output_type": "probability", "thresholds": {"mask": 0.5, "score": 0.5}, "params": {"tile": 128, "overlap": 32},
    }
    torch.manual_seed(1)
    registries = Registries.load(weights_dir=registry_dir, models_dir=user)
    assert registries.register(fields, build_steatosis_maskrcnn().state_dict()).label == "maskrcnn-steatosis@1"
    save_png(tmp_path / "liver.png", generate_he(4, size=(96, 96)).image)
    base = ["steatosis", "segment", str(tmp_path / "liver.png"), "--out", str(tmp_path / "out"), "--weights-dir",
            str(registry_dir), "--models-dir", str(user), "--min-score", "0.0", "--jsonl"]
    assert main([*base, "--weights", "maskrcnn-steatosis@1"]) == 0  # your model, end to end
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["kept"] >= 0

    def chosen(*extra: str) -> str:
        asked = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(analysis, "load_steatosis_model", lambda weights, **_: asked.append(weights))
            _load_model(build_parser().parse_args([*base, *extra]))
        return asked[0]

    assert chosen("--weights", "maskrcnn-steatosis:0") == "maskrcnn-steatosis:0"
    assert chosen() == "maskrcnn-steatosis:1"  # no default marked: the highest version
    registries.set_default("maskrcnn-steatosis@0")
    assert chosen() == "maskrcnn-steatosis:0"  # your default


def test_segment_exports_microns_and_absolute_area_cutoffs(tmp_path, registry_dir, capsys):
    """``--csv --geojson`` write the page's per-droplet exports; ``--area-um2`` keeps droplets by absolute area
    and needs a pixel size (issue 16)."""
    from medlim.microscopy.objects import NO_SPACING

    save_png(tmp_path / "liver.png", generate_he(4, size=(150, 200)).image)
    out = tmp_path / "out"
    base = ["steatosis", "segment", str(tmp_path / "liver.png"), "--out", str(out), "--weights-dir", str(registry_dir),
            "--min-score", "0.0", "--jsonl"]
    assert main([*base, "--csv", "--geojson", "--pixel-spacing-um", "0.5"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (row["pixel_spacing_um"], row["spacing_source"]) == (0.5, "user")
    assert row["csv"] == str(out / "liver_objects.csv") and row["geojson"] == str(out / "liver.geojson")
    document = json.loads((out / "liver.geojson").read_text(encoding="utf-8"))
    lines = (out / "liver_objects.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(document["features"]) == row["detected"] == len(lines) - 1
    assert "area_um2" in lines[0].split(",")
    # Absolute cutoffs: no droplet of this 150 × 200 px field exceeds 7,500 µm² (30,000 px² at 0.5 µm).
    assert main([*base, "--pixel-spacing-um", "0.5", "--area-um2", "0", "7500"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept"] == row["detected"]
    assert main([*base, "--pixel-spacing-um", "0.5", "--area-um2", "8000", "inf"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept"] == 0
    assert main([*base, "--area-um2", "0", "100"]) == 1  # no pixel size: the file's row says why, nothing analysed
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["error"] == "ParameterError" and "pixel size" in row["message"]
    assert NO_SPACING.warning is not None


def test_segment_reads_a_tiled_tiff_as_a_whole_slide(tmp_path, registry_dir, capsys):
    import shapely
    import tifffile

    image = generate_he(4, size=(300, 360)).image
    with tifffile.TiffWriter(tmp_path / "slide.tif") as tiff:
        tiff.write(image, tile=(128, 128), photometric="rgb", compression="deflate", resolution=(40000, 40000),
                   resolutionunit="CENTIMETER")
    out = tmp_path / "out"
    assert main(["steatosis", "segment", str(tmp_path / "slide.tif"), "--out", str(out), "--weights-dir",
                 str(registry_dir), "--min-score", "0.0", "--geojson", "--region", "0,0,300,200", "--tile", "256",
                 "--jsonl"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.strip().splitlines()[-1])
    assert (row["pixel_spacing_um"], row["spacing_source"]) == (0.25, "file") and row["labels"] == ""
    assert "tile" in captured.err and (out / "slide.geojson").is_file() and not (out / "slide_labels.png").exists()
    features = json.loads((out / "slide.geojson").read_text(encoding="utf-8"))["features"]
    assert len(features) == row["detected"]
    for feature in features:  # inside the region x < 300, y < 200
        _, _, right, bottom = shapely.geometry.shape(feature["geometry"]).bounds
        assert right <= 300 and bottom <= 200
