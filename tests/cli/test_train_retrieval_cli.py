"""``medlim train oscars|pms`` and ``medlim retrieval query|evaluate`` options (issue 12): modes, refusals, output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlim.cli import main


@pytest.mark.parametrize("kind", ["oscars", "pms"])
def test_retrieval_trainers_take_the_common_options(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", kind, "--help"])
    text = capsys.readouterr().out
    for option in ("--data", "--val", "--name", "--version", "--max-minutes", "--skip-bad", "--seed", "--epochs"):
        assert option in text, option
    assert ("--internal" in text and "--methods" in text) if kind == "oscars" else "--label-set" in text


def test_options_of_the_other_mode_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "oscars", "--max-minutes", "5"]) == 2
    assert "--max-minutes apply to training on your folders" in capsys.readouterr().err
    assert main(["train", "pms", "--data", str(tmp_path), "--label-set", "mimic14"]) == 2
    assert "--label-set only apply to phantoms" in capsys.readouterr().err
    assert main(["train", "oscars", "--data", str(tmp_path)]) == 2
    assert "--data needs --internal INTERNAL" in capsys.readouterr().err
    assert main(["train", "oscars", "--data", str(tmp_path), "--internal", str(tmp_path), "--oscars-lambda", "1.5"]) == 2
    assert "--oscars-lambda must be in [0, 1] (the thesis 0.05), 1.5 is given" in capsys.readouterr().err


def test_folder_runs_default_to_oscars_and_its_triplet_baseline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import medlim.curation.retrieval.folder as folder
    from medlim.core.training import TrainingOutcome

    seen = {}

    def fake(run, **kwargs):  # noqa: ANN001, ANN003, ANN202 - records the run instead of training
        seen["run"], seen["deadline"] = run, kwargs["deadline"]
        return TrainingOutcome(registered=(), validation={})

    monkeypatch.setattr(folder, "train_oscars_on_folder", fake)
    assert main(["train", "oscars", "--data", str(tmp_path / "e"), "--internal", str(tmp_path / "i"),
                 "--max-minutes", "20", "--seed", "2"]) == 0
    run = seen["run"]
    assert run.methods == ("oscars", "triplet") and run.name is None and run.seed == 2
    assert run.command_options == [("--max-minutes", 20.0), ("--seed", 2)]  # no path in the record
    assert seen["deadline"].max_minutes == 20.0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"registered": [], "validation": {}}
    # OSCARS's λ reaches the plan's overrides and is recorded under its own flag
    assert main(["train", "oscars", "--data", str(tmp_path / "e"), "--internal", str(tmp_path / "i"),
                 "--oscars-lambda", "0.2"]) == 0
    assert seen["run"].overrides["oscars_weight"] == 0.2
    assert ("--oscars-lambda", 0.2) in seen["run"].command_options


def test_phantom_recipes_keep_their_recorded_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import medlim.curation.retrieval.recipe as recipe

    seen = {}

    class _Entry:
        name, version = "oscars-radiograph", "2"

    def fake(**kwargs):  # noqa: ANN003, ANN202
        seen.update(kwargs)
        return recipe.OscarsRun(entries={"oscars": _Entry()}, metrics={"oscars": {"precision@10": 0.5}}, seconds={})

    monkeypatch.setattr(recipe, "train_oscars_family", fake)
    assert main(["train", "oscars", "--seed", "1", "--weights-dir", str(tmp_path)]) == 0
    assert seen["methods"] == ("oscars", "triplet", "classification") and seen["config"].epochs == 30
    assert (seen["per_class"], seen["internal_per_class"], seen["heldout_per_class"]) == (140, 30, 50)
    assert seen["config"].threads == 1 and seen["config"].seed == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "registered": [{"name": "oscars-radiograph", "version": "2"}], "validation": {},
        "heldout": {"oscars-radiograph": {"precision@10": 0.5}}}


def test_query_and_evaluate_weighting_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "q.png"
    image.write_bytes(b"")
    assert main(["retrieval", "query", "--index", str(tmp_path / "i.npz"), "--unweighted", "--ds", "symmetric",
                 str(image)]) == 2
    assert "--unweighted and --ds symmetric contradict" in capsys.readouterr().err
    assert main(["retrieval", "evaluate", "--ds", "thesis"]) == 2
    assert "--ds applies with --model NAME --data DIR" in capsys.readouterr().err
    assert main(["retrieval", "evaluate", "--model", "x"]) == 2
    assert "both --model NAME and --data DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["retrieval", "query", "--help"])
    assert "--ds {thesis,symmetric,unweighted}" in capsys.readouterr().out
