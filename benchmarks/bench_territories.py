"""Territory benchmark: design_territories and rebalance_territories against their goals.

1. Rep homes as centres, two balanced measures, 5% tolerance, sizes up to 100,000 x 50: time, peak
   memory (each size in its own process), gap to the proven lower bound; for sizes where it can
   run, the straightforward formulation (PuLP, every account-territory pair a binary, CBC, same
   centres and tolerance) in the same run, with time and objective ratios.
2. Compactness without reps (K = 50): total distance of the balanced plan against a strong
   unbalanced p-median reference with the same K (`--compactness`): a proven lower bound of the
   best unbalanced p-median with centres among the accounts (Lagrangian relaxation,
   benchmarks/pmedian_ref.py) and the best p-median plan found (k-median, Lagrangian primal).
3. Rebalancing 10,000 x 50 after 5% of the accounts change value: time, moves and the proven
   lower bound on the moves.
4. Travel balance: revenue 40 / workload 30 with and without travel 30 (TRAVEL_WEIGHT): CV of
   travel per territory, total travel, time and gap.
Prints figures and writes benchmarks/results/territories.json.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pulp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy.spatial import cKDTree  # noqa: E402

from benchmarks.pmedian_ref import assign_cost, pmedian_reference  # noqa: E402
from territory_planner_plugin.centres import kmeanspp, kmedian  # noqa: E402
from territory_planner_plugin.rebalance import rebalance_territories  # noqa: E402
from territory_planner_plugin.territories import design_territories  # noqa: E402

STRAIGHTFORWARD_LIMIT_S = 120  # CBC time limit for the straightforward formulation
PMEDIAN_LIST = 300  # candidate centres per account in the Lagrangian p-median (nearest)
PMEDIAN_ITERATIONS = 2000  # subgradient steps at most
PMEDIAN_LIMIT_S = 300.0  # and this many seconds at most
SIZES = ((500, 5), (1000, 10), (2000, 20), (10_000, 50), (100_000, 50))
STRAIGHTFORWARD_SIZES = {(500, 5), (1000, 10), (2000, 20)}  # beyond: hours for CBC


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


def straightforward(acc, reps, tol: float, time_limit: float) -> tuple[float, float | None]:
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
    found = prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    return time.perf_counter() - t, float(pulp.value(prob.objective)) if found else None


def one_size(n: int, k: int) -> dict:
    """Engine on one size (run in a child process so that peak memory is its own)."""
    acc, reps = instance(n, k)
    t = time.perf_counter()
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue", "visits"], tolerance_pct=5,
                              time_limit_s=60)  # fmt: skip
    seconds = time.perf_counter() - t
    return {
        "accounts": n, "territories": k, "engine_s": round(seconds, 2),
        "engine_objective": round(plan.objective, 2), "lower_bound": round(plan.lower_bound, 2),
        "gap_pct": round(plan.gap_pct, 3), "max_deviation_pct": plan.max_deviation_pct,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }  # fmt: skip


def compactness(n: int = 10_000, k: int = 50) -> dict:
    """Balanced plan without reps against a strong unbalanced p-median reference, same K:
    k-median (best of 3 seeds), then the Lagrangian p-median of :mod:`pmedian_ref` over every
    account as a candidate centre (each account's 300 nearest, a valid far option beyond): a
    proven lower bound of the best unbalanced p-median and its primal plan."""
    from territory_planner_plugin.errors import SolverError

    acc, _ = instance(n, k)
    limit = None
    for limit in (None, 180.0):  # a loaded machine can time out at the default TIME_LIMIT
        t = time.perf_counter()
        try:
            plan = design_territories(acc, id_field="id", n_territories=k,
                                      balance_fields=["revenue", "visits"], tolerance_pct=5,
                                      **({} if limit is None else {"time_limit_s": limit}))  # fmt: skip
            break
        except SolverError:
            if limit is not None:
                raise
    seconds = time.perf_counter() - t
    xy = np.column_stack([acc.geometry.x, acc.geometry.y]) / 1000  # km
    best, best_cen = np.inf, None
    for seed in range(3):
        cen = kmedian(xy, kmeanspp(xy, k, np.random.default_rng(seed)), np.full(n, -1),
                      lambda c: np.sqrt(((xy[:, None] - c[None]) ** 2).sum(-1)))  # fmt: skip
        d = assign_cost(xy, cen)
        if d < best:
            best, best_cen = d, cen
    start = cKDTree(xy).query(best_cen)[1]  # k-median centres are accounts (medoids)
    ref = pmedian_reference(xy, k, m=PMEDIAN_LIST, iterations=PMEDIAN_ITERATIONS,
                            time_limit_s=PMEDIAN_LIMIT_S, upper_start=start, theta=2.0,
                            patience=40)  # fmt: skip
    upper = min(ref.upper, best)
    return {"accounts": n, "territories": k, "balanced_s": round(seconds, 2),
            "time_limit_s": limit or "default", "balanced_km": round(plan.objective, 1),
            "kmedian_km": round(best, 1),
            "pmedian_km": round(ref.upper, 1), "pmedian_lower_bound_km": round(ref.lower, 1),
            "pmedian_gap_pct": round(100 * (upper / ref.lower - 1), 2),
            "pmedian_iterations": ref.iterations, "pmedian_far_used": ref.far_used,
            "reference_s": round(ref.seconds, 1),
            "ratio_to_kmedian": round(plan.objective / best, 3),
            "ratio_to_pmedian": round(plan.objective / upper, 4),
            "ratio_to_lower_bound": round(plan.objective / ref.lower, 4), "goal": 1.05,
            "goal_met": bool(plan.objective <= 1.05 * ref.lower),
            "bound_scope": plan.bound_scope}  # fmt: skip


def rebalance(n: int = 10_000, k: int = 50) -> dict:
    """5% of the accounts change revenue; rebalance with the fewest moves."""
    acc, reps = instance(n, k)
    base = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue", "visits"], tolerance_pct=5)  # fmt: skip
    changed = acc.copy()
    changed["current"] = base.accounts["territory_id"].to_numpy()
    rng = np.random.default_rng(5)
    idx = rng.choice(n, n // 20, replace=False)
    changed.loc[idx, "revenue"] = changed.loc[idx, "revenue"] * rng.uniform(0.3, 2.5, len(idx))
    t = time.perf_counter()
    res = rebalance_territories(changed, id_field="id", current_field="current", reps=reps,
                                rep_id_field="rep", balance_fields=["revenue", "visits"],
                                tolerance_pct=5)  # fmt: skip
    seconds = time.perf_counter() - t
    return {"accounts": n, "territories": k, "changed": len(idx), "seconds": round(seconds, 2),
            "moves": res.plan.moved, "moves_lower_bound": res.moves_lower_bound,
            "ratio_to_bound": round(res.plan.moved / max(res.moves_lower_bound, 1), 2),
            "goal_ratio": 2.0, "goal_s": 5.0}  # fmt: skip


def travel_balance(sizes=((2000, 20), (10_000, 50))) -> list[dict]:
    """Revenue 40 / workload 30, then the same with travel 30: what evening out travel costs."""
    rows = []
    for n, k in sizes:
        acc, reps = instance(n, k)
        row: dict = {"accounts": n, "territories": k}
        for weight in (0.0, 30.0):
            t = time.perf_counter()
            plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                                      balance_fields=["revenue", "visits"],
                                      balance_weights=[40, 30], travel_weight=weight,
                                      tolerance_pct=5)  # fmt: skip
            tag = "travel30" if weight else "no_travel"
            row.update({f"{tag}_s": round(time.perf_counter() - t, 2),
                        f"{tag}_cv_travel": plan.kpis["cv_travel"],
                        f"{tag}_travel_km": round(float(plan.summary["travel_total"].sum()), 1),
                        f"{tag}_gap_pct": round(plan.gap_pct, 2)})  # fmt: skip
        row["travel_ratio"] = round(row["travel30_travel_km"] / row["no_travel_travel_km"], 4)
        rows.append(row)
    return rows


def main() -> None:
    """Run the benchmark and print/write the figures."""
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(one_size(int(sys.argv[2]), int(sys.argv[3]))))
        return
    if sys.argv[1:] == ["--compactness"]:
        print(json.dumps(compactness()))
        return
    if sys.argv[1:] == ["--travel"]:
        print(json.dumps(travel_balance()))
        return
    rows = []
    for n, k in SIZES:
        child = subprocess.run([sys.executable, __file__, "--one", str(n), str(k)],
                               capture_output=True, text=True, check=True)  # fmt: skip
        row = json.loads(child.stdout.strip().splitlines()[-1])
        if (n, k) in STRAIGHTFORWARD_SIZES:
            acc, reps = instance(n, k)
            plain_s, plain_obj = straightforward(acc, reps, 5, STRAIGHTFORWARD_LIMIT_S)
            row.update(straightforward_s=round(plain_s, 2),
                       straightforward_objective=round(plain_obj, 2) if plain_obj else None,
                       time_ratio=round(plain_s / row["engine_s"], 1),
                       objective_ratio=round(row["engine_objective"] / plain_obj, 4)
                       if plain_obj else None)  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    result = {"design_with_reps": rows, "compactness": compactness(), "rebalance": rebalance(),
              "travel_balance": travel_balance()}  # fmt: skip
    for key in ("compactness", "rebalance", "travel_balance"):
        print(result[key], flush=True)
    out = ROOT / "benchmarks" / "results" / "territories.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
