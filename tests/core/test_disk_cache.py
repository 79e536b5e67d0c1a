"""The on-disk cache of computed arrays (medlim.core.disk_cache): round trip, LRU eviction under the budget."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from medlim.core.disk_cache import DiskCache, cache_key, default_cache
from medlim.errors import ParameterError


def _entry(seed: float) -> dict[str, np.ndarray]:
    """16 KiB of noise (entries are compressed: noise keeps their size known)."""
    return {"probability": np.random.default_rng(int(seed * 10)).random((64, 64), dtype=np.float32)}


def _age(cache: DiskCache, key: str, seconds_ago: float) -> None:
    path = cache.folder / f"{key}.npz"
    when = path.stat().st_mtime - seconds_ago
    os.utime(path, (when, when))


def test_round_trip_and_misses(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c", max_bytes=1 << 20)
    key = cache_key("sha", "scunet-bac@2", 0.5)
    assert key == cache_key("sha", "scunet-bac@2", 0.5) != cache_key("sha", "scunet-bac@2", 0.6)
    assert cache.get(key) is None
    assert cache.put(key, {**_entry(0.25), "shape": np.array([64, 64])})
    got = cache.get(key)
    assert got is not None and got["probability"].dtype == np.float32
    assert np.array_equal(got["probability"], _entry(0.25)["probability"]) and got["shape"].tolist() == [64, 64]
    (cache.folder / f"{key}.npz").write_bytes(b"not a zip")  # a damaged entry is a miss, never an error
    assert cache.get(key) is None
    with pytest.raises(ParameterError, match="lower-case hex"):
        cache.get("../escape")


def test_the_least_recently_used_entries_go_first_when_over_the_budget(tmp_path: Path) -> None:
    one = DiskCache(tmp_path / "probe", max_bytes=1 << 20)
    one.put("aa", _entry(0.0))
    entry_bytes = one.size()
    cache = DiskCache(tmp_path / "c", max_bytes=3 * entry_bytes)  # room for three entries
    for number, key in enumerate(("a1", "b2", "c3")):
        cache.put(key, _entry(number))
        _age(cache, key, 100 - number)  # a1 oldest, c3 newest
    assert cache.get("a1") is not None  # read: a1 is now the most recently used
    cache.put("d4", _entry(4))  # over the budget: the least recently used (b2) goes
    assert {path.stem for path, _size, _used in cache.entries()} == {"a1", "c3", "d4"}
    assert cache.size() <= cache.max_bytes
    noise = np.random.default_rng(5).integers(0, 256, 4 * entry_bytes, dtype=np.uint8)
    assert not cache.put("e5", {"big": noise})  # larger than the budget: not kept
    assert cache.get("e5") is None and cache.size() <= cache.max_bytes


def test_the_default_cache_takes_its_budget_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_CACHE_MB", "3")
    cache = default_cache("bac_maps")
    assert cache.max_bytes == 3 << 20 and cache.folder == Path(os.environ["MEDLIM_HOME"]) / "cache" / "bac_maps"
    monkeypatch.delenv("MEDLIM_CACHE_MB")
    assert default_cache("bac_maps").max_bytes == 2048 << 20
    with pytest.raises(ParameterError):
        default_cache("../x")


def test_a_typed_result_round_trips_and_only_medlim_classes_are_rebuilt(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from medlim.core.model_catalogue import EpochPoint, TrainingCurve

    cache = DiskCache(tmp_path / "c", max_bytes=1 << 20)
    curve = TrainingCurve((EpochPoint("tend", 1, "loss", "bce", 0.25, planned=9),))
    record = (curve, np.arange(6, dtype=np.int64).reshape(2, 3), {"nan": float("nan"), "words": ["a", None]})
    assert cache.put_record("ab", record)
    back_curve, back_array, back_dict = cache.get_record("ab")
    assert back_curve == curve and back_array.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert np.isnan(back_dict["nan"]) and back_dict["words"] == ["a", None]

    @dataclass(frozen=True)
    class Elsewhere:
        value: int

    assert cache.put_record("cd", Elsewhere(1))
    assert cache.get_record("cd") is None  # a class outside medlim is never loaded by name
    with pytest.raises(ParameterError, match="cannot be kept"):
        cache.put_record("ef", (lambda: 1,))
