#!/usr/bin/env bash
# install-env.sh [VENV_DIR]   (default VENV_DIR: .venv)
# Copied from the project's shared recipes (verified on Debian 12); the project carries its own copy.
#
# Debian 12 (bookworm): QGIS 3.22 LTR from Debian + a venv on the SYSTEM python (/usr/bin/python3,
# --system-site-packages, so `import qgis` works) with geopandas/shapely/pyproj/pyogrio/rtree/osmnx/
# pulp/highspy/pyscipopt/scipy/osmium/pytest-qgis pinned.
# pyproj, shapely, pyogrio and rtree are BUILT FROM SOURCE against Debian's PROJ/GEOS/GDAL/libspatialindex:
# their PyPI wheels bundle their own copies, which clash with the ones QGIS has loaded
# (qgis_process exits 134/139 or shapely raises GEOSException).
# Debian 13 (trixie) and later: QGIS 3.40 and Debian's own numpy/scipy/pandas/geopandas/pyproj/shapely/
# pyogrio/rtree/networkx (all built by Debian against its PROJ/GEOS/GDAL, so nothing is compiled);
# pip adds only osmnx, PuLP, highspy, PySCIPOpt, osmium and the test tools, constrained to Debian's versions.
# (Verified in a fresh trixie chroot: make test and make demo pass; see ENV-NOTES.md.)
# Idempotent: apt only for missing packages; pip is skipped when the pins stamp matches and the check passes.
# Also writes VENV_DIR/bin/qgis_process: a wrapper around /usr/bin/qgis_process.bin that sees the venv.
set -euo pipefail

VENV="${1:-.venv}"
SYS_PY=/usr/bin/python3

APT_PKGS=(qgis python3-qgis qgis-providers xvfb unzip python3-matplotlib
          libgdal-dev libproj-dev proj-bin libgeos-dev libspatialindex-dev
          python3-venv python3-dev build-essential pkg-config chromium)

# Exact pins (pip constraints). Everything here was verified together with QGIS 3.22.16.
# numpy must stay < 2: Debian's osgeo.gdal_array (used by QGIS/processing) is built against numpy 1.x.
# pyproj 3.6.1 is the last release that supports Debian's PROJ 9.1.
# highspy 1.13.0 = pulp[highs] pin; newer highspy prints a banner on stdout (breaks qgis_process --json).
PINS='numpy==1.26.4
pyproj==3.6.1
shapely==2.2.0
pyogrio==0.13.0
rtree==1.4.1
geopandas==1.1.4
pandas==3.0.6
osmnx==2.1.1
networkx==3.6.1
PuLP==3.3.2
highspy==1.13.0
PySCIPOpt==6.3.0
scipy==1.17.1
osmium==4.3.2
pytest==9.2.0
pytest-qgis==5.0.2
requests==2.34.2
certifi==2026.10.19.post1
packaging==26.3
Pygments==2.21.0
iniconfig==2.3.1
pluggy==1.7.0
hypothesis==6.170.17
ruff==0.17.6'
TOP_LEVEL=(numpy pyproj shapely pyogrio rtree geopandas pandas osmnx networkx PuLP highspy PySCIPOpt scipy
           osmium pytest pytest-qgis hypothesis ruff)
SOURCE_BUILT=pyproj,shapely,pyogrio,rtree
# pyproj 3.6.1 built with Cython >= 3.1 compiles fine but fails at run time
# ("TypeError: expected bytes, str found" in CRS()); pyogrio 0.13 needs Cython >= 3.1 -> two pip steps.
PYPROJ_BUILD_PINS='cython<3.1'

t0=$(date +%s)
log() { printf '[install-env %3ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

CODENAME="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-unknown}")" || CODENAME=unknown
MODE=pins  # Debian 12: pinned wheels/source builds in the venv
if [ "$CODENAME" != bookworm ]; then
  MODE=debian  # Debian 13+: Debian's own Python geo stack
  APT_PKGS+=(python3-numpy python3-scipy python3-pandas python3-geopandas python3-pyproj python3-shapely
             python3-pyogrio python3-rtree python3-networkx python3-requests)
  [ "$CODENAME" = trixie ] || log "WARNING: written for Debian 12 (bookworm) and 13 (trixie); this is $CODENAME"
fi
# Debian 13 mode: what pip adds (pure Python or self-contained wheels, all with cp313 wheels on PyPI)
DEB_PINS='osmnx==2.1.1
PuLP==3.3.2
highspy==1.13.0
PySCIPOpt==6.3.0
osmium==4.3.2
pytest==9.2.0
pytest-qgis==5.0.2
hypothesis==6.170.17
ruff==0.17.6'
DEB_TOP=(osmnx PuLP highspy PySCIPOpt osmium pytest pytest-qgis hypothesis ruff)
DEB_OWN=(numpy scipy pandas geopandas pyproj shapely pyogrio rtree networkx requests)

# ---------------------------------------------------------------- 1. apt (only what is missing)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt: all ${#APT_PKGS[@]} packages already installed"
fi

# ---------------------------------------------------------------- 2. venv on the system python
if [ -e "$VENV" ]; then
  if ! grep -qE '^home = /usr/bin/?$' "$VENV/pyvenv.cfg" 2>/dev/null \
     || ! grep -qE '^include-system-site-packages = true$' "$VENV/pyvenv.cfg"; then
    echo "ERROR: $VENV exists but was not made by '$SYS_PY -m venv --system-site-packages'" \
         "(qgis would not import). Remove it and run again." >&2
    exit 1
  fi
else
  log "venv: creating $VENV with $SYS_PY --system-site-packages"
  "$SYS_PY" -m venv --system-site-packages "$VENV"
fi
VENV_ABS="$(cd "$VENV" && pwd)"
PY="$VENV_ABS/bin/python"
PYVER="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
STAMP="$VENV_ABS/.install-env.stamp"
STAMP_WANT="$(printf '%s\n' "$MODE" "$PINS" "${TOP_LEVEL[*]}" "$SOURCE_BUILT" "$PYPROJ_BUILD_PINS" \
              "$PYVER" "$DEB_PINS" | sha256sum | cut -d' ' -f1)"

# Prints "name:why" for each source-built package that is not yet a good build inside this venv
# (why = missing | wheel: manylinux wheel with its own PROJ/GEOS/GDAL/libspatialindex | broken).
native_check() {
  "$PY" - <<'EOF'
import importlib.metadata as md, os, sys
bad = {}
for dist in ("pyproj", "shapely", "pyogrio", "rtree"):
    try:
        d = md.distribution(dist)
    except md.PackageNotFoundError:
        bad[dist] = "missing"; continue
    if not os.path.realpath(d.locate_file("")).startswith(os.path.realpath(sys.prefix) + os.sep):
        bad[dist] = "missing"  # only Debian's copy in the system dist-packages
    elif any(".libs/" in str(f) or str(f).startswith("rtree/lib/") for f in d.files or []):
        bad[dist] = "wheel"
if "pyproj" not in bad:
    try:
        from pyproj import CRS
        assert CRS.from_epsg(3857).to_epsg() == 3857
    except Exception:
        bad["pyproj"] = "broken"  # e.g. built with Cython >= 3.1
print(" ".join(f"{k}:{v}" for k, v in sorted(bad.items())))
EOF
}

# Debian 13 mode: prints each of Debian's packages that a copy inside the venv would shadow.
shadow_check() {
  "$PY" - "${DEB_OWN[@]}" <<'EOF'
import importlib.metadata as md, os, sys
venv = os.path.realpath(sys.prefix) + os.sep
print(" ".join(n for n in sys.argv[1:]
               if os.path.realpath(md.distribution(n).locate_file("")).startswith(venv)))
EOF
}

# ---------------------------------------------------------------- 3. pip (skipped when up to date)
if [ "$MODE" = debian ]; then
  BAD="$(shadow_check 2>/dev/null || echo unknown)"
else
  BAD="$(native_check 2>/dev/null || echo pyproj:broken)"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ] && [ -z "$BAD" ]; then
  log "pip: pins unchanged, source builds OK -> nothing to install"
else
  rm -f "$STAMP"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  export PIP_DISABLE_PIP_VERSION_CHECK=1
fi
if [ -f "$STAMP" ]; then
  :
elif [ "$MODE" = debian ]; then
  if [ -n "$BAD" ]; then
    log "pip: removing venv copies that shadow Debian's packages: $BAD"
    # shellcheck disable=SC2086
    "$PY" -m pip uninstall -y -q $BAD
  fi
  # Debian's versions as constraints, so that pip never replaces them with wheels
  "$PY" - "${DEB_OWN[@]}" > "$tmp/debian.txt" <<'EOF'
import importlib.metadata as md, sys
print("\n".join(f"{n}=={md.version(n)}" for n in sys.argv[1:]))
EOF
  printf '%s\n' "$DEB_PINS" > "$tmp/pins.txt"
  log "pip: installing ${DEB_TOP[*]} (Debian's geo stack stays as it is)"
  "$PY" -m pip install -q -c "$tmp/pins.txt" -c "$tmp/debian.txt" "${DEB_TOP[@]}"
  BAD="$(shadow_check)"
  if [ -n "$BAD" ]; then echo "ERROR: pip put its own copies of $BAD in the venv" >&2; exit 1; fi
  echo "$STAMP_WANT" > "$STAMP"
else
  printf '%s\n' "$PINS" > "$tmp/pins.txt"
  printf '%s\n%s\n' "$PINS" "$PYPROJ_BUILD_PINS" > "$tmp/pyproj-build.txt"
  installed_bad=()
  for d in $BAD; do case "$d" in *:wheel|*:broken) installed_bad+=("${d%%:*}");; esac; done
  if [ ${#installed_bad[@]} -gt 0 ]; then
    log "pip: removing ${installed_bad[*]} (binary wheel or broken build) to rebuild from source"
    "$PY" -m pip uninstall -y -q "${installed_bad[@]}"
  fi
  # The venv keeps Debian's pip 23.0.1: it applies PIP_CONSTRAINT inside isolated build environments.
  # (pip >= 25.3 uses PIP_BUILD_CONSTRAINT for that instead; both are set.)
  log "pip: building pyproj from source (Cython < 3.1) against system PROJ"
  PIP_CONSTRAINT="$tmp/pyproj-build.txt" PIP_BUILD_CONSTRAINT="$tmp/pyproj-build.txt" \
    "$PY" -m pip install -q --no-binary pyproj "pyproj==3.6.1"
  log "pip: installing pinned set (shapely/pyogrio/rtree from source against system GEOS/GDAL/libspatialindex)"
  env -u PIP_CONSTRAINT -u PIP_BUILD_CONSTRAINT \
    "$PY" -m pip install -q -c "$tmp/pins.txt" --no-binary "$SOURCE_BUILT" "${TOP_LEVEL[@]}"
  BAD="$(native_check)"
  if [ -n "$BAD" ]; then echo "ERROR: still not built against system libs: $BAD" >&2; exit 1; fi
  echo "$STAMP_WANT" > "$STAMP"
fi

# ---------------------------------------------------------------- 4. qgis_process wrapper
# /usr/bin/qgis_process (Debian wrapper) is broken on bookworm: it passes --noversioncheck from
# /etc/default/qgis -> "Command --noversioncheck not known!". Call qgis_process.bin directly.
cat > "$VENV_ABS/bin/qgis_process" <<EOF
#!/bin/sh
# Generated by install-env.sh: /usr/bin/qgis_process.bin with this venv's site-packages visible.
# HOME holds the QGIS profile, where 'plugins enable' is remembered: keep it between enable and run.
VENV_DIR="\$(cd "\$(dirname "\$0")/.." && pwd)"
: "\${QGIS_PROCESS_HOME:=\$VENV_DIR/qgis-home}"
mkdir -p "\$QGIS_PROCESS_HOME/runtime" && chmod 700 "\$QGIS_PROCESS_HOME/runtime"
export HOME="\$QGIS_PROCESS_HOME" XDG_RUNTIME_DIR="\$QGIS_PROCESS_HOME/runtime"
export QT_QPA_PLATFORM="\${QT_QPA_PLATFORM:-offscreen}"
export PYTHONPATH="\$VENV_DIR/lib/python$PYVER/site-packages\${PYTHONPATH:+:\$PYTHONPATH}"
# QGIS's own start-up calls sip.setapi(), which prints "DeprecationWarning: setapi() is
# deprecated" on every run: keep that one notice out of the user's output.
export PYTHONWARNINGS="ignore:setapi() is deprecated:DeprecationWarning\${PYTHONWARNINGS:+,\$PYTHONWARNINGS}"
exec /usr/bin/qgis_process.bin "\$@"
EOF
chmod +x "$VENV_ABS/bin/qgis_process"

# ---------------------------------------------------------------- 4b. benchmark-only: PySAL spopt
# Only with BENCH_DEPS=1 (make bench): bench_units.py compares with spopt's regionalisation. Installed
# --no-deps with its missing dependencies pinned, so no pinned package above changes (checked with
# 'pip install --dry-run spopt' on Debian 12: it would add only these); nothing else needs them.
BENCH_PINS='spopt==0.7.0
libpysal==4.14.1
esda==2.9.0
mapclassify==2.10.0
pointpats==2.5.5
spaghetti==1.7.6
scikit-learn==1.9.1
joblib==1.6.0
threadpoolctl==3.8.0
tqdm==4.70.1
platformdirs==4.14.9
beautifulsoup4==4.15.0
soupsieve==2.10
narwhals==2.29.0
cloudpickle==3.1.3
typing_extensions==4.16.0'
if [ "${BENCH_DEPS:-0}" = 1 ] && ! "$PY" -c 'import spopt' 2>/dev/null; then
  log "pip: benchmark-only spopt and its missing dependencies (--no-deps)"
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --no-deps $BENCH_PINS
fi

# ---------------------------------------------------------------- 5. verify + print versions
QT_QPA_PLATFORM=offscreen "$PY" - <<'EOF'
import importlib.metadata as md, sys
import qgis.core, numpy, scipy, pandas, geopandas, shapely, pyproj, pyogrio, rtree, osmnx, networkx, pulp, osmium, pytest
from osgeo import gdal, gdal_array  # noqa: F401  (fails if numpy 2 sneaks in)
from pyproj import CRS
assert CRS.from_epsg(3857).to_epsg() == 3857
assert pulp.PULP_CBC_CMD(msg=False).available(), "PuLP bundled CBC not runnable"
assert pulp.HiGHS(msg=False).available(), "highspy missing"
import pyscipopt  # noqa: F401,E402  (SCIP: branch-and-cut of the contiguous county-sized model)
print(f"python {sys.version.split()[0]} ({sys.executable}) | QGIS {qgis.core.Qgis.QGIS_VERSION}")
print(f"system libs: GDAL {gdal.__version__}, PROJ {pyproj.proj_version_str}, GEOS {shapely.geos_version_string}, "
      f"libspatialindex {rtree.core.rt.SIDX_Version().decode()}")
names = ["numpy", "scipy", "pandas", "geopandas", "shapely", "pyproj", "pyogrio", "rtree", "osmnx", "networkx",
         "PuLP", "highspy", "PySCIPOpt", "osmium", "pytest", "pytest-qgis", "pip"]
print(" ".join(f"{n}=={md.version(n)}" for n in names))
EOF
log "done: activate with 'source $VENV/bin/activate'; run algorithms with '$VENV/bin/qgis_process'"
