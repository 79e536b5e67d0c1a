"""Results-store schema: migrations from empty to head and back, models agree with them,
no identifying columns, migrations shipped as package data."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from medlim.core.store import downgrade_store, open_store, save_preset, upgrade_store
from medlim.core.store.engine import MIGRATIONS_DIR
from medlim.core.store.schema import Base
from medlim.errors import StoreError

ROOT = Path(__file__).resolve().parents[3]
#: The newest revision shipped, as alembic reads it from ``migrations/versions``.
HEAD_REVISION = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
#: The tables of issue 14 (and every table of the models, from later migrations).
TABLES = {
    "alembic_version", "images", "bac_results", "presets", "datasets", "curation_scores", "curation_tags",
    "retrieval_indexes", "retrieval_items", *Base.metadata.tables,
}


def test_open_creates_sqlite_in_settings_home(_isolated_medlim_home: Path) -> None:
    with open_store() as store:
        assert store.revision() == HEAD_REVISION
        assert set(store.table_names()) == TABLES
    assert (_isolated_medlim_home / "medlim.sqlite").is_file()


def test_custom_url_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "results.sqlite"
    with open_store(f"sqlite:///{path}") as store:
        assert store.revision() == HEAD_REVISION
    assert path.is_file()


def test_downgrade_to_base_and_upgrade_again(store_url: str) -> None:
    with open_store(store_url) as store:
        save_preset(store, kind="k", name="n", params={"a": 1})
        downgrade_store(store, "base")
        assert store.revision() is None
        assert store.table_names() == ("alembic_version",)
        assert sa.inspect(store.engine).get_view_names() == []
        upgrade_store(store)
        assert store.revision() == HEAD_REVISION
        assert set(store.table_names()) == TABLES
        assert sa.inspect(store.engine).get_view_names() == ["exams"]


def test_reopening_is_a_no_op(store_url: str) -> None:
    with open_store(store_url) as store:
        save_preset(store, kind="k", name="n", params={"a": 1})
    with open_store(store_url) as store:
        with store.engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT COUNT(*) FROM presets")) == 1


def test_models_match_the_migrated_schema(store_url: str) -> None:
    with open_store(store_url) as store:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_no_identifying_columns_anywhere(store_url: str) -> None:
    forbidden = re.compile(r"patient_?name|patient_?id|birth|dob|sex|gender|address|phone|ssn|mrn|accession|physician")
    with open_store(store_url) as store:
        inspector = sa.inspect(store.engine)
        relations = inspector.get_table_names() + inspector.get_view_names()
        columns = {f"{table}.{c['name']}" for table in relations for c in inspector.get_columns(table)}
    assert "images.patient_key" in columns and "exams.patient_key" in columns
    assert [c for c in columns if forbidden.search(c.lower())] == []


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not a valid SQLAlchemy URL"):
        open_store("not a url at all")
    with pytest.raises(StoreError):
        open_store("nosuchdialect://x")


def test_migrations_are_package_data() -> None:
    """setuptools' packages.find needs __init__.py in each folder; the .mako template needs package-data."""
    assert (MIGRATIONS_DIR / "__init__.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "__init__.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = [p for values in config["package-data"].values() for p in values]
    assert "*.mako" in patterns
    patterns = config["packages"]["find"]["include"]
    assert any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), "medlim.core.store.migrations.versions") for p in patterns)


def test_upgrade_to_0002_relabels_stored_file_names(store_url: str) -> None:
    import hashlib
    import hmac

    with open_store(store_url, upgrade=False) as store:
        upgrade_store(store, "0001")
        with store.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO images (content_sha256, file_name, rows, cols, created_at) "
                "VALUES (:sha, 'DOE_JOHN_123456_20240101.DCM', 2, 2, '2024-01-01 00:00:00')"), {"sha": "ab" * 32})
        upgrade_store(store)
        with store.engine.connect() as connection:
            stored = connection.scalar(sa.text("SELECT file_name FROM images"))
            columns = {c["name"] for c in sa.inspect(connection).get_columns("retrieval_indexes")}
        expected = hmac.new(b"test-pseudonym-key", b"sha256:" + bytes.fromhex("ab" * 32), hashlib.sha256).hexdigest()[:12]
        assert stored == f"img-{expected}.dcm" and "data_root" in columns
        downgrade_store(store, "0001")
        with store.engine.connect() as connection:
            assert "data_root" not in {c["name"] for c in sa.inspect(connection).get_columns("retrieval_indexes")}
            assert connection.scalar(sa.text("SELECT file_name FROM images")) == stored  # names cannot come back
