"""Whole-image inference: exactness against a naive oracle of the authors' published inference."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from medlim.errors import InputError, ParameterError
from medlim.mammography.checkpoint import map_published_scunet
from medlim.mammography.inference import predict_probability_map
from medlim.mammography.scunet import build_scunet


def _synthetic_mammogram(height: int = 1100, width: int = 1000, seed: int = 0) -> np.ndarray:
    """Dark background, a bright textured half-ellipse 'breast' against the left edge, a blob and lines."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    image = rng.integers(0, 6, (height, width)).astype(np.float64)
    breast = ((yy - height / 2) / (0.45 * height)) ** 2 + (xx / (0.5 * width)) ** 2 < 1
    image[breast] = 110 + 25 * rng.standard_normal(int(breast.sum()))
    image += 90 * np.exp(-(((yy - 300) ** 2 + (xx - 250) ** 2) / (2 * 40.0**2)))
    for k in range(4):
        row = 250 + 170 * k
        image[row : row + 3, 80 : 80 + 120 * (k + 2)] = 235
    image[900:903, 150:550] = 250
    return np.clip(image, 0, 255).astype(np.uint8)


def _published_model(shared_dir: Path) -> nn.Module:
    path = shared_dir / "reference" / "scunet_published" / "SCUNet_dice_512_512_best_nosigmoid.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    model = build_scunet()
    model.load_state_dict(map_published_scunet(torch.load(path, weights_only=True, map_location="cpu")))
    return model.eval()


def _naive_published_inference(
    image: np.ndarray, model: nn.Module, *, dtype: torch.dtype = torch.float32
) -> tuple[np.ndarray, int]:
    """The authors' procedure, one patch at a time (their code ran the network in float64)."""
    size, step = 512, 480

    def starts(n: int) -> list[int]:
        found = []
        for i in range(0, n, step):
            if i + size >= n:
                found.append(n - size)
                break
            found.append(i)
        return found

    grey = cv2.medianBlur(image, 5)
    oracle_model = copy.deepcopy(model).to(dtype).eval()
    merged = np.zeros(grey.shape, dtype=np.float64)
    predicted = 0
    for row in starts(grey.shape[0]):
        for col in starts(grey.shape[1]):
            patch = grey[row : row + size, col : col + size]
            if np.mean(patch) <= 20 or np.std(patch) <= 10:
                continue
            scaled = (torch.from_numpy(patch).to(torch.float32) / 255 - 0.2813) / 0.1256
            three = torch.stack([scaled, scaled, scaled])[None].to(dtype)
            with torch.no_grad():
                output = oracle_model(three)[0, 0].numpy()
            window = merged[row : row + size, col : col + size]
            merged[row : row + size, col : col + size] = np.maximum(window, output)
            predicted += 1
    return merged, predicted


def test_published_preset_reproduces_the_authors_inference(shared_dir: Path) -> None:
    model = _published_model(shared_dir)
    image = _synthetic_mammogram()
    expected, expected_count = _naive_published_inference(image, model)
    calls: list[tuple[int, int]] = []

    result = predict_probability_map(
        image, model, preset="published", batch_size=3, device="cpu", progress=lambda d, t: calls.append((d, t))
    )

    assert result.probability.shape == image.shape and result.probability.dtype == np.float32
    assert result.patches_total == 9 and result.patches_predicted == expected_count
    assert 0 < expected_count < 9  # the dark corner patch is skipped, so the skip rule is exercised
    assert result.patches_skipped == 9 - expected_count
    assert expected.max() > 0.65  # the checkpoint finds something on the bright lines
    np.testing.assert_allclose(result.probability, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.preprocessed.grey, cv2.medianBlur(image, 5))
    assert calls[-1] == (9, 9) and all(d <= t for d, t in calls)


@pytest.mark.slow
def test_published_preset_matches_the_float64_original(shared_dir: Path) -> None:
    """Our float32 run against the authors' float64 arithmetic (slow: float64 convolutions)."""
    model = _published_model(shared_dir)
    image = _synthetic_mammogram()
    expected, expected_count = _naive_published_inference(image, model, dtype=torch.float64)
    result = predict_probability_map(image, model, preset="published", device="cpu")
    assert result.patches_predicted == expected_count
    np.testing.assert_allclose(result.probability, expected, rtol=1e-4, atol=1e-5)


class _MeanOfChannels(nn.Module):
    """Stand-in model: the per-pixel mean of the input channels (so outputs are easy to predict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1, keepdim=True)


def test_small_image_is_padded_and_cropped_back() -> None:
    image = np.full((300, 200), 128, dtype=np.uint8)
    image[::2] = 60  # std > 10
    result = predict_probability_map(image, _MeanOfChannels(), device="cpu", merge="mean")
    assert result.probability.shape == (300, 200)
    assert result.patches_total == 1 and result.patches_predicted == 1
    expected = (cv2.medianBlur(image, 5).astype(np.float32) / 255 - 0.2813) / 0.1256
    np.testing.assert_allclose(result.probability, expected, rtol=1e-5, atol=1e-6)


def test_sigmoid_activation_and_no_skip() -> None:
    image = np.zeros((512, 600), dtype=np.uint8)  # all background
    skipped = predict_probability_map(image, _MeanOfChannels(), device="cpu")
    assert skipped.patches_predicted == 0 and not skipped.probability.any()
    everything = predict_probability_map(image, _MeanOfChannels(), device="cpu", skip=False, output_activation="sigmoid")
    assert everything.patches_predicted == everything.patches_total == 2
    np.testing.assert_allclose(everything.probability, 1 / (1 + np.exp(0.2813 / 0.1256)), rtol=1e-6)


def test_custom_skip_callable_and_stride() -> None:
    image = np.random.default_rng(5).integers(30, 200, (1024, 1024), dtype=np.uint8)
    result = predict_probability_map(
        image, _MeanOfChannels(), device="cpu", stride=256, skip=lambda p: np.arange(len(p)) % 2 == 1, batch_size=4
    )
    assert result.patches_total == 9 and result.stride == 256
    assert result.patches_predicted == 5  # the callback sees batches of 4: keeps indices 0, 2 of each


def test_black_skip_rule_keeps_edge_patches() -> None:
    # 512×1024: the left patch holds a 40-px strip of breast (mean 8.6 → the
    # authors' rule skips it), the right patch is black (skipped by both).
    image = np.zeros((512, 1024), np.uint8)
    image[:, :40] = 110
    published = predict_probability_map(image, _MeanOfChannels(), device="cpu", stride=512)
    black = predict_probability_map(image, _MeanOfChannels(), device="cpu", stride=512, skip="black")
    assert (published.patches_total, published.patches_predicted) == (2, 0)
    assert (black.patches_total, black.patches_predicted) == (2, 1)
    assert black.probability[:, :512].any() and not black.probability[:, 512:].any()
    with pytest.raises(ParameterError):
        predict_probability_map(image, _MeanOfChannels(), device="cpu", skip="grey")


@pytest.mark.parametrize("preset", ["thesis", "published"])
def test_preprocessing_on_the_device_gives_the_same_map(preset: str) -> None:
    image = _synthetic_mammogram(700, 600, seed=2)
    image[20:40, 520:580] = 255  # a burned-in label the thesis preset's opening removes
    host = predict_probability_map(image, _MeanOfChannels(), preset=preset, device="cpu", preprocess_on="host")
    device = predict_probability_map(image, _MeanOfChannels(), preset=preset, device="cpu", preprocess_on="device")
    np.testing.assert_array_equal(device.probability, host.probability)
    np.testing.assert_array_equal(device.preprocessed.grey, host.preprocessed.grey)
    np.testing.assert_array_equal(device.preprocessed.breast_mask, host.preprocessed.breast_mask)
    assert device.patches_predicted == host.patches_predicted > 0
    with pytest.raises(ParameterError, match="preprocess_on"):
        predict_probability_map(image, _MeanOfChannels(), device="cpu", preprocess_on="gpu")  # type: ignore[arg-type]


def test_model_mode_is_restored() -> None:
    model = build_scunet().train()
    predict_probability_map(np.zeros((512, 512), dtype=np.uint8), model, device="cpu")
    assert model.training


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="float32"):
        predict_probability_map(np.zeros((8, 8), np.float32), _MeanOfChannels(), device="cpu")
    with pytest.raises(ParameterError, match="softmax"):
        predict_probability_map(np.zeros((8, 8), np.uint8), _MeanOfChannels(), output_activation="softmax")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="batch_size"):
        predict_probability_map(np.zeros((600, 600), np.uint8), _MeanOfChannels(), device="cpu", batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_precision_is_close_to_cpu() -> None:
    torch.manual_seed(0)
    model = build_scunet().eval()  # random weights: the check is about arithmetic, not the checkpoint
    image = _synthetic_mammogram()
    # Mean merge: random weights may give only negative raw outputs, which a max merge from 0 would hide.
    cpu = predict_probability_map(image, model, device="cpu", merge="mean")
    gpu = predict_probability_map(image, model, device="cuda", merge="mean")
    assert gpu.device.startswith("cuda") and gpu.patches_predicted == cpu.patches_predicted
    scale = float(np.abs(cpu.probability).max())
    assert scale > 0
    np.testing.assert_allclose(gpu.probability, cpu.probability, atol=0.02 * scale)
