"""The territory model shared by designterritories and rebalanceterritories.

A :class:`TerritoryModel` holds one planning problem: rows (accounts or units), territories, the
cost of each (row, territory) pair, the balanced measures with their target bands, locks, today's
plan with a budget of moves, the allowed pairs (REP_MAX_MINUTES), an optional adjacency of the
rows (contiguity) and an optional travel-balance penalty. It checks inputs (:meth:`precheck`),
solves (:meth:`solve`: the exact MILP through PuLP on small models, prices + LP + local search of
:mod:`assignment` beyond, both on the rows of :mod:`constraints`), checks a plan independently
(:meth:`verify`) and names the smallest relaxation when nothing fits (:meth:`explain_infeasible`).

The module also holds the input helpers both algorithms use (accounts, reps, measures, codes,
costs); they are public so that neither algorithm reaches into the other.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple, NoReturn

import geopandas as gpd
import numpy as np
import pandas as pd
import pulp
import scipy.sparse as sp
import shapely

from ._validate import balance_values, check_points  # noqa: F401 (balance_values: API)
from .assignment import (
    Assignment,
    NoPlanFoundError,
    polish,
    solve_balanced,
    solve_in_groups,
    totals,
    travel_penalty,
)
from .constraints import PairConstraints, pair_constraints
from .errors import (
    ContiguityError,
    InfeasibleError,
    InvalidInputError,
    SolverError,
    TimeLimitError,
)
from .progress import CancelCheck

if TYPE_CHECKING:
    from .contiguous_problem import ContiguousProblem

logger = logging.getLogger(__name__)

EXACT_PAIRS = 1_000  # up to this many row-territory pairs: the exact MILP through PuLP
GROUPS_FROM_PAIRS = 1_000_000  # from this many pairs a short TIME_LIMIT gets a plan in groups
MILP_FALLBACK_PAIRS = 200_000  # up to this size a priced path without a plan tries the MILP
MILP_FALLBACK_SHARE = 0.5  # ... for this share of the time left (the rest: contiguity, or the
# relaxations' checks when it finds none either)
CONTIGUOUS_EXACT_PAIRS = 2_000  # contiguous models up to this many pairs: the exact flow MILP too
CONTIGUOUS_HEURISTIC_SHARE = 0.25  # of TIME_LIMIT for the local search that warm-starts it
CONTIGUOUS_LNS_SHARE = 0.5  # of what TIME_LIMIT has left for re-solving neighbourhoods
TIGHTER_STARTS = (0.8, 0.5)  # bands (x TOLERANCE) of the plans tried when the repairs fail
ORDERED_FROM_GAP = 1.05  # after the neighbourhoods this far above the bound: re-draw all at once
ORDERED_SHARE = 0.6  # ... in rounds of the ordered model and neighbourhoods, this share of what
#                      is left (the separator cuts get the rest)
ORDERED_MILP_SHARE = 0.4  # ... of which the ordered model gets this share in each round
CONTIGUOUS_CUT_SHARE = 0.7  # without a plan in one piece: of what is left for the separator cuts
EXPLAIN_SHARE = 0.25  # still no plan in one piece after the repairs: TIME_LIMIT's last share is
#                       kept for checking the relaxations a failure names
CHECK_MIN_S = 1.0  # a failure at TIME_LIMIT still gets this long to check its relaxations
EXPLAIN_PAIRS = 200_000  # up to this many pairs an infeasible run gets the LP's minimal tolerance
TOLERANCE_MAX_TENTHS = 990  # largest TOLERANCE a suggestion may name, in tenths of a % (99 %)
STRAIGHT_LINE_KMH = 50.0  # straight-line km -> minutes wherever there is no road (one speed)
LP_PATH = "HiGHS via SciPy (priced LP, rounding MILP, local search)"


@dataclass
class Solution:
    """A solved model: the assignment, its objective, a proven lower bound and how it was found.

    ``bound_scope`` says what the bound is a bound of: ``"problem"`` (the model as given) or
    ``"these centres"`` (set by designterritories when it chose the centres itself: the bound
    then holds for the centres it picked, not for every choice of centres).
    """

    assign: np.ndarray
    objective: float
    lower_bound: float
    solver_used: str
    prices: np.ndarray | None = None
    bound_scope: str = "problem"


class PairRule(NamedTuple):
    """A rule that bars (row, territory) pairs besides REP_MAX_MINUTES (e.g. SKILL_RULE hard):
    its name, the advice that lifts it, why a barred pair is barred (``{territory}`` filled in)
    and the explanations' reason code."""

    name: str = "pair_allowed"
    advice: str = "drop pair_allowed"
    why: str = "{territory} is not allowed for it (pair_allowed)"
    reason: str = "not allowed"


PAIR_ALLOWED = PairRule()  # the words of a bare ``pair_allowed``


@dataclass
class TerritoryModel:
    """One territory planning problem (see the module docstring); build with :meth:`from_cost_matrix`."""

    cost: np.ndarray  # (n, k)
    values: np.ndarray  # (n, m)
    capacity: np.ndarray  # (k,)
    tolerance_pct: np.ndarray  # (m,)
    locks: np.ndarray  # (n,) territory index or -1
    current: np.ndarray  # (n,) territory index or -1
    budget: int | None
    allowed: np.ndarray  # (n, k) bool
    adjacency: sp.csr_matrix | None = None  # (n, n) 0/1 neighbours of the rows
    contiguous: bool = False
    travel: tuple[np.ndarray, float] | None = None  # (share per territory, weight mu)
    names: tuple[str, ...] = ()
    row_ids: np.ndarray = field(default_factory=lambda: np.array([], str))
    territory_ids: np.ndarray = field(default_factory=lambda: np.array([], str))
    noun: str = "accounts"
    ends_by: float | None = field(default=None, compare=False, repr=False)  # TIME_LIMIT's end
    reach: np.ndarray | None = None  # (n, k) minutes each pair needs under REP_MAX_MINUTES
    max_minutes: float | None = None  # REP_MAX_MINUTES (None: unset)
    rule_allowed: np.ndarray | None = None  # (n, k) pairs another rule allows (pair_rule)
    pair_rule: PairRule = PAIR_ALLOWED  # that rule's words

    @classmethod
    def from_cost_matrix(
        cls,
        cost: np.ndarray,
        *,
        values: np.ndarray,
        capacity: np.ndarray,
        tolerance_pct: float | Sequence[float] | np.ndarray,
        locks: np.ndarray | None = None,
        current: np.ndarray | None = None,
        budget: int | None = None,
        allowed: np.ndarray | None = None,
        adjacency: sp.spmatrix | None = None,
        contiguous: bool | None = None,
        travel: tuple[np.ndarray, float] | None = None,
        names: Sequence[str] = (),
        row_ids: Sequence[str] | np.ndarray | None = None,
        territory_ids: Sequence[str] | np.ndarray | None = None,
        noun: str = "accounts",
        ends_by: float | None = None,
        reach: np.ndarray | None = None,
        max_minutes: float | None = None,
        rule_allowed: np.ndarray | None = None,
        pair_rule: PairRule = PAIR_ALLOWED,
    ) -> TerritoryModel:
        """A model from an (n, k) cost matrix (rows = accounts or units, columns = territories).

        Parameters
        ----------
        cost : (n, k) cost of each pair (km or minutes, or move costs).
        values : (n,) or (n, m) balanced measures; capacity : (k,) share weights of territories.
        tolerance_pct : one band for every measure or one per measure (±% of the target).
        locks, current : (n,) territory index or -1; budget : most rows moved from ``current``.
        allowed : (n, k) pairs allowed (REP_MAX_MINUTES); adjacency : (n, n) neighbours of rows.
        contiguous : every territory one connected piece (default: when ``adjacency`` is given).
        travel : (share per territory, weight) of the travel-balance penalty.
        names, row_ids, territory_ids, noun : for messages ("account count" when no names).
        ends_by : ``time.perf_counter()`` by which the run must end (its TIME_LIMIT): a failure
            checks the relaxations it names in what is left (at least ``CHECK_MIN_S``); without
            it, in up to TIME_LIMIT again (at least 5 s, at most 60 s).
        reach, max_minutes : (n, k) minutes each pair needs (:func:`reach_minutes`) and
            REP_MAX_MINUTES; with both, pairs beyond it are barred and a failure searches the
            least REP_MAX_MINUTES that gives a plan.
        rule_allowed, pair_rule : (n, k) pairs another rule allows (e.g. SKILL_RULE hard) and
            its words (:class:`PairRule`); a failure checks its advice alone.
        ``allowed`` is every restriction at once: given pairs, ``reach`` within ``max_minutes``
        and ``rule_allowed``.

        Returns
        -------
        TerritoryModel
        """
        cost = np.asarray(cost, float)
        n, k = cost.shape
        vals = np.asarray(values, float)
        vals = vals[:, None] if vals.ndim == 1 else vals
        tol = np.broadcast_to(np.asarray(tolerance_pct, float), (vals.shape[1],)).copy()
        none = np.full(n, -1)
        adj = None if adjacency is None else sp.csr_matrix(adjacency)
        reach = None if reach is None else np.asarray(reach, float)
        rule_allowed = None if rule_allowed is None else np.asarray(rule_allowed, bool)
        ok = allowed_pairs((n, k), allowed=allowed, reach=reach, max_minutes=max_minutes,
                           rule_allowed=rule_allowed)  # fmt: skip
        return cls(
            cost=cost, values=vals, capacity=np.asarray(capacity, float), tolerance_pct=tol,
            locks=none.copy() if locks is None else np.asarray(locks, int),
            current=none.copy() if current is None else np.asarray(current, int),
            budget=None if budget is None else int(budget),
            allowed=ok, adjacency=adj, contiguous=bool(adj is not None if contiguous is None else contiguous),
            travel=travel if travel is not None and travel[1] > 0 else None, names=tuple(names),
            row_ids=np.asarray([f"#{i}" for i in range(n)] if row_ids is None else row_ids, str),
            territory_ids=np.asarray(
                [f"T{j + 1:02d}" for j in range(k)] if territory_ids is None else territory_ids,
                str,
            ),
            noun=noun, ends_by=ends_by, reach=reach,
            max_minutes=None if max_minutes is None else float(max_minutes),
            rule_allowed=rule_allowed, pair_rule=pair_rule,
        )  # fmt: skip

    # ------------------------------------------------------------------------- shape and bands

    @property
    def n(self) -> int:
        """Number of rows (accounts or units)."""
        return self.cost.shape[0]

    @property
    def k(self) -> int:
        """Number of territories."""
        return self.cost.shape[1]

    @property
    def measure_names(self) -> list[str]:
        """Names of the measures for messages and columns ("accounts" when none are given)."""
        return list(self.names) or ["accounts"]

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-territory target, lower and upper bound of each measure ((k, m) arrays)."""
        share = self.capacity / self.capacity.sum()
        target = self.values.sum(0)[None, :] * share[:, None]
        return (
            target,
            target * (1 - self.tolerance_pct / 100.0),
            target * (1 + self.tolerance_pct / 100.0),
        )

    def pairs(self) -> np.ndarray:
        """(n, k) pairs a plan may use: allowed pairs, and only its lock for a locked row."""
        mask = self.allowed.copy()
        locked = np.flatnonzero(self.locks >= 0)
        mask[locked] = False
        mask[locked, self.locks[locked]] = True
        return mask

    def contiguous_problem(self) -> ContiguousProblem:
        """This model as the exact contiguous models take it
        (:class:`.contiguous_problem.ContiguousProblem`: its arrays, the bands of
        :meth:`bounds`, the pairs of :meth:`pairs`, so a locked row may go to its lock as in
        every other model)."""
        from .contiguous_problem import ContiguousProblem

        _, lo, hi = self.bounds()
        return ContiguousProblem.of(self.cost, self.values, lo, hi, adjacency=self.adjacency,
                                    locks=self.locks, allowed=self.pairs(),
                                    current=self.current, budget=self.budget)  # fmt: skip

    def constraints(self, pairs: np.ndarray | None = None) -> PairConstraints:
        """The sparse constraint rows (assignment, balance, budget) over the pairs a plan may use."""
        rows, cols = np.nonzero(self.pairs() if pairs is None else pairs)
        return pair_constraints(self.values, rows, cols, n_rows=self.n, k=self.k,
                                current=self.current if self.budget is not None else None)  # fmt: skip

    # ------------------------------------------------------------------------- checks

    def precheck(self) -> None:
        """Raise :class:`InfeasibleError` for conflicts visible before solving (named)."""
        self._refuse_too_heavy("No plan satisfies every hard constraint.")
        target, _, hi = self.bounds()
        tol = self.tolerance_pct
        heavy = self._heavier_than_bands()
        if heavy is not None:
            msg, need = heavy
            if self._probe:
                raise InfeasibleError(msg)
            raise InfeasibleError(f"{msg} {self.relaxations('CBC', 10.0, tolerance_from=need)}")
        what = "account count" if not self.names else None
        for j, cid in enumerate(self.territory_ids):
            locked = self.values[self.locks == j].sum(0)
            for m in range(self.values.shape[1]):
                name = what or self.names[m]
                if locked[m] > hi[j, m] + 1e-9:
                    share = 100 * locked[m] / max(self.values[:, m].sum(), 1e-12)
                    msg = (
                        f"Locked {self.noun} give {cid} {share:.1f}% of {name} (target "
                        f"{100 * target[j, m] / self.values[:, m].sum():.1f}% ± {tol[m]:g}%)."
                    )
                    if self._probe:
                        raise InfeasibleError(msg)
                    need = self._tolerance_to_hold(locked[m], target[j, m], m)
                    raise InfeasibleError(
                        f"{msg} {self.relaxations('CBC', 10.0, tolerance_from=need)}"
                    )
        locked = np.flatnonzero(self.locks >= 0)
        far = locked[~self.allowed[locked, self.locks[locked]]]
        if len(far):
            why = []
            if self.reach is not None and self.max_minutes is not None:
                away = self.reach[far, self.locks[far]]
                if (away > self.max_minutes).any():
                    why.append(f"farther than REP_MAX_MINUTES ({self.max_minutes:g} min; up to "
                               f"{_minutes_said(away.max())} away)")  # fmt: skip
            if self._rule_bars() and not self.rule_allowed[far, self.locks[far]].all():
                why.append(f"barred by {self.pair_rule.name}")
            why = " or ".join(why) or "farther than REP_MAX_MINUTES"
            msg = (
                f"LOCK_FIELD: {self.noun} {list(self.row_ids[far][:10])} are locked to a rep {why}."
            )
            raise InfeasibleError(msg if self._probe else f"{msg} {self.relaxations('CBC', 10.0)}")
        orphan = ~self.allowed.any(1)
        if orphan.any():
            if self._rule_bars() and not self.rule_allowed[orphan].any(1).all():
                none = orphan & ~self.rule_allowed.any(1)
                msg = (f"{self.pair_rule.name}: {self.noun} {list(self.row_ids[none][:10])} have no "
                       "rep the rule allows.")  # fmt: skip
            else:
                head, near = "REP_MAX_MINUTES", ""
                if self.reach is not None and self.max_minutes is not None:
                    far_most = self._nearest_rep_minutes()[orphan].max()
                    head = f"REP_MAX_MINUTES ({self.max_minutes:g} min)"
                    near = f" (the farthest is {_minutes_said(far_most)} from its nearest rep)"
                msg = (f"{head}: {self.noun} {list(self.row_ids[orphan][:10])} are farther than "
                       f"that from every rep home{near}; a rep near them would serve them.")  # fmt: skip
            raise InfeasibleError(msg if self._probe else f"{msg} {self.relaxations('CBC', 10.0)}")

    def pieces(self, assign: np.ndarray) -> np.ndarray | None:
        """(k,) connected pieces of each territory under the adjacency (None without one)."""
        if self.adjacency is None:
            return None
        from .adjacency import count_pieces

        return np.asarray(count_pieces(assign, self.adjacency, self.k))

    def verify(self, assign: np.ndarray) -> None:
        """Independent check of every hard constraint on a plan; raises :class:`SolverError`."""
        problems = []
        if len(assign) != self.n or (assign < 0).any():
            problems.append(f"unassigned {self.noun}")
        else:
            if ((self.locks >= 0) & (assign != self.locks)).any():
                problems.append("locks broken")
            if not self.allowed[np.arange(self.n), assign].all():
                problems.append("REP_MAX_MINUTES broken")
            _, lo, hi = self.bounds()
            load = totals(self.values, assign, self.k)
            if (load > hi + 1e-6 * (1 + hi)).any() or (load < lo - 1e-6 * (1 + lo)).any():
                problems.append("tolerance broken")
            has = self.current >= 0
            if self.budget is not None and (has & (assign != self.current)).sum() > self.budget:
                problems.append("MAX_MOVES broken")
            if self.contiguous and self.adjacency is not None:
                split = self.pieces(assign) > 1
                if split.any():
                    problems.append(f"{', '.join(self.territory_ids[split])} not in one piece")
        if problems:
            msg = (f"Internal check failed ({', '.join(problems)}); please report this with your "
                   "inputs.")  # fmt: skip
            raise SolverError(msg)

    # ------------------------------------------------------------------------- solving

    def objective_of(self, assign: np.ndarray) -> float:
        """Total cost of a plan, with the travel penalty when the model has one."""
        obj = float(self.cost[np.arange(self.n), assign].sum())
        if self.travel is not None:
            obj += travel_penalty(self.cost, assign, *self.travel)
        return obj

    def solve(
        self,
        solver: str = "CBC",
        *,
        time_limit_s: float = 60.0,
        prices: np.ndarray | None = None,
        final: bool = True,
        rooms: tuple[float, ...] | None = None,
        keep: int = 1,
        tiers: tuple[tuple[int, int], ...] | None = None,
        is_cancelled: CancelCheck | None = None,
        grace_s: float = 0.0,
    ) -> Solution:
        """Solve: the exact MILP (``solver`` through PuLP) up to ``EXACT_PAIRS`` pairs without a
        travel penalty, otherwise prices + LP + local search (HiGHS via SciPy; logged).

        With ``final`` false only a quick priced assignment is made (centre rounds; no penalty,
        no contiguity). A contiguous model is then made contiguous (:mod:`contiguity`), keeping
        every hard constraint; the bound stays the one without contiguity (still a lower bound),
        except on the county-sized exact path, whose separator cuts bound the contiguous problem.
        Raises :class:`InfeasibleError` (naming the smallest relaxation) or :class:`SolverError`.
        ``grace_s``: the priced LP path may go on this long past ``time_limit_s`` while it has
        no plan (the time TIME_LIMIT keeps for the outputs, spent only rather than refuse).
        """
        travel = self.travel if final else None
        if final and self.exact_contiguity_fits():
            return self._solve_contiguous_exact(solver, time_limit_s, is_cancelled)
        end = time.perf_counter() + time_limit_s  # contiguity shares what the solve leaves
        if self.cost.size <= EXACT_PAIRS and travel is None:
            sol = self._solve_exact(solver, time_limit_s)
        else:
            if final:
                why = ("TRAVEL_WEIGHT's penalty is solved by" if travel is not None
                       and self.cost.size <= EXACT_PAIRS else
                       f"{self.cost.size:,} pairs (more than {EXACT_PAIRS:,}) are solved by")  # fmt: skip
                logger.info("SOLVER %s: %s the priced LP path (%s).", solver, why, LP_PATH)
            _, lo, hi = self.bounds()
            if final and self._too_large_for(time_limit_s + max(grace_s, 0.0)):
                sol = self._solve_in_groups(lo, hi, time_limit_s, is_cancelled)
            else:
                try:
                    res = solve_balanced(
                        self.cost, self.values, lo, hi, locks=self.locks, current=self.current,
                        budget=self.budget, allowed=self.allowed, time_limit_s=time_limit_s,
                        prices=prices, final=final, is_cancelled=is_cancelled, rooms=rooms,
                        keep=keep, tiers=tiers, iterations=400 if final else 150, travel=travel,
                        grace_s=grace_s,
                    )  # fmt: skip
                except NoPlanFoundError as err:
                    if err.timed_out:
                        raise TimeLimitError(
                            self.timed_out_message(time_limit_s + grace_s)
                        ) from None
                    res = None if err.proven else self._whole_milp_plan(end, final)
                    if res is None:
                        self.explain_infeasible("infeasible" if err.proven else "no plan found",
                                                solver, end - time.perf_counter())  # fmt: skip
                sol = Solution(res.assign, res.objective, res.lower_bound, "HiGHS (SciPy)",
                               res.prices)  # fmt: skip
        if final and self.contiguous and self.adjacency is not None:
            try:
                sol = self._make_contiguous(sol, end - time.perf_counter(), is_cancelled,
                                            until=end)  # fmt: skip
            except ContiguityError as err:
                self._contiguity_failed(err, solver, time_limit_s)
        return sol

    def _contiguity_failed(
        self, err: ContiguityError, solver: str, time_limit_s: float
    ) -> NoReturn:
        """No plan in one piece was found: the search's finding with the relaxations checked by
        solving (its own advice was not checked). A check of a relaxation only needs the verdict."""
        if self._probe:
            raise err
        self.explain_infeasible("no plan in one piece found", solver, time_limit_s,
                                finding=err.finding)  # fmt: skip

    def _too_large_for(self, seconds: float) -> bool:
        """Whether the full priced path would likely find no plan in ``seconds`` (a first plan in
        groups is made instead; not with a moves budget or the travel penalty)."""
        return (self.budget is None and self.travel is None and self.cost.size >= GROUPS_FROM_PAIRS
                and _SECONDS_PER_PAIR * self.cost.size > 2.0 * seconds)  # fmt: skip

    def _solve_in_groups(self, lo, hi, time_limit_s, is_cancelled) -> Solution:
        """A first plan with accounts placed in groups (:func:`.assignment.solve_in_groups`),
        its bound valid for the model as posed."""
        try:
            res, size = solve_in_groups(self.cost, self.values, lo, hi, locks=self.locks,
                                        allowed=self.allowed, time_limit_s=time_limit_s,
                                        is_cancelled=is_cancelled)  # fmt: skip
        except NoPlanFoundError:  # (in groups no plan is no proof: ask for the time)
            raise TimeLimitError(self.timed_out_message(time_limit_s)) from None
        logger.warning(
            "TIME_LIMIT is short for %s %s x %d territories: a first plan was made with the %s "
            "in groups of about %d that weigh the same choice (balance exact; gap to the bound "
            "%.2f%%). Raise TIME_LIMIT (about %d s) for a plan of every %s on its own; a "
            "machine of another speed may give another plan: raise TIME_LIMIT for runs that "
            "repeat exactly.",
            f"{self.n:,}", self.noun, self.k, self.noun, size,
            100 * (res.objective - res.lower_bound) / max(res.objective, 1e-12),
            likely_time_limit_s(self.n, self.k), self.noun[:-1],
        )  # fmt: skip
        return Solution(res.assign, res.objective, res.lower_bound, "HiGHS (SciPy), in groups",
                        res.prices)  # fmt: skip

    def exact_contiguity_fits(self) -> bool:
        """Whether :meth:`solve` takes the exact contiguous path (county-sized, no penalty)."""
        return (self.contiguous and self.adjacency is not None and self.travel is None
                and self.cost.size <= CONTIGUOUS_EXACT_PAIRS)  # fmt: skip

    def _solve_contiguous_exact(self, solver: str, time_limit_s: float, is_cancelled) -> Solution:
        """County-sized contiguous models: the local search's plan, improved by re-solving 2 to 4
        neighbouring territories at a time exactly, starts the root-free separator-cut model (a
        bound of the problem as posed, optimal when it closes); without any plan in one piece
        by then, the rooted flow MILP looks for one."""
        from .beside import merge_cuts, start_cuts_beside
        from .branch_cut import contiguous_model
        from .contiguous_problem import contiguous_exact
        from .exact_contiguity import CUT_TARGET_GAP, contiguous_cuts, improve_by_neighbourhoods

        t0 = time.perf_counter()
        free = replace(self, contiguous=False)
        free._probe = True  # a failure here is a verdict to act on, not yet an explanation
        base, proven = None, False
        try:
            base = free.solve(solver, time_limit_s=time_limit_s, is_cancelled=is_cancelled)
            free.verify(base.assign)
            self._free_found = True  # so CONTIGUOUS off is known to work, unchecked
        except InfeasibleError as err:  # proven, or not found by the heuristic (go on)
            proven = str(err) in ("Infeasible", "infeasible")
        except SolverError:  # (within the solver's tolerances, not ours: no plan to lean on)
            base = None
        if proven:  # no plan even in pieces: the full explanation
            self.explain_infeasible("infeasible", solver, time_limit_s)
        bound, plan = self._integer_plan(min(10.0, time_limit_s / 4))
        if base is not None:
            bound = max(bound, base.lower_bound)
        if plan is not None and (base is None or self.objective_of(plan) < base.objective):
            base = Solution(plan, self.objective_of(plan), bound, "HiGHS (SciPy, exact)")
        start, failure = None, None
        if base is not None:
            share = CONTIGUOUS_HEURISTIC_SHARE * time_limit_s  # the repairs' exact fallback too
            try:
                start = self._make_contiguous(base, share, is_cancelled, until=t0 + share).assign
            except InfeasibleError as err:
                failure = err
                start = self._contiguous_from_tighter(free, share, is_cancelled)
                failure = None if start is not None else failure
        stop_by = t0 + time_limit_s
        if start is None and not self._probe:  # a failure is likely: keep time for its checks
            stop_by = t0 + (1.0 - EXPLAIN_SHARE) * time_limit_s
        problem = self.contiguous_problem()
        beside = None  # the separator cuts in a second process, for all the time left
        if start is not None:
            beside = start_cuts_beside(
                time_limit_s - (time.perf_counter() - t0) - BESIDE_ANSWER_S, problem,
                start=start, incumbents=True, target_gap=CUT_TARGET_GAP)  # fmt: skip
        offer = beside.offer if beside is not None else None  # better plans: its incumbents

        def proven_beside() -> bool:  # the worker proved its plan optimal: nothing to search
            return bool(beside and beside.closed())

        cuts = None
        try:
            closed, redraw = None, False  # the cuts beside, once they proved a plan optimal
            if start is not None:
                before = self.objective_of(start)
                start = improve_by_neighbourhoods(
                    problem, start=start,
                    deadline=time.perf_counter() + CONTIGUOUS_LNS_SHARE * max(
                        time_limit_s - (time.perf_counter() - t0), 0.0), on_better=offer,
                    stop=proven_beside,
                )  # fmt: skip
                logger.info("CONTIGUOUS: neighbouring territories re-solved exactly, 2 to 4 at "
                            "a time: %.3f -> %.3f.", before, self.objective_of(start))  # fmt: skip
                closed = proven_beside()
                redraw = not closed and self.objective_of(start) > ORDERED_FROM_GAP * bound
                if redraw:  # with the cuts beside, the time left is the search's
                    share = BESIDE_ORDERED_SHARE if beside and beside.helping() else ORDERED_SHARE
                    start = self._redraw_all(start, bound, share * max(
                        time_limit_s - (time.perf_counter() - t0), 0.0), problem,
                        stop=proven_beside)  # fmt: skip
                    if offer is not None:
                        offer(start)
                    closed = proven_beside()
            left = stop_by - time.perf_counter()
            left = max(left, 1.0) if start is not None else max(left, 0.0)
            helped = start is not None and redraw and beside and beside.helping()
            if not closed and not helped and left > 0.05:
                # beside SCIP's tree, HiGHS rounds prove other things; alone, the tree is better
                solve_cuts = contiguous_cuts if beside is not None else contiguous_model
                cuts = solve_cuts(
                    problem, start=start,
                    time_limit_s=left if start is not None else CONTIGUOUS_CUT_SHARE * left,
                    incumbents=True, stop=proven_beside, target_gap=CUT_TARGET_GAP,
                )  # fmt: skip
            if beside is not None and not (cuts is not None and (cuts.optimal or cuts.closed)):
                cuts = merge_cuts(cuts, beside.result(
                    time_limit_s - (time.perf_counter() - t0) + BESIDE_ANSWER_S))  # fmt: skip
        finally:
            if beside is not None:
                beside.close()
        exact = None
        if cuts is not None:
            if np.isfinite(cuts.bound) and cuts.bound > bound:
                bound = cuts.bound  # root-free: a bound of the problem as posed
            if cuts.assign is not None and (
                start is None or cuts.objective < self.objective_of(start)
            ):
                start = cuts.assign
            scip = "SCIP" in cuts.solver  # SCIP adds the cuts inside its search: CBC, HiGHS can't
            unit = {"SCIP": "node", "HiGHS": "round"}.get(cuts.solver, "round or node")
            logger.info("CONTIGUOUS: separator cuts (root-free, %s%s), %d %s%s, %d cuts: bound "
                        "%.3f, plan %s%s.", cuts.solver, f"; not {solver}: cuts inside one search "
                        "tree" if scip and solver.upper() != "SCIP" else "", cuts.rounds, unit,
                        "" if cuts.rounds == 1 else "s", cuts.cuts, cuts.bound, "none" if cuts.assign is None else
                        f"{cuts.objective:.3f}", " (optimal)" if cuts.optimal else "")  # fmt: skip
        left = stop_by - time.perf_counter()
        if (cuts is None or start is None) and left > 0.5:  # the flow MILP: a plan from nothing
            exact = contiguous_exact(problem, roots=self._roots(start), start=start,
                                     time_limit_s=left)  # fmt: skip
        note = "" if solver.upper() == "HIGHS" else f"; not {solver}: HiGHS is twice as fast on it"
        if cuts is not None and (cuts.optimal or cuts.closed) and start is not None:
            assign, used = start, f"{cuts.solver} (exact contiguous model, separator cuts)"
        elif exact is not None and (start is None or exact.objective < self.objective_of(start)):
            state = (
                "optimal" if exact.optimal else f"stopped at TIME_LIMIT, {exact.bound:.3f} bound"
            )
            logger.info(
                "CONTIGUOUS: %d pairs (at most %d): the exact flow model (HiGHS%s) found "
                "a plan of %.3f (%s, each territory holding its root: its cheapest unit), "
                "local search %s.", self.cost.size, CONTIGUOUS_EXACT_PAIRS, note, exact.objective,
                state, "none" if start is None else f"{self.objective_of(start):.3f}",
            )  # fmt: skip
            assign, used = exact.assign, "HiGHS (exact contiguous flow model)"
        elif start is not None:
            if exact is not None:
                logger.info("CONTIGUOUS: the exact flow model (HiGHS%s) found nothing better "
                            "within TIME_LIMIT; the local search's plan is kept.", note)  # fmt: skip
            by = "HiGHS" if cuts is None else cuts.solver
            assign, used = (
                start,
                f"HiGHS (local search, exact neighbourhoods), {by} (separator cuts)",
            )
        elif isinstance(failure, ContiguityError):
            self._contiguity_failed(failure, solver, time_limit_s)
        elif failure is not None:
            raise failure
        else:
            self.explain_infeasible("no plan found", solver, time_limit_s)
        objective = self.objective_of(assign)
        prices = None if base is None else base.prices
        return Solution(assign, objective, min(bound, objective), used, prices)

    def _contiguous_from_tighter(self, free: TerritoryModel, seconds: float,
                                 is_cancelled) -> np.ndarray | None:  # fmt: skip
        """The plan without contiguity could not be made one piece each within the bands (the
        repairs cost balance): plans at tighter bands (``TIGHTER_STARTS`` x TOLERANCE; the
        integer plan without contiguity) leave the repairs room. A plan in one piece per
        territory within this model's bands, or None."""
        end = time.perf_counter() + seconds  # the tries share ``seconds``
        for shrink in TIGHTER_STARTS:
            if end - time.perf_counter() < 1.0:
                break
            tighter = replace(free, tolerance_pct=self.tolerance_pct * shrink)
            _, plan = tighter._integer_plan((end - time.perf_counter()) / 2)
            if plan is None:
                continue
            base = Solution(plan, self.objective_of(plan), -np.inf, "HiGHS (SciPy, exact)")
            try:
                start = self._make_contiguous(base, end - time.perf_counter(), is_cancelled,
                                              until=end)  # fmt: skip
            except InfeasibleError:
                continue
            logger.info("CONTIGUOUS: one piece each from the plan at %.0f %% of TOLERANCE (from "
                        "the plan at TOLERANCE the repairs could not keep the bands).",
                        100 * shrink)  # fmt: skip
            return start.assign
        return None

    def _redraw_all(self, start: np.ndarray, bound: float, seconds: float,
                    problem: ContiguousProblem, stop=None) -> np.ndarray:  # fmt: skip
        """A plan far above the bound, stuck for the neighbourhoods: the ordered model re-draws
        every territory at once (:func:`.exact_contiguity.ordered_plan`, from ``start``), then the
        neighbourhoods go on from its plan; rounds repeat while they improve, within
        ``seconds`` and until ``stop()`` says so. Returns the best plan (``start`` when nothing
        improves)."""
        from .exact_contiguity import improve_by_neighbourhoods, ordered_plan

        end = time.perf_counter() + seconds
        first, rounds, tried = self.objective_of(start), 0, False
        while self.objective_of(start) > ORDERED_FROM_GAP * bound:
            left = end - time.perf_counter()
            if left < 2.0 or (stop is not None and stop()):
                break
            before, tried = self.objective_of(start), True
            other = ordered_plan(problem, start=start, stop=stop,
                                 time_limit_s=ORDERED_MILP_SHARE * left)  # fmt: skip
            if other is None:
                break
            try:
                self.verify(other)
            except SolverError:  # within HiGHS's tolerances, not ours
                break
            other = improve_by_neighbourhoods(problem, start=other, deadline=end, stop=stop)
            if self.objective_of(other) >= before - 1e-9 * max(abs(before), 1.0):
                break
            start, rounds = other, rounds + 1
        if not tried:
            return start
        logger.info("CONTIGUOUS: %.1f %% above the bound without contiguity: every territory "
                    "re-drawn at once (ordered model), then the neighbourhoods, %d round(s) that "
                    "improved: %.3f -> %.3f.", 100 * (first / bound - 1) if bound > 0 else np.inf,
                    rounds, first, self.objective_of(start))  # fmt: skip
        return start

    def _roots(self, start: np.ndarray | None) -> np.ndarray:
        """A unit per territory for the flow model: its cheapest locked unit, else its cheapest
        unit in ``start``, else its cheapest free unit (distinct)."""
        pairs = self.pairs()
        roots, taken = np.full(self.k, -1), set()
        for j in np.argsort(self.cost.min(0), kind="stable"):
            pools = [np.flatnonzero(self.locks == j)]
            if start is not None:
                pools.append(np.flatnonzero((start == j) & pairs[:, j]))
            pools.append(np.flatnonzero(pairs[:, j] & (self.locks < 0)))
            for pool in pools:
                pool = pool[~np.isin(pool, list(taken))]
                if len(pool):
                    roots[j] = pool[np.argmin(self.cost[pool, j])]
                    taken.add(int(roots[j]))
                    break
        return roots

    def _whole_milp_plan(self, end: float, final: bool) -> Assignment | None:
        """The priced path's heuristics found no plan (not proven infeasible) and time is left:
        the MILP of the whole model without contiguity and penalty (HiGHS) for
        ``MILP_FALLBACK_SHARE`` of the time to ``end``, as
        an :class:`.assignment.Assignment` (its bound the MILP's), or None (none found, no time,
        or too large to try)."""
        left = MILP_FALLBACK_SHARE * (end - time.perf_counter())
        if not final or left < 1.0 or self.cost.size > MILP_FALLBACK_PAIRS:
            return None
        bound, plan = self._integer_plan(left)
        if plan is None or not replace(self, contiguous=False)._fits(plan):  # (pieces: later)
            return None
        # HiGHS's first plan of a large model can be far from good: the priced path's local
        # search on it, in a tenth of what is left
        _, lo, hi = self.bounds()
        stop = time.perf_counter() + 0.1 * max(end - time.perf_counter(), 0.0)
        better = polish(np.where(self.pairs(), self.cost, np.inf), self.values, lo, hi, plan,
                        current=self.current if self.budget is not None else None,
                        budget=self.budget, end=stop)  # fmt: skip
        if replace(self, contiguous=False)._fits(better):
            plan = better
        logger.info("The priced LP path found no plan within the bands; the MILP of the whole "
                    "model (HiGHS, %s pairs) found one in what was left of TIME_LIMIT.",
                    f"{self.cost.size:,}")  # fmt: skip
        objective = self.objective_of(plan)
        return Assignment(plan, objective, min(bound, objective), None)

    def _integer_plan(self, time_limit_s: float) -> tuple[float, np.ndarray | None]:
        """Proven bound (-inf if none) and best plan (None if none) of the model without
        contiguity and penalty (HiGHS MILP)."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        pc = self.constraints()
        _, lo, hi = self.bounds()
        stay = None if self.budget is None else (self.current >= 0).sum() - self.budget
        res = milp(self.cost[pc.rows, pc.cols], integrality=np.ones(pc.n_pairs),
                   bounds=Bounds(0, 1), constraints=LinearConstraint(*pc.rows_within(lo, hi, stay)),
                   options={"time_limit": max(time_limit_s, 0.1), "disp": False})  # fmt: skip
        plan = None
        if res.x is not None:
            plan = np.full(self.n, -1)
            pick = res.x > 0.5
            plan[pc.rows[pick]] = pc.cols[pick]
            plan = None if (plan < 0).any() else plan
        if res.status == 0 and plan is not None:  # its own optimum: costs only, no penalty
            return float(self.cost[np.arange(self.n), plan].sum()), plan
        bound = getattr(res, "mip_dual_bound", None)
        return (float(bound) if bound is not None and np.isfinite(bound) else -np.inf), plan

    def solve_on_pairs(self, pairs: np.ndarray, *, time_limit_s: float) -> np.ndarray | None:
        """A plan of the whole model that uses only ``pairs`` ((n, k) mask, within
        :meth:`pairs`), or None when none was found in ``time_limit_s``: the priced LP path on
        the pairs (quick), then the MILP of the pairs started from its plan (HiGHS; rows left
        one pair are fixed and folded into the bands) in the time left. The restriction's bound
        is not the model's, so none is returned."""
        from .contiguous_problem import highs_milp

        end = time.perf_counter() + time_limit_s
        mask = np.asarray(pairs, bool) & self.pairs()
        count = mask.sum(1)
        if (count == 0).any():
            return None
        one = count == 1
        fixed_col = mask.argmax(1)
        _, lo, hi = self.bounds()
        start = None
        with contextlib.suppress(NoPlanFoundError):  # then the MILP alone
            start = solve_balanced(self.cost, self.values, lo, hi,
                                   locks=np.where(one, fixed_col, self.locks),
                                   current=self.current, budget=self.budget, allowed=mask,
                                   time_limit_s=time_limit_s / 2, rooms=(0.1, 0.03, 0.25, 0.0),
                                   keep=2, quiet=True, tiers=((10**9, 0),)).assign  # fmt: skip
        start = start if start is not None and self._fits(start) else None
        free = np.flatnonzero(~one)
        if len(free) == 0:  # the pairs leave one plan
            return fixed_col if self._fits(fixed_col) else None
        if time.perf_counter() >= end:
            return start
        rows, cols = np.nonzero(mask[free])
        cur = self.current[free] if self.budget is not None else None
        pc = pair_constraints(self.values[free], rows, cols, n_rows=len(free), k=self.k,
                              current=cur)  # fmt: skip
        fixed = totals(self.values[one], fixed_col[one], self.k)
        stay = None  # moves of the fixed rows count against the budget too
        if self.budget is not None:
            one_moves = int(((self.current >= 0) & one & (fixed_col != self.current)).sum())
            stay = (cur >= 0).sum() + one_moves - self.budget
        x0 = None if start is None else (start[free[rows]] == cols).astype(float)
        out = highs_milp(self.cost[free[rows], cols], np.ones(pc.n_pairs), np.zeros(pc.n_pairs),
                     np.ones(pc.n_pairs), *pc.rows_within(lo - fixed, hi - fixed, stay), x0,
                     end - time.perf_counter())  # fmt: skip
        if out is None or out[0] is None:
            return start
        plan = np.where(one, fixed_col, -1)
        pick = out[0] > 0.5
        plan[free[rows[pick]]] = cols[pick]
        if (plan < 0).any() or not self._fits(plan):
            return start
        return (
            plan if start is None or self.objective_of(plan) < self.objective_of(start) else start
        )

    def _fits(self, plan: np.ndarray) -> bool:
        """Whether a plan keeps every hard constraint (:meth:`verify` without raising)."""
        try:
            self.verify(plan)
        except SolverError:
            return False
        return True

    def timed_out_message(self, seconds: float) -> str:
        """What to do when ``seconds`` of search found no plan: the TIME_LIMIT likely enough for
        this size when it is longer, otherwise a several-fold one (this model is harder than
        its size)."""
        need = likely_time_limit_s(self.n, self.k)
        head = ("TIME_LIMIT was reached before any plan keeping every hard constraint was found "
                f"({self.n:,} {self.noun} x {self.k} territories).")  # fmt: skip
        if need > 1.2 * seconds:
            return (f"{head} Raise TIME_LIMIT (plans of hundreds of thousands of accounts can "
                    f"need several minutes; for this size about {need:,} s is likely enough) and "
                    "run again.")  # fmt: skip
        return (
            f"{head} Plans of this size are usually found in about {need:,} s: the hard "
            "constraints leave few plans here. Raise TIME_LIMIT several-fold and run again."
        )

    def _make_contiguous(self, sol: Solution, time_limit_s: float, is_cancelled, *,
                         until: float) -> Solution:  # fmt: skip
        """:func:`.contiguity.make_contiguous` of a solved plan: its local search within
        ``time_limit_s``, its exact fallback until ``until`` (``time.perf_counter()``)."""
        from .contiguity import make_contiguous

        before = self.pieces(sol.assign)
        _, lo, hi = self.bounds()
        assign = make_contiguous(
            sol.assign, adjacency=self.adjacency, cost=self.cost, values=self.values, lo=lo,
            hi=hi, locks=self.locks, allowed=self.allowed, current=self.current,
            budget=self.budget, deadline=time.perf_counter() + max(time_limit_s, 1.0),
            fallback_deadline=until, is_cancelled=is_cancelled, names=list(self.territory_ids),
            measures=self.names or ["account count" if self.noun == "accounts" else "unit count"],
            unit_ids=list(self.row_ids), barred_by=self.pair_words(),
        )  # fmt: skip
        objective = self.objective_of(assign)
        split = int((before > 1).sum())
        if split:
            logger.info("CONTIGUOUS: %d territories were in several pieces; now each is one piece "
                        "(objective %.3f -> %.3f).", split, sol.objective, objective)  # fmt: skip
        return Solution(assign, objective, min(sol.lower_bound, objective), sol.solver_used,
                        sol.prices, sol.bound_scope)  # fmt: skip

    def _solve_exact(self, solver: str, time_limit_s: float) -> Solution:
        prob, x, pc = self._pulp(relax=False)
        engine, used = pulp_solver(solver, time_limit_s)
        status = prob.solve(engine)
        if pulp.LpStatus[status] == "Infeasible" or any(v.varValue is None for v in x):
            self.explain_infeasible(pulp.LpStatus[status], solver, time_limit_s)
        if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
            # stopped by TIME_LIMIT before a whole plan: its values are not a plan
            self.explain_infeasible("no plan found within TIME_LIMIT", solver, time_limit_s)
        assign = np.full(self.n, -1)
        pick = np.array([v.varValue > 0.5 for v in x], bool)
        assign[pc.rows[pick]] = pc.cols[pick]
        if (assign < 0).any():
            msg = (
                f"The solver ({used}) returned status {pulp.LpStatus[status]} without a full plan."
            )
            raise SolverError(msg)
        objective = self.objective_of(assign)
        lp, _, _ = self._pulp(relax=True)
        lp_status = lp.solve(pulp_solver(solver, time_limit_s)[0])
        lower = float(pulp.value(lp.objective)) if pulp.LpStatus[lp_status] == "Optimal" else np.nan
        return Solution(assign, objective, min(lower, objective), f"{used} (PuLP, exact)")

    def _pulp(self, *, relax: bool, slack: bool = False, pairs: np.ndarray | None = None):
        """The PuLP model of the constraint rows: (problem, variables per pair, rows)."""
        pc = self.constraints(pairs)
        cat = "Continuous" if relax else "Binary"
        prob = pulp.LpProblem("territories", pulp.LpMinimize)
        x = [pulp.LpVariable(f"x_{i}_{j}", 0, 1, cat=cat) for i, j in zip(pc.rows, pc.cols)]
        t = pulp.LpVariable("t", 0) if slack else None

        def row(mat: sp.csr_matrix, r: int) -> pulp.LpAffineExpression:
            a, b = mat.indptr[r], mat.indptr[r + 1]
            return pulp.LpAffineExpression(
                [(x[c], float(v)) for c, v in zip(mat.indices[a:b], mat.data[a:b])]
            )

        prob += t if slack else pulp.LpAffineExpression(
            [(v, float(self.cost[i, j])) for v, i, j in zip(x, pc.rows, pc.cols)]
        )  # fmt: skip
        for i in range(self.n):
            prob += row(pc.assign, i) == 1
        target, lo, hi = self.bounds()
        tol = self.tolerance_pct
        m = self.values.shape[1]
        for j in range(self.k):
            for mm in range(m):
                expr = row(pc.balance, j * m + mm)
                if slack:  # t is TOLERANCE (as a fraction); lighter measures get their wider band
                    ratio = tol[mm] / tol.min() if tol.min() > 0 else 1.0
                    prob += expr <= target[j, mm] + t * ratio * target[j, mm]
                    prob += expr >= target[j, mm] - t * ratio * target[j, mm]
                else:
                    prob += expr <= hi[j, mm]
                    prob += expr >= lo[j, mm]
        if self.budget is not None:
            n_cur = int((self.current >= 0).sum())
            stay = pulp.LpAffineExpression([(x[p], 1.0) for p in np.flatnonzero(pc.stay > 0)])
            prob += n_cur - stay <= self.budget
        return prob, x, pc

    # ------------------------------------------------------------------------- infeasibility

    def explain_infeasible(
        self, status: str, solver: str, time_limit_s: float, *, finding: str = ""
    ) -> NoReturn:
        """Raise InfeasibleError naming what conflicts and the relaxations that work.

        ``finding``: what the search found it could not do (e.g. keep a territory in one piece
        within its band), said after the status.

        Every change proposed is checked by solving with it first (:meth:`relaxations`): the
        least TOLERANCE and MAX_MOVES (to 0.1 %, within their ranges) that give a plan, and
        unlocking, clearing REP_MAX_MINUTES or CONTIGUOUS when they were set and that alone
        gives a plan. When nothing in range works the message says so.
        """
        if self._probe:  # a check of a relaxation: no explanation needed, only the verdict
            raise InfeasibleError(status)
        parts = [f"No plan satisfies every hard constraint ({status})."]
        if finding:
            parts.append(f"{finding}.")
        n, budget, locks, current = self.n, self.budget, self.locks, self.current
        if budget is not None:
            forced = int(((locks >= 0) & (current >= 0) & (locks != current)).sum())
            if forced > budget:
                parts.append(
                    f"LOCK_FIELD moves {forced} {self.noun} away from their CURRENT_FIELD "
                    f"territory, but MAX_MOVES allows {budget} ({100 * budget / n:.1f}% of "
                    f"{self.noun})."
                )
        self._refuse_too_heavy(parts[0])
        end = self._checks_end(time_limit_s)
        need = None
        if self.cost.size <= EXPLAIN_PAIRS:
            need = self._min_tolerance(solver, _seconds_to(end, 10.0), relax=True)
            if need is not None and need > TOLERANCE_MAX_TENTHS / 10:
                parts.append(f"{self._given()}TOLERANCE would have to be at least {need:.1f}%, "
                             f"beyond its range (0 to {TOLERANCE_MAX_TENTHS / 10:g}%).")  # fmt: skip
        if budget is not None:
            low, _ = self._min_moves(_seconds_to(end, 10.0))
            if low is not None and low > budget:
                parts.append(
                    f"MAX_MOVES allows {budget} moves ({100 * budget / n:.1f}% of {self.noun}), "
                    f"but balancing within TOLERANCE needs at least {low} moves."
                )
        parts.append(self.relaxations(solver, time_limit_s, tolerance_from=need, end=end))
        raise InfeasibleError(" ".join(parts))

    def _checks_end(self, time_limit_s: float) -> float:
        """When the checks of a failure's relaxations must end (``time.perf_counter()``): the
        run's end (``ends_by``; at least ``CHECK_MIN_S`` from now), or without one ``time_limit_s``
        from now (at least 5 s, at most 60 s)."""
        now = time.perf_counter()
        if self.ends_by is None:
            return now + min(max(float(time_limit_s), 5.0), 60.0)
        return max(self.ends_by, now + CHECK_MIN_S)

    # ------------------------------------------------------------------ verified relaxations

    _probe = False  # set on the copies that check a relaxation (no explanation, no recursion)
    _free_found = False  # a plan without contiguity was found and verified (CONTIGUOUS off works)
    _probe_s = 6.0  # time of one check (s)

    def relaxations(self, solver: str, time_limit_s: float, *,
                    tolerance_from: float | None = None, end: float | None = None) -> str:  # fmt: skip
        """The changes that give a plan, each checked by solving with it (one sentence).

        TOLERANCE and MAX_MOVES: the least value on a 0.1 % grid within the parameter's range
        (stepping up from ``tolerance_from`` or the current value, then bisecting); LOCK_FIELD,
        REP_MAX_MINUTES and CONTIGUOUS: dropped, when they were set. The checks end by ``end``
        (default :meth:`_checks_end`: what is left of the run's TIME_LIMIT); CONTIGUOUS off needs
        no check once this model's plan without contiguity was found.
        """
        deadline = self._checks_end(time_limit_s) if end is None else end
        budget_s = max(deadline - time.perf_counter(), 0.0)
        # one check: a tenth of the budget (proofs can be slow), never more than TIME_LIMIT, so
        # that a run with the change and the same TIME_LIMIT finds the plan the check found
        self._probe_s = min(max(budget_s / 10, 1.0), float(time_limit_s))
        found, tried, timed_out, unchecked = [], [], False, []
        # the yes/no checks first: one solve each, so a long TOLERANCE search leaves them time
        single_checks = [(text, name, True if change == {"contiguous": False} and self._free_found
                          else self._works(deadline, solver, **change))
                         for text, change, name in self._single_relaxations()]  # fmt: skip
        cur = math.floor(10 * float(self.tolerance_pct.min()) + 1e-6)
        start = max(cur + 1, math.ceil(10 * tolerance_from - 1e-6) if tolerance_from else 0)
        # (name, grid lo, grid hi, change, value shown, grid step said or None, advice's end)
        searches = []
        if start <= TOLERANCE_MAX_TENTHS:
            searches.append(("TOLERANCE", start, TOLERANCE_MAX_TENTHS,
                             lambda x: {"tolerance_pct": self._tolerances_at(x / 10)},
                             _tenths, ", to 0.1%", lambda x: ""))  # fmt: skip
        if self.budget is not None:
            n = self.n
            low = math.ceil(1000 * (self.budget + 1) / n - 1e-9)
            if low <= 1000:
                searches.append(("MAX_MOVES", low, 1000,
                                 lambda x: {"budget": math.floor(x / 1000 * n + 1e-9)}, _tenths,
                                 None, lambda x: f" ({math.floor(x / 1000 * n + 1e-9)} {self.noun})"))  # fmt: skip
        start_minutes = self._least_minutes() if self._minutes_searchable() else None
        if start_minutes is not None:  # whole minutes (tenths below 10 min: see the loop)
            top = math.ceil(float(self.reach.max()) - 1e-9)
            searches.append(("REP_MAX_MINUTES",
                             max(math.floor(self.max_minutes) + 1, math.ceil(start_minutes - 1e-9)),
                             top, self._minutes_change(1), _minutes, ", to 1 min",
                             lambda x: " or clear it" if x >= top else ""))  # fmt: skip
        for name, lo, hi, change, shown, grid, end_of in searches:
            t, failed = self._least(lo, hi, deadline, solver, change)
            if name == "REP_MAX_MINUTES" and t is not None and t <= 10:  # to 0.1 min below 10
                tenths = self._minutes_to_tenths(t, failed, start_minutes, hi, deadline, solver)
                if tenths is not None:
                    t, failed, shown, grid, end_of = tenths
            none = None if failed is None else self._gave_none(shown(failed[0]), failed[1])
            if t is not None:
                tail = ""
                if grid is not None:
                    below = f"; {none}" if none else ""
                    tail = (f" (the least found to give a plan{below}, the values between were "
                            "not checked in time)" if failed and t - failed[0] > 1
                            else f" (the least found to give a plan{grid}{below})")  # fmt: skip
                found.append(f"set {name} to at least {shown(t)}{tail}{end_of(t)}")
            elif failed is None:
                timed_out = True
                unchecked.append(name)
            else:
                tried.append(f"{name} up to {shown(failed[0])}")
                if failed[0] < hi:
                    timed_out = True
                    unchecked.append(f"{name} above {shown(failed[0])} ({none})")
        for text, name, ok in single_checks:
            if ok:
                found.append(text)
            elif ok is None:
                timed_out = True
                unchecked.append(name)
            else:
                tried.append(name)
        beyond = ""
        if start > TOLERANCE_MAX_TENTHS:
            beyond = (f" No TOLERANCE in its range (0 to {TOLERANCE_MAX_TENTHS / 10:g}%) is "
                      f"enough: it would have to be at least {start / 10:.1f}%.")  # fmt: skip
            tried.append(f"TOLERANCE (needs {start / 10:.1f}%)")
        if found:
            late = (f" Not checked for lack of time: {', '.join(unchecked)}; a longer TIME_LIMIT "
                    "checks more." if unchecked else "")  # fmt: skip
            return ("Checked by solving, each of these alone gives a plan: "
                    + "; or ".join(found) + "." + late + beyond)  # fmt: skip
        text = "No single change within the parameters' ranges gives a plan"
        text += f" (tried: {', '.join(tried)})" if tried else ""
        text += (
            ". The checks ran out of time: raise TIME_LIMIT to let them go further."
            if timed_out else f": {self._what_else()}"
        )  # fmt: skip
        return text + beyond

    def _single_relaxations(self) -> list[tuple[str, dict, str]]:
        """(advice, change to the model, short name) of each constraint that may be dropped:
        the locks, REP_MAX_MINUTES (when its least value is not searched), the other pair rule
        (``pair_rule``) and CONTIGUOUS, when they are set."""
        singles = []
        if (self.locks >= 0).any():
            count = int((self.locks >= 0).sum())
            singles.append((f"unlock the {count} locked {self.noun} (LOCK_FIELD)",
                            {"locks": np.full(self.n, -1)}, "unlocking"))  # fmt: skip
        if self.reach is None and self.rule_allowed is None and not self.allowed.all():
            singles.append(("clear REP_MAX_MINUTES", {"allowed": np.ones_like(self.allowed)},
                            "clearing REP_MAX_MINUTES"))  # fmt: skip
        if self._rule_bars():
            keep = self.max_minutes if self.reach is not None else None
            singles.append((self.pair_rule.advice, {"allowed": self._allowed_with(minutes=keep,
                                                                              rule=False)},
                            self.pair_rule.advice))  # fmt: skip
        if self.contiguous and self.adjacency is not None:
            singles.append(("turn CONTIGUOUS off", {"contiguous": False}, "CONTIGUOUS off"))
        return singles

    def _minutes_searchable(self) -> bool:
        """REP_MAX_MINUTES bars some pairs and their minutes are known (its least working value
        can be searched)."""
        return (self.reach is not None and self.max_minutes is not None
                and bool((self.reach > self.max_minutes).any()))  # fmt: skip

    def pair_words(self) -> tuple[str, str]:
        """What bars pairs here and how to lift it, for messages: REP_MAX_MINUTES, the other
        pair rule (e.g. ``SKILL_RULE hard``) or both (REP_MAX_MINUTES when neither is known)."""
        from .contiguity import MINUTES_BAR

        minutes = self._minutes_searchable()  # (REP_MAX_MINUTES bars some pairs)
        rule = self.pair_rule
        if self._rule_bars() and minutes:
            return f"REP_MAX_MINUTES and {rule.name}", f"raise REP_MAX_MINUTES or {rule.advice}"
        if self._rule_bars():
            return rule.name, rule.advice
        return MINUTES_BAR

    def _rule_bars(self) -> bool:
        """The other pair rule (``pair_rule``, e.g. SKILL_RULE hard) bars some pairs."""
        return self.rule_allowed is not None and not self.rule_allowed.all()

    def _bars_minutes(self) -> bool:
        """Some pairs are barred by REP_MAX_MINUTES (or by ``allowed`` of unknown origin)."""
        if self.reach is not None or self.rule_allowed is not None:
            return self._minutes_searchable()
        return not self.allowed.all()

    def _allowed_with(self, *, minutes: float | None, rule: bool) -> np.ndarray:
        """The pairs allowed with REP_MAX_MINUTES at ``minutes`` (None: cleared) and with or
        without the other pair rule."""
        ok = np.ones(self.allowed.shape, bool)
        if minutes is not None and self.reach is not None:
            ok &= self.reach <= minutes
        if rule and self.rule_allowed is not None:
            ok &= self.rule_allowed
        return ok

    def _nearest_rep_minutes(self) -> np.ndarray:
        """(n,) minutes from each row to its nearest rep the other pair rule allows (inf when
        it allows none): the least REP_MAX_MINUTES that leaves the row a rep."""
        allowed = self._allowed_with(minutes=None, rule=True)
        return np.where(allowed, self.reach, np.inf).min(1)

    def _minutes_to_tenths(self, t: int, failed, start: float, top: int, deadline: float,
                           solver: str) -> tuple | None:  # fmt: skip
        """The least REP_MAX_MINUTES to 0.1 min between ``t - 1`` and ``t`` whole minutes (the
        least found, at most 10): (value, failed, shown, grid, end) in tenths, as the search
        loop of :meth:`relaxations` reads them; None when time runs out (the whole minute
        stands)."""
        lo = max(10 * (t - 1) + 1, math.floor(10 * self.max_minutes + 1e-9) + 1,
                 math.ceil(10 * start - 1e-9))  # fmt: skip
        t10, failed10 = self._least(lo, 10 * t, deadline, solver, self._minutes_change(10))
        if t10 is None:
            return None
        if failed10 is None and failed is not None and 10 * failed[0] == lo - 1:
            failed10 = (lo - 1, failed[1])  # the whole minute below, already checked
        return (t10, failed10, lambda x: f"{x / 10:g} min", ", to 0.1 min",
                lambda x: " or clear it" if x >= 10 * top else "")  # fmt: skip

    def _minutes_change(self, per: int):
        """The model change for REP_MAX_MINUTES ``x / per`` minutes (a search's grid value)."""
        return lambda x: {"allowed": self._allowed_with(minutes=x / per, rule=True),
                          "max_minutes": x / per}  # fmt: skip

    def _least_minutes(self) -> float | None:
        """Where the search of REP_MAX_MINUTES starts (minutes): no lower than the nearest
        allowed rep of the farthest row and a locked row's rep; None when a row has no rep the
        other pair rule allows (no REP_MAX_MINUTES can help)."""
        need = float(self._nearest_rep_minutes().max())
        if not np.isfinite(need):
            return None
        locked = np.flatnonzero(self.locks >= 0)
        if len(locked):
            need = max(need, float(self.reach[locked, self.locks[locked]].max()))
        return need

    def _given(self) -> str:
        """'With these locks, MAX_MOVES and REP_MAX_MINUTES, ' for the constraints that are set."""
        given = [name for name, on in (("locks", (self.locks >= 0).any()),
                                       ("MAX_MOVES", self.budget is not None),
                                       ("REP_MAX_MINUTES", self._bars_minutes()),
                                       (self.pair_rule.name, self._rule_bars()),
                                       ("CONTIGUOUS", self.contiguous)) if on]  # fmt: skip
        if not given:
            return ""
        names = given[0] if len(given) == 1 else f"{', '.join(given[:-1])} and {given[-1]}"
        return f"With these {names}, "

    def _what_else(self) -> str:
        """What may still help when no single relaxation does (several together, or the
        territories themselves)."""
        extra = []
        if (self.locks >= 0).any():
            extra.append(f"unlock some {self.noun}")
        if self._bars_minutes():
            extra.append("raise REP_MAX_MINUTES")
        if self._rule_bars():
            extra.append(self.pair_rule.advice)
        if self.budget is not None:
            extra.append("raise MAX_MOVES")
        if self.contiguous and self.adjacency is not None:
            extra.append("turn CONTIGUOUS off")
        if not extra:
            return "use fewer territories or more reps, or balance on other fields."
        return (f"relax several at once ({', '.join(extra)}, and raise TOLERANCE), or use "
                "fewer territories or more reps.")  # fmt: skip

    def _tolerance_to_hold(self, amount: float, target: float, m: int) -> float:
        """The TOLERANCE (%) whose band of measure ``m`` (as :meth:`_tolerances_at` widens it)
        reaches ``amount`` above ``target``: where a search for a working TOLERANCE starts."""
        tol = self.tolerance_pct
        return 100 * (amount / target - 1) * tol.min() / max(tol[m], 1e-9)

    def _tolerances_at(self, t: float) -> np.ndarray:
        """Per-measure tolerances for TOLERANCE ``t`` (%), as :func:`tolerances` widens them."""
        tol = self.tolerance_pct
        if tol.min() > 0 and not np.allclose(tol, tol.min()):
            return np.minimum(t * tol / tol.min(), 99.0)
        return np.full_like(tol, t)

    def _works(self, deadline: float, solver: str, **change: object) -> bool | None:
        """Whether the model with ``change`` gives a verified plan (None: no time left)."""
        return self._verdict(deadline, solver, **change)[0]

    def _verdict(self, deadline: float, solver: str, **change: object) -> tuple[bool | None, bool]:
        """(:meth:`_works`, whether a failure is proven: infeasible, not merely no plan found in
        the check's time)."""
        left = deadline - time.perf_counter()
        if left < 0.05:
            return None, False
        probe = replace(self, **change)
        probe._probe = True
        try:
            probe.precheck()
        except InfeasibleError:  # a conflict seen before solving: a proof
            return False, True
        try:
            sol = probe.solve(solver, time_limit_s=min(left, self._probe_s))
            probe.verify(sol.assign)
        except InfeasibleError as err:  # "infeasible" is the solver's proof; the rest is not
            return False, not isinstance(err, ContiguityError) and str(err).lower() == "infeasible"
        except SolverError:
            return False, False
        return True, False

    def _least(
        self, lo: int, hi: int, deadline: float, solver: str, change
    ) -> tuple[int | None, tuple[int, bool] | None]:
        """Least grid value in [lo, hi] whose ``change(value)`` gives a plan (feasibility grows
        with the value): step up from ``lo`` (a bound: nothing below works), then bisect.
        Returns (that value or None, (the largest value checked that failed, whether its failure
        is proven) or None)."""
        failed, proven, t = None, False, lo
        while True:
            ok, sure = self._verdict(deadline, solver, **change(t))
            if ok is None:
                return None, None if failed is None else (failed, proven)
            if ok:
                break
            failed, proven = t, sure
            if t >= hi:
                return None, (failed, proven)
            t = min(hi, max(t + 10, int(t * 1.5)))
        while failed is not None and t - failed > 1:
            mid = (t + failed) // 2
            ok, sure = self._verdict(deadline, solver, **change(mid))
            if ok is None:
                break
            if ok:
                t = mid
            else:
                failed, proven = mid, sure
        return t, None if failed is None else (failed, proven)

    def _gave_none(self, value: str, proven: bool) -> str:
        """'7.2% has none' (proven infeasible) or '7.2% gave none in a 3 s check'."""
        return (
            f"{value} has none" if proven else f"{value} gave none in a {self._probe_s:.0f} s check"
        )

    def _refuse_too_heavy(self, head: str) -> None:
        """Raise InfeasibleError after ``head`` when rows are too heavy for every territory's
        band: no relaxation of the other rules can help, so none is checked."""
        heavy = self._too_heavy()
        if heavy:
            raise InfeasibleError(" ".join([
                head, *heavy,
                "No relaxation of the other rules can change that: fewer territories give each a "
                f"larger share (lower TERRITORIES, or give fewer REPS), or split those {self.noun} "
                "or balance on another field.",
            ]))  # fmt: skip

    def _too_heavy(self) -> list[str]:
        """Rows too heavy for any territory's band at the largest TOLERANCE (named)."""
        target, _, _ = self.bounds()
        out = []
        for m, name in enumerate(self.measure_names):
            total = self.values[:, m].sum()
            if total <= 0:
                continue
            cap = target[:, m].max() * (1 + TOLERANCE_MAX_TENTHS / 1000)
            heavy = np.flatnonzero(self.values[:, m] > cap + 1e-9)
            if len(heavy):
                heavy = heavy[np.argsort(-self.values[heavy, m], kind="stable")]
                share = 100 * self.values[heavy, m].max() / total
                names = ", ".join(map(str, self.row_ids[heavy][:10]))
                most = (f"any of the {self.k} territories may hold even at TOLERANCE "
                        f"{TOLERANCE_MAX_TENTHS / 10:g}% (at most {100 * cap / total:.1f}%)")  # fmt: skip
                if len(heavy) == 1:
                    out.append(f"{self.noun[:-1].capitalize()} {names} alone holds "
                               f"{share:.1f}% of {name}, more than {most}.")  # fmt: skip
                else:
                    more = f" and {len(heavy) - 10} more" if len(heavy) > 10 else ""
                    out.append(f"{len(heavy)} {self.noun} ({names}{more}) each hold more of "
                               f"{name} than {most}; the largest holds {share:.1f}%.")  # fmt: skip
        return out

    def _heavier_than_bands(self) -> tuple[str, float] | None:
        """The row heaviest above every territory's band at this TOLERANCE (it fits in no
        territory, so there is no plan), named in a sentence, with the least TOLERANCE at which
        it fits one (where the search for a working TOLERANCE starts); None when every row
        fits some territory."""
        target, _, hi = self.bounds()
        tol = self.tolerance_pct
        worst = None
        for m, name in enumerate(self.measure_names):
            name = name if self.names else f"{self.noun[:-1]} count"
            j = int(np.argmax(hi[:, m]))
            over = self.values[:, m] - hi[j, m]
            i = int(np.argmax(over))
            if over[i] <= 1e-9 * (1.0 + abs(hi[j, m])) or target[j, m] <= 0:
                continue
            v, total = self.values[i, m], self.values[:, m].sum()
            need = self._tolerance_to_hold(v, target[j, m], m)
            if worst is None or need > worst[1]:
                worst = (
                    f"{self.noun[:-1].capitalize()} {self.row_ids[i]} alone holds {v:,.6g} of "
                    f"{name} ({100 * v / total:.1f}%), {100 * (v / target[j, m] - 1):.1f}% above "
                    f"the largest territory target ({target[j, m]:,.6g}): at TOLERANCE "
                    f"{tol[m]:g}% no territory may hold more than {hi[j, m]:,.6g}.",
                    need,
                )  # fmt: skip
        return worst

    def _min_tolerance(self, solver: str, time_limit_s: float, *, relax: bool) -> float | None:
        """Smallest TOLERANCE (%) of the relaxation (a bound) or of a whole-row plan found."""
        prob, _, _ = self._pulp(relax=relax, slack=True)
        prob.solve(pulp_solver(solver, time_limit_s)[0])
        if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
            return None
        t = 100 * float(pulp.value(prob.objective))
        return (math.floor if relax else math.ceil)(10 * t + (1e-6 if relax else -1e-6)) / 10

    def _min_moves(self, time_limit_s: float) -> tuple[int | None, int | None]:
        """Fewest moves that restore balance: (proven lower bound, moves in a plan found)."""
        cost = move_costs(self.current, self.k)
        _, lo, hi = self.bounds()
        try:
            res = solve_balanced(cost, self.values, lo, hi, locks=self.locks,
                                 current=self.current, budget=None, allowed=self.allowed,
                                 time_limit_s=time_limit_s)  # fmt: skip
        except NoPlanFoundError:
            return None, None
        return math.ceil(res.lower_bound - 1e-6), round(res.objective)


_SECONDS_PER_PAIR = 1e-5  # the first plan of the priced LP path, outputs included (2 cores)


def allowed_pairs(shape: tuple[int, int], *, allowed: np.ndarray | None = None,
                  reach: np.ndarray | None = None, max_minutes: float | None = None,
                  rule_allowed: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(n, k) pairs every restriction allows: ``allowed``, ``reach`` within ``max_minutes``
    (REP_MAX_MINUTES) and ``rule_allowed`` (e.g. SKILL_RULE hard); each may be None."""
    ok = np.ones(shape, bool) if allowed is None else np.asarray(allowed, bool).copy()
    if reach is not None and max_minutes is not None:
        ok &= np.asarray(reach, float) <= max_minutes
    if rule_allowed is not None:
        ok &= np.asarray(rule_allowed, bool)
    return ok


def _seconds_to(end: float, most: float) -> float:
    """Seconds from now to ``end`` (at least 0.1 s, at most ``most``): one step of the checks."""
    return min(max(end - time.perf_counter(), 0.1), most)


def _tenths(x: int) -> str:
    """A grid value in tenths of a percent, shown ('7.3%')."""
    return f"{x / 10:.1f}%"


def _minutes(x: int) -> str:
    """A grid value in whole minutes, shown ('163 min')."""
    return f"{x} min"


def _minutes_said(x: float) -> str:
    """Minutes in a message: whole from 10 on ('161 min'), else to 0.1 ('0.7 min')."""
    return f"{x:.0f} min" if x >= 10 else f"{x:.1f} min"


def likely_time_limit_s(n: int, k: int) -> int:
    """A TIME_LIMIT (seconds, a whole minute) likely enough for a first plan of n rows x k
    territories, from the benchmarks (about 300 s at 300,000 x 100)."""
    return int(60 * math.ceil(max(_SECONDS_PER_PAIR * n * k, 60.0) / 60.0 - 1e-9))


def pulp_solver(name: str, time_limit_s: float) -> tuple[pulp.LpSolver, str]:
    """The PuLP solver for SOLVER (CBC or HiGHS; CBC when HiGHS is missing, logged) and its name."""
    if str(name).upper() == "HIGHS":
        s = pulp.HiGHS(msg=False, timeLimit=time_limit_s)
        if s.available():
            return s, "HiGHS"
        logger.warning("SOLVER: HiGHS is not installed here; using CBC.")
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s), "CBC"


BESIDE_ANSWER_S = 1.0  # the cuts beside end this long before TIME_LIMIT, to answer in time
BESIDE_ORDERED_SHARE = 0.9  # with them, the re-draw rounds get this share of the time left


def move_costs(current: np.ndarray, k: int, weight: np.ndarray | None = None) -> np.ndarray:
    """(n, k) cost of putting each row in each territory: its weight (1 by default) anywhere but
    its current territory, 0 there and for rows without one."""
    w = np.ones(len(current)) if weight is None else np.asarray(weight, float)
    has = current >= 0
    cost = np.repeat(np.where(has, w, 0.0)[:, None], k, axis=1)
    cost[np.flatnonzero(has), current[has]] = 0.0
    return cost


# ----------------------------------------------------------------------------- input helpers


def run_parameters(scope: dict) -> dict:
    """The plain parameters of a planning call (for the manifest): no layers, network or callbacks."""
    skip = ("accounts", "reps", "network", "progress", "is_cancelled", "units", "study_area")
    return {k: v for k, v in scope.items() if k not in skip}


def prepare_accounts(accounts: gpd.GeoDataFrame, id_field: str) -> gpd.GeoDataFrame:
    """A copy of the account points in a projected CRS in metres (geographic -> local UTM)."""
    check_points(accounts, id_field, layer="ACCOUNTS", noun="accounts")
    acc = accounts.copy()
    if acc.crs is None or not acc.crs.is_projected:
        utm = acc.estimate_utm_crs() if acc.crs is not None else None
        if utm is None:
            msg = "ACCOUNTS: the layer has no CRS; set its CRS in QGIS (Layer Properties > Source)."
            raise InvalidInputError(msg)
        logger.info("Accounts reprojected to %s for distances in metres.", utm.name)
        acc = acc.to_crs(utm)
    return acc


def tolerances(tolerance_pct, weights, fields) -> np.ndarray:
    """Per-measure tolerance: TOLERANCE for the heaviest weight, wider bands for lighter ones."""
    if tolerance_pct is None or not (0 <= tolerance_pct < 100):
        msg = f"TOLERANCE: {tolerance_pct} must be a percentage from 0 to 100, e.g. 5."
        raise InvalidInputError(msg)
    m = max(len(fields), 1)
    if weights is None or len(weights) == 0:
        return np.full(m, float(tolerance_pct))
    w = np.asarray(weights, float)
    if len(w) != len(fields) or not np.isfinite(w).all() or (w <= 0).any():
        msg = (f"BALANCE_WEIGHTS: give one positive weight per balance field, in the same order "
               f"(got {list(weights)} for {list(fields)}).")  # fmt: skip
        raise InvalidInputError(msg)
    tol = np.minimum(tolerance_pct * w.max() / w, 99.0)
    for f, t in zip(fields, tol):
        logger.info("Tolerance for %s: ±%.2f%%.", f, t)
    return tol


def travel_mu(travel_weight, balance_weights, fields) -> float:
    """Weight of the travel-balance penalty: TRAVEL_WEIGHT's share of all the weights.

    The balance fields weigh their BALANCE_WEIGHTS (1 each when none are given), as in the
    summary's ``balance_score``: revenue 40 / workload 30 / travel 30 gives 0.3.
    """
    tw = 0.0 if travel_weight is None else float(travel_weight)
    if not np.isfinite(tw) or tw < 0:
        msg = f"TRAVEL_WEIGHT: {travel_weight} must be 0 (off) or a positive weight, e.g. 30."
        raise InvalidInputError(msg)
    if tw == 0:
        return 0.0
    w = list(balance_weights) if balance_weights else [1.0] * max(len(fields), 1)
    mu = tw / (sum(w) + tw)
    logger.info(
        "TRAVEL_WEIGHT %g: the plan also evens out travel per territory; each minute (km) of "
        "travel above or below a territory's share of the total costs %.2f extra.", tw, mu,
    )  # fmt: skip
    return mu


def prepare_reps(reps, id_field, capacity_field, crs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rep ids, home coordinates in ``crs`` and capacities (1 each without a capacity field)."""
    if id_field is None or id_field not in reps.columns:
        msg = f"REP_ID_FIELD: '{id_field}' is not a field of REPS."
        raise InvalidInputError(msg)
    if len(reps) == 0:
        msg = "REPS: the layer is empty; add rep homes or leave REPS empty and set TERRITORIES."
        raise InvalidInputError(msg)
    check_points(reps, id_field, layer="REPS", noun="reps", id_key="REP_ID_FIELD")
    rid = reps[id_field].astype(str)
    if rid.duplicated().any():
        msg = f"REPS: duplicate rep ids {sorted(set(rid[rid.duplicated()]))}; make them unique."
        raise InvalidInputError(msg)
    cap = np.ones(len(reps))
    if capacity_field:
        cap = pd.to_numeric(reps[capacity_field], errors="coerce").to_numpy(float)
        if np.isnan(cap).any() or (cap <= 0).any():
            msg = f"REP_CAPACITY_FIELD: '{capacity_field}' must be a positive number for every rep."
            raise InvalidInputError(msg)
    pts = reps.to_crs(crs).geometry
    return rid.to_numpy(), shapely.get_coordinates(pts.values), cap


def territory_codes(frame, fld, cen_ids, key, ids, *, strict=True, layer="ACCOUNTS",
                    noun="accounts") -> np.ndarray:  # fmt: skip
    """Territory index per record from a text field (-1 = empty); unknown values are an error
    (``strict``) or count as empty (logged)."""
    out = np.full(len(frame), -1)
    if not fld:
        return out
    if fld not in frame.columns:
        msg = f"{key}: '{fld}' is not a field of {layer}."
        raise InvalidInputError(msg)
    lookup = {c: j for j, c in enumerate(cen_ids)}
    unknown = []
    for i, v in enumerate(frame[fld].to_numpy()):
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            continue
        j = lookup.get(str(v).strip())
        if j is None:
            unknown.append((ids[i], v))
        else:
            out[i] = j
    if unknown and strict:
        msg = (
            f"{key}: values name no territory or rep: "
            f"{', '.join(f'{a}={v}' for a, v in unknown[:10])}. Known ids: {', '.join(cen_ids)}."
        )
        raise InvalidInputError(msg)
    if unknown:
        names = sorted({str(v).strip() for _, v in unknown})
        logger.warning("%s%s: %d %s name a territory that is not planned (%s%s; planned: %s); "
                       "they count as new.", "UNIT_" if layer == "UNITS" else "", key,
                       len(unknown), noun, ", ".join(names[:10]),
                       f" and {len(names) - 10} more" if len(names) > 10 else "",
                       ", ".join(map(str, cen_ids[:10])))  # fmt: skip
    return out


def reach_minutes(cost_km: np.ndarray, cost_min: np.ndarray | None,
                  max_minutes: float | None, *, log: bool = True) -> np.ndarray | None:  # fmt: skip
    """(n, k) minutes each pair needs under REP_MAX_MINUTES (None when it is unset): drive
    minutes, or without a NETWORK the straight-line distance at ``STRAIGHT_LINE_KMH``."""
    if max_minutes is None:
        return None
    if cost_min is not None:
        return np.asarray(cost_min, float)
    if log:
        logger.info(
            "REP_MAX_MINUTES without a NETWORK: straight-line distance at %g km/h, i.e. at most "
            "%.1f km from a rep home; give a NETWORK for drive times on roads.",
            STRAIGHT_LINE_KMH, max_minutes * STRAIGHT_LINE_KMH / 60.0,
        )  # fmt: skip
    return np.asarray(cost_km, float) * 60.0 / STRAIGHT_LINE_KMH


def snap_points_once(xy: np.ndarray, net: object | None, crs: object) -> object | None:
    """Where each point (x, y in ``crs``) meets its road, for :func:`point_costs`; None without a
    network. Points do not move during a run, so this is done once per run."""
    if net is None:
        return None
    from .network import snap_points

    if gpd.GeoSeries([], crs=crs).crs != gpd.GeoSeries([], crs=net.crs).crs:
        msg = "NETWORK: accounts must be in the network's CRS (the QGIS wrapper reprojects them)."
        raise InvalidInputError(msg)
    return snap_points(net, gpd.GeoSeries(shapely.points(xy)), max_snap_m=np.inf)


def point_costs(xy, cen_xy, net, snapped) -> tuple[np.ndarray, np.ndarray | None]:
    """Straight-line km and, with a network, drive minutes from each point to each centre.

    Pairs the roads do not connect are costed by straight line at ``STRAIGHT_LINE_KMH`` (logged).
    """
    km = np.sqrt(((xy[:, None, :] - cen_xy[None, :, :]) ** 2).sum(-1)) / 1000.0
    if net is None:
        return km, None
    from .matrix import cost_matrix_minutes
    from .network import snap_points

    c_snap = snap_points(net, gpd.GeoSeries(shapely.points(cen_xy)), max_snap_m=np.inf)
    minutes = cost_matrix_minutes(net, c_snap, snapped).T  # from/to where they meet their roads
    bad = ~np.isfinite(minutes)
    if bad.any():
        logger.warning(
            "%d point-centre pairs are not connected by roads; they are costed by straight "
            "line at %g km/h.", int(bad.sum()), STRAIGHT_LINE_KMH,
        )  # fmt: skip
        minutes = np.where(bad, km / STRAIGHT_LINE_KMH * 60.0, minutes)
    return km, minutes
