"""AppTest: the OOD page's per-shift-type table equals ``medlim ood evaluate --json``'s (issue 13)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.test_page_ood import PAGE, TIMEOUT, _registry


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = _registry(tmp_path / "weights")
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(directory))
    return directory


def test_shift_types_side_by_side_equal_the_cli(weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main
    from medlim.core.colours import OKABE_ITO
    from medlim.curation.ood.shift_types import ShiftTypeTable

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.number_input(key="ood_n").set_value(2).run()
    at.checkbox(key="ood_shift_types").check().run()
    at.number_input(key="ood_n_shift").set_value(2).run()
    assert not at.exception and not at.error
    shown = at.dataframe[1].value  # after the score table
    assert main(["ood", "evaluate", "--detector", "tend-test", "--weights-dir", str(weights), "--n", "2",
                 "--n-shift", "2", "--variability", "0", "--json"]) == 0
    printed = ShiftTypeTable.from_dict(json.loads(capsys.readouterr().out)["shift_types"])
    assert printed.detectors == ("tend-test@1", "cvad-test@1")
    assert list(shown["shift type"]) == list(printed.shift_types) == ["blur", "cast", "exposure", "grid", "lowres",
                                                                       "noise", "tint"]
    for record, expected in zip(shown.to_dict("records"), printed.wide_rows()):
        for column, value in expected.items():
            got = record[column]
            assert (value is None and (got is None or math.isnan(got))) or got == value, (column, got, value)
    assert any("--n-shift 2" in c.value for c in at.caption)
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")[-2:]]
    palette = {value.lower() for value in OKABE_ITO.values()}
    for spec in charts:
        layout = spec["layout"]
        assert layout["xaxis"]["title"]["text"] == "shift type" and layout["yaxis"]["title"]["text"]
        assert [trace["name"] for trace in spec["data"]] == ["tend-test@1", "cvad-test@1"]
        assert all(trace["marker"]["color"].lower() in palette for trace in spec["data"])
    detected = charts[0]["data"][0]["y"]
    assert detected == [printed.row(kind, "tend-test@1").detected for kind in printed.shift_types]
