#!/usr/bin/env python3
"""Verify a `pledger export events` file: hashes, chains, commitments; print the ledger digest."""
import hashlib
import json
import re
import sys

ZERO = "0" * 64
HASHED = ("stream_id", "version", "type", "occurred_at", "recorded_at", "recorded_by", "data",
          "prev_hash")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_event(event, number, erased_at, last):
    """Problems of one event; erased_at: (stream, version) -> erasure position; last: by stream."""
    problems = [] if event["position"] == number else [f"position should be {number}"]
    if not all(TIME.fullmatch(event[name]) for name in ("occurred_at", "recorded_at")):
        problems.append("time not RFC 3339 UTC with six fraction digits and Z")
    prev = last.get(event["stream_id"])
    if event["prev_hash"] != (prev["hash"] if prev else ZERO):
        problems.append("prev_hash is not the hash of the stream's previous event")
    if prev and event["version"] != prev["version"] + 1:
        problems.append(f"version does not follow version {prev['version']}")
    if sha256_hex(canonical_json({name: event[name] for name in HASHED})) != event["hash"]:
        erased = erased_at.get((event["stream_id"], event["version"]), 0) > number
        if "personal" in event["data"] or not erased:
            problems.append("content does not hash to its hash (and no later erasure lists it)")
    personal = event["data"].get("personal", {"format": 2, "commitments": {}})
    if personal.get("format") != 2:
        problems.append(f"unknown personal format {personal.get('format')!r}")
    for field, item in event.get("disclosed", {}).items():
        commitment = sha256_hex(item["salt"] + canonical_json(item["value"]))
        if commitment != personal["commitments"].get(field):
            problems.append(f"disclosed {field!r} does not match its commitment")
    return problems


def main(path):
    events = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    erased_at = {}
    for event in events:
        for item in event["data"]["fields"] if event["type"] == "personal_data_erased" else []:
            erased_at[item["stream_id"], item["version"]] = event["position"]
    digest, last, failed = ZERO, {}, False
    for number, event in enumerate(events, start=1):
        try:
            problems = check_event(event, number, erased_at, last)
        except (KeyError, TypeError, AttributeError) as error:
            problems = [f"malformed event ({error!r})"]
        for problem in problems:
            print(f"stream {event.get('stream_id')} version {event.get('version')} "
                  f"position {event.get('position')}: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        last[event.get("stream_id")] = event
        digest = sha256_hex(digest + str(event.get("hash")))
    if failed:
        sys.exit(1)
    print(f"{len(events)} events verified; ledger digest at position {len(events)}:\n{digest}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: verify_export.py EXPORT.jsonl")
    main(sys.argv[1])
