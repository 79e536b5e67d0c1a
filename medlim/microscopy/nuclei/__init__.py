"""Clumped-nuclei segmentation in fluorescence images (thesis §3.1).

One module per step of the method: :mod:`.foreground` (DAPI threshold, mean
nucleus area, clump candidates), :mod:`.curvature` (curvature voting, eq. 3.1),
:mod:`.pairs` (close pair screening, Walking Energy, eq. 3.2), :mod:`.ellipse`
(ellipse-fit quality, eq. 3.3), :mod:`.dividing` (valley-following dividing
curves, eq. 3.4), :mod:`.pipeline` (the whole method), :mod:`.watershed` (the
marker-controlled watershed baseline) and :mod:`.evaluation` (thesis Table 3.1
protocol on phantoms). Nothing here imports Streamlit.
"""

from __future__ import annotations

__all__: list[str] = []
