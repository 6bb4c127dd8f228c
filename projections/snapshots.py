"""Partner snapshots as the views store them: compact JSON, and back.

A snapshot is the fold of a partner's counting entries (``folds.fold_partner``); the views keep
the current one per partner, so that questions about "now" need no replay.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import orjson

from projections.folds import Breach, CommitmentView, PartnerSnapshot, no_contacts

__all__ = ["snapshot_from_json", "snapshot_to_json"]


def _p(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _i(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Snapshots hold aware UTC instants only. orjson writes datetimes and dates itself, in C, as
# exactly their isoformat() (``2025-01-05T15:00:00+00:00``, ``2025-01-05``), which fromisoformat()
# reads back; this codec runs for every partner a write touches.
def snapshot_to_json(snap: PartnerSnapshot) -> bytes:
    document = {
        "v": snap.version,
        "p": snap.position,
        "profile": snap.profile,
        "stage": snap.stage,
        "cadence": snap.cadence_days,
        "reg": snap.registered_at,
        "began": snap.began_at,
        "touch": snap.last_touch_at,
        "c": [
            [
                c.commitment_id,
                c.owed_by,
                c.description,
                c.resource,
                c.made_at,
                c.original_due_on,
                c.due_on,
                c.coalition_id,
                c.amount,
                c.currency,
                c.version,
                c.fulfilled_at,
                c.due_on_at_fulfilment,
                c.cancelled_at,
                c.renegotiations,
                c.renegotiated_after_due,
            ]
            for c in snap.commitments.values()
        ],
        "pay": [[m, str(a), cur, cid] for m, a, cur, cid in snap.payments],
        "thanks": snap.thanks,
        "out": snap.outcomes,
        "fb": snap.feedback,
        "contrib": snap.contributions,
        "b": [
            [b.breach_id, b.severity, b.caused_by, b.occurred_at, b.repaired_at]
            for b in snap.breaches.values()
        ],
    }
    return orjson.dumps(document)


def snapshot_from_json(partner_id: str, raw: bytes | str, zone: tzinfo = UTC) -> PartnerSnapshot:
    """A stored snapshot back, its days counted in ``zone`` (the ledger's time zone, which the
    views were folded in)."""
    doc: dict[str, Any] = orjson.loads(raw)
    snap = PartnerSnapshot(
        partner_id,
        version=doc["v"],
        position=doc["p"],
        # A snapshot stored before contacts existed: the partner has none (last, where a
        # fold puts them, so that an answer is the same bytes either way).
        profile={**doc["profile"], "contacts": doc["profile"].get("contacts") or no_contacts()},
        stage=doc["stage"],
        cadence_days=doc["cadence"],
        registered_at=_p(doc["reg"]),
        # Snapshots stored before the relationship's start was kept began at the registration.
        began_at=_p(doc.get("began", doc["reg"])),
        last_touch_at=_p(doc["touch"]),
        zone=zone,
    )
    for row in doc["c"]:
        snap.commitments[row[0]] = CommitmentView(
            commitment_id=row[0],
            owed_by=row[1],
            description=row[2],
            resource=row[3],
            made_at=_i(row[4]),
            original_due_on=date.fromisoformat(row[5]),
            due_on=date.fromisoformat(row[6]),
            coalition_id=row[7],
            amount=row[8],
            currency=row[9],
            version=row[10],
            fulfilled_at=_p(row[11]),
            due_on_at_fulfilment=date.fromisoformat(row[12]) if row[12] else None,
            cancelled_at=_p(row[13]),
            renegotiations=row[14],
            renegotiated_after_due=row[15],
            zone=zone,
        )
    snap.payments = [(_i(m), Decimal(a), cur, cid) for m, a, cur, cid in doc["pay"]]
    snap.thanks = [_i(m) for m in doc["thanks"]]
    snap.outcomes = [_i(m) for m in doc["out"]]
    snap.feedback = [_i(m) for m in doc["fb"]]
    snap.contributions = [_i(m) for m in doc["contrib"]]
    for breach_id, severity, caused_by, occurred, repaired in doc["b"]:
        snap.breaches[breach_id] = Breach(
            breach_id, severity, caused_by, _i(occurred), _p(repaired)
        )
    return snap
