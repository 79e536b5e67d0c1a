"""Settings: one frozen dataclass built from ``MEDLIM_*`` environment variables.

Nothing reads the environment at import time; call :func:`get_settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "get_settings", "project_root"]


def project_root() -> Path:
    """The repository root (the folder holding ``weights/`` and ``data_samples/``)."""
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Runtime settings.

    Attributes:
        home: folder for the results store and user data (``MEDLIM_HOME``,
            default ``~/.medlim``).
        database_url: SQLAlchemy URL of the results store (``MEDLIM_DATABASE_URL``,
            default an SQLite file in ``home``).
        weights_dir: folder holding ``manifest.json`` and weight files
            (``MEDLIM_WEIGHTS_DIR``, default ``<repo>/weights``).
        samples_dir: bundled samples (``MEDLIM_SAMPLES_DIR``).
        models_dir: the user registry: models trained by users (``MEDLIM_MODELS_DIR``,
            default ``home / "models"``); the shipped registry ``weights_dir`` is never
            written by a user run.
        device: ``auto``, ``cpu`` or ``cuda`` (``MEDLIM_DEVICE``).
        pseudonym_key: secret for the keyed hash of patient IDs
            (``MEDLIM_PSEUDONYM_KEY``; default a per-installation key file in ``home``).
        max_pixels: images with more pixels are refused (``MEDLIM_MAX_PIXELS``).
        data_roots: folders a page may read or list (``MEDLIM_DATA_ROOTS``, paths
            separated by ``os.pathsep``; default the bundled samples and ``home / "datasets"``, which a page
            may read in any case: kept uploads go there). The command line is not confined by them.
        decode_budget_mb: memory one decoded image may take, in MiB, checked from
            the file's header before decoding (``MEDLIM_DECODE_BUDGET_MB``, default 1024).
        zip_max_mb: uncompressed MiB an archive may expand to (``MEDLIM_ZIP_MAX_MB``, default 4096).
        zip_max_members: files an archive may hold (``MEDLIM_ZIP_MAX_MEMBERS``, default 50,000).
        cache_ttl_s: how long the app keeps a cached decoded image or result, in
            seconds (``MEDLIM_CACHE_TTL_S``, default 1200).
        zip_max_ratio: largest uncompressed ÷ compressed size of an archive or
            member (``MEDLIM_ZIP_MAX_RATIO``, default 200).
        worker: ``auto`` (the app starts a job worker beside itself) or ``external``
            (workers are started by hand or by compose: ``medlim worker``) (``MEDLIM_WORKER``).
        job_stale_s: seconds without a heartbeat after which a running job is taken to
            have lost its worker and is queued again, and a worker is taken to be gone
            (``MEDLIM_JOB_STALE_S``, default 60).
        engine: where batch commands run their per-file work, ``local`` or ``ray``
            (``MEDLIM_ENGINE``, default ``local``; :mod:`medlim.core.engines`).
        ray_address: the Ray cluster of the ``ray`` engine (``MEDLIM_RAY_ADDRESS``;
            unset: Ray starts on this machine).
        ray_workers: model workers of the ``ray`` engine when the cluster has no GPU
            (``MEDLIM_RAY_WORKERS``, default 2; with GPUs one per GPU).
        ray_reading: where the ``ray`` engine reads files: ``auto`` (Ray CPU tasks
            with GPUs, the model actors without), ``tasks`` or ``actors``
            (``MEDLIM_RAY_READING``, default ``auto``).
        cache_mb: MiB the on-disk cache of computed maps may take (``MEDLIM_CACHE_MB``,
            default 2048; least recently used entries are evicted; :mod:`medlim.core.disk_cache`).
    """

    home: Path
    database_url: str
    weights_dir: Path
    samples_dir: Path
    device: str
    pseudonym_key: str | None
    max_pixels: int
    data_roots: tuple[Path, ...] = ()
    models_dir: Path | None = None
    cache_ttl_s: float = 1200.0
    decode_budget_mb: int = 1024
    zip_max_mb: int = 4096
    zip_max_members: int = 50_000
    zip_max_ratio: int = 200
    worker: str = "auto"
    job_stale_s: int = 60
    engine: str = "local"
    ray_address: str | None = None
    ray_workers: int = 2
    ray_reading: str = "auto"
    cache_mb: int = 2048

    @property
    def datasets_dir(self) -> Path:
        """Where datasets a user chose to keep are stored (a data root by default)."""
        return Path(self.home) / "datasets"

    @property
    def decode_budget_bytes(self) -> int:
        return int(self.decode_budget_mb) * (1 << 20)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("MEDLIM_HOME", str(Path.home() / ".medlim"))).expanduser()
        root = project_root()
        database_url = env.get("MEDLIM_DATABASE_URL", f"sqlite:///{home / 'medlim.sqlite'}")
        device = env.get("MEDLIM_DEVICE", "auto").lower()
        if device not in {"auto", "cpu", "cuda"}:
            from medlim.errors import ParameterError

            raise ParameterError(f"MEDLIM_DEVICE must be auto, cpu or cuda; {device!r} is given.")
        engine = env.get("MEDLIM_ENGINE", "local").strip().lower() or "local"
        if engine not in {"local", "ray"}:
            from medlim.errors import ParameterError

            raise ParameterError(f"MEDLIM_ENGINE must be local or ray; {engine!r} is given.")
        ray_reading = (env.get("MEDLIM_RAY_READING") or "auto").strip().lower()
        if ray_reading not in {"auto", "tasks", "actors"}:
            from medlim.errors import ParameterError

            raise ParameterError(f"MEDLIM_RAY_READING must be auto, tasks or actors; {ray_reading!r} is given.")
        samples_dir = Path(env.get("MEDLIM_SAMPLES_DIR", str(root / "data_samples")))
        worker = (env.get("MEDLIM_WORKER") or "auto").strip().lower()
        if worker not in {"auto", "external"}:
            from medlim.errors import ParameterError

            raise ParameterError(f"MEDLIM_WORKER must be auto or external; {worker!r} is given.")
        return cls(
            home=home,
            database_url=database_url,
            weights_dir=Path(env.get("MEDLIM_WEIGHTS_DIR", str(root / "weights"))),
            samples_dir=samples_dir,
            device=device,
            pseudonym_key=env.get("MEDLIM_PSEUDONYM_KEY"),
            max_pixels=_positive_int(env, "MEDLIM_MAX_PIXELS", 20000 * 20000),
            data_roots=_data_roots(env, home=home, samples_dir=samples_dir),
            models_dir=Path(env.get("MEDLIM_MODELS_DIR", str(home / "models"))).expanduser(),
            decode_budget_mb=_positive_int(env, "MEDLIM_DECODE_BUDGET_MB", 1024),
            zip_max_mb=_positive_int(env, "MEDLIM_ZIP_MAX_MB", 4096),
            zip_max_members=_positive_int(env, "MEDLIM_ZIP_MAX_MEMBERS", 50_000),
            zip_max_ratio=_positive_int(env, "MEDLIM_ZIP_MAX_RATIO", 200),
            cache_ttl_s=_positive_seconds(env, "MEDLIM_CACHE_TTL_S", 1200.0),
            worker=worker,
            job_stale_s=_positive_int(env, "MEDLIM_JOB_STALE_S", 60),
            engine=engine,
            ray_address=(env.get("MEDLIM_RAY_ADDRESS") or "").strip() or None,
            ray_workers=_positive_int(env, "MEDLIM_RAY_WORKERS", 2),
            ray_reading=ray_reading,
            cache_mb=_positive_int(env, "MEDLIM_CACHE_MB", 2048),
        )


def _positive_seconds(env: dict[str, str], variable: str, default: float) -> float:
    """``env[variable]`` as a positive, finite number of seconds, else ``default``.

    Raises:
        ParameterError: the variable is set to something else.
    """
    text = (env.get(variable) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        from medlim.errors import ParameterError

        raise ParameterError(f"{variable} must be a positive number of seconds; {text!r} is given.")
    return value


def _positive_int(env: dict[str, str], variable: str, default: int) -> int:
    """``env[variable]`` as a positive integer (``_`` separators allowed), else ``default``.

    Raises:
        ParameterError: the variable is set to something that is not a positive integer.
    """
    text = env.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        from medlim.errors import ParameterError

        raise ParameterError(f"{variable} must be a positive whole number; {text!r} is given.")
    return value


def _data_roots(env: dict[str, str], *, home: Path, samples_dir: Path) -> tuple[Path, ...]:
    """``MEDLIM_DATA_ROOTS`` split on ``os.pathsep`` (empty parts skipped), else the defaults (the kept-datasets
    folder is readable either way: :mod:`medlim.core.paths`)."""
    text = env.get("MEDLIM_DATA_ROOTS")
    if text is None or not text.strip():
        return (samples_dir, home / "datasets")
    return tuple(Path(part).expanduser() for part in text.split(os.pathsep) if part.strip())


def get_settings() -> Settings:
    """Settings from the current environment (cheap; call where needed)."""
    return Settings.from_env()
