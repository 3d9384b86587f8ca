"""compareplans through processing.run on two designterritories runs (K=4 and K=5)."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest

DESIGN = {
    "ID_FIELD": "id",
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
    "TOLERANCE": 10,
    "SEED": 1,
    "TIME_LIMIT": 20,
    "SOLVER": 0,
}
FIELDS = ["revenue_potential", "workload_visits"]


@pytest.fixture(scope="module")
def plans(territory_provider, tmp_path_factory):
    """A private copy of the sample accounts designed into 4 and 5 territories (paths)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProject
    from territory_planner.processing_algorithms.base import PLUGIN_DIR

    folder = tmp_path_factory.mktemp("compare")
    accounts = folder / "accounts.gpkg"
    shutil.copy(f"{PLUGIN_DIR}/sample_data/accounts.gpkg", accounts)
    out = {"accounts": accounts}
    for k in (4, 5):
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        params = {
            "ACCOUNTS": f"{accounts}|layername=accounts",
            **DESIGN,
            "TERRITORIES": k,
            "OUTPUT_ACCOUNTS": str(folder / f"k{k}_accounts.gpkg"),
            "OUTPUT_TERRITORIES": "TEMPORARY_OUTPUT",
        }
        result = processing.run("territory_planner:designterritories", params, context=context)
        out[f"k{k}"] = str(result["OUTPUT_ACCOUNTS"])
    return out


def test_compare_two_designs(run_alg, tp, plans, feedback, tmp_path):
    before = {name: tp.digest(str(path).split("|")[0]) for name, path in plans.items()}
    result = run_alg(
        "compareplans",
        {
            "PLANS": [plans["k4"], plans["k5"]],
            "ID_FIELD": "id",
            "TERRITORY_FIELD": "territory_id",
            "BALANCE_FIELDS": ",".join(FIELDS),
            "PLAN_NAMES": "K4, K5",
            "OUTPUT_KPIS": str(tmp_path / "kpis.gpkg"),
            "OUTPUT_DIFFERENCES": str(tmp_path / "differences.gpkg"),
            "OUTPUT_HTML": str(tmp_path / "compare.html"),
        },
        feedback,
    )
    assert result["PLANS_COMPARED"] == 2
    kpis = tp.read_layer(result["OUTPUT_KPIS"])
    assert "geometry" not in kpis.columns
    assert kpis["plan"].tolist() == ["K4", "K5"]
    assert kpis["territories"].tolist() == [4, 5]
    assert kpis["accounts"].tolist() == [502, 502]
    for column in ("cv_revenue_potential", "cv_workload_visits", "max_deviation_pct",
                   "compactness_km", "travel_total", "moved_vs_baseline", "moved_share_pct",
                   "moved_revenue_potential"):  # fmt: skip
        assert column in kpis.columns, column
    assert kpis["max_deviation_pct"].max() <= 10 + 1e-6  # designed within TOLERANCE
    assert (kpis["compactness_km"] > 0).all()
    assert kpis["moved_vs_baseline"].tolist()[0] == 0
    assert kpis["moved_vs_baseline"].tolist()[1] > 0

    diff = tp.read_layer(result["OUTPUT_DIFFERENCES"])
    assert len(diff) == 502
    assert {"id", "K4", "K5", "in_all_plans", "changed"} <= set(diff.columns)
    assert diff["in_all_plans"].astype(bool).all()
    assert int(diff["changed"].astype(bool).sum()) == kpis["moved_vs_baseline"].tolist()[1]

    text = Path(result["OUTPUT_HTML"]).read_text(encoding="utf-8")
    assert result["OUTPUT"] == result["OUTPUT_HTML"]
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert len(imgs) == 2
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert "&lt; 0.10" in text
    assert "T05 only in 'K5'" in feedback.text()  # a different K is explained, not an error
    assert {name: tp.digest(str(path).split("|")[0]) for name, path in plans.items()} == before


def test_same_layer_twice_gives_no_moves(run_alg, tp, plans, feedback, tmp_path):
    layer = f"{plans['accounts']}|layername=accounts"
    result = run_alg(
        "compareplans",
        {
            "PLANS": [layer, layer],
            "TERRITORY_FIELD": "current_territory",
            "OUTPUT_KPIS": "TEMPORARY_OUTPUT",
            "OUTPUT_DIFFERENCES": "TEMPORARY_OUTPUT",
        },
        feedback,
    )
    kpis = result["OUTPUT_KPIS"]
    rows = [f.attributes() for f in kpis.getFeatures()]
    names = kpis.fields().names()
    plan_names = [r[names.index("plan")] for r in rows]
    assert plan_names == ["accounts", "accounts 2"]  # layer names, made unique
    assert [r[names.index("moved_vs_baseline")] for r in rows] == [0, 0]
    assert "cv_accounts" in names  # no BALANCE_FIELDS: account counts
    assert result["OUTPUT_DIFFERENCES"].featureCount() == 502
    assert "OUTPUT_HTML" not in result or not result["OUTPUT_HTML"]


def test_balance_fields_as_list(run_alg, plans):
    result = run_alg(
        "compareplans",
        {
            "PLANS": [plans["k4"], plans["k5"]],
            "BALANCE_FIELDS": FIELDS,
            "OUTPUT_KPIS": "TEMPORARY_OUTPUT",
        },
    )
    assert "cv_workload_visits" in result["OUTPUT_KPIS"].fields().names()


@pytest.fixture
def duplicate_ids_gpkg(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    gdf = gpd.GeoDataFrame(
        {"id": ["A1", "A2", "A2"], "territory_id": ["T1", "T1", "T2"]},
        geometry=[Point(24.9, 60.17), Point(24.91, 60.17), Point(24.92, 60.18)],
        crs=4326,
    )
    path = tmp_path / "dup.gpkg"
    gdf.to_file(path, layer="dup", engine="pyogrio")
    return f"{path}|layername=dup"


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        ("one", {}, "at least two plans"),
        ("dup", {}, r"duplicate account ids \['A2'\]"),
        ("two", {"TERRITORY_FIELD": "nope"}, "TERRITORY_FIELD: 'nope' is not a field"),
        ("two", {"PLAN_NAMES": "a,b,c"}, "PLAN_NAMES"),
    ],
)
def test_bad_input_is_explained(run_alg, plans, duplicate_ids_gpkg, tmp_path, which, extra,
                                message):  # fmt: skip
    from qgis.core import QgsProcessingException

    layers = {
        "one": [plans["k4"]],
        "dup": [plans["k4"], duplicate_ids_gpkg],
        "two": [plans["k4"], plans["k5"]],
    }[which]
    params = {"PLANS": layers, "OUTPUT_KPIS": str(tmp_path / "kpis.gpkg"), **extra}
    with pytest.raises(QgsProcessingException, match=message):
        run_alg("compareplans", params)
    assert not (tmp_path / "kpis.gpkg").exists()
