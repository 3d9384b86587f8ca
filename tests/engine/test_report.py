import base64
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from territory_planner_plugin import report
from territory_planner_plugin.errors import InvalidInputError


@pytest.fixture
def accounts():
    return pd.DataFrame(
        {
            "id": range(6),
            "territory_id": ["A", "A", "B", "B", "C", "C"],
            "current_territory": ["A", "B", "B", "B", "C", "A"],
            "revenue_potential": [10.0, 10.0, 9.0, 12.0, 10.0, 9.0],
            "workload_visits": [1, 2, 2, 1, 1, 2],
        }
    )


def test_report_has_charts_kpis_disruption(accounts):
    out, summary = report.build_report(
        accounts,
        balance_fields=["revenue_potential", "workload_visits"],
        current_field="current_territory",
        map_png=b"\x89PNG fake",
        parameters={"TOLERANCE": 5},
    )
    assert summary.accounts.tolist() == [2, 2, 2]
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", out)
    assert len(imgs) == 3  # map + 2 charts
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    text = []

    class P(HTMLParser):
        def handle_data(self, d):
            text.append(d)

    P().feed(out)
    body = " ".join(text)
    assert "CV of Revenue potential" in body
    assert "< 0.10" in body
    assert "2 of 6 accounts moved = 33.3%" in body
    assert "Revenue potential moved: 19 = 31.7% of the total" in body
    assert "Made on " in body  # the date in the header


def test_kpis_and_errors(accounts):
    k = report.kpis(accounts, territory_field="territory_id", balance_fields=["revenue_potential"])
    assert k["cv_revenue_potential"] == pytest.approx(
        pd.Series([20.0, 21.0, 19.0]).std(ddof=0) / 20.0
    )
    with pytest.raises(InvalidInputError, match="TERRITORY_FIELD"):
        report.build_report(accounts, territory_field="nope")
    with pytest.raises(InvalidInputError, match="empty"):
        report.build_report(accounts.iloc[:0])


def _text(out: str) -> str:
    text = []

    class P(HTMLParser):
        def handle_data(self, d):
            text.append(d)

    P().feed(out)
    return " ".join(text)


@pytest.fixture
def visits():
    """Two territories; A from centre_min, B partly from centre_km at 50 km/h."""
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "territory_id": ["A", "A", "B", "B"],
            "visits": [2, 4, 1, 3],
            "minutes": [30.0, None, 60.0, 40.0],
            "centre_min": [10.0, 5.0, None, 15.0],
            "centre_km": [8.0, 4.0, 25.0, 12.0],
        }
    )


def test_travel_efficiency_exact(visits):
    eff = report.travel_efficiency(
        visits,
        territory_field="territory_id",
        visit_minutes=45,
        visit_minutes_field="minutes",
        visits_field="visits",
    )
    per = eff.per_territory.set_index("territory_id")
    # A: visits 2×30 + 4×45 = 240; travel 2×2×10 + 4×2×5 = 80
    # B: visits 1×60 + 3×40 = 180; travel 1×2×(25 km at 50 km/h = 30) + 3×2×15 = 150
    assert per.visit_minutes.tolist() == [240.0, 180.0]
    assert per.travel_minutes.tolist() == [80.0, 150.0]
    assert per.travel_efficiency.tolist() == [0.75, 0.5455]
    assert eff.overall == pytest.approx(420 / 650)
    assert "50 km/h" in eff.note
    assert "1 account(s) without it" in eff.note

    # one visit per account without VISITS_FIELD; VISIT_MINUTES alone
    flat = report.travel_efficiency(
        visits.iloc[:2], territory_field="territory_id", visit_minutes=45
    )
    assert flat.overall == pytest.approx(90 / (90 + 30))
    assert "one visit per account" in flat.note

    out, summary = report.build_report(
        visits,
        visit_minutes=45,
        visit_minutes_field="minutes",
        visits_field="visits",
    )
    assert summary.travel_efficiency.tolist() == [0.75, 0.5455]
    body = _text(out)
    assert "Travel efficiency" in body
    assert "64.6% (lowest territory 54.5%; 2 of 2 territories at or below)" in body
    assert "> 75%" in body
    assert re.search(r"id='kpi-efficiency'>.*?class='bad'>missed", out)

    with pytest.raises(InvalidInputError, match="VISIT_MINUTES"):
        report.travel_efficiency(visits, territory_field="territory_id", visit_minutes=-1)
    with pytest.raises(InvalidInputError, match="VISITS_FIELD"):
        report.travel_efficiency(
            visits, territory_field="territory_id", visit_minutes=45, visits_field="nope"
        )


def test_travel_efficiency_not_known(accounts, visits):
    out, summary = report.build_report(accounts, balance_fields=["revenue_potential"])
    assert "travel_efficiency" not in summary.columns
    assert "not known (give VISIT_MINUTES and VISITS_FIELD)" in _text(out)
    # durations given, but no drive times in the accounts
    out, summary = report.build_report(accounts, visit_minutes=45, visits_field="workload_visits")
    assert "travel_efficiency" not in summary.columns
    assert "no centre_min or centre_km" in _text(out)
    # drive times but no durations
    eff = report.travel_efficiency(visits, territory_field="territory_id")
    assert not eff.known
    assert eff.note.startswith(report.EFFICIENCY_UNKNOWN)


def test_active_prospects_counted(accounts):
    flagged = accounts.assign(flag=["yes", "no", True, "1", 0, None])
    summary = report.territory_summary(flagged, territory_field="territory_id", active_field="flag")
    assert summary.active_prospects.tolist() == [1, 2, 0]
    out, _ = report.build_report(flagged, active_field="flag")
    body = _text(out)
    assert "counted from flag" in body
    assert "Territories within the active prospects guidance" in body
    assert "3 of 3 territories outside" in body
    # without ACTIVE_FIELD: active_prospect when present, else every account counts
    ints = accounts.assign(active_prospect=[1, 0, 1, 1, 0, 0])
    summary = report.territory_summary(ints, territory_field="territory_id")
    assert summary.active_prospects.tolist() == [1, 2, 0]
    out, summary = report.build_report(accounts)
    assert "active_prospects" not in summary.columns
    assert "every account counts as an active prospect" in _text(out)
    assert "(all accounts counted)" in _text(out)
    with pytest.raises(InvalidInputError, match="ACTIVE_FIELD"):
        report.build_report(accounts, active_field="nope")
    assert report.truthy(pd.Series(["Yes", "TRUE", "n", "2", "", "0.0"])).tolist() == [
        True, True, False, True, False, False,
    ]  # fmt: skip


def test_comparison_section(accounts):
    second = accounts[["id", "current_territory", "workload_visits"]].iloc[::-1]
    out, _ = report.build_report(
        accounts,
        balance_fields=["workload_visits", "revenue_potential"],
        compare_accounts=second,
        compare_territory_field="current_territory",
    )
    body = _text(out)
    assert "Comparison with the second plan" in body
    assert re.search(r"<th class='num'>this plan</th><th class='num'>second plan</th>", out)
    # ids 1 (revenue 10) and 5 (revenue 9) differ; revenue taken from this plan by id
    assert "2 of 6 accounts in both plans are in a different territory" in body
    assert "their revenue potential: 19" in body
    assert "CV of Revenue potential" in body
    assert 'id="comparison-differences"' in out
    comparison = report.compare_with(accounts, second, compare_territory_field="current_territory")
    assert comparison.kpis.moved_vs_baseline.tolist() == [0, 2]
    with pytest.raises(InvalidInputError, match="COMPARE_TERRITORY_FIELD"):
        report.build_report(accounts, compare_accounts=second)
    with pytest.raises(InvalidInputError, match="ID_FIELD"):
        report.build_report(
            accounts, compare_accounts=second, compare_territory_field="current_territory",
            id_field="code",
        )  # fmt: skip


@pytest.fixture
def two():
    """Territory A (capacity 1) and B (capacity 2): 40 + 50 revenue, 3 + 3 visits."""
    accounts = pd.DataFrame(
        {
            "territory_id": ["A", "A", "B", "B", "B"],
            "revenue_potential": [10.0, 30.0, 20.0, 20.0, 10.0],
            "workload_visits": [1, 2, 1, 1, 1],
        }
    )
    plan = pd.DataFrame(
        {"territory_id": ["A", "B"], "capacity": [1.0, 2.0], "quota": [100.0, 200.0]}
    )
    return accounts, plan


def test_capacity_weighted_targets_exact(two):
    accounts, plan = two
    fields = ["revenue_potential", "workload_visits"]
    out, summary = report.build_report(accounts, balance_fields=fields, plan_summary=plan)
    # targets: total × capacity / 3 -> revenue 30 and 60, visits 2 and 4
    assert summary.territory_id.tolist() == ["A", "B"]
    assert summary.capacity.tolist() == [1.0, 2.0]
    assert summary.quota.tolist() == [100.0, 200.0]
    assert summary.revenue_potential_target.tolist() == [30.0, 60.0]
    assert summary.workload_visits_target.tolist() == [2.0, 4.0]
    assert summary.revenue_potential_dev_pct.tolist() == pytest.approx(
        [100 * (40 / 30 - 1), -100 * 10 / 60], abs=0.005
    )
    assert summary.workload_visits_dev_pct.tolist() == [50.0, -25.0]
    # CV of the totals per unit of capacity: revenue 40 and 25, visits 3 and 1.5
    k = report.kpis(
        accounts, territory_field="territory_id", balance_fields=fields, plan_summary=plan
    )
    assert k["cv_revenue_potential"] == pytest.approx(7.5 / 32.5)
    assert k["cv_workload_visits"] == pytest.approx(0.75 / 2.25)
    body = _text(out)
    assert "targets weighted by rep capacity from SUMMARY" in body
    assert "CV of Revenue potential per unit of capacity" in body
    assert f"{7.5 / 32.5:.3f}" in body
    assert "Workload (visits per year): territories within ±5% of their capacity-weighted" in body
    assert "0 of 2 (largest deviation 50.0%)" in body
    assert "Quota" in out.split("id='summary'")[1].split("</table>")[0]
    assert out.count("data:image/png;base64,") == 2


def test_without_summary_targets_are_the_mean(two):
    accounts, _ = two
    out, summary = report.build_report(accounts, balance_fields=["revenue_potential"])
    assert "capacity" not in summary.columns
    # targets are the mean: 90 / 2 = 45 each
    assert summary.revenue_potential_target.tolist() == [45.0, 45.0]
    assert summary.revenue_potential_dev_pct.tolist() == [-11.11, 11.11]
    assert "weighted" not in out
    assert "target (the mean)" in _text(out)
    k = report.kpis(accounts, territory_field="territory_id", balance_fields=["revenue_potential"])
    assert k["cv_revenue_potential"] == pytest.approx(5 / 45)


def test_summary_and_accounts_territories_differ(two, caplog):
    accounts, _ = two
    plan = pd.DataFrame({"territory_id": ["A", "C"], "capacity": [2, 3]})
    with caplog.at_level("WARNING", logger="territory_planner_plugin.report"):
        _, summary = report.build_report(
            accounts, balance_fields=["revenue_potential"], plan_summary=plan
        )
    # B is not in SUMMARY: capacity 1; C has no accounts: listed with 0, capacity 3
    assert summary.territory_id.tolist() == ["A", "B", "C"]
    assert summary.accounts.tolist() == [2, 3, 0]
    assert summary.capacity.tolist() == [2.0, 1.0, 3.0]
    assert summary.revenue_potential_target.tolist() == [30.0, 15.0, 45.0]
    assert summary.revenue_potential_dev_pct.tolist()[2] == -100.0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "SUMMARY has no row for territory(ies) B" in messages
    assert "SUMMARY lists territory(ies) C" in messages


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (pd.DataFrame({"territory_id": ["A", "B"], "reps": [1, 2]}), "no capacity field"),
        (pd.DataFrame({"territory": ["A", "B"], "capacity": [1, 2]}), "no territory_id field"),
        (pd.DataFrame({"territory_id": ["A", "B"], "capacity": [1, 0]}), "positive number"),
        (pd.DataFrame({"territory_id": ["A", "A"], "capacity": [1, 2]}), "more than one row"),
    ],
)
def test_bad_summary_is_explained(two, plan, message):
    accounts, _ = two
    with pytest.raises(InvalidInputError, match="SUMMARY") as err:
        report.build_report(accounts, balance_fields=["revenue_potential"], plan_summary=plan)
    assert message in str(err.value)
    if "field" in message:
        assert "territory_id and capacity" in str(err.value)


def test_header_names_a_bound_for_these_centres(two):
    accounts, plan = two
    plan = plan.assign(gap_pct=0.38, bound_scope="these centres")
    out, _ = report.build_report(accounts, balance_fields=["revenue_potential"], plan_summary=plan)
    assert "optimality gap 0.38% (for these centres)" in out
    out, _ = report.build_report(accounts, balance_fields=["revenue_potential"],
                                 plan_summary=plan.assign(bound_scope="problem"))  # fmt: skip
    assert "optimality gap 0.38%" in out
    assert "for these centres" not in out


def test_named_account_territories_are_not_held_to_the_prospects_guidance_nor_labelled():
    """A hybrid plan (tier field): the 80-120 guidance judges the geographic territories only,
    and the map labels only territories that have an area (named books have none)."""
    import geopandas as gpd
    import shapely

    from territory_planner_plugin.plan_map import draw_plan_map

    n_geo, n_named = 200, 10
    tier = ["geographic"] * n_geo + ["named"] * n_named
    terr = ["G1"] * 100 + ["G2"] * 100 + ["N1"] * n_named
    x = [i % 100 * 10.0 + (1000 if t == "G2" else 0) for i, t in enumerate(terr)]
    acc = gpd.GeoDataFrame(
        {"id": range(len(terr)), "territory_id": terr, "tier": tier,
         "revenue_potential": [1.0] * n_geo + [20.0] * n_named},
        geometry=shapely.points(x, [i // 100 * 10.0 for i in range(len(terr))]), crs="EPSG:3067",
    )  # fmt: skip
    out, _ = report.build_report(acc, balance_fields=["revenue_potential"])
    body = _text(out)
    assert "0 of 2 territories outside (1 named-account territories are not held to it)" in body
    assert "(geographic territories)" in body
    polys = gpd.GeoDataFrame(
        {"territory_id": ["G1", "G2", "N1"]},
        geometry=[shapely.box(-5, -5, 995, 15), shapely.box(995, -5, 1995, 15), None],
        crs="EPSG:3067",
    )
    drawn = draw_plan_map(acc, territory_field="territory_id", territories=polys,
                          colours={"G1": "#E69F00", "G2": "#56B4E9", "N1": "#009E73"})  # fmt: skip
    assert set(drawn.labels) == {"G1", "G2"}


def test_plan_of_areas_is_reported_as_areas():
    """A plan of areas (the units output) is drawn as its areas, counted as areas, checked for
    pieces by shared boundaries and not held to the active prospects guidance."""
    import geopandas as gpd
    import shapely

    squares = [shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(6)]
    areas = gpd.GeoDataFrame({"area_id": [f"U{i}" for i in range(6)],
                              "territory_id": ["A", "A", "B", "B", "A", "C"],
                              "population": [100.0, 100, 100, 100, 100, 200]},
                             geometry=squares, crs="EPSG:3067")  # fmt: skip
    page, summary = report.build_report(areas, balance_fields=["population"], id_field="area_id",
                                        tolerance_pct=10)  # fmt: skip
    assert "6 areas" in page
    assert "A in 2 pieces" in page  # U4 lies apart from U0-U1
    assert "kpi-prospects" not in page
    assert "not applied, this is a plan of areas" in page
    assert "<img id='map'" in page
    assert list(summary["pieces"]) == [2, 1, 1]
    counted = report.build_report(areas.assign(active=[30, 40, 50, 60, 70, 80]),
                                  balance_fields=["population"], active_field="active")[1]  # fmt: skip
    assert list(counted["active_prospects"]) == [140, 110, 80]  # an area's count is summed
    moved = report.build_report(areas.assign(today=["A", "B", "B", "B", "A", "C"]),
                                balance_fields=["population"], current_field="today")[0]  # fmt: skip
    assert "1 of 6 areas moved = 16.7%" in moved  # the disruption counts areas, not accounts
    assert "Areas moved from their current territory" in moved
    assert "accounts moved" not in moved
