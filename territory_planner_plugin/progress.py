"""Progress and cancel hooks without Qt: plain callables the Processing wrappers build from feedback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .errors import Cancelled


class ProgressCallback(Protocol):
    """Receives a fraction in [0, 1] and a short message."""

    def __call__(self, fraction: float, message: str = "") -> None: ...


CancelCheck = Callable[[], bool]


def report(progress: ProgressCallback | None, fraction: float, message: str = "") -> None:
    """Send ``fraction`` (clipped to [0, 1]) to ``progress`` when one is given."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def check_cancel(is_cancelled: CancelCheck | None) -> None:
    """Raise :class:`Cancelled` when ``is_cancelled`` says the caller wants to stop."""
    if is_cancelled is not None and is_cancelled():
        msg = "Cancelled by the user."
        raise Cancelled(msg)


def sub_progress(
    progress: ProgressCallback | None, start: float, end: float
) -> ProgressCallback | None:
    """Map a step's own 0..1 progress onto ``start..end`` of the caller's progress."""
    if progress is None:
        return None

    def _sub(fraction: float, message: str = "") -> None:
        report(progress, start + (end - start) * fraction, message)

    return _sub
