"""Outputs are good inputs: design -> rebalance -> rebalance -> report -> compare -> export on
accounts whose fields already carry the names the algorithms write (``locked``,
``input_locked``, ``territory_id``, ``reason``, ``colour``, ``Moved`` in another case).

Every pass renames a clashing input field the same way (``input_<name>``, then
``input_<name>_2``...), never two fields of one name (GeoPackage and Shapefile ignore case),
and the user's own values survive every pass.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest

from territory_planner_plugin.compare import compare_plans
from territory_planner_plugin.export import export_plan
from territory_planner_plugin.rebalance import rebalance_territories
from territory_planner_plugin.report import build_report
from territory_planner_plugin.territories import design_territories, kept_name
from tests.engine.helpers import random_accounts, random_reps


def colliding_accounts(n: int = 40) -> gpd.GeoDataFrame:
    acc = random_accounts(n)
    acc["locked"] = ["user lock"] * n
    acc["input_locked"] = ["user input lock"] * n
    acc["territory_id"] = ["old"] * n
    acc["reason"] = ["user reason"] * n
    acc["colour"] = ["#000000"] * n
    acc["Moved"] = ["user moved"] * n  # another case than the plan's 'moved'
    return acc


def _unique_ignoring_case(frame: pd.DataFrame) -> None:
    lower = [str(c).lower() for c in frame.columns]
    assert len(lower) == len(set(lower)), sorted(c for c in lower if lower.count(c) > 1)


def test_kept_name_is_the_first_free_one():
    assert kept_name("locked", set()) == "input_locked"
    assert kept_name("locked", {"input_locked"}) == "input_locked_2"
    assert kept_name("locked", {"input_locked", "input_locked_2"}) == "input_locked_3"


def test_design_rebalance_twice_report_compare_export(tmp_path):
    acc = colliding_accounts()
    reps = random_reps(3)
    common = {"id_field": "id", "reps": reps, "rep_id_field": "rep", "balance_fields": ["revenue"]}
    design = design_territories(acc, tolerance_pct=20, **common).accounts
    _unique_ignoring_case(design)
    # the user's fields, renamed collision-free: input_locked was taken, so input_locked_2
    assert (design["input_locked_2"] == "user lock").all()
    assert (design["input_locked"] == "user input lock").all()
    assert (design["input_territory_id"] == "old").all()
    assert (design["input_Moved"] == "user moved").all()
    assert set(design["territory_id"]) <= {"R0", "R1", "R2"}

    first = rebalance_territories(design, current_field="territory_id", tolerance_pct=10,
                                  **common).plan.accounts  # fmt: skip
    _unique_ignoring_case(first)
    # the same rule on the second pass: the plan's 'locked' goes to the next free name
    assert (first["input_locked_2"] == "user lock").all()
    assert (first["input_locked_3"] == design["locked"]).all()
    assert (first["input_territory_id_2"] == design["territory_id"]).all()
    second = rebalance_territories(first, current_field="territory_id", tolerance_pct=10,
                                   **common).plan.accounts  # fmt: skip
    _unique_ignoring_case(second)
    assert (second["input_locked_4"] == first["locked"]).all()
    assert (second["input_territory_id_3"] == first["territory_id"]).all()
    assert second["moved"].sum() == 0  # already within 10 %: nothing to move

    _, summary = build_report(second, balance_fields=["revenue"], current_field="input_territory_id_3",
                              tolerance_pct=10)  # fmt: skip
    assert summary["accounts"].sum() == len(acc)
    cmp = compare_plans([design, second], names=["design", "second"], balance_fields=["revenue"],
                        tolerance_pct=20)  # fmt: skip
    assert len(cmp.kpis) == 2
    written = export_plan(second, str(tmp_path / "plan.shp"), fmt="ESRI Shapefile")
    back = gpd.read_file(next(p for p in written if p.endswith(".shp")))
    assert len(back) == len(acc)
    csv = export_plan(second, str(tmp_path / "crm.csv"), fmt="CSV")
    assert pd.read_csv(csv[0])["id"].tolist() == acc["id"].tolist()


@pytest.mark.parametrize("fmt", ["GPKG"])
def test_rebalanced_plan_round_trips_through_a_file(tmp_path, fmt):
    acc = colliding_accounts(30)
    reps = random_reps(3)
    common = {"id_field": "id", "reps": reps, "rep_id_field": "rep", "balance_fields": ["revenue"]}
    plan = design_territories(acc, tolerance_pct=25, **common).accounts
    path = tmp_path / "plan.gpkg"
    plan.to_file(path, driver=fmt)
    again = rebalance_territories(gpd.read_file(path), current_field="territory_id",
                                  tolerance_pct=25, **common).plan.accounts  # fmt: skip
    again.to_file(tmp_path / "again.gpkg", driver=fmt)
    assert len(gpd.read_file(tmp_path / "again.gpkg")) == len(acc)
