"""The manifest record of one set of model weights.

A :class:`WeightsEntry` carries everything needed to use weights correctly and
honestly: what the network expects (input contract, preprocessing preset),
what it returns (raw scores or probabilities, thresholds), how well it did
(evaluation metrics), how to reproduce it (the exact ``medlim`` command, seed
and data generator) and what it may be used for. Thesis §3.3 (SCU-Net) is the
first user; the format is shared by every room.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from medlim.errors import WeightsError

__all__ = [
    "DEFAULT_INTENDED_USE",
    "OUTPUT_TYPES",
    "InputContract",
    "TrainingProvenance",
    "WeightsEntry",
    "confined_path",
    "json_safe",
    "name_part",
    "validate_name",
]

#: Intended use of weights trained inside medlim.
DEFAULT_INTENDED_USE = "Research use only, not for diagnosis; trained on synthetic phantoms"

#: What a network's output means: unbounded scores or probabilities in [0, 1].
OUTPUT_TYPES: tuple[str, ...] = ("raw", "probability")

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_name(value: str, *, what: str) -> str:
    """Check a model name or version: letters, digits, ``.``, ``_``, ``-``; no folders."""
    if not isinstance(value, str) or not _NAME_PATTERN.match(value) or ".." in value:
        raise WeightsError(
            f"{what} must be 1-128 letters, digits, '.', '_' or '-' (starting with a letter "
            f"or digit); {value!r} is given."
        )
    return value


def name_part(text: str, *, limit: int = 100) -> str:
    """A part of a model name made from words a person chose (class names), valid for :func:`validate_name`.

    Accents are dropped (``"Épaule droite"`` → ``"Epaule-droite"``; a Mac's decomposed ``É`` alike) and other
    runs of characters a name cannot hold become ``-``. When letters of another script are lost that way
    (``"肩 (左)"``, ``"手"``), a short hash of the text is added, so that two such classes still get two names:
    ``"class-3f9a0c"``. ``""`` for a text without letters or digits.

    Args:
        text: the words (a class name, several joined by ``-``).
        limit: the longest part returned.
    """
    composed = unicodedata.normalize("NFKC", str(text))
    unaccented = "".join(char for char in unicodedata.normalize("NFKD", composed) if not unicodedata.combining(char))
    part = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", unaccented)).strip("-._")
    kept = sum(char.isascii() and char.isalnum() for char in unaccented)
    if kept == sum(char.isalnum() for char in unaccented):
        return part[:limit].strip("-._")
    digest = hashlib.blake2s(composed.encode("utf-8"), digest_size=3).hexdigest()
    return f"{(part or 'class')[:limit - 7].strip('-._')}-{digest}"


def confined_path(root: Path, file: str, *, label: str = "weights") -> Path:
    """``root / file``, after checking that the file lies inside ``root`` with links resolved.

    Issue 14: a manifest is a file on disk that someone may edit; an entry whose
    ``file`` is absolute, climbs out with ``..`` or is a link leading out of the
    weights folder would make medlim read (and hash) any file of the server.

    Args:
        root: the weights folder.
        file: the entry's ``file`` field.
        label: the entry, for the message (``"name@version"``).

    Returns:
        ``root / file`` (links not resolved, so messages show the folder's own path).

    Raises:
        WeightsError: the file is absolute, holds ``..`` or resolves outside ``root``.
    """
    relative = Path(file)
    if relative.is_absolute() or ".." in Path(file.replace("\\", "/")).parts:
        raise WeightsError(
            f"the weights file of {label} must be a path relative to, and inside, the weights folder {root}; "
            f"{file!r} is given. Fix the manifest entry or re-import the model."
        )
    path = Path(root) / relative
    try:
        resolved, base = path.resolve(strict=False), Path(root).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a link loop
        raise WeightsError(f"the weights file of {label} ({path}) cannot be resolved: {exc}") from None
    if resolved != base and base not in resolved.parents:
        raise WeightsError(
            f"the weights file of {label} ({path}) links to a file outside the weights folder {root}; "
            "a weights file must lie inside that folder. Replace the link by the file itself."
        )
    return path


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (NaN, ±inf: e.g. an undefined R²) as ``None``,
    so manifests stay strict JSON that any tool can read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class InputContract:
    """What the network takes, after its preprocessing preset.

    Attributes:
        channels: input channels (e.g. 3 for SCU-Net's repeated grey patch).
        size: (height, width) in pixels the network is trained on, or ``None``
            when any size works.
        dtype: tensor dtype name, e.g. ``"float32"``.
        value_range: (low, high) of input values after the preset, e.g.
            ``(0.0, 1.0)``.
        pixel_spacing_mm: (row, column) pixel spacing in mm the network was
            trained at (issue 13): inference resamples an image whose file states
            another spacing to it, as nnU-Net and MONAI's ``Spacing`` do; ``None``
            when the training data had no physical scale.
        spacing_range_mm: (finest, coarsest) spacing in mm of the training images;
            an image inside it is not resampled (the network saw that scale).
            ``None``: only ``pixel_spacing_mm`` itself.
        scale: what one input pixel is, in words (where the spacing is measured,
            or that images are resized to ``size`` whatever their spacing).
    """

    channels: int
    size: tuple[int, int] | None = None
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    pixel_spacing_mm: tuple[float, float] | None = None
    spacing_range_mm: tuple[float, float] | None = None
    scale: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.channels, int) or self.channels < 1:
            raise WeightsError(f"input channels must be a positive integer; {self.channels!r} is given.")
        if self.size is not None:
            size = tuple(int(s) for s in self.size)
            if len(size) != 2 or min(size) < 1:
                raise WeightsError(f"input size must be (height, width) > 0; {self.size!r} is given.")
            object.__setattr__(self, "size", size)
        low, high = (float(v) for v in self.value_range)
        if not low < high:
            raise WeightsError(f"input value range must be (low, high) with low < high; {self.value_range!r} is given.")
        object.__setattr__(self, "value_range", (low, high))
        for name in ("pixel_spacing_mm", "spacing_range_mm"):
            object.__setattr__(self, name, _positive_pair(getattr(self, name), what=f"input {name}"))
        if self.spacing_range_mm is not None and self.spacing_range_mm[0] > self.spacing_range_mm[1]:
            raise WeightsError(f"input spacing_range_mm must be (finest, coarsest); {self.spacing_range_mm!r} is given.")

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``input`` object; the spacing fields appear only when set, so
        manifests written before they existed read and write back unchanged."""
        out: dict[str, Any] = {
            "channels": self.channels,
            "size": list(self.size) if self.size is not None else None,
            "dtype": self.dtype,
            "range": list(self.value_range),
        }
        if self.pixel_spacing_mm is not None:
            out["pixel_spacing_mm"] = list(self.pixel_spacing_mm)
        if self.spacing_range_mm is not None:
            out["spacing_range_mm"] = list(self.spacing_range_mm)
        if self.scale:
            out["scale"] = self.scale
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputContract":
        size = data.get("size")
        return cls(
            channels=int(data["channels"]),
            size=tuple(size) if size is not None else None,
            dtype=str(data.get("dtype", "float32")),
            value_range=tuple(data.get("range", (0.0, 1.0))),
            pixel_spacing_mm=data.get("pixel_spacing_mm"),
            spacing_range_mm=data.get("spacing_range_mm"),
            scale=str(data.get("scale") or ""),
        )


def _positive_pair(value: Any, *, what: str) -> tuple[float, float] | None:
    """``(a, b)`` of positive finite floats from one number or a pair; ``None`` stays ``None``."""
    if value is None:
        return None
    try:
        numbers = [float(value)] * 2 if isinstance(value, (int, float)) else [float(v) for v in value]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 2 or not all(math.isfinite(n) and n > 0 for n in numbers):
        raise WeightsError(f"{what} must be one positive number or a pair of them (mm); {value!r} is given.")
    return (numbers[0], numbers[1])


@dataclass(frozen=True)
class TrainingProvenance:
    """How to reproduce (or where to find) the weights.

    Attributes:
        command: the exact ``medlim`` command that produced the file.
        seed: random seed of the run, or ``None`` (imported weights).
        data_generator: synthetic data generator, e.g. ``"medlim.phantoms.mammogram"``.
        data_generator_version: version of that generator (medlim version).
        source: where external weights came from (file name, sha256, licence).
    """

    command: str = ""
    seed: int | None = None
    data_generator: str | None = None
    data_generator_version: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "seed": self.seed,
            "data_generator": self.data_generator,
            "data_generator_version": self.data_generator_version,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingProvenance":
        seed = data.get("seed")
        return cls(
            command=str(data.get("command", "")),
            seed=int(seed) if seed is not None else None,
            data_generator=data.get("data_generator"),
            data_generator_version=data.get("data_generator_version"),
            source=data.get("source"),
        )


@dataclass(frozen=True)
class WeightsEntry:
    """One set of weights in the manifest (unique by ``name`` and ``version``).

    Attributes:
        name: model name, e.g. ``"scunet-bac"``.
        version: version string, e.g. ``"1"`` or ``"2024.1"``.
        task: what the model does, e.g. ``"bac-segmentation"``.
        architecture: key of :data:`medlim.core.weights.ARCHITECTURES`.
        file: safetensors file name, relative to the registry folder.
        sha256: hex digest of that file.
        preset: name of the preprocessing preset the weights expect.
        input_contract: what the network takes.
        output_type: ``"raw"`` (unbounded scores) or ``"probability"`` (in [0, 1]).
        thresholds: named cut-offs, e.g. ``{"output": 0.65}``.
        params: extra inference parameters, e.g. ``{"overlap": 32, "merge": "max"}``.
        architecture_kwargs: keyword arguments for the architecture builder.
        metrics: evaluation metrics, e.g. ``{"dice": 0.71}``.
        provenance: how the weights were made.
        intended_use: what the weights may be used for.
        description: one line for people.
        default: this entry is its task's default model (issue 17; at most one
            per task in the shipped manifest; a user's own choice of default is
            kept apart, see :func:`medlim.core.weights.default_model`).
        data: what the model was trained on when it came from a user's folder:
            ``{"source": "user", "fingerprint": {...}, "split": {...}}`` (the
            dataset's fingerprint, never a path or file name); empty otherwise.
        plan: the training plan derived from that data (input size, normalisation,
            augmentation, schedule, early stopping, ...), with the reason of each choice.
        familiarity: the "unlike my training data" check stored beside the weights
            (issue 13): ``{"file": "<name>-<version>.familiarity.json", "sha256": ...}``
            plus what people should know of it (threshold, seeds, the command that
            reproduces it); empty when the weights carry none
            (:mod:`medlim.core.familiarity`).
        root: folder the ``file`` is relative to (set by the registry; not saved).
    """

    name: str
    version: str
    task: str
    architecture: str
    file: str
    sha256: str
    preset: str
    input_contract: InputContract
    output_type: str = "raw"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    architecture_kwargs: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    provenance: TrainingProvenance = field(default_factory=TrainingProvenance)
    intended_use: str = DEFAULT_INTENDED_USE
    description: str = ""
    default: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    plan: Mapping[str, Any] = field(default_factory=dict)
    familiarity: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        validate_name(self.name, what="model name")
        validate_name(self.version, what="model version")
        if self.output_type not in OUTPUT_TYPES:
            raise WeightsError(f"output type must be one of {OUTPUT_TYPES}; {self.output_type!r} is given.")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256 or ""):
            raise WeightsError(f"sha256 must be 64 lower-case hex digits; {self.sha256!r} is given.")
        if not self.file:
            raise WeightsError(f"weights entry {self.name!r} names no file.")
        for key, value in dict(self.thresholds).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise WeightsError(f"threshold {key!r} must be a number; {value!r} is given.")
        object.__setattr__(self, "thresholds", {str(k): float(v) for k, v in dict(self.thresholds).items()})
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "architecture_kwargs", dict(self.architecture_kwargs))
        object.__setattr__(self, "metrics", dict(self.metrics))
        if not isinstance(self.default, bool):
            raise WeightsError(f"`default` of {self.label} must be true or false; {self.default!r} is given.")
        object.__setattr__(self, "data", dict(self.data))
        object.__setattr__(self, "plan", dict(self.plan))
        object.__setattr__(self, "familiarity", dict(self.familiarity))
        if self.familiarity:
            file, digest = self.familiarity.get("file"), self.familiarity.get("sha256")
            if not isinstance(file, str) or not file or not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
                raise WeightsError(
                    f"`familiarity` of {self.label} must name a file and its sha256 (64 lower-case hex digits); "
                    f"{self.familiarity!r} is given."
                )

    def __hash__(self) -> int:
        # The dict fields are unhashable; equal entries share name, version and file digest.
        return hash((self.name, self.version, self.sha256))

    @property
    def key(self) -> tuple[str, str]:
        """(name, version): the identity of the entry in a registry."""
        return (self.name, self.version)

    @property
    def label(self) -> str:
        """``"name@version"`` for display."""
        return f"{self.name}@{self.version}"

    @property
    def path(self) -> Path:
        """Absolute path of the weights file (registry folder / file).

        For an entry of a registry (or of the settings' weights folder) the file
        must lie inside that folder, links resolved (:func:`confined_path`).
        Only an entry built in memory for an external checkpoint (no registry
        folder) may name an absolute file.

        Raises:
            WeightsError: the file lies outside the weights folder.
        """
        if self.root is None:
            if Path(self.file).is_absolute():
                return Path(self.file)
            from medlim.settings import get_settings

            return confined_path(get_settings().weights_dir, self.file, label=self.label)
        return confined_path(self.root, self.file, label=self.label)

    @property
    def familiarity_path(self) -> Path | None:
        """Absolute path of the stored training-data check, or ``None`` when the weights carry none.

        The file must lie inside the weights folder, like the weights file (:func:`confined_path`).
        """
        if not self.familiarity:
            return None
        file = str(self.familiarity["file"])
        if self.root is None:
            if Path(file).is_absolute():
                return Path(file)
            from medlim.settings import get_settings

            return confined_path(get_settings().weights_dir, file, label=self.label)
        return confined_path(self.root, file, label=self.label)

    def with_root(self, root: Path | None) -> "WeightsEntry":
        """The same entry with its files looked up under ``root``."""
        return replace(self, root=None if root is None else Path(root))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as written in ``manifest.json``.

        ``default``, ``data``, ``plan`` and ``familiarity`` appear only when set, so manifests
        written before they existed read and write back unchanged.
        """
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "architecture": self.architecture,
            "architecture_kwargs": dict(self.architecture_kwargs),
            "file": self.file,
            "sha256": self.sha256,
            "preset": self.preset,
            "input": self.input_contract.to_dict(),
            "output_type": self.output_type,
            "thresholds": dict(self.thresholds),
            "params": json_safe(self.params),
            "metrics": json_safe(self.metrics),
            "provenance": self.provenance.to_dict(),
            "intended_use": self.intended_use,
            "description": self.description,
        }
        if self.default:
            out["default"] = True
        if self.data:
            out["data"] = json_safe(self.data)
        if self.plan:
            out["plan"] = json_safe(self.plan)
        if self.familiarity:
            out["familiarity"] = json_safe(self.familiarity)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, root: Path | None = None) -> "WeightsEntry":
        """Entry from its manifest form; raises ``WeightsError`` naming a missing field."""
        known = {f.name for f in fields(cls)} | {"input"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"manifest entry {data.get('name')!r} has unknown fields {unknown}.")
        try:
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                task=str(data["task"]),
                architecture=str(data["architecture"]),
                file=str(data["file"]),
                sha256=str(data["sha256"]),
                preset=str(data["preset"]),
                input_contract=InputContract.from_dict(data["input"]),
                output_type=str(data.get("output_type", "raw")),
                thresholds=dict(data.get("thresholds", {})),
                params=dict(data.get("params", {})),
                architecture_kwargs=dict(data.get("architecture_kwargs", {})),
                metrics=dict(data.get("metrics", {})),
                provenance=TrainingProvenance.from_dict(data.get("provenance", {})),
                intended_use=str(data.get("intended_use", DEFAULT_INTENDED_USE)),
                description=str(data.get("description", "")),
                default=data.get("default", False),
                data=dict(data.get("data") or {}),
                plan=dict(data.get("plan") or {}),
                familiarity=dict(data.get("familiarity") or {}),
                root=root,
            )
        except KeyError as exc:
            raise WeightsError(f"manifest entry {data.get('name')!r} lacks the field {exc.args[0]!r}.") from None
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"manifest entry {data.get('name')!r} is malformed: {exc}") from None
