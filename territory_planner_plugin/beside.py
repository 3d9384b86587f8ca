"""The separator-cut model in a worker process beside the plan search, on machines with a second
core: county-sized contiguous plans get their bound from the whole of TIME_LIMIT while this
process looks for better plans (:meth:`.model.TerritoryModel.solve`)."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from . import branch_cut, matrix
from .contiguous_problem import ContiguousProblem
from .exact_contiguity import CutPlan

logger = logging.getLogger(__name__)

_WORKER_SCRIPT = Path(__file__).with_name("_cuts_worker.py")
BESIDE_MIN_SECONDS = 5.0  # a worker is started only with at least this much time left
BESIDE_MIN_PAIRS = 200  # ... and for models of at least this many pairs (smaller close at once)


class CutsBeside:
    """The root-free contiguous model (:func:`.branch_cut.contiguous_model`: SCIP's
    branch-and-cut, or HiGHS rounds without SCIP) running in a worker process until a wall-clock
    end."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._answer: CutPlan | None = None
        self._read = False

    def offer(self, assign: np.ndarray) -> None:
        """Send the worker a better plan found here (it cuts its rounds off below it); a worker
        that has ended or cannot read it is left alone."""
        if self.proc.stdin is None or self.proc.poll() is not None:
            return
        try:
            pickle.dump(np.asarray(assign, np.int64), self.proc.stdin,
                        protocol=pickle.HIGHEST_PROTOCOL)  # fmt: skip
            self.proc.stdin.flush()
        except (OSError, ValueError):  # ended meanwhile: nothing to tell
            pass

    def done(self) -> bool:
        """Whether the worker has ended (its answer can be read without waiting)."""
        return self.proc.poll() is not None

    def result(self, timeout_s: float) -> CutPlan | None:
        """The worker's result, waiting at most ``timeout_s``; None when it failed or did not end
        in time (it is stopped then)."""
        if self._read:
            return self._answer
        self._read = True
        try:
            out, _ = self.proc.communicate(timeout=max(timeout_s, 0.01))
            answer = pickle.loads(out)
        except Exception as err:  # a worker that fails only costs its help
            logger.debug("Separator cuts beside the search: no result (%s).", err)
            self.close()
            return None
        if isinstance(answer, dict):
            self._answer = CutPlan(**answer)
        elif answer is not None:
            logger.debug("Separator cuts beside the search failed: %s", answer)
        return self._answer

    def helping(self) -> bool:
        """Whether the worker runs or has answered (not failed)."""
        return not self.done() or self.result(0.0) is not None

    def closed(self) -> CutPlan | None:
        """The worker's result once it has ended with a plan proven optimal (nothing left to
        search), else None."""
        if not self.done():
            return None
        res = self.result(0.0)
        return res if res is not None and res.optimal and res.assign is not None else None

    def close(self) -> None:
        """Stop the worker if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_cuts_beside(seconds: float, problem: ContiguousProblem, **options) -> CutsBeside | None:
    """Start ``branch_cut.contiguous_model(problem, **options)`` in a worker process for
    ``seconds`` of wall time (better plans found meanwhile go to it with
    :meth:`CutsBeside.offer`), or None when this machine has one core for it
    (``TERRITORY_PLANNER_PROCESSES`` = 1 too), no Python interpreter to run it is found, the
    time is short, the model small (fewer than ``BESIDE_MIN_PAIRS`` pairs) or the worker cannot
    start."""
    small = problem.cost.size < BESIDE_MIN_PAIRS
    if small or seconds < BESIDE_MIN_SECONDS or matrix.pool_size(float("inf")) < 2:
        return None
    python = matrix.python_executable()
    if python is None:
        return None
    flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
    try:
        proc = subprocess.Popen([python, str(_WORKER_SCRIPT)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                creationflags=flags)  # fmt: skip
        arrays = {f.name: getattr(problem, f.name) for f in fields(problem)}  # (plain types:
        # the worker reads them before it can import this package under its installed name)
        payload = (list(sys.path), branch_cut.__name__, time.time() + seconds, arrays, options)
        proc.stdin.write(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        proc.stdin.flush()  # left open for better plans (offer); communicate() closes it
    except (OSError, pickle.PicklingError) as err:
        logger.debug("Separator cuts beside the search not started: %s", err)
        return None
    return CutsBeside(proc)


def merge_cuts(here: CutPlan | None,
               there: CutPlan | None) -> CutPlan | None:  # fmt: skip
    """One separator-cut result from this process's (``here``) and the one beside (``there``;
    either may be None): the higher bound, the cheaper plan in one piece, the rounds and cuts of
    both; optimal or closed when either proves it for the plan kept."""
    if here is None or there is None:
        if there is not None:
            logger.info("CONTIGUOUS: separator cuts in a second process beside the search "
                        "(%s): bound %.3f.", there.solver, there.bound)  # fmt: skip
        return there if here is None else here
    logger.info("CONTIGUOUS: separator cuts in a second process beside the search (%s): bound "
                "%.3f (here %.3f).", there.solver, there.bound, here.bound)  # fmt: skip
    plan = here if here.assign is not None and (
        there.assign is None or here.objective <= there.objective) else there  # fmt: skip
    bound = min(max(here.bound, there.bound), plan.objective)
    optimal = plan.assign is not None and bound >= plan.objective - 1e-6 * max(
        abs(plan.objective), 1.0
    )
    solver = here.solver if here.solver == there.solver else f"{here.solver} and {there.solver}"
    return replace(plan, bound=bound, optimal=optimal, rounds=here.rounds + there.rounds,
                   cuts=here.cuts + there.cuts, closed=plan.closed or optimal,
                   solver=solver)  # fmt: skip
