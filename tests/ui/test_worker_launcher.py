"""The app's worker launcher (issue 15): with MEDLIM_WORKER=external (as in every test) it starts nothing."""

from __future__ import annotations

import pytest


def test_external_worker_setting_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.core.jobs.launch import WorkerLaunch
    from medlim.ui.worker_launcher import ensure_worker

    monkeypatch.setenv("MEDLIM_WORKER", "external")
    ensure_worker.clear()
    assert ensure_worker() == WorkerLaunch("external")
