"""Road networks: read OSM files (or download an extent) with OSMnx, save/load them as GeoPackage."""

from __future__ import annotations

import bz2
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components

from ._validate import listed
from .errors import InvalidInputError, NetworkUnavailableError
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

OSM_SUFFIXES = (".osm", ".osm.pbf", ".pbf", ".osm.bz2", ".graphml")

_DRIVE = {
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
    "secondary", "secondary_link", "tertiary", "tertiary_link", "unclassified",
    "residential", "living_street", "road",
}  # fmt: skip
_HIGHWAYS = {
    "drive": _DRIVE,
    "drive_service": _DRIVE | {"service"},
    "walk": _DRIVE
    | {"service", "footway", "pedestrian", "path", "steps", "track", "cycleway", "living_street"},
    "bike": _DRIVE | {"service", "cycleway", "path", "track", "living_street"},
    "all": None,
}
NETWORK_TYPES = tuple(_HIGHWAYS)
_MIN_EDGE_SECONDS = 0.01


@dataclass(frozen=True)
class RoadNetwork:
    """A road network ready for shortest paths: projected coordinates and CSR weight matrices."""

    crs: str
    node_ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    time_csr: sp.csr_matrix
    length_csr: sp.csr_matrix
    edges: gpd.GeoDataFrame

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def component_labels(self) -> np.ndarray:
        """Weakly connected component label of each node."""
        return connected_components(self.time_csr, directed=True, connection="weak")[1]

    @cached_property
    def reverse_edge(self) -> np.ndarray:
        """Row in ``edges`` of the same road driven the other way (v to u), -1 on one-way roads."""
        return _reverse_edges(self.edges)

    @cached_property
    def road_edges(self) -> np.ndarray:
        """Rows of ``edges`` standing for one road each: every one-way edge, the lower row of a pair."""
        rev = self.reverse_edge
        return np.flatnonzero((rev < 0) | (np.arange(len(rev)) < rev))

    @cached_property
    def edge_tree(self) -> shapely.STRtree:
        """STRtree of the road geometries (one per road, :attr:`road_edges`), for snapping."""
        return shapely.STRtree(self.edges.geometry.values[self.road_edges])


@dataclass(frozen=True)
class SnapResult:
    """Where each point meets the road network, and how far it is from it.

    ``distance_m``: metres to the nearest road (inf for a missing geometry). The other arrays
    are -1 / NaN where the point is farther than the snapping limit: ``edge_index``, the row in
    ``net.edges`` of that road (one of :attr:`RoadNetwork.road_edges`: a two-way road's lower row);
    ``fraction``, the position along it from its ``u_idx`` end (0) to its ``v_idx`` end (1);
    ``node_index``, the nearer of the two end nodes along the road. Without ``edge_index`` (None)
    the points are at the nodes ``node_index``.
    """

    node_index: np.ndarray
    distance_m: np.ndarray
    edge_index: np.ndarray | None = None
    fraction: np.ndarray | None = None


@dataclass(frozen=True)
class SnappedNetwork:
    """A road network with one added node per snapped position on a road, to route from/to points.

    ``net`` has the added nodes after the ``n_road_nodes`` road nodes (in ``time_csr``,
    ``length_csr``, ``x``, ``y``; ``edges`` are the road edges only). ``nodes`` holds, per input
    given to :func:`with_points`, the node of each point (an added one, or a road node when the
    point is on one), -1 where it did not snap.
    """

    net: RoadNetwork
    n_road_nodes: int
    nodes: tuple[np.ndarray, ...]


def parse_speeds(text: str) -> dict[str, float]:
    """Parse SPEEDS text such as ``"motorway=110,primary=70"`` into km/h per highway type."""
    speeds: dict[str, float] = {}
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        try:
            kph = float(value)
        except ValueError:
            kph = float("nan")
        if not sep or not key.strip() or not np.isfinite(kph) or kph <= 0:
            msg = (
                f"SPEEDS: cannot read '{part}'. Write highway=km/h pairs separated by commas, "
                "e.g. motorway=110,primary=70,residential=30."
            )
            raise InvalidInputError(msg)
        speeds[key.strip()] = kph
    return speeds


def build_road_network(
    source: str | os.PathLike | None = None,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    network_type: str = "drive",
    speeds_kph: Mapping[str, float] | None = None,
    cache_folder: str | os.PathLike | None = None,
    overpass_url: str | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> nx.MultiDiGraph:
    """Build a projected OSMnx graph with ``length`` (m), ``speed_kph`` and ``travel_time`` (s).

    ``source`` is an OSM file (.osm, .osm.pbf, .osm.bz2 or .graphml); otherwise ``bbox``
    ``(west, south, east, north)`` in EPSG:4326 is downloaded through OSMnx (cached on disk)
    from ``overpass_url`` (an Overpass API endpoint; OSMnx's default server when None).
    """
    import osmnx as ox

    if network_type not in _HIGHWAYS:
        msg = f"NETWORK_TYPE: '{network_type}' is unknown; use one of {', '.join(NETWORK_TYPES)}."
        raise InvalidInputError(msg)
    report(progress, 0.05, "Reading roads")
    if source is not None:
        path = Path(source)
        if not path.is_file():
            msg = f"INPUT_OSM: file not found: {path}. Choose an .osm, .osm.pbf or .graphml file."
            raise InvalidInputError(msg)
        if path.name.lower().endswith(".graphml"):
            try:
                graph = ox.load_graphml(path)
            except Exception as err:
                msg = f"INPUT_OSM: {path.name} is not a readable GraphML file ({err})."
                raise NetworkUnavailableError(msg) from err
        else:
            graph = _graph_from_osm_file(path, network_type)
    elif bbox is not None:
        graph = _download(bbox, network_type, cache_folder, overpass_url)
    else:
        msg = "Give INPUT_OSM (an OSM file) or EXTENT (an area to download)."
        raise InvalidInputError(msg)
    check_cancel(is_cancelled)
    if graph.number_of_edges() == 0:
        msg = f"No '{network_type}' roads found in the input; check the file or the extent."
        raise InvalidInputError(msg)
    report(progress, 0.6, "Speeds and travel times")
    if speeds_kph or "speed_kph" not in next(iter(graph.edges(data=True)))[2]:
        graph = ox.add_edge_speeds(graph, hwy_speeds=dict(speeds_kph or {}) or None)
        # SPEEDS overrides win over tagged maxspeed values too (OSMnx only fills untagged edges).
        for *_, data in graph.edges(data=True):
            hwy = data.get("highway")
            for kind in hwy if isinstance(hwy, list) else [hwy]:
                if speeds_kph and kind in speeds_kph:
                    data["speed_kph"] = float(speeds_kph[kind])
                    break
        graph = ox.add_edge_travel_times(graph)
    if not _is_projected(graph.graph.get("crs")):
        graph = ox.project_graph(graph)
    report(progress, 1.0, "Road network ready")
    return graph


def save_network(graph: nx.MultiDiGraph, path: str | os.PathLike) -> None:
    """Write ``graph`` as a GeoPackage with ``nodes`` and ``edges`` layers (units in field names)."""
    import osmnx as ox

    nodes, edges = ox.graph_to_gdfs(graph)
    nodes = nodes.reset_index()
    edges = edges.reset_index()
    nodes_out = gpd.GeoDataFrame(
        {"osmid": nodes["osmid"].astype("int64"), "x": nodes["x"], "y": nodes["y"]},
        geometry=nodes.geometry.values,
        crs=nodes.crs,
    )
    edges_out = gpd.GeoDataFrame(
        {
            "u": edges["u"].astype("int64"),
            "v": edges["v"].astype("int64"),
            "key": edges["key"].astype("int64"),
            "osmid": edges["osmid"].map(_as_text),
            "highway": edges["highway"].map(_as_text),
            "name": edges["name"].map(_as_text) if "name" in edges else None,
            "length_m": edges["length"].astype(float),
            "speed_kph": edges["speed_kph"].astype(float),
            "travel_time_s": edges["travel_time"].astype(float),
        },
        geometry=edges.geometry.values,
        crs=edges.crs,
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".part.gpkg")
    tmp.unlink(missing_ok=True)
    try:
        nodes_out.to_file(tmp, layer="nodes", driver="GPKG")
        edges_out.to_file(tmp, layer="edges", driver="GPKG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_network(
    path: str | os.PathLike,
    *,
    network_type: str = "drive",
    speeds_kph: Mapping[str, float] | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> RoadNetwork:
    """Read a network GeoPackage written by :func:`save_network`, or any OSM file accepted above."""
    path = Path(path)
    if not path.is_file():
        msg = (
            f"NETWORK: file not found: {path}. Build one with buildroadnetwork or give an OSM file."
        )
        raise InvalidInputError(msg)
    report(progress, 0.05, "Loading road network")
    if path.suffix.lower() == ".gpkg":
        try:
            nodes = gpd.read_file(path, layer="nodes")
            edges = gpd.read_file(path, layer="edges")
        except Exception as err:
            msg = (
                f"NETWORK: {path.name} has no readable 'nodes'/'edges' layers ({err}). "
                "Use the GeoPackage written by buildroadnetwork."
            )
            raise InvalidInputError(msg) from err
    else:
        import osmnx as ox

        graph = build_road_network(
            path, network_type=network_type, speeds_kph=speeds_kph, is_cancelled=is_cancelled
        )
        nodes, edges = ox.graph_to_gdfs(graph)
        nodes = nodes.reset_index()
        edges = edges.reset_index().rename(
            columns={"length": "length_m", "travel_time": "travel_time_s"}
        )
    check_cancel(is_cancelled)
    net = network_from_frames(nodes, edges)
    n_comp = np.bincount(net.component_labels)
    if len(n_comp) > 1:
        logger.warning(
            "The road network has %d disconnected parts; the largest has %d of %d nodes. "
            "Catchments and drive times stay inside the part each point snaps to.",
            len(n_comp), int(n_comp.max()), net.n_nodes,
        )  # fmt: skip
    report(progress, 1.0, "Road network loaded")
    return net


def network_from_frames(nodes: pd.DataFrame, edges: gpd.GeoDataFrame) -> RoadNetwork:
    """Build a :class:`RoadNetwork` from node (``osmid``, geometry) and edge (``u``, ``v``) tables."""
    crs = edges.crs
    if crs is None or not crs.is_projected:
        utm = edges.estimate_utm_crs()
        logger.info("Road network reprojected to %s for metric distances.", utm.name)
        edges = edges.to_crs(utm)
        nodes = gpd.GeoDataFrame(nodes, geometry=nodes.geometry, crs=crs or "EPSG:4326").to_crs(utm)
        crs = utm
    node_ids = nodes["osmid"].to_numpy(dtype="int64")
    index = pd.Series(np.arange(len(node_ids)), index=node_ids)
    u = index.reindex(edges["u"].to_numpy()).to_numpy()
    v = index.reindex(edges["v"].to_numpy()).to_numpy()
    ok = ~(np.isnan(u) | np.isnan(v)) if u.dtype.kind == "f" else np.ones(len(u), bool)
    u, v = u[ok].astype(int), v[ok].astype(int)
    seconds = np.maximum(edges["travel_time_s"].to_numpy(float)[ok], _MIN_EDGE_SECONDS)
    metres = edges["length_m"].to_numpy(float)[ok]
    n = len(node_ids)
    time_csr = _min_csr(u, v, seconds, n)
    length_csr = _lengths_on_fastest(u, v, seconds, metres, time_csr)
    xy = shapely.get_coordinates(nodes.geometry.values)
    edge_frame = gpd.GeoDataFrame(
        {"u_idx": u, "v_idx": v, "length_m": metres, "travel_time_s": seconds},
        geometry=edges.geometry.values[ok],
        crs=crs,
    )
    net = RoadNetwork(
        crs=crs.to_wkt(), node_ids=node_ids, x=xy[:, 0], y=xy[:, 1],
        time_csr=time_csr, length_csr=length_csr, edges=edge_frame,
    )  # fmt: skip
    _ = net.edge_tree  # every use snaps points: build the index with the network (~0.06 s/100k)
    return net


def snap_points(net: RoadNetwork, points: gpd.GeoSeries, *, max_snap_m: float) -> SnapResult:
    """Nearest road (edge) for each point (in ``net.crs``) and the position along it.

    Points farther than ``max_snap_m`` from every road get -1 (see :class:`SnapResult`).
    """
    geoms = np.asarray(points.values, dtype=object)
    n = len(geoms)
    node = np.full(n, -1, dtype=np.int64)
    edge = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.inf)
    frac = np.full(n, np.nan)
    valid = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    idx = np.flatnonzero(valid)
    if len(idx) and len(net.road_edges):
        (src, hit), d = net.edge_tree.query_nearest(
            geoms[idx], return_distance=True, all_matches=False
        )
        rows, e = idx[src], net.road_edges[hit]
        dist[rows] = d
        near = d <= max_snap_m
        rows, e = rows[near], e[near]
        lines, g = net.edges.geometry.values[e], geoms[rows]
        not_point = shapely.get_type_id(g) != 0
        if not_point.any():  # the point of the road nearest the geometry
            g = g.copy()
            nearest = shapely.shortest_line(g[not_point], lines[not_point])
            g[not_point] = shapely.get_point(nearest, 1)
        f = np.nan_to_num(shapely.line_locate_point(lines, g, normalized=True), nan=0.0)
        f = np.clip(np.where(edge_drawn_from_u(net, e), f, 1.0 - f), 0.0, 1.0)
        u, v = net.edges["u_idx"].to_numpy()[e], net.edges["v_idx"].to_numpy()[e]
        edge[rows], frac[rows], node[rows] = e, f, np.where(f <= 0.5, u, v)
    return SnapResult(node_index=node, distance_m=dist, edge_index=edge, fraction=frac)


FAR_FROM_ROADS_M = 500.0  # beyond this a point's drive times start far from it (MAX_SNAP default)


def warn_placement(snap: SnapResult, ids, *, layer: str, noun: str, limit_m: float,
                   consequence: str) -> tuple[list, list]:  # fmt: skip
    """Log ``noun`` without a geometry and those farther than ``limit_m`` from every road (ids and
    distances); returns ``(missing_ids, far_ids)``. ``consequence`` ends the far warning."""
    ids = np.asarray(ids, dtype=object)
    missing = ~np.isfinite(snap.distance_m)
    far = np.isfinite(snap.distance_m) & (snap.distance_m > limit_m)
    if missing.any():
        logger.warning(
            "%s: %d %s have a NULL or empty geometry and were left out: %s. Give them a location "
            "or filter them out.", layer, int(missing.sum()), noun, listed(ids[missing], 20),
        )  # fmt: skip
    if far.any():
        order = np.flatnonzero(far)[np.argsort(-snap.distance_m[far], kind="stable")]
        shown = [f"{ids[i]} ({_distance(snap.distance_m[i])})" for i in order]
        logger.warning(
            "%s: drive times cannot be trusted for %d %s farther than %s from the nearest road "
            "of NETWORK: %s. %s Check their location, or use a NETWORK that covers them.",
            layer, int(far.sum()), noun, _distance(limit_m), listed(shown, 20), consequence,
        )  # fmt: skip
    return list(ids[missing]), list(ids[far])


def _distance(metres: float) -> str:
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres:.0f} m"


def with_points(net: RoadNetwork, *snaps: SnapResult | np.ndarray) -> SnappedNetwork:
    """``net`` with a node at each snapped position between two road nodes, to route from/to it.

    Each road with points on it is split there: the added nodes are chained from its ``u`` end to
    its ``v`` end with the matching shares of the edge's time and length, and back the other way
    when the road is two-way (so no point can be left backwards along a one-way road). The road's
    own edges stay, so routes along it are unchanged. A point on a road node (within 1 mm) uses
    that node; equal positions share one node. ``snaps`` may also be arrays of node indices.
    """
    n = net.n_nodes
    nodes = [np.asarray(s.node_index if isinstance(s, SnapResult) else s).astype(np.int64)
             for s in snaps]  # fmt: skip
    with_edges = [(k, s) for k, s in enumerate(snaps)
                  if isinstance(s, SnapResult) and s.edge_index is not None]  # fmt: skip
    if not with_edges:
        return SnappedNetwork(net=net, n_road_nodes=n, nodes=tuple(nodes))
    length = net.edges["length_m"].to_numpy(float)
    e_all = np.concatenate([s.edge_index for _, s in with_edges]).astype(np.int64)
    f_all = np.concatenate([s.fraction for _, s in with_edges]).astype(float)
    owner = np.concatenate([np.full(len(s.edge_index), k) for k, s in with_edges])
    row = np.concatenate([np.arange(len(s.edge_index)) for _, s in with_edges])
    ok = e_all >= 0
    along = np.where(ok, f_all, 0.0) * length[np.maximum(e_all, 0)]
    inside = ok & (along > _ON_NODE_M) & (along < length[np.maximum(e_all, 0)] - _ON_NODE_M)
    if not inside.any():
        return SnappedNetwork(net=net, n_road_nodes=n, nodes=tuple(nodes))
    pos, new = np.unique(np.column_stack([e_all[inside], f_all[inside]]), axis=0,
                         return_inverse=True)  # sorted by edge, then fraction  # fmt: skip
    for k, r, j in zip(owner[inside], row[inside], np.ravel(new)):
        nodes[k][r] = n + j
    e, f = pos[:, 0].astype(np.int64), pos[:, 1]
    m = len(e)
    added = n + np.arange(m)
    first = np.ones(m, bool)
    first[1:] = e[1:] != e[:-1]
    last = np.ones(m, bool)
    last[:-1] = e[1:] != e[:-1]
    eu, ev = net.edges["u_idx"].to_numpy()[e], net.edges["v_idx"].to_numpy()[e]
    prev_node = np.where(first, eu, np.roll(added, 1))
    prev_f = np.where(first, 0.0, np.roll(f, 1))
    seconds = net.edges["travel_time_s"].to_numpy(float)
    rev = net.reverse_edge[e]
    two_way = rev >= 0
    t_fwd, m_fwd = seconds[e], length[e]
    t_back, m_back = seconds[np.maximum(rev, 0)], length[np.maximum(rev, 0)]
    step, rest = f - prev_f, 1.0 - f
    # along the edge (u -> v): previous -> this, last -> v; back along the reverse edge: the opposite
    src = [prev_node, added[last], added[two_way], ev[last & two_way]]
    dst = [added, ev[last], prev_node[two_way], added[last & two_way]]
    share = [step, rest[last], step[two_way], rest[last & two_way]]
    t_parts = [t_fwd, t_fwd[last], t_back[two_way], t_back[last & two_way]]
    m_parts = [m_fwd, m_fwd[last], m_back[two_way], m_back[last & two_way]]
    a, b = np.concatenate(src), np.concatenate(dst)
    share = np.concatenate(share)
    t_new, m_new = share * np.concatenate(t_parts), share * np.concatenate(m_parts)
    order = np.lexsort((t_new, b, a))  # parallel pieces (a loop road): keep the fastest
    a, b, t_new, m_new = a[order], b[order], t_new[order], m_new[order]
    keep = np.ones(len(a), bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, t_new, m_new = a[keep], b[keep], t_new[keep], m_new[keep]
    size = n + m
    lines = net.edges.geometry.values[e]
    xy = shapely.get_coordinates(
        shapely.line_interpolate_point(lines, np.where(edge_drawn_from_u(net, e), f, 1.0 - f),
                                       normalized=True)
    )  # fmt: skip
    augmented = replace(
        net,
        node_ids=np.concatenate([net.node_ids, np.full(m, -1, dtype=net.node_ids.dtype)]),
        x=np.concatenate([net.x, xy[:, 0]]),
        y=np.concatenate([net.y, xy[:, 1]]),
        time_csr=_extend_csr(net.time_csr, a, b, t_new, size),
        length_csr=_extend_csr(net.length_csr, a, b, m_new, size),
    )
    return SnappedNetwork(net=augmented, n_road_nodes=n, nodes=tuple(nodes))


def edge_drawn_from_u(net: RoadNetwork, e: np.ndarray) -> np.ndarray:
    """True where the geometry of edge ``e`` (rows of ``net.edges``) starts at its ``u`` node."""
    start = shapely.get_coordinates(shapely.get_point(net.edges.geometry.values[e], 0))
    u, v = net.edges["u_idx"].to_numpy()[e], net.edges["v_idx"].to_numpy()[e]
    return np.hypot(start[:, 0] - net.x[u], start[:, 1] - net.y[u]) <= np.hypot(
        start[:, 0] - net.x[v], start[:, 1] - net.y[v]
    )


# ----------------------------------------------------------------------------- private helpers

_ON_NODE_M = 1e-3  # a point this close (m, along the road) to a road node is at that node


def _extend_csr(csr: sp.csr_matrix, a, b, w, size: int) -> sp.csr_matrix:
    """``csr`` grown to ``size`` x ``size`` with the entries ``(a, b) = w`` (none already there)."""
    coo = csr.tocoo()
    rows, cols = np.concatenate([coo.row, a]), np.concatenate([coo.col, b])
    return sp.csr_matrix((np.concatenate([coo.data, w]), (rows, cols)), shape=(size, size))


def _reverse_edges(edges: gpd.GeoDataFrame) -> np.ndarray:
    """Per edge, the row of the edge ``v -> u`` along the same road, or -1 (see ``reverse_edge``).

    The same road: where only two edges join the same two nodes, opposite ways with the same
    length (1 mm) and vertex count; where there are more (parallel roads, loops), equal geometries.
    """
    u, v = edges["u_idx"].to_numpy(np.int64), edges["v_idx"].to_numpy(np.int64)
    rev = np.full(len(u), -1, dtype=np.int64)
    if len(u) < 2:
        return rev
    n = int(max(u.max(), v.max())) + 1
    pair = np.minimum(u, v) * n + np.maximum(u, v)
    order = np.argsort(pair, kind="stable")
    s = pair[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    size = np.diff(np.r_[starts, len(s)])
    a, b = order[starts[size == 2]], order[starts[size == 2] + 1]
    length = edges["length_m"].to_numpy(float)
    geoms = edges.geometry.values
    count = shapely.get_num_coordinates(geoms)
    loop = u[a] == v[a]
    same = (u[a] == v[b]) & (v[a] == u[b]) & ~loop
    same &= (np.abs(length[a] - length[b]) <= 1e-3) & (count[a] == count[b])
    rev[a[same]], rev[b[same]] = b[same], a[same]
    slow = (size > 2) | np.isin(starts, starts[size == 2][loop])
    for first, k in zip(starts[slow], size[slow]):
        group = order[first : first + k]
        for e in group:
            for r in group:
                if (rev[e] < 0 and rev[r] < 0 and r != e and u[r] == v[e] and v[r] == u[e]
                        and shapely.equals(geoms[e], geoms[r])):  # fmt: skip
                    rev[e], rev[r] = r, e
    return rev


def _min_csr(u: np.ndarray, v: np.ndarray, w: np.ndarray, n: int) -> sp.csr_matrix:
    order = np.lexsort((w, v, u))
    u, v, w = u[order], v[order], w[order]
    first = np.ones(len(u), bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    keep = first & (u != v)
    return sp.csr_matrix((w[keep], (u[keep], v[keep])), shape=(n, n))


def _lengths_on_fastest(u, v, seconds, metres, time_csr) -> sp.csr_matrix:
    """Length (m) of the fastest parallel edge for each CSR entry of ``time_csr``."""
    order = np.lexsort((seconds, v, u))
    u, v, m = u[order], v[order], metres[order]
    first = np.ones(len(u), bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    keep = first & (u != v)
    return sp.csr_matrix((np.maximum(m[keep], 0.01), (u[keep], v[keep])), shape=time_csr.shape)


def _is_projected(crs: object) -> bool:
    if crs is None:
        return False
    from pyproj import CRS

    return CRS.from_user_input(crs).is_projected


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


def _download(bbox, network_type, cache_folder, overpass_url=None) -> nx.MultiDiGraph:
    import osmnx as ox

    west, south, east, north = bbox
    if not (west < east and south < north):
        msg = "EXTENT: empty or inverted extent; draw or choose an area with some size."
        raise InvalidInputError(msg)
    if overpass_url is not None and not str(overpass_url).startswith(("http://", "https://")):
        msg = (f"OVERPASS_URL: '{overpass_url}' is not a web address; give an Overpass API "
               "endpoint like https://overpass-api.de/api, or leave it empty.")  # fmt: skip
        raise InvalidInputError(msg)
    ox.settings.use_cache = True
    if cache_folder:
        ox.settings.cache_folder = str(cache_folder)
    default_url = ox.settings.overpass_url
    url = str(overpass_url).rstrip("/") if overpass_url else default_url
    _check_reachable(url)
    kind = "drive_service" if network_type == "drive_service" else network_type
    ox.settings.overpass_url = url
    try:
        return ox.graph_from_bbox((west, south, east, north), network_type=kind, retain_all=True)
    except Exception as err:
        msg = f"EXTENT: could not download roads from OpenStreetMap ({err}). {OFFLINE_HINT}"
        raise NetworkUnavailableError(msg) from err
    finally:
        ox.settings.overpass_url = default_url  # OSMnx's settings are global to the QGIS session


OFFLINE_HINT = (
    "Without internet, use INPUT_OSM with a downloaded .osm.pbf or .osm file (e.g. from "
    "Geofabrik or BBBike)."
)
PROBE_TIMEOUT_S = 4.0  # a download server that does not answer within this is taken as offline


def _check_reachable(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`NetworkUnavailableError` within ``timeout_s`` when the host of ``url``
    cannot be resolved or connected to (no internet), before OSMnx's slow retries and pauses."""
    import socket
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except Exception as err:  # a daemon thread must never raise, even late
            outcome.append(err)

    worker = threading.Thread(target=probe, daemon=True)  # name lookups ignore socket timeouts
    worker.start()
    worker.join(timeout_s)
    if outcome and outcome[0] is None:
        return
    why = f"{outcome[0]}" if outcome else f"no answer within {timeout_s:g} s"
    msg = f"EXTENT: cannot reach the OpenStreetMap download server {host} ({why}). {OFFLINE_HINT}"
    raise NetworkUnavailableError(msg)


def _graph_from_osm_file(path: Path, network_type: str) -> nx.MultiDiGraph:
    """Keep the ways of ``network_type`` with osmium, write them as OSM XML and load with OSMnx."""
    import osmnx as ox

    wanted = _HIGHWAYS[network_type]
    ways: list[tuple[int, list[int], dict[str, str]]] = []
    try:
        if path.name.lower().endswith(".osm.bz2"):
            with tempfile.TemporaryDirectory() as tmp:
                plain = Path(tmp) / "input.osm"
                plain.write_bytes(bz2.decompress(path.read_bytes()))
                nodes = _read_osm(plain, wanted, ways)
        else:
            nodes = _read_osm(path, wanted, ways)
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        msg = (
            f"INPUT_OSM: {path.name} is unreadable or truncated ({err}). "
            "Download the extract again, or export it from JOSM/Overpass as .osm or .osm.pbf."
        )
        raise NetworkUnavailableError(msg) from err
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "roads.osm"
        with xml.open("w", encoding="utf-8") as out:
            out.write('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n')
            used = {n for _, refs, _ in ways for n in refs if n in nodes}
            for nid in sorted(used):
                lon, lat = nodes[nid]
                out.write(f'<node id="{nid}" lat="{lat:.7f}" lon="{lon:.7f}"/>\n')
            for wid, refs, tags in ways:
                refs = [r for r in refs if r in nodes]
                if len(refs) < 2:
                    continue
                out.write(f'<way id="{wid}">')
                out.write("".join(f'<nd ref="{r}"/>' for r in refs))
                out.write(
                    "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())
                )
                out.write("</way>\n")
            out.write("</osm>\n")
        if not ways:
            msg = f"INPUT_OSM: {path.name} holds no '{network_type}' roads."
            raise InvalidInputError(msg)
        try:
            return ox.graph_from_xml(xml, simplify=True, retain_all=True)
        except Exception as err:
            msg = f"INPUT_OSM: OSMnx could not build a graph from {path.name} ({err})."
            raise NetworkUnavailableError(msg) from err


def _read_osm(path: Path, wanted: set[str] | None, ways: list) -> dict[int, tuple[float, float]]:
    import osmium

    nodes: dict[int, tuple[float, float]] = {}
    for obj in osmium.FileProcessor(str(path)).with_locations():
        if obj.is_way():
            tags = dict(obj.tags)
            hwy = tags.get("highway")
            if hwy is None or tags.get("area") == "yes":
                continue
            if wanted is not None and hwy not in wanted:
                continue
            if tags.get("access") in {"private", "no"}:
                continue
            refs = []
            for n in obj.nodes:
                if n.location.valid():
                    nodes[n.ref] = (n.location.lon, n.location.lat)
                    refs.append(n.ref)
            ways.append((obj.id, refs, tags))
    return nodes
