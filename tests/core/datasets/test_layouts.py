"""Layout detection and listing: which layout a folder has, and the items and listing problems it yields."""

from __future__ import annotations

import json

import pytest

from medlim.core.datasets import Dataset, DatasetItem, DatasetProblem, open_dataset
from medlim.errors import InputError, ParameterError


def _names(dataset: Dataset) -> list[str]:
    return [dataset.display_name(item.image) for item in dataset.items]


def test_class_folders_list_each_class_recursively_and_skip_notes_masks_and_hidden_files(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"hand": 2, "chest": 1})
    make.png(tmp_path / "chest" / "deeper" / "scan.png", 50)
    make.png(tmp_path / "hand" / "000_mask.png", 60)  # a mask medlim writes, not an image of the class
    make.png(tmp_path / "hand" / ".hidden.png", 61)
    (tmp_path / "hand" / "notes.txt").write_text("not an image")
    (tmp_path / "hand" / "report.docx").write_bytes(b"PK")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "class_folders"
    assert dataset.classes == ("chest", "hand")
    assert _names(dataset) == ["chest/000.png", "chest/deeper/scan.png", "hand/000.png", "hand/001.png"]
    assert [item.label for item in dataset.items] == ["chest", "chest", "hand", "hand"]
    assert dataset.problems == ()


def test_empty_class_folder_and_loose_image_are_listing_problems(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"knee": 2})
    (tmp_path / "skull").mkdir()
    make.png(tmp_path / "loose.png", 9)
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "class_folders"
    assert dataset.classes == ("knee", "skull")
    assert [(p.kind, p.row, p.item) for p in dataset.problems] == [
        ("empty_class", None, None),
        ("no_class", None, "loose.png"),
    ]
    assert "'skull'" in dataset.problems[0].message


def test_plain_folder_is_unlabelled_and_takes_suffixless_dicom(tmp_path, make) -> None:
    make.png(tmp_path / "a.png", 1)
    make.dicom(tmp_path / "1.2.840.99.7", 100)  # a DICOM named by its UID
    make.dicom(tmp_path / "IM0001", 200)  # a DICOM without suffix
    (tmp_path / "DICOMDIR").write_bytes(b"index of a CD export, not an image")
    (tmp_path / "empty_folder").mkdir()
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "unlabelled"
    assert _names(dataset) == ["1.2.840.99.7", "IM0001", "a.png"]
    assert all(item.label is None and item.mask is None for item in dataset.items)


def test_manifest_wins_over_class_folders(tmp_path, make) -> None:
    make.class_folders(tmp_path, {"a": 2, "b": 1})
    make.manifest(tmp_path, "file,class,site", ["a/000.png,elbow,north", "b/000.png,knee,"])
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "manifest_class"
    assert dataset.classes == ("elbow", "knee")
    assert dataset.items == (
        DatasetItem(image=tmp_path / "a/000.png", label="elbow", site="north", row=2),
        DatasetItem(image=tmp_path / "b/000.png", label="knee", row=3),
    )


def test_manifest_labels_split_on_bar_and_no_finding_is_a_label(tmp_path, make) -> None:
    make.manifest(
        tmp_path,
        "File , Labels ,patient,shift_type",  # column names are matched without case or spaces
        ["x.png, Effusion | Cardiomegaly |Effusion,p1,", "y.png,No Finding,p2,contrast"],
    )
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "manifest_labels"
    assert dataset.items[0].labels == ("Effusion", "Cardiomegaly")  # a repeated label counts once
    assert dataset.items[1].labels == ("No Finding",)
    assert dataset.items[1].shift_type == "contrast"
    assert [item.patient for item in dataset.items] == ["p1", "p2"]
    assert dataset.label_set == ("Cardiomegaly", "Effusion", "No Finding")


def test_class_and_labels_columns_read_as_labels_only_for_pms(tmp_path, make) -> None:
    make.manifest(tmp_path, "file,class,labels", ["x.png,chest,Effusion"])
    assert open_dataset(tmp_path).layout == "manifest_class"
    pms = open_dataset(tmp_path, task="pms")
    assert pms.layout == "manifest_labels"
    assert pms.items[0].labels == ("Effusion",) and pms.items[0].label == "chest"


@pytest.mark.parametrize(
    ("header", "layout", "field"),
    [
        ("image,mask", "segmentation_mask", "mask"),
        ("image,instances", "segmentation_instances", "instances"),
        ("file,mask", "segmentation_mask", "mask"),  # ``file`` stands for ``image``
    ],
)
def test_segmentation_manifests(tmp_path, make, header, layout, field) -> None:
    make.manifest(tmp_path, header + ",patient", ["img/a.png,lab/a.png,P1"])
    dataset = open_dataset(tmp_path)
    assert dataset.layout == layout
    assert getattr(dataset.items[0], field) == tmp_path / "lab/a.png"
    assert dataset.items[0].patient == "P1"


def test_manifest_with_file_column_only_lists_unlabelled_images(tmp_path, make) -> None:
    make.manifest(tmp_path, "file,patient", ["a.png,P1"])
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "unlabelled" and dataset.items[0].patient == "P1"


def test_manifest_paths_relative_absolute_and_windows_style(tmp_path, make) -> None:
    elsewhere = make.png(tmp_path / "elsewhere" / "far.png", 3)
    root = tmp_path / "data"
    make.manifest(root, "file,class", ["sub/near.png,a", f"{elsewhere},b", r"sub\win.png,a"])
    dataset = open_dataset(root)
    assert [item.image for item in dataset.items] == [root / "sub/near.png", elsewhere, root / "sub/win.png"]
    assert _names(dataset) == ["sub/near.png", str(elsewhere), "sub/win.png"]


def test_manifest_byte_order_mark_and_semicolons_are_understood(tmp_path) -> None:
    tmp_path.joinpath("manifest.csv").write_bytes("\ufefffile;class\r\na.png;x\r\n".encode("utf-8"))
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "manifest_class"
    assert dataset.items == (DatasetItem(image=tmp_path / "a.png", label="x", row=2),)


def test_msd_dataset_json_pairs_images_with_labels(tmp_path) -> None:
    document = {
        "name": "BAC",
        "labels": {"0": "background", "1": "calcification"},
        "training": [{"image": "./imagesTr/a.png", "label": "./labelsTr/a.png"}],
        "test": ["./imagesTs/b.png"],
    }
    tmp_path.joinpath("dataset.json").write_text(json.dumps(document))
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "msd"
    assert dataset.items == (
        DatasetItem(image=tmp_path / "imagesTr/a.png", mask=tmp_path / "labelsTr/a.png", row=1),
    )
    assert _names(dataset) == ["imagesTr/a.png"]


def test_an_nnunet_v2_dataset_json_pairs_each_label_with_its_first_channel(tmp_path) -> None:
    document = {"channel_names": {"0": "mammogram"}, "labels": {"background": 0, "bac": 1}, "numTraining": 2,
                "file_ending": ".nii.gz"}
    tmp_path.joinpath("dataset.json").write_text(json.dumps(document))
    (tmp_path / "labelsTr").mkdir()
    for case in ("case_002", "case_001"):
        (tmp_path / "labelsTr" / f"{case}.nii.gz").write_bytes(b"")
    (tmp_path / "labelsTr" / "notes.txt").write_text("not a label")
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "msd" and dataset.problems == ()
    assert dataset.items == tuple(
        DatasetItem(image=tmp_path / f"imagesTr/{case}_0000.nii.gz", mask=tmp_path / f"labelsTr/{case}.nii.gz", row=row)
        for row, case in ((1, "case_001"), (2, "case_002"))
    )


def test_manifest_wins_over_dataset_json(tmp_path, make) -> None:
    tmp_path.joinpath("dataset.json").write_text('{"training": []}')
    make.manifest(tmp_path, "file,class", ["a.png,x"])
    assert open_dataset(tmp_path).layout == "manifest_class"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("picture,class\na.png,x\n", "no 'file' or 'image' column"),
        ("image,mask,instances\na.png,b.png,c.png\n", "both a 'mask' and an 'instances' column"),
        ("", "no 'file' or 'image' column"),
    ],
)
def test_unusable_manifest_is_one_problem_of_the_whole_dataset(tmp_path, content, expected) -> None:
    tmp_path.joinpath("manifest.csv").write_text(content)
    dataset = open_dataset(tmp_path)
    assert dataset.items == ()
    assert [(p.kind, p.row, p.item) for p in dataset.problems] == [("bad_manifest", None, None)]
    assert expected in dataset.problems[0].message


def test_manifest_that_is_not_utf8_says_how_to_save_it(tmp_path) -> None:
    tmp_path.joinpath("manifest.csv").write_bytes("file,class\nr\xe9sum\xe9.png,x\n".encode("latin-1"))
    (problem,) = open_dataset(tmp_path).problems
    assert problem.kind == "bad_manifest" and "CSV UTF-8" in problem.message


def test_rows_without_values_and_repeated_rows_are_row_problems(tmp_path, make) -> None:
    make.manifest(
        tmp_path,
        "image,mask",
        ["a.png,a_m.png", ",b_m.png", "c.png,", "", "./a.png,other.png", "d.png,d_m.png"],
    )
    dataset = open_dataset(tmp_path)
    assert [dataset.display_name(item.image) for item in dataset.items] == ["a.png", "d.png"]
    assert [item.row for item in dataset.items] == [2, 7]  # the blank line 5 still counts as a row
    assert [(p.kind, p.row, p.item) for p in dataset.problems] == [
        ("bad_manifest", 3, None),
        ("bad_manifest", 4, "c.png"),
        ("duplicate_entry", 6, "a.png"),
    ]
    assert "all-zero mask" in dataset.problems[1].message
    assert "row 2" in dataset.problems[2].message


def test_msd_without_training_list_is_a_problem(tmp_path) -> None:
    tmp_path.joinpath("dataset.json").write_text('{"name": "x"}')
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "msd" and dataset.items == ()
    assert [p.kind for p in dataset.problems] == ["bad_manifest"]
    assert "file_ending" in dataset.problems[0].message  # nnU-Net v2's form is named too


def test_names_with_control_characters_are_escaped(tmp_path, make) -> None:
    make.manifest(tmp_path, "file,class", ['"evil\nname.png",x', '"evil\nname.png",x'])
    dataset = open_dataset(tmp_path)
    assert dataset.problems[0].item == "evil\\nname.png"
    assert "\n" not in dataset.problems[0].message


def test_not_a_folder_and_unknown_task_raise(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    tmp_path.joinpath("file.png").write_bytes(b"x")
    with pytest.raises(InputError, match="is not a folder"):
        open_dataset(tmp_path / "file.png")
    with pytest.raises(ParameterError, match="unknown task 'mri'"):
        open_dataset(tmp_path, task="mri")


def test_model_refuses_unknown_kinds_and_layouts(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown dataset problem kind"):
        DatasetProblem(kind="oops", message="x")
    with pytest.raises(ValueError, match="unknown dataset layout"):
        Dataset(root=tmp_path, layout="zip", items=())


def test_steatosis_reads_sub_folders_as_cases_of_one_unlabelled_tree(tmp_path, make) -> None:
    """H&E tiles per case ('Case Müller 0/…'): no classes (case names would go into a model's record); two or more
    case folders group the split, loose tiles are cases of their own, one folder alone groups nothing."""
    make.class_folders(tmp_path / "cases", {"Case Müller 0": 3, "Case Jones": 2})
    make.png(tmp_path / "cases" / "loose.png", 99)
    make.png(tmp_path / "cases" / "Case Jones" / "deeper" / "x.png", 98)
    dataset = open_dataset(tmp_path / "cases", task="steatosis")
    assert dataset.layout == "unlabelled" and dataset.classes == () and len(dataset) == 7
    cases = {item.image.relative_to(tmp_path / "cases").as_posix(): item.patient for item in dataset.items}
    assert cases["Case Jones/deeper/x.png"] == "Case Jones" and cases["Case Müller 0/000.png"] == "Case Müller 0"
    assert cases["loose.png"] is None and all(item.label is None for item in dataset.items)
    assert open_dataset(tmp_path / "cases", task="ood").layout == "class_folders"  # other tasks: classes, as before
    make.class_folders(tmp_path / "one", {"tiles": 3})
    assert [item.patient for item in open_dataset(tmp_path / "one", task="steatosis").items] == [None] * 3


@pytest.mark.parametrize(("header", "column"), [("File;Class;Patient ID", "patient"), ("file,class,patient_id", "patient"),
                                                ("Filename,Class,Subject", "patient"), ("Path,Class,PatientID", "patient")])
def test_common_spreadsheet_column_names_are_read_as_medlims(tmp_path, make, header, column) -> None:
    separator = ";" if ";" in header else ","
    rows = [separator.join([f"{k}.png", "x", f"P{k % 2}"]) for k in range(4)]
    for k in range(4):
        make.png(tmp_path / f"{k}.png", k)
    make.manifest(tmp_path, header, rows)
    dataset = open_dataset(tmp_path)
    assert dataset.layout == "manifest_class" and not dataset.problems
    assert [item.patient for item in dataset.items] == ["P0", "P1", "P0", "P1"]


def test_a_labels_cell_of_separators_only_is_an_empty_cell(tmp_path, make) -> None:
    for k in range(2):
        make.png(tmp_path / f"{k}.png", k)
    make.manifest(tmp_path, "file,labels", ["0.png, | ", "1.png,Effusion | Nodule"])
    dataset = open_dataset(tmp_path, task="pms")
    assert [item.labels for item in dataset.items] == [("Effusion", "Nodule")]
    assert [(p.kind, p.row) for p in dataset.problems] == [("bad_manifest", 2)]


def test_tabs_a_decathlon_label_column_and_a_header_without_rows(tmp_path, make) -> None:
    from medlim.core.datasets import check_dataset

    for k in range(2):
        make.png(tmp_path / "tabs" / f"{k}.png", k)
        make.mask(tmp_path / "tabs" / f"{k}_m.png", foreground=bool(k))
    make.manifest(tmp_path / "tabs", "image\tlabel\tpatient", [f"{k}.png\t{k}_m.png\tP{k}" for k in range(2)])
    dataset = open_dataset(tmp_path / "tabs", task="bac")  # 'label' is the Decathlon's word for the mask
    assert dataset.layout == "segmentation_mask" and [i.patient for i in dataset.items] == ["P0", "P1"]
    assert open_dataset(tmp_path / "tabs", task="pms").layout == "manifest_labels"  # for PMS it is the labels
    assert open_dataset(tmp_path / "tabs").layout == "unlabelled"  # no task: no guess
    assert open_dataset(tmp_path / "tabs", task="ood").layout == "manifest_class"  # for OOD, the class
    make.manifest(tmp_path / "empty", "image,mask,patient", [])
    (problem,) = open_dataset(tmp_path / "empty").problems
    assert problem.kind == "bad_manifest" and "lists no image under its first line" in problem.message
    make.manifest(tmp_path / "other", "image,notes", ["0.png,x"])
    make.png(tmp_path / "other" / "0.png", 0)
    checked = check_dataset(open_dataset(tmp_path / "other", task="bac"), task="bac", read_pixels=False)
    (layout,) = [p.message for p in checked.problems if p.kind == "wrong_layout"]
    assert "this folder holds a manifest.csv with columns image,notes" in layout
