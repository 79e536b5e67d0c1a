"""Following a job on a page: submit, find it again, progress, stage, cancel, log, "no worker" hint (issue 15).

Every page that starts long work queues it as a job (:mod:`medlim.core.jobs`)
and follows it with the same parts:

* :func:`submit_page_job` queues the command's argv (origin ``page``) and
  remembers the job under the page's state key;
* :func:`page_job` finds the job the page follows: the one this session
  started, else (after a closed tab or a page refresh) the newest unfinished or
  recently finished page job of that kind, unless the person dismissed it;
* :func:`follow_job` draws it: while it runs, a fragment polls it every
  :data:`POLL_S` seconds (progress bar, stage, Cancel, the log, and a hint when
  no worker is running) and reruns the page once it ends; a finished job is
  drawn by the page's own ``render_done(job)``.

:data:`JOB_PAGES` says which page opens a finished job of each kind (the Jobs
page's "Open" button). Widgets only: the job layer is :mod:`medlim.core.jobs`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.jobs import Job
    from medlim.core.store import Store

__all__ = [
    "ADOPT_HOURS",
    "JOB_PAGES",
    "POLL_S",
    "JobPage",
    "dismiss_job",
    "follow_job",
    "go_to_opened_job",
    "job_caption",
    "jobs_store",
    "open_job_on_page",
    "page_job",
    "result_output",
    "submit_page_job",
]

#: Seconds between two looks at a running job.
POLL_S = 2.0
#: A page shows a finished job it did not start itself for this many hours after it ended.
ADOPT_HOURS = 24.0
_LOG_LINES = 50
_STATE_WORDS = {"queued": "waiting for a worker", "running": "running", "done": "done", "failed": "failed",
                "cancelled": "cancelled"}


@dataclass(frozen=True)
class JobPage:
    """Where a job kind's results are shown: the page file and the session key that page follows."""

    file: str
    title: str
    state_key: str


#: Job kind → the page that starts and shows it.
JOB_PAGES: dict[str, JobPage] = {
    "train": JobPage("pages/models.py", "Models", "models_job"),
    "shift.run": JobPage("pages/curation.py", "Curation decisions", "cur_job"),
    "bac.quantify": JobPage("pages/mammography.py", "Arterial calcification", "bac_job"),
    "retrieval.build": JobPage("pages/retrieval.py", "Similar images", "ret_job"),
    "ood.score": JobPage("pages/ood.py", "Out-of-distribution", "ood_job"),
    "steatosis.segment": JobPage("pages/steatosis.py", "Liver steatosis", "steatosis_job"),
    "nuclei.segment": JobPage("pages/nuclei.py", "Clumped nuclei", "nuclei_job"),
    "evaluate": JobPage("pages/models.py", "Models", "models_eval_job"),
}


def jobs_store() -> Store:
    """The results store, which holds the jobs (opened once per database URL)."""
    from medlim.settings import get_settings
    from medlim.ui.stores import open_store_cached

    return open_store_cached(get_settings().database_url)


def submit_page_job(kind: str, argv: list[str], *, state_key: str,
                    dataset_fingerprint: str | None = None) -> Job | None:
    """Queue ``medlim <argv>`` as a job of this page; ``None`` (the error shown) when refused."""
    import streamlit as st

    from medlim.core.jobs import submit_job
    from medlim.ui.errors import show_medlim_errors

    job = None
    with show_medlim_errors(subject="Starting the job"):
        job = submit_job(jobs_store(), kind, {"argv": [str(arg) for arg in argv]}, origin="page",
                         dataset_fingerprint=dataset_fingerprint)
    if job is not None:
        st.session_state[state_key] = job.id
    return job


def _recent(job: Job) -> bool:
    if not job.finished:
        return True
    ended = job.finished_at or job.created_at
    return ended is not None and dt.datetime.now(dt.UTC) - ended < dt.timedelta(hours=ADOPT_HOURS)


def page_job(state_key: str, kind: str, *, matches: Callable[[Job], bool] | None = None) -> Job | None:
    """The job this page follows, or ``None``.

    The one this session started or opened; else the newest page job of
    ``kind`` (for which ``matches`` holds) that is unfinished or ended within
    :data:`ADOPT_HOURS`, newer than the last one dismissed here.
    """
    import streamlit as st

    from medlim.core.jobs import get_job, list_jobs
    from medlim.errors import MedlimError

    store = jobs_store()
    held = st.session_state.get(state_key)
    if held is not None:
        try:
            return get_job(store, int(held))
        except MedlimError:
            st.session_state.pop(state_key, None)
    dismissed = int(st.session_state.get(f"{state_key}_dismissed", 0))
    for job in list_jobs(store, kind=kind, limit=20):
        if job.id > dismissed and job.origin == "page" and _recent(job) and (matches is None or matches(job)):
            st.session_state[state_key] = job.id
            return job
    return None


def dismiss_job(state_key: str) -> None:
    """Stop following the page's job (a finished one is not found again by :func:`page_job`)."""
    import streamlit as st

    held = st.session_state.pop(state_key, None)
    if held is not None:
        st.session_state[f"{state_key}_dismissed"] = max(int(held), int(st.session_state.get(f"{state_key}_dismissed",
                                                                                            0)))


def open_job_on_page(job_id: int, kind: str) -> None:
    """Make the page of ``kind`` follow job ``job_id`` (a button's callback); :func:`go_to_opened_job` goes there."""
    import streamlit as st

    target = JOB_PAGES[kind]
    st.session_state[target.state_key] = int(job_id)
    st.session_state.pop(f"{target.state_key}_dismissed", None)
    st.session_state["jobs_goto"] = target.file


def go_to_opened_job() -> None:
    """Switch to the page a job was just opened on (a callback cannot switch pages itself)."""
    import streamlit as st

    target = st.session_state.pop("jobs_goto", None)
    if target is not None:
        st.switch_page(target)


def job_caption(job: Job) -> str:
    """``"Job 12 · running · detectors 3/9 · started 14:02 UTC"``."""
    parts = [f"Job {job.id}", _STATE_WORDS.get(job.state, job.state)]
    progress = job.progress
    if progress.stage or progress.total:
        parts.append(f"{progress.stage} {progress.done}/{progress.total or '?'}".strip())
    stamp = job.finished_at or job.started_at or job.created_at
    if stamp is not None:
        word = "ended" if job.finished else "started" if job.started_at else "queued"
        parts.append(f"{word} {stamp:%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


def _cancel(job_id: int) -> None:
    from medlim.core.jobs import cancel_job

    cancel_job(jobs_store(), job_id)


def _no_worker_hint(store: Store) -> None:
    import streamlit as st

    from medlim.core.jobs import live_workers
    from medlim.settings import get_settings

    if not live_workers(store, stale_s=get_settings().job_stale_s):
        st.warning("No job worker is running: the job waits in the queue until one starts. The app starts one "
                   "by itself unless MEDLIM_WORKER=external; then run `medlim worker`.", icon=":material/pending:")


def _log_expander(store: Store, job: Job) -> None:
    import streamlit as st

    from medlim.core.jobs import job_log

    lines = [line.line for line in job_log(store, job.id, limit=_LOG_LINES)]
    with st.expander(f"Log of job {job.id} (last {_LOG_LINES} lines)"):
        st.code("\n".join(lines) or "(nothing yet)", language=None)


def _running(job: Job, *, key: str, render_live: Callable[[Job], None] | None) -> None:
    import streamlit as st

    store = jobs_store()
    st.progress(job.progress.fraction or 0.0, text=job_caption(job))
    if job.progress.message:
        st.caption(job.progress.message[:200])
    if job.state == "queued":
        _no_worker_hint(store)
    st.button("Cancel", key=f"{key}_cancel_{job.id}", on_click=_cancel, args=(job.id,),
              disabled=job.cancel_requested, help="Stop the job (at its next step).")
    if render_live is not None:
        render_live(job)
    _log_expander(store, job)


def follow_job(
    job: Job,
    *,
    key: str,
    render_done: Callable[[Job], None],
    render_live: Callable[[Job], None] | None = None,
) -> None:
    """Draw ``job``: live (polled) while it runs, ``render_done(job)`` once it is done.

    Args:
        job: the job (from :func:`page_job`).
        key: the page's state key (widget keys derive from it).
        render_done: draws a finished job's results.
        render_live: draws more while it runs (e.g. a live curve), inside the polling fragment.
    """
    import streamlit as st

    if job.finished:
        _finished(job, key=key, render_done=render_done)
        return

    @st.fragment(run_every=POLL_S)
    def live() -> None:
        from medlim.core.jobs import get_job

        current = get_job(jobs_store(), job.id)
        if current.finished:
            st.rerun()  # the whole page: its results, and whatever the job added (a model, a stored run)
        _running(current, key=key, render_live=render_live)

    live()


def _finished(job: Job, *, key: str, render_done: Callable[[Job], None]) -> None:
    import streamlit as st

    columns = st.columns([5, 1], vertical_alignment="center")
    columns[0].caption(job_caption(job))
    columns[1].button("Dismiss", key=f"{key}_dismiss_{job.id}", on_click=dismiss_job, args=(key,),
                      help="Hide this job here (the Jobs page still lists it).")
    if job.state == "failed" and job.error is not None:
        lines = job.error.message.split("\\n")  # the store keeps a message's line breaks escaped
        st.error("The job failed: " + "  \n".join(lines), icon=":material/error:")
        _log_expander(jobs_store(), job)
    elif job.state == "cancelled":
        st.info("The job was cancelled.", icon=":material/cancel:")
    else:
        render_done(job)


def result_output(job: Job) -> list[Any]:
    """The JSON values a command job printed (``result["output"]``), ``[]`` when none."""
    output = (job.result or {}).get("output")
    return list(output) if isinstance(output, list) else []
