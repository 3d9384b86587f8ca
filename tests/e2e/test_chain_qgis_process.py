"""Outputs are good inputs, through qgis_process: design -> rebalance -> rebalance -> report ->
compare -> export on the sample accounts with fields named like the ones the plan writes
(``locked``, ``input_locked``, ``territory_id``, ``reason``, ``colour``).

Before the fix the second rebalance failed with a Python traceback ('DataFrame' object has no
attribute 'dtype'): the first output renamed ``locked`` to ``input_locked``, which the input
already had.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

FIELDS = "revenue_potential"


def test_chain_on_colliding_fields(qp, e2e_data, tmp_path):
    acc = gpd.read_file(e2e_data["accounts"])
    acc["locked"] = "user lock"
    acc["input_locked"] = "user input lock"
    acc["territory_id"] = acc["current_territory"]
    acc["reason"] = "user reason"
    acc["colour"] = "#000000"
    src = tmp_path / "colliding.gpkg"
    acc.to_file(src, layer="accounts", driver="GPKG")
    common = {"ID_FIELD": "id", "REPS": e2e_data["reps"], "REP_ID_FIELD": "rep_id",
              "BALANCE_FIELDS": FIELDS, "TIME_LIMIT": 20}  # fmt: skip

    def plan(alg: str, accounts: str, name: str, **extra: object) -> str:
        out = {k: str(tmp_path / f"{name}_{k.lower()}.gpkg")
               for k in ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY")}  # fmt: skip
        if alg == "rebalanceterritories":
            out["OUTPUT_MOVES"] = str(tmp_path / f"{name}_moves.gpkg")
        qp.run_json(alg, {"ACCOUNTS": accounts, **common, **extra, **out})
        return out["OUTPUT_ACCOUNTS"]

    design = plan("designterritories", str(src), "design", TOLERANCE=10)
    first = plan("rebalanceterritories", design, "first", CURRENT_FIELD="territory_id", TOLERANCE=8)
    second = plan(
        "rebalanceterritories", first, "second", CURRENT_FIELD="territory_id", TOLERANCE=8
    )
    out = gpd.read_file(second)
    lower = [c.lower() for c in out.columns]
    assert len(lower) == len(set(lower))
    assert (out["input_locked"] == "user input lock").all()
    assert (out["input_locked_2"] == "user lock").all()
    assert (out["input_territory_id"] == acc["current_territory"]).all()
    assert len(out) == len(acc)

    qp.run_json("territoryreport", {"ACCOUNTS": second, "TERRITORY_FIELD": "territory_id",
                                    "BALANCE_FIELDS": FIELDS, "TOLERANCE": 8,
                                    "OUTPUT_HTML": str(tmp_path / "report.html")})  # fmt: skip
    assert "Traceback" not in (tmp_path / "report.html").read_text(encoding="utf-8")
    qp.run_json("compareplans", {"PLANS": [design, second], "PLAN_NAMES": "design,second",
                                 "TERRITORY_FIELD": "territory_id", "BALANCE_FIELDS": FIELDS,
                                 "OUTPUT_KPIS": str(tmp_path / "kpis.gpkg")})  # fmt: skip
    assert len(gpd.read_file(tmp_path / "kpis.gpkg")) == 2
    qp.run_json("exportterritories", {"INPUT": second, "TERRITORY_FIELD": "territory_id",
                                      "FORMAT": 5, "ID_FIELD": "id",
                                      "OUTPUT": str(tmp_path / "crm.csv")})  # fmt: skip
    crm = pd.read_csv(tmp_path / "crm.csv")
    assert sorted(crm["id"]) == sorted(acc["id"])
