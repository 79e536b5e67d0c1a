"""The reader records the window and LUT it applied (ImageMetadata.display_window; issue 17).

Hand-computed on the 2×2 file of ``test_dicom.py``: stored [[0, 100], [200, 1000]],
rescale 2x − 100 → raw [[-100, 100], [300, 1900]].
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom.dataset import Dataset

from medlim.core.io import apply_window, read_image
from medlim.core.io.record import DisplayWindow
from medlim.errors import ParameterError

STORED_2X2 = np.array([[0, 100], [200, 1000]], dtype=np.uint16)
RESCALE = {"RescaleSlope": 2, "RescaleIntercept": -100}


def _redrawn(record) -> np.ndarray:
    """``pixels`` made again from ``raw`` and the recorded window alone."""
    window = record.metadata.display_window
    shown = apply_window(record.raw, center=window.center, width=window.width, function=window.function)
    return 1.0 - shown if window.inverted else shown


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"WindowCenter": 100, "WindowWidth": 401}, DisplayWindow("window", 100.0, 401.0, "LINEAR")),
        ({"WindowCenter": 100, "WindowWidth": 400, "VOILUTFunction": "SIGMOID"},
         DisplayWindow("window", 100.0, 400.0, "SIGMOID")),
        # No VOI: raw -100..1900 stretched, i.e. LINEAR_EXACT with c = 900, w = 2000.
        ({}, DisplayWindow("range", 900.0, 2000.0, "LINEAR_EXACT")),
    ],
)  # fmt: skip
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_window_is_recorded_and_redraws_the_pixels(make_dicom, attributes, expected, photometric) -> None:
    record = read_image(make_dicom(STORED_2X2, photometric=photometric, **RESCALE, **attributes), name="a.dcm")
    window = record.metadata.display_window
    assert window == DisplayWindow(expected.kind, expected.center, expected.width, expected.function,
                                   inverted=photometric == "MONOCHROME1")  # fmt: skip
    assert window.exact
    np.testing.assert_allclose(_redrawn(record), record.pixels, atol=1e-6)


def test_inverse_presentation_lut_is_recorded_as_inverted(make_dicom) -> None:
    record = read_image(make_dicom(STORED_2X2, PresentationLUTShape="INVERSE", WindowCenter=100, WindowWidth=401,
                                   **RESCALE), name="a.dcm")  # fmt: skip
    assert record.metadata.photometric == "MONOCHROME2" and record.metadata.display_window.inverted
    np.testing.assert_allclose(_redrawn(record), record.pixels, atol=1e-6)


def test_voi_lut_table_is_recorded_with_its_descriptor(make_dicom) -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    item.add_new(0x00283006, "US", [0, 50, 100, 255])
    record = read_image(make_dicom(np.array([[0, 1], [2, 10]], np.uint16), VOILUTSequence=[item]), name="a.dcm")
    window = record.metadata.display_window
    assert (window.kind, window.lut_entries, window.lut_first_mapped, window.lut_bits) == ("lut", 4, 0, 8)
    assert not window.exact and "VOI LUT (4 entries from 0, 8 bits)" in window.description
    # A linear stand-in over the table's inputs 0..3: centre 1.5, width 3.
    assert (window.center, window.width) == (1.5, 3.0)


@pytest.mark.parametrize(("dtype", "peak", "top"), [
    (np.uint8, 200, 255.0),
    (np.uint16, 60000, 65535.0),
    # a 16-bit file holding a 12-bit (14-bit) detector's values unscaled is read at 12 (14) bits
    (np.uint16, 4095, 4095.0),
    (np.uint16, 4096, 16383.0),
    (np.uint16, 200, 1023.0),
])
def test_png_window_is_its_bit_depth(dtype, peak: int, top: float) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.array([[0, 7], [100, peak]], dtype=dtype)).save(buffer, format="PNG")
    record = read_image(buffer.getvalue(), name="a.png")
    assert record.metadata.display_window == DisplayWindow("range", top / 2.0, top, "LINEAR_EXACT")
    assert record.metadata.bits_stored == round(np.log2(top + 1))
    assert record.pixels[1, 1] == pytest.approx(peak / top) and record.raw[1, 1] == peak  # stored values kept
    np.testing.assert_allclose(_redrawn(record), record.pixels, atol=1e-6)


def test_colour_images_record_no_window() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (200, 10, 90)  # not three equal channels (those are read as grey)
    Image.fromarray(colour).save(buffer, format="PNG")
    assert read_image(buffer.getvalue(), name="c.png").metadata.display_window is None


def test_display_window_refuses_nonsense() -> None:
    with pytest.raises(ParameterError, match="kind"):
        DisplayWindow("curve", 1.0, 1.0)
    with pytest.raises(ParameterError, match="width"):
        DisplayWindow("window", 1.0, 0.0)
