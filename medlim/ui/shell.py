"""Keep every page inside the app shell that ``app.py`` builds.

Streamlit treats a folder named ``pages/`` beside the main script as a legacy
multipage folder until the first ``st.navigation`` call in the process. So when
the very first request after the server starts is a deep link (``/viewer``), the
page script runs on its own: no ``app.py`` navigation, sections or page config.
:func:`ensure_app_shell`, called first by every page, notices that case and
reruns the session through ``app.py``, which then routes to the same page.
"""

from __future__ import annotations

import streamlit as st

__all__ = ["ensure_app_shell"]


def ensure_app_shell() -> None:
    """Rerun through ``app.py`` when this page was started without it (see module doc).

    A no-op in every other case, including AppTest runs of a single page file.
    """
    # Private Streamlit state (1.67): the flag st.navigation itself clears. Guarded,
    # so a Streamlit without it only loses this deep-link fix.
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - other Streamlit versions
        return
    if getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        st.rerun()
