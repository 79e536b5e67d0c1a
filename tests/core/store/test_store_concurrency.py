"""Concurrent writers of the same rows (issue 14), on SQLite and PostgreSQL (issue 15): atomic upserts,
never a UNIQUE error."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from medlim.core.store import open_store, save_image, save_preset, set_tags, upsert_bac_result
from medlim.core.store.curation import save_scores
from medlim.core.store.retrieval import RetrievalItem, add_items, create_index

ROUNDS = 20


def _writer(url: str, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    """Each round: wait for the other writer, then save the round's image, its BAC result and curation rows."""
    with open_store(url, upgrade=False) as store:
        for round_index in range(ROUNDS):
            barrier.wait(timeout=60)
            try:
                image = save_image(store, content_sha256=f"{round_index:064x}", file_name=f"JOHN_DOE_{round_index}.dcm",
                                   rows=4, cols=3)
                upsert_bac_result(store, image_id=image.id, weights_name="scunet", weights_version="1",
                                  preset="published", threshold=0.65, x=100.0, pm=1.0, am=2, sim=3.0, tam_x=1,
                                  tsim_x=2.0, breast_area=10)
                save_preset(store, kind="k", name=f"p{round_index}", params={"round": round_index})
                set_tags(store, f"dataset-{round_index}", {"a.png": "keep"})
                save_scores(store, f"dataset-{round_index}", [{"file": "a.png", "score": 1.0}], method="m")
                create_index(store, name=f"index-{round_index}", path="i.npz", model="m:1", dim=4, replace=True)
            except BaseException as exc:  # noqa: BLE001 - collected and reported by the test
                errors.append(exc)


def test_two_writers_saving_the_same_rows_leave_one_row_each(store_url: str) -> None:
    url = store_url
    open_store(url).close()  # migrate once, before the writers start
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    writers = [threading.Thread(target=_writer, args=(url, barrier, errors)) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    assert [f"{type(e).__name__}: {e}" for e in errors] == []
    with open_store(url) as store, store.engine.connect() as connection:
        for table in ("images", "bac_results", "presets", "datasets", "curation_tags", "curation_scores",
                      "retrieval_indexes"):
            assert connection.scalar(sa.text(f"SELECT COUNT(*) FROM {table}")) == ROUNDS, table


def test_concurrent_retrieval_items_are_recorded_once(store_url: str) -> None:
    url = store_url
    with open_store(url) as store:
        create_index(store, name="x", path="x.npz", model="m:1", dim=4)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def add(start: int) -> None:
        with open_store(url, upgrade=False) as store:
            for item_id in range(ROUNDS):
                barrier.wait(timeout=60)
                try:
                    add_items(store, "x", [RetrievalItem(item_id, f"{item_id}.png")])
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

    writers = [threading.Thread(target=add, args=(n,)) for n in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    # the second writer of an id is told it is recorded already (a clear StoreError), never a database error
    assert all("already recorded" in str(e) for e in errors), [str(e) for e in errors]
    with open_store(url) as store, store.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM retrieval_items")) == ROUNDS


def test_openers_of_a_new_store_at_the_same_moment_migrate_it_once(store_url: str) -> None:
    """An app and its worker (or two batch commands) starting together on an empty database."""
    openers = 4
    barrier = threading.Barrier(openers)
    errors: list[BaseException] = []

    def open_new() -> None:
        barrier.wait(timeout=60)
        try:
            open_store(store_url).close()
        except BaseException as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=open_new) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert [f"{type(e).__name__}: {e}" for e in errors] == []
    with open_store(store_url, upgrade=False) as store, store.engine.connect() as connection:
        assert store.revision() is not None
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM alembic_version")) == 1
