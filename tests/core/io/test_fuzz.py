"""Fuzzed input: random bytes, truncations and bit flips never escape as non-medlim errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from medlim.core.io import ImageRecord, read_image
from medlim.errors import MedlimError

SEED = 20240601


def _valid_files() -> dict[str, bytes]:
    files = {
        name: open(get_testdata_file(name), "rb").read()  # noqa: SIM115 - tiny files
        for name in (
            "CT_small.dcm",
            "MR_small_RLE.dcm",
            "JPEG2000.dcm",
            "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline (Pillow)
            "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless (GDCM, isolated: it aborts on some damaged streams)
            "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS (GDCM, isolated)
            "JPEG-lossy.dcm",  # 12-bit JPEG extended (GDCM fallback, isolated)
            "MR_small_implicit.dcm",
        )
    }
    ok, png = cv2.imencode(".png", np.arange(32 * 32, dtype=np.uint16).reshape(32, 32))
    files["ramp.png"] = png.tobytes()
    return files


VALID = _valid_files()


def _outcome(data: bytes) -> str:
    try:
        record = read_image(data, name="fuzz")
    except MedlimError as exc:
        assert exc.message
        return type(exc).__name__
    assert isinstance(record, ImageRecord)
    assert np.isfinite(record.pixels).all()
    return "ok"


@pytest.mark.parametrize("name", sorted(VALID))
def test_truncations(name: str) -> None:
    data = VALID[name]
    assert _outcome(data) == "ok"
    cuts = sorted({1, 4, 64, 128, 131, 132, 200, len(data) // 4, len(data) // 2, len(data) - 100, len(data) - 1})
    outcomes = {cut: _outcome(data[:cut]) for cut in cuts if 0 < cut < len(data)}
    # Cutting anywhere before the end of the pixel data must be noticed, never decoded.
    assert all(outcome != "ok" for cut, outcome in outcomes.items() if cut <= len(data) // 2)


@pytest.mark.parametrize("name", sorted(VALID))
def test_bit_flips(name: str) -> None:
    rng = np.random.default_rng(SEED)
    data = np.frombuffer(VALID[name], dtype=np.uint8)
    for _ in range(25):
        flipped = data.copy()
        positions = rng.integers(0, flipped.size, size=int(rng.integers(1, 8)))
        flipped[positions] ^= (1 << rng.integers(0, 8, size=positions.size)).astype(np.uint8)
        _outcome(flipped.tobytes())


def test_random_bytes_seeded() -> None:
    rng = np.random.default_rng(SEED)
    for size in (1, 3, 8, 131, 132, 133, 500, 5000):
        for _ in range(5):
            noise = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
            assert _outcome(noise) != "ok" or size > 132
            # Random bytes behind a valid DICOM preamble and marker.
            _outcome(b"\x00" * 128 + b"DICM" + noise)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", b"\x00" * 128 + b"DICM", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"\xff\xd8\xff"]),
    body=st.binary(max_size=600),
)
def test_random_bytes_behind_magic_numbers(prefix: bytes, body: bytes) -> None:
    _outcome(prefix + body)
