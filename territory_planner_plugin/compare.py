"""Side-by-side comparison of territory plans: KPIs per plan, per-account differences, HTML.

Each plan is an accounts table with an id and a territory field (e.g. outputs of designterritories
with different K, weights or tolerances); the first plan is the baseline for disruption. Balance is
judged against capacity-weighted targets when the plans' capacities are known, with the KPIs of
:mod:`.kpis` (the same figures Design territories and the report give); territories are matched
to the baseline's by the accounts they share before moved accounts are counted.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import kpis as plan_kpis
from ._validate import is_areas
from .errors import InvalidInputError
from .htmlpage import agg_figure, bullet_list, figure_png, finite, fmt, html_head, png_data_uri
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
    weighted: list[bool] = field(default_factory=list)
    tolerance_pct: float | None = None
    matches: list[dict] = field(default_factory=list)
    areas: bool = False  # the plans' rows are areas (units), not accounts


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
    capacities: Sequence[Mapping[str, float] | None] | None = None,
    tolerance_pct: float | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> Comparison:
    """Compare ``plans`` (the first is the baseline): KPIs per plan and per-account differences.

    ``capacities`` gives, per plan, its territories' capacities (territory id -> capacity, e.g.
    from the territories or summary output of Design territories; None where unknown); a plan
    without one uses the ``capacity`` field of its accounts when it has one, else capacity 1.
    Targets are weighted by capacity as in :func:`.kpis.balance`; with ``tolerance_pct`` each
    plan gets a within-tolerance verdict. Territories are matched to the baseline's by the
    accounts they share (:func:`.kpis.match_territories`) before moved accounts are counted.
    """
    plans = list(plans)
    if len(plans) < 2:
        msg = (
            f"PLANS: give at least two plans to compare (got {len(plans)}); the first one is the "
            "baseline."
        )
        raise InvalidInputError(msg)
    names = _check_names(names, len(plans), id_field)
    if capacities is not None and len(capacities) != len(plans):
        msg = (
            f"CAPACITIES: {len(capacities)} capacity table(s) for {len(plans)} plans; give one "
            "per plan, in order (or one for all)."
        )
        raise InvalidInputError(msg)
    fields = list(dict.fromkeys(balance_fields))
    notes: list[str] = []
    keys, territories, values = [], [], []
    kinds = {}
    for plan, name in zip(plans, names):
        check_cancel(is_cancelled)
        key, terr, vals = _read_plan(plan, name, id_field, territory_field, fields, notes)
        kinds[name] = _kind(plan)
        if len(set(kinds.values()) - {None}) > 1:
            msg = (f"PLANS: plan '{name}' has {kinds[name]} geometries, the baseline "
                   f"'{names[0]}' {kinds[names[0]]}; compare plans of the same rows (accounts "
                   "with accounts, areas with areas).")  # fmt: skip
            raise InvalidInputError(msg)
        keys.append(key)
        territories.append(terr)
        values.append(vals)
    caps = [
        _plan_capacity(plan, name, terr, None if capacities is None else capacities[i], notes)
        for i, (plan, name, terr) in enumerate(zip(plans, names, territories))
    ]
    crs = _projected_crs(plans)
    travel_field, travel_unit = _travel_field(plans)
    if travel_field:
        _note(notes, f"travel_total is the sum of {travel_field} ({travel_unit}) over each plan.")
    _note_sets(notes, names, keys, territories)
    of_areas = [name for plan, name in zip(plans, names) if plan_kpis.accounts_of_areas(plan)]
    if of_areas:
        _note(notes, f"{', '.join(of_areas)}: the accounts of a plan of areas; its territories' "
                     "pieces are its areas' (split_territories is not judged from the accounts: "
                     "compare the plans' areas outputs).")  # fmt: skip

    base = pd.Series(territories[0], index=keys[0])
    rows, matches = [], []
    for i, (plan, name) in enumerate(zip(plans, names)):
        check_cancel(is_cancelled)
        report_progress(progress, i / len(plans), f"KPIs of {name}")
        tiers = plan_kpis.tiers_of(plan, territory_field)
        row, match = _plan_kpis(
            plan, name, keys[i], territories[i], values[i], fields, crs, travel_field, base,
            values[0], caps[i], tolerance_pct, tiers,
        )  # fmt: skip
        rows.append(row)
        matches.append(match)
        if tiers:
            _note(notes, f"Plan '{name}' has the tiers {', '.join(dict.fromkeys(tiers.values()))}: "
                  "each tier is judged against its own targets; its CVs and largest deviation "
                  "are the worst tier's.")  # fmt: skip
        if i:
            _note_matching(notes, name, names[0], match)
    kpis = pd.DataFrame(rows)
    differences = _differences(plans, id_field, names, keys, territories, matches)
    report_progress(progress, 1.0, "Comparison done")
    logger.info(
        "Compared %d plans: %s.",
        len(plans),
        "; ".join(f"{r['plan']} moves {int(r['moved_vs_baseline'])}" for r in rows[1:]),
    )
    return Comparison(
        kpis=kpis, differences=differences, names=names, id_field=id_field,
        balance_fields=fields, travel_field=travel_field, notes=notes,
        weighted=[c is not None for c in caps], tolerance_pct=tolerance_pct, matches=matches,
        areas="Polygon" in kinds.values(),
    )  # fmt: skip


def _plan_capacity(plan, name, terr, given, notes) -> dict[str, float] | None:
    """Capacity per territory key of one plan: ``given``, else its accounts' capacity field."""
    present = {t for t in terr if t is not None}
    if given is not None:
        caps = {plan_kpis.text_key(k): float(v) for k, v in dict(given).items()}
    elif "capacity" in plan.columns:
        caps = {}
        for t, c in zip(terr, pd.to_numeric(plan["capacity"], errors="coerce")):
            if t is not None and np.isfinite(c) and c > 0:
                caps.setdefault(t, float(c))
    else:
        return None
    missing = sorted(present - set(caps))
    if missing:
        _note(
            notes,
            f"Plan '{name}': no capacity for territory(ies) {', '.join(missing[:_LIST_LIMIT])}; "
            "they count with capacity 1.",
            logging.WARNING,
        )
    return {t: caps.get(t, 1.0) for t in sorted(present)}


def _note_matching(notes, name, base_name, match) -> None:
    renamed = {o: b for o, b in match.items() if o != b}
    if renamed:
        pairs = ", ".join(f"{o} = {b}" for o, b in sorted(renamed.items())[:_LIST_LIMIT])
        _note(
            notes,
            f"Territories of '{name}' matched to those of '{base_name}' by the accounts they "
            f"share: {pairs}; an account counts as moved only when its territory differs after "
            "this matching.",
        )


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


_key = plan_kpis.text_key  # the text key of an id or territory value (1.0 -> "1")


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
    if unassigned == len(terr):
        msg = (
            f"TERRITORY_FIELD: '{territory_field}' is empty (NULL) for every account of plan "
            f"'{name}', so it has no territories to compare; pick the field that holds the "
            "territory ids (e.g. territory_id of a Design territories output)."
        )
        raise InvalidInputError(msg)
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
        if kinds - {"Point"} and kinds - {"Polygon", "MultiPolygon"}:
            msg = (
                f"{where} has {', '.join(sorted(kinds))} geometries; use point layers of "
                "accounts (e.g. the accounts output of Design territories) or polygon layers of "
                "areas (its units output), not a mix or lines."
            )
            raise InvalidInputError(msg)
    return ids, terr, vals


def _kind(plan) -> str | None:
    """'Point' or 'Polygon' (areas): what a plan's rows are; None without geometries."""
    if not isinstance(plan, gpd.GeoDataFrame):
        return None
    if is_areas(plan.geometry):
        return "Polygon"
    return "Point" if (plan.geometry.notna() & ~plan.geometry.is_empty).any() else None


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


def _plan_kpis(plan, name, ids, terr, vals, fields, crs, travel_field, base, base_vals, caps,
               tolerance_pct, tiers=None):  # fmt: skip
    """One row of KPIs of a plan, and its territories matched to the baseline's (``tiers``:
    territory key -> tier of a coverage model, each tier judged against its own targets)."""
    measures = fields or ["accounts"]
    assigned = np.array([t is not None for t in terr])
    frame = pd.DataFrame(vals[:, : len(measures)], columns=[f"{m}_total" for m in measures])
    frame["_territory"] = terr
    grouped = frame[assigned].groupby("_territory", sort=True)
    totals = grouped.sum().reset_index() if fields else grouped.size().rename("accounts_total")
    if not fields:
        totals = totals.reset_index()
    bal = plan_kpis.balance(totals, territory_field="_territory", measures=measures,
                            capacity=caps, tiers=tiers)  # fmt: skip
    row: dict[str, object] = {
        "plan": name,
        "territories": len(bal.table),
        "headcount_fte": round(float(bal.table["capacity"].sum()), 2) if caps else float("nan"),
        "accounts": len(plan),
        "unassigned": int((~assigned).sum()),
    }
    for m in measures:
        row[f"cv_{m}"] = round(bal.cv[m], 4)
    row["max_deviation_pct"] = round(bal.max_deviation_pct, 2)
    if tolerance_pct is not None:
        devs = np.concatenate([bal.table[f"{m}_dev_pct"].to_numpy() for m in measures])
        row["within_tolerance"] = plan_kpis.within_tolerance(devs, tolerance_pct)
    # named-account books have no area (as in the report and the summary): their accounts
    # count in no territory's compactness
    named = {k for k, t in (tiers or {}).items() if t == plan_kpis.NAMED_TIER}
    row["compactness_km"] = _compactness_km(
        plan,
        np.array([None if t in named else t for t in terr], dtype=object) if named else terr,
        crs,
    )
    if plan_kpis.accounts_of_areas(plan):  # its pieces are its areas', not its accounts'
        row["split_territories"] = float("nan")
    elif isinstance(plan, gpd.GeoDataFrame):  # any plan, also one made elsewhere
        from .adjacency import plan_pieces

        pieces = plan_pieces(plan.geometry, terr)
        row["split_territories"] = sum(1 for k, n in pieces.items()
                                       if n > 1 and (tiers or {}).get(k) != plan_kpis.NAMED_TIER)  # fmt: skip
    if travel_field:
        row["travel_total"] = (
            round(float(pd.to_numeric(plan[travel_field], errors="coerce").sum()), 2)
            if travel_field in plan.columns
            else float("nan")
        )
    here = pd.Series(terr, index=ids)
    common = here.index.intersection(base.index)
    moved, match = plan_kpis.moved_after_matching(base[common].tolist(), here[common].tolist())
    row["common_with_baseline"] = len(common)
    row["moved_vs_baseline"] = int(moved.sum())
    row["moved_share_pct"] = round(100 * moved.sum() / len(common), 2) if len(common) else 0.0
    same = (here[common].to_numpy() == base[common].to_numpy()) & here[common].notna().to_numpy()
    row["relationships_kept_pct"] = round(100 * same.sum() / len(common), 2) if len(common) else 0.0
    if fields:
        base_value = pd.Series(base_vals[:, 0], index=base.index)
        total = float(base_value[common].sum())
        row[f"moved_{fields[0]}"] = round(float(base_value[common[moved]].sum()), 2)
        row[f"moved_{fields[0]}_pct"] = (
            round(100 * row[f"moved_{fields[0]}"] / total, 2) if total else 0.0
        )
    return row, match


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
    located = geoms.to_numpy()[ok]  # areas count from a point inside each
    points = (
        shapely.point_on_surface(located) if (shapely.get_type_id(located) != 0).any() else located
    )
    return plan_kpis.compactness_km(shapely.get_coordinates(points), terr[ok])


def _differences(plans, id_field, names, keys, territories, matches) -> pd.DataFrame:
    """One row per account: its id, its territory in each plan, in_all_plans and changed (its
    territory differs from the baseline's once territories are matched by overlap)."""
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

    def differs(k, lk, match):
        b, o = base.get(k), lk.get(k)
        return b is not None and (o is None or match.get(o) != b)

    changed = [
        any(k in base and k in lk and differs(k, lk, m) for lk, m in zip(lookups[1:], matches[1:]))
        for k in order
    ]
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


KPI_LABELS = {
    "territories": "Territories",
    "headcount_fte": "Headcount (FTE, sum of capacities)",
    "accounts": "Accounts",
    "unassigned": "Accounts without a territory",
    "max_deviation_pct": "Largest deviation from a territory's target (%)",
    "within_tolerance": "Every territory within tolerance",
    "compactness_km": "Compactness: mean km to territory centroid (lower is better)",
    "split_territories": "Territories in more than one piece",
    "moved_vs_baseline": "Accounts moved vs baseline",
    "moved_share_pct": "Accounts moved vs baseline (%)",
    "relationships_kept_pct": "Relationships kept: accounts with the baseline's own rep (%)",
}
_SKIP = ("plan", "common_with_baseline")


def kpi_rows(comparison: Comparison, *, extra: Sequence[tuple[str, list, str]] = ()) -> str:
    """The rows (``<tr>``) of the KPIs-against-targets table: one column per plan, verdicts.

    Shared by :func:`comparison_html` and the report's comparison section, so that a plan
    gets the same words in both. ``extra`` rows are (label, cells, target) already formatted.
    """
    k = comparison.kpis
    weighted = any(comparison.weighted)
    rows = []
    for column in k.columns:
        if column in _SKIP or (column == "headcount_fte" and not weighted):
            continue
        label, target, op = KPI_LABELS.get(column, column), None, ""
        if comparison.areas:  # a plan of areas counts areas
            label = label.replace("Accounts", "Areas").replace("accounts", "areas")
        if column.startswith("cv_"):
            m = column[3:]
            label = f"CV of {_measure(m, comparison.areas)}" + (
                " per unit of capacity" if weighted else ""
            )
            target = plan_kpis.cv_target(m) if comparison.balance_fields else None
            op = "&lt;"
        elif column == "travel_total":
            label = f"Travel total ({plan_kpis.label(comparison.travel_field or '')}, one way)"
        elif column == "max_deviation_pct" and comparison.tolerance_pct is not None:
            target, op = comparison.tolerance_pct, "≤"
        elif column.startswith("moved_") and column.endswith("_pct") and column not in KPI_LABELS:
            label = f"{plan_kpis.label(column[6:-4])} moved vs baseline (% of the total)"
        elif column.startswith("moved_") and column not in KPI_LABELS:
            label = f"{plan_kpis.label(column[6:])} moved vs baseline"
        cells = []
        for value in k[column]:
            status = ""
            if target is not None and finite(value):
                ok = value < target if op == "&lt;" else value <= target + 0.005
                status = "ok" if ok else "bad"
            elif column == "within_tolerance":
                status = "ok" if bool(value) else "bad"
            elif column == "split_territories" and finite(value):
                status = "ok" if value == 0 else "bad"
            text = _cell(column, value)
            if column == "within_tolerance":
                text = plan_kpis.verdict(bool(value))
            cells.append(f"<td class='num {status}'>{text}</td>")
        goal = ""
        if target is not None:
            goal = f"{op} {target:.2f}" if op == "&lt;" else f"{op} {target:g}%"
        if column == "within_tolerance":
            goal = f"±{comparison.tolerance_pct:g}%"
        if column == "split_territories":
            goal = "0"
        rows.append(f"<tr><td>{html.escape(label)}</td>{''.join(cells)}<td>{goal}</td></tr>")
    for text, cells, goal in extra:
        rows.append(f"<tr><td>{html.escape(text)}</td>{''.join(cells)}<td>{goal}</td></tr>")
    return "".join(rows)


def targets_sentence(comparison: Comparison) -> str:
    """How the plans' balance targets were set (capacity-weighted or the mean)."""
    names = comparison.names
    weighted = [n for n, w in zip(names, comparison.weighted) if w]
    if not weighted:
        return (
            "Balance targets: every territory's target is the mean of the plan's territories "
            "(no capacities known: give each plan's territories or summary output of Design "
            "territories for capacity-weighted targets)."
        )
    text = (
        "Balance targets are weighted by rep capacity (a territory's target = the plan's total "
        "× its capacity / the sum of capacities); the CVs are of the totals per unit of capacity"
    )
    if len(weighted) < len(names):
        text += f" (for {', '.join(weighted)}; the others: the mean, no capacities known)"
    return text + "."


def comparison_html(
    comparison: Comparison,
    *,
    title: str = "Territory plan comparison",
    parameters: Mapping[str, object] | None = None,
    max_rows: int = 200,
) -> str:
    """Self-contained HTML: KPI table against targets, CV and trade-off charts, moved accounts
    (or areas, for plans of areas)."""
    k = comparison.kpis
    measures = comparison.balance_fields or ["accounts"]
    noun = "areas" if comparison.areas else "accounts"
    parts = [html_head(title, subtitle=f"{len(comparison.names)} plans")]
    parts.append(
        f"<p id='baseline'>Baseline: <b>{html.escape(comparison.names[0])}</b>. Disruption counts "
        f"the {noun} in both a plan and the baseline whose territory differs, once each plan's "
        f"territories are matched to the baseline's by the {noun} they share.</p>"
    )
    parts.append(
        "<h2>Headcount, balance, compactness and disruption</h2><table id='kpis'><thead><tr>"
        "<th>KPI</th>"
        + "".join(f"<th class='num'>{html.escape(n)}</th>" for n in comparison.names)
        + "<th>Target</th></tr></thead><tbody>"
        + kpi_rows(comparison)
        + "</tbody></table>"
    )
    parts.append(f"<p id='targets' class='note'>{html.escape(targets_sentence(comparison))}</p>")
    cv_png = _cv_chart(k, measures, comparison.balance_fields, any(comparison.weighted),
                       areas=comparison.areas)  # fmt: skip
    parts.append(
        "<h2>Balance: coefficient of variation per measure</h2>"
        f"<img id='cv-chart' class='chart' alt='CV per plan' src='{png_data_uri(cv_png)}'>"
    )
    parts.append(
        "<h2>Trade-off: balance, compactness and disruption</h2>"
        f"<img id='tradeoff-chart' class='chart' alt='balance vs compactness vs disruption' "
        f"src='{png_data_uri(_tradeoff_chart(k, noun=noun))}'>"
    )
    diff = comparison.differences
    moved = diff[diff["changed"]]
    parts.append(
        f"<h2>{noun.capitalize()} that change territory</h2><p id='moved'>{len(moved):,} of "
        f"{len(diff):,} {noun} change territory in at least one plan; "
        f"{int((~diff['in_all_plans']).sum()):,} "
        "are not in every plan.</p>"
    )
    if len(moved):
        shown = moved.head(max_rows)
        parts.append(shown.to_html(index=False, table_id="differences", na_rep="-"))
        if len(moved) > max_rows:
            parts.append(f"<p>First {max_rows} shown; the differences table has them all.</p>")
    if comparison.notes:
        parts.append("<h2>Notes</h2>" + bullet_list(comparison.notes, list_id="notes"))
    if parameters:
        rows = "".join(
            f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
            for a, b in parameters.items()
        )
        parts.append(f"<h2>Parameters</h2><table id='parameters'>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)


_finite = finite
_fmt = fmt


def _cell(column: str, value) -> str:
    """A KPI value as people read it: shares and deviations with 2 decimals, amounts whole."""
    if not finite(value):
        return fmt(value)
    if column == "headcount_fte":
        return f"{float(value):g}"
    if column.endswith("_pct"):
        return fmt(value, digits=2)
    if column.startswith("moved_") or column == "travel_total":
        return fmt(value, digits=0 if column.startswith("moved_") else 1)
    return fmt(value)


def _measure(m: str, areas: bool) -> str:
    """A measure's label; the count of rows ("accounts") of a plan of areas is "Areas"."""
    return "Areas" if areas and m == "accounts" else plan_kpis.label(m)


def _cv_chart(kpis: pd.DataFrame, measures: Sequence[str], fields: Sequence[str],
              weighted: bool = False, *, areas: bool = False) -> bytes:  # fmt: skip
    fig = agg_figure(7, 3.5)
    ax = fig.subplots()
    n = len(kpis)
    width = 0.8 / max(1, n)
    x = np.arange(len(measures))
    for i, (_, row) in enumerate(kpis.iterrows()):
        heights = [float(row[f"cv_{m}"]) if finite(row[f"cv_{m}"]) else 0.0 for m in measures]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=str(row["plan"]),
               edgecolor="#333333")  # fmt: skip
    top = max([0.0, *(float(v) for m in measures for v in kpis[f"cv_{m}"] if finite(v))])
    for j, m in enumerate(measures):
        target = plan_kpis.cv_target(m) if fields else None
        if target is not None:
            top = max(top, target)
            ax.hlines(target, j - 0.45, j + 0.45, colors="black", linestyles="--", lw=1)
            ax.annotate(f"target < {target:.2f}", (j - 0.45, target), fontsize=7, ha="left",
                        va="bottom")  # fmt: skip
    ax.set_xticks(x)
    ax.set_xticklabels([_measure(m, areas) for m in measures])
    ax.set_ylim(0, top * 1.35 if top else 1.0)
    ax.set_ylabel("CV" + (" per unit of capacity" if weighted else "") + " (lower is better)")
    ax.legend(fontsize=8, loc="upper right", ncol=min(4, max(1, n)))
    return figure_png(fig)


def _tradeoff_chart(kpis: pd.DataFrame, *, noun: str = "accounts") -> bytes:
    fig = agg_figure(7, 4)
    ax = fig.subplots()
    x = pd.to_numeric(kpis["compactness_km"], errors="coerce").fillna(0.0).to_numpy()
    y = pd.to_numeric(kpis["max_deviation_pct"], errors="coerce").fillna(0.0).to_numpy()
    moved = kpis["moved_share_pct"].astype(float).to_numpy()
    points = ax.scatter(x, y, c=moved, s=60 + 4 * moved, cmap="viridis", vmin=0,
                        vmax=max(1.0, float(moved.max())), edgecolors="#333333")  # fmt: skip
    for xi, yi, text in zip(x, y, kpis["plan"].astype(str)):
        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
    fig.colorbar(points, ax=ax, label=f"{noun} moved vs baseline (%)")
    ax.set_xlabel("compactness: mean km to territory centroid (lower is better)")
    ax.set_ylabel("largest deviation from target (%, lower is better)")
    ax.margins(0.15)
    return figure_png(fig)
