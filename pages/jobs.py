"""Jobs page: the recent jobs of this app (every user's: there is no login), and the page of each one's results.

Issue 15: long work (a BAC batch, a MedShift run, a retrieval build, OOD
scoring, training) runs as a job in a worker beside the app. This page lists
the recent ones with their state, progress, kind and times, as ``medlim jobs
list`` prints them, offers Cancel for the ones still running, and opens a
finished job's results on the page that started it (:data:`medlim.ui.jobs.JOB_PAGES`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from medlim.core.text import counted
from medlim.ui.errors import show_medlim_errors
from medlim.ui.shell import ensure_app_shell

_LIMIT = 50


def _frame(jobs: list) -> pd.DataFrame:
    rows = [{
        "job": job.id, "kind": job.kind, "state": job.state, "progress": job.progress.fraction,
        "stage": f"{job.progress.stage} {job.progress.done}/{job.progress.total or '?'}".strip()
        if job.progress.stage or job.progress.total else "",
        "from": job.origin, "created (UTC)": job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "",
        "ended (UTC)": job.finished_at.strftime("%Y-%m-%d %H:%M:%S") if job.finished_at else "",
        "error": job.error.message if job.error is not None else "",
    } for job in jobs]
    return pd.DataFrame(rows, columns=["job", "kind", "state", "progress", "stage", "from", "created (UTC)",
                                       "ended (UTC)", "error"])


@st.fragment(run_every=3.0)
def _jobs_table() -> None:
    from medlim.core.jobs import list_jobs, live_workers
    from medlim.settings import get_settings
    from medlim.ui.jobs import jobs_store

    jobs, workers = [], []
    with show_medlim_errors(subject="Jobs"):
        store = jobs_store()
        jobs = list_jobs(store, limit=_LIMIT)
        workers = live_workers(store, stale_s=get_settings().job_stale_s)
    st.caption(f"{counted(len(workers), 'worker')} running · the newest {_LIMIT} jobs, "
               "newest first · every user of this app sees every job.")
    if not jobs:
        st.info("No job yet: start a BAC batch, a MedShift run, a retrieval build, OOD scoring or a training "
                "from its page (or `medlim ... --background`).")
        return
    st.dataframe(_frame(jobs), hide_index=True, key="jobs_table", width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})


def _open_section() -> None:
    from medlim.core.jobs import cancel_job, get_job
    from medlim.ui.jobs import JOB_PAGES, jobs_store, open_job_on_page

    columns = st.columns([1, 2, 2], vertical_alignment="bottom")
    job_id = columns[0].number_input("Job", min_value=1, step=1, value=None, key="jobs_pick",
                                     placeholder="number", help="The number in the first column.")
    if job_id is None:
        return
    job = None
    with show_medlim_errors(subject=f"Job {int(job_id)}"):
        job = get_job(jobs_store(), int(job_id))
    if job is None:
        return
    target = JOB_PAGES.get(job.kind)
    if target is not None:
        columns[1].button(f"Open on “{target.title}”", key="jobs_open", type="primary", on_click=open_job_on_page,
                          args=(job.id, job.kind))
    if not job.finished and columns[2].button("Cancel this job", key="jobs_cancel"):
        cancel_job(jobs_store(), job.id)
        st.rerun()


def _sweep_once() -> None:
    """Old job inputs and run outputs go (once per session that opens this page)."""
    from medlim.core.job_folders import sweep_job_folders

    if not st.session_state.get("jobs_swept"):
        st.session_state["jobs_swept"] = True
        sweep_job_folders()


def main() -> None:
    from medlim.ui.jobs import go_to_opened_job

    ensure_app_shell()
    go_to_opened_job()
    _sweep_once()
    st.title("Jobs")
    st.caption("Long work runs in a worker beside the app: it goes on when you close the tab. "
               "From the command line: `medlim jobs list|show|cancel|logs`.")
    _jobs_table()
    _open_section()


main()
