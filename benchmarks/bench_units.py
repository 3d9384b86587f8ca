"""Units and contiguity benchmark: territories in one piece each, against the non-contiguous plan.

1. 10,000 postal-area-sized units (Voronoi cells of jittered random points, ~3 km across) into 50
   territories, two measures within 5%: pieces per territory, total distance against the lower
   bound of the same problem without contiguity (the gap), time, peak memory; then 100,000
   accounts counted into those units (prepare_units).
2. 10,000 point accounts into 50 contiguous territories (Voronoi adjacency in a tight outline):
   total distance against today's non-contiguous plan of the same centres.
3. 130 county-like units (skewed populations, one big city) into 8 territories within 10% on
   population: against the exact contiguous MILP (same centres as roots) and the lower bound.
4. Counties through design_territories (the engine entry of designterritories): 100 x 6, 130 x 8
   and 160 x 10 with rep homes, 130 x 8 with TERRITORIES alone, and one whole
   scripts/qgis_process.sh run (reading and writing included).
5. PySAL spopt's Region-K-means and AZP on the same 130 counties (benchmark-only dependency,
   `BENCH_DEPS=1 scripts/install-env.sh`; skipped when spopt is not importable).
6. Real counties (bundled with libpysal, installed with spopt): North Carolina's 100 counties
   into 6 on births (1974) and Georgia's 159 into 10 on population (1990), within 10 %, through
   design_territories with rep homes (TIME_LIMIT 60 and 300) and with TERRITORIES alone.
Each case runs in its own process (peak memory per case). Cases 1-3 call the engine functions
directly: the balanced assignment (assignment.solve_balanced) then contiguity.make_contiguous.
Prints figures and writes benchmarks/results/units.json.
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
import shapely
from scipy.cluster.vq import kmeans2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.adjacency import (  # noqa: E402
    count_pieces,
    point_adjacency,
    polygon_adjacency,
)
from territory_planner_plugin.assignment import solve_balanced  # noqa: E402
from territory_planner_plugin.contiguity import make_contiguous  # noqa: E402
from territory_planner_plugin.contiguous_problem import (  # noqa: E402
    ContiguousProblem,
    contiguous_milp,
)
from territory_planner_plugin.units import prepare_units  # noqa: E402

CRS = "EPSG:3067"
SPREAD_M = (
    float(sys.argv[3]) if len(sys.argv) > 3 else 12_000.0
)  # spread of accounts around 40 towns


def voronoi_units(n: int, side_m: float, seed: int) -> np.ndarray:
    """Units like postal areas: Voronoi cells of jittered grid points in a square."""
    rng = np.random.default_rng(seed)
    m = int(np.ceil(np.sqrt(n)))
    gx, gy = np.meshgrid(np.arange(m), np.arange(m))
    xy = np.column_stack([gx.ravel(), gy.ravel()])[:n] + rng.uniform(0.1, 0.9, (n, 2))
    xy *= side_m / m
    area = shapely.box(0, 0, side_m, side_m)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=area))
    return shapely.intersection(cells, area)


def centres(xy: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Centres at the units nearest to k-means centroids (fixed for both plans)."""
    cen, _ = kmeans2(xy, k, seed=seed, minit="++")
    idx = np.argmin(((xy[:, None] - cen[None]) ** 2).sum(2), axis=0)
    return xy[idx]


def plan(cost, values, tol_pct, adj, *, k):
    """The balanced plan, its bound, and the same made contiguous."""
    n = len(values)
    target = values.sum(0) / k
    lo = np.tile(target * (1 - tol_pct / 100), (k, 1))
    hi = np.tile(target * (1 + tol_pct / 100), (k, 1))
    locks, allowed = np.full(n, -1), np.ones((n, k), bool)
    t0 = time.perf_counter()
    res = solve_balanced(cost, values, lo, hi, locks=locks, current=np.full(n, -1), budget=None,
                         allowed=allowed, time_limit_s=60)  # fmt: skip
    t1 = time.perf_counter()
    assign = make_contiguous(res.assign, adjacency=adj, cost=cost, values=values, lo=lo, hi=hi,
                             locks=locks, allowed=allowed, deadline=time.perf_counter() + 60)  # fmt: skip
    t2 = time.perf_counter()
    tot = np.zeros((k, values.shape[1]))
    np.add.at(tot, assign, values)
    dev = float((np.abs(tot - target) / target).max() * 100)
    obj = float(cost[np.arange(n), assign].sum())
    return (
        {
            "balanced_s": round(t1 - t0, 2),
            "contiguous_s": round(t2 - t1, 2),
            "pieces_before_max": int(count_pieces(res.assign, adj, k).max()),
            "split_before": int((count_pieces(res.assign, adj, k) > 1).sum()),
            "pieces_max": int(count_pieces(assign, adj, k).max()),
            "non_contiguous_km": round(res.objective, 1),
            "lower_bound_km": round(res.lower_bound, 1),
            "contiguous_km": round(obj, 1),
            "gap_pct": round(100 * (obj / res.lower_bound - 1), 2),
            "vs_non_contiguous": round(obj / res.objective, 4),
            "max_deviation_pct": round(dev, 2),
        },
        assign,
        lo,
        hi,
    )


def postal_units() -> dict:
    n, k = 10_000, 50
    t0 = time.perf_counter()
    geoms = voronoi_units(n, 300_000.0, 1)  # ~3 km cells
    t1 = time.perf_counter()
    adj = polygon_adjacency(geoms)
    t2 = time.perf_counter()
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    rng = np.random.default_rng(2)
    values = np.column_stack([rng.lognormal(8, 0.7, n), rng.integers(1, 40, n).astype(float)])
    cost = np.linalg.norm(xy[:, None] - centres(xy, k, 3)[None], axis=2) / 1000.0
    out, _, _, _ = plan(cost, values, 5.0, adj.matrix, k=k)
    out.update({
        "units": n, "territories": k, "tolerance_pct": 5.0,
        "make_units_s": round(t1 - t0, 2), "adjacency_s": round(t2 - t1, 2),
        "total_s": round(time.perf_counter() - t1, 2),
    })  # fmt: skip
    units = gpd.GeoDataFrame({"uid": [f"U{i}" for i in range(n)]}, geometry=list(geoms), crs=CRS)
    pts = rng.uniform(0, 300_000.0, (100_000, 2))
    acc = gpd.GeoDataFrame({"aid": np.arange(100_000).astype(str), "revenue": rng.lognormal(8, 1, 100_000)},
                           geometry=shapely.points(pts), crs=CRS)  # fmt: skip
    t3 = time.perf_counter()
    us = prepare_units(units, id_field="uid", balance_fields=["revenue"], accounts=acc,
                       account_id_field="aid")  # fmt: skip
    out["accounts_100k_into_units_s"] = round(time.perf_counter() - t3, 2)
    out["accounts_placed"] = int((us.account_unit >= 0).sum())
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def point_accounts() -> dict:
    n, k = 10_000, 50
    rng = np.random.default_rng(4)
    towns = rng.uniform(0, 200_000, (40, 2))
    xy = towns[rng.integers(0, 40, n)] + rng.normal(0, SPREAD_M, (n, 2))
    t0 = time.perf_counter()
    adj, _ = point_adjacency(xy, with_cells=False)
    t1 = time.perf_counter()
    values = np.column_stack([rng.lognormal(9, 0.6, n), rng.integers(4, 25, n).astype(float)])
    cost = np.linalg.norm(xy[:, None] - centres(xy, k, 5)[None], axis=2) / 1000.0
    out, _, _, _ = plan(cost, values, 5.0, adj.matrix, k=k)
    out.update({"accounts": n, "territories": k, "tolerance_pct": 5.0,
                "adjacency_s": round(t1 - t0, 2), "island_links": len(adj.linked),
                "total_s": round(time.perf_counter() - t0, 2)})  # fmt: skip
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def county_layer(n: int, seed: int) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """County-like units (~35 km across, skewed populations, one big city) and their points."""
    rng = np.random.default_rng(seed)
    geoms = voronoi_units(n, 400_000.0, seed + 1)
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    pop = np.round(rng.lognormal(10, 1.0, n))
    pop[np.argmin(np.linalg.norm(xy - [200_000, 200_000], axis=1))] *= 10  # a big city
    units = gpd.GeoDataFrame({"uid": [f"C{i}" for i in range(n)], "pop": pop},
                             geometry=list(geoms), crs=CRS)  # fmt: skip
    return units, xy


def counties() -> dict:
    n, k, tol = 130, 8, 10.0
    units, xy = county_layer(n, 6)
    geoms = units.geometry.values
    adj = polygon_adjacency(geoms)
    values = units["pop"].to_numpy(float)[:, None]
    cen = centres(xy, k, 8)
    cost = np.linalg.norm(xy[:, None] - cen[None], axis=2) / 1000.0 * values[:, :1] / values.mean()
    t0 = time.perf_counter()
    out, _, lo, hi = plan(cost, values, tol, adj.matrix, k=k)
    roots = np.array([int(np.argmin(np.linalg.norm(xy - c, axis=1))) for c in cen])
    t1 = time.perf_counter()
    exact = contiguous_milp(
        ContiguousProblem.of(
            cost,
            values,
            lo,
            hi,
            adjacency=adj.matrix,
            locks=np.full(n, -1),
            allowed=np.ones((n, k), bool),
        ),
        roots=roots,
        time_limit_s=300,
    )
    t2 = time.perf_counter()
    out.update({"units": n, "territories": k, "tolerance_pct": tol,
                "heuristic_s": round(t1 - t0, 2), "milp_s": round(t2 - t1, 2),
                "cost": "km x population / mean population"})  # fmt: skip
    if exact is not None:
        out["milp_km"] = round(exact[1], 1)
        out["vs_milp"] = round(out["contiguous_km"] / exact[1], 4)
        out["milp_gap_to_bound_pct"] = round(100 * (exact[1] / out["lower_bound_km"] - 1), 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _design_figures(plan, seconds: float) -> dict:
    return {"s": round(seconds, 2), "km": round(plan.objective, 1),
            "lower_bound_km": round(plan.lower_bound, 1), "gap_pct": round(plan.gap_pct, 2),
            "bound_scope": plan.bound_scope, "pieces_max": int(plan.summary["pieces"].max()),
            "max_deviation_pct": round(plan.max_deviation_pct, 2)}  # fmt: skip


def counties_design() -> dict:
    """Counties through design_territories (the engine entry of designterritories): rep homes
    at k-means centres (the bound is the problem's), and TERRITORIES alone (centres chosen)."""
    from territory_planner_plugin.territories import design_territories

    out = {}
    for n, k, seed in ((100, 6, 16), (130, 8, 6), (160, 10, 26)):
        units, xy = county_layer(n, seed)
        reps = gpd.GeoDataFrame({"rep": [f"R{j}" for j in range(k)]},
                                geometry=shapely.points(centres(xy, k, 8)), crs=CRS)  # fmt: skip
        t = time.perf_counter()
        p = design_territories(units=units, unit_id_field="uid", reps=reps, rep_id_field="rep",
                               balance_fields=["pop"], tolerance_pct=10.0, time_limit_s=60)  # fmt: skip
        out[f"{n}x{k}_reps"] = _design_figures(p, time.perf_counter() - t)
        if n == 160:  # the case that does not close at 60 s: TIME_LIMIT 300 s too
            t = time.perf_counter()
            p = design_territories(units=units, unit_id_field="uid", reps=reps,
                                   rep_id_field="rep", balance_fields=["pop"], tolerance_pct=10.0,
                                   time_limit_s=300)  # fmt: skip
            out[f"{n}x{k}_reps_300s"] = _design_figures(p, time.perf_counter() - t)
        if n == 130:
            t = time.perf_counter()
            p = design_territories(units=units, unit_id_field="uid", n_territories=k,
                                   balance_fields=["pop"], tolerance_pct=10.0, time_limit_s=60)  # fmt: skip
            out[f"{n}x{k}_territories"] = _design_figures(p, time.perf_counter() - t)
            out["qgis_process"] = _qgis_process_run(units, reps)
            out["qgis_process"]["engine_s"] = out[f"{n}x{k}_reps"]["s"]
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _qgis_process_run(units: gpd.GeoDataFrame, reps: gpd.GeoDataFrame) -> dict:
    """One whole scripts/qgis_process.sh run of designterritories on the counties (reading the
    GeoPackages, planning, writing the outputs), timed from outside."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        units.to_file(f"{tmp}/units.gpkg", layer="units", driver="GPKG")
        reps.to_file(f"{tmp}/reps.gpkg", layer="reps", driver="GPKG")
        args = [str(ROOT / "scripts" / "qgis_process.sh"), "run",
                "territory_planner:designterritories", "--json", "--",
                f"UNITS={tmp}/units.gpkg|layername=units", "UNIT_ID_FIELD=uid",
                f"REPS={tmp}/reps.gpkg|layername=reps", "REP_ID_FIELD=rep",
                "UNIT_BALANCE_FIELDS=pop", "TOLERANCE=10", "TIME_LIMIT=60",
                f"OUTPUT_UNITS={tmp}/out_units.gpkg", f"OUTPUT_TERRITORIES={tmp}/terr.gpkg",
                f"OUTPUT_SUMMARY={tmp}/summary.gpkg"]  # fmt: skip
        t = time.perf_counter()
        child = subprocess.run(args, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t
    if child.returncode != 0:
        return {"error": child.stderr[-500:]}
    res = json.loads(child.stdout[child.stdout.index("{") :])["results"]
    return {"s": round(seconds, 2), "gap_pct": round(float(res["GAP_PCT"]), 2),
            "split_territories": res["SPLIT_TERRITORIES"]}  # fmt: skip


def counties_spopt() -> dict:
    """PySAL spopt's regionalisation on the same 130 counties, K = 8 (benchmark-only dependency):
    Region-K-means and AZP on the units' coordinates (compact regions), against designterritories
    with TERRITORIES alone. Distance: each unit to its region's medoid unit (same for all)."""
    try:
        import libpysal
        from spopt.region import AZP, RegionKMeansHeuristic
    except ImportError as err:
        return {"skipped": f"spopt not importable ({err})"}
    from territory_planner_plugin.territories import design_territories

    n, k, tol = 130, 8, 10.0
    units, xy = county_layer(n, 6)
    pop = units["pop"].to_numpy(float)
    adj = polygon_adjacency(units.geometry.values).matrix
    w = libpysal.weights.W({i: adj.indices[adj.indptr[i] : adj.indptr[i + 1]].tolist()
                            for i in range(n)}, silence_warnings=True)  # fmt: skip
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) / 1000.0

    def figures(labels: np.ndarray, seconds: float) -> dict:
        labels = np.unique(labels, return_inverse=True)[1].ravel()
        km = sum(d[np.ix_(labels == j, labels == j)].sum(0).min() for j in range(labels.max() + 1))
        dev = 100 * np.abs(np.bincount(labels, pop) / (pop.sum() / k) - 1)
        return {"s": round(seconds, 2), "medoid_km": round(float(km), 1),
                "regions": int(labels.max() + 1), "max_deviation_pct": round(float(dev.max()), 1),
                "within_tolerance": bool(dev.max() <= tol + 1e-9),
                "pieces_max": int(count_pieces(labels, adj, labels.max() + 1).max())}  # fmt: skip

    t = time.perf_counter()
    plan_ = design_territories(units=units, unit_id_field="uid", n_territories=k,
                               balance_fields=["pop"], tolerance_pct=tol, time_limit_s=60)  # fmt: skip
    ours = figures(plan_.units["territory_id"].to_numpy(), time.perf_counter() - t)
    out = {"designterritories": ours}
    frame = units.assign(x=xy[:, 0] / 1000.0, y=xy[:, 1] / 1000.0)
    t = time.perf_counter()
    rkm = RegionKMeansHeuristic(xy / 1000.0, k, w)
    rkm.solve()
    out["region_kmeans"] = figures(np.asarray(rkm.labels_), time.perf_counter() - t)
    t = time.perf_counter()
    azp = AZP(frame, w, ["x", "y"], n_clusters=k, random_state=0)
    azp.solve()
    out["azp"] = figures(np.asarray(azp.labels_), time.perf_counter() - t)
    for name in ("region_kmeans", "azp"):
        out[name]["km_ratio_ours_to_it"] = round(ours["medoid_km"] / out[name]["medoid_km"], 3)
        out[name]["time_ratio_ours_to_it"] = round(ours["s"] / max(out[name]["s"], 1e-3), 2)
    return out


# Real counties bundled with PySAL's libpysal (a benchmark-only dependency, BENCH_DEPS=1):
# (file, CRS the file lacks or has, population-like field, territories)
REAL_COUNTIES = {
    "north_carolina": ("sids2/sids2.shp", "EPSG:4267", "BIR74", 6),  # 100 counties, births 1974
    "georgia": ("georgia/G_utm.shp", "EPSG:26917", "TotPop90", 10),  # 159 counties, 1990 census
}


def real_county_layer(name: str) -> tuple[gpd.GeoDataFrame, int, str]:
    """One state's real counties (libpysal's bundled examples), projected to metres."""
    import os

    from libpysal import examples

    path, crs, field, k = REAL_COUNTIES[name]
    layer = gpd.read_file(os.path.join(os.path.dirname(examples.__file__), path))
    layer = layer.set_crs(crs, allow_override=True).to_crs("EPSG:32617")  # UTM 17N: both states
    layer["uid"] = [f"{name[:2].upper()}{i:03d}" for i in range(len(layer))]
    return layer[["uid", field, "geometry"]], k, field


def rep_homes(units: gpd.GeoDataFrame, k: int) -> gpd.GeoDataFrame:
    """k rep homes at the units nearest to k-means centres of the units (seed 8)."""
    xy = shapely.get_coordinates(shapely.point_on_surface(units.geometry.values))
    return gpd.GeoDataFrame({"rep": [f"R{j}" for j in range(k)]},
                            geometry=shapely.points(centres(xy, k, 8)), crs=units.crs)  # fmt: skip


def real_counties() -> dict:
    """Real counties of one state into 6-10 territories within 10 % on population, every
    territory one piece, through design_territories: rep homes at k-means centres (the bound is
    the problem's) at TIME_LIMIT 60 and 300, and TERRITORIES alone at 60."""
    try:
        import libpysal  # noqa: F401
    except ImportError as err:
        return {"skipped": f"libpysal not importable ({err})"}
    from territory_planner_plugin.territories import design_territories

    out = {}
    for name in REAL_COUNTIES:
        units, k, field = real_county_layer(name)
        reps = rep_homes(units, k)
        for limit in (60, 300):
            t = time.perf_counter()
            p = design_territories(units=units, unit_id_field="uid", reps=reps,
                                   rep_id_field="rep", balance_fields=[field], tolerance_pct=10.0,
                                   time_limit_s=limit)  # fmt: skip
            out[f"{name}_{len(units)}x{k}_reps_{limit}s"] = _design_figures(
                p, time.perf_counter() - t
            )
        t = time.perf_counter()
        p = design_territories(units=units, unit_id_field="uid", n_territories=k,
                               balance_fields=[field], tolerance_pct=10.0, time_limit_s=60)  # fmt: skip
        out[f"{name}_{len(units)}x{k}_territories_60s"] = _design_figures(
            p, time.perf_counter() - t
        )
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def real_counties_k() -> dict:
    """The issue's whole range on real counties: each state into 6, 8 and 10 territories within
    10 % on population, rep homes at k-means centres, TIME_LIMIT 60."""
    try:
        import libpysal  # noqa: F401
    except ImportError as err:
        return {"skipped": f"libpysal not importable ({err})"}
    from territory_planner_plugin.errors import TerritoryPlannerError
    from territory_planner_plugin.territories import design_territories

    out = {}
    for name in REAL_COUNTIES:
        units, _, field = real_county_layer(name)
        for k in (6, 8, 10):
            reps = rep_homes(units, k)
            t = time.perf_counter()
            key = f"{name}_{len(units)}x{k}_reps_60s"
            try:
                p = design_territories(units=units, unit_id_field="uid", reps=reps,
                                       rep_id_field="rep", balance_fields=[field],
                                       tolerance_pct=10.0, time_limit_s=60)  # fmt: skip
            except TerritoryPlannerError as err:  # no plan found: its message is the result
                out[key] = {"s": round(time.perf_counter() - t, 2), "error": str(err)[:300]}
                continue
            out[key] = _design_figures(p, time.perf_counter() - t)
    return out


CASES = {"postal_units": postal_units, "point_accounts": point_accounts, "counties": counties,
         "counties_design": counties_design, "counties_spopt": counties_spopt,
         "real_counties": real_counties, "real_counties_k": real_counties_k}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--case":
        print(json.dumps(CASES[sys.argv[2]]()))
        return
    result = {}
    for name in CASES:
        child = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True,
                               text=True, check=True)  # fmt: skip
        result[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(name, json.dumps(result[name], indent=1))
    result["run_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = ROOT / "benchmarks" / "results" / "units.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
