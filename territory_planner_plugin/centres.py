"""Where the territories' centres go when the algorithm chooses them (TERRITORIES without REPS).

The centres are accounts (or the cost points of units). The search starts from unbalanced
k-median centres (k-means++ seeds, nearest centre + medoid), moves each centre to the medoid of
its balanced territory for a few rounds, then improves the centres by p-median style moves scored
with the balanced assignment: a centre moves to a site near its territory's medoid (relocate) or
to a far, poorly served account (swap). A move is scored by the priced (Lagrangian) assignment
with the prices of the current centres, in O(n) per move; a batch of moves is kept only when the
Lagrangian bound of the balanced assignment at the new centres improves. The centre sets met on
the way compete in full solves and the best plan wins, so more freedom (a looser TOLERANCE)
never loses the plan found with less (see :func:`design_territories`).

:func:`free_centre_bound` bounds the problem as posed (any K accounts as centres), not only the
centres found: a Lagrangian relaxation of the assignment rows of the balanced p-median, as in
p-median bounds, with each candidate centre's balanced territory relaxed to a continuous knapsack.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from .progress import CancelCheck, check_cancel

logger = logging.getLogger(__name__)

KMEDIAN_ROUNDS = 12
BOUND_PAIRS = 1_500_000  # rows x candidate centres up to which the free-centre bound is computed
NEAR_MEDOID_SITES = 6  # relocate candidates per territory (best medoid ranks)
FAR_SITES = 4  # swap candidates: the worst served accounts, each tried in every territory


def kmeanspp(xy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: ``k`` points of ``xy``, each next one drawn by squared distance."""
    centres = [xy[rng.integers(len(xy))]]
    d2 = ((xy - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(xy[rng.choice(len(xy), p=p)])
        d2 = np.minimum(d2, ((xy - centres[-1]) ** 2).sum(1))
    return np.array(centres)


def kmedian(
    xy: np.ndarray,
    cen_xy: np.ndarray,
    locks: np.ndarray,
    costs: Callable[[np.ndarray], np.ndarray],
    is_cancelled: CancelCheck | None = None,
    deadline: float | None = None,
) -> np.ndarray:
    """Unbalanced k-median (nearest centre, then medoid) from ``cen_xy``, locks kept.

    ``costs(cen_xy)`` gives the (n, k) cost of each point to each centre; after ``deadline``
    (``time.perf_counter()``) no new round starts (the centres so far are returned, logged).
    """
    k = len(cen_xy)
    for r in range(KMEDIAN_ROUNDS):
        check_cancel(is_cancelled)
        if r and deadline is not None and time.perf_counter() >= deadline:
            logger.info("k-median: TIME_LIMIT's share for the centres is spent; stopped after %d "
                        "round(s).", r)  # fmt: skip
            break
        assign = np.where(locks >= 0, locks, np.argmin(costs(cen_xy), 1))
        new_xy = medoids(xy, assign, k, cen_xy)
        if np.allclose(new_xy, cen_xy):
            break
        cen_xy = new_xy
    return cen_xy


def medoid_ranks(members: np.ndarray, count: int = 1) -> np.ndarray:
    """The ``count`` members with the least total distance to the others, best first.

    Large territories test only the 64 members nearest the coordinate-wise median (memory and
    time stay linear in the territory's size).
    """
    cands = members
    if len(members) > 500:
        d0 = ((members - np.median(members, axis=0)) ** 2).sum(1)
        cands = members[np.argpartition(d0, 63)[:64]]
    d = np.sqrt(((cands[:, None, :] - members[None, :, :]) ** 2).sum(-1)).sum(1)
    order = np.argsort(d, kind="stable")[:count]
    return cands[order]


def medoids(xy: np.ndarray, assign: np.ndarray, k: int, old: np.ndarray) -> np.ndarray:
    """Member of each territory with the least total distance to the others (its medoid)."""
    out = old.copy()
    for j in range(k):
        members = xy[assign == j]
        if len(members):
            out[j] = medoid_ranks(members)[0]
    return out


class PricedMoves:
    """p-median moves of one centre scored by the priced assignment (prices of territories kept).

    ``reduced`` (n, k) = cost + value x price per pair (+inf where not allowed, locks: only their
    territory). Moving centre j to a site whose cost column is ``col`` changes the priced
    assignment's value by ``delta(j, col)``, in O(n).
    """

    def __init__(self, cost: np.ndarray, weight: np.ndarray, locks: np.ndarray) -> None:
        self.weight, self.locks = weight, locks
        self.locked = np.flatnonzero(locks >= 0)
        self.reduced = cost + weight
        self._mask()
        self._refresh()

    def _mask(self) -> None:
        if len(self.locked):
            keep = self.reduced[self.locked, self.locks[self.locked]].copy()
            self.reduced[self.locked] = np.inf
            self.reduced[self.locked, self.locks[self.locked]] = keep

    def _refresh(self) -> None:
        r = self.reduced
        k = r.shape[1]
        if k == 1:
            self.best = np.zeros(len(r), int)
            self.first, self.second = r[:, 0], np.full(len(r), np.inf)
            return
        two = np.argpartition(r, 1, axis=1)[:, :2]
        rows = np.arange(len(r))
        a, b = r[rows, two[:, 0]], r[rows, two[:, 1]]
        swap = b < a
        self.best = np.where(swap, two[:, 1], two[:, 0])
        self.first, self.second = np.minimum(a, b), np.maximum(a, b)

    def column(self, j: int, cost_col: np.ndarray) -> np.ndarray:
        """The reduced cost column of territory j with a centre whose cost column is ``cost_col``."""
        col = cost_col + self.weight[:, j]
        if len(self.locked):
            col = col.copy()
            col[self.locked] = np.where(self.locks[self.locked] == j, col[self.locked], np.inf)
        return col

    def delta(self, j: int, col: np.ndarray) -> float:
        """Change of the priced assignment's value when territory j's column becomes ``col``."""
        other = np.where(self.best == j, self.second, self.first)
        new = np.minimum(other, col)
        ok = np.isfinite(new) | ~np.isfinite(self.first)
        if not ok.all():
            return np.inf
        fin = np.isfinite(self.first)
        return float((new[fin] - self.first[fin]).sum())

    def apply(self, j: int, col: np.ndarray) -> None:
        """Make ``col`` territory j's reduced cost column."""
        self.reduced[:, j] = col
        self._refresh()


def improve_centres(
    *,
    src_xy: np.ndarray,
    cen_xy: np.ndarray,
    quick: Callable[[np.ndarray, np.ndarray | None], tuple[float, np.ndarray, np.ndarray]],
    columns: Callable[[np.ndarray], np.ndarray],
    values: np.ndarray,
    scale: np.ndarray,
    locks: np.ndarray,
    src_row: np.ndarray | None,
    deadline: float,
    max_batches: int = 40,
    batch: int | None = None,
    far_sites: int = 0,
    is_cancelled: CancelCheck | None = None,
) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """Relocate and swap moves of the centres, scored with the balanced (priced) assignment.

    Parameters
    ----------
    src_xy : (n_src, 2) candidate sites (the cost points: accounts, or units' points).
    cen_xy : (k, 2) the centres to start from.
    quick : ``quick(cen_xy, prices)`` -> (score, assignment of rows, prices): the Lagrangian
        bound of the balanced assignment at these centres, its priced assignment and prices
        ((k, m + 1), as :func:`assignment.solve_balanced`).
    columns : ``columns(sites_xy)`` -> (n, s) cost of each row to each site.
    values : (n, m) balanced measures of the rows; scale : (m,) their price scale.
    locks : (n,) territory index or -1; src_row : row of each cost point (None: the rows).
    deadline : ``time.perf_counter()`` after which no new batch starts.

    Returns
    -------
    (centres, score, centre sets kept on the way, best first)
    """
    k = len(cen_xy)
    score, assign, prices = quick(cen_xy, None)
    kept = [cen_xy.copy()]
    if k < 2 or assign is None:
        return cen_xy, score, kept
    w = values / scale
    row_of = np.arange(len(src_xy)) if src_row is None else np.asarray(src_row)
    tried: set[tuple[int, float, float]] = set()
    for _ in range(max_batches):
        check_cancel(is_cancelled)
        if time.perf_counter() > deadline:
            logger.info("Centre search stopped at its share of TIME_LIMIT.")
            break
        cost = columns(cen_xy)
        moves = PricedMoves(cost, w @ prices[:, : w.shape[1]].T, locks)
        src_assign = assign[row_of]
        sites, owner = [], []
        for j in range(k):  # relocate: the best medoid ranks of each balanced territory
            members = src_xy[src_assign == j]
            if len(members):
                for s in medoid_ranks(members, NEAR_MEDOID_SITES):
                    sites.append(s)
                    owner.append(j)
        served = moves.first[row_of] / np.maximum(np.bincount(row_of, minlength=len(w))[row_of], 1)
        far = np.argsort(-np.where(np.isfinite(served), served, -np.inf), kind="stable")
        for i in far[:far_sites]:  # swap: a poorly served account becomes a centre
            sites.extend([src_xy[i]] * k)
            owner.extend(range(k))
        sites_xy = np.array(sites)
        owner_a = np.array(owner)
        uniq, inv = np.unique(sites_xy, axis=0, return_inverse=True)
        cols = columns(uniq)[:, inv.ravel()] + moves.weight[:, owner_a]
        if len(moves.locked):
            own = moves.locks[moves.locked]
            cols[moves.locked] = np.where(own[:, None] == owner_a[None, :],
                                          cols[moves.locked], np.inf)  # fmt: skip
        other = np.where(moves.best[:, None] == owner_a[None, :], moves.second[:, None],
                         moves.first[:, None])  # fmt: skip
        fin = np.isfinite(moves.first)
        deltas = (np.minimum(other, cols)[fin] - moves.first[fin, None]).sum(0)
        occupied = {(float(x), float(y)) for x, y in cen_xy}
        for s in range(len(owner)):
            site = (float(sites_xy[s, 0]), float(sites_xy[s, 1]))
            if site in occupied or (owner[s], *site) in tried:
                deltas[s] = np.inf
        trial, changed, first = cen_xy.copy(), [], None
        for s in np.argsort(deltas, kind="stable"):  # a batch: the best moves, one per territory
            if not deltas[s] < -1e-9 * max(abs(score), 1.0) or len(changed) >= (batch or k):
                break
            j = owner[s]
            site = (float(sites_xy[s, 0]), float(sites_xy[s, 1]))
            if j in changed or site in occupied:
                continue
            d = moves.delta(j, cols[:, s]) if changed else deltas[s]
            if d < -1e-9 * max(abs(score), 1.0):
                moves.apply(j, cols[:, s])
                trial[j] = sites_xy[s]
                occupied.add(site)
                changed.append(j)
                first = s if first is None else first
        if not changed:
            break
        tried.add((owner[first], float(sites_xy[first, 0]), float(sites_xy[first, 1])))
        new_score, new_assign, new_prices = quick(trial, prices)
        if new_score >= score - 1e-9 * max(abs(score), 1.0) and len(changed) > 1:
            trial = cen_xy.copy()  # the batch lost: its best move alone
            trial[owner[first]] = sites_xy[first]
            new_score, new_assign, new_prices = quick(trial, prices)
        if new_score < score - 1e-9 * max(abs(score), 1.0):
            cen_xy, score, assign, prices = trial, new_score, new_assign, new_prices
            kept.insert(0, cen_xy.copy())
    return cen_xy, score, kept


def free_centre_bound(
    cost: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    *,
    upper: float,
    start: np.ndarray | None = None,
    deadline: float,
    iterations: int = 300,
) -> float:
    """A lower bound of the balanced p-median over every candidate centre (columns of ``cost``).

    Relaxes each row's "in exactly one territory" with a price u_i (Lagrangian, subgradient
    ascent with Polyak steps towards ``upper``); then each candidate centre j alone gives
    rho_j = min sum_i (c_ij - u_i) x_i over 0 <= x <= 1 with each measure's total within
    [lo, hi] (one measure at a time, a continuous knapsack: the largest of those values), and the
    bound is sum u + the k smallest rho. Every price vector gives a valid bound; the best is
    returned. ``lo``/``hi`` (m,) are the band of every territory (equal capacities).

    Parameters
    ----------
    cost : (n, c) cost of each row to each candidate centre.
    values : (n, m) measures; lo, hi : (m,) the band; k : number of centres.
    upper : objective of a plan (for the step length); start : (n,) first prices.
    deadline : ``time.perf_counter()`` after which the ascent stops.

    Returns
    -------
    float
    """
    n = cost.shape[0]
    vals = np.asarray(values, float)
    u = np.zeros(n) if start is None else np.asarray(start, float).copy()
    best, theta, stall = -np.inf, 1.0, 0
    best_u = u.copy()
    for _ in range(iterations):
        if time.perf_counter() > deadline:
            break
        value, g = _bound_at(cost, vals, lo, hi, k, u)
        if value > best + 1e-12 * abs(best if np.isfinite(best) else 1.0):
            best, best_u, stall = value, u.copy(), 0
        else:
            stall += 1
            if stall >= 15:
                theta, stall, u = theta / 2, 0, best_u.copy()
                if theta < 1e-3:
                    break
        norm = float(g @ g)
        if norm == 0.0 or upper - value <= 1e-9 * abs(upper):
            break
        u = u + theta * (upper - value) / norm * g
    return float(best)


def _bound_at(cost, vals, lo, hi, k, u) -> tuple[float, np.ndarray]:
    """The Lagrangian value at prices ``u`` and a subgradient (see :func:`free_centre_bound`)."""
    c = cost.shape[1]
    r = cost - u[:, None]
    rho = np.full(c, -np.inf)
    take = None
    for m in range(vals.shape[1]):
        val, x = _knapsack_lp(r, vals[:, m], lo[m], hi[m])
        better = val > rho
        rho = np.where(better, val, rho)
        take = x if take is None else np.where(better[None, :], x, take)
    chosen = np.argpartition(rho, k - 1)[:k] if k < c else np.arange(c)
    value = float(u.sum() + rho[chosen].sum())
    g = 1.0 - take[:, chosen].sum(1)
    return value, g


def _knapsack_lp(r: np.ndarray, v: np.ndarray, lo: float, hi: float):
    """Per column: min r.x over 0 <= x <= 1 with v.x within [lo, hi] (v >= 0): the value and x.

    Greedy by r/v: the optimum fills, in that order, up to the negative items' weight clipped to
    [lo, hi] (zero-weight items: taken when negative, never when not).
    """
    n, c = r.shape
    vv = np.broadcast_to(v[:, None], r.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(vv > 0, r / np.where(vv > 0, vv, 1.0), np.where(r < 0, -np.inf, np.inf))
    order = np.argsort(ratio, axis=0, kind="stable")
    rs = np.take_along_axis(r, order, axis=0)
    vs = v[order]
    useless = (vs <= 0) & (rs >= 0)
    rs = np.where(useless, 0.0, rs)
    cv = np.cumsum(vs, axis=0)
    wneg = np.where(rs < 0, vs, 0.0).sum(0)
    target = np.clip(wneg, lo, hi)
    full = cv <= target[None, :] + 1e-12 * np.maximum(target, 1.0)
    full |= (vs <= 0) & (rs < 0)
    x_sorted = full.astype(float)
    p = full.sum(0)  # the items before the first one not taken whole (weights are >= 0)
    done = np.where(full, vs, 0.0).sum(0)
    rest = np.maximum(target - done, 0.0)
    idx = np.minimum(p, n - 1)
    nxt_v = vs[idx, np.arange(c)]
    frac = np.where(
        (p < n) & (nxt_v > 0), np.minimum(rest / np.where(nxt_v > 0, nxt_v, 1.0), 1.0), 0.0
    )
    frac = np.where(full[idx, np.arange(c)], 0.0, frac)
    x_sorted[idx, np.arange(c)] += frac
    x_sorted[useless] = 0.0
    value = (x_sorted * rs).sum(0)
    x = np.empty_like(x_sorted)
    np.put_along_axis(x, order, x_sorted, axis=0)
    return value, x
