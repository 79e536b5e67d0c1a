"""Acceptance (issue 2): every file of pydicom's bundled test corpus, opened in the
viewer page, either shows an image or a clear error box — never an uncaught exception."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 40


def _corpus() -> list[Path]:
    from pydicom.data import get_testdata_files

    return sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("corpus")
    names = []
    for index, path in enumerate(_corpus()):
        # A unique name with a suffix the sample picker lists (many corpus files have none).
        name = f"{index:03d}_{path.name}.dcm"
        shutil.copyfile(path, folder / name)
        names.append(name)
    return folder, names


@pytest.mark.parametrize("start", range(0, 200, CHUNK))
def test_viewer_never_crashes_on_pydicom_corpus(
    start: int, corpus_dir: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, names = corpus_dir
    chunk = names[start : start + CHUNK]
    if not chunk:
        pytest.skip("corpus smaller than this chunk")
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(folder))
    at = AppTest.from_file(str(ROOT / "pages" / "viewer.py"), default_timeout=240).run()
    at.multiselect(key="viewer_samples").set_value(chunk).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = len(at.get("plotly_chart")) // 2  # image + histogram per decoded file
    errors = len(at.error)
    # Each file ends as an image or an error box (a multi-frame file shows one frame).
    assert shown + errors >= len(chunk), (shown, errors, len(chunk))
    assert shown > 0
