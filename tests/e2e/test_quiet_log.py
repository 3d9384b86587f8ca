"""A normal run prints no third-party deprecation notices (PuLP, OSMnx, QGIS's setapi) (issue 14)."""

from __future__ import annotations

import re

import pytest

NOISE = re.compile(r"DeprecationWarning|FutureWarning|PendingDeprecationWarning|is deprecated")


@pytest.mark.parametrize("alg", ["designterritories", "drivetimecatchments"])
def test_normal_run_has_no_deprecation_noise(alg, e2e_data, e2e_network, qp, tmp_path):
    if alg == "designterritories":
        params = {"ACCOUNTS": e2e_data["accounts"], "ID_FIELD": "id", "REPS": e2e_data["reps"],
                  "REP_ID_FIELD": "rep_id", "BALANCE_FIELDS": "revenue_potential",
                  "NETWORK": e2e_network, "TIME_LIMIT": 5, "SOLVER": 0,
                  **{k: tmp_path / f"{k}.gpkg" for k in ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES",
                                                          "OUTPUT_CENTRES", "OUTPUT_SUMMARY")}}  # fmt: skip
    else:
        params = {"INPUT": e2e_data["reps"], "ID_FIELD": "rep_id", "NETWORK": e2e_network,
                  "BANDS": "5,10", "OUTPUT": tmp_path / "c.gpkg"}  # fmt: skip
    args = ["run", f"territory_planner:{alg}", "--"] + [f"{k}={v}" for k, v in params.items()]
    done = qp.qgis_process(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    noisy = [line for line in (done.stdout + done.stderr).splitlines() if NOISE.search(line)]
    assert not noisy, "\n".join(noisy)


def test_plain_venv_qgis_process_is_quiet(qp):
    """The venv's own qgis_process (what the README's examples call) hides QGIS's setapi()
    notice too, not only scripts/qgis_process.sh."""
    import os
    import subprocess
    from pathlib import Path

    venv = Path(os.environ.get("VENV", qp.root / ".venv"))
    if not venv.is_absolute():
        venv = qp.root / venv
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run([str(venv / "bin" / "qgis_process"), "list"], capture_output=True,
                          text=True, timeout=300, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "territory_planner" in done.stdout or "Available algorithms" in done.stdout
    noisy = [line for line in (done.stdout + done.stderr).splitlines() if NOISE.search(line)]
    assert not noisy, "\n".join(noisy)
