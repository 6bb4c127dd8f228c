"""Report formats by the names the API and the CLI accept, with their media types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections.render import agenda_ics, report_csv, report_html, report_json, report_markdown

__all__ = ["REPORT_FORMATS", "REPORT_MEDIA_TYPES", "agenda_ics"]

REPORT_FORMATS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "json": report_json,
    "csv": report_csv,
    "md": report_markdown,
    "html": report_html,
}
REPORT_MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
