"""``docker-compose.yml`` (issue 15): app + worker + PostgreSQL, healthchecks, a volume each.

Docker is not needed: the file is read as YAML (with compose's ``${NAME:-default}``
interpolation) and checked for what a ``docker compose up`` relies on; the
worker's healthcheck command runs here against an SQLite store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def _interpolated(value: Any) -> Any:
    """``value`` with compose's ``${NAME:-default}`` replaced by the default (no variable set)."""
    if isinstance(value, str):
        return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    if isinstance(value, list):
        return [_interpolated(item) for item in value]
    if isinstance(value, dict):
        return {key: _interpolated(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _interpolated(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def _command_text(check: dict[str, Any]) -> str:
    test = check["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_three_services_each_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"app", "worker", "postgres"}
    assert re.fullmatch(r"postgres:16(\.\d+)*(-\w+)?", services["postgres"]["image"])
    assert "pg_isready" in _command_text(services["postgres"]["healthcheck"])
    assert "/_stcore/health" in _command_text(services["app"]["healthcheck"])
    assert "live_workers" in _command_text(services["worker"]["healthcheck"])
    for name in ("app", "worker"):
        assert services[name]["build"] == "." and (ROOT / "Dockerfile").is_file()
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["app"]["command"][:3] == ["streamlit", "run", "app.py"]
    assert (ROOT / services["app"]["command"][2]).is_file()
    assert services["worker"]["command"] == ["medlim", "worker"]
    assert "8501:8501" in services["app"]["ports"]


def test_app_and_worker_share_the_postgresql_store_and_run_no_worker_in_the_app(compose: dict[str, Any]) -> None:
    services = compose["services"]
    database = services["postgres"]["environment"]
    for name in ("app", "worker"):
        environment = services[name]["environment"]
        assert environment["MEDLIM_WORKER"] == "external"
        url = sa.make_url(environment["MEDLIM_DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg" and url.host == "postgres" and url.port == 5432
        assert (url.username, url.password, url.database) == (
            database["POSTGRES_USER"], database["POSTGRES_PASSWORD"], database["POSTGRES_DB"])


def test_a_named_volume_each(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])

    def mounts(name: str) -> dict[str, str]:
        return dict(reversed(volume.split(":")[:2]) for volume in services[name]["volumes"])

    assert mounts("postgres")["/var/lib/postgresql/data"] in declared
    home = services["app"]["environment"]["MEDLIM_HOME"]
    assert mounts("app")[home] in declared and mounts("worker")[home] == mounts("app")[home]
    assert mounts("app")[home] != mounts("postgres")["/var/lib/postgresql/data"]


def test_the_worker_command_is_a_medlim_command() -> None:
    from medlim.cli import main

    with pytest.raises(SystemExit) as done:
        main(["worker", "--help"])
    assert done.value.code == 0


def test_the_worker_healthcheck_reports_a_live_worker_in_its_container(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlim.core.jobs.workers import new_worker_id, register_worker, remove_worker
    from medlim.core.store import open_store

    test = compose["services"]["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    monkeypatch.setenv("MEDLIM_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")

    def exit_code() -> int:
        with pytest.raises(SystemExit) as done:
            exec(compile(test[3], "healthcheck", "exec"), {})  # noqa: S102 - the compose file's own command
        return int(done.value.code or 0)

    assert exit_code() == 1  # no worker yet
    worker = new_worker_id()
    with open_store() as store:
        register_worker(store, worker)
    assert exit_code() == 0
    with open_store() as store:
        remove_worker(store, worker)
    assert exit_code() == 1
