"""Whole slides on the microscopy pages go through jobs (issues 15 and 16): the steatosis and nuclei pages.

A slide path under the data roots is typed on the page; "Analyse the slide" queues ``medlim steatosis|nuclei
segment SLIDE --out DIR --csv --geojson ...`` as a ``steatosis.segment`` / ``nuclei.segment`` job with the page's
settings; the test runs the job in this process (``run_jobs``, as a worker would), runs the page again and
checks that what it shows is what the command prints for the same slide, and that the downloads are the files
the job wrote. Also: the slide commands' tile lines are the jobs' progress, and an upload that is a slide is
kept inside the data roots for its job.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from streamlit.testing.v1 import AppTest

from medlim.phantoms.slide import seam_droplet_slide, write_tiled_tiff

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _cli_row(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    from medlim.cli import main

    capsys.readouterr()
    assert main([*argv, "--jsonl"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _the_job(kind: str):  # noqa: ANN202 - a Job
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store

    with open_store() as store:
        (job,) = list_jobs(store, kind=kind)
    return job


def _job_log(job_id: int) -> list[str]:
    from medlim.core.jobs import job_log
    from medlim.core.store import open_store

    with open_store() as store:
        return [line.line for line in job_log(store, job_id)]


def _check_downloads(offers: list[dict], argv: list[str]) -> None:
    """The CSV and GeoJSON offered are the files the job wrote into its ``--out`` folder, under their names."""
    out = Path(argv[argv.index("--out") + 1])
    written = {path.name: path.read_text(encoding="utf-8") for path in out.iterdir()}
    offered = {offer["file_name"]: offer["data"] for offer in offers if offer["file_name"] in written}
    assert {name for name in written if name.endswith(("_objects.csv", ".geojson"))} == set(offered)
    assert len(offered) == 2 and all(offered[name] == written[name] for name in offered)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    monkeypatch.setenv("MEDLIM_SAMPLES_DIR", str(tmp_path / "no-samples"))
    monkeypatch.setenv("MEDLIM_DEVICE", "cpu")
    return root


def test_steatosis_page_runs_a_slide_as_a_job_and_shows_the_commands_numbers(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    recorded_downloads: list[dict], run_jobs,
) -> None:
    from tests.ui.test_page_steatosis import register_test_model

    register_test_model(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path / "weights"))
    truth = seam_droplet_slide((700, 760), seams=(192, 224, 256, 416, 448), radius=14.0, patch=120)
    slide = data_root / "liver.tif"
    write_tiled_tiff(slide, truth.render, (700, 760), tile=256, levels=2, spacing_um=0.5)

    at = AppTest.from_file(str(ROOT / "pages" / "steatosis.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="steatosis_slide_path").input("liver.tif").run()  # relative: under the first data root
    at.text_input(key="steatosis_job_region").input("0,0,760,512").run()
    at.button(key="steatosis_job_run").click().run()
    assert not at.exception and not at.error
    job = _the_job("steatosis.segment")
    argv = job.parameters["argv"]
    out = Path(argv[argv.index("--out") + 1])
    assert argv[:8] == ["steatosis", "segment", str(slide), "--out", str(out), "--csv", "--geojson",
                        "--pseudonymise-names"]
    assert out.is_dir() and out.parent == data_root / ".medlim-jobs" / "slide-runs"
    assert argv[argv.index("--region") + 1] == "0,0,760,512"
    assert argv[argv.index("--preset") + 1] == "default" and argv[argv.index("--min-score") + 1] == "0.2"
    assert argv[argv.index("--crowded-min-score") + 1] == "0.02"  # the page's crowded-fat floor goes along
    assert argv[argv.index("--weights") + 1] == "maskrcnn-steatosis@0-test"

    (ended,) = run_jobs()
    assert ended.state == "done", ended.error
    assert any(re.fullmatch(r"tile \d+/\d+: .+", line) for line in _job_log(job.id))  # the tiles' progress lines
    at.run()
    assert not at.exception and not at.error
    options = argv[argv.index("--out") + 2:]
    row = _cli_row(["steatosis", "segment", str(slide), "--out", str(tmp_path / "cli"),
                    *[o for o in options if o != "--pseudonymise-names"]], capsys)
    assert row["detected"] > 0  # the untrained test network still finds objects to compare
    assert _metric(at, "Droplets kept") == f"{row['kept']} / {row['detected']}"
    assert _metric(at, "Steatosis (% of tissue)") == f"{100 * row['steatosis_fraction']:.1f} %"
    assert _metric(at, "NASH-CRN grade") == row["nash_crn_band"]
    assert _metric(at, "Donor assessment") == row["donor_band"]
    (table,) = [frame.value for frame in at.dataframe]
    assert len(table) == row["detected"] and "area_um2" in table.columns  # the slide states 0.5 µm pixels
    _check_downloads(recorded_downloads, argv)


def _fluorescence_slide(path: Path) -> None:
    """A tiled TIFF of bright round nuclei (blue) on a dark background, some on the seams of 256 px tiles."""
    yy, xx = np.mgrid[0:480, 0:500]
    image = np.zeros((480, 500, 3), np.uint8)
    image[..., 2] = 12
    for row in (60, 192, 224, 256, 400):
        for col in (70, 192, 224, 256, 420):
            image[..., 2][(yy - row - 0.5) ** 2 + (xx - col - 0.5) ** 2 <= 12**2] = 220
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(image, tile=(128, 128), photometric="rgb", compression="deflate")


def test_nuclei_page_runs_a_slide_as_a_job_and_shows_the_commands_numbers(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded_downloads: list[dict], run_jobs,
) -> None:
    slide = data_root / "dapi.tif"
    _fluorescence_slide(slide)
    at = AppTest.from_file(str(ROOT / "pages" / "nuclei.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="nuclei_slide_path").input(str(slide)).run()
    at.number_input(key="nuclei_pixel_size").set_value(0.25).run()
    at.button(key="nuclei_job_run").click().run()
    assert not at.exception and not at.error
    job = _the_job("nuclei.segment")
    argv = job.parameters["argv"]
    assert argv[:3] == ["nuclei", "segment", str(slide)] and "--region" not in argv
    assert argv[argv.index("--method") + 1] == "thesis" and argv[argv.index("--pixel-spacing-um") + 1] == "0.25"
    (ended,) = run_jobs()
    assert ended.state == "done", ended.error
    at.run()
    assert not at.exception and not at.error
    options = argv[argv.index("--out") + 2:]
    row = _cli_row(["nuclei", "segment", str(slide), "--out", str(tmp_path / "cli"),
                    *[o for o in options if o != "--pseudonymise-names"]], capsys)
    assert row["count"] > 0
    assert _metric(at, "Nuclei") == str(row["count"])
    assert _metric(at, "From split clumps") == str(row["from_split_clumps"])
    assert _metric(at, "Mean area (px²)") == f"{row['mean_area_px2']:.1f}"
    (table,) = [frame.value for frame in at.dataframe]
    assert len(table) == row["count"] and "area_um2" in table.columns
    _check_downloads(recorded_downloads, argv)


def test_a_path_outside_the_data_roots_is_refused(data_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.tif"
    _fluorescence_slide(outside)
    at = AppTest.from_file(str(ROOT / "pages" / "nuclei.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="nuclei_slide_path").input(str(outside)).run()
    assert not at.exception
    assert any("data folders" in e.body for e in at.error)
    assert not [b for b in at.button if b.key == "nuclei_job_run"]


def test_slide_tile_lines_are_the_jobs_progress() -> None:
    """``tile i/n: name`` (the slide commands' stderr) becomes progress ``i/n`` at stage ``tile``, even when the
    file's name holds digits and slashes."""
    import contextlib

    from medlim.cli.job_kinds import _StderrToJob
    from medlim.cli.microscopy_options import tile_progress

    class Context:
        def __init__(self) -> None:
            self.progressed: list[tuple[int, int | None, str]] = []
            self.logged: list[str] = []

        def progress(self, done: int, total: int | None, *, stage: str = "", message: str = "") -> None:
            self.progressed.append((done, total, stage))

        def log(self, line: str) -> None:
            self.logged.append(line)

    context = Context()
    stream = _StderrToJob(context, stage="steatosis.segment")  # type: ignore[arg-type]
    with contextlib.redirect_stderr(stream):
        report = tile_progress("case 3/4 2024-01.svs")
        for done in range(1, 41):
            report(done, 40)
    stream.flush()
    assert context.progressed[0] == (2, 40, "tile") and context.progressed[-1] == (40, 40, "tile")
    assert len(context.progressed) == 20 and all(total == 40 for _, total, _ in context.progressed)


def test_a_slide_upload_is_kept_in_the_data_roots_once(data_root: Path, tmp_path: Path) -> None:
    from medlim.microscopy.slide_runs import keep_slide_upload

    _fluorescence_slide(tmp_path / "dapi.tif")
    data = (tmp_path / "dapi.tif").read_bytes()
    kept = keep_slide_upload("dapi.tif", data)
    assert kept is not None and kept.read_bytes() == data
    assert kept.parent.parent == data_root / ".medlim-jobs" / "uploads"
    assert keep_slide_upload("again.tif", data) == kept  # the same content: the same file
    tifffile.imwrite(tmp_path / "strips.tif", np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    assert keep_slide_upload("strips.tif", (tmp_path / "strips.tif").read_bytes()) is None
    assert keep_slide_upload("a.png", b"\x89PNG\r\n\x1a\n....") is None


def test_slide_jobs_of_a_page_are_confined_to_the_data_roots(data_root: Path, tmp_path: Path) -> None:
    """The kinds parse the command's argv again when they run; a page's slide or output folder outside the data
    roots is refused then."""
    from medlim.cli.job_kinds import parse_job_argv
    from medlim.errors import PathNotAllowedError
    from medlim.microscopy.slide_runs import slide_job_argv

    inside, outside = data_root / "a.svs", tmp_path / "b.svs"
    args = parse_job_argv("nuclei.segment", {"argv": slide_job_argv("nuclei", inside, data_root / "out")},
                          origin="page")
    assert args.inputs == [str(inside)] and args.csv and args.geojson and args.pseudonymise_names
    for argv in (slide_job_argv("steatosis", outside, data_root / "out"),
                 slide_job_argv("nuclei", inside, tmp_path / "out")):
        with pytest.raises(PathNotAllowedError):
            parse_job_argv(f"{argv[0]}.segment", {"argv": argv}, origin="page")
