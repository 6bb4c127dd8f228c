"""How a report's check stays cheap and still catches a change (issue 15 item 1).

Given streams that checked out once, a second report reads none of their events again while
the log's change counter and their last versions stand still; an UPDATE or DELETE on the log's
table moves the counter (on both stores), and then every counted stream is read again; a stream
that grew is read again too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from api.settings import Settings
from api.wiring import Services, open_services
from domain.chained import Stamp
from domain.values import Channel, ContactMade, Direction, PartnerKind, PartnerRegistered


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    yield opened
    opened.close()


def _stamp(day: int) -> Stamp:
    return Stamp(datetime(2025, 4, day, 9, tzinfo=UTC), "steward:ana")


def _partner(services: Services) -> str:
    recorded = services.ledger.register_partner(
        PartnerRegistered(name="Red de Huertas", kind=PartnerKind.ORGANIZATION), _stamp(1)
    )
    services.ledger.record(
        recorded.stream_id,
        ContactMade(channel=Channel.PHONE, direction=Direction.OUTBOUND, summary="hola"),
        _stamp(2),
    )
    services.keeper.catch_up()
    return str(recorded.stream_id)


def _execute(settings: Settings, statement: str) -> None:
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg:
            pg.execute(statement.replace("stored_events", "pledger_events"))
        return
    lite = sqlite3.connect(settings.db_path)
    try:
        with lite:
            lite.execute(statement)
    finally:
        lite.close()


def _reads(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record which streams each check reads from the log."""
    vouching = services.queries.vouching
    calls: list[list[str]] = []
    real = vouching._read

    def counted(stream_ids: list[str]) -> Any:
        calls.append(list(stream_ids))
        return real(stream_ids)

    monkeypatch.setattr(vouching, "_read", counted)
    return calls


def test_a_stream_that_checked_out_is_not_read_again_until_the_log_changes(
    services: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner = _partner(services)
    reads = _reads(services, monkeypatch)
    vouching = services.queries.vouching

    vouching.check([partner])
    vouching.check([partner])
    assert reads == [[partner], []]

    before = vouching.changes.marker()
    _execute(settings, "UPDATE stored_events SET state = state WHERE originator_version = 1")
    assert vouching.changes.marker() > before
    vouching.check([partner])
    assert reads[-1] == [partner]


def test_deleting_from_the_log_moves_the_change_counter(
    services: Services, settings: Settings
) -> None:
    _partner(services)
    vouching = services.queries.vouching
    before = vouching.changes.marker()

    _execute(settings, "DELETE FROM stored_events WHERE originator_version = 2")

    assert vouching.changes.marker() > before


def test_a_stream_that_grew_is_read_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner = _partner(services)
    vouching = services.queries.vouching
    vouching.check([partner])
    reads = _reads(services, monkeypatch)

    services.ledger.record(
        UUID(partner),
        ContactMade(channel=Channel.EMAIL, direction=Direction.INBOUND, summary="otra vez"),
        _stamp(3),
    )
    vouching.check([partner])

    assert reads == [[partner]]
