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


def _tiny_settings(at: AppTest) -> None:
    """Seconds-long training: 1 detector epoch, 2 head epochs, 1 G epoch, 2 × 10 OTDD samples, k = 2."""
    at.number_input(key="cur_epochs").set_value(1)
    at.number_input(key="cur_head_epochs").set_value(2)
    at.number_input(key="cur_g_epochs").set_value(1)
    at.number_input(key="cur_repeats").set_value(2)
    at.number_input(key="cur_samples").set_value(10)
    at.selectbox(key="cur_k").set_value("2")
    at.checkbox(key="cur_stats").uncheck()  # the thesis's score alone (--stats off)
    at.checkbox(key="cur_anchor").uncheck()  # k-means of all scores, the thesis (--group-anchor none)


def test_run_tag_group_and_export(medlim_home: Path, run_jobs) -> None:
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store
    from medlim.core.store.curation import get_scores, tag_map

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cur_choice").value == "New run…"
    for role, n in (("internal", 6), ("external", 6)):
        at.multiselect(key=f"cur_{role}_parts").set_value(["hand", "elbow"])
        at.number_input(key=f"cur_{role}_n").set_value(n)
    _tiny_settings(at)
    at.text_input(key="cur_name").set_value("tiny-ext")
    at.button(key="cur_run").click().run()
    assert not at.exception and not at.error
    with open_store() as store:  # the run is a job (issue 15): `medlim shift run ...` queued by the page
        (job,) = list_jobs(store, kind="shift.run")
    argv = job.parameters["argv"]
    assert (job.origin, job.state) == ("page", "queued") and argv[:2] == ["shift", "run"]
    assert argv[argv.index("--internal") + 1] == "phantom:internal:101:6:hand,elbow"
    assert argv[argv.index("--dataset") + 1] == "tiny-ext" and argv[argv.index("--k") + 1] == "2"
    assert argv[argv.index("--stats") + 1] == "off" and argv[argv.index("--group-anchor") + 1] == "none"
    assert at.button(key=f"cur_job_cancel_{job.id}")  # followed with progress and Cancel while queued
    (ended,) = run_jobs()
    assert ended.state == "done", ended.error
    at.run()
    assert not at.exception and not at.error
    assert "MedShift run “tiny-ext” finished" in at.success[0].value
    assert at.selectbox(key="cur_choice").value == "tiny-ext"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["External images"] == "12" and metrics["Groups per class (k)"] == "2"
    assert "AUROC vs known shift" in metrics
    # each class's own elbow is shown beside the shared k
    elbows = [c.value for c in at.caption if c.value.startswith("Each class's own elbow")]
    assert len(elbows) == 1 and "elbow " in elbows[0] and "hand " in elbows[0]
    # unanchored, as asked: the k rule's caption does not claim a group below the threshold
    rule = [c.value for c in at.caption if c.value.startswith("k rule:")]
    assert len(rule) == 1 and "calibrated threshold" not in rule[0]

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
    import cv2
    import numpy as np

    png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes()  # images: the page's check lists them
    upload = _zip({"site/hand/a.png": png, "site/elbow/b.png": png})
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
    assert (kept / "hand" / "a.png").read_bytes() == png
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


# ----------------------------------------------------------------------------- issue 17: one config, replace, page = CLI


@pytest.fixture(scope="module")
def tiny_result():
    """A seconds-long MedShift run on two classes of phantoms (a third of its external images shifted or more)."""
    import torch

    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import phantom_image_set
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, run_shift

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    config = ShiftConfig(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1),
                         classifier=ClassifierConfig(epochs=1), k=2, otdd_repeats=2, otdd_max_samples=10)
    internal = phantom_image_set(seed=31, per_class=6, body_parts=("hand", "elbow"))
    external = phantom_image_set(seed=32, per_class=7, site="mixed", body_parts=("hand", "elbow"))
    result = run_shift(internal, external, config)
    torch.set_num_threads(before)
    return result


def _store(home: Path):  # noqa: ANN202 - a Store
    from medlim.core.store import open_store

    return open_store(f"sqlite:///{home / 'medlim.sqlite'}")


def test_run_settings_start_at_the_cli_defaults(medlim_home: Path) -> None:
    from medlim.curation.shift.service import (
        EVIDENCE_EXTERNAL,
        EVIDENCE_INTERNAL,
        ShiftRunConfig,
    )
    from medlim.phantoms.radiograph import BODY_PARTS

    default = ShiftRunConfig()
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    widgets = {"cur_epochs": default.epochs, "cur_head_epochs": default.head_epochs,
               "cur_g_epochs": default.classifier_epochs, "cur_repeats": default.otdd_repeats,
               "cur_samples": default.otdd_max_samples, "cur_size": default.size}
    assert {key: at.number_input(key=key).value for key in widgets} == widgets
    assert (at.selectbox(key="cur_detector").value, at.selectbox(key="cur_k").value,
            at.selectbox(key="cur_scale").value, at.selectbox(key="cur_features").value) == (
        default.detector, str(default.k), default.group_scale, default.features)
    assert at.checkbox(key="cur_stats").value is default.stats is True
    assert at.checkbox(key="cur_anchor").value is (default.group_anchor == "threshold") is True
    # the datasets start as the README's evidence sets: 120 internal and 60 half-shifted per body part, all seven
    for role, choice in (("internal", EVIDENCE_INTERNAL), ("external", EVIDENCE_EXTERNAL)):
        assert (at.number_input(key=f"cur_{role}_seed").value, at.number_input(key=f"cur_{role}_n").value,
                at.selectbox(key=f"cur_{role}_site").value) == (choice.seed, choice.per_class, choice.site)
        assert at.multiselect(key=f"cur_{role}_parts").value == list(BODY_PARTS)


def test_saving_under_a_taken_name_needs_confirmation_and_drops_the_old_tags(medlim_home: Path, tiny_result,
                                                                           run_jobs) -> None:
    from medlim.core.store.curation import get_scores, set_tags, tag_map
    from medlim.curation.shift.report import save_result

    with _store(medlim_home) as store:
        save_result(store, tiny_result, home=medlim_home, dataset="taken")
        old = {s.file for s in get_scores(store, "taken")}
        set_tags(store, "taken", {min(old): "drop"})
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.selectbox(key="cur_choice").set_value("New run…").run()
    for role in ("internal", "external"):
        at.multiselect(key=f"cur_{role}_parts").set_value(["hand", "elbow"])
        at.number_input(key=f"cur_{role}_n").set_value(5)
    _tiny_settings(at)
    at.text_input(key="cur_name").set_value("taken").run()
    assert not at.exception
    assert any("A run is saved as “taken”" in w.body for w in at.warning)
    assert at.button(key="cur_run").disabled  # refused until the replacement is confirmed
    assert at.checkbox(key="cur_replace").label == "Replace the saved run taken (its tags are deleted)"
    at.checkbox(key="cur_replace").check().run()
    assert not at.button(key="cur_run").disabled
    at.button(key="cur_run").click().run()
    assert [job.state for job in run_jobs()] == ["done"]
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cur_choice").value == "taken"
    with _store(medlim_home) as store:
        new = {s.file for s in get_scores(store, "taken")}
        assert len(new) == 10 and new != old and tag_map(store, "taken") == {}
    assert {m.label: m.value for m in at.metric}["Tagged"] == "0"


def test_every_number_shown_equals_the_cli_output(medlim_home: Path, tiny_result, capsys) -> None:
    import json
    import math

    import pandas as pd

    from medlim.cli import main
    from medlim.core.store.curation import set_tags
    from medlim.curation.shift.report import save_result

    with _store(medlim_home) as store:
        save_result(store, tiny_result, home=medlim_home, dataset="cmp")
        set_tags(store, "cmp", {tiny_result.files[0]: "drop", tiny_result.files[1]: "keep"})
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error and at.selectbox(key="cur_choice").value == "cmp"
    at.selectbox(key="cur_drop_from").set_value(1).run()
    metrics = {m.label: m.value for m in at.metric}
    groups, topk = at.dataframe[0].value, at.dataframe[1].value

    capsys.readouterr()
    assert main(["shift", "show", "--dataset", "cmp"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert metrics == {"External images": printed[1].rsplit(" ", 1)[1], "Groups per class (k)": printed[2].rsplit(" ", 1)[1],
                       "Tagged": printed[3].rsplit(" ", 1)[1], "AUROC vs known shift": printed[4].rsplit(" ", 1)[1]}
    assert main(["shift", "show", "--dataset", "cmp", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    pd.testing.assert_frame_equal(groups, pd.DataFrame(shown["groups"]), check_dtype=False)
    assert main(["shift", "topk", "--dataset", "cmp", "--json"]) == 0
    printed_topk = pd.DataFrame(json.loads(capsys.readouterr().out)).astype({"auc": float})
    pd.testing.assert_frame_equal(topk, printed_topk, check_dtype=False)
    assert not any(math.isnan(v) for v in topk["f1"])
    assert main(["shift", "export", "--dataset", "cmp", "--out", str(medlim_home / "kept.csv"),
                 "--drop-groups-from", "1"]) == 0
    kept, total = capsys.readouterr().out.split()[1:4:2]
    assert any(c.value == f"{kept} of {total} images kept." for c in at.caption)
