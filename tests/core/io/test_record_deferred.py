from __future__ import annotations

import pickle

import numpy as np
import pytest

from medlim.core.io.record import ImageMetadata, ImageRecord


def _counting(value: np.ndarray, calls: list[str], label: str):
    def render() -> np.ndarray:
        calls.append(label)
        return value

    return render


def test_render_functions_run_once_on_first_access() -> None:
    calls: list[str] = []
    pixels = np.full((2, 3), 0.5, np.float32)
    raw = np.full((2, 3), 100.0, np.float32)
    record = ImageRecord(
        metadata=ImageMetadata(source_format="dicom"),
        name="a.dcm",
        render_pixels=_counting(pixels, calls, "pixels"),
        render_raw=_counting(raw, calls, "raw"),
    )
    assert calls == []
    assert "pending" in repr(record)
    assert record.pixels is pixels and record.pixels is pixels
    assert calls == ["pixels"]
    assert record.raw is raw
    assert calls == ["pixels", "raw"]


def test_record_is_immutable_and_pickles_its_arrays() -> None:
    record = ImageRecord(
        metadata=ImageMetadata(source_format="dicom"),
        render_pixels=lambda: np.zeros((2, 2), np.float32),
        render_raw=lambda: np.ones((2, 2), np.float32),
    )
    with pytest.raises(AttributeError):
        record.name = "other"  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(record))
    assert copy == record
    assert np.array_equal(copy.raw, np.ones((2, 2)))


def test_missing_arrays_are_refused() -> None:
    with pytest.raises(TypeError):
        ImageRecord(pixels=np.zeros((1, 1), np.float32), metadata=ImageMetadata(source_format="png"))


def test_deferred_dicom_window_matches_hand_computation(tmp_path) -> None:
    """Rescale 2/-100 and window 100/401 on a 16-bit frame, read through the deferred path."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    from medlim.core.io import read_image

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = 2, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.WindowCenter, ds.WindowWidth = 100, 401
    stored = np.array([[50, 100], [150, 400]], np.uint16)
    ds.PixelData = stored.tobytes()
    path = tmp_path / "w.dcm"
    ds.save_as(path, enforce_file_format=True)
    record = read_image(path)
    assert "pending" in repr(record)
    raw = stored * 2.0 - 100  # 0, 100, 200, 700
    # LINEAR window (PS3.3 C.11.2.1.2.1): (x - (c - 0.5)) / (w - 1) + 0.5, clipped
    expected = np.clip((raw - 99.5) / 400 + 0.5, 0, 1)
    np.testing.assert_allclose(record.pixels, expected, atol=1e-6)
    np.testing.assert_allclose(record.raw, raw)
