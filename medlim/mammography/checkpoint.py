"""Map the authors' published SCU-Net checkpoints onto :class:`~medlim.mammography.scunet.SCUNet`.

The three checkpoints published with the thesis's code (thesis §3.3; MIT,
``Emory-HITI/BAC_segmentation``) were saved from a ``DataParallel`` wrapper
(keys prefixed ``module.``), in float64, and include modules the forward pass
never calls: a second down block ``level3_1`` and a ``ConvTranspose2d`` inside
each decoder step (the decoder upsamples bilinearly). This module renames their
keys to ours explicitly, drops exactly those unused keys, and refuses anything
else — no ``strict=False``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from medlim.errors import CheckpointMappingError

__all__ = ["PUBLISHED_UNUSED_KEYS", "PUBLISHED_RENAMES", "map_published_scunet"]

_CG_BLOCK_KEYS = (
    "conv1x1.conv.weight",
    "conv1x1.bn.weight",
    "conv1x1.bn.bias",
    "conv1x1.bn.running_mean",
    "conv1x1.bn.running_var",
    "conv1x1.bn.num_batches_tracked",
    "conv1x1.act.weight",
    "F_loc.conv.weight",
    "F_sur.conv.weight",
    "bn.weight",
    "bn.bias",
    "bn.running_mean",
    "bn.running_var",
    "bn.num_batches_tracked",
    "act.weight",
    "reduce.conv.weight",
    "F_glo.fc.0.weight",
    "F_glo.fc.0.bias",
    "F_glo.fc.2.weight",
    "F_glo.fc.2.bias",
)

#: Keys (after stripping ``module.``) present in all three published files but
#: never used by the forward pass: the spare down block ``level3_1`` (29,448
#: parameters) and the transposed convolutions ``up3.up`` / ``up4.up``
#: (9,264 + 6,440 parameters). 169,711 + 45,152 = 214,863 registered parameters.
PUBLISHED_UNUSED_KEYS: frozenset[str] = frozenset(
    [f"level3_1.{key}" for key in _CG_BLOCK_KEYS]
    + ["up3.up.weight", "up3.up.bias", "up4.up.weight", "up4.up.bias"]
)

#: Published key fragment → our key fragment (applied to the first match, in order).
PUBLISHED_RENAMES: tuple[tuple[str, str], ...] = (
    (".conv1x1.", ".conv_down."),
    (".F_loc.conv.", ".local."),
    (".F_sur.conv.", ".surround."),
    (".reduce.conv.", ".reduce."),
    (".F_glo.fc.0.", ".excite.squeeze."),
    (".F_glo.fc.2.", ".excite.expand."),
    ("up3.conv.conv.", "up3.double_conv."),
    ("up4.conv.conv.", "up4.double_conv."),
    ("outc.conv.", "head."),
)


def _rename(key: str) -> str:
    for published, ours in PUBLISHED_RENAMES:
        if published in key:
            return key.replace(published, ours, 1)
    return key


def map_published_scunet(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn a published SCU-Net state dict into one that loads strictly into ``build_scunet()``.

    Args:
        state_dict: the published ``model_state_dict`` (``module.``-prefixed,
            float64). The whole checkpoint dict (with ``epoch``,
            ``model_state_dict``, ...) is also accepted and unwrapped. A state
            dict already in our naming passes through unchanged (idempotent).

    Returns:
        Our key names, floating tensors as float32 (contiguous copies),
        ``num_batches_tracked`` counters kept as int64.

    Raises:
        CheckpointMappingError: a key is neither ours nor a known unused key,
            one of ours is missing, a tensor has the wrong shape, or the input
            is not a mapping of tensors.
    """
    from medlim.mammography.scunet import build_scunet

    if not isinstance(state_dict, Mapping):
        raise CheckpointMappingError(f"Expected a state dict (mapping of tensors), got {type(state_dict).__name__}.")
    inner = state_dict.get("model_state_dict")
    if isinstance(inner, Mapping):
        state_dict = inner

    expected = build_scunet().state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for raw_key, tensor in state_dict.items():
        key = raw_key.removeprefix("module.")
        if key in PUBLISHED_UNUSED_KEYS:
            continue
        key = _rename(key)
        if key not in expected:
            unknown.append(raw_key)
            continue
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointMappingError(f"Checkpoint entry {raw_key!r} is a {type(tensor).__name__}, not a tensor.")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointMappingError(
                f"Checkpoint entry {raw_key!r} has shape {tuple(tensor.shape)}, "
                f"SCU-Net expects {tuple(expected[key].shape)} for {key!r}."
            )
        if key in mapped:
            raise CheckpointMappingError(f"Checkpoint entry {raw_key!r} maps onto {key!r} a second time.")
        dtype = torch.float32 if tensor.is_floating_point() else tensor.dtype
        mapped[key] = tensor.detach().to(device="cpu", dtype=dtype).clone().contiguous()

    missing = sorted(set(expected) - set(mapped))
    if unknown or missing:
        raise CheckpointMappingError(
            "Checkpoint does not map onto SCU-Net: "
            f"unknown keys {sorted(unknown)[:10]}{' ...' if len(unknown) > 10 else ''}; "
            f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}."
        )
    return mapped
