"""Points far from the roads, NULL geometries and NULL ids: named with their ids, never mistaken
for one another (issue 14)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point

from territory_planner_plugin import catchments, matrix, network, rebalance, territories
from territory_planner_plugin.errors import InvalidInputError

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> network.RoadNetwork:
    path = tmp_path_factory.mktemp("net") / "net.gpkg"
    network.save_network(network.build_road_network(DATA / "helsinki.osm.pbf"), path)
    return network.load_network(path)


def _points(net: network.RoadNetwork, n: int, prefix: str, field: str = "id") -> gpd.GeoDataFrame:
    """``n`` points on nodes of the largest part of the network, with a balance field."""
    idx = np.linspace(0, net.n_nodes - 1, n).astype(int)
    return gpd.GeoDataFrame(
        {field: [f"{prefix}{i}" for i in range(n)], "revenue": np.arange(1.0, n + 1)},
        geometry=[Point(net.x[i] + 1, net.y[i] + 1) for i in idx],
        crs=net.crs,
    )


def _far(net, frame: gpd.GeoDataFrame, row: int, metres: float) -> gpd.GeoDataFrame:
    """``frame`` with the point of ``row`` moved ``metres`` east of the network's extent."""
    east = float(net.x.max()) + metres
    geoms = [Point(east, p.y) if i == row else p for i, p in enumerate(frame.geometry)]
    return frame.set_geometry(geoms, crs=frame.crs)


def _km(text: str, name: str) -> float:
    """The distance the warning gives for ``name``, in km."""
    value, unit = re.search(rf"\b{name} \(([\d.]+) (k?m)\)", text).groups()
    return float(value) / (1 if unit == "km" else 1000)


def _warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_design_warns_about_a_rep_far_from_the_roads(net, caplog) -> None:
    acc, reps = _points(net, 30, "A"), _far(net, _points(net, 3, "T", "rep"), 2, 160_000)
    with caplog.at_level(logging.WARNING):
        territories.design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                                       balance_fields=["revenue"], tolerance_pct=50,
                                       network=net, time_limit_s=5)  # fmt: skip
    text = _warnings(caplog)
    assert "REPS: drive times cannot be trusted for 1 rep homes farther than 500 m" in text, text
    assert _km(text, "T2") >= 160
    assert "T0 (" not in text
    assert "T1 (" not in text


def test_rebalance_warns_about_accounts_far_from_the_roads(net, caplog) -> None:
    acc = _far(net, _points(net, 30, "A"), 4, 2_000).assign(current=["T0", "T1", "T2"] * 10)
    with caplog.at_level(logging.WARNING):
        rebalance.rebalance_territories(acc, id_field="id", current_field="current",
                                        balance_fields=["revenue"], tolerance_pct=50,
                                        network=net, time_limit_s=5)  # fmt: skip
    text = _warnings(caplog)
    assert "ACCOUNTS: drive times cannot be trusted for 1 accounts farther than" in text, text
    assert _km(text, "A4") >= 2


def test_catchments_tell_null_geometry_from_far(net, caplog) -> None:
    pts = _far(net, _points(net, 3, "O"), 1, 5_000)
    pts.loc[pts.index[2], "geometry"] = None
    with caplog.at_level(logging.WARNING):
        res = catchments.drive_time_catchments(net, pts, id_field="id", bands_minutes=[2])
    text = _warnings(caplog)
    assert sorted(res.unsnapped) == ["O1", "O2"]
    assert re.search(r"1 origins have a NULL or empty geometry .*: O2\.", text), text
    assert re.search(r"1 origins farther than 500 m .*: O1 \(", text), text
    assert _km(text, "O1") >= 5
    assert "O2 (" not in text  # a NULL geometry is not "far"


def test_matrix_tells_null_geometry_from_far(net, caplog) -> None:
    orig, dest = _points(net, 2, "O"), _far(net, _points(net, 2, "D"), 0, 1_500)
    orig.loc[orig.index[1], "geometry"] = None
    with caplog.at_level(logging.WARNING):
        table = matrix.travel_time_matrix(net, orig, dest, origin_id_field="id",
                                          destination_id_field="id")  # fmt: skip
    text = _warnings(caplog)
    assert re.search(r"ORIGINS: 1 origins have a NULL or empty geometry .*: O1\.", text), text
    assert re.search(r"DESTINATIONS: .* 1 destinations .*: D0 \(", text), text
    assert _km(text, "D0") >= 1.5
    assert table["minutes"].isna().sum() == 3


@pytest.mark.parametrize("layer", ["accounts", "reps"])
def test_null_ids_are_missing_ids_not_duplicates(net, layer: str) -> None:
    acc, reps = _points(net, 12, "A"), _points(net, 3, "T", "rep")
    acc["fid"] = np.arange(101, 113)
    if layer == "accounts":
        acc["id"] = [None, "", *acc["id"].iloc[2:]]
        pattern = r"ID_FIELD: 2 accounts have no id .* row 1 \(feature id 101\), row 2"
    else:
        reps["rep"] = ["T0", None, "T2"]
        pattern = r"REP_ID_FIELD: 1 reps have no id .* row 2\b.*Fill in their ids"
    with pytest.raises(InvalidInputError, match=pattern) as err:
        territories.design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                                       balance_fields=["revenue"], network=net)  # fmt: skip
    assert "duplicate" not in str(err.value)
    assert "None" not in str(err.value)


@pytest.mark.parametrize("layer", ["accounts", "reps"])
def test_null_geometries_are_named(net, layer: str) -> None:
    acc, reps = _points(net, 12, "A"), _points(net, 3, "T", "rep")
    frame = acc if layer == "accounts" else reps
    frame.loc[frame.index[1], "geometry"] = None
    key = "ACCOUNTS: 1 accounts" if layer == "accounts" else "REPS: 1 reps"
    name = "A1" if layer == "accounts" else "T1"
    with pytest.raises(InvalidInputError, match=rf"{key} have a NULL or empty geometry: {name}\."):
        territories.design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                                       balance_fields=["revenue"], network=net)  # fmt: skip
