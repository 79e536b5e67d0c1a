"""AppTest tests of the Jobs page (pages/jobs.py) and of following a job on a page (medlim.ui.jobs, issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
JOBS_PAGE = str(ROOT / "pages" / "jobs.py")
CURATION_PAGE = str(ROOT / "pages" / "curation.py")
TIMEOUT = 180

_SHIFT_ARGV = ["shift", "run", "--internal", "phantom:internal:1:5:hand,elbow", "--external",
               "phantom:mixed:2:5:hand,elbow", "--out", "runs/x", "--dataset", "tiny"]


@pytest.fixture
def queued_job():  # noqa: ANN201
    """A MedShift job queued as a page would (nobody runs it: no worker in tests)."""
    from medlim.core.jobs import submit_job
    from medlim.core.store import open_store

    with open_store() as store:
        return submit_job(store, "shift.run", {"argv": _SHIFT_ARGV}, origin="page")


def test_the_jobs_page_lists_recent_jobs_and_offers_their_page(queued_job) -> None:
    at = AppTest.from_file(JOBS_PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table[["job", "kind", "state", "from"]].values.tolist() == [[queued_job.id, "shift.run", "queued", "page"]]
    assert "0 workers running" in at.caption[1].value
    at.number_input(key="jobs_pick").set_value(queued_job.id).run()
    assert at.button(key="jobs_open").label == "Open on “Curation decisions”"
    at.button(key="jobs_cancel").click().run()
    assert not at.exception
    assert at.dataframe[0].value["state"].tolist() == ["cancelled"]


def test_a_page_finds_its_job_again_after_a_closed_tab_and_can_cancel_it(queued_job) -> None:
    from medlim.core.jobs import get_job
    from medlim.core.store import open_store

    at = AppTest.from_file(CURATION_PAGE, default_timeout=TIMEOUT).run()  # a new session: another tab
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader][:1] == ["MedShift run"]
    assert any("No job worker is running" in w.value for w in at.warning)  # the queued job waits for one
    at.button(key=f"cur_job_cancel_{queued_job.id}").click().run()
    with open_store() as store:
        assert get_job(store, queued_job.id).state == "cancelled"
    at.run()
    assert any("The job was cancelled" in i.value for i in at.info)
    at.button(key=f"cur_job_dismiss_{queued_job.id}").click().run()
    assert "MedShift run" not in [s.value for s in at.subheader]  # dismissed: not found again here


def test_a_failed_job_shows_its_error(run_jobs) -> None:
    from medlim.core.jobs import submit_job
    from medlim.core.store import open_store

    with open_store() as store:  # a page job whose dataset lies outside the data roots: refused when it runs
        submit_job(store, "shift.run", {"argv": [*_SHIFT_ARGV[:2], "--internal", "/etc", *_SHIFT_ARGV[4:]]},
                   origin="page")
    assert [job.state for job in run_jobs()] == ["failed"]
    at = AppTest.from_file(CURATION_PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any(e.value.startswith("The job failed:") for e in at.error)


def test_the_ood_page_scores_a_server_folder_as_a_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      run_jobs) -> None:
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store
    from medlim.phantoms.radiograph import generate_radiograph, write_radiograph

    root = tmp_path / "data"
    for part in ("hand", "elbow"):
        for k in range(3):
            write_radiograph(generate_radiograph(seed=5, index=k, body_part=part, size=64), root / "set",
                             stem=f"{part}_{k}")
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    at = AppTest.from_file(str(ROOT / "pages" / "ood.py"), default_timeout=TIMEOUT).run()
    detector = at.selectbox(key="ood_detector").value
    at.radio(key="ood_source").set_value("Folder on the server").run()
    at.text_input(key="ood_folder").set_value("set")
    at.checkbox(key="ood_folder_labels").check().run()
    at.button(key="ood_folder_score").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with open_store() as store:
        (job,) = list_jobs(store, kind="ood.score")
    assert job.parameters["argv"] == ["ood", "score", str((root / "set").resolve()), "--detector", detector,
                                      "--jsonl", "--labels-from-folders"]
    assert [ended.state for ended in run_jobs()] == ["done"]
    at.run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Images"] == "6"
    assert len(at.dataframe[0].value) == 6
    # without folder labels the job asks `ood score` for its --summary and the page shows that figure
    at = AppTest.from_file(str(ROOT / "pages" / "ood.py"), default_timeout=TIMEOUT).run()
    at.radio(key="ood_source").set_value("Folder on the server").run()
    at.text_input(key="ood_folder").set_value("set").run()
    at.button(key="ood_folder_score").click().run()
    assert [ended.state for ended in run_jobs()] == ["done"]
    at.run()
    table, shown = at.dataframe[0].value, {m.label: m.value for m in at.metric}
    assert shown["Predicted OOD"] == str(int(table["is_ood"].sum())) and shown["AUROC"] == "—"


def test_the_jobs_page_opens_a_job_on_its_page(queued_job) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/jobs.py").run()
    assert not at.exception and [t.value for t in at.title] == ["Jobs"]
    at.number_input(key="jobs_pick").set_value(queued_job.id).run()
    at.button(key="jobs_open").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Curation decisions"]
    assert "MedShift run" in [s.value for s in at.subheader]  # the page follows the opened job
    assert at.button(key=f"cur_job_cancel_{queued_job.id}")


def test_the_jobs_table_equals_medlim_jobs_list_json(queued_job, run_jobs,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 17: what the Jobs page shows is what ``medlim jobs list --json`` prints for the same jobs."""
    import json

    from medlim.cli import main as medlim
    from medlim.core.jobs import submit_job
    from medlim.core.store import open_store

    with open_store() as store:  # a second job that fails when run: refused dataset outside the data roots
        submit_job(store, "shift.run", {"argv": [*_SHIFT_ARGV[:2], "--internal", "/etc", *_SHIFT_ARGV[4:]]},
                   origin="cli")
    with open_store() as store:  # run only the failing one: cancel the first (queued) before the runner sees it
        from medlim.core.jobs import cancel_job

        cancel_job(store, queued_job.id)
    assert [job.state for job in run_jobs()] == ["failed"]
    capsys.readouterr()
    assert medlim(["jobs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    at = AppTest.from_file(JOBS_PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table[["job", "kind", "state", "from"]].values.tolist() == [
        [row["id"], row["kind"], row["state"], row["origin"]] for row in listed]
    assert sorted(r["state"] for r in listed) == ["cancelled", "failed"]
