"""Groups (GROUP_FIELD) and regions (REGIONS): exact references on small cases."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from territory_planner_plugin import regions
from territory_planner_plugin.errors import InvalidInputError
from territory_planner_plugin.rebalance import rebalance_territories
from territory_planner_plugin.territories import design_territories
from tests.engine.helpers import CRS, random_accounts, random_reps


def _territory_points(xy, totals) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"territory_id": [f"T{i + 1:02d}" for i in range(len(xy))], "rev_total": totals},
        geometry=shapely.points(np.asarray(xy, float)), crs=CRS,
    )  # fmt: skip


def _brute_regions(xy, totals, k, tol, adjacency=None) -> float:
    """Least total distance (km) to a medoid centre over every balanced (connected) grouping."""
    xy = np.asarray(xy, float)
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) / 1000
    target = totals.sum() / k
    best = np.inf
    for lab in itertools.product(range(k), repeat=len(xy)):
        lab = np.array(lab)
        if lab[0] != 0 or len(set(lab)) < k:
            continue
        tot = np.bincount(lab, weights=totals, minlength=k)
        if (np.abs(tot / target - 1) > tol / 100 + 1e-9).any():
            continue
        if adjacency is not None and not all(
            _connected(np.flatnonzero(lab == r), adjacency) for r in range(k)
        ):
            continue
        cost = sum(d[np.ix_(lab == r, lab == r)].sum(0).min() for r in range(k))
        best = min(best, cost)
    return best


def _connected(members, adj) -> bool:
    seen, todo = {members[0]}, [members[0]]
    while todo:
        i = todo.pop()
        for j in members:
            if adj[i][j] and j not in seen:
                seen.add(j)
                todo.append(j)
    return len(seen) == len(members)


def _cost(xy, region_of, ids) -> float:
    xy = np.asarray(xy, float)
    lab = np.array([region_of[t] for t in ids])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) / 1000
    return sum(d[np.ix_(lab == r, lab == r)].sum(0).min() for r in set(lab))


def test_regions_match_brute_force_on_points():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 30_000, (8, 2)) + np.array([300_000, 6_600_000])
    totals = rng.integers(5, 15, 8).astype(float)
    terr = _territory_points(xy, totals)
    res = regions.assign_regions(terr, n_regions=2, total_fields=["rev_total"], tolerance_pct=10)
    ref = _brute_regions(xy, totals, 2, 10)
    assert res.tolerance_pct == 10
    assert res.max_deviation_pct <= 10 + 1e-6
    assert _cost(xy, res.region_of, terr["territory_id"]) == pytest.approx(ref, rel=1e-6)


def test_regions_contiguous_on_a_grid_match_brute_force():
    # 3 x 3 squares, totals make the balanced groupings few; regions must be in one piece
    cells = [shapely.box(x * 1000, y * 1000, (x + 1) * 1000, (y + 1) * 1000)
             for y in range(3) for x in range(3)]  # fmt: skip
    totals = np.array([4, 1, 3, 2, 5, 1, 3, 2, 3], float)
    terr = gpd.GeoDataFrame({"territory_id": [f"T{i + 1:02d}" for i in range(9)],
                             "rev_total": totals}, geometry=cells, crs=CRS)  # fmt: skip
    adj = [[abs(i % 3 - j % 3) + abs(i // 3 - j // 3) == 1 for j in range(9)] for i in range(9)]
    res = regions.assign_regions(terr, n_regions=3, total_fields=["rev_total"], tolerance_pct=10,
                                 contiguous=True)  # fmt: skip
    lab = np.array([res.region_of[t] for t in terr["territory_id"]])
    for r in set(lab):
        assert _connected(np.flatnonzero(lab == r), adj)
    tot = np.array([totals[lab == r].sum() for r in sorted(set(lab))])
    assert np.abs(tot / (totals.sum() / 3) - 1).max() <= 0.10 + 1e-9
    xy = np.array([c.representative_point().coords[0] for c in cells])
    ref = _brute_regions(xy, totals, 3, 10, adjacency=adj)
    assert np.isfinite(ref)
    assert _cost(xy, res.region_of, terr["territory_id"]) <= ref * 1.0 + 1e-6


def test_regions_relax_tolerance_when_needed():
    # one territory holds half the total: 3 regions cannot be within 5 %
    terr = _territory_points([[300_000 + 1000 * i, 6_600_000] for i in range(4)],
                             np.array([6.0, 2.0, 2.0, 2.0]))  # fmt: skip
    res = regions.assign_regions(terr, n_regions=3, total_fields=["rev_total"], tolerance_pct=5)
    assert res.tolerance_pct > 5
    assert len(set(res.region_of.values())) == 3


def test_regions_bad_count():
    terr = _territory_points([[300_000, 6_600_000], [301_000, 6_600_000]], np.ones(2))
    with pytest.raises(InvalidInputError, match="REGIONS"):
        regions.assign_regions(terr, n_regions=3, total_fields=["rev_total"])


def test_add_regions_writes_region_id_everywhere():
    acc = random_accounts(120, seed=2)
    plan = design_territories(acc, id_field="id", n_territories=6, balance_fields=["revenue"],
                              tolerance_pct=10, time_limit_s=10)  # fmt: skip
    res = regions.add_regions(plan, n_regions=2, tolerance_pct=10, contiguous=False)
    for frame in (plan.accounts, plan.territories, plan.summary, plan.centres):
        assert frame["region_id"].notna().all()
    assert set(plan.summary["region_id"]) == {"R1", "R2"}
    by_t = dict(zip(plan.summary["territory_id"], plan.summary["region_id"]))
    assert (plan.accounts["region_id"] == plan.accounts["territory_id"].map(by_t)).all()
    assert res.max_deviation_pct <= 10 + 1e-6


def _grouped_accounts(n=90, seed=0):
    acc = random_accounts(n, seed=seed)
    acc["state"] = np.where(acc.geometry.x < 310_000, "West", "East")
    return acc


def test_groups_solved_separately_with_their_own_reps():
    acc = _grouped_accounts()
    reps = random_reps(4, seed=5)
    reps["state"] = np.where(reps.geometry.x < 310_000, "West", "East")
    if reps["state"].nunique() < 2:
        reps.loc[0, "state"] = "West" if reps.loc[0, "state"] == "East" else "East"
    out = regions.plan_by_group(design_territories, acc, group_field="state", id_field="id",
                                reps=reps, rep_id_field="rep", balance_fields=["revenue"],
                                tolerance_pct=15, time_limit_s=10)  # fmt: skip
    plan = out.plan
    rep_state = dict(zip(reps["rep"], reps["state"]))
    # every account goes to a rep of its own group, input order kept
    assert list(plan.accounts["id"]) == list(acc["id"])
    assert (plan.accounts["territory_id"].map(rep_state) == acc["state"]).all()
    # each group balanced against its own target
    for g, part in plan.summary.groupby("group"):
        assert part["revenue_dev_pct"].abs().max() <= 15 + 1e-6
        own = acc.loc[acc["state"] == g, "revenue"].sum()
        assert part["revenue_total"].sum() == pytest.approx(own)
    assert set(out.groups) == {"East", "West"}
    assert plan.summary["territory_id"].is_unique


def test_group_without_reps_is_named():
    acc = _grouped_accounts()
    reps = random_reps(2)
    reps["state"] = "West"
    with pytest.raises(InvalidInputError, match=r"'East'.*no rep"):
        regions.plan_by_group(design_territories, acc, group_field="state", id_field="id",
                              reps=reps, rep_id_field="rep", balance_fields=["revenue"])  # fmt: skip


def test_reps_of_a_group_without_accounts_warn(caplog):
    acc = _grouped_accounts()
    reps = random_reps(3)
    reps["state"] = ["West", "East", "North"]
    out = regions.plan_by_group(design_territories, acc, group_field="state", id_field="id",
                                reps=reps, rep_id_field="rep", balance_fields=["revenue"],
                                tolerance_pct=50, time_limit_s=5)  # fmt: skip
    assert "North" in caplog.text
    assert "no accounts" in caplog.text
    assert "R2" not in set(out.plan.summary["territory_id"])


def test_territories_split_over_groups_without_reps():
    acc = _grouped_accounts()
    out = regions.plan_by_group(design_territories, acc, group_field="state", id_field="id",
                                n_territories=5, balance_fields=["revenue"], tolerance_pct=15,
                                time_limit_s=5)  # fmt: skip
    ids = list(out.plan.summary["territory_id"])
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert all(t.split("-")[0] in {"East", "West"} for t in ids)
    assert (out.plan.accounts["territory_id"].str.split("-").str[0] == acc["state"]).all()


def test_grouped_rebalance_moves_within_groups():
    acc = _grouped_accounts()
    acc["current"] = np.where(acc["state"] == "West", "W1", "E1")
    acc.loc[acc.index[::2], "current"] = np.where(acc["state"] == "West", "W2", "E2")[::2]
    reps = random_reps(4)
    reps["rep"] = ["W1", "W2", "E1", "E2"]
    reps["state"] = ["West", "West", "East", "East"]
    out = regions.plan_by_group(rebalance_territories, acc, group_field="state", id_field="id",
                                reps=reps, rep_id_field="rep", current_field="current",
                                balance_fields=["revenue"], tolerance_pct=10,
                                time_limit_s=10)  # fmt: skip
    assert out.moves is not None
    assert out.moves_lower_bound is not None
    assert (out.plan.accounts["territory_id"].str[0] == acc["state"].str[0]).all()


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 40), st.dictionaries(st.sampled_from("abcdef"), st.floats(0, 100),
                                           min_size=1, max_size=6))  # fmt: skip
def test_split_territories_property(extra, weight):
    n = len(weight) + extra
    out = regions.split_territories(n, weight)
    assert sum(out.values()) == n
    assert min(out.values()) >= 1


def test_grouped_plan_with_regions_is_a_valid_input_of_the_next_run():
    acc = _grouped_accounts(120, seed=4)
    first = regions.plan_by_group(design_territories, acc, group_field="state", id_field="id",
                                  n_territories=4, balance_fields=["revenue"], tolerance_pct=15,
                                  time_limit_s=5).plan  # fmt: skip
    regions.add_regions(first, n_regions=2, tolerance_pct=15, contiguous=False)
    again = regions.plan_by_group(rebalance_territories, first.accounts, group_field="state",
                                  id_field="id", current_field="territory_id",
                                  balance_fields=["revenue"], tolerance_pct=15,
                                  time_limit_s=5)  # fmt: skip
    regions.add_regions(again.plan, n_regions=2, tolerance_pct=15, contiguous=False)
    out = again.plan.accounts
    assert "input_region_id" in out.columns  # the input's own region_id kept, renamed
    assert set(out["region_id"]) == {"R1", "R2"}
    assert out["moved"].sum() == 0  # already balanced: nothing moves
    assert list(out["id"]) == list(acc["id"])


@settings(max_examples=12, deadline=None)
@given(st.integers(4, 9), st.integers(2, 3), st.integers(0, 10_000))
def test_regions_hard_rules_property(n, k, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 20_000, (n, 2)) + np.array([300_000, 6_600_000])
    totals = rng.integers(1, 20, n).astype(float)
    terr = _territory_points(xy, totals)
    res = regions.assign_regions(terr, n_regions=k, total_fields=["rev_total"], tolerance_pct=10,
                                 time_limit_s=5)  # fmt: skip
    assert set(res.region_of) == set(terr["territory_id"])  # every territory in one region
    assert len(set(res.region_of.values())) == k  # every region used
    lab = np.array([res.region_of[t] for t in terr["territory_id"]])
    tot = np.array([totals[lab == r].sum() for r in sorted(set(lab))])
    dev = 100 * np.abs(tot / (totals.sum() / k) - 1)
    assert dev.max() <= res.tolerance_pct + 1e-6  # within the band it reports
    assert res.max_deviation_pct == pytest.approx(dev.max(), abs=0.01)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 3))
def test_groups_hard_rules_property(seed, n_groups):
    rng = np.random.default_rng(seed)
    acc = random_accounts(60, seed=seed % 97)
    names = [f"g{i}" for i in range(n_groups)]
    acc["grp"] = rng.choice(names, len(acc))
    acc.loc[acc.index[:n_groups], "grp"] = names  # every group has accounts
    reps = random_reps(n_groups + 2, seed=seed % 89)
    reps["grp"] = names + list(rng.choice(names, 2))
    out = regions.plan_by_group(design_territories, acc, group_field="grp", id_field="id",
                                reps=reps, rep_id_field="rep", balance_fields=["revenue"],
                                tolerance_pct=60, time_limit_s=5)  # fmt: skip
    plan = out.plan
    rep_group = dict(zip(reps["rep"], reps["grp"]))
    assert list(plan.accounts["id"]) == list(acc["id"])  # every account once, in input order
    assert (plan.accounts["territory_id"].map(rep_group) == acc["grp"]).all()  # own group's rep
    assert plan.summary["territory_id"].is_unique
    by_group = plan.summary.groupby("group")["revenue_total"].sum()
    for g in names:  # each group's targets are its own total
        assert by_group[g] == pytest.approx(acc.loc[acc["grp"] == g, "revenue"].sum())


def _grid_states(rows: int = 4, cols: int = 6, size: float = 2000.0) -> gpd.GeoDataFrame:
    """A grid of county-like squares: the west half in state 'W', the east half in 'E'."""
    geoms = [shapely.box(c * size, r * size, (c + 1) * size, (r + 1) * size)
             for r in range(rows) for c in range(cols)]  # fmt: skip
    cols_of = np.tile(np.arange(cols), rows)
    return gpd.GeoDataFrame({"uid": [f"U{i:02d}" for i in range(len(geoms))],
                             "pop": 100.0 + (np.arange(len(geoms)) % 5) * 10,
                             "state": np.where(cols_of < cols // 2, "W", "E")},
                            geometry=geoms, crs=CRS)  # fmt: skip


def test_units_grouped_by_a_units_field_each_territory_in_one_state():
    units = _grid_states()
    before = units.copy()
    out = regions.plan_by_group(design_territories, None, group_field="state", id_field="id",
                                units=units, unit_id_field="uid", n_territories=4,
                                balance_fields=["pop"], tolerance_pct=15,
                                time_limit_s=10)  # fmt: skip
    plan = out.plan
    assert units.equals(before)
    assert plan.accounts is None
    assert list(plan.units["uid"]) == list(units["uid"])  # input order kept
    state = plan.units["territory_id"].str.split("-").str[0]
    assert (state == units["state"]).all()  # no territory crosses a state line
    assert plan.units["territory_id"].nunique() == 4
    assert plan.summary["pieces"].max() == 1
    assert plan.units["colour"].notna().all()
    for _, part in plan.summary.groupby("group"):
        assert part["pop_dev_pct"].abs().max() <= 15 + 1e-6


def test_units_with_accounts_grouped_by_the_units_state():
    units = _grid_states()
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, [12_000, 8_000], size=(120, 2))
    acc = gpd.GeoDataFrame({"id": [f"A{i}" for i in range(120)], "revenue": rng.uniform(1, 5, 120)},
                           geometry=shapely.points(xy), crs=CRS)  # fmt: skip
    out = regions.plan_by_group(design_territories, acc, group_field="state", id_field="id",
                                units=units, unit_id_field="uid", n_territories=4,
                                balance_fields=["revenue"], tolerance_pct=20,
                                time_limit_s=10)  # fmt: skip
    plan = out.plan
    assert list(plan.accounts["id"]) == list(acc["id"])
    west = xy[:, 0] < 6_000
    acc_state = plan.accounts["territory_id"].str.split("-").str[0]
    assert (acc_state == np.where(west, "W", "E")).all()
    unit_state = plan.units["territory_id"].str.split("-").str[0]
    assert (unit_state == units["state"]).all()


def test_units_group_field_must_be_a_units_field():
    with pytest.raises(
        InvalidInputError, match=r"UNIT_GROUP_FIELD: 'region' is not a field of UNITS"
    ):
        regions.plan_by_group(design_territories, None, group_field="region", id_field="id",
                              units=_grid_states(), unit_id_field="uid", n_territories=2,
                              balance_fields=["pop"])  # fmt: skip


def test_units_grouped_rebalance_stays_within_each_state():
    units = _grid_states()
    first = regions.plan_by_group(design_territories, None, group_field="state", id_field="id",
                                  units=units, unit_id_field="uid", n_territories=4,
                                  balance_fields=["pop"], tolerance_pct=15,
                                  time_limit_s=10).plan  # fmt: skip
    today = units.assign(current=first.units["territory_id"].to_numpy())
    today.loc[today.index[:3], "pop"] *= 3  # the north-west grew
    out = regions.plan_by_group(rebalance_territories, None, group_field="state", id_field="id",
                                units=today, unit_id_field="uid", current_field="current",
                                balance_fields=["pop"], tolerance_pct=15,
                                time_limit_s=10)  # fmt: skip
    state = out.plan.units["territory_id"].str.split("-").str[0]
    assert (state == units["state"]).all()
    assert out.moves is not None
    assert out.plan.summary["pieces"].max() == 1


def test_groups_share_the_time_limit_by_their_size():
    """TIME_LIMIT bounds the whole run: each group gets its share (by rows) of what the groups
    before it left, not the whole limit each."""
    acc = _grouped_accounts()
    reps = random_reps(4, seed=5)
    reps["state"] = np.where(reps.geometry.x < 310_000, "West", "East")
    if reps["state"].nunique() < 2:
        reps.loc[0, "state"] = "West" if reps.loc[0, "state"] == "East" else "East"
    given: dict = {}

    def run(part, **kwargs):
        given[len(part)] = kwargs["time_limit_s"]
        return design_territories(part, **dict(kwargs, time_limit_s=2))

    regions.plan_by_group(run, acc, group_field="state", id_field="id", reps=reps,
                          rep_id_field="rep", balance_fields=["revenue"], tolerance_pct=15,
                          time_limit_s=30)  # fmt: skip
    sizes = acc["state"].value_counts()
    assert sorted(given) == sorted(sizes)
    first, last = sizes["East"], sizes["West"]  # groups run in sorted order
    assert given[first] == pytest.approx(30 * first / len(acc), rel=0.02)  # its share, not 30
    assert given[last] < 30  # what the first group left: less than the whole limit


def test_region_tries_share_the_time_limit(monkeypatch):
    """The looser tries (2, 4, 10, 20 x TOLERANCE) share the regions' time: each gets what the
    ones before it left, and none starts once it is spent (each used to get the whole limit)."""
    import time

    from territory_planner_plugin.errors import InfeasibleError

    terr = _territory_points([[300_000 + 1000 * i, 6_600_000] for i in range(4)], np.ones(4))
    given: list = []

    def slow_failure(*args):
        given.append(args[7])  # time_limit_s
        time.sleep(0.4)
        raise InfeasibleError("no plan")

    monkeypatch.setattr(regions, "_regions_at", slow_failure)
    with pytest.raises(InfeasibleError, match="within TIME_LIMIT"):
        regions.assign_regions(terr, n_regions=2, total_fields=["rev_total"], time_limit_s=1.0)
    assert given[0] == pytest.approx(1.0, abs=0.05)
    assert given[1] == pytest.approx(0.6, abs=0.1)  # what the first left
    assert len(given) == 2  # about 0.2 s left: no third try


def test_region_tries_that_fail_spend_no_time_explaining(monkeypatch):
    """A tight try that has no plan fails at once (no relaxations solved to name them): REGIONS
    tries looser tolerances itself, so their time goes to those tries."""
    from territory_planner_plugin import model

    def no_explanations(self, *args, **kwargs):
        raise AssertionError("a region try solved relaxations to explain itself")

    monkeypatch.setattr(model.TerritoryModel, "relaxations", no_explanations)
    monkeypatch.setattr(model.TerritoryModel, "_min_tolerance", no_explanations)
    terr = _territory_points([[300_000 + 1000 * i, 6_600_000] for i in range(4)],
                             np.array([6.0, 2.0, 2.0, 2.0]))  # fmt: skip
    res = regions.assign_regions(terr, n_regions=3, total_fields=["rev_total"], tolerance_pct=5,
                                 time_limit_s=5)  # fmt: skip
    assert res.tolerance_pct > 5
