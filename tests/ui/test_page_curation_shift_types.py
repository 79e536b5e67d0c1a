"""AppTest: the curation page's per-shift-type table equals ``medlim shift show`` (issue 13)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.test_page_curation import PAGE, TIMEOUT, _store, medlim_home  # noqa: F401 - the fixture


def test_shift_types_tab_equals_shift_show(medlim_home: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    import torch

    from medlim.cli import main
    from medlim.core.colours import SERIES
    from medlim.curation.ood.shift_types import ShiftTypeTable
    from medlim.curation.shift.classifier import ClassifierConfig
    from medlim.curation.shift.data import phantom_image_set
    from medlim.curation.shift.detectors import DetectorConfig
    from medlim.curation.shift.pipeline import ShiftConfig, run_shift
    from medlim.curation.shift.report import save_result

    torch.set_num_threads(1)
    config = ShiftConfig(detector=DetectorConfig(input_size=32, epochs=1, head_epochs=1),
                         classifier=ClassifierConfig(epochs=1), k=2, otdd_repeats=2, otdd_max_samples=10)
    internal = phantom_image_set(seed=31, per_class=6, body_parts=("hand", "elbow"))
    external = phantom_image_set(seed=33, per_class=8, body_parts=("hand", "elbow"), severity_range=(0.05, 1.0),
                                 named_shifts=True)
    result = run_shift(internal, external, config)
    with _store(medlim_home) as store:
        save_result(store, result, home=medlim_home, dataset="named")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert [tab.label for tab in at.tabs][-1] == "Shift types"
    shown = at.dataframe[-1].value

    assert main(["shift", "show", "--dataset", "named", "--json"]) == 0
    printed = ShiftTypeTable.from_dict(json.loads(capsys.readouterr().out)["shift_types"])
    assert printed.detectors == ("medshift-cvad+stats",) and set(printed.shift_types) == set(k for k in external.shift_types
                                                                                          if k)
    assert sum(row.images for row in printed.rows) == sum(bool(k) for k in external.shift_types)
    for record, expected in zip(shown.to_dict("records"), printed.wide_rows()):
        for column, value in expected.items():
            got = record[column]
            assert (value is None and (got is None or math.isnan(got))) or got == value, (column, got, value)
    assert main(["shift", "show", "--dataset", "named"]) == 0
    text = capsys.readouterr().out
    assert "per shift type" in text and "medshift-cvad+stats det / AUROC" in text
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")[-2:]]
    for spec in charts:
        assert spec["layout"]["xaxis"]["title"]["text"] == "shift type" and spec["layout"]["yaxis"]["title"]["text"]
        assert spec["data"][0]["marker"]["color"] == SERIES[0]
