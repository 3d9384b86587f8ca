"""designterritories / rebalanceterritories with UNITS (areas) and CONTIGUOUS through processing.run.

The checks are independent of the engine: pieces are counted by dissolving the written units per
territory with shapely, balance from the unit values, and account -> unit membership by a spatial
test on the inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

CRS = "EPSG:3067"  # ETRS-TM35FIN, metres (Helsinki)
X0, Y0, SIDE_M = 380_000.0, 6_670_000.0, 1_000.0
COLS, ROWS = 6, 5


def _grid(path, *, duplicate: bool = False, crs: str | None = CRS, points: bool = False):
    """A 6 x 5 grid of 1 km squares with ``unit_id``, ``population`` and ``today`` (2 halves)."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(7)
    rows = []
    for r in range(ROWS):
        for c in range(COLS):
            x, y = X0 + c * SIDE_M, Y0 + r * SIDE_M
            square = shapely.box(x, y, x + SIDE_M, y + SIDE_M)
            rows.append({
                "unit_id": f"U{r}{c}",
                "population": int(rng.integers(500, 1500)),
                "today": "T01" if c < COLS // 2 else "T02",
                "geometry": square.centroid if points else square,
            })  # fmt: skip
    if duplicate:
        rows[5]["unit_id"] = rows[4]["unit_id"]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    frame.to_file(path, layer="units", driver="GPKG")
    return f"{path}|layername=units", frame


def _accounts(path, *, outside_m: float = 0.0):
    """Three accounts in each grid cell (``revenue``) and, with ``outside_m``, two beyond the grid."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(3)
    rows = []
    for r in range(ROWS):
        for c in range(COLS):
            for i in range(3):
                x = X0 + (c + rng.uniform(0.1, 0.9)) * SIDE_M
                y = Y0 + (r + rng.uniform(0.1, 0.9)) * SIDE_M
                rows.append({"acc_id": f"A{r}{c}{i}", "revenue": float(rng.integers(10, 100)),
                             "geometry": shapely.Point(x, y)})  # fmt: skip
    if outside_m:
        east = X0 + COLS * SIDE_M + outside_m
        for i, y in enumerate((Y0 + 500.0, Y0 + 2500.0)):
            rows.append({"acc_id": f"OUT{i}", "revenue": 50.0, "geometry": shapely.Point(east, y)})
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    frame.to_file(path, layer="accounts", driver="GPKG")
    return f"{path}|layername=accounts", frame


def _outputs(tmp_path, *keys):
    keys = keys or ("OUTPUT_TERRITORIES", "OUTPUT_SUMMARY", "OUTPUT_UNITS", "OUTPUT_CENTRES")
    return {key: str(tmp_path / f"{key.lower()}.gpkg") for key in keys}


def _pieces_by_dissolving(units, field: str = "territory_id") -> dict:
    """Territory -> number of polygons of the union of its units (rook: corners do not join)."""
    import shapely

    pieces = {}
    for tid, group in units.groupby(field):
        union = shapely.union_all(np.asarray(group.geometry.values))
        pieces[tid] = shapely.get_num_geometries(union)
    return pieces


def _no_output_left(tmp_path) -> bool:
    return not any(p.name.startswith("output_") for p in tmp_path.iterdir())


def test_units_alone_make_whole_balanced_territories(run_alg, tp, tmp_path, feedback):
    source, grid = _grid(tmp_path / "units.gpkg")
    before = tp.digest(tmp_path / "units.gpkg")
    params = {
        "UNITS": source, "UNIT_ID_FIELD": "unit_id", "UNIT_BALANCE_FIELDS": ["population"],
        "TERRITORIES": 4, "TOLERANCE": 10, "TIME_LIMIT": 20, "SEED": 1,
        **_outputs(tmp_path),
    }  # fmt: skip
    result = run_alg("designterritories", params, feedback)

    units = tp.read_layer(result["OUTPUT_UNITS"])
    assert sorted(units["unit_id"]) == sorted(grid["unit_id"])  # every unit, once
    assert units["territory_id"].notna().all()
    assert units["territory_id"].nunique() == 4
    assert set(grid.columns) - {"geometry"} <= set(units.columns)  # input fields kept
    assert _pieces_by_dissolving(units) == dict.fromkeys(sorted(units["territory_id"].unique()), 1)
    totals = units.merge(grid[["unit_id"]], on="unit_id").groupby("territory_id")["population"]
    share = grid["population"].sum() / 4
    assert (abs(totals.sum() / share - 1) <= 0.10 + 1e-9).all()

    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    assert (summary["pieces"] == 1).all()
    assert result["SPLIT_TERRITORIES"] == 0
    assert "Every territory is one piece" in feedback.text()

    territories = tp.read_layer(result["OUTPUT_TERRITORIES"])
    assert len(territories) == 4
    grid_area = grid.geometry.union_all().area
    assert territories.geometry.area.sum() == pytest.approx(grid_area, rel=1e-6)  # no overlap
    assert territories.geometry.union_all().area == pytest.approx(grid_area, rel=1e-6)  # no gap
    assert (territories.geometry.geom_type.isin(["Polygon", "MultiPolygon"])).all()
    assert all(shapely_parts(g) == 1 for g in territories.geometry)
    assert result.get("OUTPUT_ACCOUNTS") is None  # no accounts: nothing to write
    assert tp.digest(tmp_path / "units.gpkg") == before


def shapely_parts(geometry) -> int:
    import shapely

    return int(shapely.get_num_geometries(geometry))


def test_accounts_count_in_their_unit(run_alg, tp, tmp_path):
    import geopandas as gpd

    units_source, grid = _grid(tmp_path / "units.gpkg")
    accounts_source, accounts = _accounts(tmp_path / "accounts.gpkg")
    params = {
        "ACCOUNTS": accounts_source, "ID_FIELD": "acc_id", "BALANCE_FIELDS": ["revenue"],
        "UNITS": units_source, "UNIT_ID_FIELD": "unit_id", "TERRITORIES": 3, "TOLERANCE": 15,
        "TIME_LIMIT": 20, **_outputs(tmp_path, "OUTPUT_ACCOUNTS", "OUTPUT_UNITS",
                                     "OUTPUT_TERRITORIES", "OUTPUT_SUMMARY"),
    }  # fmt: skip
    result = run_alg("designterritories", params)

    out_accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    out_units = tp.read_layer(result["OUTPUT_UNITS"])
    assert len(out_accounts) == len(accounts)
    joined = gpd.sjoin(accounts, grid[["unit_id", "geometry"]], predicate="within")
    unit_territory = out_units.set_index("unit_id")["territory_id"]
    account_territory = out_accounts.set_index("acc_id")["territory_id"]
    expected = joined.set_index("acc_id")["unit_id"].map(unit_territory)
    assert (account_territory.loc[expected.index] == expected).all()  # accounts follow units
    assert set(_pieces_by_dissolving(out_units).values()) == {1}
    assert (tp.read_layer(result["OUTPUT_SUMMARY"])["pieces"] == 1).all()
    assert result["SPLIT_TERRITORIES"] == 0
    assert result["ACCOUNTS_OUTSIDE_UNITS"] in (0, None)


def test_accounts_outside_units_are_refused_or_placed(run_alg, tp, tmp_path):
    from qgis.core import QgsProcessingException

    units_source, _ = _grid(tmp_path / "units.gpkg")
    accounts_source, _ = _accounts(tmp_path / "accounts.gpkg", outside_m=300.0)
    params = {
        "ACCOUNTS": accounts_source, "ID_FIELD": "acc_id", "BALANCE_FIELDS": ["revenue"],
        "UNITS": units_source, "UNIT_ID_FIELD": "unit_id", "TERRITORIES": 3, "TOLERANCE": 15,
        "TIME_LIMIT": 20,
        **_outputs(tmp_path, "OUTPUT_ACCOUNTS", "OUTPUT_UNITS", "OUTPUT_TERRITORIES"),
    }  # fmt: skip
    with pytest.raises(QgsProcessingException) as err:
        run_alg("designterritories", params)
    assert "OUT0" in str(err.value)
    assert "OUT1" in str(err.value)
    assert "UNIT_MAX_DISTANCE" in str(err.value)  # names the fix
    assert _no_output_left(tmp_path)

    result = run_alg("designterritories", {**params, "UNIT_MAX_DISTANCE": 500})
    out_accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"]).set_index("acc_id")
    out_units = tp.read_layer(result["OUTPUT_UNITS"]).set_index("unit_id")["territory_id"]
    assert out_accounts.loc["OUT0", "territory_id"] == out_units[f"U0{COLS - 1}"]  # nearest unit
    assert out_accounts.loc["OUT1", "territory_id"] == out_units[f"U2{COLS - 1}"]
    assert result["ACCOUNTS_OUTSIDE_UNITS"] == 2


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("neither", "Give ACCOUNTS"),
        ("points", "UNITS must be a polygon layer"),
        ("no_id_field", "UNIT_ID_FIELD"),
        ("duplicate", "U04"),
        ("no_crs", "no coordinate reference system"),
        ("account_fields_without_accounts", "UNIT_BALANCE_FIELDS"),
        ("required_output_missing", "OUTPUT_TERRITORIES"),
    ],
)
def test_bad_units_are_explained(run_alg, tmp_path, case, message):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsFeature,
        QgsGeometry,
        QgsProcessingException,
        QgsVectorLayer,
    )

    kwargs = {"duplicate": case == "duplicate", "points": case == "points"}
    source, grid = _grid(tmp_path / "units.gpkg", **kwargs)
    params = {"UNITS": source, "UNIT_ID_FIELD": "unit_id", "TERRITORIES": 3,
              **_outputs(tmp_path)}  # fmt: skip
    if case == "neither":
        del params["UNITS"]
    elif case == "no_id_field":
        del params["UNIT_ID_FIELD"]
    elif case == "account_fields_without_accounts":
        params["BALANCE_FIELDS"] = ["population"]
    elif case == "required_output_missing":  # Processing refuses it before any output is written
        del params["OUTPUT_TERRITORIES"]
    elif case == "no_crs":
        layer = QgsVectorLayer("Polygon?field=unit_id:string", "no_crs", "memory")
        layer.setCrs(QgsCoordinateReferenceSystem())  # memory layers default to EPSG:4326
        provider = layer.dataProvider()
        features = []
        for unit_id, geometry in zip(grid["unit_id"], grid.geometry):
            feature = QgsFeature(layer.fields())
            feature.setAttributes([unit_id])
            feature.setGeometry(QgsGeometry.fromWkt(geometry.wkt))
            features.append(feature)
        provider.addFeatures(features)
        assert not layer.crs().isValid()
        params["UNITS"] = layer
    with pytest.raises(QgsProcessingException, match=message) as err:
        run_alg("designterritories", params)
    if case == "duplicate":
        assert "UNIT_ID_FIELD" in str(err.value) or "unique" in str(err.value)
    assert _no_output_left(tmp_path)


def test_geographic_units_are_reprojected(run_alg, tp, tmp_path, feedback):
    import geopandas as gpd

    _, grid = _grid(tmp_path / "metric.gpkg")
    grid.to_crs("EPSG:4326").to_file(tmp_path / "units.gpkg", layer="units", driver="GPKG")
    params = {"UNITS": f"{tmp_path / 'units.gpkg'}|layername=units", "UNIT_ID_FIELD": "unit_id",
              "UNIT_BALANCE_FIELDS": ["population"], "TERRITORIES": 3, "TOLERANCE": 15,
              **_outputs(tmp_path)}  # fmt: skip
    result = run_alg("designterritories", params, feedback)
    assert "Reprojected UNITS" in feedback.text()
    units = tp.read_layer(result["OUTPUT_UNITS"])
    assert not gpd.GeoSeries(units.geometry).crs.is_geographic
    assert set(_pieces_by_dissolving(units).values()) == {1}


def test_rebalance_units_alone_from_today(run_alg, tp, tmp_path):
    source, grid = _grid(tmp_path / "units.gpkg")
    params = {
        "UNITS": source, "UNIT_ID_FIELD": "unit_id", "UNIT_BALANCE_FIELDS": ["population"],
        "UNIT_CURRENT_FIELD": "today", "TOLERANCE": 3, "TIME_LIMIT": 20,
        **_outputs(tmp_path, "OUTPUT_UNITS", "OUTPUT_TERRITORIES", "OUTPUT_SUMMARY",
                   "OUTPUT_MOVES"),
        "OUTPUT_MANIFEST": str(tmp_path / "run.json"),
    }  # fmt: skip
    result = run_alg("rebalanceterritories", params)
    units = tp.read_layer(result["OUTPUT_UNITS"])
    assert set(units["territory_id"]) == {"T01", "T02"}
    totals = units.groupby("territory_id")["population"].sum()
    assert (abs(totals / (grid["population"].sum() / 2) - 1) <= 0.03 + 1e-9).all()
    assert set(_pieces_by_dissolving(units).values()) == {1}
    changed = int(
        (units.set_index("unit_id")["territory_id"] != grid.set_index("unit_id")["today"]).sum()
    )
    assert result["MOVED"] == changed
    moves = tp.read_layer(result["OUTPUT_MOVES"])
    assert "unit_id" in moves.columns  # whole units move
    moved = units.set_index("unit_id")["territory_id"] != grid.set_index("unit_id")["today"]
    assert set(moves["unit_id"]) == set(moved[moved].index)
    manifest = json.loads((tmp_path / "run.json").read_text())  # recorded from the units
    assert manifest["assignment_hash"]
    assert manifest["parameters"]["UNIT_CURRENT_FIELD"] == "today"

    again = run_alg("rebalanceterritories", {**params, "MANIFEST": str(tmp_path / "run.json"),
                                              "OUTPUT_MANIFEST": None})  # fmt: skip
    assert again["MOVED"] == changed  # reproduced (a differing plan raises)


def test_point_accounts_contiguous_within_study_area(run_alg, tp, tmp_path):
    import geopandas as gpd
    import shapely

    accounts_source, _ = _accounts(tmp_path / "accounts.gpkg")
    area = shapely.box(X0 + 50, Y0 + 50, X0 + COLS * SIDE_M - 50, Y0 + ROWS * SIDE_M - 50)
    gpd.GeoDataFrame({"name": ["market"]}, geometry=[area], crs=CRS).to_file(
        tmp_path / "area.gpkg", layer="area", driver="GPKG"
    )
    params = {
        "ACCOUNTS": accounts_source, "ID_FIELD": "acc_id", "BALANCE_FIELDS": ["revenue"],
        "TERRITORIES": 4, "TOLERANCE": 15, "CONTIGUOUS": 1, "TIME_LIMIT": 20,
        "STUDY_AREA": f"{tmp_path / 'area.gpkg'}|layername=area",
        **_outputs(tmp_path, "OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_SUMMARY"),
    }  # fmt: skip
    result = run_alg("designterritories", params)
    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    assert (summary["pieces"] == 1).all()
    assert result["SPLIT_TERRITORIES"] == 0
    territories = tp.read_layer(result["OUTPUT_TERRITORIES"])
    union = territories.geometry.union_all()
    assert union.difference(area.buffer(1.0)).area < 1.0  # clipped to the study area
    assert union.area == pytest.approx(area.area, rel=0.01)  # and covering it (no holes)
    assert all(shapely_parts(g) == 1 for g in territories.geometry)


def _pieces_by_graph(units, *, snap_m: float = 1.0) -> dict:
    """Territory -> connected pieces under rook adjacency with the documented island rule.

    Independent reference: two units are neighbours when their outlines grown by ``snap_m / 2``
    overlap by more than ``snap_m`` m² (a shared edge, not a corner); each group of units with no
    neighbour outside it, except the largest group, is linked to its nearest unit outside it.
    """
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    geoms = np.asarray(units.geometry.values)
    grown = shapely.buffer(geoms, snap_m / 2)
    left, right = shapely.STRtree(grown).query(grown, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.area(shapely.intersection(grown[left], grown[right])) > snap_m
    edges = list(zip(left[shared], right[shared]))
    n = len(geoms)

    def components(pairs, nodes):
        index = {u: i for i, u in enumerate(nodes)}
        pairs = [(index[a], index[b]) for a, b in pairs if a in index and b in index]
        rows = [a for a, _ in pairs] + [b for _, b in pairs]
        cols = [b for _, b in pairs] + [a for a, _ in pairs]
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes)))
        return connected_components(graph, directed=False)

    count, label = components(edges, list(range(n)))
    largest = np.bincount(label).argmax()
    for group in range(count):
        if group == largest:
            continue
        inside = np.flatnonzero(label == group)
        outside = np.flatnonzero(label != group)
        union = shapely.union_all(geoms[inside])
        nearest = outside[np.argmin(shapely.distance(geoms[outside], union))]
        member = inside[np.argmin(shapely.distance(geoms[inside], geoms[nearest]))]
        edges.append((member, nearest))
    pieces = {}
    territory = units["territory_id"].to_numpy()
    for tid in sorted(set(territory)):
        nodes = list(np.flatnonzero(territory == tid))
        pieces[tid] = components(edges, nodes)[0]
    return pieces


@pytest.mark.parametrize("contiguous", [0, 2])  # Automatic (on with UNITS), Off
def test_sample_areas_pieces_match_the_dissolved_units(run_alg, tp, tmp_path, contiguous):
    """On the shipped areas (one block group lies apart) the summary's pieces match a reference."""
    source = tp.sample_file("areas.gpkg")
    params = {
        "UNITS": f"{source}|layername=areas", "UNIT_ID_FIELD": "area_id",
        "UNIT_BALANCE_FIELDS": ["population"], "TERRITORIES": 6, "TOLERANCE": 10,
        "CONTIGUOUS": contiguous, "SEED": 0, "TIME_LIMIT": 20, **_outputs(tmp_path),
    }  # fmt: skip
    result = run_alg("designterritories", params)
    units = tp.read_layer(result["OUTPUT_UNITS"])
    assert len(units) == len(tp.read_layer(source, "areas"))
    assert units["territory_id"].notna().all()
    summary = tp.read_layer(result["OUTPUT_SUMMARY"]).set_index("territory_id")["pieces"]
    reference = _pieces_by_graph(units)
    assert summary.to_dict() == reference
    assert result["SPLIT_TERRITORIES"] == sum(n > 1 for n in reference.values())
    if contiguous == 0:
        assert set(reference.values()) == {1}


def test_rebalance_units_alone_minimises_a_unit_field(run_alg, tp, tmp_path, feedback):
    from qgis.core import QgsProcessingException

    source, grid = _grid(tmp_path / "units.gpkg")
    params = {
        "UNITS": source, "UNIT_ID_FIELD": "unit_id", "UNIT_BALANCE_FIELDS": ["population"],
        "UNIT_CURRENT_FIELD": "today", "TOLERANCE": 0.5, "TIME_LIMIT": 20, "MINIMISE": 1,
        "UNIT_MINIMISE_FIELD": "population",
        **_outputs(tmp_path, "OUTPUT_UNITS", "OUTPUT_TERRITORIES", "OUTPUT_SUMMARY",
                   "OUTPUT_MOVES"),
    }  # fmt: skip
    result = run_alg("rebalanceterritories", params, feedback)
    units = tp.read_layer(result["OUTPUT_UNITS"])
    moved = units.set_index("unit_id")["territory_id"] != grid.set_index("unit_id")["today"]
    value = float(grid.set_index("unit_id")["population"][moved[moved].index].sum())
    assert result["OBJECTIVE"] == pytest.approx(value)  # population moved, not units moved
    assert 0 < result["MOVES_LOWER_BOUND"] <= value + 1e-6  # same units as the value moved
    assert "Value moved (population)" in feedback.text()
    with pytest.raises(QgsProcessingException, match="UNIT_MINIMISE_FIELD is for UNITS without"):
        run_alg("rebalanceterritories", {**params, "ACCOUNTS": source, "ID_FIELD": "unit_id",
                                         "UNIT_BALANCE_FIELDS": [], "BALANCE_FIELDS": ["population"],
                                         "UNIT_CURRENT_FIELD": None, "CURRENT_FIELD": "today"})  # fmt: skip
