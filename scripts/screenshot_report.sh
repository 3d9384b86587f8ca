#!/usr/bin/env bash
# make screenshot (second part): the HTML report of the sample plan as a browser shows it.
# Runs designterritories and territoryreport on sample_data/ through qgis_process into a temporary
# folder, then headless Chromium (Debian's 'chromium') saves docs/screenshots/report.png (the top
# of the page: header, verdicts, map and territory table). Exits non-zero when the PNG is missing.
# Environment: SCREENSHOT_DIR (output folder).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
OUT="${SCREENSHOT_DIR:-$HERE/docs/screenshots}"
QP="$HERE/scripts/qgis_process.sh"
CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$CHROMIUM" ] || { echo "screenshot: 'chromium' not found; run 'make env'." >&2; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tp-report.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ACCOUNTS="sample_data/accounts.gpkg|layername=accounts"
REPS="sample_data/reps.gpkg|layername=reps"

"$QP" run territory_planner:designterritories -- ACCOUNTS="$ACCOUNTS" ID_FIELD=id \
  REPS="$REPS" REP_ID_FIELD=rep_id REP_CAPACITY_FIELD=capacity \
  BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits TOLERANCE=5 \
  LOCK_FIELD=locked_to CURRENT_FIELD=current_territory MAX_MOVES=15 SEED=0 TIME_LIMIT=30 \
  OUTPUT_ACCOUNTS="$WORK/accounts.gpkg" OUTPUT_TERRITORIES="$WORK/territories.gpkg" \
  OUTPUT_SUMMARY="$WORK/summary.gpkg" >"$WORK/design.log" 2>&1 \
  || { cat "$WORK/design.log" >&2; exit 1; }
"$QP" run territory_planner:territoryreport -- ACCOUNTS="$WORK/accounts.gpkg" \
  TERRITORY_FIELD=territory_id BALANCE_FIELDS=revenue_potential BALANCE_FIELDS=workload_visits \
  CURRENT_FIELD=current_territory TERRITORIES="$WORK/territories.gpkg" \
  SUMMARY="$WORK/summary.gpkg" CENTRES="$REPS" TOLERANCE=5 \
  OUTPUT_HTML="$WORK/report.html" OUTPUT_CSV="$WORK/summary.csv" >"$WORK/report.log" 2>&1 \
  || { cat "$WORK/report.log" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT/report.png"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --screenshot="$OUT/report.png" --window-size=1100,1500 "file://$WORK/report.html" \
  >"$WORK/chromium.log" 2>&1 || true
if [ ! -s "$OUT/report.png" ]; then
  echo "screenshot: $OUT/report.png was not written" >&2
  cat "$WORK/chromium.log" >&2
  exit 1
fi
echo "screenshot: wrote $OUT/report.png"
