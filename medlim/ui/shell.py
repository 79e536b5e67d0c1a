"""Keep every page inside the app shell that ``app.py`` builds, and keep the server tidy.

Streamlit treats a folder named ``pages/`` beside the main script as a legacy
multipage folder until the first ``st.navigation`` call in the process. So when
the very first request after the server starts is a deep link (``/viewer``), the
page script runs on its own: no ``app.py`` navigation, sections or page config.
:func:`ensure_app_shell`, called first by every page, notices that case and
reruns the session through ``app.py``, which then routes to the same page.

Every page run also removes the folders of ended sessions and starts, once, the
background janitor that does the same and hands memory freed by closed sessions
and expired caches back to the system (issue 14; :mod:`medlim.ui.session_files`).
"""

from __future__ import annotations

import streamlit as st

from medlim.ui.session_files import start_janitor, sweep_ended_sessions

__all__ = ["ensure_app_shell"]


def ensure_app_shell() -> None:
    """Sweep ended sessions' folders; rerun through ``app.py`` when this page was started without it (see module doc).

    The rerun is a no-op in every other case, including AppTest runs of a single page file.
    """
    start_janitor()
    sweep_ended_sessions()
    # Private Streamlit state (1.67): the flag st.navigation itself clears. Guarded,
    # so a Streamlit without it only loses this deep-link fix.
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - other Streamlit versions
        return
    if getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        st.rerun()
