"""Side-by-side comparison of territory plans: KPIs per plan, per-account differences, HTML.

Each plan is an accounts table with an id and a territory field (e.g. outputs of designterritories
with different K, weights or tolerances); the first plan is the baseline for disruption.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import report
from .errors import InvalidInputError
from .progress import CancelCheck, ProgressCallback, check_cancel
from .progress import report as report_progress

logger = logging.getLogger(__name__)

RESERVED_COLUMNS = ("in_all_plans", "changed")
TRAVEL_FIELDS = (("centre_min", "drive minutes"), ("centre_km", "km"))
_LIST_LIMIT = 10


@dataclass
class Comparison:
    """KPIs (one row per plan) and per-account differences (one row per account) of some plans."""

    kpis: pd.DataFrame
    differences: pd.DataFrame
    names: list[str]
    id_field: str = "id"
    balance_fields: list[str] = field(default_factory=list)
    travel_field: str | None = None
    notes: list[str] = field(default_factory=list)


def unique_names(labels: Sequence[str]) -> list[str]:
    """Plan names made unique (case-insensitively) by appending `` 2``, `` 3``..."""
    seen: set[str] = set()
    out = []
    for i, label in enumerate(labels):
        base = str(label).strip() or f"plan {i + 1}"
        name, n = base, 1
        while name.lower() in seen:
            n += 1
            name = f"{base} {n}"
        seen.add(name.lower())
        out.append(name)
    return out


def compare_plans(
    plans: Sequence[gpd.GeoDataFrame],
    *,
    names: Sequence[str] | None = None,
    id_field: str = "id",
    territory_field: str = "territory_id",
    balance_fields: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> Comparison:
    """Compare ``plans`` (the first is the baseline): KPIs per plan and per-account differences."""
    plans = list(plans)
    if len(plans) < 2:
        msg = (
            f"PLANS: give at least two plans to compare (got {len(plans)}); the first one is the "
            "baseline."
        )
        raise InvalidInputError(msg)
    names = _check_names(names, len(plans), id_field)
    fields = list(dict.fromkeys(balance_fields))
    notes: list[str] = []
    keys, territories, values = [], [], []
    for plan, name in zip(plans, names):
        check_cancel(is_cancelled)
        key, terr, vals = _read_plan(plan, name, id_field, territory_field, fields, notes)
        keys.append(key)
        territories.append(terr)
        values.append(vals)
    crs = _projected_crs(plans)
    travel_field, travel_unit = _travel_field(plans)
    if travel_field:
        _note(notes, f"travel_total is the sum of {travel_field} ({travel_unit}) over each plan.")
    _note_sets(notes, names, keys, territories)

    base = pd.Series(territories[0], index=keys[0])
    rows = []
    for i, (plan, name) in enumerate(zip(plans, names)):
        check_cancel(is_cancelled)
        report_progress(progress, i / len(plans), f"KPIs of {name}")
        rows.append(
            _plan_kpis(
                plan, name, keys[i], territories[i], values[i], fields, crs, travel_field, base,
                values[0], notes,
            )
        )  # fmt: skip
    kpis = pd.DataFrame(rows)
    differences = _differences(plans, id_field, names, keys, territories)
    report_progress(progress, 1.0, "Comparison done")
    logger.info(
        "Compared %d plans: %s.",
        len(plans),
        "; ".join(f"{r['plan']} moves {int(r['moved_vs_baseline'])}" for r in rows[1:]),
    )
    return Comparison(
        kpis=kpis, differences=differences, names=names, id_field=id_field,
        balance_fields=fields, travel_field=travel_field, notes=notes,
    )  # fmt: skip


# ----------------------------------------------------------------------------- checks


def _check_names(names, n: int, id_field: str) -> list[str]:
    if names is None or len(names) == 0:
        return [f"plan {i + 1}" for i in range(n)]
    names = [str(x).strip() for x in names]
    if len(names) != n:
        msg = f"PLAN_NAMES: {len(names)} name(s) for {n} plans; give one name per plan, in order."
        raise InvalidInputError(msg)
    if any(not x for x in names):
        msg = "PLAN_NAMES: a name is empty; give every plan a name (or leave PLAN_NAMES empty)."
        raise InvalidInputError(msg)
    lower = [x.lower() for x in names]
    dup = sorted({x for x in names if lower.count(x.lower()) > 1})
    if dup:
        msg = f"PLAN_NAMES: names {dup} are used more than once; make them unique."
        raise InvalidInputError(msg)
    clash = [x for x in names if x.lower() in {*RESERVED_COLUMNS, id_field.lower()}]
    if clash:
        msg = (
            f"PLAN_NAMES: {clash} cannot be a plan name (a column of the differences table "
            f"is called that); rename the plan."
        )
        raise InvalidInputError(msg)
    return names


def _key(value) -> str | None:
    """Text key of an id or territory value (1.0 -> '1'); None for missing values."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _read_plan(plan, name, id_field, territory_field, fields, notes):
    """Check one plan; return its id keys, territory keys and balance values (accounts x fields)."""
    where = f"PLANS: plan '{name}'"
    if len(plan) == 0:
        msg = f"{where} has no accounts; remove it or pick a layer with accounts."
        raise InvalidInputError(msg)
    for column, key in [(id_field, "ID_FIELD"), (territory_field, "TERRITORY_FIELD")] + [
        (f, "BALANCE_FIELDS") for f in fields
    ]:
        if column not in plan.columns:
            msg = (
                f"{key}: '{column}' is not a field of plan '{name}'; its fields are "
                f"{', '.join(str(c) for c in plan.columns if c != 'geometry')}."
            )
            raise InvalidInputError(msg)
    ids = [_key(v) for v in plan[id_field].to_numpy()]
    if any(v is None for v in ids):
        msg = (
            f"ID_FIELD: {sum(v is None for v in ids)} account(s) of plan '{name}' have no "
            f"'{id_field}'; give every account an id."
        )
        raise InvalidInputError(msg)
    ids_s = pd.Series(ids)
    dup = ids_s[ids_s.duplicated()].unique()
    if len(dup):
        msg = (
            f"ID_FIELD: plan '{name}' has duplicate account ids {list(dup[:_LIST_LIMIT])}; "
            "every account must appear once per plan."
        )
        raise InvalidInputError(msg)
    terr = np.array([_key(v) for v in plan[territory_field].to_numpy()], dtype=object)
    unassigned = int(sum(t is None for t in terr))
    if unassigned:
        _note(
            notes,
            f"Plan '{name}': {unassigned} account(s) have no {territory_field}; they count as "
            "unassigned and are left out of its balance and compactness KPIs.",
            logging.WARNING,
        )
    vals = np.ones((len(plan), max(1, len(fields))))
    for m, f in enumerate(fields):
        col = pd.to_numeric(plan[f], errors="coerce").to_numpy(dtype=float)
        bad = int(np.isnan(col).sum())
        if bad:
            _note(
                notes,
                f"Plan '{name}': {bad} account(s) have no {f} value; counted as 0.",
                logging.WARNING,
            )
        vals[:, m] = np.nan_to_num(col, nan=0.0)
    if isinstance(plan, gpd.GeoDataFrame):
        geoms = plan.geometry
        missing = int((geoms.isna() | geoms.is_empty).sum())
        if missing:
            _note(
                notes,
                f"Plan '{name}': {missing} account(s) have no location; left out of compactness.",
                logging.WARNING,
            )
        kinds = set(geoms[~(geoms.isna() | geoms.is_empty)].geom_type)
        if kinds - {"Point"}:
            msg = (
                f"{where} has {', '.join(sorted(kinds - {'Point'}))} geometries; use point "
                "layers of accounts (e.g. the accounts output of Design territories)."
            )
            raise InvalidInputError(msg)
    return ids, terr, vals


def _projected_crs(plans):
    """One metric CRS for every plan: the first plan's CRS, or its UTM zone when geographic."""
    for plan in plans:
        crs = getattr(plan, "crs", None)
        if crs is None:
            continue
        if crs.is_geographic:
            ok = plan.geometry.notna() & ~plan.geometry.is_empty
            return plan[ok].estimate_utm_crs() if ok.any() else None
        return crs
    return None


def _travel_field(plans):
    """The per-account travel field to total: centre_min when every plan has it, else centre_km."""
    for name, unit in TRAVEL_FIELDS:
        if all(_has_values(p, name) for p in plans):
            return name, unit
    for name, unit in TRAVEL_FIELDS:
        if any(_has_values(p, name) for p in plans):
            return name, unit
    return None, None


def _has_values(plan, column: str) -> bool:
    return column in plan.columns and pd.to_numeric(plan[column], errors="coerce").notna().any()


def _note(notes: list[str], text: str, level: int = logging.INFO) -> None:
    notes.append(text)
    logger.log(level, "%s", text)


def _note_sets(notes, names, keys, territories) -> None:
    sets = [set(k) for k in keys]
    common = set.intersection(*sets)
    partial = sorted(set.union(*sets) - common)
    if partial:
        per = "; ".join(
            f"'{n}' lacks {len(set.union(*sets) - s)}"
            for n, s in zip(names, sets)
            if s != set.union(*sets)
        )
        _note(
            notes,
            f"{len(partial)} account(s) are not in every plan (e.g. {', '.join(partial[:_LIST_LIMIT])}; "
            f"{per}). Each plan's KPIs use its own accounts; moves count only accounts in both "
            "the plan and the baseline; in_all_plans is false for them in the differences.",
            logging.WARNING,
        )
    tsets = [{t for t in terr if t is not None} for terr in territories]
    for name, ts in zip(names[1:], tsets[1:]):
        only_here, only_base = sorted(ts - tsets[0]), sorted(tsets[0] - ts)
        if only_here or only_base:
            parts = []
            if only_here:
                parts.append(f"{', '.join(only_here[:_LIST_LIMIT])} only in '{name}'")
            if only_base:
                parts.append(f"{', '.join(only_base[:_LIST_LIMIT])} only in '{names[0]}'")
            _note(
                notes,
                f"Territory ids differ between '{name}' and the baseline ({'; '.join(parts)}); "
                "this is expected when the number of territories differs.",
            )


# ----------------------------------------------------------------------------- KPIs


def _plan_kpis(plan, name, ids, terr, vals, fields, crs, travel_field, base, base_vals, notes):
    measures = fields or ["accounts"]
    assigned = np.array([t is not None for t in terr])
    frame = pd.DataFrame(vals[:, : len(measures)], columns=[f"_{m}" for m in measures])
    frame["_territory"] = terr
    summary = report.territory_summary(
        frame[assigned],
        territory_field="_territory",
        balance_fields=[f"_{m}" for m in measures] if fields else (),
    )
    row: dict[str, object] = {
        "plan": name,
        "territories": len(summary),
        "accounts": len(plan),
        "unassigned": int((~assigned).sum()),
    }
    worst = 0.0
    for m in measures:
        totals = summary["accounts" if not fields else f"_{m}_total"].astype(float).to_numpy()
        mean = totals.mean() if len(totals) else 0.0
        row[f"cv_{m}"] = round(float(totals.std() / mean), 4) if mean else float("nan")
        if mean:
            worst = max(worst, float(np.abs(totals / mean - 1).max() * 100))
    row["max_deviation_pct"] = round(worst, 2)
    row["compactness_km"] = _compactness_km(plan, terr, crs)
    if travel_field:
        row["travel_total"] = (
            round(float(pd.to_numeric(plan[travel_field], errors="coerce").sum()), 2)
            if travel_field in plan.columns
            else float("nan")
        )
    here = pd.Series(terr, index=ids)
    common = here.index.intersection(base.index)
    changed = np.array([base[k] != here[k] for k in common], dtype=bool)
    row["common_with_baseline"] = len(common)
    row["moved_vs_baseline"] = int(changed.sum())
    row["moved_share_pct"] = round(100 * changed.sum() / len(common), 2) if len(common) else 0.0
    if fields:
        base_value = pd.Series(base_vals[:, 0], index=base.index)
        row[f"moved_{fields[0]}"] = round(float(base_value[common[changed]].sum()), 2)
    return row


def _compactness_km(plan, terr, crs) -> float:
    """Mean straight-line km from each assigned, located account to its territory's centroid."""
    if not isinstance(plan, gpd.GeoDataFrame):
        return float("nan")
    geoms = plan.geometry
    if crs is not None and plan.crs is not None and not plan.crs.equals(crs):
        geoms = geoms.to_crs(crs)
    elif plan.crs is not None and plan.crs.is_geographic:
        return float("nan")  # no metric CRS could be found
    ok = (geoms.notna() & ~geoms.is_empty).to_numpy() & np.array([t is not None for t in terr])
    if not ok.any():
        return float("nan")
    xy = shapely.get_coordinates(geoms.to_numpy()[ok])
    labels = pd.Series(terr[ok])
    centroid = pd.DataFrame(xy, columns=["x", "y"]).groupby(labels.to_numpy()).transform("mean")
    dist = np.hypot(xy[:, 0] - centroid["x"].to_numpy(), xy[:, 1] - centroid["y"].to_numpy())
    return round(float(dist.mean() / 1000.0), 3)


def _differences(plans, id_field, names, keys, territories) -> pd.DataFrame:
    """One row per account: its id, its territory in each plan, in_all_plans and changed."""
    raw: dict[str, object] = {}
    for plan, ks in zip(plans, keys):
        for k, v in zip(ks, plan[id_field].tolist()):
            raw.setdefault(k, v)
    order = list(raw)
    lookups = [dict(zip(k, t)) for k, t in zip(keys, territories)]
    out = pd.DataFrame({id_field: _ids_column([raw[k] for k in order])})
    for name, lk in zip(names, lookups):
        out[name] = pd.Series([lk.get(k) for k in order], dtype=object)
    base = lookups[0]
    changed = [any(k in base and k in lk and base[k] != lk[k] for lk in lookups[1:]) for k in order]
    out["in_all_plans"] = [all(k in lk for lk in lookups) for k in order]
    out["changed"] = pd.Series(changed, dtype=bool)
    return out


def _ids_column(ids: list) -> pd.Series:
    """Original id values when they share one type, else their text."""
    kinds = {type(v) for v in ids}
    if len(kinds) == 1:
        return pd.Series(ids)
    return pd.Series([_key(v) for v in ids], dtype=object)


# ----------------------------------------------------------------------------- HTML


def comparison_html(
    comparison: Comparison,
    *,
    title: str = "Territory plan comparison",
    parameters: Mapping[str, object] | None = None,
    max_rows: int = 200,
) -> str:
    """Self-contained HTML: KPI table against targets, CV and trade-off charts, moved accounts."""
    k = comparison.kpis
    measures = comparison.balance_fields or ["accounts"]
    parts = [report.html_head(title)]
    parts.append(
        f"<p id='baseline'>Baseline: <b>{html.escape(comparison.names[0])}</b>. "
        "Disruption counts the accounts in both a plan and the baseline whose territory differs.</p>"
    )
    parts.append(
        "<h2>KPIs against targets</h2><table id='kpis'><tr><th>KPI</th>"
        + "".join(f"<th>{html.escape(n)}</th>" for n in comparison.names)
        + "<th>Target</th></tr>"
    )
    labels = {
        "territories": "Territories",
        "accounts": "Accounts",
        "unassigned": "Unassigned accounts",
        "max_deviation_pct": "Largest deviation from the mean (%)",
        "compactness_km": "Compactness: mean km to territory centroid",
        "travel_total": f"Travel total ({comparison.travel_field})",
        "moved_vs_baseline": "Accounts moved vs baseline",
        "moved_share_pct": "Accounts moved vs baseline (%)",
    }
    for column in k.columns:
        if column in ("plan", "common_with_baseline"):
            continue
        label = labels.get(column, column)
        target = None
        if column.startswith("cv_"):
            field = column[3:]
            label = f"CV of {field}"
            target = report.cv_target(field) if comparison.balance_fields else None
        elif column.startswith("moved_") and column not in labels:
            label = f"{column[6:]} moved vs baseline"
        cells = []
        for value in k[column]:
            status = ""
            if target is not None and _finite(value):
                status = "ok" if value < target else "bad"
            cells.append(f"<td class='{status}'>{_fmt(value)}</td>")
        parts.append(
            f"<tr><td>{html.escape(label)}</td>{''.join(cells)}"
            f"<td>{'' if target is None else f'&lt; {target:.2f}'}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>Balance: coefficient of variation per measure</h2>"
        f"<img id='cv-chart' class='chart' alt='CV per plan' src='{report.png_data_uri(_cv_chart(k, measures, comparison.balance_fields))}'>"
    )
    parts.append(
        "<h2>Trade-off: balance, compactness and disruption</h2>"
        f"<img id='tradeoff-chart' class='chart' alt='balance vs compactness vs disruption' src='{report.png_data_uri(_tradeoff_chart(k))}'>"
    )
    diff = comparison.differences
    moved = diff[diff["changed"]]
    parts.append(
        f"<h2>Accounts that change territory</h2><p id='moved'>{len(moved)} of {len(diff)} "
        f"accounts change territory in at least one plan; {int((~diff['in_all_plans']).sum())} "
        "are not in every plan.</p>"
    )
    if len(moved):
        shown = moved.head(max_rows)
        parts.append(shown.to_html(index=False, table_id="differences", na_rep="-"))
        if len(moved) > max_rows:
            parts.append(f"<p>First {max_rows} shown; the differences table has them all.</p>")
    if comparison.notes:
        parts.append(
            "<h2>Notes</h2><ul id='notes'>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in comparison.notes)
            + "</ul>"
        )
    if parameters:
        rows = "".join(
            f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
            for a, b in parameters.items()
        )
        parts.append(f"<h2>Parameters</h2><table id='parameters'>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if _finite(value):
        v = float(value)
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(value, (float, np.floating)):
        return "-"
    return html.escape(str(value))


def _cv_chart(kpis: pd.DataFrame, measures: Sequence[str], fields: Sequence[str]) -> bytes:
    fig = report.agg_figure(7, 3.5)
    ax = fig.subplots()
    n = len(kpis)
    width = 0.8 / max(1, n)
    x = np.arange(len(measures))
    for i, (_, row) in enumerate(kpis.iterrows()):
        heights = [float(row[f"cv_{m}"]) if _finite(row[f"cv_{m}"]) else 0.0 for m in measures]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=str(row["plan"]),
               edgecolor="#333333")  # fmt: skip
    top = max([0.0, *(float(v) for m in measures for v in kpis[f"cv_{m}"] if _finite(v))])
    for j, m in enumerate(measures):
        target = report.cv_target(m) if fields else None
        if target is not None:
            top = max(top, target)
            ax.hlines(target, j - 0.45, j + 0.45, colors="black", linestyles="--", lw=1)
            ax.annotate(f"target < {target:.2f}", (j - 0.45, target), fontsize=7, ha="left",
                        va="bottom")  # fmt: skip
    ax.set_xticks(x)
    ax.set_xticklabels(list(measures))
    ax.set_ylim(0, top * 1.35 if top else 1.0)
    ax.set_ylabel("coefficient of variation (lower is better)")
    ax.legend(fontsize=8, loc="upper right", ncol=min(4, max(1, n)))
    return report.figure_png(fig)


def _tradeoff_chart(kpis: pd.DataFrame) -> bytes:
    fig = report.agg_figure(7, 4)
    ax = fig.subplots()
    x = pd.to_numeric(kpis["compactness_km"], errors="coerce").fillna(0.0).to_numpy()
    y = pd.to_numeric(kpis["max_deviation_pct"], errors="coerce").fillna(0.0).to_numpy()
    moved = kpis["moved_share_pct"].astype(float).to_numpy()
    points = ax.scatter(x, y, c=moved, s=60 + 4 * moved, cmap="viridis", vmin=0,
                        vmax=max(1.0, float(moved.max())), edgecolors="#333333")  # fmt: skip
    for xi, yi, label in zip(x, y, kpis["plan"].astype(str)):
        ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    fig.colorbar(points, ax=ax, label="accounts moved vs baseline (%)")
    ax.set_xlabel("compactness: mean km to territory centroid (lower is better)")
    ax.set_ylabel("largest deviation from the mean (%, lower is better)")
    ax.margins(0.15)
    return report.figure_png(fig)
