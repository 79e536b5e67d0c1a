"""``check_dataset``: the summary, and each problem kind triggered by a deliberately broken dataset."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from medlim.core.datasets import (
    DatasetSummary,
    SizeRange,
    check_dataset,
    drop_bad_items,
    open_dataset,
)
from medlim.errors import ParameterError


def _kinds(check) -> list[tuple[str, int | None, str | None]]:
    return [(p.kind, p.row, p.item) for p in check.problems]


def test_clean_segmentation_dataset_has_no_problem_and_a_hand_checked_summary(tmp_path, make) -> None:
    make.segmentation(tmp_path, 50, patients=10)
    check = check_dataset(open_dataset(tmp_path), task="bac")
    assert check.ok, check.problems
    summary = check.summary
    assert (summary.layout, summary.task, summary.images, summary.decoded) == ("segmentation_mask", "bac", 50, 50)
    assert summary.patients == 10
    assert summary.height == SizeRange(32, 32, 32) and summary.width == SizeRange(32, 32, 32)
    assert (summary.masks_with_foreground, summary.masks_empty) == (25, 25)  # odd indices have foreground
    assert summary.spacings == () and summary.no_spacing == 50
    assert summary.instances is None
    # 10 patients × 5 images: 2 patients (10 images) validate, 8 (40) train
    assert (len(check.split.train), len(check.split.val), check.split.by) == (40, 10, "patient")
    assert all(digest and len(digest) == 64 for digest in check.digests)


def test_summary_counts_classes_sizes_and_dicom_spacing(tmp_path, make) -> None:
    make.png(tmp_path / "a" / "small.png", 1, size=(10, 20))
    make.png(tmp_path / "a" / "big.png", 2, size=(40, 60))
    make.dicom(tmp_path / "b" / "IM1", 300, spacing_mm=(0.07, 0.07))
    make.dicom(tmp_path / "b" / "IM2", 400, spacing_mm=(0.07, 0.07))
    make.dicom(tmp_path / "b" / "IM3", 500, spacing_mm=(0.1, 0.05))
    check = check_dataset(open_dataset(tmp_path), val_fraction=None)
    summary = check.summary
    assert summary.classes == (("a", 2), ("b", 3))
    assert summary.height == SizeRange(10, 32, 40)  # heights 10, 40, 32, 32, 32
    assert summary.width == SizeRange(20, 24, 60)  # widths 20, 60, 24, 24, 24
    assert summary.spacings == ((0.07, 0.07, 2), (0.1, 0.05, 1))
    assert summary.no_spacing == 2
    assert summary.masks_with_foreground is None
    assert _kinds(check) == [("too_few_images", None, None)]  # 5 images checked as one part
    assert "the dataset has 5 images" in check.problems[0].message


def test_summary_to_json_is_plain(tmp_path, make) -> None:
    make.manifest(tmp_path, "file,labels,site", ["a.png,Effusion|Mass,north", "b.png,No Finding,south"])
    make.png(tmp_path / "a.png", 1)
    make.png(tmp_path / "b.png", 2)
    summary = check_dataset(open_dataset(tmp_path)).summary.to_json()
    assert summary["labels"] == {"Effusion": 1, "Mass": 1, "No Finding": 1}
    assert summary["sites"] == {"north": 1, "south": 1}
    assert summary["height"] == {"min": 32, "median": 32, "max": 32}
    assert set(summary) == {field for field in DatasetSummary.__dataclass_fields__ if field not in (
        "spacings", "no_spacing")} | {"pixel_spacing_mm", "images_without_spacing", "notes"}
    assert summary["no_finding_mixed"] == 0 and summary["notes"] == []


def test_no_finding_beside_a_finding_is_noted_not_refused(tmp_path, make) -> None:
    # rows 2 and 4 hold 'No Finding' with a finding (any capitals); row 3 holds it alone, row 5 findings only
    make.manifest(tmp_path, "file,labels", ["a.png,Effusion|No Finding", "b.png,No Finding", "c.png,no finding|Mass",
                                            "d.png,Effusion|Mass"])
    for index, name in enumerate("abcd"):
        make.png(tmp_path / f"{name}.png", index)
    check = check_dataset(open_dataset(tmp_path), val_fraction=None, task="pms")
    assert check.summary.no_finding_mixed == 2
    assert dict(check.summary.rows())["note"] == (
        "2 images carry 'No Finding' together with a finding; 'No Finding' is treated as a label like any other, "
        "so such an image matches queries of both")
    assert all(problem.kind != "bad_manifest" for problem in check.problems)


def test_steatosis_check_of_binary_masks_says_evaluation_needs_instances(tmp_path, make) -> None:
    make.segmentation(tmp_path, 2)
    notes = check_dataset(open_dataset(tmp_path, task="steatosis"), val_fraction=None, task="steatosis").summary.notes()
    assert notes == ("steatosis training reads the images only (its labels are made from them); 'medlim steatosis "
                     "evaluate' needs droplet instances (a manifest.csv with image,instances), not binary masks",)
    assert check_dataset(open_dataset(tmp_path), val_fraction=None, task="bac").summary.notes() == ()


def test_missing_unreadable_and_mask_size_problems_name_the_row(tmp_path, make) -> None:
    make.segmentation(tmp_path, 4)
    make.mask(tmp_path / "masks" / "002.png", foreground=True, size=(16, 32))
    (tmp_path / "images" / "001.png").write_text("not a picture")
    (tmp_path / "masks" / "003.png").unlink()
    check = check_dataset(open_dataset(tmp_path), val_fraction=None)
    item_problems = [p for p in check.problems if p.row is not None]
    assert [(p.kind, p.row, p.item, p.index) for p in item_problems] == [
        ("unreadable", 3, "images/001.png", 1),
        ("mask_size_mismatch", 4, "masks/002.png", 2),
        ("missing_file", 5, "masks/003.png", 3),
    ]
    assert "16×32 px" in item_problems[1].message and "32×32 px" in item_problems[1].message
    assert item_problems[1].message.endswith("export the mask at the image's size.")
    assert "not a DICOM, PNG, TIFF, JPEG or NIfTI" in item_problems[0].message
    assert check.digests[0] is not None and check.digests[1:] == (None, check.digests[2], None)


def test_a_mask_with_rows_and_columns_swapped_is_named_so(tmp_path, make) -> None:
    # a 24 × 40 image whose mask is 40 × 24: a NIfTI label written straight from a numpy array lands so
    make.manifest(tmp_path, "image,mask", ["a.png,a_mask.png"])
    make.png(tmp_path / "a.png", 1, size=(24, 40))
    make.mask(tmp_path / "a_mask.png", foreground=True, size=(40, 24))
    (problem,) = [p for p in check_dataset(open_dataset(tmp_path), val_fraction=None).problems if p.row is not None]
    assert problem.kind == "mask_size_mismatch"
    assert "its rows and columns are swapped" in problem.message
    assert problem.message.endswith("export the mask with the image's axes.")


def test_instances_are_counted_and_a_colour_instance_image_is_a_bad_mask(tmp_path, make) -> None:
    labels = np.zeros((32, 32), np.uint16)
    labels[1:4, 1:4], labels[10:12, 10:12], labels[20:30, 20:30] = 1, 2, 700
    for name in ("a", "b"):
        make.png(tmp_path / f"{name}.png", ord(name))
    cv2.imwrite(str(tmp_path / "a_inst.png"), labels)
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[5:9, 5:9] = (0, 0, 255)  # a colour-coded label map (a grey one saved as RGB reads as grey)
    cv2.imwrite(str(tmp_path / "b_inst.png"), colour)
    make.manifest(tmp_path, "image,instances", ["a.png,a_inst.png", "b.png,b_inst.png"])
    check = check_dataset(open_dataset(tmp_path), task="nuclei", val_fraction=None)
    assert check.summary.instances == 3
    assert (check.summary.masks_with_foreground, check.summary.masks_empty) == (2, 0)  # the colour one has colour
    assert _kinds(check)[0] == ("bad_mask", 3, "b_inst.png")


def test_label_outside_the_set_and_a_label_of_the_set_without_image(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"chest": 1, "hand": 1, "pelvis": 1})
    check = check_dataset(open_dataset(tmp_path), labels=["chest", "hand", "skull"], val_fraction=None)
    assert _kinds(check)[:2] == [("label_outside_set", None, "pelvis/000.png"), ("empty_class", None, None)]
    assert "'pelvis'" in check.problems[0].message and "'skull'" in check.problems[1].message


def test_multi_label_rows_are_checked_against_the_label_set(tmp_path, make) -> None:
    make.png(tmp_path / "a.png", 1)
    make.png(tmp_path / "b.png", 2)
    make.manifest(tmp_path, "file,labels", ["a.png,Effusion|Unicorn", "b.png,No Finding"])
    check = check_dataset(open_dataset(tmp_path), labels=["Effusion", "No Finding"], val_fraction=None)
    assert _kinds(check)[0] == ("label_outside_set", 2, "a.png")
    assert "'Unicorn'" in check.problems[0].message and "Effusion" not in check.problems[0].message.split(",")[0]


def test_byte_identical_images_are_duplicates(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"a": 2})
    (tmp_path / "a" / "copy.png").write_bytes((tmp_path / "a" / "000.png").read_bytes())
    check = check_dataset(open_dataset(tmp_path), val_fraction=None)
    assert _kinds(check)[0] == ("duplicate_image", None, "a/copy.png")
    assert "a/000.png" in check.problems[0].message


def test_wrong_layout_for_the_task_says_what_the_task_needs(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"images": 2, "masks": 2})
    check = check_dataset(open_dataset(tmp_path), task="bac", val_fraction=None)
    assert ("wrong_layout", None, None) in _kinds(check)
    message = next(p.message for p in check.problems if p.kind == "wrong_layout")
    assert "image,mask" in message and "class_folders" in message


def test_split_parts_with_too_few_images_or_patients(tmp_path, make) -> None:
    make.segmentation(tmp_path, 30, patients=3)  # 3 patients: 1 validates
    check = check_dataset(open_dataset(tmp_path))
    assert [p.kind for p in check.problems] == ["too_few_patients"]  # 10 images in the validation part
    assert "validation part has 1 patient" in check.problems[0].message
    make.segmentation(tmp_path / "small", 12)  # by image: 2 validate, 10 train
    check = check_dataset(open_dataset(tmp_path / "small"))
    assert [p.kind for p in check.problems] == ["too_few_images"]
    assert "validation part has 2 images" in check.problems[0].message


def test_an_empty_folder_has_no_images(tmp_path) -> None:
    check = check_dataset(open_dataset(tmp_path))
    assert _kinds(check) == [("no_images", None, None)]
    assert check.split is None and check.summary.height is None


def test_without_reading_pixels_only_existence_is_checked(tmp_path, make) -> None:
    make.segmentation(tmp_path, 3)
    (tmp_path / "images" / "000.png").write_text("broken")
    (tmp_path / "masks" / "001.png").unlink()
    check = check_dataset(open_dataset(tmp_path), read_pixels=False, val_fraction=None)
    assert _kinds(check) == [("missing_file", 3, "masks/001.png"), ("too_few_images", None, None)]
    assert check.summary.decoded == 0 and check.summary.height is None
    assert check.summary.masks_with_foreground is None
    assert check.digests == (None, None, None)


def test_progress_is_reported_after_each_item(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"a": 3})
    calls = []
    check_dataset(open_dataset(tmp_path), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_drop_bad_items_keeps_the_good_and_reports_the_rest(tmp_path, make) -> None:
    make.segmentation(tmp_path, 12)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(manifest.read_text() + "images/000.png,masks/000.png\nimages/zzz.png,masks/000.png\n")
    make.mask(tmp_path / "masks" / "004.png", foreground=False, size=(8, 8))
    dataset = open_dataset(tmp_path)
    check = check_dataset(dataset)
    kept, report = drop_bad_items(dataset, check)
    assert [(p.kind, p.row) for p in report.dropped] == [
        ("duplicate_entry", 14),
        ("mask_size_mismatch", 6),
        ("missing_file", 15),
    ]
    assert [p.kind for p in report.remaining] == ["too_few_images"]
    assert report.kept == len(kept) == 11 and kept.problems == ()
    assert dataset.items[4] not in kept.items and dataset.items[12] not in kept.items
    assert check_dataset(kept, val_fraction=None).ok
    assert report.to_json()["kept"] == 11


def test_bad_arguments_raise(tmp_path, make) -> None:
    dataset = open_dataset(make.class_folders(tmp_path, {"a": 1}))
    with pytest.raises(ParameterError, match="unknown task"):
        check_dataset(dataset, task="ct")
    with pytest.raises(ParameterError, match="non-empty label"):
        check_dataset(dataset, labels=["a", " "])
    with pytest.raises(ParameterError, match="sequence of label names"):
        check_dataset(dataset, labels="a,b")
    with pytest.raises(ParameterError, match="fraction"):
        check_dataset(dataset, val_fraction=1.5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="seed"):  # refused before any file is read, even without items
        check_dataset(open_dataset(tmp_path / "empty"), seed=-1)


def test_msd_labels_count_any_non_zero_value_as_foreground(tmp_path, make) -> None:
    make.png(tmp_path / "imagesTr" / "a.png", 1)
    make.png(tmp_path / "imagesTr" / "b.png", 2)
    label = np.zeros((32, 32), np.uint8)
    label[3, 3] = 2  # a second structure's value, still foreground
    (tmp_path / "labelsTr").mkdir()
    cv2.imwrite(str(tmp_path / "labelsTr" / "a.png"), label)
    cv2.imwrite(str(tmp_path / "labelsTr" / "b.png"), np.zeros((32, 32), np.uint8))
    tmp_path.joinpath("dataset.json").write_text(
        '{"training": [{"image": "./imagesTr/a.png", "label": "./labelsTr/a.png"},'
        ' {"image": "./imagesTr/b.png", "label": "./labelsTr/b.png"}]}'
    )
    summary = check_dataset(open_dataset(tmp_path), task="bac", val_fraction=None).summary
    assert (summary.layout, summary.masks_with_foreground, summary.masks_empty) == ("msd", 1, 1)


def test_a_jpeg_mask_is_a_bad_mask(tmp_path, make) -> None:
    """Lossy compression leaves faint non-zero pixels around a mask's edges, all of which would be foreground."""
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 255
    for name in ("a", "b"):
        make.png(tmp_path / f"{name}.png", ord(name))
    cv2.imwrite(str(tmp_path / "a_mask.png"), mask)
    cv2.imwrite(str(tmp_path / "b_mask.jpg"), mask)
    make.manifest(tmp_path, "image,mask", ["a.png,a_mask.png", "b.png,b_mask.jpg"])
    check = check_dataset(open_dataset(tmp_path), task="bac", val_fraction=None)
    problems = [p for p in check.problems if p.kind == "bad_mask"]
    assert [(p.row, p.item) for p in problems] == [(3, "b_mask.jpg")]
    assert "save masks and instance images as PNG or TIFF" in problems[0].message


def test_one_label_in_two_spellings_is_a_problem_of_the_whole_dataset(tmp_path, make) -> None:
    rows = []
    for k, labels in enumerate(["Effusion", "effusion|Nodule", "Effusion", "enlarged  heart", "Enlarged heart"]):
        make.png(tmp_path / f"{k}.png", k)
        rows.append(f"{k}.png,{labels}")
    make.manifest(tmp_path, "file,labels", rows)
    check = check_dataset(open_dataset(tmp_path, task="pms"), task="pms", val_fraction=None)
    spelling = [p.message for p in check.problems if p.kind == "label_spelling"]
    assert spelling == ["'Effusion' (2 images) and 'effusion' (1 images) are one class or label written in different "
                        "ways; write it the same way everywhere (medlim keeps capitals and spacing as given).",
                        "'Enlarged heart' (1 images) and 'enlarged  heart' (1 images) are one class or label written "
                        "in different ways; write it the same way everywhere (medlim keeps capitals and spacing as "
                        "given)."]
    dropped, _ = drop_bad_items(open_dataset(tmp_path, task="pms"), check)
    assert len(dropped) == 5  # a problem of the whole dataset: --skip-bad drops no image for it


def test_nuclei_data_is_evaluated_only_so_a_small_folder_has_no_split_problem(tmp_path, make) -> None:
    import numpy as np

    rows = []
    for k in range(2):
        make.png(tmp_path / f"{k}.png", k)
        labels = np.zeros((32, 32), np.uint16)
        labels[2:6, 2:6] = 1
        cv2.imwrite(str(tmp_path / f"{k}_labels.png"), labels)
        rows.append(f"{k}.png,{k}_labels.png")
    make.manifest(tmp_path, "image,instances", rows)
    nuclei = check_dataset(open_dataset(tmp_path, task="nuclei"), task="nuclei")
    assert nuclei.ok and nuclei.split is None
    steatosis = check_dataset(open_dataset(tmp_path, task="steatosis"), task="steatosis")
    assert {p.kind for p in steatosis.problems} == {"too_few_images"}  # a trainer's task keeps its split problems
