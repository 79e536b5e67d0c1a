"""DICOM SEG and TID 1500 SR of a BAC view (issue 16), on a phantom mammogram's header and a
hand-made mask and readout: opened with pydicom and highdicom, references checked in both modes,
the segment against the mask pixel for pixel, the SR against the readouts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlim.cli import main
from medlim.errors import ParameterError, UnsupportedFormatError
from medlim.mammography.readout import BacReadout
from medlim.mammography.report import WeightsSummary

#: What the source header says about the patient and the site; none of it may reach a de-identified file.
IDENTIFYING = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-778899",
    "PatientBirthDate": "19580214",
    "InstitutionName": "St Elsewhere Hospital",
    "AccessionNumber": "ACC-20150914-1",
    "ReferringPhysicianName": "House^Gregory",
}

WEIGHTS = WeightsSummary(name="scunet-bac", version="3", sha256="ab" * 32, preset="thesis", overlap_px=32,
                         merge="max", skip_background=True, output_activation="sigmoid",
                         intended_use="research")  # fmt: skip

READOUT = BacReadout(
    file="LCC", pm=123456.7891, am=0, sim=98765.4321, tam_x=0, tsim_x=4321.0625, x=100.0, threshold=0.35,
    intensity_rule=">", breast_area=400000, breast_area_rule="mask", tam_x_per_breast_area=None, am_mm2=None,
    tam_x_mm2=None, pixel_spacing_mm=(0.28, 0.28), spacing_source="PixelSpacing", tam_100=0, view="CC",
    laterality="L", study_date="2015-09-14", patient_key=None, weights="scunet-bac v3",
)  # fmt: skip


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "mammogram", "--out", str(folder), "--n", "1", "--seed", "5", "--size", "small",
                 "--quiet"]) == 0  # fmt: skip
    (path,) = folder.glob("*.dcm")
    return path


@pytest.fixture
def source(phantom_file: Path) -> pydicom.Dataset:
    from medlim.mammography.dicom_export import read_source_header

    header = read_source_header(phantom_file)
    for keyword, value in IDENTIFYING.items():
        setattr(header, keyword, value)
    return header


def _mask_and_readout(source: pydicom.Dataset) -> tuple[np.ndarray, BacReadout]:
    """A scattered mask (seeded) and a readout whose AM/TAM counts and mm² agree with it."""
    rng = np.random.default_rng(7)
    mask = rng.random((source.Rows, source.Columns)) > 0.995
    am, tam = int(mask.sum()), int(mask[:, ::2].sum())
    return mask, dataclasses.replace(READOUT, am=am, tam_x=tam, am_mm2=round(am * 0.0784, 4),
                                     tam_x_mm2=round(tam * 0.0784, 4), tam_100=tam)  # fmt: skip


def _pixels(path: Path, source_sop: str) -> np.ndarray:
    import highdicom as hd

    seg = hd.seg.segread(path)
    return seg.get_pixels_by_source_instance([source_sop], segment_numbers=[1])[0, :, :, 0]


def test_deidentified_seg_and_sr_copy_nothing_identifying(source: pydicom.Dataset, tmp_path: Path) -> None:
    import highdicom as hd

    from medlim.core.io.pseudonym import patient_key
    from medlim.mammography.dicom_export import export_bac_dicom

    mask, readout = _mask_and_readout(source)
    export = export_bac_dicom(source, mask, readout, WEIGHTS)
    seg_path, sr_path = export.write(tmp_path, "lcc")
    assert (seg_path, sr_path, export.linked) == (tmp_path / "lcc_seg.dcm", tmp_path / "lcc_sr.dcm", False)
    raw = seg_path.read_bytes() + sr_path.read_bytes()
    for value in [*IDENTIFYING.values(), source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID]:
        assert value.encode() not in raw, value
    key = patient_key(IDENTIFYING["PatientID"])
    for dataset in (pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)):
        assert dataset.PatientID == key and dataset.PatientName.family_name == key
        assert dataset.PatientIdentityRemoved == "YES" and dataset.StudyDate == source.StudyDate
        assert all(dataset.get(k, "") == "" for k in ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName",
                                                         "InstitutionName"))  # fmt: skip
    seg = hd.seg.segread(seg_path)
    (series,) = seg.ReferencedSeriesSequence
    (instance,) = series.ReferencedInstanceSequence
    new_uids = (seg.StudyInstanceUID, series.SeriesInstanceUID, instance.ReferencedSOPInstanceUID)
    assert all(uid.startswith("2.25.") for uid in new_uids)
    assert np.array_equal(_pixels(seg_path, instance.ReferencedSOPInstanceUID).astype(bool), mask)
    again = export_bac_dicom(source, mask, readout, WEIGHTS)  # the same view exported twice: the same objects
    assert [again.segmentation.StudyInstanceUID, again.segmentation.SOPInstanceUID, again.report.SOPInstanceUID] == [
        seg.StudyInstanceUID, seg.SOPInstanceUID, pydicom.dcmread(sr_path).SOPInstanceUID]
    other = export_bac_dicom(source, mask, dataclasses.replace(readout, threshold=0.5), WEIGHTS)
    assert other.segmentation.StudyInstanceUID == seg.StudyInstanceUID  # another cut-off: same study, new objects
    assert other.segmentation.SOPInstanceUID != seg.SOPInstanceUID and other.report.SOPInstanceUID != again.report.SOPInstanceUID


def test_segment_is_coded_and_identifies_the_algorithm(source: pydicom.Dataset) -> None:
    from medlim.mammography.dicom_export import export_bac_dicom

    mask, readout = _mask_and_readout(source)
    seg = export_bac_dicom(source, mask, readout, WEIGHTS).segmentation
    assert (seg.Modality, seg.SegmentationType, seg.Rows, seg.Columns) == ("SEG", "BINARY", source.Rows, source.Columns)
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "Breast arterial calcification" and segment.SegmentAlgorithmType == "AUTOMATIC"
    category, kind = segment.SegmentedPropertyCategoryCodeSequence[0], segment.SegmentedPropertyTypeCodeSequence[0]
    assert (category.CodeValue, category.CodingSchemeDesignator, category.CodeMeaning) == (
        "49755003", "SCT", "Morphologically Abnormal Structure")
    assert (kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning) == ("129759000", "SCT", "Vascular calcification")
    (algorithm,) = segment.SegmentationAlgorithmIdentificationSequence
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("scunet-bac", "3")
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert algorithm.AlgorithmParameters == "preset=thesis,cut-off t=0.35,intensity threshold X=100,intensity rule=I > X"


def test_linked_seg_and_sr_reference_the_source_and_keep_its_patient(source: pydicom.Dataset, tmp_path: Path) -> None:
    import highdicom as hd

    from medlim.mammography.dicom_export import export_bac_dicom

    mask, readout = _mask_and_readout(source)
    export = export_bac_dicom(source, mask, readout, WEIGHTS, link_to_source=True)
    seg_path, sr_path = export.write(tmp_path, "lcc")
    seg, sr = hd.seg.segread(seg_path), hd.sr.srread(sr_path)
    for dataset in (seg, sr):
        assert (dataset.StudyInstanceUID, dataset.PatientID, str(dataset.PatientName), dataset.AccessionNumber) == (
            source.StudyInstanceUID, "MRN-778899", "Doe^Jane", "ACC-20150914-1")
        assert not str(dataset.get("DeidentificationMethod", "")).startswith("medlim")  # the source's, if any
    (series,) = seg.ReferencedSeriesSequence
    assert (series.SeriesInstanceUID, series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID) == (
        source.SeriesInstanceUID, source.SOPInstanceUID)
    assert np.array_equal(_pixels(seg_path, source.SOPInstanceUID).astype(bool), mask)
    (group,) = sr.content.get_planar_roi_measurement_groups()
    frame = group.referenced_segmentation_frame
    assert (frame.referenced_sop_instance_uid, frame.referenced_segment_numbers) == (seg.SOPInstanceUID, [1])
    assert frame.source_image_for_segmentation.referenced_sop_instance_uid == source.SOPInstanceUID


def _values(sr_path: Path) -> dict[tuple[str, str], float]:
    import highdicom as hd

    (group,) = hd.sr.srread(sr_path).content.get_planar_roi_measurement_groups()
    return {(m.name.value, m.unit.value): m.value for m in group.get_measurements()}


def _items(dataset: pydicom.Dataset) -> list[pydicom.Dataset]:
    """Every content item of an SR, depth first."""
    found = []
    for item in dataset.get("ContentSequence", []):
        found += [item, *_items(item)]
    return found


def test_sr_holds_the_five_readouts_in_their_units(source: pydicom.Dataset, tmp_path: Path) -> None:
    import highdicom as hd

    from medlim.mammography.dicom_export import CODING_SCHEME, export_bac_dicom

    mask, readout = _mask_and_readout(source)
    _seg_path, sr_path = export_bac_dicom(source, mask, readout, WEIGHTS).write(tmp_path, "lcc")
    assert _values(sr_path) == {
        ("BAC-PM", "1"): 123456.7891, ("BAC-AM", "{pixels}"): readout.am, ("BAC-AM", "mm2"): readout.am_mm2,
        ("BAC-SIM", "1"): 98765.4321, ("BAC-TAMX", "{pixels}"): readout.tam_x,
        ("BAC-TAMX", "mm2"): readout.tam_x_mm2, ("BAC-TSIMX", "1"): 4321.0625, ("BAC-X", "1"): 100.0,
        ("BAC-T", "1"): 0.35, ("BAC-BREAST", "{pixels}"): 400000,
    }  # fmt: skip
    sr = hd.sr.srread(sr_path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == CODING_SCHEME
    (group,) = sr.content.get_planar_roi_measurement_groups()
    assert group.finding_type.value == "129759000"
    assert group.finding_sites[0].laterality.meaning == "Left"
    assert str(group.tracking_identifier) == "BAC LCC"
    texts = {(item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue) for item in _items(sr)
             if item.get("ValueType") == "TEXT"}  # fmt: skip
    assert {("Algorithm Name", "scunet-bac"), ("Algorithm Version", "3"), ("Tracking Identifier", "BAC LCC"),
            ("Algorithm Parameters", "preset=thesis")} <= texts  # fmt: skip


def test_sr_carries_the_region_filter_account_and_the_training_data_check(
    source: pydicom.Dataset, tmp_path: Path
) -> None:
    """What the page and the JSON say beside the readouts travels in the SR too: the filter's regions, drops and
    area (px and mm²), the check's score and limit, and its verdict and the filter's floor as parameters."""
    from medlim.core.familiarity import FamiliarityResult
    from medlim.mammography.dicom_export import export_bac_dicom
    from medlim.mammography.regions import FilterEffect

    mask, readout = _mask_and_readout(source)
    readout = dataclasses.replace(
        readout, region_filter=FilterEffect(floor=0.2, regions=5, dropped=2, dropped_px=305, dropped_mm2=1.75),
        unlike_training=FamiliarityResult(score=12.34, threshold=9.5, flagged=True, reason="unlike"),
    )
    _seg_path, sr_path = export_bac_dicom(source, mask, readout, WEIGHTS).write(tmp_path, "lcc")
    values = _values(sr_path)
    assert {key: values[key] for key in values if key[0].startswith(("BAC-FILT", "BAC-UNLIKE"))} == {
        ("BAC-FILTN", "1"): 5, ("BAC-FILTD", "1"): 2, ("BAC-FILTA", "{pixels}"): 305, ("BAC-FILTA", "mm2"): 1.75,
        ("BAC-UNLIKE", "1"): 12.34, ("BAC-UNLIKET", "1"): 9.5,
    }  # fmt: skip
    texts = {item.TextValue for item in _items(pydicom.dcmread(sr_path)) if item.get("ValueType") == "TEXT"}
    assert {"region filter floor=0.2", "unlike training data=flagged"} <= texts
    # Without a spacing the dropped area is in pixels only; a view the check passes says so.
    readout = dataclasses.replace(
        readout, region_filter=FilterEffect(floor=0.2, regions=1, dropped=0, dropped_px=0, dropped_mm2=None),
        unlike_training=FamiliarityResult(score=3.0, threshold=9.5, flagged=False),
    )
    _seg_path, sr_path = export_bac_dicom(source, mask, readout, WEIGHTS).write(tmp_path / "2", "lcc")
    assert [key for key in _values(sr_path) if key[0] == "BAC-FILTA"] == [("BAC-FILTA", "{pixels}")]
    texts = {item.TextValue for item in _items(pydicom.dcmread(sr_path)) if item.get("ValueType") == "TEXT"}
    assert "unlike training data=not flagged" in texts


def test_without_a_spacing_areas_are_in_pixels_only_and_an_empty_mask_is_kept(
    source: pydicom.Dataset, tmp_path: Path
) -> None:
    from medlim.mammography.dicom_export import export_bac_dicom

    mask = np.zeros((source.Rows, source.Columns), dtype=np.uint8)
    readout = dataclasses.replace(READOUT, pixel_spacing_mm=None, spacing_source=None)
    seg_path, sr_path = export_bac_dicom(source, mask, readout, WEIGHTS).write(tmp_path, "empty")
    assert {unit for _name, unit in _values(sr_path)} == {"1", "{pixels}"}
    sop = pydicom.dcmread(seg_path).ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert not _pixels(seg_path, sop).any()
    seg_only, no_sr = export_bac_dicom(source, mask, readout, WEIGHTS).write(tmp_path / "seg", "v", report=False)
    assert seg_only.is_file() and no_sr is None and sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["v_seg.dcm"]


def test_a_png_and_a_wrong_sized_mask_are_refused_clearly(source: pydicom.Dataset, phantom_file: Path) -> None:
    import cv2

    from medlim.mammography.dicom_export import export_bac_dicom, read_source_header

    ok, png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    with pytest.raises(UnsupportedFormatError, match=r"^LCC.png is not a DICOM file: DICOM SEG and SR reference"):
        read_source_header(png.tobytes(), name="LCC.png")
    with pytest.raises(ParameterError, match=r"the mask is \(10, 10\) pixels but the source image is \(1024, 832\)"):
        export_bac_dicom(source, np.zeros((10, 10), bool), READOUT, WEIGHTS)
    assert read_source_header(phantom_file.read_bytes()).SOPInstanceUID == pydicom.dcmread(phantom_file).SOPInstanceUID
