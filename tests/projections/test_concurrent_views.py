"""Several processors keeping one set of views on PostgreSQL (issue 11, fault 1).

API workers, the library's projection runner and CLI commands each fold pages of the log into
the same views. Two pages that overlap must never both commit: the digest chain would count
their common events twice. Here two views objects (each with its own connection pool, as two
processes have) process overlapping pages of one log, and the chain is compared with the one
recomputed from the log at every checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from api.settings import Settings
from api.wiring import Services, open_services
from domain.chained import Stamp
from domain.values import Channel, ContactMade, Direction, PartnerRegistered
from projections.folds import Entry
from projections.rows import CHECKPOINT_EVERY, DigestChain
from projections.runner import open_view
from projections.store import LedgerView

pytestmark = pytest.mark.postgres

EVENTS = CHECKPOINT_EVERY + 100  # two checkpoints' worth would do; one and a bit is enough
HANG_GUARD_SECONDS = 30.0  # only turns a hang into a failure


@pytest.fixture
def services(postgres_url: str, tmp_path: Path) -> Iterator[Services]:
    opened = open_services(Settings(db_path=tmp_path / "pledger.db", database_url=postgres_url))
    ledger = opened.ledger
    stamp = Stamp.now("test:views")
    partner = ledger.new_partner(PartnerRegistered(name="Eastside", kind="organization"), stamp)
    for n in range(EVENTS - 1):
        partner.execute(
            ContactMade(channel=Channel.PHONE, direction=Direction.INBOUND, summary=f"call {n}"),
            stamp,
        )
    ledger.save_batch([partner])
    yield opened
    opened.close()


@pytest.fixture
def second_view(services: Services) -> Iterator[LedgerView]:
    """The same views through a pool of their own: another processor, as another process."""
    view = open_view(services.settings.views_env())
    yield view
    view.datastore.close()


def chain_of(entries: list[Entry]) -> DigestChain:
    chain = DigestChain()
    chain.extend((e.position, e.hash) for e in entries)
    return chain


def stored_chain(view: LedgerView) -> tuple[list[tuple[int, str, int]], tuple[int, str, int]]:
    checkpoints = view.select("SELECT position, digest, events FROM {p}digests ORDER BY position")
    (head,) = view.select("SELECT position, digest, events FROM {p}chain_head")
    return (
        [(r["position"], r["digest"], r["events"]) for r in checkpoints],
        (head["position"], head["digest"], head["events"]),
    )


def pause_inside_the_transaction(view: LedgerView, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make ``view`` stop in the middle of its next page (after it read the tracked position,
    before it writes); returns (paused, go) events."""
    paused, go = threading.Event(), threading.Event()
    apply_all = view._apply_all

    def stop_then_apply(c: Any, fold: Any, entries: Any) -> None:
        paused.set()
        assert go.wait(HANG_GUARD_SECONDS)
        apply_all(c, fold, entries)

    monkeypatch.setattr(view, "_apply_all", stop_then_apply)
    return paused, go


def test_a_page_overtaken_by_an_overlapping_one_does_not_commit(
    services: Services, second_view: LedgerView, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a processor that took no lock (as before this fix) committing a shorter page while
    another is in the middle of a longer one, the longer one is refused by the conditional
    tracking update, and a catch-up then brings the chain to the log's."""
    page = services.keeper.log.page(0, EVENTS)
    assert len(page) == EVENTS
    view = services.view
    paused, go = pause_inside_the_transaction(view, monkeypatch)
    monkeypatch.setattr(second_view, "_lock_views", lambda c: None)
    outcome: list[object] = []

    def long_page() -> None:
        try:
            outcome.append(view.process_entries(page))
        except IntegrityError as refused:
            outcome.append(refused)

    worker = threading.Thread(target=long_page)
    worker.start()
    assert paused.wait(HANG_GUARD_SECONDS)
    assert second_view.process_entries(page[:100]) == 100
    go.set()
    worker.join(HANG_GUARD_SECONDS)

    assert [type(o) for o in outcome] == [IntegrityError], outcome
    monkeypatch.undo()
    assert services.keeper.catch_up() == EVENTS - 100
    expected = chain_of(page)
    assert stored_chain(view) == (
        expected.checkpoints,
        (expected.position, expected.digest, expected.events),
    )


def test_a_second_processor_waits_for_the_page_in_progress_and_then_has_nothing_to_do(
    services: Services, second_view: LedgerView, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = services.keeper.log.page(0, EVENTS)
    view = services.view
    paused, go = pause_inside_the_transaction(view, monkeypatch)
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.update(first=view.process_entries(page)))
    second = threading.Thread(
        target=lambda: results.update(second=second_view.process_entries(page[:100]))
    )
    first.start()
    assert paused.wait(HANG_GUARD_SECONDS)
    second.start()
    # Let the first page go on only once the second processor is waiting for the views' lock
    # (or, were there no lock, has finished its page).
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while second.is_alive() and not advisory_lock_awaited(services) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.set()
    first.join(HANG_GUARD_SECONDS)
    second.join(HANG_GUARD_SECONDS)

    assert results == {"first": EVENTS, "second": 0}
    expected = chain_of(page)
    assert stored_chain(view)[1] == (expected.position, expected.digest, expected.events)


def advisory_lock_awaited(services: Services) -> bool:
    url = services.settings.database_url
    assert url is not None
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return bool(row and row[0])
