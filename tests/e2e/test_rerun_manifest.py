"""qgis_process end to end: designterritories writes a run manifest; rerun_manifest.py reproduces it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RERUN = Path(__file__).resolve().parents[2] / "scripts" / "rerun_manifest.py"


def _rerun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RERUN), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def recorded_run(qp, e2e_data, e2e_network, tmp_path_factory) -> Path:
    """designterritories with reps, locks, moves and the road network, with OUTPUT_MANIFEST."""
    out = tmp_path_factory.mktemp("manifest_run")
    params = {
        "ACCOUNTS": f"{e2e_data['accounts']}|layername=accounts", "ID_FIELD": "id",
        "REPS": f"{e2e_data['reps']}|layername=reps", "REP_ID_FIELD": "rep_id",
        "REP_CAPACITY_FIELD": "capacity",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"], "BALANCE_WEIGHTS": "40,30",
        "LOCK_FIELD": "locked_to", "CURRENT_FIELD": "current_territory", "MAX_MOVES": 25,
        "NETWORK": e2e_network, "TIME_LIMIT": 30, "SEED": 7,
        "OUTPUT_ACCOUNTS": out / "accounts.gpkg", "OUTPUT_TERRITORIES": out / "territories.gpkg",
        "OUTPUT_MANIFEST": out / "run.json",
    }  # fmt: skip
    result = qp.run_json("designterritories", params)
    assert result["results"]["OUTPUT_MANIFEST"] == str(out / "run.json")
    return out / "run.json"


def test_manifest_from_qgis_process(recorded_run, e2e_data, e2e_network):
    data = json.loads(recorded_run.read_text(encoding="utf-8"))
    assert data["algorithm"] == "territory_planner:designterritories"
    assert data["seed"] == 7
    assert data["parameters"]["NETWORK"] == str(e2e_network)
    assert data["parameters"]["REPS"] == f"{e2e_data['reps']}|layername=reps"
    assert all(len(data["input_hashes"][k]) == 64 for k in ("ACCOUNTS", "REPS", "NETWORK"))
    from qgis.core import Qgis

    assert data["versions"]["qgis"] == Qgis.QGIS_VERSION  # the QGIS that qgis_process runs
    for key in ("objective", "lower_bound", "gap_pct", "kpis"):
        assert key in data["results"]


def test_rerun_manifest_reproduces(recorded_run, tmp_path):
    done = _rerun(str(recorded_run), "--out", str(tmp_path))
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Reproduced exactly" in done.stdout
    old = json.loads(recorded_run.read_text(encoding="utf-8"))
    new = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert new["assignment_hash"] == old["assignment_hash"]
    assert new["parameters"] == old["parameters"]
    assert (tmp_path / "output_accounts.gpkg").exists()
    assert (recorded_run.parent / "accounts.gpkg").exists()  # the recorded outputs stay put


def test_rerun_reports_a_different_plan(recorded_run, tmp_path):
    data = json.loads(recorded_run.read_text(encoding="utf-8"))
    data["assignment_hash"] = "0" * 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data), encoding="utf-8")
    done = _rerun(str(tampered), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "NOT reproduced" in done.stderr
    assert "Plan differs from the manifest" in done.stderr


def test_rerun_refuses_a_non_manifest(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[]", encoding="utf-8")
    done = _rerun(str(bad))
    assert done.returncode == 2
    assert "not a Territory Planner run manifest" in done.stderr
