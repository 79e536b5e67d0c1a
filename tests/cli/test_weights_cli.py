"""``medlim weights list|verify|import`` in-process, on a tiny registered architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from medlim.cli import main
from medlim.core import weights as w
from medlim.errors import CheckpointMappingError


def build_tiny() -> nn.Module:
    return nn.Conv2d(1, 2, 3)


def map_tiny(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k.removeprefix("module."): v for k, v in state.items()}
    if set(out) != {"weight", "bias"}:
        raise CheckpointMappingError(f"unexpected keys {sorted(set(out) - {'weight', 'bias'})}")
    return out


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(w.ARCHITECTURES, "tiny-conv", build_tiny)
    monkeypatch.setitem(w.IMPORTERS, "tiny-pub", map_tiny)
    monkeypatch.setitem(
        w.IMPORTER_DEFAULTS,
        "tiny-pub",
        {
            "architecture": "tiny-conv",
            "task": "test",
            "input_contract": {"channels": 1, "size": None, "dtype": "float32", "range": [0, 1]},
            "preset": "published",
            "output_type": "raw",
            "thresholds": {"output": 0.65},
            "params": {"overlap": 32},
        },
    )


def write_checkpoint(path: Path) -> None:
    torch.manual_seed(0)
    conv = build_tiny()
    torch.save({"model_state_dict": {f"module.{k}": v.double() for k, v in conv.state_dict().items()}}, path)


def test_import_then_list_then_verify(tmp_path: Path, tiny: None, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tmp_path / "ext.pt"
    write_checkpoint(checkpoint)
    registry = tmp_path / "weights"
    code = main([
        "weights", "import", str(checkpoint), "--importer", "tiny-pub", "--name", "tiny", "--version", "3",
        "--threshold", "0.5", "--param", "overlap=64", "--param", "merge=max", "--models-dir", str(registry),
    ])
    assert code == 0
    assert "imported" in capsys.readouterr().out

    shipped = ["--weights-dir", str(tmp_path / "shipped")]  # an empty shipped registry
    assert main(["weights", "list", "--json", "--models-dir", str(registry), *shipped]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["version"]) for m in listed] == [("tiny", "3")]
    assert listed[0]["thresholds"] == {"output": 0.5}
    assert listed[0]["params"] == {"overlap": 64, "merge": "max"}
    assert listed[0]["preset"] == "published"
    assert "--threshold 0.5" in listed[0]["provenance"]["command"]

    assert main(["weights", "list", "--models-dir", str(registry), *shipped]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["NAME", "VERSION"]
    assert table[1].split()[:2] == ["tiny", "3"]

    assert main(["weights", "verify", "--models-dir", str(registry), *shipped]) == 0
    assert capsys.readouterr().out.strip() == "tiny@3: ok"

    file = registry / "tiny-3.safetensors"
    file.write_bytes(file.read_bytes() + b"\0")
    assert main(["weights", "verify", "tiny", "--models-dir", str(registry)]) == 1
    assert "tiny@3: mismatch" in capsys.readouterr().out


def test_verify_unknown_name_and_bad_import_are_user_errors(
    tmp_path: Path, tiny: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "verify", "nobody", "--weights-dir", str(tmp_path)]) == 2
    assert "no weights named 'nobody'" in capsys.readouterr().err

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["weights", "import", str(junk), "--importer", "tiny-pub", "--name", "x", "--weights-dir", str(tmp_path)]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert main(["weights", "import", str(junk), "--importer", "nope", "--name", "x", "--weights-dir", str(tmp_path)]) == 2
    assert "unknown checkpoint importer 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


def test_empty_registry_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "list", "--weights-dir", str(tmp_path)]) == 0
    assert "no weights registered" in capsys.readouterr().out
    assert main(["weights", "list", "--json", "--weights-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_import_published_scunet_checkpoint(tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real published file through the real importer (skips without ../shared or the SCU-Net code)."""
    pytest.importorskip("medlim.mammography.checkpoint")
    checkpoint = shared_dir / "reference" / "scunet_published" / "SCUNet_dice_512_512_best_nosigmoid.pt"
    code = main([
        "weights", "import", str(checkpoint), "--importer", "scunet-published", "--name", "scunet-published",
        "--to", str(tmp_path),
    ])
    assert code == 0, capsys.readouterr().err
    entry = w.Registry.load(tmp_path).get("scunet-published")
    assert (entry.architecture, entry.preset, entry.output_type) == ("scunet", "published", "raw")
    assert "5c8e535b083826ec3f8a8dfaeb3d65264ee7c4f5d75b7f0d0b9bd4b45a8a5db7" in (entry.provenance.source or "")
    model = w.build_model(entry, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == 169_711


def _register_tiny(registry: Path, version: str, *, default: bool = False) -> None:
    torch.manual_seed(int(version))
    w.save_weights(w.Registry(registry), {
        "name": "tiny", "version": version, "task": "test", "architecture": "tiny-conv", "preset": "published",
        "input_contract": {"channels": 1, "size": None}, "default": default,
    }, build_tiny().state_dict())


def test_list_shows_both_registries_and_the_default_then_set_and_reset_it(
    tmp_path: Path, tiny: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _register_tiny(tmp_path / "shipped", "1", default=True)
    _register_tiny(tmp_path / "mine", "2")
    dirs = ["--weights-dir", str(tmp_path / "shipped"), "--models-dir", str(tmp_path / "mine")]
    assert main(["weights", "list", *dirs]) == 0
    table = [line.split()[:5] for line in capsys.readouterr().out.splitlines()]
    assert table == [["NAME", "VERSION", "TASK", "SOURCE", "DEFAULT"], ["tiny", "1", "test", "shipped", "default"],
                     ["tiny", "2", "test", "user", "-"]]

    assert main(["weights", "set-default", "tiny@2", *dirs]) == 0
    assert capsys.readouterr().out.strip() == "tiny@2 is now the default test model"
    assert main(["weights", "list", "--json", *dirs]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(m["version"], m["source"], m["task_default"]) for m in listed] == [("1", "shipped", False),
                                                                               ("2", "user", True)]
    assert listed[0]["default"] is True  # the shipped mark itself is unchanged
    # what the pages show under their pickers: no description here, so the name, with where the model comes from
    assert [m["caption"] for m in listed] == ["shipped: tiny@1", "yours: tiny@2"]

    assert main(["weights", "reset-default", "test", *dirs]) == 0
    assert "tiny@1" in capsys.readouterr().out
    assert w.Registries.load(weights_dir=tmp_path / "shipped", models_dir=tmp_path / "mine").default("test").version == "1"
    assert main(["weights", "set-default", "tiny@7", *dirs]) == 2
    assert "no version '7'" in capsys.readouterr().err


def test_import_without_a_version_takes_the_next_free_one(
    tmp_path: Path, tiny: None, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "ext.pt"
    write_checkpoint(checkpoint)
    _register_tiny(tmp_path / "shipped", "1")
    dirs = ["--weights-dir", str(tmp_path / "shipped"), "--models-dir", str(tmp_path / "mine")]
    assert main(["weights", "import", str(checkpoint), "--importer", "tiny-pub", "--name", "tiny", *dirs]) == 0
    assert "as tiny@2" in capsys.readouterr().out
    assert main(["weights", "import", str(checkpoint), "--importer", "tiny-pub", "--name", "tiny", "--version", "1",
                 *dirs]) == 2
    assert "already exists in the shipped registry" in capsys.readouterr().err
    assert len(w.Registry.load(tmp_path / "shipped")) == 1


def test_list_shows_a_bac_gate_beside_the_cutoff(capsys: pytest.CaptureFixture[str]) -> None:
    from medlim.cli import main

    assert main(["weights", "list"]) == 0  # the shipped registry: scunet-bac-dr v3 and v4 are v2's network, gated
    rows = {tuple(line.split()[:2]): line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "default" in rows[("scunet-bac-dr", "3")] and "output=0.2,gate=0.2/0.95" in rows[("scunet-bac-dr", "3")]
    assert "default" not in rows[("scunet-bac-dr", "4")] and "output=0.6,gate=0.6/0.98" in rows[("scunet-bac-dr", "4")]
    assert "output=0.8 " in rows[("scunet-bac-dr", "2")] and "gate=" not in rows[("scunet-bac-dr", "2")]
