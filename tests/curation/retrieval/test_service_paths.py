"""Collections keep no server paths in the results store and read no file outside their folder (issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from medlim.core.store import open_store
from medlim.core.store.retrieval import get_index, get_items
from medlim.curation.retrieval.service import build_collection, read_collection
from medlim.errors import ParameterError


def _folder(tmp_path: Path, radiograph_folder: Path, name: str) -> Path:
    folder = tmp_path / name / "hand"
    folder.mkdir(parents=True)
    for source in sorted((radiograph_folder / "hand").glob("*.png"))[:2]:
        shutil.copy(source, folder / source.name)
    return folder.parent


def test_items_are_stored_relative_to_the_data_folder(tmp_path, radiograph_folder, tiny_registry) -> None:
    folder = _folder(tmp_path, radiograph_folder, "plain")
    with open_store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        build_collection(folder, "tiny-embed", tmp_path / "c.npz", store=store, registry=tiny_registry)
        assert get_index(store, "c").data_root == str(folder.resolve())
        with store.engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT file FROM retrieval_items")).scalars().all()
        names = sorted(p.name for p in (folder / "hand").glob("*.png"))
        assert sorted(stored) == [f"hand/{name}" for name in names]  # no server path in the store
        assert sorted(i.file for i in get_items(store, "c").values()) == [
            str(folder.resolve() / "hand" / name) for name in names]  # read back whole, for the gallery
        other = _folder(tmp_path, radiograph_folder, "other")
        with pytest.raises(ParameterError, match="append images from that folder"):
            build_collection(other, "tiny-embed", tmp_path / "c.npz", store=store, registry=tiny_registry, append=True)


def test_a_manifest_or_link_leading_out_of_the_folder_is_refused(tmp_path, radiograph_folder) -> None:
    folder = _folder(tmp_path, radiograph_folder, "data")
    secret = tmp_path / "secret.png"
    shutil.copy(next((folder / "hand").glob("*.png")), secret)
    (folder / "manifest.csv").write_text("file,class\nhand/../../secret.png,hand\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="manifest.csv line 2 leads outside the data folder"):
        read_collection(folder)
    (folder / "manifest.csv").unlink()
    (folder / "hand" / "link.png").symlink_to(secret)
    with pytest.raises(ParameterError, match="leads outside the data folder"):
        read_collection(folder)
