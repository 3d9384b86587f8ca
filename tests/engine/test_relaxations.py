"""Every relaxation an infeasible run proposes works: re-running with it gives a plan.

Random small cases (a few accounts, 2-3 reps, tight tolerances, sometimes locks, a disruption
budget or REP_MAX_MINUTES) that are often infeasible. Each change the message proposes
(TOLERANCE, MAX_MOVES, unlocking, the least REP_MAX_MINUTES) is applied alone and must give a plan
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
    minutes = re.search(r"set REP_MAX_MINUTES to at least ([\d.]+) min", message)
    if minutes:
        found["rep_max_minutes"] = float(minutes.group(1))
    if "clear REP_MAX_MINUTES" in message or re.search(
        r"REP_MAX_MINUTES to at least [^;]* or clear it", message
    ):
        found["rep_max_minutes_cleared"] = None
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
    if "rep_max_minutes" in proposed:
        assert reach < proposed["rep_max_minutes"]
    for key, value in proposed.items():
        key = key.removesuffix("_cleared")
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


def test_an_account_above_every_band_is_named_with_the_tolerance_it_needs():
    """One account 20 % above a territory's target, TOLERANCE 5 %: the message names it and its
    figures before any search, and proposes the least TOLERANCE that works (0.1 % less fails)."""
    acc, kw = _case(9, 3, 2, 5.0, 0, 0, None, None)
    rest = float(acc.loc[1:, "revenue"].sum())
    acc.loc[0, "revenue"] = 2.0 * rest / 3.0  # 40 % of the total: target 33.3 % x 1.2
    with pytest.raises(InfeasibleError) as err:
        design_territories(acc, **kw)
    message = str(err.value)
    assert re.search(r"Account A0 alone holds [0-9,.]+ of revenue \(40\.0%\), 20\.0% above the "
                     r"largest territory target", message), message  # fmt: skip
    assert "at TOLERANCE 5% no territory may hold more than" in message, message
    need = float(re.search(r"TOLERANCE to at least ([0-9.]+)%", message).group(1))
    assert 20.0 <= need <= 20.1, message
    design_territories(acc, **{**kw, "tolerance_pct": need})
    with pytest.raises(InfeasibleError, match="Account A0 alone holds"):
        design_territories(acc, **{**kw, "tolerance_pct": round(need - 0.1, 1)})


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


def _split_by_locks(ends_by: float | None):
    """A 1 x 5 path, T01 locked at both ends and T02 in the middle: no plan in one piece, a plan
    without contiguity (the 'units-locks' case of tests/e2e in small)."""
    import scipy.sparse as sp

    from territory_planner_plugin.model import TerritoryModel

    adj = sp.diags([np.ones(4), np.ones(4)], [1, -1], shape=(5, 5)).tocsr()
    cost = np.abs(np.arange(5.0)[:, None] - np.array([0.0, 4.0])[None, :])
    return TerritoryModel.from_cost_matrix(
        cost, values=np.ones(5), capacity=np.ones(2), tolerance_pct=50.0,
        locks=np.array([0, -1, 1, -1, 0]), adjacency=adj, noun="units", ends_by=ends_by,
    )  # fmt: skip


def test_a_failure_at_time_limit_checks_within_what_is_left(monkeypatch):
    """A run that fails as TIME_LIMIT ends checks its relaxations in CHECK_MIN_S at most, and
    names CONTIGUOUS off without a check when the plan without contiguity was found."""
    import time

    from territory_planner_plugin import model as model_module

    asked: list[float] = []
    works = model_module.TerritoryModel._works

    def timed(self, deadline, solver, **change):
        asked.append(deadline - time.perf_counter())
        assert change != {"contiguous": False}, "CONTIGUOUS off was checked again"
        return works(self, deadline, solver, **change)

    monkeypatch.setattr(model_module.TerritoryModel, "_works", timed)
    m = _split_by_locks(ends_by=time.perf_counter() - 1.0)  # the run's end has passed
    with pytest.raises(InfeasibleError) as err:
        m.solve("CBC", time_limit_s=5.0)
    text = str(err.value)
    assert "Checked by solving" in text, text
    assert "turn CONTIGUOUS off" in text, text
    assert asked
    assert max(asked) <= model_module.CHECK_MIN_S + 1e-6
    free = _split_by_locks(ends_by=None)
    free.contiguous = False
    plan = free.solve("CBC", time_limit_s=5.0).assign  # the advice holds
    free.verify(plan)


def test_without_the_runs_end_the_checks_get_time_limit_again():
    import time

    from territory_planner_plugin.model import CHECK_MIN_S

    m = _split_by_locks(ends_by=None)
    now = time.perf_counter()
    assert 9.0 <= m._checks_end(10.0) - now <= 10.5
    assert 4.9 <= m._checks_end(1.0) - now <= 5.5  # at least 5 s
    m.ends_by = now + 30.0
    assert m._checks_end(10.0) == m.ends_by  # what is left of the run
    m.ends_by = now - 5.0
    assert m._checks_end(10.0) - time.perf_counter() <= CHECK_MIN_S


def test_a_half_band_too_tight_for_one_account_costs_no_relaxation_search(monkeypatch):
    """The centres also try half of TOLERANCE; an account that fits at TOLERANCE but not at half
    of it makes that try fail at once, without searching relaxations (solves) nobody reads."""
    from territory_planner_plugin.model import TerritoryModel

    searched = []
    real = TerritoryModel.relaxations

    def counted(self, *args, **kwargs):
        searched.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TerritoryModel, "relaxations", counted)
    acc = random_accounts(30, 5)
    rest = float(acc.loc[1:, "revenue"].sum())
    acc.loc[0, "revenue"] = 0.4 * rest / 0.6  # 40 % of the total: 1.2 x the target of 3
    plan = design_territories(acc, id_field="id", n_territories=3, balance_fields=["revenue"],
                              tolerance_pct=25.0, time_limit_s=5.0)  # fmt: skip
    assert plan.summary["revenue_dev_pct"].abs().max() <= 25.0 + 1e-6
    assert not searched


def _reach_model(max_minutes: float, *, scale: float = 1.0, **kw):
    """Four equal rows, two territories of exactly two each; within 60 min every row reaches
    T0 only (T1 is 70, 75, 83 and 90 min away); ``scale`` multiplies every minute."""
    from territory_planner_plugin.model import TerritoryModel

    reach = scale * np.array([[5.0, 70.0], [5.0, 90.0], [5.0, 75.0], [5.0, 83.0]])
    return TerritoryModel.from_cost_matrix(
        reach.copy(), values=np.ones(4), capacity=np.ones(2), tolerance_pct=0.0, reach=reach,
        max_minutes=max_minutes, **kw,
    )  # fmt: skip


def test_the_least_rep_max_minutes_is_named_and_one_minute_less_fails():
    """REP_MAX_MINUTES 60: the message names 75 min (the second-nearest row to T1), found by
    solving; 75 gives a plan and 74 none."""
    with pytest.raises(InfeasibleError) as err:
        _reach_model(60.0).solve("CBC", time_limit_s=5.0)
    text = str(err.value)
    assert (
        "set REP_MAX_MINUTES to at least 75 min (the least found to give a plan, to 1 min" in text
    )
    assert "or clear it" not in text, text
    works = _reach_model(75.0)
    works.verify(works.solve("CBC", time_limit_s=5.0).assign)
    fails = _reach_model(74.0)
    fails._probe = True
    with pytest.raises(InfeasibleError):
        fails.solve("CBC", time_limit_s=5.0)


def test_a_small_area_gets_rep_max_minutes_to_a_tenth_of_a_minute():
    """The same rows a hundredth as far (a small study area: T1 0.70-0.90 min away) and
    REP_MAX_MINUTES 0.6: the message names 0.75 rounded up to the tenth, 0.8 min (not "1 min"),
    and 0.8 gives a plan while 0.7 does not."""
    with pytest.raises(InfeasibleError) as err:
        _reach_model(0.6, scale=0.01).solve("CBC", time_limit_s=5.0)
    text = str(err.value)
    assert (
        "set REP_MAX_MINUTES to at least 0.8 min (the least found to give a plan, to 0.1 min"
        in (text)
    ), text
    works = _reach_model(0.8, scale=0.01)
    works.verify(works.solve("CBC", time_limit_s=5.0).assign)
    fails = _reach_model(0.7, scale=0.01)
    fails._probe = True
    with pytest.raises(InfeasibleError):
        fails.solve("CBC", time_limit_s=5.0)


def test_clearing_rep_max_minutes_is_not_claimed_when_another_pair_rule_blocks():
    """SKILL_RULE hard bars T1 for rows 0-2 and REP_MAX_MINUTES bars row 3 from T1: clearing
    REP_MAX_MINUTES alone still leaves T0 three rows, so the message must not propose it (the
    old check allowed every pair); lifting the skill rule alone works, and is proposed."""
    from territory_planner_plugin.coverage import SKILL_PAIR_RULE

    rule = np.array([[True, False], [True, False], [True, False], [True, True]])
    kw = {"rule_allowed": rule, "pair_rule": SKILL_PAIR_RULE}
    model = _reach_model(80.0, **kw)  # rows 0 and 2 reach T1 within 80 min, the rule bars them
    with pytest.raises(InfeasibleError) as err:
        model.solve("CBC", time_limit_s=5.0)
    text = str(err.value)
    assert "REP_MAX_MINUTES to at least" not in text, text
    assert "clear REP_MAX_MINUTES" not in text, text
    assert "set SKILL_RULE to soft" in text, text
    assert "With these REP_MAX_MINUTES and SKILL_RULE hard" in text or "Checked by solving" in text
    lifted = _reach_model(80.0)  # the advice applied: the rule dropped, REP_MAX_MINUTES kept
    lifted.verify(lifted.solve("CBC", time_limit_s=5.0).assign)


def test_no_rep_max_minutes_is_searched_when_the_pair_rule_leaves_a_row_no_rep():
    """Row 1 has no rep SKILL_RULE hard allows: no REP_MAX_MINUTES can help, so none is
    searched (and nothing breaks on its infinite distance); lifting the rule is checked."""
    from territory_planner_plugin.coverage import SKILL_PAIR_RULE

    rule = np.array([[True, True], [False, False], [True, True], [True, True]])
    model = _reach_model(60.0, rule_allowed=rule, pair_rule=SKILL_PAIR_RULE)
    model.ends_by = None
    with pytest.raises(InfeasibleError) as err:
        model.precheck()
    text = str(err.value)
    assert "SKILL_RULE hard: accounts ['#1'] have no rep the rule allows" in text, text
    assert "REP_MAX_MINUTES to at least" not in text, text


@pytest.mark.parametrize(
    ("rule", "minutes", "words", "lift"),
    [
        (True, False, "(SKILL_RULE hard)", "set SKILL_RULE to soft"),
        (True, True, "(REP_MAX_MINUTES and SKILL_RULE hard)", "set SKILL_RULE to soft"),
        (False, True, "(REP_MAX_MINUTES)", "set REP_MAX_MINUTES to at least 9 min"),
    ],
)
def test_contiguity_finding_names_the_rule_that_bars_the_pairs(rule, minutes, words, lift) -> None:
    """A unit whose neighbours' territories are all barred to it (units 1 and 3 are locked to
    T01, unit 2 may not be in T01, T02 holds only unit 4 out of its reach): the finding names
    what bars it, SKILL_RULE hard, REP_MAX_MINUTES or both, not REP_MAX_MINUTES whatever the
    rule, and its relaxation (checked) lifts that rule."""
    import scipy.sparse as sp

    from territory_planner_plugin.coverage import SKILL_PAIR_RULE
    from territory_planner_plugin.model import TerritoryModel

    n, edges = 5, [(0, 1), (1, 3), (1, 2), (2, 3), (3, 4)]
    a, b = np.array(edges).T
    adjacency = sp.csr_matrix((np.ones(2 * len(edges)), (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    kw = {}
    if rule:
        allowed = np.ones((n, 2), bool)
        allowed[2, 0] = False
        kw.update(rule_allowed=allowed, pair_rule=SKILL_PAIR_RULE)
    if minutes:
        reach = np.ones((n, 2))
        reach[2 if not rule else 0, 0 if not rule else 1] = 9.0
        kw.update(reach=reach, max_minutes=5.0)
    model = TerritoryModel.from_cost_matrix(
        np.ones((n, 2)), values=np.ones(n), capacity=np.ones(2), tolerance_pct=99.0,
        locks=np.array([0, 0, -1, 0, 1]), adjacency=adjacency, contiguous=True, **kw,
    )  # fmt: skip
    with pytest.raises(InfeasibleError) as err:
        model.solve(time_limit_s=5)
    text = str(err.value)
    assert f"Units ['#2'] can join none of their neighbouring territories {words}" in text, text
    assert lift in text, text
    if not minutes:
        assert "REP_MAX_MINUTES" not in text, text
