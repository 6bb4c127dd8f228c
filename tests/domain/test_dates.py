"""Dates as people write them, read in the ledger's time zone (domain.dates, issue 12).

One grammar for the API and CSV files: a date alone is the start of that day, a date and time
without an offset is read in the zone, an offset or Z names its moment; day-first and
month-first dates only in a file, and only in the order the import was told. Nothing else,
and never a number.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.dates import (
    AmbiguousDate,
    DateOrder,
    day_of,
    end_of_day,
    ledger_zone,
    read_day,
    read_moment,
)

LA = ZoneInfo("America/Los_Angeles")
PARIS = ZoneInfo("Europe/Paris")


def test_a_date_alone_is_the_start_of_that_day_in_the_ledgers_zone() -> None:
    assert read_moment("2026-01-20", LA) == datetime(2026, 1, 20, 8, tzinfo=UTC)
    assert read_moment("2026-01-20", UTC) == datetime(2026, 1, 20, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-03-15 14:30", "2026-03-15T14:30", "2026-03-15t14:30:00"])
def test_a_time_without_an_offset_is_read_in_the_ledgers_zone(text: str) -> None:
    # 15 March 2026 is daylight saving time in California: UTC-7.
    assert read_moment(text, LA) == datetime(2026, 3, 15, 21, 30, tzinfo=UTC)


def test_an_offset_or_z_names_its_own_moment_whatever_the_zone() -> None:
    assert read_moment("2026-03-15T14:30:00Z", LA) == datetime(2026, 3, 15, 14, 30, tzinfo=UTC)
    assert read_moment("2026-03-15T14:30:00.25-07:00", PARIS) == datetime(
        2026, 3, 15, 21, 30, 0, 250000, tzinfo=UTC
    )


def test_without_a_zone_a_time_without_an_offset_is_left_for_the_caller() -> None:
    assert read_moment("2026-03-15 14:30", None) == datetime(2026, 3, 15, 14, 30)


@pytest.mark.parametrize(
    ("text", "order", "day"),
    [
        ("3/15/2026", DateOrder.MDY, date(2026, 3, 15)),
        ("15/03/2026", DateOrder.DMY, date(2026, 3, 15)),
        ("15.03.2026", DateOrder.DMY, date(2026, 3, 15)),
        ("12/3/2025", DateOrder.MDY, date(2025, 12, 3)),
        ("12/3/2025", DateOrder.DMY, date(2025, 3, 12)),
    ],
)
def test_a_file_may_write_day_and_month_in_the_order_it_was_told(
    text: str, order: DateOrder, day: date
) -> None:
    assert read_day(text, date_order=order, in_file=True) == day
    assert read_moment(text, LA, date_order=order, in_file=True) == read_moment(day.isoformat(), LA)


def test_a_time_may_follow_a_day_first_date() -> None:
    moment = read_moment("15/03/2026 14:30", LA, date_order=DateOrder.DMY, in_file=True)
    assert moment == datetime(2026, 3, 15, 21, 30, tzinfo=UTC)


def test_an_ambiguous_date_without_the_order_names_the_option() -> None:
    with pytest.raises(AmbiguousDate) as refused:
        read_moment("3/15/2026", UTC, in_file=True)
    assert "--date-order mdy" in str(refused.value)
    assert "2026-03-15" in str(refused.value)


def test_a_day_first_date_read_month_first_is_not_a_date() -> None:
    with pytest.raises(
        ValueError, match=r"'15/03/2026' is not a real date or time \(month first\)"
    ):
        read_day("15/03/2026", date_order=DateOrder.MDY, in_file=True)


def test_outside_a_file_only_the_year_first_forms_are_read() -> None:
    with pytest.raises(ValueError, match="is not a date") as refused:
        read_moment("3/15/2026", UTC, date_order=DateOrder.MDY)
    assert not isinstance(refused.value, AmbiguousDate)
    assert "write a date like 2026-03-15, or a date and time like 2026-03-15 14:30" in str(
        refused.value
    )


@pytest.mark.parametrize(
    "text",
    [
        "1798761600",  # Unix seconds
        "20260315",  # basic ISO 8601
        "2026-W11-7",  # a week date
        "1,500.00",  # an amount
        "3/15/26",  # a two-digit year
        "2026-3-15",  # a month without its zero
        "3-15-2026",  # dashes day or month first
        "15/03.2026",  # mixed separators
        "2026-03-15 2:30",  # an hour without its zero
        "2026-03-15T14:30:00+25:00",  # no such offset
        "2026-02-30",  # no such day
        "\uff12\uff10\uff12\uff16-03-15",  # fullwidth digits, another script's
        " 2026-03-15",
        "2026-03-15\n",
    ],
)
def test_lax_forms_and_numbers_are_never_read_as_dates(text: str) -> None:
    with pytest.raises(ValueError, match="2026-03-15") as refused:
        read_moment(text, UTC, date_order=DateOrder.MDY, in_file=True)
    assert "RFC" not in str(refused.value)
    assert "2026-03-15" in str(refused.value)


def test_a_day_is_a_date_alone() -> None:
    with pytest.raises(ValueError, match="write a date alone"):
        read_day("2026-03-15 14:30")
    with pytest.raises(ValueError, match="write a date alone"):
        read_day("3/15/2026 14:30", date_order=DateOrder.MDY, in_file=True)


def test_a_day_ends_at_the_zones_midnight() -> None:
    # 31 March 2026 in California ends at 07:00Z on 1 April (PDT, UTC-7), not at 23:59:59Z.
    end = end_of_day(date(2026, 3, 31), LA)
    assert end == datetime(2026, 4, 1, 6, 59, 59, 999999, tzinfo=UTC)
    assert day_of(end, LA) == date(2026, 3, 31)
    assert day_of(datetime(2026, 4, 1, 7, tzinfo=UTC), LA) == date(2026, 4, 1)
    # The day clocks change has 23 hours: 8 March 2026 in California.
    assert end_of_day(date(2026, 3, 8), LA) - end_of_day(date(2026, 3, 7), LA) == (
        datetime(2026, 3, 9, 7, tzinfo=UTC) - datetime(2026, 3, 8, 8, tzinfo=UTC)
    )


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc ", "../etc/passwd", "/etc/localtime"])
def test_an_unknown_zone_name_is_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(ValueError, match="PLEDGER_TIMEZONE"):
        ledger_zone(name)


def test_utc_is_the_standard_librarys_utc() -> None:
    assert ledger_zone("UTC") is UTC
    assert ledger_zone("America/Los_Angeles") == LA
