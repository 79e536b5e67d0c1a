"""Whole slides on the microscopy pages: a slide on the server, the region field, the job and its files (issue 16).

A whole slide (an upload kept inside the data roots, or a slide already
there) is analysed by a ``steatosis.segment`` / ``nuclei.segment`` job
(:mod:`medlim.microscopy.slide_runs`), followed with :mod:`medlim.ui.jobs`;
once done, the page draws what the job wrote (:class:`SlideRun`) with its own
``render_done``. Widgets only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from medlim.ui.errors import show_medlim_errors

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.jobs import Job
    from medlim.microscopy.slide_runs import SlideRun

__all__ = [
    "follow_slide_job",
    "server_slide_input",
    "slide_job_panel",
    "slide_run_downloads",
    "slide_spacing",
    "uploaded_slide",
]


def server_slide_input(*, key: str) -> Path | None:
    """“…or a whole slide on the server”: a path inside the data folders (checked), or None."""
    from medlim.core.io.slide import is_slide
    from medlim.core.paths import confine_to_data_roots
    from medlim.settings import get_settings

    roots = ", ".join(str(root) for root in get_settings().data_roots) or "none configured"
    typed = st.text_input("…or a whole slide on the server (SVS, NDPI, OME-TIFF, tiled TIFF)", key=key,
                          placeholder="path inside the data folders",
                          help=f"A slide file inside one of the data folders ({roots}); a relative path is taken "
                          "under the first.")
    if not typed.strip():
        return None
    path = None
    with show_medlim_errors(subject="Slide path"):
        path = confine_to_data_roots(typed.strip(), what="slide")
    if path is None:
        return None
    if not path.is_file() or not is_slide(path):
        st.error(f"{typed.strip()} is not a whole-slide file (SVS, NDPI, OME-TIFF or a tiled TIFF).",
                 icon=":material/error:")
        return None
    return path


def uploaded_slide(name: str, data: bytes) -> Path | None:
    """An upload that is a whole slide, kept inside the data roots for its job; None for other images."""
    from medlim.microscopy.slide_runs import keep_slide_upload

    kept = None
    with show_medlim_errors(subject=name):
        kept = keep_slide_upload(name, data)
    return kept


def slide_spacing(path: Path) -> tuple[float, str] | None:
    """The pixel size the slide states ``(µm, where)``, or None; read once per file in this session."""
    from medlim.core.io.slide import open_slide

    key = f"slide_jobs_spacing:{path}"
    if key not in st.session_state:
        found = None
        with show_medlim_errors(subject=path.name), open_slide(path) as slide:
            found = slide.spacing
        st.session_state[key] = found
    return st.session_state[key]


def slide_job_panel(room: str, slide: Path, *, key: str, options: Callable[[], Sequence[str]],
                    render_done: Callable[[SlideRun], None]) -> None:
    """The region field and “Analyse the slide” (a job), then the job of this page: live, or its results.

    Args:
        room: ``"steatosis"`` or ``"nuclei"``.
        slide: the slide file inside the data roots.
        key: the page's job state key (widget keys derive from it).
        options: the command's other options at the time of the click (cutoffs, method, pixel size).
        render_done: draws a finished run's results.
    """
    from medlim.core.job_folders import job_folder
    from medlim.microscopy.slide_runs import SLIDE_JOB_KINDS, slide_job_argv
    from medlim.ui.jobs import submit_page_job

    st.caption("Whole slide: analysed tile by tile (only one tile in memory) as a job in the app's worker — it goes "
               "on when you leave this page or close the tab; droplets and nuclei on tile seams count once, tiles "
               "without tissue on the slide's overview are skipped.")
    region = st.text_input("Region x,y,w,h in pixels (empty: the whole tissue)", key=f"{key}_region",
                           placeholder="e.g. 0,0,8192,8192")
    if st.button("Analyse the slide", key=f"{key}_run", type="primary"):
        argv = None
        with show_medlim_errors(subject="Whole-slide job"):
            out = job_folder("slide-runs", f"{room}-{uuid.uuid4().hex[:12]}")
            argv = slide_job_argv(room, slide, out, region=region, options=options())
        if argv is not None:
            submit_page_job(SLIDE_JOB_KINDS[room], argv, state_key=key)
    follow_slide_job(room, key=key, render_done=render_done)


def follow_slide_job(room: str, *, key: str, render_done: Callable[[SlideRun], None]) -> bool:
    """The whole-slide job this page follows, drawn (live, or its results once done); whether there is one."""
    from medlim.microscopy.slide_runs import SLIDE_JOB_KINDS
    from medlim.ui.jobs import follow_job, page_job

    job = None
    with show_medlim_errors(subject="Whole-slide job"):
        job = page_job(key, SLIDE_JOB_KINDS[room])
    if job is None:
        return False
    follow_job(job, key=key, render_done=lambda done: _done(done, render_done))
    return True


def _done(job: Job, render_done: Callable[[SlideRun], None]) -> None:
    from medlim.microscopy.slide_runs import read_slide_run
    from medlim.ui.jobs import result_output

    row = next((value for value in result_output(job) if isinstance(value, dict)), {})
    run = None
    with show_medlim_errors(subject=f"Job {job.id}"):
        run = read_slide_run(row)
    if run is not None:
        render_done(run)


def slide_run_downloads(run: SlideRun, *, key: str, objects: str) -> None:
    """The CSV and GeoJSON the job wrote, as written (``<stem>_objects.csv``, ``<stem>.geojson``)."""
    left, right = st.columns(2)
    left.download_button(f"{objects} (CSV)", run.csv_text, file_name=run.csv_name, mime="text/csv",
                         key=f"{key}_csv", help="One row per object: sizes in px and, with a pixel size, µm / µm².")
    right.download_button("Outlines (GeoJSON, QuPath)", run.geojson_text, file_name=run.geojson_name,
                          mime="application/geo+json", key=f"{key}_geojson",
                          help="QuPath › File › Import objects: detections with holes, class and measurements.")
