"""Self-contained HTML report of a territory plan: KPIs against targets, balance charts, disruption.

Takes any accounts table with a territory field; the map comes in as PNG bytes (rendered by the
QGIS wrapper). Charts use matplotlib's Agg backend; images are embedded as base64.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InvalidInputError
from .territories import STRAIGHT_LINE_KMH

logger = logging.getLogger(__name__)

TARGETS = {"revenue_cv": 0.10, "workload_cv": 0.15, "travel_efficiency": 0.75}
PROSPECTS_RANGE = (80, 120)
ASSUMED_SPEED_KMH = STRAIGHT_LINE_KMH  # centre_km -> minutes when the accounts have no centre_min
ACTIVE_DEFAULT = "active_prospect"  # counted without ACTIVE_FIELD when the accounts have it
_TRUE_WORDS = {"true", "t", "yes", "y", "1"}
EFFICIENCY_UNKNOWN = "not known (give VISIT_MINUTES and VISITS_FIELD)"
SUMMARY_COLUMNS = ("territory_id", "capacity")  # the summary output of designterritories
WEIGHTED_NOTE = "targets weighted by rep capacity from SUMMARY"


def territory_summary(
    accounts: pd.DataFrame,
    *,
    territory_field: str,
    balance_fields: Sequence[str] = (),
    active_field: str | None = None,
) -> pd.DataFrame:
    """One row per territory: ``accounts`` count and the total of each balance field.

    ``active_prospects`` counts the accounts whose ``active_field`` is true/1/yes; without
    ``active_field`` the ``active_prospect`` field is used when the accounts have one.
    """
    _check(accounts, territory_field, balance_fields)
    active = active_column(accounts, active_field)
    grouped = accounts.groupby(territory_field, sort=True, dropna=True)
    out = pd.DataFrame({"accounts": grouped.size()})
    for f in balance_fields:
        out[f"{f}_total"] = grouped[f].sum()
    if active:
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


def kpis(
    accounts: pd.DataFrame,
    *,
    territory_field: str,
    balance_fields: Sequence[str] = (),
    current_field: str | None = None,
    revenue_field: str | None = None,
    plan_summary: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Coefficient of variation per balance field (``cv_<field>``), accounts and revenue moved.

    With ``plan_summary`` (the summary output of Design territories, see
    :func:`weight_by_capacity`) the CV is that of each territory's total per unit of capacity,
    as Design territories computes it; without it, that of the totals.
    """
    summary = territory_summary(
        accounts, territory_field=territory_field, balance_fields=balance_fields
    )
    if plan_summary is not None:
        summary = weight_by_capacity(
            summary,
            plan_summary,
            territory_field=territory_field,
            balance_fields=balance_fields,
            warn=False,
        )
    out: dict[str, float] = {"territories": float(len(summary))}
    for f in balance_fields:
        totals = summary[f"{f}_total"].astype(float)
        if plan_summary is not None:
            totals = totals / summary["capacity"].astype(float)
        out[f"cv_{f}"] = (
            float(totals.std(ddof=0) / totals.mean()) if totals.mean() else float("nan")
        )
    if current_field:
        _check(accounts, current_field, ())
        moved = accounts[territory_field].astype(str) != accounts[current_field].astype(str)
        out["accounts_moved"] = float(moved.sum())
        if revenue_field and revenue_field in accounts.columns:
            out["revenue_moved"] = float(accounts.loc[moved, revenue_field].sum())
    return out


def read_capacities(plan_summary: pd.DataFrame) -> pd.DataFrame:
    """Capacity (and quota) per territory from Design territories' summary table (SUMMARY).

    Returns a frame indexed by the territory's text key (``1.0`` -> ``'1'``) with the
    ``territory_id`` as given, a ``capacity`` (> 0) and, when the table has one, a ``quota``.
    """
    from . import compare  # compare imports this module

    missing = [c for c in SUMMARY_COLUMNS if c not in plan_summary.columns]
    if missing:
        fields = ", ".join(str(c) for c in plan_summary.columns if c not in ("geometry", "fid"))
        raise InvalidInputError(
            f"SUMMARY: the table has no {' or '.join(missing)} field; give the summary output of "
            "Design territories (OUTPUT_SUMMARY), which has one row per territory with the fields "
            f"territory_id and capacity. Its fields are: {fields or 'none'}."
        )
    keys = [compare._key(v) for v in plan_summary["territory_id"]]
    if any(k is None for k in keys):
        raise InvalidInputError(
            f"SUMMARY: {sum(k is None for k in keys)} row(s) have no territory_id; give one "
            "territory_id per row."
        )
    seen, twice = set(), []
    for k in keys:
        if k in seen and k not in twice:
            twice.append(k)
        seen.add(k)
    if twice:
        raise InvalidInputError(
            f"SUMMARY: territory_id {', '.join(twice[:10])} appear(s) in more than one row; "
            "give one row per territory."
        )
    capacity = pd.to_numeric(plan_summary["capacity"], errors="coerce").astype(float)
    bad = capacity.isna() | ~np.isfinite(capacity) | (capacity <= 0)
    if bad.any():
        names = [keys[i] for i in np.flatnonzero(bad.to_numpy())][:10]
        raise InvalidInputError(
            f"SUMMARY: capacity must be a positive number for every territory; it is not for "
            f"{', '.join(names)}."
        )
    out = pd.DataFrame(
        {
            "territory_id": plan_summary["territory_id"].to_numpy(),
            "capacity": capacity.to_numpy(),
        },
        index=pd.Index(keys, name="key"),
    )
    if "quota" in plan_summary.columns:
        out["quota"] = (
            pd.to_numeric(plan_summary["quota"], errors="coerce").astype(float).to_numpy()
        )
    return out


def weight_by_capacity(
    summary: pd.DataFrame,
    plan_summary: pd.DataFrame,
    *,
    territory_field: str = "territory_id",
    balance_fields: Sequence[str] = (),
    warn: bool = True,
) -> pd.DataFrame:
    """Add capacity-weighted targets to a :func:`territory_summary` frame.

    ``plan_summary`` is Design territories' summary table (``territory_id``, ``capacity``,
    optional ``quota``). Each territory gets its ``capacity`` (and ``quota``) and, per balance
    field, ``<field>_target`` = total × capacity / sum of capacities and ``<field>_dev_pct`` =
    100 × (total / target - 1), as Design territories reports them. Territories of the accounts
    missing from the summary count with capacity 1; territories of the summary without accounts
    are listed with 0 accounts (both with a warning when ``warn``).
    """
    from . import compare  # compare imports this module

    table = read_capacities(plan_summary)
    out = summary.copy()
    keys = [compare._key(v) for v in out[territory_field]]
    known = set(keys)
    not_in_summary = [str(v) for v, k in zip(out[territory_field], keys) if k not in table.index]
    only_summary = table[~table.index.isin(known)]
    if warn and not_in_summary:
        logger.warning(
            "SUMMARY has no row for territory(ies) %s of ACCOUNTS; they count with capacity 1.",
            ", ".join(not_in_summary[:20]),
        )
    if warn and len(only_summary):
        logger.warning(
            "SUMMARY lists territory(ies) %s that no account of ACCOUNTS is in; they are listed "
            "with 0 accounts.",
            ", ".join(str(v) for v in only_summary["territory_id"][:20]),
        )
    if len(only_summary):
        extra = pd.DataFrame({territory_field: only_summary["territory_id"].to_numpy()})
        for column in out.columns:
            if column != territory_field:
                extra[column] = 0
        out = pd.concat([out, extra], ignore_index=True)
        keys += list(only_summary.index)
    capacity = pd.Series([table["capacity"].get(k, 1.0) for k in keys], index=out.index)
    position = out.columns.get_loc("accounts") + 1 if "accounts" in out.columns else 1
    out.insert(position, "capacity", capacity.astype(float))
    if "quota" in table.columns:
        out.insert(
            position + 1,
            "quota",
            [table["quota"].get(k, np.nan) for k in keys],
        )
    share = capacity.astype(float) / capacity.sum()
    for f in balance_fields:
        totals = out[f"{f}_total"].astype(float)
        target = totals.sum() * share
        dev = (100.0 * (totals / target.where(target != 0) - 1.0)).fillna(0.0)
        out[f"{f}_target"] = target.round(2)
        out[f"{f}_dev_pct"] = dev.round(2)
    return out


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
) -> tuple[str, pd.DataFrame]:
    """Return ``(html, summary)``; the HTML embeds every image (base64) and needs no other file.

    Without ``plan_summary`` every territory's target is the mean; with it (the summary output
    of Design territories: ``territory_id``, ``capacity``, optional ``quota``) targets are
    weighted by capacity, the CVs are those of the totals per unit of capacity and the summary
    gains ``capacity``, ``quota`` and ``<field>_target`` / ``<field>_dev_pct`` columns (see
    :func:`weight_by_capacity`).

    ``active_field`` marks the active prospects counted against the 80-120 guidance;
    ``visit_minutes`` / ``visit_minutes_field`` and ``visits_field`` give the travel efficiency
    (see :func:`travel_efficiency`); ``compare_accounts`` (a second plan of the same accounts,
    matched on ``id_field``, territory in ``compare_territory_field``) adds a comparison section.
    """
    if len(accounts) == 0:
        raise InvalidInputError("ACCOUNTS is empty: there is nothing to report.")
    summary = territory_summary(
        accounts,
        territory_field=territory_field,
        balance_fields=balance_fields,
        active_field=active_field,
    )
    weighted = plan_summary is not None
    if weighted:
        summary = weight_by_capacity(
            summary, plan_summary, territory_field=territory_field, balance_fields=balance_fields
        )
    revenue = next((f for f in balance_fields if "revenue" in f), None)
    k = kpis(
        accounts,
        territory_field=territory_field,
        balance_fields=balance_fields,
        current_field=current_field,
        revenue_field=revenue,
        plan_summary=plan_summary,
    )
    efficiency_args = {
        "visit_minutes": visit_minutes,
        "visit_minutes_field": visit_minutes_field,
        "visits_field": visits_field,
    }
    efficiency = travel_efficiency(accounts, territory_field=territory_field, **efficiency_args)
    if efficiency.known:
        per = efficiency.per_territory.set_index(territory_field)["travel_efficiency"]
        summary["travel_efficiency"] = summary[territory_field].map(per)
    comparison = None
    if compare_accounts is not None:
        comparison = compare_with(
            accounts,
            compare_accounts,
            id_field=id_field,
            territory_field=territory_field,
            compare_territory_field=compare_territory_field,
            balance_fields=balance_fields,
            names=plan_names,
        )
    active = active_column(accounts, active_field)
    parts = [html_head(title)]
    if map_png:
        parts.append(
            f"<h2>Map</h2><img id='map' alt='territory map' src='{png_data_uri(map_png)}'>"
        )
    parts.append(
        "<h2>KPIs against targets</h2><table id='kpis'><tr><th>KPI</th><th>Value</th><th>Target</th><th>Status</th></tr>"
    )
    for f in balance_fields:
        target = cv_target(f)
        value = k[f"cv_{f}"]
        status = "" if target is None else ("ok" if value < target else "bad")
        label = f"CV of {f}" + (" per unit of capacity" if weighted else "")
        parts.append(_kpi_row(label, f"{value:.3f}", target, status, "&lt;"))
    if weighted:
        for f in balance_fields:
            parts.append(_tolerance_row(summary, f, tolerance_pct))
    parts.append(_efficiency_row(efficiency))
    parts.append(_prospects_row(summary, active))
    parts.append("</table>")
    if weighted:
        parts.append(f"<p id='targets'>{html.escape(_weighted_text(summary))}</p>")
    if efficiency.note:
        parts.append(f"<p id='efficiency'>{html.escape(efficiency.note)}</p>")
    formatters = {"travel_efficiency": lambda v: "-" if pd.isna(v) else f"{v:.1%}"}
    parts.append(
        "<h2>Accounts per territory</h2>"
        + summary.to_html(
            index=False,
            table_id="summary",
            float_format=lambda v: f"{v:,.1f}",
            formatters=formatters,
            na_rep="-",
        )
    )
    parts.append(f"<p id='prospects'>{html.escape(prospects_text(summary, active))}</p>")
    for f in balance_fields:
        parts.append(
            f"<h2>Balance: {html.escape(f)}</h2><img class='chart' alt='{html.escape(f)} chart' src='"
            + png_data_uri(
                _bar_chart(
                    summary,
                    territory_field,
                    f"{f}_total",
                    tolerance_pct,
                    f"{f}_target" if weighted else None,
                )
            )
            + "'>"
        )
    if current_field:
        parts.append(
            f"<h2>Disruption</h2><p id='disruption'>Accounts moved: {int(k['accounts_moved'])} of {len(accounts)}"
            + (f"; revenue moved: {k['revenue_moved']:,.0f}" if "revenue_moved" in k else "")
            + "</p>"
        )
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


def prospects_text(summary: pd.DataFrame, active: str | None) -> str:
    """The 80-120 guidance sentence: how many territories are outside, and what was counted."""
    lo, hi = PROSPECTS_RANGE
    column = "active_prospects" if active else "accounts"
    counts = summary[column]
    outside = summary[(counts < lo) | (counts > hi)]
    what = (
        f"counted from {active}: true, 1 or yes"
        if active
        else "no ACTIVE_FIELD: every account counts as an active prospect"
    )
    return (
        f"Guidance: {lo}-{hi} active prospects per territory ({what}); "
        f"{len(outside)} of {len(summary)} territories outside."
    )


def compare_with(
    accounts: pd.DataFrame,
    other: pd.DataFrame,
    *,
    id_field: str = "id",
    territory_field: str = "territory_id",
    compare_territory_field: str = "territory_id",
    balance_fields: Sequence[str] = (),
    names: Sequence[str] = ("this plan", "second plan"),
):
    """:func:`compare.compare_plans` of this plan (the baseline) and a second plan of the accounts.

    The second plan's territory is read from ``compare_territory_field``; balance fields it lacks
    are taken from this plan by account id. The revenue field (if any) is compared first, so that
    the ``moved_<field>`` KPI is the revenue that changes territory.
    """
    from . import compare  # compare imports this module

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
                keys = [compare._key(v) for v in accounts[id_field]]
                lookup = accounts.assign(_key=keys).drop_duplicates("_key").set_index("_key")
            second[f] = [
                lookup[f].get(compare._key(v), np.nan) for v in second[id_field].to_numpy()
            ]
    ordered = sorted(balance_fields, key=lambda f: "revenue" not in f)
    return compare.compare_plans(
        [accounts, second],
        names=list(names),
        id_field=id_field,
        territory_field=territory_field,
        balance_fields=ordered,
    )


COMPARISON_LABELS = {
    "territories": "Territories",
    "accounts": "Accounts",
    "unassigned": "Accounts without a territory",
    "max_deviation_pct": "Largest deviation from the mean (%)",
    "compactness_km": "Compactness: mean km to territory centroid",
    "moved_vs_baseline": "Accounts in another territory than in this plan",
    "moved_share_pct": "Accounts in another territory (%)",
}


def comparison_section(
    comparison, efficiencies: Sequence[TravelEfficiency] = (), *, max_rows: int = 50
) -> str:
    """HTML section "Comparison with the second plan": KPIs side by side, accounts that differ."""
    from . import compare  # compare imports this module

    k = comparison.kpis
    names = comparison.names
    parts = [
        "<h2 id='comparison'>Comparison with the second plan</h2><table id='comparison-kpis'>"
        "<tr><th>KPI</th>"
        + "".join(f"<th>{html.escape(n)}</th>" for n in names)
        + "<th>Target</th></tr>"
    ]
    revenue_moved = None
    for column in k.columns:
        if column in ("plan", "common_with_baseline"):
            continue
        label, target = COMPARISON_LABELS.get(column, column), None
        if column.startswith("cv_"):
            label = f"CV of {column[3:]}"
            target = cv_target(column[3:]) if comparison.balance_fields else None
        elif column == "travel_total":
            label = f"Travel total ({comparison.travel_field}, one way)"
        elif column.startswith("moved_") and column not in COMPARISON_LABELS:
            label = f"{column[6:]} in another territory"
            if "revenue" in column:
                revenue_moved = k[column].iloc[-1]
        cells = []
        for value in k[column]:
            status = ""
            if target is not None and compare._finite(value):
                status = "ok" if value < target else "bad"
            cells.append(f"<td class='{status}'>{compare._fmt(value)}</td>")
        parts.append(
            f"<tr><td>{html.escape(label)}</td>{''.join(cells)}"
            f"<td>{'' if target is None else f'&lt; {target:.2f}'}</td></tr>"
        )
    if efficiencies:
        target = TARGETS["travel_efficiency"]
        cells = []
        for e in efficiencies:
            known = e.known and math.isfinite(e.overall)
            status = ("ok" if e.overall > target else "bad") if known else ""
            cells.append(f"<td class='{status}'>{f'{e.overall:.1%}' if known else '-'}</td>")
        parts.append(
            f"<tr><td>Travel efficiency</td>{''.join(cells)}<td>&gt; {target:.0%}</td></tr>"
        )
    parts.append("</table>")
    diff = comparison.differences
    both = diff[diff["in_all_plans"]]
    moved = diff[diff["changed"]]
    text = (
        f"{len(moved)} of {len(both)} accounts in both plans are in a different territory in "
        f"'{names[1]}'"
    )
    if revenue_moved is not None and compare._finite(revenue_moved):
        text += f"; their revenue ({comparison.balance_fields[0]}): {float(revenue_moved):,.0f}"
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
    if comparison.notes:
        parts.append(
            "<ul id='comparison-notes'>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in comparison.notes)
            + "</ul>"
        )
    return "".join(parts)


def _as_territory(frame: pd.DataFrame, source: str, target: str) -> pd.DataFrame:
    """A copy of ``frame`` whose ``target`` column holds the territory read from ``source``."""
    out = frame.copy()
    if source != target:
        out[target] = out[source]
    return out


def _weighted_text(summary: pd.DataFrame) -> str:
    """The sentence saying how the targets were set from SUMMARY."""
    text = (
        f"Balance: {WEIGHTED_NOTE} (each territory's target = the total × its capacity / the sum "
        f"of capacities, {summary['capacity'].sum():g}); the CVs are of the totals per unit of "
        "capacity."
    )
    if "quota" in summary.columns:
        text += " Quota per territory from SUMMARY."
    return text


def _tolerance_row(summary: pd.DataFrame, field: str, tolerance_pct: float) -> str:
    """KPI row: territories within ±TOLERANCE of their capacity-weighted target."""
    dev = summary[f"{field}_dev_pct"].astype(float)
    inside = int((dev.abs() <= tolerance_pct + 1e-9).sum())
    status = "ok" if inside == len(summary) else "bad"
    label = f"Territories within ±{tolerance_pct:g}% of their {field} target"
    value = f"{inside} of {len(summary)} (largest deviation {dev.abs().max():.1f}%)"
    return (
        f"<tr><td>{html.escape(label)}</td><td>{value}</td><td>all</td>"
        f"<td class='{status}'>{'met' if status == 'ok' else 'missed'}</td></tr>"
    )


def _kpi_row(label: str, value: str, target: float | None, status: str, op: str) -> str:
    words = {"ok": "met", "bad": "missed", "": "-"}
    target_text = "" if target is None else f"{op} {target:.2f}"
    return (
        f"<tr><td>{html.escape(label)}</td><td>{value}</td><td>{target_text}</td>"
        f"<td class='{status}'>{words[status]}</td></tr>"
    )


def _efficiency_row(efficiency: TravelEfficiency) -> str:
    target = TARGETS["travel_efficiency"]
    if not efficiency.known or not math.isfinite(efficiency.overall):
        return (
            f"<tr id='kpi-efficiency'><td>Travel efficiency</td><td>{_short(efficiency)}</td>"
            f"<td>&gt; {target:.0%}</td><td>-</td></tr>"
        )
    per = efficiency.per_territory["travel_efficiency"].dropna()
    below = int((per <= target).sum())
    value = f"{efficiency.overall:.1%}"
    if len(per):
        value += (
            f" (lowest territory {per.min():.1%}; {below} of {len(per)} territories at or below)"
        )
    status = "ok" if efficiency.overall > target else "bad"
    words = {"ok": "met", "bad": "missed"}
    return (
        f"<tr id='kpi-efficiency'><td>Travel efficiency</td><td>{value}</td>"
        f"<td>&gt; {target:.0%}</td><td class='{status}'>{words[status]}</td></tr>"
    )


def _short(efficiency: TravelEfficiency) -> str:
    """The KPI cell of an unknown efficiency: the standard sentence, or the note saying why."""
    if efficiency.note.startswith(EFFICIENCY_UNKNOWN):
        return html.escape(EFFICIENCY_UNKNOWN)
    return html.escape(efficiency.note)


def _prospects_row(summary: pd.DataFrame, active: str | None) -> str:
    lo, hi = PROSPECTS_RANGE
    column = "active_prospects" if active else "accounts"
    counts = summary[column]
    inside = int(((counts >= lo) & (counts <= hi)).sum())
    label = "Territories within the active prospects guidance" + (
        "" if active else " (all accounts counted)"
    )
    status = "ok" if inside == len(summary) else "bad"
    return (
        f"<tr id='kpi-prospects'><td>{html.escape(label)}</td><td>{inside} of {len(summary)}</td>"
        f"<td>{lo}-{hi} each</td><td class='{status}'>{'met' if status == 'ok' else 'missed'}</td></tr>"
    )


def cv_target(field: str) -> float | None:
    """The published CV target of a balance field (revenue < 0.10, workload/visits < 0.15), or None."""
    if "revenue" in field:
        return TARGETS["revenue_cv"]
    if "workload" in field or "visit" in field:
        return TARGETS["workload_cv"]
    return None


def html_head(title: str) -> str:
    """Start of a report page: doctype, title, the shared style and the ``<h1>``."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:3px 8px}.ok{color:#006d2c}.bad{color:#b30000}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
    )


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, to embed an image in a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def agg_figure(width: float, height: float):
    """A matplotlib Figure on the Agg backend (no GUI, safe in worker threads)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib Figure (tight layout)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


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


def _bar_chart(
    summary: pd.DataFrame,
    territory_field: str,
    column: str,
    tolerance_pct: float,
    target_column: str | None = None,
) -> bytes:
    """Bars of ``column`` per territory against the target (the mean, or ``target_column`` per
    territory) and the ±``tolerance_pct`` band."""
    from . import palette

    values = summary[column].astype(float).to_numpy()
    labels = summary[territory_field].astype(str).tolist()
    colours = palette.assign_colours(labels)
    fig = agg_figure(7, 3.5)
    ax = fig.subplots()
    if target_column is None:
        target = float(np.mean(values)) if len(values) else 0.0
        ax.axhspan(
            target * (1 - tolerance_pct / 100),
            target * (1 + tolerance_pct / 100),
            color="#cccccc",
            alpha=0.6,
            label=f"target ±{tolerance_pct:g}%",
        )
    else:
        targets = summary[target_column].astype(float).to_numpy()
        x = np.arange(len(labels))
        ax.bar(
            x,
            2 * targets * tolerance_pct / 100,
            bottom=targets * (1 - tolerance_pct / 100),
            width=1.0,
            color="#cccccc",
            alpha=0.6,
            label=f"target ±{tolerance_pct:g}%",
        )
    bars = [colours[x] for x in labels]
    if target_column is None:
        ax.bar(labels, values, color=bars, edgecolor="#333333")
        ax.axhline(target, color="black", lw=1, ls="--", label="target (mean)")
    else:
        ax.bar(x, values, color=bars, edgecolor="#333333")
        ax.hlines(
            targets, x - 0.5, x + 0.5, color="black", lw=1, ls="--", label="target (by capacity)"
        )
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
    ax.set_ylabel(column)
    ax.legend(loc="lower right", fontsize=8)
    return figure_png(fig)
