"""Days and moments as the ledger reads them: in its time zone, and as people write them.

SPEC §2: an ``occurred_at`` may be a date alone (the start of that day) or a date and time
without an offset, both read in the ledger's time zone. SPEC §3 ("Calendar days"): every
calendar-day rule counts days in that zone (``PLEDGER_TIMEZONE``, an IANA name, default
``UTC``); instants are stored and hashed in UTC whatever the zone.

The one grammar for a moment, used by the API and the CSV import alike (ASCII digits only,
whole text matched, so that no number is ever taken for a date):

* ``2026-03-15`` — a date alone;
* ``2026-03-15 14:30``, ``2026-03-15T14:30:05``, ``2026-03-15T14:30:05.25`` — a date and time,
  in the ledger's time zone; with ``Z`` or an offset (``-07:00``) at the end, that moment;
* in CSV files only, and only when the import is told the order (:class:`DateOrder`):
  ``3/15/2026`` (month first), ``15/03/2026`` and ``15.03.2026`` (day first), each optionally
  followed by a time (``3/15/2026 14:30``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DATE_EXAMPLE",
    "DEFAULT_ZONE",
    "ORDER_HINT",
    "AmbiguousDate",
    "DateOrder",
    "day_of",
    "end_of_day",
    "in_zone",
    "ledger_zone",
    "read_day",
    "read_moment",
    "start_of_day",
    "zone_name",
]

DEFAULT_ZONE = "UTC"
DATE_EXAMPLE = "write a date like 2026-03-15, or a date and time like 2026-03-15 14:30"

_TIME = (
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(:(?P<second>[0-9]{2})(\.(?P<fraction>[0-9]{1,6}))?)?"
)
_ISO = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    rf"([Tt ]{_TIME}(?P<offset>[Zz]|[+-][0-9]{{2}}:[0-9]{{2}})?)?"
)
# Day and month in either order, one or two digits, the same separator twice, a 4-digit year.
_ORDERED = re.compile(
    r"(?P<first>[0-9]{1,2})(?P<sep>[/.])(?P<second_part>[0-9]{1,2})(?P=sep)(?P<year>[0-9]{4})"
    rf"( {_TIME})?"
)


class DateOrder(StrEnum):
    """How a CSV file writes day and month: ``mdy`` (``3/15/2026``) or ``dmy`` (``15/03/2026``)."""

    MDY = "mdy"
    DMY = "dmy"


_ORDER_WORDS = {DateOrder.MDY: "month first", DateOrder.DMY: "day first"}
# How an ambiguous date's message names the choice on the command line; the import page says
# it in its own words (api.web.pages).
ORDER_HINT = "(--date-order mdy for 3/15/2026, dmy for 15/03/2026)"


class AmbiguousDate(ValueError):
    """A day-first or month-first date read without being told which (CSV files only)."""


def ledger_zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``UTC``, ``America/Los_Angeles``); ``UTC`` is
    ``datetime.UTC`` itself, so that references in the default zone compare equal.

    Raises ValueError naming ``PLEDGER_TIMEZONE`` for a name the time zone database lacks.
    """
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return UTC if name == DEFAULT_ZONE else ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        msg = (
            f"PLEDGER_TIMEZONE={name!r} is not a time zone name; use an IANA name such as UTC, "
            "America/Los_Angeles or Europe/Paris"
        )
        raise ValueError(msg) from None


def zone_name(zone: tzinfo) -> str:
    """The IANA name of a zone (``UTC`` for ``datetime.UTC``)."""
    return str(getattr(zone, "key", None) or zone.tzname(None) or DEFAULT_ZONE)


def day_of(moment: datetime, zone: tzinfo) -> date:
    """The calendar day an aware ``moment`` falls on in ``zone``."""
    return moment.astimezone(zone).date()


def in_zone(moment: datetime, zone: tzinfo) -> datetime:
    """``moment`` as an aware UTC instant; a naive one is read as a wall-clock time in ``zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def start_of_day(day: date, zone: tzinfo = UTC) -> datetime:
    """The first instant of ``day`` in ``zone``, as an aware UTC datetime."""
    return in_zone(datetime.combine(day, time.min), zone)


def end_of_day(day: date, zone: tzinfo = UTC) -> datetime:
    """The last instant of ``day`` in ``zone`` (aware UTC): an ``as_of`` given as a date
    includes that whole day, and ends at the zone's midnight."""
    if day == date.max:
        return in_zone(datetime.combine(day, time.max), zone)
    return start_of_day(day + timedelta(days=1), zone) - timedelta(microseconds=1)


def read_moment(
    text: str, zone: tzinfo | None, *, date_order: DateOrder | None = None, in_file: bool = False
) -> datetime:
    """A moment as people write it (see the module docstring).

    ``zone``: where a date or a time without an offset is read; ``None`` leaves those naive
    (for a caller that applies the ledger's zone later, :func:`in_zone`). ``in_file``: the text
    comes from a CSV file, where day-first or month-first dates are read in ``date_order``.
    Returns an aware UTC datetime (or naive, as said). Raises :class:`AmbiguousDate` for such a
    date without ``date_order``, ValueError with a message in plain words for anything else.
    """
    found = _ISO.fullmatch(text)
    if found is not None:
        year, month, day = int(found["year"]), int(found["month"]), int(found["day"])
    else:
        found = _ORDERED.fullmatch(text) if in_file else None
        if found is None:
            raise ValueError(f"{text!r} is not a date; {DATE_EXAMPLE}")
        first, second = int(found["first"]), int(found["second_part"])
        if date_order is None:
            raise AmbiguousDate(
                f"{text!r} may have the month or the day first: tell the import which "
                f"{ORDER_HINT}, or write a date like 2026-03-15"
            )
        month, day = (first, second) if date_order is DateOrder.MDY else (second, first)
        year = int(found["year"])
    try:
        moment = _moment(found, year, month, day)
    except ValueError:
        order = "" if date_order is None or found.re is _ISO else f" ({_ORDER_WORDS[date_order]})"
        raise ValueError(f"{text!r} is not a real date or time{order}; {DATE_EXAMPLE}") from None
    offset = found.groupdict().get("offset")
    if offset:
        try:
            moment = moment.replace(
                tzinfo=datetime.fromisoformat(f"2000-01-01T00:00{offset}").tzinfo
            )
        except ValueError:
            raise ValueError(f"{text!r} has no such offset from UTC; {DATE_EXAMPLE}") from None
    elif zone is None:
        return moment
    try:
        return in_zone(moment, zone or UTC)  # aware already when there is no zone
    except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC moment a datetime can hold
        raise ValueError(f"{text!r} is out of range once converted to UTC") from None


def _moment(found: re.Match[str], year: int, month: int, day: int) -> datetime:
    """The naive datetime a match names; ValueError for a day or time the calendar lacks."""
    return datetime(
        year,
        month,
        day,
        int(found["hour"] or 0),
        int(found["minute"] or 0),
        int(found["second"] or 0),
        int((found["fraction"] or "0").ljust(6, "0")),
    )


def read_day(text: str, *, date_order: DateOrder | None = None, in_file: bool = False) -> date:
    """A date alone (``2026-03-15``; in a file also ``3/15/2026`` or ``15.03.2026`` in
    ``date_order``). Raises :class:`AmbiguousDate` or ValueError as :func:`read_moment`."""
    if _ISO.fullmatch(text) is not None and len(text) != 10:
        raise ValueError(f"{text!r} is a date and time; write a date alone, like 2026-03-15")
    found = _ORDERED.fullmatch(text)
    if found is not None and found["hour"] is not None:
        raise ValueError(f"{text!r} is a date and time; write a date alone, like 2026-03-15")
    try:
        return read_moment(text, None, date_order=date_order, in_file=in_file).date()
    except AmbiguousDate:
        raise
    except ValueError as error:
        raise ValueError(str(error).replace(DATE_EXAMPLE, "write a date like 2026-03-15")) from None
