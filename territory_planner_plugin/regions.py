"""Groups and regions: plans solved per group (state, segment) and territories grouped in regions.

:func:`plan_by_group` runs design or rebalance once per value of GROUP_FIELD, each group with its
own reps (or its share of TERRITORIES) and targets, and merges the plans: territory ids unique,
the summary with each group's KPIs. :func:`add_regions` groups a plan's territories into REGIONS
(one per manager) with the same engine: the territories become the rows of a design run (their
centres, or their polygons with every region in one piece when the plan was made from units),
balanced on the territories' totals.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd

from . import palette
from .errors import InfeasibleError, InvalidInputError
from .kpis import text_key
from .territories import TerritoryPlan, design_territories, keep_input_fields

logger = logging.getLogger(__name__)

__all__ = ["GroupPlans", "RegionResult", "add_regions", "assign_regions", "plan_by_group",
           "split_territories"]  # fmt: skip

_RELAX_STEPS = (1, 2, 4, 10, 20)  # x TOLERANCE tried for the regions, in order
_MAX_REGION_TOL = 99.0
_MIN_TRY_S = 0.5  # the first try gets at least this much, and a looser one is not started below
_ROW_ID = "tp_territory"  # the territories' id while they are the rows of the regions run


@dataclass
class GroupPlans:
    """The merged plan, the moves (rebalance) and each group's own result."""

    plan: TerritoryPlan
    moves: pd.DataFrame | None
    moves_lower_bound: float | None
    groups: dict


def group_values(frame: pd.DataFrame, field: str, *, layer: str, id_field: str | None,
                 key: str = "GROUP_FIELD") -> pd.Series:  # fmt: skip
    """The group of each row as text; a missing field or empty values raise (records named)."""
    if field not in frame.columns:
        msg = f"{key}: '{field}' is not a field of {layer}; choose a field of {layer}."
        raise InvalidInputError(msg)
    vals = frame[field].map(text_key)
    if vals.isna().any():
        ids = frame.loc[vals.isna(), id_field].astype(str).tolist()[:10] if id_field else []
        msg = (f"{key}: '{field}' is empty for {int(vals.isna().sum())} row(s) of {layer} "
               f"{ids}; give every row a group (e.g. its state or segment).")  # fmt: skip
        raise InvalidInputError(msg)
    return vals


def split_territories(n_territories: int, weight: dict[str, float]) -> dict[str, int]:
    """TERRITORIES split over groups by ``weight`` (largest remainder), at least one each."""
    groups = sorted(weight)
    if n_territories < len(groups):
        msg = (f"TERRITORIES: {n_territories} is fewer than the {len(groups)} groups "
               f"({', '.join(groups)}); give at least one territory per group.")  # fmt: skip
        raise InvalidInputError(msg)
    if sum(weight.values()) <= 0:
        weight = dict.fromkeys(groups, 1.0)
    total = sum(weight.values())
    spare = n_territories - len(groups)
    exact = {g: spare * weight[g] / total for g in groups}
    out = {g: 1 + math.floor(exact[g]) for g in groups}
    left = n_territories - sum(out.values())
    for g in sorted(groups, key=lambda g: (-(exact[g] - math.floor(exact[g])), g))[:left]:
        out[g] += 1
    return out


MIN_GROUP_TIME_S = 1.0  # a group's time limit never below this (a plan needs a moment)


def plan_by_group(
    run: Callable,
    accounts: gpd.GeoDataFrame,
    *,
    group_field: str,
    id_field: str,
    reps: gpd.GeoDataFrame | None = None,
    rep_id_field: str | None = None,
    rep_group_field: str | None = None,
    n_territories: int | None = None,
    balance_fields: Sequence[str] = (),
    units: gpd.GeoDataFrame | None = None,
    **options: object,
) -> GroupPlans:
    """Run ``run`` (design_territories or rebalance_territories) per group and merge the plans.

    Groups share ``time_limit_s`` (in ``options``) by their number of rows, each getting its share
    of what the groups before it left. Each group gets the reps whose ``rep_group_field`` (default ``group_field``) is its value, or
    its share of ``n_territories`` by the first balance field. Groups without reps raise
    :class:`InvalidInputError`; reps of a group without accounts are left out (warning). With
    ``units`` the groups are those of the units (``group_field`` is then a field of the units,
    e.g. each county's state); an account is in the group of the unit it lies in (or the nearest
    unit: the group's run applies ``unit_max_distance_m`` to it).
    """
    unit_id = options.get("unit_id_field")
    if units is not None:
        unit_groups = group_values(units, group_field, layer="UNITS", id_field=unit_id,
                                   key="UNIT_GROUP_FIELD")  # fmt: skip
        names = sorted(set(unit_groups))
        acc_groups = (None if accounts is None else
                      _groups_of_accounts(accounts, units, unit_groups, names[0]))  # fmt: skip
    else:
        unit_groups = None
        acc_groups = group_values(accounts, group_field, layer="ACCOUNTS", id_field=id_field)
        names = sorted(set(acc_groups))
    rows_of = unit_groups if units is not None else acc_groups  # what a group's territories take
    noun = "units" if units is not None else "accounts"
    rep_split: dict[str, gpd.GeoDataFrame] = {}
    k_split: dict[str, int] = {}
    if reps is not None:
        rfield = rep_group_field or group_field
        if rfield not in reps.columns:
            msg = (f"REP_GROUP_FIELD: '{rfield}' is not a field of REPS; give the reps a field "
                   "with their group (same values as GROUP_FIELD of the accounts).")  # fmt: skip
            raise InvalidInputError(msg)
        rep_groups = group_values(reps, rfield, layer="REPS", id_field=rep_id_field)
        missing = [g for g in names if g not in set(rep_groups)]
        if missing:
            counts = rows_of.value_counts()
            text = ", ".join(f"'{g}' ({counts[g]} {noun})" for g in missing)
            msg = (f"GROUP_FIELD: group(s) {text} have no rep in REPS ('{rfield}'). Give each a "
                   f"rep with {rfield} = that value, fix the spelling, or remove those "
                   "accounts.")  # fmt: skip
            raise InvalidInputError(msg)
        idle = sorted(set(rep_groups) - set(names))
        if idle:
            ids = reps.loc[rep_groups.isin(idle), rep_id_field].astype(str).tolist()
            logger.warning("REPS: group(s) %s have no accounts; their reps %s get no territory.",
                           ", ".join(idle), ", ".join(ids[:20]))  # fmt: skip
        for g in names:
            rep_split[g] = reps[(rep_groups == g).to_numpy()]
    elif n_territories is not None:
        weight = _group_weights(accounts, acc_groups, units, unit_groups, names,
                                balance_fields=balance_fields)  # fmt: skip
        k_split = split_territories(int(n_territories), weight)
        for g in names:
            if k_split[g] > int((rows_of == g).sum()):
                msg = (f"TERRITORIES: group '{g}' gets {k_split[g]} territories but has only "
                       f"{int((rows_of == g).sum())} {noun}; lower TERRITORIES.")  # fmt: skip
                raise InvalidInputError(msg)
    results = {}
    limit = options.get("time_limit_s")
    began = time.perf_counter()
    rows_left = int(sum(int((rows_of == g).sum()) for g in names))
    for g in names:
        part = None if accounts is None else accounts[(acc_groups == g).to_numpy()]
        kwargs = dict(options, id_field=id_field, balance_fields=balance_fields,
                      rep_id_field=rep_id_field)  # fmt: skip
        size = int((rows_of == g).sum())
        if limit is not None:  # TIME_LIMIT bounds the whole run: the groups share what is left
            left = float(limit) - (time.perf_counter() - began)
            kwargs["time_limit_s"] = max(left * size / max(rows_left, 1), MIN_GROUP_TIME_S)
        rows_left -= size
        if units is not None:
            kwargs["units"] = units[(unit_groups == g).to_numpy()]
            if part is not None and len(part) == 0:
                part = None  # a group of units without accounts plans the units alone
        if reps is not None:
            kwargs["reps"] = rep_split[g]
        if k_split:
            kwargs["n_territories"] = k_split[g]
        logger.info("Group '%s': %s, %s.", g,
                    f"{int((rows_of == g).sum())} {noun}",
                    f"{len(rep_split[g])} reps" if reps is not None
                    else f"{k_split.get(g, '?')} territories")  # fmt: skip
        try:
            results[g] = run(part, **kwargs)
        except InfeasibleError as err:
            raise InfeasibleError(f"Group '{g}' ({group_field}): {err}") from None
        except InvalidInputError as err:
            raise InvalidInputError(f"Group '{g}' ({group_field}): {err}") from None
    return _merge(results, accounts, id_field=id_field, group_field=group_field,
                  prefix=reps is None and bool(k_split),
                  current_field=options.get("current_field"), units=units,
                  unit_id_field=unit_id)  # fmt: skip


def _groups_of_accounts(accounts: gpd.GeoDataFrame, units: gpd.GeoDataFrame,
                        unit_groups: pd.Series, fallback: str) -> pd.Series:  # fmt: skip
    """The group of the unit each account lies in, or of the nearest unit (accounts without a
    location get ``fallback``: that group's run names them)."""
    import shapely

    crs = units.crs
    if crs is not None and not crs.is_projected:
        crs = units.estimate_utm_crs()
    geoms = units.geometry.to_crs(crs) if crs is not None else units.geometry
    pts = (accounts.geometry.to_crs(crs) if crs is not None and accounts.crs is not None
           else accounts.geometry)  # fmt: skip
    out = np.full(len(accounts), fallback, dtype=object)
    have = ~(pts.isna() | pts.is_empty).to_numpy()
    if have.any():
        tree = shapely.STRtree(geoms.to_numpy())
        src, near = tree.query_nearest(pts.to_numpy()[have], all_matches=False)
        out[np.flatnonzero(have)[src]] = unit_groups.to_numpy()[near]
    return pd.Series(out, index=accounts.index)


def _group_weights(accounts, acc_groups, units, unit_groups, names, *,
                   balance_fields) -> dict[str, float]:  # fmt: skip
    """Each group's weight for sharing TERRITORIES: its total of the first balance field (a field
    of the accounts, or of the units without accounts), else its number of accounts or units."""
    frame, groups = (accounts, acc_groups) if accounts is not None else (units, unit_groups)
    first = list(balance_fields)[:1]
    w = (pd.to_numeric(frame[first[0]], errors="coerce").fillna(0.0) if first
         else pd.Series(1.0, index=frame.index))  # fmt: skip
    return {g: float(w[(groups == g).to_numpy()].sum()) for g in names}


def _in_input_order(frames: list, original, id_field: str) -> gpd.GeoDataFrame:
    """The groups' output rows in the order of ``original`` (matched on ``id_field``)."""
    order = original[id_field].astype(str)
    out = pd.concat(frames)
    out = out.set_index(out[id_field].astype(str)).loc[order].reset_index(drop=True)
    return gpd.GeoDataFrame(out, geometry=original.geometry.name, crs=original.crs)


def _merge(results: dict, accounts, *, id_field: str, group_field: str, prefix: bool,
           current_field, units=None, unit_id_field: str | None = None) -> GroupPlans:  # fmt: skip
    """One plan from the groups' plans (input order of the accounts and units, ids unique)."""
    plans = {g: getattr(r, "plan", r) for g, r in results.items()}
    if prefix:  # TERRITORIES split per group: T01 of each group becomes <group>-T01
        for g, p in plans.items():
            _rename_territories(p, {t: f"{g}-{t}" for t in p.summary["territory_id"]})
    owner: dict[str, str] = {}
    for g, p in plans.items():
        for t in p.summary["territory_id"]:
            if t in owner:
                msg = (f"Territory '{t}' is in groups '{owner[t]}' and '{g}': territory ids must "
                       "be unique across groups; give the reps (or current territories) of "
                       "each group their own ids.")  # fmt: skip
                raise InvalidInputError(msg)
            owner[t] = g
    with_acc = [p.accounts for p in plans.values() if p.accounts is not None]
    acc = None if accounts is None else _in_input_order(with_acc, accounts, id_field)
    unit_out = (None if units is None else
                _in_input_order([p.units for p in plans.values()], units, unit_id_field))  # fmt: skip
    first = next(iter(plans.values()))
    territories = gpd.GeoDataFrame(pd.concat([p.territories for p in plans.values()],
                                             ignore_index=True), crs=first.territories.crs)  # fmt: skip
    centres = gpd.GeoDataFrame(pd.concat([p.centres for p in plans.values()], ignore_index=True),
                               crs=first.centres.crs)  # fmt: skip
    summary = pd.concat([p.summary.assign(group=g) for g, p in plans.items()], ignore_index=True)
    cols = list(summary.columns)
    cols.insert(1, cols.pop(cols.index("group")))
    summary = summary[cols]
    territories.insert(1, "group", territories["territory_id"].map(owner))
    objective = sum(p.objective for p in plans.values())
    lower = sum(p.lower_bound for p in plans.values())
    gap = 100 * (objective - lower) / objective if objective > 0 and np.isfinite(lower) else 0.0
    max_dev = max(p.max_deviation_pct for p in plans.values())
    moved = sum(p.moved for p in plans.values())
    scopes = {p.bound_scope for p in plans.values()}
    kpis = dict(first.kpis)
    kpis.update(max_deviation_pct=round(max_dev, 2), moved=moved, gap_pct=round(gap, 4),
                split_territories=sum(p.kpis.get("split_territories", 0) for p in plans.values()),
                groups={g: p.kpis for g, p in plans.items()})  # fmt: skip
    for g, p in plans.items():
        logger.info("Group '%s': %d territories, largest deviation %.2f%%, gap %.2f%%, %d moved.",
                    g, len(p.summary), p.max_deviation_pct, p.gap_pct, p.moved)  # fmt: skip
    rows = acc if acc is not None else unit_out
    palette.colour_plan(rows, territories, centres, current_field=current_field,
                        previous=accounts if acc is not None else units)  # fmt: skip
    if acc is not None and unit_out is not None:
        unit_out[palette.COLOUR_FIELD] = unit_out["territory_id"].map(
            palette.colours_from_table(territories)
        )
    params = dict(first.parameters, group_field=group_field)
    plan = replace(first, accounts=acc, units=unit_out, territories=territories, centres=centres,
                   summary=summary, objective=objective, lower_bound=lower, gap_pct=gap,
                   max_deviation_pct=max_dev, moved=moved, kpis=kpis, parameters=params,
                   bound_scope=scopes.pop() if len(scopes) == 1 else "these centres")  # fmt: skip
    moves = bound = None
    if all(hasattr(r, "moves") for r in results.values()):
        moves = pd.concat([r.moves for r in results.values()], ignore_index=True)
        bound = float(sum(r.moves_lower_bound for r in results.values()))
    return GroupPlans(plan=plan, moves=moves, moves_lower_bound=bound, groups=plans)


def _rename_territories(plan: TerritoryPlan, mapping: dict[str, str]) -> None:
    """Rename territory ids in every output of ``plan`` (in place)."""
    for frame in (plan.accounts, plan.units, plan.territories, plan.centres, plan.summary):
        for col in ("territory_id", "rep_id", "previous_territory_id", "next_best_id"):
            if frame is not None and col in frame.columns:
                frame[col] = frame[col].map(lambda v: mapping.get(v, v))


# ----------------------------------------------------------------------------- regions


@dataclass
class RegionResult:
    """Region of each territory, the region summary and the tolerance the regions reached."""

    region_of: dict[str, str]
    summary: pd.DataFrame
    tolerance_pct: float
    max_deviation_pct: float


def assign_regions(
    territories: gpd.GeoDataFrame,
    *,
    n_regions: int,
    total_fields: Sequence[str],
    tolerance_pct: float = 5.0,
    contiguous: bool = False,
    seed: int = 0,
    time_limit_s: float = 30.0,
    solver: str = "CBC",
) -> RegionResult:
    """Group territories (polygons with ``territory_id`` and totals) into ``n_regions`` regions.

    Balanced on ``total_fields`` within ``tolerance_pct`` where possible (else the tightest of
    2, 4, 10, 20 x it that works, logged), compact (centre distance); ``contiguous`` keeps each
    region in one piece (territories sharing an edge are neighbours). The tries share
    ``time_limit_s``: each gets what the ones before it left (a looser one is not tried once it
    is spent).
    """
    k = int(n_regions)
    n = len(territories)
    if k < 1 or k > n:
        msg = f"REGIONS: {n_regions} must be from 1 to the number of territories ({n}); lower it."
        raise InvalidInputError(msg)
    ids = territories["territory_id"].astype(str).to_numpy()
    frame = territories[["territory_id", *total_fields]].copy()
    frame["territory_id"] = ids
    geom = territories.geometry
    if k == 1:
        region = np.zeros(n, int)
        tol_used = tolerance_pct
    else:
        region, tol_used, last, out_of_time = None, None, None, False
        deadline = time.perf_counter() + time_limit_s
        for step in _RELAX_STEPS:
            tol = min(tolerance_pct * step if tolerance_pct > 0 else step, _MAX_REGION_TOL)
            left = deadline - time.perf_counter()
            if last is not None and left < _MIN_TRY_S:
                out_of_time = True
                break
            try:
                region = _regions_at(frame, geom, k, list(total_fields), tol, contiguous, seed,
                                     max(left, _MIN_TRY_S), solver)  # fmt: skip
            except InfeasibleError as err:
                last = err
                continue
            tol_used = tol
            break
        if region is None:
            spent = (" within TIME_LIMIT (raise it for the looser tries)" if out_of_time
                     else f" even within ±{tol:g}%")  # fmt: skip
            msg = (f"REGIONS: no grouping of the {n} territories into {k} regions was "
                   f"found{spent}; fewer regions, or more territories of more even size, help "
                   f"({last}).")  # fmt: skip
            raise InfeasibleError(msg)
        if tol_used > tolerance_pct:
            logger.warning("REGIONS: no %d regions within ±%g%%; balanced within ±%g%% instead "
                           "(fewer or more even territories help).", k, tolerance_pct,
                           tol_used)  # fmt: skip
    labels = np.array([f"R{j + 1}" for j in range(k)])[region]
    summary = _region_summary(frame, labels, total_fields)
    devs = [c for c in summary.columns if c.endswith("_dev_pct")]
    max_dev = float(summary[devs].abs().max().max()) if devs else 0.0
    logger.info("Regions: %d regions, largest deviation %.2f%%.", k, max_dev)
    return RegionResult(region_of=dict(zip(ids, labels)), summary=summary,
                        tolerance_pct=float(tol_used), max_deviation_pct=max_dev)  # fmt: skip


def _regions_at(frame, geom, k, fields, tol, contiguous, seed, time_limit_s, solver) -> np.ndarray:
    """Region index of each territory from one design run over the territories."""
    rows = frame.rename(columns={"territory_id": _ROW_ID})
    if contiguous:
        units = gpd.GeoDataFrame(rows, geometry=geom.values, crs=geom.crs)
        plan = design_territories(None, units=units, unit_id_field=_ROW_ID, n_territories=k,
                                  balance_fields=fields, tolerance_pct=tol, contiguous=True,
                                  seed=seed, time_limit_s=time_limit_s, solver=solver,
                                  explain=False)  # fmt: skip
        out = plan.units
    else:
        pts = geom.representative_point() if (geom.geom_type != "Point").any() else geom
        points = gpd.GeoDataFrame(rows, geometry=pts.values, crs=geom.crs)
        plan = design_territories(points, id_field=_ROW_ID, n_territories=k,
                                  balance_fields=fields, tolerance_pct=tol, contiguous=False,
                                  seed=seed, time_limit_s=time_limit_s, solver=solver,
                                  explain=False)  # fmt: skip
        out = plan.accounts
    index = {t: j for j, t in enumerate(plan.summary["territory_id"])}
    by_id = dict(zip(out[_ROW_ID].astype(str), out["territory_id"].map(index)))
    return np.array([by_id[t] for t in frame["territory_id"]], int)


def _region_summary(frame: pd.DataFrame, labels: np.ndarray, fields: Sequence[str]) -> pd.DataFrame:
    """One row per region: territories, totals and deviation from the even share."""
    out = []
    k = len(set(labels))
    for r in sorted(set(labels), key=lambda s: int(s[1:])):
        members = labels == r
        row = {"region_id": r, "territories": int(members.sum())}
        for f in fields:
            total = float(frame.loc[members, f].sum())
            target = float(frame[f].sum()) / k
            row[f] = round(total, 2)
            row[f"{f}_dev_pct"] = round(100 * (total / target - 1), 2) if target else 0.0
        out.append(row)
    return pd.DataFrame(out)


def add_regions(
    plan: TerritoryPlan,
    *,
    n_regions: int,
    tolerance_pct: float,
    contiguous: bool,
    seed: int = 0,
    time_limit_s: float = 30.0,
    solver: str = "CBC",
) -> RegionResult:
    """Group ``plan``'s territories into regions and write ``region_id`` into its outputs."""
    fields = [c for c in plan.summary.columns if c.endswith("_total") and c != "travel_total"]
    terr = plan.territories.copy()
    for f in fields:
        if f not in terr.columns:
            terr[f] = terr["territory_id"].map(dict(zip(plan.summary["territory_id"],
                                                        plan.summary[f])))  # fmt: skip
    if terr.crs is None or not terr.crs.is_projected:
        utm = terr.estimate_utm_crs() if terr.crs is not None else None
        terr = terr.to_crs(utm) if utm is not None else terr
    result = assign_regions(terr, n_regions=n_regions, total_fields=fields,
                            tolerance_pct=tolerance_pct, contiguous=contiguous, seed=seed,
                            time_limit_s=time_limit_s, solver=solver)  # fmt: skip
    for name in ("accounts", "units"):  # an input's own region_id is kept as input_region_id
        frame = getattr(plan, name)
        if frame is not None and "region_id" in frame.columns:
            setattr(plan, name, keep_input_fields(frame, ["region_id"]))
    for frame in (plan.accounts, plan.units, plan.territories, plan.centres, plan.summary):
        if frame is not None and "territory_id" in frame.columns:
            frame["region_id"] = frame["territory_id"].astype(str).map(result.region_of)
    plan.kpis["regions"] = int(n_regions)
    plan.kpis["region_max_deviation_pct"] = round(result.max_deviation_pct, 2)
    return result
