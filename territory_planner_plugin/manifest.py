"""Run manifests: a JSON record of one planning run that is enough to reproduce it exactly.

A manifest holds the algorithm id, every parameter as ``qgis_process`` takes it (layers as their
sources), a hash of each input as the engine received it, the seed, solver and library versions,
the objective, lower bound, gap and KPIs, and a hash of the resulting assignment. Re-running with
the same inputs and parameters must give the same ``assignment_hash``; :func:`check_inputs` says
which inputs changed when it cannot.

Hashes are SHA-256 hex digests:

* :func:`frame_hash` — a (Geo)DataFrame: its CRS, then every column **sorted by name** (the column
  order of a layer does not change a plan) with its name, dtype and values, **rows in their
  order** (the row order can break ties). The index is left out. Numbers are hashed as
  little-endian bytes (every NaN the same), geometries as little-endian ISO WKB, other values
  by type and text. The same frame gives the same hash across runs and machines with the same
  library versions.
* :func:`file_hash` — the bytes of a file (a network GeoPackage or an OSM extract).
* :func:`assignment_hash` — the sorted ``(account id, territory id)`` pairs, both as text.

Nothing here imports ``qgis``; the Processing wrappers call these functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .errors import InvalidInputError

MANIFEST_VERSION = 1
#: Python distributions whose versions are recorded (absent ones are recorded as None).
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "geopandas",
    "shapely",
    "pyproj",
    "pulp",
    "highspy",
    "osmnx",
    "networkx",
)
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------------------------
def _update(digest, data: bytes) -> None:
    """Length-prefixed update, so that neighbouring values cannot run into each other."""
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def _crs_text(crs: Any) -> str:
    if crs is None:
        return ""
    try:
        epsg = crs.to_epsg()
    except Exception:  # not a pyproj CRS: use its text
        epsg = None
    if epsg:
        return f"EPSG:{epsg}"
    to_wkt = getattr(crs, "to_wkt", None)
    return to_wkt() if callable(to_wkt) else str(crs)


def _value_text(value: Any) -> str:
    """A canonical, type-tagged text for one non-numeric cell."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "null:"
    if isinstance(value, (bool, np.bool_)):
        return f"bool:{bool(value)}"
    if isinstance(value, (int, np.integer)):
        return f"int:{int(value)}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "float:nan" if math.isnan(value) else f"float:{value!r}"
    if isinstance(value, str):
        return f"str:{value}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"bytes:{bytes(value).hex()}"
    if isinstance(value, (dt.datetime, dt.date, dt.time, pd.Timestamp)):
        return f"{type(value).__name__}:{value.isoformat()}"
    geom_type = getattr(value, "geom_type", None)
    if geom_type is not None:  # a shapely geometry in an object column
        import shapely

        return f"geometry:{shapely.to_wkb(value, hex=True, byte_order=1)}"
    return f"{type(value).__name__}:{value!r}"


def _column_bytes(series: pd.Series) -> Iterable[bytes]:
    dtype = series.dtype
    if getattr(dtype, "name", "") == "geometry":
        import shapely

        wkbs = shapely.to_wkb(np.asarray(series.array), byte_order=1, include_srid=False)
        for wkb in wkbs:
            yield b"" if wkb is None else b"\x01" + wkb
        return
    is_plain_numeric = isinstance(dtype, np.dtype) and dtype.kind in "biufmM"
    if is_plain_numeric:
        values = series.to_numpy()
        if dtype.kind in "mM":
            values = values.view("int64")
        elif dtype.kind == "f":
            values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
        yield np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
        return
    for value in series.to_numpy(dtype=object):
        yield _value_text(value).encode("utf-8")


def frame_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a (Geo)DataFrame's CRS, columns (sorted by name) and rows (in order).

    Equal frames give equal hashes; a changed value, geometry, dtype, column name, CRS or row
    order gives a different one. The index and the column order are not part of the hash.
    """
    if not isinstance(frame, pd.DataFrame):
        msg = f"frame_hash needs a DataFrame or GeoDataFrame, not {type(frame).__name__}."
        raise InvalidInputError(msg)
    digest = hashlib.sha256()
    _update(digest, b"territory-planner-frame-v1")
    _update(digest, _crs_text(getattr(frame, "crs", None)).encode("utf-8"))
    _update(digest, str(len(frame)).encode("ascii"))
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        msg = f"frame_hash: duplicate column names in {names}."
        raise InvalidInputError(msg)
    for name in sorted(names):
        column = frame.iloc[:, names.index(name)]
        _update(digest, name.encode("utf-8"))
        _update(digest, str(column.dtype).encode("utf-8"))
        for chunk in _column_bytes(column):
            _update(digest, chunk)
    return digest.hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of the bytes of a file (e.g. the NETWORK GeoPackage or OSM extract)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
    except OSError as err:
        msg = f"Cannot read {os.fspath(path)} to hash it: {err.strerror or err}."
        raise InvalidInputError(msg) from None
    return digest.hexdigest()


def assignment_hash(
    frame: pd.DataFrame, id_field: str, territory_field: str = "territory_id"
) -> str:
    """SHA-256 of the sorted ``(account id, territory id)`` pairs (both compared as text)."""
    for column in (id_field, territory_field):
        if column not in frame.columns:
            msg = f"assignment_hash: the plan has no '{column}' column."
            raise InvalidInputError(msg)
    pairs = sorted(
        zip(
            (_plain_text(v) for v in frame[id_field].tolist()),
            (_plain_text(v) for v in frame[territory_field].tolist()),
        )
    )
    text = json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Manifest contents
# --------------------------------------------------------------------------------------------
def library_versions(extra: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """Versions of Python, the plugin's libraries (None when not installed) and ``extra``."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions.update(extra or {})
    return versions


def json_safe(value: Any) -> Any:
    """``value`` made of JSON types only (numpy scalars unwrapped, NaN/inf -> None, tuples ->
    lists, anything else -> its text)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v) for v in items]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def build_manifest(
    algorithm: str,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, str | None],
    plan_figures: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """The manifest of one run, as a JSON-safe dict.

    ``algorithm``: the Processing id, e.g. ``territory_planner:designterritories``.
    ``parameters``: every input parameter as ``qgis_process`` takes it (layers as their sources).
    ``inputs``: input name -> hash (:func:`frame_hash` / :func:`file_hash`; None when not given).
    ``plan_figures``: ``objective``, ``lower_bound``, ``gap_pct``, ``max_deviation_pct``,
    ``moved``, ``kpis`` and ``assignment_hash`` of the plan (other keys are kept as results too).
    ``extra``: optional ``versions`` (e.g. ``{"qgis": "3.22.16"}``), ``outputs`` (destination
    parameters), ``engine_parameters`` and any other key, stored at the top level.
    """
    figures = dict(plan_figures)
    extra = dict(extra or {})
    results = {
        key: json_safe(figures.pop(key, None))
        for key in ("objective", "lower_bound", "gap_pct", "max_deviation_pct", "moved")
    }
    results["kpis"] = json_safe(figures.pop("kpis", {}) or {})
    digest = figures.pop("assignment_hash", None)
    results.update(json_safe(figures))
    params = json_safe(dict(parameters))
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "algorithm": algorithm,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "plugin_version": __version__,
        "versions": library_versions(extra.pop("versions", None)),
        "seed": params.get("SEED"),
        "solver": json_safe(extra.pop("solver", None)),
        "time_limit_s": params.get("TIME_LIMIT"),
        "parameters": params,
        "outputs": json_safe(extra.pop("outputs", {})),
        "input_hashes": json_safe(dict(inputs)),
        "results": results,
        "assignment_hash": digest,
    }
    for key, value in extra.items():
        manifest.setdefault(key, json_safe(value))
    return manifest


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> str:
    """Write ``manifest`` as indented JSON to ``path`` atomically; returns the path.

    The JSON goes to a temporary file in the same folder that then replaces ``path``: a reader
    sees the old file or the new one, never a partial one, and nothing is left on an error.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    text = json.dumps(json_safe(dict(manifest)), indent=2, ensure_ascii=False, allow_nan=False)
    try:
        os.makedirs(folder, exist_ok=True)
        handle, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder
        )
    except OSError as err:
        msg = f"Cannot write the manifest {path}: {err.strerror or err}. Choose a writable folder."
        raise InvalidInputError(msg) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError):
            msg = f"Cannot write the manifest {path}: {err.strerror or err}."
            raise InvalidInputError(msg) from None
        raise
    return path


REQUIRED_KEYS = ("algorithm", "parameters", "input_hashes", "assignment_hash")


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and check a manifest written by :func:`write_manifest`.

    Raises :class:`InvalidInputError` naming the problem when the file is missing, not JSON, of
    another manifest version or lacks a required key.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        msg = f"MANIFEST: {path} does not exist. Give the .json file written by OUTPUT_MANIFEST."
        raise InvalidInputError(msg) from None
    except OSError as err:
        msg = f"MANIFEST: cannot read {path}: {err.strerror or err}."
        raise InvalidInputError(msg) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = (
            f"MANIFEST: {path} is not a run manifest (not valid JSON: {err}). "
            "Give the .json file written by OUTPUT_MANIFEST."
        )
        raise InvalidInputError(msg) from None
    if not isinstance(data, dict) or "manifest_version" not in data:
        msg = f"MANIFEST: {path} is JSON but not a Territory Planner run manifest."
        raise InvalidInputError(msg)
    if data["manifest_version"] != MANIFEST_VERSION:
        msg = (
            f"MANIFEST: {path} has manifest version {data['manifest_version']!r}; this plugin "
            f"reads version {MANIFEST_VERSION}. Re-run with the plugin version that wrote it "
            f"({data.get('plugin_version', 'unknown')})."
        )
        raise InvalidInputError(msg)
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing or not isinstance(data.get("parameters"), dict):
        msg = f"MANIFEST: {path} lacks {', '.join(missing) or 'parameters'}; it is incomplete."
        raise InvalidInputError(msg)
    if not isinstance(data.get("input_hashes"), dict):
        msg = f"MANIFEST: {path} has no usable input_hashes; it is incomplete."
        raise InvalidInputError(msg)
    return data


def check_inputs(
    manifest: Mapping[str, Any], current_hashes: Mapping[str, str | None]
) -> list[str]:
    """Names of the inputs whose hash differs from the manifest's (given in one and not the
    other counts as different), sorted."""
    recorded = manifest.get("input_hashes") or {}
    names = set(recorded) | set(current_hashes)
    return sorted(name for name in names if recorded.get(name) != current_hashes.get(name))


def differing_parameters(
    manifest: Mapping[str, Any], parameters: Mapping[str, Any], *, skip: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """``(key, manifest value, current value)`` for each parameter that differs, sorted by key.

    Numbers compare by value (``10`` equals ``10.0``); ``skip`` keys (e.g. inputs compared by
    hash) are left out.
    """
    recorded = manifest.get("parameters") or {}
    current = json_safe(dict(parameters))
    skipped = set(skip)
    out = []
    for key in sorted((set(recorded) | set(current)) - skipped):
        old, new = recorded.get(key), current.get(key)
        if not _same(old, new):
            out.append((key, old, new))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if a in (None, "", []) and b in (None, "", []):
        return True
    return a == b
