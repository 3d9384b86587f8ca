import os
import zipfile
from pathlib import Path

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


def _accounts():
    return gpd.GeoDataFrame(
        {
            "kunde_nr": ["K1", "K2", "K3"],
            "territory_id": ["T01", "T02", "T02"],
            "rep_id": ["Aino", "Eero", "Eero"],
            "previous_territory_id": [None, "T01", None],
            "moved": [False, True, False],
            "centre_min": [1.5, 2.25, 3.0],
            "visits": [3, 4, 5],
            "fid": [10, 11, 12],
            "colour": ["#E69F00", "#56B4E9", "#56B4E9"],
            "name": ["Café Åbo", "Nord", "Süd"],
        },
        geometry=[Point(24.9, 60.1), Point(24.95, 60.2), Point(25.0, 60.2)],
        crs=4326,
    )


def test_crm_csv_with_id_field_bom_previous_territory_and_changed_flag(tmp_path):
    (path,) = export.export_plan(_accounts(), str(tmp_path / "crm.csv"), fmt="CSV",
                                 id_field="kunde_nr", fields=["name"], encoding="utf-8-sig")  # fmt: skip
    raw = Path(path).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the byte-order mark
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert list(back.columns) == [
        "kunde_nr", "territory_id", "rep_id", "previous_territory_id", "changed", "name",
    ]  # fmt: skip
    assert back["kunde_nr"].tolist() == ["K1", "K2", "K3"]
    assert back["changed"].tolist() == [False, True, False]
    assert back["previous_territory_id"].fillna("").tolist() == ["", "T01", ""]
    assert back["name"].tolist()[0] == "Café Åbo"
    (plain,) = export.export_plan(_accounts(), str(tmp_path / "plain.csv"), fmt="CSV",
                                  id_field="kunde_nr")  # fmt: skip
    assert not Path(plain).read_bytes().startswith(b"\xef\xbb\xbf")


def test_crm_csv_without_the_id_field_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match=r"ID_FIELD 'id'.*kunde_nr"):
        export.export_plan(_accounts(), str(tmp_path / "crm.csv"), fmt="CSV")
    assert os.listdir(tmp_path) == []


def test_kml_is_typed_names_reps_uses_the_plan_colour_and_drops_internal_ids(tmp_path):
    (path,) = export.export_plan(_accounts(), str(tmp_path / "a.kml"), fmt="KML")
    text = Path(path).read_text(encoding="utf-8")
    assert '<SimpleField type="double" name="centre_min"/>' in text
    assert '<SimpleField type="int" name="visits"/>' in text
    assert '<SimpleField type="bool" name="moved"/>' in text
    assert 'name="fid"' not in text
    assert 'name="colour"' not in text
    assert "<name>T02 (Eero)</name>" in text
    # the stored colour #56B4E9 as KML aabbggrr
    assert '<Style id="t_T02"><LineStyle><color>ffe9b456</color>' in text
    back = pyogrio.read_dataframe(path)
    assert back["centre_min"].dtype.kind == "f"
    assert back["visits"].tolist() == [3, 4, 5]
    assert "fid" not in back.columns


def test_shapefile_names_cut_by_bytes_and_dictionary_matches_the_file(tmp_path):
    gdf = gpd.GeoDataFrame(
        {
            "territory_id": ["T1"],
            "åäöåäöåäöå": [1.0],  # 20 bytes: cut to 5 characters, never inside one
            "åäöåäöåäöx": [2.0],  # collides with the one above after cutting
            "umsatz_€_total": [3.0],  # the euro sign is 3 bytes
            "centre_km": [1.2],
            "revenue_dev_pct": [4.5],
        },
        geometry=[box(0, 0, 1, 1)],
        crs=4326,
    )
    (path,) = export.export_plan(gdf, str(tmp_path / "plan"), fmt="ESRI Shapefile")
    fields = list(pyogrio.read_info(path, encoding="UTF-8")["fields"])
    assert all(len(f.encode("utf-8")) <= 10 for f in fields)
    assert len({f.lower() for f in fields}) == len(fields) == 6
    back = gpd.read_file(path, engine="pyogrio", encoding="utf-8")
    assert back.drop(columns="geometry").iloc[0].tolist() == ["T1", 1.0, 2.0, 3.0, 1.2, 4.5]
    dd = pd.read_csv(tmp_path / "plan_fields.csv")
    assert dd["short_name"].tolist() == fields
    assert dd["full_name"].tolist() == list(gdf.columns.drop("geometry"))
    units = dict(zip(dd["full_name"], dd["unit"].fillna("")))
    assert units["centre_km"] == "km"
    assert units["revenue_dev_pct"] == "%"
    assert dd["description"].notna().all()
    qml = (tmp_path / "plan.qml").read_text(encoding="utf-8")
    assert all(f'field="{f}"' in qml for f in fields)


def test_shorten_names_counts_bytes():
    m = export.shorten_field_names(["ääääää", "ääääääx", "€€€€"])
    assert all(len(v.encode("utf-8")) <= 10 for v in m.values())
    assert m["ääääää"] == "äääää"
    assert m["€€€€"] == "€€€"
    assert len({v.lower() for v in m.values()}) == 3


def test_dictionary_of_a_plan_of_areas_speaks_of_areas(tmp_path):
    """The units output of a plan of areas (polygons with a reason): distances and reasons are
    the area's; the territories' unit and piece counts are named, not 'input field'."""
    units = gpd.GeoDataFrame(
        {"area_id": ["B1"], "territory_id": ["T1"], "centre_km": [0.4], "reason": ["nearest"],
         "explanation": ["In T1, its nearest territory."]},
        geometry=[box(0, 0, 1, 1)], crs=3067,
    )  # fmt: skip
    export.export_plan(units, str(tmp_path / "units"), fmt="ESRI Shapefile")
    text = dict(pd.read_csv(tmp_path / "units_fields.csv")[["full_name", "description"]].values)
    assert text["centre_km"] == "straight-line distance from the area to its territory's centre"
    assert text["explanation"] == "why the area is in its territory, in plain words"
    territories = gpd.GeoDataFrame({"territory_id": ["T1"], "units": [3], "pieces": [1]},
                                   geometry=[box(0, 0, 1, 1)], crs=3067)  # fmt: skip
    export.export_plan(territories, str(tmp_path / "terr"), fmt="ESRI Shapefile")
    text = dict(pd.read_csv(tmp_path / "terr_fields.csv")[["full_name", "description"]].values)
    assert text["units"] == "number of areas (UNITS) in the territory"
    assert text["pieces"].startswith("connected pieces")
    assert export.describe_field("centre_km")[1].endswith(
        "from the account to its territory's centre"
    )
    # a plan of areas with accounts: an area's distances are its accounts', summed
    units["accounts"] = [4]
    export.export_plan(units, str(tmp_path / "counted"), fmt="ESRI Shapefile")
    text = dict(pd.read_csv(tmp_path / "counted_fields.csv")[["full_name", "description"]].values)
    assert text["centre_km"] == (
        "straight-line distance from the area to its territory's centre, summed over the area's "
        "accounts"
    )
    assert text["accounts"] == "number of accounts counted in the area"
