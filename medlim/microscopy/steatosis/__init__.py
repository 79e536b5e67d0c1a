"""Liver steatosis droplets in H&E bright-field images (thesis §3.2).

One module per stage: :mod:`.weak` (weak labels — the clumped-nuclei method
adapted to bright field — and the automatic screening rule), :mod:`.network`
(the Mask R-CNN builder, network only), :mod:`.train` (training on weak
labels), :mod:`.recipe` (``medlim train steatosis``: phantoms → weights in the
registry), :mod:`.inference` (tiled detection with tile-border droplets
merged), :mod:`.droplets` (per-droplet features, cutoffs relative to the mean,
grade bands), :mod:`.analysis` (one image end to end, as page and CLI use it),
:mod:`.evaluation` (thesis Table 3.2 protocol on held-out phantoms) and
:mod:`.export` (per-droplet CSV, QuPath GeoJSON). Nothing here imports Streamlit.
"""

from __future__ import annotations

__all__: list[str] = []
