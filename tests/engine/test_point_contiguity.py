"""Point accounts: Delaunay adjacency against the clipped Voronoi cells; clustered towns in one piece."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.cluster.vq import kmeans2

from territory_planner_plugin.adjacency import (
    count_pieces,
    point_adjacency,
    territory_polygons,
    tight_outline,
)
from territory_planner_plugin.assignment import solve_balanced
from territory_planner_plugin.contiguity import make_contiguous


def clipped_cell_pairs(xy: np.ndarray, area) -> set[tuple[int, int]]:
    """Reference (the former implementation): clip every Voronoi cell to the area, neighbours are
    cells whose clipped boundaries share more than a micrometre."""
    pts = shapely.points(xy)
    raw = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=area))
    p_idx, c_idx = shapely.STRtree(raw).query(pts, predicate="within")
    cells = np.empty(len(xy), dtype=object)
    cells[p_idx] = shapely.intersection(raw[c_idx], area)
    out = set()
    for i in range(len(xy)):
        for j in range(i + 1, len(xy)):
            if cells[i].is_empty or cells[j].is_empty:
                continue
            with np.errstate(invalid="ignore"):  # GEOS flags some degenerate shared edges
                shared = shapely.intersection(cells[i].boundary, cells[j].boundary)
            if shapely.length(shared) > 1e-6:
                out.add((i, j))
    return out


def pairs(matrix) -> set[tuple[int, int]]:
    coo = matrix.tocoo()
    return {(int(a), int(b)) for a, b in zip(coo.row, coo.col) if a < b}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(4, 60), seed=st.integers(0, 10_000), shape=st.sampled_from(["disk", "L", "two"])
)
def test_delaunay_adjacency_matches_the_clipped_cells(n, seed, shape) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1_000, (n, 2))
    area = {
        "disk": shapely.Point(500, 500).buffer(450),
        "L": shapely.union_all(
            [shapely.box(-10, -10, 1010, 300), shapely.box(-10, -10, 300, 1010)]
        ),
        "two": shapely.union_all(
            [shapely.box(-10, -10, 400, 1010), shapely.box(600, -10, 1010, 1010)]
        ),
    }[shape]
    adj, _ = point_adjacency(xy, study_area=area, with_cells=False)
    links = {tuple(sorted(p)) for p in adj.linked}
    assert pairs(adj.matrix) - links == clipped_cell_pairs(xy, area)
    assert count_pieces(np.zeros(n, int), adj, 1).tolist() == [1]  # links make it connected


def test_towns_apart_are_linked_to_each_neighbouring_town() -> None:
    towns = np.array([[0, 0], [20_000, 0], [10_000, 17_000]], float)  # a triangle of towns
    rng = np.random.default_rng(1)
    xy = np.vstack([t + rng.normal(0, 300, (30, 2)) for t in towns])
    adj, _ = point_adjacency(xy, with_cells=False)
    town = np.repeat(np.arange(3), 30)
    linked = {tuple(sorted((int(town[i]), int(town[j])))) for i, j in adj.linked}
    assert linked == {(0, 1), (0, 2), (1, 2)}  # every pair, not a chain of nearest links


def test_territory_polygons_are_the_clipped_cells_dissolved() -> None:
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 5_000, (200, 2))
    area = tight_outline(xy)
    assign = (xy[:, 0] > 2_500).astype(int) + 2 * (xy[:, 1] > 2_500)
    _, cells = point_adjacency(xy, study_area=area)
    polys = territory_polygons(xy, assign, 4, area)
    for j in range(4):
        ref = shapely.union_all(cells[assign == j])
        assert shapely.area(shapely.symmetric_difference(polys[j], ref)) < 1e-6 * ref.area
        assert all(polys[j].covers(shapely.Point(p)) for p in xy[assign == j])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_towns_are_made_contiguous_within_the_tolerance(seed) -> None:
    """Regression: 20 tight towns far apart (only links between them) into 25 territories used to
    end in 'allow TOLERANCE of ...%' (towns were linked as a chain of nearest units)."""
    rng = np.random.default_rng(seed)
    n, k, n_towns = 1500, 25, 20
    towns = rng.uniform(0, 150_000, (n_towns, 2))
    xy = towns[rng.integers(0, n_towns, n)] + rng.normal(0, 1_500, (n, 2))
    adj, _ = point_adjacency(xy, with_cells=False)
    values = np.column_stack([rng.lognormal(9, 0.6, n), rng.integers(4, 25, n).astype(float)])
    cen, _ = kmeans2(xy, k, seed=seed, minit="++")
    cost = np.linalg.norm(xy[:, None] - cen[None], axis=2) / 1000.0
    target = values.sum(0) / k
    lo, hi = np.tile(target * 0.95, (k, 1)), np.tile(target * 1.05, (k, 1))
    locks, allowed = np.full(n, -1), np.ones((n, k), bool)
    res = solve_balanced(cost, values, lo, hi, locks=locks, current=np.full(n, -1), budget=None,
                         allowed=allowed, time_limit_s=30)  # fmt: skip
    assign = make_contiguous(res.assign, adjacency=adj, cost=cost, values=values, lo=lo, hi=hi,
                             locks=locks, allowed=allowed)  # fmt: skip
    assert (count_pieces(assign, adj, k) == 1).all()
    tot = np.zeros((k, 2))
    np.add.at(tot, assign, values)
    assert (tot >= lo - 1e-6).all()
    assert (tot <= hi + 1e-6).all()


def test_pieces_of_a_plan_of_accounts_are_counted_alike_everywhere() -> None:
    """Design territories without CONTIGUOUS on the sample accounts: the summary's pieces are
    those the report, compareplans and the editor count for the same plan (the accounts'
    Voronoi neighbours, groups apart linked), not the parts of the territory polygons, which
    the tight outline's gaps split further (the case is chosen so that it does)."""
    from pathlib import Path

    import geopandas as gpd

    from territory_planner_plugin.adjacency import plan_pieces
    from territory_planner_plugin.editor import PlanTable
    from territory_planner_plugin.editor import point_adjacency as editor_adjacency
    from territory_planner_plugin.territories import design_territories

    data = Path(__file__).resolve().parents[2] / "sample_data"
    acc = gpd.read_file(data / "accounts.gpkg", layer="accounts")
    reps = gpd.read_file(data / "reps.gpkg", layer="reps")
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep_id",
                              balance_fields=["revenue_potential"], tolerance_pct=10,
                              lock_field="locked_to", time_limit_s=10, contiguous=False)  # fmt: skip
    summary = dict(zip(plan.summary["territory_id"], plan.summary["pieces"]))
    parts = {t: shapely.get_num_geometries(g)
             for t, g in zip(plan.territories["territory_id"], plan.territories.geometry)}  # fmt: skip
    assert parts != summary  # the polygons have more parts than the plan has pieces
    rows = plan.accounts.to_crs(plan.accounts.estimate_utm_crs())
    assert summary == plan_pieces(rows.geometry, rows["territory_id"])  # report, compareplans
    xy = shapely.get_coordinates(rows.geometry.values)
    live = PlanTable(rows["territory_id"], xy=xy, adjacency=editor_adjacency(xy))
    assert summary == dict(zip(live.table()["territory"], live.table()["pieces"]))  # the editor
    assert plan.kpis["split_territories"] == sum(n > 1 for n in summary.values())


def test_the_summarys_compactness_is_compareplans() -> None:
    """The summary's compactness_km is the figure compareplans gives the same plan (km from
    each account to its territory's centroid), for a plan of accounts and one of areas."""
    import geopandas as gpd

    from territory_planner_plugin.compare import compare_plans
    from territory_planner_plugin.territories import design_territories
    from tests.engine.helpers import random_accounts
    from tests.engine.test_plans_from_units import grid_units

    acc = random_accounts(120, seed=2)
    units = grid_units(6, 6, 1)
    for plan, rows in (
        (p := design_territories(acc, id_field="id", n_territories=4, balance_fields=["revenue"],
                                 tolerance_pct=10, time_limit_s=5), p.accounts),
        (q := design_territories(units=units, unit_id_field="uid", n_territories=3,
                                 balance_fields=["pop"], tolerance_pct=10, time_limit_s=5),
         q.units),
    ):  # fmt: skip
        rows = gpd.GeoDataFrame(rows).to_crs(plan.territories.crs)
        key = "id" if "id" in rows.columns else "uid"
        out = compare_plans([rows, rows], territory_field="territory_id", id_field=key)
        assert plan.kpis["compactness_km"] == pytest.approx(out.kpis["compactness_km"].iloc[0],
                                                            abs=1e-3)  # fmt: skip
