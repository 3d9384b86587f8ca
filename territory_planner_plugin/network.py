"""Road networks: read OSM files (or download an extent) with OSMnx, save/load them as GeoPackage."""

from __future__ import annotations

import bz2
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
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
from scipy.spatial import cKDTree

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
    def node_tree(self) -> cKDTree:
        """KD-tree of the node coordinates, built once on first use (snapping, local searches)."""
        return cKDTree(np.column_stack([self.x, self.y]), balanced_tree=False, compact_nodes=False)


@dataclass(frozen=True)
class SnapResult:
    """Nearest network node per point (-1 when farther than the limit) and the distance in metres."""

    node_index: np.ndarray
    distance_m: np.ndarray


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
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> nx.MultiDiGraph:
    """Build a projected OSMnx graph with ``length`` (m), ``speed_kph`` and ``travel_time`` (s).

    ``source`` is an OSM file (.osm, .osm.pbf, .osm.bz2 or .graphml); otherwise ``bbox``
    ``(west, south, east, north)`` in EPSG:4326 is downloaded through OSMnx (cached on disk).
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
        graph = _download(bbox, network_type, cache_folder)
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
    return RoadNetwork(
        crs=crs.to_wkt(), node_ids=node_ids, x=xy[:, 0], y=xy[:, 1],
        time_csr=time_csr, length_csr=length_csr, edges=edge_frame,
    )  # fmt: skip


def snap_points(net: RoadNetwork, points: gpd.GeoSeries, *, max_snap_m: float) -> SnapResult:
    """Nearest node for each point (in ``net.crs``); -1 where it is farther than ``max_snap_m``."""
    geoms = np.asarray(points.values, dtype=object)
    node = np.full(len(geoms), -1, dtype=int)
    dist = np.full(len(geoms), np.inf)
    valid = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    idx = np.flatnonzero(valid)
    if len(idx) and (shapely.get_type_id(geoms[idx]) == 0).all():
        # points: the network's cached KD-tree (an STRtree per call cost ~50 ms on 100k nodes)
        dist[idx], node[idx] = net.node_tree.query(shapely.get_coordinates(geoms[idx]), k=1)
    elif len(idx):
        tree = shapely.STRtree(shapely.points(net.x, net.y))
        (src, dst), d = tree.query_nearest(geoms[idx], return_distance=True, all_matches=False)
        node[idx[src]], dist[idx[src]] = dst, d
    node[dist > max_snap_m] = -1
    return SnapResult(node_index=node, distance_m=dist)


# ----------------------------------------------------------------------------- private helpers


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


def _download(bbox, network_type, cache_folder) -> nx.MultiDiGraph:
    import osmnx as ox

    west, south, east, north = bbox
    if not (west < east and south < north):
        msg = "EXTENT: empty or inverted extent; draw or choose an area with some size."
        raise InvalidInputError(msg)
    ox.settings.use_cache = True
    if cache_folder:
        ox.settings.cache_folder = str(cache_folder)
    kind = "drive_service" if network_type == "drive_service" else network_type
    try:
        return ox.graph_from_bbox((west, south, east, north), network_type=kind, retain_all=True)
    except Exception as err:
        msg = (
            f"EXTENT: could not download roads from OpenStreetMap ({err}). Without internet, use "
            "INPUT_OSM with a downloaded .osm.pbf file (e.g. from Geofabrik or BBBike)."
        )
        raise NetworkUnavailableError(msg) from err


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
