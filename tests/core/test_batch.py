"""The shared batch loop: one row per file, failures as rows, lazy, names kept apart and escaped."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from medlim.core.batch import (
    MEMORY_MESSAGE,
    BatchFile,
    attempt_each,
    batch_rows,
    error_row,
    json_line,
    output_folder,
    plan_files,
    progress_printer,
    row_line,
)
from medlim.core.io.pseudonym import file_label
from medlim.errors import EmptyFileError, ParameterError, UnsupportedFormatError


def test_error_row_names_the_medlim_class_and_its_message() -> None:
    row = error_row("scans/a.png", EmptyFileError("a.png is empty (0 bytes)."))
    assert row == {"file": "scans/a.png", "error": "EmptyFileError", "message": "a.png is empty (0 bytes)."}


def test_error_row_reports_memory_in_words() -> None:
    assert error_row("big.tif", MemoryError()) == {"file": "big.tif", "error": "MemoryError", "message": MEMORY_MESSAGE}


def test_error_row_hides_the_real_names_of_a_pseudonymised_file() -> None:
    exc = UnsupportedFormatError("There is no file at /data/Smith_John/scan.png; scan.png is not an image.")
    row = error_row("img-0123456789ab.png", exc, hidden=("/data/Smith_John/scan.png", "scan.png"))
    assert row["message"] == "There is no file at img-0123456789ab.png; img-0123456789ab.png is not an image."


def _files(*names: str) -> list[BatchFile]:
    return [BatchFile(Path(name), name, Path(name).stem) for name in names]


def test_rows_are_yielded_before_the_next_file_is_read() -> None:
    read: list[str] = []

    def analyse(file: BatchFile) -> dict:
        read.append(file.name)
        return {"size": len(file.name)}

    rows = batch_rows(_files("a.png", "bb.png", "ccc.png"), analyse)
    assert next(rows) == {"file": "a.png", "size": 5}
    assert read == ["a.png"]  # the second file is not touched until the first row is taken
    assert next(rows) == {"file": "bb.png", "size": 6}
    assert read == ["a.png", "bb.png"]


def test_a_failed_file_gives_an_error_row_and_the_run_goes_on() -> None:
    def analyse(file: BatchFile) -> dict:
        if file.name == "bad.png":
            raise UnsupportedFormatError("bad.png is not a DICOM, PNG, TIFF or JPEG image.")
        if file.name == "huge.png":
            raise MemoryError
        return {"count": 1}

    rows = list(batch_rows(_files("a.png", "bad.png", "huge.png", "b.png"), analyse))
    assert rows == [
        {"file": "a.png", "count": 1},
        {"file": "bad.png", "error": "UnsupportedFormatError", "message": "bad.png is not a DICOM, PNG, TIFF or JPEG image."},
        {"file": "huge.png", "error": "MemoryError", "message": MEMORY_MESSAGE},
        {"file": "b.png", "count": 1},
    ]


def test_a_bug_is_not_turned_into_a_row() -> None:
    def analyse(file: BatchFile) -> dict:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        list(batch_rows(_files("a.png"), analyse))


def test_attempt_each_reports_progress_per_item() -> None:
    seen: list[tuple[int, str]] = []
    attempts = list(attempt_each([("x", 1), ("y", 2)], lambda name, item: item * 10,
                                 progress=lambda index, name, seconds: seen.append((index, name))))
    assert [(a.index, a.name, a.result, a.ok) for a in attempts] == [(1, "x", 10, True), (2, "y", 20, True)]
    assert seen == [(1, "x"), (2, "y")]


def test_pseudonymised_rows_keep_the_real_path_out_of_messages(tmp_path: Path) -> None:
    path = tmp_path / "Smith_John.png"
    (file,) = plan_files([path], pseudonymise=True)

    def analyse(item: BatchFile) -> dict:
        raise EmptyFileError(f"{item.path.name} is empty (0 bytes).")

    (row,) = batch_rows([file], analyse, pseudonymised=True)
    assert row["message"] == f"{file.name} is empty (0 bytes)." and "Smith" not in json.dumps(row)


def test_plan_keeps_paths_as_given_and_separates_repeated_stems(tmp_path: Path) -> None:
    files = [tmp_path / "study1" / "IMG0001.dcm", tmp_path / "study2" / "IMG0001.dcm", tmp_path / "other.png"]
    plan = plan_files(files)
    assert [f.name for f in plan] == [str(f) for f in files]
    assert [f.stem for f in plan] == ["study1__IMG0001", "study2__IMG0001", "other"]


def test_plan_with_labels_names_files_and_outputs_by_the_label(tmp_path: Path) -> None:
    files = [tmp_path / "study1" / "IMG0001.dcm", tmp_path / "study2" / "IMG0001.dcm"]
    plan = plan_files(files, pseudonymise=True)
    labels = [file_label(str(f)) for f in files]
    assert [f.name for f in plan] == labels
    assert [f.stem for f in plan] == [label.removesuffix(".dcm") for label in labels]
    assert plan[0].stem != plan[1].stem and all(f.stem.startswith("img-") for f in plan)


def test_progress_lines_escape_control_characters() -> None:
    stream = io.StringIO()
    progress_printer(2, stream=stream)(1, "a\nb\x1b[2J.png", 0.04)
    assert stream.getvalue() == "[1/2] a\\nb\\x1b[2J.png: 0.0 s\n"


def test_row_lines_cannot_be_forged_by_names_or_messages() -> None:
    forged = "x.png: 999 nuclei\nreal.png"
    ok = {"file": forged, "count": 3, "warnings": ["NaN pixels\nwere set to 0"], "store_error": "read-only"}
    line = row_line(ok, lambda row: f"{row['count']} nuclei")
    assert line == "x.png: 999 nuclei\\nreal.png: 3 nuclei [warning: NaN pixels\\nwere set to 0] [not stored: read-only]"
    failed = row_line({"file": "a\rb", "error": "InputError", "message": "no\nway"}, lambda row: "")
    assert failed == "a\\rb: not analysed: no\\nway"


def test_json_lines_are_one_line_with_non_finite_numbers_as_null() -> None:
    line = json_line({"file": "a\nb.png", "score": float("nan"), "parts": [float("inf"), 1.5]})
    assert "\n" not in line
    assert json.loads(line) == {"file": "a\nb.png", "score": None, "parts": [None, 1.5]}


def test_output_folder_is_created_or_refused_in_words(tmp_path: Path) -> None:
    assert output_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ParameterError, match="cannot be created"):
        output_folder(tmp_path / "taken" / "out")


def test_a_batch_fails_only_when_nothing_could_be_analysed() -> None:
    from medlim.core.batch import batch_exit_status

    assert [batch_exit_status(a, t) for a, t in ((0, 1), (0, 3), (1, 3), (3, 3), (0, 0))] == [1, 1, 0, 0, 0]
