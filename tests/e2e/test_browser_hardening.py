"""End-to-end (issue 14): a hostile user in the real app cannot read, probe or fill the server.

Starts ``streamlit run app.py`` with one data root holding a symlink that points
outside it, and a tiny retrieval model. In headless Chromium it types ``/etc``,
``../../`` and the symlink into the folder fields of the Similar images and
Curation pages and the checkpoint field of the mammography page, a ``../``
collection name, and uploads a zip bomb: each is refused with the one message
that names the allowed roots, and nothing is written outside ``MEDLIM_HOME``.
A real upload is unpacked into the session's temporary folder, which is removed
once the tab is closed and another session runs a page.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
REFUSED = "must lie inside one of the data folders this app may read"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _tiny_registry(folder: Path) -> Path:
    import torch

    from medlim.core.weights import Registry, save_weights
    from medlim.curation.retrieval.nets import EmbeddingNet
    from medlim.phantoms.radiograph import BODY_PARTS

    torch.manual_seed(0)
    save_weights(Registry(folder), {
        "name": "tiny-oscars", "version": "1", "task": "image-retrieval", "architecture": "retrieval-resnet18",
        "architecture_kwargs": {"width": 4}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [32, 32], "dtype": "float32", "range": [0.0, 1.0]},
        "params": {"input_size": 32, "method": "oscars", "classes": list(BODY_PARTS)},
    }, EmbeddingNet(width=4).state_dict())
    return folder


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _snapshot(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in _files(folder)}


@pytest.fixture
def hostile_setup(start_app, tmp_path: Path) -> dict:
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "hand").mkdir(parents=True)
    (outside / "hand" / "secret.png").write_bytes(b"not for the web")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    home = tmp_path / "medlim_home"
    url = start_app({"MEDLIM_HOME": str(home), "MEDLIM_DATA_ROOTS": str(root), "MEDLIM_DEVICE": "cpu",
                     "MEDLIM_WEIGHTS_DIR": str(_tiny_registry(tmp_path / "weights"))})
    return {"url": url, "root": root, "outside": outside, "home": home, "tmp": tmp_path}


def _refused(page, field, typed: str, *, submit=None, settle=None) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    field.fill(typed)
    field.press("Enter")
    if submit is not None:
        if settle is not None:
            settle(page)  # a click during the rerun the new value started can be lost
        submit.click()
    alert = page.get_by_role("alert").filter(has_text=REFUSED)
    expect(alert.first).to_be_visible()
    text = alert.first.inner_text()
    assert "/outside" not in text and "passwd" not in text, text
    field.fill("")
    field.press("Enter")
    expect(alert).to_have_count(0)  # the next value's message is a fresh one


def test_hostile_paths_names_and_zips_are_refused(hostile_setup: dict, browser_page, open_page, settle) -> None:
    from playwright.sync_api import expect

    url, root, outside, home = (hostile_setup[k] for k in ("url", "root", "outside", "home"))
    before_outside = _snapshot(outside)
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)

    # Similar images: the data folder and the collection name
    open_page(page, url, link="Similar images", heading="Similar images", prompt="No collection yet", home=True)
    page.get_by_text("Build a collection").click()
    page.get_by_text("Data folder", exact=True).click()
    folder = page.get_by_role("textbox", name="Folder (manifest.csv or <class>/ folders)")
    build = page.get_by_role("button", name="Build")
    for typed in ("/etc", "../../", "escape", "escape/hand"):
        _refused(page, folder, typed, submit=build, settle=settle)
    page.get_by_text("Generated phantoms", exact=True).click()
    name = page.get_by_role("textbox", name="Collection name")
    name.fill("../../evil")
    name.press("Enter")
    settle(page)
    build.click()
    expect(page.get_by_role("alert").filter(has_text="collection name may hold only")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "hardening_retrieval.png"))

    # Curation: the server folder, a zip bomb, then a real upload in this session's folder
    page.get_by_role("link", name="Curation decisions").click()
    expect(page.get_by_role("heading", name="Curation decisions")).to_be_visible()
    external = page.locator("[data-testid='stRadio']").nth(1)
    external.get_by_text("Folder on the server").click()
    server_folder = page.get_by_role("textbox", name="Folder with one sub-folder per class")
    for typed in ("/etc", "../../", "escape"):
        _refused(page, server_folder, typed)
    external.get_by_text("Upload a zip").click()
    upload = page.locator("input[type='file']").first
    upload.set_input_files(files=[{"name": "bomb.zip", "mimeType": "application/zip",
                                   "buffer": _zip({"hand/zeros.png": bytes(200 << 20)})}])
    expect(page.get_by_role("alert").filter(has_text="MEDLIM_ZIP_MAX_RATIO")).to_be_visible()
    assert _files(home / "tmp") == []
    page.screenshot(path=str(ARTIFACTS / "hardening_zip_bomb.png"))
    upload.set_input_files(files=[{"name": "partner.zip", "mimeType": "application/zip",
                                   "buffer": _zip({"site/hand/a.png": b"x", "site/elbow/b.png": b"y"})}])
    expect(page.get_by_role("button", name="Keep this dataset", exact=True)).to_be_visible()
    unpacked = [p for p in _files(home / "tmp" / "sessions") if p.name == "a.png"]
    assert len(unpacked) == 1
    session_folder = unpacked[0].parents[4]  # sessions/server-<pid>/<session>/uploads/<digest>/site/hand/a.png
    assert session_folder.parent.name.startswith("server-")

    # Mammography: the checkpoint path (no BAC weights registered, so the field is offered)
    page.get_by_role("link", name="Arterial calcification").click()
    checkpoint = page.get_by_role("textbox", name="Checkpoint path")
    expect(checkpoint).to_be_visible()
    for typed in ("/etc/passwd", "../../outside/hand/secret.png", "escape/hand/secret.png"):
        _refused(page, checkpoint, typed)
    assert not page.locator("[data-testid='stException']").count()

    # nothing was written outside MEDLIM_HOME, nor under the data root
    assert _snapshot(outside) == before_outside
    assert [p.name for p in root.iterdir()] == ["escape"]
    assert not [p for p in hostile_setup["tmp"].rglob("*evil*")]

    # closing the tab ends the session; the next page run of another session sweeps its folder
    browser = page.context.browser
    page.close()
    other = browser.new_page()
    deadline = time.monotonic() + 120
    while session_folder.exists() and time.monotonic() < deadline:
        other.goto(url)
        expect(other.get_by_role("heading", name="medlim", exact=True)).to_be_visible()
    assert not session_folder.exists()
