"""Fixtures of the AppTest tests of the pages."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def recorded_downloads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``download_button`` a page offers, as the keyword arguments plus ``label`` and ``data``.

    AppTest shows a download button's label but not its file name or bytes;
    the pages run in this process, so the button is wrapped to record them.
    """
    import streamlit as st
    from streamlit.delta_generator import DeltaGenerator

    offered: list[dict[str, Any]] = []
    original = DeltaGenerator.download_button

    def recording(self, label, data, *args, **kwargs):  # noqa: ANN001, ANN202
        offered.append({"label": label, "data": data, **kwargs})
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    # ``st.download_button`` is bound to the main container when streamlit is imported
    main = st.download_button.__self__
    monkeypatch.setattr(st, "download_button", lambda *args, **kwargs: recording(main, *args, **kwargs))
    return offered


@pytest.fixture
def run_jobs():  # noqa: ANN201 - returns the runner
    """``run_jobs() -> [Job, ...]``: run every queued job in this process, as a worker would (issue 15).

    A page under AppTest queues its long work as a job; the test runs it here
    (the kind's own runner, through :func:`medlim.core.jobs.runner.run_job`), then
    runs the page again to see the finished job's results.
    """
    from medlim.core.jobs import claim_next_job
    from medlim.core.jobs.runner import run_job
    from medlim.core.store import open_store

    def run() -> list:
        finished = []
        with open_store() as store:
            while (lease := claim_next_job(store, "test-worker")) is not None:
                finished.append(run_job(store, lease))
        return finished

    return run
