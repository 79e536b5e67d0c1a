"""``medlim bac|nuclei|steatosis evaluate --data DIR`` (issue 12): the rooms' evaluate options plus the data ones.

The three ``evaluate`` parsers are rebuilt here with the options they have and
the ``add_*_data_evaluation`` functions :mod:`medlim.cli.evaluate_data` gives
them; ``run_*_data_evaluation`` is what the commands call when ``--data`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medlim.cli.evaluate_data import (
    add_bac_data_evaluation,
    add_nuclei_data_evaluation,
    add_steatosis_data_evaluation,
    run_bac_data_evaluation,
    run_nuclei_data_evaluation,
    run_steatosis_data_evaluation,
)
from medlim.core.training import DatasetProblemsError
from tests.bac_helpers import constant_bac_weights, two_tone_views, write_manifest


def _bac_parser() -> argparse.ArgumentParser:
    """``medlim bac evaluate``'s options, and the data ones."""
    parser = argparse.ArgumentParser(prog="medlim bac evaluate")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--thresholds", default=None)
    parser.add_argument("--x", type=float, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--device", default=None)
    add_bac_data_evaluation(parser)
    return parser


def _nuclei_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medlim nuclei evaluate")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--jsonl", action="store_true")
    add_nuclei_data_evaluation(parser)
    return parser


def _steatosis_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medlim steatosis evaluate")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--weights-dir", default=None)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--jsonl", action="store_true")
    add_steatosis_data_evaluation(parser)
    return parser


def test_bac_evaluate_data_hand_computed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = constant_bac_weights()
    folder = two_tone_views(tmp_path / "views")
    args = _bac_parser().parse_args(["--data", str(folder), "--weights", weights, "--json"])
    assert run_bac_data_evaluation(args) == 0
    report = json.loads(capsys.readouterr().out)
    # every one of the 512 × 512 pixels is predicted: Dice = 2|T| / (|T| + 262144) on the views with BAC
    assert report["images"] == 3 and report["weights"] == "const-bac v1"  # as the phantom evaluation names them
    assert report["whole_image"]["f1"] == pytest.approx((2000 / 263144 + 1000 / 262644) / 2)
    assert report["whole_image"]["recall"] == 1.0
    assert report["whole_image_pooled"]["f1"] == pytest.approx(3000 / (3000 + 3 * 262144 - 1500))
    # TAM_100: the bright half (131072 px) predicted in each view, 1000 + 500 px true
    assert report["tam_relative_bias"] == pytest.approx((3 * 131072 - 1500) / 1500)
    assert report["agreement"]["tam_x"]["r2"] is None  # the same prediction for every view: R² undefined
    assert report["bac_free_images"] == 1 and report["false_am_px_median"] == 262144
    assert report["false_am_mm2_median"] is None  # PNG views carry no pixel spacing
    assert len(report["data"]["fingerprint"]) == 16 and str(tmp_path) not in json.dumps(report)

    assert run_bac_data_evaluation(_bac_parser().parse_args(["--data", str(folder), "--weights", weights])) == 0
    text = capsys.readouterr().out
    assert f"const-bac v1 on 3 annotated views of dataset {report['data']['fingerprint']}" in text
    assert "TAM_100 relative bias" in text and "false AM on 1 BAC-free views (median): 262144 px" in text


def test_bac_evaluate_data_sweeps_cutoffs_and_names_the_one_the_trainer_would_choose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # every pixel's probability is sigmoid(0.8473) = 0.7: at 0.5 everything is BAC, at 0.8 nothing
    weights = constant_bac_weights(logit=math.log(0.7 / 0.3), name="flat-bac")
    folder = two_tone_views(tmp_path / "views")
    args = _bac_parser().parse_args(["--data", str(folder), "--weights", weights, "--thresholds", "0.5,0.8", "--json"])
    assert run_bac_data_evaluation(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == 3 and [row["threshold"] for row in report["sweep"]] == [0.5, 0.8]
    low, high = report["sweep"]
    assert low["dice"] == pytest.approx((2000 / 263144 + 1000 / 262644) / 2)  # as the single cut-off above
    assert low["false_am_px_median"] == 262144 and low["false_area_within_target"] is False
    assert low["tam_relative_bias"] == pytest.approx((3 * 131072 - 1500) / 1500)
    assert high["dice"] == 0.0 and high["recall"] == 0.0 and high["false_am_px_median"] == 0
    assert high["tam_relative_bias"] == -1.0 and high["false_area_within_target"] is True
    # the trainer's rule: a cut-off within the false-area target beats any outside it, whatever the Dice
    assert report["chosen"] == 0.8
    assert report["data"] == {"fingerprint": report["data"]["fingerprint"], "dropped": 0}
    assert str(tmp_path) not in json.dumps(report)

    args = _bac_parser().parse_args(["--data", str(folder), "--weights", weights, "--thresholds", "0.5,0.8"])
    assert run_bac_data_evaluation(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"flat-bac v1 on 3 annotated views of dataset {report['data']['fingerprint']}, X=100"
    assert lines[2].split()[:2] == ["0.50", f"{low['dice']:.3f}"] and lines[2].endswith("262144 px")
    assert lines[3].split()[:2] == ["0.80", "0.000"] and "-100 %" in lines[3] and lines[3].endswith("0 px")
    assert "would choose t=0.8" in lines[-1]


def test_bac_evaluate_data_refuses_bad_cutoffs_and_a_folder_without_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.errors import ParameterError
    from medlim.phantoms.base import save_png

    with pytest.raises(ParameterError, match="not both"):
        run_bac_data_evaluation(_bac_parser().parse_args(["--data", str(tmp_path), "--thresholds", "0.5,0.6",
                                                          "--threshold", "0.5"]))
    with pytest.raises(ParameterError, match="comma-separated"):
        run_bac_data_evaluation(_bac_parser().parse_args(["--data", str(tmp_path), "--thresholds", "half"]))
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        run_bac_data_evaluation(_bac_parser().parse_args(["--data", str(tmp_path), "--thresholds", "0.5,1.5"]))
    (tmp_path / "plain").mkdir()
    save_png(tmp_path / "plain" / "a.png", np.full((64, 64), 90, np.uint8))
    with pytest.raises(DatasetProblemsError, match="wrong_layout"):
        run_bac_data_evaluation(_bac_parser().parse_args(["--data", str(tmp_path / "plain"), "--weights",
                                                          "scunet-bac"]))


def test_nuclei_evaluate_data_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.phantoms.base import save_png
    from medlim.phantoms.fluorescence import generate_fluorescence

    folder = tmp_path / "nuclei"
    folder.mkdir()
    phantom = generate_fluorescence(7, index=0, size=(96, 128))
    save_png(folder / "a.png", phantom.image)
    save_png(folder / "a_labels.png", phantom.labels.astype(np.uint16))
    write_manifest(folder, [{"image": "a.png", "instances": "a_labels.png"}])
    assert run_nuclei_data_evaluation(_nuclei_parser().parse_args(["--data", str(folder), "--json"])) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["data"]["images"] == 1 and set(report["summary"]) == {"thesis", "watershed", "watershed-basic"}
    assert 0.0 <= report["summary"]["thesis"]["object_f1"] <= 1.0 and "[1/1] thesis" in captured.err


def _he_folder(root: Path, count: int) -> Path:
    from medlim.phantoms.base import save_png
    from medlim.phantoms.he import generate_he

    root.mkdir()
    rows = []
    for index in range(count):
        phantom = generate_he(7, index=index, size=(128, 128))
        save_png(root / f"he{index}.png", phantom.image)
        save_png(root / f"he{index}_droplets.png", phantom.labels.astype(np.uint16))
        rows.append({"image": f"he{index}.png", "instances": f"he{index}_droplets.png"})
    write_manifest(root, rows)
    return root


def test_steatosis_evaluate_data_scores_the_weak_labels_as_the_phantom_evaluation_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.microscopy.steatosis.evaluation import evaluate_methods

    folder = _he_folder(tmp_path / "he", 2)
    args = _steatosis_parser().parse_args(["--data", str(folder), "--weights", "none", "--json"])
    assert run_steatosis_data_evaluation(args) == 0
    report = json.loads(capsys.readouterr().out)
    oracle = evaluate_methods(None, seed=7, n=2, size=128)
    assert report["weights"] is None and report["data"]["images"] == 2 and "network" not in report
    for method in ("weak", "weak_screened"):
        for key in ("ap", "precision", "recall", "f1", "jaccard"):
            assert report[method][key] == oracle[method][key], (method, key)

    args = _steatosis_parser().parse_args(["--data", str(folder)])  # the task's default network
    assert run_steatosis_data_evaluation(args) == 0
    text = capsys.readouterr().out
    assert "2 images of dataset" in text and "network" in text and "network F1 − weak F1" in text


def test_cutoffs_may_add_the_models_own_to_the_trainers_grid() -> None:
    from medlim.cli.evaluate_data import parse_cutoffs
    from medlim.mammography.selection import WHOLE_VIEW_CUTOFFS

    assert parse_cutoffs("grid") == list(WHOLE_VIEW_CUTOFFS)
    assert parse_cutoffs("grid,0.65") == [*WHOLE_VIEW_CUTOFFS, 0.65]
    assert parse_cutoffs("0.9, 0.3,0.9") == [0.9, 0.3]  # in the order given, once each
    assert parse_cutoffs("grid,0.8") == list(WHOLE_VIEW_CUTOFFS)  # 0.8 is on the grid already


def test_a_folder_of_instance_phantoms_is_evaluated_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`medlim phantom fluorescence --out DIR` then `medlim nuclei evaluate --data DIR`: no manifest to rewrite."""
    from medlim.cli import main

    folder = tmp_path / "nuclei"
    assert main(["phantom", "fluorescence", "--out", str(folder), "--n", "2", "--size", "128", "128", "--quiet"]) == 0
    header = (folder / "manifest.csv").read_text().splitlines()[0].split(",")
    assert "instances" in header and "labels" in header  # the instance image under both names
    assert main(["data", "check", str(folder), "--task", "nuclei", "--json"]) == 0  # nuclei: evaluated, never trained
    checked = json.loads(capsys.readouterr().out)
    assert checked["summary"]["layout"] == "segmentation_instances" and not checked["summary"].get("labels")
    assert checked["problems"] == [] and checked["split"] is None  # two images are no problem for an evaluation
    assert main(["nuclei", "evaluate", "--data", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["images"] == 2 and report["summary"]["thesis"]["images"] == 2


def test_a_folder_of_mammogram_phantoms_is_a_bac_dataset_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    folder = tmp_path / "views"
    assert main(["phantom", "mammogram", "--out", str(folder), "--patients", "1", "--quiet"]) == 0
    main(["data", "check", str(folder), "--task", "bac", "--json"])  # four views: too few to train, not to evaluate
    checked = json.loads(capsys.readouterr().out)
    assert checked["summary"]["layout"] == "segmentation_mask" and checked["summary"]["patients"] == 1
    assert {p["kind"] for p in checked["problems"]} <= {"too_few_images", "too_few_patients"}


def test_table_prints_the_models_page_tables_with_what_each_column_means(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medlim.cli import main

    # as above: p = 0.7 everywhere; the weights' own cut-off is 0.5, the trainer's rule chooses 0.8
    weights = constant_bac_weights(logit=math.log(0.7 / 0.3), name="flat-bac")
    folder = two_tone_views(tmp_path / "views")
    assert main(["bac", "evaluate", "--data", str(folder), "--weights", weights, "--thresholds", "0.5,0.8",
                 "--table"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) not in out
    rows = {line.split()[0]: line for line in out.splitlines() if line[:4] in ("0.5 ", "0.8 ")}
    assert "the model's default" in rows["0.5"] and "chosen by the trainer's rule" in rows["0.8"]
    assert "Columns:" in out and "  cut-off: probability above which a pixel is BAC" in out
    # the page's table is only for a folder, and it is a table or JSON
    assert main(["bac", "evaluate", "--weights", weights, "--table"]) == 2
    assert "give --data DIR" in capsys.readouterr().err
    assert main(["bac", "evaluate", "--data", str(folder), "--weights", weights, "--table", "--json"]) == 2
    assert "not both" in capsys.readouterr().err
