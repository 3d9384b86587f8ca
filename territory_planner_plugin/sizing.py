"""How many territories: the smallest K whose balanced plan meets a target per territory.

For every K in a range a quick plan is made (centres of a balanced recursive bisection, then the
engine's balanced assignment: Lagrangian prices and LP rounding, without the local search) and
measured: the target field's smallest and largest territory total against the target band, the largest balance
deviation, travel, compactness and, with a current plan, disruption. The recommended K is the
smallest whose every territory is inside the band (each plan is asked for the band where it
overlaps TOLERANCE around the mean, when the mean is inside the band). The table says how each
row was solved.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import kpis as plan_kpis
from .assignment import NoPlanFoundError, solve_balanced
from .errors import InfeasibleError, InvalidInputError
from .model import balance_values, point_costs, prepare_accounts, snap_points_once
from .progress import CancelCheck, ProgressCallback, check_cancel, report

logger = logging.getLogger(__name__)

__all__ = ["SizingResult", "size_territories", "target_band"]

METHOD_BALANCED = "bisection centres + balanced assignment (Lagrangian prices, LP rounding)"
METHOD_PRICED = "bisection centres + priced assignment (no plan within TOLERANCE found in time)"
METHOD_NOT_BAND = "; the target band was not reached in the quick pass, TOLERANCE was"
CLUSTERS_NOTE = " of clusters of ~4 neighbouring accounts"
METHOD_SECOND_PASS = (
    "; second pass (accounts one by one, centres moved to their territories' middles, polished)"
)
_SECOND_PASS_ROUNDS = 3  # centre moves tried for the K below the recommended one
_SECOND_PASS_SHARE = 0.2  # of TIME_LIMIT kept for that second pass
_ITERATIONS = 400  # price updates per K (cheap on clusters): good prices make the LP round
_AGGREGATE_ABOVE = 2_500  # accounts; above, clusters of about _ACCOUNTS_PER_PART are placed
_ACCOUNTS_PER_PART = 4
_ROOMS = (0.25, 0.1, 0.5)  # rounding margins tried (x the largest value of a row)
_TIERS = ((2, 0), (2, 2), (4, 4))  # candidate territories per row tried, then the next attempt


@dataclass
class SizingResult:
    """The trade-off table over K (one row per K), the recommended K and the target band."""

    table: pd.DataFrame
    recommended_k: int
    target_name: str
    band: tuple[float, float]
    total: float


def target_band(
    *, target_per_territory: float | None, target_min: float | None, target_max: float | None,
    tolerance_pct: float,
) -> tuple[float, float]:  # fmt: skip
    """The band a territory's target total must fall in: target ± tolerance, or [min, max]."""
    per = target_per_territory is not None
    rng = target_min is not None or target_max is not None
    if per == rng:
        msg = ("Give TARGET_PER_TERRITORY (e.g. 1200 visits) or TARGET_MIN and TARGET_MAX "
               "(e.g. 80 and 120 active prospects), not both and not neither.")  # fmt: skip
        raise InvalidInputError(msg)
    if per:
        if not (target_per_territory > 0 and math.isfinite(target_per_territory)):
            msg = f"TARGET_PER_TERRITORY: {target_per_territory} must be a positive number."
            raise InvalidInputError(msg)
        t = tolerance_pct / 100.0
        return float(target_per_territory * (1 - t)), float(target_per_territory * (1 + t))
    if target_min is None or target_max is None:
        msg = "Give both TARGET_MIN and TARGET_MAX (e.g. 80 and 120), or TARGET_PER_TERRITORY."
        raise InvalidInputError(msg)
    if not (0 <= target_min <= target_max) or target_max <= 0:
        msg = (f"TARGET_MIN {target_min} and TARGET_MAX {target_max}: give 0 <= TARGET_MIN <= "
               "TARGET_MAX, with TARGET_MAX above 0.")  # fmt: skip
        raise InvalidInputError(msg)
    return float(target_min), float(target_max)


def size_territories(
    accounts: gpd.GeoDataFrame,
    *,
    id_field: str,
    balance_fields: Sequence[str] = (),
    target_field: str | None = None,
    target_per_territory: float | None = None,
    target_min: float | None = None,
    target_max: float | None = None,
    k_min: int = 1,
    k_max: int = 10,
    tolerance_pct: float = 5.0,
    current_field: str | None = None,
    network: object | None = None,
    seed: int = 0,
    time_limit_s: float = 60.0,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> SizingResult:
    """Plan every K from ``k_min`` to ``k_max`` quickly and recommend the smallest that meets it.

    The target is on ``target_field`` (default: the first balance field; none: account count).
    Raises :class:`InfeasibleError` naming the nearest achievable target or K range when no K in
    the range can meet it.
    """
    t0 = time.perf_counter()
    if not (0 <= tolerance_pct < 100):
        msg = f"TOLERANCE: {tolerance_pct} must be a percentage from 0 to 100, e.g. 5."
        raise InvalidInputError(msg)
    lo_t, hi_t = target_band(target_per_territory=target_per_territory, target_min=target_min,
                             target_max=target_max, tolerance_pct=tolerance_pct)  # fmt: skip
    acc = prepare_accounts(accounts, id_field)
    ids = acc[id_field].astype(str).to_numpy()
    n = len(acc)
    if int(k_min) != k_min or int(k_max) != k_max or not (1 <= k_min <= k_max):
        msg = f"K_MIN {k_min} and K_MAX {k_max}: give whole numbers with 1 <= K_MIN <= K_MAX."
        raise InvalidInputError(msg)
    if k_max > n:
        msg = f"K_MAX: {k_max} is more than the {n} accounts; lower it."
        raise InvalidInputError(msg)
    fields = list(balance_fields)
    target_name = target_field or (fields[0] if fields else "accounts")
    if target_field and target_field not in fields:
        try:  # checked alone first, so that its errors name TARGET_FIELD
            balance_values(acc, ids, [target_field])
        except InvalidInputError as err:
            raise InvalidInputError(str(err).replace("BALANCE_FIELDS", "TARGET_FIELD", 1)) from None
        fields.append(target_field)  # the target field is balanced too
    values = balance_values(acc, ids, fields)
    names = fields or ["accounts"]
    t_col = names.index(target_name) if target_name in names else 0
    total = float(values[:, t_col].sum())
    _check_reachable(total, lo_t, hi_t, int(k_min), int(k_max), target_name)
    xy = shapely.get_coordinates(acc.geometry.values)
    parts = _Parts.of(xy, values, seed)
    snapped = snap_points_once(parts.xy, network, acc.crs)
    current = None
    if current_field:
        if current_field not in acc.columns:
            msg = f"CURRENT_FIELD: '{current_field}' is not a field of ACCOUNTS."
            raise InvalidInputError(msg)
        current = acc[current_field].to_numpy()
    ks = list(range(int(k_min), int(k_max) + 1))
    per_k = max((1 - _SECOND_PASS_SHARE) * time_limit_s / len(ks), 0.5)
    rows = []
    for i, k in enumerate(ks):
        check_cancel(is_cancelled)
        rows.append(_plan_for_k(xy, values, parts, k, names=names, t_col=t_col, band=(lo_t, hi_t),
                                tolerance_pct=tolerance_pct, network=network, snapped=snapped,
                                current=current, time_limit_s=per_k,
                                is_cancelled=is_cancelled))  # fmt: skip
        report(progress, (i + 1) / len(ks), f"K = {k}")
    table = pd.DataFrame(rows)
    meets = table.loc[table["meets_target"], "k"]
    # the quick pass can miss a K whose band leaves little room: the K below the smallest that
    # met the target (or, when none did, the nearest miss) gets a second, finer pass
    in_band = [k for k in ks if lo_t <= total / k <= hi_t]
    if meets.empty:
        misses = table[table["k"].isin(in_band)]
        again_k = (
            int(misses.loc[misses["target_outside_pct"].idxmin(), "k"]) if len(misses) else None
        )
    else:
        again_k = int(meets.min()) - 1 if int(meets.min()) - 1 in in_band else None
    if again_k is not None:
        left = time_limit_s - (time.perf_counter() - t0)
        single = _Parts(np.arange(n), xy, values)  # every account on its own: finer balance
        again = _plan_for_k(xy, values, single, again_k, names=names, t_col=t_col,
                            band=(lo_t, hi_t), tolerance_pct=tolerance_pct, network=network,
                            snapped=(snapped if len(parts.xy) == n else
                                     snap_points_once(xy, network, acc.crs)),
                            current=current, time_limit_s=max(left, 1.0),
                            is_cancelled=is_cancelled, second_pass=True)  # fmt: skip
        if again is not None and again["meets_target"]:
            logger.info("Sizing: K = %d meets the target on a second pass (the quick pass "
                        "missed it).", again_k)  # fmt: skip
            table = pd.concat([table[table["k"] != again_k], pd.DataFrame([again])])
            table = table.sort_values("k").reset_index(drop=True)
            meets = table.loc[table["meets_target"], "k"]
    if meets.empty:
        worst = table["target_outside_pct"]
        best = table.loc[worst.idxmin()]
        msg = (
            f"No K from {k_min} to {k_max} gave every territory a {target_name} total within "
            f"{lo_t:g}-{hi_t:g} (the nearest: K = {int(best['k'])}, territories from "
            f"{best['target_min']:g} to {best['target_max']:g}). Raise TOLERANCE (the plans "
            "balance within it) or widen the target band."
        )
        raise InfeasibleError(msg)
    k_best = int(meets.min())
    table["recommended"] = table["k"] == k_best
    logger.info("Sizing: %d values of K in %.1f s; smallest K meeting %s %g-%g: %d.",
                len(ks), time.perf_counter() - t0, target_name, lo_t, hi_t, k_best)  # fmt: skip
    return SizingResult(table=table, recommended_k=k_best, target_name=target_name,
                        band=(lo_t, hi_t), total=total)  # fmt: skip


def achievable_ks(total: float, lo: float, hi: float) -> tuple[int, int]:
    """K whose mean total/K lies in [lo, hi]: (first, last); first > last when none does."""
    first = math.ceil(total / hi - 1e-9) if hi > 0 else 1
    last = math.floor(total / lo + 1e-9) if lo > 0 else 10**9
    return max(first, 1), last


def _check_reachable(total: float, lo: float, hi: float, k_min: int, k_max: int, name: str) -> None:
    """Refuse, before any plan, a band that no K in range can meet even on average (named)."""
    first, last = achievable_ks(total, lo, hi)
    if first <= last and first <= k_max and last >= k_min:
        return
    if first <= last:
        near = f"K from {first} to {last} can meet it: set K_MIN and K_MAX to include them"
    else:
        k_near = max(1, round(total / ((lo + hi) / 2)))
        near = (f"no whole K can: the nearest is K = {k_near} with {total / k_near:g} per "
                "territory; widen the band (TOLERANCE, TARGET_MIN/TARGET_MAX)")  # fmt: skip
    at_min, at_max = total / k_min, total / k_max
    msg = (
        f"No K from {k_min} to {k_max} can meet the target: {name} totals {total:g}, so "
        f"territories average {at_max:g} (K = {k_max}) to {at_min:g} (K = {k_min}) against "
        f"{lo:g}-{hi:g}; {near}."
    )
    raise InfeasibleError(msg)


@dataclass
class _Parts:
    """What each K's assignment places: the accounts, or above ``_AGGREGATE_ABOVE`` accounts
    small clusters of neighbouring accounts (their values summed, costed from the account
    nearest their middle), so that the LP stays small; ``of`` gives each account's part."""

    of_account: np.ndarray
    xy: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, xy: np.ndarray, values: np.ndarray, seed: int) -> _Parts:
        n = len(xy)
        if n <= _AGGREGATE_ABOVE:
            return cls(np.arange(n), xy, values)
        from scipy.cluster.vq import kmeans2

        m = max(_AGGREGATE_ABOVE, n // _ACCOUNTS_PER_PART)
        _, lab = kmeans2(xy, m, iter=3, minit="points", seed=int(seed))
        _, lab = np.unique(lab, return_inverse=True)
        m = lab.max() + 1
        sums = np.column_stack([np.bincount(lab, weights=values[:, j], minlength=m)
                                for j in range(values.shape[1])])  # fmt: skip
        mid = np.column_stack([np.bincount(lab, weights=xy[:, j], minlength=m)
                               for j in range(2)]) / np.bincount(lab, minlength=m)[:, None]  # fmt: skip
        d = np.hypot(*(xy - mid[lab]).T)
        order = np.lexsort((d, lab))  # per part, the account nearest its middle first
        first = order[np.r_[0, np.flatnonzero(np.diff(lab[order])) + 1]]
        logger.info("Sizing: %d accounts placed as %d clusters of neighbouring accounts.", n, m)
        return cls(lab, xy[first], sums)


def _plan_for_k(xy, values, parts, k, *, names, t_col, band, tolerance_pct, network, snapped,
                current, time_limit_s, is_cancelled, second_pass: bool = False) -> dict:  # fmt: skip
    """One row of the table: a quick balanced plan with ``k`` territories and its figures.

    ``second_pass``: also move the centres to their territories' weighted middles (up to
    :data:`_SECOND_PASS_ROUNDS` times) and solve with the engine's full rounding and polish,
    keeping the first plan that meets the band.
    """
    t0 = time.perf_counter()
    cen_xy = bisection_centres(xy, values / np.maximum(values.sum(0), 1e-12), k)
    if second_pass:
        deadline = t0 + time_limit_s
        row = None
        for _ in range(_SECOND_PASS_ROUNDS):
            left = deadline - time.perf_counter()
            if left <= 0.5:
                break
            row, part_assign = _solve_row(xy, values, parts, k, cen_xy, names=names, t_col=t_col,
                                          band=band, tolerance_pct=tolerance_pct, network=network,
                                          snapped=snapped, current=current, time_limit_s=left,
                                          is_cancelled=is_cancelled, thorough=True)  # fmt: skip
            if row["meets_target"]:
                break
            w = parts.values[:, t_col] + 1e-12
            cen_xy = np.array([np.average(parts.xy[part_assign == j], axis=0,
                                          weights=w[part_assign == j])
                               if (part_assign == j).any() else cen_xy[j] for j in range(k)])  # fmt: skip
        if row is not None:
            row["method"] += METHOD_SECOND_PASS
            row["seconds"] = round(time.perf_counter() - t0, 2)
        return row
    row, _ = _solve_row(xy, values, parts, k, cen_xy, names=names, t_col=t_col, band=band,
                        tolerance_pct=tolerance_pct, network=network, snapped=snapped,
                        current=current, time_limit_s=time_limit_s,
                        is_cancelled=is_cancelled)  # fmt: skip
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _solve_row(xy, values, parts, k, cen_xy, *, names, t_col, band, tolerance_pct, network,
               snapped, current, time_limit_s, is_cancelled, thorough: bool = False):  # fmt: skip
    """The balanced plan for the centres ``cen_xy`` and its table row; also the assignment of
    the parts (clusters). ``thorough``: the engine's default rounding tries and its polish."""
    n = len(parts.xy)
    target = values.sum(0) / k
    tol = tolerance_pct / 100.0
    lo = np.tile(target * (1 - tol), (k, 1))
    hi = np.tile(target * (1 + tol), (k, 1))
    none = np.full(n, -1)
    km, mins = point_costs(parts.xy, cen_xy, network, snapped)
    cost = mins if mins is not None else km
    lo_t, hi_t = band
    bands = [(lo, hi, "")]
    if lo_t <= target[t_col] <= hi_t:  # K can meet the band on average: ask for it first
        lo_b, hi_b = lo.copy(), hi.copy()
        lo_b[:, t_col] = max(lo[0, t_col], lo_t)
        hi_b[:, t_col] = min(hi[0, t_col], hi_t)
        bands.insert(0, (lo_b, hi_b, ""))
        bands[1] = (lo, hi, METHOD_NOT_BAND)
    res = None
    for lo_k, hi_k, note in bands:
        try:
            quick = {} if thorough else {"polish": False, "rooms": _ROOMS, "tiers": _TIERS}
            res = solve_balanced(cost, parts.values, lo_k, hi_k, locks=none, current=none,
                                 budget=None, allowed=np.ones((n, k), bool),
                                 time_limit_s=time_limit_s, iterations=_ITERATIONS,
                                 is_cancelled=is_cancelled, **quick)  # fmt: skip
        except NoPlanFoundError:
            continue
        method = METHOD_BALANCED + note
        break
    if res is None:
        res = solve_balanced(cost, parts.values, lo, hi, locks=none, current=none, budget=None,
                             allowed=np.ones((n, k), bool), time_limit_s=time_limit_s,
                             iterations=_ITERATIONS, final=False,
                             is_cancelled=is_cancelled)  # fmt: skip
        method = METHOD_PRICED
    part_assign = res.assign
    assign = part_assign[parts.of_account]
    totals = np.column_stack([np.bincount(assign, weights=values[:, m], minlength=k)
                              for m in range(values.shape[1])])  # fmt: skip
    dev = np.where(target > 0, 100 * (totals / np.where(target > 0, target, 1) - 1), 0.0)
    t_tot = totals[:, t_col]
    outside = np.maximum(lo_t - t_tot, 0) + np.maximum(t_tot - hi_t, 0)
    scale = max(hi_t, 1e-12)
    row = {
        "k": k,
        "meets_target": bool((outside <= 1e-9 * scale).all()),
        "target_mean": round(float(t_tot.mean()), 3),
        "target_min": round(float(t_tot.min()), 3),
        "target_max": round(float(t_tot.max()), 3),
        "target_outside_pct": round(float(100 * outside.max() / scale), 3),
        "max_deviation_pct": round(float(np.abs(dev).max()), 3),
    }
    for m, name in enumerate(names):
        row[f"{name}_dev_pct"] = round(float(np.abs(dev[:, m]).max()), 3)
    unit = "min" if mins is not None else "km"
    own = _travel(xy, parts, part_assign, assign, k, network, snapped, mins is not None)
    row[f"travel_{unit}"] = round(float(own.sum()), 2)
    row[f"travel_per_territory_{unit}"] = round(float(own.sum() / k), 2)
    row["compactness_km"] = plan_kpis.compactness_km(xy, assign)
    if current is not None:
        moved, _ = plan_kpis.moved_after_matching(current, [f"T{j + 1:02d}" for j in assign])
        known = np.array([plan_kpis.text_key(v) is not None for v in current])
        row["moved"] = int(moved.sum())
        row["moved_pct"] = round(100 * float(moved.sum()) / max(int(known.sum()), 1), 2)
    row["method"] = method.replace(" assignment", " assignment" + CLUSTERS_NOTE, 1) if len(
        parts.xy) < len(xy) else method  # fmt: skip
    return row, part_assign


def bisection_centres(xy: np.ndarray, share: np.ndarray, k: int) -> np.ndarray:
    """``k`` centres of a balanced recursive bisection: each cut along the longer side, at the
    point where the accounts' share of the measures (summed) splits as the territories do."""
    weight = share.sum(1) if share.ndim == 2 else share
    out = []

    def cut(idx: np.ndarray, parts: int) -> None:
        if parts == 1 or len(idx) <= 1:
            w = weight[idx]
            mid = np.average(xy[idx], axis=0, weights=w) if w.sum() > 0 else xy[idx].mean(0)
            out.extend([mid] * parts)
            return
        span = xy[idx].max(0) - xy[idx].min(0)
        axis = int(np.argmax(span))
        order = idx[np.argsort(xy[idx, axis], kind="stable")]
        left = parts // 2
        cum = np.cumsum(weight[order])
        at = int(np.searchsorted(cum, cum[-1] * left / parts))
        at = min(max(at, 1), len(order) - 1)
        cut(order[:at], left)
        cut(order[at:], parts - left)

    cut(np.arange(len(xy)), int(k))
    return np.array(out)


def _travel(xy, parts, part_assign, assign, k, network, snapped, minutes: bool) -> np.ndarray:
    """Each account's travel to its territory's centre: the place (account or cluster) nearest
    the middle of the territory, as a rep based there would drive (minutes with a network)."""
    centre = np.zeros((k, 2))
    for j in range(k):
        members = np.flatnonzero(part_assign == j)
        if len(members) == 0:
            continue
        mid = xy[assign == j].mean(0)
        centre[j] = parts.xy[members[np.argmin(np.hypot(*(parts.xy[members] - mid).T))]]
    if not minutes:
        return np.hypot(*(xy - centre[assign]).T) / 1000.0
    _, mins = point_costs(parts.xy, centre, network, snapped)
    return mins[parts.of_account, assign]


def sizing_html(result: SizingResult, *, title: str = "How many territories") -> str:
    """A self-contained page: the trade-off chart over K (largest deviation, travel, target
    totals against the band) and the table, the recommended K marked."""
    from .htmlpage import agg_figure, figure_png, fmt, html_head, png_data_uri, table
    from .kpis import label

    t = result.table
    lo, hi = result.band
    travel = next(c for c in t.columns if c.startswith("travel_per_territory_"))
    fig = agg_figure(10, 6.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.fill_between(t["k"], lo, hi, color="#c7e9c0", label=f"target band {lo:g}-{hi:g}")
    ax1.plot(
        t["k"],
        t["target_mean"],
        "-",
        color="#333",
        label=f"mean {label(result.target_name).lower()}",
    )
    ax1.vlines(t["k"], t["target_min"], t["target_max"], color="#3182bd", lw=3,
               label="smallest to largest territory")  # fmt: skip
    ax1.axvline(result.recommended_k, color="#b30000", ls="--",
                label=f"recommended K = {result.recommended_k}")  # fmt: skip
    ax1.set_ylabel(f"{label(result.target_name)} per territory")
    ax1.legend(fontsize=8, loc="upper right")
    ax2.plot(t["k"], t["max_deviation_pct"], "o-", color="#e6550d", label="largest deviation %")
    ax2.set_ylabel("largest balance deviation (%)")
    ax2.set_xlabel("number of territories K")
    ax3 = ax2.twinx()
    ax3.plot(t["k"], t[travel], "s-", color="#756bb1", label=travel.replace("_", " "))
    ax3.set_ylabel(travel.replace("_", " "))
    if "moved_pct" in t.columns:
        ax2.plot(t["k"], t["moved_pct"], "^-", color="#31a354", label="accounts moved %")
    ax2.axvline(result.recommended_k, color="#b30000", ls="--")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    png = figure_png(fig)
    cols = [c for c in t.columns if c not in ("method",)]
    rows = []
    for _, r in t.iterrows():
        cells = [fmt(r[c]) for c in cols]
        if r["recommended"]:
            cells[0] = (cells[0], "ok")
        rows.append(cells)
    methods = ", ".join(sorted(set(t["method"])))
    return (
        html_head(title, subtitle=f"{label(result.target_name)} {lo:g}-{hi:g} per territory")
        + f"<p id='recommended'>Recommended: <b>K = {result.recommended_k}</b>, the smallest "
        f"number of territories whose every territory has a total of {label(result.target_name)} "
        f"within {lo:g}-{hi:g} (total {fmt(result.total)}).</p>"
        + f"<img alt='trade-off over K' src='{png_data_uri(png)}'>"
        + "<h2>Trade-off table</h2>"
        + "<div style='overflow-x:auto'>"
        + table(
            [_header(c, result.target_name, label) for c in cols],
            rows,
            table_id="sizing",
            numeric=range(len(cols)),
        )
        + "</div>"
        + f"<p class='note'>Each row solved by: {methods}. A quick plan per K: a full "
        "designterritories run with the chosen K does better on travel.</p></body></html>"
    )


def _header(column: str, target: str, label) -> str:
    """A column of the trade-off table as people read it (``target_min`` -> ``Smallest
    <target>``, ``max_deviation_pct`` -> ``Largest deviation (%)``)."""
    name = label(target).lower()
    fixed = {"k": "K", "meets_target": "Meets the target", "recommended": "Recommended",
             "target_mean": f"Mean {name}", "target_min": f"Smallest {name}",
             "target_max": f"Largest {name}", "target_outside_pct": "Territories outside (%)",
             "max_deviation_pct": "Largest deviation (%)", "moved_pct": "Accounts moved (%)"}  # fmt: skip
    if column in fixed:
        return fixed[column]
    text = label(column)
    for suffix, unit in (("_pct", " (%)"), ("_km", " (km)"), ("_min", " (min)")):
        if column.endswith(suffix):
            text = label(column[: -len(suffix)]) + unit
    return text
