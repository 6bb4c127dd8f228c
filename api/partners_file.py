"""``pledger export partners --format csv`` and the UI's download of the same file: every
partner as a row of the partners file that ``pledger import partners`` reads (SPEC §6), so the
file goes back in as it came out.

Each row is the partner as it now stands on the write side (its aggregate, retractions
applied): profile, preferences, contacts, the agreed cadence (blank when none other than the
default was agreed) and, as ``occurred_at``, when it was registered: the day the relationship
began.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

from api.importing import LIST_SEPARATOR, PARTNER_COLUMNS, partner_names
from domain.application import Partnerships
from domain.hashing import format_instant
from domain.partner import DEFAULT_CADENCE_DAYS, Partner

__all__ = ["PARTNERS_FILE_COLUMNS", "partner_cells", "partners_csv_lines"]

PARTNERS_FILE_COLUMNS: tuple[str, ...] = (*PARTNER_COLUMNS, "occurred_at")
# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection"):
# it is written after an apostrophe, which the import takes off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _listed(items: tuple[str, ...] | list[str]) -> str:
    return f"{LIST_SEPARATOR} ".join(items)


def partner_cells(partner: Partner) -> dict[str, str]:
    """One partner as the partners file's cells, by column (blank ones left out)."""
    preferences, contacts = partner.preferences, partner.contacts
    people = contacts.people
    cells = {
        "name": partner.name,
        "kind": partner.kind.value,
        "roles": _listed(partner.roles),
        "communities": _listed(partner.communities),
        "region": partner.region or "",
        "channels": _listed([channel.value for channel in preferences.channels]),
        "language": preferences.language or "",
        "accessibility": _listed(preferences.accessibility),
        "gratitude": _listed(preferences.gratitude),
        "checkin_every_days": (
            str(partner.cadence_days) if partner.cadence_days != DEFAULT_CADENCE_DAYS else ""
        ),
        "email": _listed(contacts.emails),
        "phone": _listed(contacts.phones),
        "address": contacts.address or "",
        "contact_name": _listed([person.name for person in people]),
        # Position by position with contact_name: a blank before a filled item stays.
        "contact_role": _listed([person.role or "" for person in people]).rstrip("; "),
        "contact_email": _listed([person.email or "" for person in people]).rstrip("; "),
        "contact_phone": _listed([person.phone or "" for person in people]).rstrip("; "),
        "occurred_at": format_instant(partner.registered_at) if partner.registered_at else "",
    }
    return {column: _safe(text) for column, text in cells.items() if text}


def _safe(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def partners_csv_lines(
    ledger: Partnerships, advance: Callable[[int], None] = lambda _n: None
) -> Iterator[str]:
    """The partners file, a line at a time (RFC 4180, CRLF), partners in name order then
    id; ``advance(1)`` after each partner. Raises the ledger's errors (a damaged event)."""
    names = partner_names(ledger)
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=PARTNERS_FILE_COLUMNS, restval="", lineterminator="\r\n"
    )
    writer.writeheader()
    for partner_id in sorted(names, key=lambda i: (names[i], str(i))):
        writer.writerow(partner_cells(ledger.get_partner(partner_id)))
        advance(1)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()
