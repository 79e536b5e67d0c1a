"""The page list app.py routes over (medlim.ui.navigation)."""

from __future__ import annotations

from pathlib import Path

from medlim.ui.navigation import PAGES, PageSpec, available_pages, pages_by_section

ROOT = Path(__file__).resolve().parents[2]


def test_only_existing_pages_are_listed(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "b.py").write_text("")
    specs = (PageSpec("pages/a.py", "A", ":material/home:", "S"), PageSpec("pages/b.py", "B", ":material/home:", "S"))
    assert [p.title for p in available_pages(tmp_path, specs)] == ["B"]


def test_sections_keep_order() -> None:
    specs = [PageSpec("1", "1", "", "X"), PageSpec("2", "2", "", "Y"), PageSpec("3", "3", "", "X")]
    assert {k: [p.file for p in v] for k, v in pages_by_section(specs).items()} == {"X": ["1", "3"], "Y": ["2"]}


def test_repository_pages() -> None:
    present = [p.file for p in available_pages(ROOT)]
    assert present[:2] == ["pages/home.py", "pages/viewer.py"]
    assert sum(p.default for p in PAGES) == 1
    assert len({p.file for p in PAGES}) == len(PAGES)
