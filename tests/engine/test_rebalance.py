"""rebalanceterritories engine: fewest moves (exact on small cases), handovers, budget messages."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.errors import InfeasibleError, InvalidInputError
from territory_planner_plugin.rebalance import MOVE_COLUMNS, rebalance_territories
from territory_planner_plugin.territories import EXACT_PAIRS, design_territories
from tests.engine.helpers import random_accounts, random_reps


def _run(acc, reps=None, **kwargs):
    """rebalance_territories, checking that neither input is modified."""
    before = acc.copy()
    reps_before = None if reps is None else reps.copy()
    kwargs.setdefault("id_field", "id")
    kwargs.setdefault("current_field", "current")
    if reps is not None:
        kwargs.setdefault("rep_id_field", "rep")
    try:
        return rebalance_territories(acc, reps=reps, time_limit_s=20, **kwargs)
    finally:
        assert acc.equals(before), "ACCOUNTS modified"
        assert reps is None or reps.equals(reps_before), "REPS modified"


def _balanced(n=60, k=3, seed=0, tol=10.0):
    """Accounts whose 'current' is a balanced designterritories plan, and the reps."""
    acc, reps = random_accounts(n, seed), random_reps(k, seed + 1)
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue"], tolerance_pct=tol)  # fmt: skip
    acc["current"] = plan.accounts["territory_id"].to_numpy()
    return acc, reps


def _unbalance(acc, seed=0):
    """Triple the revenue of a third of one territory's accounts: that territory is now too big."""
    out = acc.copy()
    rng = np.random.default_rng(seed)
    members = np.flatnonzero(out["current"].to_numpy() == out["current"].iloc[0])
    grow = rng.choice(members, max(1, len(members) // 3), replace=False)
    out.loc[out.index[grow], "revenue"] *= 3
    return out


def _deviation_ok(out, field, tol, territory_ids, capacity=None):
    totals = out.groupby("territory_id")[field].sum().reindex(territory_ids, fill_value=0)
    cap = np.ones(len(territory_ids)) if capacity is None else np.asarray(capacity, float)
    target = out[field].sum() * cap / cap.sum()
    return bool((np.abs(totals.to_numpy() - target) <= tol / 100 * target + 1e-6).all())


def _check_moves_table(res, acc, current="current"):
    """Every account that changed hands is listed once, with from/to/reason; nobody else moved."""
    out, moves = res.plan.accounts, res.moves
    assert tuple(moves.columns) == MOVE_COLUMNS
    cur = acc[current].where(acc[current].notna(), None).map(lambda v: "" if v is None else str(v))
    changed = (cur.to_numpy() == "") | (out["territory_id"].astype(str).to_numpy() != cur)
    assert sorted(moves["account_id"]) == sorted(acc.loc[changed, "id"])
    assert moves["account_id"].is_unique
    assert moves["to_id"].notna().all()
    assert moves["reason"].notna().all()
    by_id = out.set_index("id")["territory_id"]
    assert (moves["to_id"].to_numpy() == by_id.loc[moves["account_id"]].to_numpy()).all()
    kept = ~changed
    assert (out.loc[kept, "territory_id"].to_numpy() == acc.loc[kept, current].to_numpy()).all()
    old = moves["from_id"].where(moves["from_id"].notna(), None)
    has_old = old.notna().to_numpy()
    assert (
        moves.loc[has_old, "from_id"].to_numpy() != moves.loc[has_old, "to_id"].to_numpy()
    ).all()


# (a) ------------------------------------------------------------------------------------------


def test_balanced_plan_with_nothing_changed_moves_nothing() -> None:
    acc, reps = _balanced()
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10)
    assert len(res.moves) == 0
    assert tuple(res.moves.columns) == MOVE_COLUMNS
    assert res.plan.moved == 0
    assert res.plan.objective == 0
    assert res.moves_lower_bound == 0
    assert (res.plan.accounts["territory_id"].to_numpy() == acc["current"].to_numpy()).all()
    # also without REPS (territories = today's ids) and with a zero budget
    res = _run(acc, balance_fields=["revenue"], tolerance_pct=10, max_moves_pct=0)
    assert len(res.moves) == 0


# (b) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_changed_values_are_rebalanced_with_few_listed_moves(seed: int) -> None:
    acc, reps = _balanced(seed=seed)
    acc = _unbalance(acc, seed)
    assert not _deviation_ok(acc.assign(territory_id=acc["current"]), "revenue", 10, reps["rep"])
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10)
    out = res.plan.accounts
    assert _deviation_ok(out, "revenue", 10, reps["rep"])
    assert res.plan.max_deviation_pct <= 10 + 1e-6
    assert res.plan.moved >= 1
    assert res.plan.moved >= res.moves_lower_bound
    assert res.plan.objective == res.plan.moved  # accounts moved is the objective
    assert len(res.moves) == res.plan.moved
    assert set(res.moves["reason"]) == {"balance"}
    assert (res.moves["moved_value"] == 1.0).all()
    assert res.moves["centre_km"].ge(0).all()
    _check_moves_table(res, acc)
    assert int(out["moved"].sum()) == res.plan.moved
    for key in ("kpis", "summary", "territories", "centres"):
        assert getattr(res.plan, key) is not None


# (c) ------------------------------------------------------------------------------------------


def _exact_min_moves(acc, field, tol, weight=None):
    """PuLP: fewest moves (or least moved weight) that put every territory within tolerance."""
    cur = acc["current"].to_numpy()
    ter = sorted(set(cur))
    v = acc[field].to_numpy(float)
    w = np.ones(len(acc)) if weight is None else acc[weight].to_numpy(float)
    target = v.sum() / len(ter)
    prob = pulp.LpProblem("exact_moves", pulp.LpMinimize)
    x = {(i, t): pulp.LpVariable(f"x_{i}_{t}", cat="Binary") for i in range(len(acc)) for t in ter}
    prob += pulp.lpSum(w[i] * (1 - x[(i, cur[i])]) for i in range(len(acc)))
    for i in range(len(acc)):
        prob += pulp.lpSum(x[(i, t)] for t in ter) == 1
    for t in ter:
        total = pulp.lpSum(v[i] * x[(i, t)] for i in range(len(acc)))
        prob += total <= target * (1 + tol / 100)
        prob += total >= target * (1 - tol / 100)
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=60))
    assert pulp.LpStatus[prob.status] == "Optimal"
    return float(pulp.value(prob.objective))


@pytest.mark.parametrize(("n", "seed", "weight"), [(45, 0, None), (60, 3, None), (50, 5, "visits")])
def test_moves_equal_the_exact_minimum_on_small_instances(n, seed, weight) -> None:
    acc = random_accounts(n, seed)
    rng = np.random.default_rng(seed + 100)
    acc["current"] = [f"T{j}" for j in rng.integers(0, 3, n)]
    assert n * 3 <= EXACT_PAIRS  # the exact path of territories._solve
    exact = _exact_min_moves(acc, "revenue", 10, weight)
    res = _run(acc, balance_fields=["revenue"], tolerance_pct=10, minimise_field=weight)
    assert _deviation_ok(res.plan.accounts, "revenue", 10, ["T0", "T1", "T2"])
    if weight is None:
        assert res.plan.moved == round(exact)
    moved_value = res.moves["moved_value"].sum()
    assert moved_value == pytest.approx(exact, abs=1e-6)
    assert res.plan.objective == pytest.approx(exact, abs=1e-6)
    assert res.moves_lower_bound <= res.plan.objective + 1e-6
    _check_moves_table(res, acc)


# (d) ------------------------------------------------------------------------------------------


def test_departing_rep_is_handed_over_and_new_accounts_are_placed() -> None:
    acc, reps4 = _balanced(n=60, k=4, seed=4, tol=15)
    acc.loc[acc.index[[0, 7, 11]], "current"] = None  # three new accounts
    reps = reps4[reps4["rep"] != "R3"].reset_index(drop=True)  # R3 leaves
    gone = acc["current"].to_numpy() == "R3"
    new = acc["current"].isna().to_numpy()
    assert gone.any()
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=15)
    out, moves = res.plan.accounts, res.moves.set_index("account_id")
    assert set(out["territory_id"]) <= {"R0", "R1", "R2"}
    assert _deviation_ok(out, "revenue", 15, reps["rep"])
    left = moves.loc[acc.loc[gone, "id"]]
    assert (left["reason"] == "rep left").all()
    assert (left["from_id"] == "R3").all()
    assert left["to_id"].isin(["R0", "R1", "R2"]).all()
    placed = moves.loc[acc.loc[new, "id"]]
    assert (placed["reason"] == "new account").all()
    assert placed["from_id"].isna().all()
    assert placed["to_id"].isin(["R0", "R1", "R2"]).all()
    assert (out.set_index("id").loc[acc.loc[gone | new, "id"], "reason"] != "").all()
    # handovers and new accounts are not moves (nor part of MAX_MOVES)
    balance_moves = int((moves["reason"] == "balance").sum())
    assert res.plan.moved == balance_moves
    assert res.moves_lower_bound <= res.plan.moved
    _check_moves_table(res, acc)


def test_joining_rep_gets_accounts_from_the_neighbours() -> None:
    acc, reps = _balanced(n=60, k=3, seed=6, tol=10)
    joined = pd.concat([reps, random_reps(4, 99).iloc[[3]].assign(rep="R_new")], ignore_index=True)
    res = _run(acc, joined, balance_fields=["revenue"], tolerance_pct=10)
    out = res.plan.accounts
    assert (out["territory_id"] == "R_new").sum() > 0
    assert _deviation_ok(out, "revenue", 10, joined["rep"])
    assert (res.moves["to_id"] == "R_new").sum() > 0
    assert set(res.moves["reason"]) == {"balance"}
    assert res.plan.moved == len(res.moves) >= res.moves_lower_bound
    _check_moves_table(res, acc)


def test_locks_hold_and_locked_moves_are_named() -> None:
    acc, reps = _balanced(seed=2)
    acc = _unbalance(acc, 2)
    acc["lock"] = None
    first = acc.index[0]
    other = next(r for r in reps["rep"] if r != acc.loc[first, "current"])
    acc.loc[first, "lock"] = other  # an appeal: this account must go to `other`
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10, lock_field="lock")
    out = res.plan.accounts
    assert out.loc[first, "territory_id"] == other
    row = res.moves.set_index("account_id").loc[acc.loc[first, "id"]]
    assert row["reason"] == "locked"
    assert row["to_id"] == other
    _check_moves_table(res, acc)


# (e) ------------------------------------------------------------------------------------------


def test_small_budget_says_what_budget_suffices() -> None:
    acc, reps = _balanced(seed=1)
    acc = _unbalance(acc, 1)
    need = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10).plan.moved
    assert need >= 2
    small = 100 * (need - 1) / len(acc)  # one move short
    with pytest.raises(InfeasibleError, match="MAX_MOVES allows") as err:
        _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10, max_moves_pct=small)
    found = re.search(r"set MAX_MOVES to at least (\d+(?:\.\d+)?)%", str(err.value))
    assert found, str(err.value)
    suggested = float(found.group(1))
    assert suggested > small
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10, max_moves_pct=suggested)
    assert res.plan.moved <= math.floor(suggested / 100 * len(acc) + 1e-9)
    assert res.plan.moved == need
    assert _deviation_ok(res.plan.accounts, "revenue", 10, reps["rep"])


def test_zero_budget_with_unbalanced_input_is_named() -> None:
    acc, reps = _balanced(seed=0)
    acc = _unbalance(acc, 0)
    with pytest.raises(InfeasibleError, match=r"MAX_MOVES allows 0 moves") as err:
        _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10, max_moves_pct=0)
    assert re.search(r"at least \d+(\.\d+)?%", str(err.value))


# bad input ------------------------------------------------------------------------------------


def test_bad_current_field_is_named() -> None:
    acc, _ = _balanced()
    with pytest.raises(InvalidInputError, match="CURRENT_FIELD"):
        _run(acc, current_field="nope", balance_fields=["revenue"])
    empty = acc.assign(current=None)
    with pytest.raises(InvalidInputError, match="CURRENT_FIELD"):
        _run(empty, balance_fields=["revenue"])


def test_missing_current_values_are_new_accounts_not_errors() -> None:
    acc, reps = _balanced(seed=3)
    acc.loc[acc.index[:5], "current"] = np.nan
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10)
    assert set(res.moves.set_index("account_id").loc[acc["id"][:5], "reason"]) == {"new account"}
    assert res.plan.accounts["territory_id"].notna().all()


# (g) ------------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(20, 60),
    k=st.integers(2, 4),
    tol=st.integers(5, 20),
    seed=st.integers(0, 10_000),
    n_locks=st.integers(0, 4),
    moves=st.one_of(st.none(), st.sampled_from([5.0, 20.0, 50.0])),
    with_reps=st.booleans(),
)
def test_constraints_hold_or_infeasibility_is_named(n, k, tol, seed, n_locks, moves, with_reps):
    acc = random_accounts(n, seed)
    reps = random_reps(k, seed + 1) if with_reps else None
    rng = np.random.default_rng(seed)
    acc["current"] = [f"R{j}" for j in rng.integers(0, k, n)]
    acc["lock"] = None
    for i in rng.choice(n, n_locks, replace=False):
        acc.loc[i, "lock"] = acc["current"].iloc[int(rng.integers(0, n))]
    ids = [f"R{j}" for j in range(k)] if with_reps else sorted(set(acc["current"]))
    try:
        res = _run(acc, reps, balance_fields=["revenue", "visits"], tolerance_pct=float(tol),
                   lock_field="lock", max_moves_pct=moves)  # fmt: skip
    except InfeasibleError as err:
        message = str(err)
        assert any(word in message for word in ("TOLERANCE", "MAX_MOVES", "Locked")), message
        return
    out = res.plan.accounts
    assert len(out) == n
    assert out["territory_id"].notna().all()
    locked = acc["lock"].notna()
    assert (out.loc[locked, "territory_id"] == acc.loc[locked, "lock"]).all()
    for field in ("revenue", "visits"):
        assert _deviation_ok(out, field, tol, ids)
    moved = int((out["territory_id"] != acc["current"]).sum())
    assert moved == res.plan.moved
    if moves is not None:
        assert moved <= math.floor(moves / 100 * n + 1e-9)
    assert res.moves_lower_bound <= moved + 1e-9
    _check_moves_table(res, acc)


def test_large_path_keeps_constraints() -> None:
    """Beyond EXACT_PAIRS the Lagrangian path: constraints still hold, the bound is a bound."""
    acc, reps = random_accounts(400, 8), random_reps(4, 9)
    rng = np.random.default_rng(8)
    acc["current"] = [f"R{j}" for j in rng.integers(0, 4, len(acc))]
    acc["lock"] = None
    acc.loc[acc.index[:6], "lock"] = acc["current"].iloc[:6].to_numpy()  # kept where they are
    acc.loc[acc.index[6:9], "lock"] = ["R0", "R1", "R2"]  # appeals: may differ from today
    assert len(acc) * len(reps) > EXACT_PAIRS
    res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10, max_moves_pct=50,
               lock_field="lock")  # fmt: skip
    out = res.plan.accounts
    locked = acc["lock"].notna()
    assert (out.loc[locked, "territory_id"] == acc.loc[locked, "lock"]).all()
    assert _deviation_ok(out, "revenue", 10, reps["rep"])
    assert res.moves_lower_bound <= res.plan.moved <= 200
    _check_moves_table(res, acc)


@pytest.mark.parametrize("seed", range(6))
def test_counting_bound_never_exceeds_the_exact_minimum(seed: int) -> None:
    """The cover bound (largest accounts needed to close each gap) is a valid lower bound."""
    from territory_planner_plugin import rebalance as rb
    from territory_planner_plugin.model import TerritoryModel

    acc = random_accounts(40, seed)
    rng = np.random.default_rng(seed + 7)
    acc["current"] = [f"T{j}" for j in rng.choice(3, 40, p=[0.5, 0.3, 0.2])]  # unbalanced
    exact = _exact_min_moves(acc, "revenue", 10, None)
    values = acc[["revenue"]].to_numpy(float)
    model = TerritoryModel.from_cost_matrix(np.zeros((40, 3)), values=values, capacity=np.ones(3),
                                            tolerance_pct=10.0)  # fmt: skip
    _, lo, hi = model.bounds()
    current = np.array([int(c[1]) for c in acc["current"]])
    bound = rb._cover_bound(values, lo, hi, np.full(40, -1), current, np.ones((40, 3), bool))
    assert 0 < bound <= exact + 1e-9
    res = _run(acc, balance_fields=["revenue"], tolerance_pct=10)
    assert res.moves_lower_bound >= bound
