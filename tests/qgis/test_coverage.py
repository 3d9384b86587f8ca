"""Coverage models through processing.run: hybrid plan (named + geographic tier) and expertise."""

from __future__ import annotations

import shutil

import pytest

BASE = {
    "ID_FIELD": "id",
    "REP_ID_FIELD": "rep_id",
    "REP_CAPACITY_FIELD": "capacity",
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
    "TOLERANCE": 5,
    "TIME_LIMIT": 20,
    "SOLVER": 0,
}


@pytest.fixture
def hybrid_gpkg(tmp_path):
    """A private copy of sample_data/reps_hybrid.gpkg (layer ``reps_hybrid``)."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "sample_data" / "reps_hybrid.gpkg"
    dst = tmp_path / "reps_hybrid.gpkg"
    shutil.copy(src, dst)
    return dst


def _params(accounts_gpkg, reps, tmp_path, **extra):
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", "REPS": reps, **BASE, **extra}
    for key in ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY"):
        params.setdefault(key, str(tmp_path / f"{key.lower()}.gpkg"))
    return params


def test_hybrid_plan_on_the_sample_data(run_alg, tp, accounts_gpkg, hybrid_gpkg, tmp_path):
    before = (tp.digest(accounts_gpkg), tp.digest(hybrid_gpkg))
    params = _params(
        accounts_gpkg, f"{hybrid_gpkg}|layername=reps_hybrid", tmp_path,
        CURRENT_FIELD="current_territory", NAMED_TOP_PCT=20, REP_NAMED_FIELD="named_accounts",
        SEGMENT_FIELD="segment", REP_SKILLS_FIELD="skills", SKILL_RULE=0,
    )  # fmt: skip
    result = run_alg("designterritories", params)
    acc = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    reps = tp.read_layer(hybrid_gpkg, "reps_hybrid").set_index("rep_id")
    named_reps = set(reps.index[reps["named_accounts"] == 1])
    assert (acc["tier"].eq("named") == acc["territory_id"].isin(named_reps)).all()
    rev = acc["revenue_potential"]
    assert rev[acc["tier"] == "named"].sum() >= 0.2 * rev.sum()
    assert rev[acc["tier"] == "named"].min() >= rev[acc["tier"] == "geographic"].max()
    for seg, rep in zip(acc["segment"], acc["territory_id"]):
        assert seg in reps.loc[rep, "skills"].split(",")
    ter = tp.read_layer(result["OUTPUT_TERRITORIES"]).set_index("territory_id")
    named_geom = ter.loc[sorted(named_reps)].geometry
    assert (named_geom.isna() | named_geom.is_empty).all()  # named reps: no polygon
    assert not ter.loc[ter["tier"] == "geographic"].geometry.is_empty.any()
    summary = tp.read_layer(result["OUTPUT_SUMMARY"])
    for _, row in summary.iterrows():  # each tier within TOLERANCE of its own targets
        assert abs(row["revenue_potential_dev_pct"]) <= 5 + 1e-6
        assert abs(row["workload_visits_dev_pct"]) <= 5 + 1e-6
    assert set(summary["tier"]) == {"named", "geographic"}
    assert result["MAX_DEVIATION_PCT"] <= 5 + 1e-6
    assert (tp.digest(accounts_gpkg), tp.digest(hybrid_gpkg)) == before


def test_rebalance_with_tiers(run_alg, tp, accounts_gpkg, hybrid_gpkg, tmp_path):
    params = _params(
        accounts_gpkg, f"{hybrid_gpkg}|layername=reps_hybrid", tmp_path,
        CURRENT_FIELD="current_territory", NAMED_TOP_PCT=20, REP_NAMED_FIELD="named_accounts",
        OUTPUT_MOVES=str(tmp_path / "moves.gpkg"),
    )  # fmt: skip
    result = run_alg("rebalanceterritories", params)
    moves = tp.read_layer(result["OUTPUT_MOVES"])
    assert set(moves["tier"]) <= {"named", "geographic"}
    acc = tp.read_layer(result["OUTPUT_ACCOUNTS"])
    assert set(acc.loc[acc["tier"] == "named", "territory_id"]) <= {"N01", "N02"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"NAMED_TOP_PCT": 120, "REP_NAMED_FIELD": "named_accounts"}, "outside 0-100"),
        ({"NAMED_TOP_PCT": 20}, "REP_NAMED_FIELD: a named tier needs"),
        ({"SEGMENT_FIELD": "segment"}, "SEGMENT_FIELD and REP_SKILLS_FIELD go together"),
        (
            {"NAMED_TOP_PCT": 20, "REP_NAMED_FIELD": "named_accounts", "REPS_PLAIN": True},
            "no rep is flagged",
        ),
    ],
)
def test_bad_coverage_inputs(run_alg, accounts_gpkg, reps_gpkg, hybrid_gpkg, tmp_path, extra,
                             message):  # fmt: skip
    from qgis.core import QgsProcessingException

    plain = extra.pop("REPS_PLAIN", False)
    reps = f"{reps_gpkg}|layername=reps" if plain else f"{hybrid_gpkg}|layername=reps_hybrid"
    params = _params(accounts_gpkg, reps, tmp_path, **extra)
    with pytest.raises(QgsProcessingException, match=message):
        run_alg("designterritories", params)
    assert not (tmp_path / "output_accounts.gpkg").exists()  # no partial output
