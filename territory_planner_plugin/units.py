"""Base areas (postal areas, municipalities, counties, sales blocks) as building blocks of plans.

:func:`prepare_units` checks and cleans a polygon layer of units (repairs invalid polygons,
reprojects geographic layers, reports overlaps) and, with point accounts, finds the unit of every
account and sums the balanced measures per unit. :func:`unit_codes` lifts per-account locks or
current territories to units and :func:`dissolve_units` merges the units of each territory into
its polygon with the units' exact shared boundaries. Inputs are never modified.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from shapely.errors import GEOSException

from ._validate import balance_values, check_points
from .adjacency import geometry_array
from .errors import InvalidInputError

logger = logging.getLogger(__name__)

OVERLAP_MIN_M2 = 1.0  # overlaps of units smaller than this are numerical noise, not reported
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass
class UnitSet:
    """Cleaned units with their representative points, measures and the accounts' units."""

    units: gpd.GeoDataFrame
    ids: np.ndarray
    points: np.ndarray
    values: np.ndarray
    account_unit: np.ndarray | None = None
    repaired: int = 0
    overlaps: list[tuple[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


def prepare_units(
    units: gpd.GeoDataFrame,
    *,
    id_field: str,
    balance_fields: Sequence[str] = (),
    accounts: gpd.GeoDataFrame | None = None,
    account_id_field: str | None = None,
    max_distance_m: float = 0.0,
) -> UnitSet:
    """Check and clean a units layer and, with accounts, place every account in its unit.

    Parameters
    ----------
    units : polygon layer of base areas (multipart allowed), any CRS with a definition.
    id_field : field with a unique, non-empty id per unit.
    balance_fields : measures to balance: fields of the accounts (summed per unit) when
        ``accounts`` are given, else fields of the units. None: count of accounts (or 1 a unit).
    accounts, account_id_field : optional point accounts and their id field.
    max_distance_m : accounts outside every unit but within this distance of one join the
        nearest unit (listed in the log); farther ones are refused with their ids.

    Returns
    -------
    UnitSet : the cleaned, projected copy (rows 0..n-1) with ids, points, values and more.
    """
    frame = _check_layer(units, id_field)
    ids = frame[id_field].astype(str).str.strip().to_numpy()
    frame = _projected(frame, "UNITS")
    geoms, repaired = _repair(frame.geometry.to_numpy(), ids)
    frame = frame.set_geometry(gpd.GeoSeries(geoms, crs=frame.crs, index=frame.index))
    frame = frame.reset_index(drop=True)
    overlaps = _overlaps(geoms, ids)
    points = shapely.get_coordinates(shapely.point_on_surface(geoms))
    fields = list(balance_fields)
    account_unit = None
    outside: list[str] = []
    if accounts is None:
        values = balance_values(frame, ids, fields, layer="UNITS", noun="units")
    else:
        acc_id = account_id_field or ""
        check_points(accounts, acc_id, layer="ACCOUNTS", noun="accounts", id_key="ID_FIELD")
        acc = accounts
        if acc.crs is None:
            msg = "ACCOUNTS: the layer has no CRS; set its CRS in QGIS (Layer Properties > Source)."
            raise InvalidInputError(msg)
        if acc.crs != frame.crs:
            acc = acc.to_crs(frame.crs)
        acc_ids = acc[acc_id].astype(str).to_numpy()
        account_unit, outside = _locate(acc, acc_ids, geoms, ids, max_distance_m)
        acc_values = balance_values(acc, acc_ids, fields, layer="ACCOUNTS", noun="accounts")
        values = np.zeros((len(frame), acc_values.shape[1]))
        np.add.at(values, account_unit, acc_values)
    return UnitSet(units=frame, ids=ids, points=points, values=values,
                   account_unit=account_unit, repaired=repaired, overlaps=overlaps,
                   outside=outside)  # fmt: skip


def unit_codes(
    account_codes: np.ndarray,
    account_unit: np.ndarray,
    n_units: int,
    *,
    key: str,
    account_ids: np.ndarray,
    unit_ids: np.ndarray,
) -> np.ndarray:
    """Territory index per unit from per-account codes (locks or current territories).

    Parameters
    ----------
    account_codes : (n_accounts,) territory index per account (-1 = none).
    account_unit : (n_accounts,) unit index of each account.
    n_units : number of units.
    key : parameter name for messages; "LOCK_FIELD" (any key with LOCK) refuses a unit whose
        accounts are locked to different territories; other keys take the majority.
    account_ids, unit_ids : ids for messages.

    Returns
    -------
    (n_units,) territory index per unit (-1 = none).
    """
    codes = np.asarray(account_codes, int)
    unit = np.asarray(account_unit, int)
    out = np.full(n_units, -1)
    ok = (codes >= 0) & (unit >= 0)
    if not ok.any():
        return out
    c, u = codes[ok], unit[ok]
    if "LOCK" in key.upper():
        low = np.full(n_units, np.iinfo(int).max)
        high = np.full(n_units, -1)
        np.minimum.at(low, u, c)
        np.maximum.at(high, u, c)
        clash = np.flatnonzero((high >= 0) & (low != high))
        if len(clash):
            where = []
            aid = np.asarray(account_ids)[ok]
            for q in clash[:5]:
                names = ", ".join(map(str, aid[u == q][:4]))
                where.append(f"unit {unit_ids[q]} (accounts {names})")
            msg = (
                f"{key}: accounts of one unit are locked to different territories: "
                f"{'; '.join(where)}. A unit goes whole to one territory: lock them alike."
            )
            raise InvalidInputError(msg)
        out[high >= 0] = high[high >= 0]
        return out
    k = int(c.max()) + 1
    pair, count = np.unique(u.astype(np.int64) * k + c, return_counts=True)
    pu, pc = pair // k, pair % k
    order = np.lexsort((pc, -count, pu))  # per unit: most accounts first, then lowest code
    pu, pc = pu[order], pc[order]
    first = np.r_[True, pu[1:] != pu[:-1]]
    out[pu[first]] = pc[first]
    mixed = len(np.unique(pu[~first]))
    if mixed:
        logger.info("%s: %d unit(s) whose accounts were in different territories take the one "
                    "most of their accounts were in.", key, mixed)  # fmt: skip
    return out


def dissolve_units(
    geoms, assign: np.ndarray, k: int, *, gap_m: float = 0.0, gaps_seen: bool = False
) -> list:
    """Territory polygons: the union of each territory's units with their exact boundaries.

    Parameters
    ----------
    geoms : sequence of unit polygons (or a GeoSeries), projected, in metres.
    assign : (n,) territory index per unit (-1 = none, left out).
    k : number of territories.
    gap_m : digitising gaps narrower than this between units of one territory are closed: holes
        that thin are filled and parts that thin (slivers) dropped (the largest part is always
        kept); wider holes (lakes, enclaves of other territories) and gaps between territories
        stay. 0: the plain union. Design passes SNAP, the tolerance its adjacency allows.
        Territories in several parts are joined across such gaps (a closing, less the other
        territories' units); with ``gaps_seen`` (the adjacency found units that touch only
        within the gap) every territory is, which also closes notches.

    Returns
    -------
    list of k shapely geometries (an empty polygon for a territory without units).
    """
    g = geometry_array(geoms)
    a = np.asarray(assign, int)
    out = []
    closed = dropped = bridged = 0
    tree = None
    for j in range(k):
        part = g[a == j]
        if len(part) == 0:
            out.append(shapely.Polygon())
            continue
        merged = _union(part)
        if gap_m > 0 and (gaps_seen or shapely.get_num_geometries(merged) > 1):
            tree = tree or shapely.STRtree(g)
            try:
                merged, b = _bridge(merged, g, a, j, tree, gap_m)
            except GEOSException:  # (a robustness failure only costs the joining)
                b = 0
            bridged += b
        if gap_m > 0:
            merged, c, d = _close_gaps(merged, gap_m)
            closed, dropped = closed + c, dropped + d
        out.append(merged)
    if closed or dropped or bridged:
        logger.info("Territory polygons: digitising gaps narrower than SNAP (%g m) between units "
                    "of one territory closed (%d hole(s) filled, %d part(s) joined, %d sliver "
                    "part(s) dropped).", gap_m, closed, bridged, dropped)  # fmt: skip
    return out


def _bridge(merged, g: np.ndarray, a: np.ndarray, j: int, tree, gap_m: float):
    """Join parts of territory ``j`` (``merged``) that gaps narrower than ``gap_m`` keep apart:
    the morphological closing of ``merged`` (mitred buffers of half the gap out and back) less
    the units of every other territory, added to it; its own boundaries keep their vertices.
    (geometry, parts joined)."""
    half = gap_m / 2.0
    grown = shapely.buffer(shapely.buffer(merged, half, join_style="mitre"), -half,
                           join_style="mitre")  # fmt: skip
    fill = shapely.difference(grown, merged)
    if shapely.is_empty(fill) or shapely.area(fill) <= 0:
        return merged, 0
    near = tree.query(grown)
    near = near[a[near] != j]
    if len(near):
        fill = shapely.difference(fill, shapely.union_all(g[near]))
    fill = _polygonal(fill)  # (a difference may leave lines and points where edges meet)
    if shapely.is_empty(fill):
        return merged, 0
    joined = _polygonal(shapely.union(merged, fill))
    before = shapely.get_num_geometries(merged)
    return joined, max(before - shapely.get_num_geometries(joined), 0)


def _polygon_parts(geom: shapely.Geometry) -> list:
    """The polygons with an area in ``geom`` (a collection's lines and points dropped, its
    multipolygons taken apart)."""
    parts = []
    for p in shapely.get_parts(geom):
        parts.extend(shapely.get_parts(p) if p.geom_type == "MultiPolygon" else [p])
    return [p for p in parts if p.geom_type == "Polygon" and p.area > 0]


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """``geom`` as a Polygon or MultiPolygon of its polygons (:func:`_polygon_parts`; an empty
    Polygon when it has none)."""
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = _polygon_parts(geom)
    if not parts:
        return shapely.Polygon()
    return shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]


def _close_gaps(geom: shapely.Geometry, gap_m: float) -> tuple[shapely.Geometry, int, int]:
    """``geom`` with its digitising gaps closed: a hole is filled when what of it the territory
    does not cover (the gap round an island of its own units, or the whole hole) is thinner than
    ``gap_m`` (nothing left after a negative buffer of half of it), and parts that thin are
    dropped: (geometry, holes filled, parts dropped). Boundaries with other territories keep
    their vertices; a hole holding another territory's units or a lake stays."""
    polys = _polygon_parts(geom)
    if not polys:
        return geom, 0, 0
    half = -gap_m / 2.0
    thin = shapely.is_empty(shapely.buffer(np.array(polys, dtype=object), half))
    if thin.all():  # a territory of slivers only: its largest part stays
        thin[int(np.argmax(shapely.area(polys)))] = False
    kept, closed = [], 0
    for p in (p for p, t in zip(polys, thin) if not t):
        rings = list(p.interiors)
        if rings:
            rest = shapely.difference(shapely.polygons(rings), geom)  # the hole less own parts
            gap = shapely.is_empty(shapely.buffer(rest, half))
            closed += int(gap.sum())
            p = shapely.Polygon(p.exterior, [r for r, x in zip(rings, gap) if not x])
        kept.append(p)
    dropped = int(thin.sum())
    if not closed and not dropped:
        return geom, 0, 0
    if closed:  # a filled hole may hold parts of its own (islands in it): one union
        out = shapely.union_all(kept)
    else:
        out = shapely.MultiPolygon(kept) if len(kept) > 1 else kept[0]
    if geom.geom_type == "MultiPolygon" and out.geom_type == "Polygon":
        out = shapely.MultiPolygon([out])
    return out, closed, dropped


# ----------------------------------------------------------------------------- helpers


def _union(part: np.ndarray) -> shapely.Geometry:
    """Coverage union when the units form a clean coverage (exact and fast), else a full union."""
    total = float(shapely.area(part).sum())
    try:
        merged = shapely.coverage_union_all(part)
        if shapely.is_valid(merged) and abs(shapely.area(merged) - total) <= 1e-9 * (1 + total):
            return merged
    except GEOSException:
        pass
    return shapely.union_all(part)


def _check_layer(units: gpd.GeoDataFrame, id_field: str) -> gpd.GeoDataFrame:
    if units is None or len(units) == 0:
        msg = (
            "UNITS: the layer is empty; add base areas (postal areas, counties ...) or select some."
        )
        raise InvalidInputError(msg)
    if not id_field or id_field not in units.columns:
        msg = f"UNIT_ID_FIELD: '{id_field}' is not a field of UNITS; choose the units' id field."
        raise InvalidInputError(msg)
    raw = units[id_field]
    text = raw.astype(str).str.strip()
    empty = (
        raw.isna() | (text == "") | (text.str.lower().isin(["nan", "none", "null"]))
    ).to_numpy()
    if empty.any():
        rows = (np.flatnonzero(empty) + 1).tolist()
        msg = (
            f"UNIT_ID_FIELD: features {rows[:10]} of UNITS have an empty '{id_field}'; "
            "give every unit an id."
        )
        raise InvalidInputError(msg)
    dup = text[text.duplicated()].unique()
    if len(dup):
        msg = (
            f"UNIT_ID_FIELD: duplicate unit ids {list(map(str, dup[:10]))}; make them unique "
            "(or dissolve the units that share an id first)."
        )
        raise InvalidInputError(msg)
    geo = units.geometry
    missing = (geo.isna() | geo.is_empty).to_numpy()
    if missing.any():
        msg = (
            f"UNITS: units {list(text[missing][:10])} have no geometry; draw them or filter them "
            "out."
        )
        raise InvalidInputError(msg)
    kinds = geo.geom_type.to_numpy()
    wrong = ~np.isin(kinds, _POLYGONAL)
    if wrong.any():
        found = sorted(set(kinds[wrong]))
        msg = (
            f"UNITS: the layer is not a polygon layer (units {list(text[wrong][:10])} are "
            f"{', '.join(found)}); use polygons of the base areas."
        )
        raise InvalidInputError(msg)
    return units.copy()


def _projected(frame: gpd.GeoDataFrame, layer: str) -> gpd.GeoDataFrame:
    if frame.crs is None:
        msg = f"{layer}: the layer has no CRS; set its CRS in QGIS (Layer Properties > Source)."
        raise InvalidInputError(msg)
    if not frame.crs.is_projected:
        utm = frame.estimate_utm_crs()
        logger.info("%s reprojected from %s to %s for distances in metres.", layer,
                    frame.crs.name, utm.name)  # fmt: skip
        frame = frame.to_crs(utm)
    return frame


def _repair(geoms: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Make invalid polygons valid (keeping their polygonal parts); count and log them."""
    geoms = np.asarray(geoms, dtype=object).copy()
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    lost = []
    for i in bad.tolist():
        fixed = shapely.make_valid(geoms[i])
        parts = _polygon_parts(fixed)
        if not parts:
            lost.append(str(ids[i]))
            continue
        merged = shapely.union_all(parts)
        geoms[i] = merged if merged.geom_type in _POLYGONAL else shapely.multipolygons(parts)
    if lost:
        msg = (
            f"UNITS: units {lost[:10]} have no area once repaired (degenerate polygons); fix or "
            "remove them."
        )
        raise InvalidInputError(msg)
    if len(bad):
        logger.warning("UNITS: %d invalid polygon(s) repaired (e.g. %s); check them in QGIS "
                       "(Vector > Geometry Tools > Check Validity).", len(bad),
                       ", ".join(map(str, ids[bad][:5])))  # fmt: skip
    return geoms, len(bad)


def _overlaps(geoms: np.ndarray, ids: np.ndarray) -> list[tuple[str, str]]:
    """Pairs of units whose interiors overlap by more than ``OVERLAP_MIN_M2`` (logged)."""
    if len(geoms) < 2:
        return []
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    inner = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    left, right = left[inner], right[inner]
    if len(left) == 0:
        return []
    area = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    big = area > OVERLAP_MIN_M2
    pairs = [(str(ids[a]), str(ids[b])) for a, b in zip(left[big], right[big])]
    if pairs:
        logger.warning("UNITS: %d pair(s) of units overlap (e.g. %s); an account in an overlap "
                       "counts in one of them only.", len(pairs),
                       ", ".join(f"{a}/{b}" for a, b in pairs[:5]))  # fmt: skip
    return pairs


def _locate(acc, acc_ids, geoms, ids, max_distance_m) -> tuple[np.ndarray, list[str]]:
    """Unit index of each account: the unit containing it, else the nearest within reach."""
    pts = acc.geometry.to_numpy()
    n_acc = len(pts)
    tree = shapely.STRtree(geoms)
    a_idx, u_idx = tree.query(pts, predicate="intersects")
    unit = np.full(n_acc, -1)
    if len(a_idx):
        # Several units: an interior hit (overlap) wins over a boundary one, then the first unit.
        inner = shapely.contains_properly(geoms[u_idx], pts[a_idx])
        order = np.lexsort((u_idx, ~inner, a_idx))
        a_s, u_s, in_s = a_idx[order], u_idx[order], inner[order]
        first = np.r_[True, a_s[1:] != a_s[:-1]]
        unit[a_s[first]] = u_s[first]
        n_inner = np.bincount(a_s[in_s], minlength=n_acc)
        twice = np.flatnonzero(n_inner >= 2)
        if len(twice):
            logger.warning("ACCOUNTS: %d account(s) lie in overlapping units and count in one of "
                           "them: %s.", len(twice),
                           ", ".join(f"{acc_ids[i]} -> {ids[unit[i]]}" for i in twice[:10]))  # fmt: skip
    out = np.flatnonzero(unit < 0)
    placed: list[str] = []
    if len(out):
        reach = max(float(max_distance_m or 0.0), 0.0)
        far = out
        if reach > 0:
            q_idx, t_idx = tree.query_nearest(pts[out], max_distance=reach, all_matches=False)
            unit[out[q_idx]] = t_idx
            placed = [str(acc_ids[i]) for i in out[q_idx]]
            far = np.flatnonzero(unit < 0)
        if len(far):
            _, dist = tree.query_nearest(pts[far], return_distance=True, all_matches=False)
            need = math.ceil(float(np.max(dist)) / 100.0 + 1e-9) * 100  # metres, up to 100 m
            msg = (
                f"ACCOUNTS: {len(far)} account(s) lie outside every unit"
                + (f" and farther than {reach:g} m from one" if reach > 0 else "")
                + f": {list(map(str, acc_ids[far][:10]))}. Add the missing units, filter those "
                f"accounts out, or set UNIT_MAX_DISTANCE to at least {need} m so they join the "
                "nearest unit."
            )
            raise InvalidInputError(msg)
        logger.warning("ACCOUNTS: %d account(s) outside every unit joined the nearest unit within "
                       "%g m: %s.", len(placed), reach, ", ".join(placed[:10]))  # fmt: skip
    return unit, placed
