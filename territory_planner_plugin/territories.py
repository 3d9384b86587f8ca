"""Balanced, compact territories: assign accounts or units (base areas) to K centres or rep homes.

The model (:class:`model.TerritoryModel`): minimise the total distance (km, or drive minutes with
a network) from each account to its territory's centre, subject to hard constraints: each account
(or unit, with all its accounts) in exactly one territory, every balanced measure of every
territory within TOLERANCE of its capacity-weighted target, locks, a disruption budget
(MAX_MOVES), a maximum drive time to the rep's home and, with CONTIGUOUS, every territory in one
piece. The LP relaxation of the same model gives the lower bound reported with every plan. Without
reps, centres move to the medoid of their territory, alternating with the balanced assignment
until stable (k-median style); the bound then holds for the centres found (``bound_scope``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely

from . import centres, palette
from . import kpis as plan_kpis
from .assignment import NoPlanFoundError, price_scale, solve_balanced
from .errors import InfeasibleError, InvalidInputError, SolverError
from .explain import COLUMNS as EXPLAIN_COLUMNS
from .explain import explain_accounts
from .model import (
    EXACT_PAIRS,
    PAIR_ALLOWED,
    STRAIGHT_LINE_KMH,
    PairRule,
    Solution,
    TerritoryModel,
    balance_values,
    point_costs,
    prepare_accounts,
    prepare_reps,
    reach_minutes,
    run_parameters,
    snap_points_once,
    territory_codes,
    tolerances,
    travel_mu,
)
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

__all__ = ["EXACT_PAIRS", "OUTPUT_COLUMNS", "STRAIGHT_LINE_KMH", "PlanRows", "TerritoryPlan",
           "build_plan", "design_territories", "prepare_rows"]  # fmt: skip

OUTPUT_COLUMNS = ("territory_id", "rep_id", "centre_km", "centre_min", "locked", "moved",
                  *EXPLAIN_COLUMNS)  # fmt: skip
_MAX_CENTRE_ROUNDS = 8  # balanced centre updates after the k-median start
_CENTRE_SEARCH_SHARE = 0.25  # of TIME_LIMIT for the centre moves
_FINAL_SOLVE_SHARE = 0.4  # of the search time the full solves of the chosen centres keep
_NESTED_PAIRS = 20_000  # rows x territories up to which the centres of half the band compete
_CENTRE_STARTS = 3  # k-means++ seeds (from SEED) whose k-median centres compete
MIN_SOLVE_S = 1.0  # a solve started when TIME_LIMIT is (nearly) spent still gets this long
_BOUND_MAX_S = 10.0  # the free-centre bound's ascent stops here (any step is a valid bound)
_BOUND_NETWORK_SITES = 400  # with a network: candidate centres up to which the bound is computed
EMPTY_UNIT_WEIGHT = 1e-3  # units without accounts: this x their own distance (nearest centre)
BOUND_PROBLEM = "problem"  # LOWER_BOUND holds for the problem as posed (reps given)
BOUND_THESE_CENTRES = "these centres"  # ... only for the centres the algorithm chose
_MIN_CANDIDATE_S = 5.0  # a centre candidate is not started with less left than this
#                         (or than the quickest candidate so far took)


@dataclass
class TerritoryPlan:
    """A territory plan: assignment (accounts and/or units), polygons, centres, summary, figures.

    ``accounts`` is None for units without accounts, ``units`` None without units.
    ``bound_scope`` names what ``lower_bound`` bounds: "problem" or "these centres".
    """

    accounts: gpd.GeoDataFrame | None
    territories: gpd.GeoDataFrame
    centres: gpd.GeoDataFrame
    summary: pd.DataFrame
    objective: float
    lower_bound: float
    gap_pct: float
    max_deviation_pct: float
    moved: int
    kpis: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    units: gpd.GeoDataFrame | None = None
    bound_scope: str = BOUND_PROBLEM


@dataclass
class PlanRows:
    """What a plan assigns: point accounts, or units (base areas) with the accounts in them.

    ``layer`` is the prepared (projected) copy of the rows, ``original`` the input rows whose
    columns and CRS the outputs keep. Costs start from ``src_xy`` (the accounts, or the units'
    representative points); ``src_row`` is the row of each (None: the rows themselves).
    """

    layer: gpd.GeoDataFrame
    original: gpd.GeoDataFrame
    ids: np.ndarray
    xy: np.ndarray
    values: np.ndarray
    names: list[str]
    noun: str
    src_xy: np.ndarray
    src_row: np.ndarray | None = None
    accounts: gpd.GeoDataFrame | None = None  # prepared accounts with units
    accounts_original: gpd.GeoDataFrame | None = None
    account_ids: np.ndarray | None = None
    adjacency: object | None = None  # adjacency.Adjacency
    area: object | None = None  # clip area of account cells: STUDY_AREA or the tight outline
    contiguous: bool = False
    outside: int = 0
    cells: dict = field(default_factory=dict)  # the outline's triangulation, for the polygons
    outline_s: float = 0.0  # seconds the tight outline took (how busy the machine is)

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.ids)

    @property
    def crs(self):
        """The projected CRS the rows are planned in."""
        return self.layer.crs

    @property
    def has_units(self) -> bool:
        """True when the rows are units."""
        return self.noun == "units"

    def aggregate(self, src: np.ndarray) -> np.ndarray:
        """Sum an (n_src, k) array of the cost points over their rows ((n, k))."""
        if self.src_row is None:
            return src
        agg = sp.csr_matrix((np.ones(len(self.src_row)), (self.src_row,
                            np.arange(len(self.src_row)))), shape=(self.n, len(self.src_row)))  # fmt: skip
        return np.asarray(agg @ src)


def prepare_rows(
    accounts: gpd.GeoDataFrame | None,
    *,
    id_field: str | None,
    balance_fields: Sequence[str] = (),
    units: gpd.GeoDataFrame | None = None,
    unit_id_field: str | None = None,
    contiguous: bool | None = None,
    adjacency: str = "rook",
    snap_m: float = 1.0,
    study_area: gpd.GeoDataFrame | None = None,
    unit_max_distance_m: float = 0.0,
) -> PlanRows:
    """Check and prepare the rows of a plan: accounts, units, or units with their accounts.

    Parameters
    ----------
    accounts, id_field : point accounts and their id field (None with units alone).
    balance_fields : measures (account fields, or unit fields for units alone).
    units, unit_id_field : polygons of base areas and their id field.
    contiguous : every territory one piece (None: on with units, off without).
    adjacency, snap_m : "rook" or "queen" and the digitising-gap tolerance of unit adjacency.
    study_area : polygons clipping the territory polygons of accounts without units.
    unit_max_distance_m : accounts outside every unit join the nearest one within this distance.

    Returns
    -------
    PlanRows
    """
    from . import adjacency as graph

    fields = list(balance_fields)
    if units is None:
        if accounts is None:
            msg = "ACCOUNTS: give the accounts (points) or UNITS (polygons of base areas)."
            raise InvalidInputError(msg)
        acc = prepare_accounts(accounts, id_field)
        ids = acc[id_field].astype(str).to_numpy()
        xy = shapely.get_coordinates(acc.geometry.values)
        area = None
        if study_area is not None and len(study_area):
            area = shapely.union_all(study_area.to_crs(acc.crs).geometry.values)
            inside = shapely.covers(area, shapely.points(xy))
            if not inside.any():
                msg = "STUDY_AREA: no account lies inside it; choose the area of the accounts."
                raise InvalidInputError(msg)
            if not inside.all():
                logger.warning("STUDY_AREA: %d account(s) lie outside it: %s; their cells are "
                               "empty.", int((~inside).sum()), list(ids[~inside][:10]))  # fmt: skip
        rows = PlanRows(layer=acc, original=accounts, ids=ids, xy=xy,
                        values=balance_values(acc, ids, fields), names=fields, noun="accounts",
                        src_xy=xy, area=area, contiguous=bool(contiguous))  # fmt: skip
        if area is None:  # before the search: it depends on the accounts alone, and the
            # adjacency and the territory polygons share it and its triangulation
            began = time.perf_counter()
            area = rows.area = graph.tight_outline(xy, rows.cells)
            rows.outline_s = time.perf_counter() - began
        if rows.contiguous:
            rows.adjacency, _ = graph.point_adjacency(xy, study_area=area, with_cells=False)
            adj = rows.adjacency
            _log_links(adj, ids, "accounts")
        return rows
    from .units import prepare_units

    if not unit_id_field:
        msg = "UNIT_ID_FIELD: choose the field with a unique id per unit (e.g. the postal code)."
        raise InvalidInputError(msg)
    us = prepare_units(units, id_field=unit_id_field, balance_fields=fields, accounts=accounts,
                       account_id_field=id_field, max_distance_m=unit_max_distance_m)  # fmt: skip
    # (prepare_units has logged repaired polygons and overlapping units, with examples)
    original = us.units.to_crs(units.crs) if units.crs is not None else us.units
    rows = PlanRows(layer=us.units, original=original, ids=np.asarray(us.ids, str),
                    xy=np.asarray(us.points, float), values=np.asarray(us.values, float),
                    names=fields, noun="units", src_xy=np.asarray(us.points, float),
                    contiguous=True if contiguous is None else bool(contiguous),
                    outside=len(us.outside))  # fmt: skip
    if accounts is not None:
        acc = accounts if accounts.crs == us.units.crs else accounts.to_crs(us.units.crs)
        rows.accounts, rows.accounts_original = acc, accounts
        rows.account_ids = acc[id_field].astype(str).to_numpy()
        rows.src_xy = shapely.get_coordinates(acc.geometry.values)
        rows.src_row = np.asarray(us.account_unit, int)
        empty = np.bincount(rows.src_row, minlength=rows.n) == 0
        if empty.any():
            logger.info("UNITS: %d unit(s) hold no account; each joins a territory next to it "
                        "(the plan covers the whole map).", int(empty.sum()))  # fmt: skip
    adj = graph.polygon_adjacency(us.units.geometry, rule=adjacency, snap_m=snap_m)
    rows.adjacency = adj
    _log_links(adj, rows.ids, "units")
    return rows


def _log_links(adj, ids: np.ndarray, noun: str) -> None:
    if adj.linked:
        logger.info("%s with no neighbour (islands, exclaves) linked to their nearest: %s.",
                    noun.capitalize(), ", ".join(f"{ids[i]} -> {ids[j]}"
                                                 for i, j in adj.linked[:10]))  # fmt: skip


def warn_far_from_roads(rows: PlanRows, snapped, network, rep_ids=None, rep_xy=None) -> None:
    """Warn about accounts (and rep homes) farther than ``FAR_FROM_ROADS_M`` from every road of
    the network, with their ids and distances: their drive times start at that road."""
    if network is None or snapped is None:
        return
    from .network import FAR_FROM_ROADS_M, snap_points, warn_placement

    why = "Their drive times are measured from that road, not from where they are."
    src_ids = (
        rows.account_ids if rows.src_row is not None and rows.account_ids is not None else None
    )
    if src_ids is None or len(src_ids) != len(rows.src_xy):
        src_ids = rows.ids if len(rows.ids) == len(rows.src_xy) else np.arange(len(rows.src_xy))
    warn_placement(snapped, src_ids, layer="ACCOUNTS" if rows.noun == "accounts" else "UNITS",
                   noun=rows.noun, limit_m=FAR_FROM_ROADS_M, consequence=why)  # fmt: skip
    if rep_ids is not None:
        homes = snap_points(network, gpd.GeoSeries(shapely.points(rep_xy)), max_snap_m=np.inf)
        warn_placement(homes, rep_ids, layer="REPS", noun="rep homes",
                       limit_m=FAR_FROM_ROADS_M, consequence=why)  # fmt: skip


def row_costs(rows: PlanRows, cen_xy: np.ndarray, network, snapped):
    """(km, minutes) of the rows and (km, minutes) of the cost points to each centre.

    Units with accounts cost the sum over their accounts; units without any cost
    ``EMPTY_UNIT_WEIGHT`` x their own straight-line distance (they join a near territory).
    """
    km_s, min_s = point_costs(rows.src_xy, cen_xy, network, snapped)
    if rows.src_row is None:
        return km_s, min_s, km_s, min_s
    km, mins = rows.aggregate(km_s), None if min_s is None else rows.aggregate(min_s)
    empty = np.bincount(rows.src_row, minlength=rows.n) == 0
    if empty.any():
        own = np.sqrt(((rows.xy[empty, None, :] - cen_xy[None]) ** 2).sum(-1)) / 1000.0
        km[empty] = EMPTY_UNIT_WEIGHT * own
        if mins is not None:
            mins[empty] = EMPTY_UNIT_WEIGHT * own * 60.0 / STRAIGHT_LINE_KMH
    return km, mins, km_s, min_s


def row_codes(rows: PlanRows, fld: str | None, cen_ids, key: str, *, strict: bool = True):
    """Territory index per row and per cost point from a field (locks or current territories).

    With units and accounts the field is the accounts'; a unit takes its accounts' lock (they
    must agree) or the territory most of them are in today.
    """
    if rows.accounts is None:
        layer = "UNITS" if rows.has_units else "ACCOUNTS"
        codes = territory_codes(rows.layer, fld, cen_ids, key, rows.ids, strict=strict,
                                layer=layer, noun=rows.noun)  # fmt: skip
        return codes, codes
    from .units import unit_codes

    acc_codes = territory_codes(rows.accounts, fld, cen_ids, key, rows.account_ids, strict=strict)
    codes = unit_codes(acc_codes, rows.src_row, rows.n, key=key, account_ids=rows.account_ids,
                       unit_ids=rows.ids)  # fmt: skip
    return codes, acc_codes


def src_of(rows: PlanRows, per_row: np.ndarray) -> np.ndarray:
    """A per-row array at the cost points (accounts of units, or the rows themselves)."""
    return per_row if rows.src_row is None else per_row[rows.src_row]


def design_territories(
    accounts: gpd.GeoDataFrame | None = None,
    *,
    id_field: str | None = None,
    n_territories: int | None = None,
    reps: gpd.GeoDataFrame | None = None,
    rep_id_field: str | None = None,
    rep_capacity_field: str | None = None,
    rep_max_minutes: float | None = None,
    balance_fields: Sequence[str] = (),
    balance_weights: Sequence[float] | None = None,
    travel_weight: float = 0.0,
    tolerance_pct: float = 5.0,
    lock_field: str | None = None,
    current_field: str | None = None,
    max_moves_pct: float | None = None,
    network: object | None = None,
    quota_total: float | None = None,
    units: gpd.GeoDataFrame | None = None,
    unit_id_field: str | None = None,
    contiguous: bool | None = None,
    adjacency: str = "rook",
    snap_m: float = 1.0,
    study_area: gpd.GeoDataFrame | None = None,
    unit_max_distance_m: float = 0.0,
    seed: int = 0,
    time_limit_s: float = 60.0,
    solver: str = "CBC",
    pair_allowed: np.ndarray | None = None,
    pair_rule: PairRule = PAIR_ALLOWED,
    pair_cost: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    explain: bool = True,
) -> TerritoryPlan:
    """Assign every account (or unit) to a territory, balanced within ``tolerance_pct``, compact.

    Accounts (points) or units (polygons) must be in a projected CRS in metres, or geographic
    (then reprojected to a local UTM zone, logged). With ``units`` every unit goes whole to one
    territory (with all its accounts) and, with ``contiguous`` (default with units), every
    territory is one piece. Pairs the network cannot connect are costed by straight line at
    ``STRAIGHT_LINE_KMH`` and counted in the log. Raises :class:`InfeasibleError` naming the
    smallest relaxation. ``pair_allowed``/``pair_cost`` ((n, k), rows x reps; :mod:`coverage`)
    restrict the pairs and add a cost to them (the outputs report the distances alone);
    ``pair_rule`` words the rule behind ``pair_allowed`` for messages and explanations. With
    ``explain`` false an infeasible model raises at once, without solving relaxations to name
    (for a caller that tries looser settings itself, as REGIONS does).
    """
    params = run_parameters(locals())
    params.pop("explain", None)
    params.pop("pair_allowed", None)
    params.pop("pair_rule", None)
    params.pop("pair_cost", None)
    began = time.perf_counter()  # TIME_LIMIT bounds the whole run, outputs included
    rows = prepare_rows(accounts, id_field=id_field, balance_fields=balance_fields, units=units,
                        unit_id_field=unit_id_field, contiguous=contiguous, adjacency=adjacency,
                        snap_m=snap_m, study_area=study_area,
                        unit_max_distance_m=unit_max_distance_m)  # fmt: skip
    deadline, search_s, reserve = search_deadline(rows, time_limit_s, began)
    fields = rows.names
    tol = tolerances(tolerance_pct, balance_weights, fields)
    mu = travel_mu(travel_weight, balance_weights, fields)
    rng = np.random.default_rng(seed)
    if reps is not None:
        cen_ids, cen_xy, capacity = prepare_reps(reps, rep_id_field, rep_capacity_field, rows.crs)
        fixed_centres = True
    else:
        if n_territories is None or n_territories < 1:
            msg = f"TERRITORIES: {n_territories} must be at least 1."
            raise InvalidInputError(msg)
        if n_territories > rows.n:
            msg = f"TERRITORIES: {n_territories} is more than the {rows.n} {rows.noun}; lower it."
            raise InvalidInputError(msg)
        k = int(n_territories)
        cen_ids = np.array([f"T{j + 1:02d}" for j in range(k)])
        cen_xy = centres.kmeanspp(rows.src_xy, k, rng)
        capacity = np.ones(k)
        fixed_centres = False
    k = len(cen_ids)
    locks, src_locks = row_codes(rows, lock_field, cen_ids, "LOCK_FIELD")
    current, src_current = row_codes(rows, current_field, cen_ids, "CURRENT_FIELD", strict=False)
    budget = None
    if max_moves_pct is not None and current_field:
        budget = math.floor(max_moves_pct / 100.0 * rows.n + 1e-9)
    report(progress, 0.1, "Costs")
    snapped = snap_points_once(rows.src_xy, network, rows.crs)  # once: only the centres move
    warn_far_from_roads(rows, snapped, network, *((cen_ids, cen_xy) if fixed_centres else ()))
    logged = []

    def build(centres_xy: np.ndarray, band=tol) -> tuple[TerritoryModel, tuple]:
        costs = row_costs(rows, centres_xy, network, snapped)
        reach = row_reach(rows, costs, rep_max_minutes, log=not logged)
        dist = costs[1] if costs[1] is not None else costs[0]
        model = TerritoryModel.from_cost_matrix(
            dist if pair_cost is None else dist + pair_cost, values=rows.values,
            capacity=capacity, tolerance_pct=band, locks=locks, current=current, budget=budget,
            reach=reach, max_minutes=rep_max_minutes, rule_allowed=pair_allowed, pair_rule=pair_rule,
            adjacency=None if rows.adjacency is None else rows.adjacency.matrix,
            contiguous=rows.contiguous, travel=(capacity / capacity.sum(), mu), names=fields,
            row_ids=rows.ids, territory_ids=cen_ids, noun=rows.noun, ends_by=began + time_limit_s,
        )  # fmt: skip
        logged.append(True)
        # a model at another band (the half band the centres also try) only needs a verdict
        model._probe = not explain or not np.array_equal(band, tol)
        model.precheck()
        return model, costs

    if fixed_centres:
        model, costs = build(cen_xy)
        sol = model.solve(solver, time_limit_s=time_left(deadline, search_s), final=True,
                          is_cancelled=is_cancelled, grace_s=reserve)  # fmt: skip
        scope = BOUND_PROBLEM
    else:
        search = {"locks": locks, "network": network, "snapped": snapped, "seed": seed,
                  "solver": solver, "time_limit_s": search_s, "is_cancelled": is_cancelled,
                  "deadline": deadline, "grace_s": reserve}  # fmt: skip
        tighter = None
        if rows.n * k <= _NESTED_PAIRS and tol.max() > 0:  # a looser band never does worse
            search["time_limit_s"] = search_s / 2  # the two searches share TIME_LIMIT
            half = min(deadline, time.perf_counter() + search_s / 2)  # its own end, not the run's
            try:
                tighter = _choose_centres(rows, build, cen_xy, tol=tol / 2, progress=None,
                                          bound=False, **{**search, "grace_s": 0.0,
                                                          "deadline": half})[0]  # fmt: skip
            except (InfeasibleError, SolverError):  # optional: no plan at half the band in time
                tighter = None
        cen_xy, model, costs, sol, scope = _choose_centres(
            rows, build, cen_xy, tol=tol, progress=progress, tighter=tighter, **search
        )  # fmt: skip
    model.verify(sol.assign)
    cut = limit_reached(deadline)
    built = time.perf_counter()
    report(progress, 0.95, "Outputs")
    if pair_cost is not None:  # the outputs report distances; objective and bound stay the model's
        model = replace(model, cost=costs[1] if costs[1] is not None else costs[0])
    plan = build_plan(
        model, sol, rows=rows, costs=costs, src_locks=src_locks, src_current=src_current,
        cen_xy=cen_xy, quota_total=quota_total, params=params, weights=balance_weights,
        travel_weight=travel_weight, bound_scope=scope,
    )  # fmt: skip
    if cut:
        logger.warning("TIME_LIMIT (%.0f s) cut the search: the plan is the best found by then, "
                       "%.2f%% above LOWER_BOUND %.3f; a longer TIME_LIMIT may find a better one.",
                       time_limit_s, plan.gap_pct, plan.lower_bound)  # fmt: skip
    logger.info("Run: %.1f s for TIME_LIMIT %.0f s, of which %.1f s building the outputs.",
                time.perf_counter() - began, time_limit_s, time.perf_counter() - built)  # fmt: skip
    return plan


_OUTPUT_S_PER_ROW = 7e-5  # building the outputs, seconds per cost point (2 idle cores)
_AFTER_OUTLINE_S_PER_ROW = 3e-5  # the same when the accounts' outline was built before the search
_OUTLINE_S_PER_ROW = 1.4e-5  # the tight outline of the accounts (2 idle cores)
_PIECES_S_PER_ROW = 2.5e-5  # the accounts' adjacency that counts pieces without CONTIGUOUS
_SLOWER_AT_MOST = 4.0  # a busy machine's slowdown taken into the reserve at most
_OUTPUT_MAX_SHARE = 0.3  # of TIME_LIMIT kept for the outputs at most


def output_reserve_s(n_rows: int, time_limit_s: float, *, outline_s: float = 0.0,
                     pieces_after: bool = False) -> float:  # fmt: skip
    """Seconds of TIME_LIMIT kept for building the outputs after the search, at most a share of
    TIME_LIMIT: an estimate from the number of cost points (benchmarks/README.md) and, when the
    accounts' outline was built before the search (``outline_s`` seconds), scaled by how much
    slower than an idle machine it was (a busy machine builds the outputs slower too);
    ``pieces_after``: the accounts' adjacency that counts pieces is built with the outputs (no
    CONTIGUOUS: none was built before the search)."""
    rate, slower = _OUTPUT_S_PER_ROW, 1.0
    if outline_s > 0:
        rate = _AFTER_OUTLINE_S_PER_ROW
        if outline_s >= 0.5:  # long enough to time the machine by
            slower = min(max(outline_s / (_OUTLINE_S_PER_ROW * n_rows), 1.0), _SLOWER_AT_MOST)
    if pieces_after:
        rate += _PIECES_S_PER_ROW
    return float(min(rate * slower * n_rows, _OUTPUT_MAX_SHARE * time_limit_s))


def search_deadline(rows: PlanRows, time_limit_s: float, began: float) -> tuple[float, ...]:
    """When the search of a run that began at ``began`` must stop so that the outputs are built
    within TIME_LIMIT: (deadline, seconds of search, seconds kept for the outputs), logged."""
    reserve = output_reserve_s(len(rows.src_xy), time_limit_s, outline_s=rows.outline_s,
                               pieces_after=rows.adjacency is None and not rows.has_units)  # fmt: skip
    search_s = max(time_limit_s - reserve - (time.perf_counter() - began),
                   min(MIN_SOLVE_S, time_limit_s))  # fmt: skip
    if reserve >= 1.0:
        logger.info("TIME_LIMIT %.0f s: the search stops %.0f s before it, kept for building the "
                    "outputs (estimated).", time_limit_s, reserve)  # fmt: skip
    return time.perf_counter() + search_s, search_s, reserve


def limit_reached(deadline: float) -> bool:
    """Whether the search deadline has passed (the search was cut rather than finished)."""
    return time.perf_counter() >= deadline


def time_left(deadline: float, time_limit_s: float) -> float:
    """Seconds left before ``deadline`` for the next solve (at least ``MIN_SOLVE_S``, or all of
    a smaller ``time_limit_s``)."""
    return max(deadline - time.perf_counter(), min(MIN_SOLVE_S, time_limit_s))


def row_reach(rows: PlanRows, costs, max_minutes: float | None, *, log: bool) -> np.ndarray | None:
    """(n, k) minutes each pair needs under REP_MAX_MINUTES (None when it is unset); a unit with
    accounts needs every account in reach, so its farthest account's (a unit without accounts
    may go anywhere: 0)."""
    km, mins, km_s, min_s = costs
    if rows.src_row is None:
        return reach_minutes(km, mins, max_minutes, log=log)
    src = reach_minutes(km_s, min_s, max_minutes, log=log)
    if src is None:
        return None
    out = np.zeros((rows.n, src.shape[1]))
    if not len(src):
        return out
    order = np.argsort(rows.src_row, kind="stable")
    first = np.flatnonzero(np.r_[True, np.diff(rows.src_row[order]) != 0])
    out[rows.src_row[order][first]] = np.maximum.reduceat(src[order], first, axis=0)
    return out


# ----------------------------------------------------------------------------- centres


def _choose_centres(rows: PlanRows, build, start_xy: np.ndarray, *, tol: np.ndarray,
                    locks: np.ndarray, network, snapped, seed: int, solver: str,
                    time_limit_s: float, deadline: float, progress, is_cancelled,
                    tighter: np.ndarray | None = None, bound: bool = True,
                    grace_s: float = 0.0):  # fmt: skip
    """Centres chosen by the algorithm (:mod:`centres`), the plan on them and its bound's scope.

    k-median start, balanced medoid rounds, then relocate/swap moves scored with the balanced
    assignment; the centre sets of the rounds and of the moves compete in full solves (the best
    plan wins), with ``tighter`` (the centres this search chose at half the band: their plan is
    feasible here, so a looser TOLERANCE does not give a worse plan). LOWER_BOUND is the free-centre bound (any K cost points as centres) when the
    model is small enough for it, otherwise the bound for the centres chosen (logged).
    """
    t0 = time.perf_counter()
    k = len(start_xy)
    # the centres' search leaves the last part of the time to the full solves of the plan
    search_end = t0 + (1.0 - _FINAL_SOLVE_SHARE) * max(deadline - t0, 0.0)

    def spent() -> bool:
        """The search's share of TIME_LIMIT is used up: skip what is optional (more rounds,
        starts, scores)."""
        return time.perf_counter() >= search_end

    def columns(sites: np.ndarray) -> np.ndarray:
        km, mins, _, _ = row_costs(rows, sites, network, snapped)
        return mins if mins is not None else km

    def point_cost(sites: np.ndarray) -> np.ndarray:
        km, mins = point_costs(rows.src_xy, sites, network, snapped)
        return mins if mins is not None else km

    def rounds(cen_xy: np.ndarray, band: np.ndarray) -> np.ndarray:
        """Balanced rounds: each centre to the medoid of its balanced territory, until stable."""
        for _ in range(_MAX_CENTRE_ROUNDS):
            check_cancel(is_cancelled)
            if spent():
                break
            model, _ = build(cen_xy, band)
            sol = model.solve(solver, time_limit_s=time_left(search_end, time_limit_s),
                              final=False, is_cancelled=is_cancelled)  # fmt: skip
            new_xy = centres.medoids(rows.src_xy, src_of(rows, sol.assign), k, cen_xy)
            if np.allclose(new_xy, cen_xy):
                break
            cen_xy = new_xy
        return cen_xy

    model, _ = build(start_xy, tol)
    _, lo, hi = model.bounds()
    scale = price_scale(hi)  # as solve_balanced prices them

    def quick(sites: np.ndarray, prices=None):
        """Score of centres: the Lagrangian bound of their balanced assignment (the same ascent
        from zero prices for every set), its priced assignment and prices."""
        if spent():  # no time left to score: every set ties (the first one is kept)
            return np.inf, None, None
        m, _ = build(sites, tol)
        try:
            res = solve_balanced(m.cost, m.values, lo, hi, locks=m.locks, current=m.current,
                                 budget=m.budget, allowed=m.allowed,
                                 time_limit_s=time_left(search_end, time_limit_s),
                                 final=False, iterations=300, is_cancelled=is_cancelled)  # fmt: skip
        except NoPlanFoundError:
            return np.inf, None, None
        return res.lower_bound, res.assign, res.prices

    # competing starts (deterministic with SEED): k-median centres from k-means++ seeds, each
    # balanced at TOLERANCE; the first also at half of it, so that a looser band can keep the
    # centres a tighter one would find
    found = []
    src_locks = src_of(rows, locks)
    for r in range(_CENTRE_STARTS):
        if r and spent():
            break
        start = start_xy if r == 0 else centres.kmeanspp(
            rows.src_xy, k, np.random.default_rng([seed, r]))  # fmt: skip
        med = centres.kmedian(rows.src_xy, start, src_locks, point_cost, is_cancelled,
                              deadline=min(t0 + _CENTRE_SEARCH_SHARE * time_limit_s,
                                           search_end))  # fmt: skip
        bands = [tol] + ([tol / 2] if r == 0 and tol.max() > 0 else [])
        for band in bands:
            try:
                found.append(rounds(med, band))
            except InfeasibleError:  # the half band can be infeasible where TOLERANCE is not
                if band is tol:
                    raise
        found.append(med)
        report(progress, 0.1 + 0.3 * (r + 1) / _CENTRE_STARTS, "Centres")
    uniq = []
    for c in found:
        if not any(np.allclose(c, u) for u in uniq):
            uniq.append(c)
    scores = [quick(c)[0] for c in uniq]
    order = np.argsort(scores, kind="stable")
    rounds_xy = uniq[order[0]]
    searched, _, kept = centres.improve_centres(
        src_xy=rows.src_xy, cen_xy=rounds_xy, quick=quick, columns=columns, values=model.values,
        scale=scale, locks=locks, src_row=rows.src_row,
        deadline=min(t0 + _CENTRE_SEARCH_SHARE * time_limit_s, search_end),
        is_cancelled=is_cancelled,
    )  # fmt: skip
    report(progress, 0.6, "Centres")
    candidates = [searched] + [uniq[i] for i in order[:2] if not np.allclose(uniq[i], searched)]
    if tighter is not None and not any(np.allclose(tighter, c) for c in candidates):
        candidates.append(tighter)
    best, failed = None, None
    each_s = max(time_limit_s / len(candidates), min(time_limit_s, 5.0))
    took = np.inf  # the shortest full solve so far (s)
    for cand in candidates:  # full solves (sharing TIME_LIMIT): the best plan wins
        if best is not None and deadline - time.perf_counter() < min(took, _MIN_CANDIDATE_S):
            break  # too little left: a solve has floors of its own and would overrun TIME_LIMIT
        began_cand = time.perf_counter()
        model, costs = build(cand, tol)
        explains = not model._probe
        model._probe = True  # a candidate that fails needs no explanation unless all of them do
        try:
            sol = model.solve(solver, time_limit_s=min(each_s, time_left(deadline, time_limit_s)),
                              final=True, is_cancelled=is_cancelled,
                              grace_s=grace_s if best is None else 0.0)  # fmt: skip
        except InfeasibleError:
            failed = failed or (cand, model, costs)
            continue
        finally:
            model._probe = not explains
        took = min(took, time.perf_counter() - began_cand)
        if best is None or sol.objective < best[3].objective - 1e-9 * max(abs(sol.objective), 1):
            best = (cand, model, costs, sol)
    if best is None:  # every candidate failed: the first one's full explanation (or its plan)
        cand, model, costs = failed
        sol = model.solve(solver, time_limit_s=time_left(deadline, time_limit_s), final=True,
                          is_cancelled=is_cancelled, grace_s=grace_s)  # fmt: skip
        best = (cand, model, costs, sol)
    cen_xy, model, costs, sol = best
    logger.info("Centres: k-median start, balanced rounds and %d kept centre moves (%.1f s).",
                len(kept) - 1, time.perf_counter() - t0)  # fmt: skip
    if not bound:
        return cen_xy, model, costs, sol, BOUND_THESE_CENTRES
    report(progress, 0.85, "Lower bound")
    n_src = len(rows.src_xy)
    if model.n * n_src > centres.BOUND_PAIRS or (
        network is not None and n_src > _BOUND_NETWORK_SITES
    ):
        logger.info("LOWER_BOUND %.3f is a bound for these centres (%d %s are too many for the "
                    "bound over every choice of centres); other centres may do better.",
                    sol.lower_bound, model.n, rows.noun)  # fmt: skip
        return cen_xy, model, costs, sol, BOUND_THESE_CENTRES
    _, lo, hi = model.bounds()
    own = model.cost[np.arange(model.n), sol.assign]
    free = centres.free_centre_bound(
        columns(rows.src_xy), model.values, lo[0], hi[0], k, upper=float(own.sum()), start=own,
        deadline=time.perf_counter() + min(_BOUND_MAX_S, 0.15 * time_limit_s,
                                           max(deadline - time.perf_counter(), 0.0)),
    )  # fmt: skip
    if not np.isfinite(free):
        return cen_xy, model, costs, sol, BOUND_THESE_CENTRES
    sites = "accounts" if rows.src_row is not None or not rows.has_units else "units"
    logger.info("LOWER_BOUND %.3f holds for any %d centres among the %s (for the centres chosen "
                "it is %.3f).", min(free, sol.objective), k, sites, sol.lower_bound)  # fmt: skip
    sol = Solution(sol.assign, sol.objective, min(free, sol.objective), sol.solver_used,
                   sol.prices, BOUND_PROBLEM)  # fmt: skip
    return cen_xy, model, costs, sol, BOUND_PROBLEM


# ----------------------------------------------------------------------------- outputs


def build_plan(
    model: TerritoryModel,
    sol: Solution,
    *,
    rows: PlanRows,
    costs: tuple,
    src_locks: np.ndarray,
    src_current: np.ndarray,
    cen_xy: np.ndarray,
    quota_total: float | None,
    params: dict,
    weights: Sequence[float] | None,
    travel_weight: float,
    bound_scope: str = BOUND_PROBLEM,
    explain_extra: dict | None = None,
) -> TerritoryPlan:
    """The plan's outputs from a solved model (one place for both algorithms).

    Rows (accounts and/or units) with their territory and reason, territory polygons (dissolved
    units, or account Voronoi cells clipped to the study area or a tight outline), centres,
    summary (with ``pieces``) and KPIs. ``costs`` is :func:`row_costs`' (km, minutes, km and
    minutes of the cost points); ``src_locks``/``src_current`` are per cost point (account).
    """
    from .adjacency import count_pieces, point_adjacency, territory_polygons

    assign, objective, lower = sol.assign, sol.objective, sol.lower_bound
    cost, values, capacity = model.cost, model.values, model.capacity
    cen_ids, k = model.territory_ids, model.k
    km, mins, km_s, min_s = costs
    counted = _counted_in_units(rows)
    why = explain_rows(model, assign, unit="min" if mins is not None else "km",
                       counts=counted.get("accounts"),
                       travel_weight=travel_weight, **(explain_extra or {}))  # fmt: skip
    row_out = _assignment_columns(rows.original, assign, cost, km, mins, model, model.locks,
                                  model.current, model.allowed, why=why,
                                  counted=counted)  # fmt: skip
    accounts_out, units_out = (None, row_out) if rows.has_units else (row_out, None)
    src_assign = src_of(rows, assign)
    if rows.has_units and rows.accounts is not None:  # accounts: their unit's reason and words
        accounts_out = _assignment_columns(
            rows.accounts_original, src_assign, min_s if min_s is not None else km_s, km_s,
            min_s, model, src_of(rows, model.locks), src_current, src_of(rows, model.allowed),
            why=accounts_why(why, rows, src_assign, min_s if min_s is not None else km_s,
                             cen_ids, "min" if min_s is not None else "km"),
            counted={plan_kpis.UNIT_COLUMN: np.asarray(rows.ids, dtype=object)[rows.src_row]},
        )  # fmt: skip
    if rows.has_units:
        from .units import dissolve_units

        adj = rows.adjacency  # the gaps its snapping counted as shared close in the polygons
        polys = dissolve_units(rows.layer.geometry, assign, k, gap_m=adj.snap_m,
                               gaps_seen=adj.snapped > 0)  # fmt: skip
    else:  # STUDY_AREA or the tight outline, with its triangulation (prepare_rows)
        polys = territory_polygons(rows.xy, assign, k, rows.area, cells=rows.cells)
    adjacency = rows.adjacency
    if adjacency is None:  # accounts without contiguity: pieces as CONTIGUOUS, the report,
        # compareplans and the editor count them (groups apart linked to their neighbours), not
        # the parts of the polygon (the outline has gaps between accounts far apart)
        adjacency, _ = point_adjacency(rows.xy, study_area=rows.area, with_cells=False)
    pieces = count_pieces(assign, adjacency.matrix, k)
    names = list(model.names) or [rows.noun if rows.accounts is None else "accounts"]
    target, _, _ = model.bounds()
    with_accounts = not rows.has_units or rows.accounts is not None
    n_acc = np.bincount(src_assign, minlength=k) if with_accounts else None
    summary_rows = []
    for j, cid in enumerate(cen_ids):
        members = assign == j
        row = {"territory_id": cid}
        if n_acc is not None:
            row["accounts"] = int(n_acc[j])
        if rows.has_units:
            row["units"] = int(members.sum())
        row["capacity"] = capacity[j]
        for m, name in enumerate(names):
            total = float(values[members, m].sum())
            row[f"{name}_total"] = round(total, 2)
            row[f"{name}_dev_pct"] = (
                round(100 * (total / target[j, m] - 1), 2) if target[j, m] else 0.0
            )
        row["travel_total"] = round(float(cost[members, j].sum()), 2)
        row["pieces"] = int(pieces[j])
        if quota_total is not None:
            row["quota"] = round(quota_total * values[members, 0].sum() / values[:, 0].sum(), 2)
        summary_rows.append(row)
    summary = pd.DataFrame(summary_rows)
    per_cap = (
        np.array([[r[f"{nm}_total"] for nm in names] for r in summary_rows]) / capacity[:, None]
    )
    # the CVs per unit of capacity: one definition for the summary, report and compareplans
    cv = {nm: plan_kpis.cv_per_capacity(per_cap[:, m] * capacity, capacity)
          for m, nm in enumerate(names)}  # fmt: skip
    max_dev = float(max(abs(summary[f"{nm}_dev_pct"]).max() for nm in names))
    moved = int(((model.current >= 0) & (assign != model.current)).sum())
    moved_text = f"{moved}"
    if rows.has_units and accounts_out is not None:  # MOVED counts accounts, as its label says
        moved_text = f"{int(accounts_out['moved'].sum())} accounts in {moved} units"
        moved = int(accounts_out["moved"].sum())
    gap = 100 * (objective - lower) / objective if objective > 0 and np.isfinite(lower) else 0.0
    kpis = {f"cv_{nm}": round(v, 4) for nm, v in cv.items()}
    travel = np.array([r["travel_total"] for r in summary_rows]) / capacity
    cv_travel = float(travel.std() / travel.mean()) if travel.mean() else 0.0
    w = list(weights) if weights else [1.0] * len(names)
    score = (sum(wi * cv[nm] for wi, nm in zip(w, names)) + travel_weight * cv_travel) / (
        sum(w) + travel_weight
    )
    kpis["cv_travel"] = round(cv_travel, 4)
    per = len(src_assign) if rows.accounts is not None or not rows.has_units else model.n
    compact = float(cost[np.arange(model.n), assign].sum()) / max(per, 1)
    # compactness_mean: mean travel to the rep (the model's cost: km or minutes); compactness_km
    # as compareplans, the editor and sizeterritories say it (km to the territory's centroid)
    kpis.update(max_deviation_pct=round(max_dev, 2), compactness_mean=round(compact, 3),
                compactness_km=plan_kpis.compactness_km(rows.src_xy, src_assign),
                moved=moved, balance_score=round(score, 4),
                split_territories=int((pieces > 1).sum()), bound_scope=bound_scope)  # fmt: skip
    if rows.has_units and rows.accounts is not None:
        kpis["accounts_outside_units"] = rows.outside
    # the plan's own figures the report reads from the summary (header gap, disruption budget)
    budget_pct = params.get("max_moves_pct") if model.budget is not None else None
    kpis.update(gap_pct=round(gap, 4),
                max_moves_pct=float("nan") if budget_pct is None else float(budget_pct))  # fmt: skip
    for key, value in kpis.items():
        summary[key] = value
    crs = rows.original.crs
    territories = gpd.GeoDataFrame(summary.drop(columns=list(kpis)), geometry=polys,
                                   crs=rows.crs)  # fmt: skip
    territories = territories.to_crs(crs) if crs is not None else territories
    centres = gpd.GeoDataFrame({"territory_id": cen_ids, "capacity": capacity},
                               geometry=shapely.points(cen_xy), crs=rows.crs)  # fmt: skip
    centres = centres.to_crs(crs) if crs is not None else centres
    # one colour per territory, kept from the plan the run starts from (palette.colour_plan)
    plan_rows = units_out if accounts_out is None else accounts_out
    previous = rows.original if accounts_out is None else (
        rows.accounts_original if rows.has_units else rows.original)  # fmt: skip
    palette.colour_plan(plan_rows, territories, centres, previous=previous,
                        current_field=params.get("current_field"))  # fmt: skip
    if units_out is not None and accounts_out is not None:
        colours = palette.colours_from_table(territories)
        units_out[palette.COLOUR_FIELD] = units_out["territory_id"].map(colours)
    scope = ("" if bound_scope == BOUND_PROBLEM else
             " (a bound for these centres, which the algorithm chose; other centres may do better)")  # fmt: skip
    logger.info("Plan: objective %.3f, lower bound %.3f%s, gap %.2f%%, largest deviation %.2f%%, "
                "%s moved, %d territories in more than one piece.", objective, lower, scope, gap,
                max_dev, moved_text, kpis["split_territories"])  # fmt: skip
    return TerritoryPlan(
        accounts=accounts_out, territories=territories, centres=centres, summary=summary,
        objective=objective, lower_bound=lower, gap_pct=gap, max_deviation_pct=max_dev,
        moved=moved, kpis=kpis, parameters=params, units=units_out, bound_scope=bound_scope,
    )  # fmt: skip


def explain_rows(model: TerritoryModel, assign: np.ndarray, *, unit: str,
                 travel_weight: float = 0.0, counts: np.ndarray | None = None,
                 **rebalance: object) -> pd.DataFrame:  # fmt: skip
    """Why each row of a solved model is in its territory (:func:`explain.explain_accounts`):
    previous territory, next best, reason and words; ``counts``: accounts per row whose
    distances its cost adds up (areas with accounts); ``rebalance`` passes its extra arguments
    (previous, is_new, departed, fewest_moves)."""
    _, lo, hi = model.bounds()
    return explain_accounts(
        assign=assign, cost=model.cost, unit=unit, territory_ids=model.territory_ids,
        values=model.values, measure_names=list(model.names), lo=lo, hi=hi,
        capacity=model.capacity, locks=model.locks, current=model.current, allowed=model.allowed,
        budget=model.budget, travel_weight=float(travel_weight or 0.0),
        contiguous=bool(model.contiguous and model.adjacency is not None),
        rule=None if model.rule_allowed is None else (model.rule_allowed, model.pair_rule),
        counts=counts, **rebalance,
    )  # fmt: skip


def accounts_why(unit_why: pd.DataFrame, rows: PlanRows, assign: np.ndarray, cost: np.ndarray,
                 territory_ids: np.ndarray, unit: str) -> pd.DataFrame:  # fmt: skip
    """The words of each account in a unit: its unit's reason and explanation (units move
    whole), with the next best territory and distances from the account's own costs."""
    src = np.asarray(rows.src_row)
    out = unit_why.iloc[src].reset_index(drop=True)
    uid = np.asarray(rows.ids, dtype=object)[src]
    out["explanation"] = [f"With its area {u}: {t}" if isinstance(t, str) else t
                          for u, t in zip(uid, out["explanation"])]  # fmt: skip
    n, k = cost.shape
    r = np.arange(n)
    own = cost[r, assign]
    if k > 1:
        alt = cost.copy()
        alt[r, assign] = np.inf
        nxt = np.argmin(alt, 1)
        out["next_best_id"] = np.asarray(territory_ids, dtype=object)[nxt]
        out[f"next_best_extra_{unit}"] = np.round(np.maximum(alt[r, nxt] - own, 0.0), 3)
    out[f"nearest_saving_{unit}"] = np.round(np.maximum(own - cost.min(1), 0.0), 3)
    return out


def kept_name(name: str, taken: set[str]) -> str:
    """The name an input field ``name`` is kept under when the plan writes a field of that name:
    ``input_<name>``, or ``input_<name>_2``, ``_3``... when that is taken too (``taken``:
    lower-case names already used; GeoPackage and Shapefile fields ignore case)."""
    new, i = f"input_{name}", 2
    while new.lower() in taken:
        new, i = f"input_{name}_{i}", i + 1
    return new


def keep_input_fields(frame: pd.DataFrame, written: Sequence[str]) -> pd.DataFrame:
    """A copy of ``frame`` whose fields named like one of ``written`` (ignoring case) are renamed
    by :func:`kept_name`, so that a plan's output is a valid input of the next run and every pass
    renames the same way (``locked`` -> ``input_locked``, then ``input_locked_2``...; logged)."""
    out = frame.copy()
    geom = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    lower_written = {str(c).lower() for c in written}
    clash = [c for c in out.columns if str(c).lower() in lower_written and c != geom]
    if not clash:
        return out
    taken = {str(c).lower() for c in out.columns} | lower_written
    mapping = {}
    for col in clash:
        new = kept_name(str(col), taken)
        taken.add(new.lower())
        mapping[col] = new
        logger.info("Input field '%s' is kept as '%s' (the plan writes a field of that name).",
                    col, new)  # fmt: skip
    return out.rename(columns=mapping)


def _counted_in_units(rows: PlanRows) -> dict[str, np.ndarray]:
    """What a plan of units with accounts balanced per unit, for its units output: ``accounts``
    (the accounts counted in the unit, those joined from outside every unit included) and the
    sum of each balance field over them, so that a territory's units add up to its summary
    row. Empty for units alone (their own fields are the values) and for accounts."""
    if not rows.has_units or rows.src_row is None:
        return {}
    out = {"accounts": np.bincount(rows.src_row, minlength=rows.n)}
    for m, name in enumerate(rows.names):
        if name != "accounts":
            out[name] = np.round(rows.values[:, m], 6)
    return out


def _assignment_columns(original, assign, cost, cost_km, cost_min, model, locks, current,
                        allowed, *, why: pd.DataFrame,
                        counted: dict | None = None) -> gpd.GeoDataFrame:  # fmt: skip
    """A copy of ``original`` with ``counted`` (name -> a value per row: what a unit counts,
    :func:`_counted_in_units`, or an account's unit), territory_id, rep_id, distances,
    lock/move flags and the explanation columns ``why`` (previous territory, next best, reason,
    words)."""
    n = len(assign)
    cen_ids = model.territory_ids
    counted = counted or {}
    out = keep_input_fields(original, (*counted, *OUTPUT_COLUMNS, *why.columns))
    for name, values in counted.items():
        out[name] = values
    rows = np.arange(n)
    out["territory_id"] = cen_ids[assign]
    out["rep_id"] = cen_ids[assign]
    out["centre_km"] = np.round(cost_km[rows, assign], 3)
    out["centre_min"] = np.round(cost_min[rows, assign], 2) if cost_min is not None else np.nan
    out["locked"] = locks >= 0
    out["moved"] = (current >= 0) & (assign != current)
    for col in why.columns:
        out[col] = why[col].to_numpy()
    return out
