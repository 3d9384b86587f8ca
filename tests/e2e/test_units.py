"""qgis_process end to end: territories from the sample areas (UNITS), every territory one piece."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
AREAS_LAYER = "areas"
AREA_ID = "area_id"
SNAP_M = 1.0  # SNAP_DISTANCE default: gaps up to this size still join two areas


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mainland_pieces(units) -> dict:
    """Territory -> parts of its dissolved areas on the main land mass.

    The sample areas have one block group apart from the rest (linked to its nearest block, as
    islands are), so only the parts touching the largest connected part of all areas count.
    """
    import shapely

    grown = shapely.buffer(np.asarray(units.geometry.values), SNAP_M / 2)
    coverage = shapely.union_all(grown)
    parts = shapely.get_parts(coverage)
    mainland = parts[np.argmax(shapely.area(parts))]
    pieces = {}
    for tid in sorted(set(units["territory_id"])):
        mine = shapely.get_parts(
            shapely.union_all(grown[(units["territory_id"] == tid).to_numpy()])
        )
        pieces[tid] = int(shapely.intersects(mine, mainland).sum())
    return pieces


def test_design_from_sample_areas_is_one_piece_each(qp, e2e_data, tmp_path):
    import pyogrio

    areas = tmp_path / "areas.gpkg"
    shutil.copy(ROOT / "sample_data" / "areas.gpkg", areas)
    before = (_digest(areas), _digest(e2e_data["accounts"]))
    params = {
        "UNITS": f"{areas}|layername={AREAS_LAYER}", "UNIT_ID_FIELD": AREA_ID,
        "ACCOUNTS": f"{e2e_data['accounts']}|layername=accounts", "ID_FIELD": "id",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"], "TERRITORIES": 5,
        "TOLERANCE": 10, "UNIT_MAX_DISTANCE": 3000, "SEED": 0, "TIME_LIMIT": 30,
        "OUTPUT_UNITS": tmp_path / "units.gpkg", "OUTPUT_TERRITORIES": tmp_path / "terr.gpkg",
        "OUTPUT_SUMMARY": tmp_path / "summary.gpkg", "OUTPUT_ACCOUNTS": tmp_path / "acc.gpkg",
    }  # fmt: skip
    answer = qp.run_json("designterritories", params)
    results = answer["results"]

    assert results["SPLIT_TERRITORIES"] == 0
    source = pyogrio.read_dataframe(areas, layer=AREAS_LAYER)
    units = pyogrio.read_dataframe(tmp_path / "units.gpkg")
    assert sorted(units[AREA_ID].astype(str)) == sorted(source[AREA_ID].astype(str))
    assert units["territory_id"].notna().all()  # every area in a territory: no holes
    assert units["territory_id"].nunique() == 5
    assert set(_mainland_pieces(units).values()) <= {0, 1}
    summary = pyogrio.read_dataframe(tmp_path / "summary.gpkg")
    assert (summary["pieces"] == 1).all()
    territories = pyogrio.read_dataframe(tmp_path / "terr.gpkg")
    assert len(territories) == 5
    total = units.geometry.union_all().area
    assert territories.geometry.area.sum() == pytest.approx(
        total, rel=1e-6
    )  # no overlaps between them
    accounts = pyogrio.read_dataframe(tmp_path / "acc.gpkg")
    assert accounts["territory_id"].notna().all()
    assert (_digest(areas), _digest(e2e_data["accounts"])) == before  # inputs untouched

    # the areas output is a good input: the report maps the areas and counts their pieces, and
    # compareplans compares two plans of areas (this one with itself)
    html_path = tmp_path / "report.html"
    qp.run_json("territoryreport", {"ACCOUNTS": tmp_path / "units.gpkg",
                                    "TERRITORY_FIELD": "territory_id", "TOLERANCE": 10,
                                    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
                                    "OUTPUT_HTML": html_path,
                                    "OUTPUT_CSV": tmp_path / "report.csv"})  # fmt: skip
    # the areas carry what was balanced: the report of the areas alone says the plan's totals
    table = pd.read_csv(tmp_path / "report.csv").set_index("territory_id")
    mine = summary.set_index("territory_id")
    assert (table["areas"] == mine["units"]).all()
    for field in ("revenue_potential", "workload_visits"):
        assert np.allclose(table[f"{field}_total"], mine[f"{field}_total"])
        assert np.allclose(table[f"{field}_dev_pct"], mine[f"{field}_dev_pct"], atol=0.01)
    assert units["accounts"].sum() == len(accounts)  # (those joined from outside included)
    page = html_path.read_text(encoding="utf-8")
    assert f"{len(units)} areas" in page
    assert "every territory in one piece" in page
    assert "not applied, this is a plan of areas" in page
    assert "<img id='map'" in page
    kpis = tmp_path / "kpis.gpkg"
    qp.run_json("compareplans", {"PLANS": [tmp_path / "units.gpkg", tmp_path / "units.gpkg"],
                                 "TERRITORY_FIELD": "territory_id", "ID_FIELD": AREA_ID,
                                 "OUTPUT_KPIS": kpis})  # fmt: skip
    compared = pyogrio.read_dataframe(kpis)
    assert (compared["split_territories"] == 0).all()
    assert (compared["areas"] == len(units)).all()  # a plan of areas counts areas


def test_points_as_units_fail_without_output(qp, e2e_data, tmp_path):
    params = {
        "UNITS": f"{e2e_data['reps']}|layername=reps", "UNIT_ID_FIELD": "rep_id",
        "TERRITORIES": 2, "OUTPUT_TERRITORIES": tmp_path / "terr.gpkg",
    }  # fmt: skip
    args = ["run", "territory_planner:designterritories", "--"]
    args += [f"{key}={value}" for key, value in params.items()]
    done = qp.qgis_process(*args)
    assert done.returncode != 0
    assert "UNITS must be a polygon layer" in done.stdout + done.stderr
    assert not (tmp_path / "terr.gpkg").exists()
