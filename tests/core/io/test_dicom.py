"""DICOM chain in standard order, colour, frames, bits stored, metadata: hand-computed cases."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from medlim.core.io import FOR_PROCESSING_WARNING, read_image
from medlim.errors import CorruptFileError, MultiFrameError, ParameterError

STORED_2X2 = np.array([[0, 100], [200, 1000]], dtype=np.uint16)
# Rescale slope 2, intercept -100 → raw [[-100, 100], [300, 1900]].
RAW_2X2 = np.array([[-100.0, 100.0], [300.0, 1900.0]], dtype=np.float32)
# LINEAR window c = 100, w = 401: black edge -100.5, white edge 299.5, slope 1/400.
WINDOWED_2X2 = np.array([[0.5 / 400.0, 200.5 / 400.0], [1.0, 1.0]], dtype=np.float32)


def _read(data: bytes, **kwargs):  # noqa: ANN202 - test helper
    return read_image(data, name="test.dcm", **kwargs)


def test_rescale_then_linear_window(make_dicom) -> None:
    record = _read(make_dicom(STORED_2X2, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=401))
    assert record.raw.dtype == np.float32 and record.pixels.dtype == np.float32
    np.testing.assert_array_equal(record.raw, RAW_2X2)
    np.testing.assert_allclose(record.pixels, WINDOWED_2X2, atol=1e-7)
    # to_uint8: round(x * 255)
    np.testing.assert_array_equal(record.to_uint8(), [[0, 128], [255, 255]])


def test_first_window_is_used_when_several(make_dicom) -> None:
    data = make_dicom(
        STORED_2X2, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=[100, 5000], WindowWidth=[401, 10]
    )
    np.testing.assert_allclose(_read(data).pixels, WINDOWED_2X2, atol=1e-7)


def test_linear_exact_and_sigmoid_from_the_file(make_dicom) -> None:
    exact = _read(make_dicom(STORED_2X2, WindowCenter=100, WindowWidth=200, VOILUTFunction="LINEAR_EXACT"))
    # x <= 0 → 0; (x - 100)/200 + 0.5; x > 200 → 1
    np.testing.assert_allclose(exact.pixels, [[0.0, 0.5], [1.0, 1.0]], atol=1e-7)
    sigmoid = _read(make_dicom(STORED_2X2, WindowCenter=100, WindowWidth=400, VOILUTFunction="SIGMOID"))
    expected = 1.0 / (1.0 + np.exp(-4.0 * (STORED_2X2.astype(float) - 100.0) / 400.0))
    np.testing.assert_allclose(sigmoid.pixels, expected, atol=1e-6)


def test_without_voi_the_value_range_is_stretched(make_dicom) -> None:
    record = _read(make_dicom(STORED_2X2, RescaleSlope=2, RescaleIntercept=-100))
    np.testing.assert_allclose(record.pixels, (RAW_2X2 + 100.0) / 2000.0, atol=1e-7)


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_wins_over_window(make_dicom, vr: str) -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    entries = [0, 50, 100, 255]
    item.add_new(0x00283006, vr, entries if vr == "US" else np.array(entries, dtype="<u2").tobytes())
    stored = np.array([[0, 1], [2, 10]], dtype=np.uint16)  # 10 is past the table: last entry
    record = _read(make_dicom(stored, VOILUTSequence=[item], WindowCenter=1, WindowWidth=1))
    np.testing.assert_allclose(record.pixels, [[0.0, 50 / 255], [100 / 255, 1.0]], atol=1e-7)


def test_monochrome1_is_inverted(make_dicom) -> None:
    common = dict(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=401)
    record = _read(make_dicom(STORED_2X2, photometric="MONOCHROME1", **common))
    np.testing.assert_allclose(record.pixels, 1.0 - WINDOWED_2X2, atol=1e-7)
    np.testing.assert_array_equal(record.raw, RAW_2X2)  # raw is before inversion
    assert record.metadata.photometric == "MONOCHROME1"


def test_inverse_presentation_lut_inverts_once(make_dicom) -> None:
    common = dict(RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=401)
    mono2_inverse = _read(make_dicom(STORED_2X2, PresentationLUTShape="INVERSE", **common))
    np.testing.assert_allclose(mono2_inverse.pixels, 1.0 - WINDOWED_2X2, atol=1e-7)
    # MONOCHROME1 with INVERSE (what the DX/MG IODs require) is one inversion, not two.
    mono1_inverse = _read(make_dicom(STORED_2X2, photometric="MONOCHROME1", PresentationLUTShape="INVERSE", **common))
    np.testing.assert_allclose(mono1_inverse.pixels, 1.0 - WINDOWED_2X2, atol=1e-7)
    identity = _read(make_dicom(STORED_2X2, PresentationLUTShape="IDENTITY", **common))
    np.testing.assert_allclose(identity.pixels, WINDOWED_2X2, atol=1e-7)


def test_bits_stored_masks_high_bits(make_dicom) -> None:
    stored = np.array([[0xF00A, 0x000A], [0x0FFF, 0x1000]], dtype=np.uint16)
    record = _read(make_dicom(stored, bits_stored=12))
    np.testing.assert_array_equal(record.raw, [[10, 10], [4095, 0]])


def test_bits_stored_sign_extension(make_dicom) -> None:
    patterns = np.array([[0x0FFF, 0x0800], [0xF7FF, 0x0001]], dtype=np.uint16)
    record = _read(make_dicom(patterns.view(np.int16), bits_stored=12, signed=True, RescaleIntercept=1000))
    np.testing.assert_array_equal(record.raw, [[-1 + 1000, -2048 + 1000], [2047 + 1000, 1 + 1000]])


def test_big_endian_file_matches_little_endian() -> None:
    little = read_image(get_testdata_file("MR_small.dcm"))
    big = read_image(get_testdata_file("MR_small_bigendian.dcm"))
    np.testing.assert_array_equal(little.raw, big.raw)
    np.testing.assert_array_equal(little.pixels, big.pixels)


@pytest.mark.parametrize(
    "compressed", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_implicit.dcm"]
)
def test_lossless_syntaxes_decode_to_the_uncompressed_values(compressed: str) -> None:
    reference = read_image(get_testdata_file("MR_small.dcm"))
    record = read_image(get_testdata_file(compressed))
    np.testing.assert_array_equal(record.raw, reference.raw)


def test_12_bit_jpeg_extended_matches_gdcm_reading_the_file() -> None:
    # pydicom's plugins decline 12-bit JPEG Extended; the reader reaches GDCM's 12-bit codec.
    # Oracle: GDCM's own ImageReader on the file gives 244 242 249 260 218 at row 420, cols 140..144.
    record = read_image(get_testdata_file("JPEG-lossy.dcm"))
    np.testing.assert_array_equal(record.raw[420, 140:145], [244, 242, 249, 260, 218])
    np.testing.assert_array_equal(record.raw[230, 120:125], [95, 108, 125, 135, 136])
    assert record.metadata.bits_stored == 12


def test_rgb_and_ybr_become_rgb() -> None:
    for name in ("SC_rgb_small_odd.dcm", "SC_rgb_rle.dcm", "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
        path = get_testdata_file(name)
        record = read_image(path)
        expected = pydicom.dcmread(path).pixel_array  # pydicom converts YBR to RGB
        assert record.pixels.shape == expected.shape and record.is_color
        np.testing.assert_allclose(record.pixels, expected / 255.0, atol=1e-6)


def test_palette_colour_goes_through_its_palette() -> None:
    path = get_testdata_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    # Red palette by hand: 16-bit entries, first mapped value from the descriptor.
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    red = np.frombuffer(ds.RedPaletteColorLookupTableData, dtype="<u2")
    expected_red = red[np.clip(stored.astype(int) - first, 0, red.size - 1)] / 65535.0
    record = read_image(path)
    assert record.pixels.shape == (*stored.shape, 3)
    np.testing.assert_allclose(record.pixels[..., 0], expected_red, atol=1e-6)


def test_multi_frame_needs_a_frame_choice() -> None:
    path = get_testdata_file("rtdose.dcm")
    with pytest.raises(MultiFrameError, match=r"15 frames.*frame=0\.\.14"):
        read_image(path)
    record = read_image(path, frame=3)
    np.testing.assert_array_equal(record.raw, pydicom.dcmread(path).pixel_array[3])
    assert (record.metadata.number_of_frames, record.metadata.frame_index) == (15, 3)
    with pytest.raises(ParameterError, match="0..14"):
        read_image(path, frame=15)


def test_preamble_less_dicom_is_read(make_dicom) -> None:
    record = _read(make_dicom(STORED_2X2, preamble=False, WindowCenter=100, WindowWidth=401,
                              RescaleSlope=2, RescaleIntercept=-100))
    np.testing.assert_allclose(record.pixels, WINDOWED_2X2, atol=1e-7)


def test_for_processing_is_flagged(make_dicom) -> None:
    by_intent = _read(make_dicom(STORED_2X2, PresentationIntentType="FOR PROCESSING"))
    assert by_intent.metadata.presentation_intent == "FOR PROCESSING"
    assert by_intent.metadata.warnings[0] == FOR_PROCESSING_WARNING
    by_class = _read(make_dicom(STORED_2X2, SOPClassUID="1.2.840.10008.5.1.4.1.1.1.2.1"))
    assert by_class.metadata.presentation_intent == "FOR PROCESSING"
    presentation = _read(make_dicom(STORED_2X2, PresentationIntentType="FOR PRESENTATION"))
    assert presentation.metadata.presentation_intent == "FOR PRESENTATION"
    assert presentation.metadata.warnings == ()


@pytest.mark.parametrize(
    ("attributes", "spacing", "source", "label"),
    [
        ({"PixelSpacing": [0.07, 0.08], "ImagerPixelSpacing": [0.1, 0.1]}, (0.07, 0.08), "PixelSpacing",
         "at the patient/breast"),
        ({"ImagerPixelSpacing": [0.1, 0.1], "EstimatedRadiographicMagnificationFactor": 1.25}, (0.08, 0.08),
         "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor", "at the breast"),
        ({"ImagerPixelSpacing": [0.1, 0.05]}, (0.1, 0.05), "ImagerPixelSpacing", "at the detector"),
        ({}, None, None, None),
        ({"PixelSpacing": [0.0, 0.1]}, None, None, None),  # invalid: never guessed
    ],
)
def test_pixel_spacing(make_dicom, attributes, spacing, source, label) -> None:
    meta = _read(make_dicom(STORED_2X2, **attributes)).metadata
    if spacing is None:
        assert meta.pixel_spacing_mm is None and meta.pixel_spacing_source is None
        assert meta.pixel_spacing_label is None
    else:
        np.testing.assert_allclose(meta.pixel_spacing_mm, spacing)
        assert meta.pixel_spacing_source == source
        assert meta.pixel_spacing_label.startswith(label)


def test_a_spacing_the_file_states_badly_or_at_the_detector_is_said(make_dicom) -> None:
    fallback = _read(make_dicom(STORED_2X2, PixelSpacing=[0.0, 0.0], ImagerPixelSpacing=[0.1, 0.1],
                                EstimatedRadiographicMagnificationFactor=1.25)).metadata
    assert fallback.pixel_spacing_source == "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
    assert any("PixelSpacing" in w and "is not two positive numbers; ImagerPixelSpacing/Estimated" in w
               for w in fallback.warnings)
    none = _read(make_dicom(STORED_2X2, PixelSpacing=[0.0, 0.1])).metadata
    assert any("not two positive numbers; no spacing is used" in w for w in none.warnings)
    detector = _read(make_dicom(STORED_2X2, ImagerPixelSpacing=[0.1, 0.1])).metadata
    assert any("not corrected for magnification" in w for w in detector.warnings)
    good = _read(make_dicom(STORED_2X2, PixelSpacing=[0.07, 0.07])).metadata
    assert not any("spacing" in w.lower() for w in good.warnings)


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_view_laterality_date(make_dicom) -> None:
    meta = _read(make_dicom(STORED_2X2, ViewPosition="cc", ImageLaterality="L", StudyDate="20240229")).metadata
    assert (meta.view, meta.laterality, meta.study_date, meta.modality) == ("CC", "L", "2024-02-29", "MG")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "R-10226", "SRT", "medio-lateral oblique"
    meta = _read(make_dicom(STORED_2X2, ViewCodeSequence=[code], Laterality="R", StudyDate="20230231")).metadata
    assert (meta.view, meta.laterality, meta.study_date) == ("MLO", "R", None)  # 31 February: no date


def test_patient_key_is_the_keyed_hash_of_the_id(make_dicom) -> None:
    meta = _read(make_dicom(STORED_2X2, PatientID="ID-123456")).metadata
    # conftest sets MEDLIM_PSEUDONYM_KEY=test-pseudonym-key.
    expected = hmac.new(b"test-pseudonym-key", b"ID-123456", hashlib.sha256).hexdigest()[:16]
    assert meta.patient_key == expected
    assert _read(make_dicom(STORED_2X2)).metadata.patient_key is None


IDENTIFYING = {"PatientName": "Doe^Jane", "PatientID": "ID-987654", "PatientBirthDate": "19610704",
               "OtherPatientIDs": "ALT-55555", "PatientAddress": "1 Main Street"}


def test_no_identifying_value_in_the_record(make_dicom) -> None:
    record = _read(make_dicom(STORED_2X2, **IDENTIFYING))
    text = repr(record) + repr(record.metadata) + str(record.metadata.__dict__)
    for value in ("Doe", "Jane", "987654", "19610704", "1961-07-04", "55555", "Main Street"):
        assert value not in text
    assert record.metadata.patient_key  # the pseudonym is there instead


def test_uncompressed_transfer_syntaxes_for_encoded_test_file(make_dicom) -> None:
    # Implicit VR little endian written by pydicom.
    record = _read(make_dicom(STORED_2X2, transfer_syntax=uid.ImplicitVRLittleEndian))
    np.testing.assert_array_equal(record.raw, STORED_2X2)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "693_J2KI.dcm"])
def test_real_files_against_pydicom_luts(name: str) -> None:
    """Oracle: pydicom's own modality LUT and VOI (windowing) functions, rescaled to [0, 1]."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds)
    record = read_image(path)
    np.testing.assert_allclose(record.raw, modality, rtol=1e-6, atol=1e-3)
    if "WindowCenter" in ds:
        # pydicom windows onto the stored bit range, rescaled, [y_min, y_max]; ours onto [0, 1].
        bits = int(ds.BitsStored)
        y_min, y_max = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
        expected = (apply_voi_lut(modality, ds) - y_min) / (y_max - y_min)
        np.testing.assert_allclose(record.pixels, expected, atol=1e-5)
    else:
        np.testing.assert_allclose(record.pixels, (modality - modality.min()) / np.ptp(modality), atol=1e-6)


@pytest.mark.filterwarnings("ignore:Invalid value")
def test_pydicom_value_quotes_never_reach_log_handlers(make_dicom, caplog) -> None:
    # pydicom's value validation logs messages such as "Invalid value for VR DA: '19610704'".
    # After the reader has run, such records are dropped before any handler sees them.
    from pydicom.misc import warn_and_log

    with caplog.at_level("DEBUG"):
        _read(make_dicom(STORED_2X2))
        warn_and_log("Invalid value for VR DA: '19610704'")
        logging.getLogger("pydicom").warning("unrelated pydicom message")
    assert "19610704" not in caplog.text
    assert "unrelated pydicom message" in caplog.text


def test_enhanced_per_frame_rescale_and_window(make_dicom) -> None:
    """Enhanced IODs keep rescale and window per frame in functional groups (PS3.3 C.7.6.16)."""
    frames = np.stack([STORED_2X2, STORED_2X2 + 10]).astype(np.uint16)

    def group(slope: float, intercept: float, center: float, width: float) -> Dataset:
        transform, voi, item = Dataset(), Dataset(), Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = slope, intercept
        voi.WindowCenter, voi.WindowWidth = center, width
        item.PixelValueTransformationSequence = [transform]
        item.FrameVOILUTSequence = [voi]
        return item

    data = make_dicom(
        STORED_2X2,
        NumberOfFrames=2,
        PixelData=frames.tobytes(),
        PerFrameFunctionalGroupsSequence=[group(2, -100, 100, 401), group(1, -10, 500, 1001)],
    )
    first = _read(data, frame=0)
    np.testing.assert_array_equal(first.raw, RAW_2X2)
    np.testing.assert_allclose(first.pixels, WINDOWED_2X2, atol=1e-7)
    second = _read(data, frame=1)
    np.testing.assert_array_equal(second.raw, STORED_2X2)  # (stored + 10) * 1 - 10
    # c = 500, w = 1001: low = -0.5, scale 1/1000
    np.testing.assert_allclose(second.pixels, np.clip((STORED_2X2 + 0.5) / 1000.0, 0, 1), atol=1e-6)


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm"])
def test_a_gdcm_decode_past_its_timeout_is_a_corrupt_file(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # GDCM decodes JPEG-LS and 12-bit JPEG Extended in a child; one that loops is killed and reported.
    from medlim.core.io import dicom as dicom_module
    from medlim.core.io.isolation import run_isolated

    def hanging(_function, **_options):  # noqa: ANN001, ANN202 - stand-in for a decoder that loops
        return run_isolated(lambda: time.sleep(30), timeout_s=0.5)

    monkeypatch.setattr(dicom_module, "run_isolated", hanging)
    started = time.monotonic()
    with pytest.raises(CorruptFileError, match=r"did not finish within 0\.5 s.*probably damaged"):
        read_image(get_testdata_file(name))
    assert time.monotonic() - started < 10


def test_rescale_with_value_range_is_deferred_and_exact(make_dicom) -> None:
    # No window: the image's own range [-100, 1900] (slope 2, intercept -100) goes black → white.
    record = _read(make_dicom(STORED_2X2, RescaleSlope=2, RescaleIntercept=-100))
    assert "pending" in repr(record)
    np.testing.assert_array_equal(record.raw, RAW_2X2)
    np.testing.assert_allclose(record.pixels, [[0.0, 0.1], [0.2, 1.0]], atol=1e-7)


def test_stray_high_bits_are_masked_in_the_table_not_the_image(make_dicom) -> None:
    # 12 bits stored in 16: 0xF064 holds 0x064 = 100 and 0x1000 holds 0; window c=50.5 w=101 → 0..100.
    stored = np.array([[0xF064, 0x1000], [50, 100]], dtype=np.uint16)
    record = _read(make_dicom(stored, bits_stored=12, WindowCenter=50.5, WindowWidth=101))
    assert "pending" in repr(record)
    np.testing.assert_array_equal(record.raw, [[100.0, 0.0], [50.0, 100.0]])
    np.testing.assert_allclose(record.pixels, [[1.0, 0.0], [0.5, 1.0]], atol=1e-7)
    # and the person is told: 0xF064 and 0x1000 have bits above the 12 stored ones
    assert any("above the file's BitsStored (12)" in w for w in record.metadata.warnings)
    clean = _read(make_dicom(np.array([[4095, 0], [50, 100]], dtype=np.uint16), bits_stored=12,
                             WindowCenter=50.5, WindowWidth=101))
    assert not any("BitsStored" in w for w in clean.metadata.warnings)


def test_colour_frames_are_deferred(make_dicom) -> None:
    rgb = np.array([[[0, 51, 255]]], dtype=np.uint8)
    record = _read(make_dicom(rgb, photometric="RGB"))
    assert "pending" in repr(record)
    np.testing.assert_allclose(record.pixels, [[[0.0, 0.2, 1.0]]], atol=1e-7)
    np.testing.assert_array_equal(record.raw, rgb.astype(np.float32))
