from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from medlim.core.io import read_image
from medlim.core.io.files import RASTER_SUFFIXES, collect_files, open_regular_file
from medlim.errors import InputError


def test_collect_files_skips_truth_outputs_and_notes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.dcm", "b.png", "b_bac.png", "b_labels.png", "manifest.csv", "README.md", ".hidden.png", "noext"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub" / "c.tif").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in collect_files([tmp_path])]
    assert found == ["a.dcm", "b.png", "noext", "sub/c.tif"]
    rasters = [p.name for p in collect_files([tmp_path], suffixes=RASTER_SUFFIXES, recursive=False)]
    assert rasters == ["b.png"]
    # A file named directly is kept as given, even a mask.
    assert collect_files([tmp_path / "b_bac.png"]) == [tmp_path / "b_bac.png"]
    with pytest.raises(InputError, match="does not exist"):
        collect_files([tmp_path / "missing"])


@pytest.fixture
def alarm():  # noqa: ANN201 - fixture
    """Fail (instead of hanging the run) if the reader blocks for 5 s."""
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("needs SIGALRM")

    def hung(_signum, _frame):  # noqa: ANN001, ANN202 - signal handler
        raise TimeoutError("the reader blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, alarm) -> None:
    fifo = tmp_path / "scan.dcm"
    os.mkfifo(fifo)  # nobody writes: opening or reading it the ordinary way would wait for ever
    with pytest.raises(InputError, match=r"scan\.dcm is not a regular file \(it is a named pipe \(FIFO\)\)"):
        read_image(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        open_regular_file(fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_link_to_a_device_is_refused(tmp_path: Path, alarm) -> None:
    link = tmp_path / "endless.png"
    link.symlink_to("/dev/zero")  # reads forever, never ends
    with pytest.raises(InputError, match=r"endless\.png is not a regular file \(it is a device\)"):
        read_image(link)
    with pytest.raises(InputError, match="not a regular file"):
        open_regular_file(link)


def test_a_link_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = tmp_path / "real.png"
    ok, encoded = cv2.imencode(".png", np.array([[0, 255]], np.uint8))
    target.write_bytes(encoded.tobytes())
    (tmp_path / "link.png").symlink_to(target)
    assert read_image(tmp_path / "link.png").pixels.tolist() == [[0.0, 1.0]]


def test_a_folder_is_refused_with_its_own_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_collect_files_skips_fifos_and_device_links_in_folders(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    assert [p.name for p in collect_files([tmp_path])] == ["a.png"]
    with pytest.raises(InputError, match=r"pipe\.png is not a regular file"):
        collect_files([tmp_path / "pipe.png"])
