"""Published SCU-Net checkpoints map strictly onto our architecture."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from medlim.errors import CheckpointMappingError
from medlim.mammography.checkpoint import PUBLISHED_UNUSED_KEYS, map_published_scunet
from medlim.mammography.scunet import build_scunet

PUBLISHED_FILES = (
    "SCUNet_dice_512_512_best_nosigmoid.pt",
    "SCUNet_dice_512_512_best.pt",
    "SCU_Net_512_512_best_BCE_pos_all.pt",
)


def _load(shared_dir: Path, name: str) -> dict:
    path = shared_dir / "reference" / "scunet_published" / name
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return torch.load(path, weights_only=True, map_location="cpu")


@pytest.mark.parametrize("name", PUBLISHED_FILES)
def test_published_checkpoint_loads_strictly(shared_dir: Path, name: str) -> None:
    checkpoint = _load(shared_dir, name)
    published = checkpoint["model_state_dict"]
    mapped = map_published_scunet(published)

    model = build_scunet()
    model.load_state_dict(mapped, strict=True)
    assert all(t.dtype == torch.float32 for t in mapped.values() if t.is_floating_point())
    assert all(published[k].dtype == torch.float64 for k in published if "num_batches" not in k)
    # Exactly the known-unused keys were dropped, and they carry 214,863 − 169,711 parameters.
    stripped = {k.removeprefix("module."): v for k, v in published.items()}
    assert len(stripped) - len(mapped) == len(PUBLISHED_UNUSED_KEYS) == 24
    assert PUBLISHED_UNUSED_KEYS <= stripped.keys()
    dropped = sum(stripped[k].numel() for k in PUBLISHED_UNUSED_KEYS if "running" not in k and "num_batches" not in k)
    assert dropped == 214_863 - 169_711
    # Values survive the mapping (float64 → float32) under their new names.
    assert torch.equal(mapped["level2_0.local.weight"], published["module.level2_0.F_loc.conv.weight"].float())
    assert torch.equal(mapped["head.bias"], published["module.outc.conv.bias"].float())
    model.eval()
    with torch.inference_mode():
        assert torch.isfinite(model(torch.randn(1, 3, 64, 64))).all()


def test_whole_checkpoint_dict_is_unwrapped(shared_dir: Path) -> None:
    checkpoint = _load(shared_dir, PUBLISHED_FILES[0])
    assert map_published_scunet(checkpoint).keys() == build_scunet().state_dict().keys()


def test_own_state_dict_passes_through() -> None:
    own = build_scunet().state_dict()
    mapped = map_published_scunet(own)
    assert mapped.keys() == own.keys()
    for key in own:
        assert torch.equal(mapped[key], own[key])


def test_unknown_key_is_refused() -> None:
    state = dict(build_scunet().state_dict())
    state["module.level4_0.conv.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMappingError, match="level4_0"):
        map_published_scunet(state)


def test_missing_key_is_refused() -> None:
    state = dict(build_scunet().state_dict())
    del state["up3.double_conv.0.weight"]
    with pytest.raises(CheckpointMappingError, match="up3.double_conv.0.weight"):
        map_published_scunet(state)


def test_wrong_shape_is_refused() -> None:
    state = dict(build_scunet().state_dict())
    state["head.weight"] = torch.zeros(2, 32, 1, 1)
    with pytest.raises(CheckpointMappingError, match=r"\(2, 32, 1, 1\)"):
        map_published_scunet(state)


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(CheckpointMappingError, match="list"):
        map_published_scunet([1, 2])  # type: ignore[arg-type]


def test_lazy_mapper_string_resolves() -> None:
    module_name, attribute = "medlim.mammography.checkpoint:map_published_scunet".split(":")
    assert getattr(importlib.import_module(module_name), attribute) is map_published_scunet
