"""designterritories engine: exact on tiny cases, hard constraints on random ones, clear errors."""

from __future__ import annotations

import re

import numpy as np
import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.errors import InfeasibleError, InvalidInputError
from territory_planner_plugin.territories import EXACT_PAIRS, STRAIGHT_LINE_KMH, design_territories
from tests.engine.helpers import CRS, brute_force, random_accounts, random_reps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_tiny_instances(seed: int) -> None:
    acc, reps = random_accounts(8, seed), random_reps(3, seed + 10)
    ref = brute_force(acc, reps, "revenue", 25)
    if not np.isfinite(ref):
        with pytest.raises(InfeasibleError):
            design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                               balance_fields=["revenue"], tolerance_pct=25)  # fmt: skip
        return
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue"], tolerance_pct=25)  # fmt: skip
    assert plan.objective == pytest.approx(ref, rel=1e-6)
    assert plan.lower_bound <= plan.objective + 1e-9


def _check_plan_or_named(n, k, tol, seed, n_locks, moves) -> None:
    """Hard constraints hold in the plan, or the infeasibility names what to relax."""
    acc = random_accounts(n, seed)
    reps = random_reps(k, seed + 1)
    rng = np.random.default_rng(seed)
    acc["current"] = [f"R{j}" for j in rng.integers(0, k, n)]
    acc["lock"] = None
    for i in rng.choice(n, n_locks, replace=False):
        acc.loc[i, "lock"] = acc.loc[i, "current"]
    before = acc.copy()
    try:
        plan = design_territories(
            acc, id_field="id", reps=reps, rep_id_field="rep", rep_capacity_field="cap",
            balance_fields=["revenue", "visits"], tolerance_pct=tol, lock_field="lock",
            current_field="current", max_moves_pct=moves, time_limit_s=20,
        )  # fmt: skip
    except InfeasibleError as err:
        message = str(err)
        assert any(word in message for word in ("TOLERANCE", "MAX_MOVES", "Locked")), message
        return
    finally:
        assert acc.equals(before), "input modified"
    out = plan.accounts
    assert out["territory_id"].notna().all()
    assert len(out) == n
    locked = acc["lock"].notna()
    assert (out.loc[locked, "territory_id"] == acc.loc[locked, "lock"]).all()
    for f in ("revenue", "visits"):
        totals = out.groupby("territory_id")[f].sum().reindex(reps["rep"], fill_value=0)
        target = acc[f].sum() / k
        assert (np.abs(totals - target) <= tol / 100 * target + 1e-6).all()
    if moves is not None:
        assert (out["territory_id"] != acc["current"]).sum() <= int(moves / 100 * n + 1e-9)
    assert plan.lower_bound <= plan.objective + 1e-6


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(12, 40),
    k=st.integers(2, 4),
    tol=st.sampled_from([5.0, 10.0, 20.0]),
    seed=st.integers(0, 10_000),
    n_locks=st.integers(0, 3),
    moves=st.one_of(st.none(), st.sampled_from([20.0, 50.0])),
)
def test_hard_constraints_hold_or_infeasible_is_named(n, k, tol, seed, n_locks, moves) -> None:
    _check_plan_or_named(n, k, tol, seed, n_locks, moves)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(260, 600),
    k=st.integers(4, 9),
    tol=st.sampled_from([3.0, 5.0, 10.0]),
    seed=st.integers(0, 10_000),
    n_locks=st.integers(0, 20),
    moves=st.one_of(st.none(), st.sampled_from([10.0, 40.0])),
)
def test_hard_constraints_hold_on_the_large_path(n, k, tol, seed, n_locks, moves) -> None:
    """Beyond EXACT_PAIRS the prices + LP + local search path runs; the same guarantees hold."""
    assert n * k > EXACT_PAIRS
    _check_plan_or_named(n, k, tol, seed, n_locks, moves)


def test_large_path_is_close_to_the_exact_milp() -> None:
    """Independent reference: the full MILP (PuLP/CBC) on a model just above EXACT_PAIRS."""
    acc, reps = random_accounts(130, 21), random_reps(8, 22)
    plan = design_territories(acc, id_field="id", reps=reps, rep_id_field="rep",
                              balance_fields=["revenue", "visits"], tolerance_pct=10)  # fmt: skip
    xy = np.column_stack([acc.geometry.x, acc.geometry.y])
    cxy = np.column_stack([reps.geometry.x, reps.geometry.y])
    d = np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1)) / 1000
    n, k = d.shape
    prob = pulp.LpProblem("ref", pulp.LpMinimize)
    x = [[pulp.LpVariable(f"x{i}_{j}", cat="Binary") for j in range(k)] for i in range(n)]
    prob += pulp.lpSum(d[i, j] * x[i][j] for i in range(n) for j in range(k))
    for i in range(n):
        prob += pulp.lpSum(x[i]) == 1
    for f in ("revenue", "visits"):
        v, target = acc[f].to_numpy(), acc[f].sum() / k
        for j in range(k):
            prob += pulp.lpSum(v[i] * x[i][j] for i in range(n)) <= 1.1 * target
            prob += pulp.lpSum(v[i] * x[i][j] for i in range(n)) >= 0.9 * target
    prob.solve(pulp.HiGHS(msg=False, timeLimit=60))
    assert prob.sol_status == pulp.LpSolutionOptimal
    exact = pulp.value(prob.objective)
    print(f"exact {exact:.3f}, ours {plan.objective:.3f}, bound {plan.lower_bound:.3f}")
    assert plan.lower_bound <= exact + 1e-6
    assert plan.objective >= exact - 1e-6
    assert plan.objective <= 1.02 * exact
    assert plan.gap_pct < 3.0


def test_budget_too_small_names_the_moves_needed() -> None:
    acc = random_accounts(300, 8)
    acc["current"] = "R0"  # everything in one territory: balance needs most of them to move
    with pytest.raises(InfeasibleError, match=r"MAX_MOVES allows 3 moves.*needs.*at least"):
        design_territories(acc, id_field="id", reps=random_reps(4), rep_id_field="rep",
                           balance_fields=["revenue"], current_field="current",
                           max_moves_pct=1.0)  # fmt: skip


def test_balance_weights_widen_the_band_of_lighter_measures() -> None:
    acc = random_accounts(300, 9)
    plan = design_territories(acc, id_field="id", reps=random_reps(4), rep_id_field="rep",
                              balance_fields=["revenue", "visits"], balance_weights=[40, 20],
                              tolerance_pct=2)  # fmt: skip
    dev = plan.summary
    assert dev["revenue_dev_pct"].abs().max() <= 2 + 1e-6
    assert dev["visits_dev_pct"].abs().max() <= 4 + 1e-6
    assert "balance_score" in plan.kpis
    with pytest.raises(InvalidInputError, match="BALANCE_WEIGHTS"):
        design_territories(acc, id_field="id", reps=random_reps(4), rep_id_field="rep",
                           balance_fields=["revenue", "visits"], balance_weights=[40, 0])  # fmt: skip


def test_large_path_is_deterministic() -> None:
    acc = random_accounts(400, 5)
    runs = [design_territories(acc, id_field="id", n_territories=6, balance_fields=["revenue"],
                               seed=3) for _ in range(2)]  # fmt: skip
    assert runs[0].accounts["territory_id"].tolist() == runs[1].accounts["territory_id"].tolist()
    assert runs[0].objective == runs[1].objective


def test_deterministic_with_seed() -> None:
    acc = random_accounts(60, 3)
    a = design_territories(acc, id_field="id", n_territories=4, balance_fields=["revenue"], seed=7)
    b = design_territories(acc, id_field="id", n_territories=4, balance_fields=["revenue"], seed=7)
    assert a.accounts["territory_id"].tolist() == b.accounts["territory_id"].tolist()


def test_locks_that_break_balance_name_the_territory() -> None:
    acc = random_accounts(20, 4)
    acc["lock"] = "R0"
    with pytest.raises(InfeasibleError, match=r"R0.*unlock the 20 locked accounts.*No TOLERANCE"):
        design_territories(acc, id_field="id", reps=random_reps(3), rep_id_field="rep",
                           balance_fields=["revenue"], lock_field="lock")  # fmt: skip


def test_zero_tolerance_names_the_needed_tolerance() -> None:
    acc = random_accounts(15, 5)
    kw = {"id_field": "id", "reps": random_reps(4), "rep_id_field": "rep",
          "balance_fields": ["revenue"], "time_limit_s": 5}  # fmt: skip
    with pytest.raises(InfeasibleError, match=r"set TOLERANCE to at least \d") as err:
        design_territories(acc, tolerance_pct=0.0, **kw)
    assert "a little" not in str(err.value)
    need = float(re.search(r"TOLERANCE to at least ([0-9.]+)%", str(err.value)).group(1))
    plan = design_territories(acc, tolerance_pct=need, **kw)  # the suggestion was checked
    assert plan.summary["revenue_dev_pct"].abs().max() <= need + 1e-6


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda a: a.assign(id="same"), "duplicate"),
        (lambda a: a.assign(revenue=-1.0), "A0"),
        (lambda a: a.assign(lock="NOPE"), "NOPE"),
    ],
)
def test_bad_input_names_the_record(change, needle: str) -> None:
    acc = change(random_accounts(10).assign(lock=None))
    with pytest.raises(InvalidInputError, match=needle):
        design_territories(acc, id_field="id", reps=random_reps(2), rep_id_field="rep",
                           balance_fields=["revenue"], lock_field="lock")  # fmt: skip


@pytest.mark.parametrize("k", [0, 11])
def test_bad_k(k: int) -> None:
    with pytest.raises(InvalidInputError, match="TERRITORIES"):
        design_territories(random_accounts(10), id_field="id", n_territories=k)


def test_geographic_input_is_reprojected_and_outputs_keep_its_crs() -> None:
    acc = random_accounts(30).to_crs("EPSG:4326")
    plan = design_territories(acc, id_field="id", n_territories=3, balance_fields=["revenue"])
    assert plan.accounts.crs == acc.crs
    assert plan.territories.crs == acc.crs
    assert not plan.territories.union_all().is_empty
    polys = plan.territories.to_crs(CRS)
    overlap = polys.area.sum() - polys.union_all().area
    assert overlap == pytest.approx(0, abs=1.0)  # m²


def test_all_locked_on_the_large_path_returns_the_locks() -> None:
    acc = random_accounts(300, 12)
    acc["lock"] = [f"R{i % 4}" for i in range(300)]
    plan = design_territories(acc, id_field="id", reps=random_reps(4), rep_id_field="rep",
                              balance_fields=["revenue"], lock_field="lock",
                              tolerance_pct=50)  # fmt: skip
    assert (plan.accounts["territory_id"] == acc["lock"]).all()
    assert plan.gap_pct == 0


def test_locks_that_exceed_the_move_budget_name_both() -> None:
    acc = random_accounts(20, 1)
    acc["current"] = ["R0"] * 10 + ["R1"] * 10
    acc["lock"] = None
    acc.loc[[0, 1, 2], "lock"] = "R1"  # three locked accounts must leave R0; the budget is one
    with pytest.raises(InfeasibleError, match=r"LOCK_FIELD moves 3 accounts.*MAX_MOVES allows 1"):
        design_territories(acc, id_field="id", reps=random_reps(2), rep_id_field="rep",
                           balance_fields=["revenue"], tolerance_pct=50, lock_field="lock",
                           current_field="current", max_moves_pct=5.0)  # fmt: skip


def test_time_limit_cut_of_the_bound_is_logged(caplog) -> None:
    """A run stopped by TIME_LIMIT says that it may not repeat on another machine."""
    acc = random_accounts(3000, 1)
    with caplog.at_level("WARNING"):
        plan = design_territories(acc, id_field="id", reps=random_reps(10), rep_id_field="rep",
                                  balance_fields=["revenue"], time_limit_s=0.001)  # fmt: skip
    assert "raise TIME_LIMIT for runs that repeat exactly" in caplog.text
    assert plan.lower_bound <= plan.objective + 1e-6
    assert plan.summary["revenue_dev_pct"].abs().max() <= 5 + 1e-6


def test_rep_max_minutes_without_network_uses_straight_lines() -> None:
    """REP_MAX_MINUTES holds by straight-line km at STRAIGHT_LINE_KMH when there is no NETWORK."""
    acc, reps = random_accounts(300, 13), random_reps(8, 14)
    kw = {"id_field": "id", "reps": reps, "rep_id_field": "rep", "balance_fields": ["revenue"],
          "tolerance_pct": 10}  # fmt: skip
    free = design_territories(acc, **kw)
    xy = np.column_stack([acc.geometry.x, acc.geometry.y])
    cxy = np.column_stack([reps.geometry.x, reps.geometry.y])
    nearest_km = np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1)).min(1) / 1000
    limit_km = (
        nearest_km.max() + free.accounts["centre_km"].max()
    ) / 2  # every account keeps a rep
    assert free.accounts["centre_km"].max() > limit_km  # and it binds: the free plan goes farther
    minutes = limit_km * 60 / STRAIGHT_LINE_KMH
    plan = design_territories(acc, rep_max_minutes=minutes, **kw)
    assert plan.accounts["centre_km"].max() <= limit_km + 1e-3
    assert plan.summary["revenue_dev_pct"].abs().max() <= 10 + 1e-6
    with pytest.raises(InfeasibleError, match="REP_MAX_MINUTES"):
        design_territories(acc, rep_max_minutes=1.0, **kw)  # 0.8 km: most accounts have no rep
