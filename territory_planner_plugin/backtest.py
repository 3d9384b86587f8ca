"""Back-test: each rep's book under the new plan against the old one, on last period's results.

For every territory (rep) of either plan: accounts, the balanced measures (potential, workload),
the back-test field (e.g. revenue_last_year) and straight-line travel to the rep's home or
centre, old and new. Missing back-test values count as 0 and are reported.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InvalidInputError
from .kpis import label, text_key

logger = logging.getLogger(__name__)

__all__ = ["BackTest", "backtest", "backtest_section", "previous_field_of"]

PREVIOUS_FIELDS = ("previous_territory_id", "current_territory")  # read in this order


@dataclass
class BackTest:
    """Per-rep table (old and new book), the field, missing values and what the travel is."""

    table: pd.DataFrame
    field: str
    previous_field: str
    missing: int
    travel_note: str


def previous_field_of(accounts: pd.DataFrame, current_field: str | None) -> str:
    """The field with each account's previous territory: CURRENT_FIELD, or a plan output's own."""
    if current_field:
        return current_field
    for name in PREVIOUS_FIELDS:
        if name in accounts.columns:
            return name
    msg = ("BACKTEST_FIELD needs last period's plan: set CURRENT_FIELD to the accounts' previous "
           "territory (e.g. previous_territory_id of a designterritories output).")  # fmt: skip
    raise InvalidInputError(msg)


def backtest(
    accounts: pd.DataFrame,
    *,
    backtest_field: str,
    territory_field: str = "territory_id",
    previous_field: str,
    balance_fields: Sequence[str] = (),
    centres: pd.DataFrame | None = None,
) -> BackTest:
    """Each territory's book old (``previous_field``) and new (``territory_field``).

    Travel is the straight-line km from each account to its territory's point in ``centres``
    (``territory_id`` or ``rep_id``); without centres, to the centroid of the book.
    """
    for key, name in (("BACKTEST_FIELD", backtest_field), ("CURRENT_FIELD", previous_field)):
        if name not in accounts.columns:
            msg = f"{key}: '{name}' is not a field of ACCOUNTS."
            raise InvalidInputError(msg)
    raw = pd.to_numeric(accounts[backtest_field], errors="coerce")
    if raw.isna().all() and accounts[backtest_field].notna().any():
        msg = (f"BACKTEST_FIELD: '{backtest_field}' holds text (e.g. "
               f"'{accounts[backtest_field].dropna().iloc[0]}'), not numbers; choose a numeric "
               "field such as last year's revenue.")  # fmt: skip
        raise InvalidInputError(msg)
    missing = int(raw.isna().sum())
    if missing:
        logger.warning("BACKTEST_FIELD '%s': %d account(s) have no value; counted as 0.",
                       backtest_field, missing)  # fmt: skip
    if (raw < 0).any():
        logger.info("BACKTEST_FIELD '%s': %d negative value(s) kept (e.g. credit notes).",
                    backtest_field, int((raw < 0).sum()))  # fmt: skip
    measures = {f: pd.to_numeric(accounts[f], errors="coerce").fillna(0.0).to_numpy(float)
                for f in balance_fields if f in accounts.columns}  # fmt: skip
    measures[backtest_field] = raw.fillna(0.0).to_numpy(float)
    new = np.array([text_key(v) for v in accounts[territory_field]], dtype=object)
    old = np.array([text_key(v) for v in accounts[previous_field]], dtype=object)
    xy, km_to, note = _travel(accounts, new, old, centres, territory_field)
    keys = sorted({k for k in (*new, *old) if k is not None})
    rows = []
    for key in keys:
        row = {"territory": key}
        for tag, plan in (("old", old), ("new", new)):
            members = plan == key
            row[f"accounts_{tag}"] = int(members.sum())
            for f, vals in measures.items():
                row[f"{f}_{tag}"] = round(float(vals[members].sum()), 2)
            row[f"travel_km_{tag}"] = (
                round(float(km_to(key, members)), 2) if xy is not None else np.nan
            )
        base = row[f"{backtest_field}_old"]
        row[f"{backtest_field}_change_pct"] = (
            round(100 * (row[f"{backtest_field}_new"] / base - 1), 2) if base else np.nan
        )
        rows.append(row)
    return BackTest(table=pd.DataFrame(rows), field=backtest_field, previous_field=previous_field,
                    missing=missing, travel_note=note)  # fmt: skip


def _travel(accounts, new, old, centres, territory_field):
    """Account coordinates (metric), a function giving a book's km, and what the km measure."""
    geom = getattr(accounts, "geometry", None)
    if geom is None or geom.isna().all():
        return None, None, "Travel not shown: the accounts have no geometry."
    frame = accounts
    if frame.crs is not None and not frame.crs.is_projected:
        utm = frame.estimate_utm_crs()
        frame = frame.to_crs(utm)
    pts = frame.geometry
    xy = np.column_stack([pts.x.to_numpy(float), pts.y.to_numpy(float)])
    homes: dict[str, np.ndarray] = {}
    if centres is not None and len(centres):
        cen = centres.to_crs(frame.crs) if frame.crs is not None and centres.crs else centres
        col = next((c for c in (territory_field, "territory_id", "rep_id") if c in cen.columns),
                   None)  # fmt: skip
        if col is not None:
            for k, g in zip(cen[col], cen.geometry):
                if text_key(k) is not None and g is not None and not g.is_empty:
                    homes[text_key(k)] = np.array([g.x, g.y])

    def km_to(key: str, members: np.ndarray) -> float:
        if not members.any():
            return 0.0
        home = homes.get(key)
        if home is None:  # the book's own centroid
            home = xy[members].mean(0)
        return float(np.hypot(*(xy[members] - home).T).sum() / 1000.0)

    note = ("Travel: straight-line km from each account to its rep's home or centre (CENTRES), "
            "summed over the book." if homes else
            "Travel: straight-line km from each account to the centroid of its book (give "
            "CENTRES for the reps' homes).")  # fmt: skip
    return xy, km_to, note


def backtest_section(bt: BackTest, *, names: dict[str, str] | None = None) -> str:
    """The report's back-test section: one row per rep, old book, new book and the change."""
    from .htmlpage import fmt, table

    t = bt.table
    fields = [c[:-4] for c in t.columns if c.endswith("_old") and not c.startswith(("accounts",
                                                                                    "travel"))]  # fmt: skip
    header = ["rep / territory", "accounts old", "accounts new"]
    for f in fields:
        header += [f"{html.escape(label(f))} old", f"{html.escape(label(f))} new"]
    header += [f"{html.escape(label(bt.field))} change %", "travel km old", "travel km new"]
    rows = []
    for _, r in t.iterrows():
        who = html.escape(str(r["territory"]))
        if names and r["territory"] in names:
            who = f"{html.escape(names[r['territory']])} ({who})"
        cells = [who, fmt(r["accounts_old"]), fmt(r["accounts_new"])]
        for f in fields:
            cells += [fmt(r[f"{f}_old"]), fmt(r[f"{f}_new"])]
        cells += [fmt(r[f"{bt.field}_change_pct"], digits=1), fmt(r["travel_km_old"]),
                  fmt(r["travel_km_new"])]  # fmt: skip
        rows.append(cells)
    missing = (f" {bt.missing} account(s) had no {html.escape(bt.field)} value; they count as 0."
               if bt.missing else "")  # fmt: skip
    return (
        f"<h2>Back-test: {html.escape(label(bt.field))} under the new plan</h2>"
        f"<p class='note'>How each rep's book would have looked last period under the new plan "
        f"against the old one (old plan: {html.escape(bt.previous_field)}).{missing} "
        f"{html.escape(bt.travel_note)}</p>"
        + table(header, rows, table_id="backtest", numeric=range(1, len(header)))
    )
