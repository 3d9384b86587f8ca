"""The shipped Processing model (models/territory_plan.model3) run end to end through qgis_process.

Accounts + OSM file -> network, catchments, territories, report and export, on the sample data:
once as the provider's algorithm ``territory_planner:territory_plan`` and once as the model file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

MODEL_ID = "territory_planner:territory_plan"
MODEL_FILE = Path(__file__).resolve().parents[2] / "models" / "territory_plan.model3"
INPUTS = (
    "ACCOUNTS", "ID_FIELD", "OSM", "REPS", "REP_ID_FIELD", "REP_CAPACITY_FIELD",
    "BALANCE_FIELDS", "TERRITORIES", "TOLERANCE", "TIME_LIMIT",
)  # fmt: skip
OUTPUTS = (
    "catchments:catchments", "design:accounts", "design:territories", "report:report",
    "export_gpkg:export", "export_crm:crm",
)  # fmt: skip


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _inputs(e2e_data) -> dict:
    return {
        "ACCOUNTS": f"{e2e_data['accounts']}|layername=accounts",
        "ID_FIELD": "id",
        "OSM": e2e_data["osm"],
        "REPS": f"{e2e_data['reps']}|layername=reps",
        "REP_ID_FIELD": "rep_id",
        "REP_CAPACITY_FIELD": "capacity",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
        "TOLERANCE": 10,
        "TIME_LIMIT": 20,
    }


@pytest.fixture(scope="module")
def model_run(qp, e2e_data, tmp_path_factory) -> dict:
    """One run of the model on the sample data; every output written to a named file."""
    out = tmp_path_factory.mktemp("model")
    before = {name: _digest(path) for name, path in e2e_data.items()}
    params = {
        **_inputs(e2e_data),
        "catchments:catchments": out / "catchments.gpkg",
        "design:accounts": out / "accounts.gpkg",
        "design:territories": out / "territories.gpkg",
        "report:report": out / "report.html",
        "export_gpkg:export": out / "export.gpkg",
        "export_crm:crm": out / "crm.csv",
    }
    result = qp.run_json("territory_plan", params, timeout=600)
    assert {name: _digest(path) for name, path in e2e_data.items()} == before  # inputs untouched
    return result


def test_model_is_listed_with_its_parameters(qp):
    listing = qp.qgis_process("list")
    assert listing.returncode == 0, listing.stderr
    assert MODEL_ID in listing.stdout
    done = qp.qgis_process("help", MODEL_ID)
    assert done.returncode == 0, done.stderr
    for name in (*INPUTS, *OUTPUTS):
        assert f"{name}:" in done.stdout, f"{name} missing from 'help {MODEL_ID}'"


def test_model_results_are_all_written(model_run):
    results = model_run["results"]
    assert set(results) >= set(OUTPUTS)
    for key in OUTPUTS:
        assert Path(results[key]).is_file(), f"{key}: {results[key]} was not written"


def test_model_layers_are_readable(model_run, e2e_data):
    import pyogrio

    results = model_run["results"]
    accounts_in = pyogrio.read_dataframe(e2e_data["accounts"], layer="accounts")
    reps = pyogrio.read_dataframe(e2e_data["reps"], layer="reps")

    accounts = pyogrio.read_dataframe(results["design:accounts"])
    assert len(accounts) == len(accounts_in)
    assert {"id", "territory_id", "rep_id"} <= set(accounts.columns)
    assert accounts["territory_id"].notna().all()
    assert set(accounts.geometry.geom_type) == {"Point"}

    territories = pyogrio.read_dataframe(results["design:territories"])
    assert len(territories) == len(reps)  # one territory per rep
    assert set(territories.geometry.geom_type) <= {"Polygon", "MultiPolygon"}

    catchments = pyogrio.read_dataframe(results["catchments:catchments"])
    assert {"origin_id", "band_min"} <= set(catchments.columns)
    assert set(catchments["band_min"].astype(float)) <= {5.0, 10.0, 15.0}
    assert set(catchments["origin_id"].astype(str)) <= set(reps["rep_id"].astype(str))

    exported = pyogrio.read_dataframe(results["export_gpkg:export"])
    assert len(exported) == len(territories)
    assert "territory_id" in exported.columns


def test_model_crm_csv_lists_every_account(model_run, e2e_data):
    import pandas as pd
    import pyogrio

    crm = pd.read_csv(model_run["results"]["export_crm:crm"])
    accounts_in = pyogrio.read_dataframe(e2e_data["accounts"], layer="accounts")
    assert list(crm.columns[:2]) == ["id", "territory_id"]
    assert sorted(crm["id"].astype(str)) == sorted(accounts_in["id"].astype(str))


def test_model_report_is_html_with_images(model_run):
    html = Path(model_run["results"]["report:report"]).read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith(("<!doctype html", "<html"))
    assert html.count("<img") >= 2  # the map and at least one chart
    assert "data:image/png;base64," in html  # self-contained: the images are inside the file


def test_model_file_runs_directly(qp, e2e_data, tmp_path):
    """``qgis_process run models/territory_plan.model3`` works too (the model file, no id)."""
    args = ["run", str(MODEL_FILE), "--json", "--"]
    params = {**_inputs(e2e_data), "TIME_LIMIT": 10}
    params["BALANCE_FIELDS"] = ["revenue_potential"]
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            args.append(f"{key}={item}")
    args += [f"{key}=TEMPORARY_OUTPUT" for key in OUTPUTS if key != "design:territories"]
    args.append(f"design:territories={tmp_path / 'territories.gpkg'}")
    done = qp.qgis_process(*args, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    import pyogrio

    territories = pyogrio.read_dataframe(tmp_path / "territories.gpkg")
    assert len(territories) >= 2
