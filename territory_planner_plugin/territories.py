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
import pulp
import shapely

from . import kpis as plan_kpis
from . import palette
from ._validate import check_points
from .assignment import NoPlanFoundError, solve_balanced
from .errors import InfeasibleError, InvalidInputError, SolverError
from .explain import COLUMNS as EXPLAIN_COLUMNS
from .explain import explain_accounts
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("territory_id", "rep_id", "centre_km", "centre_min", "locked", "moved",
                  *EXPLAIN_COLUMNS)  # fmt: skip
_MAX_CENTRE_ROUNDS = 8  # balanced centre updates after the k-median start
_KMEDIAN_ROUNDS = 12
EXACT_PAIRS = 1_000  # up to this many account-territory pairs: the exact MILP through PuLP
EXPLAIN_PAIRS = 200_000  # up to this many pairs an infeasible run gets the LP's minimal tolerance
STRAIGHT_LINE_KMH = 50.0  # straight-line km -> minutes where there is no NETWORK (also the report)


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
    acc = _prepare_accounts(accounts, id_field)
    ids = acc[id_field].astype(str).to_numpy()
    fields = list(balance_fields)
    values = _balance_values(acc, ids, fields)
    tol = _tolerances(tolerance_pct, balance_weights, fields)
    mu = _travel_mu(travel_weight, balance_weights, fields)
    xy = shapely.get_coordinates(acc.geometry.values)
    rng = np.random.default_rng(seed)
    if reps is not None:
        cen_ids, cen_xy, capacity = _prepare_reps(reps, rep_id_field, rep_capacity_field, acc.crs)
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
    locks = _codes(acc, lock_field, cen_ids, "LOCK_FIELD", ids)
    current = _codes(acc, current_field, cen_ids, "CURRENT_FIELD", ids, strict=False)
    budget = None
    if max_moves_pct is not None and current_field:
        budget = math.floor(max_moves_pct / 100.0 * len(acc) + 1e-9)
    report(progress, 0.1, "Costs")
    prices = None
    rounds = 1 if fixed_centres else _MAX_CENTRE_ROUNDS
    a_snap = snap_accounts(xy, network, acc.crs)  # once: only the centres move between rounds
    if not fixed_centres:  # start from compact (k-median) centres, then balance
        cen_xy = _kmedian(xy, cen_xy, locks, network, a_snap, is_cancelled)
    for rnd in range(rounds + 1):
        check_cancel(is_cancelled)
        cost_km, cost_min = _costs(xy, cen_xy, network, a_snap)
        cost = cost_min if cost_min is not None else cost_km
        allowed = reach_mask(cost_km, cost_min, rep_max_minutes, log=rnd == 0)
        _precheck(values, fields, capacity, tol, locks, allowed, ids, cen_ids)
        final = fixed_centres or rnd == rounds
        assign, objective, lower, prices = _solve(
            cost, values, capacity, tol, locks, current, budget, allowed,
            solver, time_limit_s, fields, cen_ids, prices=prices if final else None, final=final,
            is_cancelled=is_cancelled, travel=(capacity / capacity.sum(), mu) if final else None,
        )  # fmt: skip
        report(progress, 0.2 + 0.7 * (rnd + 1) / (rounds + 1), "Assignment")
        if final:
            break
        new_xy = _medoids(xy, assign, k, cen_xy)
        if np.allclose(new_xy, cen_xy):
            rounds = rnd + 1  # centres are stable: one last, full solve on them
        cen_xy = new_xy
    _verify(assign, values, capacity, tol, locks, current, budget, allowed, ids, cen_ids)
    report(progress, 0.95, "Outputs")
    return _build_plan(
        acc, accounts, ids, fields, values, assign, cost, cost_km, cost_min, cen_ids, cen_xy,
        capacity, tol, locks, current, budget, objective, lower, quota_total, params,
        allowed, balance_weights, travel_weight,
    )  # fmt: skip


# ----------------------------------------------------------------------------- preparation


def run_parameters(scope: dict) -> dict:
    """The plain parameters of a planning call (for the manifest): no layers, network or callbacks."""
    skip = ("accounts", "reps", "network", "progress", "is_cancelled")
    return {k: v for k, v in scope.items() if k not in skip}


def reach_mask(cost_km: np.ndarray, cost_min: np.ndarray | None, max_minutes: float | None, *,
               log: bool = True) -> np.ndarray:  # fmt: skip
    """(n, k) pairs allowed by REP_MAX_MINUTES: drive minutes, or without a NETWORK the
    straight-line distance at ``STRAIGHT_LINE_KMH``."""
    if max_minutes is None:
        return np.ones_like(cost_km, dtype=bool)
    if cost_min is not None:
        return cost_min <= max_minutes
    if log:
        logger.info(
            "REP_MAX_MINUTES without a NETWORK: straight-line distance at %g km/h, i.e. at most "
            "%.1f km from a rep home; give a NETWORK for drive times on roads.",
            STRAIGHT_LINE_KMH, max_minutes * STRAIGHT_LINE_KMH / 60.0,
        )  # fmt: skip
    return cost_km * 60.0 / STRAIGHT_LINE_KMH <= max_minutes


def _prepare_accounts(accounts: gpd.GeoDataFrame, id_field: str) -> gpd.GeoDataFrame:
    check_points(accounts, id_field, layer="ACCOUNTS", noun="accounts")
    acc = accounts.copy()
    if acc.crs is None or not acc.crs.is_projected:
        utm = acc.estimate_utm_crs() if acc.crs is not None else None
        if utm is None:
            msg = "ACCOUNTS: the layer has no CRS; set its CRS in QGIS (Layer Properties > Source)."
            raise InvalidInputError(msg)
        logger.info("Accounts reprojected to %s for distances in metres.", utm.name)
        acc = acc.to_crs(utm)
    return acc


def _balance_values(acc: pd.DataFrame, ids: np.ndarray, fields: list[str]) -> np.ndarray:
    if not fields:
        return np.ones((len(acc), 1))
    cols = []
    for f in fields:
        if f not in acc.columns:
            msg = f"BALANCE_FIELDS: '{f}' is not a field of ACCOUNTS."
            raise InvalidInputError(msg)
        col = pd.to_numeric(acc[f], errors="coerce")
        bad = col.isna() | (col < 0)
        if bad.any():
            msg = (
                f"BALANCE_FIELDS: '{f}' is null, negative or not a number for accounts "
                f"{list(ids[bad.to_numpy()][:10])}; fix them or run checkaccounts first."
            )
            raise InvalidInputError(msg)
        cols.append(col.to_numpy(float))
    return np.column_stack(cols)


def _tolerances(tolerance_pct, weights, fields) -> np.ndarray:
    """Per-measure tolerance: TOLERANCE for the heaviest weight, wider bands for lighter ones."""
    if tolerance_pct is None or not (0 <= tolerance_pct < 100):
        msg = f"TOLERANCE: {tolerance_pct} must be a percentage from 0 to 100, e.g. 5."
        raise InvalidInputError(msg)
    m = max(len(fields), 1)
    if weights is None or len(weights) == 0:
        return np.full(m, float(tolerance_pct))
    w = np.asarray(weights, float)
    if len(w) != len(fields) or not np.isfinite(w).all() or (w <= 0).any():
        msg = (f"BALANCE_WEIGHTS: give one positive weight per balance field, in the same order "
               f"(got {list(weights)} for {list(fields)}).")  # fmt: skip
        raise InvalidInputError(msg)
    tol = np.minimum(tolerance_pct * w.max() / w, 99.0)
    for f, t in zip(fields, tol):
        logger.info("Tolerance for %s: ±%.2f%%.", f, t)
    return tol


def _travel_mu(travel_weight, balance_weights, fields) -> float:
    """Weight of the travel-balance penalty: TRAVEL_WEIGHT's share of all the weights.

    The balance fields weigh their BALANCE_WEIGHTS (1 each when none are given), as in the
    summary's ``balance_score``: revenue 40 / workload 30 / travel 30 gives 0.3.
    """
    tw = 0.0 if travel_weight is None else float(travel_weight)
    if not np.isfinite(tw) or tw < 0:
        msg = f"TRAVEL_WEIGHT: {travel_weight} must be 0 (off) or a positive weight, e.g. 30."
        raise InvalidInputError(msg)
    if tw == 0:
        return 0.0
    w = list(balance_weights) if balance_weights else [1.0] * max(len(fields), 1)
    mu = tw / (sum(w) + tw)
    logger.info(
        "TRAVEL_WEIGHT %g: the plan also evens out travel per territory; each minute (km) of "
        "travel above or below a territory's share of the total costs %.2f extra.", tw, mu,
    )  # fmt: skip
    return mu


def _prepare_reps(reps, id_field, capacity_field, crs):
    if id_field is None or id_field not in reps.columns:
        msg = f"REP_ID_FIELD: '{id_field}' is not a field of REPS."
        raise InvalidInputError(msg)
    if len(reps) == 0:
        msg = "REPS: the layer is empty; add rep homes or leave REPS empty and set TERRITORIES."
        raise InvalidInputError(msg)
    rid = reps[id_field].astype(str)
    if rid.duplicated().any():
        msg = f"REPS: duplicate rep ids {sorted(set(rid[rid.duplicated()]))}; make them unique."
        raise InvalidInputError(msg)
    cap = np.ones(len(reps))
    if capacity_field:
        cap = pd.to_numeric(reps[capacity_field], errors="coerce").to_numpy(float)
        if np.isnan(cap).any() or (cap <= 0).any():
            msg = f"REP_CAPACITY_FIELD: '{capacity_field}' must be a positive number for every rep."
            raise InvalidInputError(msg)
    pts = reps.to_crs(crs).geometry
    return rid.to_numpy(), shapely.get_coordinates(pts.values), cap


def _codes(acc, fld, cen_ids, key, ids, *, strict=True) -> np.ndarray:
    """Territory index per account from a text field (-1 = empty)."""
    out = np.full(len(acc), -1)
    if not fld:
        return out
    if fld not in acc.columns:
        msg = f"{key}: '{fld}' is not a field of ACCOUNTS."
        raise InvalidInputError(msg)
    lookup = {c: j for j, c in enumerate(cen_ids)}
    unknown = []
    for i, v in enumerate(acc[fld].to_numpy()):
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            continue
        j = lookup.get(str(v).strip())
        if j is None:
            unknown.append((ids[i], v))
        else:
            out[i] = j
    if unknown and strict:
        msg = (
            f"{key}: values name no territory or rep: "
            f"{', '.join(f'{a}={v}' for a, v in unknown[:10])}. Known ids: {', '.join(cen_ids)}."
        )
        raise InvalidInputError(msg)
    if unknown:
        logger.warning("%s: %d account(s) name a territory that no longer exists; they count as "
                       "new accounts.", key, len(unknown))  # fmt: skip
    return out


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
        cost_km, cost_min = _costs(xy, cen_xy, network, a_snap)
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


def snap_accounts(xy: np.ndarray, net: object | None, crs: object) -> object | None:
    """Where each account (x, y in ``crs``) meets its road, for :func:`_costs`; None without a
    network. Accounts do not move during a run, so this is done once per run."""
    if net is None:
        return None
    from .network import snap_points

    if gpd.GeoSeries([], crs=crs).crs != gpd.GeoSeries([], crs=net.crs).crs:
        msg = "NETWORK: accounts must be in the network's CRS (the QGIS wrapper reprojects them)."
        raise InvalidInputError(msg)
    return snap_points(net, gpd.GeoSeries(shapely.points(xy)), max_snap_m=np.inf)


def _costs(xy, cen_xy, net, a_snap):
    """Straight-line km and, with a network, drive minutes from each account to each centre."""
    km = np.sqrt(((xy[:, None, :] - cen_xy[None, :, :]) ** 2).sum(-1)) / 1000.0
    if net is None:
        return km, None
    from .matrix import cost_matrix_minutes
    from .network import snap_points

    c_snap = snap_points(net, gpd.GeoSeries(shapely.points(cen_xy)), max_snap_m=np.inf)
    minutes = cost_matrix_minutes(net, c_snap, a_snap).T  # from/to where they meet their roads
    bad = ~np.isfinite(minutes)
    if bad.any():
        logger.warning(
            "%d account-centre pairs are not connected by roads; they are costed by straight "
            "line at 30 km/h.", int(bad.sum()),
        )  # fmt: skip
        minutes = np.where(bad, km / 30.0 * 60.0, minutes)
    return km, minutes


# ----------------------------------------------------------------------------- model


def _bounds(values, capacity, tol):
    """Per-territory target, lower and upper bound of each measure ((k, m) arrays)."""
    share = capacity / capacity.sum()
    target = values.sum(0)[None, :] * share[:, None]  # (k, m)
    return target, target * (1 - tol / 100.0), target * (1 + tol / 100.0)


def _precheck(values, fields, capacity, tol, locks, allowed, ids, cen_ids) -> None:
    target, _, hi = _bounds(values, capacity, tol)
    names = fields or ["account count"]
    for j, cid in enumerate(cen_ids):
        locked = values[locks == j].sum(0)
        for m, name in enumerate(names):
            if locked[m] > hi[j, m] + 1e-9:
                share = 100 * locked[m] / max(values[:, m].sum(), 1e-12)
                msg = (
                    f"Locked accounts give {cid} {share:.1f}% of {name} (target "
                    f"{100 * target[j, m] / values[:, m].sum():.1f}% ± {tol[m]:g}%): unlock some of "
                    f"them or raise TOLERANCE to at least "
                    f"{100 * (locked[m] / target[j, m] - 1) * tol.min() / max(tol[m], 1e-9):.1f}%."
                )
                raise InfeasibleError(msg)
    orphan = ~allowed.any(1)
    if orphan.any():
        msg = (
            f"REP_MAX_MINUTES: accounts {list(ids[orphan][:10])} are farther than that from every "
            "rep home; raise REP_MAX_MINUTES or add a rep near them."
        )
        raise InfeasibleError(msg)


def _solver(name: str, time_limit_s: float) -> pulp.LpSolver:
    if str(name).upper() == "HIGHS":
        s = pulp.HiGHS(msg=False, timeLimit=time_limit_s)
        if s.available():
            return s
        logger.warning("SOLVER: HiGHS is not installed here; using CBC.")
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s)


def _model(cost, values, capacity, tol, locks, current, budget, allowed, relax, slack=False):
    n, k = cost.shape
    cat = "Continuous" if relax else "Binary"
    prob = pulp.LpProblem("territories", pulp.LpMinimize)
    pairs = [(i, j) for i in range(n) for j in range(k) if allowed[i, j]]
    x = {p: pulp.LpVariable(f"x_{p[0]}_{p[1]}", 0, 1, cat=cat) for p in pairs}
    t = pulp.LpVariable("t", 0) if slack else None
    by_acc: dict[int, list] = {}
    by_ter: dict[int, list] = {}
    for (i, j), var in x.items():
        by_acc.setdefault(i, []).append(var)
        by_ter.setdefault(j, []).append((i, var))
    prob += t if slack else pulp.lpSum(cost[i, j] * v for (i, j), v in x.items())
    for i in range(n):
        prob += pulp.lpSum(by_acc.get(i, [])) == 1
        if locks[i] >= 0:
            prob += x[(i, int(locks[i]))] == 1
    target, lo, hi = _bounds(values, capacity, tol)
    for j in range(k):
        for m in range(values.shape[1]):
            expr = pulp.lpSum(values[i, m] * v for i, v in by_ter.get(j, []))
            if slack:  # t is TOLERANCE (as a fraction); lighter measures get their wider band
                ratio = tol[m] / tol.min() if tol.min() > 0 else 1.0
                prob += expr <= target[j, m] + t * ratio * target[j, m]
                prob += expr >= target[j, m] - t * ratio * target[j, m]
            else:
                prob += expr <= hi[j, m]
                prob += expr >= lo[j, m]
    if budget is not None:
        stay = [x[(i, int(c))] for i, c in enumerate(current) if c >= 0 and (i, int(c)) in x]
        n_cur = int((current >= 0).sum())
        prob += n_cur - pulp.lpSum(stay) <= budget
    return prob, x


def _solve(cost, values, capacity, tol, locks, current, budget, allowed, solver, time_limit_s,
           fields, cen_ids, *, prices=None, final=True, is_cancelled=None, rooms=None,
           keep=1, tiers=None, travel=None):  # fmt: skip
    """Exact MILP (PuLP) for small models; prices, LP and local search (assignment.py) beyond.

    ``travel`` = (share per territory, weight) adds the travel-balance penalty
    (:func:`assignment.travel_penalty`); such models always take the second path, whose LP with
    the penalty gives the bound (the MILP with it is slow for CBC even on small models).
    """
    if travel is not None and travel[1] <= 0:
        travel = None
    if cost.size <= EXACT_PAIRS and travel is None:
        assign, objective, lower = _solve_exact(
            cost, values, capacity, tol, locks, current, budget, allowed, solver, time_limit_s,
            fields,
        )  # fmt: skip
        return assign, objective, lower, None
    _, lo, hi = _bounds(values, capacity, tol)
    try:
        res = solve_balanced(
            cost, values, lo, hi, locks=locks, current=current, budget=budget, allowed=allowed,
            time_limit_s=time_limit_s, prices=prices, final=final, is_cancelled=is_cancelled,
            rooms=rooms, keep=keep, tiers=tiers, iterations=400 if final else 150, travel=travel,
        )  # fmt: skip
    except NoPlanFoundError as err:
        _explain_infeasible(cost, values, capacity, tol, locks, current, budget, allowed, solver,
                            time_limit_s, fields, "infeasible" if err.proven else "no plan found")  # fmt: skip
    return res.assign, res.objective, res.lower_bound, res.prices


def _solve_exact(cost, values, capacity, tol, locks, current, budget, allowed, solver,
                 time_limit_s, fields):  # fmt: skip
    n = cost.shape[0]
    prob, x = _model(cost, values, capacity, tol, locks, current, budget, allowed, relax=False)
    status = prob.solve(_solver(solver, time_limit_s))
    sol_ok = all(v.varValue is not None for v in x.values())
    if pulp.LpStatus[status] == "Infeasible" or not sol_ok:
        _explain_infeasible(cost, values, capacity, tol, locks, current, budget, allowed,
                            solver, time_limit_s, fields, pulp.LpStatus[status])  # fmt: skip
    assign = np.full(n, -1)
    for (i, j), v in x.items():
        if v.varValue > 0.5:
            assign[i] = j
    if (assign < 0).any():
        msg = f"The solver ({solver}) returned status {pulp.LpStatus[status]} without a full plan."
        raise SolverError(msg)
    objective = float(sum(cost[i, assign[i]] for i in range(n)))
    lp, _ = _model(cost, values, capacity, tol, locks, current, budget, allowed, relax=True)
    lp_status = lp.solve(_solver(solver, time_limit_s))
    lower = float(pulp.value(lp.objective)) if pulp.LpStatus[lp_status] == "Optimal" else np.nan
    return assign, objective, min(lower, objective)


def _explain_infeasible(cost, values, capacity, tol, locks, current, budget, allowed, solver,
                        time_limit_s, fields, status) -> None:  # fmt: skip
    """Raise InfeasibleError naming the smallest TOLERANCE (LP bound) and MAX_MOVES that could work."""
    parts = [f"No plan satisfies every hard constraint ({status})."]
    n = cost.shape[0]
    if budget is not None:
        forced = int(((locks >= 0) & (current >= 0) & (locks != current)).sum())
        if forced > budget:
            parts.append(
                f"LOCK_FIELD moves {forced} accounts away from their CURRENT_FIELD territory, but "
                f"MAX_MOVES allows {budget} ({100 * budget / n:.1f}% of accounts): set MAX_MOVES "
                f"to at least {math.ceil(1000 * forced / n) / 10:.1f}% or unlock them."
            )
            raise InfeasibleError(" ".join(parts))
    if cost.size <= EXPLAIN_PAIRS:
        need = _min_tolerance(cost, values, capacity, tol, locks, current, budget, allowed,
                              solver, time_limit_s, relax=True)  # fmt: skip
        enough = None
        if cost.size <= EXACT_PAIRS:  # small: a whole-account plan with the smallest tolerance
            enough = _min_tolerance(cost, values, capacity, tol, locks, current, budget, allowed,
                                    solver, min(time_limit_s, 10.0), relax=False)  # fmt: skip
        if need is not None and (need > tol.min() or enough is not None):
            text = f"With these locks and MAX_MOVES, TOLERANCE must be at least {need:.1f}%"
            if enough is not None:
                text += f"; {enough:.1f}% is enough"
            parts.append(text + ".")
        elif need is not None:
            parts.append(
                f"The relaxation fits within TOLERANCE (it needs {need:.1f}%), but no whole-"
                "account plan was found: raise TOLERANCE a little or TIME_LIMIT."
            )
    if budget is not None:
        low, found = _min_moves(values, capacity, tol, locks, current, allowed, time_limit_s)
        if low is not None and low > budget:
            need = f"{low}" if found == low else f"at least {low} (a plan with {found} exists)"
            parts.append(
                f"MAX_MOVES allows {budget} moves ({100 * budget / n:.1f}% of accounts), but "
                f"balancing within TOLERANCE needs {need} moves: set MAX_MOVES to at least "
                f"{math.ceil(1000 * (found or low) / n) / 10:.1f}%, or raise TOLERANCE."
            )
        elif low is not None:
            parts.append(f"MAX_MOVES allows {budget} moves; balance alone needs {low}, so the "
                         "conflict is with locks or REP_MAX_MINUTES together with the budget.")  # fmt: skip
    if len(parts) == 1:
        parts.append("Raise TOLERANCE or MAX_MOVES, or unlock some accounts: the solver could not "
                     "tell which change is enough.")  # fmt: skip
    raise InfeasibleError(" ".join(parts))


def _min_tolerance(cost, values, capacity, tol, locks, current, budget, allowed, solver,
                   time_limit_s, *, relax):  # fmt: skip
    """Smallest TOLERANCE (%) of the relaxation (a bound) or of a whole-account plan found."""
    prob, _ = _model(cost, values, capacity, tol, locks, current, budget, allowed, relax=relax,
                     slack=True)  # fmt: skip
    prob.solve(_solver(solver, time_limit_s))
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return None
    t = 100 * float(pulp.value(prob.objective))
    return (math.floor if relax else math.ceil)(10 * t + (1e-6 if relax else -1e-6)) / 10


def move_costs(current: np.ndarray, k: int, weight: np.ndarray | None = None) -> np.ndarray:
    """(n, k) cost of putting each account in each territory: its weight (1 by default) anywhere
    but its current territory, 0 there and for accounts without one."""
    w = np.ones(len(current)) if weight is None else np.asarray(weight, float)
    has = current >= 0
    cost = np.repeat(np.where(has, w, 0.0)[:, None], k, axis=1)
    cost[np.flatnonzero(has), current[has]] = 0.0
    return cost


def _min_moves(values, capacity, tol, locks, current, allowed, time_limit_s):
    """Fewest moves that restore balance: (proven lower bound, moves in a plan found)."""
    cost = move_costs(current, allowed.shape[1])
    _, lo, hi = _bounds(values, capacity, tol)
    try:
        res = solve_balanced(cost, values, lo, hi, locks=locks, current=current, budget=None,
                             allowed=allowed, time_limit_s=time_limit_s)  # fmt: skip
    except NoPlanFoundError:
        return None, None
    return math.ceil(res.lower_bound - 1e-6), round(res.objective)


def _verify(assign, values, capacity, tol, locks, current, budget, allowed, ids, cen_ids) -> None:
    """Independent check of every hard constraint on the final plan."""
    problems = []
    if (assign < 0).any():
        problems.append("unassigned accounts")
    if ((locks >= 0) & (assign != locks)).any():
        problems.append("locks broken")
    if not allowed[np.arange(len(assign)), assign].all():
        problems.append("REP_MAX_MINUTES broken")
    _, lo, hi = _bounds(values, capacity, tol)
    totals = np.array([values[assign == j].sum(0) for j in range(len(cen_ids))])
    if (totals > hi + 1e-6 * (1 + hi)).any() or (totals < lo - 1e-6 * (1 + lo)).any():
        problems.append("tolerance broken")
    if budget is not None and ((current >= 0) & (assign != current)).sum() > budget:
        problems.append("MAX_MOVES broken")
    if problems:
        msg = f"Internal check failed ({', '.join(problems)}); please report this with your inputs."
        raise SolverError(msg)


# ----------------------------------------------------------------------------- outputs


def _build_plan(acc, original, ids, fields, values, assign, cost, cost_km, cost_min, cen_ids,
                cen_xy, capacity, tol, locks, current, budget, objective, lower, quota_total,
                params, allowed, weights, travel_weight):  # fmt: skip
    n = cost.shape[0]
    out = original.copy()
    for col in OUTPUT_COLUMNS:
        if col in out.columns:
            logger.info("Input field '%s' is kept as 'input_%s'.", col, col)
            out = out.rename(columns={col: f"input_{col}"})
    rows = np.arange(n)
    out["territory_id"] = cen_ids[assign]
    out["rep_id"] = cen_ids[assign]
    out["centre_km"] = np.round(cost_km[rows, assign], 3)
    out["centre_min"] = np.round(cost_min[rows, assign], 2) if cost_min is not None else np.nan
    out["locked"] = locks >= 0
    out["moved"] = (current >= 0) & (assign != current)
    # why each account is where it is (explain.py): previous territory, next best, reason, text
    _, lo, hi = _bounds(values, capacity, tol)
    why = explain_accounts(
        assign=assign, cost=cost, unit="min" if cost_min is not None else "km",
        territory_ids=cen_ids, values=values, measure_names=fields, lo=lo, hi=hi,
        capacity=capacity, locks=locks, current=current, allowed=allowed, budget=budget,
        travel_weight=float(travel_weight or 0.0),
    )  # fmt: skip
    for col in why.columns:
        out[col] = why[col].to_numpy()
    # territories: Voronoi cells of accounts dissolved by territory, clipped to a buffered hull
    pts = shapely.points(shapely.get_coordinates(acc.geometry.values))
    hull = shapely.convex_hull(shapely.multipoints(pts)).buffer(1000.0)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=hull))
    tree = shapely.STRtree(cells)
    p_idx, c_idx = tree.query(pts, predicate="within")
    cell_of = np.full(n, -1)
    cell_of[p_idx] = c_idx
    names = fields or ["accounts"]
    target, _, _ = _bounds(values, capacity, tol)
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
    # the CVs per unit of capacity: one definition for the summary, report and compareplans
    cv = {nm: plan_kpis.cv_per_capacity([r[f"{nm}_total"] for r in summary_rows], capacity)
          for nm in names}  # fmt: skip
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
    # the plan's own figures the report reads from the summary (header gap, disruption budget)
    budget_pct = params.get("max_moves_pct") if budget is not None else None
    kpis.update(gap_pct=round(gap, 4),
                max_moves_pct=float("nan") if budget_pct is None else float(budget_pct))  # fmt: skip
    for key, value in kpis.items():
        summary[key] = value
    territories = gpd.GeoDataFrame(summary.drop(columns=list(kpis)), geometry=polys, crs=acc.crs)
    territories = territories.to_crs(original.crs) if original.crs is not None else territories
    centres = gpd.GeoDataFrame(
        {"territory_id": cen_ids, "capacity": capacity},
        geometry=shapely.points(cen_xy), crs=acc.crs,
    )  # fmt: skip
    centres = centres.to_crs(original.crs) if original.crs is not None else centres
    # one colour per territory, kept from the plan the run starts from (palette.colour_plan)
    palette.colour_plan(out, territories, centres, previous=original,
                        current_field=params.get("current_field"))  # fmt: skip
    logger.info("Plan: objective %.3f, lower bound %.3f, gap %.2f%%, largest deviation %.2f%%, "
                "%d moved.", objective, lower, gap, max_dev, moved)  # fmt: skip
    return TerritoryPlan(
        accounts=out, territories=territories, centres=centres, summary=summary,
        objective=objective, lower_bound=lower, gap_pct=gap, max_deviation_pct=max_dev,
        moved=moved, kpis=kpis, parameters=params,
    )  # fmt: skip
