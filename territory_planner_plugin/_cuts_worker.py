"""The worker process that runs the separator-cut model beside the plan search (:mod:`beside`).

Run as a script (``python _cuts_worker.py``), it reads one pickle from stdin: the parent's
``sys.path``, the name of the branch_cut module (the plugin's package name varies with where it
is installed), the wall-clock end (``time.time()``), the fields of the
:class:`ContiguousProblem` and the options of ``contiguous_model`` without ``time_limit_s``.
Then, until stdin closes, pickles of better plans found by the parent (a territory index per
unit), which the model is offered as it goes (SCIP's tree takes them as incumbents; the HiGHS
rounds before each round and during one).
It answers one pickle on stdout: the result's fields as a dict, None, or an error text.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import threading
import time


class _Offers:
    """The latest plan the parent sent, read from stdin by a thread."""

    def __init__(self, stream) -> None:
        self._latest = None
        self._lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        while True:
            try:
                plan = pickle.load(stream)
            except Exception:  # EOF (the parent closed stdin) or a broken pipe
                return
            with self._lock:
                self._latest = plan

    def take(self):
        """The plan sent since the last call, or None."""
        with self._lock:
            plan, self._latest = self._latest, None
        return plan


def main() -> None:
    """Run one contiguous_model for the parent and answer its result."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answer
    try:
        parent_path, module, until, arrays, options = pickle.load(stdin)
    except EOFError:
        return
    from _matrix_worker import adopt_parent_path  # this folder, the script's sys.path[0]

    adopt_parent_path(parent_path)
    try:
        branch_cut = importlib.import_module(module)
        offers = _Offers(stdin)
        problem = branch_cut.ContiguousProblem(**arrays)
        res = branch_cut.contiguous_model(problem, **options, incumbent=offers.take,
                                          time_limit_s=max(until - time.time(), 0.1))  # fmt: skip
        answer = None if res is None else dict(vars(res))
    except Exception as err:  # any failure: the parent goes on without it
        answer = f"{type(err).__name__}: {err}"
    pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


if __name__ == "__main__":
    main()
