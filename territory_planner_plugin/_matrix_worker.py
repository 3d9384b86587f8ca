"""Code that runs in matrix worker processes: numpy and scipy only, so that they start fast.

A spawned worker imports this module, not :mod:`matrix` (which pulls in geopandas and the
network code, over a second of start-up per worker).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

_state: dict = {}


def search(weights, sources: np.ndarray, targets: np.ndarray, limit: float) -> np.ndarray:
    """Lexicographic distances from ``sources`` (rows) to ``targets`` (columns)."""
    return dijkstra(weights, indices=sources, limit=limit)[:, targets]


def init_worker(data, indices, indptr, shape, targets, limit) -> None:
    """Pool initializer: rebuild the graph once per worker."""
    _state["weights"] = sp.csr_matrix((data, indices, indptr), shape=shape)
    _state["targets"] = targets
    _state["limit"] = limit


def search_worker(sources: np.ndarray) -> np.ndarray:
    """One chunk of origins, in a worker."""
    return search(_state["weights"], sources, _state["targets"], _state["limit"])
