"""Data-quality checks on an accounts layer before planning; flags problems, never fixes or drops.

Checks: missing and duplicate ids, likely duplicate accounts (same normalised name within a
distance), missing or unusable geometry, null / non-numeric / negative / outlying values in chosen
numeric fields (robust z-score from the median and MAD, both sides), points far from the road
network and points outside a study area. The result is a flagged copy of the input (one ``chk_``
column per check, ``chk_ok`` and a readable ``chk_reasons``), a summary table and the quality score
(share of clean records; published guidance aims above 85%).
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from ._validate import is_areas
from .errors import InvalidInputError
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

QUALITY_GUIDANCE_PCT = 85.0
MIN_VALUES_FOR_OUTLIERS = 5
_MAD_SCALE = 0.6745  # Iglewicz & Hoaglin modified z-score: 0.6745 * (x - median) / MAD
_MEANAD_SCALE = 1.253314  # fallback when MAD is 0: (x - median) / (1.253314 * mean abs deviation)
_MAX_PARTNERS = 5
# Legal-form words dropped from names before comparing ("Oy Kahvila Ab" = "Kahvila").
LEGAL_FORMS = frozenset(
    {"ab", "ag", "aps", "as", "bv", "co", "corp", "corporation", "gmbh", "inc", "kg", "ky",
     "limited", "llc", "ltd", "nv", "oy", "oyj", "plc", "sa", "sarl", "spa", "srl"}
)  # fmt: skip
FIXED_COLUMNS = ("chk_missing_id", "chk_dup_id", "chk_dup_account", "chk_geometry",
                 "chk_far_from_road", "chk_snap_m", "chk_outside_area", "chk_ok", "chk_reasons")  # fmt: skip
SUMMARY_COLUMNS = ("check", "field", "count", "share_pct", "note")


@dataclass
class CheckResult:
    """Outcome of :func:`check_accounts`: flagged copy, summary table, quality score, flag count."""

    flagged: gpd.GeoDataFrame
    summary: pd.DataFrame
    quality_score: float
    n_flagged: int


def normalise_name(value: object) -> str:
    """Comparable form of an account name: case, accents, punctuation and legal forms ignored."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    text = unicodedata.normalize("NFKD", str(value)).casefold()
    text = "".join(c if c.isalnum() else " " for c in text if not unicodedata.combining(c))
    tokens = text.split()
    kept = [t for t in tokens if t not in LEGAL_FORMS]
    return " ".join(kept or tokens)


def robust_z(values: np.ndarray) -> np.ndarray:
    """Modified z-score of each value (median/MAD); NaN stays NaN, all zeros when no spread."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    out = np.full(len(values), np.nan)
    if not finite.any():
        return out
    median = float(np.median(values[finite]))
    deviation = np.abs(values[finite] - median)
    mad = float(np.median(deviation))
    if mad > 0:
        out[finite] = _MAD_SCALE * (values[finite] - median) / mad
        return out
    mean_ad = float(np.mean(deviation))
    out[finite] = (values[finite] - median) / (_MEANAD_SCALE * mean_ad) if mean_ad > 0 else 0.0
    return out


def check_accounts(
    accounts: gpd.GeoDataFrame,
    *,
    id_field: str,
    name_field: str | None = None,
    numeric_fields: Sequence[str] = (),
    duplicate_distance_m: float = 100.0,
    outlier_z: float = 3.5,
    network: object | None = None,
    max_snap_m: float = 500.0,
    study_area: gpd.GeoDataFrame | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> CheckResult:
    """Flag data problems in ``accounts`` (points); every record and field is kept as it is.

    Distances are in metres: a lon/lat (or non-metre) layer is reprojected internally to its
    local UTM zone; the flagged copy keeps the input CRS and geometries. ``network`` is a
    :class:`~.network.RoadNetwork`; ``study_area`` a polygon layer (any CRS).
    """
    numeric_fields = list(dict.fromkeys(numeric_fields or ()))
    _check_parameters(accounts, id_field, name_field, numeric_fields, duplicate_distance_m,
                      outlier_z, max_snap_m, study_area)  # fmt: skip
    n = len(accounts)
    out = accounts.copy()
    replaced = [c for c in _output_columns(numeric_fields) if c in out.columns]
    if replaced:
        logger.warning(
            "INPUT already has %s (an earlier check?): replaced in the output by this run's results.",
            ", ".join(replaced),
        )
        out = out.drop(columns=replaced)
    ids = _id_texts(accounts[id_field])
    reasons: list[list[str]] = [[] for _ in range(n)]
    rows: list[dict] = []
    report(progress, 0.05, "Checking ids")

    # ids: missing, duplicate (every record sharing an id is flagged)
    missing_id = np.array([i is None for i in ids])
    id_series = pd.Series([i if i is not None else np.nan for i in ids], dtype=object)
    dup_id = (id_series.duplicated(keep=False) & ~missing_id).to_numpy()
    out["chk_missing_id"] = missing_id
    out["chk_dup_id"] = dup_id
    _add(reasons, missing_id, "missing id")
    _add(reasons, dup_id, "duplicate id")
    rows.append(_row("missing id", "chk_missing_id", int(missing_id.sum()), n))
    rows.append(_row("duplicate id", "chk_dup_id", int(dup_id.sum()), n))
    labels = np.array([i if i is not None else f"(row {k + 1})" for k, i in enumerate(ids)], object)

    # geometry
    check_cancel(is_cancelled)
    report(progress, 0.15, "Checking geometry")
    located = _areas_as_points(accounts)
    geometry_reason, xy = _geometry(located)
    out["chk_geometry"] = pd.Series(geometry_reason, index=out.index, dtype=object)
    usable = np.array([r is None for r in geometry_reason])
    for k, r in enumerate(geometry_reason):
        if r is not None:
            reasons[k].append(f"geometry {r}")
    rows.append(_row("missing or unusable geometry", "chk_geometry", int((~usable).sum()), n))
    metric_xy, metric_crs = _metric_xy(located, xy, usable)

    # likely duplicate accounts: same normalised name within duplicate_distance_m
    check_cancel(is_cancelled)
    report(progress, 0.3, "Looking for duplicate accounts")
    if name_field:
        partners = _duplicate_accounts(
            accounts[name_field], metric_xy, usable, labels, duplicate_distance_m
        )
        out["chk_dup_account"] = pd.Series(partners, index=out.index, dtype=object)
        found = np.array([p is not None for p in partners])
        for k in np.flatnonzero(found):
            reasons[k].append(f"likely duplicate of {partners[k]}")
        rows.append(_row("likely duplicate account", "chk_dup_account", int(found.sum()), n,
                         f"same {name_field} within {duplicate_distance_m:g} m"))  # fmt: skip
    else:
        rows.append(_row("likely duplicate account", "chk_dup_account", None, n,
                         "not run: no NAME_FIELD given"))  # fmt: skip

    # numeric fields
    check_cancel(is_cancelled)
    report(progress, 0.45, "Checking numeric fields")
    for field in numeric_fields:
        field_reason, detail = _numeric(accounts[field], outlier_z, field)
        column = f"chk_{field}"
        out[column] = pd.Series(field_reason, index=out.index, dtype=object)
        bad = np.array([r is not None for r in field_reason])
        for k in np.flatnonzero(bad):
            reasons[k].append(f"{field} {detail[k]}")
        counts = pd.Series([r for r in field_reason if r is not None]).value_counts()
        note = ", ".join(f"{r}: {c}" for r, c in counts.items())
        rows.append(_row(f"{field}: null, negative, not a number or outlier", column,
                         int(bad.sum()), n, note))  # fmt: skip

    # road network
    check_cancel(is_cancelled)
    report(progress, 0.6, "Measuring distance to the road network")
    if network is not None:
        snap_m = _snap_distance(network, located, usable)
        far = np.isfinite(snap_m) & (snap_m > max_snap_m)
        out["chk_far_from_road"] = far
        out["chk_snap_m"] = np.round(snap_m, 1)
        for k in np.flatnonzero(far):
            reasons[k].append(f"{_distance_text(snap_m[k])} from the road network")
        rows.append(_row("far from the road network", "chk_far_from_road", int(far.sum()), n,
                         f"nearest road farther than {max_snap_m:g} m"))  # fmt: skip
    else:
        rows.append(_row("far from the road network", "chk_far_from_road", None, n,
                         "not run: no NETWORK given"))  # fmt: skip

    # study area
    check_cancel(is_cancelled)
    report(progress, 0.8, "Checking the study area")
    if study_area is not None:
        outside = _outside(study_area, metric_xy, metric_crs, usable)
        out["chk_outside_area"] = outside
        _add(reasons, outside, "outside the study area")
        rows.append(_row("outside the study area", "chk_outside_area", int(outside.sum()), n))
    else:
        rows.append(_row("outside the study area", "chk_outside_area", None, n,
                         "not run: no STUDY_AREA given"))  # fmt: skip

    ok = np.array([not r for r in reasons], dtype=bool)
    out["chk_ok"] = ok
    out["chk_reasons"] = pd.Series(
        ["; ".join(r) if r else None for r in reasons], index=out.index, dtype=object
    )
    n_flagged = int((~ok).sum())
    score = round(100.0 * float(ok.sum()) / n, 2)
    met = "met" if score > QUALITY_GUIDANCE_PCT else "NOT met"
    rows.append(_row("flagged by any check", "chk_ok", n_flagged, n))
    rows.append(
        {"check": "quality score (clean records)", "field": "chk_ok", "count": int(ok.sum()),
         "share_pct": score,
         "note": f"guidance: above {QUALITY_GUIDANCE_PCT:g}% clean ({met})"}
    )  # fmt: skip
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["count"] = summary["count"].astype("Int64")
    for row in rows[:-2]:
        if row["count"]:
            logger.info("%s: %d record(s) (%.1f%%).", row["check"], row["count"], row["share_pct"])
    log = logger.info if score > QUALITY_GUIDANCE_PCT else logger.warning
    log(
        "Data quality score: %.1f%% of %d records are clean (%d flagged); published guidance "
        "aims above %g%%: %s.",
        score, n, n_flagged, QUALITY_GUIDANCE_PCT, met,
    )  # fmt: skip
    report(progress, 1.0, "Checks done")
    return CheckResult(flagged=out, summary=summary, quality_score=score, n_flagged=n_flagged)


# ----------------------------------------------------------------------------- parameters


def _check_parameters(accounts, id_field, name_field, numeric_fields, distance, z, snap, area):
    if not isinstance(accounts, gpd.GeoDataFrame):
        msg = "INPUT: give a point layer (a GeoDataFrame with a geometry column)."
        raise InvalidInputError(msg)
    if len(accounts) == 0:
        msg = "INPUT: the layer is empty; add accounts or select some."
        raise InvalidInputError(msg)
    if accounts.crs is None:
        msg = "INPUT: the layer has no CRS; set its CRS in QGIS (Layer Properties > Source)."
        raise InvalidInputError(msg)
    fields = ", ".join(str(c) for c in accounts.columns if c != accounts.geometry.name)
    for key, name in [("ID_FIELD", id_field), ("NAME_FIELD", name_field)] + [
        ("NUMERIC_FIELDS", f) for f in numeric_fields
    ]:
        if key == "NAME_FIELD" and not name:
            continue
        if not name or name not in accounts.columns or name == accounts.geometry.name:
            msg = f"{key}: '{name}' is not a field of INPUT; fields are {fields}."
            raise InvalidInputError(msg)
    fixed = {c[len("chk_") :] for c in FIXED_COLUMNS}
    clash = [f for f in numeric_fields if f in fixed]
    if clash:
        msg = (
            f"NUMERIC_FIELDS: {', '.join(clash)} would give a column that clashes with the check "
            f"columns ({', '.join(FIXED_COLUMNS)}); rename the field in a copy of the layer."
        )
        raise InvalidInputError(msg)
    for key, value, low, example in (
        ("DUPLICATE_DISTANCE", distance, 0.0, "100"),
        ("MAX_SNAP", snap, 0.0, "500"),
    ):
        if value is None or not math.isfinite(float(value)) or float(value) < low:
            msg = f"{key}: {value} must be a distance of 0 metres or more, e.g. {example}."
            raise InvalidInputError(msg)
    if z is None or not math.isfinite(float(z)) or float(z) <= 0:
        msg = f"OUTLIER_Z: {z} must be a number greater than 0; 3.5 is the usual threshold."
        raise InvalidInputError(msg)
    if area is not None:
        if not isinstance(area, gpd.GeoDataFrame) or len(area) == 0:
            msg = "STUDY_AREA: the layer is empty; give a polygon layer or leave STUDY_AREA empty."
            raise InvalidInputError(msg)
        kinds = set(area.geometry.dropna().geom_type)
        if not kinds or not kinds <= {"Polygon", "MultiPolygon"}:
            msg = f"STUDY_AREA: needs polygons (got {', '.join(sorted(kinds)) or 'no geometry'}); give a polygon layer."
            raise InvalidInputError(msg)


def _output_columns(numeric_fields: Sequence[str]) -> list[str]:
    return [*FIXED_COLUMNS, *(f"chk_{f}" for f in numeric_fields)]


# ----------------------------------------------------------------------------- checks


def _id_texts(series: pd.Series) -> list[str | None]:
    """Ids as text (None when missing or blank); 12 and 12.0 count as the same id."""
    out: list[str | None] = []
    for value in series.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
            continue
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        text = str(value).strip()
        out.append(text or None)
    return out


def _areas_as_points(accounts: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A layer of areas (every geometry a polygon: units of a plan) checked at a point inside
    each area; any other layer as it is."""
    if not is_areas(accounts.geometry):
        return accounts
    geoms = np.asarray(accounts.geometry.array, dtype=object)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    logger.info("INPUT holds areas (polygons): each is checked at a point inside it.")
    inside = geoms.copy()
    inside[present] = shapely.point_on_surface(shapely.make_valid(geoms[present]))
    return accounts.set_geometry(gpd.GeoSeries(inside, index=accounts.index, crs=accounts.crs))


def _geometry(accounts: gpd.GeoDataFrame) -> tuple[list[str | None], np.ndarray]:
    """Reason per record ('missing', 'empty', 'not a point', ...) or None, and x/y (NaN if unusable)."""
    geoms = np.asarray(accounts.geometry.array, dtype=object)
    n = len(geoms)
    reason: list[str | None] = [None] * n
    xy = np.full((n, 2), np.nan)
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    kind = shapely.get_type_id(geoms)
    parts = np.where(kind == 4, shapely.get_num_geometries(geoms), 1)
    geographic = bool(accounts.crs.is_geographic)
    for k in range(n):
        if missing[k]:
            reason[k] = "missing"
        elif empty[k]:
            reason[k] = "empty"
        elif kind[k] == 4 and parts[k] > 1:
            reason[k] = "several points"
        elif kind[k] not in (0, 4):
            reason[k] = "not a point"
    point_like = np.array([r is None for r in reason])
    if point_like.any():
        g = geoms[point_like].copy()
        multi = shapely.get_type_id(g) == 4
        g[multi] = shapely.get_geometry(g[multi], 0)
        xy[point_like] = np.column_stack([shapely.get_x(g), shapely.get_y(g)])
    for k in np.flatnonzero(point_like):
        x, y = xy[k]
        if not (math.isfinite(x) and math.isfinite(y)):
            reason[k] = "invalid coordinates"
        elif geographic and not (-180 <= x <= 180 and -90 <= y <= 90):
            reason[k] = "invalid coordinates (outside longitude/latitude range)"
        elif x == 0 and y == 0:
            reason[k] = "at 0,0 (failed geocoding?)"
        if reason[k] is not None:
            xy[k] = np.nan
    return reason, xy


def _metric_xy(accounts: gpd.GeoDataFrame, xy: np.ndarray, usable: np.ndarray):
    """x/y in metres (local UTM unless the layer is projected in metres) and that CRS."""
    crs = accounts.crs
    if crs.is_projected and _in_metres(crs):
        return xy, crs
    out = np.full_like(xy, np.nan)
    if not usable.any():
        return out, crs
    points = gpd.GeoSeries(gpd.points_from_xy(xy[usable, 0], xy[usable, 1]), crs=crs)
    utm = points.estimate_utm_crs()
    logger.info("Distances measured in %s (INPUT is not in metres); the output keeps %s.",
                utm.name, crs.name)  # fmt: skip
    projected = points.to_crs(utm)
    out[usable] = np.column_stack([projected.x.to_numpy(), projected.y.to_numpy()])
    return out, utm


def _in_metres(crs) -> bool:
    axes = getattr(crs, "axis_info", None) or []
    return all(abs(float(a.unit_conversion_factor) - 1.0) < 1e-9 for a in axes)


def _duplicate_accounts(names, xy, usable, labels, distance_m) -> list[str | None]:
    """Ids of the other records with the same normalised name within ``distance_m`` (nearest first)."""
    n = len(names)
    keys = np.array([normalise_name(v) for v in names.tolist()], dtype=object)
    candidates = usable & (keys != "")
    partners: list[list[tuple[float, str]]] = [[] for _ in range(n)]
    idx = np.flatnonzero(candidates)
    groups = pd.Series(idx).groupby(keys[idx]).agg(list)
    for members in groups:
        if len(members) < 2:
            continue
        members = np.asarray(members)
        pairs = cKDTree(xy[members]).query_pairs(r=distance_m, output_type="ndarray")
        for a, b in pairs:
            i, j = members[a], members[b]
            d = float(np.hypot(*(xy[i] - xy[j])))
            partners[i].append((d, labels[j]))
            partners[j].append((d, labels[i]))
    out: list[str | None] = []
    for found in partners:
        if not found:
            out.append(None)
            continue
        found.sort()
        text = ", ".join(str(label) for _, label in found[:_MAX_PARTNERS])
        out.append(
            text + (f" (+{len(found) - _MAX_PARTNERS} more)" if len(found) > _MAX_PARTNERS else "")
        )
    return out


def _numeric(series: pd.Series, outlier_z: float, field: str) -> tuple[list, list]:
    """Reason per record ('null', 'not a number', 'negative', 'outlier') and a readable detail."""
    raw = series.tolist()
    n = len(raw)
    reason: list[str | None] = [None] * n
    detail: list[str | None] = [None] * n
    values = np.full(n, np.nan)
    for k, v in enumerate(raw):
        if v is None or v is pd.NA or (isinstance(v, str) and not v.strip()):
            reason[k] = "null"
            continue
        if isinstance(v, (bool, np.bool_)):
            values[k] = float(v)
            continue
        try:
            number = float(v.strip().replace(",", ".") if isinstance(v, str) else v)
        except (TypeError, ValueError):
            reason[k] = "not a number"
            continue
        if math.isnan(number):
            reason[k] = "null"
        elif not math.isfinite(number):
            reason[k] = "not a number"
        elif number < 0:
            reason[k] = "negative"
        values[k] = number
    for k, r in enumerate(reason):
        if r is not None:
            detail[k] = r if r != "negative" else f"negative ({values[k]:g})"
    clean = np.array([r is None for r in reason]) & np.isfinite(values)
    if clean.sum() < MIN_VALUES_FOR_OUTLIERS:
        logger.warning("NUMERIC_FIELDS: %s has only %d usable value(s); outliers are not looked "
                       "for below %d.", field, int(clean.sum()), MIN_VALUES_FOR_OUTLIERS)  # fmt: skip
        return reason, detail
    z = np.full(n, np.nan)
    z[clean] = robust_z(values[clean])
    for k in np.flatnonzero(clean & (np.abs(np.nan_to_num(z)) > outlier_z)):
        reason[k] = "outlier"
        side = "high" if z[k] > 0 else "low"
        detail[k] = f"outlier ({side}: {values[k]:g}, robust z {z[k]:.1f})"
    return reason, detail


def _snap_distance(network, accounts: gpd.GeoDataFrame, usable: np.ndarray) -> np.ndarray:
    """Metres from each usable point to the nearest road (NaN for unusable geometry)."""
    from .network import snap_points

    dist = np.full(len(accounts), np.nan)
    if not usable.any():
        return dist
    geoms = np.asarray(accounts.geometry.array, dtype=object)[usable].copy()
    multi = shapely.get_type_id(geoms) == 4
    geoms[multi] = shapely.get_geometry(geoms[multi], 0)
    points = gpd.GeoSeries(geoms, crs=accounts.crs).to_crs(network.crs)
    dist[usable] = snap_points(network, points, max_snap_m=math.inf).distance_m
    return dist


def _outside(study_area: gpd.GeoDataFrame, xy: np.ndarray, crs, usable: np.ndarray) -> np.ndarray:
    """True where a usable point is not in (or on the edge of) any study-area polygon."""
    outside = np.zeros(len(xy), dtype=bool)
    if not usable.any():
        return outside
    area = study_area
    if area.crs is None:
        logger.warning("STUDY_AREA has no CRS: assuming it is in the CRS of INPUT.")
        area = area.set_crs(crs, allow_override=True)
    polygons = np.asarray(area.to_crs(crs).geometry.array, dtype=object)
    polygons = polygons[~(shapely.is_missing(polygons) | shapely.is_empty(polygons))]
    polygons = shapely.make_valid(polygons)
    tree = shapely.STRtree(polygons)
    points = shapely.points(xy[usable])
    inside_idx, _ = tree.query(points, predicate="covered_by")
    inside = np.zeros(int(usable.sum()), dtype=bool)
    inside[inside_idx] = True
    outside[np.flatnonzero(usable)] = ~inside
    return outside


# ----------------------------------------------------------------------------- helpers


def _add(reasons: list[list[str]], mask: np.ndarray, text: str) -> None:
    for k in np.flatnonzero(mask):
        reasons[k].append(text)


def _row(check: str, field: str, count: int | None, n: int, note: str = "") -> dict:
    share = None if count is None else round(100.0 * count / n, 2)
    return {"check": check, "field": field, "count": count, "share_pct": share, "note": note}


def _distance_text(metres: float) -> str:
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres:.0f} m"
