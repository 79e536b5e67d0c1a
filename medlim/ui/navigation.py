"""The pages ``app.py`` routes over, grouped by the rooms of the workbench.

Adding a page is one line in :data:`PAGES`; a page is listed only when its file
exists, so rooms can land one at a time. Every page script starts with
``medlim.ui.shell.ensure_app_shell()`` so that a deep link opened first after a
server start still gets the app shell. Pure (no streamlit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PageSpec", "PAGES", "available_pages", "pages_by_section"]


@dataclass(frozen=True)
class PageSpec:
    """One page of the app.

    Attributes:
        file: path of the page script relative to the repository root.
        title: title in the navigation menu.
        icon: Material icon (``":material/<name>:"``).
        section: navigation section (a room).
        default: ``True`` for the page the app opens on.
    """

    file: str
    title: str
    icon: str
    section: str
    default: bool = False


#: Every page, in menu order. One line per page.
PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/home.py", "Home", ":material/home:", "Start", default=True),
    PageSpec("pages/viewer.py", "Image viewer", ":material/image_search:", "Start"),
    PageSpec("pages/mammography.py", "Arterial calcification", ":material/radiology:", "Radiology"),
    PageSpec("pages/nuclei.py", "Clumped nuclei", ":material/blur_on:", "Pathology"),
    PageSpec("pages/steatosis.py", "Liver steatosis", ":material/bubble_chart:", "Pathology"),
    PageSpec("pages/ood.py", "Out-of-distribution", ":material/travel_explore:", "Curation"),
    PageSpec("pages/shift.py", "Dataset shift", ":material/compare_arrows:", "Curation"),
    PageSpec("pages/curation.py", "Curation decisions", ":material/fact_check:", "Curation"),
    PageSpec("pages/retrieval.py", "Similar images", ":material/image_search:", "Curation"),
    PageSpec("pages/models.py", "Models", ":material/model_training:", "Your data"),
    PageSpec("pages/jobs.py", "Jobs", ":material/work_history:", "Your data"),
)


def available_pages(root: Path, pages: tuple[PageSpec, ...] = PAGES) -> list[PageSpec]:
    """The pages of ``pages`` whose script exists under ``root``, in order."""
    return [page for page in pages if (root / page.file).is_file()]


def pages_by_section(pages: list[PageSpec]) -> dict[str, list[PageSpec]]:
    """Group ``pages`` by section, keeping first-seen section order."""
    sections: dict[str, list[PageSpec]] = {}
    for page in pages:
        sections.setdefault(page.section, []).append(page)
    return sections
