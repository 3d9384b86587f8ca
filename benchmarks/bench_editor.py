"""Territory editor benchmark: the live table's update time after one edit.

Two plans: 10,000 accounts (points, Delaunay neighbours) in 20 territories and 10,000 units
(a 100 x 100 grid of square areas, shared edges) in 20 territories. One edit = a selection of
25 rows (a small block at a territory border, as a lasso would pick) assigned to a neighbouring
territory; timed: the update (totals by difference, pieces/travel/compactness of the touched
territories) plus reading the whole table and the plan figures as the panel does. Goal: <= 100 ms.
Also timed, apart: redrawing the plan's territory polygons after the edit, as the panel does in a
Territories layer of the plan (accounts: every territory's Voronoi cells within the plan's
outline; units: the touched territories' units dissolved); no goal set, the figure is printed.
Prints figures and writes benchmarks/results/editor.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.editor import (  # noqa: E402
    PlanTable,
    point_adjacency,
    polygon_adjacency,
    territory_outlines,
)

EDITS = 60
GOAL_MS = 100.0


def accounts_plan(n: int = 10_000, k: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50_000, (n, 2))
    centres = rng.uniform(0, 50_000, (k, 2))
    code = np.argmin(((xy[:, None] - centres[None]) ** 2).sum(-1), 1)
    return xy, code, centres, point_adjacency(xy), {"outline": shapely.box(0, 0, 50_000, 50_000)}


def units_plan(side: int = 100, k: int = 20, seed: int = 1):
    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    x0, y0 = ii.ravel() * 500.0, jj.ravel() * 500.0
    boxes = shapely.box(x0, y0, x0 + 500, y0 + 500)
    xy = np.column_stack([x0 + 250, y0 + 250])
    centres = rng.uniform(0, side * 500, (k, 2))
    code = np.argmin(((xy[:, None] - centres[None]) ** 2).sum(-1), 1)
    t0 = time.perf_counter()
    adj = polygon_adjacency(boxes)
    return xy, code, centres, adj, {"geometries": boxes}, time.perf_counter() - t0


def run(name: str, xy, code, centres, adj, shapes: dict, seed: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    n, k = len(xy), len(centres)
    keys = [f"T{j}" for j in code]
    values = {"revenue": rng.integers(10, 100, n).astype(float),
              "visits": rng.integers(1, 10, n).astype(float)}  # fmt: skip
    t0 = time.perf_counter()
    live = PlanTable(
        keys, values=values, balance_fields=["revenue", "visits"], tolerance_pct=5.0,
        current=keys, xy=xy, adjacency=adj, centres={f"T{j}": c for j, c in enumerate(centres)},
        max_km=40.0,
    )  # fmt: skip
    live.table()
    live.plan()
    load_s = time.perf_counter() - t0
    times, redraw = [], []
    for _ in range(EDITS):
        # a border block: a row, its nearest 24 neighbours, moved to the territory of another one
        r = int(rng.integers(n))
        near = np.argsort(((xy - xy[r]) ** 2).sum(1))[:60]
        other = [c for c in live.codes[near] if c != live.codes[r]]
        rows = near[:25]
        to = live.keys[other[0]] if other else live.keys[(live.codes[r] + 1) % k]
        before = live.codes.copy()
        t = time.perf_counter()
        live.assign(rows, to)
        live.table()
        live.plan()
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        touched = live.changed_territories(before)  # as the panel finds them
        territory_outlines(live, touched if "geometries" in shapes else live.keys, **shapes)
        redraw.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    redraw_ms = np.array(redraw) * 1000
    out = {
        "plan": name, "rows": n, "territories": k, "load_s": round(load_s, 3),
        "edit_median_ms": round(float(np.median(ms)), 2),
        "edit_p95_ms": round(float(np.percentile(ms, 95)), 2),
        "edit_max_ms": round(float(ms.max()), 2), "goal_ms": GOAL_MS,
        "met": bool(np.percentile(ms, 95) <= GOAL_MS),
        "redraw_median_ms": round(float(np.median(redraw_ms)), 1),
        "redraw_p95_ms": round(float(np.percentile(redraw_ms, 95)), 1),
    }  # fmt: skip
    print(json.dumps(out))
    return out


def main() -> None:
    results = [run("10,000 accounts (points)", *accounts_plan())]
    xy, code, centres, adj, shapes, adj_s = units_plan()
    res = run("10,000 units (polygons)", xy, code, centres, adj, shapes)
    res["adjacency_s"] = round(adj_s, 3)
    results.append(res)
    path = ROOT / "benchmarks" / "results" / "editor.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
