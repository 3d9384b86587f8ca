"""TRAVEL_WEIGHT: designterritories also evens out travel per territory (a weighted penalty)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.errors import InfeasibleError, InvalidInputError
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import brute_force, random_accounts, random_reps

ORIGIN = np.array([300_000.0, 6_600_000.0])


def _uneven(n: int, seed: int) -> gpd.GeoDataFrame:
    """Half the accounts squeezed into a corner: compact plans then have very uneven travel."""
    acc = random_accounts(n, seed)
    xy = shapely.get_coordinates(acc.geometry.values)
    xy[: n // 2] = ORIGIN + (xy[: n // 2] - ORIGIN) * 0.3
    return acc.set_geometry(gpd.points_from_xy(xy[:, 0], xy[:, 1], crs=acc.crs))


def _plan(acc, reps, travel_weight, **kw):
    return design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue", "visits"], balance_weights=[40, 30],
                              travel_weight=travel_weight, **kw)  # fmt: skip


def _objective_from_outputs(plan, mu: float) -> float:
    """OBJECTIVE recomputed from the summary: travel total + mu x sum |travel - its share|."""
    travel = plan.summary["travel_total"].to_numpy()
    share = plan.summary["capacity"].to_numpy() / plan.summary["capacity"].sum()
    return float(travel.sum() + mu * np.abs(travel - share * travel.sum()).sum())


@pytest.mark.parametrize(("n", "k"), [(120, 4), (1500, 8)])
def test_travel_weight_evens_out_travel(n: int, k: int) -> None:
    acc, reps = _uneven(n, 3), random_reps(k, 4)
    compact = _plan(acc, reps, 0)
    even = _plan(acc, reps, 30)  # revenue 40 / workload 30 / travel 30: mu = 0.3
    assert even.kpis["cv_travel"] < 0.6 * compact.kpis["cv_travel"], (compact.kpis, even.kpis)
    total = even.summary["travel_total"].sum()
    assert total >= compact.summary["travel_total"].sum() - 1e-6  # it costs some travel
    assert even.objective == pytest.approx(_objective_from_outputs(even, 0.3), rel=1e-4)
    assert even.lower_bound <= even.objective + 1e-6
    assert even.lower_bound >= compact.lower_bound - 1e-6  # the LP with travel bounds more
    for name, tol in (("revenue", 5.0), ("visits", 5.0 * 40 / 30)):
        assert even.summary[f"{name}_dev_pct"].abs().max() <= tol + 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tiny_cases_against_brute_force(seed: int) -> None:
    """Independent reference: every assignment of 8 accounts to 3 reps, penalty included."""
    acc, reps = random_accounts(8, seed), random_reps(3, seed + 10)
    ref = brute_force(acc, reps, "revenue", 30, mu=0.5)
    kw = {
        "id_field": "id",
        "reps": reps,
        "rep_id_field": "rep",
        "balance_fields": ["revenue"],
        "tolerance_pct": 30,
        "travel_weight": 1.0,
    }  # fmt: skip  (one field weighs 1: mu = 0.5)
    if not np.isfinite(ref):
        with pytest.raises(InfeasibleError):
            design_territories(acc, **kw)
        return
    plan = design_territories(acc, **kw)
    assert plan.lower_bound <= ref + 1e-6 <= plan.objective + 2e-6
    assert plan.objective <= 1.03 * ref  # local optimum close to the true one
    assert plan.objective == pytest.approx(_objective_from_outputs(plan, 0.5), abs=0.05)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(20, 400),
    k=st.integers(2, 6),
    tol=st.sampled_from([3.0, 5.0, 10.0]),
    seed=st.integers(0, 10_000),
    n_locks=st.integers(0, 10),
    moves=st.one_of(st.none(), st.sampled_from([10.0, 40.0])),
    weight=st.sampled_from([10.0, 30.0, 100.0]),
)
def test_hard_constraints_hold_with_travel_weight(n, k, tol, seed, n_locks, moves, weight) -> None:
    acc, reps = _uneven(n, seed), random_reps(k, seed + 1)
    rng = np.random.default_rng(seed)
    acc["current"] = [f"R{j}" for j in rng.integers(0, k, n)]
    acc["lock"] = None
    locked = rng.choice(n, min(n_locks, n), replace=False)
    acc.loc[locked, "lock"] = acc.loc[locked, "current"]
    try:
        plan = _plan(acc, reps, weight, tolerance_pct=tol, lock_field="lock",
                     current_field="current", max_moves_pct=moves, time_limit_s=20)  # fmt: skip
    except InfeasibleError as err:
        message = str(err)
        assert any(w in message for w in ("TOLERANCE", "MAX_MOVES", "Locked")), message
        return
    out = plan.accounts
    assert (
        out.loc[acc["lock"].notna(), "territory_id"] == acc.loc[acc["lock"].notna(), "lock"]
    ).all()
    for name, t in (("revenue", tol), ("visits", tol * 40 / 30)):
        assert plan.summary[f"{name}_dev_pct"].abs().max() <= t + 1e-6
    if moves is not None:
        assert (out["territory_id"] != acc["current"]).sum() <= int(moves / 100 * n + 1e-9)
    assert plan.lower_bound <= plan.objective + 1e-6


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_bad_travel_weight_is_named(weight: float) -> None:
    with pytest.raises(InvalidInputError, match="TRAVEL_WEIGHT"):
        _plan(random_accounts(20), random_reps(2), weight)
