"""A run that finds no plan ends with TIME_LIMIT too: failing runs on the sample data, engine time
against TIME_LIMIT, with the relaxations they name (each checked by solving).

Usage: ``python benchmarks/bench_failures.py [TIME_LIMIT ...]`` (default 10 30 60). Cases: the
sample areas with territory T01 locked at both ends and T02 between (no plan in one piece), the
sample areas with one area 20 % above a territory's target at TOLERANCE 10 (named before solving),
the first 40 sample accounts at TOLERANCE 0 (no plan the solver can find) and with REP_MAX_MINUTES
0.5 (straight line: some are farther from every rep; the least value is searched), and their rebalance with
MAX_MOVES 0 at TOLERANCE 3 (proven infeasible). Prints seconds, the ratio to TIME_LIMIT and the
advice of each message.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.errors import InfeasibleError, SolverError  # noqa: E402
from territory_planner_plugin.rebalance import rebalance_territories  # noqa: E402
from territory_planner_plugin.territories import design_territories  # noqa: E402

DATA = ROOT / "sample_data"


def cases() -> dict:
    """name -> (function, keyword arguments) of each failing run (TIME_LIMIT added later)."""
    units = gpd.read_file(DATA / "areas.gpkg", layer="areas")
    west_east = units.geometry.centroid.x.to_numpy().argsort()
    lock = pd.Series(None, index=units.index, dtype=object)
    lock.iloc[[west_east[0], west_east[-1]]] = "T01"
    lock.iloc[west_east[len(units) // 2]] = "T02"
    heavy = units.copy()  # one area 20 % above a territory's target (5 reps): none may hold it
    rest = float(heavy["population"].sum() - heavy["population"].iloc[0])
    heavy.loc[heavy.index[0], "population"] = round(0.24 * rest / 0.76)
    reps = gpd.read_file(DATA / "reps.gpkg")
    acc = gpd.read_file(DATA / "accounts.gpkg").iloc[:40]
    plan = {"id_field": "id", "reps": reps.iloc[:3], "rep_id_field": "rep_id",
            "balance_fields": ["revenue_potential"]}  # fmt: skip
    return {
        "areas, locks apart, one piece each": (design_territories, {
            "units": units.assign(lock=lock), "unit_id_field": "area_id",
            "balance_fields": ["population"], "reps": reps, "rep_id_field": "rep_id",
            "lock_field": "lock", "tolerance_pct": 10.0}),
        "areas, one area too heavy at TOLERANCE 10": (design_territories, {
            "units": heavy, "unit_id_field": "area_id", "balance_fields": ["population"],
            "reps": reps, "rep_id_field": "rep_id", "tolerance_pct": 10.0}),
        "40 accounts x 3, TOLERANCE 0": (design_territories, {
            "accounts": acc, **plan, "tolerance_pct": 0.0}),
        "40 accounts x 3, REP_MAX_MINUTES 0.5": (design_territories, {
            "accounts": acc, **plan, "tolerance_pct": 10.0, "rep_max_minutes": 0.5}),
        "rebalance, MAX_MOVES 0, TOLERANCE 3": (rebalance_territories, {
            "accounts": acc, **plan, "reps": None, "current_field": "current_territory",
            "max_moves_pct": 0.0, "tolerance_pct": 3.0}),
    }  # fmt: skip


def main(argv: list[str]) -> None:
    logging.disable(logging.WARNING)
    limits = [float(a) for a in argv] or [10.0, 30.0, 60.0]
    print("| case | TIME_LIMIT | engine time | ratio | advice (checked by solving) |")
    print("|---|---|---|---|---|")
    for name, (func, kwargs) in cases().items():
        for limit in limits:
            began = time.perf_counter()
            try:
                func(**kwargs, time_limit_s=limit)
                advice = "a plan (not a failure)"
            except (InfeasibleError, SolverError) as err:
                text = str(err)
                found = re.search(r"(Checked by solving.*|No single change.*)", text)
                advice = found.group(1) if found else text
            took = time.perf_counter() - began
            print(f"| {name} | {limit:.0f} s | {took:.1f} s | {took / limit:.2f} | {advice} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
