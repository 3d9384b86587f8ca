"""The report as a person sees it: rendered by headless Chromium, the picture checked.

Skipped (with the reason) only when Debian's ``chromium`` is not installed (``make env`` installs it).
"""

import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image

from territory_planner_plugin import report
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian package 'chromium' is not installed (apt-get install chromium)"
)
WIDTH, HEIGHT = 1200, 3000


def _screenshot(html_path, png_path) -> np.ndarray:
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png_path}", f"--window-size={WIDTH},{HEIGHT}",
         f"file://{html_path}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return np.asarray(Image.open(png_path).convert("RGB"))


def _region_of(png: np.ndarray, marker_rgb) -> tuple[int, int]:
    """Rows (top, bottom) where the page shows a colour, e.g. a territory's swatch."""
    hits = np.flatnonzero((np.abs(png.astype(int) - marker_rgb).sum(-1) < 12).any(1))
    return (int(hits.min()), int(hits.max())) if len(hits) else (-1, -1)


def test_report_renders_with_map_legend_and_charts(tmp_path):
    acc = random_accounts(80, seed=2)
    reps = random_reps(4, seed=4).assign(cap=[1.0, 1.5, 1.0, 0.8])
    acc["current"] = ["R0", "R1", "R2", "R3"] * 20
    plan = design_territories(
        acc, id_field="id", reps=reps, rep_id_field="rep", rep_capacity_field="cap",
        balance_fields=["revenue", "visits"], tolerance_pct=10, current_field="current",
        max_moves_pct=80, time_limit_s=20,
    )  # fmt: skip
    centres = gpd.GeoDataFrame(
        reps.rename(columns={"rep": "rep_id"}).assign(rep_name=["Aino", "Eero", "Helmi", "Juho"])
    )
    html_text, summary = report.build_report(
        plan.accounts, balance_fields=["revenue", "visits"], current_field="current",
        tolerance_pct=10, territories=plan.territories, centres=centres, max_moves_pct=80,
    )  # fmt: skip
    page = tmp_path / "report.html"
    page.write_text(html_text, encoding="utf-8")
    png = _screenshot(page, tmp_path / "report.png")
    assert png.shape[:2] == (HEIGHT, WIDTH)
    colours = [tuple(int(summary.colour[i][j : j + 2], 16) for j in (1, 3, 5)) for i in range(4)]
    # the map: near the top, every territory's colour shows (accounts, legend, polygons)
    top = png[: HEIGHT // 2]
    for rgb in colours:
        seen = (np.abs(top.astype(int) - rgb).sum(-1) < 12).sum()
        assert seen > 200, f"territory colour {rgb} hardly visible on the map ({seen} px)"
    # not a blank page: many distinct colours, and dark text pixels all the way down
    quantised = {tuple(p) for p in (png[::5, ::5] // 16).reshape(-1, 3)}
    assert len(quantised) > 60
    # the map image is drawn and not blank: its region has the four territory colours and text
    first, last = _region_of(png, colours[0])
    assert 0 < first < last
    # the balance charts (bars in the territories' colours) come below the tables
    lower = png[HEIGHT // 3 :]
    assert sum((np.abs(lower.astype(int) - rgb).sum(-1) < 12).sum() > 100 for rgb in colours) >= 3
    # the page is not cut on the right: nothing but background in the last 20 columns
    assert (png[:, -20:] > 240).all()
    # the text a leader reads first
    assert "reps: Aino (R0), Eero (R1), Helmi (R2), Juho (R3)" in html_text
    assert "T0" not in summary.columns
