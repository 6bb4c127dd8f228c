"""Heavy requests: a few at a time, each in a worker thread, abandoned when the client hangs up.

Issue 10 item 11. A report or a health history costs far more than any other request. (A
verification of the whole log runs in the background instead: api.verifying.) Each kind
may run at most ``HEAVY_LIMITS[kind]`` requests at once per server process; one more is
answered at once with 503 problem+json and ``Retry-After`` (no queue that could pile up work
nobody waits for). The work runs in a worker thread, so the event loop and the light requests
go on; and while it runs the server listens for the client's
``http.disconnect`` (ASGI): once the client has gone, the work stops at its next cancellation point
(projections.cancellation), is counted under ``abandoned`` and logged.

| kind    | at once | routes                                                            |
| ------- | ------- | ----------------------------------------------------------------- |
| report  | 2       | GET /v1/coalitions/{id}/report; the coalition page and its report |
|         |         | downloads (/coalitions/{id}, /coalitions/{id}/report.{format})    |
| history | 4       | GET /v1/partners/{id}/health/history                              |
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response

from domain.errors import Busy
from projections.cancellation import WorkAbandoned, stoppable

__all__ = ["CLIENT_GONE", "HEAVY_LIMITS", "HeavyWork", "heavy_work"]

HEAVY_LIMITS: dict[str, int] = {"report": 2, "history": 4}
RETRY_AFTER_SECONDS = 5
# What is sent to a client that has gone (nobody reads it): nginx's "client closed request".
CLIENT_GONE = 499

logger = logging.getLogger("pledger.heavy")


class HeavyWork:
    """Counts and bounds the heavy requests of one server process (see the module docstring)."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.limits = dict(limits or HEAVY_LIMITS)
        self._running: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self._lock = threading.Lock()

    def state(self) -> dict[str, dict[str, int]]:
        """``{kind: {running, limit, abandoned}}``, for /healthz."""
        with self._lock:
            return {
                kind: {
                    "running": self._running[kind],
                    "limit": limit,
                    "abandoned": self.abandoned[kind],
                }
                for kind, limit in self.limits.items()
            }

    async def run(self, kind: str, request: Request, work: Callable[[], Response]) -> Response:
        """``work()`` in a worker thread, within ``kind``'s limit; raises :class:`Busy` (503,
        Retry-After) when that many are running already. Answers CLIENT_GONE when the client
        hung up before the work was done (the work stopped at its next cancellation point)."""
        with self._lock:
            if self._running[kind] >= self.limits[kind]:
                raise Busy(
                    f"{self.limits[kind]} {kind} requests are being answered already; "
                    f"ask again in {RETRY_AFTER_SECONDS} seconds",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            self._running[kind] += 1
        stop = threading.Event()

        def stoppable_work() -> Response:
            with stoppable(stop):
                return work()

        answer: Response | None = None
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_stop_when_gone, request, stop)
                try:
                    answer = await anyio.to_thread.run_sync(stoppable_work)
                except Exception as error:  # raised again below, outside the task group
                    failure = error  # (which would wrap it in an ExceptionGroup)
                finally:
                    group.cancel_scope.cancel()  # done (or failed): stop listening
        finally:
            with self._lock:
                self._running[kind] -= 1
        if isinstance(failure, WorkAbandoned):
            with self._lock:
                self.abandoned[kind] += 1
            logger.info("%s %s: the client hung up; the work stopped", kind, request.url.path)
            return Response(status_code=CLIENT_GONE)
        if failure is not None:
            raise failure
        assert answer is not None
        return answer


def heavy_work(request: Request) -> HeavyWork:
    """The app's bounds on heavy work (built with the app, in ``create_app``)."""
    heavy: HeavyWork = request.app.state.heavy
    return heavy


async def _stop_when_gone(request: Request, stop: threading.Event) -> None:
    """Set ``stop`` once the ASGI server says the client disconnected. A GET's (empty) body
    comes first; after it ``receive`` waits until the connection closes."""
    while True:
        message: dict[str, Any] = dict(await request.receive())
        if message["type"] == "http.disconnect":
            stop.set()
            return
