"""Phantom family B: a second, independently written anatomy and acquisition chain.

Charter: the building blocks of the ``mammogram-b`` and ``radiograph-b``
phantom kinds (issues 12 and 13: "build a second phantom family … that differs
in construction, written from a description rather than from the first
generator"). Models trained on family A (:mod:`medlim.phantoms.mammogram`,
:mod:`medlim.phantoms.radiograph`) are tested here on images they have never
seen the like of, and the other way round.

Modules: ``fields`` (random fields, detector noise textures, polylines),
``breast`` (outline, parenchyma, ligaments, skin, nipple, pectoral wedge),
``arteries`` (vessel trees and their calcification by grade), ``lookalikes``
(benign and clustered calcifications, ligament crossings, clips), ``detector``
(the mammography acquisition chain and vendor looks) and ``limbs`` (projected
bones for radiographs). The public generators live in
:mod:`medlim.phantoms.mammogram_b` and :mod:`medlim.phantoms.radiograph_b`;
nothing here is imported at package import time.
"""

from __future__ import annotations

__all__: list[str] = []
