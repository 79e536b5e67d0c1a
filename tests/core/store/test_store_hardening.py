"""Results-store hardening (issue 14): no SQL values in errors, no in-memory store, no file names or server paths."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from medlim.core.store import open_store, save_image, set_tags
from medlim.core.store.curation import get_scores, save_scores
from medlim.core.store.engine import describe_database_error
from medlim.core.store.retrieval import RetrievalItem, add_items, create_index, get_items
from medlim.core.store.schema import BacResultRow, ImageRow
from medlim.core.store.upsert import upsert_statement
from medlim.errors import StoreError


def test_a_database_error_quotes_no_statement_or_parameters(store) -> None:
    with pytest.raises(StoreError) as caught:
        with store.session() as session:
            # a row inserted straight into the table, bypassing the upsert, to hit the NOT NULL constraint
            session.execute(sa.insert(ImageRow), {"content_sha256": "a" * 64, "file_name": "JOHN_DOE_123456.dcm",
                                                  "patient_key": "pk-0123456789", "study_date": None, "rows": None,
                                                  "cols": 3})
    message = caught.value.message
    assert "JOHN_DOE" not in message and "pk-0123456789" not in message
    assert "INSERT" not in message and "parameters" not in message and "[SQL" not in message
    reason = {"sqlite": "NOT NULL constraint failed: images.rows",
              "postgresql": 'null value in column "rows" of relation "images" violates not-null constraint'}
    assert message.endswith(f"refused the change: IntegrityError: {reason[store.engine.dialect.name]}.")


def test_the_engine_hides_parameters_from_exception_texts(store) -> None:
    with store.engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as caught:
        connection.execute(sa.text("SELECT no_such_column FROM images WHERE file_name = :name"),
                           {"name": "JOHN_DOE_123456.dcm"})
    assert "JOHN_DOE" not in str(caught.value)


def test_only_value_free_reasons_are_quoted() -> None:
    def error(reason: str) -> sa.exc.DBAPIError:
        return sa.exc.IntegrityError("INSERT ...", {"file_name": "JOHN_DOE.dcm"}, sqlite3.IntegrityError(reason))

    assert describe_database_error(error("UNIQUE constraint failed: images.content_sha256")) == (
        "IntegrityError: UNIQUE constraint failed: images.content_sha256")
    quoted = describe_database_error(error('invalid input syntax for type date: "JOHN_DOE"\nLINE 1: ...'))
    assert "JOHN_DOE" not in quoted and quoted.startswith("IntegrityError (")
    assert describe_database_error(ValueError("JOHN_DOE")) == (
        "ValueError (the database's details are not shown: they may quote the data)")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"])
def test_an_in_memory_store_is_refused_unless_asked_for(url: str) -> None:
    with pytest.raises(StoreError, match="MEDLIM_DATABASE_URL.*in-memory SQLite database would discard every "
                                         "result.*sqlite:////data/medlim.sqlite"):
        open_store(url)


def test_an_in_memory_store_from_the_settings_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_DATABASE_URL", "sqlite://")
    with pytest.raises(StoreError, match="in-memory"):
        open_store()
    with open_store("sqlite://", allow_memory=True) as store:  # tests may opt in
        assert "images" in store.table_names()


def test_upserts_are_written_for_sqlite_and_postgresql() -> None:
    table = BacResultRow.__table__
    keys = ["image_id", "weights_name", "weights_version", "threshold", "x"]
    for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        text = str(upsert_statement(table, name, keys=keys, update=["pm", "updated_at"]).compile(dialect=dialect))
        assert "ON CONFLICT (image_id, weights_name, weights_version, threshold, x) DO UPDATE SET " in text
        assert "pm = excluded.pm" in text and "updated_at = excluded.updated_at" in text
        assert "created_at = " not in text
        nothing = str(upsert_statement(ImageRow.__table__, name, keys=["content_sha256"]).compile(dialect=dialect))
        assert nothing.endswith("ON CONFLICT (content_sha256) DO NOTHING")
    with pytest.raises(StoreError, match="SQLite and PostgreSQL"):
        upsert_statement(table, "mysql", keys=keys)


def test_the_image_row_holds_a_label_not_the_name(store) -> None:
    digest = hashlib.sha256(b"pixels").hexdigest()
    stored = save_image(store, content_sha256=digest, file_name="/archive/DOE_JOHN_123456_20240101.DCM", rows=2,
                        cols=2)
    expected = hmac.new(b"test-pseudonym-key", b"sha256:" + hashlib.sha256(b"pixels").digest(), hashlib.sha256).hexdigest()[:12]
    assert stored.file_name == f"img-{expected}.dcm"
    with store.engine.connect() as connection:  # every stored value of every table, as text
        dump = "\n".join(repr(tuple(row)) for table in store.table_names()
                         for row in connection.execute(sa.text(f"SELECT * FROM {table}")))
    assert stored.file_name in dump and "DOE" not in dump and "archive" not in dump


def test_curated_files_must_be_dataset_relative(store) -> None:
    save_scores(store, "ext", [{"file": "hand\\0001.png", "score": 1.0}], method="m")
    assert [s.file for s in get_scores(store, "ext")] == ["hand/0001.png"]
    for bad in ("/srv/archive/DOE_JOHN.png", "../outside.png", "hand/../../x.png", "C:/scans/a.png", ""):
        with pytest.raises(StoreError, match="inside its dataset folder") as caught:
            set_tags(store, "ext", {bad: "keep"})
        assert "DOE_JOHN" not in caught.value.message
        with pytest.raises(StoreError, match="inside its dataset folder"):
            save_scores(store, "ext", [{"file": bad, "score": 1.0}], method="m")
    assert [s.file for s in get_scores(store, "ext")] == ["hand/0001.png"]  # nothing replaced


def test_retrieval_items_are_stored_relative_to_the_data_root(store, tmp_path: Path) -> None:
    root = tmp_path / "data"
    create_index(store, name="x", path="x.npz", model="m:1", dim=4, data_root=str(root))
    add_items(store, "x", [RetrievalItem(0, str(root / "hand" / "a.png")), RetrievalItem(1, "elbow/b.png")])
    with store.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT file FROM retrieval_items ORDER BY item_id")).scalars().all()
    assert stored == ["hand/a.png", "elbow/b.png"]
    items = get_items(store, "x")
    assert items[0].file == str(root / "hand" / "a.png") and items[1].file == str(root / "elbow" / "b.png")
    for outside in (str(tmp_path / "other" / "c.png"), "../c.png"):
        with pytest.raises(StoreError, match="inside the collection's data folder"):
            add_items(store, "x", [RetrievalItem(2, outside)])
    with pytest.raises(StoreError, match="absolute folder"):
        create_index(store, name="y", path="y.npz", model="m:1", dim=4, data_root="relative/folder")
    replaced = create_index(store, name="x", path="x2.npz", model="m:1", dim=4, replace=True)
    assert replaced.data_root is None and get_items(store, "x") == {}
