"""One PNG data URI encoder for the pages (issue 17), checked by decoding it again."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from medlim.errors import InputError
from medlim.ui.images import png_data_uri


def _decoded(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return cv2.imdecode(np.frombuffer(base64.b64decode(uri[len(prefix):]), np.uint8), cv2.IMREAD_UNCHANGED)


def test_grey_rgb_rgba_and_float_images_round_trip() -> None:
    grey = np.array([[0, 255], [17, 128]], np.uint8)
    assert np.array_equal(_decoded(png_data_uri(grey)), grey)
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red stays red: the encoder turns RGB into OpenCV's BGR
    assert _decoded(png_data_uri(rgb))[0, 0].tolist() == [0, 0, 255]
    rgba = np.zeros((1, 1, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 40)
    assert _decoded(png_data_uri(rgba, compression=9))[0, 0].tolist() == [30, 20, 10, 40]
    # float in [0, 1]: 0.5 → round(127.5) = 128, out-of-range values clipped
    assert _decoded(png_data_uri(np.array([[0.5, 2.0, -1.0]], np.float32))).tolist() == [[128, 255, 0]]
    with pytest.raises(InputError, match="grey, RGB or RGBA"):
        png_data_uri(np.zeros((2, 2, 2), np.uint8))
