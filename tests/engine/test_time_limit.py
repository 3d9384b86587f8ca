"""TIME_LIMIT is wall time: the plan search stops at the deadline, keeping its best plan, and says
so when it has none (issue 14). A clock that jumps replaces timing: no timed tests."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from territory_planner_plugin import assignment
from territory_planner_plugin.errors import SolverError
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import random_accounts, random_reps


class _JumpingClock:
    """``time`` stand-in whose perf_counter moves ``step`` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self._ticks = itertools.count()
        self.step = step

    def perf_counter(self) -> float:
        return next(self._ticks) * self.step


def _design(**kw):
    return design_territories(random_accounts(300, 3), id_field="id", reps=random_reps(5, 4),
                              rep_id_field="rep", balance_fields=["revenue"], **kw)  # fmt: skip


def test_no_plan_by_the_deadline_says_raise_time_limit(monkeypatch) -> None:
    monkeypatch.setattr(assignment, "time", _JumpingClock(1000.0))  # every step overruns
    with pytest.raises(
        SolverError,
        match=r"TIME_LIMIT was reached before any plan .*\(300 "
        r"accounts x 5 territories\)\. Raise TIME_LIMIT",
    ):
        _design(time_limit_s=60)


def test_a_plan_found_is_kept_when_the_deadline_passes() -> None:
    c = np.array([[1.0, 5.0], [5.0, 1.0], [1.0, 2.0], [2.0, 1.0]])
    values = np.ones((4, 1))
    lo, hi = np.full((2, 1), 2.0), np.full((2, 1), 2.0)
    plan = np.array([1, 0, 0, 1])  # balanced, but every account in its farther territory
    cand = np.ones_like(c, bool)
    kept = assignment._local_search(c, values, lo, hi, None, None, plan, cand, end=-np.inf)
    assert kept.tolist() == plan.tolist()  # stopped at once: the plan so far, still balanced
    better = assignment._local_search(c, values, lo, hi, None, None, plan, cand)
    assert c[np.arange(4), better].sum() < c[np.arange(4), plan].sum()


def test_primal_without_time_raises_timed_out() -> None:
    c = np.array([[1.0, 5.0], [5.0, 1.0]])
    priced = c.copy()
    with pytest.raises(assignment.NoPlanFoundError) as err:
        assignment._primal(c, np.ones((2, 1)), np.ones((2, 1)), np.ones((2, 1)), None, None,
                           priced, None, end=-np.inf)  # fmt: skip
    assert err.value.timed_out
    assert not err.value.proven


def test_the_plan_holds_within_a_normal_time_limit() -> None:
    plan = _design(time_limit_s=30, tolerance_pct=10)
    assert plan.summary["revenue_dev_pct"].abs().max() <= 10 + 1e-6
