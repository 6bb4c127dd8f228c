"""Reading reference moments and days as users type them, for the CLI and the API alike."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from uuid import UUID

from domain.errors import NotFound, Problem, ValidationFailed
from domain.values import DATE_PATTERN, INSTANT_PATTERN
from projections.queries import end_of_day

__all__ = ["parse_as_of", "parse_day", "parse_moment", "parse_uuid"]

_DATE = re.compile(DATE_PATTERN)
_INSTANT = re.compile(INSTANT_PATTERN)


def parse_moment(text: str | None, field: str, *, day_end: bool) -> datetime | None:
    """``2026-03-31`` (start or end of that UTC day) or an RFC 3339 time with a zone."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if _INSTANT.fullmatch(text) is None:  # fromisoformat alone would read 20260331
            raise ValueError(text)
        if len(text) == 10:
            day = date.fromisoformat(text)
            return end_of_day(day) if day_end else datetime.combine(day, time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            [
                Problem(
                    field,
                    f"{text!r} is neither a date (2026-03-31) nor a time (2026-03-31T17:00:00Z)",
                )
            ]
        ) from None
    if moment.tzinfo is None:
        raise ValidationFailed([Problem(field, f"{text!r} has no timezone; add Z for UTC")])
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is past the last moment a datetime holds
        raise ValidationFailed([Problem(field, f"{text!r} is out of range in UTC")]) from None


# Queries look a few years either side of as_of (agenda horizons, review windows); keep that
# arithmetic inside the calendar a datetime can hold.
EARLIEST_AS_OF = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_AS_OF = end_of_day(date(9000, 12, 31))


def parse_as_of(text: str | None) -> datetime | None:
    """An ``as_of``: a date means the whole of that UTC day."""
    moment = parse_moment(text, "as_of", day_end=True)
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
            [Problem(field, f"{text!r} is not a date such as 2026-03-31")]
        ) from None


def parse_uuid(text: str, not_found: type[NotFound]) -> UUID:
    """An id in a path: anything that is not a UUID names nothing on record (404)."""
    try:
        return UUID(text)
    except ValueError:
        raise not_found(text) from None
