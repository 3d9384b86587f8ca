"""Travel-time matrices: minutes and km along the fastest route between snapped points."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import re
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import _matrix_worker
from ._validate import check_points
from .network import RoadNetwork, snap_points
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)
_CHUNK = 16


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


def _times_and_km(net, o_nodes, d_nodes, max_minutes, progress, is_cancelled, *, workers=None):
    """Minutes and km, origin rows x destination columns; one search per distinct origin node.

    The searches run in chunks. After the first chunk, when the rest would take more than
    ``_POOL_MIN_SECONDS`` here, worker processes take chunks too while this process keeps
    searching (``workers`` processes in all, by default one per CPU, see :func:`_pool_size`;
    ``workers=1`` keeps everything in this process). The numbers are the same either way.
    """
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
    # origins on the same node share one search
    sources, row_of = np.unique(o_nodes[valid_o], return_inverse=True)
    targets = d_nodes[valid_d]
    done = 0

    def store(first: int, dist: np.ndarray) -> None:
        nonlocal done
        if scale:
            with np.errstate(invalid="ignore"):
                t = np.floor(dist / scale)
                length = dist - t * scale
        else:
            t, length = dist, np.full_like(dist, np.nan)
        t_min = t / 6000.0
        if max_minutes is not None:
            t_min[t_min > max_minutes] = np.inf
        pick = (row_of >= first) & (row_of < first + len(dist))
        rows, local = valid_o[pick], row_of[pick] - first
        minutes[np.ix_(rows, valid_d)] = t_min[local]
        km[np.ix_(rows, valid_d)] = np.where(np.isfinite(t_min), length / 10000.0, np.nan)[local]
        done += len(dist)
        report(progress, done / max(1, len(sources)), "Travel times")

    def search_here(first: int) -> None:
        check_cancel(is_cancelled)
        store(first, _search(weights, sources[first : first + _CHUNK], targets, limit))

    todo = deque(range(0, len(sources), _CHUNK))
    clock = time.perf_counter()
    if todo:
        search_here(todo.popleft())
    n_proc = workers or _pool_size((time.perf_counter() - clock) / max(1, done) * len(sources))
    if n_proc > 1 and len(todo) > 1:
        _search_shared(n_proc - 1, weights, sources, targets, limit, todo, store, search_here)
    while todo:
        search_here(todo.popleft())
    return minutes, km


_search = _matrix_worker.search


# ------------------------------------------------------------------ worker processes

_POOL_MIN_SECONDS = 3.0  # a spawned worker takes a few tenths of a second to import numpy, scipy


def _pool_size(serial_seconds: float) -> int:
    """Processes worth searching in, this one included, for ``serial_seconds`` of work (1: only this).

    Only from a real Python interpreter: inside QGIS ``sys.executable`` can be the QGIS program
    itself, and spawning it would start QGIS, so searches stay in-process there. Never from a
    worker process either (a script without ``if __name__ == "__main__":`` runs again in each
    spawned worker; it then searches in-process instead of starting workers of its own).
    """
    if serial_seconds < _POOL_MIN_SECONDS or multiprocessing.parent_process() is not None:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if cpus < 2 or not _is_python_interpreter(sys.executable):
        return 1
    return cpus


def _is_python_interpreter(executable: str | None) -> bool:
    name = Path(executable or "").name.lower()
    return (
        bool(re.fullmatch(r"python(\d+(\.\d+)*)?w?(\.exe)?", name)) and Path(executable).is_file()
    )


def _search_shared(n_workers, weights, sources, targets, limit, todo, store, search_here) -> None:
    """Share the chunks in ``todo`` between ``n_workers`` spawned processes and this one.

    Workers take chunks from the back of ``todo`` (four queued each), this process from the
    front, so nothing waits while the workers start. The graph goes to each worker once
    (initializer). If the pool cannot start or breaks, the chunks it held go back to ``todo``
    for this process; on cancel (``search_here`` raises) queued chunks are dropped.
    """
    ctx = multiprocessing.get_context("spawn")  # no fork: safe with threads in the caller
    init = (weights.data, weights.indices, weights.indptr, weights.shape, targets, limit)
    try:
        pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_matrix_worker.init_worker,
                                   initargs=init)  # fmt: skip
    except (OSError, ValueError) as err:
        logger.info("Worker processes unavailable (%s); searching in-process.", err)
        return
    pending: dict = {}
    try:
        while todo or pending:
            while todo and len(pending) < 4 * n_workers:
                first = todo.pop()
                pending[
                    pool.submit(_matrix_worker.search_worker, sources[first : first + _CHUNK])
                ] = first
            for fut in [f for f in pending if f.done()]:
                dist = fut.result()
                store(pending.pop(fut), dist)
            if todo:
                search_here(todo.popleft())
            elif pending:
                wait(pending, return_when=FIRST_COMPLETED)
    except (BrokenProcessPool, OSError, pickle.PicklingError) as err:
        logger.info("Worker processes failed (%s); finishing in-process.", err)
        todo.extend(pending.values())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
