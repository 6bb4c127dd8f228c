"""The rebuild's own reading of the log: ranges of stream ids, and its worker processes.

That a rebuild gives the same views as processing the log page by page is checked with the
views themselves (test_views.py, test_properties.py); here, what those checks rest on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api.settings import Settings
from api.wiring import Services, open_services
from domain.chained import Stamp
from domain.serialization import DATA_MODELS
from domain.values import PartnerRegistered
from projections.logtable import OpenLog
from projections.rebuild import LogFold

START = datetime(2025, 1, 6, 10, tzinfo=UTC)
RECORDER = "test:rebuild"


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    yield opened
    opened.close()


def record_partners(services: Services, count: int, first: int = 0) -> None:
    """Partners ``first`` to ``first + count - 1``, each registered and then met."""
    meeting = DATA_MODELS["meeting_held"].model_validate(
        {"kind": "check_in", "location": "virtual"}
    )
    for n in range(first, first + count):
        when = START + timedelta(days=n)
        pid = services.ledger.register_partner(
            PartnerRegistered(name=f"Partner {n}", kind="individual"), Stamp(when, RECORDER)
        ).stream_id
        services.ledger.record(pid, meeting, Stamp(when + timedelta(hours=1), RECORDER))


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_the_ranges_of_stream_ids_read_every_event_once(services: Services, parts: int) -> None:
    record_partners(services, 12)
    table = services.keeper.log.table
    upto = services.ledger.last_position()
    bounds = [table.split_key(part, parts) for part in range(1, parts)]
    ranges = zip([table.lowest_key(), *bounds], [*bounds, None], strict=True)

    with OpenLog(table) as log:
        whole = [
            e.position for page in log.stream_pages(table.lowest_key(), None, upto, 5) for e in page
        ]
        by_range = [
            e.position
            for lower, upper in ranges
            for page in log.stream_pages(lower, upper, upto, 5)
            for e in page
        ]

    assert sorted(whole) == list(range(1, upto + 1))
    assert by_range == whole  # each event once, the ranges in the order of stream ids


def test_events_recorded_after_the_rebuild_began_are_left_to_the_catch_up(
    services: Services,
) -> None:
    record_partners(services, 3)
    upto = services.ledger.last_position()
    record_partners(services, 1, first=3)

    fold = LogFold(services.keeper.log.table, upto, workers=0)
    rows = list(fold)

    assert sum(r.events for r in rows) == fold.chain.events == upto
    assert fold.chain.position == upto
    assert sum(len(r.partners) for r in rows) == 3


def test_a_failed_worker_fails_the_rebuild(services: Services) -> None:
    record_partners(services, 2)
    no_log = replace(services.keeper.log.table, name="no_such_table")

    with pytest.raises(ChildProcessError, match="rebuild worker"):
        list(LogFold(no_log, services.ledger.last_position(), workers=2))
