"""The pathologist's rooms: microscopy image analysis (thesis §3.1–3.2).

* :mod:`medlim.microscopy.nuclei` — clumped-nuclei segmentation in DAPI
  fluorescence images (thesis §3.1): the curvature-voting / ellipse-fit /
  dividing-curve method step by step, the marker-controlled watershed
  baseline, and the Table 3.1 evaluation protocol.
* liver steatosis droplets in H&E bright field (thesis §3.2) live beside it.

Shared by both rooms (issue 16): :mod:`.objects` (per-object measurements in
px and µm, the pixel size and where it came from), :mod:`.qupath` (the one
builder of the per-object CSV and the QuPath GeoJSON) and :mod:`.slides`
(whole slides in overlapping tiles, objects on seams kept once).

Shared metrics live in :mod:`medlim.core.metrics`, phantoms in
:mod:`medlim.phantoms`; nothing here imports Streamlit.
"""
