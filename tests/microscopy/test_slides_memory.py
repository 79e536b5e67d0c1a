"""A 20,000 × 20,000 px tiled TIFF, mostly glass, analysed within 2 GB with seam droplets counted once (slow).

The slide is written tile by tile (:func:`medlim.phantoms.slide.write_tiled_tiff`), so the test itself never
holds it; the analysis runs in a subprocess whose peak resident memory (``ru_maxrss``) is the measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medlim.phantoms.slide import seam_droplet_slide, write_tiled_tiff

SIDE = 20_000
#: Seams of the 1024 px / 192 px overlap grid (stride 832) near two places: tile starts, core borders, tile ends.
SEAMS = (2496, 2592, 2688, 9984, 10080, 10176)

SCRIPT = r"""
import json, resource, sys
import numpy as np, torch
from scipy import ndimage
from medlim.core.io.slide import open_slide
from medlim.microscopy.steatosis.analysis import SteatosisModel, analyse_slide


class ThresholdNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        out = []
        for image in images:
            labels, n = ndimage.label(image.min(dim=0).values.numpy() > 0.97)
            boxes = [[w[1].start, w[0].start, w[1].stop, w[0].stop] for w in ndimage.find_objects(labels)]
            masks = np.stack([(labels == k).astype(np.float32) for k in range(1, n + 1)])[:, None] if n else \
                np.zeros((0, 1, *labels.shape), np.float32)
            out.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "scores": torch.full((n,), 0.9), "labels": torch.ones(n, dtype=torch.int64),
                        "masks": torch.from_numpy(masks)})
        return out


model = SteatosisModel(model=ThresholdNet(), label="threshold", tile=1024, overlap=128, mask_threshold=0.5)
with open_slide(sys.argv[1]) as slide:
    analysis = analyse_slide(model, slide)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"count": len(analysis.table), "areas": sorted(set(analysis.table.area.tolist())),
                  "peak_bytes": peak, "seconds": analysis.seconds}))
"""


@pytest.mark.slow
def test_twenty_thousand_pixel_slide_in_two_gigabytes(tmp_path: Path) -> None:
    truth = seam_droplet_slide((SIDE, SIDE), seams=SEAMS, radius=20.0, patch=300)
    path = tmp_path / "big.tif"
    write_tiled_tiff(path, truth.render, (SIDE, SIDE), tile=512, levels=3, compression="deflate")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["count"] == len(truth.centres) == 36
    assert result["areas"] == [float(truth.droplet_area())]  # every droplet whole, none cut by a seam
    print(f"20,000² slide: {result['count']} droplets, peak {result['peak_bytes'] / 2**30:.2f} GiB, "
          f"{result['seconds']:.0f} s")
    assert result["peak_bytes"] <= 2 * 1024**3, result
