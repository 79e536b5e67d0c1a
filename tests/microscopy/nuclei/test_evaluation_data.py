"""The nuclei evaluation on a user's outlined nuclei (``image,instances``): same protocol as the phantoms."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medlim.core.training import DatasetProblemsError
from medlim.microscopy.nuclei.evaluation import (
    evaluate_nuclei_data,
    evaluate_phantoms,
    score_image,
    touching_labels,
)


def write_nuclei_folder(root: Path, *, seed: int, images: int, size: tuple[int, int] = (128, 160)) -> Path:
    """Fluorescence phantoms (RGB PNG) with their uint16 instance labels and ``manifest.csv`` image,instances."""
    from medlim.phantoms.base import save_png
    from medlim.phantoms.fluorescence import generate_fluorescence

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(images):
        phantom = generate_fluorescence(seed, index=index, size=size)
        save_png(root / f"dapi{index}.png", phantom.image)
        save_png(root / f"dapi{index}_labels.png", phantom.labels.astype(np.uint16))
        rows.append({"image": f"dapi{index}.png", "instances": f"dapi{index}_labels.png"})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "instances"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_a_segmentation_equal_to_the_truth_scores_one() -> None:
    truth = np.zeros((10, 12), np.int32)
    truth[1:4, 1:4] = 1
    truth[1:4, 4:7] = 2  # touches nucleus 1
    truth[7:9, 9:11] = 3
    row = score_image("thesis", truth, truth * 5, clumped=touching_labels(truth), seconds=0.1, index=2, name="a.png")
    assert (row.jaccard, row.precision, row.recall, row.f1, row.hausdorff) == (1.0, 1.0, 1.0, 1.0, 0.0)
    assert (row.object_f1, row.clumped_object_recall, row.n_true, row.n_pred, row.n_missed) == (1.0, 1.0, 3, 3, 0)
    assert row.name == "a.png" and row.seed == -1 and row.as_dict()["name"] == "a.png"


def test_touching_labels_hand_made() -> None:
    labels = np.zeros((6, 9), np.int32)
    labels[1:3, 1:3] = 4
    labels[3, 3] = 7  # diagonal neighbour of 4's corner (2, 2): 8-connected
    labels[1:3, 6:8] = 2  # alone
    assert touching_labels(labels).tolist() == [4, 7]
    assert touching_labels(np.zeros((3, 3), np.int32)).size == 0


def test_a_folder_scores_as_its_phantoms_do(tmp_path: Path) -> None:
    folder = write_nuclei_folder(tmp_path / "nuclei", seed=7, images=2)
    result = evaluate_nuclei_data(folder)
    oracle = list(evaluate_phantoms(n=2, seed=7, size=(128, 160)))
    assert result.images == 2 and [r.method for r in result.rows] == [r.method for r in oracle]
    for mine, theirs in zip(result.rows, oracle, strict=True):
        for key in ("jaccard", "precision", "recall", "f1", "hausdorff", "object_f1", "n_true", "n_pred"):
            assert getattr(mine, key) == pytest.approx(getattr(theirs, key)), key
    assert result.rows[0].name == "dapi0.png"
    report = result.to_json()
    assert report["data"]["images"] == 2 and set(report["summary"]) == {"thesis", "watershed", "watershed-basic"}
    assert result.table_lines()[0].startswith(f"2 images of dataset {report['data']['fingerprint']}")


def test_a_folder_without_instances_is_refused(tmp_path: Path) -> None:
    from medlim.phantoms.base import save_png
    from medlim.phantoms.fluorescence import generate_fluorescence

    save_png(tmp_path / "only.png", generate_fluorescence(7, size=(64, 64)).image)
    with pytest.raises(DatasetProblemsError, match="wrong_layout"):
        evaluate_nuclei_data(tmp_path)
