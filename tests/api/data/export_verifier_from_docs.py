#!/usr/bin/env python3
"""Verify a pledger event export (JSON Lines, one event per line, in position order)."""

import hashlib
import json
import sys
from datetime import UTC, datetime

ZERO = "0" * 64
HASHED = (
    "stream_id",
    "version",
    "type",
    "occurred_at",
    "recorded_at",
    "recorded_by",
    "data",
    "prev_hash",
)


def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def canon(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def rfc3339(t):  # RFC 3339 UTC, six fraction digits, "Z"
    d = datetime.fromisoformat(t)
    d = d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fail(where, msg):
    sys.exit(f"FAIL {where}: {msg}")


def check(ev, pos, where, last, unchecked):  # raises KeyError etc. on a malformed event
    prev_v, prev_h = last.get(ev["stream_id"], (None, ZERO))
    if ev["prev_hash"] != prev_h:
        fail(where, f"prev_hash {ev['prev_hash']} != hash of previous event in stream {prev_h}")
    if prev_v is not None and ev["version"] != prev_v + 1:
        fail(where, f"version does not follow {prev_v}")
    personal = ev["data"].get("personal") if isinstance(ev["data"], dict) else None
    if ev.get("content_erased") and personal is None:  # format 1, overwritten by an erasure
        unchecked.append((where, pos))
    else:
        body = {k: rfc3339(ev[k]) if k.endswith("_at") else ev[k] for k in HASHED}
        if sha(canon(body)) != ev["hash"]:
            fail(where, "content does not match its hash")
    if personal is not None:
        if personal.get("format") != 2:
            fail(where, f"unknown personal format {personal.get('format')!r}")
        commitments = personal["commitments"]
        for field, d in (ev.get("disclosed") or {}).items():
            if field not in commitments:
                fail(where, f"disclosed field {field!r} has no commitment")
            if sha(d["salt"] + canon(d["value"])) != commitments[field]:
                fail(where, f"disclosed {field!r} does not match its commitment")
    elif ev.get("disclosed"):
        fail(where, "format 1 event carries disclosed values")
    last[ev["stream_id"]] = (ev["version"], ev["hash"])


def main(path):
    digest, last, unchecked, erasures = ZERO, {}, [], []  # last: stream_id -> (version, hash)
    with open(path, encoding="utf-8") as f:
        lines = [(n, l) for n, l in enumerate(f, 1) if l.strip()]  # file order = position order
    for pos, (n, line) in enumerate(lines, 1):
        try:
            if not isinstance(ev := json.loads(line), dict):
                raise ValueError
        except ValueError:
            fail(f"line {n}", "not a JSON object")
        where = (
            f"line {n} (stream {ev.get('stream_id')}, version {ev.get('version')}, position {pos})"
        )
        try:
            check(ev, pos, where, last, unchecked)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            fail(where, f"malformed event ({type(e).__name__}: {e})")
        digest = sha(digest + ev["hash"])
        if ev["type"] == "personal_data_erased":
            erasures.append(pos)
    for where, pos in unchecked:
        if not any(p > pos for p in erasures):  # how an erasure names its events is undocumented
            fail(where, "marked content_erased but no later personal_data_erased event")
        print(f"unchecked (content no longer checkable): {where}")
    print(
        f"OK: {len(lines)} events, {len(last)} streams, {len(unchecked)} unchecked; digest at position {len(lines)}:"
    )
    print(digest)


if __name__ == "__main__":
    main(sys.argv[1]) if len(sys.argv) == 2 else sys.exit("usage: verify_export.py EXPORT.jsonl")
