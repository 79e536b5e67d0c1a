"""Caches and small display helpers of the OOD page (``pages/ood.py``).

The page calls the OOD room's service (:mod:`medlim.curation.ood.service`), the
same functions ``medlim ood score`` calls; this module only keeps the loaded
detector (``st.cache_resource``) and the scored reports (``st.cache_data``), so a
threshold or gallery change reruns no model, and words the page shows beside
the numbers. Nothing here computes a number the command line does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.ui.caching import bounded_cache_data, bounded_cache_resource

if TYPE_CHECKING:  # pragma: no cover
    from medlim.curation.ood.scoring import Detector
    from medlim.curation.ood.service import OodReport
    from medlim.curation.ood.shift_types import ShiftTypeTable

__all__ = ["detector_cached", "phantom_report_cached", "upload_report_cached", "gallery_caption", "METRIC_HELP",
           "companion_detectors", "shift_comparison_cached"]

#: Tooltips of the page's metrics: how each number is computed.
METRIC_HELP: dict[str, str] = {
    "Images": "Images scored (files that could not be read are listed above and not counted).",
    "Predicted OOD": "Images whose score s is at least the threshold t.",
    "AUROC": "Area under the ROC of the scores against the labels (OOD = positive): the chance that an OOD image "
             "scores higher than an ID one. Needs both ID and OOD images; 0.5 is chance.",
}


@bounded_cache_resource(max_entries=4, show_spinner="Loading detector…")
def detector_cached(name: str, version: str, directory: str, sha256: str = "", stats: bool = True) -> Detector:
    """:func:`medlim.curation.ood.scoring.load_detector` from the registry folder holding it, once per process.

    Args:
        name, version: the registry entry.
        directory: the folder of the (shipped or user) registry that holds it.
        sha256: the weights' checksum, so weights replaced under the same name load afresh.
        stats: fuse with the detector's acquisition statistics when it has them.
    """
    from medlim.core.weights import Registry
    from medlim.curation.ood.scoring import load_detector

    return load_detector(name, version=version, registry=Registry.load(Path(directory)), stats=stats)


def companion_detectors(detector: Detector, name: str, stats: bool = True) -> list[Detector]:
    """The detector followed by the registered TEND, CVAD and AE detectors of its ID classes (as
    ``medlim ood evaluate --compare auto`` picks them), each loaded once per process."""
    from medlim.core.weights import USER, Registries
    from medlim.curation.ood.shift_types import companion_entries

    registries = Registries.load()
    found = [detector]
    for entry in companion_entries(registries.list("ood-detection"), id_classes=detector.id_classes, exclude=name):
        folder = registries.user.directory if registries.source_of(entry) == USER else registries.shipped.directory
        found.append(detector_cached(entry.name, entry.version, str(folder), entry.sha256, stats))
    return found


@bounded_cache_data(max_entries=4, show_spinner="Scoring shifted phantoms with each detector…")
def shift_comparison_cached(_detectors: tuple[Detector, ...], detectors_key: str, seed: int, per_class: int,
                            per_type: int, variability: float) -> ShiftTypeTable:
    """:func:`medlim.curation.ood.shift_types.phantom_shift_comparison`, cached on the detectors' keys and settings."""
    from medlim.curation.ood.shift_types import phantom_shift_comparison

    return phantom_shift_comparison(list(_detectors), seed=seed, per_class=per_class, per_type=per_type,
                                    variability=variability)


@bounded_cache_data(max_entries=8, show_spinner="Scoring generated phantoms…")
def phantom_report_cached(_detector: Detector, detector_key: str, seed: int, per_class: int, site: str,
                          variability: float) -> OodReport:
    """:func:`medlim.curation.ood.service.phantom_report`, cached on the detector's key and the settings."""
    from medlim.curation.ood.service import phantom_report

    return phantom_report(_detector, seed=seed, per_class=per_class, site=site, variability=variability)


@bounded_cache_data(max_entries=4, scope="session", show_spinner="Scoring images…")
def upload_report_cached(_detector: Detector, detector_key: str, files: tuple[tuple[str, bytes], ...],
                         label_folders: bool) -> OodReport:
    """Uploads (zips expanded) scored by :func:`medlim.curation.ood.service.score_inputs`, cached per session.

    Raises:
        ArchiveError: a zip that cannot be read or is refused (not cached).
    """
    from medlim.curation.ood.service import expand_uploads, score_inputs

    return score_inputs(_detector, expand_uploads(files), label_folders=label_folders, keep_inputs=True)


def gallery_caption(row: dict[str, Any], kind: str, threshold: float) -> str:
    """A gallery image's caption: its parts (TEND d, p; CVAD rec, dis; AE rec), score s and threshold t."""
    if kind == "tend":
        parts = [f"d {row['d']:.1f}", f"p {row['p']:.2f}"]
    elif kind == "cvad":
        parts = [f"rec {row['rec']:.4f}", f"dis {row['dis']:.2f}"]
    else:
        parts = [f"rec {row['rec']:.4f}"]
    return " · ".join([*parts, f"s {row['score']:.3f}", f"t {threshold:.3f}"])
