"""Bad inputs through ``scripts/qgis_process.sh``: one case per bad input of each algorithm.

Every case asserts the exit status, a message that matches (and no Python traceback), that the
output folder holds nothing new after a failure and that the inputs are byte-identical. An
infeasible case also applies the relaxation its message proposes and asserts that the run then
succeeds. To add a case: append a :class:`Case` to ``CASES`` (data placeholders in ``{...}``:
see :func:`bad_data`), and keep the count in README.md's "Reliability" section.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

PLAN_OUTPUTS = ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY")


@dataclass
class Case:
    """One bad input: algorithm, parameters (``{name}`` = a file of :func:`bad_data`, ``{out}``
    = the case's output folder), whether it must fail, the message it must print and, for an
    infeasible case, the pattern of the proposed relaxation (group 1: the value) and the
    parameter it sets."""

    id: str
    alg: str
    params: dict
    fails: bool = True
    message: str = ""
    relax: tuple[str, str] | None = None  # (regex with the value in group 1, parameter)
    outputs: tuple[str, ...] = field(default=())


def _plan(**extra: object) -> dict:
    base = {"ACCOUNTS": "{acc}", "ID_FIELD": "id", "REPS": "{reps}", "REP_ID_FIELD": "rep_id",
            "BALANCE_FIELDS": "revenue_potential", "TIME_LIMIT": 5}  # fmt: skip
    return {**base, **{k: f"{{out}}/{k.lower()}.gpkg" for k in PLAN_OUTPUTS}, **extra}


def _rebalance(**extra: object) -> dict:
    return _plan(**{"CURRENT_FIELD": "current_territory", "OUTPUT_MOVES": "{out}/moves.gpkg",
                    **extra})  # fmt: skip


def _units(**extra: object) -> dict:
    base = {"UNITS": "{units}|layername=units", "UNIT_ID_FIELD": "area_id",
            "UNIT_BALANCE_FIELDS": "population", "TIME_LIMIT": 5,
            "OUTPUT_UNITS": "{out}/units.gpkg", "OUTPUT_TERRITORIES": "{out}/territories.gpkg",
            "OUTPUT_SUMMARY": "{out}/summary.gpkg"}  # fmt: skip
    return {k: v for k, v in {**base, **extra}.items() if v is not None}  # None: left out


CASES = [
    # buildroadnetwork
    Case("network-missing-osm", "buildroadnetwork",
         {"INPUT_OSM": "{data}/nowhere.osm.pbf", "OUTPUT": "{out}/net.gpkg"},
         message=r"INPUT_OSM"),
    Case("network-nothing-given", "buildroadnetwork", {"OUTPUT": "{out}/net.gpkg"},
         message=r"INPUT_OSM|EXTENT"),
    Case("network-download-server-unreachable", "buildroadnetwork",
         {"EXTENT": "24.93,24.95,60.16,60.17 [EPSG:4326]", "OVERPASS_URL": "http://127.0.0.1:9/api",
          "OUTPUT": "{out}/net.gpkg"},
         message=r"EXTENT: cannot reach the OpenStreetMap download server 127\.0\.0\.1 .*Without "
                 r"internet, use INPUT_OSM with a downloaded \.osm\.pbf"),
    Case("network-overpass-url-not-a-url", "buildroadnetwork",
         {"EXTENT": "24.93,24.95,60.16,60.17 [EPSG:4326]", "OVERPASS_URL": "overpass",
          "OUTPUT": "{out}/net.gpkg"},
         message=r"OVERPASS_URL: 'overpass' is not a web address"),
    # drivetimecatchments
    Case("catchments-bands-negative", "drivetimecatchments",
         {"INPUT": "{reps}", "ID_FIELD": "rep_id", "NETWORK": "{network}", "BANDS": "5,-1",
          "OUTPUT": "{out}/c.gpkg"},
         message=r"BANDS.*greater than 0.*like 5,10,15"),
    Case("catchments-bands-text", "drivetimecatchments",
         {"INPUT": "{reps}", "ID_FIELD": "rep_id", "NETWORK": "{network}", "BANDS": "ten",
          "OUTPUT": "{out}/c.gpkg"},
         message=r"BANDS.*'ten' is not a number.*like 5,10,15"),
    Case("catchments-max-snap-negative", "drivetimecatchments",
         {"INPUT": "{reps}", "ID_FIELD": "rep_id", "NETWORK": "{network}", "MAX_SNAP": -5,
          "OUTPUT": "{out}/c.gpkg"},
         message=r"MAX_SNAP must be a number greater than 0 \(metres\), like 500 \(got '-5'\)"),
    Case("catchments-shape-out-of-range", "drivetimecatchments",
         {"INPUT": "{reps}", "ID_FIELD": "rep_id", "NETWORK": "{network}", "SHAPE": 7,
          "OUTPUT": "{out}/c.gpkg"},
         message=r"SHAPE must be one of 0 = Convex hull.*2 = .*\(got '7'\)"),
    Case("catchments-rep-far-from-roads", "drivetimecatchments",
         {"INPUT": "{reps_far}", "ID_FIELD": "rep_id", "NETWORK": "{network}",
          "OUTPUT": "{out}/c.gpkg"},
         fails=False,
         message=r"INPUT: drive times cannot be trusted for 1 origins farther than 500 m from the "
                 r"nearest road of NETWORK: T01 \(1\d\d\.\d km\)\. They get no catchment"),
    Case("catchments-null-geometry", "drivetimecatchments",
         {"INPUT": "{reps_nullgeom}", "ID_FIELD": "rep_id", "NETWORK": "{network}",
          "OUTPUT": "{out}/c.gpkg"},
         fails=False, message=r"INPUT: 1 origins have a NULL or empty geometry and were left "
                              r"out: T01\. Give them a location"),
    # traveltimematrix
    Case("matrix-no-crs-metres", "traveltimematrix",
         {"ORIGINS": "{nocrs_m}", "ORIGIN_ID_FIELD": "id", "DESTINATIONS": "{reps}",
          "DESTINATION_ID_FIELD": "rep_id", "NETWORK": "{network}", "OUTPUT": "{out}/m.gpkg"},
         message=r"ORIGINS.*(no CRS|without a CRS).*(Layer Properties|Assign Projection)"),
    Case("matrix-null-geometry-and-far", "traveltimematrix",
         {"ORIGINS": "{nullgeom}", "ORIGIN_ID_FIELD": "id", "DESTINATIONS": "{reps_far}",
          "DESTINATION_ID_FIELD": "rep_id", "NETWORK": "{network}", "OUTPUT": "{out}/m.gpkg"},
         fails=False,
         message=r"ORIGINS: 2 origins have a NULL or empty geometry and were left out: A0001, "
                 r"A0002\..*DESTINATIONS: drive times cannot be trusted for 1 destinations .*T01 "
                 r"\(1\d\d\.\d km\)"),
    Case("matrix-max-minutes-zero", "traveltimematrix",
         {"ORIGINS": "{acc}", "ORIGIN_ID_FIELD": "id", "DESTINATIONS": "{reps}",
          "DESTINATION_ID_FIELD": "rep_id", "NETWORK": "{network}", "MAX_MINUTES": 0,
          "OUTPUT": "{out}/m.gpkg"},
         message=r"MAX_MINUTES"),
    # checkaccounts
    Case("check-unknown-id-field", "checkaccounts",
         {"INPUT": "{acc}", "ID_FIELD": "nope", "OUTPUT": "{out}/c.gpkg"},
         message=r"nope"),
    Case("check-null-geometry", "checkaccounts",
         {"INPUT": "{nullgeom}", "ID_FIELD": "id", "NETWORK": "{network}",
          "OUTPUT": "{out}/c.gpkg"},
         fails=False, message=r"(?i)geometr"),
    # designterritories
    Case("design-balance-fields-comma-separated", "designterritories",
         _plan(BALANCE_FIELDS="revenue_potential,workload_visits"),
         message=r"BALANCE_FIELDS: 'revenue_potential,workload_visits' is not a field of ACCOUNTS\. "
                 r"To balance several fields give each on its own: in qgis_process repeat the "
                 r"parameter \(BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits\)"),
    Case("design-null-geometry", "designterritories", _plan(ACCOUNTS="{nullgeom}"),
         message=r"ACCOUNTS: 2 accounts have a NULL or empty geometry: A0001, A0002\. Give them "
                 r"a location or filter them out"),
    Case("design-null-ids", "designterritories", _plan(ACCOUNTS="{nullid}"),
         message=r"ID_FIELD: 2 accounts have no id \(NULL or empty 'id'\): row 1 \(feature id "
                 r"1\), row 2 \(feature id 2\)\. Fill in their ids"),
    Case("design-reps-null-geometry", "designterritories", _plan(REPS="{reps_nullgeom}"),
         message=r"REPS: 1 reps have a NULL or empty geometry: T01\."),
    Case("design-reps-null-id", "designterritories", _plan(REPS="{reps_nullid}"),
         message=r"REP_ID_FIELD: 1 reps have no id \(NULL or empty 'rep_id'\): row 1"),
    Case("design-rep-far-from-roads", "designterritories",
         _plan(REPS="{reps_far}", NETWORK="{network}", TOLERANCE=30), fails=False,
         message=r"REPS: drive times cannot be trusted for 1 rep homes farther than 500 m from "
                 r"the nearest road of NETWORK: T01 \(1\d\d\.\d km\)"),
    Case("design-tolerance-out-of-range", "designterritories", _plan(TOLERANCE=200),
         message=r"TOLERANCE must be a number from 0 to 100, like 5 \(got '200'\)"),
    Case("design-rep-max-minutes-zero", "designterritories", _plan(REP_MAX_MINUTES=0),
         message=r"REP_MAX_MINUTES must be a number greater than 0 \(minutes\) \(got '0'\)"),
    Case("design-seed-not-integer", "designterritories", _plan(SEED=1.5),
         message=r"SEED must be a whole number of at least 0, like 0 \(got '1\.5'\)"),
    Case("design-csv-without-geometry", "designterritories", _plan(ACCOUNTS="{nogeom}"),
         message=r"ACCOUNTS"),
    Case("design-longitude-200", "designterritories", _plan(ACCOUNTS="{lon200}"),
         message=r"ACCOUNTS: 1 feature\(s\) have impossible longitude/latitude.*A0001"),
    Case("design-point-at-0-0", "designterritories", _plan(ACCOUNTS="{zero}", TOLERANCE=20),
         fails=False, message=r"ACCOUNTS: 1 feature\(s\) lie at exactly 0,0.*A0001"),
    Case("design-no-crs-lon-lat", "designterritories", _plan(ACCOUNTS="{nocrs_ll}"),
         fails=False, message=r"ACCOUNTS has no CRS; its coordinates look like longitude"),
    Case("design-no-crs-metres", "designterritories", _plan(ACCOUNTS="{nocrs_m}"),
         message=r"ACCOUNTS: the layer has no CRS.*Assign Projection"),
    Case("design-k-not-integer", "designterritories",
         {**_plan(REPS=""), "TERRITORIES": 2.5}, message=r"TERRITORIES.*2\.5"),
    Case("design-missing-output-folder", "designterritories",
         _plan(OUTPUT_SUMMARY="{out}/missing/summary.gpkg"), message=r"OUTPUT_SUMMARY"),
    Case("design-output-is-input", "designterritories",
         _plan(OUTPUT_ACCOUNTS="{acc}"), message=r"OUTPUT_ACCOUNTS"),
    Case("design-tolerance-zero-infeasible", "designterritories", _plan(TOLERANCE=0),
         message=r"No plan satisfies",
         relax=(r"set TOLERANCE to at least ([0-9.]+)%", "TOLERANCE")),
    Case("design-rep-max-minutes-too-small", "designterritories", _plan(REP_MAX_MINUTES=0.5),
         message=r"REP_MAX_MINUTES \(0\.5 min\): accounts \[.*\] are farther than that from "
                 r"every rep home.*set REP_MAX_MINUTES to at least [\d.]+ min",
         relax=(r"set REP_MAX_MINUTES to at least ([\d.]+) min", "REP_MAX_MINUTES")),
    # rebalanceterritories
    Case("rebalance-unknown-current-field", "rebalanceterritories",
         _rebalance(CURRENT_FIELD="nope"), message=r"CURRENT_FIELD"),
    Case("rebalance-no-moves-allowed", "rebalanceterritories",
         _rebalance(REPS="", MAX_MOVES=0, TOLERANCE=3),
         message=r"No plan satisfies.*set MAX_MOVES to at least",
         relax=(r"set MAX_MOVES to at least ([0-9.]+)%", "MAX_MOVES")),
    # territoryreport
    Case("report-territory-null-everywhere", "territoryreport",
         {"ACCOUNTS": "{nullplan}", "TERRITORY_FIELD": "territory_id",
          "OUTPUT_HTML": "{out}/r.html"},
         message=r"TERRITORY_FIELD.*(empty|NULL)"),
    Case("report-negative-tolerance", "territoryreport",
         {"ACCOUNTS": "{plan}", "TERRITORY_FIELD": "territory_id", "TOLERANCE": -5,
          "OUTPUT_HTML": "{out}/r.html"},
         message=r"TOLERANCE"),
    Case("report-null-geometry", "territoryreport",
         {"ACCOUNTS": "{plan_nullgeom}", "TERRITORY_FIELD": "territory_id",
          "OUTPUT_HTML": "{out}/r.html"},
         fails=False, message=r"ACCOUNTS: 2 of 40 accounts have a NULL or empty geometry: id "
                              r"A0001, A0002\. They count in the totals and KPIs but are not on "
                              r"the map"),
    Case("report-backtest-text-field", "territoryreport",
         {"ACCOUNTS": "{plan}", "TERRITORY_FIELD": "territory_id", "BACKTEST_FIELD": "name",
          "OUTPUT_HTML": "{out}/r.html"},
         message=r"BACKTEST_FIELD: 'name' holds text \(e\.g\. '.+'\), not numbers"),
    # compareplans
    Case("compare-one-plan", "compareplans",
         {"PLANS": ["{plan}"], "TERRITORY_FIELD": "territory_id", "OUTPUT_KPIS": "{out}/k.gpkg"},
         message=r"at least two plans"),
    Case("compare-territory-null-everywhere", "compareplans",
         {"PLANS": ["{plan}", "{nullplan}"], "TERRITORY_FIELD": "territory_id",
          "OUTPUT_KPIS": "{out}/k.gpkg"},
         message=r"TERRITORY_FIELD.*(empty|NULL)"),
    # exportterritories
    Case("export-csv-unknown-id-field", "exportterritories",
         {"INPUT": "{plan}", "TERRITORY_FIELD": "territory_id", "FORMAT": 5, "ID_FIELD": "nope",
          "OUTPUT": "{out}/crm.csv"},
         message=r"ID_FIELD"),
    Case("export-kml-no-crs", "exportterritories",
         {"INPUT": "{nocrs_plan}", "TERRITORY_FIELD": "territory_id", "FORMAT": 2,
          "OUTPUT": "{out}/p.kml"},
         message=r"(no CRS|without a CRS)"),
    Case("export-kml-null-geometry", "exportterritories",
         {"INPUT": "{plan_nullgeom}", "TERRITORY_FIELD": "territory_id", "FORMAT": 2,
          "OUTPUT": "{out}/p.kml"},
         fails=False, message=r"INPUT: 2 of 40 features have a NULL or empty geometry: id A0001, "
                              r"A0002\. They are written without a location \(KML viewers"),
    # coverage models, groups and regions (designterritories)
    Case("design-named-top-pct-out-of-range", "designterritories",
         _plan(NAMED_TOP_PCT=120, REP_NAMED_FIELD="named_accounts"),
         message=r"NAMED_TOP_PCT"),
    Case("design-segment-without-skills", "designterritories", _plan(SEGMENT_FIELD="segment"),
         message=r"SEGMENT_FIELD and REP_SKILLS_FIELD go together"),
    Case("design-regions-above-territories", "designterritories",
         {**_plan(REPS=""), "TERRITORIES": 3, "REGIONS": 4},
         message=r"REGIONS: 4 must be from 1 to the number of territories"),
    Case("design-more-groups-than-territories", "designterritories",
         {**_plan(REPS=""), "TERRITORIES": 2, "GROUP_FIELD": "segment"},
         message=r"fewer than the \d+ groups"),
    # territories from areas (UNITS) in one piece
    Case("units-locks-contiguity-cannot-honour", "designterritories",
         _units(UNIT_LOCK_FIELD="lock", REPS="{reps_all}", REP_ID_FIELD="rep_id", TOLERANCE=10,
                TIME_LIMIT=10, UNITS="{units_locked}|layername=units"),
         message=r"T01 cannot stay below 110\.0% of its share of population in one piece.*"
                 r"Checked by solving, each of these alone gives a plan: unlock the 3 locked "
                 r"units \(UNIT_LOCK_FIELD\)",
         relax=(r"unlock the 3 locked units \((?:UNIT_LOCK_FIELD)\)()", "UNIT_LOCK_FIELD")),
    Case("units-one-unit-too-heavy-for-any-territory", "designterritories",
         _units(UNITS="{units_heavy}|layername=units", REPS="{reps_all}", REP_ID_FIELD="rep_id",
                TOLERANCE=10),
         message=r"Unit B001 alone holds [0-9,]+ of population \(24\.0%\), 20\.0% above the "
                 r"largest territory target .*at TOLERANCE 10% no territory may hold more than "
                 r".*set TOLERANCE to at least 20\.[01]%",
         relax=(r"set TOLERANCE to at least ([0-9.]+)%", "TOLERANCE")),
    Case("units-accounts-outside-every-unit", "designterritories",
         _units(ACCOUNTS="{acc_far}", ID_FIELD="id", BALANCE_FIELDS="revenue_potential",
                UNIT_BALANCE_FIELDS=None, TERRITORIES=3, OUTPUT_ACCOUNTS="{out}/accounts.gpkg"),
         message=r"ACCOUNTS: 2 account\(s\) lie outside every unit: \['A0501', 'A0502'\].*"
                 r"set UNIT_MAX_DISTANCE to at least \d+ m",
         relax=(r"set UNIT_MAX_DISTANCE to at least (\d+) m", "UNIT_MAX_DISTANCE")),
    Case("units-current-names-no-territory", "designterritories",
         _units(UNITS="{units_today}|layername=units", UNIT_CURRENT_FIELD="today",
                REPS="{reps}", REP_ID_FIELD="rep_id", TOLERANCE=20),
         fails=False,
         message=r"UNIT_CURRENT_FIELD: 115 units name a territory that is not planned \(T1, T2, "
                 r"T3; planned: T01, T02, T03\); they count as new"),
    Case("units-empty-layer", "designterritories",
         _units(UNITS="{units_empty}|layername=units", TERRITORIES=3),
         message=r"UNITS: the layer 'units_empty' is empty; add the areas"),
    Case("units-as-many-territories-as-units", "designterritories", _units(TERRITORIES=115),
         message=r"14 units \(B010, .* and 4 more\) each hold more of population than any of "
                 r"the 115 territories may hold even at TOLERANCE 99%.*lower TERRITORIES"),
]  # fmt: skip


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def bad_data(e2e_data, e2e_network, tmp_path_factory) -> dict[str, str]:
    """Small inputs, each with one fault, next to a good plan made from the sample data."""
    folder = tmp_path_factory.mktemp("bad_data")
    acc = gpd.read_file(e2e_data["accounts"]).iloc[:40].reset_index(drop=True)
    reps = gpd.read_file(e2e_data["reps"]).iloc[:3]
    files = {"data": str(folder), "network": str(e2e_network)}

    def save(name: str, frame: gpd.GeoDataFrame, layer: str = "accounts") -> None:
        path = folder / f"{name}.gpkg"
        with warnings.catch_warnings():  # the layers without a CRS are meant to be so
            warnings.simplefilter("ignore", UserWarning)
            frame.to_file(path, layer=layer, driver="GPKG")
        files[name] = str(path)

    save("acc", acc)
    save("reps", reps, "reps")
    save("nocrs_m", acc.to_crs(3067).set_crs(None, allow_override=True))
    metric = reps.to_crs(3067)
    north = [shapely.Point(g.x, g.y + 160_000) if i == 0 else g
             for i, g in enumerate(metric.geometry)]  # fmt: skip
    save("reps_far", metric.set_geometry(north, crs=metric.crs).to_crs(reps.crs), "reps")
    save("reps_nullgeom", reps.assign(geometry=[None, *reps.geometry.iloc[1:]]), "reps")
    save("reps_nullid", reps.assign(rep_id=[None, *reps["rep_id"].iloc[1:]]), "reps")
    save("nullgeom", acc.assign(geometry=[None, None, *acc.geometry.iloc[2:]]))
    save("nullid", acc.assign(id=[None, None, *acc["id"].iloc[2:]]))
    save("lon200", acc.assign(geometry=[shapely.Point(200, 60), *acc.geometry.iloc[1:]]))
    save("zero", acc.assign(geometry=[shapely.Point(0, 0), *acc.geometry.iloc[1:]]))
    save("nocrs_ll", acc.set_crs(None, allow_override=True))
    plan = acc.assign(territory_id=acc["current_territory"])
    save("plan", plan)
    save("nullplan", plan.assign(territory_id=None))
    save("plan_nullgeom", plan.assign(geometry=[None, None, *plan.geometry.iloc[2:]]))
    save("nocrs_plan", plan.to_crs(3067).set_crs(None, allow_override=True))
    units = gpd.read_file(e2e_data["areas"], layer="areas")
    save("units", units, "units")
    west_east = units.geometry.centroid.x.to_numpy().argsort()
    lock = pd.Series(None, index=units.index, dtype=object)  # T01 at both ends, T02 between
    lock.iloc[[west_east[0], west_east[-1]]] = "T01"
    lock.iloc[west_east[len(units) // 2]] = "T02"
    save("units_locked", units.assign(lock=lock), "units")
    save("reps_all", gpd.read_file(e2e_data["reps"]), "reps")
    # the first unit (B001) 20 % above a territory's target with 5 reps: no territory may hold it
    rest = int(units["population"].sum() - units["population"].iloc[0])
    heavy = [round(0.24 * rest / 0.76), *units["population"].iloc[1:]]
    save("units_heavy", units.assign(population=heavy), "units")
    save("units_empty", units.iloc[:0], "units")  # no rows: its geometry type is unknown
    today = [f"T{i % 3 + 1}" for i in range(len(units))]  # 'T1' for 'T01': not planned
    save("units_today", units.assign(today=today), "units")
    every = gpd.read_file(e2e_data["accounts"])
    save("acc_far", every[every["id"].isin([*acc["id"], "A0501", "A0502"])])  # 2 off the blocks
    csv = folder / "nogeom.csv"
    pd.DataFrame(acc.drop(columns="geometry")).to_csv(csv, index=False)
    files["nogeom"] = str(csv)
    return files


def _fill(value: object, files: dict[str, str], out: Path) -> object:
    if isinstance(value, list):
        return [_fill(v, files, out) for v in value]
    if isinstance(value, str):
        return value.format(out=out, **files)
    return value


def _args(alg: str, params: dict) -> list[str]:
    args = ["run", f"territory_planner:{alg}", "--"]
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            args.append(f"{key}={item}")
    return args


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, bad_data, qp, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    params = {k: _fill(v, bad_data, out) for k, v in case.params.items()}
    data = Path(bad_data["data"])
    before_inputs, before_out = _digest(data), _digest(out)
    done = qp.qgis_process(*_args(case.alg, params))
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    assert (done.returncode != 0) == case.fails, f"exit {done.returncode}\n{text}"
    assert re.search(case.message, text, re.S), text
    assert _digest(data) == before_inputs, "an input file changed"
    if case.fails:
        assert _digest(out) == before_out, f"files left behind: {sorted(_digest(out))}"
    if case.relax:
        pattern, key = case.relax
        found = re.search(pattern, text)
        assert found, text
        again = qp.qgis_process(*_args(case.alg, {**params, key: found.group(1)}))
        assert again.returncode == 0, again.stdout + again.stderr
