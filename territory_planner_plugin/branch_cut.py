"""The root-free contiguous model solved by branch-and-cut in one search tree (SCIP through
PySCIPOpt): the cuts of :func:`.exact_contiguity.contiguous_cuts` (a-b separators for plans in
pieces, size cuts for plans and for the LP's fractional plans) are added where the tree needs
them, so nothing is solved twice. HiGHS has no callback that adds constraints during its search,
which is why :func:`.exact_contiguity.contiguous_cuts` re-solves the whole model round after
round; with SCIP installed the worker beside the plan search (:mod:`.beside`) runs this instead."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .contiguous_problem import ContiguousProblem
from .exact_contiguity import (
    CutPlan,
    _pieces_apart,
    _separator_cuts,
    _separator_rows,
    _SizeCuts,
    contiguous_cuts,
)

POLL_S = 0.5  # offered plans and ``stop`` are looked at this often during the search
SEPA_FREQ = 5  # size cuts are separated at the root and at every 5th depth of the tree (every
# depth: Georgia 159 x 6 not proven in 60 s, North Carolina 100 x 8 in 18 s; every 5th: 44 s, 12 s)


def scip_available() -> bool:
    """Whether PySCIPOpt (SCIP) can be imported here."""
    try:
        import pyscipopt  # noqa: F401
    except ImportError:
        return False
    return True


def contiguous_model(problem: ContiguousProblem, **options) -> CutPlan | None:
    """The root-free contiguous model solved by :func:`contiguous_branch_and_cut` when SCIP is
    installed, else by :func:`.exact_contiguity.contiguous_cuts` (the same options)."""
    res = contiguous_branch_and_cut(problem, **options)
    return contiguous_cuts(problem, **options) if res is None else res


def contiguous_branch_and_cut(
    problem: ContiguousProblem,
    *,
    start: np.ndarray | None = None,
    time_limit_s: float = 60.0,
    gap: float = 1e-6,
    stop: Callable[[], bool] | None = None,
    incumbent: Callable[[], np.ndarray | None] | None = None,
    **_ignored,
) -> CutPlan | None:
    """Solve the root-free contiguous model (each unit in one allowed territory, bands, locks,
    moves budget, every territory in one piece) by branch-and-cut with SCIP: every plan the tree
    finds in pieces is cut off by a-b separators and size cuts of its pieces, and each LP's
    fractional plan by size cuts (:class:`.exact_contiguity._SizeCuts`). Every cut holds for every
    plan in one piece, so SCIP's dual bound is a bound of the problem as posed. ``start`` (a plan
    in one piece per territory) is the first incumbent; ``incumbent()``, asked every
    ``POLL_S`` seconds, may give a better plan found elsewhere (used when it keeps every rule);
    ``stop()`` ends the search early. Takes the options of :func:`.exact_contiguity.contiguous_cuts`
    (those it has no use for are ignored). Returns None when PySCIPOpt is not installed."""
    try:
        from pyscipopt import SCIP_RESULT, Conshdlr, Model, quicksum
    except ImportError:
        return None
    t0 = time.perf_counter()
    cost, mat = problem.cost, problem.adjacency
    n, k = cost.shape
    if problem.stranded:
        return CutPlan(np.inf, None, np.inf, False, 0, 0, solver="SCIP")
    pr, pc, pid = problem.pairs
    m = Model()
    m.hideOutput(True)
    x = [m.addVar(vtype="B", obj=float(cost[i, j]), name=f"x{i}_{j}") for i, j in zip(pr, pc)]
    blocks, rlo, rhi = problem.rows()
    a_mat = blocks[0].tocsr()
    for r, (low, up) in enumerate(zip(rlo[0], rhi[0])):
        cols = a_mat.indices[a_mat.indptr[r] : a_mat.indptr[r + 1]]
        expr = quicksum(float(c) * x[j] for j, c in
                        zip(cols, a_mat.data[a_mat.indptr[r] : a_mat.indptr[r + 1]]))  # fmt: skip
        if np.isfinite(low) and np.isfinite(up) and low == up:
            m.addCons(expr == float(low))
            continue
        if np.isfinite(low):
            m.addCons(expr >= float(low))
        if np.isfinite(up):
            m.addCons(expr <= float(up))
    sizes = _SizeCuts(problem)
    state = {"cuts": 0, "poll": 0.0, "best": None, "best_obj": np.inf, "solving": False}

    def values_of(sol=None) -> np.ndarray:  # (n, k) of a solution (None: the LP's), 0 off pairs
        xs = np.zeros((n, k))
        xs[pr, pc] = [m.getSolVal(sol, v) for v in x]
        return xs

    def add_rows(cuts: list) -> int:
        for _, cols, coef in cuts:
            m.addCons(quicksum(float(c) * x[j] for j, c in zip(cols, coef)) <= 0.0)
        state["cuts"] += len(cuts)
        return len(cuts)

    def take(plan) -> bool:  # a plan keeping every rule, cheaper than the best: SCIP's too
        obj = problem.plan_cost(plan)
        if not obj < state["best_obj"]:
            return False
        state["best"], state["best_obj"] = np.asarray(plan, int).copy(), obj
        sol = m.createSol()
        for i, j in enumerate(state["best"]):
            m.setSolVal(sol, x[pid[i, j]], 1.0)
        # during the search SCIP checks it; before it, it keeps it as a start
        return bool(m.trySol(sol) if state["solving"] else m.addSol(sol))

    add_rows(sizes.singletons())
    if start is not None:
        take(start)

    class _OnePiece(Conshdlr):
        """Every territory in one piece: checks plans, cuts off plans in pieces and separates
        size cuts from fractional plans."""

        def _poll(self) -> None:
            now = time.perf_counter()
            if now < state["poll"]:
                return
            state["poll"] = now + POLL_S
            if stop is not None and stop():
                self.model.interruptSolve()
                return
            got = None if incumbent is None else incumbent()
            if got is not None:
                take(got)

        def conscheck(self, constraints, solution, checkintegrality, checklprows, printreason,
                      completely, **_):  # fmt: skip
            plan = values_of(solution).argmax(1)
            pieces = _pieces_apart(plan, mat, k)
            return {"result": SCIP_RESULT.INFEASIBLE if pieces else SCIP_RESULT.FEASIBLE}

        def _enforce(self) -> dict:
            self._poll()
            plan = values_of().argmax(1)
            pieces = _pieces_apart(plan, mat, k)
            if not pieces:
                return {"result": SCIP_RESULT.FEASIBLE}
            added = 0
            for a, b, sep in _separator_cuts(pieces, mat):
                for cols, coef in _separator_rows(a, b, sep, pid):
                    m.addCons(quicksum(float(c) * x[j] for j, c in zip(cols, coef)) <= 1.0)
                    added += 1
            state["cuts"] += added
            added += add_rows(sizes.from_plan(plan, pieces))
            return {"result": SCIP_RESULT.CONSADDED if added else SCIP_RESULT.INFEASIBLE}

        def consenfolp(self, constraints, nusefulconss, solinfeasible):
            return self._enforce()

        def consenfops(self, constraints, nusefulconss, solinfeasible, objinfeasible):
            return self._enforce()

        def conssepalp(self, constraints, nusefulconss):
            self._poll()
            if add_rows(sizes.from_fractional(values_of())):
                return {"result": SCIP_RESULT.CONSADDED}
            return {"result": SCIP_RESULT.DIDNOTFIND}

        def conslock(self, constraint, locktype, nlockspos, nlocksneg):
            pass  # (no constraint objects: dual reductions are off instead)

    m.includeConshdlr(_OnePiece(), "onepiece", "every territory in one piece",
                      sepapriority=0, enfopriority=-1, chckpriority=-1, sepafreq=SEPA_FREQ,
                      needscons=False)  # fmt: skip
    m.setBoolParam("misc/allowstrongdualreds", False)  # the handler locks no variables
    m.setBoolParam("misc/allowweakdualreds", False)
    m.setRealParam("limits/gap", float(gap))
    left = time_limit_s - (time.perf_counter() - t0)
    if left <= 0.05:
        return CutPlan(-np.inf, state["best"], state["best_obj"], False, 0, state["cuts"],
                       solver="SCIP")  # fmt: skip
    m.setRealParam("limits/time", float(left))
    state["solving"] = True
    m.optimize()
    if m.getNSols() > 0:  # SCIP's best, when it keeps every rule within our tolerances
        plan = values_of(m.getBestSol()).argmax(1)
        obj = problem.plan_cost(plan)
        if obj < state["best_obj"]:
            state["best"], state["best_obj"] = plan, obj
    best, best_obj = state["best"], state["best_obj"]
    bound = float(m.getDualbound())
    bound = bound if bound > -1e19 else -np.inf  # (stopped before the root LP)
    if m.getStatus() == "infeasible":
        bound = np.inf
    if best is not None:
        bound = min(bound, best_obj)
    optimal = best is not None and bound >= best_obj - max(gap, 1e-9) * max(abs(best_obj), 1.0)
    return CutPlan(bound, best, best_obj, optimal, int(m.getNNodes()), state["cuts"],
                   closed=optimal, solver="SCIP")  # fmt: skip
