"""Travel-time matrices: minutes and km along the fastest route between snapped points."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from ._validate import check_points
from .network import RoadNetwork, snap_points
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)
_CHUNK = 64


def cost_matrix_minutes(
    net: RoadNetwork,
    origin_nodes: np.ndarray,
    destination_nodes: np.ndarray,
    *,
    max_minutes: float | None = None,
    is_cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """Minutes from each origin node to each destination node (inf when unreachable)."""
    minutes, _ = _times_and_km(
        net, origin_nodes, destination_nodes, max_minutes, None, is_cancelled
    )
    return minutes


def travel_time_matrix(
    net: RoadNetwork,
    origins: gpd.GeoDataFrame,
    destinations: gpd.GeoDataFrame,
    *,
    origin_id_field: str,
    destination_id_field: str,
    max_minutes: float | None = None,
    max_snap_m: float = 500.0,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> pd.DataFrame:
    """Long table ``origin_id, destination_id, minutes, km``; NaN where unreachable.

    km is the length of the fastest route, found in the same search: edge weights encode
    ``time`` and ``length`` lexicographically (time in 0.01 s, length in 0.1 m, both integers
    in one float64), so the minimum is the fastest route and its length is read back exactly.
    """
    check_points(origins, origin_id_field, layer="ORIGINS", noun="origins",
                 id_key="ORIGIN_ID_FIELD", allow_missing=True)  # fmt: skip
    check_points(destinations, destination_id_field, layer="DESTINATIONS", noun="destinations",
                 id_key="DESTINATION_ID_FIELD", allow_missing=True)  # fmt: skip
    so = snap_points(net, origins.geometry, max_snap_m=max_snap_m)
    sd = snap_points(net, destinations.geometry, max_snap_m=max_snap_m)
    for snap, frame, fld, name in ((so, origins, origin_id_field, "origins"),
                                   (sd, destinations, destination_id_field, "destinations")):  # fmt: skip
        far = frame[fld].to_numpy()[snap.node_index < 0]
        if len(far):
            logger.warning(
                "%d %s farther than %g m from the network (NULL times): %s",
                len(far), name, max_snap_m, ", ".join(map(str, far[:20])),
            )  # fmt: skip
    minutes, km = _times_and_km(
        net, so.node_index, sd.node_index, max_minutes, progress, is_cancelled
    )
    table = pd.DataFrame(
        {
            "origin_id": np.repeat(origins[origin_id_field].to_numpy(), len(destinations)),
            "destination_id": np.tile(destinations[destination_id_field].to_numpy(), len(origins)),
            "minutes": minutes.ravel(),
            "km": km.ravel(),
        }
    )
    bad = ~np.isfinite(table["minutes"])
    table.loc[bad, ["minutes", "km"]] = np.nan
    if bad.any():
        logger.info("%d of %d pairs are unreachable.", int(bad.sum()), len(table))
    return table


def _times_and_km(net, o_nodes, d_nodes, max_minutes, progress, is_cancelled):
    time_units = np.round(net.time_csr.data * 100.0)  # 0.01 s
    len_units = np.round(net.length_csr.data * 10.0)  # 0.1 m
    scale = float(2 ** int(np.ceil(np.log2(len_units.sum() + 2))))
    if time_units.sum() * scale >= 2.0**53:
        scale = 0.0  # too large to encode exactly: fall back to time only (km via lengths below)
    weights = net.time_csr.copy()
    weights.data = time_units * scale + len_units if scale else time_units
    limit = np.inf if max_minutes is None else max_minutes * 6000.0 * (scale or 1.0) + scale
    o_nodes = np.asarray(o_nodes)
    d_nodes = np.asarray(d_nodes)
    minutes = np.full((len(o_nodes), len(d_nodes)), np.inf)
    km = np.full_like(minutes, np.nan)
    valid_o = np.flatnonzero(o_nodes >= 0)
    valid_d = np.flatnonzero(d_nodes >= 0)
    for start in range(0, len(valid_o), _CHUNK):
        check_cancel(is_cancelled)
        rows = valid_o[start : start + _CHUNK]
        dist = dijkstra(weights, indices=o_nodes[rows], limit=limit)[:, d_nodes[valid_d]]
        if scale:
            with np.errstate(invalid="ignore"):
                t = np.floor(dist / scale)
                length = dist - t * scale
        else:
            t, length = dist, np.full_like(dist, np.nan)
        t_min = t / 6000.0
        if max_minutes is not None:
            t_min[t_min > max_minutes] = np.inf
        minutes[np.ix_(rows, valid_d)] = t_min
        km[np.ix_(rows, valid_d)] = np.where(np.isfinite(t_min), length / 10000.0, np.nan)
        report(progress, min(1.0, (start + _CHUNK) / max(1, len(valid_o))), "Travel times")
    return minutes, km
