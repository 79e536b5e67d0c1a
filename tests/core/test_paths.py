"""Data-root confinement, safe names and distinct output stems (issue 14)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medlim.core.paths import confine_to_data_roots, is_within_data_roots, output_stems, validate_name
from medlim.errors import InvalidNameError, PathNotAllowedError
from medlim.settings import Settings


def _settings(*roots: Path) -> Settings:
    return Settings.from_env({"MEDLIM_HOME": "/nonexistent-home", "MEDLIM_DATA_ROOTS": os.pathsep.join(map(str, roots))})


def test_a_folder_inside_a_root_is_returned_resolved(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "study").mkdir(parents=True)
    assert confine_to_data_roots(str(root / "study"), _settings(root)) == (root / "study").resolve()
    assert confine_to_data_roots("study", _settings(root)) == (root / "study").resolve()  # relative: under the first root
    assert confine_to_data_roots(str(root), _settings(root)) == root.resolve()


@pytest.mark.parametrize("typed", ["/etc", "/etc/passwd", "../../", "..", "/", "", "a\x00b"])
def test_paths_outside_every_root_are_refused_with_the_roots_named(tmp_path: Path, typed: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PathNotAllowedError) as info:
        confine_to_data_roots(typed, _settings(root))
    assert str(root) in info.value.message and "MEDLIM_DATA_ROOTS" in info.value.message


def test_the_message_does_not_reveal_whether_the_path_exists(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    messages = set()
    for typed in ("/etc", "/no/such/folder/anywhere", str(tmp_path)):
        with pytest.raises(PathNotAllowedError) as info:
            confine_to_data_roots(typed, _settings(root))
        messages.add(info.value.message)
    assert len(messages) == 1


def test_a_link_inside_a_root_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(PathNotAllowedError):
        confine_to_data_roots(str(root / "escape"), _settings(root))
    assert not is_within_data_roots(root / "escape", _settings(root))
    # a sibling whose name merely starts like the root is not inside it
    (tmp_path / "root2").mkdir()
    assert not is_within_data_roots(tmp_path / "root2", _settings(root))


def test_a_root_that_is_itself_a_link_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "a").mkdir(parents=True)
    (tmp_path / "linked").symlink_to(real)
    assert confine_to_data_roots(str(real / "a"), _settings(tmp_path / "linked")) == (real / "a").resolve()


def test_default_roots_are_the_samples_and_the_datasets_folder() -> None:
    settings = Settings.from_env({"MEDLIM_HOME": "/h", "MEDLIM_SAMPLES_DIR": "/s"})
    assert settings.data_roots == (Path("/s"), Path("/h/datasets"))
    assert settings.datasets_dir == Path("/h/datasets")


def test_the_kept_datasets_folder_stays_readable_beside_the_roots_given(tmp_path: Path) -> None:
    from medlim.core.paths import allowed_roots_text, is_within_data_roots

    home, data = tmp_path / "home", tmp_path / "data"
    (home / "datasets" / "hospital-a").mkdir(parents=True)
    settings = Settings.from_env({"MEDLIM_HOME": str(home), "MEDLIM_DATA_ROOTS": str(data)})
    assert settings.data_roots == (data,)  # as configured: job folders still go under the first root
    kept = home / "datasets" / "hospital-a"
    assert confine_to_data_roots(str(kept), settings) == kept.resolve()  # a kept upload opens again
    assert not is_within_data_roots(kept, settings, configured_only=True)
    assert allowed_roots_text(settings) == f"{data}, {home / 'datasets'} (kept datasets)"
    with pytest.raises(PathNotAllowedError):
        confine_to_data_roots(str(home), settings)  # the rest of MEDLIM_HOME stays out


@pytest.mark.parametrize("name", ["phantoms", "Site A 2024", "run_1.v2", "x" * 64])
def test_valid_names_pass_stripped(name: str) -> None:
    assert validate_name(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", "   ", "../x", "a/b", "a\\b", ".hidden", "a..b", "x" * 65, "-rf", "na\nme", "é"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(name, what="collection name")


def test_output_stems_keep_colliding_inputs_apart(tmp_path: Path) -> None:
    files = [tmp_path / "study1" / "IMG0001.dcm", tmp_path / "study2" / "IMG0001.dcm", tmp_path / "study1" / "other.png"]
    assert output_stems(files) == ["study1__IMG0001", "study2__IMG0001", "other"]


def test_output_stems_add_a_hash_when_relative_paths_still_collide(tmp_path: Path) -> None:
    files = [tmp_path / "a" / "x.png", tmp_path / "a" / "x.dcm"]
    stems = output_stems(files)
    assert len(set(stems)) == 2 and all(stem.startswith("x-") and len(stem) == len("x-") + 8 for stem in stems)


def test_integer_settings_name_the_variable_when_malformed() -> None:
    from medlim.errors import ParameterError

    for variable in ("MEDLIM_MAX_PIXELS", "MEDLIM_DECODE_BUDGET_MB", "MEDLIM_ZIP_MAX_MB"):
        for bad in ("abc", "0", "-5", "1.5"):
            with pytest.raises(ParameterError, match=variable):
                Settings.from_env({variable: bad})
    assert Settings.from_env({"MEDLIM_DECODE_BUDGET_MB": "2_048"}).decode_budget_bytes == 2048 * 1024 * 1024


def test_a_folder_typed_in_the_other_unicode_form_is_found_and_still_confined(tmp_path: Path) -> None:
    import unicodedata

    root = tmp_path / "roots"
    (root / "Clinique Épaule").mkdir(parents=True)  # composed on disk, as typed on a keyboard
    pasted = unicodedata.normalize("NFD", "Clinique Épaule")  # as copied from a Mac
    assert confine_to_data_roots(pasted, _settings(root)) == (root / "Clinique Épaule").resolve()
    (tmp_path / "outside").mkdir()
    (root / unicodedata.normalize("NFD", "Lien É")).symlink_to(tmp_path / "outside")  # a link leading out
    assert confine_to_data_roots("Lien É", _settings(root)) == (root / "Lien É").resolve()  # not the link
