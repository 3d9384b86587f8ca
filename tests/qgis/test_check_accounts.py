"""checkaccounts through processing.run on (copies of) the sample accounts and the sample network."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import Point


def _params(accounts_gpkg, tmp_path, **extra):
    params = {
        "INPUT": f"{accounts_gpkg}|layername=accounts",
        "ID_FIELD": "id",
        "NAME_FIELD": "name",
        "NUMERIC_FIELDS": ["revenue_potential", "workload_visits"],
        "OUTPUT": str(tmp_path / "checked.gpkg"),
        "OUTPUT_SUMMARY": str(tmp_path / "summary.gpkg"),
        **extra,
    }
    return {k: v for k, v in params.items() if v is not None}


def test_sample_accounts_with_network(run_alg, tp, accounts_gpkg, network_gpkg, tmp_path, feedback):
    before = tp.digest(accounts_gpkg)
    result = run_alg(
        "checkaccounts", _params(accounts_gpkg, tmp_path, NETWORK=str(network_gpkg)), feedback
    )

    out = tp.read_layer(result["OUTPUT"])
    source = tp.read_layer(accounts_gpkg, "accounts")
    assert len(out) == len(source) == 502
    assert set(source.columns) <= set(out.columns)  # every input field kept
    assert out.crs == source.crs  # the input CRS, not the internal UTM
    assert out["id"].tolist() == source["id"].tolist()
    for col in ("chk_dup_id", "chk_dup_account", "chk_geometry", "chk_revenue_potential",
                "chk_workload_visits", "chk_far_from_road", "chk_snap_m", "chk_ok",
                "chk_reasons"):  # fmt: skip
        assert col in out.columns, col
    far = set(out.loc[out["chk_far_from_road"].astype(bool), "id"])
    assert {"A0501", "A0502"} <= far
    assert (out.set_index("id").loc[["A0501", "A0502"], "chk_snap_m"] > 2000).all()
    flagged = int((~out["chk_ok"].astype(bool)).sum())
    assert result["FLAGGED"] == flagged
    assert result["QUALITY_SCORE"] == pytest.approx(100 * (502 - flagged) / 502, abs=0.01)
    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    assert "geometry" not in summary.columns
    assert summary["check"].iloc[-1].startswith("quality score")
    assert summary["share_pct"].iloc[-1] == pytest.approx(result["QUALITY_SCORE"])
    assert "85%" in feedback.text()
    assert tp.digest(accounts_gpkg) == before


def test_study_area_and_missing_geometry_kept(run_alg, tp, tmp_path):
    accounts = gpd.GeoDataFrame(
        {"id": ["a", "b", "c", "c"], "name": ["X", "Y", "Z", "W"], "value": [1.0, 2.0, -3.0, 4.0]},
        geometry=[Point(24.94, 60.17), None, Point(25.5, 60.17), Point(24.941, 60.171)],
        crs="EPSG:4326",
    )
    path = tmp_path / "acc.gpkg"
    accounts.to_file(path, layer="accounts", engine="pyogrio")
    area = gpd.GeoDataFrame(geometry=[Point(24.94, 60.17).buffer(0.05)], crs="EPSG:4326").to_crs(
        "EPSG:3067"
    )
    area_path = tmp_path / "area.gpkg"
    area.to_file(area_path, layer="area", engine="pyogrio")

    result = run_alg(
        "checkaccounts",
        _params(
            path,
            tmp_path,
            NUMERIC_FIELDS=["value"],
            STUDY_AREA=f"{area_path}|layername=area",
            OUTPUT_SUMMARY=None,
        ),
    )
    out = tp.read_layer(result["OUTPUT"]).set_index("id", drop=False)
    assert len(out) == 4  # the record without a location is kept
    assert out.iloc[1]["chk_geometry"] == "missing"
    assert out.iloc[1].geometry is None or out.iloc[1].geometry.is_empty
    assert out.iloc[2]["chk_outside_area"]
    assert not out.iloc[0]["chk_outside_area"]
    assert out.iloc[2]["chk_value"] == "negative"
    assert out.iloc[3]["chk_dup_id"]
    assert out.iloc[0]["chk_ok"]
    assert result["FLAGGED"] == 3
    assert result["QUALITY_SCORE"] == pytest.approx(25.0)


def test_engine_error_names_parameter_and_writes_nothing(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    empty = gpd.GeoDataFrame({"id": [], "name": []}, geometry=[], crs="EPSG:4326")
    path = tmp_path / "empty.gpkg"
    empty.to_file(path, layer="accounts", engine="pyogrio")
    with pytest.raises(QgsProcessingException, match="INPUT: the layer is empty"):
        run_alg("checkaccounts", _params(path, tmp_path, NUMERIC_FIELDS=None))
    assert not (tmp_path / "checked.gpkg").exists()
    assert not (tmp_path / "summary.gpkg").exists()


def test_bad_network_file_is_explained(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    bad = tmp_path / "net.gpkg"
    bad.write_bytes(b"not a geopackage")
    with pytest.raises(QgsProcessingException, match="NETWORK"):
        run_alg("checkaccounts", _params(accounts_gpkg, tmp_path, NETWORK=str(bad)))
    assert not (tmp_path / "checked.gpkg").exists()


def test_cancel_returns_cleanly(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    result = run_alg("checkaccounts", _params(accounts_gpkg, tmp_path), feedback)
    assert not result.get("OUTPUT")
    assert not (tmp_path / "checked.gpkg").exists()


def test_output_style_colours_by_chk_ok(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsCategorizedSymbolRenderer, QgsVectorLayer
    from territory_planner.processing_algorithms.check_accounts import CheckStylePostProcessor

    result = run_alg("checkaccounts", _params(accounts_gpkg, tmp_path, OUTPUT_SUMMARY=None))
    layer = QgsVectorLayer(result["OUTPUT"], "checked", "ogr")
    assert layer.isValid()
    CheckStylePostProcessor().postProcessLayer(layer, None, None)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "chk_ok"
    assert len(renderer.categories()) == 2
