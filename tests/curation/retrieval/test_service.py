"""Collections end to end: build, query, label filter, "more like this", PMS exactness, CLI JSON lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medlim.core.io import read_image
from medlim.core.store import open_store
from medlim.core.store.retrieval import get_items
from medlim.curation.retrieval.pms import dissimilarity
from medlim.curation.retrieval.service import (
    build_collection,
    open_collection,
    query_collection,
    read_collection,
)
from medlim.errors import ParameterError


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 's.sqlite'}") as opened:
        yield opened


def test_read_collection_uses_the_manifest(radiograph_folder, chest_folder) -> None:
    single = read_collection(radiograph_folder)
    assert len(single) == 14 and all(len(labels) == 1 for labels in single.labels)
    assert {s for s in single.sites} <= {"internal", "external-a", "external-b", "external-c", "external-d"}
    multi = read_collection(chest_folder)
    assert len(multi) == 20 and any(len(labels) > 1 for labels in multi.labels)
    with pytest.raises(ParameterError):
        read_collection(chest_folder / "missing")


def test_build_and_query_embedding_collection(tmp_path, radiograph_folder, tiny_registry, store) -> None:
    seen = []
    built = build_collection(radiograph_folder, "tiny-embed", tmp_path / "rad.npz", store=store,
                             registry=tiny_registry, progress=lambda d, t: seen.append((d, t)))
    assert built.count == 14 and seen[-1] == (14, 14) and built.name == "rad"
    items = get_items(store, "rad")
    index = open_collection(built.path)
    assert sorted(items) == index.ids.tolist() == list(range(14))
    query_file = items[3].file
    image = read_image(query_file).pixels
    hits = query_collection(built.path, [image], k=5, store=store, registry=tiny_registry)[0].neighbours
    assert hits[0].file == query_file and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    more = query_collection(built.path, [image], k=13, exclude_ids=[3], store=store,
                            registry=tiny_registry)[0].neighbours
    assert 3 not in [h.item_id for h in more] and len(more) == 13
    label = items[3].labels[0]
    filtered = query_collection(built.path, [image], k=10, require_labels=[label], store=store,
                                registry=tiny_registry)[0].neighbours
    expected = sum(1 for item in items.values() if label in item.labels)
    assert len(filtered) == min(10, expected) and all(label in h.labels for h in filtered)


def test_pms_collection_ranks_by_exact_ds(tmp_path, chest_folder, tiny_registry, store) -> None:
    built = build_collection(chest_folder, "tiny-pms", tmp_path / "chest.npz", store=store, registry=tiny_registry)
    index = open_collection(built.path)
    ids, stored = index.vectors()
    from medlim.curation.retrieval.service import load_retrieval_model

    model = load_retrieval_model("tiny-pms", registry=tiny_registry)
    image = read_image(get_items(store, "chest")[0].file).pixels
    s, p = model.encode([image])
    for weighted in (True, False):
        hits = query_collection(built.path, [image], k=20, weighted=weighted, store=store, registry=tiny_registry,
                                model=model)[0].neighbours
        ds = dissimilarity(s[0], p[0] if weighted else None, stored)
        expected = [int(ids[i]) for i in np.lexsort((np.arange(len(ds)), ds))]
        assert [h.item_id for h in hits] == expected
        assert all(h.score_name == "ds" for h in hits)
        np.testing.assert_allclose([h.score for h in hits], np.sort(ds), atol=1e-9)


def test_cli_build_query_jsonl(tmp_path, radiograph_folder, tiny_registry, capsys) -> None:
    from medlim.cli import main

    index = tmp_path / "cli.npz"
    assert main(["retrieval", "build", "--data", str(radiograph_folder), "--model", "tiny-embed", "--index",
                 str(index), "--weights-dir", str(tiny_registry.directory)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["count"] == 14
    query = next((radiograph_folder / "hand").glob("*.png"))
    assert main(["retrieval", "query", "--index", str(index), "--k", "3", str(query), "--jsonl",
                 "--weights-dir", str(tiny_registry.directory)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 3 and [r["rank"] for r in rows] == [1, 2, 3]
    assert {"query", "rank", "file", "labels", "score"} <= set(rows[0])
    assert rows[0]["file"] == str(query.resolve()) and rows[0]["labels"] == ["hand"]
    assert main(["retrieval", "query", "--index", str(tmp_path / "none.npz"), str(query)]) == 2
    capsys.readouterr()
    # the text form prints each neighbour's caption (the page's) and its file, with the JSON lines' numbers
    assert main(["retrieval", "query", "--index", str(index), "--k", "3", str(query),
                 "--weights-dir", str(tiny_registry.directory)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [line[2] for line in lines] == [r["file"] for r in rows]
    assert [line[1] for line in lines] == [
        f"#{r['rank']} · {', '.join(r['labels'])} · cos {r['score']:.4f} · "
        + ("A –" if r["anomaly_score"] is None else f"A {r['anomaly_score']:.3f}") for r in rows]


def test_retrieval_result_is_typed_and_serialisable() -> None:
    from medlim.curation.retrieval.service import (
        QueryHit,
        RetrievalResult,
        anomaly_text,
        score_text,
    )

    hit = QueryHit(query="q", rank=1, item_id=7, file="/data/hand/a.png", labels=("hand",), score=0.98123,
                   score_name="cosine", anomaly_score=0.4234, site="internal")
    result = RetrievalResult(query="q", score_name="cosine", neighbours=(hit,), k=5, required_labels=("hand",))
    assert hit.caption == "#1 · hand · cos 0.9812 · A 0.423"
    assert score_text(1.5, "ds") == "DS 1.5000" and anomaly_text(None) == "A –"
    assert result.table() == [{"rank": 1, "item_id": 7, "file": "a.png", "labels": ["hand"], "cosine": 0.98123,
                               "anomaly_score": 0.4234, "site": "internal"}]
    assert json.loads(json.dumps(result.to_json())) == {
        "query": "q", "score_name": "cosine", "k": 5, "required_labels": ["hand"], "weighted": None,
        "excluded_id": -1, "neighbours": [hit.to_dict() | {"labels": ["hand"]}]}
    assert len(result) == 1 and result.score_title == "cosine"


def test_append_keeps_old_ids_and_continues_numbering(tmp_path, radiograph_folder, tiny_registry, store) -> None:
    import shutil

    sources = sorted((radiograph_folder / "hand").glob("*.png")) + sorted((radiograph_folder / "elbow").glob("*.png"))
    folder = tmp_path / "plain"
    (folder / "hand").mkdir(parents=True)
    (folder / "elbow").mkdir()
    for source in sources[:2] + sources[-1:]:
        shutil.copy(source, folder / source.parent.name / source.name)
    first = build_collection(folder, "tiny-embed", tmp_path / "grow.npz", store=store, registry=tiny_registry)
    before = get_items(store, "grow")
    assert first.count == 3 and sorted(before) == [0, 1, 2]
    again = build_collection(folder, "tiny-embed", tmp_path / "grow.npz", store=store, registry=tiny_registry,
                             append=True)
    assert again.count == 3  # nothing new
    added = folder / "hand" / "extra.png"
    shutil.copy(sources[2], added)  # an image (the first elbow) not yet in the collection
    grown = build_collection(folder, "tiny-embed", tmp_path / "grow.npz", store=store, registry=tiny_registry,
                             append=True)
    after = get_items(store, "grow")
    assert grown.count == 4 and sorted(after) == [0, 1, 2, 3]
    assert all(after[i].file == before[i].file for i in before)  # old ids still name the same files
    assert after[3].file == str(added.resolve()) and after[3].labels == ("hand",)
    index = open_collection(tmp_path / "grow.npz")
    assert index.ids.tolist() == [0, 1, 2, 3] and index.next_id == 4
    hits = query_collection(tmp_path / "grow.npz", [read_image(added).pixels], k=1, store=store,
                            registry=tiny_registry)[0].neighbours
    assert hits[0].item_id == 3 and hits[0].score == pytest.approx(1.0, abs=1e-4)
