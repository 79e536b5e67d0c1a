"""BAC results as DICOM a PACS viewer reads: a Segmentation and a TID 1500 Comprehensive SR (issue 16).

What a radiologist's viewer (OHIF, 3D Slicer, a vendor workstation) can put back
over the mammogram:

* a **DICOM Segmentation** (binary, one segment "Breast arterial calcification":
  segmented property category SNOMED CT 49755003 "Morphologically Abnormal
  Structure", type SNOMED CT 129759000 "Vascular calcification", the BI-RADS
  calcification type of CID 6010 — SNOMED CT has no concept narrower than it for
  arterial calcification of the breast); its pixels are the mask ``p > t`` the
  readouts were counted on, pixel for pixel;
* a **Comprehensive SR** following TID 1500 (Measurement Report) with one
  measurement group per view (TID 1410, referencing the SEG's segment and the
  source image): PM, AM, SIM, TAM_X and TSIM_X (thesis §3.3.2, eq. 3.8–3.9) —
  AM and TAM_X in pixels (UCUM ``{pixels}``) and, with a pixel spacing, in mm²
  (UCUM ``mm2``), PM, SIM and TSIM_X as unitless sums (UCUM ``1``) — plus the
  intensity threshold X, the cut-off t and the breast area; when the weights carry a
  region filter, what it judged and dropped (regions, and the area in pixels and
  mm²), and when they carry a training-data check, its score and limit (whether
  the view was flagged is an algorithm parameter). The readouts have no
  standard codes, so they are coded in the private scheme
  :data:`CODING_SCHEME` (declared in the SR's Coding Scheme Identification).

Both carry the weights as the algorithm identification (name, version, preset;
family "Artificial Intelligence") and are written with highdicom. Two modes:

* **de-identified** (the default): built on a copy of the source header that
  keeps only what the objects need — image geometry, view, laterality, pixel
  spacing and the study date (the report keeps it too) — with new Study, Series
  and SOP Instance UIDs (keyed hashes of the source's, so the four views of an
  exam stay one study) and the pseudonymous patient key
  (:func:`medlim.core.io.pseudonym.patient_key`) as PatientID and PatientName.
  No name, birth date, institution, accession number or physician is copied.
* **link to source** ("return to PACS"): references the source's UIDs and keeps
  its patient and study modules, so a viewer overlays the SEG on the original.

The SEG's and SR's own UIDs are fixed by the image, the weights, the cut-off, X
and the mask (a hash under pydicom's UID root): exporting the same view twice
gives the same objects, so a PACS replaces rather than duplicates them, and an
SR downloaded after its SEG still references it.

DICOM sources only: a PNG or TIFF has no header to reference
(:func:`read_source_header` refuses it with a clear message).
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlim.errors import InputError, ParameterError, UnsupportedFormatError

if TYPE_CHECKING:  # pragma: no cover
    from pydicom.dataset import Dataset

    from medlim.mammography.readout import AnalysedView, BacReadout
    from medlim.mammography.report import WeightsSummary
    from medlim.settings import Settings

__all__ = [
    "CODING_SCHEME",
    "SEGMENT_LABEL",
    "BacDicomExport",
    "bac_measurement_report",
    "bac_segmentation",
    "dataset_bytes",
    "deidentified_header",
    "export_bac_dicom",
    "export_view_dicom",
    "read_source_header",
]

#: Private coding scheme of the BAC readouts (DICOM PS3.16 8.2: private schemes start with "99").
CODING_SCHEME = "99MEDLIM"

#: The segment's label.
SEGMENT_LABEL = "Breast arterial calcification"

#: Series numbers of the derived objects (high, so they sort after the acquisition's series).
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902

# Attributes the de-identified header keeps: geometry, view and spacing (no identity, no free text).
_KEPT = (
    "SOPClassUID", "Modality", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "ImageLaterality", "Laterality",
    "ViewPosition", "ViewCodeSequence", "PatientOrientation", "BodyPartExamined", "AnatomicRegionSequence",
    "PixelSpacing", "ImagerPixelSpacing", "EstimatedRadiographicMagnificationFactor",
    "PresentationIntentType", "StudyDate", "ImageType",
)  # fmt: skip


def read_source_header(source: bytes | str | Path, *, name: str = "") -> Dataset:
    """The DICOM header of a source image (pixel data not read).

    Args:
        source: the file's bytes or path.
        name: the name to put in messages (default: the path's name).

    Raises:
        UnsupportedFormatError: the source is not a DICOM file (a PNG, a TIFF, ...).
        InputError: the file cannot be read.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    label = name or (Path(source).name if isinstance(source, (str, Path)) else "This file")
    handle: Any = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        return pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise UnsupportedFormatError(
            f"{label} is not a DICOM file: DICOM SEG and SR reference the source image's DICOM header, "
            "so they are made from DICOM mammograms only (the mask PNG and the CSV/JSON readouts still are)."
        ) from exc
    except OSError as exc:
        raise InputError(f"{label} cannot be read ({exc.strerror or type(exc).__name__}).") from exc


def _pseudonymous_uid(uid: str, secret: bytes) -> str:
    """``2.25.<128-bit integer>`` (PS3.5 B.2) from a keyed hash of ``uid``: the same source UID always
    gives the same new UID in one installation, and the source's cannot be recovered from it."""
    digest = hmac.new(secret, b"uid:" + uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _derived_uid(*parts: object) -> str:
    """A UID fixed by ``parts`` (pydicom's root + a hash): the same view, weights, cut-off and mask give the
    same SEG and SR UIDs, so exporting twice (or the SR after the SEG, on a page) never splits a reference."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medlim-bac-export", *map(str, parts)]))


def _export_keys(reference: Dataset, mask: np.ndarray, readout: BacReadout, weights: WeightsSummary) -> tuple:
    """What fixes the derived objects' UIDs: the image, the weights, the settings and the mask itself."""
    digest = hashlib.sha256(np.packbits(np.asarray(mask) != 0).tobytes()).hexdigest()
    settings = (weights.name, weights.version, weights.sha256, readout.threshold, readout.x, readout.intensity_rule)
    return (str(reference.StudyInstanceUID), *settings), (str(reference.SOPInstanceUID), *settings, digest)


def deidentified_header(source: Dataset, *, settings: Settings | None = None) -> Dataset:
    """A copy of ``source`` with only the attributes a SEG and SR need, none identifying.

    Kept: SOP class, modality, image geometry, laterality, view, pixel spacing and
    the study date. New: Study, Series and SOP Instance UIDs (keyed hashes of the
    source's), PatientID = the pseudonymous patient key and PatientName = the key
    as the family name (both empty when the source has no PatientID). Empty: birth date, sex, accession number,
    study ID and time, referring physician. Flagged: Patient Identity Removed.

    Raises:
        InputError: the source lacks a SOP class, SOP instance, study or series UID.
    """
    from pydicom.dataset import Dataset

    from medlim.core.io.pseudonym import patient_key, pseudonym_secret

    missing = [k for k in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID") if k not in source]
    if missing:
        raise InputError(f"the source DICOM lacks {', '.join(missing)}; a SEG cannot reference it.")
    secret = pseudonym_secret(settings)
    header = Dataset()
    for keyword in _KEPT:
        if keyword in source:
            header[keyword] = source[keyword]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(header, keyword, _pseudonymous_uid(str(source[keyword].value), secret))
    key = patient_key(str(source.get("PatientID") or ""), settings=settings) or ""
    header.PatientID = key
    header.PatientName = f"{key}^" if key else ""  # the key as the family name (a one-part name needs the caret)
    for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyTime",
                    "ReferringPhysicianName"):  # fmt: skip
        setattr(header, keyword, "")
    _flag_deidentified(header)
    return header


def _flag_deidentified(dataset: Dataset) -> None:
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "medlim: pseudonymous key, keyed-hash UIDs, no identifiers"


def _algorithm_parameters(weights: WeightsSummary, readout: BacReadout) -> dict[str, str]:
    parameters = {
        "preset": weights.preset,
        "cut-off t": f"{readout.threshold:g}",
        "intensity threshold X": f"{readout.x:g}",
        "intensity rule": f"I {readout.intensity_rule} X",
    }
    if readout.region_filter is not None:
        parameters["region filter floor"] = f"{readout.region_filter.floor:g}"
    if readout.unlike_training is not None:
        parameters["unlike training data"] = "flagged" if readout.unlike_training.flagged else "not flagged"
    return parameters


def _segment_description(weights: WeightsSummary, readout: BacReadout) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure"),
        segmented_property_type=hd.sr.CodedConcept("129759000", "SCT", "Vascular calcification"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=weights.name, family=codes.cid7162.ArtificialIntelligence, version=weights.version,
            parameters=_algorithm_parameters(weights, readout),
        ),
        anatomic_regions=[codes.SCT.Breast],
    )  # fmt: skip


def bac_segmentation(reference: Dataset, mask: np.ndarray, readout: BacReadout, weights: WeightsSummary) -> Any:
    """The binary DICOM Segmentation of one view's BAC mask.

    Args:
        reference: the header the SEG references and copies its patient and study
            from (the source's, or :func:`deidentified_header` of it).
        mask: ``np.ndarray[Rows, Columns]`` of bool or 0/nonzero: the mask ``p > t``.
        readout: the view's readouts (cut-off and X go into the algorithm parameters).
        weights: the weights (name, version and preset identify the algorithm).

    Returns:
        A ``highdicom.seg.Segmentation`` (one frame, one segment).

    Raises:
        ParameterError: the mask does not have the image's size.
        InputError: the source holds several frames.
    """
    import highdicom as hd

    from medlim import __version__

    shape = (int(reference.Rows), int(reference.Columns))
    if np.shape(mask) != shape:
        raise ParameterError(f"the mask is {np.shape(mask)} pixels but the source image is {shape}.")
    if int(reference.get("NumberOfFrames") or 1) > 1:
        raise InputError("the source image has several frames; a BAC SEG is made for single-frame mammograms.")
    study_key, image_key = _export_keys(reference, mask, readout, weights)
    return hd.seg.Segmentation(
        source_images=[reference],
        pixel_array=np.asarray(mask) != 0,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(weights, readout)],
        series_instance_uid=_derived_uid("seg-series", *study_key),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=_derived_uid("seg", *image_key),
        instance_number=1,
        manufacturer="medlim",
        manufacturer_model_name=f"medlim BAC ({weights.name})",
        software_versions=__version__,
        device_serial_number="none",
        series_description="BAC segmentation (research use only)",
        content_label="BAC",
        content_description=f"SCU-Net BAC mask p > {readout.threshold:g}",
        omit_empty_frames=False,
    )


#: (code value, meaning) of each readout in :data:`CODING_SCHEME`.
READOUT_CODES: dict[str, tuple[str, str]] = {
    "pm": ("BAC-PM", "PM: probability mass"),
    "am": ("BAC-AM", "AM: area mask"),
    "sim": ("BAC-SIM", "SIM: sum of intensities in the mask"),
    "tam_x": ("BAC-TAMX", "TAM_X: thresholded area mask"),
    "tsim_x": ("BAC-TSIMX", "TSIM_X: thresholded sum of intensities"),
    "x": ("BAC-X", "X: intensity threshold"),
    "threshold": ("BAC-T", "t: probability cut-off"),
    "breast_area": ("BAC-BREAST", "Breast area"),
    "filter_regions": ("BAC-FILTN", "Region filter: regions judged"),
    "filter_dropped": ("BAC-FILTD", "Region filter: regions dropped as tissue"),
    "filter_dropped_area": ("BAC-FILTA", "Region filter: area dropped"),
    "unlike_score": ("BAC-UNLIKE", "Unlike-training-data score"),
    "unlike_threshold": ("BAC-UNLIKET", "Unlike-training-data limit"),
}

#: UCUM units of the measurements: (code value, meaning).
UNITS: dict[str, tuple[str, str]] = {"mm2": ("mm2", "square millimeter"), "pixels": ("{pixels}", "pixels"),
                                     "1": ("1", "no units")}  # fmt: skip


def _readout_values(readout: BacReadout) -> list[tuple[str, float, str]]:
    """``(readout key, value, unit key)`` of each measurement of a view (mm² only with a spacing)."""
    values: list[tuple[str, float, str]] = [
        ("pm", readout.pm, "1"),
        ("am", readout.am, "pixels"),
        ("sim", readout.sim, "1"),
        ("tam_x", readout.tam_x, "pixels"),
        ("tsim_x", readout.tsim_x, "1"),
        ("x", readout.x, "1"),
        ("threshold", readout.threshold, "1"),
        ("breast_area", readout.breast_area, "pixels"),
    ]
    if readout.am_mm2 is not None and readout.tam_x_mm2 is not None:
        values[2:2] = [("am", readout.am_mm2, "mm2")]
        values[5:5] = [("tam_x", readout.tam_x_mm2, "mm2")]
    effect = readout.region_filter
    if effect is not None:
        values += [("filter_regions", effect.regions, "1"), ("filter_dropped", effect.dropped, "1"),
                   ("filter_dropped_area", effect.dropped_px, "pixels")]  # fmt: skip
        if effect.dropped_mm2 is not None:
            values.append(("filter_dropped_area", effect.dropped_mm2, "mm2"))
    if readout.unlike_training is not None:
        values += [("unlike_score", readout.unlike_training.score, "1"),
                   ("unlike_threshold", readout.unlike_training.threshold, "1")]  # fmt: skip
    return values


def _measurements(readout: BacReadout, algorithm: Any) -> list[Any]:
    import highdicom as hd

    return [
        hd.sr.Measurement(
            name=hd.sr.CodedConcept(READOUT_CODES[key][0], CODING_SCHEME, READOUT_CODES[key][1]),
            value=float(value),
            unit=hd.sr.CodedConcept(UNITS[unit][0], "UCUM", UNITS[unit][1]),
            algorithm_id=algorithm,
        )
        for key, value, unit in _readout_values(readout)
    ]


def _measurement_group(reference: Dataset, segmentation: Any, readout: BacReadout, weights: WeightsSummary) -> Any:
    """TID 1410: the view's measurements on the SEG's segment 1 of the source image."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.sr.AlgorithmIdentification(
        name=weights.name, version=weights.version, family=codes.cid7162.ArtificialIntelligence,
        parameters=[f"{k}={v}" for k, v in _algorithm_parameters(weights, readout).items()],
    )  # fmt: skip
    side = {"L": codes.SCT.Left, "R": codes.SCT.Right}.get(str(reference.get("ImageLaterality") or readout.laterality))
    segment = hd.sr.ReferencedSegmentationFrame(
        sop_class_uid=segmentation.SOPClassUID, sop_instance_uid=segmentation.SOPInstanceUID, frame_number=1,
        segment_number=1, source_image=hd.sr.SourceImageForSegmentation.from_source_image(reference),
    )  # fmt: skip
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_derived_uid("tracking", segmentation.SOPInstanceUID),
                                                     identifier=f"BAC {readout.view_name or 'view'}"),
        referenced_segment=segment,
        finding_type=hd.sr.CodedConcept("129759000", "SCT", "Vascular calcification"),
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Breast, laterality=side)],
        measurements=_measurements(readout, algorithm),
    )


def bac_measurement_report(
    reference: Dataset, segmentation: Any, readout: BacReadout, weights: WeightsSummary
) -> Any:
    """The TID 1500 Comprehensive SR of one view: one measurement group on the SEG's segment.

    Args:
        reference: the header the SEG was built on (source or de-identified copy).
        segmentation: the view's SEG (:func:`bac_segmentation`).
        readout: the view's readouts.
        weights: the weights (algorithm identification).

    Returns:
        A ``highdicom.sr.ComprehensiveSR``.
    """
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=_derived_uid("device", weights.name, weights.version,
                                                                        weights.sha256),
                                                       name=f"medlim {weights.name} v{weights.version}")
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                                      observer_identifying_attributes=device),
    )  # fmt: skip
    content = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.SCT.Mammography,
        imaging_measurements=[_measurement_group(reference, segmentation, readout, weights)],
    )
    report = hd.sr.ComprehensiveSR(
        evidence=[reference, segmentation], content=content[0],
        series_instance_uid=_derived_uid("sr-series", segmentation.SeriesInstanceUID), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=_derived_uid("sr", segmentation.SOPInstanceUID), instance_number=1, manufacturer="medlim",
        series_description="BAC readouts (research use only)",
    )  # fmt: skip
    scheme = Dataset()
    scheme.CodingSchemeDesignator = CODING_SCHEME
    scheme.CodingSchemeName = "medlim BAC readouts (thesis 3.3.2, eq. 3.8-3.9)"
    scheme.CodingSchemeResponsibleOrganization = "medlim"
    report.CodingSchemeIdentificationSequence = [scheme]
    return report


@dataclass(frozen=True)
class BacDicomExport:
    """One view's DICOM SEG and SR.

    Attributes:
        segmentation: the ``highdicom.seg.Segmentation``.
        report: the ``highdicom.sr.ComprehensiveSR`` referencing it.
        linked: built on the source's own header ("return to PACS"), else on a de-identified copy.
    """

    segmentation: Any
    report: Any
    linked: bool

    def write(self, folder: str | Path, stem: str, *, report: bool = True) -> tuple[Path, Path | None]:
        """Write ``<stem>_seg.dcm`` and (with ``report``) ``<stem>_sr.dcm`` into ``folder`` (created when missing).

        The SEG is always written: the SR references it.

        Returns:
            The SEG's path and the SR's (``None`` without ``report``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        seg_path = folder / f"{stem}_seg.dcm"
        seg_path.write_bytes(dataset_bytes(self.segmentation))
        if not report:
            return seg_path, None
        sr_path = folder / f"{stem}_sr.dcm"
        sr_path.write_bytes(dataset_bytes(self.report))
        return seg_path, sr_path


def dataset_bytes(dataset: Dataset) -> bytes:
    """A data set as DICOM file bytes (preamble, file meta; what a download or ``write`` holds)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def export_bac_dicom(
    source: Dataset,
    mask: np.ndarray,
    readout: BacReadout,
    weights: WeightsSummary,
    *,
    link_to_source: bool = False,
    settings: Settings | None = None,
) -> BacDicomExport:
    """One view's SEG and SR, de-identified (default) or linked to the source study.

    Args:
        source: the source image's header (:func:`read_source_header`).
        mask: ``np.ndarray[Rows, Columns]``, the BAC mask ``p > t`` the readouts count.
        readout: the view's readouts at that cut-off.
        weights: the weights that produced them.
        link_to_source: reference the source's UIDs and keep its patient and study
            modules ("return to PACS"); else build on :func:`deidentified_header`.
        settings: settings holding the pseudonym secret (current settings when ``None``).

    Raises:
        ParameterError: the mask's size differs from the image's.
        InputError: the source lacks the UIDs to reference, or holds several frames.
    """
    reference = source if link_to_source else deidentified_header(source, settings=settings)
    segmentation = bac_segmentation(reference, mask, readout, weights)
    report = bac_measurement_report(reference, segmentation, readout, weights)
    if not link_to_source:
        for dataset in (segmentation, report):
            _flag_deidentified(dataset)
    return BacDicomExport(segmentation=segmentation, report=report, linked=link_to_source)


def export_view_dicom(
    view: AnalysedView,
    source: bytes | str | Path,
    weights: WeightsSummary,
    *,
    link_to_source: bool = False,
    settings: Settings | None = None,
) -> BacDicomExport:
    """The SEG and SR of a view analysed at a chosen cut-off (the mammography page's downloads).

    Args:
        view: the analysed view; its mask is ``p > t`` at its chosen cut-off.
        source: the source file's bytes or path.
        weights: the weights that produced the view.
        link_to_source: as :func:`export_bac_dicom`.
        settings: settings holding the pseudonym secret.

    Raises:
        UnsupportedFormatError: the source is not DICOM.
    """
    header = read_source_header(source, name=view.record.name or view.download_label)
    return export_bac_dicom(header, view.current.mask(), view.readout(), weights, link_to_source=link_to_source,
                            settings=settings)  # fmt: skip
