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
        device: ``auto``, ``cpu`` or ``cuda`` (``MEDLIM_DEVICE``).
        pseudonym_key: secret for the keyed hash of patient IDs
            (``MEDLIM_PSEUDONYM_KEY``; default a per-installation key file in ``home``).
        max_pixels: images with more pixels are refused (``MEDLIM_MAX_PIXELS``).
    """

    home: Path
    database_url: str
    weights_dir: Path
    samples_dir: Path
    device: str
    pseudonym_key: str | None
    max_pixels: int

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
        return cls(
            home=home,
            database_url=database_url,
            weights_dir=Path(env.get("MEDLIM_WEIGHTS_DIR", str(root / "weights"))),
            samples_dir=Path(env.get("MEDLIM_SAMPLES_DIR", str(root / "data_samples"))),
            device=device,
            pseudonym_key=env.get("MEDLIM_PSEUDONYM_KEY"),
            max_pixels=int(env.get("MEDLIM_MAX_PIXELS", str(20000 * 20000))),
        )


def get_settings() -> Settings:
    """Settings from the current environment (cheap; call where needed)."""
    return Settings.from_env()
