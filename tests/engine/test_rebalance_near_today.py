"""Rebalancing large plans near today's (rebalance.near_today, TerritoryModel.solve_on_pairs):
only the accounts the prices bring closest to moving may move, solved exactly on those pairs.
Checked against exact MILPs written here with PuLP, on cases small enough for them (the size
threshold is lowered so the near-today search runs)."""

from __future__ import annotations

import logging

import numpy as np
import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin import model as model_module
from territory_planner_plugin import rebalance
from territory_planner_plugin.assignment import NoPlanFoundError
from territory_planner_plugin.errors import TimeLimitError
from territory_planner_plugin.model import TerritoryModel
from tests.engine.helpers import random_accounts, random_reps
from tests.engine.test_rebalance import _deviation_ok, _exact_min_moves, _run


@pytest.fixture
def near(monkeypatch):
    """Every rebalance tries the plan near today's first (however small)."""
    monkeypatch.setattr(rebalance, "NEAR_FROM_PAIRS", 0)


def _used_near(caplog) -> bool:
    return any("Plan near today's" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("n", "seed", "weight"), [(45, 0, None), (60, 3, None), (50, 5, "visits")])
def test_near_today_finds_the_exact_fewest_moves(near, caplog, n, seed, weight) -> None:
    acc = random_accounts(n, seed)
    rng = np.random.default_rng(seed + 100)
    acc["current"] = [f"T{j}" for j in rng.integers(0, 3, n)]
    exact = _exact_min_moves(acc, "revenue", 10, weight)
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        res = _run(acc, balance_fields=["revenue"], tolerance_pct=10, minimise_field=weight)
    assert _used_near(caplog)
    assert _deviation_ok(res.plan.accounts, "revenue", 10, ["T0", "T1", "T2"])
    assert res.moves["moved_value"].sum() == pytest.approx(exact, abs=1e-6)
    assert res.moves_lower_bound <= res.plan.objective + 1e-6


def test_near_today_keeps_locks_budget_handovers_and_new_accounts(near, caplog) -> None:
    acc = random_accounts(80, 7)
    reps = random_reps(4, 8)
    rng = np.random.default_rng(9)
    acc["current"] = [f"R{j}" for j in rng.integers(0, 4, len(acc))]
    acc.loc[acc.index[[0, 5, 9]], "current"] = None  # new accounts
    acc["lock"] = None
    acc.loc[acc.index[[1, 2]], "lock"] = "R2"  # locked away from today's territory (moves)
    acc.loc[acc.index[[1, 2]], "current"] = "R1"
    gone = reps[reps["rep"] != "R3"].reset_index(drop=True)  # R3 leaves: a handover
    exact = _exact_min_moves(acc.assign(current=acc["current"].fillna("R0")), "revenue", 15)
    budget_pct = 100.0 * (exact + 6) / len(acc)  # room for the moves, not much more
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        res = _run(acc, gone, balance_fields=["revenue"], tolerance_pct=15, lock_field="lock",
                   max_moves_pct=budget_pct)  # fmt: skip
    assert _used_near(caplog)
    out = res.plan.accounts.set_index("id")
    assert (out.loc[acc.loc[acc.index[[1, 2]], "id"], "territory_id"] == "R2").all()
    assert set(out["territory_id"]) <= {"R0", "R1", "R2"}
    assert _deviation_ok(res.plan.accounts, "revenue", 15, gone["rep"])
    assert res.plan.moved <= int(budget_pct / 100 * len(acc) + 1e-9)


def test_a_run_out_of_time_far_from_balance_says_so(monkeypatch) -> None:
    """No plan in TIME_LIMIT when today's plan is far from balanced: the message names the moves
    needed and designterritories, and the TIME_LIMIT it names is for the run, not what was left."""
    acc = random_accounts(60, 2)
    acc["current"] = ["T0"] * 50 + ["T1"] * 5 + ["T2"] * 5  # T0 holds most of the revenue

    def no_time(self, *args, **kwargs):
        raise TimeLimitError("no plan in the time left")

    monkeypatch.setattr(TerritoryModel, "solve", no_time)
    with pytest.raises(TimeLimitError) as err:
        _run(acc, balance_fields=["revenue"], tolerance_pct=10)
    text = str(err.value)
    assert "far from balanced: at least" in text
    assert "designterritories" in text
    assert "time left" not in text  # rebuilt for the run's TIME_LIMIT (20 s in _run)
    assert "about 60 s is likely enough" in text


def _exact_on_pairs(model: TerritoryModel, mask: np.ndarray) -> float | None:
    """PuLP: the cheapest plan of the model on the allowed pairs of ``mask`` (None: none)."""
    mask = mask & model.pairs()
    _, lo, hi = model.bounds()
    prob = pulp.LpProblem("pairs", pulp.LpMinimize)
    x = {(i, j): pulp.LpVariable(f"x_{i}_{j}", cat="Binary") for i, j in zip(*np.nonzero(mask))}
    prob += pulp.lpSum(model.cost[i, j] * v for (i, j), v in x.items())
    for i in range(model.n):
        prob += pulp.lpSum(v for (r, _), v in x.items() if r == i) == 1
    for j in range(model.k):
        for m in range(model.values.shape[1]):
            total = pulp.lpSum(model.values[i, m] * v for (i, c), v in x.items() if c == j)
            prob += total <= hi[j, m]
            prob += total >= lo[j, m]
    if model.budget is not None:
        has = model.current >= 0
        moved = pulp.lpSum(v for (i, j), v in x.items() if has[i] and model.current[i] != j)
        prob += moved <= model.budget
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=30))
    return float(pulp.value(prob.objective)) if pulp.LpStatus[prob.status] == "Optimal" else None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(6, 16), k=st.integers(2, 4),
       density=st.floats(0.3, 1.0), budget=st.one_of(st.none(), st.integers(0, 6)),
       lock=st.booleans())  # fmt: skip
def test_solve_on_pairs_matches_the_exact_milp_on_its_pairs(seed, n, k, density, budget, lock):
    """Any plan returned keeps every hard constraint and uses only the given pairs; when the
    pairs allow a plan one is returned, at the exact optimum of the restriction."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(1, 10, (n, 2))
    current = rng.integers(0, k, n)
    locks = np.full(n, -1)
    if lock:
        locks[0] = (current[0] + 1) % k
    model = TerritoryModel.from_cost_matrix(
        rng.uniform(0, 5, (n, k)), values=values, capacity=np.ones(k), tolerance_pct=40.0,
        locks=locks, current=current, budget=budget,
    )  # fmt: skip
    mask = rng.random((n, k)) < density
    mask[np.arange(n), current] = True
    exact = _exact_on_pairs(model, mask)

    def no_priced_plan(*args, **kwargs):
        raise NoPlanFoundError(proven=False)

    for priced in (True, False):  # with the priced path's start, and the MILP alone
        with pytest.MonkeyPatch.context() as mp:
            if not priced:
                mp.setattr(model_module, "solve_balanced", no_priced_plan)
            plan = model.solve_on_pairs(mask, time_limit_s=10)
        if plan is None:
            assert exact is None
            continue
        model.verify(plan)
        assert (mask & model.pairs())[np.arange(n), plan].all()
        assert exact is not None
        assert model.objective_of(plan) == pytest.approx(exact, abs=1e-6)
