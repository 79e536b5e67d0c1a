"""Training plans of OSCARS and PMS from a user's data (issue 12): hand-computed settings and their reasons."""

from __future__ import annotations

import pytest

from medlim.curation.retrieval.folder import family_names
from medlim.curation.retrieval.plan import plan_input_size, plan_oscars, plan_pms
from medlim.errors import ParameterError

SEVEN = {c: 96 for c in ("elbow", "finger", "forearm", "hand", "humerus", "shoulder", "wrist")}


@pytest.mark.parametrize(("height", "width", "size"), [(512, 400, 64), (48, 40, 32), (32, 32, 32), (70, 90, 64),
                                                       (20, 20, 32), (None, None, 64)])
def test_input_size_from_the_median_image(height: int | None, width: int | None, size: int) -> None:
    assert plan_input_size(height, width)[0] == size


@pytest.mark.parametrize(("height", "width", "size"), [(512, 400, 128), (256, 256, 128), (100, 90, 64), (48, 40, 32),
                                                       (127, 200, 64), (160, 160, 128), (96, 96, 64), (20, 20, 32)])
def test_an_oscars_family_plans_up_to_128(height: int, width: int, size: int) -> None:
    assert plan_input_size(height, width, cap=128)[0] == size


def test_oscars_plan_matches_the_shipped_steps() -> None:
    # 7 × 120 external images, 80 % trained on: 672 → 21 batches of 32 anchors → ceil(2800 / 21) = 134 epochs;
    # 200 internal per class, every fifth held back: 160 → 10 batches of 16 → ceil(360 / 10) = 36 generator
    # and ceil(120 / 10) = 12 discriminator epochs
    planned = plan_oscars(median_height=512, median_width=512, n_train=672, class_counts=SEVEN,
                          internal_counts={c: 200 for c in SEVEN}, colour=0, images=672, seed=3)
    assert (planned.config.input_size, planned.config.epochs, planned.config.anchors) == (128, 134, 32)
    assert planned.config.lr_schedule == "poly" and planned.patience == 34  # a quarter of 134, rounded up
    assert planned.config.augment and planned.plan.settings["augment"] is True
    # the planned deviations for a user's folders, recorded with their reasons (the thesis: random partners)
    assert (planned.config.augmentation, planned.config.mining) == ("strong", "semihard-all")
    assert planned.plan.settings["mining"] == "semihard-all" and "thesis draws every partner at random" in \
        planned.plan.reasons["mining"] and "intra-class negative" in planned.plan.reasons["mining"]
    # OSCARS's λ: 0.2 for a user's folders, stated as a deviation from the thesis's 0.05
    assert planned.config.oscars_weight == planned.plan.settings["oscars_weight"] == 0.2
    assert "thesis's λ is 0.05" in planned.plan.reasons["oscars_weight"]
    assert (planned.detector.epochs, planned.detector.head_epochs, planned.detector.input_size) == (36, 12, 128)
    assert "chosen on validation radiographs" in planned.plan.reasons["input_size"]
    settings = planned.plan.settings
    assert settings["detector"]["generator_epochs"] == 36 and settings["patience"] == 34 and settings["seed"] == 3
    assert set(planned.plan.reasons) >= {"input_size", "normalisation", "augment", "epochs", "early_stopping",
                                          "class_balance", "validation", "detector"}
    assert planned.plan.overridden == ()


def test_command_line_settings_win_and_are_recorded() -> None:
    planned = plan_oscars(median_height=32, median_width=32, n_train=40, class_counts={"a": 20, "b": 20},
                          internal_counts={"a": 10, "b": 10}, colour=0, images=40,
                          overrides={"width": 4, "detector_epochs": 3, "epochs": None, "mining": "random"})
    assert planned.config.width == 4 and planned.detector.epochs == 3 and planned.detector.head_epochs == 1
    assert planned.config.mining == "random" and planned.config.augmentation == "strong"
    assert planned.plan.overridden == ("detector_epochs", "mining", "width")
    assert planned.plan.reasons["width"] == "given on the command line (planned: 16)"
    thesis = plan_oscars(median_height=32, median_width=32, n_train=40, class_counts={"a": 20, "b": 20},
                         internal_counts={"a": 10, "b": 10}, colour=0, images=40, overrides={"oscars_weight": 0.05})
    assert thesis.config.oscars_weight == 0.05 and thesis.plan.settings["oscars_weight"] == 0.05
    assert thesis.plan.reasons["oscars_weight"] == "given on the command line (planned: 0.2)"


def test_pms_plan_keeps_the_thesis_steps_on_fewer_images() -> None:
    # 480 training images → 15 batches of 32: ceil(380 / 15) = 26 warm-up, ceil(750 / 15) = 50 joint epochs
    planned = plan_pms(median_height=1024, median_width=1024, n_train=480, label_counts={"No Finding": 100, "a": 50},
                       colour=2, images=480)
    config = planned.config
    assert (config.input_size, config.batch_size, config.warmup_epochs, config.epochs) == (64, 32, 26, 50)
    assert planned.patience == 13  # a quarter of the 50 joint epochs, rounded up
    assert (config.branch_dim, config.bank_size) == (256, 1000)
    assert "No Finding 100" in planned.plan.reasons["class_balance"]
    assert planned.plan.reasons["colour"].startswith("2 of 480 images are colour")


def test_family_names() -> None:
    assert family_names("mine", ("oscars", "triplet")) == {"oscars": "mine", "triplet": "mine-triplet"}
    assert family_names("x", ("triplet", "classification"))["classification"] == "x-classification"
    with pytest.raises(ParameterError, match="--methods must name"):
        family_names("x", ("oscars", "deeprank"))
