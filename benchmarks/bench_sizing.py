"""Sizing benchmark: sizeterritories' trade-off table over K = 30...70 for 10,000 accounts.

Clustered synthetic accounts (revenue and workload), target 1,000 workload per territory ± 5 %,
two balanced measures. Prints the time of the whole table (goal: 60 s or less), the recommended K
against the arithmetic one (total / target), and how many rows were balanced within TOLERANCE.
Baseline in the same process (skip with --no-baseline): full designterritories runs (centre
search, balanced assignment with local search) at K = 30 and 50: their time per K and the quick
row's travel against theirs. Writes benchmarks/results/sizing.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.sizing import METHOD_NOT_BAND, METHOD_PRICED, size_territories  # noqa: E402
from territory_planner_plugin.territories import design_territories  # noqa: E402

N, K_MIN, K_MAX, GOAL_S = 10_000, 30, 70, 60.0
BASELINE_KS = (30, 50)


def accounts(n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """Accounts around 12 towns over 100 x 100 km, with revenue and workload."""
    rng = np.random.default_rng(seed)
    towns = rng.uniform(0, 100_000, (12, 2))
    xy = towns[rng.integers(0, 12, n)] + rng.normal(0, 6_000, (n, 2))
    return gpd.GeoDataFrame(
        {"id": [f"A{i:05d}" for i in range(n)], "revenue": rng.gamma(2.0, 20_000, n),
         "workload": rng.integers(2, 10, n).astype(float)},
        geometry=shapely.points(xy), crs=3067,
    )  # fmt: skip


def main() -> None:
    acc = accounts(N)
    total = float(acc["workload"].sum())
    target = round(total / 50, -1)  # a target that K near 50 meets
    t0 = time.perf_counter()
    res = size_territories(
        acc, id_field="id", balance_fields=["workload", "revenue"], target_field="workload",
        target_per_territory=target, k_min=K_MIN, k_max=K_MAX, tolerance_pct=5.0, seed=0,
        time_limit_s=60.0,
    )  # fmt: skip
    took = time.perf_counter() - t0
    method = res.table["method"]
    priced = method.str.contains(METHOD_PRICED.split(" (")[0].replace("k-means centres + ", ""))
    missed_band = method.str.contains(METHOD_NOT_BAND, regex=False)
    figures = {
        "accounts": N, "k_range": [K_MIN, K_MAX], "seconds": round(took, 1), "goal_s": GOAL_S,
        "target": target, "recommended_k": res.recommended_k,
        "arithmetic_k": int(np.ceil(total / (target * 1.05))),
        "rows_balanced_within_tolerance": int((~priced).sum()), "rows": len(res.table),
        "rows_target_band_not_reached_in_quick_pass": int(missed_band.sum()),
        "ks_meeting_target": [int(k) for k in res.table.loc[res.table["meets_target"], "k"]],
        "slowest_row_s": float(res.table["seconds"].max()),
    }  # fmt: skip
    if "--no-baseline" not in sys.argv:
        rows = res.table.set_index("k")
        for k in BASELINE_KS:
            t1 = time.perf_counter()
            plan = design_territories(acc, id_field="id", n_territories=k,
                                      balance_fields=["workload", "revenue"], tolerance_pct=5.0,
                                      seed=0, time_limit_s=30.0)  # fmt: skip
            design_s = time.perf_counter() - t1
            figures[f"design_k{k}_s"] = round(design_s, 1)
            figures[f"quick_k{k}_s"] = float(rows.loc[k, "seconds"])
            figures[f"travel_quick_over_design_k{k}"] = round(
                float(rows.loc[k, "travel_km"]) / plan.objective, 3
            )
    for key, value in figures.items():
        print(f"{key:32s} {value}")
    print("goal met" if took <= GOAL_S else "goal NOT met")
    out = ROOT / "benchmarks" / "results" / "sizing.json"
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
