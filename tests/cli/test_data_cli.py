"""``medlim data check DIR``: text and ``--json`` output, exit 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import medlim.cli
from medlim.cli import main


@pytest.fixture(autouse=True)
def _data_command_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run through the real ``main`` whether or not ``data`` is listed yet."""
    modules = tuple(dict.fromkeys((*medlim.cli.SUBCOMMAND_MODULES, "data")))
    monkeypatch.setattr(medlim.cli, "SUBCOMMAND_MODULES", modules)


def _class_folders(root: Path, per_class: dict[str, int]) -> Path:
    value = 0
    for name, count in per_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = np.full((16, 24), value % 250, np.uint8)
            pixels[0, 0] = value // 250
            cv2.imwrite(str(root / name / f"{index:03d}.png"), pixels)
            value += 1
    return root


def test_clean_dataset_json_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _class_folders(tmp_path, {"chest": 25, "hand": 25})
    assert main(["data", "check", str(tmp_path), "--task", "oscars", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["summary", "problems", "fingerprint", "split"]
    assert document["problems"] == []
    assert document["summary"]["classes"] == {"chest": 25, "hand": 25}
    assert document["summary"]["height"] == {"min": 16, "median": 16, "max": 16}
    assert document["split"] == {
        "by": "image", "seed": 0, "fraction": 0.2,
        "train_images": 40, "val_images": 10, "train_patients": None, "val_patients": None,
    }
    assert len(document["fingerprint"]["id"]) == 16
    assert str(tmp_path) not in json.dumps(document["fingerprint"])


def test_problems_exit_1_with_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _class_folders(tmp_path, {"chest": 3, "pelvis": 1})
    (tmp_path / "skull").mkdir()
    (tmp_path / "chest" / "broken.png").write_text("no image here")
    assert main(["data", "check", str(tmp_path), "--labels", "chest, pelvis,skull"]) == 1
    out = capsys.readouterr().out
    assert "layout: class_folders" in out
    assert "images per class: chest: 4, pelvis: 1, skull: 0" in out
    assert "4 problem(s):" in out
    kinds = [line.split(":")[0].split(" [")[0].strip() for line in out.splitlines() if line.startswith("  ")]
    # listing (the empty folder, not listed again for the label set), items, then the parts of the split
    assert kinds == ["empty_class", "unreadable", "too_few_images", "too_few_images"]
    assert "  unreadable [chest/broken.png]: image chest/broken.png cannot be read" in out


def test_json_problems_carry_kind_row_item_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.csv").write_text('image,mask\n"missing\nname.png",m.png\nonly.png\n')
    assert main(["data", "check", str(tmp_path), "--task", "bac", "--json", "--no-decode"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["fingerprint"] is None
    assert document["problems"][:3] == [
        {"kind": "bad_manifest", "row": 3, "item": "only.png",
         "message": "manifest.csv row 3 has no 'mask' value; give the mask's path (an all-zero mask for an image "
                    "with nothing to outline)."},
        {"kind": "missing_file", "row": 2, "item": "missing\\nname.png",
         "message": "image missing\\nname.png does not exist; check the path or copy the file."},
        {"kind": "missing_file", "row": 2, "item": "m.png",
         "message": "mask m.png does not exist; check the path or copy the file."},
    ]


def test_misuse_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as unknown_task:
        main(["data", "check", str(tmp_path), "--task", "mri"])
    assert unknown_task.value.code == 2
    with pytest.raises(SystemExit) as empty_label:
        main(["data", "check", str(tmp_path), "--labels", "a,,b"])
    assert empty_label.value.code == 2


def test_help_states_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    out = capsys.readouterr().out
    assert "0 no problems, 1 problems found, 2 misuse" in out
    assert "mask_size_mismatch" in out and "bac: segmentation_mask, msd" in out
    assert main(["data"]) == 1  # no subcommand: its help
    assert "check" in capsys.readouterr().out
