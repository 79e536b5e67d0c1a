"""Retrieval index metadata in the results store: items keyed by index id, no duplicates, cascade."""

from __future__ import annotations

import pytest

from medlim.core.store.retrieval import (
    RetrievalItem,
    add_items,
    create_index,
    delete_index,
    get_index,
    get_items,
    list_indexes,
)
from medlim.errors import StoreError


def test_items_round_trip_and_count(store) -> None:
    create_index(store, name="hands", path="/data/hands.npz", model="oscars-radiograph:1", dim=128)
    add_items(store, "hands", [RetrievalItem(0, "a.png", ("hand",), 0.25, "internal"),
                               RetrievalItem(1, "b.png", ("hand", "finger"), None, None)])
    stored = add_items(store, "hands", [RetrievalItem(5, "c.png")])
    assert stored.count == 3 and get_index(store, "hands").count == 3
    items = get_items(store, "hands")
    assert sorted(items) == [0, 1, 5]
    assert items[1].labels == ("hand", "finger") and items[0].anomaly_score == 0.25 and items[0].site == "internal"
    assert list(get_items(store, "hands", [5, 99])) == [5]
    assert [i.name for i in list_indexes(store)] == ["hands"]


def test_duplicate_ids_and_names_are_refused(store) -> None:
    create_index(store, name="x", path="x.npz", model="m:1", dim=4)
    add_items(store, "x", [RetrievalItem(0, "a.png")])
    with pytest.raises(StoreError, match="already recorded"):
        add_items(store, "x", [RetrievalItem(1, "b.png"), RetrievalItem(0, "a.png")])
    assert get_index(store, "x").count == 1  # nothing written
    with pytest.raises(StoreError, match="repeat"):
        add_items(store, "x", [RetrievalItem(2, "b.png"), RetrievalItem(2, "c.png")])
    with pytest.raises(StoreError, match="exists"):
        create_index(store, name="x", path="y.npz", model="m:1", dim=4)
    replaced = create_index(store, name="x", path="y.npz", model="m:1", dim=4, replace=True)
    assert replaced.count == 0 and get_items(store, "x") == {}
    with pytest.raises(StoreError, match="no index"):
        get_items(store, "nope")


def test_delete_removes_items(store) -> None:
    create_index(store, name="x", path="x.npz", model="m:1", dim=4)
    add_items(store, "x", [RetrievalItem(0, "a.png")])
    assert delete_index(store, "x") is True
    assert get_index(store, "x") is None and delete_index(store, "x") is False
