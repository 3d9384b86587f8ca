"""Balanced assignment at any size: a Lagrangian lower bound, an LP, rounding and local search.

The model is the one in :mod:`model`, its rows built by :mod:`constraints`: minimise total cost,
each account in exactly one territory, every balanced measure of every territory within [lo, hi],
locks, an optional budget of moves against the current territory, and forbidden pairs. The balance rows and the budget are
priced out (Lagrangian relaxation, subgradient ascent on k*m + 1 multipliers, O(n*k) an
iteration); every price vector gives a proven lower bound, the best one is reported. An LP over each
account's best priced (then also nearest) territories, with the bounds tightened by a small margin,
fixes almost every account; a node-limited MILP places the few fractional ones (HiGHS, bundled
with SciPy) and a local search of shifts and swaps that keep every bound improves the plan.
An optional travel-balance penalty (TRAVEL_WEIGHT, :func:`travel_penalty`) joins the objective of
the LPs (up to ``_TRAVEL_LP_PAIRS``) and of a second local search.
Everything is deterministic: no step depends on the clock except the ascent's deadline.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import LinearConstraint, linprog, milp

from .constraints import pair_constraints
from .progress import CancelCheck, check_cancel

logger = logging.getLogger(__name__)


@dataclass
class Assignment:
    """An integral assignment with its cost, a proven lower bound and the prices that gave it."""

    assign: np.ndarray
    objective: float
    lower_bound: float
    prices: np.ndarray


class NoPlanFoundError(Exception):
    """No assignment satisfies the constraints (proven when ``proven`` is true)."""

    def __init__(self, proven: bool, *, timed_out: bool = False) -> None:
        super().__init__("infeasible" if proven else "no plan found in the time limit")
        self.proven = proven
        self.timed_out = timed_out  # the time limit stopped the search before any plan


def solve_balanced(
    cost: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    locks: np.ndarray,
    current: np.ndarray,
    budget: int | None,
    allowed: np.ndarray,
    time_limit_s: float = 60.0,
    prices: np.ndarray | None = None,
    iterations: int = 400,
    final: bool = True,
    rooms: tuple[float, ...] | None = None,
    keep: int = 1,
    tiers: tuple[tuple[int, int], ...] | None = None,
    travel: tuple[np.ndarray, float] | None = None,
    polish: bool = True,
    is_cancelled: CancelCheck | None = None,
    grace_s: float = 0.0,
    quiet: bool = False,
) -> Assignment:
    """Assign accounts (rows of ``cost``) to territories (columns) within the balance bounds.

    ``lo``/``hi`` bound the per-territory totals of ``values`` (n, m). ``prices`` warm-starts the
    multipliers (from an earlier call on similar costs). With ``final`` false only the priced
    assignment is returned (fast, may break balance slightly: for centre updates between rounds).
    ``rooms`` are the margins (x the largest account value) kept for rounding, tried in order;
    on large models the best of the first ``keep`` plans found is returned. ``tiers`` are the
    candidate sets tried in turn: (best priced territories, nearest territories) per account.
    ``travel`` = (share per territory, weight mu) adds mu x the sum over territories of
    |travel - share x total travel| to the objective (see :func:`travel_penalty`); the bound
    (on travel alone) stays a valid lower bound. ``polish`` false skips the local search (a
    quicker, slightly longer plan: sizing). ``grace_s``: while no plan is found, the search may
    go on this long past ``time_limit_s`` (time kept for later steps, spent only to have a plan).
    ``quiet``: no warning when the price updates are cut short (a caller that says why).
    Raises :class:`NoPlanFoundError`.
    """
    t0 = time.perf_counter()
    n, k = cost.shape
    fixed, free, lo_r, hi_r, fixed_cost = _without_locked(cost, values, lo, hi, locks)
    bud = None
    if budget is not None:
        bud = budget - int(((current >= 0) & fixed & (locks != current)).sum())
        if bud < 0:
            raise NoPlanFoundError(proven=True)
    if len(free) == 0:  # every account is locked: the plan is the locks
        assign = locks.copy()
        if not _feasible(values, assign, lo, hi, current, budget, k):
            raise NoPlanFoundError(proven=True)
        obj = float(cost[np.arange(n), assign].sum())
        if travel is not None:
            obj += travel_penalty(cost, assign, *travel)
        return Assignment(assign, obj, obj, np.zeros((k, values.shape[1] + 1)))
    c = np.where(allowed[free], cost[free], np.inf)
    cur = np.where(current[free] >= 0, current[free], -1) if bud is not None else None
    scale = price_scale(hi)
    w = values[free] / scale
    lam = np.zeros((k, values.shape[1] + 1)) if prices is None else prices.copy()
    lag = _Lagrangian(c, w, lo_r / scale, hi_r / scale, cur, bud)
    warm = prices is not None
    logger.debug("ascent start: final=%s warm=%s", final, warm)
    best, lam = lag.ascend(lam, iterations, deadline=t0 + 0.5 * time_limit_s,
                           is_cancelled=is_cancelled, theta=0.25 if warm else 1.0,
                           quiet=quiet)  # fmt: skip
    bound = best + fixed_cost
    logger.debug("ascent done: bound %.4f", bound)
    priced = lag.reduced(lam)
    assign = np.where(fixed, locks, -1)
    if not final:
        assign[free] = priced.argmin(1)
        return Assignment(assign, float(cost[np.arange(n), assign].sum()), bound, lam)
    term = None
    if travel is not None and travel[1] > 0:
        base = np.bincount(locks[fixed], weights=cost[fixed, locks[fixed]], minlength=k)
        term = _TravelTerm(travel[0], travel[1], base)
        if c.size <= _TRAVEL_LP_PAIRS:  # the LP with travel: a tighter bound than the prices
            lp = _lp(c, values[free], lo_r, hi_r, cur, bud, np.isfinite(c), 0.0, term)
            if lp is not None:  # (None: infeasible or unsolved; the primal steps will say which)
                bound = max(bound, lp[3] + fixed_cost)
    sub = _primal(c, values[free], lo_r, hi_r, cur, bud, priced, is_cancelled, rooms, keep, tiers,
                  term, polish, end=t0 + max(time_limit_s, _MIN_PLAN_S),
                  grace_end=t0 + max(time_limit_s, _MIN_PLAN_S) + max(grace_s, 0.0))  # fmt: skip
    if sub is None:
        raise NoPlanFoundError(proven=False)
    assign[free] = sub
    objective = float(cost[np.arange(n), assign].sum())
    if term is not None:
        objective += travel_penalty(cost, assign, *travel)
    logger.info("Assignment: objective %.4f, Lagrangian bound %.4f (%.1f s).",
                objective, bound, time.perf_counter() - t0)  # fmt: skip
    return Assignment(assign, objective, min(bound, objective), lam)


def travel_penalty(cost: np.ndarray, assign: np.ndarray, share: np.ndarray, mu: float) -> float:
    """mu x sum over territories of |travel - share x total travel| (travel = summed cost)."""
    travel = np.bincount(assign, weights=cost[np.arange(len(assign)), assign], minlength=len(share))
    return float(mu * np.abs(travel - share * travel.sum()).sum())


_GROUPS_SHARE = 0.6  # of the time for the plan in groups; the rest tightens its bound
_COARSER = 4  # a try in groups that finds no plan in its time: groups this many times larger


def solve_in_groups(
    cost: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    locks: np.ndarray,
    allowed: np.ndarray,
    time_limit_s: float,
    max_pairs: int = 2_000_000,
    is_cancelled: CancelCheck | None = None,
) -> tuple[Assignment, int]:
    """A first plan of a model too large for its time: accounts that weigh the same choice (the
    same two nearest territories and a similar saving between them) are placed in groups (at
    most ``max_pairs`` group-territory pairs), whose summed measures keep the balance exact for
    the accounts. When the groups find no plan in their share of the time (a busy machine), a
    second try with groups ``_COARSER`` times larger gets half of what is left. The bound is
    the full model's Lagrangian at the groups' prices, so it is a lower bound of the problem as
    posed. Returns the plan and the group size."""
    n, k = cost.shape
    t0 = time.perf_counter()
    fixed, free, lo_r, hi_r, fixed_cost = _without_locked(cost, values, lo, hi, locks)
    size = max(2, int(np.ceil(len(free) * k / max_pairs)))
    c = np.where(allowed[free], cost[free], np.inf)
    order, key = _by_choice(c, k)
    locked = np.flatnonzero(fixed)
    seconds = _GROUPS_SHARE * time_limit_s
    while True:
        starts, group = _groups(key, size)
        g_cost = np.add.reduceat(c[order], starts, axis=0)
        rows_cost = np.vstack([g_cost, cost[locked]])
        rows_vals = np.vstack([np.add.reduceat(values[free][order], starts, axis=0),
                               values[locked]])  # fmt: skip
        rows_allowed = np.vstack([np.isfinite(g_cost), allowed[locked]])
        try:
            res = solve_balanced(np.where(np.isfinite(rows_cost), rows_cost, 0.0), rows_vals, lo,
                                 hi, locks=np.r_[np.full(len(starts), -1), locks[locked]],
                                 current=np.full(len(rows_cost), -1), budget=None,
                                 allowed=rows_allowed, time_limit_s=seconds,
                                 is_cancelled=is_cancelled, quiet=True)  # fmt: skip
            break
        except NoPlanFoundError as err:
            left = t0 + time_limit_s - time.perf_counter()
            if err.proven or len(starts) <= k or left < 1.0:
                raise
            size *= _COARSER
            seconds = left / 2.0
            logger.info("No plan in groups in its time; groups of about %d now (%.1f s).",
                        size, seconds)  # fmt: skip
    assign = np.where(fixed, locks, -1)
    assign[free[order]] = res.assign[group]
    objective = float(cost[np.arange(n), assign].sum())
    scale = price_scale(hi)  # as solve_balanced prices them
    full = _Lagrangian(c, values[free] / scale, lo_r / scale, hi_r / scale, None, None)
    # the groups' prices start the full model's price updates, in the time left: a true bound
    best, _ = full.ascend(res.prices.copy(), 400, deadline=t0 + time_limit_s,
                          is_cancelled=is_cancelled, theta=0.25, quiet=True)  # fmt: skip
    bound = best + fixed_cost
    return Assignment(assign, objective, min(bound, objective), res.prices), size


def _by_choice(c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Free accounts ordered by the choice they weigh (their two nearest territories, then the
    saving between them): the order and each one's key (its pair of territories)."""
    if k == 1:
        return np.arange(len(c)), np.zeros(len(c), int)
    two = np.argpartition(c, 1, axis=1)[:, :2]
    c2 = np.take_along_axis(c, two, axis=1)
    swap = c2[:, 1] < c2[:, 0]
    two[swap] = two[swap][:, ::-1]
    c2 = np.sort(c2, axis=1)
    regret = np.where(np.isfinite(c2[:, 1]), c2[:, 1] - c2[:, 0], np.inf)
    order = np.lexsort((regret, two[:, 1], two[:, 0]))
    return order, two[order, 0] * k + two[order, 1]


def _groups(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of ``size`` accounts of one key: each group's first position and each account's
    group."""
    new_key = np.r_[True, key[1:] != key[:-1]]
    run_start = np.maximum.accumulate(np.where(new_key, np.arange(len(key)), 0))
    is_start = new_key | ((np.arange(len(key)) - run_start) % size == 0)
    return np.flatnonzero(is_start), np.cumsum(is_start) - 1


def _without_locked(cost, values, lo, hi, locks) -> tuple:
    """Locked rows taken out: their mask, the free rows, the bands left for the free rows
    (lo, hi minus the locked rows' totals) and the locked rows' cost."""
    k = cost.shape[1]
    fixed = locks >= 0
    locked_totals = totals(values[fixed], locks[fixed], k)
    return (fixed, np.flatnonzero(~fixed), lo - locked_totals, hi - locked_totals,
            float(cost[fixed, locks[fixed]].sum()))  # fmt: skip


def price_scale(hi: np.ndarray) -> np.ndarray:
    """Prices are per unit of a territory's target: the scale of each measure."""
    return np.maximum(np.abs(hi).mean(0), 1e-12)


def priced_costs(cost: np.ndarray, values: np.ndarray, hi: np.ndarray,
                 prices: np.ndarray) -> np.ndarray:  # fmt: skip
    """(n, k) costs with the balance prices of :func:`solve_balanced` (``Assignment.prices``,
    per unit of each measure's :func:`price_scale`; the moves budget's price left out)."""
    return cost + (values / price_scale(hi)) @ prices[:, :-1].T


def totals(values: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Per-territory sums of each measure, (k, m)."""
    if values.shape[1] == 0 or len(idx) == 0:
        return np.zeros((k, values.shape[1]))
    return np.column_stack([np.bincount(idx, weights=values[:, m], minlength=k)
                            for m in range(values.shape[1])])  # fmt: skip


class _Lagrangian:
    """L(lambda) = sum_i min_j (c_ij + w_i . lambda_j [+ beta if moved]) - penalties; concave."""

    def __init__(self, c, w, lo, hi, cur, budget):
        self.c, self.w, self.lo, self.hi, self.cur, self.budget = c, w, lo, hi, cur, budget
        self.rows = np.arange(len(c))
        self.has = np.flatnonzero(cur >= 0) if cur is not None else np.array([], int)
        self.bscale = lo.shape[0] / max(len(c), 1)  # budget price per 1/k-th of the accounts
        nearest = np.where(np.isfinite(c), c, np.nan)
        self.scale = float(np.nansum(np.nanmin(nearest, axis=1))) + 1.0 if c.size else 1.0

    def reduced(self, lam: np.ndarray) -> np.ndarray:
        r = self.w @ lam[:, :-1].T
        r += self.c
        if self.budget is not None:
            beta = lam[0, -1] * self.bscale
            r = r + beta
            r[self.has, self.cur[self.has]] -= beta
        return r

    def evaluate(self, lam: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and a subgradient (same shape as lam) at lam."""
        r = self.reduced(lam)
        a = r.argmin(1)
        k = self.lo.shape[0]
        load = totals(self.w, a, k)
        p = lam[:, :-1]
        value = r[self.rows, a].sum() - (np.maximum(p, 0) * self.hi).sum()
        value += (np.maximum(-p, 0) * self.lo).sum()
        over, under = load - self.hi, load - self.lo
        g = np.zeros_like(lam)
        g[:, :-1] = np.where(p > 0, over, np.where(p < 0, under,
                             np.where(over > 0, over, np.where(under < 0, under, 0.0))))  # fmt: skip
        if self.budget is not None:
            moved = int((a[self.has] != self.cur[self.has]).sum())
            value -= lam[0, -1] * self.bscale * self.budget
            excess = (moved - self.budget) * self.bscale
            g[0, -1] = excess if (lam[0, -1] > 0 or excess > 0) else 0.0
        return float(value), g

    def ascend(self, lam, iterations, *, deadline, is_cancelled, theta=1.0, quiet=False):
        """Subgradient ascent with Polyak steps towards an estimated optimum; returns the best.

        Stops after ``iterations``, when the step has shrunk to nothing, or when 50 iterations
        improved the bound by less than 2 parts per million.
        """
        best, best_lam = -np.inf, lam.copy()
        stall = 0
        history = []
        for it in range(iterations):
            if it % 20 == 0:
                check_cancel(is_cancelled)
            if it and time.perf_counter() > deadline:  # one step at least: a finite bound
                if quiet:
                    break
                logger.warning(
                    "Half of TIME_LIMIT went on the lower bound (%d price updates); stopped "
                    "there. A machine of another speed may stop elsewhere and give another "
                    "plan: raise TIME_LIMIT for runs that repeat exactly.", it,
                )  # fmt: skip
                break
            history.append(best)
            if it >= 50 and np.isfinite(history[-50]) and best - history[-50] <= 2e-6 * abs(best):
                break
            value, g = self.evaluate(lam)
            if not np.isfinite(best) or value > best + 1e-12 * abs(best):
                best, best_lam, stall = value, lam.copy(), 0
            else:
                stall += 1
                if stall >= 20:
                    theta, stall, lam = theta / 2, 0, best_lam.copy()
                    if theta < 1e-4:
                        break
            norm = float((g * g).sum())
            if norm == 0.0:
                break  # the priced assignment is feasible and complementary: optimal
            step = theta * 0.01 * max(abs(best), self.scale) / norm
            lam = lam + step * g
            lam[:, -1] = max(lam[0, -1], 0.0)  # the budget price is never negative
        return best, best_lam


def _primal(c, values, lo, hi, cur, budget, priced, is_cancelled, rooms=None, keep=1,
            tiers=None, travel=None, polish=True, *, end: float = math.inf,
            grace_end: float | None = None):  # fmt: skip
    """A feasible plan from the prices: LP on the best candidates, rounding MILP, local search.

    With ``travel`` (a :class:`_TravelTerm`) a second local search includes its penalty, and
    so do the LPs up to ``_TRAVEL_LP_PAIRS`` (beyond, the dense total-travel row is too slow).
    At ``end`` (``time.perf_counter()``) the best plan so far is returned; without one the
    search goes on until ``grace_end`` (default ``end``), then :class:`NoPlanFoundError`
    (``timed_out``) is raised.
    """
    n, k = c.shape
    hard = end if grace_end is None else max(end, grace_end)

    def time_up(best):
        now = time.perf_counter()
        if now < (end if best is not None else hard):
            return False
        if best is None:
            raise NoPlanFoundError(proven=False, timed_out=True)
        logger.info("TIME_LIMIT reached: keeping the best plan found so far.")
        return True

    def until(best):
        """When the next LP or rounding must stop: ``end``, or later while there is no plan."""
        return end if best is not None else hard

    def score(plan):
        total = c[np.arange(n), plan].sum()
        if travel is None:
            return total
        travel.start(c, plan)
        return total + travel.value(travel.travel)

    rooms = _SHRINKS if rooms is None else rooms
    order = np.argsort(priced, axis=1, kind="stable")
    near = np.argsort(c, axis=1, kind="stable")  # geographic neighbours keep the LP connected
    for n_cand, n_near in tiers or _TIERS:
        n_cand = min(n_cand, k)
        cand = np.zeros((n, k), bool)
        cand[np.arange(n)[:, None], order[:, : min(n_cand, k)]] = True
        cand[np.arange(n)[:, None], near[:, : min(n_near, k)]] = True
        if cur is not None:
            has = cur >= 0
            cand[np.flatnonzero(has), cur[has]] = True
        cand &= np.isfinite(c)
        best, found, failed, lp_s = None, 0, np.inf, 0.0
        for shrink in rooms:
            if shrink >= failed:
                continue  # a wider room only tightens the bounds of an LP already infeasible
            check_cancel(is_cancelled)
            if time_up(best):
                return best
            if time.perf_counter() + _LP_LEFT_SHARE * lp_s > until(best):
                # another LP like the last would end well past the deadline (building it alone
                # takes seconds on large models): stop now
                if best is None:
                    raise NoPlanFoundError(proven=False, timed_out=True)
                return best
            began = time.perf_counter()
            lp = _lp(c, values, lo, hi, cur, budget, cand, shrink,
                     travel if c.size <= _TRAVEL_LP_PAIRS else None, end=until(best))  # fmt: skip
            lp_s = time.perf_counter() - began
            if lp is None and time_up(best):  # the LP was cut short, not proven infeasible
                return best
            if lp is None:
                logger.debug("LP on %d candidates, room %.2f: infeasible.", n_cand, shrink)
                failed = shrink
                continue
            plan = _round(c, values, lo, hi, cur, budget, cand, *lp[:3], end=until(best))
            logger.debug("LP on %d candidates, room %.2f: %s.", n_cand, shrink,
                         "rounded" if plan is not None else "rounding failed")  # fmt: skip
            if plan is None:
                continue
            search = _neighbours(c, priced, 3, order, near) & np.isfinite(c)
            if polish and (travel is None or c.size > _TRAVEL_LP_PAIRS):  # (LP without travel)
                plan = _local_search(c, values, lo, hi, cur, budget, plan, search, end=end)
            if travel is not None:
                search = _neighbours(c, priced, _TRAVEL_NEIGHBOURS, order, near) & np.isfinite(c)
                plan = _local_search(c, values, lo, hi, cur, budget, plan, search, travel=travel,
                                     max_trials=_TRAVEL_TRIALS, end=end)  # fmt: skip
            if best is None or score(plan) < score(best) - 1e-9:
                best = plan
            found += 1
            if c.size > _TRY_ALL_PAIRS and found >= keep:
                break  # large models: the best of the first ``keep`` plans that round (time)
        if best is not None:
            return best
        if n_cand >= k:
            break
    return None


def polish(cost: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           assign: np.ndarray, *, current: np.ndarray | None = None, budget: int | None = None,
           end: float = math.inf) -> np.ndarray:  # fmt: skip
    """A plan keeping every bound improved by shifts and swaps among each row's 3 nearest
    territories (the local search the priced path ends with), until ``end``. Pairs of infinite
    ``cost`` are never used, so a row whose only finite pair is its lock stays."""
    c = np.asarray(cost, float)
    search = _neighbours(c, c, 3) & np.isfinite(c)
    return _local_search(c, np.asarray(values, float), lo, hi, current, budget,
                         np.asarray(assign, int), search, end=end)  # fmt: skip


def _neighbours(c, priced, count, order=None, near=None) -> np.ndarray:
    """(n, k) mask of each account's ``count`` best priced and ``count`` nearest territories."""
    n, k = c.shape
    order = np.argsort(priced, axis=1, kind="stable") if order is None else order
    near = np.argsort(c, axis=1, kind="stable") if near is None else near
    mask = np.zeros((n, k), bool)
    mask[np.arange(n)[:, None], order[:, : min(count, k)]] = True
    mask[np.arange(n)[:, None], near[:, : min(count, k)]] = True
    return mask


_LP_LEFT_SHARE = 0.5  # an LP starts only with this share of the last LP's time left
_MIN_PLAN_S = 1.0  # the search for a plan (after the ascent) gets at least this long
_SHRINKS = (0.25, 0.1, 0.5, 0.03, 1.0, 0.0)  # room kept for rounding, x the largest account value
_TIERS = ((2, 0), (2, 2), (4, 4), (10**9, 0))  # candidates: best priced, then also nearest
_TRY_ALL_PAIRS = 100_000  # up to this model size every room is tried and the best plan kept
# rounding MILP: the open accounts are a few hundred; within 2% of their share is plenty, and
# HiGHS's presolve took seconds at the root on uneven data
_ROUNDING_MILP = {"node_limit": 2000, "disp": False, "mip_rel_gap": 0.02, "presolve": False}
_TRAVEL_LP_PAIRS = 60_000  # up to this size the LPs carry the travel penalty (and bound it)
_TRAVEL_TRIALS = 200_000  # moves the local search may try when it also evens out travel
_TRAVEL_NEIGHBOURS = 4  # ... to this many best priced and nearest territories


def _lp(c, values, lo, hi, cur, budget, cand, shrink, travel=None, *, end: float = math.inf):
    """LP over the candidate pairs with bounds tightened by ``shrink`` (room for rounding).

    Returns (rows, cols, x, objective) or None. With ``travel`` the objective has its penalty:
    variables dev_j >= |travel_j - share_j x T| and T = total travel (one dense row).
    """
    n, k = c.shape
    rows, cols = np.nonzero(cand)
    ncol = len(rows)
    pc = pair_constraints(values, rows, cols, n_rows=n, k=k,
                          current=cur if budget is not None else None)  # fmt: skip
    a_eq, a_bal = pc.assign, pc.balance
    room = np.minimum(shrink * values.max(0, initial=0.0)[None, :], 0.4 * (hi - lo))
    a_ub = [a_bal, -a_bal]
    b_ub = [(hi - room).ravel(), -(lo + room).ravel()]
    if budget is not None:
        n_cur = int((cur >= 0).sum())
        a_ub.append(sp.csr_matrix(-pc.stay[None, :]))
        b_ub.append(np.array([budget - n_cur], float))
    obj = c[rows, cols]
    b_eq = np.ones(n)
    bounds = (0, 1)
    if travel is not None:  # columns: pairs, dev_0..dev_k-1, T
        a_ub = [sp.hstack([a, sp.csr_matrix((a.shape[0], k + 1))]) for a in a_ub]
        a_eq = sp.hstack([a_eq, sp.csr_matrix((n, k + 1))])
        per_t = sp.csr_matrix((obj, (cols, np.arange(ncol))), shape=(k, ncol))  # travel_j
        eye, share, base = sp.identity(k), travel.share[:, None], travel.base
        # travel_j + base_j - share_j T <= dev_j and the mirror row
        a_ub += [sp.hstack([per_t, -eye, -share]), sp.hstack([-per_t, -eye, share])]
        b_ub += [-base, base]
        a_eq = sp.vstack([a_eq, sp.hstack([sp.csr_matrix(obj[None, :]), sp.csr_matrix((1, k)),
                                           [[-1.0]]])])  # fmt: skip
        b_eq = np.append(b_eq, -base.sum())
        obj = np.concatenate([obj, np.full(k, travel.mu), [0.0]])
        bounds = [(0, 1)] * ncol + [(0, None)] * (k + 1)
    res = linprog(obj, A_ub=sp.vstack(a_ub).tocsc(), b_ub=np.concatenate(b_ub),
                  A_eq=sp.csr_matrix(a_eq).tocsc(), b_eq=b_eq, bounds=bounds,
                  method="highs-ds", options=_time_option(end))  # fmt: skip
    if res.status != 0:
        return None
    return rows, cols, res.x[:ncol], float(res.fun)


def _round(c, values, lo, hi, cur, budget, cand, rows, cols, x, *, end: float = math.inf):
    """Keep the LP's integral choices; a small MILP places the fractional accounts."""
    n, k = c.shape
    lp_plan = np.full(n, -1)
    one = x >= 1 - 1e-6
    lp_plan[rows[one]] = cols[one]
    frac = np.flatnonzero(lp_plan < 0)
    if len(frac) == 0:
        return lp_plan if _feasible(values, lp_plan, lo, hi, cur, budget, k) else None
    return _milp_open(c, values, lo, hi, cur, budget, cand, lp_plan, frac, end=end)


def _time_option(end: float) -> dict:
    """HiGHS's ``time_limit`` option for the time left before ``end`` (none when unbounded)."""
    return {} if not math.isfinite(end) else {"time_limit": max(end - time.perf_counter(), 0.1)}


def _milp_open(c, values, lo, hi, cur, budget, cand, start, open_idx, *, end: float = math.inf):
    """MILP over the open accounts (their candidates) with every other account at ``start``."""
    k = c.shape[1]
    out = start.copy()
    closed = np.ones(len(start), bool)
    closed[open_idx] = False
    lo_r = lo - totals(values[closed], out[closed], k)
    hi_r = hi - totals(values[closed], out[closed], k)
    r2, c2 = np.nonzero(cand[open_idx])
    pc = pair_constraints(values[open_idx], r2, c2, n_rows=len(open_idx), k=k,
                          current=cur[open_idx] if budget is not None else None)  # fmt: skip
    a_eq, a_bal = pc.assign, pc.balance
    cons = [LinearConstraint(a_eq, 1, 1), LinearConstraint(a_bal, lo_r.ravel(), hi_r.ravel())]
    if budget is not None:
        has = cur >= 0
        moved_closed = int((has & closed & (out != cur)).sum())
        cons.append(LinearConstraint(pc.stay[None, :],
                                     int(has[open_idx].sum()) - (budget - moved_closed),
                                     np.inf))  # fmt: skip
    logger.debug("rounding MILP: %d open accounts, %d pairs", len(open_idx), len(r2))
    res = milp(
        c[open_idx][r2, c2],
        constraints=cons,
        integrality=np.ones(len(r2)),
        bounds=(0, 1),
        options={**_ROUNDING_MILP, **_time_option(end)},
    )
    if res.x is None:
        return None
    pick = res.x > 0.5
    out[open_idx[r2[pick]]] = c2[pick]
    return out if _feasible(values, out, lo, hi, cur, budget, k) else None


def _feasible(values, assign, lo, hi, cur, budget, k) -> bool:
    if (assign < 0).any():
        return False
    load = totals(values, assign, k)
    eps = 1e-9 * (1 + np.abs(hi))
    if (load > hi + eps).any() or (load < lo - eps).any():
        return False
    if budget is not None:
        has = cur >= 0
        return int((assign[has] != cur[has]).sum()) <= budget
    return True


class _TravelTerm:
    """The travel-balance penalty, kept up to date while the local search moves accounts.

    F = mu x sum_j |travel_j - share_j x T| with T the total travel; ``base`` is the travel of
    accounts outside the search (locked ones).
    """

    def __init__(self, share: np.ndarray, mu: float, base: np.ndarray) -> None:
        self.share, self.mu, self.base = share, mu, base
        self.travel = base.copy()

    def start(self, c: np.ndarray, a: np.ndarray) -> None:
        self.travel = self.base + np.bincount(a, weights=c[np.arange(len(a)), a],
                                              minlength=len(self.share))  # fmt: skip

    def value(self, travel: np.ndarray) -> float:
        return float(self.mu * np.abs(travel - self.share * travel.sum()).sum())

    def estimate(self, c: np.ndarray, a: np.ndarray) -> np.ndarray:
        """(n, k) change of F if each account moved to each territory (total held fixed)."""
        dev = self.travel - self.share * self.travel.sum()
        own = c[np.arange(len(a)), a]
        leave = np.abs(dev[a] - own) - np.abs(dev[a])
        join = np.abs(dev[None, :] + c) - np.abs(dev)[None, :]
        return self.mu * (leave[:, None] + join)

    def delta(self, src: int, dst: int, d_src: float, d_dst: float) -> float:
        """Exact change of F when src's travel changes by d_src and dst's by d_dst."""
        new = self.travel.copy()
        new[src] += d_src
        new[dst] += d_dst
        return self.value(new) - self.value(self.travel)

    def swap_estimates(self, src, dst, d_src: np.ndarray, d_dst: np.ndarray) -> np.ndarray:
        """Change of F for several (d_src, d_dst) at once, the targets held fixed."""
        dev = self.travel - self.share * self.travel.sum()
        return self.mu * (np.abs(dev[src] + d_src) - abs(dev[src])
                          + np.abs(dev[dst] + d_dst) - abs(dev[dst]))  # fmt: skip

    def apply(self, src: int, dst: int, d_src: float, d_dst: float) -> None:
        self.travel[src] += d_src
        self.travel[dst] += d_dst


def _local_search(c, values, lo, hi, cur, budget, assign, cand, passes: int = 8,
                  max_trials: int = 60_000, travel: _TravelTerm | None = None, *,
                  end: float = math.inf):  # fmt: skip
    """Improving shifts and swaps between candidate territories that keep every bound.

    The objective is the summed cost, plus the travel-balance penalty when ``travel`` is given
    (every accepted move lowers it exactly). Deterministic: at most ``max_trials`` tried moves
    in all, the most promising first; at ``end`` (``time.perf_counter()``) it keeps the moves
    made so far.
    """
    n, k = c.shape
    a = assign.copy()
    load = totals(values, a, k)
    eps = 1e-9 * (1 + np.abs(hi))
    lo_e, hi_e = lo - eps, hi + eps
    has = cur >= 0 if cur is not None else np.zeros(n, bool)
    moved = int((a[has] != cur[has]).sum()) if budget is not None else 0
    rows = np.arange(n)
    tried = 0
    if travel is not None:
        travel.start(c, a)
    for _ in range(passes):
        improved = False
        gain = np.where(cand, c - c[rows, a][:, None], np.inf)  # < 0: cheaper elsewhere
        if travel is not None:
            gain += travel.estimate(c, a)
        gain[rows, a] = np.inf
        ii, jj = np.nonzero(gain < -1e-12)
        by_terr = np.argsort(a, kind="stable")
        starts = np.searchsorted(a[by_terr], np.arange(k + 1))
        trials = np.argsort(gain[ii, jj], kind="stable")[: max(max_trials - tried, 0)]
        tried += len(trials)
        for step, t in enumerate(trials):
            if step % 512 == 0 and time.perf_counter() >= end:
                logger.info("TIME_LIMIT reached in the local search: the plan keeps its moves so "
                            "far.")  # fmt: skip
                return a
            i, j = int(ii[t]), int(jj[t])
            src = int(a[i])
            d_cost = c[i, j] - c[i, src]
            if src == j or (travel is None and d_cost >= 0):
                continue
            v = values[i]
            dm = 0
            if budget is not None and has[i]:
                dm = int(j != cur[i]) - int(src != cur[i])
            fits = ((load[src] - v >= lo_e[src]).all() and (load[j] + v <= hi_e[j]).all()
                    and moved + dm <= (budget if budget is not None else moved + dm))  # fmt: skip
            if fits and (travel is None
                         or d_cost + travel.delta(src, j, -c[i, src], c[i, j]) < -1e-9):  # fmt: skip
                if travel is not None:
                    travel.apply(src, j, -c[i, src], c[i, j])
                a[i] = j
                load[src] -= v
                load[j] += v
                moved += dm
                improved = True
                continue
            # swap with an account of j that may go to src
            mates = by_terr[starts[j] : starts[j + 1]]
            mates = mates[(a[mates] == j) & cand[mates, src]]
            if len(mates) == 0:
                continue
            d_src = c[mates, src] - c[i, src]  # travel change of src, of j below
            d_dst = c[i, j] - c[mates, j]
            delta = d_src + d_dst
            if travel is not None:
                delta = delta + travel.swap_estimates(src, j, d_src, d_dst)
            vm = values[mates]
            ok = delta < -1e-12
            ok &= ((load[src] - v + vm >= lo_e[src]) & (load[src] - v + vm <= hi_e[src])).all(1)
            ok &= ((load[j] + v - vm >= lo_e[j]) & (load[j] + v - vm <= hi_e[j])).all(1)
            if budget is not None:
                dmm = np.where(has[mates], (src != cur[mates]).astype(int)
                               - (j != cur[mates]).astype(int), 0)  # fmt: skip
                ok &= moved + dm + dmm <= budget
            if not ok.any():
                continue
            best = int(np.flatnonzero(ok)[np.argmin(delta[ok])])
            if travel is not None:
                exact = d_src[best] + d_dst[best] + travel.delta(src, j, d_src[best], d_dst[best])
                if exact >= -1e-9:
                    continue
                travel.apply(src, j, d_src[best], d_dst[best])
            i2 = int(mates[best])
            a[i], a[i2] = j, src
            load[src] += values[i2] - v
            load[j] += v - values[i2]
            if budget is not None:
                moved += dm + int(dmm[best])
            improved = True
        if not improved or tried >= max_trials:
            break
    return a
