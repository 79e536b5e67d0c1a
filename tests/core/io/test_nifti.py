"""2-D NIfTI (``.nii``, ``.nii.gz``): what a Decathlon ``dataset.json`` names (issue 12's layouts)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from medlim.core.io import read_image
from medlim.core.io.files import has_image_suffix, image_suffix
from medlim.errors import (
    DecodeBudgetError,
    ImageTooLargeError,
    MultiFrameError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from medlim.settings import Settings

#: A 3 × 4 image (rows × columns) whose every value says where it is: 10 × row + column.
IMAGE = np.array([[10 * r + c for c in range(4)] for r in range(3)], dtype=np.uint8)


def _nifti(array_xy: np.ndarray, *, zooms: tuple[float, ...] | None = None, unit: str | None = "mm",
           version: int = 1) -> bytes:
    """NIfTI bytes of an array given in NIfTI's own (x, y, …) order."""
    klass = nibabel.Nifti1Image if version == 1 else nibabel.Nifti2Image
    image = klass(array_xy, np.eye(4))
    if zooms is not None:
        image.header.set_zooms(zooms)
    if unit is not None:
        image.header.set_xyzt_units(unit)
    return image.to_bytes()


def test_a_2d_image_written_the_itk_way_reads_back_as_rows_by_columns_with_its_spacing(tmp_path: Path) -> None:
    # ITK / SimpleITK / nnU-Net store a PNG of H × W as x = column: an X × Y × 1 array, the image transposed
    data = _nifti(IMAGE.T[:, :, None], zooms=(0.07, 0.085, 1.0))
    path = tmp_path / "case_000.nii.gz"
    path.write_bytes(gzip.compress(data))
    record = read_image(path)
    assert record.raw.shape == (3, 4) and np.array_equal(record.raw, IMAGE)  # row 2, column 3 is 23
    assert record.metadata.source_format == "nifti"
    # pixdim 1 is the column (x) spacing, pixdim 2 the row (y) spacing; float32 0.07 is read as 0.07
    assert record.metadata.pixel_spacing_mm == (0.085, 0.07)
    assert record.metadata.pixel_spacing_source == "NIfTI pixdim"
    # an uncompressed .nii and bytes without a name read the same
    plain = read_image(data, name="case.nii")
    assert np.array_equal(plain.raw, IMAGE) and plain.metadata.pixel_spacing_mm == (0.085, 0.07)


def test_spacing_units_and_the_placeholder_spacing() -> None:
    microns = read_image(_nifti(IMAGE.T.copy(), zooms=(0.5, 0.25), unit="micron"), name="a.nii")
    assert microns.metadata.pixel_spacing_mm == (0.00025, 0.0005)
    # no unit: the numbers are not known to be mm, so no spacing
    assert read_image(_nifti(IMAGE.T.copy(), zooms=(0.1, 0.1), unit=None), name="a.nii").metadata.pixel_spacing_mm is None
    # 1 × 1 mm is what ITK writes for an image without a spacing: not taken for a real one
    assert read_image(_nifti(IMAGE.T.copy(), zooms=(1.0, 1.0)), name="a.nii").metadata.pixel_spacing_mm is None


def test_nifti2_signed_and_scaled_values() -> None:
    signed = IMAGE.T.astype(np.int16) - 5
    record = read_image(_nifti(signed, version=2), name="a.nii")
    assert np.array_equal(record.raw, IMAGE.astype(np.float32) - 5)
    scaled = nibabel.Nifti1Image(IMAGE.T.astype(np.int16), np.eye(4))
    scaled.header.set_slope_inter(0.5, 1.0)
    assert np.array_equal(read_image(scaled.to_bytes(), name="s.nii").raw, IMAGE * 0.5 + 1.0)


def test_slices_are_frames_and_volumes_are_refused() -> None:
    two = np.stack([IMAGE.T, IMAGE.T + 100], axis=-1)
    data = _nifti(two)
    with pytest.raises(MultiFrameError, match="holds 2 images.*frame=0..1"):
        read_image(data, name="two.nii")
    second = read_image(data, name="two.nii", frame=1)
    assert np.array_equal(second.raw, IMAGE + 100) and second.metadata.number_of_frames == 2
    with pytest.raises(UnsupportedFormatError, match="NIfTI volume of 4 × 3 × 2 × 2 voxels"):
        read_image(_nifti(np.zeros((4, 3, 2, 2), np.uint8)), name="vol.nii")


def test_damaged_files_and_other_gzip_files_are_refused_with_messages() -> None:
    data = gzip.compress(_nifti(IMAGE.T.copy()))
    with pytest.raises(TruncatedFileError, match="ends before its image data"):
        read_image(data[: len(data) // 2], name="cut.nii.gz")
    with pytest.raises(UnsupportedFormatError, match="not a NIfTI image"):
        read_image(gzip.compress(b"a,b\n1,2\n" * 100), name="table.csv.gz")
    pair = bytearray(_nifti(IMAGE.T.copy()))
    pair[344:348] = b"ni1\x00"
    with pytest.raises(UnsupportedFormatError, match=r"\.hdr/\.img pair"):
        read_image(bytes(pair[:348]), name="a.hdr")


def test_the_size_is_checked_from_the_header_and_only_the_declared_bytes_are_decompressed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    header = nibabel.Nifti1Header()
    header.set_data_shape((32000, 30000))
    header.set_data_dtype(np.uint8)
    stream = io.BytesIO()
    header.write_to(stream)  # a header declaring 0.96 Gpx and no voxels at all
    with pytest.raises(ImageTooLargeError, match="30000×32000"):
        read_image(stream.getvalue(), name="huge.nii")
    small = Settings.from_env({"MEDLIM_DECODE_BUDGET_MB": "1", "MEDLIM_PSEUDONYM_KEY": "k"})
    with pytest.raises(DecodeBudgetError):
        read_image(_nifti(np.zeros((1000, 1000), np.float64)), name="wide.nii", settings=small)
    # 3 × 4 voxels followed by 256 MiB of zeros that compress to little: only the voxels are inflated
    bomb = gzip.compress(_nifti(IMAGE.T.copy()) + bytes(256 << 20), compresslevel=1)
    inflated: list[int] = []
    original = gzip.GzipFile.read

    def counted(self: gzip.GzipFile, size: int = -1) -> bytes:
        chunk = original(self, size)
        inflated.append(len(chunk))
        return chunk

    monkeypatch.setattr(gzip.GzipFile, "read", counted)
    assert np.array_equal(read_image(bomb, name="bomb.nii.gz").raw, IMAGE)
    assert 540 + 12 <= sum(inflated) < 4096  # the header and the 12 voxels, not the 256 MiB behind them


def test_nifti_names_count_as_images_in_folders_and_decathlon_lists(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    assert image_suffix("A/Case_001.NII.GZ") == ".nii.gz" and image_suffix("b.png") == ".png"
    assert has_image_suffix("case.nii") and has_image_suffix("case.nii.gz") and not has_image_suffix("notes.gz")
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    entries = []
    for index in range(3):
        image = np.full((8, 6), 40 + index, np.uint8)
        label = np.zeros((8, 6), np.uint8)
        label[2:4, 1:3] = index  # the first case has no foreground: a BAC-free view
        for folder, array in (("imagesTr", image), ("labelsTr", label)):
            (tmp_path / folder / f"case_{index}.nii.gz").write_bytes(
                gzip.compress(_nifti(array.T.copy(), zooms=(0.1, 0.1)))
            )
        entries.append({"image": f"./imagesTr/case_{index}.nii.gz", "label": f"./labelsTr/case_{index}.nii.gz"})
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "t", "training": entries}))
    main(["data", "check", str(tmp_path), "--task", "bac", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert (summary["layout"], summary["images"], summary["decoded"]) == ("msd", 3, 3)
    assert (summary["height"]["max"], summary["width"]["max"]) == (8, 6)  # rows × columns, as the PNG was
    assert summary["pixel_spacing_mm"] == [{"row": 0.1, "column": 0.1, "images": 3}]
    assert (summary["masks_with_foreground"], summary["masks_empty"]) == (2, 1)

    # a class folder of .nii.gz files is a folder of images
    (tmp_path / "classes" / "hand").mkdir(parents=True)
    (tmp_path / "classes" / "hand" / "a.nii.gz").write_bytes((tmp_path / "imagesTr" / "case_1.nii.gz").read_bytes())
    main(["data", "check", str(tmp_path / "classes"), "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert summary["classes"] == {"hand": 1} and summary["decoded"] == 1
