"""Zip limits checked before anything is written; atomic extraction (issue 14)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from medlim.core.archives import ZipLimits, extract_zip, iter_zip_members
from medlim.errors import ArchiveBudgetError, ArchiveError

LIMITS = ZipLimits(max_bytes=10 << 20, max_members=50, max_ratio=200)


def _zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_a_good_archive_is_extracted_whole(tmp_path: Path) -> None:
    data = _zip({"a/x.png": b"1234", "b/y.png": b"56", ".hidden": b"h", "__MACOSX/a/._x.png": b"r"})
    target = extract_zip(data, tmp_path / "out" / "t", limits=LIMITS)
    assert _tree(target) == ["a", "a/x.png", "b", "b/y.png"]
    assert (target / "a" / "x.png").read_bytes() == b"1234"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["t"]  # no staging folder left
    assert [m.name for m in iter_zip_members(data, limits=LIMITS)] == ["a/x.png", "b/y.png"]


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    data = _zip({"a/x.png": bytes(200 << 20)})  # 200 MiB of zeros: ~200 KB compressed
    assert len(data) < 1 << 20
    with pytest.raises(ArchiveBudgetError) as info:
        extract_zip(data, tmp_path / "out" / "t", limits=ZipLimits(max_bytes=4096 << 20, max_members=50_000, max_ratio=200))
    assert info.value.variable == "MEDLIM_ZIP_MAX_RATIO" and info.value.limit == 200
    assert _tree(tmp_path / "out") == []


def test_size_and_member_limits_name_their_variables(tmp_path: Path) -> None:
    big = _zip({"x.bin": bytes(11 << 20)}, method=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveBudgetError) as info:
        extract_zip(big, tmp_path / "t", limits=LIMITS)
    assert info.value.variable == "MEDLIM_ZIP_MAX_MB" and "10 MiB" in info.value.message
    many = _zip({f"c/{k}.png": b"x" for k in range(51)})
    with pytest.raises(ArchiveBudgetError) as info:
        list(iter_zip_members(many, limits=LIMITS))
    assert info.value.variable == "MEDLIM_ZIP_MAX_MEMBERS" and "51" in info.value.message
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    "members, words",
    [
        ({"../evil.png": b"x"}, "leaves"),
        ({"/abs.png": b"x"}, "leaves"),
        ({"a/inner.zip": b"PK"}, "another archive"),
        ({"a/X.png": b"1", "a/x.png": b"2"}, "twice"),
        ({"a": b"file", "a/b.png": b"x"}, "same name"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_left(tmp_path: Path, members: dict[str, bytes], words: str) -> None:
    data = _zip(members)
    with pytest.raises(ArchiveError, match=words):
        extract_zip(data, tmp_path / "out" / "t", limits=LIMITS)
    assert _tree(tmp_path / "out") == []


def test_not_a_zip_is_a_typed_error_without_server_paths(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as info:
        extract_zip(b"not a zip", tmp_path / "t", limits=LIMITS, label="scans.zip")
    assert str(tmp_path) not in info.value.message and "scans.zip" in info.value.message


def test_an_archive_lying_about_its_sizes_is_stopped_while_reading(tmp_path: Path) -> None:
    data = bytearray(_zip({"a.png": b"y" * 5000}, method=zipfile.ZIP_STORED))
    # Rewrite the declared uncompressed size (central directory) to 10 bytes.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError):
        extract_zip(bytes(data), tmp_path / "out" / "t", limits=LIMITS)
    assert _tree(tmp_path / "out") == []


def test_an_existing_complete_folder_is_reused(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "kept.png").write_bytes(b"k")
    assert extract_zip(_zip({"new.png": b"n"}), target, limits=LIMITS) == target
    assert _tree(target) == ["kept.png"]


def test_the_default_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_ZIP_MAX_MB", "7")
    monkeypatch.setenv("MEDLIM_ZIP_MAX_MEMBERS", "9")
    monkeypatch.setenv("MEDLIM_ZIP_MAX_RATIO", "11")
    assert ZipLimits.from_settings() == ZipLimits(max_bytes=7 << 20, max_members=9, max_ratio=11)
