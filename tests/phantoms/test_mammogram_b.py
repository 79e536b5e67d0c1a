"""Tests for the family-B mammogram phantoms (issues 12 and 13: a second phantom family)."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from medlim.core.datasets import open_dataset
from medlim.core.datasets.check import check_dataset
from medlim.errors import ParameterError
from medlim.phantoms import registry
from medlim.phantoms.family_b.detector import BREAST_FLOOR, VENDORS, frame_for
from medlim.phantoms.mammogram_b import (
    LOOKALIKE_CODES,
    MIX_PROPORTIONS,
    VIEWS,
    MammogramMetadataB,
    draw_bac_grade,
    generate_mammogram_b,
    write_exams_b,
    write_mammogram_b,
)
from medlim.phantoms.mammogram_records import MammogramMetadata


def _digest(phantom) -> str:
    hasher = hashlib.sha256()
    for array in (phantom.image, phantom.bac_mask, phantom.breast_mask, phantom.pectoral_mask,
                  phantom.lookalike_mask, phantom.label_mask):
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def test_same_arguments_give_identical_images_and_other_seeds_differ() -> None:
    first = generate_mammogram_b(seed=3, index=2, bac="moderate")
    again = generate_mammogram_b(seed=3, index=2, bac="moderate")
    assert _digest(first) == _digest(again)
    assert first.metadata == again.metadata
    assert _digest(generate_mammogram_b(seed=4, index=2, bac="moderate")) != _digest(first)


def test_small_image_shape_dtypes_and_grey_levels() -> None:
    phantom = generate_mammogram_b(seed=0, index=0, bac="heavy", vendor="atlas")
    assert phantom.image.shape == (512, 416) and phantom.image.dtype == np.float32
    for mask in (phantom.bac_mask, phantom.breast_mask, phantom.pectoral_mask, phantom.label_mask):
        assert mask.shape == (512, 416) and mask.dtype == bool
    assert phantom.lookalike_mask.dtype == np.uint8
    meta = phantom.metadata
    assert isinstance(meta, MammogramMetadataB) and isinstance(meta, MammogramMetadata)
    assert meta.shape == (512, 416) and meta.pixel_spacing_mm == pytest.approx(232.0 / 512)
    assert 0.0 <= phantom.image.min() and phantom.image.max() <= 1.0
    outside = ~phantom.breast_mask & ~phantom.label_mask
    assert np.all(phantom.image[outside] == 0.0)  # the thesis preset's "non-zero" breast rule holds
    assert phantom.image[phantom.breast_mask].min() >= BREAST_FLOOR - 1e-6
    assert np.all(phantom.image[phantom.label_mask] == 1.0) and phantom.label_mask.any()
    # 14 bits: every grey level is a multiple of 1/16383 (up to float32 rounding)
    levels = phantom.image[phantom.breast_mask] * 16383.0
    assert np.abs(levels - np.rint(levels)).max() < 2e-3


def test_masks_are_consistent() -> None:
    for index in range(8):  # two patients, four views each
        phantom = generate_mammogram_b(seed=1, index=index, bac="heavy")
        bac, breast, pectoral = phantom.bac_mask, phantom.breast_mask, phantom.pectoral_mask
        assert bac.any() and not np.any(bac & ~breast) and not np.any(bac & pectoral)
        assert not np.any(phantom.lookalike_mask[bac])
        assert set(np.unique(phantom.lookalike_mask)) <= {0, *LOOKALIKE_CODES.values()}
        assert not np.any(phantom.label_mask & breast)
        assert not np.any(pectoral & ~breast)
        assert pectoral.any() == (phantom.metadata.view == "MLO")
        assert phantom.metadata.bac_area_px == int(bac.sum())
        assert phantom.metadata.bac_length_mm > 0
        # the chest wall touches the image edge on the breast's side
        edge = breast[:, 0] if phantom.metadata.laterality == "L" else breast[:, -1]
        assert edge.sum() > 0.3 * breast.shape[0]
        for lookalike in phantom.lookalikes:
            assert lookalike.kind in LOOKALIKE_CODES
            assert breast[int(lookalike.row), int(lookalike.col)]


def test_four_views_of_one_patient_share_grade_vendor_density_and_date() -> None:
    views = [generate_mammogram_b(seed=2, index=4 * 5 + k) for k in range(4)]
    metas = [p.metadata for p in views]
    assert [m.view_label for m in metas] == list(VIEWS)
    assert {m.patient_index for m in metas} == {5} and {m.patient_id for m in metas} == {"PHANTOMB-0006"}
    for field in ("bac_grade", "style", "density_class", "study_date", "birads_density", "bits_stored"):
        assert len({getattr(m, field) for m in metas}) == 1, field
    assert metas[0].bac_grade == draw_bac_grade(2, 5)
    # `view` picks one view of patient `index`: the same image as in the four-view order
    single = generate_mammogram_b(seed=2, index=5, view="RMLO")
    assert _digest(single) == _digest(views[3])


def test_bac_area_grows_with_grade() -> None:
    # Measured on this sample (seed 5, patients 0–3, LCC and RMLO, small): mean BAC area
    # none 0, mild 27.75 (12–61), moderate 186.75 (160–238), heavy 787.5 (369–1174) px.
    means = {}
    for grade in ("none", "mild", "moderate", "heavy"):
        areas = [generate_mammogram_b(seed=5, index=p, view=v, bac=grade).metadata.bac_area_px
                 for p in range(4) for v in ("LCC", "RMLO")]
        means[grade] = float(np.mean(areas))
        if grade != "none":
            assert min(areas) > 0, grade
    assert means["none"] == 0.0
    assert 0 < means["mild"] < means["moderate"] / 2 < means["heavy"] / 4


def test_mix_proportions_over_patients() -> None:
    for count, tolerance in ((200, 0.06), (2000, 0.025)):
        shares = Counter(draw_bac_grade(0, p) for p in range(count))
        for grade, expected in MIX_PROPORTIONS.items():
            assert abs(shares[grade] / count - expected) <= tolerance, (count, grade, shares)
    assert draw_bac_grade(0, 7, "heavy") == "heavy"
    # the images follow the cheap draw
    for patient in range(3):
        assert generate_mammogram_b(seed=0, index=patient, view="LCC").metadata.bac_grade == draw_bac_grade(0, patient)


def test_vendor_frames_at_full_size() -> None:
    spacings = {name: frame_for(vendor, "full")[2] for name, vendor in VENDORS.items()}
    assert min(spacings.values()) == 0.05 and max(spacings.values()) == 0.1
    assert {VENDORS[n].bits for n in VENDORS} == {12, 14}
    assert {VENDORS[n].photometric for n in VENDORS} == {"MONOCHROME1", "MONOCHROME2"}
    assert frame_for(VENDORS["borealis"], "full") == (2400, 1950, 0.1)
    phantom = generate_mammogram_b(seed=0, index=0, size="full", vendor="borealis", bac="mild")
    assert phantom.image.shape == (2400, 1950) and phantom.metadata.pixel_spacing_mm == 0.1
    assert phantom.bac_mask.any() and not np.any(phantom.bac_mask & ~phantom.breast_mask)


@pytest.mark.parametrize("arguments", [
    {"size": "huge"}, {"bac": "severe"}, {"view": "LXCC"}, {"density": "very"}, {"vendor": "acme"}, {"index": -1},
])
def test_bad_arguments_are_refused(arguments: dict) -> None:
    with pytest.raises(ParameterError):
        generate_mammogram_b(**{"seed": 0, **arguments})


def test_exam_folder_reads_as_a_bac_dataset(tmp_path: Path) -> None:
    csv_path = write_exams_b(tmp_path, seed=0, patients=3)
    with csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert {"image", "mask", "patient", "view", "laterality", "bac_grade"} <= set(rows[0])
    assert {r["view"] for r in rows} == {"CC", "MLO"} and {r["laterality"] for r in rows} == {"L", "R"}
    dataset = open_dataset(tmp_path, task="bac")
    assert dataset.layout == "segmentation_mask" and len(dataset) == 12 and not dataset.problems
    assert {item.patient for item in dataset.items} == {"PHANTOMB-0001", "PHANTOMB-0002", "PHANTOMB-0003"}
    for read_pixels in (False, True):
        check = check_dataset(dataset, task="bac", read_pixels=read_pixels, val_fraction=None)
        assert check.problems == (), check.problems
    # the PNG holds the image at 16 bits and the mask as 0/255
    phantom = generate_mammogram_b(seed=0, index=1)
    stored = cv2.imread(str(tmp_path / "PHANTOMB-0001_RCC.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, np.rint(phantom.image * 65535.0).astype(np.uint16))
    mask = cv2.imread(str(tmp_path / "PHANTOMB-0001_RCC_bac.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask > 0, phantom.bac_mask)


@pytest.mark.parametrize("vendor", ["borealis", "atlas"])  # MONOCHROME1 12 bits, MONOCHROME2 14 bits
def test_dicom_writer_round_trips_through_the_reader(tmp_path: Path, vendor: str) -> None:
    from medlim.core.io import read_image

    phantom = generate_mammogram_b(seed=1, index=0, vendor=vendor, bac="moderate")
    row = write_mammogram_b(phantom, tmp_path, fmt="dicom")[0]
    assert row["image"].endswith(".dcm") and row["photometric"] == VENDORS[vendor].photometric
    record = read_image(tmp_path / row["image"])
    assert record.metadata.pixel_spacing_mm == pytest.approx((phantom.metadata.pixel_spacing_mm,) * 2)
    shown = np.asarray(record.pixels, dtype=np.float64)
    step = 1.0 / ((1 << VENDORS[vendor].bits) - 1)
    # a SIGMOID VOI window keeps presentation values in [δ, 1 − δ], δ = 1e-3 (medlim.phantoms.dicom)
    delta = 1e-3 if VENDORS[vendor].window == "sigmoid" else 0.0
    assert np.abs(shown - phantom.image).max() <= 2 * step + delta


def test_registered_kind_generates_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.KINDS, "mammogram-b", "medlim.phantoms.mammogram_b:KIND")
    kind = registry.get_kind("mammogram-b")
    assert kind.name == "mammogram-b"
    phantom = next(kind.iter_phantoms(n=1, seed=0, bac="mild"))
    rows = kind.write_one(phantom, tmp_path, stem="ignored")
    assert rows[0]["image"] == "PHANTOMB-0001_LCC.png" and rows[0]["bac_grade"] == "mild"
