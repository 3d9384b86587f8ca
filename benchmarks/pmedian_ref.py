"""A strong unbalanced p-median reference for the compactness benchmark: a proven lower bound
(Lagrangian relaxation over sparse candidate lists with a valid "far" option) and a primal plan.

Problem bounded: choose ``p`` centres among the candidate sites (every account, by default) and
send every account to its nearest open centre, minimising the total straight-line distance. No
balance: any balanced plan whose centres are sites costs at least as much.

Sparse lists: account i sees only its ``m`` nearest sites; any other site is at least as far as
its (m+1)-th nearest one, ``far_i``. The restricted problem lets i take a "far" option at cost
``far_i`` without any open site, so every solution of the full problem maps to one of the
restricted problem that costs no more: the restricted problem's bounds are bounds of the full one.

Lagrangian: relax "each account takes one site or far" with prices lambda_i:
L(lambda) = sum_i min(lambda_i, far_i) + sum of the p smallest rho_j,
rho_j = sum_{i sees j} min(0, d_ij - lambda_i). Every lambda gives a valid bound (subgradient
ascent with Polyak steps towards the primal plan's cost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class PMedianReference:
    """Lower bound and best primal plan of the unbalanced p-median, both in the input's units."""

    lower: float
    upper: float
    centres: np.ndarray  # indices of the sites of the primal plan
    iterations: int
    seconds: float
    far_used: int  # accounts taking the far option in the final Lagrangian subproblem


def sparse_lists(
    xy: np.ndarray, sites: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's ``m`` nearest sites (distances, indices) and its (m+1)-th distance (far)."""
    m = min(m, len(sites) - 1)
    dist, idx = cKDTree(sites).query(xy, k=m + 1)
    return dist[:, :m].astype(np.float32), idx[:, :m], dist[:, m].astype(np.float64)


def assign_cost(xy: np.ndarray, centres_xy: np.ndarray) -> float:
    """Total distance of each point to its nearest centre."""
    return float(cKDTree(centres_xy).query(xy, k=1)[0].sum())


def _local_polish(xy: np.ndarray, sites: np.ndarray, open_: np.ndarray, rounds: int = 20):
    """Alternate nearest-centre assignment and the best site (1-median) of each cluster."""
    tree = cKDTree(sites)
    cost = assign_cost(xy, sites[open_])
    for _ in range(rounds):
        lab = cKDTree(sites[open_]).query(xy, k=1)[1]
        new = open_.copy()
        for j in range(len(open_)):
            members = xy[lab == j]
            if len(members) == 0:
                continue
            # candidate sites: the 64 sites nearest the cluster's coordinate-wise median
            cand = tree.query(np.median(members, axis=0), k=min(64, len(sites)))[1]
            tot = np.sqrt(((sites[cand][:, None] - members[None]) ** 2).sum(-1)).sum(1)
            new[j] = cand[int(np.argmin(tot))]
        if len(set(new.tolist())) < len(new):
            break
        c = assign_cost(xy, sites[new])
        if c >= cost - 1e-9 * cost:
            break
        open_, cost = new, c
    return open_, cost


def pmedian_reference(
    xy: np.ndarray,
    p: int,
    *,
    sites: np.ndarray | None = None,
    m: int = 400,
    iterations: int = 600,
    time_limit_s: float = 300.0,
    upper_start: np.ndarray | None = None,
    theta: float = 1.0,
    patience: int = 20,
) -> PMedianReference:
    """Lagrangian lower bound and a primal plan of the unbalanced p-median (see module doc).

    ``sites`` defaults to the points themselves; ``upper_start`` is an optional set of site
    indices used as a first primal plan.
    """
    t0 = time.perf_counter()
    xy = np.asarray(xy, float)
    sites = xy if sites is None else np.asarray(sites, float)
    ns = len(sites)
    d, idx, far = sparse_lists(xy, sites, m)
    flat = idx.ravel()
    best_open = upper_start if upper_start is not None else np.arange(p)
    best_open, upper = _local_polish(xy, sites, np.asarray(best_open))
    lam = np.minimum(d[:, min(1, d.shape[1] - 1)], far)
    lower, best_lam, stall, it = -np.inf, lam.copy(), 0, 0
    tried: set = set()
    for it in range(1, iterations + 1):
        lam32 = lam.astype(np.float32)
        r = np.minimum(np.float32(0.0), d - lam32[:, None])
        rho = np.bincount(flat, weights=r.ravel(), minlength=ns)
        chosen = np.argpartition(rho, p - 1)[:p]
        value = float(np.minimum(lam, far).sum() + rho[chosen].sum())
        opened = np.zeros(ns, bool)
        opened[chosen] = True
        g = 1.0 - (far < lam) - ((d < lam32[:, None]) & opened[idx]).sum(1)
        if value > lower:
            lower, best_lam, stall = value, lam.copy(), 0
        else:
            stall += 1
            if stall >= patience:
                theta, stall, lam = theta / 2, 0, best_lam.copy()
        if it % 25 == 0:
            key = tuple(sorted(chosen.tolist()))
            if key not in tried:
                tried.add(key)
                cand, c = _local_polish(xy, sites, np.sort(chosen), rounds=5)
                if c < upper:
                    best_open, upper = cand, c
        norm = float(g @ g)
        if norm == 0 or upper - value <= 1e-6 * upper or theta < 1e-4:
            break
        if time.perf_counter() - t0 > time_limit_s:
            break
        lam = lam + theta * (upper - value) / norm * g
    best_open, upper = _local_polish(xy, sites, best_open)
    far_used = int((far < best_lam).sum())
    return PMedianReference(float(lower), float(upper), np.asarray(best_open), it,
                            time.perf_counter() - t0, far_used)  # fmt: skip
