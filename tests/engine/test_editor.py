"""The Territory editor's live table: same figures as the report's KPIs, incremental updates equal
a full recompute, pieces, warnings, previews and re-optimising around manual edits."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from territory_planner_plugin import kpis
from territory_planner_plugin import report as rpt
from territory_planner_plugin.editor import (
    NEAR,
    OUTSIDE,
    WITHIN,
    PlanTable,
    count_pieces,
    point_adjacency,
    polygon_adjacency,
    reoptimise,
    territory_outlines,
)
from territory_planner_plugin.errors import InvalidInputError
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps

TERRITORIES = ["T1", "T2", "T3", "T4"]


def _plan(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "territory_id": rng.choice(TERRITORIES, n),
            "current": rng.choice([*TERRITORIES, None], n),
            "revenue": rng.integers(10, 100, n).astype(float),
            "visits": rng.integers(1, 10, n).astype(float),
            "x": rng.uniform(0, 20_000, n),
            "y": rng.uniform(0, 20_000, n),
        }
    )


def _table(df: pd.DataFrame, capacity=None, **kw) -> PlanTable:
    xy = df[["x", "y"]].to_numpy()
    return PlanTable(
        df["territory_id"], values=df, balance_fields=["revenue", "visits"], capacity=capacity,
        tolerance_pct=5.0, current=df["current"], xy=xy, adjacency=point_adjacency(xy),
        territories=TERRITORIES, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("capacity", [None, {"T1": 1.0, "T2": 0.5, "T3": 1.5, "T4": 1.0}])
def test_figures_equal_the_report_kpis(capacity) -> None:
    df = _plan()
    live = _table(df, capacity)
    table, plan = live.table(), live.plan()
    summary = rpt.territory_summary(df, territory_field="territory_id",
                                    balance_fields=["revenue", "visits"])  # fmt: skip
    ref = kpis.balance(summary, territory_field="territory_id",
                       measures=["revenue", "visits"], capacity=capacity)  # fmt: skip
    got = table.set_index("territory").loc[ref.table["territory_id"]]
    assert got["count"].tolist() == ref.table["accounts"].tolist()
    for m in ("revenue", "visits"):
        np.testing.assert_allclose(got[f"{m}_total"], ref.table[f"{m}_total"])
        np.testing.assert_allclose(got[f"{m}_target"], ref.table[f"{m}_target"], atol=0.005)
        np.testing.assert_allclose(got[f"{m}_dev_pct"], ref.table[f"{m}_dev_pct"], atol=0.005)
        assert plan.cv[m] == pytest.approx(ref.cv[m])
        assert plan.max_dev_pct[m] == pytest.approx(ref.max_dev_pct[m])
    report = rpt.kpis(df, territory_field="territory_id", balance_fields=["revenue", "visits"],
                      current_field="current", capacity=capacity)  # fmt: skip
    assert plan.max_deviation_pct == pytest.approx(report["max_deviation_pct"])
    assert plan.moved == report["accounts_moved"]
    assert plan.compactness_km == pytest.approx(
        kpis.compactness_km(df[["x", "y"]].to_numpy(), df["territory_id"])
    )


@settings(max_examples=40, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.lists(st.integers(0, 59), min_size=1, max_size=8),
            st.sampled_from([*TERRITORIES, None, "T9"]),
        ),
        min_size=1,
        max_size=6,
    ),
    capacity=st.sampled_from([None, {"T1": 2.0, "T2": 1.0, "T3": 1.0, "T4": 0.5}]),
)
def test_incremental_update_equals_a_full_recompute(edits, capacity) -> None:
    df = _plan()
    live = _table(df, capacity)
    for rows, territory in edits:
        live.assign(rows, territory)
    fresh = _table(df.assign(territory_id=live.assignment()), capacity)
    a = live.table().set_index("territory").sort_index()
    b = fresh.table().set_index("territory").sort_index()
    b = b.loc[[t for t in a.index if t in b.index]]
    a = a.loc[b.index]  # T9 may be in one table only when it was emptied again
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
    pa, pb = live.plan(), fresh.plan()
    assert pa.moved == pb.moved
    assert pa.unassigned == pb.unassigned
    for m in ("revenue", "visits"):
        assert pa.cv[m] == pytest.approx(pb.cv[m], abs=1e-12) or np.isnan(pa.cv[m])


def test_pieces_of_a_line_of_units_and_the_warning() -> None:
    boxes = [shapely.box(i, 0, i + 1, 1) for i in range(5)]
    adj = polygon_adjacency(boxes)
    live = PlanTable(["A", "A", "A", "B", "B"], adjacency=adj)
    assert live.table().set_index("territory")["pieces"].to_dict() == {"A": 1, "B": 1}
    live.assign([1], "B")
    assert live.table().set_index("territory")["pieces"].to_dict() == {"A": 2, "B": 2}
    kinds = {(w.territory, w.kind) for w in live.plan().warnings}
    assert ("A", "pieces") in kinds
    assert ("B", "pieces") in kinds
    assert count_pieces(adj, np.array([0, 2, 4])) == 3


def test_point_adjacency_joins_points_at_the_same_place() -> None:
    xy = np.array([[0, 0], [0, 0], [1, 0], [0, 1], [5, 5]], dtype=float)
    adj = point_adjacency(xy)
    assert adj[0, 1]
    assert adj[1, 0]
    assert count_pieces(adj, np.arange(5)) == 1
    assert adj.diagonal().sum() == 0


def test_status_bands_and_preview_does_not_apply() -> None:
    live = PlanTable(["A"] * 10 + ["B"] * 10, values={"v": [10.0] * 20}, balance_fields=["v"],
                     tolerance_pct=10.0)  # fmt: skip
    assert live.table()["v_status"].tolist() == [WITHIN, WITHIN]
    delta = live.preview([0], "B")
    assert delta["A"].count_after == 9
    assert delta["B"].count_after == 11
    assert delta["A"].dev_after["v"] == pytest.approx(-10.0)
    assert live.table()["count"].tolist() == [10, 10]  # nothing applied
    live.assign([0], "B")
    assert live.table()["v_status"].tolist() == [NEAR, NEAR]  # 10% of a 10% band
    live.assign([1], "B")
    assert live.table()["v_status"].tolist() == [OUTSIDE, OUTSIDE]
    assert any(w.kind == "band" and w.territory == "A" for w in live.plan().warnings)


def test_locked_rows_moved_emptied_territory_and_longest_drive() -> None:
    xy = np.array([[0, 0], [1000, 0], [50_000, 0]], dtype=float)
    live = PlanTable(["A", "A", "B"], xy=xy, centres={"A": (0, 0), "B": (50_000, 0)},
                     max_km=10.0, locked=[True, False, False], tolerance_pct=300)  # fmt: skip
    assert live.plan().warnings == []
    live.assign([2], "A")
    kinds = {(w.territory, w.kind) for w in live.plan().warnings}
    assert kinds == {("A", "drive"), ("B", "empty")}
    live.assign([0], "B")
    assert any(w.kind == "locked" for w in live.plan().warnings)
    assert live.locked_moved().tolist() == [0]
    live.set_locked([0], True)  # locked again where it is now: no warning
    assert not any(w.kind == "locked" for w in live.plan().warnings)


def test_bad_balance_field_is_named() -> None:
    with pytest.raises(Exception, match="revenue"):
        PlanTable(["A"], values={"x": [1.0]}, balance_fields=["revenue"])


def test_reoptimise_keeps_manual_edits_and_restores_balance() -> None:
    acc = random_accounts(80, seed=3)
    plan = design_territories(acc, id_field="id", reps=random_reps(4), rep_id_field="rep",
                              balance_fields=["revenue"], tolerance_pct=10.0).accounts  # fmt: skip
    xy = shapely.get_coordinates(plan.geometry.values)
    live = PlanTable(plan["territory_id"], values=plan, balance_fields=["revenue"],
                     tolerance_pct=10.0, xy=xy, current=plan["territory_id"])  # fmt: skip
    # move six accounts by hand into R0: it leaves its band
    manual = [int(i) for i in np.flatnonzero(plan["territory_id"].to_numpy() != "R0")[:6]]
    live.assign(manual, "R0")
    assert live.plan().outside > 0
    moves = reoptimise(live, manual_rows=manual, crs=plan.crs)
    assert not set(moves["row"]) & set(manual)
    assert (moves["from_id"].to_numpy() != moves["to_id"].to_numpy()).all()
    for row, to in zip(moves["row"], moves["to_id"]):
        live.assign([row], to)
    assert live.plan().outside == 0
    assert all(live.territory_of(r) == "R0" for r in manual)


def test_reoptimise_units_moves_whole_units_and_keeps_territories_in_one_piece() -> None:
    """A plan of units (a 6 x 6 grid, 2 territories) unbalanced by hand: the proposal moves
    units, not points, and the plan after it is balanced with each territory one piece."""
    boxes = [shapely.box(x * 1000, y * 1000, x * 1000 + 1000, y * 1000 + 1000)
             for y in range(6) for x in range(6)]  # fmt: skip
    terr = ["W" if i % 6 < 3 else "E" for i in range(36)]
    values = pd.DataFrame({"pop": np.full(36, 10.0)})
    xy = shapely.get_coordinates(shapely.centroid(boxes))
    live = PlanTable(terr, values=values, balance_fields=["pop"], tolerance_pct=10.0, xy=xy,
                     adjacency=polygon_adjacency(boxes), current=terr)  # fmt: skip
    manual = [3, 9]  # two eastern units of the bottom rows moved to W by hand
    live.assign(manual, "W")
    assert live.plan().outside > 0
    moves = reoptimise(live, manual_rows=manual, crs="EPSG:3067", geometries=boxes)
    assert len(moves)
    assert not set(moves["row"]) & set(manual)
    for row, to in zip(moves["row"], moves["to_id"]):
        live.assign([row], to)
    table = live.table().set_index("territory")
    assert live.plan().outside == 0
    assert table["pieces"].to_dict() == {"E": 1, "W": 1}
    assert all(live.territory_of(r) == "W" for r in manual)


def test_drive_minutes_match_networkx_and_drive_the_table(tmp_path) -> None:
    """With a road network the editor's travel is drive minutes (networkx Dijkstra as the
    reference), and the longest-drive warning is in minutes."""
    from pathlib import Path

    import networkx as nx

    from territory_planner_plugin import network
    from territory_planner_plugin.editor import drive_minutes

    path = tmp_path / "net.gpkg"
    network.save_network(network.build_road_network(
        Path(__file__).resolve().parents[1] / "data" / "helsinki.osm.pbf"), path)  # fmt: skip
    net = network.load_network(path)
    g = nx.DiGraph()
    for u, v, t in zip(net.edges["u_idx"], net.edges["v_idx"], net.edges["travel_time_s"]):
        if u != v and (not g.has_edge(u, v) or g[u][v]["w"] > t):
            g.add_edge(u, v, w=t)
    big = max(nx.strongly_connected_components(g), key=len)
    nodes = np.array(sorted(big))[:: max(1, len(big) // 12)][:12]
    xy = np.column_stack([net.x[nodes], net.y[nodes]])
    centres = {"A": xy[0], "B": xy[-1]}
    minutes = drive_minutes(str(path), xy, net.crs, centres)
    for key, src in (("A", nodes[0]), ("B", nodes[-1])):
        ref = nx.single_source_dijkstra_path_length(g, int(src), weight="w")
        expected = np.array([ref[int(n)] / 60 for n in nodes])
        np.testing.assert_allclose(minutes[key], expected, atol=0.02)
    terr = ["A"] * 6 + ["B"] * 6
    live = PlanTable(terr, xy=xy, centres=centres, minutes=minutes, tolerance_pct=300,
                     max_minutes=float(minutes["A"][:6].max()) + 0.01)  # fmt: skip
    row = live.table().set_index("territory")
    assert row.loc["A", "travel_min"] == pytest.approx(minutes["A"][:6].sum())
    assert not [w for w in live.plan().warnings if w.kind == "drive"]
    far = int(np.argmax(minutes["A"][6:])) + 6
    live.assign([far], "A")
    live.max_minutes = float(minutes["A"][far]) - 0.01  # now that row is beyond the limit
    drives = [w.text for w in live.plan().warnings if w.kind == "drive"]
    assert drives
    assert "min from the rep's base" in drives[0]
    assert row.loc["A", "longest_min"] == pytest.approx(minutes["A"][:6].max())


def test_redrawn_territories_of_accounts_are_designs_polygons_and_summary() -> None:
    """After moving accounts by hand, the territory polygons and the Territories output's
    fields the panel writes equal those Design territories gives the same plan (every
    account locked where the edit put it), drawn within the area the plan covered."""
    acc = random_accounts(80, seed=5)
    reps = random_reps(4)
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue"], tolerance_pct=10.0)  # fmt: skip
    rows = plan.accounts
    xy = shapely.get_coordinates(rows.geometry.values)
    live = PlanTable(rows["territory_id"], values=rows, balance_fields=["revenue"],
                     tolerance_pct=10.0, xy=xy, adjacency=point_adjacency(xy),
                     territories=list(plan.territories["territory_id"]))  # fmt: skip
    figures = {t: {"accounts": n} for t, n in zip(plan.summary["territory_id"],
                                                   plan.summary["accounts"])}  # fmt: skip
    assert live.shows_loaded(figures, "accounts")
    assert not live.shows_loaded({**figures, "R0": {"accounts": -1}}, "accounts")
    assert not live.shows_loaded({"X": {"accounts": 3}}, "accounts")
    assert live.shows_loaded({t: {"revenue_total": v} for t, v in zip(
        plan.summary["territory_id"], plan.summary["revenue_total"])}, "accounts")  # fmt: skip
    drawn = live.codes.copy()
    moved = [int(i) for i in np.flatnonzero(rows["territory_id"].to_numpy() == "R1")[:3]]
    live.assign(moved, "R2")
    assert live.changed_territories(drawn) == ["R1", "R2"]
    outline = plan.territories.union_all()
    shapes = territory_outlines(live, live.keys, outline=outline)
    edited = acc.assign(lock=live.assignment())  # every account locked where it now is
    ref = design_territories(edited, id_field="id", reps=reps, rep_id_field="rep",
                             balance_fields=["revenue"], tolerance_pct=90.0,  # (locks hold)
                             lock_field="lock",
                             study_area=gpd.GeoDataFrame(geometry=[outline], crs=acc.crs))  # fmt: skip
    assert ref.accounts["territory_id"].tolist() == live.assignment()
    for t, g in zip(ref.territories["territory_id"], ref.territories.geometry):
        assert shapes[t].symmetric_difference(g).area == pytest.approx(0.0, abs=1.0)
    summary = ref.summary.set_index("territory_id")
    for t in ("R1", "R2"):
        fields = live.output_fields(t, "accounts")
        assert fields["accounts"] == summary.loc[t, "accounts"]
        assert fields["revenue_total"] == pytest.approx(summary.loc[t, "revenue_total"])
        assert fields["revenue_dev_pct"] == pytest.approx(summary.loc[t, "revenue_dev_pct"])
        assert fields["pieces"] == summary.loc[t, "pieces"]
    assert live.changed_territories(live.codes.copy()) == []


def test_redrawn_territories_of_units_are_the_dissolved_units() -> None:
    """A plan of 36 square units edited by hand: the changed territories' polygons are the
    union of their units (areas add up, one polygon each), the others are not drawn."""
    boxes = [shapely.box(x * 1000, y * 1000, x * 1000 + 1000, y * 1000 + 1000)
             for y in range(6) for x in range(6)]  # fmt: skip
    terr = ["W" if i % 6 < 2 else "M" if i % 6 < 4 else "E" for i in range(36)]
    xy = shapely.get_coordinates(shapely.centroid(boxes))
    live = PlanTable(terr, values=pd.DataFrame({"pop": np.arange(36.0)}), balance_fields=["pop"],
                     xy=xy, adjacency=polygon_adjacency(boxes))  # fmt: skip
    drawn = live.codes.copy()
    live.assign([2, 8], "W")  # two units of M, column 2 of the first two rows
    keys = live.changed_territories(drawn)
    assert keys == ["M", "W"]
    shapes = territory_outlines(live, keys, geometries=boxes)
    assert set(shapes) == {"M", "W"}
    assert shapes["W"].area == pytest.approx(14e6)
    assert shapes["M"].area == pytest.approx(10e6)
    assert shapes["W"].geom_type == shapes["M"].geom_type == "Polygon"
    assert shapes["W"].contains(shapely.Point(2500, 500))
    fields = live.output_fields("W", "units")
    assert fields["units"] == 14
    assert fields["pop_total"] == sum(i for i in range(36) if i % 6 < 2) + 2 + 8
    assert fields["pieces"] == 1
    assert fields["travel_total"] is None  # no rep bases: no travel figure
    with pytest.raises(InvalidInputError, match="outline"):
        territory_outlines(live, keys)


def test_redrawn_territories_of_a_hybrid_plan_leave_named_books_without_an_area() -> None:
    """A hybrid plan (named and geographic tiers): after moving geographic accounts, the
    geographic polygons are Design's for that plan (the named accounts make no cells) and the
    named territories stay without an area."""
    from territory_planner_plugin.coverage import Coverage, design_coverage

    acc = random_accounts(60, seed=8)
    acc["named"] = (np.arange(60) < 12).astype(int)
    reps = random_reps(5, 9)
    reps["named"] = [0, 0, 0, 1, 1]
    reps["rep"] = ["T0", "T1", "T2", "N0", "N1"]
    kw = {"id_field": "id", "rep_id_field": "rep", "balance_fields": ("revenue",),
          "time_limit_s": 10, "coverage": Coverage(named_field="named", rep_named_field="named")}  # fmt: skip
    plan = design_coverage(acc, reps=reps, tolerance_pct=15.0, **kw)
    rows = plan.accounts
    tiers = dict(zip(plan.summary["territory_id"], plan.summary["tier"]))
    xy = shapely.get_coordinates(rows.geometry.values)
    live = PlanTable(rows["territory_id"], values=rows, balance_fields=["revenue"], xy=xy,
                     tolerance_pct=15.0, tiers=tiers)  # fmt: skip
    geo = plan.territories[plan.territories.geometry.notna()]
    outline = geo.union_all()
    moved = [int(i) for i in np.flatnonzero(rows["territory_id"].to_numpy() == "T0")[:2]]
    live.assign(moved, "T1")
    shapes = territory_outlines(live, live.keys, outline=outline)
    assert shapes["N0"].is_empty
    assert shapes["N1"].is_empty
    edited = acc.assign(lock=live.assignment())
    ref = design_coverage(edited, reps=reps, tolerance_pct=90.0, lock_field="lock", **kw)
    assert ref.accounts["territory_id"].tolist() == live.assignment()
    for t, g in zip(ref.territories["territory_id"], ref.territories.geometry):
        if tiers[t] == "geographic":
            assert shapes[t].symmetric_difference(g).area == pytest.approx(0.0, abs=1.0), t
