"""Styles stored with the outputs: plan colours, GeoPackage default style, .qml, group order."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest


def _open(path: str):
    """The output as a fresh layer in a fresh project (what a user who opens it later gets)."""
    from qgis.core import QgsProject, QgsVectorLayer

    project = QgsProject()
    layer = QgsVectorLayer(path, Path(path.split("|")[0]).stem, "ogr")
    assert layer.isValid(), path
    project.addMapLayer(layer)
    return project, layer


def _stored_colours(layer) -> dict:
    return {str(f["territory_id"]): str(f["colour"]).lower() for f in layer.getFeatures()}


def _category_colours(layer) -> dict:
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol"
    assert renderer.classAttribute() == "territory_id"
    return {str(c.value()): c.symbol().color().name() for c in renderer.categories()}


def test_design_outputs_open_styled_with_their_stored_colours(run_alg, accounts_gpkg, tmp_path):
    (tmp_path / "out").mkdir()  # not beside the input accounts.gpkg, which it would overwrite
    outs = {k: str(tmp_path / "out" / f"{k}.gpkg") for k in ("accounts", "territories", "centres")}
    run_alg("designterritories", {
        "ACCOUNTS": f"{accounts_gpkg}|layername=accounts", "ID_FIELD": "id", "TERRITORIES": 5,
        "BALANCE_FIELDS": ["revenue_potential"], "TOLERANCE": 10, "TIME_LIMIT": 20,
        "OUTPUT_ACCOUNTS": outs["accounts"], "OUTPUT_TERRITORIES": outs["territories"],
        "OUTPUT_CENTRES": outs["centres"],
    })  # fmt: skip
    seen = {}
    for kind, path in outs.items():
        assert Path(path).with_suffix(".qml").is_file(), f"no .qml beside {path}"
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT f_table_name, useAsDefault FROM layer_styles").fetchall()
        assert rows == [(kind, 1)]
        Path(path).with_suffix(".qml").unlink()  # the GeoPackage's own default style suffices
        project, layer = _open(path)
        stored = _stored_colours(layer)
        assert _category_colours(layer) == stored
        seen[kind] = stored
        project.removeAllMapLayers()
    assert seen["accounts"] == seen["territories"] == seen["centres"]
    assert len(set(seen["territories"].values())) == 5


def test_style_uses_the_colour_field_not_the_palette(plugin_on_path, tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point, box
    from territory_planner.processing_algorithms import styles

    path = tmp_path / "plan.gpkg"
    gdf = gpd.GeoDataFrame(
        {"territory_id": ["A", "B", "C"], "colour": ["#123456", "#ABCDEF", None]},
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), Point(5, 5).buffer(1)], crs=3067,
    )  # fmt: skip
    gdf.to_file(path, layer="plan", engine="pyogrio")
    assert styles.save_style_with_data(str(path), "territories") == [
        str(path),
        str(tmp_path / "plan.qml"),
    ]
    project, layer = _open(str(path))
    colours = _category_colours(layer)
    assert colours["A"] == "#123456"
    assert colours["B"] == "#abcdef"
    assert colours["C"] not in ("#123456", "#abcdef")  # no stored colour: a free palette one
    project.removeAllMapLayers()


def test_two_layers_of_one_geopackage_get_their_own_styles(plugin_on_path, tmp_path):
    import geopandas as gpd
    from shapely.geometry import LineString, Point
    from territory_planner.processing_algorithms import styles

    path = tmp_path / "net.gpkg"
    gpd.GeoDataFrame({"u": [1]}, geometry=[LineString([(0, 0), (1, 1)])], crs=3067).to_file(
        path, layer="edges", engine="pyogrio"
    )
    gpd.GeoDataFrame({"n": [1]}, geometry=[Point(0, 0)], crs=3067).to_file(
        path, layer="nodes", engine="pyogrio"
    )
    for layer_name in ("edges", "nodes"):
        styles.save_style_with_data(f"{path}|layername={layer_name}", "roads")
        assert (tmp_path / f"net_{layer_name}.qml").is_file()
    assert not (tmp_path / "net.qml").exists()
    for layer_name, symbol_type in (("edges", "line"), ("nodes", "marker")):
        project, layer = _open(f"{path}|layername={layer_name}")
        symbol = layer.renderer().symbol()
        assert layer.renderer().type() == "singleSymbol"
        assert symbol.type() == {"line": 1, "marker": 0}[symbol_type]
        assert symbol.color().name() == "#969696"  # the quiet grey, not a random default
        project.removeAllMapLayers()


def test_catchment_bands_are_see_through(run_alg, network_gpkg, reps_gpkg, tmp_path):
    from qgis.PyQt.QtCore import Qt

    out = str(tmp_path / "catchments.gpkg")
    run_alg("drivetimecatchments", {
        "INPUT": f"{reps_gpkg}|layername=reps", "ID_FIELD": "rep_id", "NETWORK": str(network_gpkg),
        "BANDS": "5,10,15", "OUTPUT": out,
    })  # fmt: skip
    assert Path(out).with_suffix(".qml").is_file()
    project, layer = _open(out)
    renderer = layer.renderer()
    assert renderer.type() == "graduatedSymbol"
    assert len(renderer.ranges()) == 3
    for r in renderer.ranges():
        layers = [r.symbol().symbolLayer(i) for i in range(r.symbol().symbolLayerCount())]
        fills = [s for s in layers if s.layerType() == "SimpleFill"]
        assert fills, "each band keeps its outline"
        for fill in fills:  # nothing paints a band's inside: 15 bands never add up to a block
            assert fill.brushStyle() == Qt.NoBrush or fill.color().alpha() == 0
            assert fill.strokeColor().alpha() == 255  # the band reads as its outline
        for line in (s for s in layers if s.layerType() == "SimpleLine"):
            assert line.drawInsidePolygon()
            assert line.color().alpha() <= 100
    assert layer.opacity() == 1.0
    project.removeAllMapLayers()


def test_road_network_is_styled_and_grouped(run_alg, tp, tmp_path):
    src = tp.sample_file("*.osm", "*.osm.bz2", "*.osm.pbf", "*.pbf")
    result = run_alg(
        "buildroadnetwork", {"INPUT_OSM": str(src), "OUTPUT": str(tmp_path / "net.gpkg")}
    )
    for key in ("EDGES", "NODES"):
        project, layer = _open(result[key])
        assert layer.renderer().type() == "singleSymbol"
        assert layer.renderer().symbol().color().name() == "#969696"
        project.removeAllMapLayers()


def test_group_order_centres_accounts_territories_units_catchments_roads(plugin_on_path):
    from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
    from territory_planner.processing_algorithms import styles

    project = QgsProject()
    kinds = list(styles.KIND_ORDER)
    shuffled = kinds[:]
    random.Random(3).shuffle(shuffled)
    assert shuffled != kinds
    geometry = {"territories": "Polygon", "units": "Polygon", "catchments": "Polygon",
                "roads": "LineString"}  # fmt: skip
    fields = "field=territory_id:string&field=band_min:double"
    for kind in shuffled:
        layer = QgsVectorLayer(
            f"{geometry.get(kind, 'Point')}?crs=EPSG:3067&{fields}", kind, "memory"
        )
        project.addMapLayer(layer)
        assert styles.style_layer(layer, kind)
        styles.move_to_group(layer, project)
    QgsApplication.processEvents()  # the layer tree removes orphaned layers on the next loop
    assert len(project.mapLayers()) == len(kinds)
    group = project.layerTreeRoot().findGroup(styles.GROUP_NAME)
    assert [child.layer().name() for child in group.children()] == kinds
    styles.move_to_group(project.mapLayersByName("roads")[0], project)  # again: stays in place
    QgsApplication.processEvents()
    assert [child.layer().name() for child in group.children()] == kinds
    project.removeAllMapLayers()


@pytest.mark.parametrize("alg_id", ["territoryreport", "compareplans"])
def test_report_is_one_html_output(territory_provider, alg_id):
    """The results viewer lists every HTML output: the report must be one of them, once."""
    from qgis.core import QgsApplication, QgsProcessingOutputHtml

    alg = QgsApplication.processingRegistry().algorithmById(f"territory_planner:{alg_id}")
    html = [o.name() for o in alg.outputDefinitions() if isinstance(o, QgsProcessingOutputHtml)]
    assert html == ["OUTPUT_HTML"]
    assert "OUTPUT" in [o.name() for o in alg.outputDefinitions()]  # models keep their link


def test_checked_accounts_open_styled(run_alg, accounts_gpkg, tmp_path):
    out = str(tmp_path / "checked.gpkg")
    run_alg("checkaccounts", {
        "INPUT": f"{accounts_gpkg}|layername=accounts", "ID_FIELD": "id", "OUTPUT": out,
    })  # fmt: skip
    assert Path(out).with_suffix(".qml").is_file()
    project, layer = _open(out)
    assert layer.renderer().type() == "categorizedSymbol"
    assert layer.renderer().classAttribute() == "chk_ok"
    project.removeAllMapLayers()


def test_a_plan_of_areas_shows_units_in_colour_and_territories_outlined_over_them(
    run_alg, tmp_path
):
    """Units carry the territory colours (thin light borders, no labels: hundreds of areas would
    bury the map); their territories are drawn over them with a bold outline, a light tint and
    one label each; the group orders territories above units; colours agree."""
    from qgis.core import QgsWkbTypes
    from territory_planner.processing_algorithms import styles

    from tests.qgis.test_units import _grid, _outputs

    source, _ = _grid(tmp_path / "units.gpkg")
    outs = _outputs(tmp_path / "out", "OUTPUT_UNITS", "OUTPUT_TERRITORIES")
    (tmp_path / "out").mkdir()
    run_alg("designterritories", {
        "UNITS": source, "UNIT_ID_FIELD": "unit_id", "UNIT_BALANCE_FIELDS": ["population"],
        "TERRITORIES": 3, "TOLERANCE": 15, "TIME_LIMIT": 20, **outs,
    })  # fmt: skip
    seen = {}
    for key, kind in (("OUTPUT_UNITS", "units"), ("OUTPUT_TERRITORIES", "territories")):
        project, layer = _open(outs[key])
        assert layer.geometryType() == QgsWkbTypes.PolygonGeometry
        assert layer.customProperty(styles.KIND_PROPERTY) == kind
        categories = layer.renderer().categories()  # kept: each owns its symbol
        seen[kind] = {
            "colours": _category_colours(layer),
            "alpha": {c.symbol().color().alpha() for c in categories},
            "width": {c.symbol().symbolLayer(0).strokeWidth() for c in categories},
            "labels": layer.labelsEnabled(),
        }
        project.removeAllMapLayers()
    assert seen["units"]["colours"] == seen["territories"]["colours"]
    assert seen["units"]["alpha"] == {styles.UNIT_ALPHA}
    assert seen["territories"]["alpha"] == {styles.OVER_UNITS_ALPHA}
    assert max(seen["units"]["width"]) < min(seen["territories"]["width"])
    assert not seen["units"]["labels"]
    assert seen["territories"]["labels"]
    assert styles.KIND_ORDER.index("territories") < styles.KIND_ORDER.index("units")
