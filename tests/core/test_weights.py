"""Weights registry: manifest round trip, checksums, strict loading, checkpoint import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from medlim.core import weights as w
from medlim.errors import CheckpointMappingError, ChecksumError, WeightsError

ROOT = Path(__file__).resolve().parents[2]


class TinyNet(nn.Module):
    """Two layers: enough to have a prefix structure and a buffer."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def map_tiny(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Test importer: strip ``module.``, drop exactly ``unused.weight``, refuse anything else."""
    known = {"conv.weight", "conv.bias", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
             "norm.num_batches_tracked"}
    out = {}
    for key, value in state.items():
        bare = key.removeprefix("module.")
        if bare == "unused.weight":
            continue
        if bare not in known:
            raise CheckpointMappingError(f"unknown key {key!r}")
        out[bare] = value
    missing = known - set(out)
    if missing:
        raise CheckpointMappingError(f"missing keys {sorted(missing)}")
    return out


@pytest.fixture
def tiny_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(w.ARCHITECTURES, "tiny", TinyNet)
    monkeypatch.setitem(w.IMPORTERS, "tiny-published", map_tiny)
    monkeypatch.setitem(
        w.IMPORTER_DEFAULTS,
        "tiny-published",
        {
            "architecture": "tiny",
            "task": "test-segmentation",
            "input_contract": {"channels": 1, "size": [8, 8], "dtype": "float32", "range": [0, 1]},
            "preset": "published",
            "output_type": "raw",
            "thresholds": {"output": 0.65},
            "params": {"overlap": 32, "merge": "max"},
        },
    )


def tiny_fields(**changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "tiny-seg",
        "version": "1",
        "task": "test-segmentation",
        "architecture": "tiny",
        "preset": "thesis",
        "input_contract": w.InputContract(channels=1, size=(8, 8), value_range=(0.0, 1.0)),
        "output_type": "probability",
        "thresholds": {"output": 0.5},
        "params": {"overlap": 64, "merge": "max"},
        "metrics": {"dice": 0.5},
        "provenance": w.TrainingProvenance(
            command="medlim train tiny --seed 3", seed=3, data_generator="medlim.phantoms.test", data_generator_version="0.1.0"
        ),
    }
    fields.update(changes)
    return fields


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return TinyNet().state_dict()


def test_importing_the_package_imports_no_model_code() -> None:
    code = "import sys, medlim.core.weights; print('torch' in sys.modules, 'medlim.mammography.scunet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_shipped_manifest_is_readable_and_its_files_match() -> None:
    registry = w.Registry.load(ROOT / "weights")
    failed = [(v.entry.label, v.status) for v in registry.verify_all() if not v.ok]
    assert failed == []


def test_entry_dict_round_trip_and_defaults() -> None:
    entry = w.WeightsEntry(sha256="a" * 64, file="tiny-seg-1.safetensors", **tiny_fields())
    data = json.loads(json.dumps(entry.to_dict()))
    again = w.WeightsEntry.from_dict(data)
    assert again == entry
    assert again.intended_use == "Research use only, not for diagnosis; trained on synthetic phantoms"
    assert again.input_contract.size == (8, 8)
    assert again.provenance.seed == 3
    assert len({entry, again}) == 1  # hashable despite its dict fields


@pytest.mark.parametrize(
    "changes",
    [{"name": "../evil"}, {"version": ""}, {"output_type": "logits"}, {"thresholds": {"output": "high"}}],
)
def test_entry_rejects_bad_fields(changes: dict[str, object]) -> None:
    with pytest.raises(WeightsError):
        w.WeightsEntry(sha256="a" * 64, file="x.safetensors", **tiny_fields(**changes))


def test_manifest_is_strict_json_even_with_undefined_metrics(tmp_path: Path, tiny_registered: None) -> None:
    w.save_weights(w.Registry(tmp_path), tiny_fields(metrics={"r2": {"pm": float("nan")}, "dice": 0.5}), tiny_state())
    text = (tmp_path / "manifest.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"manifest holds {name}"))
    assert data["models"][0]["metrics"] == {"r2": {"pm": None}, "dice": 0.5}


def test_from_dict_names_the_missing_field() -> None:
    data = w.WeightsEntry(sha256="a" * 64, file="x.safetensors", **tiny_fields()).to_dict()
    del data["preset"]
    with pytest.raises(WeightsError, match="'preset'"):
        w.WeightsEntry.from_dict(data)


def test_save_load_build_round_trip(tmp_path: Path, tiny_registered: None) -> None:
    registry = w.Registry(tmp_path)
    state = tiny_state()
    entry = w.save_weights(registry, tiny_fields(), state)
    assert entry.file == "tiny-seg-1.safetensors"
    assert entry.sha256 == w.sha256_file(tmp_path / entry.file)

    reread = w.Registry.load(tmp_path)
    got = reread.get("tiny-seg")
    assert got == entry
    loaded = w.load_state_dict(got)
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    model = w.build_model(got, device="cpu")
    assert not model.training
    x = torch.rand(1, 1, 8, 8)
    reference = TinyNet()
    reference.load_state_dict(state)
    reference.eval()
    assert torch.equal(model(x), reference(x))


def test_saved_file_is_byte_reproducible(tmp_path: Path, tiny_registered: None) -> None:
    digests = {w.save_weights(w.Registry(tmp_path / str(i)), tiny_fields(), tiny_state()).sha256 for i in range(4)}
    assert len(digests) == 1


def test_manifest_lists_sorted_versions_and_get_picks_highest(tmp_path: Path, tiny_registered: None) -> None:
    registry = w.Registry(tmp_path)
    for version in ["2", "10", "9"]:
        w.save_weights(registry, tiny_fields(version=version), tiny_state())
    assert [e.version for e in w.Registry.load(tmp_path).list()] == ["2", "9", "10"]
    assert registry.get("tiny-seg").version == "10"
    assert registry.get("tiny-seg", "9").version == "9"
    with pytest.raises(WeightsError, match="versions: 2, 9, 10"):
        registry.get("tiny-seg", "3")
    with pytest.raises(WeightsError, match="registered: tiny-seg"):
        registry.get("other")


def test_add_replaces_same_name_and_version(tmp_path: Path, tiny_registered: None) -> None:
    registry = w.Registry(tmp_path)
    w.save_weights(registry, tiny_fields(), tiny_state(0))
    second = w.save_weights(registry, tiny_fields(metrics={"dice": 0.9}), tiny_state(1))
    reread = w.Registry.load(tmp_path)
    assert len(reread) == 1
    assert reread.get("tiny-seg").metrics == {"dice": 0.9}
    assert reread.get("tiny-seg").sha256 == second.sha256


def test_tampered_file_raises_checksum_error_and_verify_reports(tmp_path: Path, tiny_registered: None) -> None:
    registry = w.Registry(tmp_path)
    entry = w.save_weights(registry, tiny_fields(), tiny_state())
    assert [v.status for v in registry.verify_all()] == ["ok"]
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 0xFF
    entry.path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="does not match"):
        w.load_state_dict(entry)
    with pytest.raises(ChecksumError):
        w.build_model(entry, device="cpu")
    assert [v.status for v in registry.verify_all(["tiny-seg"])] == ["mismatch"]
    entry.path.unlink()
    assert [v.status for v in registry.verify_all()] == ["missing"]
    with pytest.raises(WeightsError, match="missing"):
        w.load_state_dict(entry)


def test_save_refuses_state_dict_that_does_not_fit(tmp_path: Path, tiny_registered: None) -> None:
    registry = w.Registry(tmp_path)
    state = tiny_state()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMappingError, match="extra.weight"):
        w.save_weights(registry, tiny_fields(), state)
    wrong_shape = TinyNet(width=4).state_dict()
    with pytest.raises(CheckpointMappingError, match="wrong shape"):
        w.save_weights(registry, tiny_fields(), wrong_shape)
    assert len(registry) == 0
    assert list(tmp_path.iterdir()) == []


def test_build_model_never_loads_non_strict(tmp_path: Path, tiny_registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = w.Registry(tmp_path)
    entry = w.save_weights(registry, tiny_fields(), tiny_state())
    monkeypatch.setitem(w.ARCHITECTURES, "tiny", lambda: TinyNet(width=4))
    with pytest.raises(CheckpointMappingError):
        w.build_model(entry, device="cpu")


def test_architecture_strings_resolve_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(w.ARCHITECTURES, "linear", "torch.nn:Linear")
    registry = w.Registry(tmp_path)
    fields = tiny_fields(architecture="linear", architecture_kwargs={"in_features": 2, "out_features": 3})
    entry = w.save_weights(registry, fields, nn.Linear(2, 3).state_dict())
    model = w.build_model(w.Registry.load(tmp_path).get("tiny-seg"), device="cpu")
    assert isinstance(model, nn.Linear) and model.out_features == 3
    assert entry.architecture_kwargs == {"in_features": 2, "out_features": 3}

    monkeypatch.setitem(w.ARCHITECTURES, "nowhere", "medlim.no_such_module:build")
    with pytest.raises(WeightsError, match="no_such_module"):
        w.resolve_architecture("nowhere")
    with pytest.raises(WeightsError, match="unknown architecture 'absent'"):
        w.resolve_architecture("absent")


def test_register_functions_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w.architectures, "ARCHITECTURES", dict(w.ARCHITECTURES))
    with pytest.raises(WeightsError, match="module:function"):
        w.register_architecture("bad", "no_colon_here")
    with pytest.raises(WeightsError, match="already registered"):
        w.register_architecture("scunet", "other.module:builder")


def test_manifest_errors_are_weights_errors(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(WeightsError, match="cannot be read"):
        w.Registry.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 99, "models": []}))
    with pytest.raises(WeightsError, match="format 99"):
        w.Registry.load(tmp_path)
    assert len(w.Registry.load(tmp_path / "empty")) == 0


def test_entry_file_outside_registry_is_refused(tmp_path: Path, tiny_registered: None) -> None:
    with pytest.raises(WeightsError, match="relative"):
        w.save_weights(w.Registry(tmp_path), tiny_fields(file="../outside.safetensors"), tiny_state())


# -- external checkpoints -------------------------------------------------------------------------


def published_style_checkpoint(path: Path, *, extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint shaped like the published SCU-Net files: nested, ``module.``, float64."""
    state = tiny_state(5)
    raw = {f"module.{k}": (v.double() if v.is_floating_point() else v) for k, v in state.items()}
    raw["module.unused.weight"] = torch.ones(2, dtype=torch.float64)
    raw.update(extra or {})
    torch.save({"epoch": 7, "model_state_dict": raw, "valdice": 0.5}, path)
    return state


def test_import_checkpoint_maps_converts_and_registers(tmp_path: Path, tiny_registered: None) -> None:
    checkpoint = tmp_path / "external.pt"
    state = published_style_checkpoint(checkpoint)
    registry = w.Registry(tmp_path / "registry")
    entry = w.import_checkpoint(
        checkpoint, importer="tiny-published", name="tiny-pub", version="1", preset=None, output_type=None,
        thresholds=None, params=None, registry=registry,
    )
    assert entry.architecture == "tiny"
    assert entry.preset == "published" and entry.output_type == "raw"
    assert entry.thresholds == {"output": 0.65}
    assert entry.params == {"overlap": 32, "merge": "max"}
    assert "trained on synthetic phantoms" not in entry.intended_use
    assert w.sha256_file(checkpoint) in (entry.provenance.source or "")
    assert entry.provenance.command.startswith("medlim weights import external.pt --importer tiny-published")

    loaded = w.load_state_dict(w.Registry.load(tmp_path / "registry").get("tiny-pub"))
    assert set(loaded) == set(state)
    assert loaded["conv.weight"].dtype == torch.float32
    assert loaded["norm.num_batches_tracked"].dtype == torch.int64
    assert torch.allclose(loaded["conv.weight"], state["conv.weight"])


def test_import_overrides_importer_defaults(tmp_path: Path, tiny_registered: None) -> None:
    checkpoint = tmp_path / "external.pt"
    published_style_checkpoint(checkpoint)
    entry = w.import_checkpoint(
        checkpoint, importer="tiny-published", name="tiny-pub", version="2", preset="thesis",
        output_type="probability", thresholds={"output": 0.5}, params={"overlap": 64}, registry=w.Registry(tmp_path),
    )
    assert (entry.preset, entry.output_type, entry.thresholds, entry.params) == (
        "thesis", "probability", {"output": 0.5}, {"overlap": 64}
    )


def test_import_refuses_unknown_keys_and_writes_nothing(tmp_path: Path, tiny_registered: None) -> None:
    checkpoint = tmp_path / "external.pt"
    published_style_checkpoint(checkpoint, extra={"module.mystery": torch.zeros(1)})
    registry_dir = tmp_path / "registry"
    with pytest.raises(CheckpointMappingError, match="mystery"):
        w.import_checkpoint(checkpoint, importer="tiny-published", name="tiny-pub", registry=w.Registry(registry_dir))
    assert not registry_dir.exists()


def test_read_checkpoint_handles_plain_nested_safetensors_and_refuses_pickles(tmp_path: Path) -> None:
    state = tiny_state()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"state_dict": state}, tmp_path / "nested.pth")
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "st.safetensors"))
    for name in ["plain.pt", "nested.pth", "st.safetensors"]:
        got = w.read_checkpoint(tmp_path / name)
        assert set(got) == set(state), name

    torch.save(TinyNet(), tmp_path / "full_model.pt")
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        w.read_checkpoint(tmp_path / "full_model.pt")
    (tmp_path / "junk.pt").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        w.read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="does not exist"):
        w.read_checkpoint(tmp_path / "absent.pt")
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pt")
    with pytest.raises(WeightsError, match="not tensors"):
        w.read_checkpoint(tmp_path / "no_tensors.pt")


def test_load_checkpoint_in_memory_writes_nothing(tmp_path: Path, tiny_registered: None) -> None:
    checkpoint = tmp_path / "external.pt"
    state = published_style_checkpoint(checkpoint)
    before = sorted(p.name for p in tmp_path.iterdir())
    loaded = w.load_checkpoint_in_memory(checkpoint, importer="tiny-published", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert loaded.entry.sha256 == w.sha256_file(checkpoint)
    assert loaded.entry.preset == "published"
    assert not loaded.model.training
    assert torch.allclose(loaded.model.conv.weight, state["conv.weight"])
    with pytest.raises(WeightsError, match="unknown checkpoint importer"):
        w.load_checkpoint_in_memory(checkpoint, importer="nobody")


# -- manifest files confined to the weights folder when loaded (issue 14) ---------------------------


def _manifest_naming(directory: Path, file: str) -> None:
    entry = w.WeightsEntry(sha256="a" * 64, file="tiny-seg-1.safetensors", **tiny_fields()).to_dict()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps({"format": 1, "models": [{**entry, "file": file}]}))


@pytest.mark.parametrize("file", ["/etc/passwd", "../outside.safetensors", "sub/../../outside.safetensors"])
def test_load_refuses_a_manifest_file_outside_the_folder(tmp_path: Path, file: str) -> None:
    (tmp_path / "outside.safetensors").write_bytes(b"secret")
    _manifest_naming(tmp_path / "weights", file)
    with pytest.raises(WeightsError, match=r"tiny-seg@1 must be a path relative to, and inside, the weights folder"):
        w.Registry.load(tmp_path / "weights")


def test_load_refuses_a_link_leading_out_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "outside.safetensors").write_bytes(b"secret")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "tiny.safetensors").symlink_to(tmp_path / "outside.safetensors")
    _manifest_naming(tmp_path / "weights", "tiny.safetensors")
    with pytest.raises(WeightsError, match="links to a file outside the weights folder"):
        w.Registry.load(tmp_path / "weights")


def test_a_link_inside_the_folder_is_allowed_and_checked_again_when_read(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    (weights / "store").mkdir(parents=True)
    (weights / "store" / "real.safetensors").write_bytes(b"x")
    (weights / "tiny.safetensors").symlink_to(weights / "store" / "real.safetensors")
    _manifest_naming(weights, "tiny.safetensors")
    entry = w.Registry.load(weights).get("tiny-seg")
    assert entry.path == weights / "tiny.safetensors"
    (weights / "tiny.safetensors").unlink()  # the link is swapped after loading: reading refuses it
    (weights / "tiny.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(WeightsError, match="outside the weights folder"):
        w.load_state_dict(entry)


# -- the shipped and the user registry together (issue 12) and task defaults (issue 17) ---------------------------


@pytest.mark.parametrize(
    ("text", "name", "version"),
    [("scunet-bac", "scunet-bac", None), ("scunet-bac@2", "scunet-bac", "2"), ("scunet-bac:2", "scunet-bac", "2"),
     (" tend-x@1.10 ", "tend-x", "1.10")],
)
def test_model_names_parse_in_one_place(text: str, name: str, version: str | None) -> None:
    assert w.parse_model_spec(text) == w.ModelSpec(name, version)


@pytest.mark.parametrize("text", ["", "@2", "scunet@", "a b", "a@b@c", "../x"])
def test_bad_model_names_are_refused(text: str) -> None:
    with pytest.raises(WeightsError):
        w.parse_model_spec(text)


def _two_registries(tmp_path: Path) -> w.Registries:
    """Shipped: tiny-seg v1 and v3 (v3 the task default). User: empty."""
    shipped = w.Registry(tmp_path / "shipped")
    w.save_weights(shipped, tiny_fields(version="1"), tiny_state(1))
    w.save_weights(shipped, tiny_fields(version="3", default=True), tiny_state(3))
    return w.Registries.load(weights_dir=tmp_path / "shipped", models_dir=tmp_path / "user")


def test_user_models_never_replace_shipped_ones_and_take_the_next_free_version(
    tmp_path: Path, tiny_registered: None
) -> None:
    registries = _two_registries(tmp_path)
    shipped_text = (tmp_path / "shipped" / "manifest.json").read_text()
    assert registries.next_version("tiny-seg") == "4" and registries.next_version("other") == "1"
    mine = registries.register({**tiny_fields(), "version": None}, tiny_state(4))
    assert (mine.version, mine.path.parent) == ("4", tmp_path / "user")
    assert (tmp_path / "shipped" / "manifest.json").read_text() == shipped_text
    assert not (tmp_path / "shipped" / "tiny-seg-4.safetensors").exists()
    with pytest.raises(WeightsError, match="tiny-seg@3 already exists in the shipped registry.*next free one \\(5\\)"):
        registries.register(tiny_fields(version="3"), tiny_state())
    with pytest.raises(WeightsError, match="tiny-seg@4 already exists in the user registry"):
        registries.register(tiny_fields(version="4"), tiny_state())
    with pytest.raises(WeightsError, match="default"):
        registries.register(tiny_fields(version="9", default=True), tiny_state())
    again = w.Registries.load(weights_dir=tmp_path / "shipped", models_dir=tmp_path / "user")
    assert again.find("tiny-seg").version == "4"  # the highest over both
    assert again.source_of(again.find("tiny-seg@1")) == "shipped" and again.source_of(again.find("tiny-seg:4")) == "user"
    assert [(m.entry.version, m.source) for m in again.models()] == [("1", "shipped"), ("3", "shipped"), ("4", "user")]
    assert [e.version for e in again.list(task="test-segmentation")] == ["1", "3", "4"] and again.list(task="x") == ()
    with pytest.raises(WeightsError, match="no weights named 'nope'.*registered: tiny-seg"):
        again.find("nope")
    with pytest.raises(WeightsError, match="versions: 1, 3, 4"):
        again.find("tiny-seg@2")
    assert [v.status for v in again.verify_all()] == ["ok", "ok", "ok"]


def test_a_user_run_never_writes_the_shipped_folder(tmp_path: Path, tiny_registered: None) -> None:
    same = w.Registries.load(weights_dir=tmp_path / "w", models_dir=tmp_path / "w")
    assert same.user is same.shipped
    with pytest.raises(WeightsError, match="MEDLIM_MODELS_DIR"):
        same.register(tiny_fields(), tiny_state())
    assert not (tmp_path / "w" / "manifest.json").exists()
    entry = same.register(tiny_fields(), tiny_state(), allow_shipped_folder=True)  # a maintainer, on purpose
    assert entry.label == "tiny-seg@1" and len(same.models()) == 1


def test_task_default_is_the_users_choice_else_the_shipped_mark(tmp_path: Path, tiny_registered: None) -> None:
    registries = _two_registries(tmp_path)
    task = "test-segmentation"
    assert registries.default(task).label == "tiny-seg@3" and registries.default("other-task") is None
    mine = registries.register(tiny_fields(name="my-seg", version=None), tiny_state(7))
    assert registries.set_default("my-seg", task=task).label == "my-seg@1"  # the version is pinned
    assert json.loads((tmp_path / "user" / "defaults.json").read_text()) == {
        "format": 1, "defaults": {task: {"name": "my-seg", "version": "1"}}}
    again = w.Registries.load(weights_dir=tmp_path / "shipped", models_dir=tmp_path / "user")
    assert again.default(task) == mine
    assert [m.entry.label for m in again.models() if m.task_default] == ["my-seg@1"]
    with pytest.raises(WeightsError, match="not a bac-segmentation model"):
        again.set_default("tiny-seg@1", task="bac-segmentation")
    again.user.remove("my-seg", "1")
    again.user.save_manifest()  # the chosen model is gone: back to the shipped default
    assert w.Registries.load(weights_dir=tmp_path / "shipped", models_dir=tmp_path / "user").default(task).version == "3"
    assert again.clear_default(task).label == "tiny-seg@3"
    assert json.loads((tmp_path / "user" / "defaults.json").read_text())["defaults"] == {}
    (tmp_path / "user" / "defaults.json").write_text("{broken")
    with pytest.raises(WeightsError, match="delete it"):
        again.default(task)


def test_module_functions_read_the_settings(tmp_path: Path, tiny_registered: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _two_registries(tmp_path)
    monkeypatch.setenv("MEDLIM_WEIGHTS_DIR", str(tmp_path / "shipped"))
    monkeypatch.setenv("MEDLIM_MODELS_DIR", str(tmp_path / "user"))
    assert w.find_weights("tiny-seg@1").version == "1"
    assert w.default_model("test-segmentation").version == "3"
    assert w.set_default("tiny-seg:1").version == "1" and w.default_model("test-segmentation").version == "1"
    assert [(m.entry.version, m.task_default) for m in w.list_models(task="test-segmentation")] == [
        ("1", True), ("3", False)]


def test_one_default_per_task_in_a_manifest(tmp_path: Path, tiny_registered: None) -> None:
    registry = w.Registry(tmp_path)
    w.save_weights(registry, tiny_fields(version="1", default=True), tiny_state())
    w.save_weights(registry, tiny_fields(version="2", default=True), tiny_state())
    with pytest.raises(WeightsError, match="more than one default"):
        w.Registry.load(tmp_path)


def test_shipped_manifest_marks_the_best_model_of_each_task_as_default() -> None:
    registry = w.Registry.load(ROOT / "weights")
    defaults = {e.task: e.label for e in registry.list() if e.default}
    assert defaults == {
        "bac-segmentation": "scunet-bac-dr@3",  # since 2026-12-07 (README, "Breast arterial calcification")
        "ood-detection": "tend-humerus@3",
        "image-retrieval": "oscars-radiograph@2",
        "multilabel-retrieval": "pms-chest@3",
        "steatosis-instance-segmentation": "maskrcnn-steatosis@2",
    }
    assert {e.task for e in registry.list()} == set(defaults)


def test_default_data_and_plan_are_written_only_when_set() -> None:
    plain = w.WeightsEntry(sha256="a" * 64, file="x.safetensors", **tiny_fields())
    assert not {"default", "data", "plan"} & set(plain.to_dict())
    marked = w.WeightsEntry(sha256="a" * 64, file="x.safetensors", **tiny_fields(
        default=True, data={"source": "user", "fingerprint": {"id": "ab12"}}, plan={"task": "tiny"}))
    data = json.loads(json.dumps(marked.to_dict()))
    assert (data["default"], data["data"]["fingerprint"], data["plan"]) == (True, {"id": "ab12"}, {"task": "tiny"})
    assert w.WeightsEntry.from_dict(data) == marked
    with pytest.raises(WeightsError, match="true or false"):
        w.WeightsEntry(sha256="a" * 64, file="x.safetensors", **tiny_fields(default="yes"))


def test_import_goes_to_the_user_registry_at_the_next_free_version(tmp_path: Path, tiny_registered: None) -> None:
    checkpoint = tmp_path / "external.pt"
    published_style_checkpoint(checkpoint)
    registries = _two_registries(tmp_path)
    entry = w.import_checkpoint(checkpoint, importer="tiny-published", name="tiny-seg", registry=registries)
    assert entry.version == "4" and entry.path.parent == tmp_path / "user"
    with pytest.raises(WeightsError, match="already exists in the shipped registry"):
        w.import_checkpoint(checkpoint, importer="tiny-published", name="tiny-seg", version="1", registry=registries)
