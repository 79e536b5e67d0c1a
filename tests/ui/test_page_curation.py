"""The curation workspace page in AppTest: a tiny MedShift run, group tagging and the export count."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "curation.py")
TIMEOUT = 300


@pytest.fixture
def medlim_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torch

    monkeypatch.setenv("MEDLIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDLIM_DATABASE_URL", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "home"
    torch.set_num_threads(before)


def test_run_tag_group_and_export(medlim_home: Path) -> None:
    from medlim.core.store import open_store
    from medlim.core.store.curation import get_scores, tag_map

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cur_choice").value == "New run…"
    for role, n in (("internal", 6), ("external", 6)):
        at.multiselect(key=f"cur_{role}_parts").set_value(["hand", "elbow"])
        at.number_input(key=f"cur_{role}_n").set_value(n)
    at.number_input(key="cur_epochs").set_value(1)
    at.number_input(key="cur_g_epochs").set_value(1)
    at.number_input(key="cur_repeats").set_value(2)
    at.number_input(key="cur_samples").set_value(10)
    at.selectbox(key="cur_k").set_value("2")
    at.text_input(key="cur_name").set_value("tiny-ext")
    at.button(key="cur_run").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cur_choice").value == "tiny-ext"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["External images"] == "12" and metrics["Groups per class (k)"] == "2"
    assert "AUROC vs known shift" in metrics
    # each class's own elbow is shown beside the shared k
    elbows = [c.value for c in at.caption if c.value.startswith("Each class's own elbow")]
    assert len(elbows) == 1 and "elbow " in elbows[0] and "hand " in elbows[0]

    # tag the top group of "hand" as drop: stored, and left out of the export
    at.selectbox(key="cur_class").set_value("hand").run()
    at.selectbox(key="cur_group").set_value(1).run()
    at.button(key="cur_group_drop").click().run()
    assert not at.exception and not at.error
    with open_store(f"sqlite:///{medlim_home / 'medlim.sqlite'}") as store:
        top = [s.file for s in get_scores(store, "tiny-ext") if s.class_name == "hand" and s.group == 1]
        tags = tag_map(store, "tiny-ext")
    assert top and all(tags[f] == "drop" for f in top) and len(tags) == len(top)
    assert any(c.value == f"{12 - len(top)} of 12 images kept." for c in at.caption)

    # coming back later: a fresh session opens the stored run with its tags
    again = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not again.exception and again.selectbox(key="cur_choice").value == "tiny-ext"
    assert {m.label: m.value for m in again.metric}["Tagged"] == str(len(top))


# ----------------------------------------------------------------------------- issue 14: folders, zips, names


REFUSED = "must lie inside one of the data folders this app may read"


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_server_folder_is_confined_to_the_data_roots(medlim_home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "link").symlink_to("/etc", target_is_directory=True)
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="cur_external_kind").set_value("Folder on the server").run()
    assert str(root) in at.text_input(key="cur_external_folder").help
    messages = []
    for typed in ("/etc", "../../", "link", "/no/such/folder"):
        at.text_input(key="cur_external_folder").input(typed).run()
        assert not at.exception
        messages.append(at.error[0].body)
        assert at.button(key="cur_run").disabled
    assert all(REFUSED in m and str(root) in m for m in messages) and len(set(messages)) == 1


def test_zip_bomb_is_refused_before_anything_is_written(medlim_home: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="cur_external_kind").set_value("Upload a zip").run()
    bomb = _zip({"hand/zeros.png": bytes(200 << 20)})  # 200 MiB of zeros, ~200 KB compressed
    at.file_uploader(key="cur_external_zip").upload("bomb.zip", bomb, "application/zip").run()
    assert not at.exception
    message = at.error[0].body
    assert "bomb.zip" in message and "MEDLIM_ZIP_MAX_RATIO" in message and str(medlim_home) not in message
    assert _files_under(medlim_home / "tmp") == []
    assert at.button(key="cur_run").disabled


def test_upload_is_unpacked_per_session_kept_on_request_and_swept_when_sessions_end(
    medlim_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from medlim.ui import session_files

    server = medlim_home / "tmp" / "sessions" / f"server-{os.getpid()}"
    ended = server / "ended-session" / "uploads"
    ended.mkdir(parents=True)
    (ended / "left.png").write_bytes(b"x")
    # that session has ended (the others, this one included, are unknown to AppTest's mock runtime)
    monkeypatch.setattr(session_files, "session_is_alive",
                        lambda session_id: False if session_id == "ended-session" else None)

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not (server / "ended-session").exists()  # swept on the page run
    at.radio(key="cur_external_kind").set_value("Upload a zip").run()
    upload = _zip({"site/hand/a.png": b"x", "site/elbow/b.png": b"y"})
    at.file_uploader(key="cur_external_zip").upload("partner.zip", upload, "application/zip").run()
    assert not at.exception and not at.error
    [session] = [p for p in server.iterdir()]
    unpacked = [p for p in _files_under(session) if p.name == "a.png"]
    assert len(unpacked) == 1 and unpacked[0].parent.parent.name == "site"

    at.text_input(key="cur_external_keep_name").input("../outside").run()
    at.button(key="cur_external_keep").click().run()
    assert "dataset name" in at.error[0].body and not (medlim_home / "outside").exists()
    at.text_input(key="cur_external_keep_name").input("partner 2024").run()
    at.button(key="cur_external_keep").click().run()
    assert not at.exception and not at.error
    kept = medlim_home / "datasets" / "partner 2024"
    assert (kept / "hand" / "a.png").read_bytes() == b"x"
    assert _files_under(session) == []
    assert any("Kept as dataset “partner 2024”" in c.value for c in at.caption)
    at.run()  # a rerun keeps using the kept folder (no second unpacking)
    assert not at.exception and not at.error and _files_under(session) == []


def test_run_name_is_validated(medlim_home: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.text_input(key="cur_name").set_value("../../escape")
    at.button(key="cur_run").click().run()
    assert not at.exception
    assert "run name" in at.error[0].body
    assert not list(medlim_home.parent.rglob("*escape*"))
