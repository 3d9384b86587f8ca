"""Generate the sample accounts and reps on the bundled Helsinki roads (deterministic, seed 42)."""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin import network  # noqa: E402

SEED = 42


def main() -> None:
    """Write sample_data/accounts.gpkg, reps.gpkg and reps_hybrid.gpkg (one layer each, named as the file)."""
    rng = np.random.default_rng(SEED)
    graph = network.build_road_network(ROOT / "sample_data" / "helsinki.osm.pbf")
    import osmnx as ox

    nodes = ox.graph_to_gdfs(graph, edges=False)
    xy = np.column_stack([nodes.geometry.x, nodes.geometry.y])
    n = 500
    base = xy[rng.integers(0, len(xy), n)]
    pts = base + rng.normal(0, 40, (n, 2))
    far = np.array(
        [[xy[:, 0].min() - 2500, xy[:, 1].mean()], [xy[:, 0].max() + 2500, xy[:, 1].min()]]
    )
    pts = np.vstack([pts, far])
    k = 5
    order = np.argsort(np.arctan2(pts[:, 1] - xy[:, 1].mean(), pts[:, 0] - xy[:, 0].mean()))
    current = np.empty(len(pts), dtype=object)
    for t, chunk in enumerate(np.array_split(order, k)):
        current[chunk] = f"T{t + 1:02d}"
    locked = np.full(len(pts), None, dtype=object)
    for i in rng.choice(n, 8, replace=False):
        locked[i] = current[i]
    accounts = gpd.GeoDataFrame(
        {
            "id": [f"A{i + 1:04d}" for i in range(len(pts))],
            "name": [f"Account {i + 1}" for i in range(len(pts))],
            "revenue_potential": np.round(rng.lognormal(10.5, 0.6, len(pts)), 2),
            "workload_visits": rng.integers(4, 25, len(pts)),
            "active_prospect": (rng.random(len(pts)) < 0.9).astype(int),
            "current_territory": current,
            "locked_to": locked,
        },
        geometry=gpd.points_from_xy(pts[:, 0], pts[:, 1]),
        crs=graph.graph["crs"],
    ).to_crs("EPSG:4326")
    homes = xy[rng.choice(len(xy), k, replace=False)]
    reps = gpd.GeoDataFrame(
        {
            "rep_id": [f"T{t + 1:02d}" for t in range(k)],
            "rep_name": ["Aino", "Eero", "Helmi", "Juho", "Kaisa"],
            "capacity": [1.0, 1.5, 1.0, 0.8, 1.0],
        },
        geometry=gpd.points_from_xy(homes[:, 0], homes[:, 1]),
        crs=graph.graph["crs"],
    ).to_crs("EPSG:4326")
    # Coverage-model fields, drawn after everything above so the older fields keep their values.
    segments = np.array(["healthcare", "finance", "retail", "manufacturing"])
    accounts["segment"] = segments[rng.choice(4, len(pts), p=[0.3, 0.25, 0.25, 0.2])]
    accounts["revenue_last_year"] = np.round(
        accounts["revenue_potential"] * rng.uniform(0.55, 1.05, len(pts)), 2
    )
    reps["skills"] = [
        "healthcare,finance",
        "retail,manufacturing",
        "healthcare,retail",
        "finance,manufacturing",
        "healthcare,finance,retail,manufacturing",
    ]
    reps["named_accounts"] = 0
    # A hybrid team: the five geographic reps plus two named-account reps (enterprise).
    enterprise_homes = xy[rng.choice(len(xy), 2, replace=False)]
    enterprise = gpd.GeoDataFrame(
        {
            "rep_id": ["N01", "N02"],
            "rep_name": ["Linnea", "Onni"],
            "capacity": [1.0, 1.0],
            "skills": ["healthcare,finance,retail,manufacturing"] * 2,
            "named_accounts": [1, 1],
        },
        geometry=gpd.points_from_xy(enterprise_homes[:, 0], enterprise_homes[:, 1]),
        crs=graph.graph["crs"],
    ).to_crs("EPSG:4326")
    reps_hybrid = gpd.GeoDataFrame(
        pd.concat([reps, enterprise], ignore_index=True), crs="EPSG:4326"
    )
    for frame, name in ((accounts, "accounts"), (reps, "reps"), (reps_hybrid, "reps_hybrid")):
        out = ROOT / "sample_data" / f"{name}.gpkg"
        out.unlink(missing_ok=True)
        frame.to_file(out, layer=name, driver="GPKG")
        print(f"{out}: {len(frame)} features")


if __name__ == "__main__":
    main()
