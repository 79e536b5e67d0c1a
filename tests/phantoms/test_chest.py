"""Chest phantoms: pure function of the seed, exact labels, imbalance, writer and registry."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medlim.errors import ParameterError
from medlim.phantoms.chest import (
    ACQUISITION,
    FINDINGS,
    MIMIC_RATE,
    PREVALENCE,
    SUBTLETY,
    generate_chest,
    labels_to_vector,
)
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


def test_look_parameters_are_validated() -> None:
    for name, bad in (("subtlety", 1.5), ("mimic_rate", -0.1), ("acquisition", "high"), ("subtlety", True)):
        with pytest.raises(ParameterError, match=name):
            generate_chest(seed=1, index=0, size=32, **{name: bad})


def test_labels_do_not_depend_on_the_look() -> None:
    # labels come from their own random stream: the look parameters change only the pixels
    for i in range(20):
        clear = generate_chest(seed=6, index=i, size=32, subtlety=0.0, mimic_rate=0.0, acquisition=0.0)
        default = generate_chest(seed=6, index=i, size=32)
        assert clear.labels == default.labels
    assert SUBTLETY == 0.8 and MIMIC_RATE == 0.3 and ACQUISITION == 1.0


def test_acquisition_varies_the_exposure() -> None:
    # the top-left corner is outside the trunk: background 0.05 plus noise (sd 0.015, averaged over the
    # resize and the 3x3 patch) when acquisition is off; gamma exp(±0.3), gain 1 ± 0.15 and offset
    # ± 0.05 spread it over about [0.0, 0.17] when it is on
    fixed = [generate_chest(seed=3, index=i, size=64, mimic_rate=0.0, acquisition=0.0).image[:3, :3].mean()
             for i in range(40)]
    varied = [generate_chest(seed=3, index=i, size=64, acquisition=1.0).image[:3, :3].mean() for i in range(40)]
    assert abs(np.mean(fixed) - 0.05) < 0.004 and np.std(fixed) < 0.006
    assert np.std(varied) > 0.02


def test_subtlety_makes_effusions_less_conspicuous() -> None:
    # brightness of a band over the lung bases (y 0.6-0.72, both lungs) with against without effusion:
    # at subtlety 0 every effusion fills the base densely; at the default one a graded share is a blunted
    # angle or a faint layering haze, so the gap shrinks (by about a quarter) but stays
    def gap(subtlety: float) -> float:
        with_fluid, without = [], []
        for i in range(80):
            phantom = generate_chest(seed=3, index=i, size=64, subtlety=subtlety, mimic_rate=0.0, acquisition=0.0)
            band = phantom.image[38:46]
            value = float(np.concatenate([band[:, 16:26], band[:, 38:48]], axis=1).mean())
            (with_fluid if "effusion" in phantom.labels else without).append(value)
        return float(np.mean(with_fluid) - np.mean(without))

    clear, subtle = gap(0.0), gap(SUBTLETY)
    assert clear > 0.1 and 0.03 < subtle < 0.85 * clear


def test_cli_passes_the_look(tmp_path) -> None:
    from PIL import Image

    from medlim.cli import main

    assert main(["phantom", "chest", "--n", "2", "--seed", "7", "--size", "32", "--subtlety", "0",
                 "--mimic-rate", "0", "--acquisition", "0", "--out", str(tmp_path)]) == 0
    with (tmp_path / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        expected = generate_chest(seed=7, index=i, size=32, subtlety=0.0, mimic_rate=0.0, acquisition=0.0)
        written = np.asarray(Image.open(tmp_path / row["file"]), np.float32) / 255.0
        assert np.abs(written - expected.image).max() <= 0.5 / 255.0 + 1e-6
