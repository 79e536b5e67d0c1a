"""'Unlike my training data' for SCU-Net (issue 13): the checks shipped with scunet-bac v2 (and, for
wrong kinds, scunet-bac-dr) on wrong kinds of images, For-Processing files and in-family phantoms, its
calibration record and its plumbing.

The wrong-kind images here use seeds 11-15, not the seeds 1-2 that served to choose the feature
scales (``medlim/core/familiarity.py``); images are 512 px (the smallest the page accepts) or the
phantoms' "small" size, so the whole file runs in seconds without a model.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medlim.core.familiarity import FamiliarityCheck, load_familiarity
from medlim.core.io import read_image
from medlim.core.weights import Registry
from medlim.errors import ParameterError, WeightsError, WrongModalityError
from medlim.mammography.analysis import check_mammogram
from medlim.mammography.familiarity import (
    FOR_PROCESSING_REASON,
    VALIDATION_SEED,
    assess_mammogram,
    calibrate_from_images,
    training_phantoms,
)
from medlim.mammography.preprocess import preprocess_image

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (11, 12, 13, 14, 15)


@pytest.fixture(scope="module")
def shipped() -> tuple:
    entry = Registry.load(ROOT / "weights").get("scunet-bac", "2")
    check = load_familiarity(entry)
    assert check is not None
    return entry, check


@pytest.fixture(scope="module", params=[("scunet-bac", "2"), ("scunet-bac-dr", "1"), ("scunet-bac-dr", "2")])
def any_shipped(request: pytest.FixtureRequest) -> tuple:
    """Each shipped SCU-Net with a check: scunet-bac v2 (family A phantoms) and scunet-bac-dr v1 and v2 (both families)."""
    name, version = request.param
    entry = Registry.load(ROOT / "weights").get(name, version)
    check = load_familiarity(entry)
    assert check is not None
    return entry, check


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).convert("L").save(buffer, format="PNG")  # a grey export (colour is refused)
    return buffer.getvalue()


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def _assess(shipped: tuple, source: bytes | Path, name: str):
    entry, check = shipped
    record = read_image(source, name=name)
    check_mammogram(record)  # accepted as a possible mammogram: the training-data check is what catches it
    preprocessed = preprocess_image(record.to_uint8(), entry.preset)
    result, warning = assess_mammogram(check, preprocessed, presentation_intent=record.metadata.presentation_intent)
    return result, warning, record


def _radiographs() -> list[bytes]:
    from medlim.phantoms.radiograph import BODY_PARTS, generate_radiograph

    return [_png(_u8(generate_radiograph(seed=SEEDS[i % len(SEEDS)], index=i, body_part=part, size=512,
                                         site=("internal", "external")[i % 2]).image))
            for i, part in enumerate(BODY_PARTS)]  # fmt: skip


def _chests() -> list[bytes]:
    from medlim.phantoms.chest import generate_chest

    return [_png(_u8(generate_chest(seed=seed, index=0, size=512).image)) for seed in SEEDS]


def _he() -> list[bytes]:
    from medlim.phantoms.he import generate_he

    return [_png(generate_he(seed, size=(512, 512)).image) for seed in SEEDS]


def _fluorescence() -> list[bytes]:
    from medlim.phantoms.fluorescence import generate_fluorescence

    return [_png(generate_fluorescence(seed, size=(512, 512)).image) for seed in SEEDS]


@pytest.mark.parametrize("kind,make", [("radiograph", _radiographs), ("chest radiograph", _chests),
                                       ("H&E", _he), ("fluorescence", _fluorescence)])  # fmt: skip
def test_every_wrong_kind_of_image_is_flagged_with_a_plain_warning(any_shipped: tuple, kind: str, make) -> None:
    images = make()
    assert len(images) >= 5
    for i, data in enumerate(images):
        result, warning, _record = _assess(any_shipped, data, f"{kind}-{i}.png")
        assert result.flagged and result.score > result.threshold, (kind, i, result)
        assert warning is not None and warning.startswith("This image looks unlike the images the model was trained on")
        assert f"limit {result.threshold:.2f}" in warning and "a mammogram" in warning


def test_colour_microscopy_keeps_its_clear_refusal() -> None:
    from medlim.phantoms.he import generate_he

    buffer = io.BytesIO()
    Image.fromarray(generate_he(SEEDS[0], size=(512, 512)).image).save(buffer, format="PNG")
    with pytest.raises(WrongModalityError, match="colour"):
        check_mammogram(read_image(buffer.getvalue(), name="he.png"))


def test_for_processing_mammograms_are_flagged(shipped: tuple) -> None:
    from medlim.phantoms.dicom import style_for, write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    by_score = 0
    with tempfile.TemporaryDirectory() as folder:
        for index in range(5):
            phantom = generate_mammogram(seed=SEEDS[0], index=index, size="small")
            style = style_for(phantom.metadata, presentation_intent="FOR PROCESSING")
            path = write_mammogram_dicom(phantom, Path(folder) / f"raw{index}.dcm", style=style)
            result, warning, record = _assess(shipped, path, path.name)
            assert result.flagged, (index, result)
            assert any("'For Processing'" in w for w in record.metadata.warnings)  # the reader's plain warning
            if result.reason == FOR_PROCESSING_REASON:
                assert warning is None  # no second warning: the reader's says it
            else:
                by_score += 1
                assert warning is not None
    # Inverted (MONOCHROME2) raw renderings are caught by their looks alone; MONOCHROME1 ones, once the
    # reader inverts and stretches them, look like a presentation image with another tone curve.
    assert by_score >= 1


def test_the_same_mammogram_for_presentation_is_not_flagged(shipped: tuple) -> None:
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    with tempfile.TemporaryDirectory() as folder:
        phantom = generate_mammogram(seed=SEEDS[0], index=1, size="full-small")
        path = write_mammogram_dicom(phantom, Path(folder) / "presented.dcm")
        result, warning, _record = _assess(shipped, path, path.name)
    assert not result.flagged and warning is None and result.reason is None


def test_bundled_sample_mammograms_sit_near_the_limit(shipped: tuple) -> None:
    """The bundled samples are "small" phantoms: 0.28 mm pixels, 3-4× coarser than the training phantoms
    (0.07 and 0.085 mm). They are another resolution, and the check sees it: on 2026-12-05 their scores
    were 4.75-6.94 against a limit of 6.36 (one of the ten flagged, PHANTOM-0001 2019-12-25 LCC), where
    wrong kinds of images score above 9."""
    from medlim.mammography.samples import sample_exams

    files = [path for exam in sample_exams(ROOT / "data_samples") for path in exam.files]
    assert len(files) >= 10
    results = [_assess(shipped, path, path.name)[0] for path in files]
    assert sum(r.flagged for r in results) <= 1
    assert max(r.score for r in results) < 1.25 * shipped[1].threshold


def test_calibration_record_names_its_seeds(shipped: tuple) -> None:
    entry, check = shipped
    record = dict(entry.familiarity)
    assert record["file"] == "scunet-bac-2.familiarity.json"
    assert record["command"] == "medlim weights calibrate-familiarity scunet-bac@2"
    assert record["calibration_seed"] == entry.provenance.seed == 2
    assert record["validation_seed"] == VALIDATION_SEED and VALIDATION_SEED != 90_001
    assert record["threshold"] == pytest.approx(check.threshold, abs=1e-4)
    assert check.selection["calibration"]["seed"] == 2 and check.selection["calibration"]["n"] == check.n_calibration == 80
    assert check.selection["validation"]["seed"] == VALIDATION_SEED
    assert check.selection["validation_flagged"] <= 0.02
    assert check.selection["preset"] == entry.preset == "thesis-unclipped"


def test_training_phantoms_come_from_the_recorded_command() -> None:
    registry = Registry.load(ROOT / "weights")
    v2 = training_phantoms(registry.get("scunet-bac", "2"))
    assert (v2.seed, v2.count, v2.sizes, v2.bac_fraction) == (2, 80, ("full", "full-small"), 0.85)
    v1 = training_phantoms(registry.get("scunet-bac", "1"))
    assert (v1.seed, v1.count) == (1, 160)
    assert v1.sample(80).count == 80 and v2.sample(120).count == 80
    with pytest.raises(ParameterError):
        v2.sample(3)
    import dataclasses

    from medlim.core.weights.entry import TrainingProvenance

    folder = dataclasses.replace(registry.get("scunet-bac", "2"),
                                 provenance=TrainingProvenance(command="medlim train scunet --data /x"))
    with pytest.raises(WeightsError, match="not trained on phantoms"):
        training_phantoms(folder)


def test_calibrate_from_a_persons_images() -> None:
    from medlim.phantoms.mammogram import generate_mammogram
    from medlim.phantoms.radiograph import generate_radiograph

    train = [_u8(generate_mammogram(seed=21, index=i, size="small").image) for i in range(10)]
    validation = [_u8(generate_mammogram(seed=22, index=i, size="small").image) for i in range(4)]
    check = calibrate_from_images(train, validation, preset="thesis-unclipped", source="10 small phantoms",
                                  selection={"split_seed": 0})
    assert check.n_calibration == 10 and check.selection["n_validation"] == 4
    assert check.selection["preset"] == "thesis-unclipped" and check.selection["split_seed"] == 0
    assert FamiliarityCheck.from_json(check.to_json()) == check
    radiograph = preprocess_image(_u8(generate_radiograph(seed=SEEDS[0], size=512).image), "thesis-unclipped")
    assert check.check_image(radiograph.grey, foreground=radiograph.breast_mask).flagged
    with pytest.raises(ParameterError):
        calibrate_from_images(train[:3], [], preset="thesis-unclipped", source="too few")


def test_analysis_carries_the_check_to_the_readout(shipped: tuple) -> None:
    """End to end with the shipped model on one 512-px radiograph: numbers, flag and warning together."""
    from medlim.mammography.analysis import analyse_mammogram, load_bac_model
    from medlim.mammography.readout import readout_of

    bac_model = load_bac_model("scunet-bac@2", registry=Registry.load(ROOT / "weights"), device="cpu")
    assert bac_model.familiarity == shipped[1]
    record = read_image(_radiographs()[0], name="hand.png")
    analysis = analyse_mammogram(record, bac_model)
    readout = readout_of(analysis, file="hand.png")
    values = json.loads(readout.to_json())
    assert values["unlike_training"]["flagged"] is True
    assert values["unlike_training"]["threshold"] == round(shipped[1].threshold, 2)
    assert values["unlike_training"]["score"] > values["unlike_training"]["threshold"]
    assert any(w.startswith("This image looks unlike") for w in values["warnings"])
    assert values["am"] >= 0 and values["breast_area"] > 0  # the numbers are still there


@pytest.mark.slow
def test_validation_and_held_out_phantoms_are_rarely_flagged(shipped: tuple) -> None:
    """Full-size phantoms the check never saw: 12 more of the validation seed (indices 50-61) and 12 held out."""
    from medlim.mammography.familiarity import TrainingPhantoms, phantom_features

    entry, check = shipped
    flags = []
    for seed, first in ((VALIDATION_SEED, 50), (90_001, 0)):
        rows = list(phantom_features(TrainingPhantoms(seed, first + 12, ("full", "full-small")), entry.preset))
        flags += [check.evaluate(row).flagged for row in rows[first:]]
    assert sum(flags) <= 1


@pytest.mark.slow
def test_calibration_reproduces_the_shipped_file_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    assert main(["weights", "calibrate-familiarity", "scunet-bac@2", "--check",
                 "--weights-dir", str(ROOT / "weights")]) == 0  # fmt: skip
    assert "reproduced exactly" in capsys.readouterr().out


def test_the_evaluation_counts_the_views_the_check_flags() -> None:
    """`medlim bac evaluate` reports how many views the weights' check flagged (issue 13's flag rate)."""
    from medlim.core.weights import Registries
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import sweep_thresholds
    from medlim.phantoms.radiograph import generate_radiograph

    model = load_bac_model("scunet-bac@2", registry=Registries.load(weights_dir=ROOT / "weights"), device="cpu")
    radiograph = _u8(generate_radiograph(seed=SEEDS[0], index=0, body_part="humerus", size=512).image)
    truth = np.zeros(radiograph.shape, bool)
    truth[100:104, 100:140] = True  # a view needs BAC somewhere for the whole-image figures
    summaries, per_image = sweep_thresholds(model, [("radiograph", radiograph, truth)], thresholds=(0.6,))
    assert per_image[0.6][0].unlike_training is True  # a limb radiograph is not a mammogram
    assert (summaries[0.6].unlike_training_checked, summaries[0.6].unlike_training_flagged) == (1, 1)


def test_bac_evaluate_on_a_folder_counts_a_for_processing_view_as_flagged(tmp_path: Path) -> None:
    """``medlim bac evaluate --data`` read the views without their presentation intent, so a For-Processing file
    passed the training-data check when its looks did (session-21 probe); the page and ``bac quantify`` flag it."""
    from medlim.core.datasets import open_dataset
    from medlim.mammography.analysis import load_bac_model
    from medlim.mammography.evaluate import evaluate_bac, read_annotated_view
    from medlim.phantoms.dicom import write_mammogram_dicom
    from medlim.phantoms.mammogram import generate_mammogram

    phantom = generate_mammogram(seed=SEEDS[0], index=1, size="full-small")
    write_mammogram_dicom(phantom, tmp_path / "presented.dcm")
    tagged = pydicom.dcmread(tmp_path / "presented.dcm")
    tagged.PresentationIntentType = "FOR PROCESSING"  # the tag only: the same pixels, so the same looks
    tagged.save_as(tmp_path / "tagged.dcm")
    Image.fromarray(phantom.bac_mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    (tmp_path / "manifest.csv").write_text("image,mask\npresented.dcm,mask.png\ntagged.dcm,mask.png\n")
    dataset = open_dataset(tmp_path)
    views = [read_annotated_view(dataset, index) for index in range(2)]
    assert [view.presentation_intent for view in views] == ["FOR PRESENTATION", "FOR PROCESSING"]
    np.testing.assert_array_equal(views[0].image, views[1].image)
    _summary, per_image = evaluate_bac(load_bac_model("scunet-bac:2"), [view.sample() for view in views])
    assert [image.unlike_training for image in per_image] == [False, True]
