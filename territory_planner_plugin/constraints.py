"""The constraints of the territory model, as sparse rows over the allowed pairs.

One definition feeds both solver paths: the exact PuLP model (:mod:`model`) and the priced LP and
rounding MILP (SciPy/HiGHS, :mod:`assignment`). A variable is one (row, territory) pair; rows are
accounts or units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class PairConstraints:
    """Sparse constraint rows over the pairs ``(rows[p], cols[p])``.

    ``assign`` (n, p): each row of the model in exactly one territory (== 1).
    ``balance`` (k*m, p): total of measure ``mm`` in territory ``j`` is row ``j*m + mm``
    (within [lo, hi] of that territory and measure, ravelled in the same order).
    ``stay`` (p,): 1 where the pair keeps a row in its current territory; the budget of moves is
    ``n_current - stay @ x <= budget``.
    """

    rows: np.ndarray
    cols: np.ndarray
    assign: sp.csr_matrix
    balance: sp.csr_matrix
    stay: np.ndarray | None

    @property
    def n_pairs(self) -> int:
        """Number of variables (pairs)."""
        return len(self.rows)

    def rows_within(self, lo: np.ndarray, hi: np.ndarray, stay_at_least: float | None = None,
                    ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:  # fmt: skip
        """All rows as one matrix with their lower and upper bounds, for a MILP solver: each row
        in one territory, the balance rows within ``lo``/``hi`` ((k, m)), and, with
        ``stay_at_least``, the budget row (pairs keeping a row in its current territory)."""
        n = self.assign.shape[0]
        mats, lower, upper = [self.assign, self.balance], [np.ones(n), lo.ravel()], [np.ones(n), hi.ravel()]  # fmt: skip
        if stay_at_least is not None and self.stay is not None:
            mats.append(sp.csr_matrix(self.stay[None, :]))
            lower.append(np.array([float(stay_at_least)]))
            upper.append(np.array([np.inf]))
        return sp.vstack(mats).tocsr(), np.concatenate(lower), np.concatenate(upper)


def pair_constraints(
    values: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    n_rows: int,
    k: int,
    current: np.ndarray | None = None,
) -> PairConstraints:
    """Assignment, balance and budget rows over the given pairs.

    Parameters
    ----------
    values : (n, m) measures of the rows; rows, cols : (p,) the pairs (row index, territory);
    n_rows, k : numbers of rows and territories; current : (n,) today's territory (-1 = none),
    for the budget row (None: no budget row).

    Returns
    -------
    PairConstraints
    """
    rows = np.asarray(rows, int)
    cols = np.asarray(cols, int)
    p, m = len(rows), values.shape[1]
    a_eq = sp.csr_matrix((np.ones(p), (rows, np.arange(p))), shape=(n_rows, p))
    bal_r = (cols[:, None] * m + np.arange(m)[None, :]).ravel()
    a_bal = sp.csr_matrix(
        (values[rows].ravel(), (bal_r, np.repeat(np.arange(p), m))), shape=(k * m, p)
    )
    stay = None
    if current is not None:
        stay = ((current[rows] >= 0) & (cols == current[rows])).astype(float)
    return PairConstraints(rows=rows, cols=cols, assign=a_eq, balance=a_bal, stay=stay)
