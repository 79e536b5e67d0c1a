"""The app's job worker: started once per server process, beside it (issue 15).

``app.py``'s ``main()`` calls :func:`ensure_worker`; ``st.cache_resource`` makes it
run once per server (and look again every :data:`RECHECK_S` seconds, so a worker
that died is started again). The work itself is :func:`medlim.core.jobs.launch.start_worker_beside`.
"""

from __future__ import annotations

import streamlit as st

from medlim.core.jobs.launch import WorkerLaunch, start_worker_beside

__all__ = ["RECHECK_S", "ensure_worker"]

#: Seconds after which the app looks again whether its worker is alive.
RECHECK_S = 60


@st.cache_resource(ttl=RECHECK_S, max_entries=1, show_spinner=False)
def ensure_worker() -> WorkerLaunch:
    """A worker beside this server: started if none is alive (nothing when ``MEDLIM_WORKER=external``)."""
    return start_worker_beside()
