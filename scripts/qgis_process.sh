#!/usr/bin/env bash
# Run QGIS's qgis_process with Territory Planner enabled from this working tree and the project's venv.
# Takes exactly qgis_process's arguments: list | help territory_planner:ALG | run territory_planner:ALG --json -- K=V ...
# Exits with the algorithm's status.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$HERE/.venv}"
case "$VENV" in /*) ;; *) VENV="$HERE/$VENV" ;; esac
if [ ! -x "$VENV/bin/qgis_process" ]; then
  echo "qgis_process.sh: $VENV is not set up; run 'make env' (or 'make test') first." >&2
  exit 2
fi
# QGIS loads plugins by folder name: expose this tree as plugins/territory_planner.
PLUGINS="$HERE/build/plugins"
mkdir -p "$PLUGINS"
if [ ! -L "$PLUGINS/territory_planner" ]; then
  rm -rf "$PLUGINS/territory_planner"
  ln -s "$HERE" "$PLUGINS/territory_planner"
fi
# QGIS's embedded Python takes its home from the first python3 on PATH; a pyenv or venv python
# there gives "Couldn't load SIP module". qgis_process.bin lives in /usr/bin: look there first.
export PATH="/usr/bin:/bin:$PATH"
unset PYTHONHOME
# The profile (where 'plugins enable' is remembered) lives under QGIS_PROCESS_HOME; a config path set by
# the caller (pytest-qgis sets QGIS_CUSTOM_CONFIG_PATH) would point qgis_process at another profile.
unset QGIS_CUSTOM_CONFIG_PATH QGIS_OPTIONS_PATH
export QGIS_PLUGINPATH="$PLUGINS${QGIS_PLUGINPATH:+:$QGIS_PLUGINPATH}"
export QGIS_PROCESS_HOME="${QGIS_PROCESS_HOME:-$VENV/qgis-home}"
INI="$QGIS_PROCESS_HOME/.local/share/QGIS/QGIS3/profiles/default/QGIS/QGIS3.ini"
if ! grep -qs '^territory_planner=true' "$INI"; then
  "$VENV/bin/qgis_process" plugins enable territory_planner >/dev/null 2>&1 || true
fi
exec "$VENV/bin/qgis_process" "$@"
