"""Territory benchmark: design_territories against the straightforward PuLP formulation.

Both solve the same model (every account-territory pair a binary, CBC, same centres and tolerance).
The engine adds the LP lower bound and the verification; the ratio shows what that costs.
Also compares compactness with unconstrained nearest-centre assignment (no balance).
Prints figures and writes benchmarks/results/territories.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pulp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.territories import design_territories  # noqa: E402


def instance(n: int, k: int, seed: int = 0):
    """Clustered accounts with two measures and k rep homes, in metres."""
    rng = np.random.default_rng(seed)
    hubs = rng.uniform(0, 100_000, (max(3, k // 2), 2))
    xy = hubs[rng.integers(len(hubs), size=n)] + rng.normal(0, 8_000, (n, 2))
    acc = gpd.GeoDataFrame(
        {"id": np.arange(n).astype(str), "revenue": rng.lognormal(10, 0.5, n),
         "visits": rng.integers(2, 20, n).astype(float)},
        geometry=gpd.points_from_xy(xy[:, 0] + 300_000, xy[:, 1] + 6_600_000), crs="EPSG:32635",
    )  # fmt: skip
    homes = xy[rng.choice(n, k, replace=False)]
    reps = gpd.GeoDataFrame({"rep": [f"R{j}" for j in range(k)]},
                            geometry=gpd.points_from_xy(homes[:, 0] + 300_000, homes[:, 1] + 6_600_000),
                            crs="EPSG:32635")  # fmt: skip
    return acc, reps


def straightforward(acc, reps, tol: float, time_limit: float) -> tuple[float, float]:
    """The textbook PuLP model, written directly: returns (seconds, objective)."""
    t = time.perf_counter()
    xy = np.column_stack([acc.geometry.x, acc.geometry.y])
    cxy = np.column_stack([reps.geometry.x, reps.geometry.y])
    d = np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1)) / 1000
    n, k = d.shape
    prob = pulp.LpProblem("plain", pulp.LpMinimize)
    x = [[pulp.LpVariable(f"x{i}_{j}", cat="Binary") for j in range(k)] for i in range(n)]
    prob += pulp.lpSum(d[i, j] * x[i][j] for i in range(n) for j in range(k))
    for i in range(n):
        prob += pulp.lpSum(x[i]) == 1
    for f in ("revenue", "visits"):
        v = acc[f].to_numpy()
        target = v.sum() / k
        for j in range(k):
            e = pulp.lpSum(v[i] * x[i][j] for i in range(n))
            prob += e <= target * (1 + tol / 100)
            prob += e >= target * (1 - tol / 100)
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
    return time.perf_counter() - t, float(pulp.value(prob.objective))


def main() -> None:
    """Run the benchmark and print/write the figures."""
    rows = []
    for n, k in ((500, 5), (1000, 10)):
        acc, reps = instance(n, k)
        t = time.perf_counter()
        plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                                  balance_fields=["revenue", "visits"], tolerance_pct=5,
                                  time_limit_s=60)  # fmt: skip
        ours = time.perf_counter() - t
        plain_s, plain_obj = straightforward(acc, reps, 5, 60)
        xy = np.column_stack([acc.geometry.x, acc.geometry.y])
        cxy = np.column_stack([reps.geometry.x, reps.geometry.y])
        nearest = (np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1)).min(1) / 1000).sum()
        rows.append({
            "accounts": n, "territories": k, "engine_s": round(ours, 2),
            "straightforward_s": round(plain_s, 2), "time_ratio": round(ours / plain_s, 2),
            "engine_objective": round(plan.objective, 2), "straightforward_objective": round(plain_obj, 2),
            "objective_ratio": round(plan.objective / plain_obj, 4), "gap_pct": round(plan.gap_pct, 3),
            "compactness_vs_unbalanced": round(plan.objective / nearest, 3),
        })  # fmt: skip
        print(rows[-1], flush=True)
    out = ROOT / "benchmarks" / "results" / "territories.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
