"""Out-of-distribution page: score images with TEND, CVAD or the AE baseline (thesis §4.1–4.2).

Pick a registered detector, score uploaded images (or a zip), or generated
radiograph phantoms; adjust the threshold (default: the calibrated one); see
the 2D distance plot (thesis Fig. 4.3), the ROC when labels are known, and
galleries of true/false positives/negatives with d, p, s and t (thesis Fig. 4.4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from medlim.settings import get_settings
from medlim.ui.caching import bounded_cache_data, bounded_cache_resource
from medlim.ui.errors import show_medlim_errors
from medlim.ui.shell import ensure_app_shell

GALLERY_PER_GROUP = 8


@bounded_cache_resource(max_entries=4, show_spinner="Loading detector…")
def _detector(name: str, version: str, weights_dir: str):  # -> Detector
    from medlim.core.weights import Registry
    from medlim.curation.ood.scoring import load_detector

    return load_detector(name, version=version, registry=Registry.load(weights_dir))


@bounded_cache_data(max_entries=8, show_spinner="Generating phantoms…")
def _phantoms(seed: int, per_class: int, site: str, size: int,
              variability: float = 0.0) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    from medlim.curation.ood.data import phantom_set
    from medlim.phantoms.radiograph import BODY_PARTS

    data = phantom_set(seed=seed, per_class=per_class, body_parts=BODY_PARTS, size=size, site=site,
                       variability=variability)
    return data.images, data.classes, data.files


def _uploads(files: list[tuple[str, bytes]], size: int) -> tuple[list[np.ndarray], list[str]]:
    from medlim.core.io import read_image
    from medlim.curation.ood.data import to_model_input
    from medlim.ui.mammography import expand_uploads

    images, names = [], []
    with show_medlim_errors(subject="upload") as outcome:
        expanded = expand_uploads(files)
    if outcome.failed:
        return images, names
    for name, data in expanded:
        with show_medlim_errors(subject=name) as outcome:
            record = read_image(data, name=Path(name).name)
        if not outcome.failed:
            images.append(to_model_input(record.pixels, size))
            names.append(name)
    return images, names


def _caption(row: pd.Series, kind: str, threshold: float) -> str:
    parts = []
    if kind == "tend":
        parts = [f"d {row['d']:.1f}", f"p {row['p']:.2f}"]
    elif kind == "cvad":
        parts = [f"rec {row['rec']:.4f}", f"dis {row['dis']:.2f}"]
    else:
        parts = [f"rec {row['rec']:.4f}"]
    return " · ".join([*parts, f"s {row['score']:.3f}", f"t {threshold:.3f}"])


def main() -> None:
    ensure_app_shell()
    st.title("Out-of-distribution detection")
    st.caption("TEND (thesis §4.1), CVAD (§4.2) and an autoencoder baseline. Research use only, not for diagnosis.")
    from medlim.core.weights import Registry
    from medlim.curation.ood.scoring import list_detectors

    weights_dir = str(get_settings().weights_dir)
    with show_medlim_errors(subject="weights registry") as outcome:
        entries = list_detectors(Registry.load(weights_dir))
    if outcome.failed:
        return
    if not entries:
        st.info("No OOD detector is registered. Train one with `medlim train tend --id-class hand` "
                "or `medlim train cvad --id-class hand`.")
        return
    labels = {e.label: e for e in entries}
    default = next((i for i, e in enumerate(entries) if e.architecture == "tend"), 0)
    chosen = st.selectbox("Detector", list(labels), index=default, key="ood_detector")
    entry = labels[chosen]
    st.caption(f"{entry.description} · input {entry.input_contract.size} · "
               f"calibrated t = {entry.thresholds['score']:.4g}")
    with show_medlim_errors(subject=entry.label) as outcome:
        detector = _detector(entry.name, entry.version, weights_dir)
    if outcome.failed:
        return

    source = st.radio("Images", ("Generated phantoms", "Upload"), horizontal=True, key="ood_source")
    images: list[np.ndarray] | np.ndarray
    truth: np.ndarray | None = None
    if source == "Generated phantoms":
        columns = st.columns(4)
        seed = int(columns[0].number_input("Seed", min_value=0, value=9000, step=1, key="ood_seed"))
        per_class = int(columns[1].number_input("Per class", min_value=1, max_value=50, value=6, key="ood_n"))
        site = columns[2].selectbox("Site", ("internal", "external", "mixed"), key="ood_site")
        trained = float(detector.params.get("data", {}).get("variability", 0.0))
        variability = float(columns[3].number_input(
            "Within-site variation", min_value=0.0, max_value=1.0, value=trained, step=0.1,
            key=f"ood_variability_{detector.name}",
            help="How much the generated images vary inside one hospital: 0 = one fixed acquisition, 1 = the "
                 "spread of a real archive (patient size, casts, metal hardware, positioning, image processing). "
                 f"Default: what this detector was trained on ({trained:g})."))
        images, classes, names = _phantoms(seed, per_class, site, detector.input_size, variability)
        names = list(names)
        truth = ~np.isin(np.asarray(classes), detector.id_classes)
    else:
        uploaded = st.file_uploader("Images or a .zip", accept_multiple_files=True, key="ood_upload")
        files = [(f.name, f.getvalue()) for f in (uploaded or [])]
        images, names = _uploads(files, detector.input_size)
        if names and st.checkbox("Labels from folder names (a folder named like an ID class = ID)", key="ood_labels"):
            truth = np.array([Path(n).parent.name not in detector.id_classes for n in names])
    if len(images) == 0:
        st.info("Upload images (PNG, JPEG, TIFF, DICOM or a zip of them) to score them.")
        return

    with show_medlim_errors(subject="scoring") as outcome:
        scores = detector.score(images, files=names)
    if outcome.failed:
        return
    low, high = float(scores.score.min()), float(scores.score.max())
    span = max(high - low, abs(detector.threshold) * 0.1, 1e-6)
    threshold = st.slider("Threshold t (OOD when s ≥ t)", min_value=min(low, detector.threshold) - 0.1 * span,
                          max_value=max(high, detector.threshold) + 0.1 * span, value=float(detector.threshold),
                          format="%.4f", key="ood_threshold",
                          help="Starts at the G-mean threshold calibrated on internal validation data at training time.")
    predicted = scores.score >= threshold
    table = pd.DataFrame(scores.rows()).assign(threshold=threshold, is_ood=predicted)
    if truth is not None:
        table["label"] = np.where(truth, "OOD", "ID")
    metrics = st.columns(3)
    metrics[0].metric("Images", len(table))
    metrics[1].metric("Predicted OOD", int(predicted.sum()))
    if truth is not None and truth.any() and not truth.all():
        from medlim.curation.ood.calibration import auroc

        metrics[2].metric("AUROC", f"{auroc(truth.astype(int), scores.score):.3f}")
    st.dataframe(table, hide_index=True, key="ood_table")

    from medlim.curation.ood.plots import distance_figure, outcome_groups, roc_figure

    if detector.kind == "tend":
        st.subheader("Distance to the centre O (thesis Fig. 4.3)")
        st.plotly_chart(distance_figure(scores.parts["d"], margin=float(detector.margin), predicted_ood=predicted,
                                        is_ood=truth, names=names, seed=0), key="ood_distance")
    else:
        st.caption("The 2D distance plot needs TEND's distance d; this detector has none.")
    if truth is None or truth.all() or not truth.any():
        st.caption("Give labelled images (ID and OOD) for the ROC curve and the TP/FP/TN/FN galleries.")
        return
    st.subheader("ROC")
    st.plotly_chart(roc_figure(truth, scores.score, threshold=threshold), key="ood_roc")
    st.subheader("Galleries")
    stack = np.asarray(images)
    for group, index in outcome_groups(truth, predicted).items():
        st.markdown(f"**{group}** ({len(index)})")
        if len(index) == 0:
            continue
        shown = index[:GALLERY_PER_GROUP]
        st.image([np.clip(stack[i], 0.0, 1.0) for i in shown], width=110,
                 caption=[_caption(table.iloc[i], detector.kind, threshold) for i in shown])


main()
