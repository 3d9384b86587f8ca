"""TIME_LIMIT is wall time: the plan search stops at the deadline, keeping its best plan, and says
so when it has none (issue 14). A clock that jumps replaces timing: no timed tests."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import shapely

from territory_planner_plugin import assignment, centres, model, territories
from territory_planner_plugin.errors import SolverError, TimeLimitError
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
        _design(time_limit_s=10)


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


def test_a_cut_search_returns_its_plan_with_bound_and_gap(caplog) -> None:
    """A TIME_LIMIT far too short for the search still gives the plan found in the solve's
    minimum time, with a finite LOWER_BOUND and gap, and a log line saying the limit cut it."""
    with caplog.at_level("INFO", logger="territory_planner_plugin"):
        plan = _design(time_limit_s=0.001)
    assert np.isfinite(plan.lower_bound)
    assert plan.lower_bound <= plan.objective + 1e-9
    assert 0.0 <= plan.gap_pct < 100.0
    assert any("cut the search" in r.getMessage() and "LOWER_BOUND" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_search_that_ends_in_time_is_not_said_to_be_cut(caplog) -> None:
    with caplog.at_level("INFO", logger="territory_planner_plugin"):
        _design(time_limit_s=60)
    assert not any("cut the search" in r.getMessage() for r in caplog.records)


def test_the_output_reserve_grows_with_size_and_stays_a_share_of_time_limit() -> None:
    small = territories.output_reserve_s(1_000, 60.0)
    large = territories.output_reserve_s(100_000, 60.0)
    assert 0.0 < small < large <= 0.3 * 60.0 + 1e-9
    assert territories.output_reserve_s(300_000, 60.0) == pytest.approx(0.3 * 60.0)


def test_the_output_reserve_follows_how_slow_the_outline_was() -> None:
    """With the accounts' outline built before the search, the reserve is for what is left, at
    the machine's pace: an outline twice as slow as an idle machine's doubles it (within limits)."""
    n, limit = 100_000, 600.0
    idle = territories._OUTLINE_S_PER_ROW * n
    before = territories.output_reserve_s(n, limit)
    at_idle = territories.output_reserve_s(n, limit, outline_s=idle)
    busy = territories.output_reserve_s(n, limit, outline_s=2 * idle)
    assert at_idle < before  # the outline is no longer part of what the reserve keeps
    assert busy == pytest.approx(2 * at_idle)
    assert territories.output_reserve_s(n, limit, outline_s=0.5 * idle) == pytest.approx(at_idle)
    worst = territories.output_reserve_s(n, limit, outline_s=100 * idle)
    assert worst == pytest.approx(territories._SLOWER_AT_MOST * at_idle)
    assert territories.output_reserve_s(n, 10.0, outline_s=100 * idle) == pytest.approx(3.0)
    # without CONTIGUOUS the adjacency that counts pieces is built with the outputs: kept too
    after = territories.output_reserve_s(n, limit, outline_s=idle, pieces_after=True)
    assert after == pytest.approx(at_idle + territories._PIECES_S_PER_ROW * n)


def test_the_accounts_outline_is_built_once_before_the_search(monkeypatch) -> None:
    """The tight outline depends on the accounts alone: it is built while preparing the rows
    (its time tells the reserve how busy the machine is) and the territory polygons reuse it."""
    from territory_planner_plugin import adjacency

    calls = []
    outline = adjacency.tight_outline

    def counted(*args, **kwargs):
        calls.append(time.perf_counter())
        return outline(*args, **kwargs)

    monkeypatch.setattr(adjacency, "tight_outline", counted)
    solved = []
    solve = model.TerritoryModel.solve

    def timed_solve(self, *args, **kwargs):
        solved.append(time.perf_counter())
        return solve(self, *args, **kwargs)

    monkeypatch.setattr(model.TerritoryModel, "solve", timed_solve)
    plan = _design(time_limit_s=30)
    assert len(calls) == 1
    assert solved
    assert calls[0] < solved[0]
    assert plan.territories.geometry.notna().all()
    points = shapely.points(shapely.get_coordinates(random_accounts(300, 3).geometry.values))
    assert shapely.union_all(plan.territories.geometry.values).covers(points).all()


def test_rebalance_keeps_the_reserve_for_its_outputs(monkeypatch) -> None:
    """rebalance_territories stops its search the reserve before TIME_LIMIT, as design does."""
    from territory_planner_plugin.rebalance import rebalance_territories

    plan = _design(time_limit_s=30)
    monkeypatch.setattr(territories, "output_reserve_s", lambda n, limit, **_: 0.5 * limit)
    seen = []
    solve = model.TerritoryModel.solve

    def spy(self, *args, **kwargs):
        seen.append((time.perf_counter() + kwargs["time_limit_s"], kwargs.get("grace_s")))
        return solve(self, *args, **kwargs)

    monkeypatch.setattr(model.TerritoryModel, "solve", spy)
    begin = time.perf_counter()
    rebalance_territories(plan.accounts, id_field="id", current_field="territory_id",
                          balance_fields=["revenue"], time_limit_s=40)  # fmt: skip
    assert seen
    assert seen[0][0] - begin <= 20.5
    assert seen[0][1] == pytest.approx(20.0)


def test_the_search_stops_the_reserve_before_time_limit(monkeypatch, caplog) -> None:
    """The search's deadline is TIME_LIMIT less the reserve for the outputs (logged)."""
    monkeypatch.setattr(territories, "output_reserve_s", lambda n, limit, **_: 0.5 * limit)
    seen = []
    monkeypatch.setattr(territories, "limit_reached",
                        lambda deadline: seen.append(deadline) or False)  # fmt: skip
    begin = time.perf_counter()
    with caplog.at_level("INFO", logger="territory_planner_plugin"):
        _design(time_limit_s=40)
    assert seen
    assert seen[0] - begin <= 20.5  # the search ends by half of TIME_LIMIT (+ setup)
    assert any("kept for building the outputs" in r.getMessage() for r in caplog.records)


def test_no_plan_in_time_names_a_time_limit_likely_enough(monkeypatch) -> None:
    monkeypatch.setattr(assignment, "time", _JumpingClock(1000.0))
    with pytest.raises(TimeLimitError, match=r"about 60 s is likely enough"):
        _design(time_limit_s=10)
    # a TIME_LIMIT as long as the likely one failed: never named again as likely enough
    with pytest.raises(
        TimeLimitError, match=r"about 60 s: .* Raise TIME_LIMIT several-fold"
    ) as err:
        _design(time_limit_s=60)
    assert "likely enough" not in str(err.value)
    assert model.likely_time_limit_s(300_000, 100) == 300
    assert model.likely_time_limit_s(300, 5) == 60


def test_kmedian_stops_at_its_deadline() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (200, 2))
    start = xy[:4].copy()
    calls = []

    def costs(c):
        calls.append(1)
        return np.sqrt(((xy[:, None] - c[None]) ** 2).sum(-1))

    centres.kmedian(xy, start, np.full(200, -1), costs, deadline=-np.inf)
    assert len(calls) == 1  # one round, then the deadline


def test_a_model_too_large_for_its_time_gets_a_first_plan_in_groups(monkeypatch, caplog):
    """When the full priced path would likely not finish, accounts that weigh the same choice
    are placed in groups: the plan keeps every band exactly, and its bound (the full model's
    Lagrangian at the groups' prices) is a true lower bound: not above the full solve's plan."""
    import logging

    acc = random_accounts(600, 3)
    reps = random_reps(6, 3)
    kw = {"id_field": "id", "reps": reps, "rep_id_field": "rep", "balance_fields": ["revenue"],
          "tolerance_pct": 5, "time_limit_s": 20, "seed": 0}  # fmt: skip
    full = design_territories(acc, **kw)
    monkeypatch.setattr(model, "_SECONDS_PER_PAIR", 1.0)  # every model is "too large" now
    monkeypatch.setattr(model, "GROUPS_FROM_PAIRS", 0)
    with caplog.at_level(logging.WARNING):
        grouped = design_territories(acc, **kw)
    assert "in groups of about" in caplog.text
    assert grouped.max_deviation_pct <= 5 + 1e-6
    assert grouped.lower_bound <= full.objective + 1e-6
    assert grouped.lower_bound <= grouped.objective + 1e-6
    assert np.isfinite(grouped.lower_bound)
    assert grouped.objective <= 1.2 * full.objective  # a usable plan, not just any plan


def test_groups_that_find_no_plan_in_their_time_try_coarser_groups(monkeypatch, caplog):
    """A busy machine: the first try in groups finds no plan in its share of the time. A second
    try with groups four times larger gets half of what is left and gives the plan (the run
    used to refuse, asking for a longer TIME_LIMIT)."""
    import logging

    acc = random_accounts(600, 3)
    reps = random_reps(6, 3)
    kw = {"id_field": "id", "reps": reps, "rep_id_field": "rep", "balance_fields": ["revenue"],
          "tolerance_pct": 5, "time_limit_s": 20, "seed": 0}  # fmt: skip
    monkeypatch.setattr(model, "_SECONDS_PER_PAIR", 1.0)
    monkeypatch.setattr(model, "GROUPS_FROM_PAIRS", 0)
    real, sizes = assignment.solve_balanced, []

    def busy(cost, *args, **kwargs):
        sizes.append(len(cost))
        if len(sizes) == 1:
            raise assignment.NoPlanFoundError(proven=False, timed_out=True)
        return real(cost, *args, **kwargs)

    monkeypatch.setattr(assignment, "solve_balanced", busy)
    with caplog.at_level(logging.INFO):
        plan = design_territories(acc, **kw)
    assert len(sizes) == 2
    assert sizes[1] < sizes[0] / 2  # coarser groups the second time
    assert "groups of about" in caplog.text
    assert plan.max_deviation_pct <= 5 + 1e-6
    assert plan.lower_bound <= plan.objective + 1e-6


def test_no_lp_starts_that_would_end_well_past_the_deadline(monkeypatch) -> None:
    """An LP that took 8 s leaves 2 s before the deadline: the next one (as long) is not started
    (building a large LP alone takes seconds), and without a plan the search says it timed out."""
    clock = {"now": 0.0}

    class _Clock:
        @staticmethod
        def perf_counter() -> float:
            return clock["now"]

    calls = []

    def slow_infeasible_lp(*args, **kwargs):
        calls.append(clock["now"])
        clock["now"] += 8.0
        return None  # noqa: RET501 (an infeasible LP is None)

    monkeypatch.setattr(assignment, "time", _Clock)
    monkeypatch.setattr(assignment, "_lp", slow_infeasible_lp)
    c = np.array([[1.0, 5.0], [5.0, 1.0]])
    with pytest.raises(assignment.NoPlanFoundError) as err:
        assignment._primal(c, np.ones((2, 1)), np.ones((2, 1)), np.ones((2, 1)), None, None,
                           c.copy(), None, rooms=(0.1, 0.0), end=10.0)  # fmt: skip
    assert err.value.timed_out
    assert calls == [0.0]
