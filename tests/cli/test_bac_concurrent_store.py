"""Two ``medlim bac quantify --resume`` processes over the same files at the same time (issue 15).

Both analyse the same small phantom DICOMs in the same order and save into one
results store (an SQLite file, or a database on the test session's PostgreSQL
server): every image and result is written by upsert, so the store ends with
exactly one image row and one result row per file, and neither process sees a
database error. The default run uses 6 files; the issue's 20 files run with
``-m slow`` (each file costs a model pass per process on this 2-core machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from medlim.cli import main

_PROCESS_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def bac_weights(tmp_path_factory: pytest.TempPathFactory, random_scunet_registry: Callable[[Path], Path]) -> Path:
    """A registry holding a randomly initialised SCU-Net (the numbers do not matter here, the writes do)."""
    return random_scunet_registry(tmp_path_factory.mktemp("weights"))


def _phantoms(folder: Path, n: int) -> Path:
    assert main(["phantom", "mammogram", "--out", str(folder), "--n", str(n), "--seed", "5", "--size", "small",
                 "--quiet"]) == 0
    assert len(list(folder.glob("*.dcm"))) == n
    return folder


@pytest.fixture(scope="module")
def six_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _phantoms(tmp_path_factory.mktemp("phantoms6"), 6)


def _url(request: pytest.FixtureRequest, database: str, tmp_path: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def _run_two_at_once(folder: Path, url: str, weights: Path, home: Path) -> list[list[dict]]:
    """Start two ``bac quantify --resume`` processes on ``folder`` together; their JSON rows, once both end."""
    env = {**os.environ, "MEDLIM_DATABASE_URL": url, "MEDLIM_WEIGHTS_DIR": str(weights), "MEDLIM_HOME": str(home),
           "MEDLIM_PSEUDONYM_KEY": "test-pseudonym-key", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "medlim", "bac", "quantify", str(folder), "--jsonl", "--device", "cpu",
               "--resume"]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=_PROCESS_TIMEOUT_S)
            assert process.returncode == 0, err[-3000:]
            assert "Error" not in err and "not stored" not in err, err[-3000:]
            outputs.append([json.loads(line) for line in out.splitlines() if line.strip()])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


def _check_one_row_per_file(url: str, outputs: list[list[dict]], n: int) -> None:
    for rows in outputs:
        assert len(rows) == n
        assert [r for r in rows if not r["ok"] or "store_error" in r] == []
    # the same file gives the same numbers whichever process analysed (or reused) it
    first, second = ({r["file"]: (r["am"], r["tam_x"], r["breast_area"]) for r in rows} for rows in outputs)
    assert first == second
    from medlim.core.store import open_store

    with open_store(url, upgrade=False) as store, store.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM images")) == n
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM bac_results")) == n
        assert connection.scalar(sa.text("SELECT COUNT(DISTINCT image_id) FROM bac_results")) == n


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_processes_quantifying_the_same_files_leave_one_result_each(
    database: str, six_phantoms: Path, bac_weights: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(request, database, tmp_path)
    outputs = _run_two_at_once(six_phantoms, url, bac_weights, tmp_path / "home")
    _check_one_row_per_file(url, outputs, 6)


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_processes_quantifying_twenty_files_leave_twenty_results(
    database: str, bac_weights: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(request, database, tmp_path)
    folder = _phantoms(tmp_path / "phantoms", 20)
    outputs = _run_two_at_once(folder, url, bac_weights, tmp_path / "home")
    _check_one_row_per_file(url, outputs, 20)
