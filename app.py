"""medlim app: ``streamlit run app.py``.

Routes with ``st.navigation`` over the page scripts in ``pages/`` listed in
:data:`medlim.ui.navigation.PAGES` (only those whose file exists). The pages are
a thin skin over the ``medlim`` library (see ``medlim/ui``).
Research use only: not a medical device, not for diagnosis.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from medlim.core.paths import confining_to_data_roots
from medlim.errors import MedlimError
from medlim.ui.navigation import available_pages, pages_by_section
from medlim.ui.worker_launcher import ensure_worker

ROOT = Path(__file__).resolve().parent


def main() -> None:
    """Configure the app and run the selected page."""
    st.set_page_config(page_title="medlim", page_icon=":material/biotech:", layout="wide")
    try:  # jobs run in a worker beside the server, so they outlive a closed tab (issue 15)
        ensure_worker()
    except MedlimError as exc:
        st.sidebar.warning(f"Background jobs will wait: {exc.message}")
    sections = pages_by_section(available_pages(ROOT))
    navigation = st.navigation(
        {
            section: [
                st.Page(ROOT / spec.file, title=spec.title, icon=spec.icon, default=spec.default)
                for spec in specs
            ]
            for section, specs in sections.items()
        }
    )
    st.sidebar.caption("medlim · research use only, not for diagnosis")
    with confining_to_data_roots():  # whatever a page reads from a dataset stays inside it and the data roots
        navigation.run()


if __name__ == "__main__":
    main()
