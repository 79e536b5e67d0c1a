"""Issue 13 evidence: MedShift on mild named shifts. Slow (~2–6 min on 1 core).

Internal: 60 internal-site phantoms per body part (seed 101), humerus, forearm, hand.
External: 40 per body part (seed 202), half of them with one named shift (blur, lowres,
cast, noise, grid, exposure, tint) at a severity uniform in [0.05, 1]. The run defaults
(``ShiftRunConfig``: CVAD 60 + 20 epochs fused with the acquisition statistics,
elbow-rule k, log scale, lowest group anchored at each class's calibrated threshold).
These seeds were held out once (2026-12-05: AUROC 1.000, shifted share by group
0.110 / 1.0 with k = 2, unanchored); that figure led to the anchored lowest group, so they
are validation data since (anchored: 0.0 / 1.0 / 1.0, k = 3). The held-out figures of the
anchored defaults are on seeds 107/208 (README "MedShift"). The thesis's score alone
(``stats=False``) gave AUROC 0.622 here.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def mild_run():
    import torch

    from medlim.curation.shift.data import parse_dataset
    from medlim.curation.shift.service import ShiftRunConfig, run_configured

    torch.set_num_threads(1)
    return run_configured(parse_dataset("phantom:internal:101:60:humerus,forearm,hand"),
                          parse_dataset("phantom:named0.05-1x0.5:202:40:humerus,forearm,hand"), ShiftRunConfig())


def test_fused_score_separates_mild_shifts(mild_run) -> None:
    assert mild_run.settings["method"] == "medshift-cvad+stats"
    assert mild_run.evidence["auroc"] >= 0.85


def test_lowest_group_is_mostly_unshifted(mild_run) -> None:
    assert mild_run.evidence["lowest_group_shifted"] <= 0.10
    assert mild_run.evidence["highest_group_shifted"] >= 0.80
