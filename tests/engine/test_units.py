"""Units engine: bad input named, accounts placed in their unit, exact dissolved boundaries."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from territory_planner_plugin.adjacency import count_pieces, polygon_adjacency
from territory_planner_plugin.errors import InvalidInputError
from territory_planner_plugin.units import dissolve_units, prepare_units, unit_codes

CRS = "EPSG:3067"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def grid_units(rows: int = 3, cols: int = 3, size: float = 100.0) -> gpd.GeoDataFrame:
    geoms = [shapely.box(c * size, r * size, (c + 1) * size, (r + 1) * size)
             for r in range(rows) for c in range(cols)]  # fmt: skip
    n = len(geoms)
    return gpd.GeoDataFrame({"uid": [f"U{i}" for i in range(n)], "pop": np.arange(n) + 1.0},
                            geometry=geoms, crs=CRS)  # fmt: skip


def accounts(points, values=None) -> gpd.GeoDataFrame:
    n = len(points)
    return gpd.GeoDataFrame(
        {"aid": [f"A{i}" for i in range(n)],
         "rev": np.ones(n) if values is None else np.asarray(values, float)},
        geometry=[shapely.Point(p) for p in points], crs=CRS,
    )  # fmt: skip


def test_units_alone_use_their_fields_and_keep_the_input() -> None:
    units = grid_units()
    before = units.copy()
    us = prepare_units(units, id_field="uid", balance_fields=["pop"])
    assert units.equals(before)
    assert us.values[:, 0].tolist() == (np.arange(9) + 1.0).tolist()
    assert us.ids.tolist() == [f"U{i}" for i in range(9)]
    assert shapely.contains(us.units.geometry.values, shapely.points(us.points)).all()
    assert us.account_unit is None
    counts = prepare_units(units, id_field="uid")
    assert counts.values.shape == (9, 1)
    assert (counts.values == 1).all()


def test_accounts_are_summed_in_their_unit() -> None:
    acc = accounts([(50, 50), (60, 60), (250, 250), (150, 50)], [1, 2, 4, 8])
    us = prepare_units(grid_units(), id_field="uid", balance_fields=["rev"], accounts=acc,
                       account_id_field="aid")  # fmt: skip
    assert us.account_unit.tolist() == [0, 0, 8, 1]
    assert us.values[:, 0].tolist() == [3, 8, 0, 0, 0, 0, 0, 0, 4]
    no_fields = prepare_units(grid_units(), id_field="uid", accounts=acc, account_id_field="aid")
    assert no_fields.values[:, 0].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 1]  # account counts


def test_accounts_outside_every_unit_join_the_nearest_or_are_named(caplog) -> None:
    acc = accounts([(50, 50), (320, 50), (900, 900)])
    with pytest.raises(InvalidInputError, match=r"A1.*A2|UNIT_MAX_DISTANCE"):
        prepare_units(grid_units(), id_field="uid", accounts=acc, account_id_field="aid")
    with pytest.raises(InvalidInputError, match=r"\['A2'\]") as err:
        prepare_units(grid_units(), id_field="uid", accounts=acc, account_id_field="aid",
                      max_distance_m=50)  # fmt: skip
    need = re.search(r"set UNIT_MAX_DISTANCE to at least (\d+) m", str(err.value))
    assert need
    assert int(need.group(1)) == 900  # A2 is 849 m from the nearest unit: up to 100 m
    placed = prepare_units(grid_units(), id_field="uid", accounts=acc, account_id_field="aid",
                           max_distance_m=int(need.group(1)))  # fmt: skip
    assert placed.outside == ["A1", "A2"]  # the value named is enough
    with caplog.at_level(logging.WARNING):
        us = prepare_units(grid_units(), id_field="uid", accounts=acc, account_id_field="aid",
                           max_distance_m=1000)  # fmt: skip
    assert us.outside == ["A1", "A2"]
    assert us.account_unit.tolist() == [0, 2, 8]
    assert "A1" in caplog.text


def test_overlapping_units_are_reported_and_an_account_counts_once(caplog) -> None:
    units = grid_units(1, 2)
    units.loc[1, "geometry"] = shapely.box(80, 0, 200, 100)  # overlaps unit 0 by 20 m x 100 m
    acc = accounts([(90, 50)])
    with caplog.at_level(logging.WARNING):
        us = prepare_units(units, id_field="uid", accounts=acc, account_id_field="aid")
    assert us.overlaps == [("U0", "U1")]
    assert us.values[:, 0].sum() == 1
    assert "A0 -> U0" in caplog.text


def test_a_plan_from_overlapping_and_invalid_units_says_so_once(caplog) -> None:
    """design_territories passes on what prepare_units found (an overlap, a repaired polygon):
    each said once, with its examples and what to do."""
    from territory_planner_plugin.territories import design_territories

    units = grid_units(2, 3)
    units.loc[1, "geometry"] = shapely.box(80, 0, 200, 100)  # overlaps U0 by 20 m x 100 m
    units.loc[4, "geometry"] = shapely.Polygon(  # a bow tie: invalid, repaired
        [(100, 100), (200, 200), (200, 100), (100, 200)]
    )
    with caplog.at_level(logging.INFO):
        design_territories(units=units, unit_id_field="uid", n_territories=2,
                           balance_fields=["pop"], tolerance_pct=60.0, time_limit_s=5)  # fmt: skip
    assert caplog.text.count("pair(s) of units overlap") == 1, caplog.text
    assert "U0/U1" in caplog.text
    assert caplog.text.count("invalid polygon(s) repaired") == 1, caplog.text
    assert "Check Validity" in caplog.text


def test_invalid_polygons_are_repaired_and_counted() -> None:
    units = grid_units(1, 2)
    bowtie = shapely.Polygon([(100, 0), (200, 100), (200, 0), (100, 100)])
    units.loc[1, "geometry"] = bowtie
    before = units.copy()
    us = prepare_units(units, id_field="uid")
    assert us.repaired == 1
    assert us.units.geometry.is_valid.all()
    assert us.units.geometry[1].area == pytest.approx(5000)
    assert units.geometry[1].wkb == before.geometry[1].wkb  # input untouched


def test_multipart_units_are_fine() -> None:
    units = grid_units(1, 2)
    units.loc[1, "geometry"] = shapely.MultiPolygon([shapely.box(100, 0, 200, 100),
                                                     shapely.box(500, 0, 600, 100)])  # fmt: skip
    us = prepare_units(
        units, id_field="uid", accounts=accounts([(550, 50)]), account_id_field="aid"
    )
    assert us.account_unit.tolist() == [1]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda u: u.iloc[:0], "UNITS: the layer is empty"),
        (lambda u: u.assign(uid=["U0", "U0", "U2"]), r"duplicate unit ids \['U0'\]"),
        (lambda u: u.assign(uid=["U0", None, "U2"]), r"features \[2\].*empty"),
        (lambda u: u.assign(uid=["U0", " ", "U2"]), r"features \[2\].*empty"),
        (lambda u: u.set_geometry(u.centroid), "not a polygon layer.*Point"),
        (lambda u: u.set_crs(None, allow_override=True), "UNITS: the layer has no CRS"),
        (lambda u: u.drop(columns="uid"), "UNIT_ID_FIELD: 'uid' is not a field"),
    ],
)
def test_bad_units_are_named(change, pattern) -> None:
    with pytest.raises(InvalidInputError, match=pattern):
        prepare_units(change(grid_units(1, 3)), id_field="uid")


def test_missing_or_bad_balance_fields_are_named() -> None:
    units = grid_units(1, 3)
    with pytest.raises(InvalidInputError, match="'people' is not a field of UNITS"):
        prepare_units(units, id_field="uid", balance_fields=["people"])
    units.loc[1, "pop"] = -5
    with pytest.raises(InvalidInputError, match=r"'pop' is negative for 1 units \(U1\)"):
        prepare_units(units, id_field="uid", balance_fields=["pop"])
    with pytest.raises(InvalidInputError, match="no CRS"):
        prepare_units(grid_units(1, 3), id_field="uid",
                      accounts=accounts([(50, 50)]).set_crs(None, allow_override=True),
                      account_id_field="aid")  # fmt: skip


def test_geographic_units_are_reprojected(caplog) -> None:
    shift = np.array([385_000.0, 6_672_000.0])  # Helsinki in ETRS-TM35FIN
    units = grid_units().translate(*shift)
    units = gpd.GeoDataFrame({"uid": [f"U{i}" for i in range(9)]}, geometry=units, crs=CRS)
    units = units.to_crs(4326)
    acc = accounts([shift + 50, shift + 250]).to_crs(4326)
    with caplog.at_level(logging.INFO):
        us = prepare_units(units, id_field="uid", accounts=acc, account_id_field="aid")
    assert us.units.crs.is_projected
    assert "UTM" in us.units.crs.name
    assert us.units.geometry.area.sum() == pytest.approx(90_000, rel=1e-3)
    assert us.account_unit.tolist() == [0, 8]
    assert "reprojected" in caplog.text


def test_unit_codes_lift_locks_and_current_territories() -> None:
    unit = np.array([0, 0, 1, 1, 1, 2])
    ids = np.array([f"A{i}" for i in range(6)])
    uids = np.array(["U0", "U1", "U2", "U3"])
    current = unit_codes(np.array([1, 1, 0, 2, 2, -1]), unit, 4, key="CURRENT_FIELD",
                         account_ids=ids, unit_ids=uids)  # fmt: skip
    assert current.tolist() == [1, 2, -1, -1]
    locks = unit_codes(np.array([-1, 3, -1, -1, -1, 0]), unit, 4, key="LOCK_FIELD",
                       account_ids=ids, unit_ids=uids)  # fmt: skip
    assert locks.tolist() == [3, -1, 0, -1]
    with pytest.raises(InvalidInputError, match=r"LOCK_FIELD.*unit U1 \(accounts A2, A4\)"):
        unit_codes(np.array([-1, -1, 0, -1, 1, -1]), unit, 4, key="LOCK_FIELD",
                   account_ids=ids, unit_ids=uids)  # fmt: skip


def test_dissolved_territories_keep_the_units_exact_boundaries() -> None:
    units = grid_units(4, 4)
    assign = np.array([0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])
    polys = dissolve_units(units.geometry, assign, 5)
    assert polys[4].is_empty
    for j in range(4):
        assert polys[j].geom_type == "Polygon"
        assert polys[j].equals(shapely.union_all(units.geometry.values[assign == j]))
    total = sum(p.area for p in polys)
    assert total == pytest.approx(units.geometry.area.sum())
    for a, b in [(0, 1), (0, 2), (1, 3), (2, 3)]:
        assert shapely.intersection(polys[a], polys[b]).area == 0
        assert shapely.intersection(polys[a], polys[b]).length == pytest.approx(200)


def test_sample_areas_are_a_clean_coverage() -> None:
    areas = gpd.read_file(SAMPLE / "areas.gpkg")
    us = prepare_units(areas, id_field="area_id", balance_fields=["population"])
    assert 60 <= len(areas) <= 150
    assert us.repaired == 0
    assert us.overlaps == []
    adj = polygon_adjacency(us.units.geometry)
    assert adj.snapped == 0
    assert (count_pieces(np.zeros(len(areas), int), adj, 1) == 1).all()
    whole = dissolve_units(us.units.geometry, np.zeros(len(areas), int), 1)[0]
    assert whole.area == pytest.approx(areas.area.sum(), rel=1e-9)
    acc = gpd.read_file(SAMPLE / "accounts.gpkg")
    placed = prepare_units(areas, id_field="area_id", balance_fields=["revenue_potential"],
                           accounts=acc, account_id_field="id", max_distance_m=3000)  # fmt: skip
    assert sorted(placed.outside) == ["A0501", "A0502"]
    assert placed.values.sum() == pytest.approx(acc["revenue_potential"].sum())


def test_dissolve_closes_digitising_gaps_inside_a_territory_only() -> None:
    """SNAP-wide gaps between units of one territory close (thin holes filled, sliver parts
    dropped); a lake, an enclave of another territory and the gaps between territories stay,
    and territories never overlap."""
    box = shapely.box
    units = [
        box(0, 0, 5, 10),
        box(5.3, 0, 10, 10),  # T0: a 0.3 m slot between them ...
        box(0, 10, 10, 12),
        box(0, -2, 10, 0),  # ... closed above and below: a thin hole
        shapely.MultiPolygon([box(10.4, -2, 20, 12), box(30, 0, 30.2, 40)]),  # T1: + a sliver
        box(14, 4, 16, 6),  # T2: an enclave inside T1's unit (cut out of it below)
    ]
    units[4] = units[4].difference(units[5])
    lake = box(3, 3, 4, 4)  # a 1 m x 1 m lake inside T0's first unit: wider than the gap
    units[0] = units[0].difference(lake)
    assign = np.array([0, 0, 0, 0, 1, 2])
    plain = dissolve_units(units, assign, 3)
    closed = dissolve_units(units, assign, 3, gap_m=0.5)
    assert len(plain[0].interiors) == 2  # the slot and the lake
    assert len(closed[0].interiors) == 1  # the lake only
    assert closed[0].area == pytest.approx(plain[0].area + 0.3 * 10)
    t1 = list(shapely.get_parts(closed[1]))
    assert len(shapely.get_parts(plain[1])) == 2
    assert len(t1) == 1  # the 0.2 m sliver dropped
    assert len(t1[0].interiors) == 1  # the enclave's hole stays
    assert closed[2].equals(units[5])
    for i in range(3):
        for j in range(i + 1, 3):
            assert closed[i].intersection(closed[j]).area == pytest.approx(0.0, abs=1e-9)
    assert closed[0].distance(closed[1]) == pytest.approx(0.4)  # the gap between territories
    only_thin = dissolve_units([box(0, 0, 0.2, 50)], np.array([0]), 1, gap_m=1.0)
    assert only_thin[0].area == pytest.approx(10.0)  # a territory of slivers keeps its largest


def test_a_plan_from_units_with_digitising_gaps_has_clean_territory_polygons(caplog) -> None:
    """design_territories dissolves with SNAP: a unit 0.25 m inside its place (adjacent within
    the default 1 m) is no island in its territory's polygon, and the log says what it closed;
    with SNAP 0 (exact adjacency) it is not closed."""
    from territory_planner_plugin.territories import design_territories

    units = grid_units(3, 3)
    units.loc[4, "geometry"] = units.geometry[4].buffer(-0.25, join_style="mitre")
    kw = {"units": units, "unit_id_field": "uid", "n_territories": 1, "balance_fields": ["pop"],
          "tolerance_pct": 10.0, "contiguous": False, "time_limit_s": 5}  # fmt: skip
    with caplog.at_level(logging.INFO):
        plan = design_territories(**kw)
    (poly,) = plan.territories.geometry
    (part,) = shapely.get_parts(poly)
    assert not part.interiors
    assert poly.area == pytest.approx(300.0 * 300.0)
    assert "narrower than SNAP (1 m) between units of one territory closed" in caplog.text
    (exact,) = design_territories(**kw, snap_m=0.0).territories.geometry
    assert len(list(shapely.get_parts(exact))) == 2  # the unit and the ring round its gap


def test_units_apart_by_gaps_everywhere_give_one_polygon_per_territory() -> None:
    """Every unit 0.5 m from the next (simplified boundaries): the gaps between units of one
    territory close into one polygon of the whole, those between territories stay (no overlap)."""
    units = grid_units(3, 4)
    units["geometry"] = units.geometry.scale(0.995, 0.995)  # 0.25 m in from every side
    assign = np.array([0, 0, 1, 1] * 3)  # two territories: columns 0-1 and 2-3
    plain = dissolve_units(units.geometry, assign, 2)
    closed = dissolve_units(units.geometry, assign, 2, gap_m=1.0)
    assert [shapely.get_num_geometries(p) for p in plain] == [6, 6]
    assert [shapely.get_num_geometries(p) for p in closed] == [1, 1]
    assert all(not p.interiors for t in closed for p in shapely.get_parts(t))
    assert closed[0].intersection(closed[1]).area == pytest.approx(0.0, abs=1e-9)
    assert closed[0].distance(closed[1]) == pytest.approx(0.5)
    assert closed[0].area == pytest.approx(199.5 * 299.5, rel=1e-6)


def test_closing_gaps_on_the_sample_areas_gives_polygons_only() -> None:
    """The sample areas cut into 5 territories around random seeds: with the gaps closed every
    territory is a Polygon or MultiPolygon (a difference can leave lines where edges meet; a
    GeometryCollection here broke REGIONS, whose units are these polygons), valid, no two
    overlap, and none loses area."""
    units = gpd.read_file(SAMPLE / "areas.gpkg", layer="areas")
    xy = shapely.get_coordinates(shapely.point_on_surface(units.geometry.values))
    for seed in range(20):
        centre = xy[np.random.default_rng(seed).choice(len(units), 5, replace=False)]
        assign = np.argmin(((xy[:, None] - centre[None]) ** 2).sum(2), 1)
        plain = dissolve_units(units.geometry, assign, 5)
        closed = dissolve_units(units.geometry, assign, 5, gap_m=1.0, gaps_seen=True)
        for j, poly in enumerate(closed):
            assert poly.geom_type in ("Polygon", "MultiPolygon"), (seed, j, poly.geom_type)
            assert poly.is_valid
            assert poly.area >= plain[j].area - 1e-6
        for i in range(5):
            for j in range(i + 1, 5):
                assert closed[i].intersection(closed[j]).area < 1e-6, (seed, i, j)
