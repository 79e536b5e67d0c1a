"""CSV cells neutralised and control characters escaped (issue 14); counts with their noun in the right number."""

from __future__ import annotations

import csv
import io

from medlim.core.text import csv_cell, csv_text, escape_control


def test_formula_cells_are_prefixed_and_numbers_left_alone() -> None:
    assert csv_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert csv_cell("+1+2") == "'+1+2"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("-2+3") == "'-2+3"
    assert csv_cell("-0.5") == "-0.5"
    assert csv_cell(-0.5) == -0.5
    assert csv_cell(None) is None
    assert csv_cell("plain name.dcm") == "plain name.dcm"


def test_control_characters_are_shown_not_obeyed() -> None:
    assert escape_control("a\nb\rc\td\x1b[31m\x7f") == "a\\nb\\rc\\td\\x1b[31m\\x7f"
    assert escape_control("Müller ü") == "Müller ü"


def test_a_name_with_a_newline_stays_one_csv_row() -> None:
    text = csv_text([{"file": "evil\nforged,row", "score": 0.25}, {"file": "=cmd", "score": 1}], ["file", "score"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["file", "score"], ["evil\\nforged,row", "0.25"], ["'=cmd", "1"]]
    assert text.count("\n") == 3


def test_a_count_takes_its_noun_in_the_right_number() -> None:
    from medlim.core.text import counted

    assert counted(1, "file") == "1 file"
    assert counted(0, "file") == "0 files" and counted(2, "file") == "2 files"
    assert counted(3, "patch", "patches") == "3 patches" and counted(1, "patch", "patches") == "1 patch"
