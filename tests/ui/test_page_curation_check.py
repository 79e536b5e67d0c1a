"""AppTest: the Curation page shows what a MedShift run will use before "Train and score" (``medlim shift check``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.test_page_curation import PAGE, TIMEOUT, medlim_home  # noqa: F401 - the fixture


def _class_folders(root: Path, counts: dict[str, int]) -> Path:
    import cv2

    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            cv2.imwrite(str(root / name / f"{k}.png"), np.zeros((4, 4), np.uint8))
    return root


def test_the_default_phantoms_are_counted_per_class(medlim_home: Path) -> None:  # noqa: F811
    from medlim.curation.shift.service import EVIDENCE_EXTERNAL, EVIDENCE_INTERNAL
    from medlim.phantoms.radiograph import BODY_PARTS

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table.columns) == ["class", "internal images", "external images"]
    assert table["class"].tolist() == sorted(BODY_PARTS)  # 7 body parts, 120 internal and 60 external each
    assert set(table["internal images"]) == {EVIDENCE_INTERNAL.per_class} == {120}
    assert set(table["external images"]) == {EVIDENCE_EXTERNAL.per_class} == {60}
    assert not at.button(key="cur_run").disabled


def test_folders_are_checked_and_a_class_with_too_few_images_blocks_the_run(
    medlim_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    root = tmp_path / "data"
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    internal = _class_folders(root / "internal", {"hand": 5, "elbow": 4})
    (internal / "elbow" / "notes.png").write_text("not an image")
    external = _class_folders(root / "external", {"hand": 3, "elbow": 2, "finger": 1})

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    for role, folder in (("internal", internal), ("external", external)):
        at.radio(key=f"cur_{role}_kind").set_value("Folder on the server").run()
        at.text_input(key=f"cur_{role}_folder").input(str(folder)).run()
    assert not at.exception
    classes, left_out = at.dataframe[0].value, at.dataframe[1].value
    assert classes.to_dict("records") == [{"class": "elbow", "internal images": 4, "external images": 2},
                                          {"class": "finger", "internal images": 0, "external images": 1},
                                          {"class": "hand", "internal images": 5, "external images": 3}]
    assert left_out[["dataset", "file"]].to_dict("records") == [{"dataset": "internal", "file": "elbow/notes.png"}]
    assert "not a DICOM, PNG, TIFF, JPEG or NIfTI image" in left_out["why"][0]
    assert "1 file left out" in at.warning[0].body
    assert at.info[0].body == "external images of classes the internal data lacks are not scored: finger 1."
    assert [e.body for e in at.error] == [
        "The run cannot start: class 'elbow' has 4 internal images; a detector needs at least 5."]
    assert at.button(key="cur_run").disabled

    # a fifth elbow image: the class folder changed (a second later, as a person adds it), so it is listed afresh
    import cv2

    cv2.imwrite(str(internal / "elbow" / "4.png"), np.zeros((4, 4), np.uint8))
    later = (internal / "elbow").stat().st_mtime_ns + 1_000_000_000
    os.utime(internal / "elbow", ns=(later, later))
    at.run()
    assert not at.exception and not at.error
    assert at.dataframe[0].value["internal images"].tolist() == [5, 0, 5]
    assert not at.button(key="cur_run").disabled


def test_a_folder_without_images_is_said_and_blocks_the_run(
    medlim_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    root = tmp_path / "data"
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    (root / "empty" / "hand").mkdir(parents=True)
    (root / "empty" / "hand" / "a.png").write_bytes(b"")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="cur_external_kind").set_value("Folder on the server").run()
    at.text_input(key="cur_external_folder").input(str(root / "empty")).run()
    assert not at.exception
    (message,) = [e.body for e in at.error]
    assert "External dataset" in message and "no image of the folder could be read (1 file)" in message
    assert at.button(key="cur_run").disabled


def test_the_listing_is_keyed_to_each_file_so_a_file_rewritten_in_place_is_listed_afresh(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    import medlim.ui.curation as curation

    def times() -> None:  # the same times after every write: only a size can tell
        os.utime(image, ns=(1_000, 2_000))
        os.utime(tmp_path / "notes.txt", ns=(1_000, 3_000))
        os.utime(tmp_path / "hand", ns=(1_000, 5_000))
        os.utime(tmp_path, ns=(1_000, 6_000))

    (tmp_path / "hand").mkdir()
    image = tmp_path / "hand" / "a.png"
    image.write_bytes(b"\x89PNG" + bytes(12))  # 16 bytes
    (tmp_path / "notes.txt").write_bytes(b"abc")
    times()
    stamp = curation.listing_stamp(str(tmp_path))
    # the folders' times, then each file's size and time, sorted by path
    assert stamp == (("", 6_000), ("hand", 5_000),
                     ("hand/a.png", 16), ("hand/a.png", 2_000), ("notes.txt", 3), ("notes.txt", 3_000))
    assert curation.listing_stamp(str(tmp_path)) == stamp  # nothing changed: the same key, the cached listing
    image.write_bytes(b"\x89PNG" + bytes(20))  # rewritten in place: 24 bytes, every time as before
    times()
    changed = curation.listing_stamp(str(tmp_path))
    assert changed == (("", 6_000), ("hand", 5_000),
                       ("hand/a.png", 24), ("hand/a.png", 2_000), ("notes.txt", 3), ("notes.txt", 3_000))
    monkeypatch.setattr(curation, "STAMP_MAX_FILES", 1)  # more files than stamped one by one: folder times only
    assert curation.listing_stamp(str(tmp_path)) == (("", 6_000), ("hand", 5_000))
    assert curation.listing_stamp("phantom:default") == ()
