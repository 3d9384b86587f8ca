"""Why each account is in its territory: the binding rule and a sentence a rep can read.

Pure functions on arrays (no solver, no geometry). For every account the rule that keeps it
out of a nearer territory is found by testing that one change alone: moving it to the nearer
territory (or back to the territory it left) either breaks a balance band (``balance``, or
``capacity`` when only the capacity-weighted share makes the band tight), is beyond
REP_MAX_MINUTES (``max drive time``) or barred by another pair rule (``expertise``: SKILL_RULE
hard, in the rule's own words), would use a move the disruption budget does not have
(``disruption budget``) or a move the rebalance avoids (``fewest moves``). Locks, new accounts
and accounts of a rep who left are named as such. Differences in distance are never negative
and carry their unit (``min`` with a road network, straight-line ``km`` without).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .model import PairRule

REASONS = ("locked", "nearest", "balance", "capacity", "max drive time", "expertise",
           "disruption budget", "fewest moves", "new account", "rep left", "contiguity")  # fmt: skip
# every column :func:`explain_accounts` may write (both units), for field-name collisions
COLUMNS = ("previous_territory_id", "next_best_id", "next_best_extra_min", "next_best_extra_km",
           "nearest_saving_min", "nearest_saving_km", "reason", "explanation")  # fmt: skip
_EPS = 1e-9


def explain_accounts(
    *,
    assign: np.ndarray,
    cost: np.ndarray,
    unit: str,
    territory_ids: Sequence[str],
    values: np.ndarray,
    measure_names: Sequence[str],
    lo: np.ndarray,
    hi: np.ndarray,
    capacity: np.ndarray,
    locks: np.ndarray,
    current: np.ndarray,
    allowed: np.ndarray,
    budget: int | None = None,
    previous: Sequence[object] | None = None,
    is_new: np.ndarray | None = None,
    departed: np.ndarray | None = None,
    fewest_moves: bool = False,
    travel_weight: float = 0.0,
    contiguous: bool = False,
    rule: tuple[np.ndarray, PairRule] | None = None,
    counts: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-account explanation columns of a plan (one row per account, in input order).

    Parameters
    ----------
    assign, cost, unit
        Territory index per account; (n, k) distance to each territory's centre; ``"min"``
        (drive minutes) or ``"km"`` (straight line).
    territory_ids, values, measure_names, lo, hi, capacity
        Territory ids (k,); balanced values (n, m) and the measures' field names (empty for a
        count of accounts); lower and upper band (k, m); capacity per territory (k,).
    locks, current, allowed, budget
        Locked / current territory index (-1 = none); (n, k) pairs within REP_MAX_MINUTES;
        MAX_MOVES as a number of accounts (None = no budget).
    previous, is_new, departed, fewest_moves
        Rebalance only: today's territory as written (also ids no longer planned), new accounts,
        accounts of a rep who left, and whether unmoved accounts stay to keep moves few.
    travel_weight
        TRAVEL_WEIGHT of the plan (> 0: travel is evened out as well).
    contiguous
        The plan keeps every territory in one piece (CONTIGUOUS): what no single band explains
        is put down to contiguity.
    rule
        (pairs it allows (n, k), its words: :class:`.model.PairRule`) of a pair rule besides
        REP_MAX_MINUTES (SKILL_RULE hard): a pair ``allowed`` bars is put down to it when it
        bars the pair (its ``why`` and ``reason``), to REP_MAX_MINUTES otherwise.
    counts
        (n,) accounts whose distances each row's cost adds up (the areas of a plan of areas
        with accounts): the words then say the distances of its accounts, in total, and give no
        distance for an area without accounts (its cost only breaks ties). None: each row is
        one place.

    Returns
    -------
    pandas.DataFrame
        ``previous_territory_id`` (the territory it left; None when not moved),
        ``next_best_id``, ``next_best_extra_<unit>`` (how much farther the best other territory
        is, >= 0), ``nearest_saving_<unit>`` (how much nearer the nearest territory is when it
        is not its own, else 0), ``reason`` (one of ``REASONS``) and ``explanation``.
    """
    if unit not in ("min", "km"):
        raise ValueError(f"unit must be 'min' or 'km', not {unit!r}")
    assign = np.asarray(assign, int)
    cost = np.asarray(cost, float)
    n, k = cost.shape
    ids = np.asarray([str(t) for t in territory_ids], dtype=object)
    values = np.asarray(values, float).reshape(n, -1)
    names = [_measure(nm) for nm in measure_names] or ["number of accounts"]
    rows = np.arange(n)
    own = cost[rows, assign]
    is_new = np.zeros(n, bool) if is_new is None else np.asarray(is_new, bool)
    departed = np.zeros(n, bool) if departed is None else np.asarray(departed, bool)
    has = current >= 0
    moved = has & (assign != current)
    if previous is None:
        prev_text = np.where(has, ids[np.where(has, current, 0)], None)
    else:
        prev_text = np.asarray([_text(p) for p in previous], dtype=object)
    left = moved | departed
    out = pd.DataFrame(index=range(n))
    out["previous_territory_id"] = pd.Series(np.where(left, prev_text, None), dtype=object)
    # next best: the best territory other than its own; never negative
    if k > 1:
        alt = cost.copy()
        alt[rows, assign] = np.inf
        nxt = np.argmin(alt, 1)
        out["next_best_id"] = pd.Series(ids[nxt], dtype=object)
        out[f"next_best_extra_{unit}"] = np.round(np.maximum(alt[rows, nxt] - own, 0.0), 3)
    else:
        out["next_best_id"] = pd.Series([None] * n, dtype=object)
        out[f"next_best_extra_{unit}"] = np.nan
    nearest = np.argmin(cost, 1)
    saving = np.maximum(own - cost[rows, nearest], 0.0)
    out[f"nearest_saving_{unit}"] = np.round(saving, 3)
    ctx = _Context(assign, cost, unit, ids, values, names, lo, hi, capacity, allowed, rule)
    ctx.counts = np.ones(n, int) if counts is None else np.asarray(counts, int)
    moves_used = int(moved.sum())
    # most accounts are in their nearest territory and neither locked, moved, new nor handed
    # over: their words are one sentence per territory (what ctx.explain would write)
    plain = ~departed & ~is_new & (np.asarray(locks) < 0) & ~moved & ~ctx.closer_any
    reasons = np.full(n, "nearest", dtype=object)
    nearest_words = np.array([f"In {t}, its nearest territory." for t in ids] or [""], dtype=object)
    texts = nearest_words[np.where(plain, assign, 0)]
    for i in np.flatnonzero(~plain).tolist():
        reasons[i], texts[i] = ctx.explain(
            i, lock=int(locks[i]), cur=int(current[i]), prev=prev_text[i], new=bool(is_new[i]),
            gone=bool(departed[i]), budget_full=budget is not None and moves_used >= budget,
            budget=budget, fewest_moves=fewest_moves, travel_weight=travel_weight,
            contiguous=contiguous,
        )  # fmt: skip
    out["reason"] = pd.Series(reasons, dtype=object)
    out["explanation"] = pd.Series(texts, dtype=object)
    return out


class _Context:
    """The arrays one account's explanation is read from (totals computed once)."""

    def __init__(self, assign, cost, unit, ids, values, names, lo, hi, capacity, allowed, rule):
        k = cost.shape[1]
        self.rule = rule
        self.assign, self.cost, self.unit, self.ids = assign, cost, unit, ids
        self.values, self.names, self.allowed = values, names, allowed
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)
        self.target = (self.lo + self.hi) / 2.0
        self.tol_pct = np.where(
            self.target[0] > 0, 100 * (self.hi[0] - self.target[0]) / np.maximum(self.target[0], _EPS), 0.0
        )  # fmt: skip
        self.totals = np.zeros((k, values.shape[1]))
        np.add.at(self.totals, assign, values)
        self.capacity = np.asarray(capacity, float)
        own = cost[np.arange(len(assign)), assign]
        closer = cost < own[:, None] - _EPS
        self._closer_any = self.closer_any = closer.any(1)
        reach = closer & allowed
        self._q = np.where(reach.any(1), np.argmin(np.where(reach, cost, np.inf), 1), -1)
        self._vals, self._tot = values.tolist(), self.totals.tolist()
        self._hi, self._lo, self._tg = self.hi.tolist(), self.lo.tolist(), self.target.tolist()

    # ------------------------------------------------------------------ one account
    def explain(self, i, *, lock, cur, prev, new, gone, budget_full, budget, fewest_moves,
                travel_weight, contiguous=False):  # fmt: skip
        j = int(self.assign[i])
        tj = self.ids[j]
        if gone:
            head = f"Handed over from {prev}, whose rep left, to {tj}"
            return "rep left", self._placed(i, head)
        if new:
            return "new account", self._placed(i, f"New account, placed in {tj}")
        if lock >= 0:
            if cur >= 0 and cur != j:
                return (
                    "locked",
                    f"Moved from {prev} to {tj} because it is locked to {tj} (LOCK_FIELD).",
                )
            return "locked", f"Locked to {tj} (LOCK_FIELD)."
        if cur >= 0 and cur != j:  # moved: why did it not stay where it was?
            tc = self.ids[cur]
            head = f"Moved from {tc} to {tj}"
            if not self.allowed[i, cur]:
                barred = self._barred(i, cur)
                if barred is not None:
                    return barred[0], f"{head}: {barred[1]}; {self._compare(i, j, cur)}."
                return "max drive time", (
                    f"{head}: {tc}'s centre is beyond REP_MAX_MINUTES from it"
                    f"{self._away(i, cur)}; {self._compare(i, j, cur)}."
                )  # fmt: skip
            block = self._block(i, dest=cur, src=j, moved=True)
            if block is not None:
                kind, why = block
                return kind, f"{head} to {why}; {self._compare(i, j, cur)}."
            if fewest_moves:
                return "balance", (
                    f"{head}, one of the fewest moves that bring every territory within its band; "
                    f"{self._compare(i, j, cur)}."
                )  # fmt: skip
            reason, text = self._stay(i, j, head=head)
            if reason is None and contiguous:
                return "contiguity", (
                    f"{head} to keep every territory in one piece (CONTIGUOUS) and balanced; "
                    f"{self._compare(i, j, cur)}."
                )  # fmt: skip
            if reason is None:
                return "balance", (
                    f"{head} to balance the territories together with other accounts; "
                    f"{self._compare(i, j, cur)}."
                )  # fmt: skip
            return reason, text
        reason, text = self._stay(i, j, head=None)
        if reason is None:  # a nearer territory could take it alone: why it was not moved there
            q = self._nearer_allowed(i, j)
            tq = self.ids[q]
            near = f"{tq}'s centre is {self._nearer(i, j, q)}"
            if cur == j and budget is not None and budget_full:
                return "disruption budget", (
                    f"Stays in {tj}, its current territory: MAX_MOVES allows {budget} moves and "
                    f"all are used; {near}."
                )  # fmt: skip
            if cur == j and fewest_moves:
                return "fewest moves", (
                    f"Stays in {tj}, its current territory: every band holds without moving it "
                    f"and the rebalance moves as few accounts as it can; {near}."
                )  # fmt: skip
            if contiguous:
                return "contiguity", (
                    f"In {tj} to keep every territory in one piece (CONTIGUOUS) and balanced; "
                    f"{near}."
                )  # fmt: skip
            if travel_weight > 0:
                return "balance", (
                    f"In {tj} to even out travel between territories (TRAVEL_WEIGHT); {near}."
                )  # fmt: skip
            return "balance", (
                f"In {tj} to balance the territories together with other accounts (moving it "
                f"alone to {tq} would keep every band); {near}."
            )  # fmt: skip
        return reason, text

    def _stay(self, i, j, *, head):
        """Why it is in j rather than a nearer territory; reason None when nothing blocks."""
        tj = self.ids[j]
        if not self._closer_any[i]:
            if head:
                return "nearest", f"{head}, its nearest territory."
            return "nearest", f"In {tj}, its nearest territory."
        q = self._nearer_allowed(i, j)
        p = int(np.argmin(self.cost[i])) if q is None else q
        tp = self.ids[p]
        lead = f"{head} rather than to {tp}" if head else f"In {tj} rather than {tp}"
        lead += f", whose centre is {self._nearer(i, j, p)}"
        if q is None:  # every nearer territory is out of reach
            barred = self._barred(i, p)
            if barred is not None:
                return barred[0], f"{lead} but {barred[1]}."
            return "max drive time", f"{lead} but beyond REP_MAX_MINUTES{self._away(i, p)}."
        block = self._block(i, dest=q, src=j, moved=False)
        if block is not None:
            kind, why = block
            return kind, f"{lead}: moving it there would {why}."
        return None, None

    def _barred(self, i, p):
        """(reason, words) when the pair rule bars account ``i`` from territory ``p``."""
        if self.rule is None:
            return None
        allows, words = self.rule
        if allows[i, p]:
            return None
        return words.reason, words.why.format(territory=self.ids[p])

    def _nearer_allowed(self, i, j):
        """The nearest territory within reach that is nearer than its own j (None: none)."""
        q = int(self._q[i])
        return None if q < 0 else q

    def _block(self, i, *, dest, src, moved):
        """Balance bands broken by moving account i alone from ``src`` to ``dest``.

        Returns (reason, words) or None. Words complete "Moved from dest to src to ..." when
        ``moved`` (dest is the territory it left), else "moving it there would ...".
        """
        # plain Python on the few measures: this runs for most accounts of large plans
        v = self._vals[i]
        tot_d, tot_s = self._tot[dest], self._tot[src]
        hi_d, lo_s = self._hi[dest], self._lo[src]
        tg_d, tg_s = self._tg[dest], self._tg[src]
        best = None  # (how far beyond the band relative to the target, measure, side, total)
        for m, x in enumerate(v):
            up = tot_d[m] + x
            if up > hi_d[m] + _EPS * (1 + abs(hi_d[m])):
                key = ((up - hi_d[m]) / max(tg_d[m], _EPS), m, "above", up)
                best = key if best is None or key[0] > best[0] else best
            down = tot_s[m] - x
            if down < lo_s[m] - _EPS * (1 + abs(lo_s[m])):
                key = ((lo_s[m] - down) / max(tg_s[m], _EPS), m, "below", down)
                best = key if best is None or key[0] > best[0] else best
        if best is None:
            return None
        _, m, side, total = best
        t = dest if side == "above" else src
        # capacity: the nearer territory is full because its rep's capacity (and so its share)
        # is smaller than that of the rep the account is with
        capacity = side == "above" and self.capacity[dest] < self.capacity[src] - _EPS
        tid, name = self.ids[t], self.names[m]
        dev = abs(100 * (total / self.target[t, m] - 1)) if self.target[t, m] > 0 else 0.0
        note = ""
        if capacity:
            note = (f"; {tid}'s rep has capacity {self.capacity[dest]:g}, "
                    f"{self.ids[src]}'s {self.capacity[src]:g}")  # fmt: skip
        tol = _pct(self.tol_pct[m])
        if moved:  # "Moved from <dest> to <src> to ..."
            with_it = "without it" if side == "below" else "with it"
            why = f"bring {tid}'s {name} within {tol} of its target ({with_it} {_dev(dev, self.tol_pct[m])} {side}{note})"
        else:  # "moving it there would ..."
            verb = "put" if side == "above" else "leave"
            why = f"{verb} {tid}'s {name} {_dev(dev, self.tol_pct[m])} {side} its target (allowed ±{tol}{note})"
        return ("capacity" if capacity else "balance"), why

    def _placed(self, i, head):
        """Where a new or handed-over account went and why not nearer."""
        j = int(self.assign[i])
        reason, text = self._stay(i, j, head=None)
        if reason == "nearest":
            return f"{head}, its nearest territory."
        if reason is None:
            q = self._nearer_allowed(i, j)
            return (f"{head} to balance the territories together with other accounts; "
                    f"{self._compare(i, j, q)}.")  # fmt: skip
        return f"{head}. {text}"

    def _compare(self, i, a, b):
        """'its drive to a's centre is X min longer than to b's' (or shorter / the same); for an
        area with accounts 'the drives of its 11 accounts to a's centre are X min longer in
        total than to b's'."""
        diff = self.cost[i, a] - self.cost[i, b]
        ta, tb = self.ids[a], self.ids[b]
        word = "drive" if self.unit == "min" else "straight-line distance"
        c = int(self.counts[i])
        if c == 0:
            return "it holds no account"
        its, be = (f"the {word}s of its {c} accounts", "are") if c > 1 else (f"its {word}", "is")
        if abs(diff) < 0.005:
            return f"{its} to {ta}'s centre {be} about the same as to {tb}'s"
        more = "longer" if diff > 0 else "shorter"
        total = " in total" if c > 1 else ""
        return f"{its} to {ta}'s centre {be} {self._amount(abs(diff))} {more}{total} than to {tb}'s"

    def _nearer(self, i, j, q):
        """'X nearer' (q's centre against j's), 'X nearer for its 11 accounts in total' for an
        area with accounts, 'nearer' for one without."""
        c = int(self.counts[i])
        if c == 0:
            return "nearer"
        tail = f" for its {c} accounts in total" if c > 1 else ""
        return f"{self._amount(self.cost[i, j] - self.cost[i, q])} nearer{tail}"

    def _away(self, i, p):
        """' (X away)' for one place; nothing for an area with accounts (its cost is their sum,
        not how far the farthest is) or without (a tie-break)."""
        return f" ({self._amount(self.cost[i, p])} away)" if self.counts[i] == 1 else ""

    def _amount(self, x):
        """A distance as a rep reads it: 4.2 min or 40 s, 1.3 km or 350 m."""
        x = abs(float(x))
        if self.unit == "min":
            return f"{x:.1f} min" if x >= 0.95 or x == 0 else f"{max(round(60 * x), 1)} s"
        return f"{x:.1f} km" if x >= 0.95 or x == 0 else f"{max(round(1000 * x / 10) * 10, 10)} m"


def _pct(x: float) -> str:
    return f"{round(float(x), 1):g}%"


def _dev(x: float, band: float) -> str:
    """A deviation beyond ``band``: one decimal, or two where one would round onto the band."""
    x = float(x)
    return f"{round(x, 2 if round(x, 1) <= round(float(band), 1) else 1):g}%"


def _measure(name: str) -> str:
    return str(name).replace("_", " ")


def _text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    s = str(v).strip()
    return s or None
