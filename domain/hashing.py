"""The audit trail's arithmetic (SPEC §5): each event's hash, and the ledger digest.

    hash = sha256_hex(utf8(json.dumps({stream_id, version, type, occurred_at, recorded_at,
                                       recorded_by, data, prev_hash},
                                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)))
    d0 = 64 zeros;  dN = sha256_hex(dN-1 + hashN)   (hex strings, concatenated)

orjson with OPT_SORT_KEYS writes exactly those bytes for the JSON values events hold
(strings, integers, booleans, null, lists, objects); tests compare it with ``json.dumps``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

__all__ = ["GENESIS", "digest_step", "event_hash", "format_instant", "parse_instant"]

GENESIS = "0" * 64


def format_instant(moment: datetime) -> str:
    """RFC 3339 in UTC with six fraction digits and Z: ``2026-01-05T15:00:00.000000Z``."""
    if moment.tzinfo is None:
        msg = "instants must be timezone-aware"
        raise ValueError(msg)
    # isoformat, not strftime: strftime("%Y") writes years before 1000 with fewer than four
    # digits, which fromisoformat() cannot read back (the stream would no longer load).
    # In UTC, isoformat always ends in "+00:00": cut, rather than build a naive copy first.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_instant(text: str) -> datetime:
    """Read an instant written by :func:`format_instant` back as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def event_hash(
    *,
    stream_id: UUID,
    version: int,
    type: str,
    occurred_at: datetime,
    recorded_at: datetime,
    recorded_by: str,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    document = {
        "stream_id": str(stream_id),
        "version": version,
        "type": type,
        "occurred_at": format_instant(occurred_at),
        "recorded_at": format_instant(recorded_at),
        "recorded_by": recorded_by,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def digest_step(previous: str, event_hash_hex: str) -> str:
    """One link of the ledger digest: SHA-256 over the previous digest and the next event hash."""
    return hashlib.sha256((previous + event_hash_hex).encode("ascii")).hexdigest()
