"""Synthetic phantoms with exact ground truth (the data behind every trained model).

Charter: seeded generators (a phantom is a pure function of kind, parameters
and seed), the registry of kinds, the common write step (images, masks, manifest)
and the DICOM writer. Modality kinds live in their own modules
(``mammogram`` for thesis §3.3, with its records in ``mammogram_records`` so that
the generator and the DICOM writer need not import each other; ``fluorescence``
for §3.1). ``mammogram_b`` and ``radiograph_b`` (with their drawing code in
``family_b``) are a second family written from a description rather than from
the first generators — another anatomy model and acquisition chain — to measure
how models trained on one family do on the other. Analysis code does not live here.
"""

from __future__ import annotations

from medlim.phantoms.base import PhantomKind, rng_for, write_manifest
from medlim.phantoms.registry import KINDS, generate, get_kind, kind_names

__all__ = ["KINDS", "PhantomKind", "generate", "get_kind", "kind_names", "rng_for", "write_manifest"]
