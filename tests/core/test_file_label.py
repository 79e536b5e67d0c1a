"""Pseudonymous file labels (issue 14, "Identifying data")."""

from __future__ import annotations

import hashlib
import hmac

from medlim.core.io.pseudonym import file_label


def test_the_label_is_a_keyed_hash_of_the_content_with_the_suffix_kept() -> None:
    message = b"sha256:" + hashlib.sha256(b"pixels").digest()
    expected = hmac.new(b"test-pseudonym-key", message, hashlib.sha256).hexdigest()[:12]
    assert file_label("DOE_JOHN_123456_20240101.DCM", data=b"pixels") == f"img-{expected}.dcm"
    assert file_label("other-name.dcm", data=b"pixels") == f"img-{expected}.dcm"  # same image, same label
    # the digest alone (what the results store keeps) gives the same label
    assert file_label("x.dcm", content_sha256=hashlib.sha256(b"pixels").hexdigest()) == f"img-{expected}.dcm"


def test_without_content_the_name_is_hashed_and_never_shown() -> None:
    label = file_label("DOE_JOHN_123456.png")
    expected = hmac.new(b"test-pseudonym-key", b"name:DOE_JOHN_123456.png", hashlib.sha256).hexdigest()[:12]
    assert label == f"img-{expected}.png"
    assert "DOE" not in label and file_label("DOE_JOHN_123457.png") != label


def test_odd_suffixes_are_dropped() -> None:
    assert file_label("x.a b") .count(".") == 0
    assert file_label(None).startswith("img-") and file_label("noext").count(".") == 0
