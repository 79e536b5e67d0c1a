"""What an OOD training run records about its data (issue 14): counts and a fingerprint, no folder paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medlim.curation.ood.data import LabelledImages
from medlim.curation.ood.recipe import HELDOUT_SEED, DataSpec, OodData, _without_folders, data_record


def _images(n: int, value: float, name: str) -> LabelledImages:
    return LabelledImages(np.full((n, 2, 2), value, np.float32), (name,) * n, ("internal",) * n,
                          tuple(f"/srv/DOE_JOHN/{k}.png" for k in range(n)))


def test_folder_data_is_recorded_by_counts_and_fingerprint() -> None:
    data = OodData(train=_images(2, 0.5, "hand"), calibration=_images(1, 0.25, "hand"),
                   heldout=_images(1, 1.0, "elbow"))
    record = data_record(DataSpec(data_dir=Path("/srv/DOE_JOHN"), seed=4), data)
    digest = hashlib.sha256()
    for values, classes in ((np.full((2, 2, 2), 0.5, np.float32), "hand\nhand"),
                            (np.full((1, 2, 2), 0.25, np.float32), "hand"), (np.full((1, 2, 2), 1.0, np.float32), "elbow")):
        digest.update(values.tobytes())
        digest.update(classes.encode())
    assert record == {"seed": 4, "calibration_seed": 5, "heldout_seed": HELDOUT_SEED, "source": "folder",
                      "heldout_source": "phantoms", "images": {"train": 2, "calibration": 1, "heldout": 1},
                      "fingerprint": digest.hexdigest()[:16]}
    assert data_record(DataSpec(variability=0.5), data) == {"seed": 1, "calibration_seed": 2,
                                                             "heldout_seed": HELDOUT_SEED, "source": "phantoms",
                                                             "variability": 0.5}


def test_the_recorded_command_shows_no_folder_path() -> None:
    spec = DataSpec(data_dir=Path("/srv/DOE JOHN"), heldout_dir=Path("held"))
    command = "medlim train tend --data '/srv/DOE JOHN' --heldout=held --id-class hand --name held-x"
    assert _without_folders(command, spec) == (
        "medlim train tend --data '<data folder>' --heldout='<held-out folder>' --id-class hand --name held-x")
    assert _without_folders("medlim train cvad --id-class hand", DataSpec()) == "medlim train cvad --id-class hand"
