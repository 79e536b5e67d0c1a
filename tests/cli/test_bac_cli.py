"""``medlim bac quantify|longitudinal`` end to end on small phantom DICOMs with a tiny
randomly initialised SCU-Net (the numbers are checked against the library and the mask)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from medlim.cli import main


@pytest.fixture(scope="module")
def exam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exam")
    assert main(["phantom", "mammogram", "--out", str(folder), "--n", "4", "--seed", "3", "--size", "small"]) == 0
    (folder / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")
    return folder


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    torch.manual_seed(0)
    folder = tmp_path / "weights"
    folder.mkdir()
    registry = Registry(folder)
    fields = {
        "name": "scunet-bac",
        "version": "0",
        "task": "bac-segmentation",
        "architecture": "scunet",
        "preset": "published",
        "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-2.24, 5.72]},
        "output_type": "probability",
        "thresholds": {"output": 0.5},
        "params": {"overlap": 32, "merge": "max", "output_activation": "sigmoid"},
    }
    save_weights(registry, fields, build_scunet().state_dict())
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(folder))
    return folder


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_quantify_writes_masks_reports_bad_files_and_is_idempotent(
    exam_dir: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.core.io import read_image
    from medlim.core.store import open_store
    from medlim.core.store.bac import list_bac_results
    from medlim.mammography.analysis import analyse_mammogram, load_bac_model

    out = tmp_path / "masks"
    assert main(["bac", "quantify", str(exam_dir), "--jsonl", "--out", str(out), "--device", "cpu"]) == 0
    rows = _lines(capsys)
    assert len(rows) == 5  # four views + the broken file; ground-truth PNGs and manifests are skipped
    bad = [r for r in rows if not r["ok"]]
    assert len(bad) == 1 and bad[0]["file"].endswith("broken.dcm") and bad[0]["error"]
    good = [r for r in rows if r["ok"]]
    keys = {"file", "pm", "am", "sim", "tam_x", "tsim_x", "x", "threshold", "breast_area", "view", "laterality",
            "study_date", "weights", "seconds"}
    for row in good:
        assert keys <= set(row)
        mask = cv2.imread(row["mask"], cv2.IMREAD_UNCHANGED)
        assert mask.shape == (1024, 832) and set(np.unique(mask)) <= {0, 255}
        assert int((mask == 255).sum()) == row["am"]  # AM counts the p > t pixels the mask shows
        assert row["tam_x"] <= row["am"]
    # Same numbers as the library on the same file.
    lcc = next(r for r in good if r["file"].endswith("LCC.dcm"))
    analysis = analyse_mammogram(read_image(Path(lcc["file"])), load_bac_model("scunet-bac", device="cpu"))
    assert lcc["am"] == analysis.metrics.am and lcc["pm"] == pytest.approx(analysis.metrics.pm, rel=1e-4)
    assert {r["view"] for r in good} == {"CC", "MLO"} and {r["laterality"] for r in good} == {"L", "R"}

    store = open_store()
    first = len(list_bac_results(store))
    assert first == 4
    assert main(["bac", "quantify", str(exam_dir), "--jsonl", "--device", "cpu", "--resume"]) == 0
    again = [r for r in _lines(capsys) if r["ok"]]
    assert all(r["reused"] for r in again)
    assert len(list_bac_results(store)) == first  # re-running is idempotent


def test_longitudinal_sums_normalised_tam_over_the_exam(
    exam_dir: Path, weights_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bac", "quantify", str(exam_dir), "--jsonl", "--x", "100", "--device", "cpu", "--no-store"]) == 0
    views = [r for r in _lines(capsys) if r["ok"]]
    assert main(["bac", "longitudinal", str(exam_dir), "--jsonl", "--device", "cpu", "--no-store"]) == 0
    (exam,) = _lines(capsys)
    assert exam["views_counted"] == 4
    assert exam["tam_x_per_breast_area_sum"] == pytest.approx(sum(v["tam_x"] / v["breast_area"] for v in views))
    assert exam["change_from_previous"] is None
