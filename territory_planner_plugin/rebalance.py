"""Quarterly rebalancing: restore balance from today's assignment while moving as little as possible.

The same hard constraints as :mod:`territories` (tolerance, locks, MAX_MOVES, REP_MAX_MINUTES), with
the objective turned round: minimise the accounts moved (or the value moved, e.g. revenue), and only
then the distance. New accounts and the accounts of a rep who left are placed where they balance
best; a rep who joined gets accounts from the neighbours. The Lagrangian bound of
:mod:`assignment` gives a proven lower bound on the moves, reported with the plan.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd

from .assignment import NoPlanFoundError, priced_costs, solve_balanced, totals
from .errors import InvalidInputError, TimeLimitError
from .model import (
    PAIR_ALLOWED,
    PairRule,
    Solution,
    TerritoryModel,
    allowed_pairs,
    balance_values,
    move_costs,
    prepare_reps,
    run_parameters,
    snap_points_once,
    tolerances,
)
from .progress import CancelCheck, ProgressCallback, check_cancel, report
from .territories import (
    PlanRows,
    TerritoryPlan,
    build_plan,
    prepare_rows,
    row_codes,
    row_costs,
    row_reach,
    search_deadline,
    time_left,
    warn_far_from_roads,
)

logger = logging.getLogger(__name__)

MOVE_COLUMNS = ("account_id", "from_id", "to_id", "reason", "moved_value", "centre_km",
                "explanation")  # fmt: skip


@dataclass
class Rebalance:
    """A rebalanced plan, the list of moves and the proven lower bound on the moves needed."""

    plan: TerritoryPlan
    moves: pd.DataFrame
    moves_lower_bound: float


def rebalance_territories(
    accounts: gpd.GeoDataFrame | None = None,
    *,
    id_field: str | None = None,
    current_field: str,
    reps: gpd.GeoDataFrame | None = None,
    rep_id_field: str | None = None,
    rep_capacity_field: str | None = None,
    rep_max_minutes: float | None = None,
    balance_fields: Sequence[str] = (),
    balance_weights: Sequence[float] | None = None,
    tolerance_pct: float = 5.0,
    lock_field: str | None = None,
    max_moves_pct: float | None = None,
    minimise_field: str | None = None,
    network: object | None = None,
    units: gpd.GeoDataFrame | None = None,
    unit_id_field: str | None = None,
    contiguous: bool | None = None,
    adjacency: str = "rook",
    snap_m: float = 1.0,
    study_area: gpd.GeoDataFrame | None = None,
    unit_max_distance_m: float = 0.0,
    time_limit_s: float = 60.0,
    solver: str = "CBC",
    pair_allowed: np.ndarray | None = None,
    pair_rule: PairRule = PAIR_ALLOWED,
    pair_cost: np.ndarray | None = None,
    other_tier_reps: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> Rebalance:
    """Move as few accounts or units (or as little of ``minimise_field``) as needed to restore
    balance.

    Territories are the REPS (ids = rep ids) when given, otherwise the ids found in
    ``current_field``, centred on the medoid of their current accounts. Accounts whose current
    territory is empty are new; those naming a rep not in REPS belong to a rep who left. With
    ``units`` the plan moves whole units (a unit is in the territory most of its accounts are in
    today) and, with ``contiguous`` (default with units), keeps every territory in one piece.
    ``pair_allowed``/``pair_cost`` ((n, k), rows x reps; :mod:`coverage`) restrict the pairs and
    add a cost to them, in moves; ``pair_rule`` words the rule behind ``pair_allowed`` for
    messages and explanations. ``other_tier_reps`` are reps of another coverage tier: their
    accounts are handed over like a departed rep's, without the warning (:mod:`coverage` warns).
    """
    params = run_parameters(locals())
    params.pop("pair_allowed", None)
    params.pop("pair_rule", None)
    params.pop("pair_cost", None)
    params.pop("other_tier_reps", None)
    began = time.perf_counter()  # TIME_LIMIT bounds the whole run, outputs included
    rows = prepare_rows(accounts, id_field=id_field, balance_fields=balance_fields, units=units,
                        unit_id_field=unit_id_field, contiguous=contiguous, adjacency=adjacency,
                        snap_m=snap_m, study_area=study_area,
                        unit_max_distance_m=unit_max_distance_m)  # fmt: skip
    deadline, search_s, reserve = search_deadline(rows, time_limit_s, began)
    ids, fields, values, noun = rows.ids, rows.names, rows.values, rows.noun
    raw, raw_src = _current_text(rows, current_field)
    tol = tolerances(tolerance_pct, balance_weights, fields)
    if reps is not None:
        cen_ids, cen_xy, capacity = prepare_reps(reps, rep_id_field, rep_capacity_field, rows.crs)
    else:
        cen_ids = np.array(sorted({v for v in raw_src if v}))
        if len(cen_ids) == 0:
            msg = f"CURRENT_FIELD: '{current_field}' is empty for every {noun[:-1]}; use designterritories."
            raise InvalidInputError(msg)
        cen_xy = np.array([_medoid(rows.src_xy[raw_src == c]) for c in cen_ids])
        capacity = np.ones(len(cen_ids))
    known = set(cen_ids)
    is_new = np.array([not v for v in raw])
    if rows.src_row is not None:  # a unit without accounts has no territory today, nor is new
        is_new &= np.bincount(rows.src_row, minlength=rows.n) > 0
    departed = np.array([bool(v) and v not in known for v in raw])
    gone = sorted({v for v, d in zip(raw, departed) if d} - set(map(str, other_tier_reps)))
    if gone:
        logger.warning("Territories %s are not in REPS: their %d %s are handed over.",
                       ", ".join(gone), int(np.isin(raw, gone).sum()), noun)  # fmt: skip
    if is_new.any():
        logger.info("%d new %s (no current territory) are placed.", int(is_new.sum()), noun)
    locks, src_locks = row_codes(rows, lock_field, cen_ids, "LOCK_FIELD")
    lookup = {c: j for j, c in enumerate(cen_ids)}
    current = np.array([lookup.get(v, -1) for v in raw], int)
    src_current = np.array([lookup.get(v, -1) for v in raw_src], int)
    budget = None
    if max_moves_pct is not None:
        budget = math.floor(max_moves_pct / 100.0 * rows.n + 1e-9)
    weight = np.ones(rows.n)
    if minimise_field:
        frame = rows.accounts if rows.accounts is not None else rows.layer
        src_ids = rows.account_ids if rows.accounts is not None else ids
        w_src = balance_values(frame, src_ids, [minimise_field])
        weight = rows.aggregate(w_src)[:, 0] if rows.accounts is not None else w_src[:, 0]
    report(progress, 0.1, "Costs")
    check_cancel(is_cancelled)
    snapped = snap_points_once(rows.src_xy, network, rows.crs)
    warn_far_from_roads(rows, snapped, network, *((cen_ids, cen_xy) if reps is not None else ()))
    costs = row_costs(rows, cen_xy, network, snapped)
    cost_km, cost_min = costs[0], costs[1]
    dist = cost_min if cost_min is not None else cost_km
    reach = row_reach(rows, costs, rep_max_minutes, log=True)
    allowed = allowed_pairs(dist.shape, reach=reach, max_minutes=rep_max_minutes,
                            rule_allowed=pair_allowed)  # fmt: skip
    # moves first; distance only breaks ties (all of it is worth less than the smallest move)
    has = current >= 0
    move_cost = move_costs(current, dist.shape[1], weight)
    unit = weight[has & (weight > 0)].min() if (has & (weight > 0)).any() else 1.0
    eps = 0.5 * unit / max(float(np.where(allowed, dist, 0).max(1).sum()), 1e-9)
    extra = 0.0 if pair_cost is None else np.asarray(pair_cost, float)
    model = TerritoryModel.from_cost_matrix(
        move_cost + eps * dist + extra, values=values, capacity=capacity, tolerance_pct=tol, locks=locks,
        current=current, budget=budget, reach=reach, max_minutes=rep_max_minutes,
        rule_allowed=pair_allowed, pair_rule=pair_rule,
        adjacency=None if rows.adjacency is None else rows.adjacency.matrix,
        contiguous=rows.contiguous, names=fields, row_ids=ids, territory_ids=cen_ids, noun=noun,
        ends_by=began + time_limit_s,
    )  # fmt: skip
    model.precheck()
    report(progress, 0.3, "Assignment")
    _, lo, hi = model.bounds()
    # the counting bound of the moves (the Lagrangian's is weak here)
    must_move = _cover_bound(values, lo, hi, locks, current, allowed)
    floor = must_move
    if minimise_field:
        floor = _value_cover_bound(values, weight, lo, hi, locks, current, allowed)
    # today's plan far from balanced, large model: moves weighed against distance (a plan, quickly)
    far = must_move >= FAR_FROM_BALANCED * rows.n and model.cost.size >= FAR_FROM_PAIRS
    if far:
        logger.info("Today's plan is far from balanced: at least %s of %s %s must move. Each "
                    "move is weighed against distance (a move counts as much as %d %% of the "
                    "longest distance allowed), which finds a plan quickly but may move more "
                    "than the fewest possible; MOVES_LOWER_BOUND says how many must move.",
                    f"{int(must_move):,}", f"{rows.n:,}", noun, round(100 * FAR_MOVE_DISTANCE))  # fmt: skip
        sol = None
    else:
        sol = near_today(model, deadline=deadline, is_cancelled=is_cancelled,
                         fewest=lambda plan: move_cost[np.arange(rows.n), plan].sum() <= floor + 1e-9,
                         )  # fmt: skip
    if sol is None:
        try:
            if far:
                typical = weight[has & (weight > 0)].mean() if (has & (weight > 0)).any() else 1.0
                sol = far_from_today(model, dist, move_unit=float(typical), solver=solver,
                                     time_limit_s=time_left(deadline, search_s),
                                     is_cancelled=is_cancelled, grace_s=reserve)  # fmt: skip
            else:
                sol = model.solve(
                    solver, time_limit_s=time_left(deadline, search_s), is_cancelled=is_cancelled,
                    grace_s=reserve, rooms=(0.1, 0.03, 0.25, 0.0), keep=2,
                    tiers=((4, 4), (10**9, 0)),  # flat move costs: the nearest territories matter most
                )  # fmt: skip
        except TimeLimitError:
            msg = model.timed_out_message(time_limit_s)  # the run's TIME_LIMIT, not what was left
            if must_move >= FAR_FROM_BALANCED * rows.n:
                msg += (f" Today's plan is far from balanced: at least {int(must_move):,} of "
                        f"{rows.n:,} {noun} must move. designterritories makes a new plan faster "
                        "(with CURRENT_FIELD it keeps today's colours and counts the moves).")  # fmt: skip
            raise TimeLimitError(msg) from None
    assign = sol.assign
    model.verify(assign)
    moved_value = float(move_cost[np.arange(rows.n), assign].sum())
    # any plan's moves = its cost - eps * its distance >= the cost's bound - eps * the longest
    bound = max(0.0, sol.lower_bound - eps * float(np.where(allowed, dist, 0).max(1).sum()))
    bound = max(bound, floor)
    bound = min(math.ceil(bound - 1e-6) if not minimise_field else bound, moved_value)
    report(progress, 0.9, "Outputs")
    sol = replace(sol, objective=moved_value, lower_bound=bound)
    # the outputs report distances (next best, travel) with the moves' plan
    plan = build_plan(
        replace(model, cost=dist), sol, rows=rows, costs=costs, src_locks=src_locks,
        src_current=src_current, cen_xy=cen_xy, quota_total=None, params=params,
        weights=balance_weights, travel_weight=0.0,
        explain_extra={"previous": raw, "is_new": is_new, "departed": departed,
                       "fewest_moves": True},  # the rebalance's reasons: new, rep left, few moves
    )  # fmt: skip
    raw_from = np.where(departed | has, raw, None)
    changed = is_new | departed | (has & (assign != current))
    out = plan.units if rows.has_units else plan.accounts
    moves = pd.DataFrame({
        "account_id": ids[changed], "from_id": raw_from[changed], "to_id": cen_ids[assign][changed],
        "reason": out["reason"].to_numpy()[changed], "moved_value": weight[changed],
        "centre_km": np.round(cost_km[np.arange(rows.n), assign][changed], 3),
        "explanation": out["explanation"].to_numpy()[changed],
    })  # fmt: skip
    logger.info("Rebalance: %d %s moved (at least %s must: proven), %d new or handed over.",
                int((has & (assign != current)).sum()), noun, bound,
                int((is_new | departed).sum()))  # fmt: skip
    return Rebalance(plan=plan, moves=moves, moves_lower_bound=float(bound))


FAR_FROM_BALANCED = 0.1  # today's plan needs at least this share of the accounts to move
FAR_FROM_PAIRS = 50_000  # ... and the model has this many pairs: a move is weighed against
FAR_MOVE_DISTANCE = 0.3  # distance, costing as much as this share of the longest distance
NEAR_FROM_PAIRS = 50_000  # from this many pairs the plan is first sought near today's
NEAR_FIRST_SHARE = 0.05  # of the accounts may move in the first try (at least 20 per territory)
NEAR_FIRST_PAIRS = 250_000  # ... but at most this many pairs (unless more have no territory)
NEAR_WIDER = 4  # each further try lets this many times more accounts move
NEAR_TIME_SHARE = 0.5  # of the time to the deadline for the tries near today's plan
NEAR_PRICES_SHARE = 0.2  # ... of which the prices that choose who may move get this share


def far_from_today(model: TerritoryModel, dist: np.ndarray, *, move_unit: float = 1.0,
                   solver: str, time_limit_s: float, is_cancelled: CancelCheck | None = None,
                   grace_s: float = 0.0) -> Solution:  # fmt: skip
    """A plan for a model whose today's plan is far from balanced (a tenth of the accounts or
    more must move): the fewest moves are a flat, degenerate objective the large models do not
    solve in time, so each move is weighed against distance instead (a move of ``move_unit`` in
    the model's cost, e.g. the typical value moved, costs ``FAR_MOVE_DISTANCE`` of the longest
    allowed distance) and the balanced model of that cost is solved, as designterritories
    solves distances. The plan keeps every hard constraint; its moves may exceed the fewest
    possible, so no bound is returned (the caller's counting bound holds)."""
    scale = FAR_MOVE_DISTANCE * max(float(np.where(model.pairs(), dist, 0).max()), 1e-9)
    cost = model.cost / max(move_unit, 1e-12) + np.asarray(dist, float) / scale
    sol = replace(model, cost=cost).solve(
        solver, time_limit_s=time_limit_s, is_cancelled=is_cancelled, grace_s=grace_s)  # fmt: skip
    return replace(sol, objective=model.objective_of(sol.assign), lower_bound=-np.inf)


def near_today(model: TerritoryModel, *, deadline: float, fewest: Callable[[np.ndarray], bool],
               is_cancelled: CancelCheck | None = None) -> Solution | None:  # fmt: skip
    """A plan of few moves for a large model, found near today's plan: the model's prices
    (Lagrangian, :func:`.assignment.solve_balanced`) say which accounts come closest to moving
    (those without a territory today first); only they may move, to any territory, and the
    plan is solved on them (:meth:`TerritoryModel.solve_on_pairs`). Tries let four times more
    accounts move while they find no plan, and while a wider try stays small and quick, until
    ``fewest(plan)`` (no fewer moves possible) or the whole model. None (the full model is
    solved instead) for contiguous or small models and when no try finds a plan in its share of
    the time. Its bound is left to the caller (the counting bounds of the moves)."""
    n, k = model.n, model.k
    if model.contiguous or model.cost.size < NEAR_FROM_PAIRS or k < 2:
        return None
    t0 = time.perf_counter()
    end = t0 + NEAR_TIME_SHARE * max(deadline - t0, 0.0)
    cur, allowed = model.current, model.pairs()
    _, lo, hi = model.bounds()
    try:
        lam = solve_balanced(model.cost, model.values, lo, hi, locks=model.locks, current=cur,
                             budget=None, allowed=model.allowed, final=False, iterations=150,
                             time_limit_s=NEAR_PRICES_SHARE * (end - t0), quiet=True,
                             is_cancelled=is_cancelled).prices  # fmt: skip
    except NoPlanFoundError:
        return None
    priced = np.where(allowed, priced_costs(model.cost, model.values, hi, lam), np.inf)
    has = cur >= 0
    rows = np.arange(n)
    stay_at = priced[rows, np.where(has, cur, 0)]
    priced[rows[has], cur[has]] = np.inf
    closest = np.where(has, priced.min(1) - stay_at, -np.inf)  # no territory today: first
    order = np.argsort(closest, kind="stable")
    stay = np.zeros((n, k), bool)
    stay[rows[has], cur[has]] = True
    size = min(max(int(NEAR_FIRST_SHARE * n), 20 * k), NEAR_FIRST_PAIRS // k)
    size = min(n, max(size, int((~has).sum()), 1))
    best, tried = None, size
    while time.perf_counter() < end:
        check_cancel(is_cancelled)
        begin, tried = time.perf_counter(), size
        free = np.zeros(n, bool)
        free[order[:size]] = True
        plan = model.solve_on_pairs(stay | (allowed & free[:, None]),
                                    time_limit_s=end - time.perf_counter())  # fmt: skip
        if plan is not None and (best is None or model.objective_of(plan) < model.objective_of(best)):  # fmt: skip
            best = plan
        logger.debug("Near today's plan: %d of %d may move: %s (%.1f s).", size, n,
                     "no plan" if plan is None else f"{model.objective_of(plan):.4f}",
                     time.perf_counter() - begin)  # fmt: skip
        if size >= n or (best is not None and fewest(best)):
            break
        took = time.perf_counter() - begin
        slow = size * NEAR_WIDER * k > NEAR_FIRST_PAIRS or end - time.perf_counter() < 8 * took
        if best is not None and slow:
            break  # a wider try would be slow: keep this plan
        size = min(n, size * NEAR_WIDER)
    if best is None:
        logger.info("No plan near today's plan in %.1f s: the whole model is solved.",
                    time.perf_counter() - t0)  # fmt: skip
        return None
    logger.info("Plan near today's: the %d of %d %s closest to moving could move (%.1f s).",
                tried, n, model.noun, time.perf_counter() - t0)  # fmt: skip
    return Solution(best, model.objective_of(best), -np.inf, "HiGHS (SciPy), near today's plan")


def _current_text(rows: PlanRows, current_field: str) -> tuple[np.ndarray, np.ndarray]:
    """Today's territory (text) per row and per cost point; a unit with accounts takes the one
    most of its accounts are in (ties: the first in sort order)."""
    frame = rows.accounts if rows.accounts is not None else rows.layer
    layer = "ACCOUNTS" if rows.accounts is not None or not rows.has_units else "UNITS"
    if not current_field or current_field not in frame.columns:
        msg = (f"CURRENT_FIELD: '{current_field}' is not a field of {layer}; choose today's "
               "territory field.")  # fmt: skip
        raise InvalidInputError(msg)
    raw_src = frame[current_field].map(_text).to_numpy(object)
    if rows.src_row is None:
        return raw_src, raw_src
    df = pd.DataFrame({"u": rows.src_row, "v": raw_src})
    df = df[df["v"] != ""]
    top = df.groupby(["u", "v"]).size().reset_index(name="c")
    top = top.sort_values(["u", "c", "v"], ascending=[True, False, True]).drop_duplicates("u")
    raw = np.full(rows.n, "", dtype=object)
    raw[top["u"].to_numpy(int)] = top["v"].to_numpy(object)
    return raw, raw_src


def _cover_bound(values, lo, hi, locks, current, allowed) -> float:
    """Fewest moves by counting: each territory over a bound must give away, each one under must
    receive, at least as many accounts as its largest movable ones need to cover the gap.

    Every move takes one account out of one territory and into one other, so the moves are at least
    the larger of the two sums (receiving counts only when no new account could fill the gap).
    Locks that differ from today's territory are moves in any plan and come on top.
    """
    ones = np.ones(len(values))
    return _covering(values, ones, lo, hi, locks, current, allowed,
                     lambda vals, w, gap: _count_to_cover(vals, gap))  # fmt: skip


def _value_cover_bound(values, weight, lo, hi, locks, current, allowed) -> float:
    """Least value moved (MINIMISE_FIELD), by the same counting as :func:`_cover_bound`: a
    territory over a bound must give away, one under must receive, accounts (or units) whose
    measure covers the gap, at least the least weight that can (fractional knapsack: cheapest
    weight per unit of the measure first). Moved weight counts once leaving and once arriving."""
    return _covering(values, weight, lo, hi, locks, current, allowed, _least_weight)


def _covering(values, weight, lo, hi, locks, current, allowed, cover) -> float:
    """The counting bound of :func:`_cover_bound` with ``cover(values, weights, gap)`` the least
    that closes one territory's gap on one measure."""
    k = lo.shape[0]
    has = current >= 0
    forced = has & (locks >= 0) & (locks != current)
    start = np.where(locks >= 0, locks, current)
    placed = start >= 0
    load = totals(values[placed], start[placed], k)
    movable = has & (locks < 0)
    out_needed = in_needed = 0.0
    for j in range(k):
        mine = np.flatnonzero(movable & (current == j))
        others = np.flatnonzero(movable & (current != j) & allowed[:, j])
        give = take = 0.0
        for m in range(values.shape[1]):
            give = max(give, cover(values[mine, m], weight[mine], load[j, m] - hi[j, m]))
            take = max(take, cover(values[others, m], weight[others], lo[j, m] - load[j, m]))
        out_needed += give
        in_needed += take
    free = bool((~placed).any())  # new accounts can fill a gap without a move
    return float(weight[forced].sum() + max(out_needed, 0.0 if free else in_needed))


def _least_weight(vals: np.ndarray, w: np.ndarray, gap: float) -> float:
    """Least total weight of (fractions of) items whose values sum to ``gap`` (0 without a gap or
    when the items cannot cover it: no claim is made then)."""
    if gap <= 1e-9:
        return 0.0
    use = vals > 0
    vals, w = vals[use], w[use]
    if vals.sum() < gap - 1e-9:
        return 0.0
    order = np.argsort(w / vals, kind="stable")
    cum = np.cumsum(vals[order])
    last = int(np.searchsorted(cum, gap - 1e-9))
    before = float(cum[last - 1]) if last else 0.0
    full = float(w[order[:last]].sum())
    return full + float(w[order[last]]) * (gap - before) / float(vals[order[last]])


def _count_to_cover(vals: np.ndarray, gap: float) -> int:
    """Smallest number of these values whose sum reaches ``gap`` (0 when there is no gap)."""
    if gap <= 1e-9:
        return 0
    cum = np.cumsum(np.sort(vals)[::-1])
    return int(np.searchsorted(cum, gap - 1e-9) + 1) if len(cum) and cum[-1] >= gap - 1e-9 else 0


def _text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v).strip()


def _medoid(pts: np.ndarray) -> np.ndarray:
    if len(pts) > 2000:  # geometric centre, then the nearest member (bounded memory)
        centre = np.median(pts, axis=0)
        return pts[int(np.argmin(((pts - centre) ** 2).sum(1)))]
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).sum(1)
    return pts[int(np.argmin(d))]
