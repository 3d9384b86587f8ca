"""Drive-time catchments: one shortest-path run per origin gives every band's polygon."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from scipy.sparse.csgraph import dijkstra

from ._validate import check_points
from .errors import InvalidInputError
from .network import RoadNetwork, snap_points
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

SHAPES = ("convex", "concave", "roads")
_ROAD_BUFFER_M = 50.0


@dataclass
class CatchmentResult:
    """Catchment polygons (in the network CRS) and the ids of origins too far from the network."""

    polygons: gpd.GeoDataFrame
    unsnapped: list = field(default_factory=list)


def reachable_nodes(net: RoadNetwork, source_idx: int, max_seconds: float) -> np.ndarray:
    """Indices of the nodes reachable from ``source_idx`` within ``max_seconds``."""
    t = dijkstra(net.time_csr, indices=int(source_idx), limit=float(max_seconds))
    return np.flatnonzero(t <= max_seconds)


def validate_bands(bands_minutes: Sequence[float]) -> list[float]:
    """Check BANDS: positive, strictly increasing minutes."""
    bands = [float(b) for b in bands_minutes]
    if not bands or any(not np.isfinite(b) or b <= 0 for b in bands):
        msg = f"BANDS: {bands_minutes} must be positive minutes, e.g. 5,10,15."
        raise InvalidInputError(msg)
    if any(b2 <= b1 for b1, b2 in zip(bands, bands[1:])):
        msg = f"BANDS: {bands_minutes} must be strictly increasing, e.g. 5,10,15."
        raise InvalidInputError(msg)
    return bands


def drive_time_catchments(
    net: RoadNetwork,
    origins: gpd.GeoDataFrame,
    *,
    id_field: str,
    bands_minutes: Sequence[float],
    shape: str = "convex",
    partition: bool = False,
    max_snap_m: float = 500.0,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> CatchmentResult:
    """Polygons of the area reached within each band from each origin (or a partition of them).

    ``shape``: ``convex`` hull of reached nodes, ``concave`` hull, or ``roads`` (reached road
    segments buffered by 50 m), the last two never claiming land the roads do not reach.
    With ``partition`` every node goes to its fastest origin and band; the rest is ``unreachable``.
    """
    bands = validate_bands(bands_minutes)
    if shape not in SHAPES:
        msg = f"SHAPE: '{shape}' is unknown; use one of {', '.join(SHAPES)}."
        raise InvalidInputError(msg)
    ids = check_points(origins, id_field, layer="INPUT", noun="origins", allow_missing=True)
    snap = snap_points(net, origins.geometry, max_snap_m=max_snap_m)
    unsnapped = [ids[i] for i in np.flatnonzero(snap.node_index < 0)]
    if unsnapped:
        logger.warning(
            "%d origin(s) farther than %g m from the network get no catchment: %s",
            len(unsnapped), max_snap_m, ", ".join(map(str, unsnapped[:20])),
        )  # fmt: skip
    limit = bands[-1] * 60.0
    rows: list[dict] = []
    geoms: list = []
    snapped = np.flatnonzero(snap.node_index >= 0)
    if partition:
        _partition(net, ids, snap, snapped, bands, rows, geoms)
    else:
        for k, i in enumerate(snapped):
            check_cancel(is_cancelled)
            t = dijkstra(net.time_csr, indices=int(snap.node_index[i]), limit=limit)
            for band in bands:
                reached = np.flatnonzero(t <= band * 60.0)
                geom = _shape(net, reached, shape)
                rows.append(
                    {"origin_id": ids[i], "band_min": band, "reachable_nodes": len(reached),
                     "snap_m": float(snap.distance_m[i])}
                )  # fmt: skip
                geoms.append(geom)
            report(progress, (k + 1) / max(1, len(snapped)), "Catchments")
    out = gpd.GeoDataFrame(rows, geometry=geoms, crs=net.crs)
    if out.empty:
        out = gpd.GeoDataFrame(
            {"origin_id": [], "band_min": [], "reachable_nodes": [], "snap_m": []},
            geometry=[], crs=net.crs,
        )  # fmt: skip
    out["area_km2"] = out.geometry.area / 1e6
    out = out[["origin_id", "band_min", "area_km2", "reachable_nodes", "snap_m", "geometry"]]
    return CatchmentResult(polygons=out, unsnapped=unsnapped)


def _shape(net: RoadNetwork, reached: np.ndarray, shape: str):
    pts = shapely.multipoints(np.column_stack([net.x[reached], net.y[reached]]))
    if shape == "convex" or len(reached) < 3:
        geom = pts.convex_hull
        return geom.buffer(1.0) if geom.area == 0 else geom
    if shape == "concave":
        return shapely.concave_hull(pts, ratio=0.3).buffer(1.0)
    mask = np.isin(net.edges["u_idx"].to_numpy(), reached) & np.isin(
        net.edges["v_idx"].to_numpy(), reached
    )
    return shapely.union_all(shapely.buffer(net.edges.geometry.values[mask], _ROAD_BUFFER_M))


def _partition(net, ids, snap, snapped, bands, rows, geoms) -> None:
    """Label each node with its fastest origin and band; Voronoi cells of nodes dissolved by label."""
    sources = snap.node_index[snapped]
    t, _, src = dijkstra(
        net.time_csr, indices=sources, min_only=True, return_predecessors=True,
        limit=bands[-1] * 60.0,
    )  # fmt: skip
    origin_of_node = {int(n): ids[i] for n, i in zip(sources, snapped)}
    band_idx = np.searchsorted(np.asarray(bands) * 60.0, t, side="left")
    pts = shapely.points(net.x, net.y)
    hull = shapely.union_all(shapely.buffer(net.edges.geometry.values, _ROAD_BUFFER_M))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=hull))
    tree = shapely.STRtree(cells)
    cell_of = np.full(len(pts), -1)
    p_idx, c_idx = tree.query(pts, predicate="within")
    cell_of[p_idx] = c_idx
    labels: dict[tuple, list[int]] = {}
    for n in range(len(pts)):
        if np.isfinite(t[n]) and band_idx[n] < len(bands):
            key = (origin_of_node[int(src[n])], bands[band_idx[n]])
        else:
            key = (None, None)
        labels.setdefault(key, []).append(n)
    for (origin, band), nodes in labels.items():
        poly = shapely.union_all(cells[cell_of[nodes][cell_of[nodes] >= 0]]).intersection(hull)
        snap_m = float(snap.distance_m[list(ids).index(origin)]) if origin is not None else None
        rows.append(
            {"origin_id": origin, "band_min": band, "reachable_nodes": len(nodes), "snap_m": snap_m}
        )
        geoms.append(poly)
