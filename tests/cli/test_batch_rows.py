"""Batch commands answer every file (issue 14): ``steatosis segment`` end to end, and the flag shared by all four."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from medlim.cli import build_parser, main
from medlim.core.io.pseudonym import file_label
from medlim.phantoms.base import save_png
from medlim.phantoms.he import generate_he


@pytest.fixture(scope="module")
def steatosis_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with an untrained (but valid) small Mask R-CNN."""
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.microscopy.steatosis.network import build_steatosis_maskrcnn

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    fields = {
        "name": "maskrcnn-steatosis", "version": "0", "task": "steatosis-instance-segmentation",
        "architecture": "maskrcnn-steatosis", "preset": "rgb-unit",
        "architecture_kwargs": {"backbone": "resnet10", "detections_per_image": 20},
        "input_contract": {"channels": 3, "size": None, "dtype": "float32", "range": [0.0, 1.0]},
        "output_type": "probability", "thresholds": {"mask": 0.5, "score": 0.5}, "params": {"tile": 128, "overlap": 32},
    }
    save_weights(Registry.load(folder), fields, build_steatosis_maskrcnn(backbone="resnet10").state_dict())
    return folder


def _segment(inputs: list[Path], out: Path, weights: Path, *extra: str) -> int:
    return main(["steatosis", "segment", *map(str, inputs), "--out", str(out), "--weights-dir", str(weights),
                 "--min-score", "0.0", "--area", "0", "100", *extra])


@pytest.mark.parametrize(
    "command",
    [
        ["bac", "quantify", "x.dcm"],
        ["nuclei", "segment", "x.png", "--out", "o"],
        ["steatosis", "segment", "x.png", "--out", "o"],
        ["ood", "score", "--detector", "d", "x.png"],
    ],
)
def test_every_batch_command_takes_pseudonymise_names(command: list[str]) -> None:
    args = build_parser().parse_args([*command, "--pseudonymise-names"])
    assert args.pseudonymise_names is True


def test_steatosis_answers_every_file_and_keeps_same_named_outputs_apart(
    tmp_path: Path, steatosis_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "study1" / "IMG0001.png", tmp_path / "study2" / "IMG0001.png"
    save_png(first, generate_he(4, size=(96, 128)).image)
    save_png(second, generate_he(5, size=(80, 112)).image)
    broken, empty = tmp_path / "broken.png", tmp_path / "empty.png"
    broken.write_bytes(b"not an image")
    empty.write_bytes(b"")
    out = tmp_path / "out"
    assert _segment([first, broken, empty, second], out, steatosis_weights, "--jsonl") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == [str(first), str(broken), str(empty), str(second)]
    assert [r.get("error") for r in rows] == [None, "UnsupportedFormatError", "EmptyFileError", None]
    assert set(rows[1]) == {"file", "error", "message"}
    for row, shape in ((rows[0], (96, 128)), (rows[3], (80, 112))):
        assert set(row) == {"file", "detected", "kept", "steatosis_fraction", "nash_crn_band", "donor_band", "preset",
                            "seconds", "labels", "warnings", "pixel_spacing_um", "spacing_source", "unlike_training",
                            "model_spacing_um"}
        labels = cv2.imread(row["labels"], cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == shape
        # A PNG states no pixel size (issue 16): sizes stay in pixels, and the one warning says so.
        # ... and these tiles of at most 96 × 128 px hold too little tissue to grade (under 16,384 px)
        assert len(row["warnings"]) == 2 and "px of tissue were found" in row["warnings"][0]
        assert "no pixel size" in row["warnings"][1]
    assert [rows[0]["labels"], rows[3]["labels"]] == [str(out / "study1__IMG0001_labels.png"),
                                                      str(out / "study2__IMG0001_labels.png")]


def test_steatosis_table_escapes_names_and_pseudonymises(
    tmp_path: Path, steatosis_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = tmp_path / "Smith_John\n0 droplets.png"
    save_png(named, generate_he(4, size=(96, 96)).image)
    out = tmp_path / "out"
    assert _segment([named], out, steatosis_weights) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(str(tmp_path / "Smith_John\\n0 droplets.png") + ": ") and "droplets kept" in line
    assert _segment([named], out, steatosis_weights, "--jsonl", "--pseudonymise-names") == 0
    captured = capsys.readouterr()
    assert "Smith" not in captured.out + captured.err
    (row,) = [json.loads(text) for text in captured.out.splitlines()]
    assert row["file"] == file_label(str(named))
    assert row["labels"] == str(out / (row["file"].removesuffix(".png") + "_labels.png"))
