"""Benchmark: the app server's memory after a session that opened a large image has closed (issue 14).

Starts ``streamlit run app.py`` with a short cache time to live
(``MEDLIM_CACHE_TTL_S``) and a short ``server.disconnectedSessionTTL``, measures
the server's resident memory (``VmRSS`` of ``/proc/<pid>/status``) when idle
(after one visit to the viewer without an image), then opens the Image viewer in
headless Chromium, uploads a large 16-bit PNG (8000 × 8000 by default), waits for
the image and its histogram, closes the tab and polls the server's memory until
it is back within the target (300 MB above idle) or the wait runs out. With
``--visitors`` another session opens the home page now and then, as other users
would. Prints idle, peak and final RSS and the seconds until memory came back.

``--app-root`` runs another checkout of the app with the same environment (for
a before/after comparison, e.g. ``git archive HEAD | tar -x -C /tmp/app``).

Run: ``.venv/bin/python benchmarks/bench_app_memory.py`` (a few minutes; needs
Debian's chromium and Playwright, like ``tests/e2e``).

Measured 2026-12-05 (2 shared CPU cores, 8000 × 8000 16-bit PNG of 71 MB,
cache TTL 20 s, session TTL 5 s): idle 745–761 MB; with this change the server
held 1.4–1.95 GB when the tab closed, was back to +157–167 MB above idle 2 s
later (the decoded image is a session-scoped cache, dropped on disconnect) and
settled at +132 MB (+57 MB with ``--visitors``, whose sessions let Streamlit
drop the closed session and its upload). Before it (``--app-root`` of the
previous commit) the server stayed at +642 MB for the whole 180 s wait.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
JANITOR_INTERVAL_S = 15.0  # medlim.ui.session_files.JANITOR_INTERVAL_S (not imported: --app-root may predate it)


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` from ``/proc/<pid>/status`` (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def write_large_png(path: Path, side: int) -> Path:
    """A ``side`` × ``side`` 16-bit grey PNG: a smooth gradient with a little noise (a few MB to ~100 MB)."""
    import cv2

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    image = (20000 + 20000 * np.sin(x / 700.0) * np.cos(y / 900.0)).astype(np.uint16)
    image += rng.integers(0, 64, size=image.shape, dtype=np.uint16)
    if not cv2.imwrite(str(path), image):
        raise RuntimeError(f"could not write {path}")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(app_root: Path, home: Path, *, cache_ttl_s: float, session_ttl_s: int) -> tuple[subprocess.Popen, str]:
    """The app server on a free port, once its health endpoint answers."""
    port = _free_port()
    env = {**os.environ, "MEDLIM_HOME": str(home), "MEDLIM_CACHE_TTL_S": str(cache_ttl_s),
           "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(session_ttl_s),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "PYTHONPATH": str(app_root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app_root / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--server.maxUploadSize", "2048"],
        cwd=app_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the app server did not start")


def open_viewer(browser, url: str, image: Path | None) -> None:  # noqa: ANN001 - a Playwright browser
    """Open the viewer in a new tab (uploading ``image`` and waiting for its figures), then close the tab."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.set_default_timeout(300_000)
    page.goto(f"{url}/viewer")
    expect(page.get_by_role("heading", name="Image viewer")).to_be_visible(timeout=300_000)
    if image is not None:
        page.locator("input[type='file']").first.set_input_files(str(image))
        expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(2, timeout=600_000)
        expect(page.get_by_text("Window centre (level)")).to_be_visible(timeout=300_000)
    page.close()


def visit_home(browser, url: str) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(url)
    expect(page.get_by_role("heading", name="medlim", exact=True)).to_be_visible(timeout=120_000)
    page.close()


def settle(pid: int, *, seconds: float = 20.0) -> int:
    """RSS once it has stopped changing by more than 5 MB over 2 s (at most ``seconds``)."""
    last, deadline = rss_bytes(pid), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = rss_bytes(pid)
        if abs(now - last) < 5 * MB:
            return now
        last = now
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=8000, help="image side in pixels")
    parser.add_argument("--cache-ttl", type=float, default=20.0, help="MEDLIM_CACHE_TTL_S of the server")
    parser.add_argument("--session-ttl", type=int, default=5, help="server.disconnectedSessionTTL in seconds")
    parser.add_argument("--wait", type=float, default=180.0, help="longest wait for memory to come back, s")
    parser.add_argument("--target-mb", type=float, default=300.0, help="allowed RSS above idle, MB")
    parser.add_argument("--visitors", action="store_true", help="open the home page in new sessions while waiting")
    parser.add_argument("--app-root", type=Path, default=ROOT, help="checkout of the app to run")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="medlim-bench-memory-"))
    image = write_large_png(work / "large.png", args.side)
    print(f"image {args.side} × {args.side} 16-bit PNG, {image.stat().st_size / MB:.1f} MB")
    server, url = start_server(args.app_root, work / "home", cache_ttl_s=args.cache_ttl, session_ttl_s=args.session_ttl)
    peak = 0
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                                 args=["--no-sandbox", "--disable-dev-shm-usage"])
            open_viewer(browser, url, None)  # imports and first page run: the idle size includes them
            visit_home(browser, url)
            idle = settle(server.pid)
            print(f"idle RSS {idle / MB:.0f} MB")
            open_viewer(browser, url, image)
            peak = rss_bytes(server.pid)
            closed_at = time.monotonic()
            print(f"RSS when the tab closed {peak / MB:.0f} MB")
            target = idle + args.target_mb * MB
            now = peak
            while time.monotonic() - closed_at < args.wait:
                time.sleep(2.0)
                if args.visitors and time.monotonic() - closed_at > args.session_ttl + args.cache_ttl / 2:
                    visit_home(browser, url)
                now = rss_bytes(server.pid)
                if now <= target:
                    break
            seconds = time.monotonic() - closed_at
            verdict = "within" if now <= target else "NOT within"
            print(f"RSS {now / MB:.0f} MB after {seconds:.0f} s: {(now - idle) / MB:+.0f} MB above idle, "
                  f"{verdict} the {args.target_mb:.0f} MB target (cache TTL {args.cache_ttl:g} s, "
                  f"session TTL {args.session_ttl} s)")
            # and once every time to live and a janitor pass are surely over
            expired = args.cache_ttl + args.session_ttl + 2 * JANITOR_INTERVAL_S
            while time.monotonic() - closed_at < expired:
                time.sleep(2.0)
            if args.visitors:
                visit_home(browser, url)
            now = settle(server.pid)
            print(f"settled RSS {now / MB:.0f} MB after {time.monotonic() - closed_at:.0f} s: "
                  f"{(now - idle) / MB:+.0f} MB above idle")
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
