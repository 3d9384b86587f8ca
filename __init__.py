"""QGIS plugin entry point for Territory Planner.

``classFactory`` first checks that the Python packages the engine needs can be imported inside
this QGIS. When one is missing, the plugin still loads, registers no algorithm, and tells the user
(message bar and the "Territory Planner" log tab; stderr under qgis_process) which packages are
missing and the exact command that installs them. It never raises at start-up.
"""

from __future__ import annotations

import importlib
import os
import sys

# import name -> pip package name; all are needed by the engine.
REQUIRED_PACKAGES = (
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("pandas", "pandas"),
    ("shapely", "shapely"),
    ("pyproj", "pyproj"),
    ("pyogrio", "pyogrio"),
    ("geopandas", "geopandas"),
    ("networkx", "networkx"),
    ("osmnx", "osmnx"),
    ("pulp", "PuLP<4"),
    ("osmium", "osmium"),  # reads .osm.pbf extracts
)
# Used when present: highspy provides the HiGHS solver (SOLVER=HiGHS); PySCIPOpt provides SCIP,
# whose branch-and-cut solves the contiguous county-sized models (HiGHS rounds without it).
OPTIONAL_PACKAGES = (("highspy", "highspy"), ("pyscipopt", "PySCIPOpt"))


def missing_packages(packages=REQUIRED_PACKAGES) -> list[tuple[str, str, str]]:
    """``(import name, pip name, reason)`` for every package that cannot be imported."""
    missing = []
    for module_name, pip_name in packages:
        try:
            importlib.import_module(module_name)
        except Exception as err:  # a broken install counts as missing
            missing.append((module_name, pip_name, f"{type(err).__name__}: {err}"))
    return missing


def qgis_python() -> str:
    """The Python interpreter of this QGIS (sys.executable is often the QGIS binary itself)."""
    executable = sys.executable or ""
    if os.path.basename(executable).lower().startswith("python"):
        return executable
    candidates = (
        os.path.join(sys.exec_prefix, "python.exe"),  # Windows (OSGeo4W, standalone installer)
        os.path.join(sys.exec_prefix, "bin", "python3"),  # macOS bundle, Linux
        os.path.join(os.path.dirname(executable), "python3"),  # macOS: QGIS.app/Contents/MacOS
    )
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return "python3"


# Debian packages of the required imports (Debian 12 "bookworm" and 13 "trixie"); the rest is pip.
DEBIAN_PACKAGES = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "pandas": "python3-pandas",
    "shapely": "python3-shapely",
    "pyproj": "python3-pyproj",
    "geopandas": "python3-geopandas",
    "networkx": "python3-networkx",
    "pyogrio": "python3-pyogrio",  # Debian 13 only; pip on Debian 12
}


def _pip_names(pips) -> str:
    return " ".join(f'"{pip}"' if "<" in pip or ">" in pip else pip for pip in pips)


def install_command(missing) -> str:
    """The pip command that installs ``missing`` into the Python of this QGIS (its own installer)."""
    python = qgis_python()
    if " " in python:
        python = f'"{python}"'
    return f"{python} -m pip install --user {_pip_names(pip for _, pip, _ in missing)}"


def debian_release() -> str | None:
    """ "12" or "13" on Debian bookworm / trixie (QGIS from apt), else None."""
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            info = dict(line.strip().split("=", 1) for line in handle if "=" in line)
    except OSError:
        return None
    codename = info.get("VERSION_CODENAME", "").strip('"')
    return {"bookworm": "12", "trixie": "13"}.get(codename)


def debian_commands(missing, release: str) -> list[str]:
    """apt for what Debian packages, then pip (user site; Debian's Python is externally managed).

    Debian 12's geopandas (0.12) is too old for osmnx 2 and its pyproj (3.4) too old for
    geopandas 1.1, whose pip wheel of pyproj crashes inside QGIS: pip adds geopandas 1.0 and
    keeps numpy 1.x, which Debian 12's GDAL bindings need.
    """
    apt, pip = [], []
    for module, pip_name, _ in missing:
        deb = DEBIAN_PACKAGES.get(module)
        if release == "12" and module in ("geopandas", "pyogrio"):
            deb = None
        if deb:
            apt.append(deb)
        else:
            pip.append(pip_name)
    if release == "12" and pip:
        pip = [p for p in pip if p != "geopandas"]
        if any(module in ("osmnx", "geopandas") for module, _, _ in missing):
            pip.append("geopandas<1.1")
        pip.append("numpy<2")
    if pip:
        apt.append("python3-pip")
    commands = []
    if apt:
        commands.append("sudo apt install " + " ".join(apt))
    if pip:
        commands.append("python3 -m pip install --user --break-system-packages " + _pip_names(pip))
    return commands


def _platform() -> str:
    """sys.platform (a function, so tests can pretend another system)."""
    return sys.platform


def install_commands(missing) -> list[tuple[str, list[str]]]:
    """``(where, commands)`` that install ``missing`` for this platform, in the order to run them."""
    platform = _platform()
    if platform.startswith("win"):
        return [
            ("In the OSGeo4W Shell (Start menu, installed with QGIS)", [install_command(missing)])
        ]
    if platform == "darwin":
        return [("In Terminal, with the Python of QGIS.app", [install_command(missing)])]
    release = debian_release()
    releases = [release] if release else ["12", "13"]
    out = [(f"On Debian {r} (QGIS from apt)", debian_commands(missing, r)) for r in releases]
    if not release:
        out.append(("Elsewhere, with the Python of QGIS", [install_command(missing)]))
    return out


def missing_message(missing) -> str:
    """Plain-words explanation for the user (plain text: escape it for HTML views)."""
    names = ", ".join(module for module, _, _ in missing)
    lines = [
        f"Territory Planner needs Python packages that this QGIS cannot import: {names}.",
        "Its algorithms are not available until they are installed. Install them:",
    ]
    for where, commands in install_commands(missing):
        lines.append(f"{where}:")
        lines.extend(f"    {command}" for command in commands)
    lines.append("Then restart QGIS. What failed:")
    lines.extend(f"  - {module}: {reason}" for module, _, reason in missing)
    return "\n".join(lines)


def classFactory(iface):
    """Called by QGIS to create the plugin; never raises because of a missing dependency."""
    missing = missing_packages()
    if missing:
        from .plugin import MissingDependenciesPlugin

        commands = "; ".join(
            f"{where}: {' && '.join(cmds)}" for where, cmds in install_commands(missing)
        )
        return MissingDependenciesPlugin(iface, missing_message(missing), commands)
    from .plugin import TerritoryPlannerPlugin

    return TerritoryPlannerPlugin(iface)
