"""What only PostgreSQL does (issue 15): driverless URLs, connection failures in words, dead pooled
connections replaced, and the column types the migrations create there."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from medlim.core.store import get_preset, open_store, save_preset
from medlim.errors import StoreError


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("scheme", ["postgres://", "postgresql://"])
def test_a_url_without_a_driver_uses_psycopg(postgres_url: str, scheme: str) -> None:
    bare = postgres_url.replace("postgresql+psycopg://", scheme, 1)
    with open_store(bare) as store:
        assert store.engine.url.drivername == "postgresql+psycopg"
        save_preset(store, kind="k", name="n", params={"a": 1})
        assert get_preset(store, "k", "n").params == {"a": 1}


def test_an_unreachable_server_is_named_and_the_password_hidden() -> None:
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql+psycopg://medlim:s3cret-pw@127.0.0.1:{_closed_port()}/medlim")
    message = caught.value.message
    assert message.startswith("cannot connect to the results store (postgresql+psycopg://medlim:***@127.0.0.1:")
    assert "Connection refused" in message and "Is the database server running" in message
    assert "s3cret-pw" not in message


def test_an_unknown_database_is_named(postgres_url: str) -> None:
    missing = sa.make_url(postgres_url).set(database="no_such_medlim_db").render_as_string(hide_password=False)
    with pytest.raises(StoreError, match='cannot connect .*database "no_such_medlim_db" does not exist'):
        open_store(missing)


def test_connections_the_server_dropped_are_replaced(postgres_url: str, postgres_server) -> None:
    """A server restart (compose, failover) kills pooled connections; the next use must not fail."""
    import psycopg

    with open_store(postgres_url) as store:
        save_preset(store, kind="k", name="n", params={"a": 1})
        admin = postgres_server.admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True) as connection:
            ended = connection.execute("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = %s AND pid <> pg_backend_pid()",
                                       (sa.make_url(postgres_url).database,)).fetchone()
        assert ended is not None and ended[0] >= 1  # the store's pooled connection was killed
        assert get_preset(store, "k", "n").params == {"a": 1}


def test_postgresql_column_types(postgres_url: str) -> None:
    with open_store(postgres_url) as store, store.engine.connect() as connection:
        types = dict(connection.execute(sa.text(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'")).all())
    assert types["images.created_at"] == "timestamp with time zone"
    assert types["bac_results.updated_at"] == "timestamp with time zone"
    assert types["bac_results.threshold"] == "double precision" and types["bac_results.tam_x"] == "bigint"
    assert types["images.study_date"] == "date" and types["presets.params"] == "json"
    assert types["images.id"] == "integer"
    if "jobs.cancel_requested" in types:  # migration 0004
        assert types["jobs.cancel_requested"] == "boolean" and types["jobs.checkpoint"] == "json"
