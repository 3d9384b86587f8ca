"""scripts/screenshot.sh: real QGIS desktop under Xvfb with the plugin installed from the zip.

The zip is built into the test's folder and the PNGs go there too (docs/screenshots is untouched).
xvfb-run is installed by ``make env`` (scripts/install-env.sh), so this test never skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PNGS = {
    "toolbox.png": (1200, 800),
    "designterritories-dialog.png": (600, 500),
    "model.png": (800, 600),
    "designterritories-map.png": (1200, 800),
    "editor.png": (1200, 800),
    "areas-qgis.png": (1200, 800),
    "editor-areas.png": (1200, 800),
}


def test_screenshots_of_toolbox_and_dialog(tmp_path):
    from PIL import Image

    env = dict(
        os.environ,
        SCREENSHOT_DIR=str(tmp_path / "shots"),
        SCREENSHOT_ZIP=str(tmp_path / "territory_planner.zip"),
        SCREENSHOT_REBUILD="1",
        SCREENSHOT_TIMEOUT="150",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "screenshot.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert "Design territories" in done.stdout  # the toolbox listed the provider's algorithms
    order = "['Territory centres', 'Accounts with territory', 'Territories']"
    assert f"Territory Planner group (top to bottom): {order}" in done.stdout
    assert "editor shows: Plan: CV revenue potential" in done.stdout  # the panel loaded the plan
    areas = next(line for line in done.stdout.splitlines() if "areas plan layers shown" in line)
    assert "'Territories'" in areas, areas  # the plan of the sample areas, loaded and shown
    assert "'Units with territory'" in areas, areas
    # the editor on that plan of areas: three areas moved, the plan's territories redrawn with
    # the panel's counts (areas and the accounts in them), the panel saying it follows the edits
    moved = next(line for line in done.stdout.splitlines() if "after moving 3 areas" in line)
    assert "follows the edits" in moved, moved
    rows = [line for line in done.stdout.splitlines() if "layer units" in line]
    assert len(rows) == 5, rows
    for line in rows:
        words = line.split()
        assert words[words.index("units") + 1] == words[words.index("panel") + 1], line
    units = sum(int(line.split()[line.split().index("units") + 1]) for line in rows)
    accounts = sum(int(line.split()[line.split().index("accounts") + 1]) for line in rows)
    assert (units, accounts) == (115, 502), rows  # every area and every account in one territory
    for name, (min_width, min_height) in PNGS.items():
        path = tmp_path / "shots" / name
        assert path.is_file(), f"{name} was not written"
        with Image.open(path) as image:
            assert image.width >= min_width, image.size
            assert image.height >= min_height, image.size
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is None or len(colours) > 50, f"{name} is nearly uniform"
