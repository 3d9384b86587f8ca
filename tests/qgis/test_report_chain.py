"""design -> report -> compare through processing.run on the sample data: one plan, one verdict.

designterritories with rep capacities, then territoryreport given only the plan's outputs (no
SUMMARY) and compareplans given the plan's territories as CAPACITIES: the largest deviation, the
CVs and the within-tolerance verdict are designterritories' own.
"""

import re

import geopandas as gpd
import pandas as pd
import pytest

FIELDS = ["revenue_potential", "workload_visits"]


def test_design_report_compare_agree(territory_provider, accounts_gpkg, reps_gpkg, tmp_path):
    import processing

    accounts = f"{accounts_gpkg}|layername=accounts"
    outputs = ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY")
    design = processing.run(
        "territory_planner:designterritories",
        {"ACCOUNTS": accounts, "ID_FIELD": "id", "REPS": f"{reps_gpkg}|layername=reps",
         "REP_ID_FIELD": "rep_id", "REP_CAPACITY_FIELD": "capacity", "BALANCE_FIELDS": FIELDS,
         "TOLERANCE": 5, "CURRENT_FIELD": "current_territory", "MAX_MOVES": 15, "SEED": 0,
         "TIME_LIMIT": 20, "SOLVER": 0,
         **{key: str(tmp_path / f"{key.lower()}.gpkg") for key in outputs}},
    )  # fmt: skip
    summary = pd.DataFrame(gpd.read_file(design["OUTPUT_SUMMARY"])).drop(
        columns="geometry", errors="ignore"
    )
    assert summary.capacity.nunique() > 1
    largest = design["MAX_DEVIATION_PCT"]

    html_path = tmp_path / "report.html"
    processing.run(
        "territory_planner:territoryreport",
        {"ACCOUNTS": design["OUTPUT_ACCOUNTS"], "TERRITORY_FIELD": "territory_id",
         "BALANCE_FIELDS": FIELDS,
         "CURRENT_FIELD": "current_territory", "TERRITORIES": design["OUTPUT_TERRITORIES"],
         "CENTRES": f"{reps_gpkg}|layername=reps", "MAX_MOVES": 15, "TOLERANCE": 5,
         "OUTPUT_HTML": str(html_path), "OUTPUT_CSV": str(tmp_path / "r.csv")},
    )  # fmt: skip
    text = html_path.read_text(encoding="utf-8")
    assert "targets weighted by rep capacity from TERRITORIES" in text
    shown = [
        float(x)
        for f in FIELDS
        for x in re.findall(rf"id='kpi-tolerance-{f}'>.*?largest deviation ([0-9.]+)%", text)
    ]
    assert max(shown) == pytest.approx(largest, abs=0.06)
    for f in FIELDS:
        assert re.search(rf"id='kpi-tolerance-{f}'>.*?<td class='ok'>met</td>", text)
        cv = re.search(rf"id='kpi-cv-{f}'><td>[^<]*</td><td>([0-9.]+)</td>", text)
        assert float(cv.group(1)) == pytest.approx(summary[f"cv_{f}"].iloc[0], abs=0.0006)
    moved = int(design["MOVED"])
    assert f"{moved} of 502 accounts moved" in text
    assert "budget 15% = at most 75 accounts: within budget" in text
    assert "reps: Aino (T01)" in text
    csv = pd.read_csv(tmp_path / "r.csv")
    assert csv.capacity.tolist() == summary.capacity.tolist()

    kpis_path = tmp_path / "kpis.gpkg"
    processing.run(
        "territory_planner:compareplans",
        {"PLANS": [design["OUTPUT_ACCOUNTS"], design["OUTPUT_ACCOUNTS"]],
         "PLAN_NAMES": "design,same plan",
         "TERRITORY_FIELD": "territory_id", "BALANCE_FIELDS": ",".join(FIELDS),
         "CAPACITIES": [design["OUTPUT_TERRITORIES"]], "TOLERANCE": 5,
         "OUTPUT_KPIS": str(kpis_path), "OUTPUT_HTML": str(tmp_path / "compare.html")},
    )  # fmt: skip
    k = gpd.read_file(kpis_path).set_index("plan")
    assert k.loc["design", "max_deviation_pct"] == pytest.approx(largest, abs=0.011)
    for f in FIELDS:
        assert k.loc["design", f"cv_{f}"] == pytest.approx(summary[f"cv_{f}"].iloc[0], abs=1e-4)
    assert bool(k.loc["design", "within_tolerance"])
    assert k.loc["design", "headcount_fte"] == pytest.approx(summary.capacity.sum())
    assert k.loc["same plan", "moved_vs_baseline"] == 0
