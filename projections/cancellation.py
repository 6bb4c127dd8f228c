"""Cancellation points where long work stops once nobody waits for it (issue 10 item 11).

A heavy request (a report, a health history, a verification) runs in a worker thread under
:func:`stoppable`; when its client hangs up the server sets the event, and the next
:func:`cancellation_point` the work passes raises :class:`WorkAbandoned`, which unwinds it.
Outside :func:`stoppable` (the CLI, tests, light requests) a cancellation point does nothing.
The event sits in a context variable so that the queries and renderers need no extra argument
threaded through every call; it is set in the worker thread itself, where the work runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["WorkAbandoned", "cancellation_point", "stoppable"]

_stop: ContextVar[threading.Event | None] = ContextVar("pledger_stop_work", default=None)


class WorkAbandoned(Exception):
    """Raised at a cancellation point once the work's client has gone."""


def cancellation_point() -> None:
    """Raise :class:`WorkAbandoned` when the work running here has been told to stop."""
    stop = _stop.get()
    if stop is not None and stop.is_set():
        raise WorkAbandoned


@contextmanager
def stoppable(stop: threading.Event) -> Iterator[None]:
    """Run the block so that its cancellation points raise once ``stop`` is set."""
    token = _stop.set(stop)
    try:
        yield
    finally:
        _stop.reset(token)
