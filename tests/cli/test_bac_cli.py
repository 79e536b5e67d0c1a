"""``medlim bac quantify|longitudinal`` end to end on small phantom DICOMs with a tiny
randomly initialised SCU-Net (the numbers are checked against the library and the mask)."""

from __future__ import annotations

import json
import shutil
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
    assert {r.spacing_request for r in list_bac_results(store)} == {"file"}
    # Another stated pixel spacing is another analysis (the view is resampled otherwise): not reused ...
    stated = ["bac", "quantify", str(exam_dir), "--jsonl", "--device", "cpu", "--resume", "--pixel-spacing", "0.1"]
    assert main(stated) == 0
    analysed = [r for r in _lines(capsys) if r["ok"]]
    assert not any(r["reused"] for r in analysed)
    assert {r.spacing_request for r in list_bac_results(store)} == {"user 0.1x0.1"}
    assert main(stated) == 0  # ... until it was stored so
    reused = [r for r in _lines(capsys) if r["ok"]]
    assert all(r["reused"] for r in reused)
    # ... and a reused result says what the analysis said: its warnings, check and resampling. With these test
    # weights all four are empty, so the comparison alone would hold without the store keeping them; every row
    # stored by the command keeping its context is what this checks (the round trip of non-empty values is
    # tests/mammography/test_readout.py's).
    said = ("warnings", "unlike_training", "region_filter", "model_spacing_mm")
    assert [{k: r[k] for k in said} for r in reused] == [{k: r[k] for k in said} for r in analysed]
    assert all(r.context == {k: ([] if k == "warnings" else None) for k in said} for r in list_bac_results(store))


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


def _two_studies(exam_dir: Path, root: Path) -> list[Path]:
    """``study1/IMG0001.dcm`` and ``study2/IMG0001.dcm``: two different views with the same file name."""
    views = sorted(exam_dir.glob("*CC.dcm"))[:2]
    copies = []
    for study, view in zip(("study1", "study2"), views):
        (root / study).mkdir(parents=True)
        copies.append(Path(shutil.copy(view, root / study / "IMG0001.dcm")))
    return copies


def test_quantify_keeps_masks_of_same_named_files_apart(
    exam_dir: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _two_studies(exam_dir, tmp_path / "in")
    out = tmp_path / "masks"
    args = ["bac", "quantify", *map(str, files), "--jsonl", "--out", str(out), "--device", "cpu", "--no-store",
            "--threshold", "0.5"]
    assert main(args) == 0
    rows = _lines(capsys)
    assert [r["file"] for r in rows] == [str(f) for f in files]
    assert [r["mask"] for r in rows] == [str(out / "study1__IMG0001_bac.png"), str(out / "study2__IMG0001_bac.png")]
    masks = [cv2.imread(r["mask"], cv2.IMREAD_UNCHANGED) for r in rows]
    assert [int((m == 255).sum()) for m in masks] == [r["am"] for r in rows]  # each mask is its own file's
    assert rows[0]["laterality"] != rows[1]["laterality"]


def test_quantify_prints_readouts_the_store_refuses(
    exam_dir: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.errors import StoreError
    from medlim.mammography import batch

    def refuse(*args: object, **kwargs: object) -> int:
        raise StoreError("The results store is read-only; copy it somewhere writable.")

    monkeypatch.setattr(batch, "save_analysis", refuse)
    files = sorted(exam_dir.glob("*CC.dcm"))
    assert main(["bac", "quantify", *map(str, files), "--jsonl", "--device", "cpu"]) == 0
    rows = _lines(capsys)
    assert len(rows) == 2 and all(r["ok"] for r in rows)  # both files analysed: the refusal does not stop the run
    for row in rows:
        assert row["store_error"] == "The results store is read-only; copy it somewhere writable."
        assert {"pm", "am", "tam_x", "breast_area", "warnings"} <= set(row) and row["breast_area"] > 0
    assert main(["bac", "quantify", str(files[0]), "--device", "cpu"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("[not stored: The results store is read-only; copy it somewhere writable.]")


def test_quantify_pseudonymise_names_and_escaped_table(
    exam_dir: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.core.io.pseudonym import file_label

    named = tmp_path / "Smith\nJohn.dcm"
    shutil.copy(sorted(exam_dir.glob("*LCC.dcm"))[0], named)
    broken = exam_dir / "broken.dcm"
    out = tmp_path / "masks"
    args = ["bac", "quantify", str(named), str(broken), "--device", "cpu", "--no-store", "--out", str(out)]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(tmp_path / "Smith\\nJohn.dcm") + ": PM=")
    assert lines[1].startswith(f"{broken}: not analysed: ")
    assert main(["bac", "quantify", str(broken), "--device", "cpu", "--no-store"]) == 1  # nothing analysed
    capsys.readouterr()
    assert main([*args, "--jsonl", "--pseudonymise-names"]) == 0
    captured = capsys.readouterr()
    assert "Smith" not in captured.out + captured.err and "broken" not in captured.out + captured.err
    good, bad = (json.loads(line) for line in captured.out.splitlines())
    assert good["file"] == file_label(str(named)) and bad["file"] == file_label(str(broken))
    assert good["mask"] == str(out / (good["file"].removesuffix(".dcm") + "_bac.png"))
    assert not bad["ok"] and bad["error"]


def test_history_prints_tam_100_per_exam_whatever_x_the_analysis_used(
    exam_dir: Path, weights_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bac", "quantify", str(exam_dir), "--jsonl", "--x", "120", "--device", "cpu"]) == 0
    views = [r for r in _lines(capsys) if r["ok"]]
    assert all(r["x"] == 120.0 and r["tam_100"] >= r["tam_x"] for r in views)
    assert main(["bac", "history", views[0]["patient_key"], "--jsonl"]) == 0
    (exam,) = _lines(capsys)
    assert exam["views_counted"] == 4 and exam["weights"] == "scunet-bac@0" and exam["thresholds"] == [0.5]
    assert exam["tam_100_per_breast_area_sum"] == pytest.approx(sum(v["tam_100"] / v["breast_area"] for v in views))
    assert len(exam["analysis_ids"]) == 4 and exam["change_from_previous"] is None
    assert main(["bac", "history", views[0]["patient_key"]]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{views[0]['patient_key']} {views[0]['study_date']}: ΣTAM_100/area=")
    assert main(["bac", "history", "nobody", "--jsonl"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no saved analyses of patient nobody with scunet-bac@0" in captured.err


def test_report_writes_the_pages_report_per_exam(
    exam_dir: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bac", "quantify", str(exam_dir), "--jsonl", "--no-store", "--device", "cpu"]) == 0
    views = {f"{r['laterality']}{r['view']}": r for r in _lines(capsys) if r["ok"]}
    out = tmp_path / "reports"
    assert main(["bac", "report", str(exam_dir), "--out", str(out), "--no-store", "--device", "cpu", "--jsonl"]) == 0
    (written,) = _lines(capsys)
    lcc = views["LCC"]
    stem = f"{lcc['patient_key']}_{lcc['study_date']}_report"
    assert written == {"csv": str(out / f"{stem}.csv"), "json": str(out / f"{stem}.json"), "views": 4}
    document = json.loads((out / f"{stem}.json").read_text())
    assert sorted(v["image"] for v in document["views"]) == ["LCC", "LMLO", "RCC", "RMLO"]
    for view in document["views"]:
        expected = views[view["image"]]
        assert {k: view[k] for k in ("am", "tam_x", "tam_100", "breast_area")} == {
            k: expected[k] for k in ("am", "tam_x", "tam_100", "breast_area")}
    assert document["exam"]["views_counted"] == 4
    assert document["exam"]["tam_x_per_breast_area_sum"] == pytest.approx(
        sum(v["tam_x"] / v["breast_area"] for v in views.values()))
    text = (out / f"{stem}.csv").read_text() + (out / f"{stem}.json").read_text()
    assert str(exam_dir) not in text and "PHANTOM" not in text  # no paths, no names


def test_quantify_without_weights_uses_the_task_default(
    exam_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before issue 17 no weights meant the highest version, not the one the manifest marks as default."""
    from medlim.core.weights import Registry, save_weights
    from medlim.mammography.scunet import build_scunet

    folder = tmp_path / "weights"
    for version, threshold, default in (("1", 0.3, True), ("2", 0.5, False)):
        torch.manual_seed(0)
        fields = {
            "name": "scunet-bac", "version": version, "task": "bac-segmentation", "architecture": "scunet",
            "preset": "published", "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32",
                                                      "range": [-2.24, 5.72]},
            "output_type": "probability", "thresholds": {"output": threshold},
            "params": {"overlap": 32, "merge": "max", "output_activation": "sigmoid"}, "default": default,
        }  # fmt: skip
        save_weights(Registry.load(folder), fields, build_scunet().state_dict())
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(folder))
    lcc = sorted(exam_dir.glob("*LCC.dcm"))[0]
    assert main(["bac", "quantify", str(lcc), "--jsonl", "--no-store", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    (row,) = [json.loads(line) for line in captured.out.splitlines()]
    assert (row["weights"], row["threshold"], row["intensity_rule"]) == ("scunet-bac v1", 0.3, ">=")
    # The page's "Numbers from" sentence, on stderr before the rows (the published preset counts I >= X).
    assert ("medlim: Numbers from scunet-bac v1 · preset published (the authors' published code: 5×5 median filter "
            "only; overlap 32 px, max merge, background tiles skipped) · cut-off p > 0.30, X = 100 (I >= X).\n"
            ) in captured.err  # fmt: skip
    assert main(["bac", "quantify", str(lcc), "--jsonl", "--no-store", "--device", "cpu", "--weights",
                 "scunet-bac@2"]) == 0  # fmt: skip
    assert _lines(capsys)[0]["weights"] == "scunet-bac v2"


# ----------------------------------------------------------------------------- issue 13: unlike my training data


def _radiograph_png(folder: Path) -> Path:
    from PIL import Image

    from medlim.phantoms.radiograph import generate_radiograph

    image = np.clip(np.rint(generate_radiograph(seed=11, body_part="hand", size=512).image * 255), 0, 255)
    path = folder / "hand.png"
    Image.fromarray(image.astype(np.uint8)).save(path)
    return path


def test_quantify_shows_the_training_data_check_in_rows_and_table(
    exam_dir: Path, weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped v2 check stored beside the test weights: a radiograph PNG is flagged, its numbers still printed."""
    from medlim.core.familiarity import attach_familiarity, load_familiarity
    from medlim.core.weights import Registry

    root = Path(__file__).resolve().parents[2]
    check = load_familiarity(Registry.load(root / "weights").get("scunet-bac", "2"))
    attach_familiarity(Registry.load(weights_dir).get("scunet-bac", "0"), check, command="test")
    hand = _radiograph_png(tmp_path)
    lcc = sorted(exam_dir.glob("*LCC.dcm"))[0]
    assert main(["bac", "quantify", str(hand), str(lcc), "--jsonl", "--no-store", "--device", "cpu"]) == 0
    radiograph, mammogram = _lines(capsys)
    assert radiograph["ok"] and radiograph["breast_area"] > 0
    flag = radiograph["unlike_training"]
    assert set(flag) == {"score", "threshold", "flagged", "reason"}
    assert flag["flagged"] is True and flag["score"] > flag["threshold"] == round(check.threshold, 2)
    (warning,) = [w for w in radiograph["warnings"] if "unlike the images the model was trained on" in w]
    assert f"(score {flag['score']:.2f}, limit {flag['threshold']:.2f})" in warning
    assert set(mammogram["unlike_training"]) == {"score", "threshold", "flagged", "reason"}
    assert main(["bac", "quantify", str(hand), "--no-store", "--device", "cpu"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert f"unlike-training={flag['score']:.2f}/{flag['threshold']:.2f} FLAGGED" in line
    assert "[warning: This image looks unlike the images the model was trained on" in line


def test_weights_without_a_check_print_null(exam_dir: Path, weights_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lcc = sorted(exam_dir.glob("*LCC.dcm"))[0]
    assert main(["bac", "quantify", str(lcc), "--jsonl", "--no-store", "--device", "cpu"]) == 0
    (row,) = _lines(capsys)
    assert row["unlike_training"] is None
    assert not any("unlike the images" in w for w in row["warnings"])


def test_weights_verify_and_calibrate_refusal(weights_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.core.familiarity import FamiliarityCheck, attach_familiarity
    from medlim.core.weights import Registry

    entry = Registry.load(weights_dir).get("scunet-bac", "0")
    check = FamiliarityCheck(feature_names=("a",), mean=(0.0,), scale=(1.0,), precision=((1.0,),), threshold=3.0,
                             n_calibration=8)
    attached = attach_familiarity(entry, check, command="test")
    assert main(["weights", "verify", "scunet-bac", "--weights-dir", str(weights_dir),
                 "--models-dir", str(weights_dir)]) == 0  # fmt: skip
    assert "training-data check ok" in capsys.readouterr().out
    attached.familiarity_path.write_text("{}")
    assert main(["weights", "verify", "scunet-bac", "--weights-dir", str(weights_dir),
                 "--models-dir", str(weights_dir)]) == 1  # fmt: skip
    assert "training-data check mismatch" in capsys.readouterr().out
    # weights with no recorded phantom command cannot be recalibrated from phantoms
    assert main(["weights", "calibrate-familiarity", "scunet-bac@0", "--weights-dir", str(weights_dir),
                 "--models-dir", str(weights_dir)]) != 0  # fmt: skip
    assert "not trained on phantoms" in capsys.readouterr().err
