"""AppTest of the retrieval page: no model, build a phantom collection, browse, "More like this", filters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from medlim.curation.retrieval.service import QueryHit, collection_labels, item_caption

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "retrieval.py")
TIMEOUT = 120


def _tiny_registry(folder: Path) -> Path:
    from medlim.core.weights import Registry, save_weights
    from medlim.curation.retrieval.nets import EmbeddingNet
    from medlim.phantoms.radiograph import BODY_PARTS

    torch.manual_seed(0)
    registry = Registry(folder)
    save_weights(registry, {
        "name": "tiny-oscars", "version": "1", "task": "image-retrieval", "architecture": "retrieval-resnet18",
        "architecture_kwargs": {"width": 4}, "preset": "ood-grey",
        "input_contract": {"channels": 1, "size": [32, 32], "dtype": "float32", "range": [0.0, 1.0]},
        "params": {"input_size": 32, "method": "oscars", "classes": list(BODY_PARTS)},
        "metrics": {"heldout": {"precision@10": 0.5, "n": 10}},
    }, EmbeddingNet(width=4).state_dict())
    return folder


def _hit(rank: int, labels: tuple[str, ...], score: float, score_name: str, anomaly: float | None) -> QueryHit:
    return QueryHit(query="q", rank=rank, item_id=0, file="f.png", labels=labels, score=score, score_name=score_name,
                    anomaly_score=anomaly, site=None)


def test_pure_helpers() -> None:
    assert _hit(1, ("hand",), 0.98123, "cosine", 0.4234).caption == "#1 · hand · cos 0.9812 · A 0.423"
    assert _hit(2, (), 1.5, "ds", None).caption == "#2 · unlabelled · DS 1.5000 · A –"
    assert item_caption(("a", "b"), None) == "a, b · A –"
    assert item_caption(("hand",), 0.25) == "hand · A 0.250"

    class Item:
        def __init__(self, labels):
            self.labels = labels

    assert collection_labels({0: Item(("b",)), 1: Item(("a", "b"))}) == ["a", "b"]


def test_page_without_models_says_how_to_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weights").mkdir()
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path / "weights"))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "medlim train oscars" in at.info[0].body


def test_build_browse_and_more_like_this(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_jobs) -> None:
    from medlim.core.jobs import list_jobs
    from medlim.core.store import open_store

    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(_tiny_registry(tmp_path / "weights")))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No collection yet" in at.info[0].body
    at.number_input(key="retrieval_build_n").set_value(14)
    at.text_input(key="retrieval_build_name").set_value("demo")
    at.button(key="retrieval_build").click().run()
    assert not at.exception and not at.error
    with open_store() as store:  # the encoding is a job (issue 15): `medlim retrieval build ...`
        (job,) = list_jobs(store, kind="retrieval.build")
    argv = job.parameters["argv"]
    assert argv[:2] == ["retrieval", "build"] and argv[argv.index("--name") + 1] == "demo"
    assert argv[argv.index("--index") + 1].endswith("/.medlim-jobs/collections/demo/demo.npz")
    assert [ended.state for ended in run_jobs()] == ["done"]
    at.run()
    assert not at.exception and not at.error
    assert any(s.value.startswith("Built demo: 14 images") for s in at.success)
    assert at.selectbox(key="retrieval_collection_select").value == "demo"
    assert "14 images" in at.caption[1].value or any("14 images" in c.value for c in at.caption)
    # browse grid: one "More like this" button per shown image
    assert len([b for b in at.button if b.key.startswith("retrieval_browse_")]) == 10
    at.button(key="retrieval_browse_3").click().run()
    assert not at.exception
    assert any(s.value == "Top 10" for s in at.subheader)
    hits = at.dataframe[0].value  # the results table comes first (AppTest dataframes carry no key)
    assert len(hits) == 10 and 3 not in hits["item_id"].tolist()  # the query item itself is left out
    assert list(hits["rank"]) == list(range(1, 11))
    assert hits["cosine"].is_monotonic_decreasing
    label = hits["labels"].iloc[0][0]
    at.multiselect(key="retrieval_labels").set_value([label]).run()
    assert not at.exception
    filtered = at.dataframe[0].value
    assert all(label in labels for labels in filtered["labels"])
    assert len(at.dataframe) == 1 + 3  # results + the three Table 6.1-style tables of the registered model


def _page_with_tiny_pms(folder: Path, monkeypatch: pytest.MonkeyPatch, classes: tuple[str, ...], run_jobs,
                        **params: object) -> AppTest:
    """The page over a registry holding only a tiny random PMS for ``classes``, after building a 12-image collection."""
    from medlim.core.weights import Registry, save_weights
    from medlim.curation.retrieval.nets import PmsNet

    torch.manual_seed(1)
    net = PmsNet(width=4, n_classes=len(classes), branch_dim=8)
    net.proxies.copy_(torch.rand(len(classes), 8))
    save_weights(Registry(folder / "weights"), {
        "name": f"tiny-pms{len(classes)}", "version": "1", "task": "multilabel-retrieval",
        "architecture": "pms-resnet18", "architecture_kwargs": {"width": 4, "n_classes": len(classes), "branch_dim": 8},
        "preset": "ood-grey", "input_contract": {"channels": 1, "size": [32, 32], "dtype": "float32", "range": [0.0, 1.0]},
        "params": {"input_size": 32, "method": "pms", "classes": list(classes), **params},
    }, net.state_dict())
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(folder / "weights"))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="retrieval_build_n").set_value(12)
    at.button(key="retrieval_build").click().run()
    assert [ended.state for ended in run_jobs()] == ["done"]  # the build job, run here as a worker would
    at.run()
    assert not at.exception
    return at


def test_pms_collection_ranks_by_ds_and_switches_weighting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           run_jobs) -> None:
    from medlim.phantoms.chest import FINDINGS

    at = _page_with_tiny_pms(tmp_path, monkeypatch, FINDINGS, run_jobs)
    at.button(key="retrieval_browse_0").click().run()
    assert not at.exception
    hits = at.dataframe[0].value
    assert "DS" in hits.columns and hits["DS"].is_monotonic_increasing and 0 not in hits["item_id"].tolist()
    from medlim.curation.retrieval.weighting import DEFAULT_DS

    assert at.selectbox(key="retrieval_ds").value == DEFAULT_DS == "symmetric"
    for ds in ("thesis", "unweighted"):
        at.selectbox(key="retrieval_ds").set_value(ds).run()
        assert not at.exception
        assert at.dataframe[0].value["DS"].is_monotonic_increasing


def test_pms_model_on_mimic14_labels_builds_matching_sample_phantoms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      run_jobs) -> None:
    # a 14-branch PMS recorded with label_set "mimic14": the page's phantom collection carries the 14 MIMIC-like
    # class names (not the default 8), and the label filter offers them
    from medlim.phantoms.chest import MIMIC14_FINDINGS

    at = _page_with_tiny_pms(tmp_path, monkeypatch, MIMIC14_FINDINGS, run_jobs, label_set="mimic14")
    offered = set(at.multiselect(key="retrieval_labels").options)
    assert offered and offered <= set(MIMIC14_FINDINGS)
    at.button(key="retrieval_browse_0").click().run()
    assert not at.exception
    hits = at.dataframe[0].value
    assert "DS" in hits.columns and hits["DS"].is_monotonic_increasing


# ----------------------------------------------------------------------------- issue 14: data roots and names


REFUSED = "must lie inside one of the data folders this app may read"


def _build_from_folder(at: AppTest, folder: str) -> str:
    at.radio(key="retrieval_build_source").set_value("Data folder").run()
    at.text_input(key="retrieval_build_folder").set_value(folder)
    at.button(key="retrieval_build").click().run()
    assert not at.exception
    return at.error[0].body if at.error else ""


def test_data_folder_is_confined_to_the_data_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(_tiny_registry(tmp_path / "weights")))
    root = tmp_path / "data"
    (root / "inside").mkdir(parents=True)
    outside = tmp_path / "outside" / "hand"
    outside.mkdir(parents=True)
    (root / "escape").symlink_to(outside.parent, target_is_directory=True)
    monkeypatch.setenv("MEDLIM_DATA_ROOTS", str(root))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="retrieval_build_source").set_value("Data folder").run()
    help_text = at.text_input(key="retrieval_build_folder").help
    assert str(root) in help_text
    messages = {typed: _build_from_folder(at, typed)
                for typed in ("/etc", "../../", "escape", str(root / "escape" / "hand"), "/no/such/folder")}
    for typed, message in messages.items():
        assert REFUSED in message and str(root) in message, typed
    # the same words whether or not the path exists outside the roots: nothing is revealed
    assert len({m.split("**build:** ", 1)[-1] for m in messages.values()}) == 1
    assert not (tmp_path / "home").joinpath("collections").exists()


def test_collection_name_never_becomes_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_jobs) -> None:
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(_tiny_registry(tmp_path / "weights")))
    home = Path(os.environ["MEDLIM_HOME"])
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="retrieval_build_n").set_value(10)
    for bad in ("../../evil", "a/b", "..", "x" * 65):
        at.text_input(key="retrieval_build_name").set_value(bad)
        at.button(key="retrieval_build").click().run()
        assert not at.exception
        assert "collection name" in at.error[0].body
    assert not list(home.parent.rglob("*evil*")) and not (home / "collections").exists()
    at.text_input(key="retrieval_build_name").set_value("ward 7.v2")
    at.button(key="retrieval_build").click().run()
    assert [ended.state for ended in run_jobs()] == ["done"]
    assert not at.exception and not at.error
    assert (home / "datasets" / ".medlim-jobs" / "collections" / "ward 7.v2" / "ward 7.v2.npz").is_file()


# ----------------------------------------------------------------------------- issue 17: the page shows the CLI's numbers


def test_neighbours_shown_equal_the_cli_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                              run_jobs) -> None:
    import json

    import pandas as pd

    from medlim.cli import main

    weights = _tiny_registry(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(weights))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="retrieval_build_n").set_value(14)
    at.text_input(key="retrieval_build_name").set_value("cmp")
    at.button(key="retrieval_build").click().run()
    assert [ended.state for ended in run_jobs()] == ["done"]
    at.run()
    assert not at.exception and not at.error
    collections = Path(os.environ["MEDLIM_HOME"]) / "datasets" / ".medlim-jobs" / "collections" / "cmp"
    query = sorted((collections / "data").rglob("*.png"))[5]
    at.number_input(key="retrieval_k").set_value(6)
    at.file_uploader(key="retrieval_upload").upload(query.name, query.read_bytes(), "image/png").run()
    assert not at.exception and not at.error
    shown = at.dataframe[0].value
    assert len(shown) == 6

    capsys.readouterr()
    command = ["retrieval", "query", "--index", str(collections / "cmp.npz"), "--k", "6", str(query),
               "--weights-dir", str(weights)]
    assert main([*command, "--jsonl"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown["rank"].tolist() == [r["rank"] for r in printed]
    assert shown["item_id"].tolist() == [r["item_id"] for r in printed]
    assert shown["file"].tolist() == [Path(r["file"]).name for r in printed]
    assert shown["cosine"].tolist() == [r["score"] for r in printed]
    assert [list(v) for v in shown["labels"]] == [r["labels"] for r in printed]
    assert [None if pd.isna(v) else v for v in shown["anomaly_score"]] == [r["anomaly_score"] for r in printed]
    # the captions under the images are the lines the CLI prints
    assert main(command) == 0
    lines = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    captions = [caption for image in at.get("image") for caption in image.captions]
    assert captions[0] == f"Query: {query.name}" and captions[1:] == lines
    assert lines[0].startswith("#1 · ") and " · cos " in lines[0]
