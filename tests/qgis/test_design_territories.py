"""designterritories through processing.run on (copies of) the sample accounts and reps."""

from __future__ import annotations

import pytest

BASE = {
    "ID_FIELD": "id",
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
    "TOLERANCE": 10,
    "SEED": 1,
    "TIME_LIMIT": 20,
    "SOLVER": 0,
}


def _params(accounts_gpkg, tmp_path, **extra):
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, **extra}
    for key in ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY"):
        params.setdefault(key, str(tmp_path / f"{key.lower()}.gpkg"))
    return params


def test_k_territories_without_reps(run_alg, tp, accounts_gpkg, tmp_path):
    before = tp.digest(accounts_gpkg)
    result = run_alg("designterritories", _params(accounts_gpkg, tmp_path, TERRITORIES=3))

    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    source = tp.read_layer(accounts_gpkg, "accounts")
    assert len(accounts) == len(source)
    assert set(source.columns) - {"geometry"} <= set(accounts.columns)  # inputs kept
    assert accounts["territory_id"].notna().all()
    assert accounts["territory_id"].nunique() == 3
    territories = tp.read_layer(result["OUTPUT_TERRITORIES"])
    assert len(territories) == 3
    assert territories.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert len(tp.read_layer(result["OUTPUT_CENTRES"])) == 3
    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    assert "geometry" not in summary.columns
    assert len(summary) >= 3
    for key in ("OBJECTIVE", "LOWER_BOUND", "GAP_PCT", "MAX_DEVIATION_PCT", "MOVED"):
        assert key in result
    assert result["MAX_DEVIATION_PCT"] is not None
    assert result["MAX_DEVIATION_PCT"] >= 0
    # the algorithm chose the centres: the bound says what it bounds, here as in the summary
    assert result["BOUND_SCOPE"] in ("problem", "these centres")
    assert set(summary["bound_scope"]) == {result["BOUND_SCOPE"]}
    assert tp.digest(accounts_gpkg) == before


def test_reps_locks_and_limited_moves(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path):
    params = _params(
        accounts_gpkg,
        tmp_path,
        REPS=f"{reps_gpkg}|layername=reps",
        REP_ID_FIELD="rep_id",
        REP_CAPACITY_FIELD="capacity",
        BALANCE_WEIGHTS="40,30",
        LOCK_FIELD="locked_to",
        CURRENT_FIELD="current_territory",
        MAX_MOVES=20,
        OUTPUT_CENTRES="TEMPORARY_OUTPUT",
        OUTPUT_SUMMARY="TEMPORARY_OUTPUT",
    )
    result = run_alg("designterritories", params)

    accounts = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    reps = tp.read_layer(reps_gpkg, "reps")
    assert set(accounts["rep_id"].dropna().astype(str)) <= set(reps["rep_id"].astype(str))
    locked = accounts[accounts["locked_to"].notna() & (accounts["locked_to"].astype(str) != "")]
    assert (locked["territory_id"].astype(str) == locked["locked_to"].astype(str)).all() or (
        locked["rep_id"].astype(str) == locked["locked_to"].astype(str)
    ).all()
    assert result["MOVED"] <= 0.2 * len(accounts) + 1e-9
    assert int(accounts["moved"].astype(bool).sum()) == int(result["MOVED"])
    assert result["OUTPUT_CENTRES"].featureCount() == len(reps)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "TERRITORIES"),  # neither TERRITORIES nor REPS
        ({"TERRITORIES": 3, "BALANCE_WEIGHTS": "40"}, "BALANCE_WEIGHTS"),
        ({"TERRITORIES": 3, "BALANCE_WEIGHTS": "40,abc"}, "BALANCE_WEIGHTS"),
    ],
)
def test_bad_parameters_are_explained(run_alg, accounts_gpkg, tmp_path, extra, message):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=message):
        run_alg("designterritories", _params(accounts_gpkg, tmp_path, **extra))
    assert not (tmp_path / "output_accounts.gpkg").exists()  # nothing half-written


def test_engine_error_reaches_processing(run_alg, accounts_gpkg, tmp_path):
    """More territories than accounts is impossible: the engine's message becomes the error."""
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as err:
        run_alg("designterritories", _params(accounts_gpkg, tmp_path, TERRITORIES=100000))
    assert str(err.value)
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_cancel_returns_cleanly(run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    result = run_alg("designterritories", _params(accounts_gpkg, tmp_path, TERRITORIES=3), feedback)
    assert not result.get("OUTPUT_ACCOUNTS")
    assert not (tmp_path / "output_accounts.gpkg").exists()


def test_travel_weight_evens_out_travel(run_alg, tp, accounts_gpkg, reps_gpkg, tmp_path):
    cv = {}
    for weight in (0, 30):
        params = _params(accounts_gpkg, tmp_path / str(weight), REPS=f"{reps_gpkg}|layername=reps",
                         REP_ID_FIELD="rep_id", BALANCE_WEIGHTS="40,30", TRAVEL_WEIGHT=weight)  # fmt: skip
        (tmp_path / str(weight)).mkdir()
        result = run_alg("designterritories", params)
        summary = tp.read_layer(result["OUTPUT_SUMMARY"])
        cv[weight] = float(summary["cv_travel"].iloc[0])
        assert result["LOWER_BOUND"] <= result["OBJECTIVE"] + 1e-6
    assert cv[30] < cv[0], cv
