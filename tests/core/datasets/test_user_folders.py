"""Folders as people's tools leave them (the session-21 probe): Mac file names, Excel manifests, stray files.

Each test holds one thing a user hit: a class folder unpacked from a Mac (its ``É`` stored as ``E`` plus a
combining accent) that did not match the same name typed on a keyboard; class names in other scripts that
lost every letter; a Mac's ``Icon\\r`` counted as a broken image; BMP files skipped without a word; a path in
other capitals reported as plainly missing; Excel's ``sep=;`` line and NIH ChestX-ray14's column names.
"""

from __future__ import annotations

import unicodedata

import cv2
import numpy as np
import pytest

from medlim.cli.data import check_lines
from medlim.core.datasets import check_dataset, open_dataset
from medlim.core.weights.entry import name_part, validate_name
from medlim.curation.ood.labels import class_key, folder_matches

COMPOSED = "Épaule droite"  # as a keyboard writes it: one character for É (NFC)
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)  # as a Mac stores file names: E + U+0301


def test_the_two_spellings_differ_as_strings_but_not_on_screen() -> None:
    assert COMPOSED != DECOMPOSED and len(DECOMPOSED) == len(COMPOSED) + 1


def test_class_keys_keep_letters_of_every_script_and_ignore_the_unicode_form() -> None:
    assert class_key(COMPOSED) == class_key(DECOMPOSED) == "épaule_droite"
    assert class_key("肩 (左)") == "肩_左" and class_key("手") == "手"
    assert class_key("XR_HUMERUS") == "humerus" and class_key("Hand Wrist") == "hand_wrist"  # as before
    assert folder_matches(DECOMPOSED, COMPOSED) and folder_matches("肩 (左)", "肩 (左)")
    assert not folder_matches("手", "肩 (左)")


def test_model_names_drop_accents_and_keep_classes_of_other_scripts_apart() -> None:
    assert name_part(COMPOSED) == name_part(DECOMPOSED) == "Epaule-droite"
    shoulder, hand = name_part("肩 (左)"), name_part("手")
    assert shoulder.startswith("class-") and hand.startswith("class-") and shoulder != hand
    assert len(shoulder) == len("class-") + 6  # 3 bytes of hash, in hex
    assert name_part("hand-手").startswith("hand-") and name_part("hand-手") != "hand"
    assert name_part("v1..2") == "v1.2" and name_part("..") == ""
    for part in (shoulder, hand, name_part(COMPOSED), name_part("x" * 300)):
        assert validate_name(part, what="name") == part and len(part) <= 100


def test_a_class_folder_from_a_mac_is_the_class_typed_on_a_keyboard(tmp_path, make) -> None:
    make.class_folders(tmp_path, {DECOMPOSED: 2, "hand": 1})
    dataset = open_dataset(tmp_path)
    assert dataset.classes == ("hand", COMPOSED)  # kept composed (NFC)
    assert [item.label for item in dataset.items] == ["hand", COMPOSED, COMPOSED]
    assert all(item.image.exists() for item in dataset.items)  # the paths are the disk's own


def test_a_manifest_finds_files_stored_in_the_other_unicode_form(tmp_path, make) -> None:
    make.png(tmp_path / DECOMPOSED / unicodedata.normalize("NFD", "é 00.png"), 1)  # all decomposed, as on a Mac
    make.png(tmp_path / DECOMPOSED / "é 01.png", 3)  # forms mixed along the path (copied in from elsewhere)
    make.png(tmp_path / "hand" / "000.png", 2)
    make.manifest(tmp_path, "file,class", [f"{COMPOSED}/é 00.png,{DECOMPOSED}", f"{COMPOSED}/é 01.png,{COMPOSED}",
                                           "hand/000.png,hand"])
    dataset = open_dataset(tmp_path)
    assert [item.image.exists() for item in dataset.items] == [True, True, True]
    assert dataset.classes == ("hand", COMPOSED)
    assert not [p for p in check_dataset(dataset, val_fraction=None).problems if p.kind == "missing_file"]


def test_files_without_a_suffix_are_images_only_when_they_are_dicom(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"hand": 2})
    (tmp_path / "hand" / "Icon\r").write_bytes(b"")  # a Mac's custom-icon file
    (tmp_path / "hand" / "LICENSE").write_text("MIT")
    make.dicom(tmp_path / "hand" / "IM0001", 300)  # DICOM often has no suffix
    dataset = open_dataset(tmp_path)
    assert [dataset.display_name(item.image) for item in dataset.items] == ["hand/000.png", "hand/001.png",
                                                                             "hand/IM0001"]
    check = check_dataset(dataset, val_fraction=None)
    assert check.summary.classes == (("hand", 3),) and check.summary.decoded == 3
    assert not [p for p in check.problems if p.kind in ("unreadable", "missing_file")]


def test_images_in_formats_the_reader_does_not_take_are_said(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"hand": 2})
    (tmp_path / "hand" / "scan.bmp").write_bytes(b"BM" + b"\0" * 60)
    (tmp_path / "hand" / "scan2.BMP").write_bytes(b"BM" + b"\0" * 60)
    (tmp_path / "hand" / "photo.webp").write_bytes(b"RIFF")
    check = check_dataset(open_dataset(tmp_path), val_fraction=None)
    assert check.summary.images == 2 and check.summary.unread_formats == ((".bmp", 2), (".webp", 1))
    assert check.summary.to_json()["unread_formats"] == {".bmp": 2, ".webp": 1}
    line = next(line for line in check_lines(check, None) if line.startswith("not read: "))
    assert line.startswith("not read: 2 .bmp files, 1 .webp file (medlim reads PNG, TIFF, JPEG, DICOM and NIfTI")


def test_a_folder_of_bmp_files_only_is_told_what_to_convert(tmp_path) -> None:
    for index in range(3):
        (tmp_path / f"{index}.bmp").write_bytes(b"BM" + b"\0" * 60)
    check = check_dataset(open_dataset(tmp_path), task="ood", val_fraction=None)
    message = next(p.message for p in check.problems if p.kind == "no_images")
    assert "only files in other formats (3 .bmp)" in message and "convert them to PNG" in message


def test_a_path_in_other_capitals_is_named(tmp_path, make) -> None:
    make.png(tmp_path / "Hand" / "Radiograph_00.PNG", 1)
    make.png(tmp_path / "hand2" / "b.png", 2)
    make.manifest(tmp_path, "file,class", ["hand/radiograph_00.png,hand", "hand2/missing.png,hand"])
    problems = [p for p in check_dataset(open_dataset(tmp_path), val_fraction=None).problems
                if p.kind == "missing_file"]
    assert [p.row for p in problems] == [2, 3]
    assert "but Hand/Radiograph_00.PNG does: file names here tell capitals apart" in problems[0].message
    assert problems[1].message.endswith("does not exist; check the path or copy the file.")


@pytest.mark.parametrize("first_line", ["sep=;", "SEP=;\r"])
def test_excel_s_separator_line_names_the_separator_and_rows_keep_their_spreadsheet_numbers(
        tmp_path, make, first_line) -> None:
    make.png(tmp_path / "a.png", 1)
    (tmp_path / "manifest.csv").write_text(f"{first_line}\nfile;class\na.png;hand\n;elbow\n", encoding="utf-8")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "manifest_class" and [item.label for item in dataset.items] == ["hand"]
    assert dataset.items[0].row == 3 and [p.row for p in dataset.problems] == [4]  # line 1 is sep=;


def test_nih_chestxray14_columns_are_file_and_labels(tmp_path, make) -> None:
    make.png(tmp_path / "00000001_000.png", 1)
    make.png(tmp_path / "00000002_000.png", 2)
    make.manifest(tmp_path, "Image Index,Finding Labels,Follow-up #,Patient ID",
                  ["00000001_000.png,Cardiomegaly|Emphysema,0,1", "00000002_000.png,No Finding,0,2"])
    dataset = open_dataset(tmp_path, task="pms")
    assert dataset.layout == "manifest_labels"
    assert [item.labels for item in dataset.items] == [("Cardiomegaly", "Emphysema"), ("No Finding",)]
    assert [item.patient for item in dataset.items] == ["1", "2"]


def _palette_mask(path, foreground, *, background_colour) -> None:
    """A palette PNG as annotation tools write label images: index 0 background, index 1 the object."""
    from PIL import Image

    image = Image.fromarray(foreground.astype(np.uint8), mode="P")
    image.putpalette([*background_colour, 255, 0, 0] + [0, 0, 0] * 254)
    image.save(path)


def test_a_palette_mask_is_read_by_its_indices_whatever_colour_index_0_is(tmp_path, make) -> None:
    from medlim.core.io import read_labels
    from medlim.mammography.evaluate import read_annotated_view

    foreground = np.zeros((32, 32), bool)
    foreground[4:8, 4:8] = True  # 16 px
    rows = []
    for k, colour in enumerate(((0, 0, 0), (255, 255, 255))):
        make.png(tmp_path / f"{k}.png", k + 1)
        _palette_mask(tmp_path / f"{k}_m.png", foreground, background_colour=colour)
        rows.append(f"{k}.png,{k}_m.png")
        assert int((read_labels(tmp_path / f"{k}_m.png")[1] != 0).sum()) == 16
    make.manifest(tmp_path, "image,mask", rows)
    dataset = open_dataset(tmp_path)
    check = check_dataset(dataset, val_fraction=None)
    assert (check.summary.masks_with_foreground, check.summary.masks_empty) == (2, 0)
    assert not [p for p in check.problems if p.kind == "bad_mask"]
    assert [int(read_annotated_view(dataset, k).mask.sum()) for k in range(2)] == [16, 16]  # white index 0: 1,024


def test_a_mask_with_background_and_foreground_swapped_is_reported(tmp_path, make) -> None:
    make.segmentation(tmp_path, 2)
    inverted = np.full((32, 32), 255, np.uint8)
    inverted[4:8, 4:8] = 0
    cv2.imwrite(str(tmp_path / "masks" / "001.png"), inverted)
    problems = [p for p in check_dataset(open_dataset(tmp_path), val_fraction=None).problems if p.kind == "bad_mask"]
    assert [(p.row, p.item) for p in problems] == [(3, "masks/001.png")]
    assert "marks 98% of its image as foreground" in problems[0].message  # 1 − 16/1024, hand-computed


def test_a_binary_mask_given_as_instances_is_reported(tmp_path, make) -> None:
    binary = np.zeros((32, 32), np.uint8)
    for top in (2, 12, 22):  # three nuclei, all 255
        binary[top:top + 5, 3:8] = 255
    labels = np.zeros((32, 32), np.uint16)
    for k, top in enumerate((2, 12, 22), start=1):  # the same nuclei as instance labels 1, 2, 3
        labels[top:top + 5, 3:8] = k
    one = np.zeros((32, 32), np.uint8)
    one[10:20, 10:20] = 7  # one object in one piece: fine
    make.png(tmp_path / "a.png", 1)
    make.png(tmp_path / "b.png", 2)
    make.png(tmp_path / "c.png", 3)
    cv2.imwrite(str(tmp_path / "a_i.png"), binary)
    cv2.imwrite(str(tmp_path / "b_i.png"), labels)
    cv2.imwrite(str(tmp_path / "c_i.png"), one)
    make.manifest(tmp_path, "image,instances", ["a.png,a_i.png", "b.png,b_i.png", "c.png,c_i.png"])
    problems = [p for p in check_dataset(open_dataset(tmp_path), task="nuclei").problems if p.kind == "bad_mask"]
    assert [p.item for p in problems] == ["a_i.png"]
    assert "gives one value to 3 separate objects: it looks like a binary mask" in problems[0].message


def test_an_empty_patient_cell_among_named_patients_is_reported_and_skip_bad_drops_the_row(tmp_path, make) -> None:
    from medlim.core.datasets import drop_bad_items

    make.segmentation(tmp_path, 4)
    make.manifest(tmp_path, "image,mask,patient", ["images/000.png,masks/000.png,P1", "images/001.png,masks/001.png,",
                                                   "images/002.png,masks/002.png,P2", "images/003.png,masks/003.png,P2"])
    dataset = open_dataset(tmp_path)
    check = check_dataset(dataset, val_fraction=None)
    problems = [p for p in check.problems if p.kind == "bad_manifest"]
    assert [(p.row, p.item) for p in problems] == [(3, "images/001.png")]
    assert "has no 'patient' value while other rows have one" in problems[0].message
    kept, _report = drop_bad_items(dataset, check)
    assert [item.patient for item in kept.items] == ["P1", "P2", "P2"]
    # no patient column at all: split by image, nothing to report
    make.segmentation(tmp_path / "plain", 4)
    assert not [p for p in check_dataset(open_dataset(tmp_path / "plain"), val_fraction=None).problems
                if p.kind == "bad_manifest"]


def test_a_multi_page_image_in_a_dataset_is_told_to_be_exported_frame_by_frame(tmp_path, make) -> None:
    import tifffile

    make.segmentation(tmp_path, 2)
    for page in range(3):  # three pages, as a scanner or a stack export writes them
        tifffile.imwrite(tmp_path / "images" / "stack.tif", np.full((32, 32), page, np.uint8), append=True)
    make.manifest(tmp_path, "image,mask", ["images/stack.tif,masks/000.png", "images/001.png,masks/001.png"])
    problems = [p for p in check_dataset(open_dataset(tmp_path), val_fraction=None).problems if p.kind == "unreadable"]
    assert [p.row for p in problems] == [2]
    assert "holds 3 images (frames, pages or slices); a dataset lists single 2-D images" in problems[0].message
    assert "frame=" not in problems[0].message  # the reader's advice, which a manifest cannot follow


def test_a_page_s_dataset_may_not_name_files_outside_it_and_the_data_roots(tmp_path, make, monkeypatch) -> None:
    from medlim.core.paths import confining_to_data_roots

    root, outside = tmp_path / "roots", tmp_path / "private"
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    make.png(outside / "secret.png", 9)
    make.png(outside / "secret2.png", 10)
    make.png(root / "shared" / "other.png", 8)  # another folder of the data roots: allowed
    folder = root / "upload"
    make.png(folder / "hand" / "a.png", 1)
    (folder / "hand" / "link.png").symlink_to(outside / "secret.png")
    make.manifest(folder, "file,class", ["hand/a.png,hand", f"{outside / 'secret.png'},hand",
                                         "../../private/secret2.png,elbow", f"{root / 'shared' / 'other.png'},elbow",
                                         f"{outside / 'absent.png'},hand", "hand/link.png,hand"])
    with confining_to_data_roots():
        dataset = open_dataset(folder)
        check = check_dataset(dataset, val_fraction=None)
    assert [dataset.display_name(item.image) for item in dataset.items] == ["hand/a.png", str(root / "shared" /
                                                                                               "other.png")]
    refused = [p for p in check.problems if p.kind == "outside_data_roots"]
    assert [p.row for p in refused] == [3, 4, 6, 7]  # whether or not the file exists: the same answer
    assert check.summary.decoded == 2 and dataset.classes == ("elbow", "hand")
    assert len(open_dataset(folder).items) == 6  # the command line is not confined: its user owns the machine


def test_a_linked_class_folder_leading_outside_is_one_problem_that_names_no_file_behind_it(
        tmp_path, make, monkeypatch) -> None:
    from medlim.core.paths import confining_to_data_roots

    root, outside = tmp_path / "roots", tmp_path / "private"
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    for k in range(3):
        make.png(outside / f"Doe_Jane_{k}.png", k)
    folder = root / "upload"
    make.png(folder / "hand" / "a.png", 1)
    (folder / "elbow").symlink_to(outside, target_is_directory=True)
    with confining_to_data_roots():
        check = check_dataset(open_dataset(folder), val_fraction=None)
    (refused,) = [p for p in check.problems if p.kind == "outside_data_roots"]
    assert refused.item == "elbow" and "its 3 images are left out" in refused.message
    assert not any("Doe_Jane" in f"{p.item} {p.message}" for p in check.problems)
    assert check.summary.decoded == 1
    assert len(open_dataset(folder).items) == 4  # the command line follows the link


def test_one_class_whose_images_lie_in_sub_folders_gets_a_hint(tmp_path, make) -> None:
    make.class_folders(tmp_path / "clinic", {"hand": 2, "elbow": 2, "shoulder": 1})  # the classes, one level down
    (tmp_path / "README.txt").write_text("exported 2024")  # why the zip's top folder was not taken off
    check = check_dataset(open_dataset(tmp_path), val_fraction=None)
    assert check.summary.classes == (("clinic", 5),) and check.summary.sub_folders == ("elbow", "hand", "shoulder")
    note = next(line for line in check_lines(check, None) if line.startswith("note: "))
    assert note == ("note: one class, 'clinic', whose images lie in the sub-folders elbow, hand, shoulder; if these "
                    "are the classes, give the folder 'clinic' itself as the dataset")
    assert check.summary.to_json()["sub_folders"] == ["elbow", "hand", "shoulder"]
    make.class_folders(tmp_path / "two", {"hand": 2, "elbow": 2})  # real classes: no hint
    assert check_dataset(open_dataset(tmp_path / "two"), val_fraction=None).summary.one_class_text() is None
