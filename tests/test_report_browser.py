"""The report as a browser shows it: report.html opened from disk in a headless Chromium with
no network (every request goes to a closed proxy), screenshot checked — the page is drawn,
its headline is text at the top, and its embedded figures are decoded and shown (their
colours are on screen). Chromium comes from .ci/install-chromium.sh; where there is none, the
test skips, saying so."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from milp.instance import load_instance
from milp.policies import POLICIES
from milp.report import make_report
from tests.conftest import TINY

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium on PATH (.ci/install-chromium.sh installs it)")


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 5000) -> np.ndarray:
    """The page as Chromium draws it, as an RGB array (height x width x 3)."""
    from PIL import Image

    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=png.parent)
    assert r.returncode == 0 and png.is_file(), r.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB"))


def near(image: np.ndarray, hex_colour: str, tolerance: int = 10) -> int:
    """Pixels within ``tolerance`` of a colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image.astype(int) - rgb).max(axis=2) <= tolerance).sum())


def test_the_report_renders_in_a_browser_without_a_network(tmp_path):
    inst = load_instance(TINY)
    plans = [(name, POLICIES[name](inst, None)) for name in ("energy-only", "static")]
    page = make_report(inst, plans, tmp_path / "report")
    image = screenshot(page, tmp_path / "shot.png")
    assert image.shape == (5000, 1280, 3)
    white = (image > 245).all(axis=2)
    assert white.mean() < 0.97, "the page is (almost) blank"
    top = image[:220]                                 # title and headline: dark text
    assert (top.max(axis=2) < 80).sum() > 2000
    # the figures are decoded and drawn: the timeline's compute blue and renewable green,
    # the Gantt's site colours (tab10), the phase diagram's regions
    for colour in ("#1e88e5", "#2e7d32", "#1f77b4", "#ff7f0e", "#2ca02c"):
        assert near(image, colour) > 300, colour
    assert near(image, "#a5d6a7", 20) + near(image, "#9fd4a1", 20) > 1000   # feasible, light
