"""Helpers the API tests share: the shapes SPEC §4 and §5 promise, and the hash check."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["LOG_KEYS", "STEWARD_NAME", "figures", "shown", "spec_hash"]

LOG_KEYS = {
    "position",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "occurred_at",
    "recorded_at",
    "recorded_by",
    "data",
    "prev_hash",
    "hash",
}
STEWARD_NAME = "steward:ana"


def figures(**counts: Any) -> dict[str, Any]:
    """Fulfilment figures for one side: zeros and null rates unless given."""
    base: dict[str, Any] = {
        "made": 0,
        "open": 0,
        "overdue": 0,
        "fulfilled_on_time": 0,
        "fulfilled_late": 0,
        "cancelled": 0,
        "renegotiated_after_due": 0,
        "fulfilled": 0,
        "fulfilment_rate": None,
        "on_time_rate": None,
    }
    unknown = set(counts) - set(base)
    assert not unknown, unknown
    return {**base, **counts}


def spec_hash(event: dict[str, Any]) -> str:
    """SPEC §5's ten lines: an event's hash from what the API shows, with the standard library."""
    document = {k: event[k] for k in ("stream_id", "version", "type", "occurred_at")}
    document |= {k: event[k] for k in ("recorded_at", "recorded_by", "data", "prev_hash")}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def shown(event: dict[str, Any]) -> dict[str, Any]:
    """An exported event's data with its disclosed personal values back in place, each checked
    against its salted commitment (README, "The export and a verifier")."""
    data = dict(event["data"])
    personal = data.pop("personal", None)
    if personal is None:
        assert "disclosed" not in event
        return data
    assert personal["format"] == 2
    commitments = personal["commitments"]
    assert set(event["disclosed"]) == set(commitments)
    for name, held in event["disclosed"].items():
        committed = hashlib.sha256(held["salt"].encode() + _canonical(held["value"])).hexdigest()
        assert committed == commitments[name], name
        data[name] = held["value"]
    return data
