import os
import zipfile

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Point, box

from territory_planner_plugin import export
from territory_planner_plugin.errors import InvalidInputError


@pytest.fixture
def territories():
    return gpd.GeoDataFrame(
        {
            "territory_id": ["T1", "T2", "Zürich"],
            "revenue_potential_total": [1.5, 2.5, 3.0],
            "revenue_potential_mean": [1.0, 2.0, 3.0],
            "name": ["Nord", "Süd", "Ost"],
        },
        geometry=[box(8, 47, 8.1, 47.1), box(8.1, 47, 8.2, 47.1), box(8.2, 47, 8.3, 47.1)],
        crs=4326,
    )


@pytest.mark.parametrize("fmt", ["GPKG", "GeoJSON", "ESRI Shapefile"])
def test_round_trip(territories, tmp_path, fmt):
    (path,) = export.export_plan(territories, str(tmp_path / "plan"), fmt=fmt)
    # QGIS (if loaded in the same pytest run) sets SHAPE_ENCODING="": name the encoding
    extra = {"encoding": "utf-8"} if fmt == "ESRI Shapefile" else {}
    back = gpd.read_file(path, engine="pyogrio", **extra)
    assert list(back.iloc[:, 0]) == ["T1", "T2", "Zürich"]
    assert back.geometry.normalize().geom_equals_exact(territories.geometry.normalize(), 1e-9).all()
    assert back.iloc[:, 1].tolist() == [1.5, 2.5, 3.0]
    assert back.crs.to_epsg() == 4326
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tp_export_")]
    if fmt == "ESRI Shapefile":
        cols = set(back.columns)
        assert {"revenue_po", "revenue__1"} <= cols
        dd = pd.read_csv(tmp_path / "plan_fields.csv")
        assert "revenue_potential_mean" in set(dd.full_name)
        assert (tmp_path / "plan.cpg").read_text().strip().upper() in {"UTF-8", "UTF8"}
        assert (tmp_path / "plan.prj").exists()


def test_kml_kmz_and_split(territories, tmp_path):
    (kml,) = export.export_plan(territories, str(tmp_path / "p.kml"), fmt="KML")
    with open(kml, encoding="utf-8") as fh:
        text = fh.read()
    assert text.count("<Placemark>") == 3
    assert "<Style id=" in text
    assert "Zürich" in text
    assert len(pyogrio.read_dataframe(kml)) == 3
    (kmz,) = export.export_plan(territories, str(tmp_path / "p"), fmt="KMZ")
    assert zipfile.ZipFile(kmz).namelist() == ["doc.kml"]
    files = export.export_plan(territories, str(tmp_path / "split"), fmt="GPKG", split=True)
    assert len(files) == 3
    assert all(os.path.exists(f) for f in files)


def test_crm_csv(tmp_path):
    acc = gpd.GeoDataFrame(
        {"id": [1, 2], "territory_id": ["A", "B"], "rep_id": ["r1", "r2"], "revenue": [5, 6]},
        geometry=[Point(0, 0), Point(1, 1)],
        crs=4326,
    )
    (path,) = export.export_plan(acc, str(tmp_path / "crm.csv"), fmt="CSV", fields=["revenue"])
    back = pd.read_csv(path)
    assert list(back.columns) == ["id", "territory_id", "rep_id", "revenue"]
    assert back.revenue.tolist() == [5, 6]


def test_bad_inputs(territories, tmp_path):
    with pytest.raises(InvalidInputError, match="empty"):
        export.export_plan(territories.iloc[:0], str(tmp_path / "x.gpkg"))
    with pytest.raises(InvalidInputError, match="TERRITORY_FIELD"):
        export.export_plan(territories, str(tmp_path / "x.gpkg"), territory_field="nope")
    with pytest.raises(InvalidInputError, match="not writable"):
        export.export_plan(territories, str(tmp_path / "missing" / "x.gpkg"))
    long = territories.copy()
    long["note"] = "x" * 300
    with pytest.raises(InvalidInputError, match="254"):
        export.export_plan(long, str(tmp_path / "long"), fmt="ESRI Shapefile")
    assert os.listdir(tmp_path) == []
    # overwrite an existing file
    export.export_plan(territories, str(tmp_path / "x.gpkg"))
    (p,) = export.export_plan(territories.iloc[:1], str(tmp_path / "x.gpkg"))
    assert len(gpd.read_file(p)) == 1


def test_shorten_names_unique():
    m = export.shorten_field_names(["abcdefghijKL", "abcdefghijMN", "ABCDEFGHIJ"])
    assert len({v.lower() for v in m.values()}) == 3
    assert all(len(v) <= 10 for v in m.values())
