"""TIME_LIMIT is wall time: design_territories on generated accounts x reps, total engine time
against TIME_LIMIT (reading and writing aside).

Usage: ``python benchmarks/bench_time_limit.py [N K TIME_LIMIT MODE ...]`` (MODE: ``reps`` for
rep homes as centres, ``free`` for TERRITORIES=K, ``rebalance`` for rebalance_territories of
a balanced plan (designterritories, not timed) after revenue changed by about 20 % per account,
``nearest`` for rebalance_territories of a plan where every account is with its nearest rep: far
from balanced); default: 300,000 x 100 with reps, TIME_LIMIT
60. Prints, per case, the engine wall time, its ratio to TIME_LIMIT, and the plan's gap (or the
message when TIME_LIMIT was reached before any plan). The instance is bench_territories's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import shapely
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_territories import instance  # noqa: E402

from territory_planner_plugin import adjacency, rebalance, territories  # noqa: E402
from territory_planner_plugin.errors import TerritoryPlannerError  # noqa: E402

DEFAULT = (300_000, 100, 60.0, "reps")


def run(n: int, k: int, time_limit_s: float, mode: str) -> dict:
    """One case: seconds (and the part spent building the outputs: the plan's frames and the
    polygons' outline, which is built before the search), ratio to TIME_LIMIT, gap or error."""
    acc, reps = instance(n, k)
    outputs = [0.0]
    build_plan = territories.build_plan

    def timed_build_plan(*args, **kwargs):
        begin = time.perf_counter()
        try:
            return build_plan(*args, **kwargs)
        finally:
            outputs[0] += time.perf_counter() - begin

    tight_outline = adjacency.tight_outline

    def timed_outline(*args, **kwargs):  # the polygons' outline: built before the search now
        begin = time.perf_counter()
        try:
            return tight_outline(*args, **kwargs)
        finally:
            outputs[0] += time.perf_counter() - begin

    territories.build_plan = timed_build_plan
    adjacency.tight_outline = timed_outline
    where = {"reps": reps, "rep_id_field": "rep"} if mode != "free" else {"n_territories": k}
    run_ = territories.design_territories
    if mode == "rebalance":  # last quarter's balanced plan (not timed), this quarter's revenue
        before = run_(acc, id_field="id", balance_fields=["revenue", "visits"], tolerance_pct=5.0,
                      time_limit_s=time_limit_s, **where)  # fmt: skip
        noise = np.random.default_rng(1).lognormal(0.0, 0.2, n)
        acc = acc.assign(current=before.accounts["territory_id"].to_numpy(),
                         revenue=acc["revenue"] * noise)  # fmt: skip
    elif mode == "nearest":  # today: every account with its nearest rep (far from balanced)
        near = cKDTree(shapely.get_coordinates(reps.geometry.values)).query(
            shapely.get_coordinates(acc.geometry.values))[1]  # fmt: skip
        acc = acc.assign(current=reps["rep"].to_numpy()[near])
    if mode in ("rebalance", "nearest"):
        where["current_field"] = "current"
        run_ = rebalance.rebalance_territories
    outputs[0] = 0.0  # last quarter's plan is not timed
    start = time.perf_counter()
    try:
        plan = run_(acc, id_field="id", balance_fields=["revenue", "visits"], tolerance_pct=5.0,
                    time_limit_s=time_limit_s, **where)  # fmt: skip
        if hasattr(plan, "moves"):  # a Rebalance: moves against their proven minimum
            outcome = (
                f"{plan.plan.moved} moves, at least {plan.moves_lower_bound:.0f} must (proven)"
            )
        else:
            outcome = f"gap {plan.gap_pct:.2f}%"
    except TerritoryPlannerError as err:
        outcome = f"{type(err).__name__}: {str(err)[:90]}"
    finally:
        territories.build_plan = build_plan
        adjacency.tight_outline = tight_outline
    seconds = time.perf_counter() - start
    return {"n": n, "k": k, "time_limit_s": time_limit_s, "mode": mode, "seconds": seconds,
            "outputs_s": outputs[0], "ratio": (seconds - outputs[0]) / time_limit_s,
            "outcome": outcome}  # fmt: skip


def main(argv: list[str]) -> None:
    cases = [DEFAULT]
    if argv:
        cases = [(int(argv[i]), int(argv[i + 1]), float(argv[i + 2]), argv[i + 3])
                 for i in range(0, len(argv), 4)]  # fmt: skip
    for case in cases:
        r = run(*case)
        print(f"{r['n']:>8,} x {r['k']:<4} {r['mode']:<5} TIME_LIMIT {r['time_limit_s']:>5.0f} s: "
              f"{r['seconds']:6.1f} s, of which {r['outputs_s']:4.1f} s building the outputs; "
              f"without them {r['ratio']:.2f} x TIME_LIMIT; {r['outcome']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
