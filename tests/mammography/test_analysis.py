from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlim.core.io.record import ImageMetadata, ImageRecord
from medlim.errors import WrongModalityError
from medlim.mammography.analysis import analyse_mammogram, check_mammogram, load_bac_model, requantify


def _record(shape=(1100, 1000), *, modality="MG", color=False, view="CC", laterality="L") -> ImageRecord:
    rng = np.random.default_rng(0)
    pixels = np.zeros(shape + ((3,) if color else ()), np.float32)
    pixels[..., : shape[1] * 2 // 3] = rng.uniform(0.3, 0.6, pixels[..., : shape[1] * 2 // 3].shape)
    if not color:
        pixels[300:306, 50:600] = 1.0  # a bright vessel-like line
    meta = ImageMetadata(source_format="dicom", modality=modality, view=view, laterality=laterality,
                         pixel_spacing_mm=(0.1, 0.1), pixel_spacing_source="PixelSpacing")
    return ImageRecord(pixels=pixels, raw=pixels, metadata=meta, name="test.dcm")


def test_check_mammogram_refuses_other_modalities_and_shapes() -> None:
    with pytest.raises(WrongModalityError, match="CT image"):
        check_mammogram(_record(modality="CT"))
    with pytest.raises(WrongModalityError, match="colour"):
        check_mammogram(_record(color=True))
    with pytest.raises(WrongModalityError, match="at least 512"):
        check_mammogram(_record(shape=(400, 300)))
    assert check_mammogram(_record()) == ()
    assert "laterality" in check_mammogram(_record(view=None))[0]


def test_a_cr_or_dx_file_naming_a_mammography_view_is_read_as_a_mammogram_with_a_note() -> None:
    for modality, view in (("CR", "MLO"), ("DX", "CC"), ("cr", "lcc")):
        warnings = check_mammogram(_record(modality=modality, view=view))
        assert warnings == (f"The file is recorded as {modality.upper()} (radiography), not MG; it is read as a "
                            f"mammogram because its header names the mammography view {view}.",)
    for view in ("PA", "AP", "LL", None):  # a chest or limb radiograph: still refused
        with pytest.raises(WrongModalityError, match="DX image, not a mammogram"):
            check_mammogram(_record(modality="DX", view=view))


@pytest.fixture
def published_checkpoint(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "scunet_published" / "SCUNet_dice_512_512_best_nosigmoid.pt"
    if not path.is_file():
        pytest.skip("published checkpoint absent")
    return path


def test_published_checkpoint_analysis_and_requantify(published_checkpoint: Path) -> None:
    bac_model = load_bac_model(published_checkpoint, device="cpu")
    assert bac_model.preset == "published"
    assert bac_model.stride == 480 and bac_model.merge == "max" and bac_model.threshold == 0.65
    analysis = analyse_mammogram(_record(), bac_model)
    p = analysis.prediction.probability
    assert p.shape == (1100, 1000) and p.min() >= 0.0  # max merge from a zero map
    m = analysis.metrics
    assert m.pm == pytest.approx(float(p.astype(np.float64).sum()), rel=1e-5)
    assert m.am == int((p > 0.65).sum())
    assert m.am_mm2 == pytest.approx(m.am * 0.01)
    # A cut-off above every output leaves nothing; recomputation needs no model.
    none = requantify(analysis, threshold=1.0, x=100) if p.max() <= 1.0 else requantify(analysis, threshold=1.0, x=255)
    assert none.am == int((p > 1.0).sum())
    assert analysis.mask().dtype == np.uint8 and set(np.unique(analysis.mask())) <= {0, 255}
