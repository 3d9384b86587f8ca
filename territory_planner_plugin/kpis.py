"""The plan KPIs, defined once: balance against capacity-weighted targets, tolerance and CV
verdicts, compactness, pieces, headcount and disruption against the budget.

Design territories (its summary), the report and compareplans all call these functions, so the
same plan gets the same figures and the same verdicts everywhere. Nothing here imports ``qgis``
or the other engine modules (no import cycles).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InvalidInputError

#: Published targets: CV of revenue < 0.10, of workload/visits < 0.15, travel efficiency > 75 %.
TARGETS = {"revenue_cv": 0.10, "workload_cv": 0.15, "travel_efficiency": 0.75}
#: Active prospects per full-time rep (capacity 1); a territory's range scales with its capacity.
PROSPECTS_PER_FTE = (80, 120)
NAMED_TIER = "named"  # the tier of named-account territories (coverage models)
CAPACITY_COLUMNS = ("territory_id", "capacity")
ID_COLUMNS = ("territory_id", "rep_id")  # the territory key of a plan output, in that order
MET, MISSED, UNKNOWN = "met", "missed", "-"
_EPS_PCT = 1e-6  # deviations are compared to the tolerance with this slack (rounding)

# Human names of the usual fields (the others: underscores to spaces, first letter capital).
LABELS = {
    "revenue_potential": "Revenue potential",
    "workload_visits": "Workload (visits per year)",
    "active_prospect": "Active prospect",
    "active_prospects": "Active prospects",
    "territory_id": "Territory",
    "rep_id": "Rep",
    "rep_name": "Rep",
    "accounts": "Accounts",
    "capacity": "Capacity (FTE)",
    "quota": "Quota",
    "travel_efficiency": "Travel efficiency",
    "pieces": "Pieces",
    "centre_min": "Drive minutes to centre",
    "centre_km": "km to centre",
}


def label(field: str) -> str:
    """A field's name for people: ``revenue_potential`` -> ``Revenue potential``."""
    if field in LABELS:
        return LABELS[field]
    text = str(field).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def text_key(value) -> str | None:
    """Text key of an id or territory value (``1.0`` -> ``'1'``); None for missing values."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def cv_target(field: str) -> float | None:
    """The published CV target of a balance field (revenue < 0.10, workload/visits < 0.15)."""
    if "revenue" in field:
        return TARGETS["revenue_cv"]
    if "workload" in field or "visit" in field:
        return TARGETS["workload_cv"]
    return None


# ----------------------------------------------------------------------------- balance


def cv_per_capacity(totals, capacity=None) -> float:
    """Coefficient of variation (population std / mean) of each territory's total per unit of
    capacity (capacity 1 each when None); 0 when the mean is 0."""
    t = np.asarray(totals, dtype=float)
    if len(t) == 0:
        return float("nan")
    c = np.ones_like(t) if capacity is None else np.asarray(capacity, dtype=float)
    per = t / c
    mean = per.mean()
    return float(per.std() / mean) if mean else 0.0


def targets(totals, capacity=None) -> np.ndarray:
    """Each territory's target: the grand total × its capacity / the sum of capacities."""
    t = np.asarray(totals, dtype=float)
    c = np.ones_like(t) if capacity is None else np.asarray(capacity, dtype=float)
    return t.sum() * c / c.sum() if c.sum() else np.zeros_like(t)


def deviation_pct(totals, capacity=None) -> np.ndarray:
    """100 × (total / target - 1) per territory, 0 where the target is 0."""
    t = np.asarray(totals, dtype=float)
    goal = targets(t, capacity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(goal != 0, 100.0 * (t / np.where(goal != 0, goal, 1.0) - 1.0), 0.0)


def within_tolerance(dev_pct, tolerance_pct: float) -> bool:
    """True when every territory's deviation is within ±``tolerance_pct`` (rounding slack)."""
    dev = np.abs(np.asarray(dev_pct, dtype=float))
    return bool((dev <= tolerance_pct + _EPS_PCT + 0.005).all())  # dev_pct is rounded to 0.01


def verdict(ok: bool | None) -> str:
    """``met`` / ``missed`` / ``-`` (not judged)."""
    return UNKNOWN if ok is None else (MET if ok else MISSED)


def cv_verdict(cv: float, field: str) -> bool | None:
    """True when the CV meets the field's published target; None without a target or value."""
    goal = cv_target(field)
    if goal is None or not _finite(cv):
        return None
    return cv < goal


@dataclass
class Balance:
    """Per-territory balance of one plan: the table and the plan-level figures per measure.

    ``table`` has the territory, ``accounts``, ``capacity``, per measure ``<m>_total``,
    ``<m>_target`` and ``<m>_dev_pct``. ``cv`` and ``max_dev_pct`` are keyed by measure;
    ``weighted`` says whether the capacities were known (else every capacity is 1).
    """

    table: pd.DataFrame
    cv: dict
    max_dev_pct: dict
    weighted: bool
    tier_cv: dict = field(default_factory=dict)  # {tier: {measure: cv}} for tiered plans
    tier_max_dev_pct: dict = field(default_factory=dict)  # {tier: {measure: largest |dev|}}

    @property
    def max_deviation_pct(self) -> float:
        """The largest deviation over every measure (as Design territories reports it)."""
        return max(self.max_dev_pct.values()) if self.max_dev_pct else 0.0


def balance(
    totals: pd.DataFrame,
    *,
    territory_field: str,
    measures: Sequence[str],
    capacity: Mapping[str, float] | None = None,
    tiers: Mapping[str, str] | None = None,
) -> Balance:
    """Capacity-weighted targets, deviations and CVs of a table of territory totals.

    ``totals`` has one row per territory and a ``<m>_total`` column per measure (``accounts``
    for the measure ``accounts``). ``capacity`` maps the territory's text key to its capacity;
    territories it lacks count with capacity 1. Without it every capacity is 1 (target = mean).
    ``tiers`` (territory key -> tier, e.g. named/geographic) judges each tier against its own
    targets: the table gets a ``tier`` column, ``tier_cv``/``tier_max_dev_pct`` the figures
    per tier, and ``cv``/``max_dev_pct`` the worst tier's.
    """
    if tiers:
        return _balance_by_tier(totals, territory_field=territory_field, measures=measures,
                                capacity=capacity, tiers=tiers)  # fmt: skip
    out = totals.copy()
    keys = [text_key(v) for v in out[territory_field]]
    cap = np.array(
        [float((capacity or {}).get(k, 1.0)) for k in keys], dtype=float
    )  # fmt: skip
    if "capacity" in out.columns:
        out = out.drop(columns="capacity")
    position = out.columns.get_loc("accounts") + 1 if "accounts" in out.columns else 1
    out.insert(position, "capacity", cap)
    cvs, worst = {}, {}
    for m in measures:
        column = "accounts" if m == "accounts" and "accounts_total" not in out else f"{m}_total"
        t = out[column].astype(float).to_numpy()
        out[f"{m}_target"] = np.round(targets(t, cap), 2)
        dev = np.round(deviation_pct(t, cap), 2)
        out[f"{m}_dev_pct"] = dev
        cvs[m] = cv_per_capacity(t, cap)
        worst[m] = round(float(np.abs(dev).max()), 2) if len(dev) else 0.0
    return Balance(out, cvs, worst, capacity is not None)


def tiers_of(frame: pd.DataFrame | None, territory_field: str = "territory_id") -> dict | None:
    """Territory key -> tier from a plan output with a ``tier`` field (coverage models); None
    when the frame has none or only one tier."""
    if frame is None or "tier" not in frame.columns or territory_field not in frame.columns:
        return None
    out = {text_key(t): str(v) for t, v in zip(frame[territory_field], frame["tier"])
           if text_key(t) is not None and isinstance(v, str) and v}  # fmt: skip
    return out if len(set(out.values())) > 1 else None


def _balance_by_tier(totals, *, territory_field, measures, capacity, tiers) -> Balance:
    keys = [text_key(v) for v in totals[territory_field]]
    tier = np.array([tiers.get(k, "") for k in keys], dtype=object)
    parts, tier_cv, tier_dev = [], {}, {}
    for name in dict.fromkeys(tier):
        sub = balance(totals[tier == name], territory_field=territory_field, measures=measures,
                      capacity=capacity)  # fmt: skip
        parts.append(sub.table.assign(tier=name))
        tier_cv[name], tier_dev[name] = sub.cv, sub.max_dev_pct
    table = pd.concat(parts).loc[totals.index] if parts else totals.copy()
    cv = {m: max(c[m] for c in tier_cv.values()) for m in measures}
    dev = {m: max(d[m] for d in tier_dev.values()) for m in measures}
    return Balance(table, cv, dev, capacity is not None, tier_cv, tier_dev)


def tier_text(bal: Balance) -> str:
    """One sentence per tier: its CVs and largest deviation against its own targets."""
    out = []
    for name, cvs in bal.tier_cv.items():
        parts = ", ".join(f"CV of {label(m)} {v:.3f}" for m, v in cvs.items())
        worst = max(bal.tier_max_dev_pct[name].values()) if bal.tier_max_dev_pct[name] else 0.0
        out.append(f"{name.capitalize()} tier (against its own targets): {parts}; largest "
                   f"deviation {worst:.2f}%.")  # fmt: skip
    return " ".join(out)


# ----------------------------------------------------------------------------- capacities


def read_capacities(table: pd.DataFrame, *, where: str = "SUMMARY") -> pd.DataFrame:
    """Capacity (and quota) per territory from a plan output with ``territory_id`` (or
    ``rep_id``) and ``capacity``: Design territories' summary, territories or centres.

    Returns a frame indexed by the territory's text key with ``territory_id``, ``capacity``
    (> 0) and, when the table has one, ``quota``. Raises :class:`InvalidInputError` naming
    ``where`` when the fields are missing or a value is not usable.
    """
    id_column = next((c for c in ID_COLUMNS if c in table.columns), None)
    if id_column is None or "capacity" not in table.columns:
        missing = [c for c in CAPACITY_COLUMNS if c not in table.columns]
        fields = ", ".join(str(c) for c in table.columns if c not in ("geometry", "fid"))
        raise InvalidInputError(
            f"{where}: the table has no {' or '.join(missing)} field; give the summary, "
            "territories or centres output of Design territories, which have one row per "
            f"territory with the fields territory_id and capacity. Its fields are: "
            f"{fields or 'none'}."
        )
    keys = [text_key(v) for v in table[id_column]]
    if any(k is None for k in keys):
        raise InvalidInputError(
            f"{where}: {sum(k is None for k in keys)} row(s) have no {id_column}; give one "
            f"{id_column} per row."
        )
    seen, twice = set(), []
    for k in keys:
        if k in seen and k not in twice:
            twice.append(k)
        seen.add(k)
    if twice:
        raise InvalidInputError(
            f"{where}: {id_column} {', '.join(twice[:10])} appear(s) in more than one row; "
            "give one row per territory."
        )
    capacity = pd.to_numeric(table["capacity"], errors="coerce").astype(float)
    bad = capacity.isna() | ~np.isfinite(capacity) | (capacity <= 0)
    if bad.any():
        names = [keys[i] for i in np.flatnonzero(bad.to_numpy())][:10]
        raise InvalidInputError(
            f"{where}: capacity must be a positive number for every territory; it is not for "
            f"{', '.join(names)}."
        )
    out = pd.DataFrame(
        {"territory_id": table[id_column].to_numpy(), "capacity": capacity.to_numpy()},
        index=pd.Index(keys, name="key"),
    )
    if "quota" in table.columns:
        out["quota"] = pd.to_numeric(table["quota"], errors="coerce").astype(float).to_numpy()
    return out


def has_capacities(table) -> bool:
    """True for a table with a territory id (``territory_id``/``rep_id``) and ``capacity``."""
    cols = getattr(table, "columns", ())
    return "capacity" in cols and any(c in cols for c in ID_COLUMNS)


def capacity_map(table: pd.DataFrame | None) -> dict[str, float] | None:
    """Territory key -> capacity of :func:`read_capacities`, or None without a table."""
    if table is None:
        return None
    return {str(k): float(v) for k, v in table["capacity"].items()}


# ----------------------------------------------------------------------------- prospects


def prospects_range(capacity) -> tuple[np.ndarray, np.ndarray]:
    """The active prospects guidance of each territory: 80-120 per unit of capacity (FTE)."""
    c = np.asarray(capacity, dtype=float)
    lo, hi = PROSPECTS_PER_FTE
    return lo * c, hi * c


def prospects_inside(counts, capacity) -> np.ndarray:
    """True per territory whose active prospects are within its (capacity-scaled) range."""
    lo, hi = prospects_range(capacity)
    n = np.asarray(counts, dtype=float)
    return (n >= lo - 1e-9) & (n <= hi + 1e-9)


# ----------------------------------------------------------------------------- disruption


@dataclass
class Disruption:
    """Accounts moved against the budget, and the revenue they carry."""

    moved: int
    accounts: int
    budget_pct: float | None = None
    revenue_moved: float | None = None
    revenue_total: float | None = None
    noun: str = "accounts"  # what the rows are: "areas" in a plan of areas (units)

    @property
    def moved_pct(self) -> float:
        return 100.0 * self.moved / self.accounts if self.accounts else 0.0

    @property
    def budget_moves(self) -> int | None:
        """The most accounts the budget allows (as Design territories counts it)."""
        if self.budget_pct is None:
            return None
        return math.floor(self.budget_pct / 100.0 * self.accounts + 1e-9)

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_pct is None else self.moved <= self.budget_moves

    @property
    def revenue_moved_pct(self) -> float | None:
        if self.revenue_moved is None or not self.revenue_total:
            return None
        return 100.0 * self.revenue_moved / self.revenue_total

    def text(self, revenue_label: str = "revenue") -> str:
        """``75 of 502 accounts moved = 14.9% of a 15% budget; revenue moved: ...``."""
        out = f"{self.moved:,} of {self.accounts:,} {self.noun} moved = {self.moved_pct:.1f}%"
        if self.budget_pct is not None:
            out += (
                f" (budget {self.budget_pct:g}% = at most {self.budget_moves:,} {self.noun}: "
                f"{'within' if self.within_budget else 'over'} budget)"
            )
        if self.revenue_moved is not None:
            out += f"; {revenue_label} moved: {self.revenue_moved:,.0f}"
            if self.revenue_moved_pct is not None:
                out += f" = {self.revenue_moved_pct:.1f}% of the total"
        return out + "."


def disruption(
    territory, current, *, budget_pct: float | None = None, revenue=None, noun: str = "accounts"
) -> Disruption:
    """Accounts whose territory differs from their current one (accounts without a current
    territory are new, not moved), as Design territories counts ``moved``; ``noun`` names the
    rows in the words ("areas" for a plan of areas)."""
    now = [text_key(v) for v in territory]
    before = [text_key(v) for v in current]
    moved = np.array([b is not None and a != b for a, b in zip(now, before)], dtype=bool)
    rev_moved = rev_total = None
    if revenue is not None:
        r = pd.to_numeric(pd.Series(list(revenue)), errors="coerce").fillna(0.0).to_numpy()
        rev_moved, rev_total = float(r[moved].sum()), float(r.sum())
    return Disruption(int(moved.sum()), len(now), budget_pct, rev_moved, rev_total, noun)


def match_territories(base, other) -> dict[str, str]:
    """Match the territories of a plan to those of a baseline by the accounts they share.

    ``base`` and ``other`` are the territory keys of the same accounts (None: not assigned).
    Returns ``{other territory: baseline territory}``, the one-to-one matching with the most
    accounts in common (Hungarian method); a shared id breaks ties. Territories without a
    partner (the plans have different numbers of territories) are left out.
    """
    from scipy.optimize import linear_sum_assignment

    pairs = [(text_key(b), text_key(o)) for b, o in zip(base, other)]
    pairs = [(b, o) for b, o in pairs if b is not None and o is not None]
    if not pairs:
        return {}
    b_ids = sorted({b for b, _ in pairs})
    o_ids = sorted({o for _, o in pairs})
    bi = {b: i for i, b in enumerate(b_ids)}
    oi = {o: j for j, o in enumerate(o_ids)}
    overlap = np.zeros((len(o_ids), len(b_ids)))
    for b, o in pairs:
        overlap[oi[o], bi[b]] += 1.0
    same = np.array([[0.5 if o == b else 0.0 for b in b_ids] for o in o_ids])
    rows, cols = linear_sum_assignment(-(overlap + same))
    return {
        o_ids[r]: b_ids[c] for r, c in zip(rows, cols) if overlap[r, c] > 0 or o_ids[r] == b_ids[c]
    }


def moved_after_matching(base, other) -> tuple[np.ndarray, dict[str, str]]:
    """Accounts in another territory than in the baseline once territories are matched by
    overlap (:func:`match_territories`). An account without a baseline territory is new (not
    moved); one that loses its territory counts as moved."""
    base = [text_key(v) for v in base]
    other = [text_key(v) for v in other]
    match = match_territories(base, other)
    moved = np.array(
        [b is not None and (o is None or match.get(o) != b) for b, o in zip(base, other)],
        dtype=bool,
    )
    return moved, match


# ----------------------------------------------------------------------------- shape


def compactness_km(xy: np.ndarray, labels) -> float:
    """Mean straight-line km from each account (metric x, y) to its territory's centroid."""
    xy = np.asarray(xy, dtype=float)
    if len(xy) == 0:
        return float("nan")
    lab = pd.Series(list(labels)).to_numpy()
    centroid = pd.DataFrame(xy, columns=["x", "y"]).groupby(lab).transform("mean")
    dist = np.hypot(xy[:, 0] - centroid["x"].to_numpy(), xy[:, 1] - centroid["y"].to_numpy())
    return round(float(dist.mean() / 1000.0), 3)


#: The field of the accounts output of a plan of areas that names each account's area.
UNIT_COLUMN = "unit_id"


def areas_counted(table: pd.DataFrame, areas: bool) -> pd.DataFrame:
    """``table`` with its count column ``accounts`` named ``areas`` when its plan is a plan of
    areas (as the report's and the comparison's tables say), for the written outputs."""
    if not areas or "areas" in table.columns:
        return table
    return table.rename(columns={"accounts": "areas"})


def accounts_of_areas(rows) -> bool:
    """True for the accounts output of a plan of areas (points with :data:`UNIT_COLUMN`): its
    territories' pieces are the areas', which the accounts alone cannot tell."""
    geoms = getattr(rows, "geometry", None)
    if geoms is None or UNIT_COLUMN not in getattr(rows, "columns", ()):
        return False
    located = geoms[geoms.notna() & ~geoms.is_empty]
    return bool(len(located)) and bool((located.geom_type == "Point").all())


def pieces(territories, territory_field: str = "territory_id") -> dict[str, int]:
    """Number of separate pieces (polygon parts) of each territory: the ``pieces`` field when
    the layer has one, else counted from the geometries."""
    out: dict[str, int] = {}
    if territories is None or territory_field not in getattr(territories, "columns", ()):
        return out
    if "pieces" in territories.columns:
        for tid, n in zip(territories[territory_field], territories["pieces"]):
            if text_key(tid) is not None and _finite(n):
                out[text_key(tid)] = int(n)
        return out
    if not hasattr(territories, "geometry"):
        return out
    import shapely

    for tid, geom in zip(territories[territory_field], territories.geometry):
        key = text_key(tid)
        if key is None or geom is None or geom.is_empty:
            continue
        parts = [p for p in shapely.get_parts(geom) if not p.is_empty and p.area > 0]
        out[key] = out.get(key, 0) + len(parts)
    return out


def headcount(capacity: Mapping[str, float] | None, territories: int) -> str:
    """``5 reps, 5.3 FTE`` (capacities known) or ``5 territories``."""
    if not capacity:
        return f"{territories} territories"
    return f"{territories} reps, {sum(capacity.values()):g} FTE"


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
