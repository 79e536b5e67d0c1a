"""Presets and curation tags in the results store."""

from __future__ import annotations

import pytest

from medlim.core.store import Store, get_preset, get_tags, list_presets, save_preset, set_tags
from medlim.errors import StoreError


def test_presets_are_unique_per_kind_and_replaced(store: Store) -> None:
    first = save_preset(store, kind="bac-preprocessing", name="published", params={"median": 5, "mean": 0.2813})
    save_preset(store, kind="bac-inference", name="published", params={"overlap": 32})
    replaced = save_preset(store, kind="bac-preprocessing", name="published", params={"median": 3})
    assert replaced.id == first.id and replaced.params == {"median": 3}
    assert [(p.kind, p.name) for p in list_presets(store)] == [
        ("bac-inference", "published"), ("bac-preprocessing", "published")
    ]
    assert [p.params for p in list_presets(store, "bac-inference")] == [{"overlap": 32}]
    assert get_preset(store, "bac-preprocessing", "published").params == {"median": 3}
    assert get_preset(store, "bac-preprocessing", "absent") is None


def test_preset_params_must_be_json(store: Store) -> None:
    with pytest.raises(StoreError, match="JSON"):
        save_preset(store, kind="k", name="n", params={"bad": object()})
    with pytest.raises(StoreError, match="JSON"):
        save_preset(store, kind="k", name="n", params={"nan": float("nan")})
    with pytest.raises(StoreError, match="kind and a name"):
        save_preset(store, kind="", name="n", params={})
    assert list_presets(store) == ()


def test_tags_set_change_clear(store: Store) -> None:
    assert set_tags(store, "mura", {"a.png": "keep", "b.png": "drop"}) == 2
    assert set_tags(store, "mura", {"a.png": "keep", "b.png": "keep", "c.png": None}) == 1
    assert [(t.file, t.tag) for t in get_tags(store, "mura")] == [("a.png", "keep"), ("b.png", "keep")]
    assert set_tags(store, "mura", {"a.png": None}) == 1
    assert [(t.file, t.tag) for t in get_tags(store, "mura")] == [("b.png", "keep")]
    assert get_tags(store, "other") == ()
    assert get_tags(store, "mura")[0].updated_at.tzinfo is not None


def test_bad_tag_writes_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="keep"):
        set_tags(store, "mura", {"a.png": "keep", "b.png": "maybe"})
    assert get_tags(store, "mura") == ()


def test_tags_share_the_callers_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as session:
            set_tags(session, "mura", {"a.png": "keep"})
            save_preset(session, kind="k", name="n", params={})
            raise RuntimeError("abandon")
    assert get_tags(store, "mura") == () and list_presets(store) == ()
