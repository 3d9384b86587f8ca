"""One colour per territory: stored on every plan output and kept by later plans of the same plan."""

from __future__ import annotations

import numpy as np

from territory_planner_plugin import palette
from territory_planner_plugin.rebalance import rebalance_territories
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps


def _by_territory(frame) -> dict:
    """Territory id -> its one colour in ``frame`` (fails if a territory has two)."""
    out = {}
    for tid, col in zip(frame["territory_id"], frame[palette.COLOUR_FIELD]):
        assert palette.is_colour(col), f"{tid}: {col!r} is not #RRGGBB"
        assert out.setdefault(str(tid), col) == col, f"{tid} has colours {out[str(tid)]} and {col}"
    return out


def _one_colour_everywhere(plan) -> dict:
    polygons = _by_territory(plan.territories)
    assert _by_territory(plan.accounts) == {k: polygons[k] for k in _by_territory(plan.accounts)}
    assert _by_territory(plan.centres) == polygons
    return polygons


def test_design_colours_polygons_accounts_centres_alike_and_neighbours_apart():
    acc = random_accounts(120, seed=3)
    plan = design_territories(acc, id_field="id", n_territories=6, balance_fields=["revenue"],
                              tolerance_pct=15)  # fmt: skip
    colours = _one_colour_everywhere(plan)
    assert len(colours) == 6
    assert set(colours.values()) <= set(palette.PALETTE)
    geoms = dict(zip(plan.territories["territory_id"], plan.territories.geometry))
    touching = [(a, b) for a in geoms for b in geoms if a < b and geoms[a].intersects(geoms[b])]
    assert touching, "the test needs neighbouring territories"
    for a, b in touching:
        assert colours[a] != colours[b], f"neighbours {a} and {b} share {colours[a]}"
    assert "colour" not in acc.columns  # input untouched


def test_rebalance_of_a_design_keeps_its_colours_even_unusual_ones():
    acc, reps = random_accounts(80, seed=5), random_reps(4, seed=6)
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue"], tolerance_pct=10)  # fmt: skip
    designed = _one_colour_everywhere(plan)
    # the design output is the rebalance input; a user recoloured one territory by hand
    start = plan.accounts.copy()
    custom = dict(designed, R2="#123456")
    start["colour"] = start["territory_id"].map(custom)
    grow = np.flatnonzero(start["territory_id"].to_numpy() == "R0")[::2]
    start.loc[start.index[grow], "revenue"] *= 3  # R0 is now too big: accounts must move
    res = rebalance_territories(start, id_field="id", current_field="territory_id", reps=reps,
                                rep_id_field="rep", balance_fields=["revenue"], tolerance_pct=10,
                                time_limit_s=20)  # fmt: skip
    assert res.plan.moved > 0
    assert _one_colour_everywhere(res.plan) == custom
    moved = res.plan.accounts[res.plan.accounts["moved"].to_numpy(bool)]
    assert (moved["colour"] == moved["territory_id"].map(custom)).all()  # the new territory's


def test_design_with_current_field_keeps_colours_and_gives_new_territories_new_ones():
    acc = random_accounts(60, seed=8)
    first = design_territories(acc, id_field="id", n_territories=3)
    start = first.accounts.copy()
    before = _one_colour_everywhere(first)
    swapped = {"T01": before["T02"], "T02": before["T01"], "T03": before["T03"]}
    start["colour"] = start["territory_id"].map(swapped)
    again = design_territories(start, id_field="id", n_territories=4, current_field="territory_id")
    after = _one_colour_everywhere(again)
    assert {k: after[k] for k in swapped} == swapped
    assert after["T04"] not in swapped.values()


def test_rebalance_without_colours_in_its_input_colours_the_plan():
    acc = random_accounts(50, seed=2)
    acc["current"] = np.where(acc.geometry.x < acc.geometry.x.median(), "A", "B")
    res = rebalance_territories(acc, id_field="id", current_field="current", time_limit_s=20)
    colours = _one_colour_everywhere(res.plan)
    assert colours["A"] != colours["B"]
