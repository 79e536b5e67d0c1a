"""Training smoke test (tiny, default run) and the full shipped recipe (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlim.core.weights import Registry
from medlim.curation.ood.recipe import DataSpec, calibrate, train_and_register
from medlim.curation.ood.scoring import load_detector
from medlim.curation.ood.train import OodTrainingConfig
from medlim.errors import ParameterError

TINY = OodTrainingConfig(input_size=64, width=2, embedding=16, latent=16, ae_epochs=1, tend_epochs=2,
                         warmup_epochs=1, cvad_epochs=1, disc_epochs=1, batch_size=8)
TINY_DATA = DataSpec(seed=5, n_train=16, n_calib=2, n_heldout=2)


def test_calibration_sets_cvad_range_and_gmean_threshold() -> None:
    parts = {"rec": np.array([0.01, 0.02, 0.05, 0.06]), "dis": np.array([0.1, 0.2, 0.8, 0.9])}
    params, threshold, metrics = calibrate("cvad", parts, np.array([0, 0, 1, 1]), {})
    assert (params["rec_min"], params["rec_max"]) == (0.01, 0.06)
    # scores 0.5*(rec/0.05 + dis): .15, .3, .9, 1.05 → gap between .3 and .9, midpoint .6
    assert threshold == pytest.approx(0.6)
    assert metrics["auroc"] == 1.0


def test_tiny_tend_and_cvad_train_register_and_score(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "weights")
    results = train_and_register("tend", id_classes=("hand",), data_spec=TINY_DATA, config=TINY,
                                 command="medlim train tend --id-class hand (tiny)", registry=registry)
    results.update(train_and_register("cvad", id_classes=("hand",), data_spec=TINY_DATA, config=TINY,
                                      registry=registry))
    assert set(results) == {"ae", "tend", "cvad"}
    manifest = json.loads((tmp_path / "weights" / "manifest.json").read_text())
    assert sorted(m["name"] for m in manifest["models"]) == ["ae-hand", "cvad-hand", "tend-hand"]
    for entry in manifest["models"]:
        assert entry["task"] == "ood-detection" and "score" in entry["thresholds"]
        held = entry["metrics"]["heldout"]
        assert held["setting"] == "one-vs-rest" and 0.0 <= held["auroc"] <= 1.0
        assert set(held["transform_accuracy"]) == {"random_cut", "crop_resize", "noise", "blur"}
    cvad = next(m for m in manifest["models"] if m["name"] == "cvad-hand")
    assert cvad["params"]["rec_max"] > cvad["params"]["rec_min"]
    assert all("variability" not in m["params"]["data"] for m in manifest["models"])  # default: fixed acquisition
    tend = load_detector("tend-hand", registry=Registry.load(tmp_path / "weights"))
    assert tend.margin == 150.0 and tend.id_classes == ("hand",)
    assert np.isfinite(tend.score(np.zeros((2, 64, 64), np.float32)).score).all()


def test_variability_reaches_every_data_set_and_the_manifest(tmp_path: Path) -> None:
    from medlim.curation.ood.data import phantom_set
    from medlim.curation.ood.recipe import prepare_data

    spec = DataSpec(seed=5, n_train=2, n_calib=1, n_heldout=1, variability=0.7)
    data = prepare_data(spec, ("hand",), size=32)
    expected = phantom_set(seed=5, per_class=2, body_parts=("hand",), size=32, variability=0.7)
    np.testing.assert_array_equal(data.train.images, expected.images)
    plain = phantom_set(seed=5, per_class=2, body_parts=("hand",), size=32)
    assert not np.array_equal(data.train.images, plain.images)
    registry = Registry(tmp_path / "weights")
    train_and_register("cvad", id_classes=("hand",), data_spec=spec, config=TINY, registry=registry)
    entry = Registry.load(tmp_path / "weights").get("cvad-hand")
    assert entry.params["data"]["variability"] == 0.7


def test_bad_training_options() -> None:
    with pytest.raises(ParameterError, match="margin"):
        OodTrainingConfig(margin=100.0)
    with pytest.raises(ParameterError, match="distortions"):
        OodTrainingConfig(distortions=("barrel", "gaussian_blur"))
    assert OodTrainingConfig(distortions=["tile", "spread"]).distortions == ("tile", "spread")
    with pytest.raises(ParameterError, match="kind"):
        train_and_register("gan", id_classes=("hand",), data_spec=TINY_DATA, config=TINY)
    with pytest.raises(ParameterError, match="knee"):
        train_and_register("tend", id_classes=("knee",), data_spec=TINY_DATA, config=TINY,
                           registry=Registry(Path("/nonexistent-weights")))


@pytest.mark.slow
def test_shipped_tend_recipe_reproduces_its_manifest_entry(tmp_path: Path) -> None:
    """Re-running the shipped ``tend-humerus`` recipe (its recorded settings and seed) gives the same detector.

    Training is deterministic on the CPU for a seed (one thread, seeded generators,
    fixed data order), so the held-out AUROC and transform accuracies recorded in
    the manifest come back exactly. ~5 min on a busy 2-core CPU.
    """
    shipped = Registry.load()
    entry = shipped.get("tend-humerus")
    config = OodTrainingConfig(**entry.params["training"])
    assert entry.provenance is not None and config.seed == entry.provenance.seed
    data = DataSpec(seed=entry.params["data"]["seed"], variability=entry.params["data"].get("variability", 0.0))
    tend = train_and_register("tend", id_classes=("humerus",), data_spec=data, config=config,
                              registry=Registry(tmp_path / "weights"))
    for kind in ("ae", "tend"):
        recorded = shipped.get(f"{kind}-humerus").metrics["heldout"]
        evaluation = tend[kind][1]
        assert evaluation.metrics.auroc == pytest.approx(recorded["auroc"], abs=1e-9), kind
        assert evaluation.transform_accuracy == pytest.approx(recorded["transform_accuracy"], abs=1e-9), kind


@pytest.mark.slow
def test_shipped_tend_weights_reproduce_their_manifest_metrics() -> None:
    """The shipped detectors, re-evaluated on regenerated held-out phantoms, give the recorded AUROC."""
    from medlim.curation.ood.data import phantom_set
    from medlim.curation.ood.evaluate import evaluate_detector
    from medlim.curation.ood.recipe import HELDOUT_SEED
    from medlim.curation.ood.scoring import list_detectors
    from medlim.phantoms.radiograph import BODY_PARTS

    registry = Registry.load()
    entries = list_detectors(registry)
    if not entries:
        pytest.skip("no OOD detector is registered")
    sets: dict[float, object] = {}
    for entry in entries:
        variability = float(entry.params["data"].get("variability", 0.0))
        if variability not in sets:
            sets[variability] = phantom_set(seed=HELDOUT_SEED, per_class=60, body_parts=BODY_PARTS, size=64,
                                            variability=variability)
        detector = load_detector(entry.name, version=entry.version, registry=registry)
        evaluation = evaluate_detector(detector, sets[variability], seed=HELDOUT_SEED)
        assert evaluation.metrics.auroc == pytest.approx(entry.metrics["heldout"]["auroc"], abs=1e-3), entry.label


def test_tend_training_that_diverges_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from medlim.curation.ood import train as training
    from medlim.curation.ood.nets import TendNet

    images = np.random.default_rng(0).random((8, 64, 64)).astype(np.float32)
    autoencoder = training.train_autoencoder(images, TINY)
    forward = TendNet.forward

    def nan_probabilities(self, x):  # a head whose weights blew up
        p, c = forward(self, x)
        return torch.full_like(p, float("nan")), c

    monkeypatch.setattr(TendNet, "forward", nan_probabilities)
    with pytest.raises(ParameterError, match="diverged in epoch 1"):
        training.train_tend(images, autoencoder, TINY)


def test_tend_encoder_is_frozen_as_in_the_thesis_unless_asked() -> None:
    import dataclasses

    import torch

    from medlim.curation.ood import train as training

    images = np.random.default_rng(1).random((8, 64, 64)).astype(np.float32)
    autoencoder = training.train_autoencoder(images, TINY)
    start = {k: v.clone() for k, v in autoencoder.encoder.state_dict().items()}
    frozen = training.train_tend(images, autoencoder, TINY)
    for key, value in frozen.encoder.state_dict().items():  # weights and batch-norm statistics untouched
        assert torch.equal(value, start[key]), key
    trained = training.train_tend(images, autoencoder, dataclasses.replace(TINY, train_encoder=True))
    changed = [k for k, v in trained.encoder.state_dict().items() if not torch.equal(v, start[k])]
    assert any(k.endswith("weight") for k in changed)
