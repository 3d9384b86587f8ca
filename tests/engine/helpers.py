"""Random accounts and reps shared by the engine tests of designterritories and rebalanceterritories.

Import as ``from tests.engine.helpers import ...`` (pytest runs in importlib mode with the
repository root on sys.path; conftest modules cannot be imported).
"""

from __future__ import annotations

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
