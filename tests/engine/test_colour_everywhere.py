"""One colour per territory everywhere a plan is shown: its polygon, accounts and centre, the
report's table, map and charts, the KML export, and the rebalance of the same plan."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from territory_planner_plugin import export, palette, report
from territory_planner_plugin.rebalance import rebalance_territories
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps

FIELDS = ["revenue", "visits"]


@pytest.fixture(scope="module")
def plan():
    acc = random_accounts(120, seed=7)
    reps = random_reps(5, seed=3)
    acc["current"] = [f"R{i % 5}" for i in range(len(acc))]
    return design_territories(
        acc, id_field="id", reps=reps, rep_id_field="rep", balance_fields=FIELDS,
        tolerance_pct=10, current_field="current", time_limit_s=20,
    )  # fmt: skip


def _colours(frame) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for tid, col in zip(frame["territory_id"], frame[palette.COLOUR_FIELD]):
        out.setdefault(str(tid), set()).add(col)
    return out


def _images(html_text: str) -> list[np.ndarray]:
    found = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html_text)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def _shows(img: np.ndarray, colour: str, *, min_pixels: int = 20) -> bool:
    rgb = np.array(palette.hex_to_rgb(colour))
    return int((np.abs(img.astype(int) - rgb).sum(-1) <= 6).sum()) >= min_pixels


def test_polygon_accounts_and_centre_share_one_colour(plan):
    per_territory = _colours(plan.territories)
    assert all(len(c) == 1 for c in per_territory.values())
    colours = {t: next(iter(c)) for t, c in per_territory.items()}
    assert len(set(colours.values())) == len(colours)  # 5 territories, 5 colours
    for frame in (plan.accounts, plan.centres):
        assert {t: next(iter(c)) for t, c in _colours(frame).items()} == colours


def test_report_table_map_and_charts_use_the_plans_colours(plan):
    colours = palette.colours_from_table(plan.territories)
    html_text, _ = report.build_report(
        plan.accounts, balance_fields=FIELDS, current_field="current", tolerance_pct=10,
        territories=plan.territories, centres=plan.centres,
    )  # fmt: skip
    swatches = dict(re.findall(r"background:(#[0-9A-Fa-f]{6})'></span>([A-Za-z0-9_]+)<", html_text))
    table = {t: c.upper() for c, t in swatches.items()}
    assert {t: table[t] for t in colours} == colours
    images = _images(html_text)
    assert len(images) >= 3  # the map and a chart per balance field
    the_map, charts = images[0], images[1:]
    for tid, colour in colours.items():
        assert _shows(the_map, colour), f"{tid}'s colour {colour} is not on the report's map"
        assert any(_shows(c, colour) for c in charts), f"{tid}'s colour is in no chart"
    other = "#FF00FF"  # a colour of no territory is nowhere
    assert not _shows(the_map, other)


def test_kml_uses_the_plans_colours(plan, tmp_path):
    colours = palette.colours_from_table(plan.territories)
    (path,) = export.export_plan(plan.territories, str(tmp_path / "plan.kml"), fmt="KML")
    text = Path(path).read_text(encoding="utf-8")
    kml = set(re.findall(r"<PolyStyle><color>([0-9a-f]{8})</color>", text))
    assert kml == {palette.kml_colour(c, 128) for c in colours.values()}


def test_rebalance_of_the_plan_keeps_each_territorys_colour(plan):
    colours = palette.colours_from_table(plan.territories)
    acc = plan.accounts.copy()
    acc.loc[acc.index[:6], "revenue"] *= 3  # changed data: some accounts must move
    reps = random_reps(5, seed=3)
    result = rebalance_territories(
        acc, id_field="id", current_field="territory_id", reps=reps, rep_id_field="rep",
        balance_fields=FIELDS, tolerance_pct=10, time_limit_s=20,
    )  # fmt: skip
    assert palette.colours_from_table(result.plan.territories) == colours
    assert palette.colours_from_table(result.plan.accounts) == colours
