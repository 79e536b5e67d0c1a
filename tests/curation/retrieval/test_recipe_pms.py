"""PMS recipe with the 14-class MIMIC-like chest phantoms: k-generic training, manifest, tables, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.core.weights import Registry
from medlim.curation.retrieval.recipe import HELDOUT_SEED, chest_set, recompute_tables, train_pms_recipe
from medlim.curation.retrieval.train import RetrievalTrainingConfig
from medlim.phantoms.chest import MIMIC14_FINDINGS, MIMIC14_LOOK


def test_chest_set_has_the_label_set_width() -> None:
    images, labels = chest_set(seed=2, n=5, size=32, label_set="mimic14")
    assert images.shape == (5, 32, 32) and labels.shape == (5, 14) and labels.dtype == np.uint8
    assert (labels.sum(axis=1) >= 1).all()  # No Finding or a finding on every image
    assert chest_set(seed=2, n=3, size=32)[1].shape == (3, 8)


@pytest.fixture(scope="module")
def mimic_run(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (registry, entry, results)
    registry = Registry(tmp_path_factory.mktemp("weights"))
    config = RetrievalTrainingConfig(seed=1, input_size=32, width=4, epochs=1, warmup_epochs=1, branch_dim=8,
                                     bank_size=16, batch_size=16)
    entry, results, _ = train_pms_recipe(seed=1, n=48, heldout_n=60, label_set="mimic14", config=config,
                                         registry=registry, command="test")
    return registry, entry, results


def test_recipe_records_the_label_set_and_14_branches(mimic_run) -> None:
    _, entry, results = mimic_run
    assert (entry.name, entry.version) == ("pms-chest-mimic14", "1")  # never replaces the shipped pms-chest
    assert entry.params["label_set"] == "mimic14" and entry.params["classes"] == list(MIMIC14_FINDINGS)
    assert entry.params["phantom_look"] == MIMIC14_LOOK
    assert entry.architecture_kwargs["n_classes"] == 14 and len(entry.params["tau"]) == 14
    assert entry.metrics["heldout"]["label_set"] == "mimic14" and entry.metrics["heldout"]["seed"] == HELDOUT_SEED
    for mode in ("weighted", "unweighted"):
        assert {f"auc/{name}" for name in MIMIC14_FINDINGS} <= set(results[mode])
        assert 0.0 <= results[mode]["full_precision@10"] <= results[mode]["partial_precision@10"] <= 1.0


def test_recompute_regenerates_the_mimic14_heldout_set(mimic_run) -> None:
    # the same weights on the same regenerated held-out phantoms give the recorded figures exactly
    registry, _, results = mimic_run
    tables = recompute_tables(registry=registry)
    precision, auc = tables[-2], tables[-1]
    weighted = precision.rows["Weighted PMS"]
    assert weighted["full_precision@10"] == pytest.approx(results["weighted"]["full_precision@10"])
    assert precision.rows["Unweighted PMS"]["partial_precision@5"] == pytest.approx(
        results["unweighted"]["partial_precision@5"])
    assert auc.columns[:14] == tuple(f"auc/{name}" for name in MIMIC14_FINDINGS) and len(auc.columns) == 17


def test_cli_passes_the_label_set(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import medlim.curation.retrieval.recipe as recipe
    from medlim.cli import main

    seen = {}

    class _Entry:
        name, version, file = "pms-chest", "0", "x.safetensors"

    def fake(**kwargs):  # noqa: ANN003, ANN202 - records the call instead of training
        seen.update(kwargs)
        return _Entry(), {}, 0.0

    monkeypatch.setattr(recipe, "train_pms_recipe", fake)
    assert main(["train", "pms", "--label-set", "mimic14", "--weights-dir", str(tmp_path)]) == 0
    assert seen["label_set"] == "mimic14"
    assert main(["train", "pms", "--weights-dir", str(tmp_path)]) == 0
    assert seen["label_set"] == "chest8"
