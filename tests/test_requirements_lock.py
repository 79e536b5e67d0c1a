"""``requirements.txt`` is generated from ``uv.lock``; fail when the two drift apart.

Regenerate with the command in the first lines of ``requirements.txt``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"


def _uv() -> str:
    # `uv run` exports its own path as $UV; else the one on PATH. .ci/run always installs uv.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is not installed: run the tests through `bash .ci/run` (it installs uv)."
    return uv


def _body(text: str) -> list[str]:
    """Lines after the leading comment header (which names the output file)."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    return lines[start:]


def _regeneration_command() -> list[str]:
    header = [line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("#    uv export")]
    assert header, "requirements.txt lost the header naming the `uv export` command that made it"
    return shlex.split(header[0].removeprefix("#"))


def test_requirements_txt_matches_uv_lock(tmp_path: Path) -> None:
    command = _regeneration_command()
    output = command.index("-o") if "-o" in command else command.index("--output-file")
    assert command[output + 1] == "requirements.txt"
    assert "--frozen" in command  # never re-resolve while checking
    regenerated = tmp_path / "requirements.txt"
    args = [_uv(), *command[1:output], "-o", str(regenerated), *command[output + 2 :]]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert _body(regenerated.read_text()) == _body(REQUIREMENTS.read_text()), (
        "requirements.txt is out of date with uv.lock; regenerate it with: " + " ".join(command[0:])
    )


def test_requirements_pin_every_package() -> None:
    pins = [line for line in _body(REQUIREMENTS.read_text()) if line and not line.startswith((" ", "#"))]
    assert pins and all("==" in line for line in pins), [line for line in pins if "==" not in line]
    names = {line.split("==")[0].lower() for line in pins}
    assert {"streamlit", "torch", "torchvision", "pydicom", "faiss-cpu", "pot", "pytest"} <= names
