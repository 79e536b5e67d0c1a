"""Lazily read datasets: phantom sets, class folders, zips."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medlim.curation.shift.data import (
    extract_zip,
    folder_set,
    iter_batches,
    keep_dataset,
    parse_dataset,
    phantom_image_set,
    write_image_set,
)
from medlim.errors import ArchiveBudgetError, ArchiveError, ParameterError


def test_phantom_ground_truth_matches_the_generator() -> None:
    from medlim.phantoms.radiograph import generate_radiograph

    image_set = phantom_image_set(seed=7, per_class=4, site="mixed", body_parts=("hand", "elbow"))
    assert len(image_set) == 8 and image_set.class_names == ("elbow", "hand")
    for p in range(len(image_set)):
        phantom = generate_radiograph(seed=7, index=image_set.indices[p], body_part=image_set.classes[p], site="mixed")
        assert phantom.site == image_set.sites[p]
        assert phantom.shift_severity == pytest.approx(image_set.severity[p], abs=1e-6)
    pixels = image_set.read([0, 5], 32)
    assert pixels.shape == (2, 32, 32) and pixels.dtype == np.float32
    assert parse_dataset(image_set.source).files == image_set.files


def test_folder_round_trip_and_batches(tmp_path: Path) -> None:
    image_set = phantom_image_set(seed=3, per_class=3, site="external", body_parts=("finger", "wrist"))
    root = write_image_set(image_set, tmp_path / "ext", size=32)
    read = folder_set(root)
    assert read.classes == image_set.classes and read.shifted.all()
    assert read.severity == pytest.approx(image_set.severity, abs=1e-6)
    seen = []
    batches = list(iter_batches(read, size=32, batch_size=4, progress=lambda d, t: seen.append((d, t))))
    assert [len(p) for p, _ in batches] == [4, 2] and seen == [(4, 6), (6, 6)]
    np.testing.assert_allclose(batches[0][1][0], image_set.read([0], 32)[0], atol=1 / 255 + 1e-6)
    # without a manifest the sub-folder names are the classes and the truth is unknown
    (root / "manifest.csv").unlink()
    plain = folder_set(root)
    assert sorted(set(plain.classes)) == ["finger", "wrist"] and plain.shifted is None


def test_zip_is_unpacked_once_and_unwrapped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data/hand/a.png", b"x")
        archive.writestr("data/elbow/b.png", b"y")
    target = extract_zip(buffer.getvalue(), tmp_path)
    assert target.name == "data" and (target / "hand" / "a.png").read_bytes() == b"x"
    assert extract_zip(buffer.getvalue(), tmp_path) == target  # the complete folder is reused
    assert [p.name for p in tmp_path.iterdir()] == [target.parent.name]  # no staging folder left
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../evil.png", b"z")
    with pytest.raises(ArchiveError, match="leaves"):
        extract_zip(bad.getvalue(), tmp_path)
    with pytest.raises(ArchiveError, match="zip"):
        extract_zip(b"not a zip", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [target.parent.name]


def _zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bomb = _zip({"hand/zeros.png": bytes(200 << 20)})  # 200 MiB of zeros: ~200 KB compressed
    assert len(bomb) < 1 << 20
    with pytest.raises(ArchiveBudgetError, match="MEDLIM_ZIP_MAX_RATIO") as caught:
        extract_zip(bomb, tmp_path / "uploads", label="bomb.zip")
    assert "bomb.zip" in caught.value.message and str(tmp_path) not in caught.value.message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_zip_limits_on_members_and_size_come_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_ZIP_MAX_MEMBERS", "3")
    many = _zip({f"hand/{i}.png": b"x" for i in range(4)})
    with pytest.raises(ArchiveBudgetError, match="MEDLIM_ZIP_MAX_MEMBERS"):
        extract_zip(many, tmp_path)
    monkeypatch.setenv("MEDLIM_ZIP_MAX_MEMBERS", "100")
    monkeypatch.setenv("MEDLIM_ZIP_MAX_MB", "1")
    large = _zip({"hand/a.png": np.random.default_rng(0).bytes(2 << 20)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveBudgetError, match="MEDLIM_ZIP_MAX_MB"):
        extract_zip(large, tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_keep_dataset_moves_the_upload_and_refuses_bad_or_taken_names(tmp_path: Path) -> None:
    from medlim.errors import InvalidNameError

    wrapped = _zip({"data/hand/a.png": b"x", "data/elbow/b.png": b"y"})
    folder = extract_zip(wrapped, tmp_path / "session")
    datasets = tmp_path / "datasets"
    with pytest.raises(InvalidNameError):
        keep_dataset(folder, datasets, "../outside")
    assert folder.is_dir() and not datasets.exists()
    kept = keep_dataset(folder, datasets, "partner 2024")
    assert kept == datasets / "partner 2024" and (kept / "hand" / "a.png").read_bytes() == b"x"
    assert not folder.exists()
    again = extract_zip(_zip({"hand/c.png": b"z", "elbow/d.png": b"w"}), tmp_path / "session")
    with pytest.raises(ParameterError, match="kept already"):
        keep_dataset(again, datasets, "partner 2024")
    # the same upload unpacked again after its inner folder was kept: unpacked afresh, not an empty folder
    assert (extract_zip(wrapped, tmp_path / "session") / "hand" / "a.png").is_file()


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="phantom"):
        parse_dataset("phantom:internal:x:3")
    with pytest.raises(ParameterError, match="does not exist"):
        folder_set(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParameterError, match="no images"):
        folder_set(tmp_path / "empty")


def test_chosen_shift_mix_uses_the_generator_parts() -> None:
    from medlim.phantoms.base import rng_for
    from medlim.phantoms.radiograph import apply_site_shift, render_anatomy

    image_set = parse_dataset("phantom:mix0.4-0.9x0.5:9:6:hand,elbow")
    shifted = image_set.shifted
    assert 0 < shifted.sum() < len(image_set)
    assert np.all((image_set.severity[shifted] >= 0.4) & (image_set.severity[shifted] <= 0.9))
    assert np.all(image_set.severity[~shifted] == 0.0)
    assert parse_dataset(image_set.source).files == image_set.files
    p = int(np.nonzero(shifted)[0][0])
    part, index = image_set.classes[p], image_set.indices[p]
    expected = apply_site_shift(render_anatomy(part, rng_for(9, "radiograph", index, part)), image_set.sites[p],
                                image_set.severity[p], rng_for(9, "medshift-shift", index, part))
    np.testing.assert_array_equal(image_set.phantom.render(index, part), expected)
    with pytest.raises(ParameterError, match="severity_range"):
        phantom_image_set(seed=1, per_class=2, severity_range=(0.8, 0.2))
    with pytest.raises(ParameterError, match="shift mix"):
        parse_dataset("phantom:mixbad:1:2")


def test_multi_label_manifest_gives_findings_and_a_label_matrix(tmp_path: Path) -> None:
    from medlim.curation.shift.data import ImageSet

    # a phantom source stands in for the pixels; the findings are what is tested
    image_set = ImageSet(name="cxr", files=("hand/1", "hand/2", "hand/3"), classes=("hand",) * 3,
                         phantom=phantom_image_set(seed=1, per_class=3, body_parts=("hand",)).phantom,
                         indices=(0, 1, 2), findings=(("Effusion", "Fracture"), (), ("Fracture",)))
    assert image_set.label_names == ("Effusion", "Fracture")
    assert image_set.label_matrix(["Fracture", "Effusion", "Nodule"]).tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    root = write_image_set(image_set, tmp_path / "cxr", size=16)
    read = folder_set(root)
    assert read.findings == (("Effusion", "Fracture"), (), ("Fracture",)) and read.classes == ("hand",) * 3
    assert read.subset(np.array([False, True, True])).findings == ((), ("Fracture",))
    # a single-label set's labels are its classes
    single = phantom_image_set(seed=1, per_class=2, body_parts=("hand", "elbow"))
    assert single.findings == () and single.label_names == ("elbow", "hand")
    assert single.label_matrix(["hand"]).tolist() == [[1], [1], [0], [0]]


def test_folder_set_lists_through_the_dataset_layer(tmp_path: Path) -> None:
    import cv2

    root = tmp_path / "ds"
    for relative in ("hand/a.png", "hand/deep/b.png", "elbow/c.tif", "hand/.hidden.png", "hand/a_mask.png", "loose.png"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / relative), np.zeros((4, 4), np.uint8))
    listed = folder_set(root)
    # the class is the top folder; hidden files, masks medlim writes and loose files are left out
    assert list(zip(listed.files, listed.classes)) == [("elbow/c.tif", "elbow"), ("hand/a.png", "hand"),
                                                       ("hand/deep/b.png", "hand")]


def test_a_manifest_row_outside_the_folder_or_without_a_class_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "hand").mkdir(parents=True)
    (root / "manifest.csv").write_text("file,class\nhand/a.png,hand\n../secret.png,hand\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="row 3 names a file outside the dataset folder"):
        folder_set(root)
    (root / "manifest.csv").write_text("file,class\nhand/a.png,hand\nhand/b.png,\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="row 3 has no 'class' value"):
        folder_set(root)
    (root / "manifest.csv").write_text("file,labels\nhand/a.png,Effusion\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="needs 'file' and 'class' columns"):
        folder_set(root)
    (root / "manifest.csv").write_text("file,class,site,shift_severity\nhand/a.png,hand,internal,\n"
                                       "hand/b.png,hand,external-a,0.25\n", encoding="utf-8")
    import cv2

    for stem in ("a", "b"):  # the set reads each image once, leaving out what cannot be read
        cv2.imwrite(str(root / "hand" / f"{stem}.png"), np.zeros((4, 4), np.uint8))
    read = folder_set(root)
    assert read.files == ("hand/a.png", "hand/b.png") and read.severity.tolist() == [0.0, 0.25]
    assert read.shifted.tolist() == [False, True]


def test_images_that_cannot_be_read_are_left_out_and_said(tmp_path: Path) -> None:
    import cv2

    from medlim.curation.shift.check import check_shift_data

    root = tmp_path / "ds"
    for relative in ("hand/a.png", "elbow/c.png"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / relative), np.zeros((4, 4), np.uint8))
    (root / "hand" / "text.png").write_text("not an image")
    (root / "hand" / "zero.png").write_bytes(b"")
    listed = folder_set(root)
    assert listed.files == ("elbow/c.png", "hand/a.png") and listed.classes == ("elbow", "hand")
    assert [file for file, _ in listed.left_out] == ["hand/text.png", "hand/zero.png"]
    assert "not a DICOM, PNG, TIFF, JPEG or NIfTI image" in listed.left_out[0][1]
    lines = check_shift_data(phantom_image_set(seed=1, per_class=5, body_parts=("hand", "elbow")), listed).lines()
    said = [line for line in lines if "left out" in line]
    assert said[0].startswith("left out of the external data, cannot be read: hand/text.png: ")
    assert said[-1] == "2 of the external folder's images left out; the run uses the other 2."
    for good in ("hand/a.png", "elbow/c.png"):
        (root / good).write_bytes(b"")
    with pytest.raises(ParameterError, match=r"no image of the folder could be read \(4 files\)"):
        folder_set(root)
