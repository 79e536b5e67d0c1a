"""A patient's history from the store (medlim.mammography.history), hand-computed.

Patient ``pk1``, breast area 1000 px everywhere, weights scunet-bac@2:

* 2020 LCC saved at (t 0.80, X 100, TAM 10), then again at (t 0.79, X 120,
  TAM_100 8): the later analysis counts → 0.008;
* 2020 LMLO at (0.80, 100, 12) → 0.012: the 2020 exam sums 0.020, |CC − MLO| = 0.004;
* 2021 LCC (0.80, 100, 40) and LMLO (0.80, 100, 42): 0.082, |CC − MLO| = 0.002;
* 2021 RCC at X = 120 without TAM_100 (saved before it was kept): left out, counted;
* a 2021 LCC result of scunet-bac@1: other weights, left out, named.

Δ = 0.062 > noise max(0.004, 0.002) = 0.004, so the change is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medlim.core.store import Store, open_store, save_image, upsert_bac_result
from medlim.mammography.history import patient_history


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(f"sqlite:///{tmp_path / 'results.sqlite'}") as opened:
        yield opened


def _image(store: Store, n: int, date: str, side: str, view: str) -> int:
    return save_image(store, content_sha256=f"{n:064x}", file_name=f"{n}.dcm", rows=10, cols=10, modality="MG",
                      view=view, laterality=side, study_date=date, patient_key="pk1").id  # fmt: skip


def _result(store: Store, image_id: int, *, t: float, x: float, tam_x: int, tam_100: int | None = None,
            version: str = "2") -> int:  # fmt: skip
    return upsert_bac_result(store, image_id=image_id, weights_name="scunet-bac", weights_version=version,
                             preset="thesis", threshold=t, x=x, pm=1.0, am=50, sim=1.0, tam_x=tam_x, tsim_x=1.0,
                             breast_area=1000, tam_100=tam_100).id  # fmt: skip


def test_history_takes_each_images_latest_analysis_whatever_its_cutoff_and_x(store: Store) -> None:
    lcc_2020, lmlo_2020 = _image(store, 1, "2020-03-01", "L", "CC"), _image(store, 2, "2020-03-01", "L", "MLO")
    lcc_2021, lmlo_2021 = _image(store, 3, "2021-03-01", "L", "CC"), _image(store, 4, "2021-03-01", "L", "MLO")
    rcc_2021 = _image(store, 5, "2021-03-01", "R", "CC")
    _result(store, lcc_2020, t=0.80, x=100, tam_x=10)
    latest = _result(store, lcc_2020, t=0.79, x=120, tam_x=4, tam_100=8)
    _result(store, lmlo_2020, t=0.80, x=100, tam_x=12)
    _result(store, lcc_2021, t=0.80, x=100, tam_x=40)
    _result(store, lmlo_2021, t=0.80, x=100, tam_x=42)
    _result(store, rcc_2021, t=0.80, x=120, tam_x=30)  # no TAM_100
    _result(store, lcc_2021, t=0.80, x=100, tam_x=1, version="1")

    history = patient_history(store, "pk1", weights_name="scunet-bac", weights_version="2")
    assert [(e.study_date, e.laterality + e.view, e.tam_100) for e in history.entries] == [
        ("2020-03-01", "LCC", 8), ("2020-03-01", "LMLO", 12), ("2021-03-01", "LCC", 40), ("2021-03-01", "LMLO", 42),
    ]  # fmt: skip
    assert history.entries[0].analysis_id == latest
    assert history.without_tam_100 == 1 and history.other_weights == ("scunet-bac@1",)
    assert history.thresholds == (0.79, 0.8)
    assert [e.total for e in history.exams] == pytest.approx([0.020, 0.082])
    (change,) = history.changes
    assert change.delta == pytest.approx(0.062) and change.noise == pytest.approx(0.004) and change.is_real
    rows = history.rows()
    assert rows[0]["analysis_ids"][0] == latest and rows[0]["thresholds"] == [0.79, 0.8]
    assert rows[1]["change_is_real"] is True and rows[0]["change_from_previous"] is None
    assert history.to_dict()["weights"] == "scunet-bac@2"


def test_history_without_saved_analyses_is_empty(store: Store) -> None:
    history = patient_history(store, "nobody", weights_name="scunet-bac", weights_version="2")
    assert history.entries == () and history.exams == () and history.rows() == []
