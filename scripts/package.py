#!/usr/bin/env python3
"""Build dist/territory_planner.zip (QGIS Plugin Manager > Install from ZIP) and check it installs.

The zip holds one folder, ``territory_planner/``, with the plugin entry files, the engine, the
Processing wrappers, icons, help, styles and models (when present); no caches or tests.
After building, unless --no-check is given (or the venv is missing), the zip is unpacked into a
temporary plugins folder and ``qgis_process plugins enable territory_planner`` + ``list`` must show
the provider and its algorithms.

Usage: python3 scripts/package.py [--output dist/territory_planner.zip] [--no-check]
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "territory_planner"
FILES = ("__init__.py", "plugin.py", "metadata.txt", "LICENSE", "README.md", "CHANGELOG.md")
REQUIRED_FILES = ("__init__.py", "plugin.py", "metadata.txt")
FOLDERS = (
    "territory_planner_plugin",
    "processing_algorithms",
    "gui",
    "icons",
    "help",
    "styles",
    "models",
)
REQUIRED_FOLDERS = ("territory_planner_plugin", "processing_algorithms", "icons", "help")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".orig", ".rej", ".swp", "~")
ALGORITHMS = (
    "buildroadnetwork",
    "drivetimecatchments",
    "traveltimematrix",
    "designterritories",
    "rebalanceterritories",
    "checkaccounts",
    "compareplans",
    "territoryreport",
    "exportterritories",
    "territory_plan",  # the model shipped in models/, loaded by the provider
)


def plugin_files() -> list[tuple[Path, str]]:
    """(source path, name inside the zip) for every file to ship, sorted."""
    entries = []
    for name in FILES:
        path = ROOT / name
        if path.is_file():
            entries.append((path, f"{PLUGIN}/{name}"))
        elif name in REQUIRED_FILES:
            sys.exit(f"package.py: {name} is missing")
        else:
            print(f"package.py: warning: {name} is missing (the plugin repository expects it)")
    for folder in FOLDERS:
        base = ROOT / folder
        if not base.is_dir():
            if folder in REQUIRED_FOLDERS:
                sys.exit(f"package.py: {folder}/ is missing")
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
            )
            for filename in sorted(filenames):
                if filename.endswith(SKIP_SUFFIXES) or filename.startswith("."):
                    continue
                path = Path(dirpath) / filename
                entries.append((path, f"{PLUGIN}/{path.relative_to(ROOT).as_posix()}"))
    return entries


def check_metadata() -> str:
    """Check metadata.txt against the engine version; return the version."""
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author",
                "email", "repository", "hasProcessingProvider", "icon"):  # fmt: skip
        if not general.get(key, "").strip():
            sys.exit(f"package.py: metadata.txt has no '{key}'")
    if not (ROOT / general["icon"]).is_file():
        sys.exit(f"package.py: metadata.txt icon {general['icon']} does not exist")
    engine_init = (ROOT / "territory_planner_plugin" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', engine_init)
    if match and match.group(1) != general["version"]:
        sys.exit(
            f"package.py: metadata.txt version {general['version']} != engine {match.group(1)}"
        )
    return general["version"]


def build(output: Path) -> Path:
    version = check_metadata()
    output.parent.mkdir(parents=True, exist_ok=True)
    entries = plugin_files()
    tmp = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, arcname in entries:
            archive.write(path, arcname)
    tmp.replace(output)
    size_kb = output.stat().st_size / 1024
    print(f"package.py: {output} ({len(entries)} files, {size_kb:.0f} KiB, version {version})")
    return output


def check_install(zip_path: Path) -> bool:
    """Unzip into a temporary plugins folder and ask qgis_process for the provider."""
    venv = Path(os.environ.get("VENV", ROOT / ".venv"))
    if not venv.is_absolute():
        venv = ROOT / venv
    qgis_process = venv / "bin" / "qgis_process"
    if not qgis_process.exists():
        print(f"package.py: {qgis_process} not found; skipped the install check (run 'make env')")
        return True
    with tempfile.TemporaryDirectory(prefix="tp-package-") as tmp:
        plugins = Path(tmp) / "plugins"
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            if any("__pycache__" in n or n.endswith(".pyc") for n in names):
                print("package.py: FAIL: the zip contains __pycache__ or .pyc files")
                return False
            archive.extractall(plugins)
        env = dict(
            os.environ,
            QGIS_PLUGINPATH=str(plugins),
            QGIS_PROCESS_HOME=str(Path(tmp) / "home"),
            QT_QPA_PLATFORM="offscreen",
            PYTHONDONTWRITEBYTECODE="1",
            # QGIS's embedded Python finds its home from the first python3 on PATH: under pyenv
            # that is the wrong one ("Couldn't load SIP module"), so put the system's first.
            PATH=f"/usr/bin:/bin:{os.environ.get('PATH', '')}",
        )
        for name in ("PYTHONHOME", "VIRTUAL_ENV", "PYENV_VERSION"):
            env.pop(name, None)
        enable = subprocess.run(
            [str(qgis_process), "plugins", "enable", PLUGIN],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        listing = subprocess.run(
            [str(qgis_process), "list"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    missing = [a for a in ALGORITHMS if f"{PLUGIN}:{a}" not in listing.stdout]
    if enable.returncode != 0 or listing.returncode != 0 or missing:
        print("package.py: FAIL: the packaged plugin does not load in qgis_process")
        print(f"  enable exit {enable.returncode}: {enable.stdout[-800:]}{enable.stderr[-800:]}")
        print(f"  list exit {listing.returncode}; missing algorithms: {', '.join(missing)}")
        print(listing.stderr[-2000:])
        return False
    print(
        f"package.py: install check OK: qgis_process lists the {len(ALGORITHMS)} algorithms "
        "of the unpacked zip"
    )
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / f"{PLUGIN}.zip")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the qgis_process install check"
    )
    args = parser.parse_args()
    zip_path = build(args.output.resolve())
    if args.no_check:
        return 0
    return 0 if check_install(zip_path) else 1


if __name__ == "__main__":
    sys.exit(main())
