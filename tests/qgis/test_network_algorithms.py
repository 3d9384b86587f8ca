"""buildroadnetwork, drivetimecatchments and traveltimematrix through processing.run."""

from __future__ import annotations

import pytest


def test_build_road_network_writes_nodes_and_edges(run_alg, tp, tmp_path):
    import pyogrio

    osm = tmp_path / "input.osm"
    src = tp.sample_file("*.osm", "*.osm.bz2", "*.osm.pbf", "*.pbf")
    osm = tmp_path / src.name
    osm.write_bytes(src.read_bytes())
    before = tp.digest(osm)

    result = run_alg(
        "buildroadnetwork",
        {"INPUT_OSM": str(osm), "SPEEDS": "residential=25", "OUTPUT": str(tmp_path / "net")},
    )

    out = result["OUTPUT"]
    assert out.endswith(".gpkg")
    assert result["NETWORK"] == out
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert {"nodes", "edges"} <= layers
    edges = tp.read_layer(result["EDGES"])
    assert len(edges) > 0
    assert len(tp.read_layer(result["NODES"])) > 0
    for column in ("u", "v", "length_m", "speed_kph", "travel_time_s"):
        assert column in edges.columns
    assert (edges["travel_time_s"] > 0).all()
    if "highway" in edges.columns:  # SPEEDS applies to roads without a signed limit
        assert (edges.loc[edges["highway"] == "residential", "speed_kph"] <= 50).all()
    assert tp.digest(osm) == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "INPUT_OSM"),
        ({"INPUT_OSM": "/nonexistent/roads.osm"}, "INPUT_OSM"),
        ({"INPUT_OSM": "__SAMPLE__", "SPEEDS": "motorway=fast"}, "SPEEDS"),
    ],
)
def test_build_road_network_bad_input(run_alg, tp, tmp_path, params, message):
    from qgis.core import QgsProcessingException

    if params.get("INPUT_OSM") == "__SAMPLE__":
        params["INPUT_OSM"] = str(tp.sample_file("*.osm", "*.osm.bz2", "*.osm.pbf", "*.pbf"))
    params["OUTPUT"] = str(tmp_path / "net.gpkg")
    with pytest.raises(QgsProcessingException, match=message):
        run_alg("buildroadnetwork", params)
    assert not (tmp_path / "net.gpkg").exists()  # no partial output


def test_catchments_per_rep_and_band(run_alg, tp, network_gpkg, reps_gpkg, tmp_path, feedback):
    before = tp.digest(reps_gpkg)
    result = run_alg(
        "drivetimecatchments",
        {
            "INPUT": f"{reps_gpkg}|layername=reps",
            "ID_FIELD": "rep_id",
            "NETWORK": str(network_gpkg),
            "BANDS": "10,5",
            "SHAPE": 0,
            "OUTPUT": str(tmp_path / "catchments.gpkg"),
        },
        feedback=feedback,
    )
    polygons = tp.read_layer(result["OUTPUT"])
    reps = tp.read_layer(reps_gpkg, "reps")
    snapped = len(reps) - result["UNSNAPPED"]
    assert len(polygons) == 2 * snapped
    assert set(polygons.columns) >= {
        "origin_id",
        "band_min",
        "area_km2",
        "reachable_nodes",
        "snap_m",
    }
    assert sorted(set(polygons["band_min"])) == [5, 10]
    assert (polygons.geometry.geom_type.isin(["Polygon", "MultiPolygon"])).all()
    # the 10-minute area of a rep covers at least its 5-minute area
    by_band = polygons.pivot_table(index="origin_id", columns="band_min", values="area_km2")
    assert (by_band[10] >= by_band[5] - 1e-6).all()
    assert "Reprojected INPUT" in feedback.text()  # reps are EPSG:4326, the network is UTM
    assert tp.digest(reps_gpkg) == before


@pytest.mark.parametrize(("bands", "message"), [("5,ten", "BANDS"), ("0", "BANDS"), ("", "BANDS")])
def test_catchments_bad_bands(run_alg, network_gpkg, reps_gpkg, tmp_path, bands, message):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=message):
        run_alg(
            "drivetimecatchments",
            {
                "INPUT": f"{reps_gpkg}|layername=reps",
                "ID_FIELD": "rep_id",
                "NETWORK": str(network_gpkg),
                "BANDS": bands,
                "OUTPUT": str(tmp_path / "c.gpkg"),
            },
        )
    assert not (tmp_path / "c.gpkg").exists()


def test_catchments_invalid_source(run_alg, network_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException):
        run_alg(
            "drivetimecatchments",
            {
                "INPUT": str(tmp_path / "missing.gpkg"),
                "ID_FIELD": "rep_id",
                "NETWORK": str(network_gpkg),
                "OUTPUT": str(tmp_path / "c.gpkg"),
            },
        )


def test_catchments_in_memory_and_projected_input(run_alg, network_gpkg, reps_gpkg, feedback):
    """A layer in another projected CRS (EPSG:3067) works and goes to a temporary output."""
    import processing

    reprojected = processing.run(
        "native:reprojectlayer",
        {
            "INPUT": f"{reps_gpkg}|layername=reps",
            "TARGET_CRS": "EPSG:3067",
            "OUTPUT": "TEMPORARY_OUTPUT",
        },
    )["OUTPUT"]
    result = run_alg(
        "drivetimecatchments",
        {
            "INPUT": reprojected,
            "ID_FIELD": "rep_id",
            "NETWORK": str(network_gpkg),
            "BANDS": "5",
            "SHAPE": 2,
            "PARTITION": False,
            "OUTPUT": "TEMPORARY_OUTPUT",
        },
        feedback=feedback,
    )
    layer = result["OUTPUT"]
    assert layer.featureCount() == reprojected.featureCount() - result["UNSNAPPED"]
    assert "EPSG:3067" in feedback.text()


def test_matrix_reps_by_accounts(run_alg, tp, network_gpkg, reps_gpkg, accounts_gpkg, tmp_path):
    before = tp.digest(accounts_gpkg)
    result = run_alg(
        "traveltimematrix",
        {
            "ORIGINS": f"{reps_gpkg}|layername=reps",
            "ORIGIN_ID_FIELD": "rep_id",
            "DESTINATIONS": f"{accounts_gpkg}|layername=accounts",
            "DESTINATION_ID_FIELD": "id",
            "NETWORK": str(network_gpkg),
            "OUTPUT": str(tmp_path / "matrix.gpkg"),
        },
    )
    table = tp.read_layer(result["OUTPUT"])
    reps = tp.read_layer(reps_gpkg, "reps")
    accounts = tp.read_layer(accounts_gpkg, "accounts")
    assert "geometry" not in table.columns
    assert list(table.columns[:4]) == ["origin_id", "destination_id", "minutes", "km"]
    assert len(table) == len(reps) * len(accounts)
    assert result["UNREACHABLE"] == int(table["minutes"].isna().sum())
    reachable = table.dropna(subset=["minutes"])
    assert len(reachable) > 0
    assert (reachable["minutes"] >= 0).all()
    assert (reachable["km"] >= 0).all()
    assert tp.digest(accounts_gpkg) == before


def test_matrix_cutoff_leaves_far_pairs_null(run_alg, tp, network_gpkg, reps_gpkg, accounts_gpkg):
    result = run_alg(
        "traveltimematrix",
        {
            "ORIGINS": f"{reps_gpkg}|layername=reps",
            "ORIGIN_ID_FIELD": "rep_id",
            "DESTINATIONS": f"{accounts_gpkg}|layername=accounts",
            "DESTINATION_ID_FIELD": "id",
            "NETWORK": str(network_gpkg),
            "MAX_MINUTES": 3,
            "OUTPUT": "TEMPORARY_OUTPUT",
        },
    )
    layer = result["OUTPUT"]
    minutes = [f["minutes"] for f in layer.getFeatures()]
    values = [m for m in minutes if m is not None and m == m and not _is_null(m)]
    assert all(m <= 3 + 1e-9 for m in values)
    assert result["UNREACHABLE"] == len(minutes) - len(values)


def _is_null(value) -> bool:
    from qgis.PyQt.QtCore import QVariant

    return isinstance(value, QVariant) and value.isNull()
