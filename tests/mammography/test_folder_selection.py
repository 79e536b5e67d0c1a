"""Issue 12: epoch and cut-off chosen on whole validation views, and hard negatives mined where the network fires."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from medlim.errors import ParameterError
from medlim.mammography.evaluate import ImageEvaluation, evaluate_image
from medlim.mammography.inference import BacPrediction
from medlim.mammography.plan import AugmentationPolicy, PatchCounts, plan_scunet
from medlim.mammography.preprocess import PreprocessedImage
from medlim.mammography.selection import choose_cutoff, spread_views, whole_view_score
from medlim.mammography.train import crop_corners, draw_negatives, false_positive_spots, interleave


def _view(name: str, *, dice: float = 0.0, false_px: int = 0, area: float | None = 0.01,
          has_bac: bool = False) -> ImageEvaluation:
    """A view evaluated at one cut-off: with BAC and Dice ``dice``, or BAC-free with ``false_px`` predicted pixels."""
    metrics = {"recall": dice, "precision": dice, "accuracy": 1.0, "f1": dice, "jaccard": dice}
    readouts = {"pm": float(false_px), "am": float(false_px), "sim": 0.0, "tam_x": 0.0, "tsim_x": 0.0}
    counts = (10, 0, 0, 90) if has_bac else (0, false_px, 0, 100 - false_px)
    return ImageEvaluation(name=name, whole=metrics, patches=(), predicted=readouts, truth=readouts, counts=counts,
                           tam_100=(1.0, 1.0) if has_bac else (0.0, 0.0), pixel_area_mm2=area)


def test_whole_view_score_hand_computed() -> None:
    views = [_view("a", dice=0.8, has_bac=True), _view("b", dice=0.6, has_bac=True),
             _view("free1", false_px=50, area=0.01),   # 0.5 mm²: 0.5 / (0.5 + 0.5) = 0.5
             _view("free2", false_px=0),                # nothing predicted: 0
             _view("free3", false_px=100, area=None)]  # no spacing: 100 px / (100 + 100 px) = 0.5
    score = whole_view_score(views, cutoff=0.7)
    # Dice (0.8 + 0.6) / 2 = 0.7; costs 0.5, 0, 0.5: mean 1/3, median 0.5 — within the target, so the score is the Dice
    assert score.dice_bac == pytest.approx(0.7) and score.false_penalty == pytest.approx(1 / 3)
    assert score.feasible and score.score == pytest.approx(0.7)
    assert score.false_mm2_median == pytest.approx(0.25)  # median of 0.5 and 0 mm² (free3 has no spacing)
    assert score.false_px_median == 50.0 and (score.views, score.bac_free_views) == (5, 3)
    assert score.to_json()["whole_view_score"] == 0.7 and score.to_json()["whole_view_false_area_within_target"]
    # one more false pixel on free1 (0.51 mm², cost 0.51 / 1.01) and free2 at 1 mm² (cost 2/3): median cost 0.5050 > ½
    over = [*views[:2], _view("free1", false_px=51, area=0.01), _view("free2", false_px=100, area=0.01), views[4]]
    missed = whole_view_score(over, cutoff=0.7)
    assert not missed.feasible and missed.score == pytest.approx(-0.51 / 1.01)  # minus the median cost
    with pytest.raises(ParameterError, match="at least one view with BAC"):
        whole_view_score(views[2:], cutoff=0.5)


def test_an_even_number_of_bac_free_views_is_judged_by_the_median_area_it_reports() -> None:
    # four BAC-free views at 0, 0.04, 1.0 and 3.0 mm² (0.01 mm² pixels): the median area is (0.04 + 1.0) / 2 =
    # 0.52 mm², over the target. The median of the costs f / (f + 0.5) — (0.0741 + 0.6667) / 2 = 0.370 — passed it.
    views = [_view("a", dice=0.6, has_bac=True), *(_view(f"free{k}", false_px=px, area=0.01)
                                                    for k, px in enumerate((0, 4, 100, 300)))]
    score = whole_view_score(views, cutoff=0.5)
    assert score.false_mm2_median == pytest.approx(0.52) and not score.feasible
    assert score.score == pytest.approx(-1.04 / 2.04)  # −m / (m + 1), m = 0.52 / 0.5
    assert score.false_penalty == pytest.approx((0 + 0.04 / 0.54 + 1 / 1.5 + 3 / 3.5) / 4)
    # the third view at 0.9 mm²: median 0.47 mm², within the target, and the Dice is the score
    within = whole_view_score([*views[:3], _view("free2", false_px=90, area=0.01), views[4]], cutoff=0.5)
    assert within.false_mm2_median == pytest.approx(0.47) and within.feasible and within.score == pytest.approx(0.6)


def _prediction(probability: np.ndarray) -> BacPrediction:
    grey = np.full(probability.shape, 200, np.uint8)
    return BacPrediction(probability=probability.astype(np.float32),
                         preprocessed=PreprocessedImage(grey=grey, breast_mask=np.ones(probability.shape, bool)),
                         preset="thesis", merge="max", stride=448, patches_total=1, patches_predicted=1, device="cpu",
                         seconds=0.0)


def test_the_cutoff_is_chosen_on_whole_views_where_false_area_counts() -> None:
    # a view with 4 BAC pixels at p 0.9 and two false pixels at 0.65 and 0.45; a BAC-free view (0.5 mm pixels,
    # 0.25 mm² each) with false pixels at 0.75 and 0.55
    with_bac = np.zeros((8, 8), np.float32)
    truth = np.zeros((8, 8), bool)
    truth[2, 2:6] = True
    with_bac[truth] = 0.9
    with_bac[6, 1], with_bac[6, 5] = 0.65, 0.45
    free = np.zeros((8, 8), np.float32)
    free[1, 1], free[5, 5] = 0.75, 0.55
    per_cutoff = {t: [evaluate_image("bac", _prediction(with_bac), truth, threshold=t, x=100.0),
                      evaluate_image("free", _prediction(free), np.zeros((8, 8), bool), threshold=t, x=100.0,
                                     pixel_spacing_mm=0.5)]
                  for t in (0.4, 0.5, 0.7, 0.85)}
    scores = {t: whole_view_score(v, cutoff=t).score for t, v in per_cutoff.items()}
    # every cut-off keeps the false area within 0.5 mm² (0.5, 0.5, 0.25, 0 mm²): the Dice decides
    assert scores[0.4] == pytest.approx(0.8) and scores[0.5] == pytest.approx(8 / 9)
    assert scores[0.7] == pytest.approx(1.0) and scores[0.85] == pytest.approx(1.0)
    assert choose_cutoff(per_cutoff).cutoff == 0.7  # 0.7 and 0.85 tie: the one nearer 0.5
    # 0.75 mm pixels (0.5625 mm² each): only 0.85 keeps the BAC-free view within the target
    coarse = {t: [views[0], evaluate_image("free", _prediction(free), np.zeros((8, 8), bool), threshold=t, x=100.0,
                                            pixel_spacing_mm=0.75)] for t, views in per_cutoff.items()}
    scores = {t: whole_view_score(v, cutoff=t).score for t, v in coarse.items()}
    # 0.4 and 0.5: 1.125 mm² → −1.125 / 1.625;  0.7: 0.5625 mm² → −0.5625 / 1.0625;  0.85: Dice 1
    assert scores[0.4] == pytest.approx(-1.125 / 1.625) and scores[0.5] == pytest.approx(-1.125 / 1.625)
    assert scores[0.7] == pytest.approx(-0.5625 / 1.0625) and scores[0.85] == pytest.approx(1.0)
    best = choose_cutoff(coarse)
    assert best.cutoff == 0.85 and best.false_mm2_median == 0.0
    # the view with BAC alone would call 0.7 as good as 0.85: only the BAC-free view separates them
    assert choose_cutoff({t: coarse[t][:1] for t in (0.7, 0.85)}).cutoff == 0.7  # tie: the one nearer 0.5


def test_validation_views_are_spread_over_both_kinds() -> None:
    assert spread_views([True, True, True, False, False, False, False, False, False], 4) == [0, 2, 3, 8]
    # one view with BAC: it and 7 of the 9 BAC-free views, evenly spread (positions 0, 1, 3, 4, 5, 7, 8)
    assert spread_views([True] + [False] * 9, 8) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert spread_views([True, False], 8) == [0, 1]
    with pytest.raises(ParameterError, match="limit"):
        spread_views([True], 0)


def test_batches_interleave_bac_crops_and_hard_negatives_are_drawn_by_hardness() -> None:
    # slots 2 and 5 of 6 hold the BAC patches: every batch of 3 gets one
    assert interleave(np.array([10, 11]), np.array([20, 21, 22, 23])).tolist() == [20, 21, 10, 22, 23, 11]
    hardness = np.array([0.0, 5.0, 0.0, 15.0])
    rng = np.random.default_rng(0)
    assert sorted(draw_negatives(hardness, 2, hard_share=1.0, rng=rng).tolist()) == [1, 3]
    first = [draw_negatives(hardness, 2, hard_share=0.5, rng=rng) for _ in range(2000)]
    assert all(d[0] in (1, 3) and len(set(d)) == 2 for d in first)
    assert np.mean([d[0] == 3 for d in first]) == pytest.approx(0.75, abs=0.04)  # 15 / (5 + 15)
    assert sorted(draw_negatives(np.zeros(3), 3, hard_share=0.5, rng=rng).tolist()) == [0, 1, 2]  # none hard yet


def test_false_positive_spots_trace_the_strongest_pixel_back_to_the_patch() -> None:
    probability = np.zeros((2, 4, 4), np.float32)
    probability[0, 1, 2], probability[0, 3, 3] = 0.9, 0.6
    # crop 0 was cut at (10, 20) and flipped left-right: output column c came from crop column 3 − c
    rows, cols = np.mgrid[0:4, 0:4].astype(np.float32)
    coordinates = np.stack([np.stack([10 + rows, 20 + 3 - cols]), np.stack([rows, cols])])
    counts, spots = false_positive_spots(probability, coordinates)
    assert counts.tolist() == [2, 0] and spots.tolist() == [[11, 21], [-1, -1]]


def test_crops_of_a_hard_negative_hold_its_false_positive() -> None:
    grey = np.full((1, 128, 128), 100, np.uint8)
    mask = np.zeros((1, 128, 128), bool)
    for seed in range(20):
        (top, left), = crop_corners(grey, mask, size=64, rng=np.random.default_rng(seed), centres=np.array([[5, 120]]))
        # between a quarter and three quarters of the crop from the spot, clipped to the patch
        assert top <= 5 < top + 64 and left <= 120 < left + 64 and top == 0 and left == 64
        (top, left), = crop_corners(grey, mask, size=64, rng=np.random.default_rng(seed), centres=np.array([[64, 70]]))
        assert 64 - 48 <= top <= 64 - 16 and 70 - 48 <= left <= 70 - 16  # the spot 16–48 px inside the crop
    # without a centre the crop is the fullest of the random positions, as before
    assert crop_corners(grey, mask, size=64, rng=np.random.default_rng(0), centres=np.array([[-1, -1]])).shape == (1, 2)


class _FiresOnBrightSpots(nn.Module):
    """A fake network: logit +12 where the normalised input is 0.3 above the patch mean, −12 elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.weight * 40.0 * (inputs[:, :1] - 0.3)


def test_training_steps_mine_where_the_network_fires() -> None:
    from medlim.mammography.folder import PatchPool, ScunetFolderTrainer

    grey = np.full((3, 64, 64), 100, np.uint8)
    grey[1, 40, 10] = 255  # a BAC-free patch with one bright spot the fake network reads as BAC
    mask = np.zeros((3, 64, 64), bool)
    mask[0, 30:34, 30] = True  # the BAC patch
    pool = PatchPool(grey=grey, mask=mask, views=3, bac_free_views=2, grid_patches=3, seconds=0.0)
    counts = PatchCounts(train_views=3, train_bac_free_views=2, positives=1, negatives=2, val_views=1,
                         val_bac_free_views=0, val_positives=1, val_negatives=0)
    plan = plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=counts,
                       overrides={"patch_size": 64, "batch_size": 3, "steps_per_epoch": 1, "epochs": 1})
    # every crop flipped both ways and turned, no intensity change: the spot must be traced back through them
    flips_only = AugmentationPolicy(flip=1.0, rotate=1.0, contrast_p=0.0, gamma_p=0.0, noise_p=0.0, blur_p=0.0,
                                    resolution_p=0.0)
    plan = dataclasses.replace(plan, augmentation=flips_only)
    trainer = ScunetFolderTrainer(_FiresOnBrightSpots(), pool, grey[:1], mask[:1], plan, device=torch.device("cpu"))
    trainer.train_epoch(1)
    # 1 BAC patch and round(1.5 × 1) = 2 BAC-free ones: both negatives visited
    assert trainer.hardness.tolist() == [0.0, 1.0, 0.0]
    assert trainer.hot_spot.tolist() == [[-1, -1], [40, 10], [-1, -1]]
    assert draw_negatives(trainer.hardness[trainer.negative], 1, hard_share=1.0,
                          rng=np.random.default_rng(0)).tolist() == [0]  # the spotted patch, first negative


def test_view_balance_draws_each_views_bac_patches_as_often_in_all() -> None:
    from medlim.mammography.folder import PatchPool, ScunetFolderTrainer

    # view 0: three BAC patches (heavy BAC), view 1: one (a speck of mild BAC), view 2: a BAC-free patch
    grey = np.full((5, 64, 64), 100, np.uint8)
    mask = np.zeros((5, 64, 64), bool)
    mask[:4, 30, 30] = True
    view_of = np.array([0, 0, 0, 1, 2])
    pool = PatchPool(grey=grey, mask=mask, views=3, bac_free_views=1, grid_patches=5, seconds=0.0, view_of=view_of)
    counts = PatchCounts(train_views=3, train_bac_free_views=1, positives=4, negatives=1, val_views=1,
                         val_bac_free_views=0, val_positives=1, val_negatives=0)

    def trainer(balance: str | None) -> ScunetFolderTrainer:
        plan = plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=counts,
                           overrides={"patch_size": 64, "positive_balance": balance})
        return ScunetFolderTrainer(_FiresOnBrightSpots(), pool, grey[:1], mask[:1], plan, device=torch.device("cpu"))

    plain = trainer(None)
    assert plain.plan.positive_balance == "patches" and sorted(plain._positives().tolist()) == [0, 1, 2, 3]
    balanced = trainer("views")
    # weights 1/3, 1/3, 1/3 and 1: the single patch of view 1 is half of all draws
    draws = np.concatenate([balanced._positives() for _ in range(2000)])
    assert len(balanced._positives()) == 4 and set(draws.tolist()) <= {0, 1, 2, 3}
    assert (draws == 3).mean() == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ParameterError, match="--balance"):
        plan_scunet(device="cpu", fine_tune=True, preset="thesis", skip=True, counts=counts,
                    overrides={"positive_balance": "classes"})


def test_a_gate_keeps_a_faint_artery_whole_and_drops_faint_tissue() -> None:
    from medlim.mammography.gating import ComponentGate, gate_components
    from medlim.mammography.selection import choose_gate

    # an artery of 6 pixels: one at p 0.95, five at 0.5; a BAC-free view (0.5 mm pixels, 0.25 mm² each) with a
    # ligament of 4 pixels at p 0.6
    artery = np.zeros((8, 8), np.float32)
    truth = np.zeros((8, 8), bool)
    truth[3, 1:7] = True
    artery[truth] = 0.5
    artery[3, 1] = 0.95
    tissue = np.zeros((8, 8), np.float32)
    tissue[5, 2:6] = 0.6

    def views(cutoff: float, gate: ComponentGate | None) -> list[ImageEvaluation]:
        def g(p: np.ndarray) -> np.ndarray:
            return p if gate is None else gate_components(p, gate)

        return [evaluate_image("bac", _prediction(g(artery)), truth, threshold=cutoff, x=100.0),
                evaluate_image("free", _prediction(g(tissue)), np.zeros((8, 8), bool), threshold=cutoff, x=100.0,
                               pixel_spacing_mm=0.5)]

    # plain cut-offs: 0.4 keeps the artery (Dice 1) and the ligament (1 mm², over the target); 0.7 drops the
    # ligament but keeps 1 of 6 artery pixels (Dice 2/7)
    assert whole_view_score(views(0.4, None), cutoff=0.4).score == pytest.approx(-1.0 / 1.5)
    assert choose_cutoff({t: views(t, None) for t in (0.4, 0.7)}).score == pytest.approx(2 / 7)
    # floor 0.4 and seed 0.9: the artery reaches 0.95 (kept whole), the ligament peaks at 0.6 (dropped)
    gates = (ComponentGate(0.4, 0.9), ComponentGate(0.4, 0.98))
    best = choose_gate({gate: views(gate.floor, gate) for gate in gates})
    assert best.gate == ComponentGate(0.4, 0.9) and best.score == pytest.approx(1.0) and best.false_mm2_median == 0.0
    assert best.to_json()["gate"] == {"floor": 0.4, "seed": 0.9}


def test_a_gate_replaces_the_cutoff_only_with_a_higher_score_and_no_more_false_area_on_average() -> None:
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.selection import WholeViewScore, gate_over_cutoff

    def scored(seed: float, score: float, penalty: float) -> WholeViewScore:
        return WholeViewScore(cutoff=0.2, score=score, dice_bac=score, false_penalty=penalty, false_mm2_median=0.0,
                              false_px_median=0.0, tam_relative_bias=0.0, views=8, bac_free_views=4,
                              gate=ComponentGate(0.2, seed))

    best, tail, low = scored(0.8, 0.45, 0.40), scored(0.9, 0.43, 0.20), scored(0.95, 0.39, 0.10)
    # the plain cut-off scores 0.40 at a mean false cost of 0.25: the best gate (0.45) costs more on average
    # (0.40 — a few views with widened false regions), so the next one (0.43 at 0.20) is kept; 0.39 is below 0.40
    assert gate_over_cutoff([best, tail, low], plain_score=0.40, plain_false_penalty=0.25) is tail
    assert gate_over_cutoff([best, low], plain_score=0.40, plain_false_penalty=0.25) is None
    # equal mean cost (to the manifest's 4 decimals) is allowed
    assert gate_over_cutoff([best], plain_score=0.40, plain_false_penalty=0.400004) is best


def test_the_setting_rule_keeps_the_plain_cutoff_unless_a_gate_scores_higher_at_no_more_mean_false_cost() -> None:
    from medlim.mammography.gating import ComponentGate
    from medlim.mammography.selection import choose_setting

    def views(dice: float, false_px: tuple[int, int, int]) -> list[ImageEvaluation]:
        return [_view("bac", dice=dice, has_bac=True), *(_view(f"free{i}", false_px=f) for i, f in enumerate(false_px))]

    # at 0.01 mm² per px: 0 / 50 / 100 px are 0 / 0.5 / 1 mm², costs 0 / 0.5 / 0.667
    per_cutoff = {0.5: views(0.6, (0, 100, 100)),   # median 1 mm²: over the target, score −(2 / 3)
                  0.9: views(0.3, (0, 0, 100))}     # median 0: Dice 0.3, mean cost 0.667 / 3 = 0.222
    wide, narrow = ComponentGate(0.2, 0.95), ComponentGate(0.6, 0.98)
    per_gate = {wide: views(0.5, (0, 0, 200)),      # Dice 0.5 but mean cost (2 / 2.5) / 3 = 0.267 > 0.222
                narrow: views(0.35, (0, 0, 50))}    # Dice 0.35 at mean cost 0.5 / 3 = 0.167
    choice = choose_setting(per_cutoff, per_gate)
    assert choice.plain.cutoff == 0.9 and choice.plain.score == pytest.approx(0.3)
    assert choice.plain.false_penalty == pytest.approx(2 / 9)
    assert [g.gate for g in choice.gates] == [wide, narrow]
    assert choice.gates[0].false_penalty == pytest.approx(0.8 / 3) and choice.gates[1].false_penalty == pytest.approx(0.5 / 3)
    assert choice.kept is choice.gates[1] and choice.chosen.gate == narrow and choice.chosen.cutoff == 0.6
    # without the narrow gate none is kept: the plain cut-off stands
    alone = choose_setting(per_cutoff, {wide: per_gate[wide]})
    assert alone.kept is None and alone.chosen is alone.plain


def test_a_region_filter_is_kept_when_no_worse_and_better_in_score_or_mean_false_area() -> None:
    from medlim.mammography.selection import WholeViewScore, filter_over_cutoff

    def scored(score: float, penalty: float) -> WholeViewScore:
        return WholeViewScore(cutoff=0.5, score=score, dice_bac=score, false_penalty=penalty, false_mm2_median=0.0,
                              false_px_median=0.0, tam_relative_bias=0.0, views=8, bac_free_views=4)

    without = scored(0.4042, 0.1945)
    assert filter_over_cutoff(scored(0.4044, 0.0), without)         # better in both (the README's run)
    assert filter_over_cutoff(scored(0.4042, 0.1), without)         # same score, less false area
    assert filter_over_cutoff(scored(0.41, 0.1945), without)        # higher score, same false area
    assert not filter_over_cutoff(scored(0.4042, 0.1945), without)  # no better in either
    assert not filter_over_cutoff(scored(0.40, 0.0), without)       # less false area bought with Dice
    assert not filter_over_cutoff(scored(0.40421, 0.1945), without)  # better only past the manifest's 4 decimals
