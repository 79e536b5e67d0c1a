"""End-to-end: the similar-images page in the real app server, driven in headless Chromium.

Starts ``streamlit run app.py`` with its own MEDLIM_HOME and a temporary weights
registry holding a small untrained OSCARS-architecture embedding
(``tiny-oscars``), opens the page from the navigation, builds a collection of
radiograph phantoms through the form (progress bar), presses "More like this"
under a collection image, checks the top-K grid and table, narrows the results
with a label filter, and keeps screenshots under ``artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"

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


@pytest.fixture
def app_url(start_app, app_worker, tmp_path: Path) -> str:
    """The real app server for this test (harness in ``tests/e2e/conftest.py``), with the job worker it starts
    (the build is a job, issue 15)."""
    home = tmp_path / "medlim_home"
    app_worker(home)
    return start_app({"MEDLIM_WEIGHTS_DIR": str(_tiny_registry(tmp_path / "weights")), "MEDLIM_HOME": str(home),
                      "MEDLIM_WORKER": "auto", "MEDLIM_DATABASE_URL": f"sqlite:///{home / 'medlim.sqlite'}"})


def test_build_and_search_in_real_browser(app_url: str, browser_page, open_page, settle) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 2200})
    open_page(page, app_url, link="Similar images", heading="Similar images", prompt="No collection yet")

    page.get_by_text("Build a collection").click()
    phantoms = page.get_by_role("spinbutton", name="Phantoms")
    phantoms.fill("21")
    phantoms.press("Enter")
    settle(page)  # the rerun the new count started has ended: a click during it can be lost (a CI run, 2026-12-06)
    page.get_by_role("button", name="Build").click()
    # the encoding is a job in the app's worker (its own process): minutes on a loaded machine
    expect(page.get_by_text("Built phantoms: 21 images")).to_be_visible(timeout=480_000)
    expect(page.get_by_text("21 images · model tiny-oscars")).to_be_visible()
    more = page.get_by_role("button", name="More like this")
    expect(more).to_have_count(10)  # one page of the collection
    expect(page.locator("[data-testid='stImage']")).to_have_count(10)
    expect(page.get_by_text(" · A ").first).to_be_visible()  # captions: labels and anomaly score
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "retrieval_browse.png"))

    more.nth(2).click()
    expect(page.get_by_text("Top 10")).to_be_visible()
    expect(page.get_by_text("#1 ·").first).to_be_visible()
    expect(page.get_by_text("cos ").first).to_be_visible()
    expect(page.get_by_role("button", name="More like this")).to_have_count(10)
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "retrieval_results.png"))

    page.get_by_role("button", name="Clear query").click()
    expect(page.get_by_text("Browse the collection")).to_be_visible()
    assert not page.locator("[data-testid='stException']").count()
