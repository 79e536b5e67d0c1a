"""Chest phantoms: pure function of the seed, exact labels, imbalance, writer and registry."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms.chest import FINDINGS, PREVALENCE, generate_chest, labels_to_vector
from medlim.phantoms.registry import generate, get_kind


def test_same_seed_same_phantom_and_sizes() -> None:
    a, b = generate_chest(seed=4, index=2), generate_chest(seed=4, index=2)
    assert np.array_equal(a.image, b.image) and a.labels == b.labels
    assert a.image.shape == (128, 128) and a.image.dtype == np.float32
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    small = generate_chest(seed=4, index=2, size=64)
    assert small.image.shape == (64, 64) and small.labels == a.labels
    with pytest.raises(ParameterError):
        generate_chest(seed=4, index=-1)


def test_labels_are_consistent_and_imbalanced() -> None:
    vectors = np.stack([generate_chest(seed=1, index=i, size=32).vector for i in range(300)])
    assert vectors.shape == (300, len(FINDINGS)) and len(FINDINGS) >= 8
    # "no finding" exactly when nothing else is present
    assert (vectors[:, 0] == (vectors[:, 1:].sum(axis=1) == 0)).all()
    rates = vectors.mean(axis=0)
    for i, name in enumerate(FINDINGS[1:], start=1):
        assert abs(rates[i] - PREVALENCE[name]) < 0.07, name
    assert rates[FINDINGS.index("support devices")] > 3 * rates[FINDINGS.index("fracture")]
    assert (vectors[:, 1:].sum(axis=1) >= 2).mean() > 0.15  # findings co-occur


def test_findings_change_the_image() -> None:
    # a phantom with a pacemaker/tube or effusion is brighter than the same anatomy without findings:
    # the label stream is separate from the render stream, so compare mean brightness over many samples
    phantoms = [generate_chest(seed=2, index=i, size=64) for i in range(120)]
    devices = [p.image.mean() for p in phantoms if "support devices" in p.labels or "effusion" in p.labels]
    normal = [p.image.mean() for p in phantoms if p.labels == ("no finding",)]
    assert np.mean(devices) > np.mean(normal)


def test_labels_to_vector_rejects_unknown() -> None:
    assert labels_to_vector(["nodule", "fracture"]).tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    with pytest.raises(ParameterError, match="unknown finding"):
        labels_to_vector(["tumour"])


def test_registry_and_writer(tmp_path) -> None:
    kind = get_kind("chest")
    phantom = generate("chest", seed=3, index=0, size=32)
    rows = kind.write_one(phantom, tmp_path, stem="c0")
    assert (tmp_path / rows[0]["file"]).is_file()
    assert rows[0]["labels"].split("|") == list(phantom.labels)


def test_cli_writes_manifest_with_exact_labels(tmp_path) -> None:
    from medlim.cli import main

    assert main(["phantom", "chest", "--n", "5", "--seed", "7", "--size", "32", "--out", str(tmp_path)]) == 0
    with (tmp_path / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    for i, row in enumerate(rows):
        assert row["labels"].split("|") == list(generate_chest(seed=7, index=i).labels)
    assert json.loads((tmp_path / "manifest.json").read_text())["kind"] == "chest"
