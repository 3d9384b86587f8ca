"""qgis_process end to end: sizeterritories, grouped design with regions, report back-test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_sizeterritories_on_the_sample_accounts(qp, e2e_data, tmp_path):
    import pyogrio

    before = _digest(e2e_data["accounts"])
    out = qp.run_json("sizeterritories", {
        "ACCOUNTS": f"{e2e_data['accounts']}|layername=accounts", "ID_FIELD": "id",
        "BALANCE_FIELDS": "workload_visits", "TARGET_FIELD": "active_prospect",
        "TARGET_MIN": 80, "TARGET_MAX": 120, "K_MIN": 2, "K_MAX": 10, "TOLERANCE": 10,
        "CURRENT_FIELD": "current_territory", "OUTPUT_TABLE": tmp_path / "sizing.gpkg",
        "OUTPUT_HTML": tmp_path / "sizing.html",
    })  # fmt: skip
    results = out["results"]
    table = pyogrio.read_dataframe(str(results["OUTPUT_TABLE"]))
    assert list(table["k"]) == list(range(2, 11))
    met = table.loc[table["meets_target"].astype(bool), "k"]
    assert results["RECOMMENDED_K"] == met.min()
    accounts = pyogrio.read_dataframe(str(e2e_data["accounts"]))
    active = accounts["active_prospect"].sum()
    assert 80 <= active / results["RECOMMENDED_K"] <= 120
    assert {"max_deviation_pct", "travel_km", "compactness_km", "moved_pct", "method"} <= set(
        table.columns
    )
    assert (tmp_path / "sizing.html").stat().st_size > 10_000  # the chart is embedded
    assert _digest(e2e_data["accounts"]) == before


def test_unreachable_target_exits_nonzero_with_the_nearest(qp, e2e_data, tmp_path):
    done = qp.qgis_process(
        "run", "territory_planner:sizeterritories", "--",
        f"ACCOUNTS={e2e_data['accounts']}|layername=accounts", "ID_FIELD=id",
        "BALANCE_FIELDS=workload_visits", "TARGET_PER_TERRITORY=1200", "K_MIN=1", "K_MAX=3",
        f"OUTPUT_TABLE={tmp_path / 'bad.gpkg'}",
    )  # fmt: skip
    assert done.returncode != 0
    assert "can meet it" in done.stdout + done.stderr
    assert not (tmp_path / "bad.gpkg").exists()


@pytest.mark.parametrize("regions", [3])
def test_grouped_design_with_regions_then_backtest_report(qp, e2e_data, tmp_path, regions):
    import pyogrio

    plan = qp.run_json("designterritories", {
        "ACCOUNTS": f"{e2e_data['accounts']}|layername=accounts", "ID_FIELD": "id",
        "TERRITORIES": 8, "GROUP_FIELD": "segment", "REGIONS": regions,
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"], "TOLERANCE": 10,
        "CURRENT_FIELD": "current_territory", "TIME_LIMIT": 20,
        "OUTPUT_ACCOUNTS": tmp_path / "acc.gpkg", "OUTPUT_TERRITORIES": tmp_path / "terr.gpkg",
        "OUTPUT_SUMMARY": tmp_path / "summary.gpkg",
    })["results"]  # fmt: skip
    summary = pyogrio.read_dataframe(str(plan["OUTPUT_SUMMARY"]))
    assert summary["region_id"].nunique() == regions
    assert summary["group"].nunique() == 4
    assert plan["REGION_MAX_DEVIATION_PCT"] is not None
    report = qp.run_json("territoryreport", {
        "ACCOUNTS": plan["OUTPUT_ACCOUNTS"], "TERRITORY_FIELD": "territory_id",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
        "CURRENT_FIELD": "current_territory", "BACKTEST_FIELD": "revenue_last_year",
        "OUTPUT_HTML": tmp_path / "report.html",
    })["results"]  # fmt: skip
    text = Path(report["OUTPUT_HTML"]).read_text(encoding="utf-8")
    assert "id='backtest'" in text
