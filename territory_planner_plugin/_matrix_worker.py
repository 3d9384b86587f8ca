"""Matrix searches, and the worker process that runs them for :mod:`matrix` (stdlib, numpy, scipy only).

Run as a script (``python _matrix_worker.py``), it talks pickle over stdin/stdout: the parent
sends its ``sys.path``; the worker imports numpy and scipy and answers ``(python version, "ready")``
or ``(python version, error text)``; the parent sends the graph ``(data, indices, indptr, shape,
targets, limit)``; then each array of source nodes is answered with their distances (rows x
targets) or an error text. End of input ends the worker.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PROTOCOL = min(5, pickle.HIGHEST_PROTOCOL)


def search(weights, sources: np.ndarray, targets: np.ndarray, limit: float) -> np.ndarray:
    """Lexicographic distances from ``sources`` (rows) to ``targets`` (columns)."""
    from scipy.sparse.csgraph import dijkstra

    return dijkstra(weights, indices=sources, limit=limit)[:, targets]


def _send(stream, message) -> None:
    """One pickled message to the parent."""
    pickle.dump(message, stream, protocol=PROTOCOL)
    stream.flush()


def adopt_parent_path(parent_path: list) -> None:
    """A worker script's ``sys.path``: the parent's first, without this package's folder (its
    modules are not top-level modules; also used by ``_cuts_worker.py``)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    sys.path[:0] = [p for p in parent_path if isinstance(p, str)]


def main() -> None:
    """Serve the parent's search requests until its end of input."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        parent_path = pickle.load(stdin)
    except EOFError:
        return
    adopt_parent_path(parent_path)
    try:
        import scipy.sparse as sp
        from scipy.sparse.csgraph import dijkstra  # noqa: F401  (import errors show here)
    except Exception as err:  # any failure means: no worker
        _send(stdout, (version, f"{type(err).__name__}: {err}"))
        return
    _send(stdout, (version, "ready"))
    try:
        data, indices, indptr, shape, targets, limit = pickle.load(stdin)
    except EOFError:
        return
    weights = sp.csr_matrix((data, indices, indptr), shape=shape)
    while True:
        try:
            sources = pickle.load(stdin)
        except EOFError:
            return
        try:
            answer = search(weights, sources, targets, limit)
        except Exception as err:  # the parent searches these itself
            answer = f"{type(err).__name__}: {err}"
        _send(stdout, answer)


if __name__ == "__main__":
    main()
