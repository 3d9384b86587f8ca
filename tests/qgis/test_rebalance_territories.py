"""rebalanceterritories through processing.run on (copies of) the sample accounts and reps."""

from __future__ import annotations

import json
import re

import pytest

MOVE_COLUMNS = ["account_id", "from_id", "to_id", "reason", "moved_value", "centre_km",
                "explanation"]  # fmt: skip
BASE = {
    "ID_FIELD": "id",
    "CURRENT_FIELD": "current_territory",
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
    "BALANCE_WEIGHTS": "40,30",
    "TOLERANCE": 10,
    "TIME_LIMIT": 20,
    "SOLVER": 0,
}
OUTPUTS = (
    "OUTPUT_ACCOUNTS",
    "OUTPUT_TERRITORIES",
    "OUTPUT_CENTRES",
    "OUTPUT_SUMMARY",
    "OUTPUT_MOVES",
)


def _params(accounts_gpkg, tmp_path, **extra):
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, **extra}
    for key in OUTPUTS:
        params.setdefault(key, str(tmp_path / f"{key.lower()}.gpkg"))
    return params


def _with_reps(reps_gpkg, subset=None):
    source = f"{reps_gpkg}|layername=reps"
    if subset:
        source += f"|subset={subset}"
    return {"REPS": source, "REP_ID_FIELD": "rep_id", "REP_CAPACITY_FIELD": "capacity"}


def test_sample_plan_is_rebalanced_with_a_moves_table(
    run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path
):
    before = (tp.digest(accounts_gpkg), tp.digest(reps_gpkg))
    params = _params(accounts_gpkg, tmp_path, LOCK_FIELD="locked_to", **_with_reps(reps_gpkg))
    result = run_alg("rebalanceterritories", params)

    source = tp.read_layer(accounts_gpkg, "accounts")
    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    assert len(accounts) == len(source)
    assert set(source.columns) - {"geometry"} <= set(accounts.columns)  # inputs kept
    assert set(accounts["territory_id"]) <= {"T01", "T02", "T03", "T04", "T05"}
    locked = accounts[accounts["locked_to"].notna() & (accounts["locked_to"].astype(str) != "")]
    assert (locked["territory_id"] == locked["locked_to"]).all()
    assert len(tp.read_layer(result["OUTPUT_TERRITORIES"])) == 5
    assert len(tp.read_layer(result["OUTPUT_CENTRES"])) == 5
    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    assert "geometry" not in summary.columns

    moves = tp.read_layer(result["OUTPUT_MOVES"])
    assert "geometry" not in moves.columns
    assert list(moves.columns) == MOVE_COLUMNS
    moved = accounts[accounts["territory_id"] != accounts["current_territory"]]
    assert sorted(moves["account_id"]) == sorted(moved["id"])
    assert len(moves) == result["MOVED"] == int(accounts["moved"].astype(bool).sum())
    assert set(moves["reason"]) <= {"balance", "capacity", "locked", "max drive time"}
    by_id = accounts.set_index("id")
    # the moves table says what the accounts output says, and names where each account came from
    assert (moves["reason"].to_numpy() == by_id.loc[moves["account_id"], "reason"]).all()
    assert (moves["explanation"].to_numpy() == by_id.loc[moves["account_id"], "explanation"]).all()
    assert all(
        e.startswith(f"Moved from {f} to {t}")
        for e, f, t in zip(moves["explanation"], moves["from_id"], moves["to_id"])
    )
    assert (
        moves["from_id"].to_numpy() == by_id.loc[moves["account_id"], "current_territory"]
    ).all()
    assert (moves["to_id"].to_numpy() == by_id.loc[moves["account_id"], "territory_id"]).all()

    for key in ("OBJECTIVE", "LOWER_BOUND", "GAP_PCT", "MAX_DEVIATION_PCT", "MOVED"):
        assert result[key] is not None
    assert result["OBJECTIVE"] == result["MOVED"]
    assert 0 <= result["MOVES_LOWER_BOUND"] <= result["MOVED"]
    assert result["MAX_DEVIATION_PCT"] <= 10 * 40 / 30 + 1e-6  # the lighter field's wider band
    assert (tp.digest(accounts_gpkg), tp.digest(reps_gpkg)) == before


def test_without_reps_today_s_territories_are_kept(run_alg, tp, accounts_gpkg, tmp_path):
    params = _params(accounts_gpkg, tmp_path, OUTPUT_CENTRES=None, OUTPUT_SUMMARY=None)
    result = run_alg("rebalanceterritories", params)
    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    source = tp.read_layer(accounts_gpkg, "accounts")
    assert set(accounts["territory_id"]) == set(source["current_territory"].dropna())
    assert not result.get("OUTPUT_CENTRES")
    assert len(tp.read_layer(result["OUTPUT_MOVES"])) == result["MOVED"]


def test_departing_rep_is_handed_over(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path, feedback):
    reps = _with_reps(reps_gpkg, subset="\"rep_id\" <> 'T05'")
    result = run_alg("rebalanceterritories", _params(accounts_gpkg, tmp_path, **reps), feedback)

    source = tp.read_layer(accounts_gpkg, "accounts")
    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    assert "T05" not in set(accounts["territory_id"])
    moves = tp.read_layer(result["OUTPUT_MOVES"]).set_index("account_id")
    gone = source.loc[source["current_territory"] == "T05", "id"]
    assert len(gone) > 0
    assert (moves.loc[gone, "reason"] == "rep left").all()
    assert (moves.loc[gone, "from_id"] == "T05").all()
    assert result["MOVED"] == int((moves["reason"] != "rep left").sum())  # handovers are no moves
    assert "T05" in feedback.text()  # the log names the territory handed over


def test_value_moved_needs_a_field(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="MINIMISE_FIELD"):
        run_alg("rebalanceterritories", _params(accounts_gpkg, tmp_path, MINIMISE=1))
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_value_moved_is_the_objective(run_alg, tp, accounts_gpkg, tmp_path):
    params = _params(accounts_gpkg, tmp_path, MINIMISE=1, MINIMISE_FIELD="revenue_potential")
    result = run_alg("rebalanceterritories", params)
    moves = tp.read_layer(result["OUTPUT_MOVES"])
    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"]).set_index("id")
    expected = accounts.loc[moves["account_id"], "revenue_potential"].to_numpy()
    assert moves["moved_value"].to_numpy() == pytest.approx(expected)
    assert result["OBJECTIVE"] == pytest.approx(moves["moved_value"].sum(), rel=1e-6)
    assert result["MOVES_LOWER_BOUND"] <= result["OBJECTIVE"] + 1e-6


def test_too_small_budget_says_what_would_suffice(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    reps = _with_reps(reps_gpkg)
    with pytest.raises(QgsProcessingException, match="MAX_MOVES allows") as err:
        run_alg("rebalanceterritories", _params(accounts_gpkg, tmp_path, MAX_MOVES=0, **reps))
    assert not (tmp_path / "output_accounts.gpkg").exists()
    found = re.search(r"set MAX_MOVES to at least (\d+(?:\.\d+)?)%", str(err.value))
    assert found, str(err.value)
    budget = float(found.group(1))
    result = run_alg(
        "rebalanceterritories", _params(accounts_gpkg, tmp_path, MAX_MOVES=budget, **reps)
    )
    assert result["MOVED"] <= budget / 100 * len(tp.read_layer(accounts_gpkg, "accounts")) + 1e-9


def test_current_field_is_required(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    params = _params(accounts_gpkg, tmp_path)
    del params["CURRENT_FIELD"]
    with pytest.raises(QgsProcessingException, match="CURRENT_FIELD"):
        run_alg("rebalanceterritories", params)
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_run_manifest_is_written(run_alg, accounts_gpkg, tmp_path):
    manifest = tmp_path / "run.json"
    result = run_alg(
        "rebalanceterritories", _params(accounts_gpkg, tmp_path, OUTPUT_MANIFEST=str(manifest))
    )
    assert result["OUTPUT_MANIFEST"] == str(manifest)
    recorded = json.loads(manifest.read_text(encoding="utf-8"))
    assert recorded["algorithm"] == "territory_planner:rebalanceterritories"
    assert recorded["moves_lower_bound"] == result["MOVES_LOWER_BOUND"]


def test_cancel_returns_cleanly(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    result = run_alg("rebalanceterritories", _params(accounts_gpkg, tmp_path), feedback)
    assert not result.get("OUTPUT_ACCOUNTS")
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_appeal_lock_and_rerun_from_the_plan(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path):
    """README's appeal: lock the account where the rep wants it, re-run from the plan's territory_id."""
    import pyogrio

    reps = _with_reps(reps_gpkg)
    first = run_alg(
        "rebalanceterritories", _params(accounts_gpkg, tmp_path, LOCK_FIELD="locked_to", **reps)
    )
    plan = tp.read_layer(first["OUTPUT_ACCOUNTS"])
    moved = plan[plan["moved"].astype(bool)]
    row = moved.index[0]
    wanted = moved.loc[row, "current_territory"]  # the rep wants the account back
    plan.loc[row, "locked_to"] = wanted
    appealed = tmp_path / "appealed.gpkg"
    pyogrio.write_dataframe(plan, appealed, layer="accounts")

    out = tmp_path / "second"
    out.mkdir()
    params = _params(appealed, out, LOCK_FIELD="locked_to", CURRENT_FIELD="territory_id", **reps)
    second = run_alg("rebalanceterritories", params)
    accounts = tp.read_layer(second["OUTPUT_ACCOUNTS"])
    moves = tp.read_layer(second["OUTPUT_MOVES"]).set_index("account_id")
    account = plan.loc[row, "id"]
    assert accounts.set_index("id").loc[account, "territory_id"] == wanted
    assert moves.loc[account, "reason"] == "locked"
    assert moves.loc[account, "to_id"] == wanted
    before = plan.set_index("id")["territory_id"]
    assert (moves["from_id"] == before.loc[moves.index]).all()  # moves are against the plan
    assert second["MOVED"] == len(moves) >= 1
