"""The benchmark's p-median reference (benchmarks/pmedian_ref.py) against an exact p-median."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from benchmarks.pmedian_ref import assign_cost, pmedian_reference


def _clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hubs = rng.uniform(0, 100, (6, 2))
    return hubs[rng.integers(len(hubs), size=n)] + rng.normal(0, 8, (n, 2))


def _exact_pmedian(xy: np.ndarray, p: int) -> float:
    """Textbook p-median (every point a candidate site), HiGHS through scipy: the optimum."""
    n = len(xy)
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    nx = n * n
    rows = np.repeat(np.arange(n), n)
    cols = np.tile(np.arange(n), n)
    assign = sp.csr_matrix((np.ones(nx), (rows, np.arange(nx))), shape=(n, nx + n))
    link = sp.hstack(
        [
            sp.identity(nx, format="csr"),
            -sp.csr_matrix((np.ones(nx), (np.arange(nx), cols)), shape=(nx, n)),
        ]
    )
    count = sp.csr_matrix(np.concatenate([np.zeros(nx), np.ones(n)])[None, :])
    res = milp(np.concatenate([d.ravel(), np.zeros(n)]),
               constraints=[LinearConstraint(assign, 1, 1), LinearConstraint(link, -np.inf, 0),
                            LinearConstraint(count, p, p)],
               integrality=np.concatenate([np.zeros(nx), np.ones(n)]), bounds=Bounds(0, 1),
               options={"time_limit": 120})  # fmt: skip
    assert res.status == 0
    return float(res.fun)


@pytest.fixture(scope="module")
def instance() -> tuple[np.ndarray, float]:
    xy = _clustered(300, 3)
    return xy, _exact_pmedian(xy, 10)


@pytest.mark.parametrize("m", [25, 299])
def test_lagrangian_bound_brackets_the_exact_pmedian(instance, m: int) -> None:
    xy, exact = instance
    ref = pmedian_reference(xy, 10, m=m, iterations=1500, time_limit_s=60)
    assert ref.lower <= exact + 1e-6 * exact  # a proven lower bound, sparse lists or not
    assert ref.upper >= exact - 1e-6 * exact
    assert assign_cost(xy, xy[ref.centres]) == pytest.approx(ref.upper)
    assert ref.lower >= (0.995 if m == 299 else 0.98) * exact  # and a strong one
    assert ref.upper <= 1.02 * exact


def test_the_far_option_keeps_short_lists_valid(instance) -> None:
    xy, exact = instance
    ref = pmedian_reference(xy, 10, m=3, iterations=800, time_limit_s=30)
    assert ref.far_used > 0  # most accounts' centre is beyond their 3 nearest
    assert ref.lower <= exact + 1e-6 * exact
