#!/usr/bin/env bash
# make screenshot: real QGIS desktop under Xvfb with the plugin installed from dist/territory_planner.zip.
# The zip is unpacked into a throwaway QGIS profile (nothing in ~ is touched), the plugin is enabled
# there, and scripts/screenshot_qgis.py (run by 'qgis --code') opens the Processing toolbox on
# Territory Planner, the 'Design territories' dialog, the shipped model in the Model Designer,
# the styled plan that 'Design territories' makes of the sample data and the Territory editor
# beside a plan, saves
#   docs/screenshots/toolbox.png  designterritories-dialog.png  model.png  designterritories-map.png
#   editor.png  areas-qgis.png  editor-areas.png
# and quits QGIS. Exits non-zero when a PNG was not written. Hard limit: SCREENSHOT_TIMEOUT s (180).
# Environment: SCREENSHOT_DIR (output folder), SCREENSHOT_ZIP (plugin zip), SCREENSHOT_REBUILD=1
# (build the zip first even when it exists), SCREENSHOT_TIMEOUT, VENV.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
VENV="${VENV:-$HERE/.venv}"
case "$VENV" in /*) ;; *) VENV="$HERE/$VENV" ;; esac
ZIP="${SCREENSHOT_ZIP:-$HERE/dist/territory_planner.zip}"
OUT="${SCREENSHOT_DIR:-$HERE/docs/screenshots}"
TIMEOUT="${SCREENSHOT_TIMEOUT:-180}"

for tool in qgis xvfb-run unzip; do
  command -v "$tool" >/dev/null || { echo "screenshot: '$tool' not found; run 'make env'." >&2; exit 2; }
done
SITE="$(ls -d "$VENV"/lib/python3*/site-packages 2>/dev/null | head -n 1)"
if [ -z "$SITE" ]; then
  echo "screenshot: $VENV is not set up; run 'make env' first." >&2
  exit 2
fi
if [ ! -f "$ZIP" ] || [ -n "${SCREENSHOT_REBUILD:-}" ]; then
  python3 scripts/package.py --no-check --output "$ZIP"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tp-screenshot.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
PROFILES="$WORK/profiles"          # --profiles-path: QGIS keeps the profile under profiles/default
PROFILE="$PROFILES/profiles/default"
mkdir -p "$PROFILE/python/plugins" "$PROFILE/QGIS" "$WORK/home" "$WORK/runtime"
chmod 700 "$WORK/runtime"
unzip -q "$ZIP" -d "$PROFILE/python/plugins"
cat >"$PROFILE/QGIS/QGIS3.ini" <<'INI'
[PythonPlugins]
territory_planner=true
processing=true

[Processing]
Configuration\RESULTS_GROUP_NAME=
INI
cat >"$PROFILES/profiles/profiles.ini" <<'INI'
[core]
defaultProfile=default
INI

mkdir -p "$OUT"
rm -f "$OUT/toolbox.png" "$OUT/designterritories-dialog.png" "$OUT/model.png" \
  "$OUT/designterritories-map.png" "$OUT/editor.png" "$OUT/areas-qgis.png" "$OUT/editor-areas.png"

# QGIS's embedded Python takes its home from the first python3 on PATH (see qgis_process.sh);
# the venv's site-packages give the plugin its engine packages, as the venv's qgis_process does.
export PATH="/usr/bin:/bin:$PATH"
unset PYTHONHOME VIRTUAL_ENV QGIS_CUSTOM_CONFIG_PATH QGIS_OPTIONS_PATH QGIS_PLUGINPATH QT_QPA_PLATFORM
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export HOME="$WORK/home" XDG_RUNTIME_DIR="$WORK/runtime"
export TP_SCREENSHOT_DIR="$OUT" TP_SAMPLE_DATA="$HERE/sample_data" TP_SCREENSHOT_LOG="$WORK/log.txt"
export PYTHONDONTWRITEBYTECODE=1

status=0
timeout --kill-after=15 "$TIMEOUT" \
  xvfb-run -a -s "-screen 0 1600x1000x24" \
  timeout --kill-after=10 "$((TIMEOUT - 15))" \
  qgis --profiles-path "$PROFILES" --profile default --nologo --noversioncheck \
    --code "$HERE/scripts/screenshot_qgis.py" >"$WORK/qgis.out" 2>&1 || status=$?

missing=0
for png in toolbox.png designterritories-dialog.png model.png designterritories-map.png editor.png areas-qgis.png editor-areas.png; do
  if [ -s "$OUT/$png" ]; then
    echo "screenshot: wrote $OUT/$png"
  else
    echo "screenshot: $OUT/$png was not written" >&2
    missing=1
  fi
done
if [ "$missing" -ne 0 ]; then
  echo "screenshot: QGIS exit status $status; its log:" >&2
  cat "$WORK/log.txt" >&2 2>/dev/null || true
  tail -n 40 "$WORK/qgis.out" >&2 || true
  exit 1
fi
cat "$WORK/log.txt" 2>/dev/null || true
