"""Rebalancing a large plan that is far from balanced (rebalance.far_from_today): each move is
weighed against distance so a plan is found quickly; the moves' counting bound stays true and
is checked against an exact MILP (PuLP) on cases small enough for it (the size threshold is
lowered so the far path runs)."""

from __future__ import annotations

import logging

import pytest
import shapely
from scipy.spatial import cKDTree

from territory_planner_plugin import rebalance
from tests.engine.helpers import random_accounts, random_reps
from tests.engine.test_rebalance import (
    _balanced,
    _check_moves_table,
    _deviation_ok,
    _exact_min_moves,
    _run,
)


@pytest.fixture
def far(monkeypatch):
    """Every model is large enough for the far path."""
    monkeypatch.setattr(rebalance, "FAR_FROM_PAIRS", 0)


def _used_far(caplog) -> bool:
    return any("far from balanced" in r.getMessage() for r in caplog.records)


def _nearest_rep_plan(n: int, k: int, seed: int):
    """Accounts with today's territory = the nearest rep (balanced on nothing), and the reps."""
    acc, reps = random_accounts(n, seed), random_reps(k, seed + 1)
    xy = shapely.get_coordinates(acc.geometry.values)
    near = cKDTree(shapely.get_coordinates(reps.geometry.values)).query(xy)[1]
    acc["current"] = reps["rep"].to_numpy()[near]
    return acc, reps


@pytest.mark.parametrize(("n", "k", "seed", "weight"), [(80, 4, 2, None), (120, 5, 3, None),
                                                         (90, 4, 3, "visits")])  # fmt: skip
def test_far_from_balanced_gives_a_balanced_plan_and_a_true_bound(far, caplog, n, k, seed, weight):
    acc, reps = _nearest_rep_plan(n, k, seed)
    exact = _exact_min_moves(acc, "revenue", 10, weight)
    assert exact >= 0.1 * n if weight is None else True  # the case is far from balanced
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10, minimise_field=weight)
    assert _used_far(caplog)
    assert _deviation_ok(res.plan.accounts, "revenue", 10, reps["rep"])
    _check_moves_table(res, acc)
    moved = res.moves["moved_value"].sum()
    assert res.moves_lower_bound <= exact + 1e-6 <= moved + 2e-6  # the bound is true
    assert moved <= 1.25 * exact  # weighed against distance, not far from the fewest


def test_a_plan_near_balance_keeps_the_fewest_moves_path(far, caplog) -> None:
    """Only a plan that is far from balanced takes the weighed path: a few moves keep the
    exact fewest."""
    acc, reps = _balanced(60, 3, 0, tol=10.0)
    acc.loc[acc.index[:4], "revenue"] *= 3.0  # a few accounts grew
    exact = _exact_min_moves(acc, "revenue", 10)
    with caplog.at_level(logging.INFO, logger="territory_planner_plugin"):
        res = _run(acc, reps, balance_fields=["revenue"], tolerance_pct=10)
    assert not _used_far(caplog)
    assert res.plan.moved == pytest.approx(exact)
