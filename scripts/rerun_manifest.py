#!/usr/bin/env python3
"""Rerun a Territory Planner run manifest with qgis_process and say whether the plan reproduced.

Usage: scripts/rerun_manifest.py MANIFEST.json [--out DIR]

Reads the manifest written by OUTPUT_MANIFEST, runs the same algorithm through
scripts/qgis_process.sh with every recorded parameter (the layers and NETWORK file at their
recorded paths), MANIFEST=MANIFEST.json (so the algorithm checks the inputs' hashes and the plan)
and the outputs in DIR (a new temporary folder by default; the recorded outputs are never
overwritten). Prints "Reproduced exactly" and exits 0 when the new plan's assignment hash equals
the recorded one; otherwise prints why and exits 1 (2 for an unusable manifest).
Standard library only: any python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
QGIS_PROCESS = HERE / "qgis_process.sh"
OUTPUT_MANIFEST = "OUTPUT_MANIFEST"
NOT_FILES = ("TEMPORARY_OUTPUT", "memory:")


def load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SystemExit(f"rerun_manifest: cannot read {path}: {err}") from None
    needed = ("algorithm", "parameters", "assignment_hash")
    if not isinstance(data, dict) or any(key not in data for key in needed):
        raise SystemExit(f"rerun_manifest: {path} is not a Territory Planner run manifest.")
    return data


def output_value(key: str, recorded: str, out_dir: Path) -> str:
    """Where the rerun writes output ``key``: a file in ``out_dir`` with the recorded extension."""
    if key == OUTPUT_MANIFEST:
        return str(out_dir / "manifest.json")
    if recorded.startswith(NOT_FILES):
        return "TEMPORARY_OUTPUT"
    suffix = Path(recorded.split("|", 1)[0]).suffix or ".gpkg"
    return str(out_dir / f"{key.lower()}{suffix}")


def arguments(manifest: dict, manifest_path: Path, out_dir: Path) -> list[str]:
    """``qgis_process run ALG --json -- K=V ...`` arguments reproducing the recorded run."""
    args = ["run", manifest["algorithm"], "--json", "--"]
    for key, value in manifest["parameters"].items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None or item == "":
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            args.append(f"{key}={text}")
    outputs = dict(manifest.get("outputs") or {})
    outputs.setdefault(OUTPUT_MANIFEST, "manifest.json")
    for key, recorded in outputs.items():
        if recorded:
            args.append(f"{key}={output_value(key, str(recorded), out_dir)}")
    args.append(f"MANIFEST={manifest_path}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="a manifest written by OUTPUT_MANIFEST")
    parser.add_argument("--out", type=Path, help="folder for the rerun's outputs (default: new)")
    options = parser.parse_args(argv)
    manifest_path = options.manifest.resolve()
    try:
        manifest = load(manifest_path)
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 2
    out_dir = options.out or Path(tempfile.mkdtemp(prefix="territory_planner_rerun_"))
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    args = arguments(manifest, manifest_path, out_dir)
    print(f"Rerunning {manifest['algorithm']} from {manifest_path}; outputs in {out_dir}")
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    done = subprocess.run(
        ["bash", str(QGIS_PROCESS), *args], capture_output=True, text=True, env=env, check=False
    )
    new_path = out_dir / "manifest.json"
    if done.returncode != 0 or not new_path.exists():
        print("NOT reproduced: the rerun failed.", file=sys.stderr)
        print((done.stdout[-4000:] + "\n" + done.stderr[-4000:]).strip(), file=sys.stderr)
        return 1
    new = load(new_path)
    old_hash, new_hash = manifest["assignment_hash"], new["assignment_hash"]
    old_obj = (manifest.get("results") or {}).get("objective")
    new_obj = (new.get("results") or {}).get("objective")
    if new_hash == old_hash:
        print(
            f"Reproduced exactly: assignment hash {new_hash[:16]}, objective {new_obj} "
            f"(recorded {old_obj}). New manifest: {new_path}"
        )
        return 0
    print(
        f"NOT reproduced: assignment hash {new_hash[:16]} instead of {old_hash[:16]} "
        f"(objective {new_obj} vs {old_obj}). New manifest: {new_path}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
