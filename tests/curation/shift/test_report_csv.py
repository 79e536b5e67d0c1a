"""MedShift CSV outputs are formula-safe and one line per row (issue 14)."""

from __future__ import annotations

import csv
from pathlib import Path

from medlim.curation.shift.report import write_csv


def test_file_names_cannot_run_as_formulas_or_forge_rows(tmp_path: Path) -> None:
    rows = [{"file": '=HYPERLINK("x")', "class": "hand", "score": -0.5, "group": 1},
            {"file": "a\nforged,row,1,2", "class": "@sum", "score": 2.0, "group": 0}]
    path = write_csv(rows, tmp_path / "out" / "images.csv", columns=["file", "class", "score", "group"])
    text = path.read_text(encoding="utf-8")
    assert text.splitlines() == [
        "file,class,score,group",
        '"\'=HYPERLINK(""x"")",hand,-0.5,1',
        '"a\\nforged,row,1,2",\'@sum,2.0,0',  # the newline is shown as \n, inside one quoted cell
    ]
    with path.open(newline="", encoding="utf-8") as handle:
        assert [r["file"] for r in csv.DictReader(handle)] == ['\'=HYPERLINK("x")', "a\\nforged,row,1,2"]
