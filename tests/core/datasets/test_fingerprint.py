"""``dataset_fingerprint``: named by content, blind to names and places, changed by one pixel or label."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest

from medlim.core.datasets import check_dataset, dataset_fingerprint, open_dataset


def _fingerprint(root):
    return dataset_fingerprint(open_dataset(root))


def _rename_everything(root, moved) -> None:
    """Copy ``root`` to ``moved``, renaming every file, folder and patient, and listing rows in reverse order."""
    moved.mkdir(parents=True)
    rows = []
    for line in (root / "manifest.csv").read_text().splitlines()[1:]:
        image, mask, patient = line.split(",")
        new_image, new_mask = f"DOE^JANE/{image.split('/')[1]}.png", f"outlines/m_{mask.split('/')[1]}"
        for old, new in ((image, new_image), (mask, new_mask)):
            (moved / new).parent.mkdir(exist_ok=True)
            shutil.copyfile(root / old, moved / new)
        rows.append(f"{new_image},{new_mask},MRN-{patient}")
    (moved / "manifest.csv").write_text("\n".join(["image,mask,patient", *reversed(rows)]) + "\n")


def test_fingerprint_ignores_names_order_and_place(tmp_path, make) -> None:
    original = make.segmentation(tmp_path / "data", 6, patients=3)
    _rename_everything(original, tmp_path / "elsewhere" / "renamed")
    first, second = _fingerprint(original), _fingerprint(tmp_path / "elsewhere" / "renamed")
    assert first == second
    assert first.id == first.sha256[:16] and len(first.sha256) == 64


def test_fingerprint_changes_with_one_pixel_one_mask_or_one_label(tmp_path, make) -> None:
    root = make.segmentation(tmp_path / "seg", 4)
    before = _fingerprint(root).sha256
    image = cv2.imread(str(root / "images/002.png"), cv2.IMREAD_UNCHANGED)
    image[5, 5] += 1
    cv2.imwrite(str(root / "images/002.png"), image)
    after_pixel = _fingerprint(root).sha256
    make.mask(root / "masks/000.png", foreground=True)
    after_mask = _fingerprint(root).sha256
    assert len({before, after_pixel, after_mask}) == 3
    labelled = make.class_folders(tmp_path / "cls", {"a": 2, "b": 1})
    before_label = _fingerprint(labelled).sha256
    (labelled / "b").rename(labelled / "c")
    assert _fingerprint(labelled).sha256 != before_label


def test_fingerprint_follows_who_shares_a_patient_not_the_patient_values(tmp_path, make) -> None:
    root = make.segmentation(tmp_path, 4, patients=2)  # P00: 0, 2; P01: 1, 3
    before = _fingerprint(root).sha256
    manifest = root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("P00", "X").replace("P01", "P00").replace("X", "P01"))
    assert _fingerprint(root).sha256 == before  # the same grouping under other values
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace("P01", "P00")  # image 0 joins the other patient
    manifest.write_text("\n".join(lines) + "\n")
    assert _fingerprint(root).sha256 != before


def test_fingerprint_json_holds_no_paths_names_or_patients(tmp_path, make) -> None:
    root = make.segmentation(tmp_path / "Doe_Jane_1960", 3, patients=3)
    check = check_dataset(open_dataset(root))
    fingerprint = dataset_fingerprint(open_dataset(root), check=check)
    text = json.dumps(fingerprint.to_json())
    for secret in ("Doe", "images/", "masks/", ".png", "P00", str(tmp_path)):
        assert secret not in text
    document = fingerprint.to_json()
    assert document["images"] == 3 and document["patients"] == 3
    assert document["masks_with_foreground"] == 1 and document["masks_empty"] == 2
    assert document["height"] == {"min": 32, "median": 32, "max": 32}


def test_fingerprint_reuses_a_check_and_reads_when_the_check_did_not(tmp_path, make) -> None:
    root = make.class_folders(tmp_path, {"a": 2})
    dataset = open_dataset(root)
    full = dataset_fingerprint(dataset, check=check_dataset(dataset))
    quick = dataset_fingerprint(dataset, check=check_dataset(dataset, read_pixels=False))
    assert full == quick == dataset_fingerprint(dataset)
    other = open_dataset(make.class_folders(tmp_path / "other", {"a": 3}))
    with pytest.raises(ValueError, match="covers 3 items"):
        dataset_fingerprint(dataset, check=check_dataset(other))
