"""Curation scores and group tags in the results store (MedShift)."""

from __future__ import annotations

import math

import pytest

from medlim.core.store import open_store
from medlim.core.store.curation import get_scores, list_datasets, save_scores, set_tags, tag_group, tag_map
from medlim.errors import StoreError


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as opened:
        yield opened


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
