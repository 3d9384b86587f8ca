#!/usr/bin/env bash
# make demo: the whole Territory Planner chain on sample_data/ through qgis_process.
#   1. buildroadnetwork      sample OSM extract          -> demo_output/network.gpkg
#   2. drivetimecatchments   5/10/15 min around each rep -> demo_output/catchments.gpkg
#   3. traveltimematrix      reps x accounts             -> demo_output/matrix.gpkg
#   4. designterritories     reps, balance, locks, moves -> demo_output/territories.gpkg (+ accounts, centres, summary)
#   5. territoryreport -> demo_output/report.html; 6-7. exportterritories -> KML and CRM CSV.
#   0. checkaccounts (data quality first) and 8. rebalanceterritories (today's plan, fewest moves).
#   9. designterritories from areas: sample_data/areas.gpkg as UNITS, every territory one piece
#      -> demo_output/areas_territories.gpkg, areas_units.gpkg, areas_summary.gpkg, areas-plan.png;
#      the territories grouped into 2 regions (REGIONS: region_id, each region one piece)
#  10. designterritories hybrid: top 20 % of potential named (reps_hybrid.gpkg: N01, N02), the rest
#      geographic among T01-T05 -> demo_output/hybrid_*.gpkg
#  11-13. three coverage models on the same 7 reps (geographic, named-accounts, hybrid) and
#      compareplans against today's plan -> demo_output/coverage_comparison.html
#  14. sizeterritories: how many territories give 80-120 active prospects each (K = 2..10)
#      -> demo_output/sizing.gpkg (trade-off table) and sizing.html (chart); the report (5) has a
#      back-test of last year's revenue per rep (BACKTEST_FIELD revenue_last_year)
# Each step's JSON answer is kept in demo_output/<step>.json.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
QP="$HERE/scripts/qgis_process.sh"
DATA="$HERE/sample_data"
OUT="${DEMO_OUTPUT:-$HERE/demo_output}"
mkdir -p "$OUT"

OSM=""
for pattern in '*.osm' '*.osm.bz2' '*.osm.pbf' '*.pbf'; do
  for f in "$DATA"/$pattern; do [ -f "$f" ] && OSM="$f" && break 2; done
done
for f in "$OSM" "$DATA/accounts.gpkg" "$DATA/reps.gpkg" "$DATA/areas.gpkg" "$DATA/reps_hybrid.gpkg"; do
  if [ -z "$f" ] || [ ! -f "$f" ]; then
    echo "demo: sample data missing (${f:-an OSM extract in sample_data/}); run 'make sample-data'." >&2
    exit 1
  fi
done
ACCOUNTS="$DATA/accounts.gpkg|layername=accounts"
REPS="$DATA/reps.gpkg|layername=reps"
AREAS="$DATA/areas.gpkg|layername=areas"
HYBRID_REPS="$DATA/reps_hybrid.gpkg|layername=reps_hybrid"
AREA_ID=area_id

# run STEP ALG K=V ...: qgis_process --json, answer saved to $OUT/STEP.json, log on failure.
run() {
  local step="$1" alg="$2"; shift 2
  local started=$SECONDS
  printf 'demo: %-22s ' "$step"
  if ! "$QP" run "territory_planner:$alg" --json -- "$@" >"$OUT/$step.json" 2>"$OUT/$step.log"; then
    echo "FAILED"
    cat "$OUT/$step.log" >&2
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("\n".join(d.get("log",{}).get("info","").splitlines()[-20:]))' \
      "$OUT/$step.json" >&2 2>/dev/null || tail -n 20 "$OUT/$step.json" >&2
    exit 1
  fi
  echo "ok ($((SECONDS - started)) s)"
}

rm -f "$OUT"/network.gpkg "$OUT"/catchments.gpkg "$OUT"/matrix.gpkg "$OUT"/accounts_assigned.gpkg \
  "$OUT"/territories.gpkg "$OUT"/centres.gpkg "$OUT"/summary.gpkg

rm -f "$OUT"/checked.gpkg "$OUT"/check_summary.gpkg
run 0-check checkaccounts INPUT="$ACCOUNTS" ID_FIELD=id NAME_FIELD=name \
  NUMERIC_FIELDS=revenue_potential NUMERIC_FIELDS=workload_visits \
  OUTPUT="$OUT/checked.gpkg" OUTPUT_SUMMARY="$OUT/check_summary.gpkg"
run 1-network buildroadnetwork INPUT_OSM="$OSM" NETWORK_TYPE=0 OUTPUT="$OUT/network.gpkg"
run 2-catchments drivetimecatchments INPUT="$REPS" ID_FIELD=rep_id NETWORK="$OUT/network.gpkg" \
  BANDS=5,10,15 SHAPE=1 PARTITION=false MAX_SNAP=500 OUTPUT="$OUT/catchments.gpkg"
run 3-matrix traveltimematrix ORIGINS="$REPS" ORIGIN_ID_FIELD=rep_id DESTINATIONS="$ACCOUNTS" \
  DESTINATION_ID_FIELD=id NETWORK="$OUT/network.gpkg" MAX_SNAP=500 OUTPUT="$OUT/matrix.gpkg"
run 4-territories designterritories ACCOUNTS="$ACCOUNTS" ID_FIELD=id \
  REPS="$REPS" REP_ID_FIELD=rep_id REP_CAPACITY_FIELD=capacity \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits \
  TOLERANCE=5 LOCK_FIELD=locked_to CURRENT_FIELD=current_territory MAX_MOVES=15 CONTIGUOUS=2 \
  NETWORK="$OUT/network.gpkg" SEED=0 TIME_LIMIT=30 SOLVER=0 \
  OUTPUT_ACCOUNTS="$OUT/accounts_assigned.gpkg" OUTPUT_TERRITORIES="$OUT/territories.gpkg" \
  OUTPUT_CENTRES="$OUT/centres.gpkg" OUTPUT_SUMMARY="$OUT/summary.gpkg"

rm -f "$OUT"/report.html "$OUT"/summary.csv "$OUT"/territories.kml "$OUT"/crm_import.csv
run 5-report territoryreport ACCOUNTS="$OUT/accounts_assigned.gpkg" TERRITORY_FIELD=territory_id \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits CURRENT_FIELD=current_territory \
  TERRITORIES="$OUT/territories.gpkg" SUMMARY="$OUT/summary.gpkg" CENTRES="$REPS" TOLERANCE=5 \
  BACKTEST_FIELD=revenue_last_year OUTPUT_HTML="$OUT/report.html" OUTPUT_CSV="$OUT/summary.csv"
run 6-export-kml exportterritories INPUT="$OUT/territories.gpkg" TERRITORY_FIELD=territory_id \
  FORMAT=2 SPLIT=false OUTPUT="$OUT/territories.kml"
run 7-export-crm exportterritories INPUT="$OUT/accounts_assigned.gpkg" TERRITORY_FIELD=territory_id \
  FORMAT=5 FIELDS=name SPLIT=false OUTPUT="$OUT/crm_import.csv"
rm -f "$OUT"/rebalanced.gpkg "$OUT"/rebalanced_territories.gpkg "$OUT"/moves.gpkg
run 8-rebalance rebalanceterritories ACCOUNTS="$ACCOUNTS" ID_FIELD=id \
  CURRENT_FIELD=current_territory REPS="$REPS" REP_ID_FIELD=rep_id REP_CAPACITY_FIELD=capacity \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits TOLERANCE=5 \
  LOCK_FIELD=locked_to MINIMISE=0 TIME_LIMIT=30 SOLVER=0 \
  OUTPUT_ACCOUNTS="$OUT/rebalanced.gpkg" OUTPUT_TERRITORIES="$OUT/rebalanced_territories.gpkg" \
  OUTPUT_MOVES="$OUT/moves.gpkg"
rm -f "$OUT"/areas_territories.gpkg "$OUT"/areas_units.gpkg "$OUT"/areas_summary.gpkg \
  "$OUT"/areas_accounts.gpkg "$OUT"/areas-plan.png
run 9-areas designterritories UNITS="$AREAS" UNIT_ID_FIELD="$AREA_ID" ACCOUNTS="$ACCOUNTS" ID_FIELD=id \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits TERRITORIES=5 TOLERANCE=10 REGIONS=2 \
  CONTIGUOUS=0 ADJACENCY=0 UNIT_MAX_DISTANCE=3000 SEED=0 TIME_LIMIT=30 SOLVER=0 \
  OUTPUT_TERRITORIES="$OUT/areas_territories.gpkg" OUTPUT_UNITS="$OUT/areas_units.gpkg" \
  OUTPUT_SUMMARY="$OUT/areas_summary.gpkg" OUTPUT_ACCOUNTS="$OUT/areas_accounts.gpkg"
"$PY" scripts/render_areas_plan.py "$OUT/areas_units.gpkg" "$OUT/areas_territories.gpkg" \
  "$OUT/areas-plan.png" "$OUT/areas_accounts.gpkg"
rm -f "$OUT"/sizing.gpkg "$OUT"/sizing.html
run 14-sizing sizeterritories ACCOUNTS="$ACCOUNTS" ID_FIELD=id \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits TARGET_FIELD=active_prospect \
  TARGET_MIN=80 TARGET_MAX=120 K_MIN=2 K_MAX=10 TOLERANCE=10 CURRENT_FIELD=current_territory \
  SEED=0 TIME_LIMIT=30 OUTPUT_TABLE="$OUT/sizing.gpkg" OUTPUT_HTML="$OUT/sizing.html"

# coverage models: the same accounts and the same 7 reps (5 geographic + 2 named-account reps)
rm -f "$OUT"/hybrid_*.gpkg "$OUT"/geographic_*.gpkg "$OUT"/named_*.gpkg "$OUT"/today.gpkg \
  "$OUT"/reps_all_named.gpkg "$OUT"/coverage_comparison.html "$OUT"/coverage_kpis.gpkg
COVERAGE_COMMON=(ACCOUNTS="$ACCOUNTS" ID_FIELD=id REP_ID_FIELD=rep_id REP_CAPACITY_FIELD=capacity
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits TOLERANCE=5
  CURRENT_FIELD=current_territory SEED=0 TIME_LIMIT=30 SOLVER=0)
plan_outputs() {  # OUTPUT_* of a coverage model named $1
  echo OUTPUT_ACCOUNTS="$OUT/$1_accounts.gpkg" OUTPUT_TERRITORIES="$OUT/$1_territories.gpkg" \
    OUTPUT_CENTRES="$OUT/$1_centres.gpkg" OUTPUT_SUMMARY="$OUT/$1_summary.gpkg"
}
# shellcheck disable=SC2046
run 10-hybrid designterritories "${COVERAGE_COMMON[@]}" REPS="$HYBRID_REPS" \
  NAMED_TOP_PCT=20 REP_NAMED_FIELD=named_accounts $(plan_outputs hybrid)
# shellcheck disable=SC2046
run 11-geographic designterritories "${COVERAGE_COMMON[@]}" REPS="$HYBRID_REPS" $(plan_outputs geographic)
# the named-accounts model: every account named, every rep a named-account rep
"$PY" - "$DATA/reps_hybrid.gpkg" "$OUT" <<'PY'
import sys
import pyogrio
reps = pyogrio.read_dataframe(sys.argv[1])
pyogrio.write_dataframe(reps.assign(named_accounts=1), f"{sys.argv[2]}/reps_all_named.gpkg")
acc = pyogrio.read_dataframe(sys.argv[1].replace("reps_hybrid", "accounts"))
today = acc.assign(territory_id=acc["current_territory"])  # today's plan, the baseline
pyogrio.write_dataframe(today, f"{sys.argv[2]}/today.gpkg")
PY
# shellcheck disable=SC2046
run 12-named designterritories "${COVERAGE_COMMON[@]}" \
  REPS="$OUT/reps_all_named.gpkg|layername=reps_all_named" NAMED_TOP_PCT=100 \
  REP_NAMED_FIELD=named_accounts $(plan_outputs named)
run 13-compare-coverage compareplans PLANS="$OUT/today.gpkg" PLANS="$OUT/geographic_accounts.gpkg" \
  PLANS="$OUT/named_accounts.gpkg" PLANS="$OUT/hybrid_accounts.gpkg" ID_FIELD=id \
  TERRITORY_FIELD=territory_id PLAN_NAMES="today,geographic,named accounts,hybrid" \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits TOLERANCE=5 \
  CAPACITIES="$REPS" CAPACITIES="$OUT/geographic_summary.gpkg" CAPACITIES="$OUT/named_summary.gpkg" \
  CAPACITIES="$OUT/hybrid_summary.gpkg" \
  OUTPUT_HTML="$OUT/coverage_comparison.html" OUTPUT_KPIS="$OUT/coverage_kpis.gpkg"

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def results(step):
    return json.loads((out / f"{step}.json").read_text())["results"]

c, m, t = results("2-catchments"), results("3-matrix"), results("4-territories")
q, r = results("0-check"), results("8-rebalance")
print()
print(f"Outputs in {out}/:")
for name, text in (
    ("checked.gpkg", "accounts with data-quality flags (chk_* fields)"),
    ("network.gpkg", "road network (layers nodes, edges)"),
    ("catchments.gpkg", "5/10/15-minute drive-time areas around each rep"),
    ("matrix.gpkg", "rep x account drive times (minutes, km)"),
    ("accounts_assigned.gpkg", "accounts with territory_id, rep_id, moved, reason"),
    ("territories.gpkg", "territory polygons with totals"),
    ("centres.gpkg", "territory centres"),
    ("summary.gpkg", "one row per territory: totals and deviation from fair share"),
    ("report.html", "territory report: map, charts, KPIs, back-test of last year's revenue"),
    ("summary.csv", "per-territory summary as CSV"),
    ("territories.kml", "territories for Google Earth"),
    ("crm_import.csv", "account id, territory id, rep id for a CRM import"),
    ("rebalanced.gpkg", "today's plan rebalanced with the fewest moves"),
    ("moves.gpkg", "the moves: account, from, to, reason"),
    ("areas_territories.gpkg", "territories built from the sample areas (dissolved units)"),
    ("areas_units.gpkg", "the sample areas with territory_id"),
    ("areas_summary.gpkg", "one row per area-built territory, with pieces"),
    ("areas-plan.png", "picture of the area-built territories over their areas"),
    ("hybrid_accounts.gpkg", "hybrid plan: top 20 % named (tier field), the rest geographic"),
    ("coverage_comparison.html", "geographic vs named-accounts vs hybrid vs today, side by side"),
    ("sizing.gpkg", "how many territories: trade-off table over K = 2..10"),
    ("sizing.html", "the trade-off chart over K, recommended K marked (open in a browser)"),
):
    print(f"  {name:<24} {text}")
print()
print("KPIs:")
print(f"  data quality score (%)             : {q.get('QUALITY_SCORE')}")
print(f"  reps too far from the road network : {c.get('UNSNAPPED')}")
print(f"  unreachable rep-account pairs      : {m.get('UNREACHABLE')}")
for key, label in (("MAX_DEVIATION_PCT", "largest balance deviation (%)"),
                   ("MOVED", "accounts moved"), ("GAP_PCT", "optimality gap (%)"),
                   ("OBJECTIVE", "objective"), ("LOWER_BOUND", "lower bound")):
    value = t.get(key)
    print(f"  {label:<35}: {value:.2f}" if isinstance(value, (int, float)) else f"  {label:<35}: {value}")
print(f"  territories in more than one piece : {t.get('SPLIT_TERRITORIES'):g} of 5 (CONTIGUOUS is off "
      "in this plan: with a 15 % moves budget one piece each is out of reach; README step 1 "
      "and the areas plan below hold together)")
print(f"  rebalance of today's plan: moves   : {r.get('MOVED')} (proven minimum {r.get('MOVES_LOWER_BOUND')})")
a = results("9-areas")
print(f"  territories from areas: split      : {a.get('SPLIT_TERRITORIES')} "
      f"(accounts placed in the nearest area: {a.get('ACCOUNTS_OUTSIDE_UNITS')})")
print(f"  2 regions of those: largest dev. % : {a.get('REGION_MAX_DEVIATION_PCT')}")
z = results("14-sizing")
print(f"  recommended K (80-120 prospects)   : {z.get('RECOMMENDED_K')}")
try:
    import pyogrio
    summary = pyogrio.read_dataframe(str(out / "summary.gpkg"))
    print()
    print(summary.to_string(index=False, max_cols=12))
except Exception as err:  # the summary table is a bonus
    print(f"(summary table not shown: {err})")
import pyogrio
areas = pyogrio.read_dataframe(str(out / "areas_summary.gpkg"))
print()
print("Territories from areas (every territory one piece):")
for row in areas.itertuples():
    print(f"  {row.territory_id}: {int(row.pieces)} piece(s), region {row.region_id}")
if (areas["pieces"] != 1).any():
    sys.exit("demo: a territory built from areas is not in one piece")
h = results("10-hybrid")
hs = pyogrio.read_dataframe(str(out / "hybrid_summary.gpkg"))
print()
print(f"Hybrid plan: largest deviation {h['MAX_DEVIATION_PCT']:.2f}% (each tier against its own "
      f"targets), gap {h['GAP_PCT']:.2f}%:")
for tier, rows in hs.groupby("tier", sort=False):
    print(f"  {tier:<10}: {', '.join(rows['territory_id'])}; {int(rows['accounts'].sum())} accounts, "
          f"largest deviation {rows['max_deviation_pct'].iloc[0]:.2f}%, gap {rows['gap_pct'].iloc[0]:.2f}%")
k = pyogrio.read_dataframe(str(out / "coverage_kpis.gpkg"))
cols = [c for c in ("plan", "territories", "headcount_fte", "cv_revenue_potential",
                    "cv_workload_visits", "max_deviation_pct", "compactness_km",
                    "moved_share_pct", "relationships_kept_pct") if c in k.columns]
print()
print("Coverage models against today's plan (coverage_comparison.html):")
print(k[cols].to_string(index=False))
if areas["region_id"].nunique() != 2:
    sys.exit("demo: the area-built territories are not grouped into 2 regions")
sizing = pyogrio.read_dataframe(str(out / "sizing.gpkg"))
print()
print("How many territories for 80-120 active prospects each (sizeterritories):")
print(sizing[["k", "meets_target", "target_min", "target_max", "max_deviation_pct", "travel_km",
              "moved_pct"]].to_string(index=False))
if "id='backtest'" not in (out / "report.html").read_text(encoding="utf-8"):
    sys.exit("demo: the report has no back-test section")
PY
