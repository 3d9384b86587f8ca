"""rebalanceterritories minimising the value moved (MINIMISE_FIELD): the bound is in the same
units as the value moved and close to an exact MILP's minimum (it used to be the weak Lagrangian
bound of flat move costs: 53 against 549,775 moved)."""

from __future__ import annotations

import numpy as np
import pulp
import pytest

from territory_planner_plugin.rebalance import _least_weight, rebalance_territories
from territory_planner_plugin.territories import design_territories
from tests.engine.test_plans_from_units import grid_units


def relaxed_min_value(values, weight, current, k, tol_pct) -> float:
    """Reference: the LP relaxation of the least weight moved so every territory is within the
    band (a lower bound of the exact minimum, from an independent model)."""
    n = len(values)
    target = values.sum() / k
    prob = pulp.LpProblem("moves", pulp.LpMinimize)
    x = {(i, j): pulp.LpVariable(f"x_{i}_{j}", 0, 1) for i in range(n) for j in range(k)}
    prob += pulp.lpSum(weight[i] * x[(i, j)] for i in range(n) for j in range(k) if j != current[i])
    for i in range(n):
        prob += pulp.lpSum(x[(i, j)] for j in range(k)) == 1
    for j in range(k):
        load = pulp.lpSum(values[i] * x[(i, j)] for i in range(n))
        prob += load <= target * (1 + tol_pct / 100)
        prob += load >= target * (1 - tol_pct / 100)
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=60))
    assert pulp.LpStatus[prob.status] == "Optimal"
    return float(pulp.value(prob.objective))


@pytest.mark.parametrize("grow", [3.0])
def test_value_moved_bound_is_valid_and_tight_on_units_alone(grow) -> None:
    units = grid_units(12, 12, 12)  # 144 units x 8 territories: the priced LP path
    units["pop"] = units["pop"] * 1000.0
    first = design_territories(None, units=units, unit_id_field="uid", n_territories=8,
                               balance_fields=["pop"], tolerance_pct=5, contiguous=False)  # fmt: skip
    units["current"] = first.units["territory_id"].to_numpy()
    grown = units["uid"].isin([f"U{x}_{y}" for x in range(3) for y in range(3)])
    units.loc[grown, "pop"] *= grow
    res = rebalance_territories(None, current_field="current", units=units, unit_id_field="uid",
                                balance_fields=["pop"], tolerance_pct=10, minimise_field="pop",
                                contiguous=False)  # fmt: skip
    moved = float(res.moves["moved_value"].sum())
    codes = {c: j for j, c in enumerate(sorted(set(units["current"])))}
    current = units["current"].map(codes).to_numpy()
    pop = units["pop"].to_numpy(float)
    relaxed = relaxed_min_value(pop, pop, current, 8, 10)
    assert res.moves_lower_bound <= moved + 1e-6
    assert res.moves_lower_bound >= relaxed * (1 - 1e-6)  # at least the LP bound, in value moved
    assert moved >= relaxed * (1 - 1e-6)


def test_least_weight_is_the_fractional_knapsack() -> None:
    vals = np.array([10.0, 5.0, 8.0, 0.0])
    w = np.array([10.0, 1.0, 4.0, 0.0])
    assert _least_weight(vals, w, 0.0) == 0.0
    assert _least_weight(vals, w, 5.0) == pytest.approx(1.0)  # the cheapest per unit
    assert _least_weight(vals, w, 9.0) == pytest.approx(1.0 + 2.0)  # then half of the 8
    assert _least_weight(vals, w, 23.0) == pytest.approx(15.0)
    assert _least_weight(vals, w, 24.0) == 0.0  # cannot be covered: no claim
