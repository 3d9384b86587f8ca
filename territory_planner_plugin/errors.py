"""Error types raised by the engine; each message says what is wrong and how to fix it."""

from __future__ import annotations


class TerritoryPlannerError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInputError(TerritoryPlannerError, ValueError):
    """An input (layer, field, record or parameter) is not usable as given."""


class InfeasibleError(TerritoryPlannerError):
    """The hard constraints cannot all hold; the message names them and the smallest relaxation."""


class ContiguityError(InfeasibleError):
    """No plan in one piece per territory was found by the contiguity search.

    ``finding`` says what the search could not do; ``advice`` the change it suggests, not yet
    checked by solving (the model checks its relaxations before it reports them)."""

    def __init__(self, finding: str, advice: str) -> None:
        super().__init__(f"{finding}: {advice}")
        self.finding = finding
        self.advice = advice


class NetworkUnavailableError(TerritoryPlannerError, OSError):
    """A road network could not be read or downloaded."""


class SolverError(TerritoryPlannerError, RuntimeError):
    """The optimisation solver failed or returned an unusable status."""


class TimeLimitError(SolverError):
    """TIME_LIMIT was reached before any plan keeping every hard constraint was found."""


class Cancelled(TerritoryPlannerError):  # noqa: N818  (a state, not an error, for the user)
    """The caller asked to stop; raised at the next cancel check."""
