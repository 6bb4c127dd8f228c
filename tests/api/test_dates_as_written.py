"""``occurred_at`` as people write it, through the API and the pages (issue 12, item 2).

In a ledger kept in America/Los_Angeles, a date alone is the start of that day there and a
date and time without an offset is that wall-clock time there; with ``Z`` or an offset it is
that moment. Anything else is refused with a plain-words message and an example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from api.settings import Settings
from tests.api.conftest import Api, _running

LA = "America/Los_Angeles"


@pytest.fixture
def la_api(settings: Settings) -> Iterator[Api]:
    """The app on a fresh ledger kept in California time (SQLite, then PostgreSQL)."""
    yield from _running(dataclasses.replace(settings, time_zone=LA))


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("2026-01-20", "2026-01-20T08:00:00.000000Z"),  # PST, UTC-8
        ("2026-03-15 14:30", "2026-03-15T21:30:00.000000Z"),  # PDT, UTC-7
        ("2026-03-15T14:30:05", "2026-03-15T21:30:05.000000Z"),
        ("2026-03-15T14:30:00Z", "2026-03-15T14:30:00.000000Z"),
        ("2026-03-15T14:30:00+01:00", "2026-03-15T13:30:00.000000Z"),
    ],
)
def test_occurred_at_is_read_in_the_ledgers_time_zone(
    la_api: Api, written: str, stored: str
) -> None:
    partner = la_api.register("Valley Promotoras", occurred_at="2026-01-02")

    la_api.append(partner, "stage_changed", written, stage="exploring")

    assert la_api.log()[-1]["occurred_at"] == stored
    assert la_api.read(f"/v1/partners/{partner}")["registered_at"] == (
        "2026-01-02T08:00:00.000000Z"
    )


@pytest.mark.parametrize("written", ["3/15/2026", "15.03.2026", "20260315", "2026-03-15T25:00"])
def test_other_forms_are_refused_in_plain_words(la_api: Api, written: str) -> None:
    partner = la_api.register("Valley Promotoras", occurred_at="2026-01-02")

    response = la_api.client.post(
        f"/v1/partners/{partner}/events",
        json={"type": "stage_changed", "stage": "exploring", "occurred_at": written},
        headers=la_api.steward,
    )

    la_api.assert_problem(response, 422, "2026-03-15")
    assert "occurred_at" in response.text
    assert "RFC" not in response.text
    assert "--date-order" not in response.text  # the API reads no day-first dates at all


def test_as_of_a_date_ends_at_midnight_in_the_ledgers_time_zone(la_api: Api) -> None:
    partner = la_api.register("Valley Promotoras", occurred_at="2026-01-02")
    la_api.append(partner, "stage_changed", "2026-03-31 22:00", stage="exploring")

    on_the_31st = la_api.read(f"/v1/partners/{partner}/timeline", as_of="2026-03-31")

    assert on_the_31st["as_of"] == "2026-04-01T06:59:59.999999Z"
    assert [e["type"] for e in on_the_31st["events"]] == ["partner_registered", "stage_changed"]


def test_the_pages_name_the_ledgers_time_zone(la_api: Api) -> None:
    response = la_api.client.get("/signin")

    assert response.status_code == 200
    assert '<span class="time-zone">America/Los_Angeles</span>' in response.text
