"""Exact contiguous models of county-sized plans (:class:`.contiguous_problem.ContiguousProblem`).

:func:`contiguous_cuts` solves the root-free model by separator cuts (Validi and Buchanan's a-b
separators, and size cuts: a group of units too small for a territory is not the whole
territory) in rounds of HiGHS MILPs; its bound holds for the problem as posed.
:mod:`.branch_cut` solves the same model with SCIP in one search tree. :func:`ordered_plan`
re-draws every territory at once (an ordered restriction of the model), and
:func:`improve_by_neighbourhoods` re-solves every border and every 2 to 4 neighbouring
territories exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .adjacency import count_pieces
from .contiguity import make_contiguous
from .contiguous_problem import ContiguousProblem, _stop_at, highs_milp
from .errors import InfeasibleError, InvalidInputError

logger = logging.getLogger(__name__)

ROOT_CUT_SHARE = 0.15  # of contiguous_cuts' time, at most, for the LP rounds of size cuts
CUT_TARGET_GAP = 0.0099  # the cut loop first proves plans this close to optimal (goal: 1 %)
TARGET_ROUND_GAP = 0.05  # ... in rounds whose MIP may stop this far from its own optimum,
LOOSE_WITHIN = 0.05  # ... once the bound is this close to the best plan,
LOOSE_ROUNDS = 4  # ... at most this many in a row (then an exact one raises the bound)
BORDER_SOLVE_S = 15.0  # the neighbourhood of every border at once gets at most this long,
BORDER_SHARE = 0.3  # ... and at most this share of the time the neighbourhoods have left


def ordered_plan(
    problem: ContiguousProblem,
    *,
    start: np.ndarray | None = None,
    time_limit_s: float = 20.0,
    stop: Callable[[], bool] | None = None,
) -> np.ndarray | None:
    """A plan in one piece per territory from an ordered restriction of the contiguous model
    (HiGHS MILP over all territories at once), or None when it finds none in ``time_limit_s``.

    Each territory has a root, its cheapest unit; every other unit in it has a neighbour in it
    that is cheaper for the territory (cost as the order: the distance to the rep's home).
    Following cheaper neighbours from any unit ends at the root, so each territory is one piece
    (the shortest-path ordering of Validi, Buchanan and Lykhovyd's districting models, with a
    free root). It leaves out some plans in one piece, so its bound is no bound of the problem,
    but it re-draws every territory at once: where re-solving a few neighbouring territories at
    a time is stuck it finds other shapes. ``start`` (a plan in one piece meeting every hard
    constraint) is its first plan when it has the ordered form, so the plan returned is then no
    worse than ``start``.
    """
    cost, allowed, mat = problem.cost, problem.allowed, problem.adjacency
    n, k = cost.shape
    if problem.stranded or not allowed.any(0).all():
        return None
    pr, pc, pid = problem.pairs
    p = len(pr)
    rank = np.empty((n, k), int)  # a unit's place in its territory's order (cost, then index)
    for t in range(k):
        rank[np.lexsort((np.arange(n), cost[:, t])), t] = np.arange(n)
    blocks, lbs, ubs = problem.rows(2 * p)
    x_, r_ = np.arange(p), p + np.arange(p)

    def rows_of(r, c, d, low, high) -> None:
        blocks.append(sp.csr_matrix((np.asarray(d, float), (r, c)), shape=(len(low), 2 * p)))
        lbs.append(np.asarray(low, float))
        ubs.append(np.asarray(high, float))

    at_most_0 = (np.full(p, -np.inf), np.zeros(p))
    rows_of(pc, r_, np.ones(p), np.ones(k), np.ones(k))  # one root per territory
    rows_of(np.r_[x_, x_], np.r_[r_, x_], np.r_[np.ones(p), -np.ones(p)],
            *at_most_0)  # a root is in its territory  # fmt: skip
    coo = mat.tocoo()
    er, ec, ed = [x_, x_], [x_, r_], [np.ones(p), -np.ones(p)]  # a cheaper neighbour, or root
    for t in range(k):
        a, b = coo.row, coo.col
        keep = (pid[a, t] >= 0) & (pid[b, t] >= 0) & (rank[b, t] < rank[a, t])
        er.append(pid[a[keep], t])
        ec.append(pid[b[keep], t])
        ed.append(-np.ones(int(keep.sum())))
    rows_of(np.concatenate(er), np.concatenate(ec), np.concatenate(ed), *at_most_0)
    er, ec, ed = [], [], []  # the root is the territory's cheapest unit: x_it <= roots to i
    for t in range(k):
        units = np.flatnonzero(allowed[:, t])
        units = units[np.argsort(rank[units, t])]
        below, upto = np.tril_indices(len(units))
        er += [pid[units, t], pid[units[below], t]]
        ec += [pid[units, t], p + pid[units[upto], t]]
        ed += [np.ones(len(units)), -np.ones(len(below))]
    rows_of(np.concatenate(er), np.concatenate(ec), np.concatenate(ed), *at_most_0)
    a_mat = sp.vstack(blocks).tocsr()
    x0 = None if start is None else _ordered_start(np.asarray(start, int), rank, pid, mat, k)
    out = highs_milp(np.r_[cost[pr, pc], np.zeros(p)], np.ones(2 * p), np.zeros(2 * p),
                 np.ones(2 * p), a_mat, np.concatenate(lbs), np.concatenate(ubs), x0,
                 time_limit_s, stop)  # fmt: skip
    if out is None or out[0] is None:
        return None
    pick = out[0][:p] > 0.5
    assign = np.full(n, -1)
    assign[pr[pick]] = pc[pick]
    if (assign < 0).any() or not (count_pieces(assign, mat, k) == 1).all():
        return None
    return assign


def _ordered_start(start, rank, pid, mat: sp.csr_matrix, k: int) -> np.ndarray | None:
    """``start`` as values of :func:`ordered_plan`'s variables (units, then roots), or None
    when some unit of it has no cheaper neighbour in its territory and is not its root."""
    n = len(start)
    if (start < 0).any() or (pid[np.arange(n), start] < 0).any():
        return None
    p = int(pid.max()) + 1
    x0 = np.zeros(2 * p)
    x0[pid[np.arange(n), start]] = 1.0
    for t in range(k):
        members = np.flatnonzero(start == t)
        if not len(members):
            return None
        root = members[np.argmin(rank[members, t])]
        x0[p + pid[root, t]] = 1.0
        for i in members:
            nbrs = mat.indices[mat.indptr[i] : mat.indptr[i + 1]]
            if i != root and not ((start[nbrs] == t) & (rank[nbrs, t] < rank[i, t])).any():
                return None
    return x0


def _root_size_cuts(h, sizes: _SizeCuts, p: int, pr, pc, n: int, k: int,
                    until: float) -> tuple[int, float]:  # fmt: skip
    """Size cuts for every unit alone, then rounds of the LP relaxation of ``h``
    (``solve_relaxation``), each adding the size cuts its fractional plan violates, until none
    is or ``until`` (``time.perf_counter()``); the cuts slack at the last LP are then taken out
    again (and may come back from a plan's pieces): they slow every MILP round and bind little.
    Returns how many cuts stay and the last LP solved to optimality's value (a bound of the
    problem: the relaxation of a relaxation; -inf when none was)."""
    import highspy

    first = h.getNumRow()
    added = sizes.singletons()
    _add_cut_rows(h, added)
    bound, x = -np.inf, None
    h.setOptionValue("solve_relaxation", True)
    try:
        while time.perf_counter() < until:
            h.setOptionValue("time_limit", max(until - time.perf_counter(), 0.01))
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                break
            bound = float(h.getInfo().objective_function_value)
            x = np.asarray(h.getSolution().col_value)[:p]
            frac = np.zeros((n, k))
            frac[pr, pc] = x
            new = sizes.from_fractional(frac)
            if not new:
                break
            _add_cut_rows(h, new)
            added += new
    finally:
        h.setOptionValue("solve_relaxation", False)
    if x is None:
        return len(added), bound
    slack = np.array([float(coef @ x[cols]) < -1e-7 for _, cols, coef in added], bool)
    drop = np.flatnonzero(slack)
    if len(drop):
        h.deleteRows(len(drop), (drop + first).astype(np.int32))
        for q in drop:
            sizes.seen.discard(added[q][0])
    return len(added) - len(drop), bound


@dataclass
class CutPlan:
    """A result of :func:`contiguous_cuts`: a proven lower bound of the contiguous problem, the
    best plan in one piece per territory it knows (or None), and whether that plan is optimal."""

    bound: float
    assign: np.ndarray | None
    objective: float
    optimal: bool
    rounds: int
    cuts: int
    closed: bool = False  # the last round's plan is in one piece each, within ``gap``
    solver: str = "HiGHS"  # what found the bound: HiGHS rounds or SCIP's branch-and-cut


def contiguous_cuts(
    problem: ContiguousProblem,
    *,
    start: np.ndarray | None = None,
    time_limit_s: float = 60.0,
    repair_s: float = 1.0,
    gap: float = 1e-6,
    incumbents: bool = False,
    stop: Callable[[], bool] | None = None,
    target_gap: float | None = None,
    incumbent: Callable[[], np.ndarray | None] | None = None,
) -> CutPlan | None:
    """Root-free exact contiguous model by separator cuts (HiGHS through ``highspy``).

    Solves the assignment MILP (one territory per unit, balance bands, moves budget), then, for
    each territory in more than one piece, adds for every two pieces S, T (a in S, b in T) and
    every territory t the cut x_at + x_bt - sum over a minimal a-b separator C of x_ct <= 1
    (a territory holding a and b in one piece holds a unit of C), and solves again (Validi and
    Buchanan's a-b separator formulation, as a cut loop). Size cuts (:class:`_SizeCuts`: a set
    too small for a territory's lower band is not the whole territory) are added for every unit
    alone, for the LP relaxation's fractional plans first (up to ``ROOT_CUT_SHARE`` of the time)
    and for every too-small piece of a round's plans. Each round is a relaxation of the
    problem as posed (no roots), so its proven bound holds; a round whose plan is in one piece
    per territory is optimal (within ``gap``, each round's relative MILP gap). ``start`` (a plan
    in one piece per territory) is each round's first incumbent; each round's plan in pieces is
    made one piece each (:func:`make_contiguous`, up to ``repair_s``) for a better one; with
    ``incumbents`` the round's improving plans in pieces give cuts too; ``stop()`` ends the
    loop early (e.g. the same model proved optimal elsewhere). With ``target_gap``, each round
    is cut off at the best plan's cost less that share (HiGHS ``objective_bound``): a round with
    no plan below it proves the plan within ``target_gap`` of optimal (the bound is the cut-off,
    reached long before the rounds' own bounds get there), and the next target is half as far;
    rounds with a plan below it go on as before; once the bound is within ``LOOSE_WITHIN`` of
    the plan, such rounds stop at a ``TARGET_ROUND_GAP`` MIP gap (they only need to give cuts;
    one stopped by that gap above the cut-off proves nothing and is re-run exactly; after
    ``LOOSE_ROUNDS`` of them in a row an exact round raises the bound).
    ``incumbent()``, asked before each round and every half second during one, may give a better
    plan found elsewhere (kept when it is in one piece per territory and meets the bands, locks,
    allowed pairs and budget), which lowers the cut-off and ends a round whose cut-off it is
    below. Returns None when ``highspy`` is not installed.
    """
    try:
        import highspy
    except ImportError:
        return None
    t0 = time.perf_counter()
    cost, mat = problem.cost, problem.adjacency
    n, k = cost.shape
    if problem.stranded:
        return CutPlan(np.inf, None, np.inf, False, 0, 0)
    pr, pc, pid = problem.pairs
    p = len(pr)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(gap))
    h.addVars(p, np.zeros(p), np.ones(p))
    idx = np.arange(p, dtype=np.int32)
    h.changeColsCost(p, idx, cost[pr, pc])
    h.changeColsIntegrality(p, idx, np.full(p, int(highspy.HighsVarType.kInteger), np.uint8))
    blocks, rlo, rhi = problem.rows()
    a_mat = sp.vstack(blocks).tocsr()
    h.addRows(a_mat.shape[0], np.concatenate(rlo), np.concatenate(rhi), a_mat.nnz,
              a_mat.indptr.astype(np.int32), a_mat.indices.astype(np.int32), a_mat.data)  # fmt: skip
    best, best_obj = None, np.inf
    if start is not None:
        start = np.asarray(start, int)
        if (
            (start >= 0).all()
            and (pid[np.arange(n), start] >= 0).all()
            and (count_pieces(start, mat, k) == 1).all()
        ):
            best, best_obj = start.copy(), problem.objective(start)
    sizes = _SizeCuts(problem)
    cuts, bound = _root_size_cuts(h, sizes, p, pr, pc, n, k, t0 + ROOT_CUT_SHARE * time_limit_s)
    rounds, seen, closed = 0, set(), False
    found: list = []
    if incumbents:
        h.cbMipImprovingSolution += lambda e: found.append(np.array(e.data_out.mip_solution))
    target, cutoff, tight_next, loose_run = target_gap, np.inf, False, 0
    offer = {"plan": None, "cut": False, "below": np.inf}  # a plan offered during a round

    def stop_or_offer() -> bool:  # asked every half second in a round: a plan offered below
        if stop is not None and stop():  # the round's cut-off leaves it nothing to prove
            return True
        got = incumbent()
        if got is not None:
            offer["plan"] = got
            if problem.plan_cost(got) < offer["below"]:
                offer["cut"] = True
        return offer["cut"]

    _stop_at(h, t0 + time_limit_s, stop if incumbent is None else stop_or_offer)
    while True:
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0.05 or (stop is not None and stop()):
            break
        offered = None if incumbent is None else incumbent()
        offered = offer["plan"] if offered is None else offered
        offer["plan"] = None
        o_obj = problem.plan_cost(offered)
        if _cheaper(o_obj, best_obj):
            best, best_obj = np.asarray(offered, int).copy(), o_obj
        if bound >= best_obj - 1e-9 * max(abs(best_obj), 1.0):
            break
        cutoff = np.inf
        if target is not None and np.isfinite(best_obj) and best_obj > 0:
            cutoff = best_obj * (1.0 - target)
        h.setOptionValue("objective_bound", float(cutoff))
        # a target round near its target needs no exact optimum to give cuts (far from it, the
        # exact optimum of each round is what raises the bound)
        near = bound >= best_obj * (1.0 - LOOSE_WITHIN)
        loose = np.isfinite(cutoff) and not tight_next and near and loose_run < LOOSE_ROUNDS
        loose_run = loose_run + 1 if loose else 0
        h.setOptionValue("mip_rel_gap", float(max(TARGET_ROUND_GAP, gap) if loose else gap))
        h.setOptionValue("time_limit", float(left))
        if best is not None:
            x0 = np.zeros(p)
            x0[pid[np.arange(n), best]] = 1.0
            sol = highspy.HighsSolution()
            sol.col_value = list(x0)
            h.setSolution(sol)
        found.clear()
        offer["below"] = cutoff if np.isfinite(cutoff) else -np.inf  # only a target round
        h.run()
        rounds += 1
        if offer["cut"]:  # a cheaper plan came: its cut-off makes a new round
            offer["cut"] = False
            logger.debug("separator cuts: round %d cut short by an offered plan", rounds)
            continue
        status = h.getModelStatus()
        info = h.getInfo()
        done = status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible)
        plan_at = info.objective_function_value if info.primal_solution_status == 2 else np.inf
        searched = plan_at == np.inf or info.mip_gap <= gap or info.mip_dual_bound >= cutoff
        if np.isfinite(cutoff) and done and plan_at >= cutoff:
            if searched:  # no plan below the cut-off: proven within the target
                bound = max(bound, cutoff * (1.0 - gap))
                logger.debug("separator cuts: round %d at %.1f s proves %.3f (target %.2f %%)",
                             rounds, time.perf_counter() - t0, bound, 100 * target)  # fmt: skip
                target = target / 2.0 if target > 1e-4 else None
            tight_next = not searched  # ended by the loose gap above the cut-off: proves nothing
            continue
        tight_next = False
        if status == highspy.HighsModelStatus.kInfeasible:
            return CutPlan(np.inf, None, np.inf, False, rounds, cuts)
        if np.isfinite(info.mip_dual_bound):
            bound = max(bound, min(float(info.mip_dual_bound), cutoff))
        if info.primal_solution_status != 2:
            break
        final = np.asarray(h.getSolution().col_value)
        new: list = []
        last_new, size_added = True, 0
        for x in [*found, final]:
            assign = np.full(n, -1)
            pick = x[:p] > 0.5
            assign[pr[pick]] = pc[pick]
            if (assign < 0).any():
                continue
            apart = _pieces_apart(assign, mat, k)  # for both kinds of cuts
            sep = _separator_cuts(apart, mat)
            new.extend(sep)
            last_new = bool(sep)
            size_added += _add_cut_rows(h, sizes.from_plan(assign, apart))
            obj = problem.objective(assign)
            if not sep and (count_pieces(assign, mat, k) == 1).all() and obj < best_obj:
                best, best_obj = assign, obj
        logger.debug("separator cuts: round %d at %.1f s, bound %.3f, best %.3f, %d separators",
                     rounds, time.perf_counter() - t0, bound, best_obj, len(new))  # fmt: skip
        if not last_new:
            closed = status == highspy.HighsModelStatus.kOptimal and info.mip_gap <= gap
            if closed or not loose or status != highspy.HighsModelStatus.kOptimal:
                break
            continue  # a better plan in one piece: the next round is cut off below it
        if status != highspy.HighsModelStatus.kOptimal:
            break  # stopped at the time limit on a plan in pieces
        rest = time_limit_s - (time.perf_counter() - t0)  # the round may have used it all
        if repair_s > 0 and rest > 0.1:
            repaired = _repair(assign, problem, time.perf_counter() + min(repair_s, rest / 4))
            if repaired is not None:
                r_obj = problem.objective(repaired)
                if _cheaper(r_obj, best_obj):
                    best, best_obj = repaired, r_obj
        added = 0
        for a, b, sep in new:
            key = (a, b, tuple(sep))
            if key in seen:
                continue
            seen.add(key)
            for cols, coef in _separator_rows(a, b, sep, pid):
                h.addRow(-np.inf, 1.0, len(cols), cols, coef)
                added += 1
        cuts += added + size_added
        if added + size_added == 0:
            break  # pragma: no cover - a cut is always new for a plan in pieces
        if bound >= best_obj - 1e-9 * max(abs(best_obj), 1.0):
            break
    if best is not None:
        bound = min(bound, best_obj)
    optimal = best is not None and bound >= best_obj - 1e-6 * max(abs(best_obj), 1.0)
    return CutPlan(
        float(bound), best, float(best_obj), bool(optimal), rounds, cuts, bool(closed or optimal)
    )


def improve_by_neighbourhoods(
    problem: ContiguousProblem,
    *,
    start: np.ndarray,
    deadline: float,
    sizes: Sequence[int] = (2, 3, 4),
    solve_s: float = 5.0,
    on_better: Callable[[np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """A plan in one piece per territory improved by re-solving neighbourhoods exactly.

    Large-neighbourhood search: for every set of 2, then 3, then 4 neighbouring territories,
    their units are re-assigned among them by the exact contiguous model
    (:func:`contiguous_cuts` on those units alone; every other territory fixed, its bands and
    the moves budget left to them), and a better plan is kept. Each pass starts by giving the
    territories, as they are, to the centres in the cheapest way (:func:`_relabel`: a rep far
    from its territory can trade places with one that is not its neighbour). Passes repeat while
    one improves a plan, a set unchanged since it last failed is skipped. Before them, every
    border at once (:func:`_resolve_borders`: each unit may stay or join a neighbouring unit's
    territory, all territories together), which finds chains of moves through more than 4
    territories; when the passes improve the plan, the borders go again. Stops at ``deadline``
    (``time.perf_counter()``). ``start`` must be in one piece per territory and meet every
    hard constraint; so does the plan returned (``start`` itself when nothing improves).
    ``on_better(plan)`` is told of every better plan as soon as it is found (e.g. to cut off a
    bound search running beside); ``stop()`` ends the search early (e.g. that search proved a
    plan optimal), asked between re-solves and by the whole-border one.
    """
    tell = on_better if on_better is not None else (lambda plan: None)
    k = problem.cost.shape[1]
    a = np.asarray(start, int).copy()
    coo = problem.adjacency.tocoo()
    failed: set = set()
    again = True

    def going() -> bool:
        return time.perf_counter() < deadline and not (stop is not None and stop())

    while again and going():
        again = False
        if k > max(sizes, default=0) and ("borders", a.tobytes()) not in failed:
            better = _resolve_borders(a, problem, min(
                BORDER_SOLVE_S, BORDER_SHARE * (deadline - time.perf_counter())), stop)  # fmt: skip
            if better is None:
                failed.add(("borders", a.tobytes()))
            else:
                a = better
                tell(a.copy())
        for size in sizes:
            if size > k:
                break
            improved = True
            while improved and going():
                improved = False
                relabelled = _relabel(a, problem)
                if relabelled is not None:
                    a = relabelled
                    tell(a.copy())
                for group in _territory_groups(a, coo, k, size):
                    if not going():
                        break
                    rows = np.flatnonzero(np.isin(a, group))
                    key = (group, rows.tobytes())
                    if key in failed:
                        continue
                    better = _resolve_group(
                        a,
                        rows,
                        np.array(group),
                        problem,
                        min(solve_s, deadline - time.perf_counter()),
                    )
                    if better is None:
                        failed.add(key)
                        continue
                    a[rows] = better
                    improved = again = True
                    tell(a.copy())
    return a


def _territory_groups(a: np.ndarray, coo: sp.coo_matrix, k: int, size: int) -> list:
    """Every set of ``size`` territories that is connected through shared unit boundaries."""
    touch = np.zeros((k, k), bool)
    touch[a[coo.row], a[coo.col]] = True
    np.fill_diagonal(touch, False)
    groups = {(j,) for j in range(k)}
    for _ in range(size - 1):
        groups = {tuple(sorted({*g, int(u)})) for g in groups
                  for u in np.flatnonzero(touch[list(g)].any(0)) if u not in g}  # fmt: skip
    return sorted(groups)


def _relabel(a: np.ndarray, problem: ContiguousProblem) -> np.ndarray | None:
    """The same pieces given to the centres in the cheapest way (an assignment problem of
    territories to centres, each within the centre's bands, allowed pairs and locks; the moves
    budget kept), or None when no other labelling is cheaper."""
    from scipy.optimize import linear_sum_assignment

    cost, vals, lo, hi, allowed = (
        problem.cost,
        problem.values,
        problem.lo,
        problem.hi,
        problem.allowed,
    )
    cur, budget, k = problem.current, problem.budget, problem.cost.shape[1]
    onehot = np.zeros((len(a), k))
    onehot[np.arange(len(a)), a] = 1.0
    price = onehot.T @ cost  # [piece, centre]: the piece's cost for that centre
    load = onehot.T @ vals  # [piece, measure]
    fits = ((load[:, None, :] >= lo[None] - 1e-9 * (1 + np.abs(lo[None])))
            & (load[:, None, :] <= hi[None] + 1e-9 * (1 + np.abs(hi[None])))).all(2)  # fmt: skip
    fits &= (onehot.T @ ~allowed) == 0  # every unit of the piece allowed (locks included)
    big = 1e6 * (1.0 + float(np.abs(price[fits]).sum()))
    piece, centre = linear_sum_assignment(np.where(fits, price, big))
    perm = np.empty(k, int)
    perm[piece] = centre
    new = perm[a]
    if not fits[piece, centre].all() or price[piece, centre].sum() >= (
        price[np.arange(k), np.arange(k)].sum() * (1 - 1e-12)
    ):
        return None
    if cur is not None and ((cur >= 0) & (new != cur)).sum() > budget:
        return None
    return new


def _resolve_borders(a: np.ndarray, problem: ContiguousProblem, seconds: float,
                     stop=None) -> np.ndarray | None:  # fmt: skip
    """Every territory at once, each unit staying or joining the territory of one of its
    neighbouring units, by :func:`contiguous_cuts` (the bands, locks and moves budget of the
    whole model): the new plan when strictly cheaper, else None; ``stop()`` ends it early."""
    if seconds <= 0.5:
        return None
    n, k = problem.cost.shape
    own = np.zeros((n, k), bool)
    own[np.arange(n), a] = True
    near = problem.allowed & (own | (problem.adjacency @ own.astype(np.int32) > 0))
    before = problem.objective(a)
    t0 = time.perf_counter()
    res = contiguous_cuts(replace(problem, allowed=near), start=a, time_limit_s=seconds,
                          repair_s=0.0, stop=stop)  # fmt: skip
    logger.debug("Every border at once: %.3f -> %s in %.1f s (of %.1f; %d pairs).", before,
                 None if res is None else f"{res.objective:.3f}", time.perf_counter() - t0,
                 seconds, int(near.sum()))  # fmt: skip
    if res is None or res.assign is None or res.objective >= before - 1e-7 * max(before, 1.0):
        return None
    return np.asarray(res.assign, int)


def _resolve_group(a: np.ndarray, rows: np.ndarray, group: np.ndarray, problem: ContiguousProblem,
                   seconds: float) -> np.ndarray | None:  # fmt: skip
    """The territories of ``group`` re-made from their ``rows`` by :func:`contiguous_cuts`: the
    rows' new territories when strictly cheaper, else None."""
    if seconds <= 0.05:
        return None
    sub = problem.restricted(rows, group, a)
    col = np.full(problem.cost.shape[1], -1)
    col[group] = np.arange(len(group))
    start = col[a[rows]]
    before = sub.objective(start)
    res = contiguous_cuts(sub, start=start, time_limit_s=seconds, repair_s=0.0)
    if res is None or res.assign is None or res.objective >= before - 1e-7 * max(before, 1.0):
        return None
    return group[res.assign]


def _repair(assign: np.ndarray, problem: ContiguousProblem, deadline: float) -> np.ndarray | None:
    """:func:`make_contiguous` of a plan in pieces, or None when it finds no plan in time."""
    p = problem
    try:
        out = make_contiguous(assign, adjacency=p.adjacency, cost=p.cost, values=p.values,
                              lo=p.lo, hi=p.hi, locks=p.locks, allowed=p.allowed,
                              current=p.current, budget=p.budget, deadline=deadline,
                              strict_deadline=True)  # fmt: skip
    except (InfeasibleError, InvalidInputError):
        return None
    return out if (count_pieces(out, p.adjacency, p.cost.shape[1]) == 1).all() else None


class _SizeCuts:
    """Population cuts of the root-free contiguous model: a connected set C of units whose
    measures stay below territory t's lower band cannot be all of t, so a territory holding a
    unit a of C holds a unit next to C: x_at <= sum over the neighbours N(C) of x_st. Valid for
    every plan in one piece per territory within its bands (no roots, no a-b pair needed), they
    cut pieces too small to be a territory and, unlike the a-b separators, also fractional
    plans (the LP relaxation's), so the rounds start from a stronger model. Each set and
    territory is added once."""

    def __init__(self, problem: ContiguousProblem):
        self.mat, self.vals, self.lo = problem.adjacency, problem.values, problem.lo
        self.pid = problem.pairs[2]
        self.under = self.lo - 1e-9 * np.maximum(np.abs(self.lo), 1.0)  # below this: below the band
        self.seen: set = set()

    def small(self, total: np.ndarray, t: int) -> bool:
        """Whether measures ``total`` stay below territory ``t``'s lower band in some measure."""
        return bool((total < self.under[t]).any())

    def rows(self, members: np.ndarray, t: int, units: np.ndarray | None = None) -> list:
        """The cuts (key, columns, coefficients) of set ``members`` for territory ``t`` and each
        of ``units`` (default all members); none when seen before or not small."""
        members = np.unique(np.asarray(members, int))
        key = (members.tobytes(), t)
        if key in self.seen or not self.small(self.vals[members].sum(0), t):
            return []
        self.seen.add(key)
        nbr = np.setdiff1d(np.unique(self.mat[members].indices), members)
        out_cols = self.pid[nbr, t]
        out_cols = out_cols[out_cols >= 0]
        cuts = []
        for a in members if units is None else units:
            col = self.pid[a, t]
            if col >= 0:
                cuts.append((key, np.concatenate([[col], out_cols]).astype(np.int32),
                             np.concatenate([[1.0], -np.ones(len(out_cols))])))  # fmt: skip
        return cuts

    def singletons(self) -> list:
        """Every unit alone, for every territory whose band it cannot fill."""
        return [c for a in range(len(self.vals)) for t in range(self.pid.shape[1])
                for c in self.rows(np.array([a]), t)]  # fmt: skip

    def from_plan(self, assign: np.ndarray, pieces: list | None = None) -> list:
        """The cuts of every piece of every territory in pieces, for every territory it is too
        small for (``pieces``: :func:`_pieces_apart` of the plan, when already known)."""
        if pieces is None:
            pieces = _pieces_apart(assign, self.mat, self.pid.shape[1])
        return [c for comps in pieces for piece in comps for t in range(self.pid.shape[1])
                for c in self.rows(piece, t)]  # fmt: skip

    def from_fractional(self, x: np.ndarray, *, least: float = 0.02) -> list:
        """Cuts violated by the fractional plan ``x`` ((n, k), 0 where no pair): for each unit
        a and territory t with x_at above ``least``, C grows from a by the neighbour t holds
        most of while C is too small for t; the first C whose neighbours hold less of t than
        a does gives a cut (for a alone)."""
        out = []
        indptr, indices = self.mat.indptr.tolist(), self.mat.indices.tolist()
        vals = self.vals.tolist()  # plain floats: this loop runs in every separation round
        under = self.under.tolist()
        dims = range(self.vals.shape[1])
        for t in range(x.shape[1]):
            xs = x[:, t].tolist()
            floor = under[t]
            for a in np.flatnonzero(x[:, t] > least).tolist():
                inside = {a}
                total = list(vals[a])
                border = {s: xs[s] for s in indices[indptr[a] : indptr[a + 1]]}
                while border and any(total[d] < floor[d] for d in dims):
                    if sum(border.values()) < xs[a] - 1e-4:
                        out.extend(self.rows(np.fromiter(inside, int), t, units=[a]))
                        break
                    b = max(border, key=border.get)
                    del border[b]
                    inside.add(b)
                    total = [u + w for u, w in zip(total, vals[b])]
                    for s in indices[indptr[b] : indptr[b + 1]]:
                        if s not in inside:
                            border[s] = xs[s]
        return out


def _cheaper(obj: float, best_obj: float) -> bool:
    """Whether a plan of objective ``obj`` (inf: none) beats ``best_obj`` (inf: no plan yet) by
    more than rounding."""
    if not np.isfinite(obj):
        return False
    return not np.isfinite(best_obj) or obj < best_obj - 1e-9 * max(abs(best_obj), 1.0)


def _add_cut_rows(h, cuts: list) -> int:
    """Add size cuts (key, columns, coefficients) as rows ``<= 0`` of highspy model ``h``."""
    for _, cols, coef in cuts:
        h.addRow(-np.inf, 0.0, len(cols), cols, coef)
    return len(cuts)


def _pieces_apart(assign: np.ndarray, mat: sp.csr_matrix, k: int) -> list:
    """The pieces (arrays of units) of each territory of ``assign`` in more than one piece."""
    out = []
    for j in range(k):
        members = np.flatnonzero(assign == j)
        if len(members) < 2:
            continue
        ncomp, lab = connected_components(mat[members][:, members], directed=False)
        if ncomp > 1:
            out.append([members[lab == c] for c in range(ncomp)])
    return out


def _separator_rows(a: int, b: int, sep: list, pid: np.ndarray) -> list:
    """The rows (columns, coefficients) of the cut x_at + x_bt - sum over ``sep`` of x_ct <= 1
    for every territory t where a and b may go (pairs not allowed left out)."""
    rows = []
    for t in range(pid.shape[1]):
        if pid[a, t] < 0 or pid[b, t] < 0:
            continue
        cols = [pid[a, t], pid[b, t]] + [pid[c, t] for c in sep]
        coef = [1.0, 1.0] + [-1.0] * len(sep)
        keep = [q for q, c in enumerate(cols) if c >= 0]
        rows.append((np.array([cols[q] for q in keep], np.int32),
                     np.array([coef[q] for q in keep])))  # fmt: skip
    return rows


def _separator_cuts(pieces: list, mat: sp.csr_matrix, per_side: int = 6) -> list:
    """(a, b, minimal a-b separator) for every two pieces S, T of every territory in pieces
    (``pieces``: :func:`_pieces_apart` of the plan): the separator N(S) cut down to the units
    touching b's side, for up to ``per_side`` units a of S and b of T (each the same separator,
    a different cut)."""
    out = []
    n = mat.shape[0]
    for comps in pieces:
        for s_i, s in enumerate(comps):
            in_s = np.zeros(n, bool)
            in_s[s] = True
            nbr = np.zeros(n, bool)
            nbr[mat[s].indices] = True
            nbr &= ~in_s
            keep = ~(nbr | in_s)
            kept = np.flatnonzero(keep)
            _, lab2 = connected_components(mat[keep][:, keep], directed=False)
            for t_i, t in enumerate(comps):
                if t_i == s_i:
                    continue
                side = lab2[np.searchsorted(kept, t[0])]
                reach = kept[lab2 == side]
                touch = np.zeros(n, bool)
                touch[mat[reach].indices] = True
                sep = np.flatnonzero(touch & nbr).tolist()
                for a in s[:per_side].tolist():
                    for b in t[:per_side].tolist():
                        out.append((a, b, sep))
    return out
