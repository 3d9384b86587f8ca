"""The territory model: one constraint builder for both solver paths, checks and solver choice."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.constraints import pair_constraints
from territory_planner_plugin.errors import InfeasibleError, SolverError
from territory_planner_plugin.model import EXACT_PAIRS, TerritoryModel

ROOT = Path(__file__).resolve().parents[2]


def _random_model(n: int, k: int, seed: int, **kw) -> TerritoryModel:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 20, (n, 2))
    cxy = rng.uniform(0, 20, (k, 2))
    cost = np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1))
    values = rng.integers(1, 20, (n, 2)).astype(float)
    return TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(k), **kw)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), k=st.integers(1, 5), seed=st.integers(0, 1000))
def test_constraint_rows_equal_direct_totals(n: int, k: int, seed: int) -> None:
    """Applied to a plan's 0/1 vector, the rows give one per row, the totals and the stays."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 10, (n, 3))
    current = rng.integers(-1, k, n)
    assign = rng.integers(0, k, n)
    rows, cols = np.nonzero(np.ones((n, k), bool))
    pc = pair_constraints(values, rows, cols, n_rows=n, k=k, current=current)
    x = (cols == assign[rows]).astype(float)
    assert np.allclose(pc.assign @ x, 1.0)
    direct = np.array([[values[assign == j, m].sum() for m in range(3)] for j in range(k)])
    assert np.allclose((pc.balance @ x).reshape(k, 3), direct)
    assert pc.stay @ x == ((current >= 0) & (assign == current)).sum()


def _brute(model: TerritoryModel) -> float:
    _, lo, hi = model.bounds()
    best = np.inf
    for combo in itertools.product(range(model.k), repeat=model.n):
        a = np.array(combo)
        if not model.allowed[np.arange(model.n), a].all():
            continue
        if ((model.locks >= 0) & (a != model.locks)).any():
            continue
        load = np.array([model.values[a == j].sum(0) for j in range(model.k)])
        if (load <= hi + 1e-9).all() and (load >= lo - 1e-9).all():
            best = min(best, model.cost[np.arange(model.n), a].sum())
    return best


@pytest.mark.parametrize("seed", range(4))
def test_exact_path_matches_brute_force_with_locks_and_forbidden_pairs(seed: int) -> None:
    model = _random_model(7, 3, seed, tolerance_pct=40.0)
    model.locks[0] = 2
    model.allowed[1, 0] = False
    ref = _brute(model)
    if not np.isfinite(ref):
        with pytest.raises(InfeasibleError):
            model.solve()
        return
    sol = model.solve()
    assert sol.objective == pytest.approx(ref, rel=1e-9)
    assert sol.lower_bound <= sol.objective + 1e-9
    assert sol.solver_used.startswith("CBC")
    model.verify(sol.assign)


def test_both_paths_solve_the_same_model() -> None:
    """The exact MILP and the priced LP path (forced by a tiny travel weight) agree closely."""
    model = _random_model(60, 4, 3, tolerance_pct=10.0)
    exact = model.solve()
    priced = TerritoryModel.from_cost_matrix(
        model.cost, values=model.values, capacity=model.capacity, tolerance_pct=10.0,
        travel=(np.full(4, 0.25), 1e-9),
    ).solve()  # fmt: skip
    assert "SciPy" in priced.solver_used
    assert "PuLP" in exact.solver_used
    assert priced.lower_bound <= exact.objective + 1e-6
    assert priced.objective >= exact.objective - 1e-6
    assert priced.objective <= 1.03 * exact.objective


def test_solver_choice_is_logged_on_the_large_path(caplog) -> None:
    model = _random_model(400, 5, 1, tolerance_pct=10.0)
    assert model.cost.size > EXACT_PAIRS
    with caplog.at_level("INFO"):
        sol = model.solve("HiGHS")
    assert "SOLVER HiGHS: 2,000 pairs" in caplog.text
    assert "HiGHS via SciPy" in caplog.text
    model.verify(sol.assign)


def test_verify_names_each_broken_rule() -> None:
    model = _random_model(20, 2, 0, tolerance_pct=5.0)
    with pytest.raises(SolverError, match="tolerance broken"):
        model.verify(np.zeros(20, int))
    model.locks[3] = 1
    with pytest.raises(SolverError, match="locks broken"):
        model.verify(np.zeros(20, int))


def test_lock_beyond_the_drive_limit_is_named() -> None:
    model = _random_model(10, 2, 0, tolerance_pct=50.0, row_ids=[f"A{i}" for i in range(10)])
    model.locks[4] = 1
    model.allowed[4, 1] = False
    with pytest.raises(InfeasibleError, match=r"LOCK_FIELD.*A4.*REP_MAX_MINUTES"):
        model.precheck()


def test_rebalance_uses_no_private_function_of_territories() -> None:
    """Both algorithms build the model; neither reaches into the other's private functions."""
    tree = ast.parse((ROOT / "territory_planner_plugin" / "rebalance.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "territories" in node.module:
            names |= {a.name for a in node.names}
        is_attr = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if is_attr and node.value.id in ("terr", "territories"):
            names.add(node.attr)
    assert names, "rebalance should use the public build_plan/TerritoryPlan of territories"
    assert not [n for n in names if n.startswith("_")]


def test_the_contiguous_problem_has_the_models_pairs_even_for_a_lock_on_a_barred_pair() -> None:
    """A row locked to a territory its allowed pairs bar (precheck refuses such a run, but the
    model can be built) may go to its lock in the exact contiguous models as in every other:
    the problem's pairs are :meth:`TerritoryModel.pairs`."""
    import scipy.sparse as sp

    n, k = 6, 2
    cost = np.arange(n * k, dtype=float).reshape(n, k)
    allowed = np.ones((n, k), bool)
    allowed[0, 1] = False  # row 0 barred from territory 1 ...
    locks = np.full(n, -1)
    locks[0] = 1  # ... and locked to it
    path = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1], shape=(n, n)).tocsr()
    model = TerritoryModel.from_cost_matrix(cost, values=np.ones(n), capacity=np.ones(k),
                                            tolerance_pct=50.0, locks=locks, allowed=allowed,
                                            adjacency=path)  # fmt: skip
    problem = model.contiguous_problem()
    assert (problem.allowed == model.pairs()).all()
    assert problem.allowed[0].tolist() == [False, True]
    assert not problem.stranded


def _priced_path_model(seed: int = 0) -> TerritoryModel:
    """400 rows x 3 territories (beyond EXACT_PAIRS: the priced LP path), within 5 %."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (400, 2))
    homes = np.array([[20.0, 20.0], [80.0, 30.0], [50.0, 80.0]])
    cost = np.linalg.norm(xy[:, None] - homes[None], axis=2)
    assert cost.size > EXACT_PAIRS
    return TerritoryModel.from_cost_matrix(cost, values=rng.uniform(1, 10, 400),
                                           capacity=np.ones(3), tolerance_pct=5.0)  # fmt: skip


def test_a_priced_path_without_a_plan_tries_the_whole_milp_in_the_time_left(monkeypatch) -> None:
    """The priced path's heuristics find no plan (not proven): the MILP of the whole model gets
    the time left and its plan keeps every rule, with its bound; proven infeasibility, or no
    time left, still ends in the explained refusal."""
    import territory_planner_plugin.model as model_module
    from territory_planner_plugin.assignment import NoPlanFoundError

    model = _priced_path_model()
    _, best = model._integer_plan(20.0)  # the optimum, for comparison

    def no_plan(proven: bool):
        def fail(*args, **kwargs):
            raise NoPlanFoundError(proven=proven)

        return fail

    monkeypatch.setattr(model_module, "solve_balanced", no_plan(False))
    sol = model.solve("CBC", time_limit_s=20.0)
    model.verify(sol.assign)
    assert sol.lower_bound <= sol.objective + 1e-9
    assert sol.objective == pytest.approx(model.objective_of(best), rel=1e-6)
    with pytest.raises(InfeasibleError, match="no plan found"):
        model.solve("CBC", time_limit_s=1.5)  # too little left for it (half: under 1 s)
    monkeypatch.setattr(model_module, "solve_balanced", no_plan(True))
    with pytest.raises(InfeasibleError, match=r"\(infeasible\)"):
        model.solve("CBC", time_limit_s=20.0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5), locked=st.integers(0, 6))
def test_polish_keeps_every_bound_and_lock_and_never_costs_more(seed, k, locked) -> None:
    """The local search the MILP fallback ends with, from a balanced but careless plan (the
    optimum of shuffled costs): bands kept, locked rows (only their pair finite) in place, no
    dearer than the start."""
    from territory_planner_plugin.assignment import polish

    rng = np.random.default_rng(seed)
    n = 60
    xy = rng.uniform(0, 100, (n, 2))
    cost = np.linalg.norm(xy[:, None] - rng.uniform(0, 100, (k, 2))[None], axis=2)
    values = rng.uniform(1, 10, (n, 2))
    target = values.sum(0) / k
    lo, hi = np.tile(target * 0.9, (k, 1)), np.tile(target * 1.1, (k, 1))
    model = TerritoryModel.from_cost_matrix(rng.permutation(cost.ravel()).reshape(n, k),
                                            values=values, capacity=np.ones(k), tolerance_pct=10.0)  # fmt: skip
    start = model._integer_plan(10.0)[1]
    assume(start is not None)
    lock_rows = rng.choice(n, locked, replace=False)
    priced = cost.copy()
    priced[lock_rows] = np.inf
    priced[lock_rows, start[lock_rows]] = cost[lock_rows, start[lock_rows]]
    plan = polish(priced, values, lo, hi, start)
    load = np.zeros((k, 2))
    np.add.at(load, plan, values)
    assert (load >= lo - 1e-6).all()
    assert (load <= hi + 1e-6).all()
    assert (plan[lock_rows] == start[lock_rows]).all()
    rows = np.arange(n)
    assert cost[rows, plan].sum() <= cost[rows, start].sum() + 1e-9
