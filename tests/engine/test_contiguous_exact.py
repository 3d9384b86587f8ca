"""County-sized contiguous models: TerritoryModel.solve's exact path against brute force."""

from __future__ import annotations

import itertools
import logging
import time
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_planner_plugin.adjacency import count_pieces
from territory_planner_plugin.contiguous_problem import ContiguousProblem
from territory_planner_plugin.errors import InfeasibleError, SolverError
from territory_planner_plugin.exact_contiguity import contiguous_cuts
from territory_planner_plugin.model import CONTIGUOUS_EXACT_PAIRS, TerritoryModel
from tests.engine.test_contiguity import brute_force, problem


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"),
                         [(3, 3, 3, 30, 0), (3, 4, 2, 10, 1), (2, 4, 3, 25, 2), (2, 5, 2, 5, 3),
                          (3, 3, 2, 15, 4)])  # fmt: skip
def test_small_contiguous_models_are_solved_exactly(rows, cols, k, tol, seed, caplog) -> None:
    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    ref = brute_force(cost, values, lo, hi, adj)  # no roots: the problem as posed
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(k),
                                            tolerance_pct=tol, adjacency=adj)  # fmt: skip
    assert model.exact_contiguity_fits()
    if not np.isfinite(ref):
        with pytest.raises(InfeasibleError):
            model.solve("CBC", time_limit_s=10)
        return
    with caplog.at_level(logging.INFO):
        sol = model.solve("CBC", time_limit_s=10)
    model.verify(sol.assign)
    assert sol.lower_bound <= ref + 1e-9  # a true bound of the problem as posed
    assert sol.objective == pytest.approx(ref, rel=1e-9)
    assert "CONTIGUOUS" in caplog.text  # the path taken is logged


def test_the_threshold_keeps_large_models_on_the_local_search() -> None:
    _, adj, cost, values, _, _, _ = problem(10, 10, 21, 20, 0)
    assert cost.size > CONTIGUOUS_EXACT_PAIRS
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(21),
                                            tolerance_pct=20, adjacency=adj)  # fmt: skip
    assert not model.exact_contiguity_fits()


def test_exact_path_beats_or_matches_the_local_search_and_keeps_the_rules() -> None:
    """A 6 x 6 grid, 4 territories, two measures: locks and a budget of moves hold, and the plan
    is no worse than the local search's own plan (its warm start and fallback)."""
    _, adj, cost, values, _, _, _ = problem(6, 6, 4, 15, 5, measures=2)
    n, k = cost.shape
    current = np.argmin(cost, axis=1)
    locks = np.full(n, -1)
    locks[[0, 35]] = [current[0], current[35]]
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(k),
                                            tolerance_pct=15, adjacency=adj, locks=locks,
                                            current=current, budget=12)  # fmt: skip
    sol = model.solve("HiGHS", time_limit_s=20)
    model.verify(sol.assign)
    assert (count_pieces(sol.assign, adj, k) == 1).all()
    assert ((current >= 0) & (sol.assign != current)).sum() <= 12
    assert sol.lower_bound <= sol.objective + 1e-9
    from dataclasses import replace

    from territory_planner_plugin.contiguity import make_contiguous

    _, lo_, hi_ = model.bounds()
    heuristic = make_contiguous(current, adjacency=adj, cost=cost, values=values, lo=lo_, hi=hi_,
                                locks=locks, allowed=np.ones((n, k), bool), current=current,
                                budget=12)  # fmt: skip
    assert sol.objective <= replace(model).objective_of(heuristic) + 1e-9


def test_the_flow_model_starts_from_a_given_plan() -> None:
    """A plan in one piece per territory is a solution of the flow model (the flows of a BFS
    tree); a plan in pieces is not, and the solver never returns worse than its start."""
    from territory_planner_plugin.contiguity import make_contiguous
    from territory_planner_plugin.contiguous_problem import _flow_start, contiguous_exact

    _, adj, cost, values, lo, hi, roots = problem(5, 5, 3, 15, 6)
    n, k = cost.shape
    locks, allowed = np.full(n, -1), np.ones((n, k), bool)
    start = make_contiguous(np.argmin(cost, axis=1), adjacency=adj, cost=cost, values=values,
                            lo=lo, hi=hi, locks=locks, allowed=allowed)  # fmt: skip
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(k),
                                            tolerance_pct=15, adjacency=adj)  # fmt: skip
    roots = model._roots(start)
    assert (start[roots] == np.arange(k)).all()
    res = contiguous_exact(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj, locks=locks, allowed=allowed),
        roots=roots,
        start=start,
        time_limit_s=10,
    )
    assert res is not None
    assert res.objective <= model.objective_of(start) + 1e-9
    pid = np.arange(n * k).reshape(n, k)
    split = start.copy()
    split[[0, 24]] = split[12] if split[0] != split[12] else (split[12] + 1) % k
    coo = adj.tocoo()
    u, w = np.repeat(coo.row, k), np.repeat(coo.col, k)
    j = np.tile(np.arange(k), len(coo.row))
    keep = (u != w) & (w != roots[j])
    u, w, j = u[keep], w[keep], j[keep]
    x0 = _flow_start(start, pid, roots, u, w, j, n * k + len(u), n * k, adj)
    assert x0 is not None
    assert x0[: n * k].sum() == n  # every unit once
    if (count_pieces(split, adj, k) > 1).any():
        assert _flow_start(split, pid, roots, u, w, j, n * k + len(u), n * k, adj) is None


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"),
                         [(3, 3, 3, 30, 0), (3, 4, 2, 10, 1), (2, 4, 3, 25, 2), (2, 5, 2, 5, 3),
                          (3, 3, 2, 15, 4), (3, 3, 3, 20, 5), (2, 5, 3, 30, 6)])  # fmt: skip
def test_separator_cuts_bound_and_plan_match_brute_force(rows, cols, k, tol, seed) -> None:
    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    ref = brute_force(cost, values, lo, hi, adj)  # no roots: the problem as posed
    res = contiguous_cuts(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
        time_limit_s=20,
    )
    assert res is not None
    if not np.isfinite(ref):
        assert res.assign is None
        return
    assert res.bound <= ref + 1e-6 * max(abs(ref), 1.0)  # a true bound of the problem as posed
    if res.optimal:
        assert res.objective == pytest.approx(ref, rel=1e-6)
        assert (count_pieces(res.assign, adj, k) == 1).all()


def test_separator_cuts_close_a_case_the_plain_bound_cannot() -> None:
    """A grid whose cheapest balanced plan is in pieces: the cuts lift the bound to the optimum."""
    for seed in range(60):
        _, adj, cost, values, lo, hi, _ = problem(2, 4, 3, 20, seed)
        ref = brute_force(cost, values, lo, hi, adj)
        free = _cheapest_in_pieces(cost, values, lo, hi)
        if np.isfinite(ref) and free < ref - 1e-6:
            break
    else:  # pragma: no cover
        pytest.skip("no instance where contiguity costs something")
    res = contiguous_cuts(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
        time_limit_s=20,
    )
    assert res.optimal
    assert res.bound == pytest.approx(ref, rel=1e-6)
    assert res.bound > free + 1e-9


def _cheapest_in_pieces(cost, values, lo, hi) -> float:
    """The cheapest plan within the bounds, pieces allowed (every assignment of a tiny grid)."""
    n, k = cost.shape
    combos = np.array(list(itertools.product(range(k), repeat=n)))
    onehot = (combos[:, :, None] == np.arange(k)).astype(float)
    tot = np.einsum("cnk,nm->ckm", onehot, values.reshape(n, -1))
    ok = ((tot >= lo[None] - 1e-9) & (tot <= hi[None] + 1e-9)).all((1, 2))
    objs = cost[np.arange(n)[None, :], combos].sum(1)
    return float(objs[ok].min()) if ok.any() else np.inf


# ----------------------------------------------------------------------------- neighbourhoods


def _start_plan(cost, values, lo, hi, adj, *, locks=None, current=None, budget=None):
    """A plan in one piece per territory from the local search (the neighbourhoods' input)."""
    from territory_planner_plugin.contiguity import make_contiguous

    n, k = cost.shape
    locks = np.full(n, -1) if locks is None else locks
    first = np.argmin(cost, axis=1) if current is None else current
    return make_contiguous(first, adjacency=adj, cost=cost, values=values, lo=lo, hi=hi,
                           locks=locks, allowed=np.ones((n, k), bool), current=current,
                           budget=budget)  # fmt: skip


# cases whose local-search plan misses the optimum
@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"),
                         [(3, 3, 3, 30, 0), (3, 3, 3, 30, 2), (3, 3, 3, 40, 3)])  # fmt: skip
def test_a_neighbourhood_of_every_territory_is_the_whole_problem(rows, cols, k, tol, seed) -> None:
    """With neighbourhoods as large as the plan, one re-solve is the exact model: the brute-force
    optimum (a wrong mapping of rows, columns, bands or adjacency to the sub-model would miss it)."""
    from territory_planner_plugin.exact_contiguity import improve_by_neighbourhoods

    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    ref = brute_force(cost, values, lo, hi, adj)
    try:
        start = _start_plan(cost, values, lo, hi, adj)
    except InfeasibleError:
        return  # the local search found no plan in one piece: nothing to improve
    n = rows * cols
    told: list = []
    out = improve_by_neighbourhoods(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
        start=start,
        deadline=time.perf_counter() + 20,
        sizes=(k,),
        on_better=told.append,
    )
    assert float(cost[np.arange(n), out].sum()) == pytest.approx(ref, rel=1e-9)
    assert (count_pieces(out, adj, k) == 1).all()
    # every better plan was told as found (e.g. to the cut loop beside), the last one returned
    objs = [float(cost[np.arange(n), a].sum()) for a in [start, *told]]
    assert all(b < a + 1e-12 for a, b in zip(objs, objs[1:]))
    if objs[-1] < objs[0] - 1e-9:
        assert (told[-1] == out).all()
    assert all((count_pieces(a, adj, k) == 1).all() for a in told)


def test_the_neighbourhoods_stop_when_told() -> None:
    """``stop()`` (the worker beside proved a plan optimal) ends the neighbourhoods before any
    re-solve, on a grid where they would improve the plan (its local-search plan misses the
    optimum)."""
    from territory_planner_plugin.exact_contiguity import improve_by_neighbourhoods

    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 30, 0)
    start = _start_plan(cost, values, lo, hi, adj)
    args = {"adjacency": adj, "locks": np.full(9, -1), "allowed": np.ones((9, 3), bool)}
    free = improve_by_neighbourhoods(
        ContiguousProblem.of(cost, values, lo, hi, **args),
        start=start,
        sizes=(3,),
        deadline=time.perf_counter() + 20,
    )
    obj = lambda a: float(cost[np.arange(9), a].sum())  # noqa: E731
    assert obj(free) < obj(start) - 1e-9  # without stop it improves
    asked: list = []
    stopped = improve_by_neighbourhoods(
        ContiguousProblem.of(cost, values, lo, hi, **args),
        start=start,
        sizes=(3,),
        deadline=time.perf_counter() + 20,
        stop=lambda: asked.append(1) or True,
    )
    assert (stopped == start).all()
    assert asked


def _ruled_grid(seed: int, budget: int, n_locks: int) -> tuple:
    """A 5 x 5 grid into 4 territories within 25 % with a scattered current plan (many moves
    needed), ``n_locks`` locks on it and a budget of ``budget + 10`` moves, and its model."""
    _, adj, cost, values, _, _, _ = problem(5, 5, 4, 25, seed % 7)
    n, k = cost.shape
    rng = np.random.default_rng(seed)
    current = rng.integers(0, k, n)
    locks = np.full(n, -1)
    pick = rng.choice(n, n_locks, replace=False)
    locks[pick] = current[pick]
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(k),
                                            tolerance_pct=25, adjacency=adj, locks=locks,
                                            current=current, budget=budget + 10)  # fmt: skip
    return adj, cost, values, current, locks, model


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), budget=st.integers(0, 8), n_locks=st.integers(0, 3))
def test_neighbourhoods_keep_every_hard_rule(seed: int, budget: int, n_locks: int) -> None:
    """Pairs and triples of territories re-solved on a 5 x 5 grid with locks, a current plan and
    a moves budget: the plan stays valid (bands, locks, one piece each, the budget counted over
    the whole plan, moves outside the neighbourhood included) and never gets worse."""
    from territory_planner_plugin.exact_contiguity import improve_by_neighbourhoods

    adj, cost, values, current, locks, model = _ruled_grid(seed, budget, n_locks)
    n, k = cost.shape
    _, lo, hi = model.bounds()
    try:
        start = _start_plan(cost, values, lo, hi, adj, locks=locks, current=current,
                            budget=budget + 10)  # fmt: skip
        model.verify(start)
    except (InfeasibleError, SolverError):
        return  # no valid start from the local search: nothing to improve
    out = improve_by_neighbourhoods(
        ContiguousProblem.of(
            cost,
            values,
            lo,
            hi,
            adjacency=adj,
            locks=locks,
            allowed=np.ones((n, k), bool),
            current=current,
            budget=budget + 10,
        ),
        start=start,
        deadline=time.perf_counter() + 20,
        sizes=(2, 3),
    )
    model.verify(out)
    assert model.objective_of(out) <= model.objective_of(start) + 1e-9


def test_relabelling_gives_each_centre_its_own_piece_unless_a_rule_forbids_it() -> None:
    """Pieces handed to the wrong centres (a plan whose labels were shuffled) go back to the
    cheapest labelling; a lock, a band or the moves budget that the relabelling would break
    keeps the plan as it is."""
    from territory_planner_plugin.exact_contiguity import _relabel

    _, adj, cost, values, lo, hi, _ = problem(4, 6, 3, 30, 1)
    n, k = cost.shape
    good = _start_plan(cost, values, lo, hi, adj)
    shuffled = np.array([1, 2, 0])[good]

    def relabel(plan, *, top=hi, **rules):
        return _relabel(plan, ContiguousProblem.of(cost, values, lo, top, adjacency=adj, **rules))

    back = relabel(shuffled)
    assert back is not None
    assert cost[np.arange(n), back].sum() <= cost[np.arange(n), good].sum() + 1e-9
    assert relabel(back) is None  # nothing cheaper
    locked = np.ones((n, k), bool)
    locked[0] = False
    locked[0, shuffled[0]] = True  # unit 0 locked where it is: its piece cannot move
    kept = relabel(shuffled, allowed=locked)
    assert kept is None or kept[0] == shuffled[0]
    assert relabel(shuffled, current=shuffled, budget=0) is None  # no moves left
    tight_hi = hi.copy()
    tight_hi[good[0]] = 0.0  # the centre of unit 0's own piece can hold nothing
    assert relabel(shuffled, top=tight_hi) is None


# ----------------------------------------------------------------------------- ordered model


def _ordered_brute_force(cost, values, lo, hi, adj) -> float:
    """Every assignment of a tiny grid in the ordered form (each territory non-empty; each of
    its units but its cheapest has a neighbour in it that is cheaper for it), within the bands:
    the cheapest. Written from the definition, apart from the model."""
    n, k = cost.shape
    rank = np.argsort(np.argsort(cost + 1e-12 * np.arange(n)[:, None], axis=0, kind="stable"),
                      axis=0, kind="stable")  # fmt: skip
    nbrs = [set(np.flatnonzero(np.asarray(adj.todense())[i])) for i in range(n)]
    best = np.inf
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        tot = np.array([values[a == t].sum(0) for t in range(k)]).reshape(lo.shape)
        if (tot < lo - 1e-9).any() or (tot > hi + 1e-9).any():
            continue
        ok = True
        for t in range(k):
            members = np.flatnonzero(a == t)
            if not len(members):
                ok = False
                break
            root = members[np.argmin(rank[members, t])]
            if any(i != root and not any(a[j] == t and rank[j, t] < rank[i, t] for j in nbrs[i])
                   for i in members):  # fmt: skip
                ok = False
                break
        if ok:
            best = min(best, float(cost[np.arange(n), a].sum()))
    return best


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"),
                         [(3, 3, 3, 30, 0), (3, 3, 2, 15, 4), (2, 4, 3, 25, 2), (3, 3, 3, 40, 3)])  # fmt: skip
def test_ordered_model_matches_its_brute_force_and_is_in_one_piece(rows, cols, k, tol, seed):
    """The ordered restriction's optimum (from the definition, by brute force) is what the MILP
    returns; it is never below the problem's own optimum; every territory is one piece."""
    from territory_planner_plugin.exact_contiguity import ordered_plan

    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    n = rows * cols
    ref = _ordered_brute_force(cost, values, lo, hi, adj)
    out = ordered_plan(
        ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
        time_limit_s=10,
    )
    if not np.isfinite(ref):
        assert out is None
        return
    assert out is not None
    assert float(cost[np.arange(n), out].sum()) == pytest.approx(ref, rel=1e-9)
    assert ref >= brute_force(cost, values, lo, hi, adj) - 1e-9
    assert (count_pieces(out, adj, k) == 1).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), budget=st.integers(0, 8), n_locks=st.integers(0, 3))
def test_ordered_model_keeps_every_hard_rule_and_its_start(seed: int, budget: int,
                                                           n_locks: int) -> None:  # fmt: skip
    """On a 5 x 5 grid with locks, a current plan and a moves budget, the ordered model's plan
    keeps every rule; started from a plan of the ordered form it is no worse than that plan."""
    from territory_planner_plugin.exact_contiguity import _ordered_start, ordered_plan

    adj, cost, values, current, locks, model = _ruled_grid(seed, budget, n_locks)
    n, k = cost.shape
    _, lo, hi = model.bounds()
    args = {"adjacency": adj, "locks": locks, "allowed": np.ones((n, k), bool),
            "current": current, "budget": budget + 10}  # fmt: skip
    out = ordered_plan(ContiguousProblem.of(cost, values, lo, hi, **args), time_limit_s=10)
    if out is None:
        return  # no plan of the ordered form within the rules
    model.verify(out)
    again = ordered_plan(
        ContiguousProblem.of(cost, values, lo, hi, **args), start=out, time_limit_s=0.2
    )
    assert again is not None
    model.verify(again)
    assert model.objective_of(again) <= model.objective_of(out) + 1e-9
    pid = np.arange(n * k).reshape(n, k)
    rank = np.argsort(np.argsort(cost, axis=0, kind="stable"), axis=0, kind="stable")
    assert _ordered_start(out, rank, pid, adj.tocsr(), k) is not None


def test_the_ordered_model_hands_stop_to_its_milp_which_asks_it_every_half_second(
    monkeypatch,
) -> None:
    """``ordered_plan(stop=)`` reaches its MILP (the re-draw ends when the worker beside proved
    a plan optimal), and the MILP's interrupt callback (``_stop_at``) asks ``stop()`` at most
    every half second, interrupts when it says so, and at the deadline whatever it says."""
    from territory_planner_plugin import contiguous_problem, exact_contiguity

    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 30, 0)
    seen = []
    real_milp = exact_contiguity.highs_milp

    def milp(*args):
        seen.append(args[-1])
        return real_milp(*args)

    monkeypatch.setattr(exact_contiguity, "highs_milp", milp)

    def told() -> bool:
        return False

    out = exact_contiguity.ordered_plan(ContiguousProblem.of(cost, values, lo, hi, adjacency=adj),
                                  stop=told, time_limit_s=10)  # fmt: skip
    assert seen == [told]
    assert out is not None

    class Hook:  # stands in for highspy's callback list
        def __iadd__(self, callback):
            self.callback = callback
            return self

    class Event:
        def __init__(self) -> None:
            self.calls: list = []

        def interrupt(self, flag: bool = True) -> None:
            self.calls.append(flag)

    clock, asked, answer = [100.0], [], [False]
    monkeypatch.setattr(contiguous_problem.time, "perf_counter", lambda: clock[0])
    h = SimpleNamespace(cbMipInterrupt=Hook())  # stands in for highspy.Highs
    contiguous_problem._stop_at(h, 110.0, lambda: asked.append(clock[0]) or answer[0])

    def poll(at: float) -> list:
        clock[0] = at
        event = Event()
        h.cbMipInterrupt.callback(event)
        return event.calls

    assert poll(100.2) == [False]  # within half a second of the start: not asked
    assert asked == []
    assert poll(100.6) == [False]  # asked, says go on
    assert poll(100.9) == [False]  # asked 0.3 s ago: not again
    assert asked == [100.6]
    answer[0] = True
    assert poll(101.2) == [False, True]  # asked, says stop: interrupted
    assert asked == [100.6, 101.2]
    answer[0] = False
    assert poll(110.5) == [False, True]  # past the deadline: interrupted without asking
    assert asked == [100.6, 101.2]


def test_a_plan_far_from_the_bound_is_redrawn_all_at_once(monkeypatch, caplog) -> None:
    """When the plan after the neighbourhoods is far above the bound, the ordered model re-draws
    every territory and the neighbourhoods go on from it: the plan keeps every rule and is no
    worse (the step is logged)."""
    from territory_planner_plugin import model as model_module

    _, adj, cost, values, _, _, _ = problem(6, 6, 4, 15, 5, measures=2)
    k = cost.shape[1]
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(k),
                                            tolerance_pct=15, adjacency=adj)  # fmt: skip
    plain = model.solve("HiGHS", time_limit_s=10)
    monkeypatch.setattr(model_module, "ORDERED_FROM_GAP", 0.0)  # every plan counts as far
    with caplog.at_level(logging.INFO):
        sol = model.solve("HiGHS", time_limit_s=10)
    assert "re-drawn at once (ordered model)" in caplog.text
    model.verify(sol.assign)
    assert sol.objective <= plain.objective + 1e-9


def test_repairs_that_fail_at_tolerance_start_again_from_a_tighter_plan(monkeypatch, caplog):
    """When the plan without contiguity cannot be repaired into one piece each within the bands,
    the repairs start again from the integer plan at 80 % (then 50 %) of TOLERANCE: the plan
    they make keeps this model's bands and is in one piece (Georgia's counties into 8 had no plan
    at 10 % without it). The first repair is made to fail here."""
    from territory_planner_plugin import model as model_module

    _, adj, cost, values, _, _, _ = problem(5, 5, 3, 20, 7, measures=2)
    model = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(3),
                                            tolerance_pct=20, adjacency=adj)  # fmt: skip
    make = model_module.TerritoryModel._make_contiguous
    seen = []

    def first_fails(self, sol, *args, **kwargs):
        seen.append(sol.assign.copy())
        if len(seen) == 1:
            raise InfeasibleError("T01 cannot reach 80.0% of its share in one piece")
        return make(self, sol, *args, **kwargs)

    monkeypatch.setattr(model_module.TerritoryModel, "_make_contiguous", first_fails)
    with caplog.at_level(logging.INFO):
        sol = model.solve("HiGHS", time_limit_s=10)
    assert "one piece each from the plan at 80 % of TOLERANCE" in caplog.text
    model.verify(sol.assign)  # this model's bands (20 %), one piece each
    tighter = TerritoryModel.from_cost_matrix(cost, values=values, capacity=np.ones(3),
                                              tolerance_pct=16, adjacency=None)  # fmt: skip
    tighter.verify(seen[1])  # the second repair started from a plan within 80 % of TOLERANCE


def test_a_strict_deadline_gives_the_exact_fallback_no_extra_time(monkeypatch) -> None:
    """The cut loop's optional repair (strict_deadline) never runs the exact fallback past its
    deadline; other repairs give it at least 5 s to find a plan."""
    from territory_planner_plugin import contiguity

    _, adj, cost, values, lo, hi, _ = problem(3, 3, 2, 20, 1)
    asked = []
    monkeypatch.setattr(contiguity, "contiguous_milp",
                        lambda *a, **kw: asked.append(kw["time_limit_s"]))  # fmt: skip
    n, k = cost.shape
    args = (adj, cost, values, lo, hi, np.full(n, -1), np.ones((n, k), bool), None, None,
            time.perf_counter() - 1.0, None, None, None, None)  # fmt: skip
    search = contiguity._Search(np.arange(n) % k, *args)
    search.strict = True
    assert search.exact_fallback() is None
    assert asked == []
    search.strict = False
    search.exact_fallback()
    assert asked == [5.0]


def _feasible_plans(cost, values, lo, hi, adj) -> list:
    """Every plan of a tiny grid within the bands, each territory in one piece."""
    n, k = cost.shape
    out = []
    for combo in itertools.product(range(k), repeat=n):
        a = np.array(combo)
        tot = np.zeros((k, values.shape[1]))
        np.add.at(tot, a, values)
        fits = (tot >= lo - 1e-9).all() and (tot <= hi + 1e-9).all()
        if fits and (count_pieces(a, adj, k) == 1).all():
            out.append(a)
    return out


def _holds(cut, plan, pid) -> bool:
    _, cols, coef = cut
    x = np.zeros(pid.max() + 1)
    x[pid[np.arange(len(plan)), plan]] = 1.0
    return float(coef @ x[cols]) <= 1e-9


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed", "measures"),
                         [(3, 3, 3, 20, 0, 1), (2, 4, 2, 10, 1, 2), (3, 3, 2, 30, 5, 1),
                          (2, 5, 3, 25, 6, 2)])  # fmt: skip
def test_size_cuts_hold_for_every_plan_in_one_piece_and_cut_small_pieces(rows, cols, k, tol,
                                                                        seed, measures) -> None:  # fmt: skip
    """Every size cut (each unit alone, pieces of plans, grown from fractional plans) holds for
    every feasible plan in one piece (brute force), and every plan with a piece too small for
    its territory violates one of its own cuts."""
    from territory_planner_plugin.adjacency import _binary, _matrix
    from territory_planner_plugin.contiguous_problem import _pairs
    from territory_planner_plugin.exact_contiguity import _SizeCuts

    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed, measures=measures)
    n = rows * cols
    mat = _binary(_matrix(adj))
    _, _, pid = _pairs(np.ones((n, k), bool))
    feasible = _feasible_plans(cost, values, lo, hi, adj)
    assert feasible
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    sizes = _SizeCuts(model)
    cuts = sizes.singletons()
    rng = np.random.default_rng(seed)
    cut_small = 0
    for _ in range(40):
        plan = rng.integers(0, k, n)
        own = _SizeCuts(model).from_plan(plan)
        cuts += own
        small_piece = False
        for j in range(k):
            members = np.flatnonzero(plan == j)
            if len(members) and count_pieces(plan, adj, k)[j] > 1:
                for sub in _pieces(members, mat):
                    tot = values[sub].sum(0)
                    small_piece |= bool((tot < lo[j] - 1e-9).any())
        if small_piece:  # the plan breaks one of its own cuts
            assert not all(_holds(c, plan, pid) for c in own)
            cut_small += 1
        x = rng.dirichlet(np.ones(k), n)  # a fractional plan
        cuts += sizes.from_fractional(x)
    assert cut_small > 0
    assert len(cuts) > n
    for plan in feasible:
        assert all(_holds(c, plan, pid) for c in cuts)


def _pieces(members, mat) -> list:
    from scipy.sparse.csgraph import connected_components

    ncomp, lab = connected_components(mat[members][:, members], directed=False)
    return [members[lab == c] for c in range(ncomp)]


def test_size_cuts_find_a_unit_alone_in_a_fractional_plan() -> None:
    """A fractional plan that puts a unit wholly in a territory none of its neighbours is in
    violates a grown size cut, for that unit."""
    from territory_planner_plugin.exact_contiguity import _SizeCuts

    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 20, 0)
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    pid = model.pairs[2]
    x = np.full((9, 3), 0.0)
    x[:, 0] = 1.0
    x[4] = [0.0, 1.0, 0.0]  # the centre alone in territory 1
    cuts = _SizeCuts(model).from_fractional(x)
    assert cuts
    assert all(cols[0] == pid[4, 1] for _, cols, _ in cuts)
    flat = np.zeros(pid.max() + 1)
    flat[pid[np.arange(9), x.argmax(1)]] = 1.0
    assert any(float(coef @ flat[cols]) > 1e-9 for _, cols, coef in cuts)


def test_every_border_at_once_finds_a_rotation_through_five_territories(monkeypatch) -> None:
    """A ring of 10 units in 5 territories of 2, each band exact: the plan one unit round the
    ring is cheaper, but no 2, 3 or 4 territories can make their part of it alone (every chain
    short of the ring leaves one territory a unit short); the neighbourhood of every border at
    once finds it."""
    import scipy.sparse as sp

    from territory_planner_plugin import exact_contiguity
    from territory_planner_plugin.exact_contiguity import improve_by_neighbourhoods

    n, k = 10, 5
    ring = sp.csr_matrix((np.ones(2 * n), (np.r_[np.arange(n), (np.arange(n) + 1) % n],
                                           np.r_[(np.arange(n) + 1) % n, np.arange(n)])),
                         shape=(n, n))  # fmt: skip
    today = np.arange(n) // 2  # T0 = {0, 1}, T1 = {2, 3}, ...
    turned = ((np.arange(n) - 1) % n) // 2  # T0 = {1, 2}, ..., T4 = {9, 0}
    cost = np.full((n, k), 5.0)
    cost[np.arange(n), today] = 1.0
    cost[np.arange(n), turned] = 0.0
    values, lo, hi = np.ones((n, 1)), np.full((k, 1), 2.0), np.full((k, 1), 2.0)
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=ring)

    out = improve_by_neighbourhoods(model, start=today, deadline=time.perf_counter() + 30)
    np.testing.assert_array_equal(out, turned)
    monkeypatch.setattr(exact_contiguity, "BORDER_SOLVE_S", 0.0)  # the 2-4 territories alone: stuck
    out = improve_by_neighbourhoods(model, start=today, deadline=time.perf_counter() + 30)
    np.testing.assert_array_equal(out, today)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_border_at_once_is_the_best_plan_of_its_neighbourhood(seed: int) -> None:
    """On a 3 x 3 grid into 3: the border neighbourhood's plan is the cheapest of every plan in
    one piece within the bands where each unit stays or joins a neighbouring unit's territory
    (brute force), and None from the optimum (nothing is cheaper)."""
    from territory_planner_plugin.adjacency import _binary, _matrix
    from territory_planner_plugin.exact_contiguity import _resolve_borders

    _, adj, cost, values, lo, hi, _ = problem(3, 3, 3, 40, seed)
    n = cost.shape[0]
    plans = _feasible_plans(cost, values, lo, hi, adj)
    rng = np.random.default_rng(seed)
    start = plans[rng.integers(len(plans))]
    mat = _binary(_matrix(adj))
    nbrs = [set(start[mat.indices[mat.indptr[i] : mat.indptr[i + 1]]]) | {start[i]}
            for i in range(n)]  # fmt: skip
    near = [a for a in plans if all(a[i] in nbrs[i] for i in range(n))]
    best = min(float(cost[np.arange(n), a].sum()) for a in near)
    before = float(cost[np.arange(n), start].sum())
    model = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj)
    out = _resolve_borders(start, model, 20.0)
    assert best < before - 1e-9  # (these seeds: the start can be improved)
    assert out is not None
    assert float(cost[np.arange(n), out].sum()) == pytest.approx(best, rel=1e-9)
    assert any((out == a).all() for a in near)
    optimum = min(plans, key=lambda a: float(cost[np.arange(n), a].sum()))  # nothing cheaper
    assert _resolve_borders(optimum, model, 20.0) is None


# ----------------------------------------------------------------------------- cut-off at a target gap


def _plans(cost, values, lo, hi, adj) -> tuple:
    """Every assignment of a tiny grid within the bounds: (plans, objectives, one piece each)."""
    n, k = cost.shape
    combos = np.array(list(itertools.product(range(k), repeat=n)))
    onehot = (combos[:, :, None] == np.arange(k)).astype(float)
    tot = np.einsum("cnk,nm->ckm", onehot, values.reshape(n, -1))
    ok = ((tot >= lo[None] - 1e-9) & (tot <= hi[None] + 1e-9)).all((1, 2))
    combos = combos[ok]
    whole = np.array([(count_pieces(c, adj, k) == 1).all() for c in combos], bool)
    return combos, cost[np.arange(n)[None, :], combos].sum(1), whole


def _cut_case(rows, cols, k, tol, seed) -> tuple:
    _, adj, cost, values, lo, hi, _ = problem(rows, cols, k, tol, seed)
    n = rows * cols
    args = {"adjacency": adj, "locks": np.full(n, -1), "allowed": np.ones((n, k), bool)}
    return cost, values, lo, hi, adj, args


@pytest.mark.parametrize(("rows", "cols", "k", "tol", "seed"),
                         [(3, 3, 3, 30, 0), (3, 4, 2, 10, 1), (2, 5, 3, 30, 6), (3, 3, 3, 20, 5)])  # fmt: skip
@pytest.mark.parametrize("start_at", ["optimum", "worst"])
@pytest.mark.parametrize("round_gap", [0.05, 0.9])  # 0.9: HiGHS may stop at once on the start
def test_a_cut_off_round_proves_a_true_bound_and_the_loop_still_closes(
    rows, cols, k, tol, seed, start_at, round_gap, caplog, monkeypatch
) -> None:
    """With ``target_gap`` each round is cut off below the best plan: started at the optimum the
    first round proves the target (logged), started at the worst plan in one piece it finds
    better plans; either way every bound is one of the problem as posed and the loop ends at
    the brute-force optimum, also when the rounds' own MIP gap is loose (a round stopped by it
    above the cut-off proves nothing)."""
    from territory_planner_plugin import exact_contiguity

    monkeypatch.setattr(exact_contiguity, "TARGET_ROUND_GAP", round_gap)
    monkeypatch.setattr(exact_contiguity, "LOOSE_WITHIN", 1.0)  # every target round loose
    cost, values, lo, hi, adj, args = _cut_case(rows, cols, k, tol, seed)
    plans, objs, whole = _plans(cost, values, lo, hi, adj)
    if not whole.any():
        pytest.skip("no plan in one piece")
    ref = objs[whole].min()
    pick = np.argmin(np.where(whole, objs, np.inf)) if start_at == "optimum" else np.argmax(
        np.where(whole, objs, -np.inf))  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="territory_planner_plugin.exact_contiguity"):
        res = contiguous_cuts(
            ContiguousProblem.of(cost, values, lo, hi, **args),
            start=plans[pick],
            target_gap=0.05,
            time_limit_s=20,
        )
    assert res.bound <= ref + 1e-6 * max(abs(ref), 1.0)
    assert res.optimal
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert (count_pieces(res.assign, adj, k) == 1).all()
    if start_at == "optimum" and res.rounds:  # (the root's size cuts may have closed it)
        first = next(r.getMessage() for r in caplog.records if "round 1 at" in r.getMessage())
        assert "proves" in first


def test_a_cut_off_stopped_early_still_reports_the_target_as_proven(caplog) -> None:
    """Offered the optimum (no start) and stopped once a round proved the target: the bound is
    the cut-off, at most the optimum and within the target of it, and the offered plan is kept."""
    cost, values, lo, hi, adj, args = _cut_case(3, 3, 3, 30, 0)
    plans, objs, whole = _plans(cost, values, lo, hi, adj)
    ref = objs[whole].min()
    with caplog.at_level(logging.DEBUG, logger="territory_planner_plugin.exact_contiguity"):
        res = contiguous_cuts(
            ContiguousProblem.of(cost, values, lo, hi, **args),
            target_gap=0.02,
            time_limit_s=20,
            incumbent=lambda: plans[np.argmin(np.where(whole, objs, np.inf))],
            stop=lambda: "proves" in caplog.text,
        )
    assert res.objective == pytest.approx(ref, rel=1e-9)
    assert ref * (1 - 0.02) * (1 - 1e-5) <= res.bound < ref * (1 - 0.01)
    assert not res.optimal
    assert res.rounds == 1


def _costly_case() -> tuple:
    """A 2 x 4 grid into 3 whose cheapest plan in pieces undercuts every plan in one piece, and
    offers that break a rule: (cost, values, lo, hi, args, the optimum's cost, the optimum, the
    offers: the cheapest plan in pieces, one outside the bands, two of wrong shapes)."""
    for seed in range(60):
        cost, values, lo, hi, adj, args = _cut_case(2, 4, 3, 20, seed)
        plans, objs, whole = _plans(cost, values, lo, hi, adj)
        if whole.any() and objs[~whole].min(initial=np.inf) < objs[whole].min() - 1e-6:
            break
    else:  # pragma: no cover
        pytest.skip("no instance where contiguity costs something")
    in_pieces = plans[np.argmin(np.where(whole, np.inf, objs))]
    bad = [in_pieces, np.zeros(8, int), in_pieces[:-1], np.full(8, 7)]
    return (cost, values, lo, hi, args, objs[whole].min(),
            plans[np.argmin(np.where(whole, objs, np.inf))], bad)  # fmt: skip


def test_an_offered_plan_is_used_only_when_it_keeps_every_rule() -> None:
    """``incumbent`` plans in pieces, outside the bands or against allowed pairs and locks are
    ignored (the cheapest plan in pieces would otherwise undercut the optimum); a valid cheaper
    plan is taken."""
    cost, values, lo, hi, args, ref, best, bad = _costly_case()
    offers = iter(bad)
    res = contiguous_cuts(
        ContiguousProblem.of(cost, values, lo, hi, **args),
        time_limit_s=20,
        target_gap=0.01,
        incumbent=lambda: next(offers, None),
    )
    assert res.objective == pytest.approx(ref, rel=1e-6)
    assert res.bound <= ref + 1e-6 * max(abs(ref), 1.0)
    lock = (best[0] + 1) % 3  # unit 0 locked away from its territory in the optimum
    locked = args | {"locks": np.where(np.arange(8) == 0, lock, -1)}
    res = contiguous_cuts(
        ContiguousProblem.of(cost, values, lo, hi, **locked),
        time_limit_s=20,
        target_gap=0.01,
        incumbent=lambda: best,
    )
    assert res.assign is None or res.assign[0] == lock
    offered = contiguous_cuts(
        ContiguousProblem.of(cost, values, lo, hi, **args),
        time_limit_s=20,
        target_gap=0.01,
        incumbent=lambda: best,
        stop=lambda: False,
    )
    assert offered.objective == pytest.approx(ref, rel=1e-9)


def test_a_plan_offered_during_a_round_cuts_it_short(monkeypatch, caplog) -> None:
    """A plan offered while a round runs, below that round's cut-off, ends the round (it could
    prove nothing) and the next round is cut off at the new plan; the loop still closes."""
    from territory_planner_plugin import exact_contiguity

    own = exact_contiguity._stop_at

    def ask_every_time(h, deadline, stop=None):  # the half-second pace of a real round
        own(h, deadline, stop)
        h.cbMipInterrupt += lambda e: e.interrupt(True) if stop is not None and stop() else None

    monkeypatch.setattr(exact_contiguity, "_stop_at", ask_every_time)
    for case in [(3, 3, 3, 30, 0), (2, 5, 3, 30, 6), (3, 3, 3, 20, 5), (3, 4, 3, 25, 2)]:
        cost, values, lo, hi, adj, args = _cut_case(*case)
        plans, objs, whole = _plans(cost, values, lo, hi, adj)
        ref, worst = objs[whole].min(), objs[whole].max()
        if ref < worst * 0.9:
            break
    else:  # pragma: no cover
        pytest.skip("no grid whose worst plan is far from its best")
    calls: list = []

    def later() -> np.ndarray | None:  # nothing before the first round, then the optimum
        calls.append(1)
        return plans[np.argmin(np.where(whole, objs, np.inf))] if len(calls) == 2 else None

    with caplog.at_level(logging.DEBUG, logger="territory_planner_plugin.exact_contiguity"):
        res = contiguous_cuts(
            ContiguousProblem.of(cost, values, lo, hi, **args),
            start=plans[np.argmax(np.where(whole, objs, -1))],
            target_gap=0.05,
            time_limit_s=20,
            incumbent=later,
        )
    if "round 1" not in caplog.text and "cut short" not in caplog.text:
        pytest.skip("closed before any round")  # pragma: no cover
    assert "round 1 cut short by an offered plan" in caplog.text
    assert res.optimal
    assert res.objective == pytest.approx(ref, rel=1e-9)


def test_a_unit_with_no_allowed_territory_has_no_plan_in_any_exact_model() -> None:
    """``ContiguousProblem.stranded``: a unit allowed nowhere leaves every exact model without a
    plan (and no bound), at once; with one pair allowed back the same problem has plans."""
    from territory_planner_plugin.branch_cut import contiguous_branch_and_cut
    from territory_planner_plugin.contiguous_problem import contiguous_exact
    from territory_planner_plugin.exact_contiguity import ordered_plan

    _, adj, cost, values, lo, hi, _ = problem(3, 3, 2, 30, 0)
    n, k = cost.shape
    allowed = np.ones((n, k), bool)
    allowed[4] = False
    stuck = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj, allowed=allowed)
    assert stuck.stranded
    assert contiguous_exact(stuck, roots=np.array([0, 8]), time_limit_s=5) is None
    assert ordered_plan(stuck, time_limit_s=5) is None
    for solve in (contiguous_cuts, contiguous_branch_and_cut):
        cut = solve(stuck, time_limit_s=5)
        assert cut is None or (cut.assign is None and not cut.optimal), solve.__name__
    allowed[4, 0] = True
    fine = ContiguousProblem.of(cost, values, lo, hi, adjacency=adj, allowed=allowed)
    assert not fine.stranded
    cut = contiguous_cuts(fine, time_limit_s=5)
    barred = cost.copy()
    barred[4, 1] = 1e6  # the pair not allowed, for the brute force
    ref = brute_force(barred, values, lo, hi, adj)
    assert ref < 1e6  # the case has a plan with unit 4 where it is allowed
    assert cut is not None
    assert cut.assign is not None
    assert fine.fits(cut.assign)
    assert cut.objective == pytest.approx(ref, rel=1e-9)
