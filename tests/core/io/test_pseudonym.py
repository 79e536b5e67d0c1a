"""Pseudonymous patient keys: keyed hash, per-installation key file."""

from __future__ import annotations

import hashlib
import hmac
import stat

from medlim.core.io.pseudonym import PATIENT_KEY_HEX_CHARS, patient_key
from medlim.settings import Settings


def test_keyed_hash_with_configured_secret() -> None:
    settings = Settings.from_env({"MEDLIM_PSEUDONYM_KEY": "s3cret", "MEDLIM_HOME": "/nonexistent"})
    expected = hmac.new(b"s3cret", b"PAT-42", hashlib.sha256).hexdigest()[:PATIENT_KEY_HEX_CHARS]
    assert patient_key("  PAT-42 ", settings=settings) == expected
    assert patient_key("PAT-43", settings=settings) != expected
    assert patient_key("", settings=settings) is None and patient_key(None, settings=settings) is None


def test_installation_key_file_is_created_once_and_private(tmp_path) -> None:
    settings = Settings.from_env({"MEDLIM_HOME": str(tmp_path / "home")})
    first = patient_key("PAT-42", settings=settings)
    key_file = tmp_path / "home" / "pseudonym.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().strip().encode()
    assert len(secret) == 64
    assert first == hmac.new(secret, b"PAT-42", hashlib.sha256).hexdigest()[:PATIENT_KEY_HEX_CHARS]
    assert patient_key("PAT-42", settings=settings) == first  # stable across calls
    other_installation = Settings.from_env({"MEDLIM_HOME": str(tmp_path / "elsewhere")})
    assert patient_key("PAT-42", settings=other_installation) != first
