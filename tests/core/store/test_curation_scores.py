"""Curation scores and group tags in the results store (MedShift)."""

from __future__ import annotations

import math

import pytest

from medlim.core.store import open_store
from medlim.core.store.curation import (
    get_scores,
    list_datasets,
    save_scores,
    set_tags,
    tag_group,
    tag_map,
)
from medlim.errors import StoreError


def test_scores_replace_and_order(store) -> None:
    rows = [{"file": "hand/b.png", "class": "hand", "score": 0.9, "group": 1},
            {"file": "hand/a.png", "class": "hand", "score": 0.1, "group": 0},
            {"file": "elbow/c.png", "class": "elbow", "score": 0.5, "group": 0}]
    assert save_scores(store, "ext", rows, method="medshift-cvad") == 3
    got = get_scores(store, "ext", method="medshift-cvad")
    assert [s.file for s in got] == ["elbow/c.png", "hand/a.png", "hand/b.png"]
    assert got[2].group == 1 and got[2].score == pytest.approx(0.9) and got[2].class_name == "hand"
    save_scores(store, "ext", rows[:1], method="medshift-cvad")  # a rerun replaces the method's rows
    assert [s.file for s in get_scores(store, "ext")] == ["hand/b.png"]
    save_scores(store, "ext", rows[1:2], method="medshift-tend")
    assert len(get_scores(store, "ext")) == 2
    assert list_datasets(store, with_scores=True) == ("ext",)
    assert get_scores(store, "unknown") == ()


def test_tag_a_whole_group(store) -> None:
    rows = [{"file": f"f{i}", "class": "a" if i < 4 else "b", "score": float(i), "group": i % 2} for i in range(6)]
    save_scores(store, "ext", rows, method="m")
    set_tags(store, "ext", {"f0": "keep"})
    assert tag_group(store, "ext", method="m", class_name="a", group=1, tag="drop") == 2
    assert tag_map(store, "ext") == {"f0": "keep", "f1": "drop", "f3": "drop"}
    assert tag_group(store, "ext", method="m", class_name=None, group=0, tag="drop") == 3
    assert tag_map(store, "ext")["f4"] == "drop"
    assert tag_group(store, "ext", method="m", class_name=None, group=0, tag=None) == 3
    assert set(tag_map(store, "ext")) == {"f1", "f3", "f5"} - {"f5"}


def test_bad_rows_write_nothing(store) -> None:
    with pytest.raises(StoreError, match="finite"):
        save_scores(store, "ext", [{"file": "a", "score": math.nan}], method="m")
    with pytest.raises(StoreError, match="repeat"):
        save_scores(store, "ext", [{"file": "a", "score": 1.0}, {"file": "a", "score": 2.0}], method="m")
    with pytest.raises(StoreError, match="method"):
        save_scores(store, "ext", [], method="")
    assert get_scores(store, "ext") == ()


# ----------------------------------------------------------------------------- issue 17: saving a run under a taken name


def _rows(prefix: str, n: int) -> list[dict]:
    return [{"file": f"hand/{prefix}{i}.png", "class": "hand", "score": float(i), "group": i % 2} for i in range(n)]


def test_a_run_saved_under_a_taken_name_is_refused_and_nothing_changes(store) -> None:
    from medlim.core.store.curation import RunExistsError, run_exists, save_run_scores

    assert not run_exists(store, "ext")
    assert save_run_scores(store, "ext", _rows("old", 3), method="medshift-cvad") == 3
    set_tags(store, "ext", {"hand/old0.png": "drop"})
    assert run_exists(store, "ext")
    with pytest.raises(RunExistsError, match="'ext'.*replace it"):
        save_run_scores(store, "ext", _rows("new", 2), method="medshift-cvad")
    assert [s.file for s in get_scores(store, "ext")] == ["hand/old0.png", "hand/old1.png", "hand/old2.png"]
    assert tag_map(store, "ext") == {"hand/old0.png": "drop"}


def test_replacing_a_run_deletes_its_scores_of_every_method_and_its_tags(store) -> None:
    from medlim.core.store.curation import save_run_scores

    save_run_scores(store, "ext", _rows("old", 3), method="medshift-cvad")
    set_tags(store, "ext", {"hand/old0.png": "drop", "hand/old1.png": "keep"})
    assert save_run_scores(store, "ext", _rows("new", 2), method="medshift-tend", replace=True) == 2
    assert [(s.file, s.method) for s in get_scores(store, "ext")] == [("hand/new0.png", "medshift-tend"),
                                                                       ("hand/new1.png", "medshift-tend")]
    assert tag_map(store, "ext") == {}
    # a file of the same name in the new run does not inherit the old run's tag either
    set_tags(store, "ext", {"hand/new0.png": "drop"})
    save_run_scores(store, "ext", _rows("new", 2), method="medshift-tend", replace=True)
    assert tag_map(store, "ext") == {}


def test_bad_rows_of_a_replacing_run_leave_the_old_run(store) -> None:
    from medlim.core.store.curation import save_run_scores

    save_run_scores(store, "ext", _rows("old", 2), method="m")
    set_tags(store, "ext", {"hand/old0.png": "keep"})
    with pytest.raises(StoreError, match="finite"):
        save_run_scores(store, "ext", [{"file": "a.png", "score": math.inf}], method="m", replace=True)
    assert len(get_scores(store, "ext")) == 2 and tag_map(store, "ext") == {"hand/old0.png": "keep"}


def test_two_sessions_saving_a_new_run_under_one_name_cannot_both_win(store_url: str) -> None:
    import threading

    from medlim.core.store.curation import RunExistsError, save_run_scores

    url = store_url
    open_store(url).close()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(prefix: str) -> None:
        with open_store(url, upgrade=False) as own:
            barrier.wait(timeout=60)
            try:
                save_run_scores(own, "ext", _rows(prefix, 50), method="m")
                outcomes.append(prefix)
            except RunExistsError:
                outcomes.append("refused")

    threads = [threading.Thread(target=save, args=(prefix,)) for prefix in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert max(outcomes) == "refused" and min(outcomes) in ("a", "b")
    with open_store(url) as shared:
        assert {s.file[5] for s in get_scores(shared, "ext")} == {min(outcomes)}
