"""Network engine checked against networkx on the real sample roads, plus bad-input messages."""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString, Point

from territory_planner_plugin import catchments, matrix, network
from territory_planner_plugin.errors import InvalidInputError, NetworkUnavailableError

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    graph = network.build_road_network(DATA / "helsinki.osm.pbf")
    path = tmp_path_factory.mktemp("net") / "net.gpkg"
    network.save_network(graph, path)
    return path


@pytest.fixture(scope="module")
def net(gpkg: Path) -> network.RoadNetwork:
    return network.load_network(gpkg)


def _nx_graph(net: network.RoadNetwork) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))
    for u, v, t in zip(net.edges["u_idx"], net.edges["v_idx"], net.edges["travel_time_s"]):
        if u != v and (not g.has_edge(u, v) or g[u][v]["w"] > t):
            g.add_edge(u, v, w=t)
    return g


def _origins(net: network.RoadNetwork, idx: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": [f"O{i}" for i in range(len(idx))]},
        geometry=[Point(net.x[i] + 2, net.y[i] - 2) for i in idx],
        crs=net.crs,
    )


def test_gpkg_round_trip_has_layers_and_units(gpkg: Path) -> None:
    edges = gpd.read_file(gpkg, layer="edges")
    nodes = gpd.read_file(gpkg, layer="nodes")
    assert {"u", "v", "length_m", "speed_kph", "travel_time_s"} <= set(edges.columns)
    assert len(nodes) == 174
    assert (edges["travel_time_s"] > 0).all()
    ratio = edges["length_m"] / edges["travel_time_s"] * 3.6
    assert np.allclose(ratio, edges["speed_kph"], rtol=0.02)


def test_matrix_matches_networkx_dijkstra(net: network.RoadNetwork) -> None:
    rng = np.random.default_rng(1)
    idx = rng.choice(net.n_nodes, 12, replace=False)
    pts = _origins(net, idx)
    table = matrix.travel_time_matrix(
        net, pts, pts, origin_id_field="id", destination_id_field="id"
    )
    g = _nx_graph(net)
    lengths = dict(zip(zip(net.edges["u_idx"], net.edges["v_idx"]), net.edges["length_m"]))
    for a, ia in enumerate(idx):
        ref = nx.single_source_dijkstra_path_length(g, int(ia), weight="w")
        for b, ib in enumerate(idx):
            row = table.iloc[a * len(idx) + b]
            if int(ib) in ref:
                assert row["minutes"] == pytest.approx(ref[int(ib)] / 60, abs=0.01)
            else:
                assert np.isnan(row["minutes"])
    # km of one route equals the length of networkx's fastest path
    a, b = int(idx[0]), int(idx[1])
    if nx.has_path(g, a, b):
        path = nx.dijkstra_path(g, a, b, weight="w")
        km = sum(min(lengths.get((u, v), np.inf), 1e12) for u, v in zip(path, path[1:])) / 1000
        assert table.iloc[1]["km"] == pytest.approx(km, rel=0.01, abs=0.002)


def test_matrix_cutoff_gives_null(net: network.RoadNetwork) -> None:
    pts = _origins(net, np.arange(0, 40, 4))
    full = matrix.travel_time_matrix(net, pts, pts, origin_id_field="id", destination_id_field="id")
    cut = matrix.travel_time_matrix(
        net, pts, pts, origin_id_field="id", destination_id_field="id", max_minutes=1.0
    )
    beyond = full["minutes"] > 1.0
    assert beyond.any()
    assert cut.loc[beyond, "minutes"].isna().all()
    assert np.allclose(cut.loc[~beyond & full["minutes"].notna(), "minutes"],
                       full.loc[~beyond & full["minutes"].notna(), "minutes"])  # fmt: skip


@pytest.mark.parametrize("shape", ["convex", "concave", "roads"])
def test_catchments_reach_the_networkx_ego_graph(net: network.RoadNetwork, shape: str) -> None:
    idx = np.array([5, 60, 120])
    res = catchments.drive_time_catchments(
        net, _origins(net, idx), id_field="id", bands_minutes=[1, 2], shape=shape
    )
    g = _nx_graph(net)
    for k, i in enumerate(idx):
        ego = nx.ego_graph(g, int(i), radius=120, distance="w")
        mine = catchments.reachable_nodes(net, int(i), 120)
        assert set(mine) == set(ego.nodes)
        rows = res.polygons[res.polygons["origin_id"] == f"O{k}"].sort_values("band_min")
        assert list(rows["reachable_nodes"])[-1] == len(ego)
        small, big = rows.geometry.to_numpy()
        assert big.buffer(1.0).contains(small) or shape != "convex"
        pts = gpd.points_from_xy(net.x[mine], net.y[mine])
        assert big.buffer(1.0).contains(pts).all()


def test_partition_does_not_overlap(net: network.RoadNetwork) -> None:
    res = catchments.drive_time_catchments(
        net, _origins(net, np.array([5, 60, 120])), id_field="id", bands_minutes=[1, 2],
        partition=True,
    )  # fmt: skip
    polys = res.polygons
    assert polys["origin_id"].isna().any(), "an explicit unreachable class is expected"
    assert polys.union_all().area == pytest.approx(polys.area.sum(), rel=1e-6)
    assert polys["reachable_nodes"].sum() == net.n_nodes


def test_unsnapped_origins_are_listed(net: network.RoadNetwork) -> None:
    pts = _origins(net, np.array([5, 60]))
    pts.loc[len(pts)] = {"id": "FAR", "geometry": Point(net.x.max() + 5000, net.y.max())}
    res = catchments.drive_time_catchments(net, pts, id_field="id", bands_minutes=[2])
    assert res.unsnapped == ["FAR"]
    assert set(res.polygons["origin_id"]) == {"O0", "O1"}


@pytest.mark.parametrize(
    ("bands", "needle"), [([5, 5], "increasing"), ([-1], "positive"), ([10, 5], "increasing")]
)
def test_bad_bands(net: network.RoadNetwork, bands: list, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=f"BANDS.*{needle}"):
        catchments.drive_time_catchments(
            net, _origins(net, np.array([5])), id_field="id", bands_minutes=bands
        )


def test_non_point_origins_are_named(net: network.RoadNetwork) -> None:
    bad = gpd.GeoDataFrame(
        {"id": ["L1"]}, geometry=[LineString([(net.x[0], net.y[0]), (net.x[1], net.y[1])])],
        crs=net.crs,
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="L1"):
        catchments.drive_time_catchments(net, bad, id_field="id", bands_minutes=[5])


def test_inputs_not_modified(net: network.RoadNetwork) -> None:
    pts = _origins(net, np.array([5, 60]))
    before = pts.copy()
    catchments.drive_time_catchments(net, pts, id_field="id", bands_minutes=[1, 2])
    matrix.travel_time_matrix(net, pts, pts, origin_id_field="id", destination_id_field="id")
    assert pts.equals(before)


def test_speed_overrides_change_times(tmp_path: Path) -> None:
    slow = network.build_road_network(DATA / "helsinki.osm.pbf", speeds_kph={"primary": 5})
    fast = network.build_road_network(DATA / "helsinki.osm.pbf")
    t_slow = sum(d["travel_time"] for *_, d in slow.edges(data=True) if d["highway"] == "primary")
    t_fast = sum(d["travel_time"] for *_, d in fast.edges(data=True) if d["highway"] == "primary")
    assert t_slow > 3 * t_fast > 0


@pytest.mark.parametrize("text", ["motorway", "primary=fast", "primary=-3", "=50"])
def test_bad_speeds_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidInputError, match="SPEEDS"):
        network.parse_speeds(text)


def test_truncated_osm_file(tmp_path: Path) -> None:
    data = (DATA / "helsinki.osm.pbf").read_bytes()
    bad = tmp_path / "cut.osm.pbf"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises((NetworkUnavailableError, InvalidInputError), match=r"cut\.osm\.pbf"):
        network.build_road_network(bad)


def test_engine_imports_no_qgis() -> None:
    code = (
        "import sys; import territory_planner_plugin.network, territory_planner_plugin.catchments,"
        " territory_planner_plugin.matrix, territory_planner_plugin.report,"
        " territory_planner_plugin.export, territory_planner_plugin.palette;"
        " assert not [m for m in sys.modules if m.split('.')[0] == 'qgis'], 'qgis imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bounded_search_equals_full_dijkstra(net: network.RoadNetwork) -> None:
    for source in (0, 5, 60, 120, net.n_nodes - 1):
        full = dijkstra(net.time_csr, indices=source)
        for limit in (30.0, 90.0, 240.0):
            nodes, seconds = catchments._reached_within(net, np.array([source]), limit)[0]
            assert np.array_equal(nodes, np.flatnonzero(full <= limit))
            assert np.array_equal(seconds, full[nodes])


def test_fast_convex_hull_equals_geos(net: network.RoadNetwork) -> None:
    rng = np.random.default_rng(3)
    sets = [catchments.reachable_nodes(net, int(i), 180) for i in (5, 60, 120)]
    sets = [np.column_stack([net.x[s], net.y[s]]) for s in sets if len(s) >= 3]
    sets += [rng.normal(size=(n, 2)) * 500 + 6.6e6 for n in (3, 40, 400)]
    sets += [np.round(rng.uniform(0, 4, size=(300, 2))) + 3e5]  # many ties and collinear points
    t = rng.uniform(size=100)
    sets += [np.column_stack([t, 2 * t]) * 100 + 1e6]  # all collinear: a line, no area
    angle = rng.uniform(0, 2 * np.pi, 200)
    sets += [np.column_stack([np.cos(angle), np.sin(angle)]) * 1e4 + 6.6e6]  # all on the hull
    for xy in sets:
        mine = catchments._convex_hull(xy[:, 0], xy[:, 1])
        ref = shapely.multipoints(xy).convex_hull
        assert mine.normalize().equals_exact(ref.normalize(), 0)


def test_snap_kdtree_matches_strtree(net: network.RoadNetwork) -> None:
    rng = np.random.default_rng(4)
    xy = np.column_stack([rng.uniform(net.x.min(), net.x.max(), 50),
                          rng.uniform(net.y.min(), net.y.max(), 50)])  # fmt: skip
    pts = gpd.GeoSeries(shapely.points(xy), crs=net.crs)
    pts.iloc[3] = None
    snap = network.snap_points(net, pts, max_snap_m=150.0)
    tree = shapely.STRtree(shapely.points(net.x, net.y))
    ok = np.flatnonzero(pts.notna().to_numpy())
    _, ref = tree.query_nearest(pts.values[ok], return_distance=True, all_matches=False)
    assert np.allclose(snap.distance_m[ok], ref)
    assert snap.node_index[3] == -1
    assert np.isinf(snap.distance_m[3])
    assert ((snap.node_index >= 0) == (snap.distance_m <= 150.0)).all()


def test_matrix_worker_processes_equal_in_process(net: network.RoadNetwork) -> None:
    rng = np.random.default_rng(5)
    o_nodes = rng.choice(net.n_nodes, 60)  # with repeats: shared searches
    o_nodes[[4, 17]] = -1  # unsnapped
    d_nodes = rng.choice(net.n_nodes, 25)
    d_nodes[2] = -1
    for max_minutes in (None, 1.5):
        one = matrix._times_and_km(net, o_nodes, d_nodes, max_minutes, None, None, workers=1)
        two = matrix._times_and_km(net, o_nodes, d_nodes, max_minutes, None, None, workers=2)
        assert np.array_equal(one[0], two[0])
        assert np.array_equal(one[1], two[1], equal_nan=True)
    assert np.isinf(one[0][4]).all()
    # the worker ran the chunks it was given (no silent fallback), this process the others
    sources, targets = np.arange(0, 112, dtype=np.int32), d_nodes[d_nodes >= 0]
    stored, here = {}, []
    todo = deque(range(0, 112, 16))
    matrix._search_shared(1, net.time_csr, sources, targets, np.inf, todo, stored.__setitem__,
                          here.append)  # fmt: skip
    assert not todo
    assert here[0] == 0  # this process starts at the front while the worker starts
    assert {96, 80, 64, 48} <= set(stored)  # the worker's first four, from the back
    assert sorted(here + list(stored)) == list(range(0, 112, 16))
    ref = dijkstra(net.time_csr, indices=sources[96:112])[:, targets]
    assert np.array_equal(stored[96], ref)


def test_worker_processes_only_from_python_and_for_long_jobs(tmp_path: Path) -> None:
    assert matrix._pool_size(0.5) == 1  # short jobs stay in-process
    fake = tmp_path / "qgis-bin.exe"
    fake.write_text("")
    assert not matrix._is_python_interpreter(str(fake))
    assert not matrix._is_python_interpreter(str(tmp_path / "python3"))  # does not exist
    assert not matrix._is_python_interpreter("")
    assert matrix._is_python_interpreter(sys.executable) == (
        Path(sys.executable).name.lower().startswith("python")
    )


@pytest.mark.parametrize("reverse_geometry", [False, True])
def test_roads_shape_cuts_the_edge_where_time_runs_out(reverse_geometry: bool) -> None:
    """One 1,000 m road at 60 km/h: half a minute reaches its first 500 m, not the far end."""
    from shapely.geometry import LineString, Point

    crs = "EPSG:32635"
    a, b = (500_000.0, 6_700_000.0), (501_000.0, 6_700_000.0)
    nodes = gpd.GeoDataFrame({"osmid": [1, 2]}, geometry=[Point(a), Point(b)], crs=crs)
    line = LineString([b, a] if reverse_geometry else [a, b])
    edges = gpd.GeoDataFrame({"u": [1], "v": [2], "length_m": [1000.0], "travel_time_s": [60.0]},
                             geometry=[line], crs=crs)  # fmt: skip
    net = network.network_from_frames(nodes, edges)
    origin = gpd.GeoDataFrame({"id": ["o"]}, geometry=[Point(a)], crs=crs)
    res = catchments.drive_time_catchments(net, origin, id_field="id", bands_minutes=[0.5],
                                           shape="roads")  # fmt: skip
    geom = res.polygons.geometry.iloc[0]
    assert geom.contains(Point(a[0] + 450, a[1]))
    assert not geom.intersects(Point(a[0] + 600, a[1]))
    expected = LineString([a, (a[0] + 500, a[1])]).buffer(catchments._ROAD_BUFFER_M).area
    assert geom.area == pytest.approx(expected, rel=0.02)
