"""Mammogram phantoms, family B: another anatomy model and acquisition chain (issues 12 and 13).

Written from a description, not from :mod:`medlim.phantoms.mammogram` (family
A), so that a model trained on one family can be tested on the other and the
generalisation gap measured ("train on one, test on the other"). It returns the
same record (:class:`~medlim.phantoms.mammogram_records.MammogramPhantom`), so
the BAC training and evaluation code consume it unchanged.

* **Exams**: image ``index`` is patient ``index // 4``, view
  ``VIEWS[index % 4]`` (LCC, RCC, LMLO, RMLO); a patient has one BAC grade,
  density class, vendor and study date for all four views, and each breast one
  anatomy seen in both of its views.
* **Anatomy** (:mod:`medlim.phantoms.family_b.breast`): compressed superellipse
  outline, nipple, skin shell, power-law parenchyma thresholded by density
  class (fatty / scattered / heterogeneous / dense), Cooper's ligaments, a
  curved pectoral wedge in MLO views.
* **BAC** (:mod:`medlim.phantoms.family_b.arteries`): random-walk arteries
  from the chest wall to the nipple, calcified as rims, tram tracks and beads;
  ``bac="mix"`` draws the grade per patient as a screening population does
  (:data:`MIX_PROPORTIONS`: none 55 %, mild 25 %, moderate 12 %, heavy 8 %).
* **Look-alikes** (:mod:`medlim.phantoms.family_b.lookalikes`): benign round
  and popcorn calcifications, microcalcification clusters, ligaments and their
  crossings, metal clips — never in the BAC mask.
* **Acquisition** (:mod:`medlim.phantoms.family_b.detector`): four vendors
  (pixel spacing 0.05–0.1 mm at full size, 12/14 bits, MONOCHROME1 or 2,
  logarithmic / sigmoid / power / linear tone curves, unsharp masking,
  peripheral equalisation, four noise textures), beam hardening, scatter,
  quantum + electronic noise mixed by a per-image exposure.

Grey levels: brighter = denser, background 0, the burned-in view label 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from medlim.errors import ParameterError
from medlim.phantoms.base import PhantomKind, check_seed, rng_for, save_png, write_manifest
from medlim.phantoms.family_b.arteries import GRADES, CalcifiedDash, Vessel, calcify, grow_vessels, render_vessels
from medlim.phantoms.family_b.breast import (
    DENSITY_CLASSES,
    BreastAnatomy,
    ViewGeometry,
    breast_and_pectoral_masks,
    draw_breast_anatomy,
    tissue_attenuation,
    view_geometry,
)
from medlim.phantoms.family_b.detector import VENDORS, acquire, frame_for
from medlim.phantoms.family_b.lookalikes import LOOKALIKE_CODES, LookalikeSpec, place_lookalikes, render_lookalikes
from medlim.phantoms.mammogram_records import Lookalike, MammogramMetadata, MammogramPhantom

__all__ = [
    "VIEWS",
    "SIZES",
    "BAC_CHOICES",
    "MIX_PROPORTIONS",
    "DENSITY_PROPORTIONS",
    "VENDORS",
    "LOOKALIKE_CODES",
    "MammogramMetadataB",
    "draw_bac_grade",
    "image_position",
    "generate_mammogram_b",
    "write_mammogram_b",
    "write_exams_b",
    "KIND",
]

#: The four screening views, in the order they are generated within an exam.
VIEWS: tuple[str, ...] = ("LCC", "RCC", "LMLO", "RMLO")
#: Size names: ``"small"`` (512×416, for tests) and ``"full"`` (the vendor's detector).
SIZES: tuple[str, ...] = ("small", "full")
#: ``bac`` choices: one grade for every patient, or ``"mix"`` (a screening population).
BAC_CHOICES: tuple[str, ...] = (*GRADES, "mix")
#: Grade shares of ``bac="mix"``: most screened women have none or mild BAC.
MIX_PROPORTIONS: dict[str, float] = {"none": 0.55, "mild": 0.25, "moderate": 0.12, "heavy": 0.08}
#: Density-class shares (BI-RADS a–d in a screening population, about 10/40/40/10 %).
DENSITY_PROPORTIONS: dict[str, float] = {"fatty": 0.1, "scattered": 0.4, "heterogeneous": 0.4, "dense": 0.1}

_STREAM = "mammogram-b"


@dataclass(frozen=True)
class MammogramMetadataB(MammogramMetadata):
    """Family A's metadata plus what family B adds.

    Attributes:
        bac_grade: ``"none"``, ``"mild"``, ``"moderate"`` or ``"heavy"`` (per patient).
        density_class: a key of :data:`DENSITY_PROPORTIONS`.
        bits_stored: 12 or 14; photometric: the vendor's DICOM photometric interpretation.
        exposure: relative dose of this image (noise grows as it falls).
    """

    bac_grade: str
    density_class: str
    bits_stored: int
    photometric: str
    exposure: float


@dataclass(frozen=True)
class _Patient:
    grade: str
    density_class: str
    vendor: str
    study_date: str


@dataclass(frozen=True)
class _Breast:
    anatomy: BreastAnatomy
    vessels: tuple[Vessel, ...]
    dashes: tuple[CalcifiedDash, ...]
    lookalikes: tuple[LookalikeSpec, ...]


def draw_bac_grade(seed: int, patient_index: int, bac: str = "mix") -> str:
    """A patient's BAC grade, without drawing any image (cheap).

    Args:
        seed: series seed; patient_index: 0-based patient number.
        bac: a grade of :data:`BAC_CHOICES`; ``"mix"`` draws from :data:`MIX_PROPORTIONS`.
    """
    if bac not in BAC_CHOICES:
        raise ParameterError(f"`bac` must be one of {', '.join(BAC_CHOICES)}; {bac!r} is given.")
    if bac != "mix":
        return bac
    draw = rng_for(check_seed(seed), _STREAM, "grade", int(patient_index)).random()
    edges = np.cumsum(list(MIX_PROPORTIONS.values()))
    return list(MIX_PROPORTIONS)[int(np.searchsorted(edges, draw, side="right").clip(0, len(edges) - 1))]


def image_position(index: int, view: str | None = None) -> tuple[int, str]:
    """``(patient_index, view_label)`` of image ``index``.

    With ``view=None`` images run patient by patient in the order of
    :data:`VIEWS`; with a view given, ``index`` is the patient number.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ParameterError(f"`index` must be a non-negative integer, {index!r} is given.")
    if view is None:
        patient, position = divmod(int(index), len(VIEWS))
        return patient, VIEWS[position]
    if view not in VIEWS:
        raise ParameterError(f"`view` must be one of {', '.join(VIEWS)} or None; {view!r} is given.")
    return int(index), view


def _patient(seed: int, patient: int, bac: str, density: str | None, vendor: str | None = None) -> _Patient:
    rng = rng_for(seed, _STREAM, "patient", patient)
    classes = list(DENSITY_PROPORTIONS)
    drawn_density = classes[int(rng.choice(len(classes), p=list(DENSITY_PROPORTIONS.values())))]
    drawn_vendor = sorted(VENDORS)[int(rng.integers(len(VENDORS)))]
    date = _dt.date(2012, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 10 * 365)))
    return _Patient(draw_bac_grade(seed, patient, bac), density or drawn_density, vendor or drawn_vendor,
                    date.isoformat())


def _breast(seed: int, patient: int, laterality: str, person: _Patient, with_lookalikes: bool) -> _Breast:
    anatomy = draw_breast_anatomy(rng_for(seed, _STREAM, "breast", patient, laterality),
                                  density_class=person.density_class)
    vessels = grow_vessels(rng_for(seed, _STREAM, "vessels", patient, laterality), anatomy)
    dashes = calcify(rng_for(seed, _STREAM, "bac", patient, laterality, person.grade), vessels, person.grade)
    specs = place_lookalikes(rng_for(seed, _STREAM, "lookalikes", patient, laterality), anatomy, vessels) \
        if with_lookalikes else ()
    return _Breast(anatomy, vessels, dashes, specs)


def _label(view_label: str, breast: np.ndarray) -> np.ndarray:
    """The burned-in view label, in the nipple-side top corner (or bottom corner if the breast is there)."""
    rows, cols = breast.shape
    scale = rows / 900.0
    thickness = max(1, int(round(rows / 350)))
    (width, height), _ = cv2.getTextSize(view_label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    margin = max(4, rows // 60)
    for top in (margin, rows - margin - height - thickness):
        label = np.zeros((rows, cols), np.uint8)
        cv2.putText(label, view_label, (cols - margin - width, top + height), cv2.FONT_HERSHEY_SIMPLEX, scale, 1,
                    thickness, cv2.LINE_8)
        grown = cv2.dilate(label, np.ones((3, 3), np.uint8), iterations=2)
        if not (grown.astype(bool) & breast).any():
            return label.astype(bool)
    return np.zeros((rows, cols), bool)


@dataclass(frozen=True)
class _ViewTruth:
    attenuation: np.ndarray  # [H, W] float32, ∫μ dz
    breast: np.ndarray  # [H, W] bool
    pectoral: np.ndarray  # [H, W] bool
    bac: np.ndarray  # [H, W] bool
    codes: np.ndarray  # [H, W] uint8 look-alike codes
    placed: tuple[tuple[str, float, float, float], ...]
    density: float
    bac_length_mm: float


def _attenuation(breast: _Breast, geometry: ViewGeometry, rng: np.random.Generator) -> _ViewTruth:
    """Projected attenuation of the view, its masks, and the look-alikes drawn (chest wall on the left)."""
    rows, cols = geometry.rows, geometry.cols
    scale = min(1.0, geometry.spacing_mm / 0.2)  # anatomy at about 0.2 mm, details at full resolution
    tissue, _, density = tissue_attenuation(breast.anatomy, geometry, scale, rng)
    if tissue.shape != (rows, cols):
        tissue = cv2.resize(tissue, (cols, rows), interpolation=cv2.INTER_LINEAR)
    inside, pectoral = (m.astype(bool) for m in breast_and_pectoral_masks(geometry))
    vessels = render_vessels(geometry, breast.vessels, breast.dashes, rng)
    looks = render_lookalikes(geometry, breast.anatomy, breast.lookalikes)
    bac = (vessels.calcium > 0) & inside & ~pectoral
    tissue = tissue * inside + vessels.lumen * inside + vessels.calcium * bac + looks.attenuation * inside
    codes = np.where(inside & ~bac, looks.codes, 0).astype(np.uint8)
    length = sum(n for n, (x, y) in zip(vessels.dash_lengths_mm, vessels.dash_midpoints)
                 if 0 <= int(y) < rows and 0 <= int(x) < cols and inside[int(y), int(x)] and not pectoral[int(y), int(x)])
    placed = tuple(p for p in looks.placed if 0 <= int(p[2]) < rows and 0 <= int(p[1]) < cols
                   and inside[int(p[2]), int(p[1])])
    return _ViewTruth(tissue.astype(np.float32), inside, pectoral, bac, codes, placed, density, float(length))


def _mirrored(array: np.ndarray, laterality: str) -> np.ndarray:
    """Right breasts have the chest wall on the right: mirror the columns."""
    return np.ascontiguousarray(array[:, ::-1]) if laterality == "R" else array


def _metadata(seed: int, index: int, patient: int, view_label: str, size: str, person: _Patient,
              truth: _ViewTruth, spacing: float, acquisition: Any, exposure: float, bac_area: int) -> MammogramMetadataB:
    vendor = VENDORS[person.vendor]
    return MammogramMetadataB(
        seed=seed, index=int(index), patient_index=patient, patient_id=f"PHANTOMB-{patient + 1:04d}",
        patient_name=f"PhantomB^{patient + 1:04d}", exam_index=0, study_date=person.study_date,
        laterality=view_label[0], view=view_label[1:], view_label=view_label, size=size,
        shape=(int(truth.breast.shape[0]), int(truth.breast.shape[1])), pixel_spacing_mm=float(spacing),
        density=round(truth.density, 4), birads_density=DENSITY_CLASSES[person.density_class][0],
        has_bac=person.grade != "none", progressing=False, bac_length_mm=round(truth.bac_length_mm, 3),
        bac_area_px=bac_area, style=person.vendor, tone_gamma=round(acquisition.gamma, 4),
        noise_sigma=round(acquisition.noise_sigma, 5), blur_sigma_px=round(acquisition.blur_sigma_px, 4),
        chest_wall="left" if view_label[0] == "L" else "right", bac_grade=person.grade,
        density_class=person.density_class, bits_stored=vendor.bits, photometric=vendor.photometric,
        exposure=round(exposure, 4))


def generate_mammogram_b(
    *,
    seed: int,
    index: int = 0,
    size: str = "small",
    bac: str = "mix",
    view: str | None = None,
    density: str | None = None,
    vendor: str | None = None,
    lookalikes: bool = True,
) -> MammogramPhantom:
    """Family-B mammogram ``index`` of the series ``seed``; a pure function of its arguments.

    Args:
        seed: non-negative series seed.
        index: image number; patient ``index // 4`` and view ``VIEWS[index % 4]``,
            or, when ``view`` is given, the patient number itself.
        size: ``"small"`` (512×416 px, 0.34–0.47 mm) or ``"full"`` (the vendor's
            detector: 0.05–0.1 mm, up to 3520×2860 px).
        bac: a grade (``"none"``, ``"mild"``, ``"moderate"``, ``"heavy"``) for every
            patient, or ``"mix"`` (:data:`MIX_PROPORTIONS`, drawn per patient).
        view: ``None`` or one of :data:`VIEWS` (see ``index``).
        density: force a density class (a key of :data:`DENSITY_PROPORTIONS`); ``None`` draws it.
        vendor: force a vendor (a key of :data:`~medlim.phantoms.family_b.detector.VENDORS`:
            ``"atlas"``, ``"borealis"``, ``"cobalt"``, ``"delta"``); ``None`` draws it per patient.
        lookalikes: draw the discrete look-alikes (ligaments are anatomy and always drawn).

    Returns:
        A :class:`~medlim.phantoms.mammogram_records.MammogramPhantom` whose
        ``metadata`` is a :class:`MammogramMetadataB`; ``image`` float32 in [0, 1],
        masks bool, ``lookalike_mask`` uint8 codes of :data:`LOOKALIKE_CODES`.

    Raises:
        ParameterError: an argument out of range.
    """
    seed = check_seed(seed)
    patient, view_label = image_position(index, view)
    if size not in SIZES:
        raise ParameterError(f"`size` must be one of {', '.join(SIZES)}; {size!r} is given.")
    if density is not None and density not in DENSITY_PROPORTIONS:
        raise ParameterError(f"`density` must be one of {', '.join(DENSITY_PROPORTIONS)} or None; {density!r} given.")
    if vendor is not None and vendor not in VENDORS:
        raise ParameterError(f"`vendor` must be one of {', '.join(VENDORS)} or None; {vendor!r} is given.")
    person = _patient(seed, patient, bac, density, vendor)
    breast = _breast(seed, patient, view_label[0], person, bool(lookalikes))
    rows, cols, spacing = frame_for(VENDORS[person.vendor], size)
    geometry = view_geometry(breast.anatomy, view_label[1:], rows, cols, spacing,
                             rng_for(seed, _STREAM, "view", patient, view_label))
    truth = _attenuation(breast, geometry, rng_for(seed, _STREAM, "render", patient, view_label, size))
    acquire_rng = rng_for(seed, _STREAM, "acquire", patient, view_label, size)
    exposure = float(np.exp(acquire_rng.normal(0.0, 0.3)))
    acquisition = acquire(truth.attenuation, truth.breast, VENDORS[person.vendor], spacing, exposure, acquire_rng)
    label = _label(view_label, _mirrored(truth.breast, view_label[0]))
    side = view_label[0]
    image = _mirrored(acquisition.image, side)
    image[label] = 1.0
    bac_mask = _mirrored(truth.bac, side)
    looks = tuple(Lookalike(kind, row=y, col=(cols - 1 - x) if side == "R" else x, size_px=extent)
                  for kind, x, y, extent in truth.placed)
    meta = _metadata(seed, index, patient, view_label, size, person, truth, spacing, acquisition, exposure,
                     int(np.count_nonzero(bac_mask)))
    return MammogramPhantom(image=image, bac_mask=bac_mask, breast_mask=_mirrored(truth.breast, side),
                            pectoral_mask=_mirrored(truth.pectoral, side),
                            lookalike_mask=_mirrored(truth.codes, side), label_mask=label, lookalikes=looks,
                            metadata=meta)


def write_mammogram_b(phantom: MammogramPhantom, out_dir: Path, *, stem: str | None = None,
                      fmt: str = "png") -> list[dict[str, Any]]:
    """Write one family-B mammogram: the image (16-bit PNG or DICOM) and its masks (PNG 0/255).

    Files: ``<stem>.png`` or ``<stem>.dcm``, ``<stem>_bac.png``, ``<stem>_breast.png``,
    ``<stem>_lookalike.png`` (uint8 codes). DICOM goes through
    :func:`medlim.phantoms.dicom.write_mammogram_dicom` with the vendor's bits,
    photometric interpretation and window.

    Args:
        phantom: from :func:`generate_mammogram_b`.
        out_dir: target folder (created).
        stem: file stem; default ``PHANTOMB-0001_LCC``.
        fmt: ``"png"`` or ``"dicom"``.

    Returns:
        One manifest row; ``image`` and ``mask`` relative to ``out_dir`` (the
        ``segmentation_mask`` layout of :mod:`medlim.core.datasets`), with
        ``patient``, ``view``, ``laterality`` and ``bac_grade``.
    """
    if fmt not in ("png", "dicom"):
        raise ParameterError(f"`fmt` must be 'png' or 'dicom', {fmt!r} is given.")
    meta = phantom.metadata
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{meta.patient_id}_{meta.view_label}"
    if fmt == "dicom":
        from medlim.phantoms.dicom import DicomStyle, write_mammogram_dicom

        vendor = VENDORS[meta.style]
        style = DicomStyle(name=f"B-{vendor.name}", bits_stored=vendor.bits, photometric=vendor.photometric,
                           window=vendor.window, spacing_tags="pixel")
        image_name = write_mammogram_dicom(phantom, out_dir / f"{stem}.dcm", style=style).name
    else:
        image_name = f"{stem}.png"
        save_png(out_dir / image_name, np.clip(np.rint(phantom.image * 65535.0), 0, 65535).astype(np.uint16))
    row: dict[str, Any] = {"image": image_name, "mask": f"{stem}_bac.png", "patient": meta.patient_id,
                           "view": meta.view, "laterality": meta.laterality,
                           "bac_grade": getattr(meta, "bac_grade", "moderate" if meta.has_bac else "none"),
                           "breast_mask": f"{stem}_breast.png", "lookalike_mask": f"{stem}_lookalike.png"}
    save_png(out_dir / row["mask"], phantom.bac_mask)
    save_png(out_dir / row["breast_mask"], phantom.breast_mask)
    save_png(out_dir / row["lookalike_mask"], phantom.lookalike_mask)
    row["vendor"] = meta.style
    for key in ("view_label", "density_class", "birads_density", "density", "pixel_spacing_mm",
                "bac_area_px", "bac_length_mm", "size", "seed", "index", "bits_stored", "photometric"):
        if hasattr(meta, key):
            row[key] = getattr(meta, key)
    row["n_lookalikes"] = len(phantom.lookalikes)
    return [row]


def write_exams_b(out_dir: Path, *, seed: int, patients: int, size: str = "small", bac: str = "mix",
                  vendor: str | None = None, fmt: str = "png") -> Path:
    """Write ``patients`` four-view exams and ``manifest.csv``/``manifest.json``; returns the CSV's path.

    The folder opens with ``medlim.core.datasets.open_dataset(out_dir, task="bac")``.
    """
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
        raise ParameterError(f"`patients` must be a positive integer, {patients!r} is given.")
    rows: list[dict[str, Any]] = []
    for index in range(len(VIEWS) * patients):
        phantom = generate_mammogram_b(seed=seed, index=index, size=size, bac=bac, vendor=vendor)
        rows.extend(write_mammogram_b(phantom, out_dir, fmt=fmt))
    _, csv_path = write_manifest(rows, out_dir, kind="mammogram-b", seed=seed,
                                 params={"size": size, "bac": bac, "vendor": vendor, "patients": patients, "fmt": fmt})
    return csv_path


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("mammogram-b options")
    group.add_argument("--size", choices=SIZES, default="small", help="small = 512×416 (default), full = detector")
    group.add_argument("--patients", type=int, default=None, help="number of patients (images = 4 × patients)")
    group.add_argument("--bac", choices=BAC_CHOICES, default="mix",
                       help="BAC grade of every patient, or mix = screening population (default)")
    group.add_argument("--density", choices=tuple(DENSITY_PROPORTIONS), default=None, help="force a density class")
    group.add_argument("--vendor", choices=tuple(VENDORS), default=None, help="force a vendor look")
    group.add_argument("--format", dest="fmt", choices=("png", "dicom"), default="png")


def _split_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"size": args.size, "bac": args.bac, "density": args.density, "vendor": args.vendor}, {"fmt": args.fmt}


def _write_kind(phantom: MammogramPhantom, out_dir: Path, *, stem: str | None = None,
                **options: Any) -> list[dict[str, Any]]:
    return write_mammogram_b(phantom, out_dir, stem=None, **options)  # names say patient and view


#: Registry entry (``medlim phantom mammogram-b``).
KIND = PhantomKind(
    name="mammogram-b",
    summary="family B mammograms (other anatomy and acquisition chain): four views, BAC grades, vendor looks",
    generate=generate_mammogram_b,
    write=_write_kind,
    add_arguments=_add_arguments,
    split_arguments=_split_arguments,
)
