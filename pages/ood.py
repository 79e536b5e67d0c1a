"""Out-of-distribution page: score images with TEND, CVAD or the AE baseline (thesis §4.1–4.2).

Pick a detector of the shipped or your registry (it opens on the task's
default), score uploaded images (or a zip), generated radiograph phantoms, or a
folder on the server (a job that survives a closed tab; issue 15);
adjust the threshold (default: the calibrated one); see the 2D distance plot
(thesis Fig. 4.3, in colour-blind-safe colours), the ROC when labels are known,
and galleries of true/false positives/negatives with d, p, s and t (thesis
Fig. 4.4). The numbers come from :mod:`medlim.curation.ood.service`, the same
functions ``medlim ood score`` prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from medlim.ui.errors import show_medlim_errors
from medlim.ui.shell import ensure_app_shell

GALLERY_PER_GROUP = 8
TASK = "ood-detection"
JOB_KEY = "ood_job"


def _pick_detector():  # -> tuple[PickedModel, Detector] | None
    from medlim.curation.ood.scoring import ARCHITECTURE_OF
    from medlim.ui.loaders import model_picker
    from medlim.ui.ood import detector_cached

    with show_medlim_errors(subject="weights registry") as outcome:
        picked = model_picker(TASK, key="ood_detector", label="Detector",
                              keep=lambda entry: entry.architecture in ARCHITECTURE_OF.values(),
                              help="Detectors of the shipped registry and yours; opens on the task's default.")
    if outcome.failed:
        return None
    if picked is None:
        st.info("No OOD detector is registered. Train one with `medlim train tend --id-class hand` "
                "or `medlim train cvad --id-class hand`.")
        return None
    entry = picked.entry
    stored = entry.params.get("acquisition") or {}
    fused_t = f" · with acquisition statistics t = {stored['threshold']:.4g}" if "threshold" in stored else ""
    st.caption(f"{entry.description} · ID class {', '.join(entry.params.get('id_classes', ())) or 'not recorded'} · "
               f"input {entry.input_contract.size} · calibrated t = {entry.thresholds['score']:.4g} (detector alone)"
               f"{fused_t}")
    stats = bool(stored) and st.checkbox(
        "Acquisition statistics", value=True, key="ood_stats",
        help="This detector was trained with acquisition statistics (noise, sharpness, grid lines, exposure, tone at "
             "256 px): fuse them with its score, with the fused threshold — a stated deviation that finds another "
             "site's images; off: the detector alone (the thesis, `--stats off`).")
    with show_medlim_errors(subject=entry.label) as outcome:
        detector = detector_cached(entry.name, entry.version, str(picked.directory), entry.sha256, stats)
    return None if outcome.failed else (picked, detector)


def _phantom_report(detector, detector_key: str):  # -> OodReport
    from medlim.ui.ood import phantom_report_cached

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
    st.caption(f"The same images as `medlim ood evaluate --detector {detector.name} --seed {seed} --n {per_class}`"
               + ("" if site == "internal" and variability == trained else " (at this site and variation)") + ".")
    return phantom_report_cached(detector, detector_key, seed, per_class, site, variability)


def _upload_report(detector, detector_key: str):  # -> OodReport | None
    from medlim.ui.ood import upload_report_cached

    uploaded = st.file_uploader("Images or a .zip", accept_multiple_files=True, key="ood_upload")
    files = tuple((f.name, f.getvalue()) for f in (uploaded or []))
    label_folders = st.checkbox(
        "Labels from folder names", key="ood_labels",
        help="An image is ID when one of its folders in the zip names the detector's class — case, separators, "
             "a modality prefix such as MURA's XR_ and words such as 'images' do not matter (XR_HUMERUS, "
             "Humerus_images and humerus all name 'humerus'); every other image is OOD. "
             "Same as `medlim ood score --labels-from-folders`.")
    if not files:
        return None
    with show_medlim_errors(subject="upload") as outcome:
        report = upload_report_cached(detector, detector_key, files, label_folders)
    if outcome.failed:
        return None
    for failure in report.failures:
        st.error(f"**{failure['file']}:** {failure['message']}", icon=":material/error:")
    return report


def _folder_job(picked) -> None:  # noqa: ANN001 - the picked registry model
    """Score a folder on the server as an ``ood.score`` job (issue 15); the finished job's rows and summary."""
    from medlim.core.paths import allowed_roots_text, confine_to_data_roots
    from medlim.ui.jobs import follow_job, page_job, submit_page_job

    job = None
    with show_medlim_errors(subject="scoring job"):
        job = page_job(JOB_KEY, "ood.score")
    if job is not None:
        follow_job(job, key=JOB_KEY, render_done=_folder_done)
    typed = st.text_input("Folder on the server", key="ood_folder",
                          help=f"A folder inside the data folders this app may read: {allowed_roots_text()}. "
                               "A large folder is scored by a job in the app's worker: it goes on when you close "
                               "the tab.")
    label_folders = st.checkbox("Labels from folder names", key="ood_folder_labels",
                                help="As `medlim ood score --labels-from-folders`: an image is ID when one of its "
                                     "folders names the detector's class.")
    if not st.button("Score the folder", key="ood_folder_score", type="primary", disabled=not typed.strip()):
        return
    folder = None
    with show_medlim_errors(subject="Folder on the server"):
        folder = confine_to_data_roots(typed, what="folder")
    if folder is None:
        return
    argv = ["ood", "score", str(folder), "--detector", picked.label, "--jsonl",
            *([] if st.session_state.get("ood_stats", True) else ["--stats", "off"]),
            *(["--labels-from-folders"] if label_folders else ["--summary"])]  # the summary the metrics read
    if submit_page_job("ood.score", argv, state_key=JOB_KEY) is not None:
        st.rerun()


def _folder_done(job) -> None:  # noqa: ANN001 - a finished Job
    from medlim.curation.ood.plots import roc_figure
    from medlim.ui.jobs import result_output
    from medlim.ui.ood import METRIC_HELP

    output = [value for value in result_output(job) if isinstance(value, dict)]
    summary = next((value["summary"] for value in output if isinstance(value.get("summary"), dict)), {})
    rows = pd.DataFrame([value for value in output if "file" in value])
    auroc = summary.get("auroc")
    texts = {"Images": str(summary.get("images", len(rows))), "Predicted OOD": str(summary.get("predicted_ood", "—")),
             "AUROC": "—" if auroc is None else f"{auroc:.3f}"}
    for column, (label, value) in zip(st.columns(3), texts.items()):
        column.metric(label, value, help=METRIC_HELP[label])
    for note in summary.get("notes", []):
        st.warning(note, icon=":material/warning:")
    st.dataframe(rows, hide_index=True, key="ood_job_table")
    if auroc is not None and {"label", "score"} <= set(rows.columns):
        scored = rows.dropna(subset=["score"])
        st.plotly_chart(roc_figure((scored["label"] == "OOD").to_numpy(), scored["score"].to_numpy(dtype=float),
                                   threshold=float(summary.get("threshold", 0.0))), key="ood_job_roc")


def _threshold(report, detector):  # -> OodReport
    low, high = float(report.scores.score.min()), float(report.scores.score.max())
    span = max(high - low, abs(detector.threshold) * 0.1, 1e-6)
    threshold = st.slider("Threshold t (OOD when s ≥ t)", min_value=min(low, detector.threshold) - 0.1 * span,
                          max_value=max(high, detector.threshold) + 0.1 * span, value=float(detector.threshold),
                          format="%.4f", key="ood_threshold",
                          help="Starts at the G-mean threshold calibrated on internal validation data at training time.")
    return report.with_threshold(threshold)


def _summary(report) -> None:
    from medlim.ui.ood import METRIC_HELP

    texts = report.summary_texts()
    columns = st.columns(3)
    for column, (label, value) in zip(columns, texts.items()):
        column.metric(label, value, help=METRIC_HELP[label])
    for note in report.notes:
        st.warning(note, icon=":material/warning:")
    table = pd.DataFrame(report.rows())
    if any(report.warnings):
        table["warnings"] = ["; ".join(w) for w in report.warnings]
    st.dataframe(table, hide_index=True, key="ood_table")


def _plots(report, detector) -> None:
    from medlim.curation.ood.plots import distance_figure, roc_figure

    truth = report.labels.is_ood if report.labels is not None else None
    if detector.kind == "tend":
        st.subheader("Distance to the centre O (thesis Fig. 4.3)")
        st.caption("Blue circles: ID; orange diamonds: OOD; dashed circle: the margin R.")
        st.plotly_chart(distance_figure(report.scores.parts["d"], margin=float(detector.margin),
                                        predicted_ood=report.flagged, is_ood=truth, names=list(report.files), seed=0),
                        key="ood_distance")
    else:
        st.caption("The 2D distance plot needs TEND's distance d; this detector has none.")
    if report.labels is None or not report.labels.usable:
        st.caption("Give labelled images (ID and OOD) for the ROC curve and the TP/FP/TN/FN galleries.")
        return
    st.subheader("ROC")
    st.plotly_chart(roc_figure(truth, report.scores.score, threshold=report.threshold), key="ood_roc")
    _galleries(report)


def _galleries(report) -> None:
    from medlim.curation.ood.plots import outcome_groups
    from medlim.ui.ood import gallery_caption

    st.subheader("Galleries")
    rows = report.rows()
    for group, index in outcome_groups(report.labels.is_ood, report.flagged).items():
        st.markdown(f"**{group}** ({len(index)})")
        if len(index) == 0 or report.inputs is None:
            continue
        shown = index[:GALLERY_PER_GROUP]
        st.image([np.clip(report.inputs[i], 0.0, 1.0) for i in shown], width=110,
                 caption=[gallery_caption(rows[i], report.kind, report.threshold) for i in shown])


def _shift_types(detector, picked, seed: int, per_class: int, variability: float) -> None:
    """Per shift type, TEND, CVAD and the AE baseline side by side (the same as `medlim ood evaluate`)."""
    from medlim.curation.ood.plots import shift_type_figure
    from medlim.ui.ood import companion_detectors, shift_comparison_cached

    st.subheader("Shift types: detectors side by side")
    if not st.checkbox("Score held-out ID phantoms under each shift (blur, low resolution, cast, noise, grid lines, "
                       "exposure, intensity tint; severities 0.05–1)", key="ood_shift_types"):
        return
    per_type = int(st.number_input("Images per shift type", min_value=1, max_value=60, value=6, key="ood_n_shift"))
    with show_medlim_errors(subject="shift types") as outcome:
        detectors = tuple(companion_detectors(detector, picked.entry.name, detector.fused or not detector.has_statistics))
        key = "|".join(f"{d.name}:{d.fused}" for d in detectors)
        table = shift_comparison_cached(detectors, key, seed, per_class, per_type, variability)
    if outcome.failed:
        return
    st.caption(f"{table.source}. The same numbers as `medlim ood evaluate --detector {detector.name} --seed {seed} "
               f"--n {per_class} --n-shift {per_type} --variability {variability:g} --json` (key `shift_types`).")
    st.dataframe(pd.DataFrame(table.wide_rows()), hide_index=True, key="ood_shift_table")
    columns = st.columns(2)
    columns[0].plotly_chart(shift_type_figure(table, metric="detected"), key="ood_shift_detected")
    columns[1].plotly_chart(shift_type_figure(table, metric="auroc"), key="ood_shift_auroc")


def main() -> None:
    ensure_app_shell()
    st.title("Out-of-distribution detection")
    st.caption("TEND (thesis §4.1), CVAD (§4.2) and an autoencoder baseline. Research use only, not for diagnosis.")
    chosen = _pick_detector()
    if chosen is None:
        return
    picked, detector = chosen
    detector_key = f"{picked.label}:{picked.entry.sha256}:{'fused' if detector.fused else 'alone'}"
    source = st.radio("Images", ("Generated phantoms", "Upload", "Folder on the server"), horizontal=True,
                      key="ood_source")
    if source == "Folder on the server":
        _folder_job(picked)
        return
    with show_medlim_errors(subject="scoring") as outcome:
        if source == "Generated phantoms":
            report = _phantom_report(detector, detector_key)
        else:
            report = _upload_report(detector, detector_key)
    if outcome.failed:
        return
    if report is None or len(report) == 0:
        st.info("Upload images (PNG, JPEG, TIFF, DICOM or a zip of them) to score them.")
        return
    report = _threshold(report, detector)
    _summary(report)
    _plots(report, detector)
    if source == "Generated phantoms":
        _shift_types(detector, picked, int(st.session_state["ood_seed"]), int(st.session_state["ood_n"]),
                     float(st.session_state[f"ood_variability_{detector.name}"]))


main()
