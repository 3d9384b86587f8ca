"""Network engine checked against networkx on the real sample roads, plus bad-input messages."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import LineString, Point
from shapely.ops import substring

from territory_planner_plugin import catchments, matrix, network
from territory_planner_plugin.errors import Cancelled, InvalidInputError, NetworkUnavailableError

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


def _origins(net: network.RoadNetwork, idx: np.ndarray, offset: float = 2.0) -> gpd.GeoDataFrame:
    """Points ``offset`` m east and south of the nodes ``idx`` (0: on the nodes)."""
    return gpd.GeoDataFrame(
        {"id": [f"O{i}" for i in range(len(idx))]},
        geometry=[Point(net.x[i] + offset, net.y[i] - offset) for i in idx],
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
    pts = _origins(net, idx, offset=0.0)  # on the nodes: routes from node to node
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
        net, _origins(net, idx, offset=0.0), id_field="id", bands_minutes=[1, 2], shape=shape
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


def test_snap_finds_the_nearest_road(net: network.RoadNetwork) -> None:
    rng = np.random.default_rng(4)
    xy = np.column_stack([rng.uniform(net.x.min(), net.x.max(), 50),
                          rng.uniform(net.y.min(), net.y.max(), 50)])  # fmt: skip
    pts = gpd.GeoSeries(shapely.points(xy), crs=net.crs)
    pts.iloc[3] = None
    snap = network.snap_points(net, pts, max_snap_m=150.0)
    ok = np.flatnonzero(pts.notna().to_numpy())
    roads = net.edges.geometry.values
    ref = np.array([shapely.distance(roads, p).min() for p in pts.values[ok]])  # brute force
    assert np.allclose(snap.distance_m[ok], ref)
    near = ok[snap.edge_index[ok] >= 0]
    on_road = shapely.line_interpolate_point(roads[snap.edge_index[near]], snap.fraction[near],
                                             normalized=True)  # geometries drawn from u here  # fmt: skip
    assert np.allclose(shapely.distance(on_road, pts.values[near]), snap.distance_m[near])
    assert snap.node_index[3] == -1
    assert np.isinf(snap.distance_m[3])
    assert ((snap.node_index >= 0) == (snap.distance_m <= 150.0)).all()


_FAKE_WORKER_HEAD = """import os, pickle, sys, time
sys.path.insert(0, {plugin!r})
import _matrix_worker as w
"""
_FAKE_WORKERS = {
    # answers a version that is not this Python's
    "wrong_version": "pickle.load(sys.stdin.buffer); pickle.dump(('2.7', 'ready'), sys.stdout.buffer)\n",
    # numpy or scipy missing in the worker's Python
    "import_error": "pickle.load(sys.stdin.buffer)\n"
    "pickle.dump(('%d.%d' % sys.version_info[:2], 'ModuleNotFoundError: scipy'), sys.stdout.buffer)\n",
    # answers its first chunk, then dies with the next one
    "dies_mid_run": "calls = []\n"
    "def search(*args):\n"
    "    calls.append(1)\n"
    "    if len(calls) > 1:\n"
    "        os._exit(1)\n"
    "    return real(*args)\n"
    "real, w.search = w.search, search\nw.main()\n",
    # a real worker, slow (still searching when a test cancels)
    "slow": "def search(*args):\n    time.sleep(1.0)\n    return real(*args)\n"
    "real, w.search = w.search, search\nw.main()\n",
}


def _fake_worker(tmp_path: Path, kind: str) -> Path:
    """A worker script for ``matrix._WORKER_SCRIPT`` that misbehaves as ``kind`` says."""
    script = tmp_path / f"{kind}.py"
    plugin = str(Path(matrix.__file__).parent)
    script.write_text(_FAKE_WORKER_HEAD.format(plugin=plugin) + _FAKE_WORKERS[kind])
    return script


def _slow_here(monkeypatch: pytest.MonkeyPatch, searched: list[int], delay: float = 0.03) -> None:
    """This process's searches take ``delay`` s more per call (the sample network is tiny), counted."""
    real = matrix._search

    def search(weights, sources, targets, limit):
        searched.extend(sources)
        time.sleep(delay)
        return real(weights, sources, targets, limit)

    monkeypatch.setattr(matrix, "_search", search)


def _nodes(net: network.RoadNetwork) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    o_nodes = rng.choice(net.n_nodes, 120)  # with repeats: shared searches
    o_nodes[[4, 17]] = -1  # unsnapped
    d_nodes = rng.choice(net.n_nodes, 25)
    d_nodes[2] = -1
    return o_nodes, d_nodes


def test_matrix_worker_processes_equal_in_process(
    net: network.RoadNetwork, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    o_nodes, d_nodes = _nodes(net)
    ref = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=1)
    for max_minutes in (None, 1.5):
        one = matrix._times_and_km(net, o_nodes, d_nodes, max_minutes, None, None, workers=1)
        two = matrix._times_and_km(net, o_nodes, d_nodes, max_minutes, None, None, workers=2)
        assert np.array_equal(one[0], two[0])
        assert np.array_equal(one[1], two[1], equal_nan=True)
    assert np.isinf(one[0][4]).all()
    # the worker searched part of the origins (no silent fallback), this process the others
    searched: list[int] = []
    _slow_here(monkeypatch, searched)
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        two = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=2)
    assert "Matrix worker process started" in caplog.text
    assert "unavailable" not in caplog.text
    n_sources = len(np.unique(o_nodes[o_nodes >= 0]))
    assert len(searched) == len(set(searched)) < n_sources
    assert np.array_equal(ref[0], two[0])
    assert np.array_equal(ref[1], two[1], equal_nan=True)


@pytest.mark.parametrize("kind", ["exits_at_once", *_FAKE_WORKERS.keys() - {"slow"}])
def test_matrix_worker_failure_falls_back_in_process(
    net: network.RoadNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, kind: str,
) -> None:  # fmt: skip
    o_nodes, d_nodes = _nodes(net)
    one = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=1)
    if kind == "exits_at_once":  # a "python" that is not one
        if sys.platform == "win32":
            pytest.skip("shell script as the fake python")
        fake = tmp_path / "python3"
        fake.write_text("#!/bin/sh\nexit 3\n")
        fake.chmod(0o755)
        monkeypatch.setattr(matrix, "python_executable", lambda: str(fake))
    else:
        monkeypatch.setattr(matrix, "_WORKER_SCRIPT", _fake_worker(tmp_path, kind))
    _slow_here(monkeypatch, [], delay=0.03 if kind == "dies_mid_run" else 0.005)
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        two = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=2)
    assert "Matrix worker process unavailable" in caplog.text
    assert ("Matrix worker process started" in caplog.text) == (kind == "dies_mid_run")
    assert np.array_equal(one[0], two[0])
    assert np.array_equal(one[1], two[1], equal_nan=True)


def test_matrix_chunk_sent_to_a_dead_worker_is_searched_here(
    net: network.RoadNetwork, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that dies between two chunks makes the next send fail (broken pipe): that chunk
    must still be searched (it was once lost, leaving part of the matrix unsearched)."""
    o_nodes, d_nodes = _nodes(net)
    one = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=1)
    real_send = matrix._send
    sent_chunks: list[int] = []

    def send(stream, message) -> None:
        if isinstance(message, np.ndarray):  # a chunk of sources (not sys.path or the graph)
            sent_chunks.append(len(message))
            if len(sent_chunks) == 2:
                raise BrokenPipeError(32, "Broken pipe")
        real_send(stream, message)

    monkeypatch.setattr(matrix, "_send", send)
    _slow_here(monkeypatch, [], delay=0.03)
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        two = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=2)
    assert len(sent_chunks) >= 2
    assert "Broken pipe" in caplog.text
    assert np.array_equal(one[0], two[0])
    assert np.array_equal(one[1], two[1], equal_nan=True)


def test_matrix_cancel_stops_the_workers(
    net: network.RoadNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(matrix, "_WORKER_SCRIPT", _fake_worker(tmp_path, "slow"))
    _slow_here(monkeypatch, [], delay=0.05)
    procs: list[subprocess.Popen] = []
    real_start = matrix._start_worker

    def start(python: str) -> subprocess.Popen:
        procs.append(real_start(python))
        return procs[-1]

    monkeypatch.setattr(matrix, "_start_worker", start)
    o_nodes, d_nodes = _nodes(net)
    t0 = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"), \
            pytest.raises(Cancelled):  # fmt: skip
        # cancelled as soon as a worker has started: it is then in a 1 s search
        matrix._times_and_km(net, o_nodes, d_nodes, None, None,
                             lambda: "Matrix worker process started" in caplog.text,
                             workers=3)  # fmt: skip
    assert time.perf_counter() - t0 < 5
    assert len(procs) == 2
    assert all(proc.returncode is not None for proc in procs)  # killed and reaped
    if sys.platform.startswith("linux"):
        assert not any(Path(f"/proc/{proc.pid}").exists() for proc in procs)  # no zombies
    assert not [t for t in threading.enumerate() if t.name == "matrix-worker-feed"]


def test_todo_chunks_front_and_back() -> None:
    todo = matrix._Todo(4, 200, 2)
    assert todo.take(front=True, most=2) == (4, 6)
    assert todo.take(front=False) == (184, 200)
    taken = [(4, 6), (184, 200)]
    while (span := todo.take(front=len(taken) % 2 == 0)) is not None:
        taken.append(span)
    assert sorted(b - a for a, b in taken)[0] == 1  # smaller towards the end
    todo.give_back([(10, 12), (40, 41)])
    assert todo.count() == 3
    while (span := todo.take(front=True)) is not None:
        taken.append(span)
    covered = sorted(i for a, b in taken for i in range(a, b))
    assert covered == sorted([*range(4, 200), 10, 11, 40])


def test_worker_processes_only_from_python_and_for_long_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert matrix.pool_size(matrix._POOL_MIN_SECONDS / 2) == 1  # short jobs stay in-process
    assert matrix.pool_size(100.0) >= 1
    fake = tmp_path / "qgis-bin.exe"
    fake.write_text("")
    assert not matrix._is_python_interpreter(str(fake))
    assert not matrix._is_python_interpreter(str(tmp_path / "python3"))  # does not exist
    assert not matrix._is_python_interpreter("")
    assert matrix._is_python_interpreter(sys.executable) == (
        Path(sys.executable).name.lower().startswith("python")
    )


def test_worker_python_found_when_running_inside_qgis(
    net: network.RoadNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    qgis = tmp_path / "qgis"  # what sys.executable is inside QGIS
    qgis.write_text("")
    monkeypatch.setattr(sys, "executable", str(qgis))
    python = matrix.python_executable()
    assert python is not None
    assert matrix._is_python_interpreter(python)
    version = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert version == [str(v) for v in sys.version_info[:2]]
    # and workers run under it, with this process's sys.path for numpy and scipy
    o_nodes, d_nodes = _nodes(net)
    one = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=1)
    searched: list[int] = []
    _slow_here(monkeypatch, searched)
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        two = matrix._times_and_km(net, o_nodes, d_nodes, None, None, None, workers=2)
    assert f"Matrix worker process started ({python}," in caplog.text
    assert np.array_equal(one[0], two[0])
    assert np.array_equal(one[1], two[1], equal_nan=True)


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


# ------------------------------------------------------------ snapping to the nearest road (edge)


def _split_reference(net: network.RoadNetwork, points: list) -> tuple[nx.DiGraph, list]:
    """networkx reference: each point's nearest road (brute force) split where the point projects.

    Every directed edge along that road (equal geometry: both ways of a two-way road) is cut in
    two at the projection, each piece keeping its share of time and length by distance along the
    geometry. Returns the graph (road nodes, plus ``("p", k)``) and each point's node in it.
    """
    pieces = {
        i: (int(u), int(v), geom, float(t), float(m))
        for i, (u, v, geom, t, m) in enumerate(zip(
            net.edges["u_idx"], net.edges["v_idx"], net.edges.geometry,
            net.edges["travel_time_s"], net.edges["length_m"]))
    }  # fmt: skip
    where: list = []
    for k, p in enumerate(points):
        keys = list(pieces)
        best = pieces[keys[int(np.argmin([pieces[i][2].distance(p) for i in keys]))]][2]
        q = best.interpolate(best.project(p))
        node: object = ("p", k)
        for i in keys:
            a, b, geom, t, m = pieces[i]
            if not geom.equals(best):
                continue
            along = geom.project(q) / geom.length  # sample geometries are drawn from u
            if along <= 1e-9 or along >= 1 - 1e-9:
                node = a if along <= 1e-9 else b
                break
            del pieces[i]
            pieces[f"{i}a{k}"] = (a, node, substring(geom, 0, along, normalized=True),
                                  t * along, m * along)  # fmt: skip
            pieces[f"{i}b{k}"] = (node, b, substring(geom, along, 1, normalized=True),
                                  t * (1 - along), m * (1 - along))  # fmt: skip
        where.append(node)
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))
    g.add_nodes_from(where)
    for a, b, _, t, m in pieces.values():
        if a != b and (not g.has_edge(a, b) or g[a][b]["w"] > t):
            g.add_edge(a, b, w=t, m=m)
    return g, where


def _beside(net: network.RoadNetwork, rows, fractions, offset: float) -> list[Point]:
    """Points ``offset`` m to the left of the edges ``rows`` at ``fractions`` along them."""
    out = []
    for e, f in zip(rows, fractions):
        line = net.edges.geometry.iloc[int(e)]
        p0 = line.interpolate(f - 1e-3, normalized=True)
        p1 = line.interpolate(f + 1e-3, normalized=True)
        dx, dy = p1.x - p0.x, p1.y - p0.y
        norm = np.hypot(dx, dy)
        mid = line.interpolate(f, normalized=True)
        out.append(Point(mid.x - dy / norm * offset, mid.y + dx / norm * offset))
    return out


def _frame(points: list, crs: str, prefix: str = "P") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": [f"{prefix}{k}" for k in range(len(points))]},
                            geometry=points, crs=crs)  # fmt: skip


def test_points_between_intersections_match_split_networkx_graph(
    net: network.RoadNetwork,
) -> None:
    """Times, km and catchments from points beside roads equal networkx on the split graph."""
    rng = np.random.default_rng(7)
    rows = rng.choice(len(net.edges), 12, replace=False)
    one_way = np.flatnonzero(net.reverse_edge < 0)[:1]
    rows = np.concatenate([rows, rows[:2], one_way, one_way])  # two points on some roads
    pts = _beside(net, rows, rng.uniform(0.1, 0.9, len(rows)), 4.0)
    frame = _frame(pts, net.crs)
    snap = network.snap_points(net, frame.geometry, max_snap_m=500.0)
    assert (snap.distance_m < 4.5).all()
    inside = (snap.fraction > 0) & (snap.fraction < 1)
    assert inside.all(), "all points between intersections"
    table = matrix.travel_time_matrix(net, frame, frame, origin_id_field="id",
                                      destination_id_field="id")  # fmt: skip
    g, where = _split_reference(net, pts)
    n = len(pts)
    checked = 0
    for a in range(n):
        ref = nx.single_source_dijkstra_path_length(g, where[a], weight="w")
        for b in range(n):
            row = table.iloc[a * n + b]
            if where[b] in ref:
                assert row["minutes"] == pytest.approx(ref[where[b]] / 60, abs=0.01)
                checked += 1
            else:
                assert np.isnan(row["minutes"])
    assert checked > n  # most pairs are connected
    # km: the length of networkx's fastest path
    for a, b in ((0, 1), (2, 3), (4, 5)):
        if nx.has_path(g, where[a], where[b]):
            path = nx.dijkstra_path(g, where[a], where[b], weight="w")
            km = sum(g[p][q]["m"] for p, q in zip(path, path[1:])) / 1000
            assert table.iloc[a * n + b]["km"] == pytest.approx(km, rel=0.01, abs=0.002)
    # the cost matrix used by designterritories gives the same minutes from the snaps
    minutes = matrix.cost_matrix_minutes(net, snap, snap)
    assert np.allclose(np.where(np.isfinite(minutes), minutes, np.nan),
                       table["minutes"].to_numpy().reshape(n, n), equal_nan=True)  # fmt: skip
    # catchments: the road nodes reached within 2 minutes, counted without the added points
    res = catchments.drive_time_catchments(net, frame, id_field="id", bands_minutes=[2])
    for k, row in res.polygons.reset_index(drop=True).iterrows():
        ego = nx.single_source_dijkstra_path_length(g, where[k], cutoff=120, weight="w")
        assert row["reachable_nodes"] == sum(isinstance(x, int) for x in ego)
        assert row.geometry.distance(pts[k]) < 4.5  # the polygon reaches the point's road


def test_point_beside_a_long_road_snaps_to_the_road(net: network.RoadNetwork) -> None:
    """20 m from the middle of the longest road: far from any node, close to the road."""
    e = int(np.argmax(net.edges["length_m"]))
    p = _beside(net, [e], [0.5], 20.0)[0]
    node_dist = np.hypot(net.x - p.x, net.y - p.y).min()
    assert node_dist > 200  # snapping to nodes would leave it unsnapped at MAX_SNAP 100 m
    frame = _frame([p], net.crs)
    snap = network.snap_points(net, frame.geometry, max_snap_m=100.0)
    assert snap.distance_m[0] == pytest.approx(20.0, abs=1.0)
    assert snap.edge_index[0] >= 0
    assert 0.3 < snap.fraction[0] < 0.7
    res = catchments.drive_time_catchments(net, frame, id_field="id", bands_minutes=[2],
                                           max_snap_m=100.0)  # fmt: skip
    assert res.unsnapped == []
    assert res.polygons["snap_m"].iloc[0] == pytest.approx(20.0, abs=1.0)
    assert res.polygons["reachable_nodes"].iloc[0] > 0
    ends = _origins(net, np.array([net.edges["u_idx"].iloc[e], net.edges["v_idx"].iloc[e]]), 0.0)
    table = matrix.travel_time_matrix(net, frame, ends, origin_id_field="id",
                                      destination_id_field="id", max_snap_m=100.0)  # fmt: skip
    assert table["minutes"].notna().any()


def _line_network(two_way: bool, with_loop: bool = False) -> network.RoadNetwork:
    """A 1,000 m road A -> B at 60 km/h (also B -> A when ``two_way``); with ``with_loop`` a way
    back B -> C -> A (two 1,000 m two-way roads)."""
    crs = "EPSG:32635"
    xy = {1: (500_000.0, 6_700_000.0), 2: (501_000.0, 6_700_000.0), 3: (500_500.0, 6_700_866.0)}
    roads = [(1, 2)] + ([(2, 1)] if two_way else [])
    if with_loop:
        roads += [(2, 3), (3, 2), (3, 1), (1, 3)]
    nodes = gpd.GeoDataFrame({"osmid": list(xy)}, geometry=[Point(p) for p in xy.values()], crs=crs)
    edges = gpd.GeoDataFrame(
        {"u": [a for a, _ in roads], "v": [b for _, b in roads],
         "length_m": [1000.0] * len(roads), "travel_time_s": [60.0] * len(roads)},
        geometry=[LineString([xy[a], xy[b]]) for a, b in roads], crs=crs,
    )  # fmt: skip
    return network.network_from_frames(nodes, edges)


@pytest.mark.parametrize("two_way", [False, True])
def test_one_way_road_cannot_be_driven_backwards_from_the_point(two_way: bool) -> None:
    net = _line_network(two_way, with_loop=True)
    x0, y0 = net.x[0], net.y[0]
    pts = [Point(x0 + 250, y0 + 3), Point(x0, y0), Point(x0 + 1000, y0)]  # P, A, B
    frame = _frame(pts, net.crs)
    table = matrix.travel_time_matrix(net, frame, frame, origin_id_field="id",
                                      destination_id_field="id")  # fmt: skip
    minutes = table["minutes"].to_numpy().reshape(3, 3)
    back = 0.25 if two_way else 0.75 + 1 + 1  # P -> A: 250 m back, or on to B and round by C
    assert minutes[0, 1] == pytest.approx(back, abs=1e-3)
    assert minutes[0, 2] == pytest.approx(0.75, abs=1e-3)  # P -> B
    assert minutes[1, 0] == pytest.approx(0.25, abs=1e-3)  # A -> P
    assert minutes[2, 0] == pytest.approx(0.75 if two_way else 1 + 1 + 0.25, abs=1e-3)  # B -> P
    assert table["km"].to_numpy().reshape(3, 3)[0, 2] == pytest.approx(0.75, abs=1e-3)
    # roads catchment of half a minute: 500 m on from P; back towards A only on a two-way road
    res = catchments.drive_time_catchments(net, frame.iloc[:1], id_field="id",
                                           bands_minutes=[0.5], shape="roads")  # fmt: skip
    geom = res.polygons.geometry.iloc[0]
    assert geom.contains(Point(x0 + 700, y0))
    assert not geom.intersects(Point(x0 + 850, y0))
    assert geom.contains(Point(x0 + 100, y0)) == two_way
    assert res.polygons["reachable_nodes"].iloc[0] == (1 if two_way else 0)


@pytest.mark.parametrize("two_way", [False, True])
def test_origin_and_destination_on_the_same_road(two_way: bool) -> None:
    net = _line_network(two_way)
    x0, y0 = net.x[0], net.y[0]
    pts = [Point(x0 + 200, y0 - 5), Point(x0 + 700, y0 + 5), Point(x0 + 500, y0),
           Point(x0 + 200, y0 - 5)]  # fmt: skip
    frame = _frame(pts, net.crs)
    table = matrix.travel_time_matrix(net, frame, frame, origin_id_field="id",
                                      destination_id_field="id")  # fmt: skip
    minutes = table["minutes"].to_numpy().reshape(4, 4)
    km = table["km"].to_numpy().reshape(4, 4)
    assert minutes[0, 1] == pytest.approx(0.5, abs=1e-3)  # 500 m at 60 km/h
    assert km[0, 1] == pytest.approx(0.5, abs=1e-3)
    assert minutes[0, 2] == pytest.approx(0.3, abs=1e-3)
    assert minutes[2, 1] == pytest.approx(0.2, abs=1e-3)
    assert minutes[0, 3] == 0  # the same place
    assert minutes[3, 0] == 0
    if two_way:
        assert minutes[1, 0] == pytest.approx(0.5, abs=1e-3)
    else:
        assert np.isnan(minutes[1, 0])  # no way back on a one-way road alone
    snap = network.snap_points(net, frame.geometry, max_snap_m=50.0)
    routing = network.with_points(net, snap, snap)
    assert routing.n_road_nodes == net.n_nodes
    assert routing.net.n_nodes == net.n_nodes + 3  # equal positions share one added node
    assert routing.nodes[0][0] == routing.nodes[0][3] == routing.nodes[1][0]


def test_points_on_nodes_give_the_node_to_node_numbers(net: network.RoadNetwork) -> None:
    idx = np.random.default_rng(2).choice(net.n_nodes, 15, replace=False)
    pts = _origins(net, idx, offset=0.0)
    snap = network.snap_points(net, pts.geometry, max_snap_m=1.0)
    assert np.array_equal(snap.node_index, idx)
    assert np.allclose(snap.distance_m, 0.0)
    assert np.isin(snap.fraction, [0.0, 1.0]).all()
    routing = network.with_points(net, snap)
    assert routing.net is net
    assert np.array_equal(routing.nodes[0], idx)
    table = matrix.travel_time_matrix(
        net, pts, pts, origin_id_field="id", destination_id_field="id"
    )
    old, old_km = matrix._times_and_km(net, idx, idx, None, None, None, workers=1)
    old = np.where(np.isfinite(old), old, np.nan)
    assert np.array_equal(table["minutes"].to_numpy().reshape(15, 15), old, equal_nan=True)
    assert np.array_equal(table["km"].to_numpy().reshape(15, 15), old_km, equal_nan=True)
    assert np.array_equal(matrix.cost_matrix_minutes(net, snap, snap),
                          matrix.cost_matrix_minutes(net, idx, idx))  # fmt: skip


def test_reverse_edges_pair_the_two_ways_of_a_road(net: network.RoadNetwork) -> None:
    rev = net.reverse_edge
    u, v = net.edges["u_idx"].to_numpy(), net.edges["v_idx"].to_numpy()
    geoms = net.edges.geometry.values
    for e in range(len(rev)):
        same = [r for r in range(len(rev)) if r != e and u[r] == v[e] and v[r] == u[e]
                and geoms[r].equals(geoms[e])]  # fmt: skip
        assert (rev[e] in same) if same else rev[e] == -1
    assert (rev >= 0).any()
    assert (rev < 0).any()  # the sample has one-way streets
    assert len(net.road_edges) == (rev < 0).sum() + (rev >= 0).sum() // 2


def test_encoding_takes_coarser_steps_on_large_networks(caplog) -> None:
    """Time x scale must stay below 2**53; bigger networks get coarser steps, never wrong km."""
    small = matrix._encoding(np.full(1000, 8.0), np.full(1000, 100.0))
    assert small[:2] == (100.0, 10.0)
    big = matrix._encoding(np.full(400_000, 8.0), np.full(400_000, 100.0))  # the benchmark's size
    assert big[:2] == (10.0, 1.0)
    for per_s, _per_m, scale, _weights in (small, big):
        t_sum = np.full(1, 8.0 * per_s).sum() * (1000 if per_s == 100 else 400_000)
        assert t_sum * scale < 2.0**53
    with caplog.at_level("WARNING"):
        huge = matrix._encoding(np.full(10**6, 6000.0), np.full(10**6, 100_000.0))
    assert huge[2] == 0.0
    assert "km column stays empty" in caplog.text


@pytest.mark.parametrize("resolution", [(10.0, 1.0), (1.0, 0.1)])
def test_matrix_km_at_coarse_steps_matches_networkx(net, monkeypatch, resolution) -> None:
    """Forced coarse steps (as on a large network): times within the rounding, km still filled."""
    monkeypatch.setattr(matrix, "_RESOLUTIONS", (resolution,))
    idx = np.random.default_rng(2).choice(net.n_nodes, 8, replace=False)
    pts = _origins(net, idx, offset=0.0)
    table = matrix.travel_time_matrix(
        net, pts, pts, origin_id_field="id", destination_id_field="id"
    )
    g = _nx_graph(net)
    lengths = dict(zip(zip(net.edges["u_idx"], net.edges["v_idx"]), net.edges["length_m"]))
    step = 1 / resolution[0]  # seconds per segment at most half of this off, plus ties
    checked = 0
    for a, ia in enumerate(idx):
        ref = nx.single_source_dijkstra_path_length(g, int(ia), weight="w")
        for b, ib in enumerate(idx):
            row = table.iloc[a * len(idx) + b]
            if int(ib) not in ref or a == b:
                continue
            path = nx.dijkstra_path(g, int(ia), int(ib), weight="w")
            assert row["minutes"] == pytest.approx(ref[int(ib)] / 60, abs=len(path) * step / 60)
            km = sum(lengths[(u, v)] for u, v in zip(path, path[1:])) / 1000
            assert row["km"] == pytest.approx(km, rel=0.05, abs=len(path) * 0.02)
            checked += 1
    assert checked > 20


def test_processes_environment_variable(monkeypatch, caplog) -> None:
    """TERRITORY_PLANNER_PROCESSES fixes the number of processes; a bad value is named and ignored."""
    monkeypatch.setenv(matrix.WORKERS_ENV, "1")
    assert matrix.pool_size(1000.0) == 1
    monkeypatch.setenv(matrix.WORKERS_ENV, "3")
    assert matrix.pool_size(0.0) == 3
    monkeypatch.setenv(matrix.WORKERS_ENV, "two")
    with caplog.at_level("WARNING"):
        assert matrix.pool_size(0.0) == 1
    assert "TERRITORY_PLANNER_PROCESSES='two'" in caplog.text
