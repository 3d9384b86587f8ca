import base64
import logging
import math
import re
from html.parser import HTMLParser

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from territory_planner_plugin import compare
from territory_planner_plugin.errors import Cancelled, InvalidInputError

XY = {1: (0, 0), 2: (2000, 0), 3: (0, 10000), 4: (0, 12000), 5: (3000, 3000)}
HELSINKI = (385000, 6672000)  # EPSG:3067 offset, so that lon/lat -> UTM 35N is the same metric


def plan(ids, territories, revenue, **extra):
    """A small accounts plan in metres (EPSG:3067) near Helsinki."""
    return gpd.GeoDataFrame(
        {"id": ids, "territory_id": territories, "revenue_potential": revenue, **extra},
        geometry=[shapely.Point(XY[i][0] + HELSINKI[0], XY[i][1] + HELSINKI[1]) for i in ids],
        crs="EPSG:3067",
    )


@pytest.fixture
def base():
    return plan([1, 2, 3, 4], ["X", "X", "Y", "Y"], [10.0, 20.0, 15.0, 15.0])


@pytest.fixture
def other():
    return plan([1, 2, 3, 4], ["X", "Y", "Y", "Y"], [10.0, 20.0, 15.0, 15.0])


def _mean_km_to_centroid(points):
    xy = np.array(points, dtype=float)
    return np.hypot(*(xy - xy.mean(0)).T) / 1000.0


def test_kpis_known_numbers(base, other):
    result = compare.compare_plans(
        [base, other], names=["today", "new"], balance_fields=["revenue_potential"]
    )
    k = result.kpis.set_index("plan")
    assert list(k.index) == ["today", "new"]
    assert k.loc["today", "territories"] == 2
    assert k.loc["today", "accounts"] == 4
    assert k.loc["today", "cv_revenue_potential"] == 0.0
    assert k.loc["today", "max_deviation_pct"] == 0.0
    assert k.loc["today", "compactness_km"] == pytest.approx(1.0)
    assert k.loc["today", "moved_vs_baseline"] == 0
    # new: X = 10, Y = 50 -> mean 30, population std 20
    assert k.loc["new", "cv_revenue_potential"] == pytest.approx(0.6667)
    assert k.loc["new", "max_deviation_pct"] == pytest.approx(66.67)
    y = _mean_km_to_centroid([XY[2], XY[3], XY[4]])
    assert k.loc["new", "compactness_km"] == pytest.approx(round((0 + y.sum()) / 4, 3))
    assert k.loc["new", "moved_vs_baseline"] == 1
    assert k.loc["new", "moved_share_pct"] == 25.0
    assert k.loc["new", "moved_revenue_potential"] == 20.0
    assert "travel_total" not in k.columns


def test_account_counts_without_balance_fields(base, other):
    k = compare.compare_plans([base, other]).kpis
    assert list(k["plan"]) == ["plan 1", "plan 2"]
    # today 2 + 2 accounts: CV 0; new 1 + 3: mean 2, std 1
    assert k["cv_accounts"].tolist() == [0.0, 0.5]
    assert k["max_deviation_pct"].tolist() == [0.0, 50.0]
    assert not any(c.startswith("moved_") and c not in ("moved_vs_baseline", "moved_share_pct")
                   for c in k.columns)  # fmt: skip


def test_differences_table(base, other):
    third = plan([1, 2, 3, 4], ["P", "P", "Q", "Q"], [10.0, 20.0, 15.0, 15.0])
    d = compare.compare_plans([base, other, third], names=["a", "b", "c"]).differences
    assert list(d.columns) == ["id", "a", "b", "c", "in_all_plans", "changed"]
    assert d["id"].tolist() == [1, 2, 3, 4]
    assert d["b"].tolist() == ["X", "Y", "Y", "Y"]
    assert d["in_all_plans"].all()
    # c renames every territory: matched by overlap (P = X, Q = Y), only b moves account 2
    assert d["changed"].tolist() == [False, True, False, False]
    d2 = compare.compare_plans([base, other], names=["a", "b"]).differences
    assert d2["changed"].tolist() == [False, True, False, False]
    assert d2["changed"].dtype == bool


def test_differing_account_sets(base, caplog):
    # account 4 is gone, account 5 is new; account 2 moves; 5 has no baseline so it cannot move
    later = plan([1, 2, 3, 5], ["X", "Y", "Y", "Z"], [10.0, 20.0, 15.0, 99.0])
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        result = compare.compare_plans(
            [base, later], names=["today", "later"], balance_fields=["revenue_potential"]
        )
    k = result.kpis.set_index("plan")
    assert k.loc["later", "accounts"] == 4
    assert k.loc["later", "territories"] == 3
    assert k.loc["later", "common_with_baseline"] == 3
    assert k.loc["later", "moved_vs_baseline"] == 1
    assert k.loc["later", "moved_share_pct"] == pytest.approx(100 / 3, abs=0.01)
    totals = np.array([10.0, 35.0, 99.0])  # the plan's own accounts
    assert k.loc["later", "cv_revenue_potential"] == pytest.approx(
        round(totals.std() / totals.mean(), 4)
    )
    d = result.differences.set_index("id")
    assert list(d.index) == [1, 2, 3, 4, 5]
    assert d["in_all_plans"].tolist() == [True, True, True, False, False]
    assert d.loc[4, "later"] is None
    assert d.loc[5, "today"] is None
    assert d["changed"].tolist() == [False, True, False, False, False]
    text = caplog.text
    assert "2 account(s) are not in every plan (e.g. 4, 5" in text
    assert "Z only in 'later'" in text
    assert any("2 account(s) are not in every plan" in n for n in result.notes)


def test_null_territories_are_unassigned(base, caplog):
    gaps = plan([1, 2, 3, 4], ["X", None, "Y", float("nan")], [10.0, 20.0, 15.0, 15.0])
    with caplog.at_level(logging.WARNING, logger="territory_planner_plugin"):
        result = compare.compare_plans([base, gaps], balance_fields=["revenue_potential"])
    k = result.kpis.iloc[1]
    assert k["unassigned"] == 2
    assert k["territories"] == 2
    assert k["cv_revenue_potential"] == pytest.approx(round(2.5 / 12.5, 4))  # 10 vs 15
    assert k["moved_vs_baseline"] == 2  # assigned -> unassigned counts as a change
    assert k["compactness_km"] == 0.0
    assert "2 account(s) have no territory_id" in caplog.text


def test_missing_values_count_as_zero(base, caplog):
    holes = plan([1, 2, 3, 4], ["X", "X", "Y", "Y"], [10.0, np.nan, 15.0, 15.0])
    with caplog.at_level(logging.WARNING, logger="territory_planner_plugin"):
        k = compare.compare_plans([base, holes], balance_fields=["revenue_potential"]).kpis
    assert k["cv_revenue_potential"].iloc[1] == pytest.approx(round(10 / 20, 4))
    assert "1 account(s) have no revenue_potential value; counted as 0" in caplog.text


def test_travel_total_prefers_minutes(base, other):
    a = base.assign(centre_km=[1.0, 2.0, 3.0, 4.0], centre_min=[np.nan] * 4)
    b = other.assign(centre_km=[1.0, 1.0, 1.0, 1.5], centre_min=[np.nan] * 4)
    k = compare.compare_plans([a, b]).kpis
    assert k["travel_total"].tolist() == [10.0, 4.5]  # no minutes anywhere: km
    c = base.assign(centre_min=[5.0, 5.0, 5.0, 5.0])
    d = other.assign(centre_min=[1.0, 2.0, 3.0, 4.0])
    result = compare.compare_plans([c, d])
    assert result.kpis["travel_total"].tolist() == [20.0, 10.0]
    assert result.travel_field == "centre_min"


def test_geographic_plans_are_projected(base, other):
    metres = compare.compare_plans([base, other]).kpis["compactness_km"]
    lonlat = compare.compare_plans([base.to_crs(4326), other.to_crs(4326)]).kpis
    assert lonlat["compactness_km"].tolist() == pytest.approx(metres.tolist(), abs=0.002)


def test_ids_of_different_types_match(base):
    text_ids = base.assign(id=["1", "2", "3", "4"], territory_id=["X", "Y", "Y", "Y"])
    floats = base.assign(id=[1.0, 2.0, 3.0, 4.0])
    result = compare.compare_plans([base, text_ids, floats])
    assert result.kpis["moved_vs_baseline"].tolist() == [0, 1, 0]
    assert result.differences["in_all_plans"].all()


def test_inputs_unchanged(base, other):
    before = [base.copy(), other.copy()]
    compare.compare_plans([base, other], balance_fields=["revenue_potential"])
    for frame, copy in zip([base, other], before):
        pd.testing.assert_frame_equal(pd.DataFrame(frame), pd.DataFrame(copy))
        assert frame.crs == copy.crs


@pytest.mark.parametrize(
    ("plans", "kwargs", "message"),
    [
        (lambda b, o: [b], {}, r"PLANS: give at least two plans to compare \(got 1\)"),
        (lambda b, o: [], {}, r"at least two plans"),
        (lambda b, o: [b, o.iloc[:0]], {}, r"PLANS: plan 'plan 2' has no accounts"),
        (lambda b, o: [b, o], {"names": ["a"]}, r"PLAN_NAMES: 1 name\(s\) for 2 plans"),
        (lambda b, o: [b, o], {"names": ["a", "A"]}, r"PLAN_NAMES: names \['A', 'a'\]"),
        (lambda b, o: [b, o], {"names": ["a", "changed"]}, r"PLAN_NAMES: \['changed'\]"),
        (lambda b, o: [b, o], {"id_field": "nope"}, r"ID_FIELD: 'nope' is not a field of plan"),
        (lambda b, o: [b, o], {"territory_field": "t"}, r"TERRITORY_FIELD: 't' is not a field"),
        (lambda b, o: [b, o], {"balance_fields": ["x"]}, r"BALANCE_FIELDS: 'x' is not a field"),
        (
            lambda b, o: [b, o.assign(id=[1, 2, 2, 3])],
            {},
            r"ID_FIELD: plan 'plan 2' has duplicate account ids \['2'\]",
        ),
        (lambda b, o: [b, o.assign(id=[1, 2, None, 3])], {}, r"ID_FIELD: 1 account\(s\)"),
        (
            lambda b, o: [b, o.set_geometry(o.buffer(5))],
            {},
            r"plan 'plan 2' has Polygon geometries",
        ),
    ],
)
def test_bad_input_is_explained(base, other, plans, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        compare.compare_plans(plans(base, other), **kwargs)


def test_cancel_and_progress(base, other):
    with pytest.raises(Cancelled):
        compare.compare_plans([base, other], is_cancelled=lambda: True)
    seen = []
    compare.compare_plans([base, other], progress=lambda f, m="": seen.append(f))
    assert seen[-1] == 1.0
    assert seen == sorted(seen)


def test_unique_names():
    assert compare.unique_names(["acc", "acc", "Acc", ""]) == ["acc", "acc 2", "Acc 3", "plan 4"]


def test_html_is_self_contained(base, other):
    result = compare.compare_plans(
        [base, other], names=["today", "new <K5>"], balance_fields=["revenue_potential"]
    )
    out = compare.comparison_html(result, parameters={"TERRITORY_FIELD": "territory_id"})
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", out)
    assert len(imgs) == 2  # CV bars + trade-off scatter
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert "http" not in out.replace("http-equiv", "")  # nothing to fetch
    text = []

    class P(HTMLParser):
        def handle_data(self, d):
            text.append(d)

    P().feed(out)
    body = " ".join(text)
    assert "new <K5>" in body  # escaped in the page, plain once parsed
    assert "CV of Revenue potential" in body
    assert "< 0.10" in body
    assert "1 of 4 accounts change territory" in body
    assert re.search(r"class='num ok'>0\.000<", out)
    assert re.search(r"class='num bad'>0\.667<", out)
    assert math.isfinite(result.kpis["compactness_km"].sum())


def test_plans_of_areas_are_compared_with_their_pieces():
    squares = [shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(4)]

    def areas(terr):
        return gpd.GeoDataFrame({"id": ["U0", "U1", "U2", "U3"], "territory_id": terr,
                                 "pop": [1.0, 1, 1, 1]}, geometry=squares, crs="EPSG:3067")  # fmt: skip

    result = compare.compare_plans([areas(["A", "A", "B", "B"]), areas(["A", "B", "A", "B"])],
                                   balance_fields=["pop"])  # fmt: skip
    assert list(result.kpis["split_territories"]) == [0, 2]
    assert result.kpis["compactness_km"].iloc[0] == pytest.approx(0.5)  # centres of the areas


def test_plans_of_areas_are_labelled_as_areas():
    squares = [shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(4)]
    plans = [gpd.GeoDataFrame({"id": ["U0", "U1", "U2", "U3"], "territory_id": t},
                              geometry=squares, crs="EPSG:3067")
             for t in (["A", "A", "B", "B"], ["A", "B", "B", "B"])]  # fmt: skip
    result = compare.compare_plans(plans)
    assert result.areas
    rows = compare.kpi_rows(result)
    assert "Areas moved vs baseline" in rows
    assert "Accounts moved" not in rows
    assert "Relationships kept: areas with the baseline" in rows
    assert "CV of Areas" in rows
    page = compare.comparison_html(result)  # the words round the tables too
    assert "Areas that change territory" in page
    assert "1 of 4 areas change territory" in page
    assert "the areas in both a plan and the baseline" in page
    assert "accounts" not in page.lower().replace("accounts layers", "")
