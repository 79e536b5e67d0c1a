"""Engines: where the per-file work of a batch command runs — here, or on a Ray cluster.

Issue 15 ("Scale-out on Ray"): ``medlim bac quantify``, ``ood score``, the
scoring stage of ``shift run`` and ``retrieval build`` take ``--engine
local|ray``. A room describes its per-file work once, as a :class:`FileWork`:

* ``read(name, source)`` reads and decodes one file (CPU, no model);
* ``infer(model, names, decoded)`` runs the model on a few decoded files;
* ``load_model()`` gives the model (a Ray actor calls it once).

:class:`LocalEngine` runs both steps in this process. :class:`RayEngine` runs
``infer`` in a pool of model actors, and ``read`` as Ray CPU tasks (one per ``batch`` of
files) when the actors hold GPUs, else in the actor just before ``infer`` (see
:class:`RayEngine` for why). The actors are one per GPU
(``num_gpus=1`` each) when the cluster has GPUs, else ``workers`` CPU actors of
``threads`` torch threads and as many logical CPUs each, so the actors, the
reading tasks and Ray's own processes (raylet, GCS, the driver) do not fight
for the same cores. Both engines wrap the very same two steps in the same
error handling (:func:`medlim.core.batch.error_row`) and yield one
:class:`medlim.core.batch.Attempt` per file, in input order, so everything
after them — rows, store writes, progress lines, ``--resume`` — is one code path.

A model actor that dies (killed, out of memory, its machine lost) is restarted
by Ray; the files it held are sent once more, and a file whose second try dies
too gets a :class:`medlim.errors.WorkerLostError` row while the run goes on
(:class:`_LostWork`).

With no address (``MEDLIM_RAY_ADDRESS`` unset) :class:`RayEngine` starts Ray on
this machine (no dashboard, warnings only) and stops it afterwards; with one it
connects to that cluster. A Ray session that is already running is used as it
is (and left running). Ray is imported only when a Ray run starts.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from medlim.core.batch import Attempt, Progress, error_row
from medlim.errors import MedlimError, ParameterError, WorkerLostError
from medlim.settings import Settings

__all__ = [
    "ENGINES",
    "Engine",
    "FileWork",
    "LocalEngine",
    "RayEngine",
    "engine_from_settings",
    "given",
    "ray_session",
]

Source = TypeVar("Source")
Decoded = TypeVar("Decoded")
Model = TypeVar("Model")
Result = TypeVar("Result")

#: The engines a batch command can run on.
ENGINES: tuple[str, ...] = ("local", "ray")

#: Logical CPUs of one reading task: two reads share a core (reading is short beside inference).
_READ_CPUS = 0.5
#: Model calls queued per actor beyond the running one (keeps every actor busy without holding many images).
_QUEUED_PER_ACTOR = 1
#: Chunks whose model worker died (also on the retry) before a run stops: one bad file is a row, many are a fault.
_MAX_LOST_CHUNKS = 3


@dataclass(frozen=True)
class FileWork(Generic[Source, Decoded, Model, Result]):
    """The per-file work of a batch command, split where an engine may run the parts apart.

    The functions must be importable module-level functions (or ``functools.partial``
    of them) so Ray can send them to other processes; each may raise
    :class:`medlim.errors.MedlimError` for a file a person must act on.

    Attributes:
        read: ``read(name, source) -> decoded``: one file read and decoded (no model).
        infer: ``infer(model, names, decoded) -> results``: the model on up to ``batch``
            decoded files, one result per file in order. An error fails the whole call's files.
        load_model: ``load_model() -> model``: the model, as a worker process needs it.
        batch: files per ``infer`` call (≥ 1).
    """

    read: Callable[[str, Source], Decoded]
    infer: Callable[[Model, Sequence[str], Sequence[Decoded]], Sequence[Result]]
    load_model: Callable[[], Model]
    batch: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ParameterError(f"`batch` must be a positive integer, {self.batch!r} is given.")


@dataclass(frozen=True)
class _Step:
    """What one step gave for one file: a value, or the file's error row (picklable, crosses processes)."""

    name: str
    value: Any
    failure: dict[str, Any] | None
    seconds: float


def _read_step(read: Callable[[str, Any], Any], name: str, source: Any, hidden: tuple[str, ...]) -> _Step:
    """``read(name, source)`` as a :class:`_Step` (a user's error becomes the file's error row)."""
    started = time.perf_counter()
    try:
        return _Step(name, read(name, source), None, time.perf_counter() - started)
    except (MedlimError, MemoryError) as exc:
        return _Step(name, None, error_row(name, exc, hidden=hidden), time.perf_counter() - started)


def _read_steps(read: Callable[[str, Any], Any], files: Sequence[tuple[str, Any, tuple[str, ...]]]) -> list[_Step]:
    """:func:`_read_step` of each ``(name, source, hidden)`` (one Ray task reads a whole chunk: less overhead)."""
    return [_read_step(read, name, source, hidden) for name, source, hidden in files]


def _infer_steps(
    infer: Callable[[Any, Sequence[str], Sequence[Any]], Sequence[Any]],
    model: Any,
    reads: Sequence[_Step],
    hidden: Sequence[tuple[str, ...]],
) -> list[_Step]:
    """``infer`` on the files of ``reads`` that were read; one step per read, in order.

    The model's time is shared out evenly over the files it ran on.
    """
    ready = [read for read in reads if read.failure is None]
    started = time.perf_counter()
    failed: MedlimError | MemoryError | None = None
    results: list[Any] = []
    if ready:
        try:
            results = list(infer(model, [read.name for read in ready], [read.value for read in ready]))
        except (MedlimError, MemoryError) as exc:
            failed = exc
        if failed is None and len(results) != len(ready):
            raise RuntimeError(f"infer gave {len(results)} results for {len(ready)} files")  # a bug, not a user's error
    share = (time.perf_counter() - started) / max(1, len(ready))
    answers = iter(results)
    steps = []
    for read, texts in zip(reads, hidden):
        if read.failure is not None:
            steps.append(read)
        elif failed is not None:
            steps.append(_Step(read.name, None, error_row(read.name, failed, hidden=texts), read.seconds + share))
        else:
            steps.append(_Step(read.name, next(answers), None, read.seconds + share))
    return steps


def _skip_step(
    skip: Callable[[str, Any], Any] | None, name: str, source: Any, hidden: tuple[str, ...]
) -> _Step | None:
    """The file's answer without reading it (``skip`` returned one, e.g. a stored result), else ``None``."""
    if skip is None:
        return None
    started = time.perf_counter()
    try:
        value = skip(name, source)
    except (MedlimError, MemoryError) as exc:
        return _Step(name, None, error_row(name, exc, hidden=hidden), time.perf_counter() - started)
    return None if value is None else _Step(name, value, None, time.perf_counter() - started)


@dataclass(frozen=True)
class _Planned:
    """One file of a batch, its hidden texts worked out, and its answer when ``skip`` gave one."""

    name: str
    source: Any
    hidden: tuple[str, ...]
    done: _Step | None


def _planned_chunks(
    items: Iterable[tuple[str, Any]],
    batch: int,
    skip: Callable[[str, Any], Any] | None,
    hidden: Callable[[Any], Iterable[str]] | None,
) -> Iterator[list[_Planned]]:
    """Consecutive files, ``batch`` at a time (lazily: a chunk is planned when it is taken)."""
    chunk: list[_Planned] = []
    for name, source in items:
        texts = tuple(hidden(source)) if hidden is not None else ()
        chunk.append(_Planned(name, source, texts, _skip_step(skip, name, source, texts)))
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _attempts_of(
    steps: Sequence[_Step], start: int, progress: Progress | None
) -> Iterator[Attempt[Any]]:
    for offset, step in enumerate(steps):
        if progress is not None:
            progress(start + offset, step.name, step.seconds)
        yield Attempt(start + offset, step.name, step.value if step.failure is None else None, step.failure,
                      step.seconds)


def _merged(chunk: Sequence[_Planned], computed: Sequence[_Step]) -> list[_Step]:
    """The chunk's steps in order: skipped files' answers with the computed ones."""
    answers = iter(computed)
    return [planned.done if planned.done is not None else next(answers) for planned in chunk]


class Engine:
    """Where a :class:`FileWork` runs; see :class:`LocalEngine` and :class:`RayEngine`."""

    name = "engine"

    def attempts(
        self,
        work: FileWork[Any, Any, Any, Any],
        items: Iterable[tuple[str, Any]],
        *,
        model: Any = None,
        skip: Callable[[str, Any], Any] | None = None,
        progress: Progress | None = None,
        hidden: Callable[[Any], Iterable[str]] | None = None,
    ) -> Iterator[Attempt[Any]]:
        """Run ``work`` over ``(name, source)`` items: one :class:`Attempt` per item, in input order.

        Args:
            work: the room's per-file work.
            items: ``(display name, path or bytes)`` pairs.
            model: the model already loaded in this process (the local engine uses it;
                ``None``: ``work.load_model()``).
            skip: ``skip(name, source)``, run here before a file is read: its answer
                when the file needs no work (a stored result for ``--resume``), else ``None``.
            progress: ``progress(index, name, seconds)`` as each file's attempt is yielded.
            hidden: for pseudonymised names, a source's texts (real path, file name)
                that error messages must not show (:func:`medlim.core.batch.error_row`).

        Yields:
            :class:`medlim.core.batch.Attempt` whose ``result`` is an ``infer`` result or a ``skip`` answer.
        """
        raise NotImplementedError


class LocalEngine(Engine):
    """Runs the work in this process, one chunk of ``work.batch`` files after another."""

    name = "local"

    def attempts(
        self,
        work: FileWork[Any, Any, Any, Any],
        items: Iterable[tuple[str, Any]],
        *,
        model: Any = None,
        skip: Callable[[str, Any], Any] | None = None,
        progress: Progress | None = None,
        hidden: Callable[[Any], Iterable[str]] | None = None,
    ) -> Iterator[Attempt[Any]]:
        loaded = work.load_model() if model is None else model
        start = 1
        for chunk in _planned_chunks(items, work.batch, skip, hidden):
            todo = [planned for planned in chunk if planned.done is None]
            reads = _read_steps(work.read, [(p.name, p.source, p.hidden) for p in todo])
            computed = _infer_steps(work.infer, loaded, reads, [p.hidden for p in todo])
            yield from _attempts_of(_merged(chunk, computed), start, progress)
            start += len(chunk)


def given(model: Model) -> Model:
    """A :attr:`FileWork.load_model` for a model already in memory: each Ray worker receives a copy once."""
    return model


def _medlim_environment() -> dict[str, str]:
    """The ``MEDLIM_*`` variables of this process, given to Ray's workers so they read files with the same limits."""
    return {key: value for key, value in os.environ.items() if key.startswith("MEDLIM_")}


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of a run: the running session, else a new one (stopped afterwards).

    Args:
        address: a cluster to connect to (``ray://host:10001``, ``host:6379`` or ``auto``);
            ``None`` starts Ray on this machine.
        num_cpus: logical CPUs of a Ray started here (``None``: the machine's cores).
    """
    import logging

    import ray

    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=num_cpus, **options)
    try:
        yield
    finally:
        ray.shutdown()


def _limit_threads(threads: int) -> None:
    """Fix the math libraries' threads of a worker process (torch, OpenCV)."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


class _ModelActor:
    """A Ray actor holding one model: loaded once, then ``infer`` on chunks of read files."""

    def __init__(self, load_model: Callable[[], Any], infer: Callable[..., Sequence[Any]], threads: int) -> None:
        _limit_threads(threads)
        self._model = load_model()
        self._infer = infer

    def ready(self) -> bool:
        return True

    def infer(self, hidden: Sequence[tuple[str, ...]], reads: Sequence[_Step]) -> list[_Step]:
        return _infer_steps(self._infer, self._model, reads, hidden)

    def read_infer(self, read: Callable[[str, Any], Any], files: Sequence[tuple[str, Any, tuple[str, ...]]]
                   ) -> list[_Step]:
        """Read the files here, then infer (a CPU pool: see :class:`RayEngine`'s ``reading``)."""
        return _infer_steps(self._infer, self._model, _read_steps(read, files), [texts for _, _, texts in files])


@dataclass(frozen=True)
class _Pool:
    """The model actors of a run and the reading task (``None``: the actors read their own files)."""

    actors: tuple[Any, ...]
    read: Any | None


class RayEngine(Engine):
    """Reads files in Ray CPU tasks and runs the model in a pool of Ray actors.

    Where files are read (``reading``): with GPUs, in Ray CPU tasks beside the
    actors, so decoding never waits on a GPU and the GPU never waits on decoding;
    without, by default in the model actor itself, just before it infers. Measured
    on 2 cores (``benchmarks/bench_ray_engine.py``), a reading task costs more
    than the read it moves off the actor: a worker process each new task may start
    (importing medlim and its libraries: seconds), an object-store hop for the
    decoded image, and CPU taken from the model actors, which on a CPU-only
    cluster are the work; reading a small mammogram is ~2 % of its inference.

    Args:
        address: the cluster (``None``: Ray on this machine).
        workers: model actors when the cluster has no GPU (≥ 1); with GPUs, one actor
            per GPU (at most ``workers`` when it is given).
        threads: torch threads of a CPU actor, and the logical CPUs it reserves (≥ 1).
        reading: ``"tasks"`` or ``"actors"``; ``None``: tasks with GPUs, actors without.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, workers: int | None = None, threads: int = 1,
                 reading: str | None = None) -> None:
        for label, value in (("workers", workers), ("threads", threads)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ParameterError(f"`{label}` must be a positive integer, {value!r} is given.")
        if reading not in (None, "tasks", "actors"):
            raise ParameterError(f"`reading` must be 'tasks' or 'actors', {reading!r} is given.")
        self.address = address or None
        self.workers = workers
        self.threads = threads
        self.reading = reading

    def _local_cpus(self) -> int:
        """Logical CPUs of a Ray started here: the cores, and at least what the actors and one read need."""
        needed = (self.workers or 2) * self.threads + _READ_CPUS
        return max(os.cpu_count() or 1, math.ceil(needed))

    def _start_pool(self, work: FileWork[Any, Any, Any, Any]) -> _Pool:
        import ray

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        environment = {"env_vars": _medlim_environment()}
        if gpus:
            count, per_actor = (min(gpus, self.workers) if self.workers else gpus), {"num_gpus": 1, "num_cpus": 1}
            threads = 1
        else:
            count, per_actor, threads = self.workers or 2, {"num_cpus": self.threads}, self.threads
        cpus = float(resources.get("CPU", 0))
        if count * per_actor["num_cpus"] + _READ_CPUS > cpus:
            raise ParameterError(
                f"the Ray cluster has {cpus:g} CPUs: {count} model workers of {per_actor['num_cpus']} CPU(s) "
                "would leave none for reading files; ask for fewer workers (--ray-workers, MEDLIM_RAY_WORKERS).")
        actor_class: Any = ray.remote(_ModelActor)
        actors: tuple[Any, ...] = tuple(
            actor_class.options(**per_actor, runtime_env=environment, max_restarts=-1)
            .remote(work.load_model, work.infer, threads)
            for _ in range(count))
        ray.get([actor.ready.remote() for actor in actors])  # a model that cannot load stops the run here
        if (self.reading or ("tasks" if gpus else "actors")) == "actors":
            return _Pool(actors=actors, read=None)
        read = ray.remote(_read_steps).options(num_cpus=_READ_CPUS, runtime_env=environment)
        return _Pool(actors=actors, read=read)

    def attempts(
        self,
        work: FileWork[Any, Any, Any, Any],
        items: Iterable[tuple[str, Any]],
        *,
        model: Any = None,
        skip: Callable[[str, Any], Any] | None = None,
        progress: Progress | None = None,
        hidden: Callable[[Any], Iterable[str]] | None = None,
    ) -> Iterator[Attempt[Any]]:
        import ray

        with ray_session(self.address, num_cpus=self._local_cpus()):
            pool = self._start_pool(work)
            try:
                yield from self._run(pool, work, items, skip=skip, progress=progress, hidden=hidden)
            finally:
                for actor in pool.actors:
                    ray.kill(actor)

    def _run(
        self,
        pool: _Pool,
        work: FileWork[Any, Any, Any, Any],
        items: Iterable[tuple[str, Any]],
        *,
        skip: Callable[[str, Any], Any] | None,
        progress: Progress | None,
        hidden: Callable[[Any], Iterable[str]] | None,
    ) -> Iterator[Attempt[Any]]:
        """Submit chunks round-robin to the actors, a bounded number in flight; yield them in order."""
        import ray

        in_flight: deque[tuple[list[_Planned], Any]] = deque()
        limit = len(pool.actors) * (1 + _QUEUED_PER_ACTOR)
        read = ray.put(work.read)  # sent once, however many tasks use it (it may hold a whole dataset's file list)
        turn = 0

        def submit(chunk: Sequence[_Planned]) -> Any:
            nonlocal turn
            todo = [planned for planned in chunk if planned.done is None]
            if not todo:
                return None
            files = [(p.name, p.source, p.hidden) for p in todo]
            actor = pool.actors[turn % len(pool.actors)]
            turn += 1
            if pool.read is None:
                return actor.read_infer.remote(read, files)
            return actor.infer.remote([p.hidden for p in todo], pool.read.remote(read, files))

        lost = _LostWork(submit)
        start = 1
        for chunk in _planned_chunks(items, work.batch, skip, hidden):
            in_flight.append((chunk, submit(chunk)))
            while len(in_flight) > limit or (in_flight and in_flight[0][1] is None):
                done, ref = in_flight.popleft()
                yield from _attempts_of(_merged(done, lost.answers(done, ref)), start, progress)
                start += len(done)
        while in_flight:
            done, ref = in_flight.popleft()
            yield from _attempts_of(_merged(done, lost.answers(done, ref)), start, progress)
            start += len(done)


class _LostWork:
    """The answers of a chunk sent to Ray; sent once more, alone, when the worker holding it was lost.

    A model actor that dies (killed, out of memory, its node lost) takes the calls
    queued on it along; Ray restarts it (``max_restarts``). Each lost chunk is sent
    once more when its turn comes, while nothing is queued behind it, so a file that
    kills its worker takes no innocent file along the second time. When the second
    try dies too, the chunk's files get a :class:`medlim.errors.WorkerLostError` row
    and the run goes on. After :data:`_MAX_LOST_CHUNKS` such chunks the run stops
    with that error (something is wrong with every file, not one): the files
    already answered are kept, and ``--resume`` goes on from them.

    Args:
        submit: sends a chunk to the pool, returns the call's reference (``None``: nothing to run).
    """

    def __init__(self, submit: Callable[[Sequence[_Planned]], Any]) -> None:
        self.submit = submit
        self.count = 0

    def answers(self, chunk: Sequence[_Planned], ref: Any) -> list[_Step]:
        import ray

        if ref is None:
            return []
        lost_kinds = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                      ray.exceptions.ObjectLostError, ray.exceptions.OutOfMemoryError,
                      ray.exceptions.NodeDiedError)
        for attempt in range(2):
            try:
                return list(ray.get(ref if attempt == 0 else self.submit(chunk)))
            except lost_kinds as exc:
                reason = type(exc).__name__
        self.count += 1
        if self.count > _MAX_LOST_CHUNKS:
            raise WorkerLostError(
                f"Ray's model workers stopped {self.count} times in this run ({reason}), so the run stops; "
                "the files already answered are kept. Check the workers' memory (fewer workers: "
                "--ray-workers), then run again with --resume.")
        error = WorkerLostError(
            "The model worker stopped while it held this file (killed, out of memory or its machine lost), "
            "also when tried again; the run went on without it. Run again with --resume to retry it.")
        todo = [planned for planned in chunk if planned.done is None]
        return [_Step(p.name, None, error_row(p.name, error, hidden=p.hidden), 0.0) for p in todo]


def engine_from_settings(
    name: str | None = None, *, workers: int | None = None, reading: str | None = None,
    settings: Settings | None = None,
) -> Engine:
    """The engine asked for: ``name`` (``local`` or ``ray``), else ``MEDLIM_ENGINE``.

    Args:
        name: ``"local"`` or ``"ray"`` (``None``: the settings').
        workers: Ray's CPU model workers (``None``: ``MEDLIM_RAY_WORKERS``).
        reading: where Ray reads files, ``"auto"``, ``"tasks"`` or ``"actors"``
            (``None``: ``MEDLIM_RAY_READING``; see :class:`RayEngine`).
        settings: current settings when ``None``.

    Raises:
        ParameterError: an unknown engine name or reading layout.
    """
    from medlim.settings import get_settings

    settings = settings or get_settings()
    chosen = (name or settings.engine).lower()
    if chosen not in ENGINES:
        raise ParameterError(f"the engine must be one of {', '.join(ENGINES)}; {chosen!r} is given.")
    if chosen == "local":
        return LocalEngine()
    layout = (reading or settings.ray_reading or "auto").lower()
    if layout not in ("auto", "tasks", "actors"):
        raise ParameterError(f"the Ray reading layout must be auto, tasks or actors; {layout!r} is given.")
    return RayEngine(address=settings.ray_address, workers=workers or settings.ray_workers,
                     reading=None if layout == "auto" else layout)
