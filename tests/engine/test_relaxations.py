"""Every relaxation an infeasible run proposes works: re-running with it gives a plan.

Random small cases (a few accounts, 2-3 reps, tight tolerances, sometimes locks, a disruption
budget or REP_MAX_MINUTES) that are often infeasible. Each change the message proposes
(TOLERANCE, MAX_MOVES, unlocking, clearing REP_MAX_MINUTES) is applied alone and must give a plan
that keeps its bands; values stay within the parameters' ranges, nothing is "a little", and a
parameter that was not set is never blamed.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.errors import InfeasibleError
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps

TIME_LIMIT_S = 2.0


def _suggestions(message: str) -> dict[str, object]:
    found: dict[str, object] = {}
    tol = re.search(r"set TOLERANCE to at least ([0-9.]+)%", message)
    if tol:
        found["tolerance_pct"] = float(tol.group(1))
    moves = re.search(r"set MAX_MOVES to at least ([0-9.]+)%", message)
    if moves:
        found["max_moves_pct"] = float(moves.group(1))
    if re.search(r"unlock the \d+ locked accounts", message):
        found["lock_field"] = None
    if "clear REP_MAX_MINUTES" in message:
        found["rep_max_minutes"] = None
    return found


def _case(n, k, seed, tol, heavy, lock, budget, reach):
    acc = random_accounts(n, seed)
    if heavy:
        acc.loc[0, "revenue"] = float(acc["revenue"].sum() * heavy)
    reps = random_reps(k, seed + 1)
    kw = {"id_field": "id", "reps": reps, "rep_id_field": "rep", "balance_fields": ["revenue"],
          "tolerance_pct": tol, "time_limit_s": TIME_LIMIT_S}  # fmt: skip
    if lock:
        acc["lock"] = None
        acc.loc[list(range(lock)), "lock"] = "R0"
        kw["lock_field"] = "lock"
    if budget is not None:
        acc["current"] = ["R0"] * (n - 2) + ["R1"] * 2  # unbalanced today
        kw["current_field"] = "current"
        kw["max_moves_pct"] = budget
    if reach:
        kw["rep_max_minutes"] = reach
    return acc, kw


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(6, 12),
    k=st.integers(2, 3),
    seed=st.integers(0, 50),
    tol=st.sampled_from([0.0, 0.5, 2.0, 5.0]),
    heavy=st.sampled_from([0, 0, 0, 1.0, 99.0]),
    lock=st.sampled_from([0, 0, 2, 4]),
    budget=st.sampled_from([None, None, 0.0, 10.0]),
    reach=st.sampled_from([None, None, 20.0]),
)
def test_proposed_relaxations_work(n, k, seed, tol, heavy, lock, budget, reach):
    acc, kw = _case(n, k, seed, tol, heavy, lock, budget, reach)
    try:
        design_territories(acc, **kw)
    except InfeasibleError as err:
        message = str(err)
    else:
        return
    assert "a little" not in message
    assert "Traceback" not in message
    if not lock:
        assert "LOCK_FIELD" not in message, message
        assert "unlock" not in message, message
    if reach is None:
        assert "REP_MAX_MINUTES" not in message, message
    if budget is None:
        assert "MAX_MOVES" not in message, message
    proposed = _suggestions(message)
    assert (proposed or "No single change" in message or "ran out of time" in message
            or "No relaxation of the other rules" in message), message  # fmt: skip
    if "tolerance_pct" in proposed:
        assert tol < proposed["tolerance_pct"] <= 99.0
    if "max_moves_pct" in proposed:
        assert budget < proposed["max_moves_pct"] <= 100.0
    for key, value in proposed.items():
        plan = design_territories(acc, **{**kw, key: value})  # raises when the check was wrong
        bound = value if key == "tolerance_pct" else kw["tolerance_pct"]
        assert plan.summary["revenue_dev_pct"].abs().max() <= bound + 1e-6


def test_a_dominant_account_is_named_and_no_tolerance_is_proposed():
    """One account with 99 % of the revenue: no TOLERANCE in range works, and it says why."""
    acc, kw = _case(8, 3, 1, 5.0, 99.0, 0, None, None)
    with pytest.raises(InfeasibleError) as err:
        design_territories(acc, **kw)
    message = str(err.value)
    assert re.search(r"Account A0 alone holds 99\.\d% of revenue", message), message
    assert "fewer territories give each a larger share (lower TERRITORIES" in message
    assert "set TOLERANCE" not in message


def test_suggested_tolerance_is_the_least_that_works():
    """The proposed TOLERANCE works and 0.1 % less does not (the grid of the message)."""
    acc = random_accounts(10, 3)
    kw = {"id_field": "id", "reps": random_reps(3, 4), "rep_id_field": "rep",
          "balance_fields": ["revenue"], "time_limit_s": 5.0}  # fmt: skip
    with pytest.raises(InfeasibleError) as err:
        design_territories(acc, tolerance_pct=0.0, **kw)
    need = float(re.search(r"TOLERANCE to at least ([0-9.]+)%", str(err.value)).group(1))
    design_territories(acc, tolerance_pct=need, **kw)
    below = round(need - 0.1, 1)
    if below > 0:
        with pytest.raises(InfeasibleError):
            design_territories(acc, tolerance_pct=below, **kw)
    assert np.isfinite(need)
