"""Travel-time matrices: minutes and km along the fastest route between snapped points."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from . import _matrix_worker
from ._validate import check_points
from .network import RoadNetwork, SnapResult, snap_points, warn_placement, with_points
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)
_CHUNK = 16


def cost_matrix_minutes(
    net: RoadNetwork,
    origin_nodes: np.ndarray | SnapResult,
    destination_nodes: np.ndarray | SnapResult,
    *,
    max_minutes: float | None = None,
    is_cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """Minutes from each origin to each destination (inf when unreachable, or index -1).

    Give node indices, or :func:`~.network.snap_points` results to route from and to the points
    where they meet their roads.
    """
    if isinstance(origin_nodes, SnapResult) or isinstance(destination_nodes, SnapResult):
        routing = with_points(net, origin_nodes, destination_nodes)
        net, (origin_nodes, destination_nodes) = routing.net, routing.nodes
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
        warn_placement(snap, frame[fld].to_numpy(), layer=name.upper(), noun=name,
                       limit_m=max_snap_m, consequence="Their pairs are NULL (raise MAX_SNAP "
                       "to time them from that road anyway).")  # fmt: skip
    routing = with_points(net, so, sd)  # routes start and end where the points meet their roads
    minutes, km = _times_and_km(routing.net, *routing.nodes, max_minutes, progress, is_cancelled)
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

    The searches run in chunks. After ``_TIMING_CHUNK`` searches, when the rest would take more
    than ``_POOL_MIN_SECONDS`` here, worker processes take chunks too while this process keeps
    searching (``workers`` processes in all, by default one per CPU, see :func:`pool_size`;
    ``workers=1`` keeps everything in this process). The numbers are the same either way.
    """
    per_s, per_m, scale, encoded = _encoding(net.time_csr.data, net.length_csr.data)
    weights = net.time_csr.copy()
    weights.data = encoded
    limit = np.inf if max_minutes is None else (max_minutes * 60 * per_s + 1) * (scale or 1.0)
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
        t_min = t / (60.0 * per_s)
        if max_minutes is not None:
            t_min[t_min > max_minutes] = np.inf
        pick = (row_of >= first) & (row_of < first + len(dist))
        rows, local = valid_o[pick], row_of[pick] - first
        minutes[np.ix_(rows, valid_d)] = t_min[local]
        km[np.ix_(rows, valid_d)] = np.where(np.isfinite(t_min), length / (1000.0 * per_m),
                                             np.nan)[local]  # fmt: skip
        done += len(dist)
        report(progress, done / max(1, len(sources)), "Travel times")

    def search_here(first: int, stop: int) -> None:
        check_cancel(is_cancelled)
        store(first, _search(weights, sources[first:stop], targets, limit))

    head = min(_TIMING_CHUNK, len(sources))
    clock = time.perf_counter()
    if head:
        search_here(0, head)
    rest = len(sources) - head
    n_proc = workers or pool_size((time.perf_counter() - clock) / max(1, head) * rest)
    todo = _Todo(head, len(sources), n_proc)
    if n_proc > 1 and rest > 1:
        graph = (weights.data, weights.indices, weights.indptr, weights.shape, targets, limit)
        _search_shared(n_proc - 1, graph, sources, todo, store, search_here, is_cancelled)
    while (span := todo.take(front=True)) is not None:
        search_here(*span)
    return minutes, km


_search = _matrix_worker.search
# (units per second, units per metre) tried in turn for the time/length encoding: finest first
_RESOLUTIONS = ((100.0, 10.0), (10.0, 1.0), (1.0, 0.1))


def _encoding(seconds: np.ndarray, metres: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Edge weights in the finest units in which time and length of every simple path fit one
    exact float64: ``time_units x scale + length_units``.

    Exact while time units x scale stay below 2**53 for the whole network (sums bound every
    path). Returns (units per s, units per m, scale, weights); scale 0 (weights: time units only)
    when even the coarsest (1 s, 10 m) does not fit: km are then not computed.
    """
    for per_s, per_m in _RESOLUTIONS:
        time_units = np.maximum(np.round(seconds * per_s), 1.0)
        len_units = np.round(metres * per_m)
        scale = float(2 ** int(np.ceil(np.log2(len_units.sum() + 2))))
        if time_units.sum() * scale < 2.0**53:
            if per_s < _RESOLUTIONS[0][0]:
                logger.info("Large network: route times in %g s and lengths in %g m steps per "
                            "road segment.", 1 / per_s, 1 / per_m)  # fmt: skip
            return per_s, per_m, scale, time_units * scale + len_units
    logger.warning("The network is too large to give the km of the fastest routes exactly; the "
                   "km column stays empty (minutes are exact).")  # fmt: skip
    per_s, per_m = _RESOLUTIONS[0]
    return per_s, per_m, 0.0, np.maximum(np.round(seconds * per_s), 1.0)


# ------------------------------------------------------------------ worker processes

_TIMING_CHUNK = 4  # searches timed before deciding on workers
# a worker searches ~0.3 s after its start (python, numpy, scipy); measured on 2 idle cores, 1,000
# targets on 100k nodes: 0.65 s of searches took 0.55 s with a worker, 1 s took 0.7 s, 2 s took 1.3 s
_POOL_MIN_SECONDS = 0.5
_IN_FLIGHT = 2  # chunks sent to a worker ahead: it never waits for this process's busy GIL
# this process's own chunks while workers run: scipy's dijkstra holds the GIL, and each pipe read or
# write of a feeding thread waits for the running search to end, so these must be short
_HERE_CHUNK = 2
_WORKER_SCRIPT = Path(__file__).with_name("_matrix_worker.py")


class _WorkerError(Exception):
    """A worker process answered something other than what was asked."""


class _Todo:
    """Source indices still to search, as spans: this process takes from the front, workers from the back.

    Chunks are ``_CHUNK`` searches, smaller towards the end (a share of what is left), so that all
    processes run out of work at about the same time.
    """

    def __init__(self, lo: int, hi: int, n_proc: int) -> None:
        self.spans: deque[tuple[int, int]] = deque([(lo, hi)] if hi > lo else [])
        self.lock = threading.Lock()
        self.n_proc = max(1, n_proc)

    def take(self, front: bool, most: int = _CHUNK) -> tuple[int, int] | None:
        """The next chunk ``(first, stop)``, at most ``most`` searches, from the front or the back;
        None when all are taken."""
        with self.lock:
            if not self.spans:
                return None
            size = most
            if self.n_proc > 1:
                size = max(1, min(most, sum(b - a for a, b in self.spans) // (4 * self.n_proc)))
            a, b = self.spans.popleft() if front else self.spans.pop()
            if b - a <= size:
                return a, b
            if front:
                self.spans.appendleft((a + size, b))
                return a, a + size
            self.spans.append((a, b - size))
            return b - size, b

    def count(self) -> int:
        """Searches not taken yet."""
        with self.lock:
            return sum(b - a for a, b in self.spans)

    def give_back(self, spans) -> None:
        """Chunks a failed worker held, to be searched by someone else."""
        with self.lock:
            self.spans.extend(spans)


WORKERS_ENV = "TERRITORY_PLANNER_PROCESSES"  # e.g. 1: never start workers; 2: always, two in all


def pool_size(serial_seconds: float) -> int:
    """Processes worth searching in, this one included, for ``serial_seconds`` of work (1: only this).

    The environment variable ``TERRITORY_PLANNER_PROCESSES`` (a whole number >= 1) overrides it,
    e.g. to keep a shared server to one process.
    """
    forced = os.environ.get(WORKERS_ENV, "").strip()
    if forced:
        if forced.isdigit() and int(forced) >= 1:
            return int(forced)
        logger.warning("%s=%r is not a whole number from 1 up; ignored.", WORKERS_ENV, forced)
    if serial_seconds < _POOL_MIN_SECONDS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus)


def _is_python_interpreter(executable: str | None) -> bool:
    """True for an existing file named like a Python interpreter (python, python3.11, pythonw.exe)."""
    name = Path(executable or "").name.lower()
    return (
        bool(re.fullmatch(r"python(\d+(\.\d+)*)?w?(\.exe)?", name)) and Path(executable).is_file()
    )


def python_executable() -> str | None:
    """The Python to run workers with: this one, or inside QGIS (whose ``sys.executable`` is QGIS)
    a Python of the same version next to QGIS's or on PATH; None when there is none."""
    if _is_python_interpreter(sys.executable):
        return sys.executable
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    base = Path(sys.base_exec_prefix)
    if sys.platform == "win32":
        candidates = [base / "python.exe", base / "pythonw.exe"]
    else:
        candidates = [base / "bin" / f"python{version}", shutil.which(f"python{version}"),
                      shutil.which("python3")]  # fmt: skip
    for candidate in candidates:
        if candidate and _is_python_interpreter(str(candidate)):
            return str(candidate)
    return None


def _start_worker(python: str) -> subprocess.Popen:
    """A worker process running ``_matrix_worker.py``, pipes to its stdin and stdout."""
    flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
    return subprocess.Popen([python, str(_WORKER_SCRIPT)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            creationflags=flags)  # fmt: skip


def _send(stream, message) -> None:
    """One pickled message to a worker."""
    pickle.dump(message, stream, protocol=_matrix_worker.PROTOCOL)
    stream.flush()


def _feed_worker(python, graph, sources, todo, events, stop, procs) -> None:
    """Thread body: start a worker, check its handshake, feed it chunks from the back of ``todo``
    and put ``(first, distances)`` on ``events``; a failed worker's chunks go back to ``todo``.

    Log messages go on ``events`` as ``(None, text)``: the caller's thread logs them (QGIS shows
    only its own thread's records).
    """
    held: deque[tuple[int, int]] = deque()
    try:
        proc = _start_worker(python)
        with todo.lock:  # the caller kills what is in procs when it stops
            procs.append(proc)
            if stop.is_set():  # it stopped while this one started
                proc.kill()
                return
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        _send(proc.stdin, list(sys.path))
        their_version, status = pickle.load(proc.stdout)
        if their_version != version or status != "ready":
            raise _WorkerError(f"{python}: Python {their_version}, {status}")
        _send(proc.stdin, graph)
        events.put((None, f"Matrix worker process started ({python}, Python {version})."))
        while not stop.is_set():
            while len(held) < _IN_FLIGHT and (span := todo.take(front=False)) is not None:
                held.append(span)  # before sending: a send to a dead worker gives it back too
                _send(proc.stdin, sources[span[0] : span[1]])
            if not held:
                return
            dist = pickle.load(proc.stdout)
            first, last = held[0]
            if not isinstance(dist, np.ndarray) or dist.shape != (last - first, len(graph[4])):
                raise _WorkerError(f"{python}: {dist if isinstance(dist, str) else 'bad answer'}")
            events.put((first, dist))
            held.popleft()
    except Exception as err:  # whatever went wrong, this process searches the held chunks
        todo.give_back(held)
        if not stop.is_set():
            events.put((None, f"Matrix worker process unavailable ({err or type(err).__name__});"
                              " this process searches its share."))  # fmt: skip


def _search_shared(n_workers, graph, sources, todo, store, search_here, is_cancelled) -> None:
    """Search the chunks in ``todo`` here (from the front) and in ``n_workers`` worker processes
    (from the back); returns when all are stored or back in ``todo``. Workers never outlive it.

    ``graph`` is ``(data, indices, indptr, shape, targets, limit)``. On cancel (``is_cancelled``,
    checked between chunks) the workers are killed and :class:`Cancelled` is raised.
    """
    python = python_executable()
    if python is None:
        logger.info(
            "No Python interpreter found for matrix worker processes; searching in-process."
        )
        return
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    procs: list[subprocess.Popen] = []
    threads = [threading.Thread(target=_feed_worker, daemon=True, name="matrix-worker-feed",
                                args=(python, graph, sources, todo, events, stop, procs))
               for _ in range(n_workers)]  # fmt: skip

    total, done = todo.count(), 0

    def handle(event) -> None:
        nonlocal done
        first, payload = event
        if first is None:
            logger.info("%s", payload)
        else:
            store(first, payload)
            done += len(payload)

    for thread in threads:
        thread.start()
    try:
        while done < total:  # not "while threads run": a worker stuck in its start is left behind
            while not events.empty():
                handle(events.get_nowait())
            span = todo.take(front=True, most=_HERE_CHUNK)
            if span is not None:
                search_here(*span)
                done += span[1] - span[0]
            elif any(thread.is_alive() for thread in threads) or not events.empty():
                check_cancel(is_cancelled)
                with contextlib.suppress(queue.Empty):
                    handle(events.get(timeout=0.05))
            else:
                break  # cannot happen: a failed worker's chunks are back in todo before it ends
        while not events.empty():
            handle(events.get_nowait())
    finally:
        with todo.lock:
            stop.set()
            for proc in procs:
                proc.kill()
        for thread in threads:
            thread.join()
        for proc in procs:
            proc.kill()  # again: nothing can have started since, and a finished one is skipped
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
