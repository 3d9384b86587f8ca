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
# Used when present: highspy provides the HiGHS solver (SOLVER=HiGHS).
OPTIONAL_PACKAGES = (("highspy", "highspy"),)


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


def install_command(missing) -> str:
    """The pip command that installs ``missing`` into QGIS's Python."""
    names = " ".join(f'"{pip}"' if "<" in pip else pip for _, pip, _ in missing)
    python = qgis_python()
    if " " in python:
        python = f'"{python}"'
    return f"{python} -m pip install --user {names}"


def missing_message(missing) -> str:
    """Plain-words explanation for the user: what is missing and how to install it."""
    names = ", ".join(module for module, _, _ in missing)
    lines = [
        f"Territory Planner needs Python packages that this QGIS cannot import: {names}.",
        "Its algorithms are not available until they are installed. Install them with:",
        f"    {install_command(missing)}",
    ]
    if sys.platform.startswith("win"):
        lines.append("(run it in the OSGeo4W Shell that comes with QGIS), then restart QGIS.")
    elif sys.platform.startswith("linux"):
        lines.append(
            "then restart QGIS. On Debian/Ubuntu you can use the system packages instead, e.g. "
            "'sudo apt install python3-geopandas python3-networkx python3-scipy', "
            "and pip for the rest (add --break-system-packages if pip refuses)."
        )
    else:
        lines.append("then restart QGIS.")
    lines.extend(f"  - {module}: {reason}" for module, _, reason in missing)
    return "\n".join(lines)


def classFactory(iface):
    """Called by QGIS to create the plugin; never raises because of a missing dependency."""
    missing = missing_packages()
    if missing:
        from .plugin import MissingDependenciesPlugin

        return MissingDependenciesPlugin(iface, missing_message(missing), install_command(missing))
    from .plugin import TerritoryPlannerPlugin

    return TerritoryPlannerPlugin(iface)
