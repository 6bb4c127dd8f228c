"""Keeping the views current: the ledger projection and what drives it.

* PostgreSQL: eventsourcing's ``ProjectionRunner`` subscribes to the log (LISTEN/NOTIFY) and
  feeds :class:`LedgerProjection`, in this process or in a separate projection process.
* SQLite: its recorder has no subscription, so :meth:`ViewKeeper.catch_up` reads
  ``select_notifications`` from the tracked position in pages; the API calls it after each
  write (read-your-writes) and a background thread polls it for writes of other processes.

Either way each page of events and its tracking record commit in one transaction.

When the views cannot take an event (issue 10 item 4) the keeper says so and keeps trying:
the error is logged once (``pledger.views``; again only once the views have recovered and fail
anew), :attr:`ViewKeeper.error` holds it for ``/healthz``, and the catch-up is retried with a
growing pause (RETRY_FIRST_SECONDS doubling up to RETRY_MAX_SECONDS). On PostgreSQL the
library's runner stops on an error; a watcher thread closes it and, once a catch-up from the
tracked position succeeds (the cause went away), starts a new one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import Environment

from domain.application import Partnerships
from domain.chained import ChainedAggregate
from domain.dates import zone_name
from projections.folds import Entry
from projections.follow import PositionListener
from projections.locking import WriteLock
from projections.log import LogReader
from projections.rebuild import LogFold
from projections.store import LedgerView, PostgresLedgerView, SQLiteLedgerView

__all__ = ["PROJECTION_NAME", "LedgerProjection", "ViewKeeper", "open_view"]

PROJECTION_NAME = "ledger_views"
PAGE_SIZE = 500
POLL_SECONDS = 0.5
RACE_ATTEMPTS = 5
RETRY_FIRST_SECONDS = 0.5  # after a failure, the first retry; doubled after each failed one
RETRY_MAX_SECONDS = 30.0
# Empty views on a log of this many events or more are rebuilt at start (projections.rebuild),
# not caught up page by page: several times faster.
REBUILD_FROM = 5_000
PROGRESS_STEPS = 10  # a start-up rebuild logs its progress this many times

logger = logging.getLogger("pledger.views")


class LedgerProjection(Projection[LedgerView]):
    """Folds every ledger event into the views; anything else is tracked and passed over."""

    name = PROJECTION_NAME
    # Told each position the views have reached (the ViewKeeper of the process it runs in
    # wakes the requests waiting for it); nobody by default.
    announce: Callable[[int], None] = staticmethod(lambda _: None)

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # noqa: ARG002
        self.view.insert_tracking(tracking)

    # The last position this projection saw the views reach: the events of a page it has
    # taken are then passed over without asking the database again, one query an event.
    reached = 0

    @process_event.register
    def _(self, domain_event: ChainedAggregate.Event, tracking: Tracking) -> None:
        position = tracking.notification_id
        if position <= self.reached:
            return  # in a page taken earlier (the views never go back but by a rebuild)
        view = self.view
        for attempt in range(RACE_ATTEMPTS):
            done = view.processed_position()
            if done >= position:
                self.reached = done
                self.announce(done)
                return  # taken (by this call, an earlier page, or another processor)
            try:
                if view.log is None:
                    view.process([(domain_event, position)])
                else:
                    # The notification wakes the views up: they take a page of the log from
                    # where they stand (this event, and whatever was recorded since), in one
                    # transaction, rather than one transaction an event.
                    view.process_entries(view.log.page(done, PAGE_SIZE))
            except IntegrityError:
                # Another processor (an API worker's catch_up) committed some of these first:
                # look again; anything else, or a race that never ends, stops the runner.
                if attempt == RACE_ATTEMPTS - 1 and view.processed_position() < position:
                    raise


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

    def __init__(
        self,
        ledger: Partnerships,
        view: LedgerView,
        view_env: dict[str, str],
        lock: WriteLock | None = None,
    ) -> None:
        self.ledger = ledger
        self.view = view
        self.log = LogReader(ledger.recorder)
        if view.log is None:
            view.log = self.log
        self.view_env = view_env
        # Taken around every views transaction; the writer holds it around its save as well.
        self.lock = lock or WriteLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runner: ProjectionRunner[Partnerships, LedgerView] | None = None
        self._watcher: threading.Thread | None = None
        # Set by follow(): the views are kept by a projection process (pledger project).
        self._listener: PositionListener | None = None
        self.error: BaseException | None = None
        self._logged: str | None = None  # the failure last logged, until the views recover
        self.restarts = 0  # PostgreSQL: projection runners started again after a failure
        # Writers announce new events; readers wait for the position they need.
        self._written = threading.Event()
        self._progress = threading.Condition()
        self._seen = 0
        self._waiters: list[tuple[int, Future[None]]] = []
        # While start() rebuilds empty views in the background: [events folded, events].
        self.rebuilding: list[int] | None = None
        self._starter: threading.Thread | None = None

    @property
    def healthy(self) -> bool:
        """False when keeping the views current has failed: the last catch-up raised, or the
        library's projection runner stopped without being asked to."""
        if self.error is not None:
            return False
        if self._listener is not None:
            return self._listener.error is None
        runner = self._runner
        return runner is None or not runner.is_interrupted.is_set() or self._stop.is_set()

    @property
    def kept_by(self) -> str:
        """Who keeps the views current for this process: ``"this process"`` (its runner or
        catch-up thread), ``"projection process"`` (after :meth:`follow`), or ``"nobody"``
        (a command that catches up when it reads)."""
        if self._listener is not None:
            return "projection process"
        if self._thread is not None or self._runner is not None:
            return "this process"
        return "nobody"

    def lag(self, log_position: int) -> tuple[int, float]:
        """How far the views are behind the log at ``log_position``: in events, and in
        seconds since the first event they have not taken was recorded (0 when caught up)."""
        views_position = self.view.processed_position()
        behind = max(0, log_position - views_position)
        if not behind:
            return 0, 0.0
        waiting = self.log.page(views_position, 1)
        if not waiting or not waiting[0].recorded_at:
            return behind, 0.0
        recorded = datetime.fromisoformat(waiting[0].recorded_at)
        return behind, max(0.0, (datetime.now(UTC) - recorded).total_seconds())

    @property
    def uses_runner(self) -> bool:
        return self.view_env["PERSISTENCE_MODULE"].endswith("postgres")

    def catch_up(self, *, advance: Callable[[int], None] = lambda _: None) -> int:
        """Process every event recorded after the tracked position; returns how many."""
        processed = 0
        with self.lock:
            while True:
                done = self.view.processed_position()
                self._announce(done)
                page = self.log.page(done, PAGE_SIZE)
                if not page:
                    return processed
                try:
                    processed += self.view.process_entries(page)
                except IntegrityError:
                    continue  # another process took this page first; read the tracking again
                self._announce(page[-1].position)
                advance(len(page))

    def _announce(self, position: int) -> None:
        with self._progress:
            if position > self._seen:
                self._seen = position
                self._progress.notify_all()
                reached = [w for w in self._waiters if w[0] <= position]
                if reached:
                    self._waiters = [w for w in self._waiters if w[0] > position]
                    for _, waiter in reached:
                        if waiter.set_running_or_notify_cancel():  # False: it stopped waiting
                            waiter.set_result(None)

    def take(self, entries: Sequence[Entry]) -> None:
        """Reflect events this process has just recorded (in position order) without reading
        them back from the log. Only when the views stand right before the first of them:
        otherwise (another process wrote in between, or the log has not been caught up) the
        views catch up from the log, which reads everything in order. A failure here never
        fails the write (it is already recorded); the next catch-up tries again."""
        if self.uses_runner or not entries:
            self.notify()  # PostgreSQL: the library's runner follows the log
            return
        follows = all(b.position == a.position + 1 for a, b in itertools.pairwise(entries))
        try:
            with self.lock:
                # One views transaction reads where they stand and, right before these events,
                # takes them; anywhere else (or on a race), catch up from the log.
                taken = 0
                if follows:
                    with contextlib.suppress(IntegrityError):  # another process took them first
                        taken = self.view.process_entries(entries, following=True)
                if taken:
                    self._announce(entries[-1].position)
                    return
            self.catch_up()
        except Exception as error:
            self._failed(error)
            self.notify()

    def _failed(self, error: BaseException) -> None:
        """The views could not take what was recorded: keep the error for /healthz, and log
        it once (not on every retry; again only after the views have recovered)."""
        self.error = error
        text = f"{type(error).__name__}: {error}"
        if text != self._logged:
            self._logged = text
            at = getattr(error, "position", None) or self._seen + 1
            logger.error("the views stopped at position %s: %s (retrying)", at, text)

    def _recovered(self) -> None:
        if self.error is not None or self._logged is not None:
            self.error, self._logged = None, None
            logger.warning("the views are taking events again (at position %s)", self._seen or 0)

    def notify(self) -> None:
        """Events were recorded: catch up now rather than at the next poll."""
        self._written.set()

    def has_seen(self, position: int) -> bool:
        """Whether the views already reflect ``position`` (as far as this process knows)."""
        return self._seen >= position

    def when_seen(self, position: int) -> Future[None] | None:
        """A future that completes once this process's catch-up thread (or, on PostgreSQL,
        its projection runner) has brought the views to ``position`` (for callers that must
        not block a thread while they wait), or None when neither runs here: then call
        :meth:`wait_for`."""
        if self._thread is None and self._runner is None and self._listener is None:
            return None
        seen: Future[None] = Future()
        with self._progress:
            if self._seen >= position:
                seen.set_result(None)
                return seen
            self._waiters.append((position, seen))
        self.notify()
        return seen

    def wait_for(self, position: int, timeout: float = 2.0) -> None:
        """Return once the views reflect ``position`` (read-your-writes)."""
        if self._seen >= position:
            return
        if self._thread is not None or self._listener is not None:
            self.notify()
            deadline = time.monotonic() + timeout
            with self._progress:
                while self._seen < position and (left := deadline - time.monotonic()) > 0:
                    self._progress.wait(left)
            if self._seen >= position:
                return
            self.catch_up()
            return
        if self.view.processed_position() >= position:
            return
        if self._runner is not None:
            try:
                self._runner.wait(position, timeout=timeout)
            except TimeoutError:
                self.catch_up()
            return
        self.catch_up()

    def rebuild(
        self, *, advance: Callable[[int], None] = lambda _: None, workers: int | None = None
    ) -> int:
        """Forget the views and fold the whole log again from position 0, in one transaction
        (in ``workers`` processes; by default as ``projections.rebuild`` decides); then take
        whatever was recorded meanwhile."""
        with self.lock:
            upto = self.ledger.recorder.max_notification_id() or 0
            with LogFold(self.log.table, upto, workers=workers, zone=self.view.zone) as fold:
                done = self.view.rebuild(fold, advance=advance)
        return done + self.catch_up(advance=advance)

    def follow_zone(self, *, advance: Callable[[int], None] = lambda _: None) -> bool:
        """Rebuild the views when they counted days in another time zone than the ledger's
        (``PLEDGER_TIMEZONE`` changed): whether they were rebuilt."""
        if self.view.built_zone() == zone_name(self.view.zone):
            return False
        if self.view.processed_position() == 0:
            self.view.record_zone()  # nothing folded yet: nothing to fold again
            return False
        self.rebuild(advance=advance)
        return True

    def start(self) -> None:
        """Keep the views current in the background until :meth:`stop`.

        Empty views on a log of :data:`REBUILD_FROM` events or more (a new server on a copied
        or restored ledger) are first rebuilt in a thread of their own, at rebuild speed, while
        the server already answers: :attr:`rebuilding` and the log show the progress; writes
        wait for the views' lock until it is done."""
        log_position = self.ledger.recorder.max_notification_id() or 0
        if self.view.processed_position() == 0 and log_position >= REBUILD_FROM:
            self.rebuilding = [0, log_position]
            self._starter = threading.Thread(
                target=self._rebuild_then_keep, name="pledger-views-rebuild", daemon=True
            )
            self._starter.start()
            return
        self._keep()

    def _rebuild_then_keep(self) -> None:
        assert self.rebuilding is not None
        total = self.rebuilding[1]
        logger.info("the views are empty: rebuilding them from the %s events of the log", total)
        step = max(1, total // PROGRESS_STEPS)

        def advance(events: int) -> None:
            assert self.rebuilding is not None
            before = self.rebuilding[0]
            self.rebuilding[0] += events
            if self.rebuilding[0] // step > before // step:
                logger.info("rebuilding the views: %s of %s events", self.rebuilding[0], total)

        started = time.perf_counter()
        try:
            events = self.rebuild(advance=advance)
        except Exception as error:
            self.error = error
            logger.exception("rebuilding the views failed")
            return
        finally:
            self.rebuilding = None
        seconds = time.perf_counter() - started
        logger.info(
            "rebuilt the views from %s events in %.1f s (%.0f events/s)",
            events,
            seconds,
            events / max(seconds, 1e-9),
        )
        if not self._stop.is_set():
            self._keep()

    def _keep(self) -> None:
        self.catch_up()
        if self.uses_runner:
            self._runner = self._open_runner()
            self._watcher = threading.Thread(
                target=self._watch, name="pledger-views-watch", daemon=True
            )
            self._watcher.start()
            return
        self._thread = threading.Thread(target=self._poll, name="pledger-views", daemon=True)
        self._thread.start()

    def _open_runner(self) -> ProjectionRunner[Partnerships, LedgerView]:
        # Entered as a context manager so that it can be exited: that joins its threads and
        # closes the application it built (stop() alone leaves their pools open).
        runner: ProjectionRunner[Partnerships, LedgerView] = ProjectionRunner(
            application_class=Partnerships,
            projection_class=LedgerProjection,
            view_class=PostgresLedgerView,
            env=self.view_env,
        ).__enter__()
        runner.view.log = self.log  # so that it reads pages, and refolds, from the log
        runner.view.zone = self.view.zone  # calendar days in the ledger's time zone
        projection = runner.projection
        assert isinstance(projection, LedgerProjection)
        projection.announce = self._announce
        return runner

    def follow(self) -> None:
        """Leave keeping the views to a projection process (``pledger project``, PostgreSQL)
        and learn each position it reaches from the database's notifications
        (``projections.follow``): a write then waits for its position without polling, and
        catches up itself only when the projection process has not shown it in time."""
        self._listener = PositionListener(
            self.view_env, self._announce, self.view.processed_position
        )
        self._listener.start()

    def run_forever(self) -> None:
        """After :meth:`start` (a projection process, ``pledger project``): block until
        :meth:`interrupt` is called. A runner that stops on an error is restarted by the
        watcher (logged once, shown by /healthz), so the process keeps going; an error the
        start-up rebuild could not get past is raised."""
        starter = self._starter
        while starter is not None and starter.is_alive() and not self._stop.is_set():
            starter.join(timeout=1.0)  # a start-up rebuild; the timeout lets Ctrl-C through
        if self._runner is None and self.error is not None and not self._stop.is_set():
            raise self.error
        while not self._stop.wait(1.0):  # the timeout lets a signal handler run
            pass

    def interrupt(self) -> None:
        """Make :meth:`run_forever` return (safe in a signal handler: it only sets events)."""
        self._stop.set()

    def _poll(self) -> None:
        failures = 0
        while not self._stop.is_set():
            pause = (
                min(RETRY_FIRST_SECONDS * 2 ** min(failures - 1, 16), RETRY_MAX_SECONDS)
                if failures
                else POLL_SECONDS
            )
            self._written.wait(pause)
            self._written.clear()
            if self._stop.is_set():
                return
            try:
                self.catch_up()
            except Exception as error:
                self._failed(error)
                failures += 1
            else:
                self._recovered()
                failures = 0

    def _watch(self) -> None:
        """PostgreSQL: notice when the library's runner stops on an error (``run_forever``
        re-raises it), then restart it once the views can take the log again."""
        while not self._stop.is_set():
            runner = self._runner
            if runner is None:
                return
            try:
                runner.run_forever(timeout=POLL_SECONDS)
            except Exception as error:
                if self._stop.is_set():
                    return
                self._failed(error)
                self._restart()
            else:
                if runner.is_interrupted.is_set() and not self._stop.is_set():
                    self._failed(RuntimeError("the projection runner stopped"))
                    self._restart()

    def _restart(self) -> None:
        """Close the stopped runner; retry with a growing pause until a catch-up from the
        tracked position succeeds, then start a new runner."""
        self._close_runner()
        pause = RETRY_FIRST_SECONDS
        while not self._stop.wait(pause):
            try:
                self.catch_up()
                runner = self._open_runner()
            except Exception as error:
                self._failed(error)
                pause = min(pause * 2, RETRY_MAX_SECONDS)
                continue
            if self._stop.is_set():  # stop() came meanwhile: it will not see this runner
                self._runner = runner
                self._close_runner()
                return
            self._runner = runner
            self.restarts += 1
            self._recovered()
            return

    def _close_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            runner.__exit__(None, None, None)
        except Exception as error:  # the error that stopped it: logged unless it already was
            self._failed(error)
        finally:
            runner.view.datastore.close()  # the runner leaves its view's pool open

    def stop(self) -> None:
        self._stop.set()
        self._written.set()
        if self._starter is not None:
            self._starter.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.stop()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        # A runner that stopped on an error (a rewritten log, say) has had it logged and shown
        # by /healthz (views_error, tampering): stopping the server must not fail on it again.
        self._close_runner()
