"""The detector plan derived from a user's data (hand-computed from the rules in medlim.curation.ood.plan)."""

from __future__ import annotations

import pytest

from medlim.curation.ood.folder import resolve_id_classes
from medlim.curation.ood.plan import PATIENCE, plan_detector, plan_input_size
from medlim.errors import ParameterError


@pytest.mark.parametrize(
    ("kind", "height", "width", "size"),
    [("tend", 512, 400, 128), ("tend", 100, 90, 64), ("tend", 32, 32, 64), ("cvad", 32, 32, 32),
     ("cvad", 100, 300, 64), ("cvad", 2000, 2000, 128), ("tend", None, None, 64), ("cvad", 127, 127, 64),
     ("cvad", 200, 160, 128), ("tend", 200, 160, 128)],
)
def test_input_size_follows_the_median_image(kind: str, height: int | None, width: int | None, size: int) -> None:
    assert plan_input_size(kind, height, width)[0] == size


def test_tend_plan_for_600_images_is_close_to_the_shipped_recipe() -> None:
    planned = plan_detector("tend", median_height=256, median_width=256, n_train=600, id_counts={"hand": 600},
                            colour=0, images=600, negatives="other classes")
    config = planned.config
    # batch min(16, 600 // 4) = 16 → 37 batches; AE ⌈1100/37⌉ = 30, TEND ⌈5600/37⌉ = 152, warm-up round(152/15) = 10
    assert (config.input_size, config.batch_size, config.ae_epochs, config.tend_epochs, config.warmup_epochs) == (
        128, 16, 30, 152, 10)
    assert (config.margin, config.train_encoder, len(config.distortions)) == (500.0, True, 9)
    assert planned.patience == PATIENCE and planned.plan.overridden == ()
    assert "cvad_epochs" not in planned.plan.settings and planned.plan.settings["patience"] == PATIENCE
    assert set(planned.plan.reasons) >= {"input_size", "normalisation", "augmentation", "epochs", "early_stopping",
                                         "class_balance", "colour", "lr"}


def test_cvad_plan_for_a_few_colour_images_with_overrides() -> None:
    planned = plan_detector("cvad", median_height=64, median_width=80, n_train=14, id_counts={"a": 10, "b": 4},
                            colour=3, images=14, negatives="distortions", overrides={"width": 4, "lr": None})
    config = planned.config
    # batch min(32, max(2, 14 // 4)) = 3 → 4 batches; CVAD ⌈2800/4⌉ = 700 → 300 (bound), disc ⌈230/4⌉ = 58
    assert (config.input_size, config.batch_size, config.cvad_epochs, config.disc_epochs) == (64, 3, 300, 58)
    assert (config.width, config.recon_weight, config.lr) == (4, 300.0, 1e-3)
    assert planned.plan.overridden == ("width",)
    assert planned.plan.reasons["colour"].startswith("3 of 14 images are colour")
    assert planned.plan.reasons["class_balance"].endswith("(a 10, b 4)")


def test_a_short_tend_run_keeps_its_warm_up_below_its_epochs() -> None:
    planned = plan_detector("tend", median_height=64, median_width=64, n_train=20, id_counts={"x": 20}, colour=0,
                            images=20, negatives="n", overrides={"tend_epochs": 1})
    assert (planned.config.tend_epochs, planned.config.warmup_epochs) == (1, 0)


def test_id_classes_against_the_folders_classes() -> None:
    classes = ("disc", "square", "stripes")
    assert resolve_id_classes("disc", classes) == ("disc",)
    assert resolve_id_classes(" disc, square ", classes) == ("disc", "square")
    assert resolve_id_classes("!disc", classes) == ("square", "stripes")
    with pytest.raises(ParameterError, match="its classes: disc, square, stripes"):
        resolve_id_classes("hand", classes)
    with pytest.raises(ParameterError, match="not a class of the folder"):
        resolve_id_classes("!hand", classes)
    with pytest.raises(ParameterError, match="give class folders"):
        resolve_id_classes("hand", ())
    # another site's spelling of the class, matched as `ood evaluate` matches folders
    sites = ("XR_HUMERUS", "XR_HAND", "Wrists")
    assert resolve_id_classes("humerus", sites) == ("XR_HUMERUS",)
    assert resolve_id_classes("Hand, wrist", sites) == ("XR_HAND", "Wrists")
    assert resolve_id_classes("!hand", sites) == ("XR_HUMERUS", "Wrists")
    with pytest.raises(ParameterError, match="which the folder does not have"):
        resolve_id_classes("elbow", sites)


@pytest.mark.parametrize("side", [20, 40, 70, 96, 100, 127, 150, 160, 200, 255, 300, 1000])
def test_every_planned_side_builds_its_networks(side: int) -> None:
    # the plans round sides so that the networks accept them: CVAD's branch latent (4 · latent values on a
    # (side / 16)² grid) took 96 or 160 nowhere — before 2026-12-06 a folder of ~100 px images failed to train
    from medlim.curation.ood.nets import CvadNet, TendNet
    from medlim.curation.retrieval.plan import plan_oscars

    for kind in ("tend", "cvad"):
        config = plan_detector(kind, median_height=side, median_width=side + 7, n_train=40, id_counts={"hand": 40},
                               colour=0, images=40, negatives="other classes").config
        if kind == "cvad":
            CvadNet(width=4, input_size=config.input_size, latent=config.latent)
        else:
            TendNet(width=4, input_size=config.input_size, embedding=config.embedding)
    family = plan_oscars(median_height=side, median_width=side, n_train=56, class_counts={"a": 28, "b": 28},
                         internal_counts={"a": 20, "b": 20}, colour=0, images=56)
    assert family.detector.input_size == family.config.input_size
    CvadNet(width=4, input_size=family.detector.input_size, latent=family.detector.latent)
