"""qgis_process end to end, table-driven like QGIS's algorithm YAML tests.

Each case: algorithm, parameters ({network}, {accounts}, {reps}, {out} are filled in), the numeric
results expected in the JSON, and checks on the output read back with pyogrio.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

ALGORITHMS = (
    "buildroadnetwork",
    "drivetimecatchments",
    "traveltimematrix",
    "designterritories",
    "rebalanceterritories",
    "sizeterritories",
    "checkaccounts",
    "compareplans",
)
ACCOUNTS = "{accounts}|layername=accounts"
REPS = "{reps}|layername=reps"

CASES = [
    {
        "id": "network-from-osm",
        "alg": "buildroadnetwork",
        "params": {"INPUT_OSM": "{osm}", "NETWORK_TYPE": 0, "SPEEDS": "residential=30",
                   "OUTPUT": "{out}/net.gpkg"},
        "outputs": {"OUTPUT": {"layer": "edges", "min_rows": 10,
                               "fields": ["length_m", "speed_kph", "travel_time_s"]}},
        "results": ["NETWORK"],
    },
    {
        "id": "catchments-reps",
        "alg": "drivetimecatchments",
        "params": {"INPUT": REPS, "ID_FIELD": "rep_id", "NETWORK": "{network}", "BANDS": "5,10",
                   "SHAPE": 1, "OUTPUT": "{out}/catchments.gpkg"},
        "outputs": {"OUTPUT": {"fields": ["origin_id", "band_min", "area_km2", "reachable_nodes",
                                          "snap_m"], "geometry": ["Polygon", "MultiPolygon"],
                               "min_rows": 2}},
        "results": ["UNSNAPPED"],
    },
    {
        "id": "catchments-partition-from-osm-file",
        "alg": "drivetimecatchments",
        "params": {"INPUT": REPS, "ID_FIELD": "rep_id", "NETWORK": "{osm}", "BANDS": "8",
                   "SHAPE": 0, "PARTITION": True, "OUTPUT": "{out}/partition.gpkg"},
        "outputs": {"OUTPUT": {"fields": ["origin_id", "band_min"], "min_rows": 1}},
        "results": ["UNSNAPPED"],
    },
    {
        "id": "matrix-reps-accounts",
        "alg": "traveltimematrix",
        "params": {"ORIGINS": REPS, "ORIGIN_ID_FIELD": "rep_id", "DESTINATIONS": ACCOUNTS,
                   "DESTINATION_ID_FIELD": "id", "NETWORK": "{network}", "MAX_MINUTES": 30,
                   "OUTPUT": "{out}/matrix.gpkg"},
        "outputs": {"OUTPUT": {"fields": ["origin_id", "destination_id", "minutes", "km"],
                               "geometry": None, "min_rows": 10}},
        "results": ["UNREACHABLE"],
    },
    {
        "id": "design-reps-locks-moves",
        "alg": "designterritories",
        "params": {"ACCOUNTS": ACCOUNTS, "ID_FIELD": "id", "REPS": REPS, "REP_ID_FIELD": "rep_id",
                   "REP_CAPACITY_FIELD": "capacity",
                   "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
                   "BALANCE_WEIGHTS": "40,30", "LOCK_FIELD": "locked_to",
                   "CURRENT_FIELD": "current_territory", "MAX_MOVES": 25, "NETWORK": "{network}",
                   "TIME_LIMIT": 20, "SEED": 0,
                   "OUTPUT_ACCOUNTS": "{out}/accounts.gpkg",
                   "OUTPUT_TERRITORIES": "{out}/territories.gpkg",
                   "OUTPUT_CENTRES": "{out}/centres.gpkg", "OUTPUT_SUMMARY": "{out}/summary.gpkg"},
        "outputs": {
            "OUTPUT_ACCOUNTS": {"fields": ["id", "territory_id", "rep_id", "moved"],
                                "geometry": ["Point"], "same_rows_as": "accounts"},
            "OUTPUT_TERRITORIES": {"geometry": ["Polygon", "MultiPolygon"], "min_rows": 2},
            "OUTPUT_SUMMARY": {"geometry": None, "min_rows": 2},
        },
        "results": ["OBJECTIVE", "GAP_PCT", "MAX_DEVIATION_PCT", "MOVED"],
    },
    {
        "id": "design-k-straight-lines-highs",
        "alg": "designterritories",
        "params": {"ACCOUNTS": ACCOUNTS, "ID_FIELD": "id", "TERRITORIES": 3,
                   "BALANCE_FIELDS": ["revenue_potential"], "TOLERANCE": 10, "SOLVER": 1,
                   "TIME_LIMIT": 20, "OUTPUT_ACCOUNTS": "{out}/k_accounts.gpkg",
                   "OUTPUT_TERRITORIES": "{out}/k_territories.gpkg",
                   "OUTPUT_CENTRES": "{out}/k_centres.gpkg",
                   "OUTPUT_SUMMARY": "{out}/k_summary.gpkg"},
        "outputs": {"OUTPUT_ACCOUNTS": {"fields": ["territory_id"], "same_rows_as": "accounts",
                                        "distinct": {"territory_id": 3}},
                    "OUTPUT_TERRITORIES": {"rows": 3}},
        "results": ["OBJECTIVE", "MAX_DEVIATION_PCT"],
    },
    {
        # T05 is left out of REPS: its accounts are handed over ('rep left'), the rest rebalanced
        "id": "rebalance-rep-leaves-network",
        "alg": "rebalanceterritories",
        "params": {"ACCOUNTS": ACCOUNTS, "ID_FIELD": "id", "CURRENT_FIELD": "current_territory",
                   "REPS": REPS + "|subset=\"rep_id\" <> 'T05'", "REP_ID_FIELD": "rep_id",
                   "REP_CAPACITY_FIELD": "capacity",
                   "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
                   "BALANCE_WEIGHTS": "40,30", "TOLERANCE": 10, "MINIMISE": 1,
                   "MINIMISE_FIELD": "revenue_potential", "NETWORK": "{network}",
                   "TIME_LIMIT": 20,
                   "OUTPUT_ACCOUNTS": "{out}/rb_accounts.gpkg",
                   "OUTPUT_TERRITORIES": "{out}/rb_territories.gpkg",
                   "OUTPUT_MOVES": "{out}/rb_moves.gpkg"},
        "outputs": {
            "OUTPUT_ACCOUNTS": {"fields": ["id", "territory_id", "moved", "reason"],
                                "geometry": ["Point"], "same_rows_as": "accounts",
                                "distinct": {"territory_id": 4}},
            "OUTPUT_TERRITORIES": {"geometry": ["Polygon", "MultiPolygon"], "rows": 4},
            "OUTPUT_MOVES": {"fields": ["account_id", "from_id", "to_id", "reason", "moved_value",
                                       "centre_km"], "geometry": None, "min_rows": 50},
        },
        "results": ["OBJECTIVE", "LOWER_BOUND", "GAP_PCT", "MAX_DEVIATION_PCT", "MOVED",
                    "MOVES_LOWER_BOUND"],
    },
    {
        "id": "checkaccounts-network",
        "alg": "checkaccounts",
        "params": {"INPUT": ACCOUNTS, "ID_FIELD": "id", "NAME_FIELD": "name",
                   "NUMERIC_FIELDS": ["revenue_potential", "workload_visits"],
                   "NETWORK": "{network}", "MAX_SNAP": 500,
                   "OUTPUT": "{out}/checked.gpkg", "OUTPUT_SUMMARY": "{out}/check_summary.gpkg"},
        "outputs": {"OUTPUT": {"fields": ["id", "chk_dup_id", "chk_dup_account", "chk_geometry",
                                          "chk_revenue_potential", "chk_far_from_road",
                                          "chk_snap_m", "chk_ok", "chk_reasons"],
                               "geometry": ["Point"], "same_rows_as": "accounts"},
                    "OUTPUT_SUMMARY": {"fields": ["check", "count", "share_pct"],
                                       "geometry": None, "min_rows": 5}},
        "results": ["QUALITY_SCORE", "FLAGGED"],
    },
    {
        # the sample accounts against themselves (a baseline-vs-itself comparison: 0 moves)
        "id": "compareplans-baseline-vs-itself",
        "alg": "compareplans",
        "params": {"PLANS": [ACCOUNTS, ACCOUNTS], "ID_FIELD": "id",
                   "TERRITORY_FIELD": "current_territory",
                   "BALANCE_FIELDS": "revenue_potential,workload_visits",
                   "PLAN_NAMES": "today,again", "OUTPUT_KPIS": "{out}/compare_kpis.gpkg",
                   "OUTPUT_DIFFERENCES": "{out}/compare_differences.gpkg",
                   "OUTPUT_HTML": "{out}/compare.html"},
        "outputs": {"OUTPUT_KPIS": {"fields": ["plan", "territories", "cv_revenue_potential",
                                               "cv_workload_visits", "max_deviation_pct",
                                               "compactness_km", "moved_vs_baseline",
                                               "moved_share_pct"],
                                    "geometry": None, "rows": 2,
                                    "distinct": {"moved_vs_baseline": 1, "territories": 1}},
                    "OUTPUT_DIFFERENCES": {"fields": ["id", "today", "again", "in_all_plans",
                                                      "changed"],
                                           "geometry": None, "same_rows_as": "accounts",
                                           "distinct": {"changed": 1}}},
        "results": ["PLANS_COMPARED", "OUTPUT_HTML"],
    },
]  # fmt: skip


def _fill(value, names: dict):
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    return value.format(**names) if isinstance(value, str) else value


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_output(path: str, spec: dict, e2e_data) -> None:
    import pyogrio

    path, layer = ([*path.split("|layername=", 1), spec.get("layer")])[:2]
    frame = pyogrio.read_dataframe(path, layer=layer or spec.get("layer"))
    for field in spec.get("fields", []):
        assert field in frame.columns, f"{field} missing in {path}: {list(frame.columns)}"
    if "geometry" in spec:
        if spec["geometry"] is None:
            assert "geometry" not in frame.columns, f"{path} should be a table"
        else:
            assert set(frame.geometry.geom_type) <= set(spec["geometry"])
    if "min_rows" in spec:
        assert len(frame) >= spec["min_rows"]
    if "rows" in spec:
        assert len(frame) == spec["rows"]
    if "same_rows_as" in spec:
        source = pyogrio.read_dataframe(e2e_data[spec["same_rows_as"]])
        assert len(frame) == len(source)
    for field, count in spec.get("distinct", {}).items():
        assert frame[field].nunique() == count


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_algorithm_case(case, qp, e2e_data, e2e_network, tmp_path):
    names = {"out": tmp_path, "network": e2e_network, **e2e_data}
    before = {name: _digest(path) for name, path in e2e_data.items()}
    params = {key: _fill(value, names) for key, value in case["params"].items()}

    output = qp.run_json(case["alg"], params)

    results = output["results"]
    for key in case["results"]:
        assert key in results, f"{key} not in {sorted(results)}"
        assert results[key] is None or isinstance(results[key], (int, float, str))
    for key, spec in case["outputs"].items():
        _check_output(str(results[key]), spec, e2e_data)
    assert {name: _digest(path) for name, path in e2e_data.items()} == before  # inputs untouched


def test_list_shows_every_algorithm(qp):
    done = qp.qgis_process("list")
    assert done.returncode == 0, done.stderr
    assert "Territory Planner" in done.stdout
    for alg in ALGORITHMS:
        assert f"territory_planner:{alg}" in done.stdout


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_help_describes_parameters(qp, alg):
    done = qp.qgis_process("help", f"territory_planner:{alg}")
    assert done.returncode == 0, done.stderr
    assert "Territory Planner" in done.stdout or alg in done.stdout
    assert "OUTPUT" in done.stdout


def test_bad_parameter_exits_nonzero_with_message(qp, e2e_data, e2e_network, tmp_path):
    done = qp.qgis_process(
        "run", "territory_planner:drivetimecatchments", "--",
        f"INPUT={e2e_data['reps']}|layername=reps", "ID_FIELD=rep_id",
        f"NETWORK={e2e_network}", "BANDS=five", f"OUTPUT={tmp_path / 'bad.gpkg'}",
    )  # fmt: skip
    assert done.returncode != 0
    assert "BANDS" in done.stdout + done.stderr
    assert not (tmp_path / "bad.gpkg").exists()


def test_matrix_workers_start_inside_qgis_process(qp, e2e_data, e2e_network, tmp_path, monkeypatch):
    """A long matrix searches in worker processes under qgis_process too, with the same numbers."""
    import geopandas as gpd
    import numpy as np
    import shapely

    from territory_planner_plugin import matrix, network

    net = network.load_network(e2e_network)
    x0, y0, x1, y1 = net.x.min(), net.y.min(), net.x.max(), net.y.max()
    rng = np.random.default_rng(0)
    pts = gpd.GeoDataFrame({"pid": np.arange(3000)}, crs=net.crs,
                           geometry=shapely.points(rng.uniform(x0, x1, 3000),
                                                   rng.uniform(y0, y1, 3000)))  # fmt: skip
    pts.to_file(tmp_path / "pts.gpkg", layer="pts")
    monkeypatch.setenv(matrix.WORKERS_ENV, "2")  # a fast machine may not need workers for this
    result = qp.run_json("traveltimematrix", {
        "ORIGINS": f"{tmp_path / 'pts.gpkg'}|layername=pts", "ORIGIN_ID_FIELD": "pid",
        "DESTINATIONS": REPS.format(reps=e2e_data["reps"]), "DESTINATION_ID_FIELD": "rep_id",
        "NETWORK": e2e_network, "OUTPUT": tmp_path / "m.gpkg"})  # fmt: skip
    assert "Matrix worker process started" in str(result.get("log")), result.get("log")
    out = gpd.read_file(tmp_path / "m.gpkg").sort_values(["origin_id", "destination_id"])
    monkeypatch.setenv(matrix.WORKERS_ENV, "1")  # the reference: one process
    reps = gpd.read_file(e2e_data["reps"], layer="reps").to_crs(net.crs)
    ref = matrix.travel_time_matrix(net, pts, reps, origin_id_field="pid",
                                    destination_id_field="rep_id", max_snap_m=500.0)  # fmt: skip
    ref = ref.sort_values(["origin_id", "destination_id"])
    assert len(out) == len(ref) == 3000 * len(reps)
    assert np.allclose(out["minutes"].to_numpy(float), ref["minutes"].to_numpy(float),
                       equal_nan=True)  # fmt: skip
