"""qgis_process on the sample data: a hybrid plan (named + geographic tier, hard expertise) and
the comparison of three coverage models in compareplans."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyogrio

ROOT = Path(__file__).resolve().parents[2]
COMMON = {
    "ID_FIELD": "id", "REP_ID_FIELD": "rep_id", "REP_CAPACITY_FIELD": "capacity",
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"], "TOLERANCE": 5,
    "CURRENT_FIELD": "current_territory", "TIME_LIMIT": 30, "SOLVER": 0,
}  # fmt: skip


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hybrid_and_three_coverage_models(qp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("accounts.gpkg", "reps_hybrid.gpkg"):
        shutil.copy(ROOT / "sample_data" / name, data / name)
    before = {p.name: _digest(p) for p in data.iterdir()}
    accounts = f"{data / 'accounts.gpkg'}|layername=accounts"
    hybrid_reps = f"{data / 'reps_hybrid.gpkg'}|layername=reps_hybrid"
    all_named = tmp_path / "reps_all_named.gpkg"
    reps = pyogrio.read_dataframe(str(data / "reps_hybrid.gpkg"))
    pyogrio.write_dataframe(reps.assign(named_accounts=1), str(all_named))

    def design(name, reps_layer, **extra):
        out = {k: str(tmp_path / f"{name}_{k.lower()}.gpkg")
               for k in ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_SUMMARY")}  # fmt: skip
        params = {"ACCOUNTS": accounts, "REPS": reps_layer, **COMMON, **extra, **out}
        return qp.run_json("designterritories", params)

    hybrid = design("hybrid", hybrid_reps, NAMED_TOP_PCT=20, REP_NAMED_FIELD="named_accounts",
                    SEGMENT_FIELD="segment", REP_SKILLS_FIELD="skills", SKILL_RULE=0)  # fmt: skip
    res = hybrid["results"]
    assert res["MAX_DEVIATION_PCT"] <= 5 + 1e-6
    log = str(hybrid.get("log"))
    assert "Tier named" in log
    assert "Tier geographic" in log
    acc = pyogrio.read_dataframe(res["OUTPUT_ACCOUNTS"])
    assert set(acc["tier"]) == {"named", "geographic"}
    assert set(acc.loc[acc["tier"] == "named", "territory_id"]) <= {"N01", "N02"}
    skills = reps.set_index("rep_id")["skills"]
    assert all(s in skills[t].split(",") for s, t in zip(acc["segment"], acc["territory_id"]))
    geo = design("geographic", hybrid_reps)
    named = design("named", f"{all_named}|layername=reps_all_named", NAMED_TOP_PCT=100,
                   REP_NAMED_FIELD="named_accounts")  # fmt: skip
    assert set(pyogrio.read_dataframe(named["results"]["OUTPUT_ACCOUNTS"])["tier"]) == {"named"}
    html = tmp_path / "compare.html"
    plans = [geo, named, hybrid]
    cmp = qp.run_json("compareplans", {
        "PLANS": [p["results"]["OUTPUT_ACCOUNTS"] for p in plans], "ID_FIELD": "id",
        "TERRITORY_FIELD": "territory_id", "PLAN_NAMES": "geographic,named,hybrid",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"], "TOLERANCE": 5,
        "CAPACITIES": [p["results"]["OUTPUT_SUMMARY"] for p in plans],
        "OUTPUT_HTML": str(html), "OUTPUT_KPIS": str(tmp_path / "kpis.gpkg"),
    })  # fmt: skip
    kpis = pyogrio.read_dataframe(cmp["results"]["OUTPUT_KPIS"])
    assert list(kpis["plan"]) == ["geographic", "named", "hybrid"]
    assert (kpis["max_deviation_pct"] <= 5 + 1e-6).all()  # each tier against its own targets
    assert "relationships_kept_pct" in kpis.columns
    text = html.read_text()
    assert "Relationships kept" in text
    assert "hybrid" in text
    assert {p.name: _digest(p) for p in data.iterdir()} == before  # inputs unchanged
