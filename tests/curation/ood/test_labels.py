"""Folder names matched tolerantly to a detector's class (issue 17: MURA's ``XR_HUMERUS`` is class ``humerus``)."""

from __future__ import annotations

import numpy as np
import pytest

from medlim.curation.ood.labels import auroc_notes, class_key, folder_labels, folder_matches, matching_class
from medlim.errors import ParameterError


@pytest.mark.parametrize(("name", "key"), [
    ("humerus", "humerus"),
    ("XR_HUMERUS", "humerus"),  # MURA
    ("Humerus_images", "humerus"),
    ("HumerusImages", "humerus"),
    ("humerus-data", "humerus"),
    ("CT.chest", "chest"),
    ("hand-wrist", "hand_wrist"),
    ("Hand Wrist", "hand_wrist"),
    ("images", "images"),  # a name of dropped words only keeps them
    ("XR", "xr"),
    ("__", ""),
])
def test_class_key_by_hand(name: str, key: str) -> None:
    assert class_key(name) == key


def test_folder_matches_case_prefix_suffix_and_plural_but_not_other_classes() -> None:
    for folder in ("XR_HUMERUS", "humerus", "Humerus_images", "HUMERUS", "humeruses"):
        assert folder_matches(folder, "humerus"), folder
    assert folder_matches("hands", "hand") and folder_matches("XR_HAND", "hand")
    for folder in ("XR_HAND", "humerus_left", "xr", "", "shoulder"):
        assert not folder_matches(folder, "humerus"), folder
    assert not folder_matches("anything", "")


def test_matching_class_takes_the_folder_nearest_the_file() -> None:
    assert matching_class(("XR_HUMERUS", "patient01", "study1_positive"), ("humerus",)) == ("XR_HUMERUS", "humerus")
    assert matching_class(("hand", "XR_HUMERUS"), ("hand", "humerus")) == ("XR_HUMERUS", "humerus")
    assert matching_class(("patient01",), ("humerus",)) is None
    assert matching_class((), ("humerus",)) is None


def test_folder_labels_of_mura_style_folders() -> None:
    labels = folder_labels([("XR_HUMERUS", "p1", "s1"), ("XR_HAND", "p2", "s1"), ("XR_HUMERUS", "p3", "s2"),
                            ("XR_ELBOW", "p4", "s1")], ["humerus"])
    np.testing.assert_array_equal(labels.is_ood, [False, True, False, True])
    assert (labels.n_id, labels.n_ood, labels.usable) == (2, 2, True)
    assert labels.matched == (("XR_HUMERUS", "humerus"),)
    assert labels.top_folders == ("XR_ELBOW", "XR_HAND", "XR_HUMERUS")
    assert labels.notes == ()
    assert labels.label_words() == ["ID", "OOD", "ID", "OOD"]


def test_no_folder_naming_the_class_is_said_plainly() -> None:
    labels = folder_labels([("XR_HAND",), ("XR_ELBOW", "p1")], ["humerus"])
    assert labels.is_ood.all() and not labels.usable
    (note,) = labels.notes
    assert note.startswith("no folder matched class 'humerus' (folders: XR_ELBOW, XR_HAND) — every image is "
                           "counted as OOD; AUROC is not meaningful.")
    hidden = folder_labels([("Smith_John",)], ["humerus"], show_folders=False)
    assert "Smith" not in hidden.notes[0]
    loose = folder_labels([(), ()], ["humerus"])
    assert "the images are in no folder" in loose.notes[0]


def test_all_id_and_a_missing_second_class_are_said_too() -> None:
    every = folder_labels([("humerus",), ("XR_HUMERUS",)], ["humerus"])
    assert not every.is_ood.any() and "every image is counted as ID" in every.notes[0]
    partial = folder_labels([("hand",), ("elbow",)], ["hand", "wrist"])
    assert partial.usable and partial.unmatched_classes == ("wrist",)
    assert partial.notes == ("no folder matched class 'wrist'; the images of the other ID classes are ID.",)
    with pytest.raises(ParameterError):
        folder_labels([("hand",)], [])


def test_auroc_below_one_half_gets_a_hint() -> None:
    labels = folder_labels([("XR_HUMERUS",), ("XR_HAND",)], ["humerus"])
    assert auroc_notes(0.5) == () and auroc_notes(0.71, labels) == () and auroc_notes(None) == ()
    (hint,) = auroc_notes(0.29, labels)
    assert hint.startswith("AUROC 0.290 is below 0.5") and "inverted" in hint and "XR_HUMERUS → humerus" in hint


def test_a_folder_evaluates_the_detectors_whose_class_it_holds() -> None:
    from types import SimpleNamespace

    from medlim.curation.ood.labels import detectors_for_classes

    entries = [SimpleNamespace(name="tend-humerus", version="3", params={"id_classes": ["humerus"]}),
               SimpleNamespace(name="tend-hand", version="1", params={"id_classes": ["hand"]}),
               SimpleNamespace(name="odd", version="1", params={})]
    assert detectors_for_classes(entries, ["XR_HUMERUS", "elbow"]) == ("tend-humerus@3",)
    assert detectors_for_classes(entries, ["Hands", "XR_HUMERUS"]) == ("tend-humerus@3", "tend-hand@1")
    assert detectors_for_classes(entries, ["shoulder"]) == ()
