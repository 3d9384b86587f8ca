"""End-to-end fixtures: ``scripts/qgis_process.sh`` (the real qgis_process) on the sample data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DATA = ROOT / "sample_data"
QGIS_PROCESS = ROOT / "scripts" / "qgis_process.sh"
TIMEOUT_S = 300


def qgis_process(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``scripts/qgis_process.sh ARGS`` and return the completed process (text output)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        ["bash", str(QGIS_PROCESS), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=ROOT,
    )


def run_json(alg: str, params: dict, *, timeout: float = TIMEOUT_S) -> dict:
    """Run ``territory_planner:ALG --json -- K=V ...``: asserts exit 0, returns the JSON."""
    args = ["run", f"territory_planner:{alg}", "--json", "--"]
    for key, value in params.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            args.append(f"{key}={item}")
    done = qgis_process(*args, timeout=timeout)
    assert done.returncode == 0, (
        f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as err:  # something printed to stdout besides the JSON
        raise AssertionError(f"stdout is not JSON ({err}):\n{done.stdout[:2000]}") from None


def require_engine() -> None:
    """Fail when an engine module the wrappers import is missing from the tree."""
    modules = ("network", "catchments", "matrix", "territories")
    absent = [m for m in modules if not (ROOT / "territory_planner_plugin" / f"{m}.py").exists()]
    if absent:
        pytest.fail(f"engine module(s) missing from the tree: {', '.join(absent)}")


@pytest.fixture(autouse=True)
def _engine_present() -> None:
    require_engine()


def sample_file(*patterns: str) -> Path:
    for pattern in patterns:
        found = sorted(SAMPLE_DATA.glob(pattern))
        if found:
            return found[0]
    pytest.fail(f"sample_data has no {' / '.join(patterns)}: the shipped sample data is incomplete")
    raise AssertionError


@pytest.fixture(scope="session")
def e2e_data(tmp_path_factory) -> dict[str, Path]:
    """Private copies of the sample inputs (the tests check they stay unchanged)."""
    folder = tmp_path_factory.mktemp("e2e_data")
    data = {}
    for name, patterns in (
        ("osm", ("*.osm", "*.osm.bz2", "*.osm.pbf", "*.pbf")),
        ("accounts", ("accounts.gpkg",)),
        ("reps", ("reps.gpkg",)),
        ("areas", ("areas.gpkg",)),
    ):
        src = sample_file(*patterns)
        dst = folder / src.name
        shutil.copy(src, dst)
        data[name] = dst
    return data


@pytest.fixture(scope="session")
def e2e_network(e2e_data, tmp_path_factory) -> Path:
    """The sample OSM extract built once through qgis_process buildroadnetwork."""
    out = tmp_path_factory.mktemp("e2e_network") / "network.gpkg"
    result = run_json("buildroadnetwork", {"INPUT_OSM": e2e_data["osm"], "OUTPUT": out})
    assert Path(result["results"]["OUTPUT"]).exists()
    return out


@pytest.fixture(scope="session")
def qp():
    """The helpers above, for the test module (conftest is not importable in importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(qgis_process=qgis_process, run_json=run_json, root=ROOT)
