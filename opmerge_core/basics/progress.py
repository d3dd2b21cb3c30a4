"""One progress signature and one cancellation for every long computation.

Every trainer, distiller, sweep and job takes ``progress(done, total, info)`` — ``done`` of ``total``
units of work so far, ``info`` a small JSON-able dict (e.g. ``{"loss": 0.12}``) — and ``cancel``, an
object with ``is_set()`` (a ``threading.Event``, or the compute backend's flag on a worker). A set
flag stops the work between two steps by raising ``Cancelled``; nothing returns a partial result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Progress = Callable[[int, int, dict], None]


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class Cancelled(Exception):
    """The run's cancel flag was set; the work stopped between two steps."""


def check_cancel(cancel: CancelFlag | None) -> None:
    """Raise ``Cancelled`` if ``cancel`` is set (call between two steps)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def report(progress: Progress | None, done: int, total: int, **info) -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, info)
