"""Group commit: every API write of this process goes through one writer thread.

Requests that arrive while a transaction is being written wait in a queue; the writer then runs
all their commands against the aggregates (kept in a small cache it alone touches) and saves
every new event in ONE transaction, with each request's Idempotency-Key row. One fsync serves
many requests. If the shared save conflicts (another process wrote to one of those streams, or
a key was already used), the writer forgets the cached aggregates and falls back to saving the
requests one by one, each with a fresh load and the usual retry. After each transaction the
views take its events straight from memory (or catch up from the log when another process
wrote in between) before the requests are answered, so every answer is visible to the next
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.recorders import RequestMark
from domain.application import Partnerships, Recorded, SaveOptions, recorded_from
from domain.chained import ChainedAggregate
from domain.errors import LedgerError, VersionConflict
from projections.log import entry_of_event
from projections.runner import ViewKeeper

__all__ = ["VIEWS_BEHIND", "GroupWriter", "ViewsBehindHeader", "WriteJob"]

logger = logging.getLogger("pledger.writer")

# Set (in the request's own context) when a committed write's views could not show it; the
# app's ViewsBehindHeader middleware then says so on the response.
VIEWS_BEHIND: ContextVar[bool] = ContextVar("pledger_views_behind", default=False)
_reported: set[str] = set()  # each distinct failure is logged once, not once per request


def _report_views_failure(position: int, error: Exception) -> None:
    text = f"{type(error).__name__}: {error}"
    if text not in _reported:
        if len(_reported) >= 1000:
            _reported.clear()
        _reported.add(text)
        logger.error(
            "event at position %s is recorded, but the views could not take it: %s",
            position,
            text,
        )


class ViewsBehindHeader:
    """ASGI middleware: a response to a write whose views are behind (:data:`VIEWS_BEHIND`)
    carries ``Pledger-Views: behind``; the write itself was recorded (201 as usual)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = VIEWS_BEHIND.set(False)

        async def say_if_behind(message: Message) -> None:
            if message["type"] == "http.response.start" and VIEWS_BEHIND.get():
                headers = MutableHeaders(scope=message)
                headers["Pledger-Views"] = "behind"
            await send(message)

        try:
            await self.app(scope, receive, say_if_behind)
        finally:
            VIEWS_BEHIND.reset(token)


MAX_BATCH = 64
CACHE_SIZE = 2000
# The cache is bounded by what its aggregates hold, not only by how many there are (issue 17
# item 6): a cached partner is compact (its state, not its events), and ``held()`` counts the
# records, references and ids that state keeps (a few tens of bytes each).
CACHE_EVENTS = 50_000
# After a shared save conflicted (another process wrote to a cached stream), the writer looks
# for other processes' events on its cached streams before each batch, for this long.
SHARED_SECONDS = 30.0
VIEWS_TIMEOUT = 2.0  # seconds a write waits for the views to show it before catching up itself


@dataclass
class WriteJob:
    """One request's write.

    ``create`` makes a new aggregate (registration, formation); otherwise ``stream_id`` names
    the aggregate that ``command`` changes, loaded with ``load``. ``alone`` is the same write
    on the one-at-a-time path, used when a shared transaction conflicts.
    """

    alone: Callable[[SaveOptions | None], Recorded]
    # Rules that look beyond the aggregate itself (a referenced partner or coalition exists);
    # run in the writer thread just before ``command``, as ``alone`` runs them itself.
    check: Callable[[], None] = lambda: None
    mark: RequestMark | None = None
    on_conflict: Callable[[], None] = lambda: None
    create: Callable[[], ChainedAggregate] | None = None
    stream_id: UUID | None = None
    load: Callable[[], ChainedAggregate] | None = None
    # What ``load`` returns: a cached aggregate of another kind under the same id (a coalition's
    # id sent as a partner's) must go through ``load``, which refuses it as not found.
    kind: type[ChainedAggregate] | None = None
    command: Callable[[Any], None] | None = None
    expected_version: int | None = None
    # Saved by ``alone`` only, after the stream's cached aggregate is forgotten (an erasure:
    # the cache must not keep the personal data it shreds).
    solo: bool = False
    version_made: int = 0
    future: Future[Recorded] = field(default_factory=Future)
    # Set by GroupWriter.record: the awaiting request's event loop and its own future, which
    # the writer settles once per batch and loop (one wake-up of the loop, not one per job).
    answer: tuple[asyncio.AbstractEventLoop, asyncio.Future[Recorded]] | None = None

    def options(self) -> SaveOptions | None:
        if self.mark is None:
            return None
        return SaveOptions({"requests": [self.mark]}, self.on_conflict)


def _settle(jobs: list[WriteJob]) -> None:
    """In the event loop: give each waiting request its job's outcome."""
    for job in jobs:
        assert job.answer is not None
        answer = job.answer[1]
        if answer.done():  # cancelled: the shield has let the request go
            continue
        error = job.future.exception()
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(job.future.result())


def _answer(batch: list[WriteJob]) -> None:
    """Hand a written batch's outcomes to the requests awaiting them: one call into each event
    loop for the whole batch. A job not settled yet (never expected) is answered when it is."""
    waiting: dict[asyncio.AbstractEventLoop, list[WriteJob]] = {}
    for job in batch:
        if job.answer is None:
            continue
        if not job.future.done():
            job.future.add_done_callback(functools.partial(_answer_one, job))
            continue
        waiting.setdefault(job.answer[0], []).append(job)
    for loop, jobs in waiting.items():
        _call_in(loop, jobs)


def _answer_one(job: WriteJob, _: Future[Recorded]) -> None:
    assert job.answer is not None
    _call_in(job.answer[0], [job])


def _call_in(loop: asyncio.AbstractEventLoop, jobs: list[WriteJob]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, jobs)


class GroupWriter:
    def __init__(self, ledger: Partnerships, keeper: ViewKeeper) -> None:
        self.ledger = ledger
        self.keeper = keeper
        self._queue: queue.Queue[WriteJob | None] = queue.Queue()
        self._cache: OrderedDict[UUID, ChainedAggregate] = OrderedDict()
        self._held: dict[UUID, int] = {}  # events each cached aggregate holds (its version)
        self.events_held = 0
        self._thread: threading.Thread | None = None
        # The last error that kept the views from showing a committed write (for /healthz).
        self.views_failure: Exception | None = None
        # Writes whose views did not show them within VIEWS_TIMEOUT, so that this process
        # caught the views up itself (for /healthz: the views' keeper is slow or gone).
        self.views_late = 0
        # Shared saves that conflicted; until _shared_until, cached streams are checked first.
        self.conflicts = 0
        self._shared_until = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pledger-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, job: WriteJob) -> Recorded:
        """Queue a write and wait for its outcome (or run it here when no writer runs)."""
        if self._thread is None:
            recorded = job.alone(job.options())
            self.keeper.wait_for(recorded.position)
            return recorded
        self._queue.put(job)
        recorded = job.future.result()
        self.keeper.wait_for(recorded.position)  # read-your-writes, in the request's thread
        return recorded

    async def record(self, job: WriteJob) -> Recorded:
        """:meth:`submit` for async routes: the request waits for the writer and then for the
        views without holding a thread of the server's pool.

        Once the event is committed, the answer is that it was recorded, whatever happens
        next: if the views cannot show it (stuck, failing, too slow), the error is logged and
        :data:`VIEWS_BEHIND` is set for this request, so that the response says the views are
        behind (``Pledger-Views: behind``) instead of a 500 that would invite a retry, and a
        second recording of the same event.
        """
        if self._thread is None:
            recorded = await run_in_threadpool(job.alone, job.options())
        else:
            loop = asyncio.get_running_loop()
            answer: asyncio.Future[Recorded] = loop.create_future()
            job.answer = (loop, answer)
            self._queue.put(job)
            # Shielded: a request that goes away must not cancel what the writer will finish.
            recorded = await asyncio.shield(answer)
        # Committed from here on: nothing below may turn the answer into a failure.
        try:
            await self._views_show(recorded.position)
        except Exception as error:  # the write stands; the views are reported behind
            VIEWS_BEHIND.set(True)
            self.views_failure = error
            _report_views_failure(recorded.position, error)
        return recorded

    async def _views_show(self, position: int) -> None:
        """Wait until the views reflect ``position`` (read-your-writes)."""
        if self.keeper.has_seen(position):  # the usual case: the writer's views took it
            return
        seen = self.keeper.when_seen(position)
        if seen is None:
            await run_in_threadpool(self.keeper.wait_for, position)
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(seen), VIEWS_TIMEOUT)
        except TimeoutError:
            self.views_late += 1
            # The views' thread (or the projection process) is stuck, slow or gone: catch up
            # here now, having waited long enough already.
            await run_in_threadpool(self.keeper.wait_for, position, 0.0)

    # ---- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            # Let the event loop's thread finish the requests it is reading (they join this
            # batch) before the queue is drained: it holds the GIL until it waits for more.
            time.sleep(0)
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            try:
                self._write(batch)
            finally:
                _answer(batch)

    def _write(self, batch: list[WriteJob]) -> None:
        solo = [job for job in batch if job.solo]
        if solo:
            batch = [job for job in batch if not job.solo]
            for job in solo:
                if job.stream_id is not None:
                    self._forget(job.stream_id)
            with self.keeper.lock:
                self._one_by_one(solo)
        if time.monotonic() < self._shared_until:
            self._catch_up_cached([job.stream_id for job in batch if job.stream_id is not None])
        staged: list[tuple[WriteJob, ChainedAggregate]] = []
        touched: dict[UUID, ChainedAggregate] = {}
        for job in batch:
            try:
                aggregate = self._stage(job, touched)
            except LedgerError as error:
                job.future.set_exception(error)
            except Exception as error:
                job.future.set_exception(error)
            else:
                staged.append((job, aggregate))
        if not staged:
            return
        # Each key names the version its own job made: two jobs on one partner in a batch share
        # the aggregate, whose version by now is the last job's.
        marks = [
            RequestMark(
                job.mark.key_hash,
                job.mark.fingerprint,
                job.mark.route,
                str(aggregate.id),
                job.version_made,
            )
            for job, aggregate in staged
            if job.mark is not None
        ]
        with self.keeper.lock:  # the views take these events before the next save anywhere
            self._save(staged, touched, marks)

    def _save(
        self,
        staged: list[tuple[WriteJob, ChainedAggregate]],
        touched: dict[UUID, ChainedAggregate],
        marks: list[RequestMark],
    ) -> None:
        try:
            recordings = self.ledger.save(*touched.values(), requests=marks)
        except IntegrityError:
            self.conflicts += 1
            self._shared_until = time.monotonic() + SHARED_SECONDS
            for stream_id in touched:
                self._forget(stream_id)
            self._one_by_one([job for job, _ in staged])
            return
        except Exception as error:
            for stream_id in touched:
                self._forget(stream_id)
            for job, _ in staged:
                job.future.set_exception(error)
            return
        by_event = {
            (r.domain_event.originator_id, r.domain_event.originator_version): r for r in recordings
        }
        for aggregate in touched.values():
            self._remember(aggregate)
        # The views take the new events straight from memory, before the requests are
        # answered: each answer is then readable at once (read-your-writes).
        self.keeper.take(
            [
                entry_of_event(cast(ChainedAggregate.Event, r.domain_event), r.notification.id)
                for r in recordings
            ]
        )
        for job, aggregate in staged:
            job.future.set_result(recorded_from(by_event[aggregate.id, job.version_made]))

    def _stage(self, job: WriteJob, touched: dict[UUID, ChainedAggregate]) -> ChainedAggregate:
        """Run the job's command on its aggregate (no I/O but a load on a cache miss)."""
        job.check()
        if job.create is not None:
            aggregate = job.create()
            touched[aggregate.id] = aggregate
            job.stream_id = aggregate.id
            job.version_made = aggregate.version
            return aggregate
        assert job.stream_id is not None
        assert job.load is not None
        assert job.command is not None
        known = touched.get(job.stream_id) or self._cached(job.stream_id)
        if known is None or (job.kind is not None and not isinstance(known, job.kind)):
            known = job.load()
        aggregate = known
        if job.expected_version is not None and aggregate.version != job.expected_version:
            raise VersionConflict(job.expected_version, aggregate.version)
        job.command(aggregate)
        touched[job.stream_id] = aggregate
        job.version_made = aggregate.version
        return aggregate

    def _cached(self, stream_id: UUID) -> ChainedAggregate | None:
        aggregate = self._cache.get(stream_id)
        if aggregate is not None:
            self._cache.move_to_end(stream_id)
        return aggregate

    def _remember(self, aggregate: ChainedAggregate) -> None:
        """Keep ``aggregate`` (most recently used last), compact (a partner registered here,
        or given its entries for a retraction, lets them go: they are in the log); evict the
        least recently used while the cache holds more than CACHE_SIZE aggregates or
        CACHE_EVENTS items (``ChainedAggregate.held``)."""
        self._forget(aggregate.id)
        aggregate.forget_history()
        held = aggregate.held()
        self._cache[aggregate.id] = aggregate
        self._held[aggregate.id] = held
        self.events_held += held
        while len(self._cache) > 1 and (
            len(self._cache) > CACHE_SIZE or self.events_held > CACHE_EVENTS
        ):
            self._forget(next(iter(self._cache)))

    def _catch_up_cached(self, stream_ids: list[UUID]) -> None:
        """Bring the cached aggregates of ``stream_ids`` up to the log (another process wrote
        to them) by applying only the events recorded since their version, rather than letting
        the shared save conflict and every one of them be loaded again from its first event.
        One indexed query tells which are behind; one that cannot be brought up is dropped."""
        cached = [sid for sid in dict.fromkeys(stream_ids) if sid in self._cache]
        if not cached:
            return
        versions = self.keeper.log.last_versions([str(sid) for sid in cached])
        for sid in cached:
            aggregate = self._cache[sid]
            if versions.get(str(sid), 0) <= aggregate.version:
                continue
            try:
                for stored in self.ledger.recorder.select_events(sid, gt=aggregate.version):
                    event = self.ledger.mapper.to_domain_event(stored)
                    cast(ChainedAggregate.Event, event).mutate(aggregate)
            except Exception:  # a damaged event, or a race: load it afresh when needed
                self._forget(sid)
            else:
                self._remember(aggregate)

    def _forget(self, stream_id: UUID) -> None:
        if self._cache.pop(stream_id, None) is not None:
            self.events_held -= self._held.pop(stream_id)

    def _one_by_one(self, jobs: list[WriteJob]) -> None:
        for job in jobs:
            try:
                recorded = job.alone(job.options())
            except Exception as error:
                job.future.set_exception(error)
            else:
                self.keeper.notify()
                job.future.set_result(recorded)
