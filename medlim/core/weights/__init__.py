"""Weights registry: typed, versioned, checksummed model weights.

What lives here: the manifest record of a set of weights (:class:`WeightsEntry`
with its input contract, preprocessing preset, thresholds, metrics, training
provenance and intended use), the :class:`Registry` that reads and writes
``weights/manifest.json``, :class:`Registries` that sees the shipped registry
and the user registry (``MEDLIM_MODELS_DIR``) as one (``find_weights("name@2")``,
``list_models(task=...)``, ``default_model(task)``; user runs write only to the
user registry, never replacing an entry, at the next free version), safetensors loading behind a sha256 check, the
by-name table of architectures and checkpoint importers (resolved lazily, so
importing this package imports no model code), and the import of external
PyTorch checkpoints through an explicit key mapping.

What does not: network definitions (they live in each room, e.g.
``medlim.mammography``), training loops, and inference glue. Nothing here
unpickles: files are safetensors, and external checkpoints are read with
``torch.load(weights_only=True)``.

Design after torchvision's ``Weights`` records and MONAI model-zoo metadata
(see ``../shared/STYLE.md``); the SCU-Net checkpoint format is described in
``../shared/spec/METHODS.md`` §1.
"""

from __future__ import annotations

from medlim.core.weights.architectures import (
    ARCHITECTURES,
    IMPORTER_DEFAULTS,
    IMPORTERS,
    build_model,
    register_architecture,
    register_importer,
    resolve_architecture,
    resolve_importer,
)
from medlim.core.weights.entry import (
    DEFAULT_INTENDED_USE,
    OUTPUT_TYPES,
    InputContract,
    TrainingProvenance,
    WeightsEntry,
)
from medlim.core.weights.importing import (
    LoadedModel,
    import_checkpoint,
    load_checkpoint_in_memory,
    read_checkpoint,
)
from medlim.core.weights.registries import (
    DEFAULTS_NAME,
    SHIPPED,
    USER,
    ListedModel,
    ModelSpec,
    Registries,
    default_model,
    find_weights,
    list_models,
    parse_model_spec,
    set_default,
)
from medlim.core.weights.registry import (
    MANIFEST_NAME,
    Registry,
    Verification,
    load_state_dict,
    save_weights,
    sha256_file,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULTS_NAME",
    "SHIPPED",
    "USER",
    "ListedModel",
    "ModelSpec",
    "Registries",
    "default_model",
    "find_weights",
    "list_models",
    "parse_model_spec",
    "set_default",
    "DEFAULT_INTENDED_USE",
    "IMPORTERS",
    "IMPORTER_DEFAULTS",
    "MANIFEST_NAME",
    "OUTPUT_TYPES",
    "InputContract",
    "LoadedModel",
    "Registry",
    "TrainingProvenance",
    "Verification",
    "WeightsEntry",
    "build_model",
    "import_checkpoint",
    "load_checkpoint_in_memory",
    "load_state_dict",
    "read_checkpoint",
    "register_architecture",
    "register_importer",
    "resolve_architecture",
    "resolve_importer",
    "save_weights",
    "sha256_file",
]
