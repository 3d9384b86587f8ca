"""The live figures of a plan while a person edits it: the engine of the Territory editor panel.

:class:`PlanTable` holds a plan (the territory of every account or unit, their balance values,
the capacity of every territory, the tolerance, locks, the current plan, positions and an
adjacency) and keeps, per territory, the count, the totals, the deviation from the
capacity-weighted target and its status, travel or compactness, the number of pieces and the
accounts moved against the current plan. An edit (rows to a territory) updates the totals by
difference and recomputes travel and pieces only for the territories it touched, so the table
follows an edit of 10,000 accounts in a few milliseconds. The figures are those of
:mod:`.kpis` (targets, deviations, CVs, tolerance verdicts, moved accounts), so the editor shows
what the report will show. Nothing here imports ``qgis``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import kpis
from .errors import InvalidInputError

WITHIN, NEAR, OUTSIDE = "within", "near", "outside"
#: A territory is "near" the edge of its band when its deviation uses more than this share of
#: the tolerance (still within it).
NEAR_SHARE = 0.8


@dataclass
class Delta:
    """What an assignment would change in one territory: before and after figures."""

    territory: str
    count_before: int
    count_after: int
    totals_before: dict
    totals_after: dict
    dev_before: dict
    dev_after: dict
    pieces_before: int | None = None
    pieces_after: int | None = None

    @property
    def count_change(self) -> int:
        return self.count_after - self.count_before


@dataclass
class PlanWarning:
    """One warning of the live table: the territory (or row), its kind and a sentence."""

    territory: str | None
    kind: str  # pieces | band | drive | locked | empty
    text: str


@dataclass
class PlanFigures:
    """Plan-level figures: CV per measure, largest deviation, moved, unassigned, compactness."""

    cv: dict
    max_dev_pct: dict
    moved: int
    unassigned: int
    compactness_km: float | None
    outside: int
    warnings: list = field(default_factory=list)

    @property
    def max_deviation_pct(self) -> float:
        return max(self.max_dev_pct.values()) if self.max_dev_pct else 0.0


class PlanTable:
    """A plan under edit and its live per-territory table (see the module docstring).

    Parameters
    ----------
    territory
        The territory of each row (account or unit); None or "" = not assigned.
    values
        Balance values: a DataFrame (or mapping) with one column per balance field. Without
        fields the measure is the count of ``accounts``.
    balance_fields
        The columns of ``values`` to balance, in order.
    capacity
        Territory key -> capacity (targets scale with it); None = equal targets.
    tolerance_pct
        The allowed deviation from the target, in percent.
    locked
        True per locked row (it should stay in the territory it has when locked).
    current
        The territory of each row in the current plan (moved = differs from it; None = new).
    xy
        Metric x, y (metres) of each row, for compactness and travel.
    adjacency
        A symmetric scipy sparse matrix (n × n) of rows that touch (units) or are neighbours
        (accounts); with it the pieces of every territory are counted.
    centres
        Territory key -> (x, y) of its rep's base (metres): travel = straight-line km to it.
    max_km
        The longest drive (straight-line km to the centre) a rep accepts; None = no limit.
    minutes
        Territory key -> drive minutes from its rep's base to every row (see
        :func:`drive_minutes`); with it travel is in minutes (``travel_min``, ``longest_min``)
        and ``max_minutes`` is the longest drive a rep accepts.
    territories
        Territories to show even when they have no rows (e.g. from the plan's summary).
    names
        Territory key -> rep name to show.
    tiers
        Territory key -> tier (coverage models: ``named``/``geographic``); each tier is then
        judged against its own targets. None = one tier.
    """

    def __init__(
        self,
        territory: Sequence,
        *,
        values: pd.DataFrame | Mapping[str, Sequence] | None = None,
        balance_fields: Sequence[str] = (),
        capacity: Mapping[str, float] | None = None,
        tolerance_pct: float = 5.0,
        locked: Sequence[bool] | None = None,
        current: Sequence | None = None,
        xy: np.ndarray | None = None,
        adjacency=None,
        centres: Mapping[str, Sequence[float]] | None = None,
        max_km: float | None = None,
        territories: Iterable | None = None,
        names: Mapping[str, str] | None = None,
        tiers: Mapping[str, str] | None = None,
        minutes: Mapping[str, Sequence[float]] | None = None,
        max_minutes: float | None = None,
    ) -> None:
        keys = [kpis.text_key(v) for v in territory]
        self.tiers = {str(k): str(v) for k, v in (tiers or {}).items()}
        self.n = len(keys)
        self.fields = list(balance_fields)
        self.measures = self.fields or ["accounts"]
        self.tolerance_pct = float(tolerance_pct)
        self.capacity_given = capacity is not None
        self._capacity_in = {str(k): float(v) for k, v in (capacity or {}).items()}
        self.names = {str(k): str(v) for k, v in (names or {}).items()}
        self.max_km = max_km
        self.minutes = {str(k): np.asarray(v, float) for k, v in (minutes or {}).items()}
        self.max_minutes = max_minutes
        if self.fields:
            frame = pd.DataFrame(values) if not isinstance(values, pd.DataFrame) else values
            missing = [f for f in self.fields if f not in frame.columns]
            if missing:
                raise InvalidInputError(f"Balance fields {missing} are not in the plan's values.")
            cols = [pd.to_numeric(frame[f], errors="coerce").to_numpy(float) for f in self.fields]
            self.values = np.nan_to_num(np.column_stack(cols), nan=0.0)
        else:
            self.values = np.ones((self.n, 1))
        if len(self.values) != self.n:
            raise InvalidInputError("The values have another number of rows than the plan.")
        self.locked = np.zeros(self.n, bool) if locked is None else np.asarray(locked, bool).copy()
        # the territory a locked row was locked in: moving it by hand is warned about
        self.current = None if current is None else [kpis.text_key(v) for v in current]
        self.xy = None if xy is None else np.asarray(xy, dtype=float)
        self.adjacency = None if adjacency is None else adjacency.tocsr()
        self.centres = {str(k): np.asarray(v, float) for k, v in (centres or {}).items()}
        order = list(dict.fromkeys(
            [str(t) for t in (territories or [])] + sorted(self._capacity_in)
            + sorted({k for k in keys if k is not None}, key=_natural)
        ))  # fmt: skip
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        for k in order:
            self._add_key(k)
        self.codes = np.array([self.index[k] if k is not None else -1 for k in keys], dtype=int)
        self._cur_codes = None
        if self.current is not None:
            self._cur_codes = np.array(
                [self._add_key(c) if c is not None else -1 for c in self.current], dtype=int
            )
        self._known = set(order)  # territories of the plan as loaded: kept even when emptied
        self._loaded = self.codes.copy()  # each row's territory as loaded
        self.lock_code = np.where(self.locked, self.codes, -1)
        self.recompute()

    # ------------------------------------------------------------------ territories

    def _add_key(self, key: str) -> int:
        if key in self.index:
            return self.index[key]
        self.index[key] = len(self.keys)
        self.keys.append(key)
        if hasattr(self, "count"):  # a new territory while editing: grow the arrays
            self.count = np.append(self.count, 0)
            self.totals = np.vstack([self.totals, np.zeros((1, self.values.shape[1]))])
            self.moved = np.append(self.moved, 0)
            self.pieces = np.append(self.pieces, 0)
            self.travel_km = np.append(self.travel_km, np.nan)
            self.longest_km = np.append(self.longest_km, np.nan)
            self.travel_min = np.append(self.travel_min, np.nan)
            self.longest_min = np.append(self.longest_min, np.nan)
            self.compact_sum = np.append(self.compact_sum, 0.0)
        return self.index[key]

    @property
    def k(self) -> int:
        return len(self.keys)

    def capacity(self) -> np.ndarray:
        """Capacity per territory (1 when unknown), in the order of :attr:`keys`."""
        return np.array([self._capacity_in.get(k, 1.0) for k in self.keys], dtype=float)

    def territory_of(self, row: int) -> str | None:
        c = self.codes[row]
        return self.keys[c] if c >= 0 else None

    # ------------------------------------------------------------------ compute

    def recompute(self) -> None:
        """Every figure from scratch (used at start; edits update only what they touch)."""
        k, m = self.k, self.values.shape[1]
        on = self.codes >= 0
        self.count = np.bincount(self.codes[on], minlength=k).astype(int)
        self.totals = np.zeros((k, m))
        for j in range(m):
            self.totals[:, j] = np.bincount(self.codes[on], weights=self.values[on, j], minlength=k)
        self.moved = np.zeros(k, int)
        if self._cur_codes is not None:
            mv = on & (self._cur_codes >= 0) & (self._cur_codes != self.codes)
            self.moved = np.bincount(self.codes[mv], minlength=k).astype(int)
        self.pieces = np.zeros(k, int)
        self.travel_km = np.full(k, np.nan)
        self.longest_km = np.full(k, np.nan)
        self.travel_min = np.full(k, np.nan)
        self.longest_min = np.full(k, np.nan)
        self.compact_sum = np.zeros(k)
        self._refresh(range(k))

    def _members(self, j: int) -> np.ndarray:
        return np.flatnonzero(self.codes == j)

    def _refresh(self, touched: Iterable[int]) -> None:
        """Pieces, travel and compactness of the touched territories only."""
        for j in touched:
            idx = self._members(j)
            self.pieces[j] = self._count_pieces(idx)
            drive = self.minutes.get(self.keys[j])
            if drive is not None:  # unreachable rows (inf) count in the longest drive only
                d = drive[idx]
                self.travel_min[j] = float(d[np.isfinite(d)].sum())
                self.longest_min[j] = float(d.max()) if len(d) else 0.0
            if self.xy is None:
                continue
            pts = self.xy[idx]
            if len(idx):
                d = np.hypot(*(pts - pts.mean(0)).T)
                self.compact_sum[j] = float(d.sum())
            else:
                self.compact_sum[j] = 0.0
            centre = self.centres.get(self.keys[j])
            if centre is not None:
                d = np.hypot(*(pts - centre).T) / 1000.0 if len(idx) else np.zeros(0)
                self.travel_km[j] = float(d.sum())
                self.longest_km[j] = float(d.max()) if len(d) else 0.0

    def _count_pieces(self, idx: np.ndarray) -> int:
        if self.adjacency is None or len(idx) == 0:
            return 1 if len(idx) else 0
        return count_pieces(self.adjacency, idx)

    # ------------------------------------------------------------------ edits

    def assign(self, rows: Sequence[int], territory) -> dict[int, str | None]:
        """Move ``rows`` to ``territory`` (None = unassign); returns their previous territories.

        Totals are updated by difference; pieces, travel and compactness are recomputed for the
        territories the rows left and the one they joined.
        """
        key = kpis.text_key(territory)
        rows = np.asarray(list(rows), dtype=int)
        return self.set_territories(rows, [key] * len(rows))

    def set_territories(self, rows: Sequence[int], territories: Sequence) -> dict:
        """Give each of ``rows`` its own territory (e.g. after an undo); returns the old ones."""
        rows = np.asarray(list(rows), dtype=int)
        new = np.array(
            [self._add_key(k) if k is not None else -1
             for k in (kpis.text_key(t) for t in territories)], dtype=int,
        )  # fmt: skip
        if len(rows) != len(np.unique(rows)):  # a row named twice: its last territory counts
            last = {int(r): int(c) for r, c in zip(rows, new)}
            rows, new = np.array(list(last), dtype=int), np.array(list(last.values()), dtype=int)
        old = self.codes[rows].copy()
        before = {int(r): (self.keys[c] if c >= 0 else None) for r, c in zip(rows, old)}
        change = old != new
        rows, old, new = rows[change], old[change], new[change]
        if len(rows) == 0:
            return before
        vals = self.values[rows]
        for codes, sign in ((old, -1.0), (new, 1.0)):
            on = codes >= 0
            if on.any():
                np.add.at(self.count, codes[on], int(sign))
                np.add.at(self.totals, codes[on], sign * vals[on])
                if self._cur_codes is not None:
                    cur = self._cur_codes[rows[on]]
                    mv = (cur >= 0) & (cur != codes[on])
                    np.add.at(self.moved, codes[on][mv], int(sign))
        self.codes[rows] = new
        self._refresh(sorted({int(c) for c in np.concatenate([old, new]) if c >= 0}))
        return before

    def set_locked(self, rows: Sequence[int], locked: bool = True) -> None:
        """Lock (or unlock) rows in the territory they have now."""
        rows = np.asarray(list(rows), dtype=int)
        self.locked[rows] = locked
        self.lock_code[rows] = self.codes[rows] if locked else -1

    def preview(self, rows: Sequence[int], territory) -> dict[str, Delta]:
        """Per territory touched, the figures before and after moving ``rows`` to
        ``territory``, without applying the move."""
        rows = list(rows)
        before = {t: self.figures(t) for t in self._touched(rows, territory)}
        old = self.set_territories(rows, [territory] * len(rows))
        try:
            after = {t: self.figures(t) for t in before}
            plan_after = self.plan()
        finally:
            self.set_territories(list(old), list(old.values()))
        self.last_preview_plan = plan_after
        out = {}
        for t, b in before.items():
            a = after[t]
            out[t] = Delta(
                t, b["count"], a["count"],
                {m: b[f"{m}_total"] for m in self.measures},
                {m: a[f"{m}_total"] for m in self.measures},
                {m: b[f"{m}_dev_pct"] for m in self.measures},
                {m: a[f"{m}_dev_pct"] for m in self.measures},
                b["pieces"], a["pieces"],
            )  # fmt: skip
        return out

    def _touched(self, rows, territory) -> list[str]:
        keys = [self.territory_of(r) for r in rows] + [kpis.text_key(territory)]
        return [k for k in dict.fromkeys(keys) if k is not None]

    # ------------------------------------------------------------------ read

    def balance(self) -> tuple[dict, dict, dict, dict]:
        """Targets, deviations (%), CVs and largest |deviation| per measure (as :mod:`.kpis`)."""
        cap = self.capacity()
        tgt, dev, cv, worst = {}, {}, {}, {}
        shown = self.shown()
        tier = np.array([self.tiers.get(k, "") for k in self.keys], dtype=object)
        groups = [shown & (tier == g) for g in dict.fromkeys(tier[shown])] or [shown]
        for m, name in enumerate(self.measures):
            t = self.totals[:, m]
            tgt[name] = np.zeros(self.k)
            dev[name] = np.zeros(self.k)
            cvs = []
            for g in groups:  # each tier against its own targets (one group without tiers)
                if g.any():
                    tgt[name][g] = kpis.targets(t[g], cap[g])
                    dev[name][g] = kpis.deviation_pct(t[g], cap[g])
                    cvs.append(kpis.cv_per_capacity(t[g], cap[g]))
            cv[name] = max(cvs) if cvs else float("nan")
            worst[name] = round(float(np.abs(dev[name][shown]).max()), 2) if shown.any() else 0.0
        return tgt, dev, cv, worst

    def shown(self) -> np.ndarray:
        """True per territory in the plan: it has rows, or it was in the plan as loaded."""
        return (self.count > 0) | np.array([k in self._known for k in self.keys], dtype=bool)

    def status(self, dev_pct: float) -> str:
        """``within`` / ``near`` (more than :data:`NEAR_SHARE` of the band used) / ``outside``."""
        if not kpis.within_tolerance([round(dev_pct, 2)], self.tolerance_pct):
            return OUTSIDE
        return NEAR if abs(dev_pct) > NEAR_SHARE * self.tolerance_pct else WITHIN

    def table(self) -> pd.DataFrame:
        """One row per territory: ``territory``, ``rep``, ``count``, ``capacity``, per measure
        ``<m>_total``, ``<m>_target``, ``<m>_dev_pct``, ``<m>_status``, then ``travel_km``,
        ``longest_km``, (with drive times) ``travel_min`` and ``longest_min``,
        ``compactness_km``, ``pieces`` and ``moved``."""
        tgt, dev, _, _ = self.balance()
        out = {
            "territory": list(self.keys),
            "rep": [self.names.get(k, k) for k in self.keys],
            "count": self.count.copy(),
            "capacity": self.capacity(),
        }
        for name in self.measures:
            m = self.measures.index(name)
            out[f"{name}_total"] = self.totals[:, m].copy()
            out[f"{name}_target"] = tgt[name]
            out[f"{name}_dev_pct"] = dev[name]
            out[f"{name}_status"] = [self.status(d) for d in dev[name]]
        out["travel_km"] = self.travel_km.copy()
        out["longest_km"] = self.longest_km.copy()
        if self.minutes:
            out["travel_min"] = self.travel_min.copy()
            out["longest_min"] = self.longest_min.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            comp = np.where(self.count > 0, self.compact_sum / np.maximum(self.count, 1) / 1000.0,
                            np.nan)  # fmt: skip
        out["compactness_km"] = comp if self.xy is not None else np.full(self.k, np.nan)
        out["pieces"] = self.pieces.copy()
        out["moved"] = self.moved.copy()
        return pd.DataFrame(out)

    def figures(self, territory) -> dict:
        """The table's row of one territory as a dict."""
        j = self.index[kpis.text_key(territory)]
        return self.table().iloc[j].to_dict()

    def plan(self) -> PlanFigures:
        """CVs, largest deviation, moved, unassigned and the warnings of the plan as it is."""
        _, dev, cv, worst = self.balance()
        compact = None
        on = self.codes >= 0
        if self.xy is not None and on.any():
            compact = round(float(self.compact_sum.sum() / on.sum() / 1000.0), 3)
        outside = sum(
            any(self.status(dev[m][j]) == OUTSIDE for m in self.measures)
            for j in np.flatnonzero(self.shown())
        )  # fmt: skip
        return PlanFigures(cv, worst, int(self.moved.sum()), int((~on).sum()), compact, outside,
                           self.warnings(dev))  # fmt: skip

    def changed_since_load(self) -> int:
        """How many rows are in another territory than when the plan was loaded (hand edits,
        re-optimised moves, undo back to the start gives 0)."""
        return int((self.codes != self._loaded).sum())

    def changed_territories(self, drawn: np.ndarray) -> list[str]:
        """Territories whose rows differ from ``drawn`` (each row's territory code when the
        territory polygons were last drawn, e.g. a copy of :attr:`codes` at load)."""
        diff = self.codes != drawn
        touched = set(self.codes[diff].tolist()) | set(np.asarray(drawn)[diff].tolist())
        return [self.keys[c] for c in sorted(touched) if c >= 0]

    def shows_loaded(self, figures: Mapping[str, Mapping[str, object]], count_field: str) -> bool:
        """True when a Territories output's figures (territory -> its fields) are those of this
        plan as loaded: every territory of the plan in it has the plan's count (``count_field``,
        ``accounts`` or ``units``) or, without that field, the plan's totals (``<m>_total``)."""
        mine = {k: v for k, v in figures.items() if k in self.index}
        if not mine:
            return False
        on = self._loaded >= 0
        count = np.bincount(self._loaded[on], minlength=self.k)
        compared = False
        for key, row in mine.items():
            j = self.index[key]
            if row.get(count_field) is not None:
                if _number(row[count_field]) != count[j]:
                    return False
                compared = True
                continue
            for m, name in enumerate(self.measures):
                value = _number(row.get(f"{name}_total"))
                if value is None:
                    continue
                total = float(self.values[on & (self._loaded == j), m].sum())
                if abs(value - total) > max(0.01, 1e-6 * abs(total)):
                    return False
                compared = True
        return compared

    def output_fields(
        self, key: str, count_field: str, *, sums: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, object]:
        """Fields of a Territories output (Design/Rebalance territories) for territory ``key``
        as edited, rounded as those outputs are: the count (``count_field``), the sum of each
        of ``sums`` (name -> a value per row, e.g. the ``accounts`` of each unit), per measure
        ``<m>_total`` and ``<m>_dev_pct``, ``pieces`` and ``travel_total`` (the panel's drive
        minutes, else its straight-line km to the rep's base; None without bases)."""
        j = self.index[kpis.text_key(key)]
        _, dev, _, _ = self.balance()
        out: dict[str, object] = {count_field: int(self.count[j])}
        for name, per_row in (sums or {}).items():
            total = float(np.nansum(np.asarray(per_row, float)[self.codes == j]))
            out[name] = int(total) if total.is_integer() else round(total, 2)
        for m, name in enumerate(self.measures):
            out[f"{name}_total"] = round(float(self.totals[j, m]), 2)
            out[f"{name}_dev_pct"] = round(float(dev[name][j]), 2)
        out["pieces"] = int(self.pieces[j])
        travel = self.travel_min[j] if self.minutes else self.travel_km[j]
        out["travel_total"] = round(float(travel), 2) if np.isfinite(travel) else None
        return out

    def warnings(self, dev: dict | None = None) -> list[PlanWarning]:
        """Territories split into pieces, outside their band, emptied, beyond the longest
        drive, and locked rows moved since they were locked."""
        if dev is None:
            dev = self.balance()[1]
        out = []
        for j, key in enumerate(self.keys):
            if self.count[j] == 0:
                if key in self._known:
                    out.append(PlanWarning(key, "empty", f"Territory {key} has no accounts."))
                continue
            if self.pieces[j] > 1:
                out.append(PlanWarning(key, "pieces", f"Territory {key} is split into "
                                    f"{self.pieces[j]} pieces."))  # fmt: skip
            bad = [
                f"{kpis.label(m)} {dev[m][j]:+.1f}%" for m in self.measures
                if self.status(dev[m][j]) == OUTSIDE
            ]  # fmt: skip
            if bad:
                out.append(PlanWarning(key, "band", f"Territory {key} is outside its "
                                    f"±{self.tolerance_pct:g}% band: {', '.join(bad)}."))  # fmt: skip
            if self.max_minutes is not None and self.longest_min[j] > self.max_minutes:
                far = ("cannot be reached by road" if not np.isfinite(self.longest_min[j]) else
                       f"is {self.longest_min[j]:.0f} min from the rep's base")  # fmt: skip
                out.append(PlanWarning(key, "drive", f"Territory {key}: the farthest account "
                                    f"{far} (limit {self.max_minutes:g} min)."))  # fmt: skip
            if self.max_km is not None and self.longest_km[j] > self.max_km:
                out.append(PlanWarning(key, "drive", f"Territory {key}: the farthest account is "
                                    f"{self.longest_km[j]:.1f} km from the rep's base (limit "
                                    f"{self.max_km:g} km)."))  # fmt: skip
        broken = np.flatnonzero((self.lock_code >= 0) & (self.lock_code != self.codes))
        if len(broken):
            out.append(PlanWarning(None, "locked", f"{len(broken)} locked row(s) moved by hand "
                                "out of the territory they are locked to."))  # fmt: skip
        return out

    def locked_moved(self) -> np.ndarray:
        """Rows moved out of the territory they were locked in."""
        return np.flatnonzero((self.lock_code >= 0) & (self.lock_code != self.codes))

    def assignment(self) -> list[str | None]:
        """The territory key of every row as the plan stands."""
        return [self.keys[c] if c >= 0 else None for c in self.codes]


def count_pieces(adjacency, idx: np.ndarray) -> int:
    """Connected pieces of the rows ``idx`` (one territory) in a sparse ``adjacency``."""
    from scipy.sparse.csgraph import connected_components

    sub = adjacency[idx][:, idx]
    n, _ = connected_components(sub, directed=False)
    return int(n)


def point_adjacency(xy: np.ndarray, *, study_area=None):
    """Neighbours of point accounts, as Design territories counts a territory's pieces.

    The adjacency of the accounts' Voronoi cells inside the study area (default: their tight
    outline), with groups apart linked to their neighbours: :func:`.adjacency.point_adjacency`.
    """
    from .adjacency import point_adjacency as cells_adjacency

    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    adjacency, _ = cells_adjacency(xy, study_area=study_area, with_cells=False)
    return adjacency.matrix


def polygon_adjacency(geometries: Sequence, *, rule: str = "rook", snap_m: float = 1.0):
    """Neighbours of units by shared boundary (ADJACENCY rule, SNAP_DISTANCE), as Design
    territories counts pieces: :func:`.adjacency.polygon_adjacency` (islands linked)."""
    from .adjacency import polygon_adjacency as units_adjacency

    return units_adjacency(list(geometries), rule=rule, snap_m=snap_m).matrix


def territory_outlines(
    table: PlanTable,
    keys: Sequence[str],
    *,
    geometries: Sequence | None = None,
    outline=None,
    snap_m: float = 1.0,
) -> dict[str, object]:
    """Polygons of the territories ``keys`` as the plan stands, drawn as Design territories
    draws them, in the metric coordinates of the table (an empty polygon for an emptied one).

    A plan of units (``geometries``, their polygons): the union of each territory's units, gaps
    narrower than ``snap_m`` closed (:func:`.units.dissolve_units`). A plan of accounts: the
    union of the accounts' Voronoi cells within ``outline``, the area the plan's territory
    polygons cover (:func:`.adjacency.territory_polygons`). Named-account territories (tier
    ``named``) have no area: an empty polygon, and their accounts make no cells.
    """
    import shapely

    keys = [kpis.text_key(k) for k in keys]
    if geometries is None:
        if table.xy is None or outline is None:
            raise InvalidInputError("Drawing territories of accounts needs their positions and "
                                    "the outline of the plan's territory polygons.")  # fmt: skip
        from .adjacency import territory_polygons

        named = [table.index[k] for k, tier in table.tiers.items()
                 if tier == kpis.NAMED_TIER and k in table.index]  # fmt: skip
        on = (table.codes >= 0) & ~np.isin(table.codes, named)
        empty = {k: shapely.Polygon() for k in keys}
        if not on.any():
            return empty
        polys = territory_polygons(table.xy[on], table.codes[on], table.k, outline)
        return {k: empty[k] if table.index[k] in named else polys[table.index[k]] for k in keys}
    from .units import dissolve_units

    position = np.full(table.k + 1, -1)  # territory code -> its place in keys (-1: not drawn)
    position[[table.index[k] for k in keys]] = np.arange(len(keys))
    assign = position[table.codes]  # (code -1, unassigned, reads the last entry: -1)
    polys = dissolve_units(list(geometries), assign, len(keys), gap_m=snap_m)
    return dict(zip(keys, polys))


def _number(value) -> float | None:
    """A field's value as a float; None for NULL, empty or text that is not a number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _natural(key: str):
    return (0, int(key), key) if key.lstrip("-").isdigit() else (1, 0, key)


# ----------------------------------------------------------------------------- re-optimise


def reoptimise(
    table: PlanTable,
    *,
    manual_rows: Iterable[int] = (),
    crs: object = None,
    geometries: Sequence | None = None,
    time_limit_s: float = 30.0,
    progress=None,
    is_cancelled=None,
) -> pd.DataFrame:
    """Rebalance the edited plan, keeping the locked rows and those moved by hand in place.

    Runs :func:`.rebalance.rebalance_territories` with today's territory = the plan as edited,
    capacities and tolerance of ``table`` and the rep bases (or each territory's medoid).
    With ``geometries`` (the polygons of a plan of units, in ``crs``) the units are passed as
    UNITS, so whole units move and every territory stays in one piece.
    Returns the proposed moves: ``row``, ``from_id``, ``to_id``; nothing is applied.
    """
    import geopandas as gpd
    import shapely

    from .rebalance import rebalance_territories

    if table.xy is None:
        raise InvalidInputError("Re-optimising needs the positions of the accounts or units.")
    keep = np.zeros(table.n, bool)
    keep[list(manual_rows)] = True
    keep |= table.locked
    now = table.assignment()
    lock = [now[i] if keep[i] and now[i] is not None else None for i in range(table.n)]
    data = {"_row": np.arange(table.n), "_now": now, "_lock": lock}
    for m, f in enumerate(table.fields):
        data[f] = table.values[:, m]
    shapes = shapely.points(table.xy) if geometries is None else list(geometries)
    acc = gpd.GeoDataFrame(data, geometry=shapes, crs=crs or "EPSG:3857")
    used = np.flatnonzero(table.shown())
    rep_xy, rep_ids = [], []
    for j in used:
        key = table.keys[j]
        if key in table.centres:
            rep_xy.append(table.centres[key])
        elif table.count[j]:
            pts = table.xy[table.codes == j]
            centre = np.median(pts, axis=0)
            rep_xy.append(pts[int(np.argmin(((pts - centre) ** 2).sum(1)))])
        else:
            continue  # an emptied territory without a base: it cannot be given accounts
        rep_ids.append(key)
    reps = gpd.GeoDataFrame(
        {"rep": rep_ids, "capacity": [table._capacity_in.get(k, 1.0) for k in rep_ids]},
        geometry=shapely.points(np.asarray(rep_xy, float)), crs=acc.crs,
    )  # fmt: skip
    where = {"units": acc, "unit_id_field": "_row"} if geometries is not None else {
        "accounts": acc, "id_field": "_row"}  # fmt: skip
    result = rebalance_territories(
        **where, current_field="_now", reps=reps, rep_id_field="rep",
        rep_capacity_field="capacity", balance_fields=table.fields,
        tolerance_pct=table.tolerance_pct, lock_field="_lock", time_limit_s=time_limit_s,
        progress=progress, is_cancelled=is_cancelled,
    )  # fmt: skip
    out = result.plan.accounts if geometries is None else result.plan.units
    rows = out["_row"].to_numpy(int)
    new = [kpis.text_key(v) for v in out["territory_id"]]
    moves = [(r, now[r], t) for r, t in zip(rows, new) if t != now[r]]
    return pd.DataFrame(moves, columns=["row", "from_id", "to_id"])


def drive_minutes(
    network: object,
    xy: np.ndarray,
    crs: str,
    centres: Mapping[str, Sequence[float]],
) -> dict[str, np.ndarray]:
    """Drive minutes from each centre (territory key -> metric x, y in ``crs``) to every row of
    ``xy`` on ``network`` (a road network file, or a :class:`.network.RoadNetwork` already
    loaded: :func:`.network.load_network`), costed as Design territories costs them
    (:func:`.model.point_costs`: from where each point meets its road; pairs the roads do not
    connect by straight line)."""
    import geopandas as gpd
    import shapely

    from .model import point_costs, snap_points_once
    from .network import load_network

    net = load_network(network) if isinstance(network, (str, os.PathLike)) else network
    keys = list(centres)

    def metric(points: np.ndarray) -> np.ndarray:
        geo = gpd.GeoSeries(shapely.points(np.asarray(points, float)), crs=crs).to_crs(net.crs)
        return shapely.get_coordinates(geo.to_numpy())

    rows = metric(xy)
    bases = metric(np.array([centres[k] for k in keys], float).reshape(-1, 2))
    _, minutes = point_costs(rows, bases, net, snap_points_once(rows, net, net.crs))
    return {k: minutes[:, i] for i, k in enumerate(keys)}
