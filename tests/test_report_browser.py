"""The reflection report renders in headless Chromium to a non-trivial PNG, with no external reference and no failed
resource load. Skipped (not failed) when no Chromium is installed (.ci/run installs the Debian package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import matplotlib.image
import pytest

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I)
LOAD_FAILURE = re.compile(r"net::ERR_|Failed to load resource", re.I)
# Appended to a copy of the report: after `load`, record images that failed to load or decode and the resources
# fetched over http(s) (resource timing; data: URIs are not fetched), each as the last 120 characters of its URL so a
# long temporary path keeps the file name; --dump-dom then prints them.
PROBE = """<script>
window.addEventListener("load", () => {
  const failed = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(-120));
  const fetched = performance.getEntriesByType("resource").map(e => e.name.slice(-120));
  document.body.setAttribute("data-probe", JSON.stringify({images: document.images.length, failed, fetched}));
});
</script>"""


def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless Chromium found (looked for {', '.join(BROWSERS)})")


def headless(html: Path, profile: Path, *flags: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run headless Chromium on `html` with `flags`; returns the finished process and its wall time (s)."""
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *flags,
        html.resolve().as_uri(),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return proc, time.monotonic() - start


def probe_loads(html: Path, tmp_path: Path) -> dict:
    """What a copy of the page with PROBE reports after loading: images, failed (images), fetched (resources)."""
    probed = tmp_path / "probed.html"
    probed.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "probe-profile"
    profile.mkdir()
    proc, _ = headless(probed, profile, "--virtual-time-budget=10000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, "the load probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def check_renders(html: Path, tmp_path: Path) -> float:
    text = html.read_text(encoding="utf-8")
    assert not EXTERNAL.search(text), f"external reference: {EXTERNAL.search(text).group(0)}"
    images = re.findall(r"<img\b[^>]*>", text)
    assert images and all('src="data:image/png;base64,' in i for i in images)
    profile = tmp_path / "profile"
    profile.mkdir()
    png = tmp_path / "report.png"
    proc, seconds = headless(html, profile, f"--screenshot={png}", "--window-size=1280,4000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not LOAD_FAILURE.search(proc.stderr), LOAD_FAILURE.search(proc.stderr).group(0)
    loads = probe_loads(html, tmp_path)
    assert loads["images"] == len(images) and loads["failed"] == [] and loads["fetched"] == [], loads
    assert png.stat().st_size > 50_000
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (4000, 1280)
    # non-trivial: text, tables and figures, not a blank or single-colour page
    assert pixels[..., :3].std() > 0.05 and (pixels[..., :3] < 0.5).mean() > 0.002
    return seconds


def test_probe_catches_a_failed_image(tmp_path):
    """The probe is not vacuous: a missing image shows as failed."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png">x</body></html>')
    loads = probe_loads(page, tmp_path)
    assert loads["images"] == 1 and loads["failed"][0].endswith("missing.png"), loads


def test_constructed_report_renders(tmp_path):
    from test_report import TEMPLATE, write_run

    from epiflow.report import build_report

    html = tmp_path / "reflection.html"
    build_report(write_run(tmp_path), TEMPLATE, html, {"language": "zh"})
    check_renders(html, tmp_path)


@pytest.mark.slow
def test_demo_report_renders(demo_run, tmp_path):
    seconds = check_renders(demo_run / "results/report/reflection.html", tmp_path)
    assert seconds < 120
