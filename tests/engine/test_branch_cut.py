"""The contiguous model by SCIP's branch-and-cut (branch_cut) against brute force and the rules."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.adjacency import count_pieces
from territory_planner_plugin.branch_cut import (
    contiguous_branch_and_cut,
    contiguous_model,
    scip_available,
)
from territory_planner_plugin.contiguous_problem import ContiguousProblem
from territory_planner_plugin.errors import InfeasibleError, SolverError
from tests.engine.test_contiguity import brute_force, problem
from tests.engine.test_contiguous_exact import (
    _costly_case,
    _cut_case,
    _plans,
    _ruled_grid,
    _start_plan,
)

pytestmark = pytest.mark.skipif(not scip_available(), reason="PySCIPOpt not installed")


def _free_args(n: int, k: int) -> dict:
    return {"locks": np.full(n, -1), "allowed": np.ones((n, k), bool)}


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"),
                         [(3, 3, 3, 30, 0), (3, 4, 2, 10, 1), (2, 4, 3, 25, 2), (2, 5, 2, 5, 3),
                          (3, 3, 2, 15, 4), (3, 3, 3, 20, 5), (2, 5, 3, 30, 6)])  # fmt: skip
def test_branch_and_cut_matches_brute_force(rows, cols, k, tol, seed) -> None:
    """Optimal, in one piece per territory and with a bound that is the optimum's (the problem as
    posed: no roots); no plan where none exists."""
    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    ref = brute_force(cost, values, lo, hi, adj)
    res = contiguous_branch_and_cut(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
        time_limit_s=20,
        **_free_args(rows * cols, k),
    )
    assert res is not None
    assert res.solver == "SCIP"
    if not np.isfinite(ref):
        assert res.assign is None
        return
    assert res.optimal
    assert res.closed
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert res.bound <= ref + 1e-6 * max(abs(ref), 1.0)
    assert res.bound == pytest.approx(ref, rel=1e-5)
    assert (count_pieces(res.assign, adj, k) == 1).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), tol=st.sampled_from([10, 20, 30, 45]),
       k=st.integers(2, 3), measures=st.integers(1, 2))  # fmt: skip
def test_branch_and_cut_is_exact_where_contiguity_costs(seed, tol, k, measures) -> None:
    """Random 2 x 4 grids, one or two measures: the plan is the brute-force optimum of the
    contiguous problem, which is dearer than the cheapest plan in pieces whenever it is (a
    solver that ignored contiguity, or cut plans in one piece, would fail here)."""
    _, adj, cost, values, lo, hi, _ = problem(2, 4, k, tol, seed % 97, measures=measures)
    _, objs, whole = _plans(cost, values, lo, hi, adj)
    res = contiguous_branch_and_cut(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
        time_limit_s=20,
        **_free_args(8, k),
    )
    if not whole.any():
        assert res.assign is None
        return
    ref = objs[whole].min()
    assert res.optimal
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert res.bound <= ref + 1e-6 * max(abs(ref), 1.0)
    assert (count_pieces(res.assign, adj, k) == 1).all()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), budget=st.integers(0, 8), n_locks=st.integers(0, 3))
def test_branch_and_cut_keeps_locks_pairs_and_the_moves_budget(seed, budget, n_locks) -> None:
    """A 5 x 5 grid with a scattered current plan, locks and a moves budget: SCIP's plan keeps
    every rule (the model's own check) and is no dearer than its start; its bound is not above
    the plan the HiGHS rounds prove optimal on the same model."""
    from territory_planner_plugin.exact_contiguity import contiguous_cuts

    adj, cost, values, current, locks, model = _ruled_grid(seed, budget, n_locks)
    n, k = cost.shape
    _, lo, hi = model.bounds()
    allowed = np.ones((n, k), bool)
    allowed[n - 1, 0] = False  # one pair not allowed
    args = {"adjacency": adj, "locks": locks, "allowed": allowed, "current": current,
            "budget": budget + 10}  # fmt: skip
    try:
        start = _start_plan(cost, values, lo, hi, adj, locks=locks, current=current,
                            budget=budget + 10)  # fmt: skip
        model.verify(start)
        start = start if start[n - 1] != 0 else None
    except (InfeasibleError, SolverError):
        start = None
    res = contiguous_branch_and_cut(
        ContiguousProblem.of(cost, values, lo, hi, **args), start=start, time_limit_s=20
    )
    ref = contiguous_cuts(ContiguousProblem.of(cost, values, lo, hi, **args), time_limit_s=20)
    if res.assign is None:
        assert ref.assign is None or not res.optimal
        return
    model.verify(res.assign)
    assert res.assign[n - 1] != 0
    if start is not None:
        assert res.objective <= model.objective_of(start) + 1e-9
    if ref.optimal:
        assert res.bound <= ref.objective + 1e-6 * max(abs(ref.objective), 1.0)
        if res.optimal:
            assert res.objective == pytest.approx(ref.objective, rel=1e-6)


def test_offered_plans_are_taken_only_when_they_keep_every_rule() -> None:
    """Plans in pieces, outside the bands or of a wrong shape are ignored (the cheapest plan in
    pieces would undercut the optimum); a stop at once keeps the valid offered optimum and a
    bound not above it."""
    cost, values, lo, hi, args, ref, best, bad = _costly_case()
    offers = iter(bad)
    res = contiguous_branch_and_cut(
        ContiguousProblem.of(cost, values, lo, hi, **args),
        time_limit_s=20,
        incumbent=lambda: next(offers, None),
    )
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert res.bound <= ref + 1e-6 * max(abs(ref), 1.0)
    stopped = contiguous_branch_and_cut(
        ContiguousProblem.of(cost, values, lo, hi, **args),
        time_limit_s=20,
        start=best,
        stop=lambda: True,
    )
    assert stopped.objective == pytest.approx(ref, rel=1e-9)
    assert stopped.bound <= ref + 1e-6 * max(abs(ref), 1.0)


def test_without_scip_the_rounds_of_highs_run_instead(monkeypatch) -> None:
    """PySCIPOpt missing: contiguous_model gives the HiGHS rounds' result (the same optimum)."""
    cost, values, lo, hi, adj, args = _cut_case(3, 3, 3, 30, 0)
    ref = brute_force(cost, values, lo, hi, adj)
    monkeypatch.setitem(sys.modules, "pyscipopt", None)  # import fails
    assert not scip_available()
    res = contiguous_model(ContiguousProblem.of(cost, values, lo, hi, **args), time_limit_s=20)
    assert res.solver == "HiGHS"
    assert res.objective == pytest.approx(ref, rel=1e-6)
