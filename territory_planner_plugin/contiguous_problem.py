"""The contiguous problem as the exact models take it, and the rooted flow model.

:class:`ContiguousProblem` holds a territory model's arrays once, normalised (costs, measures,
bands, adjacency, locks, allowed pairs, today's plan with the moves budget), with the rows every
exact model shares (from :func:`.constraints.pair_constraints`) and the check of a plan against
every rule. :func:`highs_milp` is the engine's one MILP call through highspy.
:func:`contiguous_exact` is the exact model with a root per territory (single-commodity flow,
Shirabe 2005): the reference on small cases, the repairs' fallback and, when no plan in one piece
is known, the path of :meth:`.model.TerritoryModel.solve` for county-sized models.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .adjacency import _binary, _matrix, count_pieces
from .assignment import totals
from .constraints import pair_constraints

logger = logging.getLogger(__name__)


@dataclass
class ExactPlan:
    """A plan of :func:`contiguous_exact`: assignment, objective, the solver's proven bound of the
    rooted model, and whether it proved the plan optimal."""

    assign: np.ndarray
    objective: float
    bound: float
    optimal: bool


@dataclass(frozen=True, eq=False)
class ContiguousProblem:
    """What every exact contiguous model here solves, normalised once (:meth:`of`): the units'
    cost for each territory, their measures and the territories' bands, which units touch, the
    locks, the allowed pairs (a locked unit allowed in its lock's territory only) and the moves
    budget with today's plan (both None unless both are given). A :class:`.model.TerritoryModel`
    builds it (:meth:`.model.TerritoryModel.contiguous_problem`) for the solvers here, in
    :mod:`.branch_cut` and in the worker process beside the plan search."""

    cost: np.ndarray  # (n, k)
    values: np.ndarray  # (n, m)
    lo: np.ndarray  # (k, m) lowest territory totals
    hi: np.ndarray  # (k, m) highest territory totals
    adjacency: sp.csr_matrix  # (n, n), 1 where two units touch
    locks: np.ndarray  # (n,) the territory a unit is locked to, -1 = free
    allowed: np.ndarray  # (n, k) bool
    current: np.ndarray | None = None  # (n,) today's territory (-1 = none), with ``budget``
    budget: int | None = None  # the most units with a territory today that may change it

    @classmethod
    def of(
        cls,
        cost: np.ndarray,
        values: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        *,
        adjacency,
        locks: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        current: np.ndarray | None = None,
        budget: int | None = None,
    ) -> ContiguousProblem:
        """The problem of these arrays (``adjacency``: a sparse matrix or :class:`Adjacency`;
        no ``locks``: none; no ``allowed``: every pair). The arguments are not changed."""
        cost = np.asarray(cost, float)
        n, k = cost.shape
        locks = np.full(n, -1) if locks is None else np.asarray(locks, int)
        allowed = np.ones((n, k), bool) if allowed is None else np.asarray(allowed, bool).copy()
        for i in np.flatnonzero(locks >= 0):
            keep = allowed[i, locks[i]]
            allowed[i] = False
            allowed[i, locks[i]] = keep
        cur = None if budget is None or current is None else np.asarray(current, int)
        bands = [np.asarray(b, float).reshape(k, -1) for b in (lo, hi)]
        return cls(cost, np.asarray(values, float).reshape(n, -1), *bands,
                   _binary(_matrix(adjacency)), locks, allowed, cur,
                   None if cur is None else int(budget))  # fmt: skip

    @property
    def stranded(self) -> bool:
        """Whether some unit has no allowed territory (then no model has a plan)."""
        return not self.allowed.any(1).all()

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The models' columns (:func:`_pairs`): allowed pairs' units and territories, and each
        pair's column (-1 where not allowed)."""
        return _pairs(self.allowed)

    def rows(self, nv: int | None = None) -> tuple[list, list, list]:
        """The rows every exact model has over its pair columns (the first ``len(pr)`` of ``nv``,
        default all), from the engine's one constraint builder
        (:func:`.constraints.pair_constraints`): each unit in one territory, each territory
        within its bands and, with a budget, the moves budget (units staying where they are now:
        all but ``budget`` of those with a territory now). (blocks, lower, upper), for the
        caller to add its own rows to."""
        pr, pc, _ = self.pairs
        n, k = self.cost.shape
        rows = pair_constraints(self.values, pr, pc, n_rows=n, k=k, current=self.current)
        stay = None if self.current is None else float((self.current >= 0).sum() - self.budget)
        a_mat, lower, upper = rows.rows_within(self.lo, self.hi, stay)
        if nv is not None and nv > len(pr):  # the caller's own columns (flows, roots) come after
            a_mat = sp.hstack([a_mat, sp.csr_matrix((a_mat.shape[0], nv - len(pr)))]).tocsr()
        return [a_mat], [lower], [upper]

    def objective(self, assign: np.ndarray) -> float:
        """The cost of plan ``assign`` (a territory per unit), rules not checked."""
        return float(self.cost[np.arange(len(self.cost)), np.asarray(assign, int)].sum())

    def fits(self, assign) -> bool:
        """Whether plan ``assign`` (a territory per unit) uses allowed pairs only, meets every
        territory's bands and the moves budget and has each territory in one piece."""
        assign = np.asarray(assign)
        n, k = self.cost.shape
        if assign.shape != (n,) or (assign < 0).any() or (assign >= k).any():
            return False
        if (
            self.current is not None
            and int(((self.current >= 0) & (self.current != assign)).sum()) > self.budget
        ):
            return False
        if not self.allowed[np.arange(n), assign].all():
            return False
        load = totals(self.values, assign, k)
        slack = 1e-9 * (1.0 + np.abs(self.hi))
        if ((load < self.lo - slack) | (load > self.hi + slack)).any():
            return False
        return bool((count_pieces(assign, self.adjacency, k) == 1).all())

    def plan_cost(self, assign) -> float:
        """The cost of plan ``assign`` when it keeps every rule (:meth:`fits`), else inf (also
        for None)."""
        if assign is None or not self.fits(assign):
            return np.inf
        return self.objective(assign)

    def restricted(self, rows: np.ndarray, group: np.ndarray, a: np.ndarray) -> ContiguousProblem:
        """The problem of units ``rows`` among territories ``group`` alone, every other unit
        staying as in plan ``a``: their bands, locks and pairs, and what is left of the moves
        budget (units outside moved already, units of ``rows`` whose territory today is not in
        ``group`` moved whatever happens)."""
        col = np.full(self.cost.shape[1], -1)
        col[group] = np.arange(len(group))
        sub_cur, sub_budget = None, None
        if self.current is not None:
            cur = self.current
            outside = np.ones(len(a), bool)
            outside[rows] = False
            moved_outside = int(((cur >= 0) & (cur != a) & outside).sum())
            sub_cur = np.where(cur[rows] >= 0, col[np.maximum(cur[rows], 0)], -1)
            elsewhere = int(((cur[rows] >= 0) & (sub_cur < 0)).sum())
            sub_budget = self.budget - moved_outside - elsewhere
        sub_locks = np.where(self.locks[rows] >= 0, col[np.maximum(self.locks[rows], 0)], -1)
        return ContiguousProblem(
            self.cost[np.ix_(rows, group)], self.values[rows], self.lo[group], self.hi[group],
            self.adjacency[rows][:, rows], sub_locks, self.allowed[np.ix_(rows, group)],
            sub_cur, sub_budget,
        )  # fmt: skip


def _pairs(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact models' columns: the allowed (unit, territory) pairs as rows and territories,
    and each pair's column (-1 where not allowed)."""
    pr, pc = np.nonzero(allowed)
    pid = np.full(allowed.shape, -1)
    pid[pr, pc] = np.arange(len(pr))
    return pr, pc, pid


def contiguous_exact(
    problem: ContiguousProblem,
    *,
    roots: np.ndarray,
    start: np.ndarray | None = None,
    time_limit_s: float = 60.0,
) -> ExactPlan | None:
    """Exact contiguous plan: assignment MILP plus a single-commodity flow from each root.

    Each territory j ships one unit of flow from its root ``roots[j]`` to every other unit in
    it, along arcs between units of j only, so every territory is connected (Shirabe 2005).
    Solved by HiGHS (about twice as fast as CBC on it): through ``highspy`` with ``start`` as
    the first plan when it is installed, otherwise through ``scipy.optimize.milp``.

    Parameters
    ----------
    problem : the model (:class:`ContiguousProblem`).
    roots : (k,) unit index that must belong to each territory.
    start : (n,) a plan within every rule, each territory one piece holding its root (or None).
    time_limit_s : solver time limit.

    Returns
    -------
    :class:`ExactPlan` of the best plan found, or None when there is none (infeasible, or
    nothing found within the time limit). ``bound`` holds for plans whose roots are in place.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    cost, allowed = problem.cost, problem.allowed
    n, k = cost.shape
    roots = np.asarray(roots, int)
    if not allowed[roots, np.arange(k)].all() or len(set(roots.tolist())) < k:
        return None
    if problem.stranded:
        return None
    pr, pc, pid = problem.pairs
    p = len(pr)
    # arcs (u -> w) inside territory j: both pairs allowed, never into j's root
    mat = problem.adjacency.tocoo()
    off = mat.row != mat.col
    u_, w_ = np.repeat(mat.row[off], k), np.repeat(mat.col[off], k)
    j_ = np.tile(np.arange(k), int(off.sum()))
    ok = (pid[u_, j_] >= 0) & (pid[w_, j_] >= 0) & (w_ != roots[j_])
    u_, w_, j_ = u_[ok], w_[ok], j_[ok]
    a = len(u_)
    nv = p + a
    big = float(n - k + 1)
    fidx = p + np.arange(a)
    blocks, lbs, ubs = problem.rows(nv)
    # flow only into units of the territory: f - big * x_w <= 0
    r = np.arange(a)
    blocks.append(sp.csr_matrix(
        (np.concatenate([np.ones(a), -big * np.ones(a)]),
         (np.concatenate([r, r]), np.concatenate([fidx, pid[w_, j_]]))), shape=(a, nv)))  # fmt: skip
    lbs.append(np.full(a, -np.inf))
    ubs.append(np.zeros(a))
    # conservation at every non-root pair: inflow - outflow - x = 0
    nonroot = pr != roots[pc]
    row_of_pair = np.cumsum(nonroot) - 1
    q = int(nonroot.sum())
    has_in = nonroot[pid[w_, j_]]
    has_out = nonroot[pid[u_, j_]]
    ri = np.concatenate([row_of_pair[pid[w_, j_]][has_in], row_of_pair[pid[u_, j_]][has_out],
                         row_of_pair[nonroot]])  # fmt: skip
    ci = np.concatenate([fidx[has_in], fidx[has_out], np.flatnonzero(nonroot)])
    vi = np.concatenate([np.ones(int(has_in.sum())), -np.ones(int(has_out.sum())), -np.ones(q)])
    blocks.append(sp.csr_matrix((vi, (ri, ci)), shape=(q, nv)))
    lbs.append(np.zeros(q))
    ubs.append(np.zeros(q))
    lb = np.zeros(nv)
    ub = np.concatenate([np.ones(p), np.full(a, big)])
    lb[pid[roots, np.arange(k)]] = 1.0
    c = np.concatenate([cost[pr, pc], np.zeros(a)])
    integrality = np.concatenate([np.ones(p), np.zeros(a)])
    a_mat = sp.vstack(blocks).tocsr()
    row_lo, row_hi = np.concatenate(lbs), np.concatenate(ubs)
    x0 = None
    if start is not None:
        x0 = _flow_start(np.asarray(start, int), pid, roots, u_, w_, j_, nv, p, mat)
    res = highs_milp(c, integrality, lb, ub, a_mat, row_lo, row_hi, x0, time_limit_s)
    if res is not None:
        return _exact_plan(res[0], res[1], res[2], pr, pc, p, n, cost)
    res = milp(c, integrality=integrality, bounds=Bounds(lb, ub),
               constraints=LinearConstraint(a_mat, row_lo, row_hi),
               options={"time_limit": max(float(time_limit_s), 0.1), "disp": False})  # fmt: skip
    return _exact_plan(res.x, getattr(res, "mip_dual_bound", None), res.status == 0, pr, pc, p,
                       n, cost)  # fmt: skip


def _exact_plan(x, bound, optimal: bool, pr, pc, p: int, n: int, cost) -> ExactPlan | None:
    if x is None:
        return None
    assign = np.full(n, -1)
    pick = np.asarray(x)[:p] > 0.5
    assign[pr[pick]] = pc[pick]
    if (assign < 0).any():  # pragma: no cover - solver returned an incomplete solution
        return None
    objective = float(cost[np.arange(n), assign].sum())
    bound = objective if optimal or bound is None or not np.isfinite(bound) else bound
    return ExactPlan(assign, objective, min(float(bound), objective), bool(optimal))


def _flow_start(start, pid, roots, u_, w_, j_, nv: int, p: int, mat) -> np.ndarray | None:
    """The MILP's variables for a plan: x, and on a BFS tree of each territory from its root the
    flow each arc carries (the units beyond it). None when the plan does not fit the model."""
    n, k = pid.shape
    if (
        (start < 0).any()
        or (pid[np.arange(n), start] < 0).any()
        or (start[roots] != np.arange(k)).any()
    ):
        return None
    x = np.zeros(nv)
    x[pid[np.arange(n), start]] = 1.0
    csr = sp.csr_matrix(mat)
    arc = {(int(u), int(w), int(j)): p + q for q, (u, w, j) in enumerate(zip(u_, w_, j_))}
    for j in range(k):
        parent, order, queue = {int(roots[j]): -1}, [], deque([int(roots[j])])
        while queue:
            v = queue.popleft()
            order.append(v)
            for w in csr.indices[csr.indptr[v] : csr.indptr[v + 1]].tolist():
                if start[w] == j and w not in parent:
                    parent[w] = v
                    queue.append(w)
        if len(order) != int((start == j).sum()):
            return None  # not one piece
        below = dict.fromkeys(order, 1.0)
        for v in reversed(order[1:]):
            below[parent[v]] += below[v]
            q = arc.get((parent[v], v, j))
            if q is None:
                return None
            x[q] = below[v]
    return x


def _stop_at(h, deadline: float, stop: Callable[[], bool] | None = None) -> None:
    """Interrupt a highspy MIP at ``deadline`` (``time.perf_counter()``): its own time limit
    can run seconds over (an LP at a node is not cut short); also once ``stop()`` says so
    (asked at most every half second)."""
    asked = [time.perf_counter()]

    def interrupt(event) -> None:
        event.interrupt(False)  # highspy keeps the flag from an interrupted run to the next
        now = time.perf_counter()
        if now > deadline:
            event.interrupt()
        elif stop is not None and now - asked[0] > 0.5:
            asked[0] = now
            if stop():
                event.interrupt()

    h.cbMipInterrupt += interrupt


def highs_milp(c: np.ndarray, integrality: np.ndarray, lb: np.ndarray, ub: np.ndarray, a_mat,
               row_lo: np.ndarray, row_hi: np.ndarray, x0: np.ndarray | None,
               time_limit_s: float, stop: Callable[[], bool] | None = None,
               ) -> tuple[np.ndarray | None, float, bool] | None:  # fmt: skip
    """Solve the MILP min c x, row_lo <= A x <= row_hi, lb <= x <= ub (``integrality`` > 0:
    integer) with highspy, starting from ``x0`` and interrupted at ``time_limit_s`` or when
    ``stop()`` says so: (x or None, dual bound, optimal), or None when highspy is not
    installed. The engine's one MILP
    call through highspy (the exact contiguous models and ``TerritoryModel.solve_on_pairs``)."""
    try:
        import highspy
    except ImportError:
        return None
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(float(time_limit_s), 0.1))
    _stop_at(h, time.perf_counter() + max(float(time_limit_s), 0.1), stop)
    nv = len(c)
    h.addVars(nv, lb, ub)
    idx = np.arange(nv, dtype=np.int32)
    h.changeColsCost(nv, idx, c)
    kinds = np.where(integrality > 0, highspy.HighsVarType.kInteger,
                     highspy.HighsVarType.kContinuous)  # fmt: skip
    h.changeColsIntegrality(nv, idx, np.array([int(t) for t in kinds], dtype=np.uint8))
    a_mat = sp.csr_matrix(a_mat)
    h.addRows(a_mat.shape[0], row_lo, row_hi, a_mat.nnz, a_mat.indptr.astype(np.int32),
              a_mat.indices.astype(np.int32), a_mat.data)  # fmt: skip
    if x0 is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(x0)
        h.setSolution(sol)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    has = info.primal_solution_status == 2  # feasible
    x = np.asarray(h.getSolution().col_value) if has else None
    return x, float(info.mip_dual_bound), status == highspy.HighsModelStatus.kOptimal


def contiguous_milp(
    problem: ContiguousProblem, *, roots: np.ndarray, time_limit_s: float = 60.0
) -> tuple[np.ndarray, float] | None:
    """(assign, objective) of :func:`contiguous_exact` (None when it finds no plan)."""
    res = contiguous_exact(problem, roots=roots, time_limit_s=time_limit_s)
    return None if res is None else (res.assign, res.objective)
