"""BAC inference at the weights' pixel spacing (issue 13, "Pixel spacing").

One continuous scene — a breast of grey 80 with three discs of radius 2 mm and a
1 × 20 mm bar of grey 250 — is rendered at 0.07 mm and at 0.14 mm (each pixel
the mean of 4×4 samples) and written as DICOM with PixelSpacing. A stand-in
"SCU-Net" (a 1×1 convolution, p = sigmoid(10·(z − z₀)) with z the published
preset's normalised grey and z₀ that of grey 153) marks the bright objects. The
weights record 0.07 mm, so the 0.14 mm file is resampled ×2 for inference and
its maps brought back.

Hand-computed expectations: true area = 3·π·2² + 1·20 = 57.70 mm²; total
perimeter = 3·2π·2 + 2·(20 + 1) = 79.70 mm. On either grid the mask boundary
lies within half a 0.14 mm pixel (0.07 mm) of where it lies on the other, so the
mm² areas differ by at most 79.70 × 0.07 = 5.58 mm², and the masks compared on
the 0.14 mm grid differ by at most one ring of boundary pixels,
79.70 / 0.14 = 569 pixels (of about 57.70 / 0.14² = 2944).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from medlim.core.io import read_image
from medlim.core.spacing import MODEL_DEFAULT, USER, resample_to_shape
from medlim.core.weights.entry import InputContract, WeightsEntry
from medlim.mammography.analysis import analyse_mammogram, bac_model_from_entry
from medlim.mammography.readout import readout_of

FIELD_MM = (89.6, 71.68)  # 1280 × 1024 px at 0.07 mm, 640 × 512 px at 0.14 mm
DISCS_MM = ((20.0, 20.0), (50.0, 30.0), (30.0, 50.0))  # (row, column) centres, radius 2 mm
BAR_MM = (60.0, 80.0, 40.0, 41.0)  # rows 60–80, columns 40–41
TRUE_AREA_MM2 = 3 * math.pi * 4 + 20.0
PERIMETER_MM = 3 * 2 * math.pi * 2 + 2 * (20.0 + 1.0)


def render_scene(spacing: float, samples: int = 4) -> np.ndarray:
    """The scene at ``spacing`` mm, ``np.uint8[H, W]``: 0 outside the breast (columns ≥ 63 mm), 80 inside, 250 objects."""
    rows, cols = (int(round(extent / spacing)) for extent in FIELD_MM)
    offsets = (np.arange(samples) + 0.5) / samples
    y = ((np.arange(rows)[:, None] + offsets[None, :]) * spacing).reshape(-1)[:, None]
    x = ((np.arange(cols)[:, None] + offsets[None, :]) * spacing).reshape(-1)[None, :]
    bright = np.zeros((y.size, x.size), bool)
    for cy, cx in DISCS_MM:
        bright |= (y - cy) ** 2 + (x - cx) ** 2 <= 4.0
    top, bottom, left, right = BAR_MM
    bright |= (y >= top) & (y < bottom) & (x >= left) & (x < right)
    fine = np.where(bright, 250.0, np.where(x < 63.0, 80.0, 0.0))
    image = fine.reshape(rows, samples, cols, samples).mean(axis=(1, 3))
    return np.rint(image).astype(np.uint8)


def write_mammogram(path: Path, image: np.ndarray, spacing: float | None) -> Path:
    """A 16-bit MG DICOM (PixelSpacing when ``spacing``), or a PNG when ``spacing`` is None."""
    if spacing is None:
        assert cv2.imwrite(str(path), image)
        return path
    from pydicom import uid
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID = uid.generate_uid(entropy_srcs=["medlim-spacing", str(spacing)])
    ds.Modality, ds.ViewPosition, ds.ImageLaterality = "MG", "CC", "L"
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [spacing, spacing]
    ds.PixelData = image.astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path.write_bytes(buffer.getvalue())
    return path


class BrightObjects(nn.Module):
    """p = sigmoid(10·(z − z₀)) on the published preset's normalised grey z (z₀: grey 153)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        z0 = (153 / 255 - 0.2813) / 0.1256
        with torch.no_grad():
            self.conv.weight.fill_(10.0 / 3)
            self.conv.bias.fill_(-10.0 * z0)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.conv(inputs)


def toy_model(spacing_mm: tuple[float, float] | None = (0.07, 0.07)):
    contract = InputContract(channels=3, size=(512, 512), value_range=(-3.0, 6.0), pixel_spacing_mm=spacing_mm)
    entry = WeightsEntry(
        name="toy-bac", version="1", task="bac-segmentation", architecture="scunet", file="toy.safetensors",
        sha256="0" * 64, preset="published", input_contract=contract, output_type="probability",
        thresholds={"output": 0.5},
        params={"overlap": 64, "merge": "max", "skip": False, "output_activation": "sigmoid", "x": 100.0},
    )  # fmt: skip
    return bac_model_from_entry(entry, BrightObjects())


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("spacing")
    fine, coarse = render_scene(0.07), render_scene(0.14)
    return {
        "fine": write_mammogram(folder / "fine.dcm", fine, 0.07),
        "coarse": write_mammogram(folder / "coarse.dcm", coarse, 0.14),
        "png": write_mammogram(folder / "fine.png", fine, None),
    }


def test_scene_is_rendered_at_both_spacings() -> None:
    fine, coarse = render_scene(0.07), render_scene(0.14)
    assert fine.shape == (1280, 1024) and coarse.shape == (640, 512)
    # the bright area of each rendering is the true area to within its boundary pixels
    for image, spacing in ((fine, 0.07), (coarse, 0.14)):
        area = np.count_nonzero(image > 165) * spacing**2
        assert abs(area - TRUE_AREA_MM2) <= PERIMETER_MM * spacing / 2


def test_a_coarser_file_is_resampled_and_its_readouts_agree_with_the_fine_one(scene_files) -> None:
    bac_model = toy_model()
    fine = analyse_mammogram(read_image(scene_files["fine"]), bac_model)
    coarse = analyse_mammogram(read_image(scene_files["coarse"]), bac_model)

    assert fine.model_spacing_mm is None and fine.spacing_source == "PixelSpacing"
    assert coarse.model_spacing_mm == (0.07, 0.07) and coarse.pixel_spacing_mm == (0.14, 0.14)
    # the model saw the 0.07 mm grid (9 patches of 512 at stride 448 on 1280 × 1024), the
    # readouts are on the file's own 640 × 512 grid
    assert coarse.prediction.patches_total == fine.prediction.patches_total == 9
    assert coarse.prediction.probability.shape == (640, 512)
    assert coarse.prediction.preprocessed.grey.shape == (640, 512)

    fine_mm2, coarse_mm2 = fine.metrics.am_mm2, coarse.metrics.am_mm2
    assert coarse_mm2 == pytest.approx(coarse.metrics.am * 0.14**2)
    assert abs(coarse_mm2 - fine_mm2) <= PERIMETER_MM * 0.07  # 5.58 mm²
    for area in (fine_mm2, coarse_mm2):
        assert abs(area - TRUE_AREA_MM2) <= PERIMETER_MM * 0.07

    fine_on_coarse = resample_to_shape(fine.mask() > 0, (640, 512))
    differing = np.count_nonzero(fine_on_coarse != (coarse.mask() > 0))
    assert differing <= PERIMETER_MM / 0.14  # one ring of 0.14 mm boundary pixels: 569

    values = readout_of(coarse, file="coarse").to_dict()
    assert values["pixel_spacing_mm"] == [0.14, 0.14] and values["model_spacing_mm"] == [0.07, 0.07]
    assert values["spacing_source"] == "PixelSpacing"
    assert "Resampled to the weights' 0.07 × 0.07 mm" in readout_of(coarse).spacing_text


def test_a_file_without_spacing_gets_the_models_with_a_warning(scene_files) -> None:
    analysis = analyse_mammogram(read_image(scene_files["png"]), toy_model())

    assert analysis.spacing_source == MODEL_DEFAULT and analysis.pixel_spacing_mm == (0.07, 0.07)
    assert analysis.model_spacing_mm is None
    assert any("states no pixel spacing" in w and "0.07 × 0.07 mm" in w for w in analysis.warnings)
    assert analysis.metrics.am_mm2 == pytest.approx(analysis.metrics.am * 0.0049)
    assert "assume the weights' own" in readout_of(analysis).spacing_text


def test_weights_without_a_spacing_leave_the_image_alone(scene_files) -> None:
    analysis = analyse_mammogram(read_image(scene_files["png"]), toy_model(None))

    assert analysis.pixel_spacing_mm is None and analysis.spacing_source is None and analysis.metrics.am_mm2 is None
    assert not any("pixel spacing" in w for w in analysis.warnings)


def test_a_stated_spacing_overrides_the_files(scene_files) -> None:
    bac_model = toy_model()
    # the 0.14 mm file stated at 0.07 mm: taken as the model's spacing, not resampled
    stated = analyse_mammogram(read_image(scene_files["coarse"]), bac_model, pixel_spacing_mm=0.07)
    assert stated.spacing_source == USER and stated.pixel_spacing_mm == (0.07, 0.07)
    assert stated.model_spacing_mm is None and stated.prediction.patches_total == 2
    assert stated.metrics.am_mm2 == pytest.approx(stated.metrics.am * 0.0049)
    # a spacing inside the training range (here the model's ± 2 %) is not resampled either
    near = analyse_mammogram(read_image(scene_files["coarse"]), bac_model, pixel_spacing_mm=(0.0705, 0.0695))
    assert near.model_spacing_mm is None and near.spacing_source == USER


def test_cli_pixel_spacing_reaches_the_readouts(scene_files, monkeypatch, capsys) -> None:
    import json

    import medlim.mammography.analysis as analysis_module
    from medlim.cli import main

    monkeypatch.setattr(analysis_module, "load_bac_model", lambda *args, **kwargs: toy_model())
    assert main(["bac", "quantify", str(scene_files["coarse"]), "--jsonl", "--no-store", "--device", "cpu",
                 "--pixel-spacing", "0.07"]) == 0  # fmt: skip
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["spacing_source"] == "user" and row["pixel_spacing_mm"] == [0.07, 0.07]
    assert row["model_spacing_mm"] is None

    assert main(["bac", "quantify", str(scene_files["coarse"]), "--no-store", "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "spacing=0.14×0.14 mm (PixelSpacing) resampled to 0.07×0.07 mm" in line

    with pytest.raises(SystemExit):
        main(["bac", "quantify", str(scene_files["coarse"]), "--pixel-spacing", "-1"])


def test_a_spacing_no_mammogram_has_is_set_aside_from_a_file_and_refused_when_stated(scene_files, tmp_path) -> None:
    """The scene is 89.6 mm across at its true 0.14 mm (640 px). A header saying 1 mm (640 mm across) or 0.0001 mm
    (0.06 mm) is set aside with a warning naming why, the weights' own spacing assumed; stated, it is refused."""
    from medlim.errors import ParameterError

    coarse = render_scene(0.14)
    bac_model = toy_model()
    for wrong, across in ((1.0, "640 mm"), (0.0001, "0.064 mm")):
        analysis = analyse_mammogram(read_image(write_mammogram(tmp_path / f"{wrong}.dcm", coarse, wrong)), bac_model)
        assert analysis.spacing_source == MODEL_DEFAULT and analysis.pixel_spacing_mm == (0.07, 0.07)
        (warning,) = [w for w in analysis.warnings if "set aside" in w]
        assert "makes this 640×512 px image" in warning and across in warning and "40–500 mm" in warning
        assert analysis.model_spacing_mm is None  # read at the weights' own spacing: nothing resampled
    with pytest.raises(ParameterError, match="--pixel-spacing: a pixel spacing of 0.0001 × 0.0001 mm makes this"):
        analyse_mammogram(read_image(scene_files["coarse"]), bac_model, pixel_spacing_mm=0.0001)


def test_a_binned_view_smaller_than_a_patch_is_taken_when_its_spacing_covers_a_breast(tmp_path) -> None:
    """A 320 × 256 px view at 0.28 mm (89.6 × 71.7 mm) is a binned mammogram, resampled to the weights' 0.07 mm;
    without a spacing the same pixels are refused as too small to be one."""
    from medlim.errors import WrongModalityError

    binned = render_scene(0.28)
    assert binned.shape == (320, 256)
    analysis = analyse_mammogram(read_image(write_mammogram(tmp_path / "binned.dcm", binned, 0.28)), toy_model())
    assert analysis.model_spacing_mm == (0.07, 0.07) and analysis.metrics.am_mm2 == pytest.approx(TRUE_AREA_MM2, rel=0.25)
    with pytest.raises(WrongModalityError, match="at least 512 pixels"):
        analyse_mammogram(read_image(write_mammogram(tmp_path / "binned.png", binned, None)), toy_model())


def test_a_grid_over_the_pixel_limit_is_refused_before_it_is_allocated(scene_files, monkeypatch) -> None:
    from medlim.errors import ImageTooLargeError

    monkeypatch.setenv("MEDLIM_MAX_PIXELS", str(1_000_000))  # the coarse file becomes 1280 × 1024 = 1.3 M px
    with pytest.raises(ImageTooLargeError, match="becomes 1280×1024 px on the model's grid, over MEDLIM_MAX_PIXELS"):
        analyse_mammogram(read_image(scene_files["coarse"]), toy_model())


def test_a_secondary_capture_is_taken_with_a_doubt_said(tmp_path) -> None:
    import pydicom

    from medlim.mammography.analysis import SECONDARY_CAPTURE_NOTE, check_mammogram

    path = write_mammogram(tmp_path / "mg.dcm", render_scene(0.14), 0.14)
    assert SECONDARY_CAPTURE_NOTE not in check_mammogram(read_image(path))
    ds = pydicom.dcmread(path)
    ds.Modality = "OT"
    ds.save_as(tmp_path / "sc.dcm", enforce_file_format=True)
    assert SECONDARY_CAPTURE_NOTE in check_mammogram(read_image(tmp_path / "sc.dcm"))


def test_weights_with_a_gate_have_it_applied_on_the_networks_grid_before_the_map_comes_back(scene_files) -> None:
    from dataclasses import replace

    from medlim.mammography.gating import ComponentGate, gate_components
    from medlim.mammography.spacing import bac_spacing, predict_at_model_spacing, to_original_grid

    plain = toy_model()
    record = read_image(scene_files["coarse"])  # resampled to 0.07 mm and back
    ungated = analyse_mammogram(record, plain)
    shape = record.pixels.shape[:2]
    decision = bac_spacing(plain, file_spacing_mm=record.metadata.pixel_spacing_mm, file_source="PixelSpacing",
                           pixel_spacing_mm=None, shape=shape)
    network = predict_at_model_spacing(record.to_uint8(), plain, decision).network
    assert network is not None and network.probability.shape != shape
    for gate in (ComponentGate(0.3, 0.9), ComponentGate(0.3, 1.0)):
        gated = analyse_mammogram(record, replace(plain, gate=gate))
        expected = to_original_grid(replace(network, probability=gate_components(network.probability, gate)), shape)
        np.testing.assert_array_equal(gated.prediction.probability, expected.probability)
    # the bright objects reach p > 0.9, so the first gate keeps them all: a coarse pixel counts where at least half
    # of its network pixels pass the cut-off, and those lie inside kept regions; nothing passes p > 1: the second
    # keeps none
    kept = analyse_mammogram(record, replace(plain, gate=ComponentGate(0.3, 0.9))).metrics.am
    assert kept == ungated.metrics.am > 0
    assert analyse_mammogram(record, replace(plain, gate=ComponentGate(0.3, 1.0))).metrics.am == 0
    # an image inference does not resample: the gate on its own grid, as before
    fine = read_image(scene_files["fine"])
    np.testing.assert_array_equal(analyse_mammogram(fine, replace(plain, gate=ComponentGate(0.3, 0.9))).prediction.probability,
                                  gate_components(analyse_mammogram(fine, plain).prediction.probability, ComponentGate(0.3, 0.9)))


def test_a_confident_line_is_gated_on_the_networks_grid_and_counted_where_it_covers_half_a_pixel() -> None:
    """By hand: an 8×8 network grid brought to a 2×2 image (4× coarser). A 2 px band of p 0.99 fills half of the
    top-left block: that pixel reads 0.99 (its blocks' 8th largest value) and is kept by the gate on the network's
    grid; a 1 px line fills a quarter of the top-right block: under half of that pixel, 0. Area-averaged, as until
    2026-12-08, they read 0.495 and 0.2475, and a cut-off of 0.2 counted both whole."""
    from medlim.mammography.gating import ComponentGate, gate_components
    from medlim.mammography.inference import BacPrediction
    from medlim.mammography.preprocess import PreprocessedImage
    from medlim.mammography.spacing import on_image_grid

    p = np.zeros((8, 8), np.float32)
    p[1:3, 0:4] = 0.99
    p[1, 4:8] = 0.99
    network = BacPrediction(probability=p, preprocessed=PreprocessedImage(grey=np.full((8, 8), 100, np.uint8),
                                                                          breast_mask=np.ones((8, 8), bool)),
                            preset="thesis", merge="max", stride=448, patches_total=1, patches_predicted=1, device="cpu",
                            seconds=0.0)
    gate = ComponentGate(0.1, 0.95)
    back, effect = on_image_grid(network, (2, 2), gate=gate, region_filter=None, spacing_mm=(0.28, 0.28))
    np.testing.assert_allclose(back.probability, [[0.99, 0.0], [0.0, 0.0]], atol=1e-6)
    assert effect is None
    no_seed, _ = on_image_grid(network, (2, 2), gate=ComponentGate(0.1, 1.0), region_filter=None, spacing_mm=None)
    assert no_seed.probability.max() == 0.0  # nothing reaches the seed on the network's grid: nothing kept
    same, _ = on_image_grid(network, (8, 8), gate=gate, region_filter=None, spacing_mm=None)  # not resampled
    np.testing.assert_array_equal(same.probability, gate_components(p, gate))


def test_weights_with_a_region_filter_apply_it_after_the_gate_on_the_images_own_grid(scene_files) -> None:
    from dataclasses import replace

    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.regions import REGION_FEATURES, RegionFilter, filter_regions

    plain = toy_model()
    record = read_image(scene_files["coarse"])  # 0.14 mm: resampled to 0.07 mm and back
    gate = ComponentGate(0.3, 0.9)
    gated_only = analyse_mammogram(record, replace(plain, gate=gate))  # the gate on the network's grid, mapped back
    width = len(REGION_FEATURES)
    for intercept, kept in ((60.0, True), (-60.0, False)):  # every region judged BAC / none
        region_filter = RegionFilter(floor=0.3, mean=(0.0,) * width, scale=(1.0,) * width, coef=(0.0,) * width,
                                     intercept=intercept, threshold=0.5, spacing_mm=0.07)
        both = analyse_mammogram(record, replace(plain, gate=gate, region_filter=region_filter))
        gated = gated_only.prediction.probability
        expected = filter_regions(gated, gated_only.prediction.preprocessed.grey, region_filter, (0.14, 0.14))
        np.testing.assert_array_equal(both.prediction.probability, expected)
        assert (both.metrics.am == gated_only.metrics.am > 0) if kept else both.metrics.am == 0
        # the view's account of what the filter took: every region of the gated map above 0.3, or none of them
        regions = int(cv2.connectedComponents((gated > 0.3).astype(np.uint8), connectivity=8)[0]) - 1
        dropped_px = 0 if kept else int(np.count_nonzero(gated > 0.3))
        effect = both.region_filter
        assert effect is not None and regions > 0
        assert (effect.regions, effect.dropped, effect.dropped_px) == (regions, 0 if kept else regions, dropped_px)
        assert effect.dropped_mm2 == pytest.approx(dropped_px * 0.14 * 0.14, abs=1e-4)  # the file's own pixels
        assert readout_of(both).to_dict()["region_filter"] == effect.to_dict()
    assert gated_only.region_filter is None and readout_of(gated_only).to_dict()["region_filter"] is None


def test_sweep_region_filter_scores_a_view_with_and_without_the_filter_from_one_inference() -> None:
    from medlim.mammography.evaluate import sweep_region_filter
    from medlim.mammography.regions import REGION_FEATURES, RegionFilter

    image = render_scene(0.07)
    truth = image >= 153  # the two discs and the bar: what the toy model marks
    width = len(REGION_FEATURES)
    drop_all = RegionFilter(floor=0.5, mean=(0.0,) * width, scale=(1.0,) * width, coef=(0.0,) * width,
                            intercept=-60.0, threshold=0.5, spacing_mm=0.07)
    per = sweep_region_filter(toy_model(), [("scene", image, truth, (0.07, 0.07))], region_filter=drop_all,
                              cutoff=0.5)
    without, with_filter = per[False][0], per[True][0]
    assert without.whole["f1"] > 0.95 and without.predicted["am"] > 0
    assert with_filter.predicted["am"] == 0 and with_filter.whole["f1"] == 0.0  # every region dropped
    assert with_filter.tam_100[1] == without.tam_100[1] > 0  # the truth is the same
