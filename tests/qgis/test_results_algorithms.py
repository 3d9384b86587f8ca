"""exportterritories through processing.run, and the styling post-processor."""

import geopandas as gpd
import pytest
from shapely.geometry import Point, box


@pytest.fixture
def run_alg(qgis_processing, plugin_on_path):
    """Run our algorithms by instance: they need none of the other engine modules."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProject
    from territory_planner.processing_algorithms.export_territories import (
        ExportTerritoriesAlgorithm,
    )

    algs = {"exportterritories": ExportTerritoriesAlgorithm}

    def _run(alg_id, params, feedback=None):
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        alg = algs[alg_id]()
        alg.initAlgorithm()
        return processing.run(alg, params, context=context, feedback=feedback)

    return _run


@pytest.fixture
def territories_gpkg(tmp_path):
    gdf = gpd.GeoDataFrame(
        {"territory_id": ["T1", "T2", "Ü3"], "revenue_potential_total": [1.0, 2.0, 3.0]},
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1), box(2, 0, 3, 1)],
        crs=4326,
    )
    path = tmp_path / "territories.gpkg"
    gdf.to_file(path, layer="territories", engine="pyogrio")
    return path


@pytest.mark.parametrize("fmt_index", [0, 1, 2, 4])
def test_export_formats(run_alg, territories_gpkg, tmp_path, fmt_index):
    out = tmp_path / "out" / "plan"
    out.parent.mkdir()
    res = run_alg(
        "exportterritories",
        {
            "INPUT": str(territories_gpkg),
            "TERRITORY_FIELD": "territory_id",
            "FORMAT": fmt_index,
            "OUTPUT": str(out) + ".x",
        },
    )
    (path,) = res["OUTPUT_FILES"]
    # QGIS sets SHAPE_ENCODING="" in-process: name the encoding when reading back
    extra = {"encoding": "utf-8"} if path.endswith(".shp") else {}
    back = gpd.read_file(path, engine="pyogrio", **extra)
    texts = {str(v) for col in back.columns if col != "geometry" for v in back[col]}
    assert len(back) == 3
    assert "Ü3" in texts
    if path.endswith(".kml"):
        assert "fid" not in back.columns


@pytest.fixture
def crm_accounts_gpkg(tmp_path):
    """An accounts output whose id field is not called ``id``."""
    gdf = gpd.GeoDataFrame(
        {
            "kunde_nr": ["K1", "K2"],
            "territory_id": ["T01", "T02"],
            "rep_name": ["Aino", "Eero"],
            "previous_territory_id": [None, "T01"],
            "moved": [False, True],
            "name": ["Café", "Nord"],
        },
        geometry=[Point(24.9, 60.1), Point(24.95, 60.2)],
        crs=4326,
    )
    path = tmp_path / "crm_accounts.gpkg"
    gdf.to_file(path, layer="accounts", engine="pyogrio")
    return path


def test_export_crm_csv_for_excel_with_id_and_rep_fields(run_alg, crm_accounts_gpkg, tmp_path):
    import pandas as pd

    res = run_alg(
        "exportterritories",
        {
            "INPUT": str(crm_accounts_gpkg),
            "TERRITORY_FIELD": "territory_id",
            "FORMAT": 5,
            "ID_FIELD": "kunde_nr",
            "REP_FIELD": "rep_name",
            "ENCODING": 1,
            "FIELDS": ["name"],
            "OUTPUT": str(tmp_path / "crm.csv"),
        },
    )
    (path,) = res["OUTPUT_FILES"]
    with open(path, "rb") as handle:
        assert handle.read(3) == b"\xef\xbb\xbf"
    crm = pd.read_csv(path, encoding="utf-8-sig")
    assert list(crm.columns) == [
        "kunde_nr", "territory_id", "rep_name", "previous_territory_id", "changed", "name",
    ]  # fmt: skip
    assert crm["kunde_nr"].tolist() == ["K1", "K2"]
    assert crm["changed"].tolist() == [False, True]


def test_export_crm_csv_without_id_field_is_refused(run_alg, territories_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="ID_FIELD"):
        run_alg(
            "exportterritories",
            {
                "INPUT": str(territories_gpkg),
                "TERRITORY_FIELD": "territory_id",
                "FORMAT": 5,
                "OUTPUT": str(tmp_path / "crm.csv"),
            },
        )
    assert not (tmp_path / "crm.csv").exists()


def test_export_empty_plan_fails(run_alg, tmp_path, territories_gpkg):
    from qgis.core import QgsProcessingException

    empty = gpd.read_file(territories_gpkg).iloc[:0]
    path = tmp_path / "empty.gpkg"
    empty.to_file(path, layer="t", engine="pyogrio")
    with pytest.raises(QgsProcessingException, match="empty"):
        run_alg(
            "exportterritories",
            {
                "INPUT": str(path),
                "TERRITORY_FIELD": "territory_id",
                "FORMAT": 1,
                "OUTPUT": str(tmp_path / "o.gpkg"),
            },
        )
    assert not (tmp_path / "o.gpkg").exists()


def test_style_layer_colours_neighbours_apart(
    qgis_processing, plugin_on_path, territories_gpkg, tmp_path
):
    from qgis.core import QgsProcessingContext, QgsProject, QgsVectorLayer
    from territory_planner.processing_algorithms import styles

    layer = QgsVectorLayer(str(territories_gpkg), "t", "ogr")
    assert styles.style_layer(layer, "territories")
    cats = layer.renderer().categories()
    assert [c.value() for c in cats] == ["T1", "T2", "Ü3"]
    cols = [c.symbol().color().name() for c in cats]
    assert cols[0] != cols[1]
    assert cols[1] != cols[2]
    assert layer.labelsEnabled()

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    context.addLayerToLoadOnCompletion(
        str(territories_gpkg), QgsProcessingContext.LayerDetails("t", QgsProject.instance(), "t")
    )
    styles.attach_style(context, str(territories_gpkg), "territories")
    post = context.layerToLoadOnCompletionDetails(str(territories_gpkg)).postProcessor()
    assert post is not None
    QgsProject.instance().addMapLayer(layer)
    post.postProcessLayer(layer, context, None)
    group = QgsProject.instance().layerTreeRoot().findGroup(styles.GROUP_NAME)
    assert group.findLayer(layer.id()) is not None
    QgsProject.instance().removeMapLayer(layer.id())
    del layer


RENDER = """
import sys
from PyQt5.QtCore import QSize
from PyQt5.QtGui import QImage, QPainter
from PyQt5.QtWidgets import QApplication
from PyQt5.QtWebKitWidgets import QWebPage
app = QApplication([])
page = QWebPage()
frame = page.mainFrame()
def done(ok):
    page.setViewportSize(QSize(900, frame.contentsSize().height()))
    img = QImage(page.viewportSize(), QImage.Format_ARGB32)
    img.fill(0xFFFFFFFF)
    p = QPainter(img); frame.render(p); p.end()
    img.save(sys.argv[2]); app.quit()
frame.loadFinished.connect(done)
frame.setHtml(open(sys.argv[1], encoding="utf-8").read())
app.exec_()
"""


def test_report_renders_headless(tmp_path, plugin_on_path):
    """Render the report with QtWebKit (headless) and check what a person would see."""
    import os
    import subprocess
    import sys

    import pandas as pd

    pytest.importorskip("PyQt5.QtWebKitWidgets")
    from qgis.PyQt.QtGui import QImage
    from territory_planner.territory_planner_plugin import report

    df = pd.DataFrame(
        {
            "territory_id": list("AABBCC"),
            "current_territory": list("ABBBCA"),
            "revenue_potential": [10, 11, 9, 12, 10, 9.0],
            "workload_visits": [1, 2, 2, 1, 1, 2],
        }
    )
    html_text, _ = report.build_report(
        df,
        balance_fields=["revenue_potential", "workload_visits"],
        current_field="current_territory",
    )
    (tmp_path / "r.html").write_text(html_text, encoding="utf-8")
    (tmp_path / "render.py").write_text(RENDER)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(
        [
            sys.executable,
            str(tmp_path / "render.py"),
            str(tmp_path / "r.html"),
            str(tmp_path / "r.png"),
        ],
        check=True,
        env=env,
        timeout=60,
    )
    img = QImage(str(tmp_path / "r.png"))
    assert img.width() == 900
    assert img.height() > 1000  # tables + two charts + disruption
    colours = {img.pixel(x, y) for x in range(0, 900, 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 20  # charts drawn, not a blank page


def test_territoryreport_algorithm(qgis_processing, plugin_on_path, territories_gpkg, tmp_path):
    import processing
    from territory_planner.processing_algorithms.territory_report import TerritoryReportAlgorithm

    acc = tmp_path / "acc.gpkg"
    gpd.GeoDataFrame(
        {"territory_id": ["T1", "T2", "Ü3"], "current": ["T1", "T1", "Ü3"], "rev": [1.0, 2.0, 3.0]},
        geometry=gpd.points_from_xy([0.5, 1.5, 2.5], [0.5, 0.5, 0.5]),
        crs=4326,
    ).to_file(acc, layer="accounts", engine="pyogrio")
    res = processing.run(
        TerritoryReportAlgorithm(),
        {
            "ACCOUNTS": str(acc),
            "BALANCE_FIELDS": ["rev"],
            "CURRENT_FIELD": "current",
            "TERRITORIES": str(territories_gpkg),
            "OUTPUT_HTML": str(tmp_path / "r.html"),
            "OUTPUT_CSV": str(tmp_path / "r.csv"),
        },
    )
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert res["OUTPUT"] == str(tmp_path / "r.html")
    assert text.count("data:image/png;base64,") == 2  # map + one chart
    assert "1 of 3 accounts moved = 33.3%" in text
    assert (tmp_path / "r.csv").read_text(encoding="utf-8").startswith("territory_id,accounts")


def _design(tmp_path, params: dict) -> dict:
    """designterritories on the sample data (10% tolerance, seed 1), outputs in tmp_path."""
    import processing

    outputs = ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY")
    return processing.run(
        "territory_planner:designterritories",
        {"ID_FIELD": "id", "TOLERANCE": 10, "SEED": 1, "TIME_LIMIT": 20, "SOLVER": 0, **params,
         **{key: str(tmp_path / f"{key.lower()}.gpkg") for key in outputs}},
    )  # fmt: skip


def test_territoryreport_second_plan_and_efficiency(territory_provider, accounts_gpkg, tmp_path):
    """A designterritories plan against today's plan (the sample accounts), with visit times."""
    import pandas as pd
    import processing

    sample = f"{accounts_gpkg}|layername=accounts"
    balance = ["revenue_potential", "workload_visits"]
    design = _design(tmp_path, {"ACCOUNTS": sample, "TERRITORIES": 5, "BALANCE_FIELDS": balance})
    res = processing.run(
        "territory_planner:territoryreport",
        {
            "ACCOUNTS": design["OUTPUT_ACCOUNTS"],
            "TERRITORY_FIELD": "territory_id",
            "BALANCE_FIELDS": balance,
            "CURRENT_FIELD": "current_territory",
            "TERRITORIES": design["OUTPUT_TERRITORIES"],
            "COMPARE_ACCOUNTS": sample,
            "COMPARE_TERRITORY_FIELD": "current_territory",
            "VISIT_MINUTES": 45,
            "VISITS_FIELD": "workload_visits",
            "OUTPUT_HTML": str(tmp_path / "r.html"),
            "OUTPUT_CSV": str(tmp_path / "r.csv"),
        },
    )
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert res["OUTPUT"] == str(tmp_path / "r.html")
    assert "Comparison with the second plan" in text
    assert "<th class='num'>this plan</th><th class='num'>second plan</th>" in text
    assert "accounts in both plans are in a different territory" in text
    assert "<td>Travel efficiency</td>" in text
    assert "not known" not in text.split("id='kpi-efficiency'")[1].split("</tr>")[0]
    assert "assumed 50 km/h" in text  # no road network: centre_km, said in the report
    assert "counted from active_prospect" in text
    assert "<h2>Parameters</h2>" in text
    summary = pd.read_csv(tmp_path / "r.csv")
    assert len(summary) == 5
    assert "travel_efficiency" in summary.columns
    assert summary.travel_efficiency.between(0, 1).all()
    assert summary.active_prospects.sum() > 0


def test_territoryreport_capacity_weighted_summary(
    territory_provider, accounts_gpkg, reps_gpkg, tmp_path
):
    """designterritories with rep capacities, then the report with SUMMARY = its summary table."""
    import re

    import pandas as pd
    import processing
    from qgis.core import QgsProcessingException

    balance = ["revenue_potential", "workload_visits"]
    design = _design(
        tmp_path,
        {
            "ACCOUNTS": f"{accounts_gpkg}|layername=accounts",
            "REPS": f"{reps_gpkg}|layername=reps",
            "REP_ID_FIELD": "rep_id",
            "REP_CAPACITY_FIELD": "capacity",
            "BALANCE_FIELDS": balance,
        },
    )
    plan = pd.DataFrame(
        gpd.read_file(design["OUTPUT_SUMMARY"], engine="pyogrio").drop(
            columns="geometry", errors="ignore"
        )
    )
    assert plan.capacity.nunique() > 1  # the sample reps have different capacities
    params = {
        "ACCOUNTS": design["OUTPUT_ACCOUNTS"],
        "TERRITORY_FIELD": "territory_id",
        "BALANCE_FIELDS": balance,
        "SUMMARY": design["OUTPUT_SUMMARY"],
        "TOLERANCE": 10,
        "OUTPUT_HTML": str(tmp_path / "r.html"),
        "OUTPUT_CSV": str(tmp_path / "r.csv"),
    }
    processing.run("territory_planner:territoryreport", params)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "targets weighted by rep capacity from SUMMARY" in text
    assert "per unit of capacity" in text
    assert "no capacities found" not in text
    summary = pd.read_csv(tmp_path / "r.csv")
    merged = summary.merge(
        plan.assign(territory_id=plan.territory_id.astype(str)),
        on="territory_id",
        suffixes=("", "_plan"),
    )
    assert len(merged) == len(plan) == len(summary)
    assert merged.capacity.tolist() == merged.capacity_plan.tolist()
    for f in balance:
        assert merged[f"{f}_dev_pct"].to_numpy() == pytest.approx(
            merged[f"{f}_dev_pct_plan"].to_numpy(), abs=0.011
        )
    # the report's CVs are Design territories' (totals per unit of capacity)
    for f in balance:
        shown = re.search(f"id='kpi-cv-{f}'><td>[^<]*</td><td>([0-9.]+)</td>", text)
        assert float(shown.group(1)) == pytest.approx(plan[f"cv_{f}"].iloc[0], abs=0.0011)

    params["SUMMARY"] = design["OUTPUT_ACCOUNTS"]  # no capacity field
    with pytest.raises(QgsProcessingException, match=r"SUMMARY.*territory_id and capacity"):
        processing.run("territory_planner:territoryreport", params)
