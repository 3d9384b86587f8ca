"""designterritories/rebalanceterritories with UNITS (base areas) and CONTIGUOUS: engine tests.

Connectivity is checked here with an own breadth-first search over the rook neighbours of the
grid (independent of the engine's adjacency and piece count).
"""

from __future__ import annotations

from collections import deque

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from territory_planner_plugin.errors import InfeasibleError, InvalidInputError
from territory_planner_plugin.rebalance import rebalance_territories
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import CRS

SIDE_M = 1000.0


def grid_units(nx: int, ny: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``nx`` x ``ny`` square units of 1 km (id "U<x>_<y>", pop random 50..150)."""
    rng = np.random.default_rng(seed)
    cells, ids = [], []
    for x in range(nx):
        for y in range(ny):
            x0, y0 = 300_000 + x * SIDE_M, 6_600_000 + y * SIDE_M
            cells.append(shapely.box(x0, y0, x0 + SIDE_M, y0 + SIDE_M))
            ids.append(f"U{x}_{y}")
    return gpd.GeoDataFrame(
        {"uid": ids, "pop": rng.integers(50, 150, len(ids)).astype(float)},
        geometry=cells, crs=CRS,
    )  # fmt: skip


def accounts_in(units: gpd.GeoDataFrame, per_unit: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``per_unit`` random accounts inside each unit (id "A<i>", revenue random)."""
    rng = np.random.default_rng(seed)
    pts, unit_of = [], []
    for u, g in zip(units["uid"], units.geometry):
        x0, y0, x1, y1 = g.bounds
        for _ in range(per_unit):
            pts.append((rng.uniform(x0 + 1, x1 - 1), rng.uniform(y0 + 1, y1 - 1)))
            unit_of.append(u)
    xy = np.array(pts)
    return gpd.GeoDataFrame(
        {"id": [f"A{i}" for i in range(len(xy))], "revenue": rng.integers(10, 100, len(xy)),
         "unit": unit_of},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=CRS,
    )  # fmt: skip


def pieces_by_bfs(ids: list[str], territory: list[str]) -> dict[str, int]:
    """Connected pieces of each territory on the rook grid, from the ids "U<x>_<y>"."""
    where = {u: tuple(int(v) for v in u[1:].split("_")) for u in ids}
    at = {where[u]: t for u, t in zip(ids, territory)}
    seen, pieces = set(), {}
    for cell, t in at.items():
        if cell in seen:
            continue
        pieces[t] = pieces.get(t, 0) + 1
        queue = deque([cell])
        seen.add(cell)
        while queue:
            x, y = queue.popleft()
            for nb in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if nb not in seen and at.get(nb) == t:
                    seen.add(nb)
                    queue.append(nb)
    return pieces


def _assert_balanced(summary, field: str, tol: float) -> None:
    assert summary[f"{field}_dev_pct"].abs().max() <= tol + 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_units_alone_give_contiguous_balanced_territories(seed: int) -> None:
    units = grid_units(8, 8, seed)
    before = units.copy()
    plan = design_territories(units=units, unit_id_field="uid", n_territories=5,
                              balance_fields=["pop"], tolerance_pct=10, seed=seed)  # fmt: skip
    assert units.equals(before)
    assert plan.accounts is None
    out = plan.units
    assert len(out) == 64
    assert out["territory_id"].notna().all()
    pieces = pieces_by_bfs(out["uid"].tolist(), out["territory_id"].tolist())
    assert set(pieces.values()) == {1}, pieces
    assert (plan.summary["pieces"] == 1).all()
    assert plan.kpis["split_territories"] == 0
    _assert_balanced(plan.summary, "pop", 10)
    # polygons are the dissolved units: no overlap, the whole grid covered
    polys = plan.territories
    assert polys.area.sum() == pytest.approx(64 * SIDE_M**2, rel=1e-9)
    assert polys.union_all().area == pytest.approx(64 * SIDE_M**2, rel=1e-9)
    assert all(g.geom_type == "Polygon" for g in polys.geometry)
    assert plan.bound_scope == "problem"  # bound over any centres (small model)
    assert plan.kpis["bound_scope"] == "problem"  # bound over any centres (small model)
    assert plan.lower_bound <= plan.objective + 1e-6


def test_units_with_accounts_move_whole_units_and_count_their_accounts() -> None:
    units = grid_units(6, 6, 3)
    acc = accounts_in(units, 3, 4)
    plan = design_territories(acc, id_field="id", units=units, unit_id_field="uid",
                              n_territories=4, balance_fields=["revenue"], tolerance_pct=10)  # fmt: skip
    out_acc, out_units = plan.accounts, plan.units
    unit_terr = dict(zip(out_units["uid"], out_units["territory_id"]))
    assert (out_acc["territory_id"] == out_acc["unit"].map(unit_terr)).all()
    totals = out_acc.groupby("territory_id")["revenue"].sum()
    target = acc["revenue"].sum() / 4
    assert (np.abs(totals - target) <= 0.1 * target + 1e-6).all()
    pieces = pieces_by_bfs(out_units["uid"].tolist(), out_units["territory_id"].tolist())
    assert set(pieces.values()) == {1}
    assert plan.summary["accounts"].sum() == len(acc)
    assert plan.summary["units"].sum() == len(units)
    assert plan.kpis["accounts_outside_units"] == 0
    # the units output carries what was balanced per unit: its units add up to the summary
    per_unit = acc.groupby("unit").agg(accounts=("id", "size"), revenue=("revenue", "sum"))
    assert (out_units.set_index("uid")[["accounts", "revenue"]] == per_unit).all().all()
    by_terr = out_units.groupby("territory_id")[["accounts", "revenue"]].sum()
    summary = plan.summary.set_index("territory_id")
    assert (by_terr["accounts"] == summary["accounts"]).all()
    assert np.allclose(by_terr["revenue"], summary["revenue_total"])


def test_units_output_keeps_a_units_field_named_like_a_balance_field() -> None:
    """A units field named like an accounts' balance field (or ``accounts``) is kept under
    another name; the units output's own is the sum of the accounts counted in the unit,
    those joined from outside every unit included; the input is not modified."""
    units = grid_units(4, 4, 1).assign(revenue=1.0, accounts=-1)
    before = units.copy()
    acc = accounts_in(units, 2, 2)
    outside = acc.iloc[[0]].copy()
    outside["id"] = "OUT"
    outside.geometry = gpd.points_from_xy([300_000 - 200], [6_600_000 + 500])  # 200 m west
    acc = pd.concat([acc, outside], ignore_index=True)
    plan = design_territories(acc, id_field="id", units=units, unit_id_field="uid",
                              n_territories=2, balance_fields=["revenue"], tolerance_pct=20,
                              unit_max_distance_m=500)  # fmt: skip
    assert units.equals(before)
    out = plan.units.set_index("uid")
    assert (out["input_revenue"] == 1.0).all()
    assert (out["input_accounts"] == -1).all()
    assert out.loc["U0_0", "accounts"] == 3  # its two and the one joined from outside
    assert out["accounts"].sum() == len(acc)
    assert out["revenue"].sum() == pytest.approx(acc["revenue"].sum())
    totals = out.groupby("territory_id")["revenue"].sum()
    assert np.allclose(totals, plan.summary.set_index("territory_id")["revenue_total"])


def test_units_without_accounts_still_belong_to_a_territory() -> None:
    units = grid_units(6, 6, 5)
    acc = accounts_in(units, 2, 6)
    acc = acc[~acc["unit"].isin(["U0_0", "U3_3", "U5_5"])].reset_index(drop=True)
    plan = design_territories(acc, id_field="id", units=units, unit_id_field="uid",
                              n_territories=3, balance_fields=["revenue"], tolerance_pct=15)  # fmt: skip
    out = plan.units
    assert out["territory_id"].notna().all()
    assert set(pieces_by_bfs(out["uid"].tolist(), out["territory_id"].tolist()).values()) == {1}
    assert plan.territories.union_all().area == pytest.approx(36 * SIDE_M**2, rel=1e-9)


def test_locks_at_unit_level() -> None:
    units = grid_units(6, 6, 7)
    acc = accounts_in(units, 2, 8)
    reps = gpd.GeoDataFrame({"rep": ["R0", "R1", "R2"]},
                            geometry=gpd.points_from_xy([300_500, 305_500, 303_000],
                                                        [6_600_500, 6_605_500, 6_600_500]),
                            crs=CRS)  # fmt: skip
    acc["lock"] = None
    acc.loc[acc["unit"] == "U0_5", "lock"] = "R1"  # far corner from R1: the lock must hold
    plan = design_territories(acc, id_field="id", units=units, unit_id_field="uid", reps=reps,
                              rep_id_field="rep", balance_fields=["revenue"], tolerance_pct=15,
                              lock_field="lock")  # fmt: skip
    out = plan.units.set_index("uid")
    assert out.loc["U0_5", "territory_id"] == "R1"
    assert out.loc["U0_5", "locked"]
    assert set(pieces_by_bfs(plan.units["uid"].tolist(),
                             plan.units["territory_id"].tolist()).values()) == {1}  # fmt: skip
    assert plan.bound_scope == "problem"
    # two accounts of one unit locked to different territories: named
    acc.loc[acc.index[acc["unit"] == "U0_5"][0], "lock"] = "R0"
    with pytest.raises(InvalidInputError, match="U0_5"):
        design_territories(acc, id_field="id", units=units, unit_id_field="uid", reps=reps,
                           rep_id_field="rep", balance_fields=["revenue"], tolerance_pct=15,
                           lock_field="lock")  # fmt: skip


def test_contiguous_off_may_split_and_reports_pieces() -> None:
    units = grid_units(6, 6, 9)
    plan = design_territories(units=units, unit_id_field="uid", n_territories=4,
                              balance_fields=["pop"], tolerance_pct=10, contiguous=False)  # fmt: skip
    ref = pieces_by_bfs(plan.units["uid"].tolist(), plan.units["territory_id"].tolist())
    got = dict(zip(plan.summary["territory_id"], plan.summary["pieces"]))
    assert got == ref
    assert plan.kpis["split_territories"] == sum(v > 1 for v in ref.values())


def test_point_accounts_contiguous_and_tight_polygons() -> None:
    rng = np.random.default_rng(11)
    shift = np.array([20_000.0, 0.0])
    xy = np.vstack([rng.uniform(0, 5000, (80, 2)), rng.uniform(0, 5000, (80, 2)) + shift])
    acc = gpd.GeoDataFrame({"id": [f"A{i}" for i in range(160)],
                            "revenue": rng.integers(10, 100, 160).astype(float)},
                           geometry=gpd.points_from_xy(xy[:, 0] + 300_000, xy[:, 1] + 6_600_000),
                           crs=CRS)  # fmt: skip
    plan = design_territories(acc, id_field="id", n_territories=4, balance_fields=["revenue"],
                              tolerance_pct=10, contiguous=True)  # fmt: skip
    assert (plan.summary["pieces"] == 1).all()
    _assert_balanced(plan.summary, "revenue", 10)
    # two 5 km clusters 15 km apart: the polygons stay near the accounts (no hull over the gap)
    area_km2 = plan.territories.area.sum() / 1e6
    assert area_km2 < 2 * 5 * 5 * 1.6
    assert plan.territories.union_all().covers(shapely.multipoints(acc.geometry.values))


def test_rebalance_with_units_moves_whole_units_and_stays_contiguous() -> None:
    units = grid_units(6, 6, 12)
    acc = accounts_in(units, 2, 13)
    first = design_territories(acc, id_field="id", units=units, unit_id_field="uid",
                               n_territories=4, balance_fields=["revenue"], tolerance_pct=5)  # fmt: skip
    acc["current"] = first.accounts["territory_id"].to_numpy()
    acc.loc[acc["unit"].isin(["U0_0", "U0_1"]), "revenue"] *= 3  # growth breaks the balance
    res = rebalance_territories(acc, id_field="id", current_field="current", units=units,
                                unit_id_field="uid", balance_fields=["revenue"],
                                tolerance_pct=10)  # fmt: skip
    out = res.plan.units
    assert set(pieces_by_bfs(out["uid"].tolist(), out["territory_id"].tolist()).values()) == {1}
    _assert_balanced(res.plan.summary, "revenue", 10)
    unit_terr = dict(zip(out["uid"], out["territory_id"]))
    assert (res.plan.accounts["territory_id"] == res.plan.accounts["unit"].map(unit_terr)).all()
    moved = (out["territory_id"].to_numpy() != first.units["territory_id"].to_numpy()).sum()
    assert res.plan.moved == 2 * moved  # MOVED counts the accounts (2 a unit), as the report
    assert res.plan.moved == res.plan.accounts["moved"].sum()
    assert len(res.moves) == moved
    assert res.moves_lower_bound <= moved


def test_rebalance_with_units_leaves_units_without_accounts_out_of_the_moves() -> None:
    """A unit without accounts has no territory today: it is not a new account nor a move."""
    units = grid_units(5, 5, 3)
    acc = accounts_in(units, 2, 4)
    acc = acc[~acc["unit"].isin(["U4_4", "U0_4"])].reset_index(drop=True)
    first = design_territories(acc, id_field="id", units=units, unit_id_field="uid",
                               n_territories=3, balance_fields=["revenue"], tolerance_pct=10)  # fmt: skip
    acc["current"] = first.accounts["territory_id"].to_numpy()
    res = rebalance_territories(acc, id_field="id", current_field="current", units=units,
                                unit_id_field="uid", balance_fields=["revenue"],
                                tolerance_pct=10)  # fmt: skip
    assert not set(res.moves["account_id"]) & {"U4_4", "U0_4"}
    assert "new account" not in set(res.moves["reason"])
    assert res.plan.moved == res.plan.accounts["moved"].sum()


def test_tolerance_too_tight_for_whole_units_is_named() -> None:
    units = grid_units(3, 3, 0)
    units["pop"] = [1000.0] + [1.0] * 8  # one unit holds almost everything
    with pytest.raises(InfeasibleError, match="TOLERANCE"):
        design_territories(units=units, unit_id_field="uid", n_territories=2,
                           balance_fields=["pop"], tolerance_pct=5)  # fmt: skip


def test_accounts_of_a_plan_of_areas_name_their_area_and_leave_pieces_to_the_areas() -> None:
    """The accounts output of a plan of areas (the sample areas and accounts) names each
    account's area (``unit_id``, the accounts joined from outside every area too). Its
    territories' pieces are the areas': the report and compareplans do not judge them from the
    accounts (whose Voronoi neighbours see the plan split where the areas join it) and say
    so; from the areas output they do."""
    import re
    from pathlib import Path

    from territory_planner_plugin import report
    from territory_planner_plugin.adjacency import plan_pieces
    from territory_planner_plugin.compare import compare_plans

    data = Path(__file__).resolve().parents[2] / "sample_data"
    acc = gpd.read_file(data / "accounts.gpkg", layer="accounts")
    areas = gpd.read_file(data / "areas.gpkg", layer="areas")
    plan = design_territories(acc, id_field="id", units=areas, unit_id_field="area_id",
                              n_territories=5, balance_fields=["revenue_potential"],
                              tolerance_pct=10, unit_max_distance_m=3000, seed=0,
                              time_limit_s=10)  # fmt: skip
    out = plan.accounts
    inside = gpd.sjoin(acc.to_crs(areas.crs), areas[["area_id", "geometry"]], predicate="within",
                       how="left")  # fmt: skip
    inside = inside[~inside.index.duplicated()]["area_id"]
    assert (out["unit_id"][inside.notna()] == inside[inside.notna()]).all()
    assert out["unit_id"].notna().all()  # (the two joined from outside too)
    assert (plan.summary["pieces"] == 1).all()
    seen = plan_pieces(out.geometry, out["territory_id"])  # what the accounts alone would say
    assert max(seen.values()) > 1, seen  # (the case is one where they are wrong)
    html, _ = report.build_report(out, balance_fields=["revenue_potential"], tolerance_pct=10)
    assert "not judged from the accounts of a plan of areas" in html
    assert not re.search(r"in \d+ pieces", html)
    html, _ = report.build_report(plan.units, balance_fields=["revenue_potential"],
                                  tolerance_pct=10)  # fmt: skip
    assert "every territory in one piece" in html
    compared = compare_plans([out, out], territory_field="territory_id", id_field="id")
    assert compared.kpis["split_territories"].isna().all()
    assert any("pieces are its areas'" in note for note in compared.notes)
    compared = compare_plans([plan.units, plan.units], territory_field="territory_id",
                             id_field="area_id")  # fmt: skip
    assert (compared.kpis["split_territories"] == 0).all()
