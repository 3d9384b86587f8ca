"""Plans in one piece per territory from any plan: :func:`make_contiguous`.

It turns any plan (e.g. the balanced assignment of :mod:`assignment`) into one whose every
territory is one connected piece under an adjacency of :mod:`.adjacency`: split territories keep
their main piece and hand the other pieces to neighbours (region growing), then boundary moves
and ejection chains restore the balance bounds and a local search of boundary moves and swaps
that keep every territory connected lowers the cost; then rounds of the balanced assignment over
each unit's own and neighbouring territories trade the balance at every border at once (units
left apart go back, then the same repair, balance and search). Small models stuck on balance
fall back on the rooted flow model (:func:`.contiguous_problem.contiguous_milp`). The exact
models of county-sized plans are in :mod:`.exact_contiguity` and :mod:`.branch_cut`.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from .adjacency import _matrix, _same_territory_components, count_pieces
from .contiguous_problem import ContiguousProblem, contiguous_milp
from .errors import ContiguityError, InfeasibleError, InvalidInputError
from .progress import CancelCheck, check_cancel

logger = logging.getLogger(__name__)

_EXACT_FALLBACK_PAIRS = 2_500  # heuristic stuck on balance: try the exact model up to this n * k
_ROUNDS = 12  # most rounds of the balanced assignment over neighbouring territories (no deadline)
_ROUND_STALLS = 3  # ... stopped after this many rounds in a row without gain
_ROUND_MIN_GAIN = 1e-4  # ... a round lowering the cost by less than this share counts as none


#: What bars pairs in contiguity findings unless told otherwise, and how to lift it.
MINUTES_BAR = ("REP_MAX_MINUTES", "raise REP_MAX_MINUTES")


def make_contiguous(
    assign: np.ndarray,
    *,
    adjacency,
    cost: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    locks: np.ndarray,
    allowed: np.ndarray,
    current: np.ndarray | None = None,
    budget: int | None = None,
    deadline: float | None = None,
    is_cancelled: CancelCheck | None = None,
    names: Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
    unit_ids: Sequence[str] | None = None,
    strict_deadline: bool = False,
    fallback_deadline: float | None = None,
    barred_by: tuple[str, str] = MINUTES_BAR,
) -> np.ndarray:
    """Turn a plan into one whose every territory is one piece, within the same hard rules.

    Parameters
    ----------
    assign : (n,) starting territory per unit (e.g. the balanced, non-contiguous plan).
    adjacency : (n, n) sparse matrix or :class:`Adjacency` (connected, e.g. with island links).
    cost : (n, k) cost of each unit in each territory (minimised in total).
    values : (n, m) balanced measures; lo, hi : (k, m) bounds of each territory's totals.
    locks : (n,) territory a unit must stay in (-1 = free); allowed : (n, k) bool pairs.
    current, budget : current territory per unit (-1 = new) and the most units that may move.
    deadline : ``time.perf_counter()`` value after which the local search stops improving.
    names, measures, unit_ids : territory, measure and unit names for messages.
    barred_by : what bars the pairs ``allowed`` bars and how to lift it, for messages (e.g.
        ``("SKILL_RULE hard", "set SKILL_RULE to soft")``; :meth:`.model.TerritoryModel.pair_words`).
    strict_deadline : nothing goes past ``deadline`` (an optional repair); otherwise the exact
        fallback may run until ``fallback_deadline`` (the caller's own end, e.g. TIME_LIMIT's),
        or without one for at least 5 s.

    Returns
    -------
    (n,) territory index per unit. Raises :class:`InfeasibleError` naming the territory and the
    smallest relaxation it can show when no plan in one piece per territory is found.
    """
    mat = _matrix(adjacency)
    args = (mat, cost, values, lo, hi, locks, allowed, current, budget, deadline, is_cancelled,
            names, measures, unit_ids, strict_deadline, fallback_deadline, barred_by)  # fmt: skip
    s = _Search(assign, *args)
    best: np.ndarray | None = None
    failure: InfeasibleError | None = None
    starts = [np.asarray(assign, int)]
    if budget is None:  # also from a plan of weighted nearest centres (few pieces to repair)
        starts.append(s.weighted_start())
    for start in starts:
        if (best is not None or strict_deadline) and s._stop():
            break
        s = _Search(start, *args)
        try:
            s.repair()
            s.balance()
            if s.total_violation() > 0:
                s.regrow()
            if s.total_violation() > 0:
                exact = s.exact_fallback()
                if exact is None:
                    s.raise_balance()
                s.load(exact)
            s.fit_budget()
            s.improve()
            s.check()
        except InfeasibleError as err:
            failure = failure or err
            continue
        if best is None or s.objective() < _objective(cost, best) - 1e-9:
            best = s.a.copy()
    if best is None:
        raise failure  # type: ignore[misc]
    return _reassign_rounds(best, args)


def _reassign_rounds(best: np.ndarray, args: tuple) -> np.ndarray:
    """Lower the cost of a plan in one piece each by rounds of the balanced assignment over each
    unit's own and neighbouring territories (the balance traded at every border at once).

    Units the assignment moved that end apart from their new territory go back, and so do those
    that cut a piece of their old one off; then repair, balance and the local search. The better
    plan is kept; a round without gain (``_ROUND_MIN_GAIN``) reaches one unit further next time;
    stops after ``_ROUND_STALLS`` rounds without gain, before a round would pass the deadline, or after
    ``_ROUNDS`` rounds without a deadline.
    """
    from .assignment import NoPlanFoundError, solve_balanced

    mat, cost, values, lo, hi, locks, allowed, current, budget, deadline, is_cancelled = args[:11]
    n, k = np.shape(cost)
    if k < 2:
        return best
    best_obj = first = _objective(cost, best)
    cur = np.full(n, -1) if current is None else np.asarray(current, int)
    allowed = np.asarray(allowed, bool)
    prices, stall, took, rounds = None, 0, 0.0, 0
    for _ in range(_ROUNDS if deadline is None else 10**6):
        t0 = time.perf_counter()
        left = 60.0 if deadline is None else deadline - t0
        if stall >= _ROUND_STALLS or left <= max(took, 1.0):  # (no round cut short)
            break
        check_cancel(is_cancelled)
        near = _reach(best, mat, k, 1 + stall) & allowed
        try:
            res = solve_balanced(cost, values, lo, hi, locks=np.asarray(locks, int), current=cur,
                                 budget=budget, allowed=near, time_limit_s=left, prices=prices,
                                 polish=False, is_cancelled=is_cancelled)  # fmt: skip
        except NoPlanFoundError:
            break
        prices = res.prices
        s = _Search(_put_back(res.assign, best, mat), *args)
        try:
            s.repair()
            s.balance()
            ok = s.total_violation() <= 0
            if ok:
                s.fit_budget()
                s.improve()
                s.check()
        except InfeasibleError:
            ok = False
        logger.debug("Contiguity round: assignment %.3f, in one piece %s (best %.3f).",
                     res.objective, f"{s.objective():.3f}" if ok else "none", best_obj)  # fmt: skip
        gain = best_obj - s.objective() if ok else 0.0
        stall = 0 if gain > _ROUND_MIN_GAIN * abs(best_obj) else stall + 1
        if gain > 1e-9:
            best, best_obj = s.a.copy(), s.objective()
        took = time.perf_counter() - t0
        rounds += 1
    if best_obj < first:
        logger.info("Contiguity: %d round(s) of the balanced assignment over neighbouring "
                    "territories lowered the plan in one piece each from %.3f to %.3f.",
                    rounds, first, best_obj)  # fmt: skip
    return best


def _reach(a: np.ndarray, mat: sp.csr_matrix, k: int, depth: int) -> np.ndarray:
    """(n, k) mask: each unit's territory and those of the units up to ``depth`` links away."""
    n = len(a)
    own = sp.csr_matrix((np.ones(n, np.int32), (np.arange(n), a)), shape=(n, k))
    near = own
    for _ in range(depth):
        near = near + mat.astype(np.int32) @ near
    return near.toarray() > 0


def _put_back(new: np.ndarray, old: np.ndarray, mat: sp.csr_matrix) -> np.ndarray:
    """``new`` with moved units returned to ``old`` (a plan in one piece each) until every
    territory is one piece: moved units apart from their territory's main piece (the one with
    most unmoved units), and moved units whose leaving cut a piece off their old territory.

    Each step returns at least one unit, so it ends (at worst at ``old``).
    """
    new = np.asarray(new, int).copy()
    old = np.asarray(old, int)
    for _ in range(len(new) + 1):
        labels, n_comp = _same_territory_components(new, mat)
        kept = np.bincount(labels, weights=(new == old).astype(float), minlength=n_comp)
        size = np.bincount(labels, minlength=n_comp)
        terr = np.zeros(n_comp, int)
        terr[labels] = new
        order = np.lexsort((-size, -kept, terr))
        main = np.zeros(n_comp, bool)
        main[order[np.r_[True, terr[order][1:] != terr[order][:-1]]]] = True
        apart = ~main[labels]
        if not apart.any():
            break
        moved = apart & (new != old)
        new[moved] = old[moved]
        stay = np.flatnonzero(apart & ~moved)
        if len(stay):
            coo = mat[stay].tocoo()
            w, j = coo.col, new[stay][coo.row]
            cut = w[(old[w] == j) & (new[w] != j)]
            new[cut] = old[cut]
    return new


def _objective(cost: np.ndarray, a: np.ndarray) -> float:
    return float(np.asarray(cost, float)[np.arange(len(a)), a].sum())


class _Search:
    """State of the contiguity search: plan, totals per territory, move count (incremental)."""

    def __init__(self, assign, mat, cost, values, lo, hi, locks, allowed, current, budget,
                 deadline, is_cancelled, names, measures, unit_ids, strict=False,
                 fallback_end=None, barred_by=MINUTES_BAR):  # fmt: skip
        self.cost = np.asarray(cost, float)
        n, k = self.cost.shape
        self.n, self.k = n, k
        v = np.asarray(values, float)
        self.v = v.reshape(n, -1)
        self.lo = np.asarray(lo, float).reshape(k, -1)
        self.hi = np.asarray(hi, float).reshape(k, -1)
        self.locks = np.asarray(locks, int)
        self.allowed = np.asarray(allowed, bool)
        self.current = np.full(n, -1) if current is None else np.asarray(current, int)
        self.budget = budget
        self.deadline = deadline
        self.strict = strict  # make_contiguous(strict_deadline=True): nothing past the deadline
        self.fallback_end = fallback_end  # the exact fallback's own end (None: at least 5 s)
        self.barred_by = barred_by  # (what bars pairs, how to lift it), for messages
        self.is_cancelled = is_cancelled
        self.names = [f"T{j + 1:02d}" for j in range(k)] if names is None else list(map(str, names))
        m = self.v.shape[1]
        self.measures = ["count"] * m if measures is None else list(map(str, measures))
        self.unit_ids = [str(i) for i in range(n)] if unit_ids is None else list(map(str, unit_ids))
        if mat.shape != (n, n):
            msg = f"adjacency has shape {mat.shape}, expected ({n}, {n})."
            raise InvalidInputError(msg)
        self.mat = mat
        self.nbrs = [mat.indices[mat.indptr[i] : mat.indptr[i + 1]].tolist() for i in range(n)]
        coo = mat.tocoo()
        self.er, self.ec = coo.row.astype(int), coo.col.astype(int)
        target = (self.lo + self.hi) / 2.0
        self.target = target
        self.scale = np.where(np.abs(target) > 1e-12, np.abs(target), 1.0)
        self.lo_e = self.lo - 1e-9 * (1 + np.abs(self.lo))
        self.hi_e = self.hi + 1e-9 * (1 + np.abs(self.hi))
        spread = float(np.ptp(self.cost[np.isfinite(self.cost)])) if self.cost.size else 1.0
        self.big = 10.0 * (spread + 1.0)
        self.ignore_budget = False  # repair and balance first, then fit the budget
        self.load(np.asarray(assign, int).copy())

    def objective(self) -> float:
        return _objective(self.cost, self.a)

    def weighted_start(self, iterations: int = 300) -> np.ndarray:
        """A plan of nearest centres with one additive weight per territory, tuned so that the
        territories' shares even out: spatially coherent, so it has few pieces to repair."""
        share = self.v / np.maximum(self.scale.mean(0), 1e-12)[None, :]
        cost = np.where(self.allowed, self.cost, np.inf)
        locked = self.locks >= 0
        w = np.zeros(self.k)
        finite = self.cost[np.isfinite(self.cost)]
        step = float(np.median(np.abs(finite - np.median(finite)))) if finite.size else 1.0
        best, best_viol = None, math.inf
        for _ in range(iterations):
            a = np.argmin(cost + w[None, :], axis=1)
            a[locked] = self.locks[locked]
            load = np.zeros((self.k, share.shape[1]))
            np.add.at(load, a, share)
            load /= np.maximum(self.target / self.scale.mean(0)[None, :], 1e-12)
            viol = float(np.abs(load - 1.0).max())
            if viol < best_viol:
                best, best_viol = a.copy(), viol
            w += step * (load.mean(1) - 1.0)
            step *= 0.98
        return best

    # -- state
    def load(self, a: np.ndarray) -> None:
        self.a = np.asarray(a, int).copy()
        ok = self.a >= 0
        self.tot = np.zeros((self.k, self.v.shape[1]))
        np.add.at(self.tot, self.a[ok], self.v[ok])
        self.size = np.bincount(self.a[ok], minlength=self.k)
        self.moves = int(((self.current >= 0) & (self.a != self.current)).sum())

    def _set(self, i: int, t: int) -> None:
        s = self.a[i]
        if s >= 0:
            self.tot[s] -= self.v[i]
            self.size[s] -= 1
            if self.current[i] >= 0:
                self.moves += int(self.current[i] == s)
        if t >= 0:
            self.tot[t] += self.v[i]
            self.size[t] += 1
            if self.current[i] >= 0:
                self.moves -= int(self.current[i] == t)
        self.a[i] = t

    def _stop(self) -> bool:
        check_cancel(self.is_cancelled)
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _viol(self, rows: np.ndarray, tot: np.ndarray) -> np.ndarray:
        lo, hi, sc = self.lo_e[rows], self.hi_e[rows], self.scale[rows]
        return ((np.maximum(lo - tot, 0) + np.maximum(tot - hi, 0)) / sc).sum(-1)

    def _within(self, rows: np.ndarray, tot: np.ndarray) -> np.ndarray:
        return ((tot >= self.lo_e[rows]) & (tot <= self.hi_e[rows])).all(-1)

    def _fits(self, s: np.ndarray, t: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Moves of units ``u`` from ``s`` to ``t`` keep the lower bound of s and upper of t."""
        return (self.tot[s] - self.v[u] >= self.lo_e[s]).all(-1) & (
            self.tot[t] + self.v[u] <= self.hi_e[t]
        ).all(-1)

    def total_violation(self) -> float:
        return float(self._viol(np.arange(self.k), self.tot).sum())

    def _budget_ok(self, i: int, t: int, extra: int = 0) -> bool:
        if self.budget is None or self.current[i] < 0 or self.ignore_budget:
            return True
        d = int(self.current[i] == self.a[i]) - int(self.current[i] == t)
        return self.moves + d + extra <= self.budget

    # -- connectivity
    def _removable(self, i: int) -> bool:
        """Unit ``i`` can leave its territory without splitting it (and without emptying it)."""
        s = self.a[i]
        if self.size[s] <= 1:
            return False
        a = self.a
        near = [w for w in self.nbrs[i] if a[w] == s]
        if len(near) <= 1:
            return len(near) == 1
        want = set(near[1:])
        seen = {i, near[0]}
        queue = deque([near[0]])
        while queue and want:
            u = queue.popleft()
            for w in self.nbrs[u]:
                if w not in seen and a[w] == s:
                    seen.add(w)
                    want.discard(w)
                    queue.append(w)
        return not want

    def _connected(self, j: int) -> bool:
        members = np.flatnonzero(self.a == j)
        if len(members) <= 1:
            return True
        seen = {int(members[0])}
        queue = deque([int(members[0])])
        a = self.a
        while queue:
            u = queue.popleft()
            for w in self.nbrs[u]:
                if w not in seen and a[w] == j:
                    seen.add(w)
                    queue.append(w)
        return len(seen) == len(members)

    def _touches(self, i: int, t: int) -> bool:
        a = self.a
        return any(a[w] == t for w in self.nbrs[i])

    # -- phase 1: repair split territories
    def repair(self) -> None:
        for _ in range(4 * self.k + 4):
            labels, n_comp = _same_territory_components(self.a, self.mat)
            ok = self.a >= 0
            terr = np.full(n_comp, -1)
            terr[labels[ok]] = self.a[ok]
            pieces = np.bincount(terr[terr >= 0], minlength=self.k)
            if (pieces <= 1).all() and ok.all():
                return
            joined = False
            for j in np.flatnonzero(pieces > 1):
                comps = np.flatnonzero(terr == j)
                locked = [c for c in comps if ((labels == c) & (self.locks == j)).any()]
                if len(locked) > 1:
                    self._join_locked(int(j), labels, locked)
                    joined = True
                    break
                if locked:
                    main = locked[0]
                else:
                    weight = [self._weight(np.flatnonzero(labels == c), j) for c in comps]
                    main = comps[int(np.argmax(weight))]
                for c in comps:
                    if c != main:
                        for i in np.flatnonzero(labels == c):
                            self._set(int(i), -1)
            if not joined:
                self._fill()
        if (count_pieces(self.a, self.mat, self.k) > 1).any():  # pragma: no cover - defensive
            raise ContiguityError("The plan could not be made contiguous", "set CONTIGUOUS off.")

    def _weight(self, members: np.ndarray, j: int) -> float:
        share = (self.v[members] / self.scale[j]).sum()
        best = self.cost[members, j].min() if len(members) else 0.0
        return float(share + len(members) * 1e-9 - best * 1e-12)

    def _join_locked(self, j: int, labels: np.ndarray, locked: list) -> None:
        """Connect the pieces of territory ``j`` that hold locked units by a path of units."""
        sizes = [int(((labels == c) & (self.locks == j)).sum()) for c in locked]
        main = locked[int(np.argmax(sizes))]
        target = set(np.flatnonzero(labels == main).tolist())
        for c in locked:
            if c == main:
                continue
            start = np.flatnonzero(labels == c).tolist()
            path = self._path(start, target, j)
            if path is None:
                unit = self.unit_ids[int(np.flatnonzero((labels == c) & (self.locks == j))[0])]
                other = self.unit_ids[int(np.flatnonzero((labels == main) & (self.locks == j))[0])]
                finding = (
                    f"{self.names[j]}: locked units {unit} and {other} cannot be joined in one "
                    "piece without crossing units locked to other territories or barred from it "
                    f"({self.barred_by[0]})"
                )
                raise ContiguityError(finding, "unlock one of them or set CONTIGUOUS off.")
            for i in path:
                self._set(i, j)
            target.update(path)

    def _path(self, start: list, target: set, j: int) -> list | None:
        """Cheapest chain of free, allowed units from ``start`` to ``target`` (Dijkstra)."""
        dist = dict.fromkeys(start, 0.0)
        prev: dict[int, int] = {}
        heap = [(0.0, u) for u in start]
        heapq.heapify(heap)
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist.get(u, math.inf):
                continue
            for w in self.nbrs[u]:
                if w in target:
                    path = []
                    while u not in start:
                        path.append(u)
                        u = prev[u]
                    return path
                if (self.locks[w] >= 0 and self.locks[w] != j) or not self.allowed[w, j]:
                    continue
                if self.a[w] == j:
                    step = 0.0
                else:
                    step = 1.0 + max(self.cost[w, j] - self.cost[w, max(self.a[w], 0)], 0.0)
                nd = d + step
                if nd < dist.get(w, math.inf):
                    dist[w] = nd
                    prev[w] = u
                    heapq.heappush(heap, (nd, w))
        return None

    def _fill(self) -> None:
        """Give every unassigned unit to a neighbouring territory (region growing by cost)."""
        free = np.flatnonzero(self.a < 0)
        if len(free) == 0:
            return
        heap: list = []
        for i in free.tolist():
            for w in self.nbrs[i]:
                t = int(self.a[w])
                if t >= 0 and self.allowed[i, t]:
                    heap.append((self._fill_key(i, t), i, t))
        heapq.heapify(heap)
        while heap:
            key, i, t = heapq.heappop(heap)
            if self.a[i] >= 0:
                continue
            now = self._fill_key(i, t)
            if now > key + 1e-12:
                heapq.heappush(heap, (now, i, t))
                continue
            self._set(i, t)
            for w in self.nbrs[i]:
                if self.a[w] < 0 and self.allowed[w, t]:
                    heapq.heappush(heap, (self._fill_key(w, t), w, t))
        stuck = np.flatnonzero(self.a < 0)
        if len(stuck):
            ids = [self.unit_ids[i] for i in stuck[:10]]
            name, lift = self.barred_by
            finding = f"Units {ids} can join none of their neighbouring territories ({name})"
            raise ContiguityError(finding, f"{lift} or set CONTIGUOUS off.")

    def _fill_key(self, i: int, t: int) -> float:
        key = float(self.cost[i, t])
        if (self.tot[t] + self.v[i] > self.hi_e[t]).any():
            key += self.big
        if self.budget is not None and self.current[i] >= 0 and self.current[i] != t:
            key += 0.1 * self.big
        return key

    def regrow(self) -> None:
        """Stuck on balance: grow all territories again from their centres and locked units,
        always extending the least filled one, then repair and balance; keep the better plan."""
        old_a, old_viol = self.a.copy(), self.total_violation()
        seeds = np.full(self.k, -1)
        for j in range(self.k):
            pool = np.flatnonzero(self.locks == j)
            if not len(pool):
                pool = np.flatnonzero(self.a == j)
            if not len(pool):
                pool = np.flatnonzero((self.locks < 0) & self.allowed[:, j])
            pool = pool[~np.isin(pool, seeds)]
            if len(pool):
                seeds[j] = pool[np.argmin(self.cost[pool, j])]
        new = np.where(self.locks >= 0, self.locks, -1)
        new[seeds[seeds >= 0]] = np.flatnonzero(seeds >= 0)
        self.load(new)
        frontier: list[list] = [[] for _ in range(self.k)]
        for i in np.flatnonzero(self.a >= 0).tolist():
            t = int(self.a[i])
            for w in self.nbrs[i]:
                if self.a[w] < 0 and self.allowed[w, t]:
                    frontier[t].append((self.cost[w, t], w))
        for f in frontier:
            heapq.heapify(f)
        fill = (self.tot / self.scale).max(1)
        active = [j for j in range(self.k) if frontier[j]]
        while active:
            j = min(active, key=lambda q: (fill[q], q))
            heap = frontier[j]
            while heap and self.a[heap[0][1]] >= 0:
                heapq.heappop(heap)
            if not heap:
                active.remove(j)
                continue
            _, i = heapq.heappop(heap)
            self._set(i, j)
            fill[j] = (self.tot[j] / self.scale[j]).max()
            for w in self.nbrs[i]:
                if self.a[w] < 0 and self.allowed[w, j]:
                    heapq.heappush(heap, (self.cost[w, j], w))
        self._fill()
        self.repair()
        self.balance()
        if self.total_violation() >= old_viol:
            self.load(old_a)

    # -- candidate moves
    def _border_moves(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (unit, neighbouring territory) pairs of movable boundary units."""
        a = self.a
        ti = a[self.ec]
        keep = (a[self.er] != ti) & (self.locks[self.er] < 0)
        u, t = self.er[keep], ti[keep]
        ok = self.allowed[u, t]
        u, t = u[ok], t[ok]
        if len(u) == 0:
            return u, t
        key = np.unique(u.astype(np.int64) * self.k + t)
        return (key // self.k).astype(int), (key % self.k).astype(int)

    def _apply_move(self, i: int, t: int) -> bool:
        if self.a[i] == t or self.locks[i] >= 0 or not self._touches(i, t):
            return False
        if not self._budget_ok(i, t) or not self._removable(i):
            return False
        self._set(i, t)
        return True

    # -- phase 2: balance
    def balance(self) -> None:
        self.ignore_budget = True
        try:
            for _ in range(50 * self.k + 100):
                if self.total_violation() <= 0 or self._stop():
                    return
                if self._balance_pass() or self._balance_swaps():
                    continue
                if not self._chain():
                    return
        finally:
            self.ignore_budget = False

    def _balance_swaps(self) -> bool:
        """Swap two boundary units of neighbouring territories when it lowers the violation."""
        viol = self._viol(np.arange(self.k), self.tot)
        pairs = self._pair_candidates()
        best = None
        for (s, t), cand in pairs.items():
            if (t, s) not in pairs or viol[s] + viol[t] <= 0:
                continue
            ci = self._swap_pool(cand, s, t)
            cj = self._swap_pool(pairs[(t, s)], t, s)
            dv = self.v[cj][None, :, :] - self.v[ci][:, None, :]  # s gains w, loses i
            ts = self.tot[s] + dv
            tt = self.tot[t] - dv
            after = self._viol(np.full(ts.shape[:2], s), ts) + self._viol(
                np.full(tt.shape[:2], t), tt
            )
            gain = viol[s] + viol[t] - after
            for p in np.argsort(-gain, axis=None)[:5].tolist():
                x, y = divmod(p, len(cj))
                if gain[x, y] <= 1e-12:
                    break
                if best is None or gain[x, y] > best[0]:
                    best = (float(gain[x, y]), int(ci[x]), int(cj[y]), s, t)
                break
        if best is None:
            return False
        _, i, w, s, t = best
        self._set(i, t)
        self._set(w, s)
        if self._connected(s) and self._connected(t):
            return True
        self._set(w, t)
        self._set(i, s)
        return False

    def _swap_pool(self, cand: np.ndarray, s: int, t: int, size: int = 60) -> np.ndarray:
        """Boundary units of s next to t most worth exchanging: for each measure, those with the
        largest and the smallest values (a swap trades one measure against another)."""
        if len(cand) <= size:
            return cand
        per = max(size // (2 * self.v.shape[1]), 1)
        pick = []
        for mm in range(self.v.shape[1]):
            ratio = self.v[cand, mm] / self.scale[s, mm] - (self.v[cand] / self.scale[s]).mean(1)
            order = np.argsort(ratio, kind="stable")
            pick.extend([order[:per], order[-per:]])
        return cand[np.unique(np.concatenate(pick))]

    def _balance_pass(self) -> bool:
        u, t = self._border_moves()
        if len(u) == 0:
            return False
        s = self.a[u]
        vs, vt = self.tot[s], self.tot[t]
        dv = (self._viol(s, vs - self.v[u]) - self._viol(s, vs)
              + self._viol(t, vt + self.v[u]) - self._viol(t, vt))  # fmt: skip
        dc = self.cost[u, t] - self.cost[u, s]
        good = np.flatnonzero(dv < -1e-12)
        if len(good) == 0:
            return False
        order = good[np.lexsort((dc[good], dv[good]))]
        applied = 0
        for c in order.tolist():
            i, tt = int(u[c]), int(t[c])
            ss = self.a[i]
            if ss != s[c]:
                continue
            rows = np.array([ss, tt])
            before = self._viol(rows, self.tot[rows]).sum()
            after = self._viol(rows, np.stack([self.tot[ss] - self.v[i], self.tot[tt] + self.v[i]]))
            if after.sum() >= before - 1e-12:
                continue
            if self._apply_move(i, tt):
                applied += 1
        return applied > 0

    def _chain(self) -> bool:
        """Ejection chain: move one unit along each step of a path of territories (BFS)."""
        rows = np.arange(self.k)
        viol = self._viol(rows, self.tot)
        pairs = self._pair_candidates()
        for j in np.argsort(-viol).tolist():
            if viol[j] <= 0:
                break
            push = bool((self.tot[j] > self.hi_e[j]).any())
            if self._chain_from(j, push, pairs):
                return True
        return False

    def _pair_candidates(self) -> dict:
        u, t = self._border_moves()
        s = self.a[u]
        order = np.lexsort((u, t, s))
        u, t, s = u[order], t[order], s[order]
        out: dict = {}
        if len(u) == 0:
            return out
        cut = np.flatnonzero((np.diff(s) != 0) | (np.diff(t) != 0)) + 1
        for grp in np.split(np.arange(len(u)), cut):
            out[(int(s[grp[0]]), int(t[grp[0]]))] = u[grp]
        return out

    def _chain_from(self, j: int, push: bool, pairs: dict) -> bool:
        """BFS over territories from ``j``; apply the first chain that lowers the violation."""
        nb: dict[int, list[int]] = {}
        for s, t in pairs:
            if push:
                nb.setdefault(s, []).append(t)
            else:
                nb.setdefault(t, []).append(s)
        # state: chain of (unit, from, to) moves; territory totals after the chain
        frontier = [(j, [])]
        visited = {j}
        base = self.total_violation()
        for _depth in range(min(self.k, 8)):
            nxt = []
            for x, chain in frontier:
                for y in nb.get(x, []):
                    if y in visited:
                        continue
                    src, dst = (x, y) if push else (y, x)
                    cand = pairs.get((src, dst))
                    if cand is None:
                        continue
                    step = self._best_step(chain, cand, src, dst)
                    if step is None:
                        continue
                    new = [*chain, step]
                    visited.add(y)
                    if self._try_chain(new, base):
                        return True
                    nxt.append((y, new))
            if not nxt:
                return False
            frontier = nxt
        return False

    def _chain_totals(self, chain: list) -> dict:
        tot = {}
        for i, s, t in chain:
            for r in (s, t):
                if r not in tot:
                    tot[r] = self.tot[r].copy()
            tot[s] -= self.v[i]
            tot[t] += self.v[i]
        return tot

    def _best_step(self, chain, cand, src, dst):
        moved = {c[0] for c in chain}
        cand = np.array([c for c in cand.tolist() if c not in moved], int)
        if len(cand) == 0:
            return None
        tot = self._chain_totals(chain)
        ts = tot.get(src, self.tot[src])
        td = tot.get(dst, self.tot[dst])
        rs = np.full(len(cand), src)
        rd = np.full(len(cand), dst)
        score = self._viol(rs, ts - self.v[cand]) + self._viol(rd, td + self.v[cand])
        score = score + 1e-9 * (self.cost[cand, dst] - self.cost[cand, src]) / self.big
        for c in np.argsort(score, kind="stable")[:6].tolist():
            i = int(cand[c])
            if self._removable(i):
                return (i, src, dst)
        return None

    def _try_chain(self, chain, base) -> bool:
        extra = 0
        for i, _s, t in chain:
            if not self._budget_ok(i, t, extra):
                return False
            extra += int(self.current[i] == self.a[i]) - int(self.current[i] == t)
        tot = self._chain_totals(chain)
        rows = np.array(list(tot))
        after = self.total_violation() - self._viol(rows, self.tot[rows]).sum()
        after += self._viol(rows, np.stack([tot[r] for r in rows])).sum()
        if after >= base - 1e-12:
            return False
        old = [(i, self.a[i]) for i, _s, _t in chain]
        for i, _s, t in chain:
            self._set(i, t)
        if all(self._connected(int(r)) for r in rows):
            return True
        for i, s in reversed(old):
            self._set(i, s)
        return False

    # -- phase 3: cost
    def improve(self) -> None:
        for _ in range(200):
            if self._stop():
                return
            moved = self._improve_pass()
            if not moved and not self._swap_pass():
                return

    def _improve_pass(self) -> bool:
        u, t = self._border_moves()
        if len(u) == 0:
            return False
        s = self.a[u]
        dc = self.cost[u, t] - self.cost[u, s]
        fit = self._fits(s, t, u)
        good = np.flatnonzero((dc < -1e-9) & fit)
        applied = 0
        for c in good[np.argsort(dc[good], kind="stable")].tolist():
            i, tt = int(u[c]), int(t[c])
            ss = self.a[i]
            if ss != s[c]:
                continue
            if (self.tot[ss] - self.v[i] < self.lo_e[ss]).any():
                continue
            if (self.tot[tt] + self.v[i] > self.hi_e[tt]).any():
                continue
            if self._apply_move(i, tt):
                applied += 1
        return applied > 0

    def _swap_pass(self) -> bool:
        """Swap two boundary units of neighbouring territories when it saves cost."""
        pairs = self._pair_candidates()
        applied = 0
        for (s, t), cand in pairs.items():
            if s > t or (t, s) not in pairs:
                continue
            back = pairs[(t, s)]
            ci = cand[self.a[cand] == s]
            cj = back[self.a[back] == t]
            if len(ci) == 0 or len(cj) == 0:
                continue
            di = self.cost[ci, t] - self.cost[ci, s]
            dj = self.cost[cj, s] - self.cost[cj, t]
            ci, di = ci[np.argsort(di)[:8]], np.sort(di)[:8]
            cj, dj = cj[np.argsort(dj)[:8]], np.sort(dj)[:8]
            total = di[:, None] + dj[None, :]
            for p in np.argsort(total, axis=None).tolist():
                x, y = divmod(p, len(cj))
                if total[x, y] >= -1e-9:
                    break
                i, w = int(ci[x]), int(cj[y])
                if self.a[i] != s or self.a[w] != t:
                    continue
                dv = self.v[w] - self.v[i]
                rows = np.array([s, t])
                if not self._within(rows, self.tot[rows] + np.stack([dv, -dv])).all():
                    continue
                if self.budget is not None:
                    extra = int(self.current[i] == s) - int(self.current[i] == t)
                    if not self._budget_ok(w, s, extra):
                        continue
                self._set(i, t)
                self._set(w, s)
                if self._connected(s) and self._connected(t):
                    applied += 1
                    break
                self._set(w, t)
                self._set(i, s)
        return applied > 0

    # -- phase 4: budget
    def fit_budget(self) -> None:
        if self.budget is None or self.moves <= self.budget:
            return
        for _ in range(100):
            if self.moves <= self.budget:
                return
            moved = self.a != self.current
            cand = np.flatnonzero(moved & (self.current >= 0) & (self.locks < 0))
            back = self.current[cand]
            ok = self.allowed[cand, back]
            cand, back = cand[ok], back[ok]
            s = self.a[cand]
            fit = self._fits(s, back, cand)
            cand, back = cand[fit], back[fit]
            order = np.argsort(self.cost[cand, back] - self.cost[cand, self.a[cand]], kind="stable")
            applied = 0
            for c in order.tolist():
                if self.moves <= self.budget:
                    break
                i, t = int(cand[c]), int(back[c])
                ss = self.a[i]
                if (self.tot[ss] - self.v[i] < self.lo_e[ss]).any():
                    continue
                if (self.tot[t] + self.v[i] > self.hi_e[t]).any():
                    continue
                if self._apply_move(i, t):
                    applied += 1
            if not applied:
                break
        if self.moves > self.budget:
            pct = 100.0 * self.moves / max(int((self.current >= 0).sum()), 1)
            finding = (
                f"The search kept every territory in one piece only with {self.moves} moves, "
                f"more than MAX_MOVES allows ({self.budget})"
            )
            raise ContiguityError(
                finding,
                f"allow MAX_MOVES of {math.ceil(pct * 10) / 10:.1f}% or set CONTIGUOUS off.",
            )

    # -- failure: the exact model or the smallest relaxation
    def exact_fallback(self) -> np.ndarray | None:
        if self.n * self.k > _EXACT_FALLBACK_PAIRS or self.budget is not None:
            return None
        roots = np.full(self.k, -1)
        for j in range(self.k):
            locked = np.flatnonzero(self.locks == j)
            members = np.flatnonzero(self.a == j) if not len(locked) else locked
            if len(members) == 0:
                return None
            roots[j] = members[np.argmin(self.cost[members, j])]
        left, now = 20.0, time.perf_counter()
        end = self.deadline if self.strict else self.fallback_end
        if end is not None:  # nothing past the caller's end
            left = min(left, end - now)
            if left < 1.0:
                return None
        elif self.deadline is not None:
            left = max(5.0, min(left, self.deadline - now))
        problem = ContiguousProblem.of(self.cost, self.v, self.lo, self.hi, adjacency=self.mat,
                                       locks=self.locks, allowed=self.allowed)  # fmt: skip
        res = contiguous_milp(problem, roots=roots, time_limit_s=left)
        if res is None:
            return None
        logger.info("Contiguity: the local search could not balance the plan; the exact model "
                    "found one (objective %.3f).", res[1])  # fmt: skip
        return res[0]

    def raise_balance(self) -> None:
        dev = np.abs(self.tot - self.target) / self.scale * 100.0  # (k, m) % of target
        band = (self.hi - self.target) / self.scale * 100.0
        over = (self.tot > self.hi_e) | (self.tot < self.lo_e)
        ratio = np.where(over, dev / np.maximum(band, 1e-9), 0.0)
        j, mm = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        tmin = float(band.min()) if band.size else 0.0
        need = float(dev[j, mm]) if band[j, mm] <= 1e-9 else float(ratio[j, mm]) * tmin
        need = math.ceil(need * 10 + 1e-9) / 10
        under = self.tot[j, mm] < self.target[j, mm]
        share = 100.0 - band[j, mm] if under else 100.0 + band[j, mm]
        verb = "reach" if under else "stay below"
        finding = (
            f"{self.names[j]} cannot {verb} {share:.1f}% of its share of {self.measures[mm]} in "
            f"one piece (best plan found: {100.0 * self.tot[j, mm] / self.scale[j, mm]:.1f}%)"
        )
        raise ContiguityError(finding, f"allow TOLERANCE of {need:.1f}% or set CONTIGUOUS off.")

    def check(self) -> None:
        pieces = count_pieces(self.a, self.mat, self.k)
        if (pieces > 1).any():  # pragma: no cover - defensive
            j = int(np.argmax(pieces))
            finding = f"{self.names[j]} is still in {pieces[j]} pieces"
            raise ContiguityError(finding, "set CONTIGUOUS off.")
