"""Network benchmark: catchments per second, a 1000 x 1000 matrix, and the OSMnx-examples recipe.

Synthetic road graph of about 100,000 nodes (perturbed grid, two-way streets, varied speeds).
Prints figures and writes benchmarks/results/network.json. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin import catchments, matrix, network  # noqa: E402


def synthetic_network(side: int = 316, seed: int = 0) -> network.RoadNetwork:
    """A perturbed ``side`` x ``side`` grid, 100 m blocks, speeds 30-80 km/h."""
    rng = np.random.default_rng(seed)
    idx = np.arange(side * side).reshape(side, side)
    gx, gy = np.meshgrid(np.arange(side) * 100.0, np.arange(side) * 100.0)
    x = (gx + rng.uniform(-20, 20, gx.shape)).ravel() + 300_000
    y = (gy + rng.uniform(-20, 20, gy.shape)).ravel() + 6_600_000
    u = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    v = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    u, v = np.concatenate([u, v]), np.concatenate([v, u])
    length = np.hypot(x[u] - x[v], y[u] - y[v])
    speed = rng.choice([30.0, 40.0, 50.0, 80.0], len(u) // 2, p=[0.5, 0.3, 0.15, 0.05])
    speed = np.concatenate([speed, speed])
    nodes = gpd.GeoDataFrame({"osmid": np.arange(side * side)}, geometry=shapely.points(x, y),
                             crs="EPSG:32635")  # fmt: skip
    edges = gpd.GeoDataFrame(
        {"u": u, "v": v, "length_m": length, "travel_time_s": length / (speed / 3.6)},
        geometry=shapely.linestrings(np.stack([np.column_stack([x[u], y[u]]),
                                               np.column_stack([x[v], y[v]])], 1)),
        crs="EPSG:32635",
    )  # fmt: skip
    return network.network_from_frames(nodes, edges)


def main() -> None:
    """Run the benchmark and print/write the figures."""
    t0 = time.perf_counter()
    net = synthetic_network()
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    band = 5.0
    n_origins = 200
    idx = rng.choice(net.n_nodes, n_origins, replace=False)
    pts = gpd.GeoDataFrame({"id": np.arange(n_origins)}, geometry=shapely.points(net.x[idx], net.y[idx]),
                           crs=net.crs)  # fmt: skip
    figures: dict[str, float] = {"nodes": net.n_nodes, "edges": int(net.time_csr.nnz),
                                 "build_s": round(build_s, 2), "band_min": band}  # fmt: skip
    for shape, count in (("convex", n_origins), ("concave", 100)):
        t = time.perf_counter()
        catchments.drive_time_catchments(net, pts.iloc[:count], id_field="id", bands_minutes=[band],
                                         shape=shape)  # fmt: skip
        figures[f"{shape}_per_s"] = round(count / (time.perf_counter() - t), 1)
    # the OSMnx-examples recipe: ego_graph per origin, then the convex hull of its nodes
    g = nx.DiGraph()
    e = net.edges
    g.add_weighted_edges_from(zip(e["u_idx"], e["v_idx"], e["travel_time_s"]), weight="travel_time")
    n_base = 30
    t = time.perf_counter()
    for i in idx[:n_base]:
        sub = nx.ego_graph(g, int(i), radius=band * 60, distance="travel_time")
        _ = shapely.multipoints(np.column_stack([net.x[list(sub)], net.y[list(sub)]])).convex_hull
    base_rate = n_base / (time.perf_counter() - t)
    agree = all(
        set(nx.ego_graph(g, int(i), radius=band * 60, distance="travel_time"))
        == set(catchments.reachable_nodes(net, int(i), band * 60))
        for i in idx[:5]
    )
    figures["networkx_ego_graph_per_s"] = round(base_rate, 2)
    figures["speedup_convex_vs_ego_graph"] = round(figures["convex_per_s"] / base_rate, 1)
    figures["reachable_sets_agree"] = agree
    n_m = 1000
    mi = rng.choice(net.n_nodes, n_m, replace=False)
    mj = rng.choice(net.n_nodes, n_m, replace=False)
    t = time.perf_counter()
    minutes, km = matrix._times_and_km(net, mi, mj, None, None, None)  # as traveltimematrix
    figures["matrix_1000x1000_s"] = round(time.perf_counter() - t, 2)
    figures["matrix_finite_share"] = round(float(np.isfinite(minutes).mean()), 3)
    figures["matrix_km_finite_share"] = round(float(np.isfinite(km).mean()), 3)
    # extra figures: the same matrix forced into this one process, and that the numbers agree
    figures["cpus"] = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    )
    t = time.perf_counter()
    one, one_km = matrix._times_and_km(net, mi, mj, None, None, None, workers=1)
    figures["matrix_1000x1000_one_process_s"] = round(time.perf_counter() - t, 2)
    figures["matrix_same_in_one_process"] = bool(
        np.array_equal(one, minutes) and np.array_equal(one_km, km, equal_nan=True)
    )
    out = ROOT / "benchmarks" / "results" / "network.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:32} {value}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
