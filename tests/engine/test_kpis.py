"""The plan KPIs (kpis.py) on known numbers, and one plan judged alike by designterritories'
summary, the report and compareplans, with and without rep capacities."""

import re

import numpy as np
import pandas as pd
import pytest

from territory_planner_plugin import compare, kpis, report
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps

FIELDS = ["revenue", "visits"]


def test_balance_known_numbers():
    # totals 40 and 50, capacities 1 and 2: targets 30 and 60, per capacity 40 and 25
    assert kpis.targets([40, 50], [1, 2]).tolist() == [30.0, 60.0]
    assert kpis.deviation_pct([40, 50], [1, 2]) == pytest.approx([100 / 3, -100 / 6])
    assert kpis.cv_per_capacity([40, 50], [1, 2]) == pytest.approx(7.5 / 32.5)
    # without capacities: the mean (45) and the CV of the totals
    assert kpis.deviation_pct([40, 50]) == pytest.approx([-100 / 9, 100 / 9])
    assert kpis.cv_per_capacity([40, 50]) == pytest.approx(5 / 45)
    assert kpis.within_tolerance([4.99, -5.0], 5)
    assert not kpis.within_tolerance([5.02], 5)
    lo, hi = kpis.prospects_range([1.0, 1.5, 0.8])
    assert lo.tolist() == [80, 120, 64] and hi.tolist() == [120, 180, 96]  # noqa: PT018


def test_disruption_against_the_budget():
    d = kpis.Disruption(75, 502, 15.0, revenue_moved=1_000.0, revenue_total=8_000.0)
    assert d.budget_moves == 75
    assert d.within_budget
    text = d.text("Revenue potential")
    assert text.startswith("75 of 502 accounts moved = 14.9% (budget 15% = at most 75")
    assert "within budget" in text
    assert "Revenue potential moved: 1,000 = 12.5% of the total" in text
    over = kpis.disruption(["A", "B", "B", None], ["B", "B", None, "A"], budget_pct=25)
    assert (over.moved, over.budget_moves, over.within_budget) == (2, 1, False)


def test_matching_by_overlap_ignores_renamed_territories():
    base = ["X", "X", "X", "Y", "Y", "Z"]
    renamed = ["Q", "Q", "Q", "P", "P", "R"]  # same plan, other names
    moved, match = kpis.moved_after_matching(base, renamed)
    assert match == {"Q": "X", "P": "Y", "R": "Z"}
    assert not moved.any()
    # two territories left: Z's account joins P (= Y) and one account of X moves to P
    moved, match = kpis.moved_after_matching(base, ["Q", "Q", "P", "P", "P", "P"])
    assert match == {"Q": "X", "P": "Y"}
    assert moved.tolist() == [False, False, True, False, False, True]
    # shared ids break ties: equal overlap keeps the same names
    assert kpis.match_territories(["A", "B"], ["B", "A"]) == {"A": "B", "B": "A"}
    assert kpis.match_territories(["A", "A", "B", "B"], ["A", "B", "A", "B"]) == {
        "A": "A",
        "B": "B",
    }


def test_pieces_from_field_or_geometry():
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, box

    ter = gpd.GeoDataFrame(
        {"territory_id": ["A", "B"]},
        geometry=[box(0, 0, 1, 1), MultiPolygon([box(2, 0, 3, 1), box(4, 0, 5, 1)])],
    )
    assert kpis.pieces(ter) == {"A": 1, "B": 2}
    assert kpis.pieces(ter.assign(pieces=[3, 1])) == {"A": 3, "B": 1}


def _plan(capacities: bool):
    acc = random_accounts(60, seed=3)
    reps = random_reps(4, seed=5)
    if capacities:
        reps["cap"] = [1.0, 1.5, 0.8, 1.2]
    return design_territories(
        acc, id_field="id", reps=reps, rep_id_field="rep", rep_capacity_field="cap",
        balance_fields=FIELDS, tolerance_pct=10, time_limit_s=20,
    )  # fmt: skip


@pytest.mark.parametrize("capacities", [True, False])
def test_report_and_compareplans_agree_with_the_design_summary(capacities):
    plan = _plan(capacities)
    summary = plan.summary.set_index("territory_id")
    # the report, given only the plan's accounts and territories (no SUMMARY)
    out, table = report.build_report(
        plan.accounts, balance_fields=FIELDS, tolerance_pct=10, territories=plan.territories
    )
    table = table.set_index("territory_id")
    assert ("capacity" in table.columns) == capacities or not capacities
    for f in FIELDS:
        assert table[f"{f}_dev_pct"].to_dict() == pytest.approx(
            summary[f"{f}_dev_pct"].to_dict(), abs=0.011
        )
        shown = re.search(rf"id='kpi-cv-{f}'><td>[^<]*</td><td>([0-9.]+)</td>", out)
        assert float(shown.group(1)) == pytest.approx(plan.kpis[f"cv_{f}"], abs=0.0006)
        # the plan is within TOLERANCE by construction: the report says so
        assert re.search(rf"id='kpi-tolerance-{f}'>.*?<td class='ok'>met</td>", out)
        largest = re.search(rf"id='kpi-tolerance-{f}'>.*?largest deviation ([0-9.]+)%", out)
        assert float(largest.group(1)) == pytest.approx(
            summary[f"{f}_dev_pct"].abs().max(), abs=0.06
        )
    k = report.kpis(
        plan.accounts, territory_field="territory_id", balance_fields=FIELDS,
        capacity=dict(zip(summary.index, summary.capacity)),
    )  # fmt: skip
    assert k["max_deviation_pct"] == pytest.approx(plan.max_deviation_pct, abs=0.011)
    # compareplans with the plan's capacities
    caps = dict(zip(summary.index, summary.capacity))
    result = compare.compare_plans(
        [plan.accounts, plan.accounts], balance_fields=FIELDS, capacities=[caps, caps],
        tolerance_pct=10,
    )  # fmt: skip
    row = result.kpis.iloc[0]
    assert row["max_deviation_pct"] == pytest.approx(plan.max_deviation_pct, abs=0.011)
    for f in FIELDS:
        assert row[f"cv_{f}"] == pytest.approx(plan.kpis[f"cv_{f}"], abs=1e-4)
    assert bool(row["within_tolerance"])
    assert row["headcount_fte"] == pytest.approx(summary.capacity.sum())


def test_compareplans_without_capacities_differs_when_reps_differ():
    """The bug of issue 11: without capacities the largest deviation is from the mean."""
    plan = _plan(True)
    plain = compare.compare_plans([plan.accounts, plan.accounts], balance_fields=FIELDS)
    assert plain.kpis.iloc[0]["max_deviation_pct"] > plan.max_deviation_pct + 5
    assert not plain.weighted[0]
    # capacities read from the accounts' capacity field when the plan has one
    caps = dict(zip(plan.summary.territory_id, plan.summary.capacity))
    with_field = plan.accounts.assign(capacity=plan.accounts.territory_id.map(caps))
    auto = compare.compare_plans([with_field, with_field], balance_fields=FIELDS)
    assert auto.kpis.iloc[0]["max_deviation_pct"] == pytest.approx(
        plan.max_deviation_pct, abs=0.011
    )


def test_report_without_capacities_uses_the_mean_and_says_so():
    plan = _plan(True)
    out, table = report.build_report(plan.accounts, balance_fields=FIELDS, tolerance_pct=10)
    assert "capacity" not in table.columns
    assert "no capacities found" in out
    # totals against the mean
    totals = table["revenue_total"].to_numpy()
    assert table["revenue_dev_pct"].tolist() == pytest.approx(
        np.round(100 * (totals / totals.mean() - 1), 2).tolist()
    )


def test_report_map_and_header_from_the_plan_outputs():
    plan = _plan(True)
    centres = plan.centres.assign(rep_name=["Aino", "Eero", "Helmi", "Juho"])
    current = plan.accounts.assign(current=plan.accounts.territory_id.shift(1).fillna("R0"))
    out, table = report.build_report(
        current, balance_fields=FIELDS, tolerance_pct=10, territories=plan.territories,
        centres=centres, current_field="current", max_moves_pct=50, gap_pct=0.5,
    )  # fmt: skip
    assert "reps: Aino (R0), Eero (R1), Helmi (R2), Juho (R3)" in out
    assert "optimality gap 0.50%" in out
    assert "id='map'" in out
    assert table["rep_name"].tolist() == ["Aino", "Eero", "Helmi", "Juho"]
    assert table["colour"].str.match(r"^#[0-9A-F]{6}$").all()
    assert "id='kpi-disruption'" in out
    assert re.search(r"budget 50% = at most 30 accounts", out)
    assert "@media print" in out
    # the plan's own colours (a colour field) are used as they are
    coloured = plan.territories.assign(colour=["#112233", "#445566", "#778899", "#AABBCC"])
    _, table = report.build_report(plan.accounts, territories=coloured)
    assert table["colour"].tolist() == ["#112233", "#445566", "#778899", "#AABBCC"]


def test_summary_of_design_carries_gap_and_budget():
    plan = _plan(False)
    assert "gap_pct" in plan.summary.columns
    assert np.isnan(plan.summary["max_moves_pct"].iloc[0])  # no CURRENT_FIELD: no budget
    out, _ = report.build_report(
        plan.accounts, balance_fields=FIELDS, plan_summary=plan.summary, tolerance_pct=10
    )
    assert f"optimality gap {plan.gap_pct:.2f}%" in out


def test_no_import_cycle():
    import ast
    import pathlib

    src = pathlib.Path(compare.__file__).read_text(encoding="utf-8")
    modules = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            modules |= {a.name for a in node.names} if not node.module else {node.module}
    assert "report" not in modules  # compare must not import report (report imports compare)
    assert "kpis" in modules
    assert pd.api.types.is_dict_like(kpis.TARGETS)
