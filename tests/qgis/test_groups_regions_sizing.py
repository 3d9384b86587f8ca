"""GROUP_FIELD, REGIONS (design and rebalance), sizeterritories and BACKTEST_FIELD in QGIS."""

from __future__ import annotations

import geopandas as gpd
import pytest

BASE = {
    "ID_FIELD": "id",
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
    "TOLERANCE": 10,
    "SEED": 0,
    "TIME_LIMIT": 20,
    "SOLVER": 0,
}


def _outputs(tmp_path, prefix=""):
    keys = ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY")
    return {key: str(tmp_path / f"{prefix}{key.lower()}.gpkg") for key in keys}


def _reps_with_region(reps_gpkg, tmp_path, regions):
    reps = gpd.read_file(reps_gpkg, layer="reps")
    reps["area"] = regions[: len(reps)]
    path = tmp_path / "reps_area.gpkg"
    reps.to_file(path, layer="reps", driver="GPKG")
    return f"{path}|layername=reps"


def _accounts_with_area(accounts_gpkg, tmp_path):
    acc = gpd.read_file(accounts_gpkg, layer="accounts")
    west = acc.geometry.x < acc.geometry.x.median()
    acc["area"] = ["West" if w else "East" for w in west]
    path = tmp_path / "accounts_area.gpkg"
    acc.to_file(path, layer="accounts", driver="GPKG")
    return f"{path}|layername=accounts", acc


def test_groups_and_regions_in_design(run_alg, tp, accounts_gpkg, tmp_path, feedback):
    before = tp.digest(accounts_gpkg)
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, "TERRITORIES": 8,
              "GROUP_FIELD": "segment", "REGIONS": 2, **_outputs(tmp_path)}  # fmt: skip
    result = run_alg("designterritories", params, feedback)
    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    territories = tp.read_layer(result["OUTPUT_TERRITORIES"])
    assert len(summary) == 8
    assert summary["territory_id"].is_unique
    assert set(summary["group"]) == {"finance", "healthcare", "manufacturing", "retail"}
    # every account in a territory of its own segment
    assert (accounts["territory_id"].str.split("-").str[0] == accounts["segment"]).all()
    for frame in (accounts, summary, territories):
        assert set(frame["region_id"]) == {"R1", "R2"}
    assert result["REGION_MAX_DEVIATION_PCT"] is not None
    assert "Group 'retail'" in feedback.text()
    assert "Region region_id R1" in feedback.text()
    assert tp.digest(accounts_gpkg) == before


def test_group_without_reps_is_refused_with_no_outputs(run_alg, accounts_gpkg, reps_gpkg,
                                                       tmp_path):  # fmt: skip
    from qgis.core import QgsProcessingException

    accounts, _ = _accounts_with_area(accounts_gpkg, tmp_path)
    reps = _reps_with_region(reps_gpkg, tmp_path, ["West"] * 6)
    params = {"ACCOUNTS": accounts, **BASE, "REPS": reps, "REP_ID_FIELD": "rep_id",
              "GROUP_FIELD": "area", **_outputs(tmp_path)}  # fmt: skip
    with pytest.raises(QgsProcessingException, match=r"'East'.*no rep.*area"):
        run_alg("designterritories", params)
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_grouped_rebalance_with_rep_group_field(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path):
    accounts, acc = _accounts_with_area(accounts_gpkg, tmp_path)
    reps = gpd.read_file(reps_gpkg, layer="reps")
    # today's territory of each area's accounts: the reps of that area
    acc["now"] = [("T01" if i % 2 else "T02") if a == "West" else ("T03" if i % 2 else "T04")
                  for i, a in enumerate(acc["area"])]  # fmt: skip
    acc.to_file(tmp_path / "accounts_area.gpkg", layer="accounts", driver="GPKG")
    reps["zone"] = ["West", "West", "East", "East", "Nowhere", "Nowhere"][: len(reps)]
    reps[reps["rep_id"].isin(["T01", "T02", "T03", "T04", "T05", "T06"])].to_file(
        tmp_path / "reps_zone.gpkg", layer="reps", driver="GPKG"
    )
    params = {"ACCOUNTS": accounts, **BASE, "CURRENT_FIELD": "now",
              "REPS": f"{tmp_path / 'reps_zone.gpkg'}|layername=reps", "REP_ID_FIELD": "rep_id",
              "GROUP_FIELD": "area", "REP_GROUP_FIELD": "zone", "MINIMISE": 0,
              "OUTPUT_MOVES": str(tmp_path / "moves.gpkg"), **_outputs(tmp_path)}  # fmt: skip
    result = run_alg("rebalanceterritories", params)
    out = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    zone = dict(zip(reps["rep_id"], reps["zone"]))
    assert (out["territory_id"].map(zone) == out["area"]).all()
    assert result["MOVES_LOWER_BOUND"] is not None
    assert result["REGION_MAX_DEVIATION_PCT"] is None


def test_sizeterritories_recommends_k(run_alg, tp, accounts_gpkg, tmp_path, feedback):
    before = tp.digest(accounts_gpkg)
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", "ID_FIELD": "id",
              "BALANCE_FIELDS": ["workload_visits"], "TARGET_FIELD": "active_prospect",
              "TARGET_MIN": 80, "TARGET_MAX": 120, "K_MIN": 2, "K_MAX": 8, "TOLERANCE": 10,
              "CURRENT_FIELD": "current_territory", "TIME_LIMIT": 20,
              "OUTPUT_TABLE": str(tmp_path / "sizing.gpkg"),
              "OUTPUT_HTML": str(tmp_path / "sizing.html")}  # fmt: skip
    result = run_alg("sizeterritories", params, feedback)
    acc = tp.read_layer(accounts_gpkg, "accounts")
    active = acc["active_prospect"].sum()  # 451: K = 4 averages 113, K = 3 150
    table = tp.read_layer(result["OUTPUT_TABLE"])
    assert list(table["k"]) == list(range(2, 9))
    assert result["RECOMMENDED_K"] == int(table.loc[table["meets_target"].astype(bool), "k"].min())
    assert 80 <= active / result["RECOMMENDED_K"] <= 120
    assert not 80 <= active / (result["RECOMMENDED_K"] - 1) <= 120
    assert "moved_pct" in table.columns
    assert "RECOMMENDED_K" in feedback.text()
    assert "<img" in (tmp_path / "sizing.html").read_text(encoding="utf-8")
    assert tp.digest(accounts_gpkg) == before


def test_sizeterritories_refuses_an_unreachable_target(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", "ID_FIELD": "id",
              "BALANCE_FIELDS": ["workload_visits"], "TARGET_PER_TERRITORY": 1200, "K_MIN": 1,
              "K_MAX": 3, "OUTPUT_TABLE": str(tmp_path / "sizing.gpkg")}  # fmt: skip
    with pytest.raises(QgsProcessingException, match="can meet it: set K_MIN and K_MAX"):
        run_alg("sizeterritories", params)
    assert not (tmp_path / "sizing.gpkg").exists()


def test_report_backtest(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path, feedback):
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE,
              "REPS": f"{reps_gpkg}|layername=reps", "REP_ID_FIELD": "rep_id",
              "CURRENT_FIELD": "current_territory", **_outputs(tmp_path)}  # fmt: skip
    plan = run_alg("designterritories", params)
    # a missing value in the back-test field: counted, as 0, no traceback
    acc = gpd.read_file(plan["OUTPUT_ACCOUNTS"])
    acc.loc[acc.index[:3], "revenue_last_year"] = None
    acc.to_file(tmp_path / "plan.gpkg", layer="accounts", driver="GPKG")
    out = run_alg("territoryreport", {
        "ACCOUNTS": f"{tmp_path / 'plan.gpkg'}|layername=accounts", "TERRITORY_FIELD": "territory_id",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
        "BACKTEST_FIELD": "revenue_last_year", "CENTRES": f"{reps_gpkg}|layername=reps",
        "OUTPUT_HTML": str(tmp_path / "report.html"), "OUTPUT_CSV": str(tmp_path / "s.csv"),
    }, feedback)  # fmt: skip
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "id='backtest'" in text
    assert "3 account(s) had no revenue_last_year value" in text
    assert "3 account(s) without a value count as 0" in feedback.text()
    import pandas as pd

    csv = pd.read_csv(out["OUTPUT_CSV"])
    total = pd.to_numeric(acc["revenue_last_year"], errors="coerce").fillna(0).sum()
    assert csv["revenue_last_year_new"].sum() == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"TERRITORIES": 3, "REGIONS": 4},
            "REGIONS: 4 must be from 1 to the number of territories",
        ),
        ({"TERRITORIES": 3, "GROUP_FIELD": "segment"}, "fewer than the 4 groups"),
        ({"TERRITORIES": 3, "REP_GROUP_FIELD": "skills"}, "REP_GROUP_FIELD is a field of REPS"),
    ],
)
def test_bad_group_and_region_parameters(run_alg, accounts_gpkg, tmp_path, extra, message):
    from qgis.core import QgsProcessingException

    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, **extra,
              **_outputs(tmp_path)}  # fmt: skip
    with pytest.raises(QgsProcessingException, match=message):
        run_alg("designterritories", params)
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_regions_from_units_are_each_one_piece(run_alg, tp, accounts_gpkg, tmp_path):
    import shutil

    import numpy as np
    from territory_planner.territory_planner_plugin import adjacency

    areas = tmp_path / "areas.gpkg"
    shutil.copy(tp.sample_file("areas.gpkg"), areas)
    params = {"UNITS": f"{areas}|layername=areas", "UNIT_ID_FIELD": "area_id",
              "ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, "TERRITORIES": 4,
              "REGIONS": 2, "UNIT_MAX_DISTANCE": 3000, "OUTPUT_UNITS": str(tmp_path / "u.gpkg"),
              **_outputs(tmp_path)}  # fmt: skip
    result = run_alg("designterritories", params)
    units = tp.read_layer(result["OUTPUT_UNITS"]).to_crs(3067)
    assert set(units["region_id"]) == {"R1", "R2"}
    adj = adjacency.polygon_adjacency(units.geometry, rule="rook", snap_m=1.0).matrix.tocsr()
    for region in ("R1", "R2"):  # the region's units form one connected piece
        members = np.flatnonzero((units["region_id"] == region).to_numpy())
        seen, todo = {members[0]}, [members[0]]
        while todo:
            i = todo.pop()
            for j in adj[i].indices:
                if j in set(members) and j not in seen:
                    seen.add(j)
                    todo.append(j)
        assert len(seen) == len(members), region


def test_units_grouped_by_unit_group_field(run_alg, tp, tmp_path):
    """UNIT_GROUP_FIELD: each group of areas planned apart; no territory crosses a group line,
    and GROUP_FIELD (an accounts field) with UNITS is refused with the parameter to use."""
    from qgis.core import QgsProcessingException

    areas = gpd.read_file(tp.sample_file("areas.gpkg"), layer="areas")
    west = areas.geometry.centroid.x < areas.geometry.centroid.x.median()
    areas["district"] = ["West" if w else "East" for w in west]
    path = tmp_path / "areas_grouped.gpkg"
    areas.to_file(path, layer="areas", driver="GPKG")
    params = {"UNITS": f"{path}|layername=areas", "UNIT_ID_FIELD": "area_id",
              "UNIT_BALANCE_FIELDS": ["population"], "UNIT_GROUP_FIELD": "district",
              "TERRITORIES": 4, "TOLERANCE": 15, "SEED": 0, "TIME_LIMIT": 20, "SOLVER": 0,
              "OUTPUT_UNITS": str(tmp_path / "u.gpkg"), **_outputs(tmp_path)}  # fmt: skip
    result = run_alg("designterritories", params)
    units = tp.read_layer(result["OUTPUT_UNITS"])
    group = units["territory_id"].str.split("-").str[0]
    assert (group == units["district"]).all()
    assert result["SPLIT_TERRITORIES"] == 0
    assert units["territory_id"].nunique() == 4
    with pytest.raises(QgsProcessingException, match="choose UNIT_GROUP_FIELD"):
        run_alg("designterritories", {**params, "UNIT_GROUP_FIELD": None, "GROUP_FIELD": "x",
                                      "ACCOUNTS": None})  # fmt: skip


def test_regions_share_time_limit_with_the_plan(run_alg, accounts_gpkg, tmp_path, feedback,
                                                monkeypatch):  # fmt: skip
    """TIME_LIMIT bounds plan and regions together: the plan gets 90 %, the regions what is
    left of the whole (at least 10 %); each used to get the whole TIME_LIMIT."""
    from territory_planner.territory_planner_plugin import regions, territories

    given: dict = {}
    design, add = territories.design_territories, regions.add_regions

    def design_spy(*args, **kwargs):
        given["plan"] = kwargs["time_limit_s"]
        return design(*args, **kwargs)

    def regions_spy(*args, **kwargs):
        given["regions"] = kwargs["time_limit_s"]
        return add(*args, **kwargs)

    monkeypatch.setattr(territories, "design_territories", design_spy)
    monkeypatch.setattr(regions, "add_regions", regions_spy)
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, "TERRITORIES": 6,
              "REGIONS": 2, **_outputs(tmp_path)}  # fmt: skip
    run_alg("designterritories", params, feedback)
    assert "the territories get 18 s of TIME_LIMIT 20 s" in feedback.text()
    assert given["plan"] == pytest.approx(0.9 * BASE["TIME_LIMIT"])
    assert 0.1 * BASE["TIME_LIMIT"] - 1e-9 <= given["regions"] <= BASE["TIME_LIMIT"]
