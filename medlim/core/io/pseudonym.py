"""Pseudonymous patient keys: a keyed hash of the DICOM PatientID.

Issue 2 ("Image input"): the image record carries no names, IDs or birth
dates, only a key that links images of one patient within one installation.
The key is HMAC-SHA256 of the PatientID with a secret (``Settings.pseudonym_key``,
else a random per-installation key kept in ``Settings.home / "pseudonym.key"``),
truncated to :data:`PATIENT_KEY_HEX_CHARS` hex characters. Without the secret the
ID cannot be recovered or confirmed by hashing guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from medlim.errors import InputError
from medlim.settings import Settings, get_settings

__all__ = ["PATIENT_KEY_HEX_CHARS", "patient_key", "pseudonym_secret"]

#: Hex characters kept from the HMAC (64 bits: collisions are negligible for one site).
PATIENT_KEY_HEX_CHARS = 16

_KEY_FILE_NAME = "pseudonym.key"


def pseudonym_secret(settings: Settings | None = None) -> bytes:
    """The secret of the keyed hash, creating the per-installation key file if needed.

    Args:
        settings: settings to use; :func:`medlim.settings.get_settings` when ``None``.

    Returns:
        The secret as bytes (``MEDLIM_PSEUDONYM_KEY`` encoded as UTF-8, else the
        contents of ``home / "pseudonym.key"``).

    Raises:
        InputError: the key file cannot be created or read.
    """
    settings = settings or get_settings()
    if settings.pseudonym_key:
        return settings.pseudonym_key.encode("utf-8")
    key_path = Path(settings.home) / _KEY_FILE_NAME
    try:
        if not key_path.exists():
            key_path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes creating the key at once must not overwrite each other.
            try:
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(32))
        secret = key_path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise InputError(
            f"The pseudonym key file {key_path} cannot be created or read ({exc.strerror}); "
            "set MEDLIM_PSEUDONYM_KEY or make MEDLIM_HOME writable."
        ) from exc
    if not secret:
        raise InputError(f"The pseudonym key file {key_path} is empty; delete it to create a new key.")
    return secret.encode("ascii")


def patient_key(patient_id: str | None, *, settings: Settings | None = None) -> str | None:
    """Pseudonymous key of a patient ID.

    Args:
        patient_id: the DICOM PatientID (surrounding spaces ignored), or ``None``.
        settings: settings holding the secret; current settings when ``None``.

    Returns:
        ``PATIENT_KEY_HEX_CHARS`` lowercase hex characters, or ``None`` when the
        ID is absent or blank.
    """
    if patient_id is None:
        return None
    text = str(patient_id).strip()
    if not text:
        return None
    digest = hmac.new(pseudonym_secret(settings), text.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:PATIENT_KEY_HEX_CHARS]
