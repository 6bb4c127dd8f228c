"""The server's daily checkpoint (issue 15 item 2): made when the latest is a day old and the
log has grown since, on both stores; a report's checkpoint covers its position."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from api.settings import Settings
from api.wiring import Services, open_services
from tests.projections.test_rebuild import record_partners

DAY = timedelta(days=1)
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    opened = open_services(settings)
    yield opened
    opened.close()


def test_a_daily_checkpoint_only_when_a_day_passed_and_the_log_grew(services: Services) -> None:
    checkpoints = services.checkpoints
    assert checkpoints.make_if_older(DAY, NOW) is None  # nothing recorded yet
    record_partners(services, 2)
    services.keeper.catch_up()

    first = checkpoints.make_if_older(DAY, NOW)
    assert first is not None
    assert first.position == services.ledger.last_position()
    assert checkpoints.make_if_older(DAY, NOW + timedelta(hours=23)) is None  # too recent
    assert checkpoints.make_if_older(DAY, NOW + 2 * DAY) is None  # nothing new since
    record_partners(services, 1, first=2)
    services.keeper.catch_up()
    second = checkpoints.make_if_older(DAY, NOW + 2 * DAY)

    assert second is not None
    assert second.tree_size == services.ledger.last_position()
    assert [c.position for c in checkpoints.all()] == [first.position, second.position]
    key = checkpoints.key.public_key
    assert all(c.signed_by(key) for c in checkpoints.all())
    assert checkpoints.covering(first.position) == second  # the latest at or after it
    services.keeper.rebuild()
    assert checkpoints.all()[-1] == second  # a rebuild keeps the statements made
