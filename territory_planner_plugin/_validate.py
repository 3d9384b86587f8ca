"""Checks shared by the engine's entry points: point layers with unique ids, balance measures."""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import InvalidInputError


def check_points(
    frame: gpd.GeoDataFrame,
    id_field: str,
    *,
    layer: str,
    noun: str,
    id_key: str = "ID_FIELD",
    allow_missing: bool = False,
) -> np.ndarray:
    """Check a point layer (not empty, ``id_field`` present and unique, point geometries).

    ``layer``/``id_key`` are the public parameter names used in messages; ``noun`` names the
    records (e.g. "origins"). Missing geometries are an error unless ``allow_missing``.
    Returns the ids as an array.
    """
    if len(frame) == 0:
        msg = f"{layer}: the layer is empty; add {noun} or select some."
        raise InvalidInputError(msg)
    if id_field not in frame.columns:
        msg = f"{id_key}: '{id_field}' is not a field of {layer}."
        raise InvalidInputError(msg)
    ids = frame[id_field].to_numpy()
    no_id = missing_ids(frame[id_field])
    if no_id.any():
        msg = (
            f"{id_key}: {int(no_id.sum())} {noun} have no id (NULL or empty '{id_field}'): "
            f"{row_labels(frame, no_id)}. Fill in their ids (Field Calculator) or filter them "
            f"out, then run again."
        )
        raise InvalidInputError(msg)
    dup = frame[id_field][frame[id_field].duplicated()].unique()
    if len(dup):
        msg = f"{id_key}: duplicate {noun} ids {list(map(str, dup[:10]))}; make them unique."
        raise InvalidInputError(msg)
    missing = (frame.geometry.isna() | frame.geometry.is_empty).to_numpy()
    if missing.any() and not allow_missing:
        msg = (
            f"{layer}: {int(missing.sum())} {noun} have a NULL or empty geometry: "
            f"{listed(ids[missing])}. Give them a location or filter them out (Select by "
            "Expression: is_empty_or_null($geometry)), then run again."
        )
        raise InvalidInputError(msg)
    not_point = ~missing & (frame.geometry.geom_type != "Point").to_numpy()
    if not_point.any():
        msg = f"{layer}: {noun} {list(map(str, ids[not_point][:10]))} are not points; use point geometries (e.g. centroids)."
        raise InvalidInputError(msg)
    return ids


def balance_values(frame: pd.DataFrame, ids: np.ndarray, fields: Sequence[str], *,
                   layer: str = "ACCOUNTS", noun: str = "accounts") -> np.ndarray:  # fmt: skip
    """(n, m) non-negative balance measures (a column of ones when no fields are given); a
    missing field or a null, negative or non-numeric value is refused with the ids."""
    if not fields:
        return np.ones((len(frame), 1))
    cols = []
    for f in fields:
        if f not in frame.columns:
            msg = f"BALANCE_FIELDS: '{f}' is not a field of {layer}."
            parts = [p.strip() for p in str(f).split(",")]
            if len(parts) > 1 and all(p in frame.columns for p in parts):
                repeat = " ".join(f"BALANCE_FIELDS={p}" for p in parts)
                msg += (" To balance several fields give each on its own: in qgis_process "
                        f"repeat the parameter ({repeat}); in Python pass a list.")  # fmt: skip
            raise InvalidInputError(msg)
        col = pd.to_numeric(frame[f], errors="coerce")
        null = frame[f].isna().to_numpy()
        text = col.isna().to_numpy() & ~null
        if text.all():
            msg = (f"BALANCE_FIELDS: '{f}' holds text (e.g. '{frame[f].iloc[0]}'), not numbers; "
                   f"choose a numeric field of {layer}.")  # fmt: skip
            raise InvalidInputError(msg)
        ids = np.asarray(ids)
        faults = [(null, "null"), ((col < 0).to_numpy(), "negative"), (text, "not a number")]
        found = [f"{word} for {int(m.sum())} {noun} ({listed(ids[m])})" for m, word in faults
                 if m.any()]  # fmt: skip
        if found:
            msg = (f"BALANCE_FIELDS: '{f}' is {'; '.join(found)}. Fix them (0 for none) or run "
                   "checkaccounts first.")  # fmt: skip
            raise InvalidInputError(msg)
        cols.append(col.to_numpy(float))
    return np.column_stack(cols)


def missing_ids(values) -> np.ndarray:
    """True where an id is NULL, NaN or blank text."""
    arr = np.asarray(values, dtype=object)
    return np.array([v is None or (isinstance(v, float) and v != v) or str(v).strip() == ""
                     for v in arr], dtype=bool)  # fmt: skip


def row_labels(frame, rows: np.ndarray, limit: int = 10) -> str:
    """'row 3 (fid 12)' labels of the ``rows`` mask: the row number from 1, and the feature id
    when the frame has a ``fid`` column."""
    idx = np.flatnonzero(rows)
    fids = frame["fid"].to_numpy() if "fid" in frame.columns else None
    labels = [
        f"row {i + 1}" + (f" (feature id {fids[i]})" if fids is not None else "") for i in idx
    ]
    return listed(labels, limit)


def listed(values, limit: int = 10) -> str:
    """'a, b, c and 4 more': the first ``limit`` values for a message."""
    values = [str(v) for v in values]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def is_areas(geometries) -> bool:
    """True when the rows are areas: every geometry present (not NULL, not empty) is a polygon or
    multipolygon, and there is one at least (a plan of units, not of accounts)."""
    arr = np.asarray(getattr(geometries, "array", geometries), dtype=object)
    present = arr[~(shapely.is_missing(arr) | shapely.is_empty(arr))]
    return bool(len(present)) and bool(np.isin(shapely.get_type_id(present), (3, 6)).all())


def without_geometry(frame, id_field: str) -> tuple[int, str]:
    """How many rows have a NULL or empty geometry, and which ('id a, b' by ``id_field`` when it
    is a field, else row labels); ``(0, "")`` when none (or no geometry column)."""
    if not hasattr(frame, "geometry"):
        return 0, ""
    missing = (frame.geometry.isna() | frame.geometry.is_empty).to_numpy()
    if not missing.any():
        return 0, ""
    where = (f"{id_field} {listed(frame.loc[missing, id_field])}" if id_field in frame.columns
             else row_labels(frame, missing))  # fmt: skip
    return int(missing.sum()), where
