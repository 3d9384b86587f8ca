"""Coverage-model benchmark: hybrid plan (named + geographic tiers) and rep expertise.

1. Hybrid: 10,000 accounts, the top 20 % of revenue potential named among 5 named-account reps
   (today's owner kept where the tolerance allows), the rest in 45 geographic territories; two
   measures at 5 %: time, largest deviation and gap per tier. Baseline in the same process: one
   geographic plan of the same accounts over all 50 reps (time ratio).
2. Expertise, hard: 10,000 accounts in 4 segments, 50 reps covering 1-3 segments each: every
   account with a rep who covers its segment; total distance against the proven lower bound
   (gap), and against the plan without expertise (the cost of the rule).
3. The whole qgis_process run of the hybrid plan on the sample data (wall clock).
Prints figures and writes benchmarks/results/coverage.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.coverage import Coverage, design_coverage, named_accounts  # noqa: E402
from territory_planner_plugin.territories import design_territories  # noqa: E402

SEGMENTS = ("healthcare", "finance", "retail", "manufacturing")
CRS = "EPSG:32635"


def instance(n: int, k: int, seed: int = 0):
    """Clustered accounts (revenue, visits, segment) and k rep homes, in metres."""
    rng = np.random.default_rng(seed)
    hubs = rng.uniform(0, 100_000, (max(3, k // 2), 2))
    xy = hubs[rng.integers(len(hubs), size=n)] + rng.normal(0, 8_000, (n, 2))
    acc = gpd.GeoDataFrame(
        {"id": np.arange(n).astype(str), "revenue": rng.lognormal(10, 0.8, n),
         "visits": rng.integers(2, 20, n).astype(float), "segment": rng.choice(SEGMENTS, n)},
        geometry=gpd.points_from_xy(xy[:, 0] + 300_000, xy[:, 1] + 6_600_000), crs=CRS,
    )  # fmt: skip
    homes = xy[rng.choice(n, k, replace=False)]
    reps = gpd.GeoDataFrame({"rep": [f"R{j:02d}" for j in range(k)]},
                            geometry=gpd.points_from_xy(homes[:, 0] + 300_000,
                                                        homes[:, 1] + 6_600_000), crs=CRS)  # fmt: skip
    return acc, reps


def hybrid() -> dict:
    acc, reps = instance(10_000, 50)
    rng = np.random.default_rng(5)
    reps["named"] = [1] * 5 + [0] * 45
    reps["rep"] = [f"N{j:02d}" for j in range(5)] + [f"T{j:02d}" for j in range(45)]
    # today's plan: named accounts with a named rep, the others with a geographic rep
    top = named_accounts(acc, ids=acc["id"].to_numpy(), named_top_pct=20, measure="revenue")
    acc["owner"] = np.where(top, rng.choice(reps["rep"][:5], len(acc)),
                            rng.choice(reps["rep"][5:], len(acc)))  # fmt: skip
    kw = {"id_field": "id", "rep_id_field": "rep", "balance_fields": ("revenue", "visits"),
          "tolerance_pct": 5.0, "time_limit_s": 60, "solver": "HiGHS"}  # fmt: skip
    t0 = time.perf_counter()
    design_territories(acc, reps=reps, **kw)
    t_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = design_coverage(acc, coverage=Coverage(named_top_pct=20, rep_named_field="named"),
                           reps=reps, current_field="owner", **kw)  # fmt: skip
    t = time.perf_counter() - t0
    s = plan.summary
    tiers = {}
    for tier, rows in s.groupby("tier"):
        tiers[tier] = {
            "territories": len(rows), "accounts": int(rows["accounts"].sum()),
            "max_dev_revenue_pct": float(rows["revenue_dev_pct"].abs().max()),
            "max_dev_visits_pct": float(rows["visits_dev_pct"].abs().max()),
            "gap_pct": float(rows["gap_pct"].iloc[0]), "moved": int(rows["moved"].iloc[0]),
        }  # fmt: skip
    named = plan.accounts["tier"] == "named"
    share = acc.loc[named.to_numpy(), "revenue"].sum() / acc["revenue"].sum()
    out = {"seconds": round(t, 2), "baseline_one_tier_seconds": round(t_base, 2),
           "time_ratio": round(t / t_base, 2), "named_revenue_share_pct": round(100 * share, 1),
           "tiers": tiers, "goal_seconds": 10, "goal_max_dev_pct": 5}  # fmt: skip
    print(
        f"Hybrid 10,000 accounts, 5 named + 45 geographic reps: {t:.1f} s "
        f"(one-tier plan of the same accounts: {t_base:.1f} s, ratio {t / t_base:.2f}); "
        f"named accounts hold {100 * share:.1f}% of revenue"
    )
    for tier, f in tiers.items():
        print(
            f"  {tier:<10} {f['territories']:>2} territories, {f['accounts']:>5} accounts: largest "
            f"deviation revenue {f['max_dev_revenue_pct']:.2f}%, visits "
            f"{f['max_dev_visits_pct']:.2f}%; gap {f['gap_pct']:.2f}%; moved {f['moved']}"
        )
    return out


def expertise() -> dict:
    acc, reps = instance(10_000, 50, seed=3)
    rng = np.random.default_rng(9)
    reps["skills"] = [",".join(rng.choice(SEGMENTS, rng.integers(1, 4), replace=False))
                      for _ in range(len(reps))]  # fmt: skip
    kw = {"id_field": "id", "rep_id_field": "rep", "balance_fields": ("revenue", "visits"),
          "tolerance_pct": 5.0, "time_limit_s": 60, "solver": "HiGHS"}  # fmt: skip
    t0 = time.perf_counter()
    free = design_territories(acc, reps=reps, **kw)
    t_free = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = design_coverage(acc, coverage=Coverage(segment_field="segment",
                                                  rep_skills_field="skills"), reps=reps, **kw)  # fmt: skip
    t = time.perf_counter() - t0
    skills = dict(zip(reps["rep"], reps["skills"].str.split(",")))
    covered = all(s in skills[r] for s, r in zip(plan.accounts["segment"],
                                                 plan.accounts["territory_id"]))  # fmt: skip
    km = float(plan.accounts["centre_km"].sum())
    km_free = float(free.accounts["centre_km"].sum())
    out = {"seconds": round(t, 2), "without_expertise_seconds": round(t_free, 2),
           "every_account_covered": covered, "total_km": round(km, 1),
           "lower_bound_km": round(plan.lower_bound, 1), "gap_pct": round(plan.gap_pct, 3),
           "total_km_without_expertise": round(km_free, 1),
           "cost_of_expertise_pct": round(100 * (km / km_free - 1), 2),
           "max_deviation_pct": plan.max_deviation_pct, "goal_gap_pct": 2}  # fmt: skip
    print(
        f"Expertise hard, 10,000 accounts x 50 reps (1-3 of 4 segments each): {t:.1f} s "
        f"(without expertise {t_free:.1f} s); every account covered: {covered}; total "
        f"{km:,.0f} km, lower bound {plan.lower_bound:,.0f} km, gap {plan.gap_pct:.3f}%; "
        f"{out['cost_of_expertise_pct']:+.1f}% km against the plan without expertise; "
        f"largest deviation {plan.max_deviation_pct:.2f}%"
    )
    return out


def qgis_process_run() -> dict:
    args = ["bash", str(ROOT / "scripts" / "qgis_process.sh"), "run",
            "territory_planner:designterritories", "--json", "--",
            f"ACCOUNTS={ROOT}/sample_data/accounts.gpkg|layername=accounts", "ID_FIELD=id",
            f"REPS={ROOT}/sample_data/reps_hybrid.gpkg|layername=reps_hybrid", "REP_ID_FIELD=rep_id",
            "REP_CAPACITY_FIELD=capacity", "BALANCE_FIELDS=revenue_potential",
            "BALANCE_FIELDS=workload_visits", "TOLERANCE=5", "CURRENT_FIELD=current_territory",
            "NAMED_TOP_PCT=20", "REP_NAMED_FIELD=named_accounts", "SEGMENT_FIELD=segment",
            "REP_SKILLS_FIELD=skills", "SKILL_RULE=0", "OUTPUT_TERRITORIES=TEMPORARY_OUTPUT"]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    t = time.perf_counter() - t0
    ok = done.returncode == 0
    print(
        f"qgis_process designterritories, hybrid on the sample data (502 accounts, 7 reps): "
        f"{t:.1f} s wall clock (QGIS start-up included), exit {done.returncode}"
    )
    return {"seconds": round(t, 2), "ok": ok}


def main() -> None:
    parts = {"hybrid": hybrid, "expertise": expertise, "qgis_process": qgis_process_run}
    only = sys.argv[1:] or list(parts)  # e.g. bench_coverage.py hybrid
    results = {name: parts[name]() for name in only}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    path = out / "coverage.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **results}, indent=2))


if __name__ == "__main__":
    main()
