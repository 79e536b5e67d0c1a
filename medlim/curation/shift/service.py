"""The MedShift room's service: what the Curation page and ``medlim shift`` both call (thesis ch. 5, issue 17).

* :class:`ShiftRunConfig` — the settings of a run a person starts, with the
  defaults defined once: the page's widgets start at them and ``medlim shift
  run``'s options default to them. They are the settings the README's
  evidence was measured with (CVAD 60 + 20 epochs at 64 px, G ResNet-18 for
  4 epochs, OTDD on G's embedding; the acquisition statistics fused in since
  issue 13, ``stats=False`` for the thesis's score alone); :data:`EVIDENCE_INTERNAL` and
  :data:`EVIDENCE_EXTERNAL` are its phantom datasets, the page's defaults.
* :func:`check_run_name` — a run name is safe and free, or replacing the run
  saved under it was asked for (the page's confirmation, ``--replace``).
* :func:`run_configured` — MedShift with those settings, BLAS held to the
  configured threads.
* :func:`open_run` — a stored run as :class:`StoredRun`: its report, scores
  and tags, with the group table, a group's gallery, the TOP-k table, the
  curated manifest and the summary the page shows and ``medlim shift show``
  prints.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlim.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from medlim.core.engines import Engine
    from medlim.curation.ood.shift_types import ShiftTypeTable
    from medlim.curation.shift.data import ImageSet
    from medlim.curation.shift.pipeline import ShiftConfig, ShiftResult
    from medlim.curation.shift.report import ShiftReport, TopKTableRow

__all__ = [
    "PhantomChoice",
    "EVIDENCE_INTERNAL",
    "EVIDENCE_EXTERNAL",
    "ShiftRunConfig",
    "GroupSummary",
    "GalleryItem",
    "StoredRun",
    "check_run_name",
    "run_configured",
    "blas_threads",
    "open_run",
    "shift_run_argv",
]



@dataclass(frozen=True)
class PhantomChoice:
    """Generated radiograph phantoms as a dataset: ``phantom:SITE:SEED:PER_CLASS[:PARTS]``.

    Attributes:
        site: ``internal``, ``external``, ``mixed`` or a shift mix ``mixLOW-HIGHxFRACTION``.
        seed: the phantom series; per_class: images per body part;
        body_parts: the classes (empty: all seven).
    """

    site: str
    seed: int
    per_class: int
    body_parts: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """The dataset spec :func:`medlim.curation.shift.data.parse_dataset` reads."""
        parts = f":{','.join(self.body_parts)}" if self.body_parts else ""
        return f"phantom:{self.site}:{self.seed}:{self.per_class}{parts}"


#: The internal dataset of the README's MedShift evidence: 120 internal-site radiograph phantoms per body part.
EVIDENCE_INTERNAL = PhantomChoice(site="internal", seed=101, per_class=120)
#: Its external dataset: 60 per body part, half shifted by an external site style at a severity in [0.3, 1].
EVIDENCE_EXTERNAL = PhantomChoice(site="mix0.3-1x0.5", seed=202, per_class=60)

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"`{name}` must be a positive integer, {value!r} is given.")


@dataclass(frozen=True)
class ShiftRunConfig:
    """Settings of a MedShift run started from the page or ``medlim shift run`` (one set of defaults).

    Attributes:
        detector: per-class detector, ``"cvad"`` (thesis) or ``"tend"``.
        size: detector input side in px (a multiple of 32 for CVAD, of 64 for TEND).
        epochs: detector epochs (CVAD VAE / TEND autoencoder); head_epochs: CVAD
            discriminator / TEND head epochs. 60 + 20 separated the shifted
            validation phantoms (AUROC 0.981; 20 + 10 gave 0.834).
        classifier: G's architecture; classifier_epochs: G's epochs.
        k: groups per class, ``"auto"`` (the elbow rule) or a number (the thesis: 5).
        group_scale: k-means on ``"log"`` scores (a stated deviation) or ``"raw"`` (the thesis).
        group_anchor: ``"threshold"`` (the lowest group is what scores below the class detector's
            calibrated threshold; a stated deviation) or ``"none"`` (the thesis's k-means of all scores).
        features: OTDD features, ``"embedding"`` (G's) or ``"pixels"``.
        otdd_max_samples: OTDD samples per side and repeat; otdd_repeats: repeats (thesis 10).
        batch_size: images per streamed batch; seed: training, k-means and OTDD seed;
        threads: torch and BLAS CPU threads.
        stats: fuse the detector's score with the acquisition-statistics score (default
            on, a stated deviation: on validation phantoms with mild named shifts CVAD
            alone gave AUROC 0.509, fused 1.000; :mod:`medlim.curation.shift.acquisition`);
            ``False`` (``--stats off``) is the thesis's MedShift.
    """

    detector: str = "cvad"
    size: int = 64
    epochs: int = 60
    head_epochs: int = 20
    classifier: str = "resnet18"
    classifier_epochs: int = 4
    k: int | str = "auto"
    group_scale: str = "log"
    group_anchor: str = "threshold"
    features: str = "embedding"
    otdd_max_samples: int = 500
    otdd_repeats: int = 10
    batch_size: int = 256
    seed: int = 0
    threads: int = 1
    stats: bool = True

    def __post_init__(self) -> None:
        from medlim.curation.shift.detectors import SHIFT_DETECTORS
        from medlim.curation.shift.grouping import GROUP_ANCHORS, GROUP_SCALES
        from medlim.curation.shift.otdd import FEATURES

        for name, value, allowed in (("detector", self.detector, SHIFT_DETECTORS),
                                     ("group_scale", self.group_scale, GROUP_SCALES),
                                     ("group_anchor", self.group_anchor, GROUP_ANCHORS),
                                     ("features", self.features, FEATURES)):
            if value not in allowed:
                raise ParameterError(f"`{name}` must be one of {allowed}, {value!r} is given.")
        for name in ("size", "epochs", "head_epochs", "classifier_epochs", "otdd_max_samples", "otdd_repeats",
                     "batch_size", "threads"):
            _positive(name, getattr(self, name))
        if self.k != "auto":
            _positive("k", self.k)
        if not isinstance(self.stats, bool):
            raise ParameterError(f"`stats` must be True or False, {self.stats!r} is given.")

    def command_options(self) -> list[str]:
        """These settings as ``medlim shift run`` options (``from_options`` of its parsed line gives them back)."""
        flags = (("--detector", self.detector), ("--size", self.size), ("--epochs", self.epochs),
                 ("--head-epochs", self.head_epochs), ("--classifier", self.classifier),
                 ("--classifier-epochs", self.classifier_epochs), ("--k", self.k), ("--group-scale", self.group_scale),
                 ("--group-anchor", self.group_anchor),
                 ("--features", self.features), ("--max-samples", self.otdd_max_samples),
                 ("--repeats", self.otdd_repeats), ("--batch-size", self.batch_size), ("--seed", self.seed),
                 ("--threads", self.threads), ("--stats", "on" if self.stats else "off"))
        return [text for flag, value in flags for text in (flag, str(value))]

    @classmethod
    def from_options(cls, options: Any) -> ShiftRunConfig:
        """The settings from an object with one attribute per field (``medlim shift run``'s namespace)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    def shift_config(self) -> ShiftConfig:
        """The pipeline's :class:`~medlim.curation.shift.pipeline.ShiftConfig` these settings mean."""
        from medlim.curation.shift.classifier import ClassifierConfig
        from medlim.curation.shift.detectors import DetectorConfig
        from medlim.curation.shift.pipeline import ShiftConfig

        return ShiftConfig(
            detector=DetectorConfig(kind=self.detector, input_size=self.size, epochs=self.epochs,
                                    head_epochs=self.head_epochs, seed=self.seed, threads=self.threads),
            classifier=ClassifierConfig(architecture=self.classifier, epochs=self.classifier_epochs, seed=self.seed,
                                        threads=self.threads),
            k=self.k, group_scale=self.group_scale, group_anchor=self.group_anchor, features=self.features,
            otdd_max_samples=self.otdd_max_samples,
            otdd_repeats=self.otdd_repeats, batch_size=self.batch_size, seed=self.seed, stats=self.stats)


def check_run_name(store: Any, name: str, *, replace: bool = False) -> str:
    """``name`` checked to be a safe run name that is free, or whose run may be replaced.

    Called before a run starts (minutes of training are not spent on a name
    that will be refused); :func:`~medlim.curation.shift.report.save_result`
    checks again when it writes, in one transaction.

    Raises:
        InvalidNameError: not a safe name.
        RunExistsError: a run is saved under it and ``replace`` is false.
    """
    from medlim.core.paths import validate_name
    from medlim.core.store.curation import RunExistsError, run_exists

    name = validate_name(name, what="run name")
    if not replace and run_exists(store, name):
        raise RunExistsError(f"a run is saved as {name!r} already; replace it (its tags are deleted) "
                             "or choose another name.")
    return name


@contextlib.contextmanager
def _blas_threads(threads: int) -> Iterator[None]:
    # numpy's BLAS starts one thread per core by default; on a shared CPU that is many
    # times slower for the small products of OTDD. threadpoolctl comes with scikit-learn.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def run_configured(internal: ImageSet, external: ImageSet, config: ShiftRunConfig, *, log: Log | None = None,
                   progress: Progress | None = None, engine: Engine | None = None) -> ShiftResult:
    """:func:`~medlim.curation.shift.pipeline.run_shift` with ``config``, BLAS held to ``config.threads``
    (``engine``: where the external images are scored; None: this process)."""
    from medlim.curation.shift.pipeline import run_shift

    with _blas_threads(config.threads):
        return run_shift(internal, external, config.shift_config(), log=log, progress=progress, engine=engine)


def blas_threads(threads: int) -> contextlib.AbstractContextManager[None]:
    """Hold numpy's BLAS to ``threads`` threads (``medlim shift otdd``)."""
    return _blas_threads(threads)


@dataclass(frozen=True)
class GroupSummary:
    """One class's score group in a stored run, with the curator's decisions so far."""

    class_name: str
    group: int
    images: int
    min_score: float
    max_score: float
    keep: int
    drop: int

    def to_json(self) -> dict[str, Any]:
        """``class, group, images, min score, max score, keep, drop`` (the page's table columns)."""
        return {"class": self.class_name, "group": self.group, "images": self.images, "min score": self.min_score,
                "max score": self.max_score, "keep": self.keep, "drop": self.drop}


@dataclass(frozen=True)
class GalleryItem:
    """One image of a group gallery: its file (relative to the dataset), class, score, group and tag (or ``""``)."""

    file: str
    class_name: str
    score: float
    group: int
    tag: str = ""


@dataclass(frozen=True)
class StoredRun:
    """A stored MedShift run: its report, the stored scores of its method and the tags.

    Attributes:
        name: the dataset name in the store.
        report: the saved :class:`~medlim.curation.shift.report.ShiftReport`.
        scores: :class:`medlim.core.store.curation.StoredScore` of ``report.method``
            (sorted by class, score, file).
        tags: file → ``"keep"`` / ``"drop"``.
    """

    name: str
    report: ShiftReport
    scores: tuple[Any, ...]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def images(self) -> int:
        """External images scored."""
        return len(self.scores)

    @property
    def tagged(self) -> int:
        """Images tagged keep or drop."""
        return len(self.tags)

    @property
    def classes(self) -> list[str]:
        """Classes of the scored images, sorted."""
        return sorted({s.class_name or "" for s in self.scores})

    def group_table(self) -> tuple[GroupSummary, ...]:
        """Per class and group (sorted): images, score range, kept and dropped counts."""
        table: dict[tuple[str, int], dict[str, Any]] = {}
        for s in self.scores:
            key = (s.class_name or "", int(s.group if s.group is not None else -1))
            row = table.setdefault(key, {"images": 0, "low": math.inf, "high": -math.inf, "keep": 0, "drop": 0})
            row["images"] += 1
            row["low"], row["high"] = min(row["low"], s.score), max(row["high"], s.score)
            tag = self.tags.get(s.file)
            if tag in ("keep", "drop"):
                row[tag] += 1
        return tuple(GroupSummary(class_name=key[0], group=key[1], images=row["images"], min_score=row["low"],
                                  max_score=row["high"], keep=row["keep"], drop=row["drop"])
                     for key, row in sorted(table.items()))

    def gallery(self, class_name: str, group: int) -> tuple[GalleryItem, ...]:
        """The images of one class and group, ascending by score (then file), with their tags."""
        items = [GalleryItem(file=s.file, class_name=s.class_name or "", score=s.score, group=int(s.group),
                             tag=self.tags.get(s.file, ""))
                 for s in self.scores if s.class_name == class_name and s.group == group]
        return tuple(sorted(items, key=lambda item: (item.score, item.file)))

    def topk_table(self) -> tuple[TopKTableRow, ...]:
        """The flat TOP-k table (thesis Table 5.2)."""
        from medlim.curation.shift.report import topk_table_rows

        return topk_table_rows(self.report.topk)

    def curated(self, drop_groups_from: int | None = None) -> list[dict[str, Any]]:
        """The curated manifest's rows (see :func:`~medlim.curation.shift.report.curated_rows`)."""
        from medlim.curation.shift.report import curated_rows

        return curated_rows(self.scores, self.tags, drop_groups_from=drop_groups_from)

    def summary(self) -> dict[str, Any]:
        """Every number the page's workspace shows outside the gallery (``medlim shift show --json``)."""
        report = self.report
        evidence = report.evidence
        return {
            "dataset": self.name, "method": report.method, "external_images": self.images, "k": report.k,
            "tagged": self.tagged, "auroc": None if evidence is None or not math.isfinite(evidence.auroc)
            else evidence.auroc,
            "k_rule": report.k_rule, "group_scale": report.group_scale, "group_anchor": report.group_anchor,
            "class_elbows": dict(report.class_elbows),
            "groups": [g.to_json() for g in self.group_table()],
            "otdd": {"levels": report.levels, "otdd_mean": report.otdd_mean, "otdd_std": report.otdd_std,
                     "macro_f1": report.macro_f1},
            **({"shift_types": self.shift_types.to_dict()} if self.shift_types is not None else {}),
        }

    @property
    def shift_types(self) -> ShiftTypeTable | None:
        """Detection per shift type when the external images carried one (issue 13), else ``None``."""
        evidence = self.report.evidence
        return None if evidence is None else evidence.shift_types


def open_run(store: Any, home: str | Path, name: str) -> StoredRun:
    """The run stored as ``name``: its report (under ``home``), scores and tags.

    Raises:
        ParameterError: no report is saved under ``name`` (run MedShift first).
    """
    from medlim.core.store.curation import get_scores, tag_map
    from medlim.curation.shift.report import load_report

    report = load_report(home, name)
    if report is None:
        raise ParameterError(f"no MedShift report is saved as {name!r}; run `medlim shift run --dataset {name}` "
                             "or a new run on the Curation page.")
    return StoredRun(name=name, report=report, scores=get_scores(store, name, method=report.method),
                     tags=tag_map(store, name))


def shift_run_argv(internal: str, external: str, config: ShiftRunConfig, *, out: str | Path, dataset: str,
                   replace: bool = False) -> list[str]:
    """``["shift", "run", ...]``: the command (without ``medlim``) a page queues as a ``shift.run`` job (issue 15).

    Args:
        internal, external: dataset specs (a folder, or ``phantom:SITE:SEED:PER_CLASS[:PARTS]``).
        config: the run settings.
        out: the output folder.
        dataset: the run's name in the results store.
        replace: replace a run saved under that name.
    """
    argv = ["shift", "run", "--internal", str(internal), "--external", str(external), "--out", str(out),
            "--dataset", dataset, *config.command_options()]
    return argv + (["--replace"] if replace else [])
