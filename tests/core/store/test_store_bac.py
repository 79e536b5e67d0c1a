"""BAC repository: images stored once, idempotent result upsert, per-exam view, transactions."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
import sqlalchemy as sa

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.core.store import (
    Store,
    list_bac_results,
    list_exams,
    open_store,
    save_image,
    save_image_record,
    upsert_bac_result,
)
from medlim.errors import StoreError


def sha(n: int) -> str:
    return f"{n:064x}"


def metrics(**changes: float) -> dict[str, float]:
    values = {"pm": 12.5, "am": 40, "sim": 6000.0, "tam_x": 30, "tsim_x": 5000.0, "breast_area": 1000}
    values.update(changes)
    return values


def image(store: Store, n: int, **changes: object) -> int:
    fields: dict[str, object] = {
        "content_sha256": sha(n), "file_name": f"/data/secret_folder/img{n}.dcm", "rows": 40, "cols": 30,
        "modality": "MG", "view": "CC", "laterality": "L", "study_date": "2024-03-01", "patient_key": "pk1",
        "pixel_spacing_mm": (0.07, 0.07), "pixel_spacing_source": "PixelSpacing",
    }
    fields.update(changes)
    return save_image(store, **fields).id


def run(store: Store, image_id: int, **changes: object):
    fields: dict[str, object] = {
        "image_id": image_id, "weights_name": "scunet", "weights_version": "1", "preset": "published",
        "threshold": 0.65, "x": 100.0, **metrics(),
    }
    fields.update(changes)
    return upsert_bac_result(store, **fields)


def test_save_image_is_once_per_content(store: Store) -> None:
    first = save_image(store, content_sha256=sha(1), file_name="C:\\scans\\a.dcm", rows=4, cols=3, study_date="2024-01-02")
    again = save_image(store, content_sha256=sha(1), file_name="other.dcm", rows=4, cols=3)
    assert again == first
    # neither folders nor the name are stored: a keyed hash of the content digest, the suffix kept
    label = hmac.new(b"test-pseudonym-key", b"sha256:" + bytes.fromhex(sha(1)), hashlib.sha256).hexdigest()[:12]
    assert first.file_name == f"img-{label}.dcm"
    assert first.study_date == "2024-01-02"
    assert first.created_at.tzinfo is not None
    with pytest.raises(StoreError, match="64 lower-case hex"):
        save_image(store, content_sha256="abc", file_name="x", rows=1, cols=1)
    with pytest.raises(StoreError, match="ISO date"):
        save_image(store, content_sha256=sha(2), file_name="x", rows=1, cols=1, study_date="03/01/2024")


def test_save_image_record_takes_non_identifying_metadata(store: Store) -> None:
    meta = ImageMetadata(source_format="dicom", modality="MG", view="MLO", laterality="R", study_date="2023-05-06",
                         pixel_spacing_mm=(0.1, 0.1), pixel_spacing_source="PixelSpacing", patient_key="pk9")
    record = ImageRecord(pixels=np.zeros((5, 7), np.float32), raw=np.zeros((5, 7), np.float32), metadata=meta, name="r.dcm")
    stored = save_image_record(store, record, content_sha256=sha(3))
    assert (stored.rows, stored.cols, stored.view, stored.laterality, stored.patient_key) == (5, 7, "MLO", "R", "pk9")
    assert stored.pixel_spacing_mm == (0.1, 0.1)


def test_upsert_is_idempotent(store: Store) -> None:
    image_id = image(store, 1)
    first = run(store, image_id)
    second = run(store, image_id, tam_x=25, seconds=1.5)
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert second.tam_x == 25 and second.seconds == 1.5
    assert len(list_bac_results(store)) == 1
    # a different (t, X) or weights version is a different run
    run(store, image_id, threshold=0.5)
    run(store, image_id, x=50.0)
    run(store, image_id, weights_version="2")
    assert len(list_bac_results(store)) == 4
    with store.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM bac_results")) == 4


def test_upsert_validates(store: Store) -> None:
    image_id = image(store, 1)
    with pytest.raises(StoreError, match="no stored image with id 999"):
        run(store, 999)
    with pytest.raises(StoreError, match="cannot exceed am"):
        run(store, image_id, am=5, tam_x=6)
    with pytest.raises(StoreError, match="non-negative"):
        run(store, image_id, breast_area=-1)
    assert list_bac_results(store) == ()


def test_list_by_patient_in_history_order(store: Store) -> None:
    later = image(store, 1, study_date="2024-05-01", laterality="R")
    earlier = image(store, 2, study_date="2022-01-01", laterality="L")
    other = image(store, 3, patient_key="pk2")
    for image_id in (later, earlier, other):
        run(store, image_id)
    history = list_bac_results(store, "pk1")
    assert [r.image.study_date for r in history] == ["2022-01-01", "2024-05-01"]
    assert [r.image.id for r in list_bac_results(store, "pk2")] == [other]
    assert history[0].tam_x_per_area == 30 / 1000


def test_exam_view_sums_tam_per_area_over_views(store: Store) -> None:
    # One exam of four views; TAM_100 / area by hand: 10/1000 + 0/500 + 30/600 + 5/250 = 0.01 + 0 + 0.05 + 0.02 = 0.08
    views = [("L", "CC", 10, 1000), ("R", "CC", 0, 500), ("L", "MLO", 30, 600), ("R", "MLO", 5, 250)]
    for n, (side, view, tam, area) in enumerate(views):
        image_id = image(store, n, laterality=side, view=view)
        run(store, image_id, am=tam, tam_x=tam, breast_area=area)
        run(store, image_id, am=tam, tam_x=0, breast_area=area, x=200.0)  # other X: not mixed in
    second_exam = image(store, 10, study_date="2025-03-01")
    run(store, second_exam, tam_x=0, breast_area=100)
    unknown_date = image(store, 11, study_date=None)
    run(store, unknown_date)

    exams = list_exams(store, "pk1")
    assert [(e.study_date, e.views_counted) for e in exams] == [("2024-03-01", 4), ("2025-03-01", 1)]
    assert exams[0].tam_x_per_area_sum == pytest.approx(0.08)
    assert exams[1].tam_x_per_area_sum == 0.0
    at_200 = list_exams(store, "pk1", x=200.0)
    assert [(e.study_date, e.views_counted, e.tam_x_per_area_sum) for e in at_200] == [("2024-03-01", 4, 0.0)]
    assert list_exams(store, "nobody") == ()


def test_error_inside_a_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with store.session() as session:
            image_id = image(session, 1)  # type: ignore[arg-type]
            run(session, image_id)  # type: ignore[arg-type]
            raise RuntimeError("boom")
    assert list_bac_results(store) == ()
    with store.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM images")) == 0


def test_database_error_rolls_back_and_is_a_store_error(store: Store) -> None:
    from medlim.core.store.schema import ImageRow, utc_now

    with pytest.raises(StoreError, match="refused the change"):
        with store.session() as session:
            save_image(session, content_sha256=sha(1), file_name="a", rows=1, cols=1)
            # bypass the repository's check to hit the UNIQUE constraint in the database
            session.add(ImageRow(content_sha256=sha(1), file_name="b", rows=1, cols=1, created_at=utc_now()))
            session.flush()
    with store.engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT COUNT(*) FROM images")) == 0


def test_deleting_an_image_deletes_its_results(store: Store) -> None:
    image_id = image(store, 1)
    run(store, image_id)
    with store.session() as session:
        session.execute(sa.text("DELETE FROM images WHERE id = :id"), {"id": image_id})
    assert list_bac_results(store) == ()


def test_tam_100_is_kept_beside_the_chosen_x(store: Store) -> None:
    from medlim.core.store.bac import get_bac_result

    image_id = image(store, 40)
    at_100 = run(store, image_id, x=100.0, tam_x=30)
    at_120 = run(store, image_id, x=120.0, tam_x=20, tam_100=30)
    at_110 = run(store, image_id, x=110.0, tam_x=25)
    assert (at_100.tam_100, at_120.tam_100, at_110.tam_100) == (30, 30, None)  # X = 100: TAM_100 is TAM_X
    assert get_bac_result(store, at_120.id) == at_120
    with pytest.raises(StoreError, match="no stored BAC result with id 9999"):
        get_bac_result(store, 9999)
    with pytest.raises(StoreError, match="tam_100 .* cannot exceed am"):
        run(store, image_id, x=130.0, tam_x=1, tam_100=41)
    with pytest.raises(StoreError, match="non-negative"):
        run(store, image_id, x=130.0, tam_x=1, tam_100=-1)


def test_migration_0003_fills_tam_100_where_it_is_known(store_url: str) -> None:
    from medlim.core.store import upgrade_store

    with open_store(store_url, upgrade=False) as old:
        upgrade_store(old, "0002")
        with old.engine.begin() as connection:
            for n in (1, 2):
                connection.execute(sa.text(
                    "INSERT INTO images (id, content_sha256, file_name, rows, cols, created_at) "
                    "VALUES (:id, :sha, 'x.dcm', 2, 2, '2024-01-01 00:00:00')"), {"id": n, "sha": sha(n)})
            rows = [  # (image, t, x, tam_x): image 1 has a row at X = 100 for t = 0.5, not for t = 0.6
                (1, 0.5, 100.0, 7), (1, 0.5, 120.0, 3), (1, 0.6, 120.0, 2), (2, 0.5, 120.0, 1),
            ]
            for n, (image_id, t, x, tam_x) in enumerate(rows, start=1):
                connection.execute(sa.text(
                    "INSERT INTO bac_results (id, image_id, weights_name, weights_version, preset, threshold, x, "
                    "pm, am, sim, tam_x, tsim_x, breast_area, created_at, updated_at) VALUES (:id, :image, 'w', "
                    "'1', 'thesis', :t, :x, 1, 10, 1, :tam, 1, 100, '2024-01-01', '2024-01-01')"),
                    {"id": n, "image": image_id, "t": t, "x": x, "tam": tam_x})  # fmt: skip
        upgrade_store(old, "0003")
        assert old.revision() == "0003"
        with old.engine.connect() as connection:
            filled = connection.execute(sa.text("SELECT id, tam_100 FROM bac_results ORDER BY id")).all()
        assert [tuple(row) for row in filled] == [(1, 7), (2, 7), (3, None), (4, None)]
        from medlim.core.store import downgrade_store

        downgrade_store(old, "0002")
        with old.engine.connect() as connection:
            assert "tam_100" not in {c["name"] for c in sa.inspect(connection).get_columns("bac_results")}
            assert connection.scalar(sa.text("SELECT COUNT(*) FROM exams")) == 0  # the view survives


def _one_old_result(store, revision: str) -> None:
    """The schema at ``revision`` with image 1 and its result 1 written as that revision's columns allow."""
    from medlim.core.store import upgrade_store

    upgrade_store(store, revision)
    column, value = ("spacing_request, ", "'file', ") if revision >= "0005" else ("", "")  # added by 0005
    with store.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO images (id, content_sha256, file_name, rows, cols, created_at) "
            "VALUES (1, :sha, 'x.dcm', 2, 2, '2024-01-01 00:00:00')"), {"sha": sha(1)})
        connection.execute(sa.text(
            "INSERT INTO bac_results (id, image_id, weights_name, weights_version, preset, threshold, x, pm, am, sim, "
            f"tam_x, tsim_x, breast_area, tam_100, {column}created_at, updated_at) VALUES "
            f"(1, 1, 'w', '1', 'thesis', 0.5, 100, 1, 10, 1, 7, 1, 100, 7, {value}'2024-01-01', '2024-01-01')"))  # fmt: skip


def test_migration_0005_keeps_the_spacing_asked_for_and_older_rows_have_none(store_url: str) -> None:
    from medlim.core.store import downgrade_store, upgrade_store

    with open_store(store_url, upgrade=False) as old:
        _one_old_result(old, "0004")
        upgrade_store(old, "0005")
        with old.engine.connect() as connection:  # stored before: maybe before resampling, never reused
            assert connection.scalar(sa.text("SELECT spacing_request FROM bac_results WHERE id = 1")) is None
        upgrade_store(old)  # the rest through the library, whose rows have the newer columns too
        again = upsert_bac_result(old, image_id=1, weights_name="w", weights_version="1", preset="thesis",
                                  threshold=0.5, x=100.0, pm=1, am=10, sim=1, tam_x=7, tsim_x=1, breast_area=100,
                                  spacing_request="user 0.1x0.1")
        assert (again.id, again.spacing_request) == (1, "user 0.1x0.1")
        downgrade_store(old, "0004")
        with old.engine.connect() as connection:
            assert "spacing_request" not in {c["name"] for c in sa.inspect(connection).get_columns("bac_results")}


def test_migration_0006_keeps_what_an_analysis_said_and_older_rows_have_nothing(store_url: str) -> None:
    from medlim.core.store import downgrade_store, upgrade_store

    with open_store(store_url, upgrade=False) as old:
        _one_old_result(old, "0005")
        upgrade_store(old, "0006")
        (before,) = list_bac_results(old)
        assert before.context is None  # stored before: its warnings are unknown, so --resume analyses it again
        said = {"warnings": ["one"], "unlike_training": None, "region_filter": {"floor": 0.8, "regions": 3,
                "dropped": 1, "dropped_px": 5, "dropped_mm2": None}, "model_spacing_mm": [0.07, 0.07]}  # fmt: skip
        again = upsert_bac_result(old, image_id=1, weights_name="w", weights_version="1", preset="thesis",
                                  threshold=0.5, x=100.0, pm=1, am=10, sim=1, tam_x=7, tsim_x=1, breast_area=100,
                                  spacing_request="file", context=said)
        assert (again.id, again.context) == (1, said)
        with pytest.raises(StoreError, match="context takes"):
            upsert_bac_result(old, image_id=1, weights_name="w", weights_version="1", preset="thesis", threshold=0.5,
                              x=100.0, pm=1, am=10, sim=1, tam_x=7, tsim_x=1, breast_area=100, context={"file": "x"})
        with pytest.raises(StoreError, match="list of sentences"):
            upsert_bac_result(old, image_id=1, weights_name="w", weights_version="1", preset="thesis", threshold=0.5,
                              x=100.0, pm=1, am=10, sim=1, tam_x=7, tsim_x=1, breast_area=100,
                              context={"warnings": "one"})
        assert list_bac_results(old)[0].context == said  # the refused writes changed nothing
        downgrade_store(old, "0005")
        with old.engine.connect() as connection:
            assert "context" not in {c["name"] for c in sa.inspect(connection).get_columns("bac_results")}
