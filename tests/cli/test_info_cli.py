"""``medlim info``: versions, device, weights status, store URL (text and JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medlim.cli import main
from medlim.core import weights as w


def test_info_json_reports_versions_device_and_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDLIM_DATABASE_URL", "postgresql://reader:s3cret@db.example/medlim")
    assert main(["info", "--json", "--weights-dir", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["medlim"] == "0.1.0"
    assert info["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert set(info["packages"]) >= {"torch", "torchvision", "numpy", "pydicom", "faiss", "streamlit"}
    assert info["device"].startswith("CUDA" if torch.cuda.is_available() else "CPU")
    assert info["models"] == []
    assert "s3cret" not in info["database_url"] and "db.example" in info["database_url"]


def test_info_text_lists_models_with_checksum_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(w.ARCHITECTURES, "lin", "torch.nn:Linear")
    fields = {
        "name": "lin", "version": "1", "task": "test", "architecture": "lin", "preset": "none",
        "architecture_kwargs": {"in_features": 1, "out_features": 1},
        "input_contract": w.InputContract(channels=1),
    }
    entry = w.save_weights(w.Registry(tmp_path), fields, torch.nn.Linear(1, 1).state_dict())
    assert main(["info", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lin@1 [test, preset none]: ok" in out
    assert "research use only" in out.lower()
    entry.path.write_bytes(b"changed")
    assert main(["info", "--weights-dir", str(tmp_path)]) == 0
    assert "lin@1 [test, preset none]: mismatch" in capsys.readouterr().out


def test_help_lists_every_command_while_a_command_loads_only_its_module(capsys) -> None:
    from medlim.cli import SUBCOMMAND_MODULES, build_parser

    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("info", "image", "weights", "bac", "shift"))
    only_image = build_parser(("image",))
    choices = next(action.choices for action in only_image._actions if action.dest == "command")
    assert list(choices) == ["image"]
    assert set(SUBCOMMAND_MODULES) >= {"info", "image"}


def test_info_lists_both_registries_with_source_and_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(w.ARCHITECTURES, "lin", "torch.nn:Linear")
    fields = {
        "name": "lin", "task": "test", "architecture": "lin", "preset": "none",
        "architecture_kwargs": {"in_features": 1, "out_features": 1},
        "input_contract": w.InputContract(channels=1),
    }
    shipped, user = tmp_path / "weights", tmp_path / "models"
    w.save_weights(w.Registry(shipped), {**fields, "version": "1", "default": True}, torch.nn.Linear(1, 1).state_dict())
    registries = w.Registries.load(weights_dir=shipped, models_dir=user)
    assert registries.register(fields, torch.nn.Linear(1, 1).state_dict()).label == "lin@2"
    args = ["info", "--weights-dir", str(shipped), "--models-dir", str(user)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"your models: {user}" in out
    assert "lin@1 [test, preset none]: ok (shipped, task default)" in out
    assert "lin@2 [test, preset none]: ok (yours)" in out
    registries.set_default("lin@2")
    assert main([*args, "--json"]) == 0
    models = {m["version"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert (models["1"]["source"], models["1"]["task_default"]) == ("shipped", False)
    assert (models["2"]["source"], models["2"]["task_default"], models["2"]["status"]) == ("user", True, "ok")
