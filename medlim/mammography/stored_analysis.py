"""A finished BAC analysis kept on disk by content hash, weights and stated spacing (issue 15).

"A finished analysis is a stored result": the probability map and cut-off
table behind the page's live sliders are kept in the disk cache
(:func:`medlim.core.disk_cache.default_cache`, namespace ``bac_analyses``,
``MEDLIM_CACHE_MB``, least recently used evicted) under a key made of what
determines them — the file's sha256, the weights (label, file sha256 and
training-data check digest) and the pixel spacing a person stated. Whoever
analyses a view writes it here (the page; a ``bac.quantify`` job started from a
page), and whoever opens the same view again (another tab, a view opened from a
finished batch) reads it back without running the model. The cut-off and X are
not part of the key: the page requantifies the map for its sliders.

No streamlit here: the page (:func:`medlim.ui.mammography.analyse_cached`) and
the job runner (:mod:`medlim.cli.job_kinds`) both call these functions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from medlim.mammography.analysis import BacAnalysis, BacModel
    from medlim.mammography.cutoffs import CutoffTable

__all__ = ["ANALYSIS_CACHE_VERSION", "NAMESPACE", "analysis_key", "load_analysis", "store_analysis"]

#: Bumped when what an analysis holds changes, so older entries are not read back.
ANALYSIS_CACHE_VERSION = 1
#: The disk cache's folder under ``MEDLIM_HOME/cache``.
NAMESPACE = "bac_analyses"


def analysis_key(content_sha256: str, bac_model: BacModel,
                 pixel_spacing_mm: float | tuple[float, float] | None = None) -> str:
    """The disk-cache key of one file's analysis (hex).

    Args:
        content_sha256: sha256 of the file's bytes (64 hex characters).
        bac_model: the weights (their label, file digest and training-data check digest count).
        pixel_spacing_mm: the spacing a person stated (mm), or ``None`` for the file's own.
    """
    from medlim.core.disk_cache import cache_key
    from medlim.errors import ParameterError

    if len(content_sha256) != 64 or any(c not in "0123456789abcdef" for c in content_sha256):
        raise ParameterError(f"`content_sha256` must be 64 lower-case hex characters, {content_sha256!r} is given.")
    entry = bac_model.entry
    return cache_key(content_sha256, bac_model.label, entry.sha256, str(entry.familiarity.get("sha256", "")),
                     repr(pixel_spacing_mm), ANALYSIS_CACHE_VERSION)


def load_analysis(content_sha256: str, bac_model: BacModel,
                  pixel_spacing_mm: float | tuple[float, float] | None = None, *,
                  name: str | None = None) -> tuple[BacAnalysis, CutoffTable] | None:
    """The stored ``(analysis, cut-off table)`` of a file, or ``None`` (never stored, evicted or unreadable).

    Args:
        content_sha256, bac_model, pixel_spacing_mm: as :func:`analysis_key`.
        name: the name the analysis should carry (the file as it is opened now).
    """
    from medlim.core.disk_cache import default_cache

    stored = default_cache(NAMESPACE).get_record(analysis_key(content_sha256, bac_model, pixel_spacing_mm))
    if not (isinstance(stored, tuple) and len(stored) == 2):
        return None
    analysis, table = stored
    return (dataclasses.replace(analysis, name=name) if name is not None else analysis), table


def store_analysis(content_sha256: str, bac_model: BacModel, analysis: BacAnalysis,
                   pixel_spacing_mm: float | tuple[float, float] | None = None, *,
                   table: CutoffTable | None = None) -> bool:
    """Keep a file's analysis and its cut-off table (computed here when not given); whether it was kept.

    Args:
        content_sha256, bac_model, pixel_spacing_mm: as :func:`analysis_key`.
        analysis: the finished analysis (its probability map and preprocessed image).
        table: its :func:`~medlim.mammography.cutoffs.cutoff_table`, when already built.
    """
    from medlim.core.disk_cache import default_cache
    from medlim.mammography.cutoffs import cutoff_table

    key = analysis_key(content_sha256, bac_model, pixel_spacing_mm)
    return default_cache(NAMESPACE).put_record(key, (analysis, cutoff_table(analysis) if table is None else table))
