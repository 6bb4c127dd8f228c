"""Keeping the views current: the ledger projection and what drives it.

* PostgreSQL: eventsourcing's ``ProjectionRunner`` subscribes to the log (LISTEN/NOTIFY) and
  feeds :class:`LedgerProjection`, in this process or in a separate projection process.
* SQLite: its recorder has no subscription, so :meth:`ViewKeeper.catch_up` reads
  ``select_notifications`` from the tracked position in pages; the API calls it after each
  write (read-your-writes) and a background thread polls it for writes of other processes.

Either way each page of events and its tracking record commit in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import Environment

from domain.application import Partnerships
from domain.chained import ChainedAggregate
from projections.store import LedgerView, PostgresLedgerView, SQLiteLedgerView

__all__ = ["PROJECTION_NAME", "LedgerProjection", "ViewKeeper", "open_view"]

PROJECTION_NAME = "ledger_views"
PAGE_SIZE = 500
POLL_SECONDS = 0.5


class LedgerProjection(Projection[LedgerView]):
    """Folds every ledger event into the views; anything else is tracked and passed over."""

    name = PROJECTION_NAME

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # noqa: ARG002
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: ChainedAggregate.Event, tracking: Tracking) -> None:
        self.view.process([(domain_event, tracking.notification_id)])


def open_view(env: dict[str, str]) -> LedgerView:
    """Construct the views on the store ``env`` names (eventsourcing persistence settings)."""
    view_class: type[Any] = (
        PostgresLedgerView if env["PERSISTENCE_MODULE"].endswith("postgres") else SQLiteLedgerView
    )
    factory = InfrastructureFactory.construct(Environment(PROJECTION_NAME, env))
    view = factory.tracking_recorder(view_class)
    assert isinstance(view, LedgerView)
    return view


class ViewKeeper:
    """Brings the views up to the end of the log and keeps them there."""

    def __init__(self, ledger: Partnerships, view: LedgerView, view_env: dict[str, str]) -> None:
        self.ledger = ledger
        self.view = view
        self.view_env = view_env
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runner: ProjectionRunner[Partnerships, LedgerView] | None = None
        self.error: BaseException | None = None

    @property
    def uses_runner(self) -> bool:
        return self.view_env["PERSISTENCE_MODULE"].endswith("postgres")

    def catch_up(self, *, advance: Callable[[int], None] = lambda _: None) -> int:
        """Process every event recorded after the tracked position; returns how many."""
        processed = 0
        with self._lock:
            while True:
                start = self.view.processed_position()
                page = self.ledger.recorder.select_notifications(
                    start=start, limit=PAGE_SIZE, inclusive_of_start=False
                )
                if not page:
                    return processed
                items = [(self.ledger.decode(n), n.id) for n in page]
                try:
                    processed += self.view.process(items)
                except IntegrityError:
                    continue  # another process took this page first; read the tracking again
                advance(len(page))

    def wait_for(self, position: int, timeout: float = 2.0) -> None:
        """Return once the views reflect ``position`` (read-your-writes)."""
        if self.view.processed_position() >= position:
            return
        if self._runner is not None:
            try:
                self._runner.wait(position, timeout=timeout)
            except TimeoutError:
                self.catch_up()
            return
        self.catch_up()

    def rebuild(self, *, advance: Callable[[int], None] = lambda _: None) -> int:
        """Forget the views and fold the whole log again from position 0."""
        with self._lock:
            self.view.drop_tables()
        return self.catch_up(advance=advance)

    def start(self) -> None:
        """Keep the views current in the background until :meth:`stop`."""
        self.catch_up()
        if self.uses_runner:
            self._runner = ProjectionRunner(
                application_class=Partnerships,
                projection_class=LedgerProjection,
                view_class=PostgresLedgerView,
                env=self.view_env,
            )
            return
        self._thread = threading.Thread(target=self._poll, name="pledger-views", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.catch_up()
            except Exception as error:
                self.error = error
            else:
                self.error = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
