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
