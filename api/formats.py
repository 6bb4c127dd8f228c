"""Report formats by the names the API and the CLI accept, with their media types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from domain.dates import DEFAULT_ZONE, ledger_zone
from projections.render import (
    agenda_ics,
    report_csv,
    report_html,
    report_json,
    report_markdown,
)

__all__ = ["FOR_PEOPLE", "REPORT_FORMATS", "REPORT_MEDIA_TYPES", "agenda_ics", "render_report"]

REPORT_FORMATS: dict[str, Callable[..., bytes]] = {
    "json": report_json,
    "csv": report_csv,
    "md": report_markdown,
    "html": report_html,
}
# The formats people read: they take the report with its vision, measures and promises
# (LedgerQueries.report(for_people=True)), and show money and days in a locale and time zone.
FOR_PEOPLE = frozenset({"md", "html"})
REPORT_MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


def render_report(
    fmt: str, report: dict[str, Any], *, locale: str, zone: tzinfo | None = None
) -> bytes:
    """``report`` as ``fmt`` (a key of REPORT_FORMATS): json and csv exactly as the query
    states it; md and html for people, money in the CLDR ``locale`` and days in ``zone``
    (default: the zone the report states it counted days in, SPEC §3; UTC for reports made
    before reports stated one). Raises ValueError for a zone name the database lacks."""
    if fmt in FOR_PEOPLE:
        if zone is None:
            zone = ledger_zone(str(report.get("time_zone", DEFAULT_ZONE)))
        return REPORT_FORMATS[fmt](report, locale=locale, zone=zone)
    return REPORT_FORMATS[fmt](report)
