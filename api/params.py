"""Reading reference moments and days as users type them, for the CLI and the API alike."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from uuid import UUID

from domain.dates import end_of_day, read_moment
from domain.errors import NotFound, Problem, ValidationFailed
from domain.values import DATE_PATTERN

__all__ = ["parse_as_of", "parse_day", "parse_moment", "parse_uuid"]

_DATE = re.compile(DATE_PATTERN)


def parse_moment(text: str | None, field: str, *, day_end: bool, zone: tzinfo) -> datetime | None:
    """A moment as people write it (``domain.dates``): a date alone means the start of that day
    in the ledger's ``zone`` (its end with ``day_end``), a time without an offset is read in
    ``zone``. Returns an aware UTC datetime, or None for a blank; raises ``ValidationFailed``
    on ``field``."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        moment = read_moment(text, zone)  # the grammar and the calendar both checked here
        if day_end and _DATE.fullmatch(text):
            moment = end_of_day(date.fromisoformat(text), zone)
    except (ValueError, OverflowError) as error:
        message = str(error) if isinstance(error, ValueError) else f"{text!r} is out of range"
        raise ValidationFailed([Problem(field, message)]) from None
    return moment


# Queries look a few years either side of as_of (agenda horizons, review windows); keep that
# arithmetic inside the calendar a datetime can hold.
EARLIEST_AS_OF = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_AS_OF = end_of_day(date(9000, 12, 31))


def parse_as_of(text: str | None, zone: tzinfo) -> datetime | None:
    """An ``as_of``: a date means the whole of that day in the ledger's ``zone`` (it ends at
    the zone's midnight)."""
    moment = parse_moment(text, "as_of", day_end=True, zone=zone)
    if moment is not None and not EARLIEST_AS_OF <= moment <= LATEST_AS_OF:
        raise ValidationFailed([Problem("as_of", "must be between the years 1000 and 9000")])
    return moment


def parse_day(text: str | None, field: str) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        if _DATE.fullmatch(text.strip()) is None:  # fromisoformat alone would read 20260331
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            [Problem(field, f"{text!r} is not a date; write a date like 2026-03-15")]
        ) from None


def parse_uuid(text: str, not_found: type[NotFound]) -> UUID:
    """An id in a path: anything that is not a UUID names nothing on record (404)."""
    try:
        return UUID(text)
    except ValueError:
        raise not_found(text) from None
