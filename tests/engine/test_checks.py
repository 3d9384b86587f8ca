"""checkaccounts engine: each check finds a planted problem, clean records stay clean, input untouched."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, MultiPoint, Point, box

from territory_planner_plugin import network as road_network
from territory_planner_plugin.checks import check_accounts, normalise_name, robust_z
from territory_planner_plugin.errors import Cancelled, InvalidInputError

CRS = "EPSG:32635"
X0, Y0 = 380_000.0, 6_670_000.0


def _accounts(n: int = 30, seed: int = 0) -> gpd.GeoDataFrame:
    """n clean accounts on a 300 m grid, distinct names, plausible revenue and visits."""
    rng = np.random.default_rng(seed)
    return gpd.GeoDataFrame(
        {
            "id": [f"A{i:03d}" for i in range(n)],
            "name": [f"Shop number {i}" for i in range(n)],
            "revenue": rng.normal(100.0, 10.0, n).round(1),
            "visits": rng.integers(4, 8, n).astype(float),
        },
        geometry=[Point(X0 + 300 * (i % 6), Y0 + 300 * (i // 6)) for i in range(n)],
        crs=CRS,
    )


def _network(xs, ys) -> road_network.RoadNetwork:
    """A straight road through the given node coordinates (in CRS)."""
    nodes = gpd.GeoDataFrame(
        {"osmid": np.arange(len(xs))}, geometry=gpd.points_from_xy(xs, ys), crs=CRS
    )
    lines = [LineString([(xs[i], ys[i]), (xs[i + 1], ys[i + 1])]) for i in range(len(xs) - 1)]
    edges = gpd.GeoDataFrame(
        {
            "u": np.arange(len(xs) - 1),
            "v": np.arange(1, len(xs)),
            "length_m": [line.length for line in lines],
            "travel_time_s": [line.length / 10 for line in lines],
        },
        geometry=lines,
        crs=CRS,
    )
    return road_network.network_from_frames(nodes, edges)


def _run(acc, **kwargs):
    kwargs.setdefault("id_field", "id")
    return check_accounts(acc, **kwargs)


def test_clean_layer_is_all_clean_and_input_unchanged() -> None:
    acc = _accounts()
    before = acc.copy()
    xs = X0 + 300 * np.arange(6)
    net = _network(np.repeat(xs, 5), np.tile(Y0 + 300 * np.arange(5), 6))
    res = _run(
        acc,
        name_field="name",
        numeric_fields=["revenue", "visits"],
        network=net,
        study_area=gpd.GeoDataFrame(
            geometry=[box(X0 - 10, Y0 - 10, X0 + 2000, Y0 + 2000)], crs=CRS
        ),
    )
    pd.testing.assert_frame_equal(acc, before)
    assert res.quality_score == 100.0
    assert res.n_flagged == 0
    out = res.flagged
    assert len(out) == len(acc)
    assert out["chk_ok"].all()
    assert out["chk_reasons"].isna().all()
    for col in ("chk_dup_id", "chk_far_from_road", "chk_outside_area", "chk_missing_id"):
        assert not out[col].any(), col
    for col in ("chk_dup_account", "chk_geometry", "chk_revenue", "chk_visits"):
        assert out[col].isna().all(), col
    assert (out["chk_snap_m"] < 1).all()
    assert list(out.columns[: len(acc.columns) - 1]) == [c for c in acc.columns if c != "geometry"]
    assert out.crs == acc.crs
    assert out.geometry.geom_equals(acc.geometry).all()


def test_duplicate_ids_and_missing_ids() -> None:
    acc = _accounts()
    acc.loc[5, "id"] = "A001"
    acc.loc[7, "id"] = None
    res = _run(acc)
    assert res.flagged["chk_dup_id"].tolist() == [i in (1, 5) for i in range(len(acc))]
    assert res.flagged["chk_missing_id"].tolist() == [i == 7 for i in range(len(acc))]
    assert res.n_flagged == 3
    assert "duplicate id" in res.flagged.loc[5, "chk_reasons"]
    assert res.flagged.loc[7, "chk_reasons"] == "missing id"


def test_likely_duplicate_accounts_need_same_name_and_nearness() -> None:
    acc = _accounts()
    extra = gpd.GeoDataFrame(
        {
            "id": ["D1", "D2", "D3"],
            "name": ["SHOP  Number 3 Oy", "Shop number 4", "Shöp-number 10"],
            "revenue": [100.0] * 3,
            "visits": [5.0] * 3,
        },
        geometry=[
            Point(X0 + 900 + 40, Y0),  # 40 m from A003, same name (case, spaces, legal form)
            Point(X0 + 1200, Y0 + 150),  # 150 m from A004: too far for 100 m
            Point(X0 + 1200, Y0 + 300 + 5),  # 5 m from A010, accent and punctuation
        ],
        crs=CRS,
    )
    acc = pd.concat([acc, extra], ignore_index=True)
    res = _run(acc, name_field="name")
    dup = res.flagged.set_index("id")["chk_dup_account"]
    assert dup["A003"] == "D1"
    assert dup["D1"] == "A003"
    assert dup["D3"] == "A010"
    assert dup["A010"] == "D3"
    assert dup.notna().sum() == 4  # D2 / A004 are 150 m apart
    wide = _run(acc, name_field="name", duplicate_distance_m=200)
    assert wide.flagged.set_index("id")["chk_dup_account"]["D2"] == "A004"


def test_normalise_name() -> None:
    assert normalise_name("  Kahvila Äijä OY ") == normalise_name("kahvila aija")
    assert normalise_name("Oy") == "oy"  # a name made only of a legal form is kept
    assert normalise_name(None) == ""
    assert normalise_name(float("nan")) == ""


def test_missing_and_bad_geometry_rows_are_kept_and_flagged() -> None:
    acc = _accounts()
    acc.loc[2, "geometry"] = None
    acc.loc[3, "geometry"] = Point()
    acc.loc[4, "geometry"] = Point(0, 0)
    acc.loc[5, "geometry"] = MultiPoint([(X0, Y0), (X0 + 5, Y0)])
    acc.loc[6, "geometry"] = MultiPoint([(X0 + 300 * 0, Y0 + 300)])  # one part: fine
    before = acc.copy()
    net = _network([X0, X0 + 3000], [Y0, Y0])
    res = _run(acc, network=net, name_field="name")
    pd.testing.assert_frame_equal(acc, before)
    out = res.flagged
    assert len(out) == len(acc)
    assert out.loc[2, "chk_geometry"] == "missing"
    assert out.loc[3, "chk_geometry"] == "empty"
    assert out.loc[4, "chk_geometry"].startswith("at 0,0")
    assert out.loc[5, "chk_geometry"] == "several points"
    assert pd.isna(out.loc[6, "chk_geometry"])
    assert out.loc[2, "geometry"] is None
    for k in (2, 3, 4, 5):
        assert not out.loc[k, "chk_ok"]
        assert np.isnan(out.loc[k, "chk_snap_m"])
        assert not out.loc[k, "chk_far_from_road"]  # unknown, not guessed
    assert out["chk_geometry"].notna().sum() == 4


def test_numeric_problems() -> None:
    acc = _accounts(40)
    acc["revenue"] = acc["revenue"].astype(object)
    acc.loc[1, "revenue"] = None
    acc.loc[2, "revenue"] = -5.0
    acc.loc[3, "revenue"] = "lots"
    acc.loc[4, "revenue"] = 10_000.0
    acc.loc[5, "revenue"] = "105"  # text holding a number is fine
    acc.loc[6, "revenue"] = float("inf")
    res = _run(acc, numeric_fields=["revenue", "visits"])
    col = res.flagged["chk_revenue"]
    assert col[1] == "null"
    assert col[2] == "negative"
    assert col[3] == "not a number"
    assert col[4] == "outlier"
    assert col[6] == "not a number"
    assert col.notna().sum() == 5
    assert res.flagged["chk_visits"].isna().all()
    assert "revenue outlier (high" in res.flagged.loc[4, "chk_reasons"]
    row = res.summary.set_index("field").loc["chk_revenue"]
    assert row["count"] == 5
    assert row["share_pct"] == pytest.approx(12.5)


def test_low_outliers_are_flagged_too() -> None:
    acc = _accounts(40)
    acc.loc[9, "revenue"] = 1.0
    res = _run(acc, numeric_fields=["revenue"], outlier_z=3.5)
    assert res.flagged["chk_revenue"].tolist() == ["outlier" if i == 9 else None for i in range(40)]
    assert "low" in res.flagged.loc[9, "chk_reasons"]


def test_robust_z() -> None:
    z = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    assert np.isnan(z[-1])
    assert z[4] > 3.5 > abs(z[0])
    same = robust_z(np.array([5.0] * 9 + [50.0]))  # MAD 0: mean absolute deviation
    assert same[-1] > 3.5
    assert (same[:-1] == 0).all()
    assert (robust_z(np.ones(4)) == 0).all()


def test_far_from_road_in_geographic_crs_keeps_crs() -> None:
    acc = _accounts().to_crs("EPSG:4326")
    acc.loc[8, "geometry"] = Point(acc.geometry[8].x + 0.05, acc.geometry[8].y)  # ~2.5 km east
    xs = X0 + 300 * np.arange(6)
    net = _network(np.repeat(xs, 5), np.tile(Y0 + 300 * np.arange(5), 6))
    res = _run(acc, network=net, max_snap_m=500)
    out = res.flagged
    assert out.crs == acc.crs
    assert out["chk_far_from_road"].tolist() == [i == 8 for i in range(len(acc))]
    assert out.loc[8, "chk_snap_m"] > 1500
    assert "km from the road network" in out.loc[8, "chk_reasons"]


def test_outside_study_area_any_crs() -> None:
    acc = _accounts()
    area = gpd.GeoDataFrame(geometry=[box(X0 - 1, Y0 - 1, X0 + 900, Y0 + 2000)], crs=CRS)
    res = _run(acc, study_area=area.to_crs("EPSG:4326"))
    x = acc.geometry.x.to_numpy()
    assert res.flagged["chk_outside_area"].tolist() == list(x > X0 + 900)
    assert res.quality_score == pytest.approx(100 * (x <= X0 + 900).mean(), abs=0.01)


def test_summary_and_score() -> None:
    acc = _accounts(20)
    acc.loc[0, "id"] = "A001"
    acc.loc[3, "visits"] = np.nan
    res = _run(acc, numeric_fields=["visits"])
    s = res.summary
    assert list(s.columns) == ["check", "field", "count", "share_pct", "note"]
    assert res.n_flagged == 3
    assert res.quality_score == 85.0
    last = s.iloc[-1]
    assert last["count"] == 17
    assert last["share_pct"] == 85.0
    assert "NOT met" in last["note"]  # guidance is *above* 85%
    skipped = s.set_index("field").loc["chk_far_from_road"]
    assert pd.isna(skipped["count"])
    assert "NETWORK" in skipped["note"]
    assert s.set_index("field").loc["chk_dup_id", "count"] == 2


def test_rerun_on_own_output_replaces_check_columns(caplog) -> None:
    first = _run(_accounts(), numeric_fields=["revenue"]).flagged
    again = _run(first, numeric_fields=["revenue"]).flagged
    assert list(again.columns) == list(first.columns)
    assert "already has" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"id_field": "nope"}, "ID_FIELD"),
        ({"name_field": "nope"}, "NAME_FIELD"),
        ({"numeric_fields": ["revenue", "nope"]}, "NUMERIC_FIELDS"),
        ({"duplicate_distance_m": -1}, "DUPLICATE_DISTANCE"),
        ({"outlier_z": 0}, "OUTLIER_Z"),
        ({"max_snap_m": float("nan")}, "MAX_SNAP"),
        ({"study_area": gpd.GeoDataFrame(geometry=[], crs=CRS)}, "STUDY_AREA"),
        ({"study_area": gpd.GeoDataFrame(geometry=[Point(0, 0)], crs=CRS)}, "STUDY_AREA"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, key) -> None:
    with pytest.raises(InvalidInputError, match=key):
        _run(_accounts(), **kwargs)


def test_empty_layer_and_no_crs() -> None:
    with pytest.raises(InvalidInputError, match=r"INPUT.*empty"):
        _run(_accounts().iloc[:0])
    with pytest.raises(InvalidInputError, match=r"INPUT.*CRS"):
        _run(_accounts().set_crs(None, allow_override=True))


def test_progress_and_cancel() -> None:
    seen = []
    _run(_accounts(), progress=lambda f, m="": seen.append(f))
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    with pytest.raises(Cancelled):
        _run(_accounts(), is_cancelled=lambda: True)


def test_many_accounts_are_fast_enough() -> None:
    """10,000 accounts, 10 names each repeated 1,000 times: the pair search stays local."""
    rng = np.random.default_rng(3)
    n = 10_000
    xy = rng.uniform(0, 50_000, (n, 2))
    acc = gpd.GeoDataFrame(
        {"id": np.arange(n), "name": [f"Chain {i % 10}" for i in range(n)]},
        geometry=gpd.points_from_xy(xy[:, 0] + X0, xy[:, 1] + Y0),
        crs=CRS,
    )
    res = _run(acc, name_field="name", duplicate_distance_m=50)
    assert len(res.flagged) == n


def test_a_layer_of_areas_is_checked_at_a_point_inside_each():
    """Units (polygons) are not flagged 'not a point': their ids and values are checked and the
    flagged copy keeps the polygons."""
    import geopandas as gpd
    import shapely

    squares = [shapely.box(385_000 + i * 1000, 6_672_000, 386_000 + i * 1000, 6_673_000)
               for i in range(8)]  # fmt: skip
    areas = gpd.GeoDataFrame({"uid": [f"U{i}" for i in range(7)] + ["U0"],
                              "pop": [100.0, 110, 90, 105, 95, 100, -4, 100]},
                             geometry=squares, crs="EPSG:3067")  # fmt: skip
    res = check_accounts(areas, id_field="uid", numeric_fields=["pop"])
    flagged = res.flagged
    assert flagged.geometry.geom_type.eq("Polygon").all()
    assert not flagged["chk_geometry"].notna().any()
    bad = set(flagged.loc[~flagged["chk_ok"], "uid"])
    assert bad == {"U0", "U6"}  # the duplicate id and the negative value, nothing else
