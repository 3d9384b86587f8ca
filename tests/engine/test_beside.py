"""The separator-cut model in a worker process beside the plan search (beside.py): same answers
as in this process, merged into one result, and a failed or refused worker changes nothing."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from territory_planner_plugin import beside, matrix
from territory_planner_plugin import model as model_module
from territory_planner_plugin.adjacency import count_pieces
from territory_planner_plugin.beside import merge_cuts
from territory_planner_plugin.branch_cut import scip_available
from territory_planner_plugin.contiguous_problem import ContiguousProblem
from territory_planner_plugin.exact_contiguity import CutPlan, contiguous_cuts
from territory_planner_plugin.model import TerritoryModel
from tests.engine.test_contiguity import brute_force, problem


@pytest.fixture
def two_processes(monkeypatch):
    monkeypatch.setenv(matrix.WORKERS_ENV, "2")
    monkeypatch.setattr(beside, "BESIDE_MIN_SECONDS", 0.5)
    monkeypatch.setattr(beside, "BESIDE_MIN_PAIRS", 0)


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"), [(3, 3, 3, 30, 0), (3, 4, 2, 10, 1),
                                                                (3, 3, 3, 20, 5)])  # fmt: skip
def test_the_worker_answers_what_this_process_answers(two_processes, rows, cols, k, tol, seed):
    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    n = rows * cols
    args = {"adjacency": adj, "locks": np.full(n, -1), "allowed": np.ones((n, k), bool)}
    ref = brute_force(cost, values, lo, hi, adj)
    model = ContiguousProblem.of(cost, values, lo, hi, **args)
    here = contiguous_cuts(model, time_limit_s=10)
    job = beside.start_cuts_beside(10.0, model)
    assert job is not None
    there = job.result(20.0)
    assert isinstance(there, CutPlan)
    assert there.solver == ("SCIP" if scip_available() else "HiGHS")  # the tree when installed
    assert there.bound <= ref + 1e-6 * max(abs(ref), 1.0)
    assert there.optimal == here.optimal
    if np.isfinite(ref):
        assert there.objective == pytest.approx(ref, rel=1e-6)
        assert (count_pieces(there.assign, adj, k) == 1).all()
    assert job.done()


def test_no_worker_on_one_process_or_without_python(monkeypatch) -> None:
    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 30, 0)
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    monkeypatch.setenv(matrix.WORKERS_ENV, "1")
    assert beside.start_cuts_beside(30.0, model) is None
    monkeypatch.setenv(matrix.WORKERS_ENV, "2")
    assert beside.start_cuts_beside(30.0, model) is None  # 27 pairs: closes at once here
    monkeypatch.setattr(beside, "BESIDE_MIN_PAIRS", 0)
    assert beside.start_cuts_beside(beside.BESIDE_MIN_SECONDS / 2, model) is None  # too short
    monkeypatch.setattr(matrix, "python_executable", lambda: None)
    assert beside.start_cuts_beside(30.0, model) is None


def test_a_worker_that_fails_or_runs_over_gives_nothing_and_is_stopped(two_processes, tmp_path,
                                                                       monkeypatch) -> None:  # fmt: skip
    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 30, 0)
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr(beside, "_WORKER_SCRIPT", crash)
    job = beside.start_cuts_beside(5.0, model)
    assert job is not None
    assert job.result(10.0) is None
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setattr(beside, "_WORKER_SCRIPT", slow)
    job = beside.start_cuts_beside(5.0, model)
    assert job.result(0.5) is None  # did not answer in time: stopped
    assert job.done()


def _plan(bound, objective, optimal=False, closed=False, assign=True):
    return CutPlan(bound, np.zeros(3, int) if assign else None, objective, optimal, 2, 10, closed)


def test_merged_results_keep_the_higher_bound_and_the_cheaper_plan() -> None:
    merged = merge_cuts(_plan(90.0, 105.0), _plan(95.0, 110.0))
    assert merged.bound == 95.0
    assert merged.objective == 105.0
    assert not merged.optimal
    assert (merged.rounds, merged.cuts) == (4, 20)
    proven = merge_cuts(_plan(90.0, 100.0), _plan(100.0, 100.0, optimal=True))
    assert proven.optimal
    assert proven.closed
    assert merge_cuts(_plan(90.0, 100.0), _plan(100.0, 104.0)).optimal  # bound from there
    assert merge_cuts(None, _plan(95.0, 110.0)).bound == 95.0
    assert merge_cuts(_plan(90.0, 105.0), None).bound == 90.0
    no_plan = merge_cuts(_plan(90.0, np.inf, assign=False), _plan(92.0, np.inf, assign=False))
    assert no_plan.bound == 92.0
    assert not no_plan.optimal


def _solve_grid(caplog, case: tuple) -> tuple:
    """TerritoryModel.solve of a small grid (rows, cols, k, tolerance %, seed), logs captured:
    (the solution, the brute-force optimum)."""
    _, adj, cost, values, lo, hi, _ = problem(*case)
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(case[2]),
                                            tolerance_pct=case[3], adjacency=adj)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        sol = model.solve("HiGHS", time_limit_s=8)
    return sol, brute_force(cost, values, lo, hi, adj)


def test_the_model_uses_the_cuts_beside_and_stays_exact(two_processes, caplog,
                                                        monkeypatch) -> None:  # fmt: skip
    """Through TerritoryModel.solve, with this process's own cut loop giving nothing: the
    worker's result is merged in (logged) and proves the brute-force optimum."""
    from territory_planner_plugin import exact_contiguity

    own = exact_contiguity.contiguous_cuts

    def nothing_here(*args, **kwargs):  # the model's own loop (the worker imports afresh)
        return None if kwargs.get("incumbents") else own(*args, **kwargs)

    monkeypatch.setattr(exact_contiguity, "contiguous_cuts", nothing_here)
    sol, ref = _solve_grid(caplog, (3, 3, 3, 30, 0))
    assert "second process beside the search" in caplog.text
    assert sol.objective == pytest.approx(ref, rel=1e-9)
    assert sol.lower_bound == pytest.approx(ref, rel=1e-9)  # proven by the worker alone


def test_the_model_without_a_worker_is_unchanged(monkeypatch, caplog) -> None:
    monkeypatch.setattr(model_module, "BESIDE_ANSWER_S", 1.0)
    monkeypatch.setenv(matrix.WORKERS_ENV, "1")
    sol, ref = _solve_grid(caplog, (2, 4, 3, 25, 2))
    assert "second process" not in caplog.text
    assert sol.objective == pytest.approx(ref, rel=1e-9)
    solver = "SCIP" if scip_available() else "HiGHS"  # alone, this process runs SCIP's tree
    assert f"separator cuts (root-free, {solver}" in caplog.text


def test_the_cut_loop_stops_when_told() -> None:
    """``stop`` (the worker beside proved the plan optimal) ends this process's cut loop."""
    _, adj, cost, values, lo, hi, _ = problem(3, 4, 3, 25, 2)
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    res = contiguous_cuts(model, time_limit_s=30, stop=lambda: True)
    assert res.rounds == 0
    assert res.assign is None
    asked = []
    res = contiguous_cuts(model, time_limit_s=30, stop=lambda: asked.append(1) is not None)
    assert asked  # asked between rounds
    assert res.rounds >= 1


def test_plans_offered_to_the_worker_reach_its_cut_loop(two_processes, tmp_path,
                                                        monkeypatch) -> None:  # fmt: skip
    """``offer`` sends plans down the worker's stdin after the model; the worker's reader keeps
    the latest (a stand-in worker answers what it was offered as its plan)."""
    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 30, 0)
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    echo = tmp_path / "echo.py"
    echo.write_text(
        "import pickle, sys, time\n"
        f"sys.path.insert(0, {str(beside._WORKER_SCRIPT.parent)!r})\n"
        "from _cuts_worker import _Offers\n"
        "stdin = sys.stdin.buffer\n"
        "pickle.load(stdin)\n"
        "offers = _Offers(stdin)\n"
        "seen = []\n"
        "while len(seen) < 2:\n"
        "    plan = offers.take()\n"
        "    seen += [] if plan is None else [plan]\n"
        "    time.sleep(0.01)\n"
        "answer = dict(bound=0.0, assign=seen[-1], objective=float(len(seen)), optimal=False,\n"
        "              rounds=1, cuts=0)\n"
        "pickle.dump(answer, sys.stdout.buffer)\n"
    )  # fmt: skip
    monkeypatch.setattr(beside, "_WORKER_SCRIPT", echo)
    job = beside.start_cuts_beside(5.0, model)
    assert job is not None
    job.offer(np.arange(9) % 3)
    time.sleep(0.3)  # taken before the next one comes
    job.offer(np.arange(9) // 3)
    there = job.result(10.0)
    assert there is not None
    assert there.objective == 2.0
    assert (there.assign == np.arange(9) // 3).all()
    job.offer(np.zeros(9, int))  # ended: nothing happens
