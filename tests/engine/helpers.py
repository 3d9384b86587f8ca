"""Random accounts and reps shared by the engine tests of designterritories and rebalanceterritories.

Import as ``from tests.engine.helpers import ...`` (pytest runs in importlib mode with the
repository root on sys.path; conftest modules cannot be imported).
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np

CRS = "EPSG:32635"


def random_accounts(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` accounts (id, revenue, visits) spread over 20 x 20 km, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 20_000, (n, 2))
    return gpd.GeoDataFrame(
        {
            "id": [f"A{i}" for i in range(n)],
            "revenue": rng.integers(10, 100, n).astype(float),
            "visits": rng.integers(1, 10, n).astype(float),
        },
        geometry=gpd.points_from_xy(xy[:, 0] + 300_000, xy[:, 1] + 6_600_000),
        crs=CRS,
    )


def random_reps(k: int, seed: int = 1) -> gpd.GeoDataFrame:
    """``k`` reps (rep, cap = 1) over the same area, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 20_000, (k, 2))
    return gpd.GeoDataFrame(
        {"rep": [f"R{j}" for j in range(k)], "cap": np.ones(k)},
        geometry=gpd.points_from_xy(xy[:, 0] + 300_000, xy[:, 1] + 6_600_000),
        crs=CRS,
    )


def brute_force(acc, reps, field: str, tol: float, mu: float = 0.0) -> float:
    """Best objective over every assignment of ``acc`` to equal ``reps`` (tiny cases only).

    Straight-line km in all, plus ``mu`` x the summed distance of each territory's km from the
    mean (the travel penalty); only plans whose ``field`` totals are within ``tol`` % of the mean
    count. inf when there is none. Written apart from the engine, as a reference.
    """
    xy = np.column_stack([acc.geometry.x, acc.geometry.y])
    cxy = np.column_stack([reps.geometry.x, reps.geometry.y])
    d = np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1)) / 1000
    v = acc[field].to_numpy()
    k = len(reps)
    target = v.sum() / k
    best = np.inf
    for combo in itertools.product(range(k), repeat=len(acc)):
        a = np.array(combo)
        tot = np.array([v[a == j].sum() for j in range(k)])
        if (np.abs(tot - target) <= tol / 100 * target + 1e-9).all():
            travel = np.array([d[a == j, j].sum() for j in range(k)])
            best = min(best, travel.sum() + mu * np.abs(travel - travel.mean()).sum())
    return best
