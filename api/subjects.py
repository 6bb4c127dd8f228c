"""Data subjects' rights over the ledger (issue 16): access (GDPR Art. 15) and the choice of
partners whose retention period ran out (GDPR Art. 5(1)(e), storage limitation).

Erasure itself (Art. 17) is ``LedgerService.erase_personal_data``; this module only reads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Any
from uuid import UUID

from domain.dates import day_of
from domain.errors import PartnerNotFound
from domain.hashing import format_instant
from domain.personal import PERSONAL
from domain.serialization import DATA_MODELS
from projections.folds import Entry
from projections.log import LogReader

__all__ = ["ended_before", "subject_access"]


def _held(entry: Entry) -> dict[str, Any]:
    """The personal fields an entry shows (values, or placeholders once erased)."""
    model = DATA_MODELS.get(entry.type)
    fields = model.PERSONAL_FIELDS if model else ()
    return {name: entry.data[name] for name in fields if entry.data.get(name) not in (None, "", [])}


def subject_access(log: LogReader, ledger: Any, partner_id: UUID) -> dict[str, Any]:
    """Everything the ledger holds about one partner, readable: each event of their history
    with its personal fields as held now, and their personal values on other streams (a
    coalition's ``member_left``). Shape: ``{subject, generated_at, erased, events: [{position,
    version, type, occurred_at, recorded_at, recorded_by, personal, data}], elsewhere:
    [{stream_id, version, personal}]}``. Raises PartnerNotFound (404)."""
    subject = str(partner_id)
    entries = log.stream(subject)
    if not entries or entries[0].type != "partner_registered":
        raise PartnerNotFound(partner_id)
    elsewhere = []
    read = getattr(ledger.recorder, "disclosed_of_subject", None)
    for (stream_id, version), disclosed in sorted((read(subject) if read else {}).items()):
        if stream_id != subject:
            values = {name: value for name, (_, value) in sorted(disclosed.items())}
            elsewhere.append({"stream_id": stream_id, "version": version, "personal": values})
    return {
        "subject": subject,
        "generated_at": format_instant(datetime.now(UTC)),
        "erased": any(e.type == "personal_data_erased" for e in entries),
        "events": [
            {
                "position": e.position,
                "version": e.version,
                "type": e.type,
                "occurred_at": format_instant(e.occurred_at),
                "recorded_at": e.recorded_at,
                "recorded_by": e.recorded_by,
                "personal": _held(e),
                "data": {k: v for k, v in e.data.items() if k != PERSONAL},
            }
            for e in entries
        ],
        "elsewhere": elsewhere,
    }


def ended_before(
    log: LogReader, partner_ids: list[str], before: date, zone: tzinfo = UTC
) -> list[str]:
    """Of ``partner_ids``, those whose relationship ended (their latest ``stage_changed`` is
    to ``ended``) on a day before ``before`` (days in ``zone``, the ledger's time zone) and
    whose personal data is still held (not erased since their last event that carried any),
    in the order given."""
    chosen = []
    for partner_id, entries in log.streams(partner_ids).items():
        stages = [e for e in entries if e.type == "stage_changed"]
        if not stages or stages[-1].data.get("stage") != "ended":
            continue
        if day_of(stages[-1].occurred_at, zone) >= before:
            continue
        last_erasure = max(
            (e.version for e in entries if e.type == "personal_data_erased"), default=0
        )
        if any(e.version > last_erasure and _held(e) for e in entries):
            chosen.append(partner_id)
    return chosen
