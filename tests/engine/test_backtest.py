"""Back-test (territoryreport BACKTEST_FIELD): each rep's old and new book, checked by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from territory_planner_plugin.backtest import backtest, previous_field_of
from territory_planner_plugin.errors import InvalidInputError
from territory_planner_plugin.report import build_report


def _plan() -> gpd.GeoDataFrame:
    xy = [(0, 0), (1000, 0), (2000, 0), (3000, 0), (4000, 0)]
    return gpd.GeoDataFrame(
        {"id": list("abcde"), "territory_id": ["T1", "T1", "T2", "T2", "T2"],
         "previous_territory_id": ["T1", "T1", "T1", "T2", "T2"],
         "potential": [1.0, 2.0, 3.0, 4.0, 5.0], "rev_ly": [10.0, None, 30.0, 40.0, 50.0]},
        geometry=shapely.points(np.array(xy, float) + np.array([300_000, 6_600_000])), crs="EPSG:32635",
    )  # fmt: skip


def _homes() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"rep_id": ["T1", "T2"]},
                            geometry=shapely.points([[300_000, 6_600_000], [304_000, 6_600_000]]),
                            crs="EPSG:32635")  # fmt: skip


def test_books_old_and_new_by_hand():
    bt = backtest(_plan(), backtest_field="rev_ly", previous_field="previous_territory_id",
                  balance_fields=["potential"], centres=_homes())  # fmt: skip
    t = bt.table.set_index("territory")
    assert bt.missing == 1  # b has no value: counted as 0
    assert t.loc["T1", "rev_ly_old"] == 40.0  # a 10 + b 0 + c 30
    assert t.loc["T1", "rev_ly_new"] == 10.0
    assert t.loc["T2", "rev_ly_old"] == 90.0
    assert t.loc["T2", "rev_ly_new"] == 120.0
    assert t.loc["T1", "potential_old"] == 6.0
    assert t.loc["T2", "accounts_new"] == 3
    assert t.loc["T1", "rev_ly_change_pct"] == pytest.approx(-75.0)
    # km to the home: T1 old = 0 + 1 + 2, new = 0 + 1; T2 old = 1 + 0, new = 2 + 1 + 0
    assert t.loc["T1", "travel_km_old"] == pytest.approx(3.0)
    assert t.loc["T1", "travel_km_new"] == pytest.approx(1.0)
    assert t.loc["T2", "travel_km_new"] == pytest.approx(3.0)


def test_report_has_the_backtest_section_and_counts_missing():
    text, summary = build_report(_plan(), balance_fields=["potential"], backtest_field="rev_ly",
                                 centres=_homes())  # fmt: skip
    assert "id='backtest'" in text
    assert "1 account(s) had no rev_ly value" in text
    assert list(summary["rev_ly_new"]) == [10.0, 120.0]


def test_backtest_needs_the_old_plan():
    plan = _plan().drop(columns="previous_territory_id")
    with pytest.raises(InvalidInputError, match="CURRENT_FIELD"):
        previous_field_of(plan, None)
    with pytest.raises(InvalidInputError, match="BACKTEST_FIELD: 'nope'"):
        backtest(_plan(), backtest_field="nope", previous_field="previous_territory_id")
