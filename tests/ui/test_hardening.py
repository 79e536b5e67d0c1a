"""Issue 14 in the app: server settings, bounded expiring caches, session folders, pseudonymous downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections import OrderedDict
from pathlib import Path

import pytest

from medlim.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- server settings


def test_streamlit_config_hides_errors_caps_uploads_and_keeps_xsrf() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["maxUploadSize"] == 2048
    assert config["server"]["enableXsrfProtection"] is True


def test_docker_command_does_not_override_the_hardened_settings() -> None:
    command = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    arguments = json.loads(command[len("CMD"):])
    assert arguments[:3] == ["streamlit", "run", "app.py"]
    for option in ("showErrorDetails", "maxUploadSize", "enableXsrfProtection", "maxCacheDataSize"):
        assert not any(option in argument for argument in arguments)
    environment = (ROOT / "Dockerfile").read_text()
    for variable in ("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "STREAMLIT_SERVER_MAX_UPLOAD_SIZE",
                     "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION"):
        assert variable not in environment


# ----------------------------------------------------------------------------- caches


def test_cache_ttl_comes_from_the_environment() -> None:
    from medlim.ui.caching import DEFAULT_CACHE_TTL_S, cache_ttl_seconds

    assert cache_ttl_seconds({}) == DEFAULT_CACHE_TTL_S == 1200.0
    assert cache_ttl_seconds({"MEDLIM_CACHE_TTL_S": " 2.5 "}) == 2.5
    for bad in ("0", "-3", "soon", "inf"):
        with pytest.raises(ParameterError, match="MEDLIM_CACHE_TTL_S"):
            cache_ttl_seconds({"MEDLIM_CACHE_TTL_S": bad})


class _RecordingDecorator:
    """Stands in for ``st.cache_data``: records the options of each decoration."""

    def __init__(self) -> None:
        self.options: list[dict] = []

    def __call__(self, func, **options):  # noqa: ANN001, ANN204
        self.options.append(options)
        func.clear = lambda *a, **k: None
        return func


def test_bounded_cache_reads_the_ttl_at_first_call_and_again_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    from medlim.ui.caching import bounded_cache_data

    recorder = _RecordingDecorator()
    monkeypatch.setattr(st, "cache_data", recorder)
    monkeypatch.delenv("MEDLIM_CACHE_TTL_S", raising=False)

    @bounded_cache_data(max_entries=3, show_spinner=False)
    def double(x: int) -> int:
        return 2 * x

    assert recorder.options == []  # nothing is built when the module is imported
    monkeypatch.setenv("MEDLIM_CACHE_TTL_S", "7")
    assert double(2) == 4 and double(3) == 6
    assert recorder.options == [{"ttl": 7.0, "max_entries": 3, "show_spinner": False}]
    monkeypatch.setenv("MEDLIM_CACHE_TTL_S", "9")
    assert double(1) == 2
    assert recorder.options[-1]["ttl"] == 9.0 and len(recorder.options) == 2
    with pytest.raises(ParameterError):
        bounded_cache_data(max_entries=0)


def test_every_cache_of_the_pages_is_bounded() -> None:
    # a bare st.cache_data / st.cache_resource (no max_entries) anywhere in pages/ or medlim/ui is a leak
    sources = [*ROOT.joinpath("pages").glob("*.py"), *ROOT.joinpath("medlim", "ui").glob("*.py")]
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith(("@st.cache_data", "@st.cache_resource")):
                assert "max_entries" in line, f"{path.name}:{number}: {line.strip()}"


def test_session_lru_keeps_the_newest_entries() -> None:
    from medlim.ui.caching import lru_put

    cache: OrderedDict = OrderedDict()
    for key in "abcd":
        lru_put(cache, key, key.upper(), max_entries=3)
    lru_put(cache, "b", "B2", max_entries=3)
    lru_put(cache, "e", "E", max_entries=3)
    assert list(cache) == ["d", "b", "e"] and cache["b"] == "B2"


def test_release_memory_runs_at_most_once_per_interval() -> None:
    from medlim.ui.caching import RELEASE_INTERVAL_S, release_memory

    assert release_memory(force=True, now=1000.0)
    assert not release_memory(now=1000.0 + RELEASE_INTERVAL_S / 2)
    assert release_memory(now=1000.0 + RELEASE_INTERVAL_S + 1)


# ----------------------------------------------------------------------------- session folders


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sweep_removes_ended_sessions_and_stopped_servers_only(tmp_path: Path) -> None:
    from medlim.ui.session_files import sweep_session_dirs

    root = tmp_path / "sessions"
    mine = root / f"server-{os.getpid()}"
    for session in ("alive", "ended", "unknown", "current"):
        (mine / session / "uploads").mkdir(parents=True)
        (mine / session / "uploads" / "a.png").write_bytes(b"x")
    stopped = root / f"server-{_dead_pid()}" / "old"
    stopped.mkdir(parents=True)
    running = root / f"server-{os.getppid()}" / "theirs"
    running.mkdir(parents=True)
    (root / "not-a-server").mkdir()

    states = {"alive": True, "ended": False, "unknown": None, "current": False}
    removed = sweep_session_dirs(root, is_alive=states.get, keep="current")
    assert sorted(removed) == sorted([mine / "ended", stopped.parent])
    assert sorted(p.name for p in mine.iterdir()) == ["alive", "current", "unknown"]
    assert running.is_dir() and (root / "not-a-server").is_dir()


def test_session_folder_is_under_medlim_home_and_needs_a_clean_id(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.ui.session_files import session_tmp_dir, sessions_root

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    folder = session_tmp_dir("0b6c2d6e-6a7b-4c1e-9d1f-1a2b3c4d5e6f")
    assert folder.is_dir() and folder.parent.parent == sessions_root() == tmp_path / "home" / "tmp" / "sessions"
    assert folder.name == "0b6c2d6e-6a7b-4c1e-9d1f-1a2b3c4d5e6f"
    for odd in ("../x", "a/b", "test session id"):  # never a path component: a hash of it
        hashed = session_tmp_dir(odd)
        assert hashed.parent == folder.parent and hashed.name.startswith("h-")
    with pytest.raises(RuntimeError):
        session_tmp_dir()  # outside a page run


def test_janitor_starts_once() -> None:
    from medlim.ui.session_files import start_janitor

    start_janitor(interval_s=3600)
    assert not start_janitor(interval_s=3600)


# ----------------------------------------------------------------------------- pseudonymous downloads


def test_curated_manifest_download_names_files_by_label_and_neutralises_cells() -> None:
    import csv
    import io

    from medlim.core.io.pseudonym import file_label
    from medlim.ui.curation import curated_csv

    rows = [{"file": "hand/DOE_JOHN_1960.png", "class": "=cmd()", "score": 0.5, "group": 1, "tag": "keep"}]
    text = curated_csv(rows)
    assert "DOE_JOHN" not in text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["file"] == file_label("hand/DOE_JOHN_1960.png") and parsed[0]["file"].startswith("img-")
    assert parsed[0]["class"] == "'=cmd()" and parsed[0]["score"] == "0.5"


def test_batch_rows_for_download_carry_labels_in_every_text_field() -> None:
    from medlim.mammography.report import csv_bytes as report_csv
    from medlim.mammography.report import pseudonymous_rows

    rows = [
        {"file": "exam.zip/SMITH_ANN/LCC.dcm", "ok": False, "error": "InputError",
         "message": "exam.zip/SMITH_ANN/LCC.dcm is truncated"},
        {"file": "=HYPERLINK(1)", "ok": True, "pm": 1.5},
    ]
    labelled = pseudonymous_rows(rows, {"exam.zip/SMITH_ANN/LCC.dcm": "img-0123456789ab.dcm"})
    assert labelled[0]["file"] == "img-0123456789ab.dcm"
    assert labelled[0]["message"] == "img-0123456789ab.dcm is truncated"
    assert labelled[1]["file"].startswith("img-")
    text = report_csv(labelled).decode()
    assert "SMITH" not in text and "HYPERLINK" not in text


def test_report_csv_neutralises_formula_cells() -> None:
    from medlim.mammography.report import csv_bytes as report_csv

    text = report_csv([{"image": "@SUM(A1)", "warnings": ["=1+1", "ok"], "pm": -0.5, "note": None}]).decode()
    assert text.splitlines() == ["image,warnings,pm,note", "'@SUM(A1),'=1+1; ok,-0.5,"]


def test_nuclei_csv_goes_through_the_neutralising_writer() -> None:
    import dataclasses

    import numpy as np

    from medlim.microscopy.nuclei.measure import nucleus_table
    from medlim.microscopy.objects import measure_shapes, object_table
    from medlim.ui.nuclei import nuclei_csv

    labels = np.zeros((6, 6), np.int32)
    labels[1:3, 1:4] = 1
    table = nucleus_table(labels)
    forged = dataclasses.replace(table, objects=object_table(measure_shapes(labels), classes=["=1+1"]))
    lines = nuclei_csv(forged).decode().splitlines()
    assert lines[0].startswith("id,class,centroid_row_px") and lines[1].startswith("1,'=1+1,1.5,2.0,6.0,")


def test_janitor_pass_sweeps_ended_sessions_and_releases_memory(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from medlim.ui import caching, session_files

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    ended = session_files.session_tmp_dir("ended-1")
    alive = session_files.session_tmp_dir("alive-1")
    released: list[bool] = []
    monkeypatch.setattr(caching, "release_memory", lambda **kwargs: released.append(True) or True)
    monkeypatch.setattr(session_files, "session_is_alive", lambda session_id: session_id == "alive-1")
    assert session_files.housekeeping() == [ended]
    assert alive.is_dir() and not ended.exists() and released == [True]
