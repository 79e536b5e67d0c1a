"""The SCU-Net recipe: settings travel into the training patches and the registered entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medlim.core.weights import Registry, save_weights
from medlim.errors import ParameterError
from medlim.mammography.recipe import PhantomSpec, train_and_register
from medlim.mammography.scunet import build_scunet
from medlim.mammography.train import TrainingConfig

SPEC = dict(sizes=("small",), bac_fraction=1.0)
START_FIELDS = {
    "name": "start", "version": "1", "task": "bac-segmentation", "architecture": "scunet", "preset": "thesis",
    "input_contract": {"channels": 3, "size": [512, 512], "dtype": "float32", "range": [-1.0, 1.0]},
    "output_type": "probability", "thresholds": {"output": 0.5}, "params": {}, "metrics": {},
}


@pytest.mark.timeout(300)
def test_fine_tuning_starts_from_registered_weights_and_records_its_settings(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    registry = Registry.load(tmp_path)
    torch.manual_seed(5)
    start = build_scunet()
    save_weights(registry, START_FIELDS, start.state_dict())
    # one epoch at learning rate 0: the registered parameters must be the starting ones (BN statistics may move)
    entry, summary = train_and_register(
        train_spec=PhantomSpec(seed=11, count=1, **SPEC), heldout_spec=PhantomSpec(seed=12, count=1, **SPEC),
        config=TrainingConfig(epochs=1, batch_size=2, learning_rate=0.0, seed=3), negative_fraction=0.0, name="tuned",
        version="1",
        command="medlim train scunet --init start", registry=registry, workers=1, device="cpu", log=lambda _: None,
        skip="black", preset="thesis-unclipped", init="start:1",
    )
    assert entry.preset == "thesis-unclipped" and entry.params["skip"] == "black"
    assert entry.provenance.source == "fine-tuned from registered weights start:1"
    from medlim.core.weights import build_model

    tuned = dict(build_model(Registry.load(tmp_path).get("tuned", "1"), device="cpu").named_parameters())
    for key, value in start.named_parameters():
        assert torch.equal(tuned[key].float(), value.float()), key
    assert summary.images == 1
    with pytest.raises(ParameterError):
        train_and_register(
            train_spec=PhantomSpec(seed=1, count=1, **SPEC), heldout_spec=PhantomSpec(seed=1, count=1, **SPEC),
            config=TrainingConfig(epochs=1), negative_fraction=0.0, name="x", version="1", command="",
            registry=registry, workers=1, device="cpu", log=lambda _: None,
        )
