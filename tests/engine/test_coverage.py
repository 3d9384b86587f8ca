"""Coverage models: named-account tier and rep expertise, against brute-force references."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.coverage import (
    Coverage,
    design_coverage,
    named_accounts,
    normalise_segment,
    rebalance_coverage,
)
from territory_planner_plugin.errors import InfeasibleError, InvalidInputError
from tests.engine.helpers import random_accounts, random_reps

SEGMENTS = ("healthcare", "finance", "retail", "manufacturing")


def _km(acc, reps) -> np.ndarray:
    xy = np.column_stack([acc.geometry.x, acc.geometry.y])
    cxy = np.column_stack([reps.geometry.x, reps.geometry.y])
    return np.sqrt(((xy[:, None] - cxy[None]) ** 2).sum(-1)) / 1000


def _within(v: np.ndarray, a: np.ndarray, cap: np.ndarray, tol: float) -> bool:
    target = v.sum() * cap / cap.sum()
    tot = np.array([v[a == j].sum() for j in range(len(cap))])
    return bool((np.abs(tot - target) <= tol / 100 * target + 1e-6).all())


def _brute(v, d, cap, tol, *, allowed=None, moves=None):
    """Best (moves, km) or km over every assignment (tiny cases; written apart from the engine)."""
    n, k = d.shape
    best, best_a = None, None
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        if allowed is not None and not allowed[np.arange(n), a].all():
            continue
        if not _within(v, a, cap, tol):
            continue
        km = d[np.arange(n), a].sum()
        key = (int((a != moves).sum()), km) if moves is not None else km
        if best is None or key < best:
            best, best_a = key, a
    return best, best_a


def _hybrid(n=12, k_geo=2, k_named=2, seed=0):
    acc = random_accounts(n, seed)
    reps = random_reps(k_geo + k_named, seed + 1)
    reps["named"] = [0] * k_geo + [1] * k_named
    reps["rep"] = [f"T{j}" for j in range(k_geo)] + [f"N{j}" for j in range(k_named)]
    return acc, reps


KW = {"id_field": "id", "rep_id_field": "rep", "balance_fields": ("revenue",),
      "solver": "HiGHS", "time_limit_s": 20}  # fmt: skip


def test_normalise_segment_merges_spellings():
    for text in ("Health care", "health_care", " HEALTHCARE ", "Health-Care"):
        assert normalise_segment(text) == "healthcare"
    assert normalise_segment("") is None
    assert normalise_segment(None) is None
    assert normalise_segment(float("nan")) is None


def test_named_top_pct_is_the_smallest_set_of_largest_accounts():
    acc = random_accounts(30, 3)
    ids = acc["id"].to_numpy()
    for pct in (0, 5, 20, 50, 99.9, 100):
        mask = named_accounts(acc, ids=ids, named_top_pct=pct, measure="revenue")
        v = acc["revenue"].to_numpy()
        # reference: sort descending, smallest prefix reaching pct % of the total
        order = np.argsort(-v, kind="stable")
        need = pct / 100 * v.sum()
        count = 0 if pct == 0 else next(i + 1 for i in range(len(v))
                                         if v[order[: i + 1]].sum() >= need - 1e-9)  # fmt: skip
        assert mask.sum() == count
        if count:
            assert v[mask].min() >= v[~mask].max() if (~mask).any() else True


@pytest.mark.parametrize("pct", [-1, 100.5, float("nan")])
def test_named_top_pct_out_of_range_is_refused(pct):
    acc, reps = _hybrid()
    with pytest.raises(InvalidInputError, match="0-100"):
        design_coverage(acc, coverage=Coverage(named_top_pct=pct, rep_named_field="named"),
                        reps=reps, **KW)  # fmt: skip


def test_named_tier_keeps_relationships_like_brute_force():
    """Named tier: fewest moves from today's owners within tolerance, then km (exact reference);
    geographic tier: least km within tolerance (exact reference)."""
    acc, reps = _hybrid(n=14, seed=4)
    acc["named"] = [1] * 7 + [0] * 7
    rng = np.random.default_rng(7)
    acc["owner"] = np.where(acc["named"] == 1, rng.choice(["N0", "N1"], 14),
                            rng.choice(["T0", "T1"], 14))  # fmt: skip
    tol = 15.0
    plan = design_coverage(acc, coverage=Coverage(named_field="named", rep_named_field="named"),
                           reps=reps, tolerance_pct=tol, current_field="owner", **KW)  # fmt: skip
    out = plan.accounts
    assert list(out["id"]) == list(acc["id"])  # input order kept
    named = acc["named"].to_numpy() == 1
    assert set(out.loc[named, "territory_id"]) <= {"N0", "N1"}
    assert set(out.loc[~named, "territory_id"]) <= {"T0", "T1"}
    assert set(out["tier"]) == {"named", "geographic"}
    v = acc["revenue"].to_numpy()
    d = _km(acc, reps)
    # named tier: lexicographic (moves, km)
    nr = [2, 3]
    cur = np.array([{"N0": 0, "N1": 1}[o] for o in acc.loc[named, "owner"]])
    (best_moves, _), _ = _brute(v[named], d[np.ix_(named, nr)], np.ones(2), tol, moves=cur)
    got = np.array([{"N0": 0, "N1": 1}[t] for t in out.loc[named, "territory_id"]])
    assert int((got != cur).sum()) == best_moves
    assert _within(v[named], got, np.ones(2), tol)
    # geographic tier: least km
    best_km, _ = _brute(v[~named], d[np.ix_(~named, [0, 1])], np.ones(2), tol)
    got_g = np.array([{"T0": 0, "T1": 1}[t] for t in out.loc[~named, "territory_id"]])
    assert _within(v[~named], got_g, np.ones(2), tol)
    assert d[np.ix_(~named, [0, 1])][np.arange(7), got_g].sum() == pytest.approx(best_km, rel=1e-6)
    # one plan: both tiers in every output, named territories without a polygon
    ter = plan.territories.set_index("territory_id")
    assert ter.loc[["N0", "N1"], "geometry"].isna().all()
    assert ter.loc[["T0", "T1"], "geometry"].notna().all()
    assert set(plan.summary["tier"]) == {"named", "geographic"}
    assert "named_gap_pct" in plan.kpis
    assert "geographic_gap_pct" in plan.kpis


def test_expertise_hard_matches_brute_force():
    acc = random_accounts(7, 11)
    reps = random_reps(3, 12)
    acc["segment"] = ["Health care", "finance", "RETAIL", "healthcare", "finance", "retail",
                      "health_care"]  # fmt: skip
    reps["skills"] = ["healthcare,finance", "retail, Finance", "Healthcare ; retail"]
    tol = 40.0
    cov = Coverage(segment_field="segment", rep_skills_field="skills")
    plan = design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=tol, **KW)
    seg = [normalise_segment(s) for s in acc["segment"]]
    skills = [
        {normalise_segment(p) for p in s.replace(";", ",").split(",")} for s in reps["skills"]
    ]
    allowed = np.array([[s in sk for sk in skills] for s in seg])
    best, _ = _brute(acc["revenue"].to_numpy(), _km(acc, reps), np.ones(3), tol, allowed=allowed)
    a = np.array([int(t[1:]) for t in plan.accounts["territory_id"]])
    assert allowed[np.arange(7), a].all()
    assert _km(acc, reps)[np.arange(7), a].sum() == pytest.approx(best, rel=1e-6)


def test_expertise_soft_weights_between_no_rule_and_hard():
    acc = random_accounts(7, 21)
    reps = random_reps(3, 22)
    acc["segment"] = ["a", "b", "a", "c", "b", "a", "c"]
    reps["skills"] = ["a", "b", "c,a"]
    tol = 60.0
    d = _km(acc, reps)
    v = acc["revenue"].to_numpy()
    skills = [set(s.split(",")) for s in reps["skills"]]
    allowed = np.array([[s in sk for sk in skills] for s in acc["segment"]])
    free, _ = _brute(v, d, np.ones(3), tol)
    hard, _ = _brute(v, d, np.ones(3), tol, allowed=allowed)

    def run(weight):
        cov = Coverage(segment_field="segment", rep_skills_field="skills", skill_rule="soft",
                       skill_weight=weight)  # fmt: skip
        plan = design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=tol, **KW)
        a = np.array([int(t[1:]) for t in plan.accounts["territory_id"]])
        return d[np.arange(7), a].sum(), (~allowed[np.arange(7), a]).sum()

    km0, _ = run(0.0)
    km_big, miss_big = run(1e4)
    assert km0 == pytest.approx(free, rel=1e-6)
    assert miss_big == 0
    assert km_big == pytest.approx(hard, rel=1e-6)


def test_uncovered_segment_is_named_with_a_checked_relaxation(caplog):
    acc = random_accounts(12, 5)
    reps = random_reps(3, 6)
    acc["segment"] = ["a", "b", "c"] * 3 + ["energy"] * 3
    reps["skills"] = ["a,b", "b,c", "a,c"]
    cov = Coverage(segment_field="segment", rep_skills_field="skills")
    with pytest.raises(InfeasibleError) as err:
        design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=20, **KW)
    text = str(err.value)
    assert "'energy' (3 accounts)" in text
    assert "SKILL_RULE soft gives a plan (checked)" in text
    soft = Coverage(segment_field="segment", rep_skills_field="skills", skill_rule="soft")
    with caplog.at_level(logging.WARNING):
        design_coverage(acc, coverage=soft, reps=reps, tolerance_pct=20, **KW)  # really works
    assert "no rep covering their segment" in caplog.text


def test_segment_too_heavy_for_its_reps_names_the_tolerance_that_works():
    acc = random_accounts(16, 8)
    reps = random_reps(4, 9)
    acc["revenue"] = 10.0
    acc["segment"] = ["x"] * 6 + ["y"] * 10
    reps["skills"] = ["x", "y", "y", "y"]  # x: 6/16 = 37.5 % of revenue on one rep of four
    cov = Coverage(segment_field="segment", rep_skills_field="skills")
    with pytest.raises(InfeasibleError) as err:
        design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=5, **KW)
    text = str(err.value)
    assert "segment 'x' (6 accounts)" in text
    assert "TOLERANCE 50 gives a plan (checked)" in text
    plan = design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=50, **KW)
    assert (plan.accounts.loc[acc["segment"] == "x", "territory_id"] == "R0").all()


def test_bad_inputs_are_named(caplog):
    acc, reps = _hybrid()
    reps0 = reps.assign(named=0)
    with pytest.raises(InvalidInputError, match="no rep is flagged"):
        design_coverage(acc, coverage=Coverage(named_top_pct=20, rep_named_field="named"),
                        reps=reps0, **KW)  # fmt: skip
    with pytest.raises(InvalidInputError, match="needs the reps layer"):
        design_coverage(acc, coverage=Coverage(named_top_pct=20, rep_named_field="named"),
                        reps=None, n_territories=3, **KW)  # fmt: skip
    with pytest.raises(InvalidInputError, match="not yes/no"):
        design_coverage(acc, coverage=Coverage(named_top_pct=20, rep_named_field="named"),
                        reps=reps.assign(named=["x", 0, 1, 1]), **KW)  # fmt: skip
    acc["segment"] = "a"
    reps["skills"] = ["a", "", "a", "a"]
    cov = Coverage(segment_field="segment", rep_skills_field="skills")
    with caplog.at_level(logging.WARNING), pytest.raises(InfeasibleError) as err:
        design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=20, **KW)
    assert "reps T1 have no skills" in caplog.text
    assert "rep T1 covers no segment" in str(err.value)
    assert "SKILL_RULE soft gives a plan (checked)" in str(err.value)


def test_named_account_with_a_geographic_owner_is_warned_and_counted(caplog):
    acc, reps = _hybrid(n=12, seed=2)
    acc["owner"] = "T0"
    with caplog.at_level(logging.WARNING):
        plan = design_coverage(acc, coverage=Coverage(named_top_pct=30, rep_named_field="named"),
                               reps=reps, tolerance_pct=40, current_field="owner", **KW)  # fmt: skip
    n_named = int((plan.accounts["tier"] == "named").sum())
    assert plan.kpis["named_from_geographic"] == n_named > 0
    assert "today with a geographic rep" in caplog.text
    assert "not in REPS" not in caplog.text  # one warning, not rebalance's as well
    assert acc["owner"].eq("T0").all()  # input not modified


def test_a_rep_who_left_is_still_named_in_a_tiered_rebalance(caplog):
    acc, reps = _hybrid(n=12, seed=2)
    acc["owner"] = np.where(np.arange(len(acc)) % 2 == 0, "GONE", "T0")
    with caplog.at_level(logging.WARNING):
        design_coverage(acc, coverage=Coverage(named_top_pct=30, rep_named_field="named"),
                        reps=reps, tolerance_pct=40, current_field="owner", **KW)  # fmt: skip
    assert "Territories GONE are not in REPS" in caplog.text
    assert "T0 are not in REPS" not in caplog.text
    assert "GONE, T0" not in caplog.text


def test_rebalance_coverage_moves_within_tiers():
    acc, reps = _hybrid(n=14, seed=6)
    acc["named"] = [1] * 6 + [0] * 8
    acc["owner"] = ["N0"] * 6 + ["T0", "T1"] * 4
    res = rebalance_coverage(acc, coverage=Coverage(named_field="named", rep_named_field="named"),
                             reps=reps, tolerance_pct=30, current_field="owner", **KW)  # fmt: skip
    out = res.plan.accounts
    assert set(out.loc[acc["named"] == 1, "territory_id"]) <= {"N0", "N1"}
    assert set(res.moves["tier"]) <= {"named", "geographic"}
    v = acc["revenue"].to_numpy()[:6]
    cur = np.zeros(6, int)
    (best, _), _ = _brute(v, _km(acc, reps)[:6, 2:], np.ones(2), 30, moves=cur)
    assert int((out["territory_id"][:6] != "N0").sum()) == best


SOLVED: list[int] = []
INFEASIBLE: list[int] = []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), pct=st.floats(10, 60), rule=st.sampled_from(["hard", "soft"]))
def test_hard_rules_hold(seed, pct, rule):
    """Named accounts only with named reps, hard skills only with covering reps, every tier
    within tolerance of its own capacity-weighted targets."""
    rng = np.random.default_rng(seed)
    acc, reps = _hybrid(n=30, k_geo=3, k_named=2, seed=seed % 97)
    reps["cap"] = rng.choice([0.8, 1.0, 1.5], len(reps))
    acc["segment"] = rng.choice(SEGMENTS, len(acc))
    reps["skills"] = [",".join(rng.choice(SEGMENTS, rng.integers(1, 4), replace=False))
                      for _ in range(len(reps))]  # fmt: skip
    cov = Coverage(named_top_pct=pct, rep_named_field="named", segment_field="segment",
                   rep_skills_field="skills", skill_rule=rule)  # fmt: skip
    tol = 25.0
    try:
        plan = design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=tol,
                               rep_capacity_field="cap", **{**KW, "time_limit_s": 10})  # fmt: skip
    except InfeasibleError:
        INFEASIBLE.append(seed)
        return
    SOLVED.append(seed)
    out = plan.accounts
    rep = reps.set_index("rep")
    named_reps = set(rep.index[rep["named"] == 1])
    assert (out["tier"].eq("named") == out["territory_id"].isin(named_reps)).all()
    if rule == "hard":
        for s, t in zip(out["segment"], out["territory_id"]):
            assert s in rep.loc[t, "skills"].split(",")
    for tier, members in out.groupby("tier"):
        ids = sorted(set(plan.summary.loc[plan.summary["tier"] == tier, "territory_id"]))
        cap = rep.loc[ids, "cap"].to_numpy(float)
        a = members["territory_id"].map({t: j for j, t in enumerate(ids)}).to_numpy()
        assert _within(members["revenue"].to_numpy(), a, cap, tol)


def test_property_test_solved_most_cases():
    """The property test above is not vacuous: most of its random cases gave a plan."""
    if not SOLVED and not INFEASIBLE:
        pytest.skip("run together with test_hard_rules_hold")
    assert len(SOLVED) >= len(INFEASIBLE)


def test_kpis_judge_each_tier_against_its_own_targets():
    import pandas as pd

    from territory_planner_plugin import kpis

    totals = pd.DataFrame({"territory_id": ["N1", "N2", "T1", "T2", "T3"],
                           "revenue_total": [500.0, 500.0, 100.0, 100.0, 100.0]})  # fmt: skip
    tiers = {"N1": "named", "N2": "named", "T1": "geographic", "T2": "geographic",
             "T3": "geographic"}  # fmt: skip
    one = kpis.balance(totals, territory_field="territory_id", measures=["revenue"])
    by_tier = kpis.balance(totals, territory_field="territory_id", measures=["revenue"],
                           tiers=tiers)  # fmt: skip
    assert one.max_deviation_pct > 90  # one target over both tiers: nonsense
    assert by_tier.max_deviation_pct == 0.0
    assert by_tier.cv["revenue"] == 0.0
    assert list(by_tier.table["revenue_target"]) == [500.0, 500.0, 100.0, 100.0, 100.0]
    assert set(by_tier.tier_cv) == {"named", "geographic"}
    assert "Named tier" in kpis.tier_text(by_tier)


def test_compare_reports_relationships_kept_and_tiers():
    from territory_planner_plugin.compare import compare_plans

    acc = random_accounts(6, 1)
    today = acc.assign(territory_id=["A", "A", "A", "B", "B", "B"])
    plan = acc.assign(territory_id=["A", "A", "B", "B", "A", "B"],
                      tier=["named", "named", "geographic", "geographic", "named", "geographic"])  # fmt: skip
    cmp = compare_plans([today, plan], names=["today", "tiers"], id_field="id",
                        balance_fields=["revenue"])  # fmt: skip
    kept = cmp.kpis.set_index("plan")["relationships_kept_pct"]
    assert kept["today"] == 100.0
    assert kept["tiers"] == pytest.approx(100 * 4 / 6, abs=0.01)
    assert any("tiers named, geographic" in n or "tiers geographic, named" in n for n in cmp.notes)


@pytest.mark.parametrize("rule", ["hard", "soft"])
def test_rebalance_with_expertise_moves_fewest_like_brute_force(rule):
    """Rebalance with skills: fewest moves among plans where every account has a covering rep
    (hard; soft with a weight above one move gives the same plan)."""
    acc = random_accounts(8, 31)
    reps = random_reps(3, 32)
    acc["segment"] = ["a", "b", "a", "b", "a", "b", "a", "b"]
    reps["skills"] = ["a", "b", "a,b"]
    acc["owner"] = ["R0", "R0", "R1", "R1", "R2", "R2", "R0", "R1"]  # two owners lack the skill
    tol = 35.0
    cov = Coverage(segment_field="segment", rep_skills_field="skills", skill_rule=rule,
                   skill_weight=50.0)  # fmt: skip
    res = rebalance_coverage(acc, coverage=cov, reps=reps, tolerance_pct=tol, current_field="owner",
                             **KW)  # fmt: skip
    allowed = np.array([[s in sk.split(",") for sk in reps["skills"]] for s in acc["segment"]])
    cur = np.array([int(o[1:]) for o in acc["owner"]])
    (best, _), _ = _brute(acc["revenue"].to_numpy(), _km(acc, reps), np.ones(3), tol,
                          allowed=allowed, moves=cur)  # fmt: skip
    a = np.array([int(t[1:]) for t in res.plan.accounts["territory_id"]])
    assert allowed[np.arange(8), a].all()
    assert int((a != cur).sum()) == best


def test_a_hybrid_plan_is_a_valid_input_of_the_next_rebalance():
    """Output -> input: the plan's tier field names the accounts next quarter (NAMED_FIELD=tier),
    its territory_id is today's plan, and the input tier is kept as input_tier."""
    acc, reps = _hybrid(n=20, seed=9)
    cov = Coverage(named_top_pct=25, rep_named_field="named")
    plan = design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=30, **KW)
    again = rebalance_coverage(plan.accounts, coverage=Coverage(named_field="tier",
                                                                rep_named_field="named"),
                               reps=reps, tolerance_pct=30, current_field="territory_id", **KW)  # fmt: skip
    out = again.plan.accounts
    assert list(out["input_tier"]) == list(plan.accounts["tier"])
    assert list(out["tier"]) == list(plan.accounts["tier"])
    assert again.plan.moved == 0  # already balanced: nothing moves


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), pct=st.floats(10, 60))
def test_rebalance_hard_rules_hold(seed, pct):
    """Rebalance with tiers and hard skills: tiers kept apart, skills covered, every tier within
    tolerance of its own targets, and no account of a balanced tier moved without need."""
    rng = np.random.default_rng(seed)
    acc, reps = _hybrid(n=24, k_geo=3, k_named=2, seed=seed % 89)
    acc["segment"] = rng.choice(SEGMENTS[:2], len(acc))
    reps["skills"] = [",".join(rng.choice(SEGMENTS[:2], rng.integers(1, 3), replace=False))
                      for _ in range(len(reps))]  # fmt: skip
    acc["owner"] = rng.choice(reps["rep"], len(acc))
    cov = Coverage(named_top_pct=pct, rep_named_field="named", segment_field="segment",
                   rep_skills_field="skills")  # fmt: skip
    try:
        res = rebalance_coverage(acc, coverage=cov, reps=reps, tolerance_pct=30.0,
                                 current_field="owner", **{**KW, "time_limit_s": 10})  # fmt: skip
    except InfeasibleError:
        return
    out = res.plan.accounts
    rep = reps.set_index("rep")
    assert (out["tier"].eq("named") == out["territory_id"].isin(rep.index[rep["named"] == 1])).all()
    for s, t in zip(out["segment"], out["territory_id"]):
        assert s in rep.loc[t, "skills"].split(",")
    for tier, members in out.groupby("tier"):
        ids = sorted(set(res.plan.summary.loc[res.plan.summary["tier"] == tier, "territory_id"]))
        a = members["territory_id"].map({t: j for j, t in enumerate(ids)}).to_numpy()
        assert _within(members["revenue"].to_numpy(), a, np.ones(len(ids)), 30.0)
    assert res.moves_lower_bound <= res.plan.moved + 1e-9


def test_editor_judges_each_tier_against_its_own_targets():
    from territory_planner_plugin.editor import PlanTable

    terr = ["N1", "N2", "T1", "T1", "T2", "T2"]
    values = {"revenue": [500.0, 500.0, 50.0, 50.0, 50.0, 50.0]}
    tiers = {"N1": "named", "N2": "named", "T1": "geographic", "T2": "geographic"}
    table = PlanTable(terr, values=values, balance_fields=["revenue"], tiers=tiers)
    figures = table.plan()
    assert figures.cv["revenue"] == 0.0
    assert set(table.table()["revenue_target"]) == {500.0, 100.0}
    one = PlanTable(terr, values=values, balance_fields=["revenue"]).plan()
    assert one.cv["revenue"] > 0.5


def test_explanations_name_the_skill_rule_not_rep_max_minutes():
    """With SKILL_RULE hard (and no REP_MAX_MINUTES) an account kept from a nearer rep who does
    not cover its segment is explained by that rule, naming the rep; nothing blames
    REP_MAX_MINUTES. With REP_MAX_MINUTES as well, such accounts still say the skill rule."""
    acc = random_accounts(30, 5)
    reps = random_reps(3, 6)
    acc["segment"] = ["a", "b", "c"] * 10
    reps["skills"] = ["a,b", "b,c", "a,c"]
    cov = Coverage(segment_field="segment", rep_skills_field="skills")
    skills = dict(zip(reps["rep"], [set(s.split(",")) for s in reps["skills"]]))
    for minutes in (None, 1000.0):
        plan = design_coverage(acc, coverage=cov, reps=reps, tolerance_pct=30,
                               rep_max_minutes=minutes, **KW)  # fmt: skip
        out = plan.accounts
        assert not out["explanation"].str.contains("REP_MAX_MINUTES").any()
        barred = out[out["reason"] == "expertise"]
        assert len(barred) > 0
        for _, row in barred.iterrows():
            rep = row["explanation"].split(" rather than ")[1].split(",")[0]
            assert f"{rep}'s rep does not cover its segment (SKILL_RULE hard)" in row["explanation"]
            assert row["segment"] not in skills[rep]


def test_compactness_of_a_hybrid_plan_leaves_named_books_out_everywhere() -> None:
    """compareplans' compactness of a hybrid plan is its geographic tier's, as the summary's
    geographic rows say (named-account books have no area, as in the report)."""
    from territory_planner_plugin.compare import compare_plans

    acc, reps = _hybrid(n=60, k_geo=3, k_named=2, seed=5)
    acc["named"] = (np.arange(60) < 15).astype(int)
    plan = design_coverage(acc, coverage=Coverage(named_field="named", rep_named_field="named"),
                           reps=reps, tolerance_pct=15.0, **KW)  # fmt: skip
    rows = plan.accounts
    out = compare_plans([rows, rows], territory_field="territory_id", id_field="id")
    geo = plan.summary[plan.summary["tier"] == "geographic"]["compactness_km"].iloc[0]
    named = plan.summary[plan.summary["tier"] == "named"]["compactness_km"].iloc[0]
    assert out.kpis["compactness_km"].iloc[1] == pytest.approx(geo, abs=1e-3)
    assert geo != pytest.approx(named, abs=1e-3)  # (the named accounts would change it)
