from __future__ import annotations

import pytest

from medlim.errors import ParameterError
from medlim.mammography.exam import ViewReadout, group_exams, longitudinal_changes


def _exam(date: str, lcc: float, lmlo: float, rcc: float, rmlo: float, area: float = 1000.0) -> list[ViewReadout]:
    return [
        ViewReadout("P1", date, "L", "CC", lcc, area),
        ViewReadout("P1", date, "L", "MLO", lmlo, area),
        ViewReadout("P1", date, "R", "CC", rcc, area),
        ViewReadout("P1", date, "R", "MLO", rmlo, area),
    ]


def test_exam_total_is_sum_of_normalised_tam() -> None:
    (exam,) = group_exams(_exam("2020-01-01", 10, 20, 30, 40))
    # (10 + 20 + 30 + 40) / 1000
    assert exam.total == pytest.approx(0.1)
    assert exam.views_counted == 4
    assert exam.disagreement == {"L": pytest.approx(0.01), "R": pytest.approx(0.01)}


def test_change_flag_uses_cc_mlo_disagreement() -> None:
    views = _exam("2020-01-01", 10, 20, 30, 40) + _exam("2021-01-01", 40, 50, 30, 40)
    (change,) = longitudinal_changes(group_exams(views))
    # total: 0.1 -> 0.16, delta 0.06; noise = max(0.01,0.01) + max(0.01,0.01) = 0.02
    assert change.delta == pytest.approx(0.06)
    assert change.noise == pytest.approx(0.02)
    assert change.is_real is True
    left_cc = next(v for v in change.views if v.laterality == "L" and v.view == "CC")
    assert left_cc.delta == pytest.approx(0.03)
    assert left_cc.is_real is True
    right_cc = next(v for v in change.views if v.laterality == "R" and v.view == "CC")
    assert right_cc.delta == pytest.approx(0.0)
    assert right_cc.is_real is False


def test_small_change_within_view_noise_is_not_real() -> None:
    # left breast CC/MLO disagree by 0.05 at the later exam; total changes by 0.03
    views = _exam("2020-01-01", 10, 10, 10, 10) + _exam("2021-01-01", 10, 60, 10, 10)
    (change,) = longitudinal_changes(group_exams(views))
    assert change.delta == pytest.approx(0.05)
    assert change.noise == pytest.approx(0.05)  # 0.05 (left) + 0.0 (right)
    assert change.is_real is False  # not strictly larger


def test_missing_view_gives_undetermined_flag() -> None:
    views = _exam("2020-01-01", 10, 20, 30, 40)[:3] + _exam("2021-01-01", 40, 50, 30, 40)
    (change,) = longitudinal_changes(group_exams(views))
    assert change.noise is None
    assert change.is_real is None


def test_duplicate_view_in_exam_is_rejected() -> None:
    views = _exam("2020-01-01", 10, 20, 30, 40) + [ViewReadout("P1", "2020-01-01", "L", "CC", 5, 100)]
    with pytest.raises(ParameterError, match="two LCC"):
        group_exams(views)


def test_zero_breast_area_is_rejected() -> None:
    with pytest.raises(ParameterError, match="breast area"):
        ViewReadout("P1", "2020-01-01", "L", "CC", 5, 0)
