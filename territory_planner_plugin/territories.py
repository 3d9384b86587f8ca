"""Balanced, compact territories: assign accounts to K centres or rep homes with PuLP.

The model: minimise the total distance (km, or drive minutes with a network) from each account to
its territory's centre, subject to hard constraints: each account in exactly one territory, every
balanced measure of every territory within TOLERANCE of its capacity-weighted target, locks,
a disruption budget (MAX_MOVES) and a maximum drive time to the rep's home. The LP relaxation of the
same model gives the proven lower bound reported with every plan. Without reps, centres move to the
medoid of their territory, alternating with the balanced assignment until stable (k-median style).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import InvalidInputError
from .model import (
    EXACT_PAIRS,
    STRAIGHT_LINE_KMH,
    Solution,
    TerritoryModel,
    balance_values,
    point_costs,
    prepare_accounts,
    prepare_reps,
    reach_mask,
    run_parameters,
    snap_points_once,
    territory_codes,
    tolerances,
    travel_mu,
)
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

__all__ = ["EXACT_PAIRS", "OUTPUT_COLUMNS", "STRAIGHT_LINE_KMH", "TerritoryPlan", "build_plan",
           "design_territories"]  # fmt: skip

OUTPUT_COLUMNS = ("territory_id", "rep_id", "centre_km", "centre_min", "locked", "moved",
                  "next_best_id", "next_best_extra", "reason")  # fmt: skip
_MAX_CENTRE_ROUNDS = 8  # balanced centre updates after the k-median start
_KMEDIAN_ROUNDS = 12


@dataclass
class TerritoryPlan:
    """A territory plan: per-account assignment, polygons, centres, summary and quality figures."""

    accounts: gpd.GeoDataFrame
    territories: gpd.GeoDataFrame
    centres: gpd.GeoDataFrame
    summary: pd.DataFrame
    objective: float
    lower_bound: float
    gap_pct: float
    max_deviation_pct: float
    moved: int
    kpis: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)


def design_territories(
    accounts: gpd.GeoDataFrame,
    *,
    id_field: str,
    n_territories: int | None = None,
    reps: gpd.GeoDataFrame | None = None,
    rep_id_field: str | None = None,
    rep_capacity_field: str | None = None,
    rep_max_minutes: float | None = None,
    balance_fields: Sequence[str] = (),
    balance_weights: Sequence[float] | None = None,
    travel_weight: float = 0.0,
    tolerance_pct: float = 5.0,
    lock_field: str | None = None,
    current_field: str | None = None,
    max_moves_pct: float | None = None,
    network: object | None = None,
    quota_total: float | None = None,
    seed: int = 0,
    time_limit_s: float = 60.0,
    solver: str = "CBC",
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> TerritoryPlan:
    """Assign every account to a territory, balanced within ``tolerance_pct`` and compact.

    Accounts (points) must be in a projected CRS in metres, or geographic (then reprojected to a
    local UTM zone, logged). Accounts the network cannot reach are costed by straight line at
    30 km/h and listed in the log. Raises :class:`InfeasibleError` naming the smallest relaxation.
    """
    params = run_parameters(locals())
    acc = prepare_accounts(accounts, id_field)
    ids = acc[id_field].astype(str).to_numpy()
    fields = list(balance_fields)
    values = balance_values(acc, ids, fields)
    tol = tolerances(tolerance_pct, balance_weights, fields)
    mu = travel_mu(travel_weight, balance_weights, fields)
    xy = shapely.get_coordinates(acc.geometry.values)
    rng = np.random.default_rng(seed)
    if reps is not None:
        cen_ids, cen_xy, capacity = prepare_reps(reps, rep_id_field, rep_capacity_field, acc.crs)
        fixed_centres = True
    else:
        if n_territories is None or n_territories < 1:
            msg = f"TERRITORIES: {n_territories} must be at least 1."
            raise InvalidInputError(msg)
        if n_territories > len(acc):
            msg = f"TERRITORIES: {n_territories} is more than the {len(acc)} accounts; lower it."
            raise InvalidInputError(msg)
        k = int(n_territories)
        cen_ids = np.array([f"T{j + 1:02d}" for j in range(k)])
        cen_xy = _kmeanspp(xy, k, rng)
        capacity = np.ones(k)
        fixed_centres = False
    k = len(cen_ids)
    locks = territory_codes(acc, lock_field, cen_ids, "LOCK_FIELD", ids)
    current = territory_codes(acc, current_field, cen_ids, "CURRENT_FIELD", ids, strict=False)
    budget = None
    if max_moves_pct is not None and current_field:
        budget = math.floor(max_moves_pct / 100.0 * len(acc) + 1e-9)
    report(progress, 0.1, "Costs")
    prices = None
    rounds = 1 if fixed_centres else _MAX_CENTRE_ROUNDS
    a_snap = snap_points_once(xy, network, acc.crs)  # once: only the centres move between rounds
    if not fixed_centres:  # start from compact (k-median) centres, then balance
        cen_xy = _kmedian(xy, cen_xy, locks, network, a_snap, is_cancelled)
    for rnd in range(rounds + 1):
        check_cancel(is_cancelled)
        cost_km, cost_min = point_costs(xy, cen_xy, network, a_snap)
        model = TerritoryModel.from_cost_matrix(
            cost_min if cost_min is not None else cost_km, values=values, capacity=capacity,
            tolerance_pct=tol, locks=locks, current=current, budget=budget,
            allowed=reach_mask(cost_km, cost_min, rep_max_minutes, log=rnd == 0),
            travel=(capacity / capacity.sum(), mu), names=fields, row_ids=ids,
            territory_ids=cen_ids,
        )  # fmt: skip
        model.precheck()
        final = fixed_centres or rnd == rounds
        sol = model.solve(solver, time_limit_s=time_limit_s, prices=prices if final else None,
                          final=final, is_cancelled=is_cancelled)  # fmt: skip
        prices = sol.prices
        report(progress, 0.2 + 0.7 * (rnd + 1) / (rounds + 1), "Assignment")
        if final:
            break
        new_xy = _medoids(xy, sol.assign, k, cen_xy)
        if np.allclose(new_xy, cen_xy):
            rounds = rnd + 1  # centres are stable: one last, full solve on them
        cen_xy = new_xy
    model.verify(sol.assign)
    report(progress, 0.95, "Outputs")
    return build_plan(
        model, sol, layer=acc, original=accounts, cost_km=cost_km, cost_min=cost_min,
        cen_xy=cen_xy, quota_total=quota_total, params=params, weights=balance_weights,
        travel_weight=travel_weight,
    )  # fmt: skip


# ----------------------------------------------------------------------------- centres


def _kmeanspp(xy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [xy[rng.integers(len(xy))]]
    d2 = ((xy - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(xy[rng.choice(len(xy), p=p)])
        d2 = np.minimum(d2, ((xy - centres[-1]) ** 2).sum(1))
    return np.array(centres)


def _kmedian(xy, cen_xy, locks, network, a_snap, is_cancelled) -> np.ndarray:
    """Unbalanced k-median (nearest centre, then medoid) from the seeded start, locks kept."""
    k = len(cen_xy)
    for _ in range(_KMEDIAN_ROUNDS):
        check_cancel(is_cancelled)
        cost_km, cost_min = point_costs(xy, cen_xy, network, a_snap)
        cost = cost_min if cost_min is not None else cost_km
        assign = np.where(locks >= 0, locks, np.argmin(cost, 1))
        new_xy = _medoids(xy, assign, k, cen_xy)
        if np.allclose(new_xy, cen_xy):
            break
        cen_xy = new_xy
    return cen_xy


def _medoids(xy: np.ndarray, assign: np.ndarray, k: int, old: np.ndarray) -> np.ndarray:
    """Member of each territory with the least total distance to the others (its medoid).

    Large territories test only the 64 members nearest the coordinate-wise median (memory and
    time stay linear in the territory's size).
    """
    out = old.copy()
    for j in range(k):
        members = xy[assign == j]
        if len(members) == 0:
            continue
        cands = members
        if len(members) > 500:
            d0 = ((members - np.median(members, axis=0)) ** 2).sum(1)
            cands = members[np.argpartition(d0, 63)[:64]]
        d = np.sqrt(((cands[:, None, :] - members[None, :, :]) ** 2).sum(-1)).sum(1)
        out[j] = cands[int(np.argmin(d))]
    return out


# ----------------------------------------------------------------------------- outputs


def build_plan(
    model: TerritoryModel,
    sol: Solution,
    *,
    layer: gpd.GeoDataFrame,
    original: gpd.GeoDataFrame,
    cost_km: np.ndarray,
    cost_min: np.ndarray | None,
    cen_xy: np.ndarray,
    quota_total: float | None,
    params: dict,
    weights: Sequence[float] | None,
    travel_weight: float,
) -> TerritoryPlan:
    """The plan's outputs from a solved model: rows with their territory and reason, territory
    polygons, centres, summary and KPIs (one place for both algorithms).

    ``layer`` is the prepared (projected) copy of ``original``, whose columns and CRS the outputs
    keep; ``cost_km``/``cost_min`` are the straight-line km and drive minutes of the pairs.
    """
    assign, objective, lower = sol.assign, sol.objective, sol.lower_bound
    cost, values, capacity = model.cost, model.values, model.capacity
    locks, current, budget, allowed = model.locks, model.current, model.budget, model.allowed
    cen_ids, fields, acc = model.territory_ids, list(model.names), layer
    n, k = model.n, model.k
    out = original.copy()
    for col in OUTPUT_COLUMNS:
        if col in out.columns:
            logger.info("Input field '%s' is kept as 'input_%s'.", col, col)
            out = out.rename(columns={col: f"input_{col}"})
    rows = np.arange(n)
    alt = cost.copy()
    alt[rows, assign] = np.inf
    nxt = np.argmin(alt, 1) if k > 1 else np.zeros(n, int)
    out["territory_id"] = cen_ids[assign]
    out["rep_id"] = cen_ids[assign]
    out["centre_km"] = np.round(cost_km[rows, assign], 3)
    out["centre_min"] = np.round(cost_min[rows, assign], 2) if cost_min is not None else np.nan
    out["locked"] = locks >= 0
    out["moved"] = (current >= 0) & (assign != current)
    out["next_best_id"] = cen_ids[nxt] if k > 1 else None
    out["next_best_extra"] = np.round(alt[rows, nxt] - cost[rows, assign], 3) if k > 1 else np.nan
    nearest = np.argmin(cost, 1)
    reason = np.where(locks >= 0, "locked", np.where(assign == nearest, "nearest", "balance"))
    reason = np.where((reason == "balance") & ~allowed[rows, nearest], "max drive time", reason)
    small = capacity[nearest] < capacity.mean() - 1e-9  # the nearest rep has a smaller share
    reason = np.where((reason == "balance") & small, "capacity", reason)
    if budget is not None:
        reason = np.where((reason == "balance") & (assign == current), "disruption budget", reason)
    out["reason"] = reason
    # territories: Voronoi cells of accounts dissolved by territory, clipped to a buffered hull
    pts = shapely.points(shapely.get_coordinates(acc.geometry.values))
    hull = shapely.convex_hull(shapely.multipoints(pts)).buffer(1000.0)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=hull))
    tree = shapely.STRtree(cells)
    p_idx, c_idx = tree.query(pts, predicate="within")
    cell_of = np.full(n, -1)
    cell_of[p_idx] = c_idx
    names = fields or ["accounts"]
    target, _, _ = model.bounds()
    summary_rows, polys = [], []
    for j, cid in enumerate(cen_ids):
        members = assign == j
        geom = shapely.union_all(cells[cell_of[members & (cell_of >= 0)]]).intersection(hull)
        row = {"territory_id": cid, "accounts": int(members.sum()), "capacity": capacity[j]}
        for m, name in enumerate(names):
            total = float(values[members, m].sum())
            row[f"{name}_total"] = round(total, 2)
            row[f"{name}_dev_pct"] = (
                round(100 * (total / target[j, m] - 1), 2) if target[j, m] else 0.0
            )
        row["travel_total"] = round(float(cost[members, j].sum()), 2)
        if quota_total is not None:
            row["quota"] = round(quota_total * values[members, 0].sum() / values[:, 0].sum(), 2)
        summary_rows.append(row)
        polys.append(geom)
    summary = pd.DataFrame(summary_rows)
    per_cap = (
        np.array([[r[f"{nm}_total"] for nm in names] for r in summary_rows]) / capacity[:, None]
    )
    cv = {nm: float(per_cap[:, m].std() / per_cap[:, m].mean()) if per_cap[:, m].mean() else 0.0
          for m, nm in enumerate(names)}  # fmt: skip
    max_dev = float(max(abs(summary[f"{nm}_dev_pct"]).max() for nm in names))
    moved = int(out["moved"].sum())
    gap = 100 * (objective - lower) / objective if objective > 0 and np.isfinite(lower) else 0.0
    kpis = {f"cv_{nm}": round(v, 4) for nm, v in cv.items()}
    travel = np.array([r["travel_total"] for r in summary_rows]) / capacity
    cv_travel = float(travel.std() / travel.mean()) if travel.mean() else 0.0
    w = list(weights) if weights else [1.0] * len(names)
    score = (sum(wi * cv[nm] for wi, nm in zip(w, names)) + travel_weight * cv_travel) / (
        sum(w) + travel_weight
    )
    kpis["cv_travel"] = round(cv_travel, 4)
    compact = float(cost[rows, assign].sum()) / n
    kpis.update(max_deviation_pct=round(max_dev, 2), compactness_mean=round(compact, 3),
                moved=moved, balance_score=round(score, 4))  # fmt: skip
    for key, value in kpis.items():
        summary[key] = value
    territories = gpd.GeoDataFrame(summary.drop(columns=list(kpis)), geometry=polys, crs=acc.crs)
    territories = territories.to_crs(original.crs) if original.crs is not None else territories
    centres = gpd.GeoDataFrame(
        {"territory_id": cen_ids, "capacity": capacity},
        geometry=shapely.points(cen_xy), crs=acc.crs,
    )  # fmt: skip
    centres = centres.to_crs(original.crs) if original.crs is not None else centres
    logger.info("Plan: objective %.3f, lower bound %.3f, gap %.2f%%, largest deviation %.2f%%, "
                "%d moved.", objective, lower, gap, max_dev, moved)  # fmt: skip
    return TerritoryPlan(
        accounts=out, territories=territories, centres=centres, summary=summary,
        objective=objective, lower_bound=lower, gap_pct=gap, max_deviation_pct=max_dev,
        moved=moved, kpis=kpis, parameters=params,
    )  # fmt: skip
