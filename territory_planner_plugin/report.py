"""Self-contained HTML report of a territory plan: KPIs against the plan's own targets, a map,
balance charts, disruption against the budget, an optional comparison with a second plan.

Takes any accounts table with a territory field; the plan's other outputs (territories, centres,
summary) add capacities, polygons, rep homes and names. Targets are weighted by capacity wherever
capacities are known, with the KPIs of :mod:`.kpis` (Design territories' own figures). Charts and
the map use matplotlib's Agg backend; images are embedded as base64.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _validate, compare, palette
from . import kpis as plan_kpis
from .errors import InvalidInputError
from .htmlpage import agg_figure, bullet_list, figure_png, finite, fmt, html_head, png_data_uri
from .plan_map import draw_plan_map, rep_names_from, territory_field_of
from .territories import STRAIGHT_LINE_KMH

logger = logging.getLogger(__name__)

TARGETS = plan_kpis.TARGETS
PROSPECTS_RANGE = plan_kpis.PROSPECTS_PER_FTE
ASSUMED_SPEED_KMH = STRAIGHT_LINE_KMH  # centre_km -> minutes when the accounts have no centre_min
ACTIVE_DEFAULT = "active_prospect"  # counted without ACTIVE_FIELD when the accounts have it
_TRUE_WORDS = {"true", "t", "yes", "y", "1"}
EFFICIENCY_UNKNOWN = "not known (give VISIT_MINUTES and VISITS_FIELD)"
WEIGHTED_NOTE = "targets weighted by rep capacity"
cv_target = plan_kpis.cv_target
# shared helpers other modules and tests import from here
__all__ = ["agg_figure", "build_report", "cv_target", "figure_png", "html_head", "kpis",
           "png_data_uri", "territory_summary", "travel_efficiency"]  # fmt: skip


def territory_summary(
    accounts: pd.DataFrame,
    *,
    territory_field: str,
    balance_fields: Sequence[str] = (),
    active_field: str | None = None,
    active_counts: bool = False,
) -> pd.DataFrame:
    """One row per territory: ``accounts`` count and the total of each balance field.

    ``active_prospects`` counts the accounts whose ``active_field`` is true/1/yes; without
    ``active_field`` the ``active_prospect`` field is used when the accounts have one. With
    ``active_counts`` (a plan of areas) the field is each row's number of active prospects and
    is summed.
    """
    _check(accounts, territory_field, balance_fields)
    active = active_column(accounts, active_field)
    grouped = accounts.groupby(territory_field, sort=True, dropna=True)
    out = pd.DataFrame({"accounts": grouped.size()})
    for f in balance_fields:
        out[f"{f}_total"] = grouped[f].sum()
    if active and active_counts:
        counts = pd.to_numeric(accounts[active], errors="coerce").fillna(0.0).clip(lower=0)
        out["active_prospects"] = (
            counts.groupby(accounts[territory_field]).sum().round().astype(int)
        )
    elif active:
        flags = truthy(accounts[active]).astype(int)
        out["active_prospects"] = flags.groupby(accounts[territory_field]).sum().astype(int)
    out.index.name = territory_field
    return out.reset_index()


def active_column(accounts: pd.DataFrame, active_field: str | None) -> str | None:
    """The field marking active prospects: ``active_field`` (checked), else ``active_prospect``."""
    if active_field:
        _require(accounts, active_field, "ACTIVE_FIELD")
        return active_field
    return ACTIVE_DEFAULT if ACTIVE_DEFAULT in accounts.columns else None


def truthy(values: pd.Series) -> pd.Series:
    """True for true / non-zero numbers / 'true', 'yes', 'y', 't', '1' (any case); else False."""
    if values.dtype == bool:
        return values.copy()
    if values.dtype.kind in "iuf":
        return values.fillna(0).ne(0)

    def one(v) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return bool(v == v and v != 0)
        if isinstance(v, str):
            text = v.strip().lower()
            if text in _TRUE_WORDS:
                return True
            try:
                return float(text) != 0 and not math.isnan(float(text))
            except ValueError:
                return False
        return False

    return pd.Series([one(v) for v in values], index=values.index, dtype=bool)


@dataclass
class TravelEfficiency:
    """Visit time / (visit time + travel time), per territory and for the whole plan.

    ``per_territory`` has the territory, ``visit_minutes``, ``travel_minutes`` (per year) and
    ``travel_efficiency`` (0-1); it is None when the efficiency is not known (``note`` says why).
    """

    per_territory: pd.DataFrame | None
    overall: float
    note: str

    @property
    def known(self) -> bool:
        return self.per_territory is not None


def travel_efficiency(
    accounts: pd.DataFrame,
    *,
    territory_field: str,
    visit_minutes: float | None = None,
    visit_minutes_field: str | None = None,
    visits_field: str | None = None,
) -> TravelEfficiency:
    """Travel efficiency per territory: visit time / (visit time + travel time).

    Per account and year: visit time = visits × minutes per visit (``visit_minutes_field``,
    its blanks filled with ``visit_minutes``); travel time = visits × 2 × ``centre_min`` (a round
    trip from the rep's home or territory centre per visit), ``centre_km`` at
    ``ASSUMED_SPEED_KMH`` where there are no drive minutes. Without ``visits_field`` each account
    gets one visit. Accounts missing a value are left out (and counted in ``note``).
    """
    _require(accounts, territory_field, "TERRITORY_FIELD")
    if visit_minutes is not None and (not math.isfinite(visit_minutes) or visit_minutes < 0):
        raise InvalidInputError(
            f"VISIT_MINUTES: {visit_minutes} is not a duration; give the minutes of one visit (>= 0)."
        )
    for field, key in (
        (visit_minutes_field, "VISIT_MINUTES_FIELD"),
        (visits_field, "VISITS_FIELD"),
    ):
        if field:
            _require(accounts, field, key)
    travel, travel_note = _travel_minutes(accounts)
    if visit_minutes is None and not visit_minutes_field:
        if travel is None:
            return TravelEfficiency(None, float("nan"), EFFICIENCY_UNKNOWN)
        return TravelEfficiency(
            None,
            float("nan"),
            f"{EFFICIENCY_UNKNOWN}: visit durations are not known; drive times are in the accounts.",
        )
    if travel is None:
        return TravelEfficiency(
            None,
            float("nan"),
            "not known: the accounts have no centre_min or centre_km drive times (use the accounts "
            "output of Design territories).",
        )
    minutes = pd.Series(np.nan, index=accounts.index, dtype=float)
    if visit_minutes_field:
        minutes = pd.to_numeric(accounts[visit_minutes_field], errors="coerce").astype(float)
    if visit_minutes is not None:
        minutes = minutes.fillna(float(visit_minutes))
    if visits_field:
        visits = pd.to_numeric(accounts[visits_field], errors="coerce").astype(float)
    else:
        visits = pd.Series(1.0, index=accounts.index)
    for series, key in ((minutes, "VISIT_MINUTES_FIELD"), (visits, "VISITS_FIELD")):
        if (series < 0).any():
            raise InvalidInputError(
                f"{key}: {int((series < 0).sum())} account(s) have a negative value; "
                "durations and visit counts must be 0 or more."
            )
    ok = minutes.notna() & visits.notna() & travel.notna() & accounts[territory_field].notna()
    frame = pd.DataFrame(
        {
            territory_field: accounts.loc[ok, territory_field],
            "visit_minutes": (visits * minutes)[ok],
            "travel_minutes": (visits * 2.0 * travel)[ok],
        }
    )
    per = frame.groupby(territory_field, sort=True).sum()
    total = per["visit_minutes"] + per["travel_minutes"]
    per["travel_efficiency"] = (per["visit_minutes"] / total.where(total > 0)).round(4)
    grand = float(total.sum())
    overall = float(per["visit_minutes"].sum() / grand) if grand > 0 else float("nan")
    basis = f"visits per year from {visits_field}" if visits_field else "one visit per account"
    duration = (
        f"minutes per visit from {visit_minutes_field}"
        + (f" ({visit_minutes:g} where blank)" if visit_minutes is not None else "")
        if visit_minutes_field
        else f"{visit_minutes:g} minutes per visit"
    )
    note = (
        f"Travel efficiency = visit time / (visit time + travel time), with {duration}, {basis} "
        f"and {travel_note}; travel per visit is a round trip (2 × the one-way time) from the "
        "rep's home or the territory centre, so visits chained in one trip make the real "
        "efficiency higher."
    )
    left_out = int((~ok).sum())
    if left_out:
        note += (
            f" {left_out} account(s) without a duration, visit count or drive time are left out."
        )
    per.index.name = territory_field
    return TravelEfficiency(per.reset_index(), overall, note)


def _travel_minutes(accounts: pd.DataFrame) -> tuple[pd.Series | None, str]:
    """One-way drive minutes per account from centre_min, else centre_km at ASSUMED_SPEED_KMH."""
    minutes = _numeric(accounts, "centre_min")
    km = _numeric(accounts, "centre_km")
    if minutes is None and km is None:
        return None, ""
    from_km = None if km is None else km * 60.0 / ASSUMED_SPEED_KMH
    if minutes is None:
        return from_km, f"drive time from centre_km at an assumed {ASSUMED_SPEED_KMH:g} km/h"
    if from_km is None or not (minutes.isna() & from_km.notna()).any():
        return minutes, "drive minutes from centre_min"
    filled = int((minutes.isna() & from_km.notna()).sum())
    return minutes.fillna(from_km), (
        f"drive minutes from centre_min ({filled} account(s) without it: centre_km at an "
        f"assumed {ASSUMED_SPEED_KMH:g} km/h)"
    )


def _numeric(accounts: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in accounts.columns:
        return None
    values = pd.to_numeric(accounts[column], errors="coerce").astype(float)
    return values if values.notna().any() else None


# ----------------------------------------------------------------------------- KPIs


def kpis(
    accounts: pd.DataFrame,
    *,
    territory_field: str,
    balance_fields: Sequence[str] = (),
    current_field: str | None = None,
    revenue_field: str | None = None,
    plan_summary: pd.DataFrame | None = None,
    capacity: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """CV per balance field (``cv_<field>``), the largest deviation, accounts and revenue moved.

    With capacities (``capacity``: territory id -> capacity, or ``plan_summary``: a table with
    ``territory_id`` and ``capacity``) the CV is that of each territory's total per unit of
    capacity and the deviation is from the capacity-weighted target, as Design territories
    computes them (:func:`.kpis.balance`); without them, those of the totals against the mean.
    """
    summary = territory_summary(
        accounts, territory_field=territory_field, balance_fields=balance_fields
    )
    if plan_summary is not None:
        summary = _with_capacity(summary, plan_kpis.read_capacities(plan_summary),
                                 territory_field, warn=False)  # fmt: skip
        capacity = _capacity_of(summary, territory_field)
    measures = list(balance_fields) or ["accounts"]
    tiers = plan_kpis.tiers_of(_ids_as(plan_summary, territory_field) if plan_summary is not None
                               else None) or plan_kpis.tiers_of(accounts, territory_field)  # fmt: skip
    bal = plan_kpis.balance(summary, territory_field=territory_field, measures=measures,
                            capacity=capacity, tiers=tiers)  # fmt: skip
    out: dict[str, float] = {"territories": float(len(summary))}
    for f in balance_fields:
        out[f"cv_{f}"] = bal.cv[f]
    out["max_deviation_pct"] = bal.max_deviation_pct
    if current_field:
        _check(accounts, current_field, ())
        revenue = accounts[revenue_field] if revenue_field in accounts.columns else None
        d = plan_kpis.disruption(accounts[territory_field], accounts[current_field],
                                 revenue=revenue)  # fmt: skip
        out["accounts_moved"] = float(d.moved)
        if d.revenue_moved is not None:
            out["revenue_moved"] = d.revenue_moved
    return out


def plan_capacities(
    *,
    plan_summary: pd.DataFrame | None = None,
    territories: pd.DataFrame | None = None,
    centres: pd.DataFrame | None = None,
    accounts: pd.DataFrame | None = None,
    territory_field: str = "territory_id",
) -> tuple[pd.DataFrame | None, str]:
    """The plan's capacities (a :func:`.kpis.read_capacities` table) and where they came from.

    Read from SUMMARY when given (an error when it has no capacities), else from the
    territories or centres output of Design territories (their ``capacity`` field), else from a
    ``capacity`` field of the accounts; ``(None, "")`` when none has them.
    """
    if plan_summary is not None:
        return plan_kpis.read_capacities(plan_summary, where="SUMMARY"), "SUMMARY"
    for table, where in ((territories, "TERRITORIES"), (centres, "CENTRES")):
        if table is not None and plan_kpis.has_capacities(_ids_as(table, territory_field)):
            frame = pd.DataFrame(_ids_as(table, territory_field).drop(columns="geometry",
                                                                      errors="ignore"))  # fmt: skip
            frame = frame.drop_duplicates(subset="territory_id")
            return plan_kpis.read_capacities(frame, where=where), where
    if accounts is not None and "capacity" in accounts.columns and territory_field in accounts:
        frame = pd.DataFrame(
            {"territory_id": accounts[territory_field], "capacity": accounts["capacity"]}
        ).dropna(subset=["territory_id"])
        frame = frame.assign(_k=[plan_kpis.text_key(v) for v in frame.territory_id])
        return plan_kpis.read_capacities(
            frame.drop_duplicates("_k").drop(columns="_k"), where="ACCOUNTS (capacity field)"
        ), "the accounts' capacity field"  # fmt: skip
    return None, ""


def _ids_as(table: pd.DataFrame, territory_field: str) -> pd.DataFrame:
    """``table`` with its territory id in ``territory_id`` (read from territory_field/rep_id)."""
    field = territory_field_of(table, territory_field)
    if field is None or field == "territory_id":
        return table
    out = table.drop(columns=[c for c in ("territory_id",) if c in table.columns])
    return out.rename(columns={field: "territory_id"})


def _with_capacity(summary: pd.DataFrame, table: pd.DataFrame, territory_field: str, *,
                   warn: bool = True) -> pd.DataFrame:  # fmt: skip
    """Add ``capacity`` (and ``quota``) to a :func:`territory_summary` frame from a capacity
    table; territories of the table without accounts are listed with 0 accounts, territories
    missing from the table count with capacity 1 (both with a warning when ``warn``)."""
    out = summary.copy()
    keys = [plan_kpis.text_key(v) for v in out[territory_field]]
    not_in_table = [str(v) for v, k in zip(out[territory_field], keys) if k not in table.index]
    only_table = table[~table.index.isin(set(keys))]
    if warn and not_in_table:
        logger.warning(
            "SUMMARY has no row for territory(ies) %s of ACCOUNTS; they count with capacity 1.",
            ", ".join(not_in_table[:20]),
        )
    if warn and len(only_table):
        logger.warning(
            "SUMMARY lists territory(ies) %s that no account of ACCOUNTS is in; they are listed "
            "with 0 accounts.",
            ", ".join(str(v) for v in only_table["territory_id"][:20]),
        )
    if len(only_table):
        extra = pd.DataFrame({territory_field: only_table["territory_id"].to_numpy()})
        for column in out.columns:
            if column != territory_field:
                extra[column] = 0
        out = pd.concat([out, extra], ignore_index=True)
        keys += list(only_table.index)
    position = out.columns.get_loc("accounts") + 1 if "accounts" in out.columns else 1
    out.insert(position, "capacity", [float(table["capacity"].get(k, 1.0)) for k in keys])
    if "quota" in table.columns:
        out.insert(position + 1, "quota", [table["quota"].get(k, np.nan) for k in keys])
    return out


def _capacity_of(summary: pd.DataFrame, territory_field: str) -> dict[str, float]:
    return {
        plan_kpis.text_key(t): float(c)
        for t, c in zip(summary[territory_field], summary["capacity"])
    }


def plan_colours_for(
    ids: Sequence[str], *tables, territories=None, territory_field: str = "territory_id"
) -> dict[str, str]:
    """Each territory's one colour: the ``colour`` field of the plan's outputs when present,
    else :func:`.palette.plan_colours` (neighbouring polygons apart)."""
    known: dict[str, str] = {}
    for table in (territories, *tables):
        if table is None:
            continue
        field = territory_field_of(table, territory_field)
        if field:
            for k, c in palette.colours_from_table(table, territory_field=field).items():
                known.setdefault(plan_kpis.text_key(k), c)
    adjacency = None
    field = territory_field_of(territories, territory_field) if territories is not None else None
    if field and hasattr(territories, "geometry"):
        geoms = {}
        for t, g in zip(territories[field], territories.geometry):
            if plan_kpis.text_key(t) is not None and g is not None:
                geoms[plan_kpis.text_key(t)] = g
        adjacency = palette.adjacency_from_geometries(geoms)
    return palette.plan_colours(list(ids), adjacency=adjacency, existing=known)


# ----------------------------------------------------------------------------- the report


def build_report(
    accounts: pd.DataFrame,
    *,
    territory_field: str = "territory_id",
    balance_fields: Sequence[str] = (),
    current_field: str | None = None,
    tolerance_pct: float = 5.0,
    map_png: bytes | None = None,
    parameters: Mapping[str, object] | None = None,
    title: str = "Territory plan report",
    active_field: str | None = None,
    visit_minutes: float | None = None,
    visit_minutes_field: str | None = None,
    visits_field: str | None = None,
    compare_accounts: pd.DataFrame | None = None,
    compare_territory_field: str = "territory_id",
    id_field: str = "id",
    plan_names: Sequence[str] = ("this plan", "second plan"),
    plan_summary: pd.DataFrame | None = None,
    territories: pd.DataFrame | None = None,
    centres: pd.DataFrame | None = None,
    max_moves_pct: float | None = None,
    gap_pct: float | None = None,
    backtest_field: str | None = None,
) -> tuple[str, pd.DataFrame]:
    """Return ``(html, summary)``; the HTML embeds every image (base64) and needs no other file.

    Targets are weighted by capacity when the plan's outputs carry capacities (``plan_summary``,
    else the ``capacity`` field of ``territories`` or ``centres``, see :func:`plan_capacities`);
    otherwise every territory's target is the mean. The summary has per territory ``accounts``,
    ``capacity`` (when known), ``quota``, ``<field>_total``, ``<field>_target`` and
    ``<field>_dev_pct`` (as Design territories reports them), ``active_prospects``,
    ``travel_efficiency``, ``pieces``, ``rep_name`` and ``colour`` when known.

    The map is drawn from the accounts (GeoDataFrame), ``territories`` (polygons) and ``centres``
    (rep homes or centres; ``rep_name``/``name`` give the legend's names) unless ``map_png`` is
    given. ``max_moves_pct`` is the disruption budget (MAX_MOVES) and ``gap_pct`` the optimality
    gap shown in the header (both also read from the summary's ``max_moves_pct`` / ``gap_pct``
    fields). ``active_field`` marks the active prospects counted against the 80-120 per FTE
    guidance; ``visit_minutes`` / ``visit_minutes_field`` and ``visits_field`` give the travel
    efficiency (see :func:`travel_efficiency`); ``compare_accounts`` (a second plan of the same
    accounts, matched on ``id_field``, territory in ``compare_territory_field``) adds a comparison.
    ``backtest_field`` (e.g. revenue_last_year) adds each rep's old and new book
    (:mod:`backtest`; the old plan is ``current_field`` or ``previous_territory_id``).
    """
    if len(accounts) == 0:
        raise InvalidInputError("ACCOUNTS is empty: there is nothing to report.")
    if tolerance_pct is None or not (0 <= float(tolerance_pct) < 100):
        msg = f"TOLERANCE: {tolerance_pct} must be a percentage from 0 to 100, e.g. 5."
        raise InvalidInputError(msg)
    if territory_field in accounts.columns:
        assigned = [plan_kpis.text_key(v) for v in accounts[territory_field]]
        if all(v is None for v in assigned):
            msg = (
                f"TERRITORY_FIELD: '{territory_field}' is empty (NULL) for every account, so the "
                "plan has no territories to report; pick the field that holds the territory ids "
                "(e.g. territory_id of a Design territories output)."
            )
            raise InvalidInputError(msg)
    areas = is_plan_of_areas(accounts)
    summary = territory_summary(
        accounts,
        territory_field=territory_field,
        balance_fields=balance_fields,
        active_field=active_field,
        active_counts=areas,
    )
    table, source = plan_capacities(
        plan_summary=plan_summary, territories=territories, centres=centres, accounts=accounts,
        territory_field=territory_field,
    )  # fmt: skip
    capacity = None
    if table is not None:
        summary = _with_capacity(summary, table, territory_field)
        capacity = _capacity_of(summary, territory_field)
    measures = list(balance_fields) or ["accounts"]
    tiers = plan_kpis.tiers_of(_ids_as(plan_summary, territory_field) if plan_summary is not None
                               else None) or plan_kpis.tiers_of(accounts, territory_field)  # fmt: skip
    bal = plan_kpis.balance(summary, territory_field=territory_field, measures=measures,
                            capacity=capacity, tiers=tiers)  # fmt: skip
    summary = bal.table if capacity else bal.table.drop(columns="capacity")
    cap = summary["capacity"].to_numpy(float) if capacity else np.ones(len(summary))
    gap_pct = _plan_value(plan_summary, "gap_pct", gap_pct)
    tier_note = plan_kpis.tier_text(bal) if tiers else ""
    if tiers and plan_summary is not None and {"tier", "gap_pct"} <= set(plan_summary.columns):
        gaps = pd.to_numeric(plan_summary["gap_pct"], errors="coerce").groupby(plan_summary["tier"])
        gap_pct = float(gaps.max().max())  # the header shows the worst tier's gap
        tier_note += " Optimality gap per tier: " + ", ".join(
            f"{t} {g:.2f}%" for t, g in gaps.max().items()) + "."  # fmt: skip
    scope = ""
    if plan_summary is not None and "bound_scope" in plan_summary.columns and len(plan_summary):
        scope = str(plan_summary["bound_scope"].iloc[0])
    max_moves_pct = _plan_value(plan_summary, "max_moves_pct", max_moves_pct)
    keys = [plan_kpis.text_key(v) for v in summary[territory_field]]
    colours = plan_colours_for(keys, accounts, centres, territories=territories,
                               territory_field=territory_field)  # fmt: skip
    names = rep_names_from(centres, territory_field)
    pieces = plan_kpis.pieces(
        _ids_as(territories, territory_field) if territories is not None else None
    )
    # the accounts of a plan of areas cannot tell its pieces (the areas' boundaries do)
    pieces_unknown = not pieces and plan_kpis.accounts_of_areas(accounts)
    if not pieces and hasattr(accounts, "geometry") and not pieces_unknown:  # any plan
        from .adjacency import plan_pieces

        pieces = {
            k: n
            for k, n in plan_pieces(accounts.geometry, accounts[territory_field]).items()
            if (tiers or {}).get(k) != plan_kpis.NAMED_TIER
        }  # a named book has no area
    revenue = next((f for f in balance_fields if "revenue" in f), None)
    disruption = None
    if current_field:
        _check(accounts, current_field, ())
        disruption = plan_kpis.disruption(
            accounts[territory_field], accounts[current_field], budget_pct=max_moves_pct,
            revenue=accounts[revenue] if revenue else None, noun="areas" if areas else "accounts",
        )  # fmt: skip
    efficiency_args = {
        "visit_minutes": visit_minutes,
        "visit_minutes_field": visit_minutes_field,
        "visits_field": visits_field,
    }
    efficiency = travel_efficiency(accounts, territory_field=territory_field, **efficiency_args)
    if efficiency.known:
        per = efficiency.per_territory.set_index(territory_field)["travel_efficiency"]
        summary["travel_efficiency"] = summary[territory_field].map(per)
    if pieces:
        summary["pieces"] = [pieces.get(k, np.nan) for k in keys]
    if names:
        summary["rep_name"] = [names.get(k, "") for k in keys]
    summary["colour"] = [colours.get(k) for k in keys]
    backtest_part = None
    if backtest_field:
        from .backtest import backtest, backtest_section, previous_field_of

        bt = backtest(accounts, backtest_field=backtest_field, territory_field=territory_field,
                      previous_field=previous_field_of(accounts, current_field),
                      balance_fields=balance_fields, centres=centres)  # fmt: skip
        backtest_part = backtest_section(bt, names=names)
        per = bt.table.set_index("territory")
        for tag in ("old", "new"):
            summary[f"{backtest_field}_{tag}"] = [
                per[f"{backtest_field}_{tag}"].get(k, np.nan) for k in keys
            ]
    comparison = None
    if compare_accounts is not None:
        comparison = compare_with(
            accounts, compare_accounts, id_field=id_field, territory_field=territory_field,
            compare_territory_field=compare_territory_field, balance_fields=balance_fields,
            names=plan_names, capacity=capacity, tolerance_pct=tolerance_pct,
        )  # fmt: skip
    active = active_column(accounts, active_field)
    map_note = ""
    unmapped = _unmapped_note(accounts, id_field) if map_png is None else ""
    if map_png is None and hasattr(accounts, "geometry") and accounts.geometry.notna().any():
        drawn = draw_plan_map(
            accounts, territory_field=territory_field, colours=colours, territories=territories,
            centres=centres, rep_names=names,
            moved=_moved_mask(accounts, territory_field, current_field),
        )  # fmt: skip
        map_png, map_note = drawn.png, drawn.note
    map_note = " ".join(t for t in (map_note, unmapped) if t)

    subtitle = [
        f"{len(summary)} territories",
        f"{len(accounts):,} {'areas' if areas else 'accounts'}",
    ]
    guidance = not areas or active is not None  # areas are not prospects: only with a count
    if names:
        subtitle.append("reps: " + ", ".join(f"{names[k]} ({k})" for k in keys if k in names))
    subtitle.append(
        (f"optimality gap {gap_pct:.2f}%" + (" (for these centres)" if scope == "these centres"
                                              else "")) if finite(gap_pct)
        else "optimality gap: not known"
    )  # fmt: skip
    subtitle.append(f"tolerance ±{tolerance_pct:g}%")
    parts = [html_head(title, subtitle=" · ".join(subtitle))]
    verdicts = _verdicts(summary, bal, measures, tolerance_pct, capacity, efficiency, active,
                         cap, pieces, disruption, revenue, source, guidance=guidance,
                         pieces_unknown=pieces_unknown)  # fmt: skip
    parts.append(_glance(verdicts))
    if map_png:
        parts.append(
            "<h2>Map</h2><figure class='keep' style='margin:0'>"
            f"<img id='map' alt='territory map' src='{png_data_uri(map_png)}'>"
            + (
                f"<figcaption id='map-note' class='note'>{html.escape(map_note)}</figcaption>"
                if map_note
                else ""
            )
            + "</figure>"
        )
    parts.append("<h2>KPIs against the plan's targets</h2>" + _kpi_table(verdicts))
    parts.append(f"<p id='targets' class='note'>{html.escape(_targets_text(source, cap))}</p>")
    if tier_note:
        parts.append(f"<p id='tiers' class='note'>{html.escape(tier_note)}</p>")
    if efficiency.note:
        parts.append(f"<p id='efficiency' class='note'>{html.escape(efficiency.note)}</p>")
    parts.append("<h2>Territories</h2>" + _territory_table(
        summary, territory_field, balance_fields, tolerance_pct, bool(capacity), active, cap,
        guidance=guidance, rows_noun="Areas" if areas else "Accounts"))  # fmt: skip
    prospects = (prospects_text(summary, active, cap) if guidance else
                 f"Guidance of {PROSPECTS_RANGE[0]}-{PROSPECTS_RANGE[1]} active prospects per "
                 "territory: not applied, this is a plan of areas; give ACTIVE_FIELD with each "
                 "area's number of active prospects to check it.")  # fmt: skip
    parts.append(f"<p id='prospects' class='note'>{html.escape(prospects)}</p>")
    for m in measures:
        png = _deviation_chart(summary, territory_field, m, tolerance_pct, colours, names,
                               bool(capacity))  # fmt: skip
        parts.append(
            f"<h2>Balance: {html.escape(plan_kpis.label(m))}</h2><img class='chart' "
            f"alt='{html.escape(plan_kpis.label(m))}: deviation from target' "
            f"src='{png_data_uri(png)}'>"
        )
    if disruption is not None:
        parts.append(
            "<h2>Disruption</h2><p id='disruption'>"
            + html.escape(disruption.text(plan_kpis.label(revenue) if revenue else "revenue"))
            + "</p>"
        )
    if backtest_part is not None:
        parts.append(backtest_part)
    if comparison is not None:
        other = _as_territory(compare_accounts, compare_territory_field, territory_field)
        other_efficiency = travel_efficiency(
            other, territory_field=territory_field, **efficiency_args
        )
        parts.append(comparison_section(comparison, [efficiency, other_efficiency]))
    if parameters:
        rows = "".join(
            f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
            for a, b in parameters.items()
        )
        parts.append(f"<h2>Parameters</h2><table id='parameters'>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts), summary


def is_plan_of_areas(rows: pd.DataFrame) -> bool:
    """True when the plan's rows are areas (polygons: a plan made from UNITS), not accounts."""
    return hasattr(rows, "geometry") and _validate.is_areas(rows.geometry)


def _unmapped_note(accounts: pd.DataFrame, id_field: str) -> str:
    """Log and return a note on the accounts without a geometry: counted, but not on the map."""
    count, where = _validate.without_geometry(accounts, id_field)
    if not count:
        return ""
    logger.warning(
        "ACCOUNTS: %d of %d accounts have a NULL or empty geometry: %s. They count in the "
        "totals and KPIs but are not on the map; give them a location or filter them out "
        "(Select by Expression: is_empty_or_null($geometry)).",
        count,
        len(accounts),
        where,
    )
    return f"{count} account(s) without a location are counted but not drawn."


def _plan_value(plan_summary, column: str, given):
    if given is not None or plan_summary is None or column not in plan_summary.columns:
        return given
    values = pd.to_numeric(plan_summary[column], errors="coerce").dropna()
    return float(values.iloc[0]) if len(values) else None


def _moved_mask(accounts, territory_field, current_field):
    if not current_field:
        return None
    return np.array([
        c is not None and c != t
        for t, c in zip(
            (plan_kpis.text_key(v) for v in accounts[territory_field]),
            (plan_kpis.text_key(v) for v in accounts[current_field]),
        )
    ])  # fmt: skip


@dataclass
class Verdict:
    """One KPI row: what, the value, the target and met/missed/- (``ok`` None = not judged)."""

    ident: str
    label: str
    value: str
    target: str
    ok: bool | None


def _verdicts(summary, bal, measures, tolerance_pct, capacity, efficiency, active, cap, pieces,
              disruption, revenue, source, *, guidance: bool = True,
              pieces_unknown: bool = False) -> list[Verdict]:  # fmt: skip
    out = []
    basis = "capacity-weighted target" if capacity else "target (the mean)"
    for m in measures:
        dev = summary[f"{m}_dev_pct"].to_numpy(float)
        inside = int((np.abs(dev) <= tolerance_pct + 0.005 + 1e-6).sum())
        out.append(Verdict(
            f"kpi-tolerance-{m}",
            f"{plan_kpis.label(m)}: territories within ±{tolerance_pct:g}% of their {basis}",
            f"{inside} of {len(summary)} (largest deviation {bal.max_dev_pct[m]:.1f}%)",
            "all", plan_kpis.within_tolerance(dev, tolerance_pct),
        ))  # fmt: skip
    for m in measures:
        if m == "accounts":
            continue
        goal = plan_kpis.cv_target(m)
        out.append(Verdict(
            f"kpi-cv-{m}",
            f"CV of {plan_kpis.label(m)}" + (" per unit of capacity" if capacity else ""),
            f"{bal.cv[m]:.3f}", "" if goal is None else f"< {goal:.2f}",
            plan_kpis.cv_verdict(bal.cv[m], m),
        ))  # fmt: skip
    out.append(_efficiency_verdict(efficiency))
    if guidance:  # (a plan of areas without an active-prospect count has none)
        column = "active_prospects" if active else "accounts"
        guided = _guided(summary)
        inside = plan_kpis.prospects_inside(summary[column].to_numpy(float), cap)[guided]
        lo, hi = PROSPECTS_RANGE
        out.append(Verdict(
            "kpi-prospects",
            "Territories within the active prospects guidance" + (
                "" if active else " (all accounts counted)") + (
                "" if guided.all() else " (geographic territories)"),
            f"{int(inside.sum())} of {int(guided.sum())}",
            f"{lo}-{hi} per FTE" if capacity else f"{lo}-{hi} each", bool(inside.all()),
        ))  # fmt: skip
    if disruption is not None:
        value = f"{disruption.moved:,} of {disruption.accounts:,} = {disruption.moved_pct:.1f}%"
        if disruption.revenue_moved_pct is not None:
            value += f" (revenue moved {disruption.revenue_moved_pct:.1f}%)"
        target = ""
        if disruption.budget_pct is not None:
            target = f"≤ {disruption.budget_pct:g}% ({disruption.budget_moves:,} {disruption.noun})"
        out.append(Verdict("kpi-disruption",
                           f"{disruption.noun.capitalize()} moved from their current territory",
                           value, target, disruption.within_budget))  # fmt: skip
    out.append(Verdict(
        "kpi-headcount", "Headcount",
        plan_kpis.headcount(capacity, len(summary)), "", None,
    ))  # fmt: skip
    if pieces:
        split = {k: n for k, n in pieces.items() if n > 1}
        value = "every territory in one piece" if not split else ", ".join(
            f"{k} in {n} pieces" for k, n in sorted(split.items()))  # fmt: skip
        out.append(Verdict("kpi-pieces", "Territories in one piece", value, "1 each",
                           not split))  # fmt: skip
    elif pieces_unknown:
        out.append(Verdict(
            "kpi-pieces", "Territories in one piece", "not judged from the accounts of a plan "
            "of areas: give TERRITORIES (its territories output) or report its areas",
            "1 each", None,
        ))  # fmt: skip
    return out


def _efficiency_verdict(efficiency: TravelEfficiency) -> Verdict:
    target = TARGETS["travel_efficiency"]
    goal = f"> {target:.0%}"
    if not efficiency.known or not math.isfinite(efficiency.overall):
        return Verdict("kpi-efficiency", "Travel efficiency", _short(efficiency), goal, None)
    per = efficiency.per_territory["travel_efficiency"].dropna()
    below = int((per <= target).sum())
    value = f"{efficiency.overall:.1%}"
    if len(per):
        value += (
            f" (lowest territory {per.min():.1%}; {below} of {len(per)} territories at or below)"
        )
    return Verdict("kpi-efficiency", "Travel efficiency", value, goal, efficiency.overall > target)


def _kpi_table(verdicts: Sequence[Verdict]) -> str:
    rows = []
    for v in verdicts:
        status = "" if v.ok is None else ("ok" if v.ok else "bad")
        rows.append(
            f"<tr id='{v.ident}'><td>{html.escape(v.label)}</td><td>{html.escape(v.value)}</td>"
            f"<td>{html.escape(v.target)}</td><td class='{status}'>{plan_kpis.verdict(v.ok)}</td>"
            "</tr>"
        )
    return (
        "<table id='kpis'><thead><tr><th>KPI</th><th>Value</th><th>Target</th><th>Status</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _glance(verdicts: Sequence[Verdict]) -> str:
    """The verdicts in one short list at the top of the page."""
    judged = [v for v in verdicts if v.ok is not None]
    missed = [v for v in judged if not v.ok]
    head = (
        f"All {len(judged)} targets met."
        if not missed
        else f"{len(judged) - len(missed)} of {len(judged)} targets met; missed: "
        + "; ".join(v.label for v in missed)
        + "."
    )
    css = "ok" if not missed else "bad"
    return f"<p id='glance' class='{css}'>{html.escape(head)}</p>"


def _targets_text(source: str, cap: np.ndarray) -> str:
    if not source:
        return (
            "Balance targets: every territory's target is the mean of the territories (no "
            "capacities found: give TERRITORIES or SUMMARY from Design territories to weight "
            "them by rep capacity)."
        )
    same = len(set(np.round(cap, 9))) <= 1
    text = (
        f"Balance: {WEIGHTED_NOTE} from {source} (each territory's target = the total × its "
        f"capacity / the sum of capacities, {cap.sum():g} FTE); the CVs are of the totals per "
        "unit of capacity, as Design territories reports them."
    )
    if same:
        text += " Every territory has the same capacity, so each target is the mean."
    return text


def _territory_table(summary, territory_field, balance_fields, tolerance_pct, weighted, active,
                     cap, *, guidance: bool = True, rows_noun: str = "Accounts") -> str:  # fmt: skip
    header = ["Territory"]
    has_names = "rep_name" in summary.columns
    if has_names:
        header.append("Rep")
    if weighted:
        header.append("Capacity (FTE)")
    if "quota" in summary.columns:
        header.append("Quota")
    header.append(rows_noun)
    for f in balance_fields:
        header += [plan_kpis.label(f), "vs target"]
    if guidance:
        header += ["Active prospects" if active else "Accounts", "Guidance"]
    if "travel_efficiency" in summary.columns:
        header.append("Travel efficiency")
    if "pieces" in summary.columns:
        header.append("Pieces")
    lo, hi = plan_kpis.prospects_range(cap)
    guided = _guided(summary)
    rows = []
    for i, (_, r) in enumerate(summary.iterrows()):
        colour = r.get("colour") or "#999999"
        swatch = f"<span class='swatch' style='background:{colour}'></span>"
        row = [swatch + html.escape(str(r[territory_field]))]
        if has_names:
            row.append(html.escape(str(r["rep_name"])))
        if weighted:
            row.append(fmt(float(r["capacity"]), digits=2))
        if "quota" in summary.columns:
            row.append(fmt(r["quota"], digits=0))
        row.append(fmt(int(r["accounts"])))
        for f in balance_fields:
            dev = float(r[f"{f}_dev_pct"])
            ok = abs(dev) <= tolerance_pct + 0.005
            row += [fmt(float(r[f"{f}_total"]), digits=0), (f"{dev:+.1f}%", "ok" if ok else "bad")]
        n = int(r["active_prospects" if active else "accounts"])
        if guidance and guided[i]:
            inside = lo[i] - 1e-9 <= n <= hi[i] + 1e-9
            row += [(f"{n:,}", "ok" if inside else "bad"), f"{lo[i]:,.0f}-{hi[i]:,.0f}"]
        elif guidance:  # a named-account book: not held to the prospects guidance
            row += [f"{n:,}", "named"]
        if "travel_efficiency" in summary.columns:
            v = r["travel_efficiency"]
            row.append("-" if pd.isna(v) else f"{v:.1%}")
        if "pieces" in summary.columns:
            has_area = finite(r["pieces"]) and (guided[i] or r["pieces"] > 0)
            row.append(fmt(r["pieces"]) if has_area else "-")  # a named book has no area
        rows.append(row)
    numeric = set(range(1 + has_names, len(header)))
    from .htmlpage import table

    return table(header, rows, table_id="summary", numeric=numeric)


def _guided(summary: pd.DataFrame) -> np.ndarray:
    """Territories held to the active-prospects guidance: all but named-account territories
    (enterprise books of a coverage model are sized by relationship, not by prospect count)."""
    if "tier" not in summary.columns:
        return np.ones(len(summary), bool)
    return (summary["tier"].astype(str) != plan_kpis.NAMED_TIER).to_numpy()


def prospects_text(summary: pd.DataFrame, active: str | None, capacity=None) -> str:
    """The guidance sentence: 80-120 active prospects per FTE, how many territories are outside."""
    lo, hi = PROSPECTS_RANGE
    column = "active_prospects" if active else "accounts"
    cap = np.ones(len(summary)) if capacity is None else np.asarray(capacity, dtype=float)
    guided = _guided(summary)
    inside = plan_kpis.prospects_inside(summary[column].to_numpy(float), cap) | ~guided
    what = (
        f"counted from {active}: true, 1 or yes"
        if active
        else "no ACTIVE_FIELD: every account counts as an active prospect"
    )
    scaled = (
        " per full-time rep, scaled by each territory's capacity"
        if len(set(np.round(cap, 9))) > 1
        else ""
    )
    named = int((~guided).sum())
    return (
        f"Guidance: {lo}-{hi} active prospects per territory{scaled} ({what}); "
        f"{int((~inside).sum())} of {int(guided.sum())} territories outside"
        + (f" ({named} named-account territories are not held to it)." if named else ".")
    )


# ----------------------------------------------------------------------------- comparison


def compare_with(
    accounts: pd.DataFrame,
    other: pd.DataFrame,
    *,
    id_field: str = "id",
    territory_field: str = "territory_id",
    compare_territory_field: str = "territory_id",
    balance_fields: Sequence[str] = (),
    names: Sequence[str] = ("this plan", "second plan"),
    capacity: Mapping[str, float] | None = None,
    tolerance_pct: float | None = None,
):
    """:func:`compare.compare_plans` of this plan (the baseline) and a second plan of the accounts.

    The second plan's territory is read from ``compare_territory_field``; balance fields it lacks
    are taken from this plan by account id. The revenue field (if any) is compared first, so that
    the ``moved_<field>`` KPI is the revenue that changes territory. ``capacity`` (this plan's)
    also weighs the second plan's targets where its territories have the same ids.
    """
    if len(other) == 0:
        raise InvalidInputError("COMPARE_ACCOUNTS is empty: give the second plan's accounts.")
    _require(accounts, id_field, "ID_FIELD")
    _require(other, id_field, "ID_FIELD", "the second plan (COMPARE_ACCOUNTS)")
    _require(
        other,
        compare_territory_field,
        "COMPARE_TERRITORY_FIELD",
        "the second plan (COMPARE_ACCOUNTS)",
    )
    second = _as_territory(other, compare_territory_field, territory_field)
    lookup = None
    for f in balance_fields:
        if f not in second.columns:
            if lookup is None:
                keys = [plan_kpis.text_key(v) for v in accounts[id_field]]
                lookup = accounts.assign(_key=keys).drop_duplicates("_key").set_index("_key")
            second[f] = [
                lookup[f].get(plan_kpis.text_key(v), np.nan) for v in second[id_field].to_numpy()
            ]
    capacities = None
    if capacity:
        ids = {plan_kpis.text_key(v) for v in second[territory_field]} - {None}
        capacities = [capacity, capacity if ids <= set(capacity) else None]
    ordered = sorted(balance_fields, key=lambda f: "revenue" not in f)
    first = accounts.drop(columns=["capacity"], errors="ignore")
    second = second.drop(columns=["capacity"], errors="ignore")
    return compare.compare_plans(
        [first, second],
        names=list(names),
        id_field=id_field,
        territory_field=territory_field,
        balance_fields=ordered,
        capacities=capacities,
        tolerance_pct=tolerance_pct,
    )


def comparison_section(
    comparison, efficiencies: Sequence[TravelEfficiency] = (), *, max_rows: int = 50
) -> str:
    """HTML section "Comparison with the second plan": KPIs side by side, accounts that differ."""
    names = comparison.names
    extra = []
    if efficiencies:
        target = TARGETS["travel_efficiency"]
        cells = []
        for e in efficiencies:
            known = e.known and math.isfinite(e.overall)
            status = ("ok" if e.overall > target else "bad") if known else ""
            cells.append(f"<td class='num {status}'>{f'{e.overall:.1%}' if known else '-'}</td>")
        extra.append(("Travel efficiency", cells, f"&gt; {target:.0%}"))
    parts = [
        "<h2 id='comparison'>Comparison with the second plan</h2><table id='comparison-kpis'>"
        "<thead><tr><th>KPI</th>"
        + "".join(f"<th class='num'>{html.escape(n)}</th>" for n in names)
        + "<th>Target</th></tr></thead><tbody>"
        + compare.kpi_rows(comparison, extra=extra)
        + "</tbody></table>",
        f"<p class='note'>{html.escape(compare.targets_sentence(comparison))}</p>",
    ]
    k = comparison.kpis
    revenue_moved = None
    if comparison.balance_fields and f"moved_{comparison.balance_fields[0]}" in k.columns:
        revenue_moved = k[f"moved_{comparison.balance_fields[0]}"].iloc[-1]
    diff = comparison.differences
    both = diff[diff["in_all_plans"]]
    moved = diff[diff["changed"]]
    text = (
        f"{len(moved):,} of {len(both):,} accounts in both plans are in a different territory in "
        f"'{names[1]}'"
    )
    if revenue_moved is not None and finite(revenue_moved):
        text += f"; their {plan_kpis.label(comparison.balance_fields[0]).lower()}: " + (
            f"{float(revenue_moved):,.0f}"
        )
    text += "."
    missing = len(diff) - len(both)
    if missing:
        text += f" {missing} account(s) are in one plan only."
    parts.append(f"<p id='comparison-moved'>{html.escape(text)}</p>")
    if len(moved):
        parts.append(moved.head(max_rows).drop(columns=["in_all_plans", "changed"]).to_html(
            index=False, table_id="comparison-differences", na_rep="-"
        ))  # fmt: skip
        if len(moved) > max_rows:
            parts.append(f"<p>First {max_rows} of {len(moved)} shown.</p>")
    parts.append(bullet_list(comparison.notes, list_id="comparison-notes"))
    return "".join(parts)


def _as_territory(frame: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """A copy of ``frame`` whose ``target`` column holds the territory read from ``source``."""
    out = frame.copy()
    if source != target:
        out[target] = out[source]
    return out


def _short(efficiency: TravelEfficiency) -> str:
    """The KPI cell of an unknown efficiency: the standard sentence, or the note saying why."""
    if efficiency.note.startswith(EFFICIENCY_UNKNOWN):
        return EFFICIENCY_UNKNOWN
    return efficiency.note


def _require(df: pd.DataFrame, field: str, key: str, where: str = "the accounts") -> None:
    if field not in df.columns:
        raise InvalidInputError(
            f"{key}: field {field!r} is not in {where}; fields are "
            f"{', '.join(str(c) for c in df.columns if c != 'geometry')}."
        )


def _check(df: pd.DataFrame, field: str, others: Sequence[str]) -> None:
    for name, key in [(field, "TERRITORY_FIELD")] + [(f, "BALANCE_FIELDS") for f in others]:
        if name not in df.columns:
            raise InvalidInputError(
                f"{key}: field {name!r} is not in the accounts; fields are {', '.join(map(str, df.columns))}."
            )


def _deviation_chart(summary, territory_field, measure, tolerance_pct, colours, names,
                     weighted) -> bytes:  # fmt: skip
    """Each territory's deviation from its target (%) as bars in the territory's colour, the
    ±tolerance band shaded; bars outside the band are hatched and labelled in red."""
    dev = summary[f"{measure}_dev_pct"].astype(float).to_numpy()
    keys = [plan_kpis.text_key(v) for v in summary[territory_field]]
    ticks = [f"{k}\n{names[k]}" if k in names else str(k) for k in keys]
    fig = agg_figure(7.5, 3.4)
    ax = fig.subplots()
    x = np.arange(len(keys))
    ax.axhspan(-tolerance_pct, tolerance_pct, color="#d9ead3", alpha=0.9,
               label=f"within ±{tolerance_pct:g}% of target")  # fmt: skip
    ax.axhline(0, color="black", lw=1)
    outside = np.abs(dev) > tolerance_pct + 0.005
    bars = ax.bar(x, dev, color=[colours.get(k, "#999999") for k in keys], edgecolor="#333333",
                  width=0.6)  # fmt: skip
    for bar, out in zip(bars, outside):
        if out:
            bar.set_hatch("//")
            bar.set_edgecolor("#b30000")
    for xi, d, out in zip(x, dev, outside):
        ax.annotate(f"{d:+.1f}%", (xi, d), textcoords="offset points",
                    xytext=(0, 4 if d >= 0 else -11), ha="center", fontsize=8,
                    color="#b30000" if out else "#222222")  # fmt: skip
    top = max(tolerance_pct * 1.6, float(np.abs(dev).max()) * 1.25 if len(dev) else 1.0)
    ax.set_ylim(-top, top)
    ax.set_xticks(x)
    ax.set_xticklabels(ticks, fontsize=8)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    basis = "capacity-weighted target" if weighted else "target (the mean)"
    ax.set_ylabel(f"% above / below {basis}", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    return figure_png(fig)
