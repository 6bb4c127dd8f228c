"""The evidence bundle a coalition member checks offline (issue 15 item 4; README "Hashes and
the digest" describes the format for people who write their own checker).

One JSON object, written as its canonical JSON (keys sorted at every level, no spaces, UTF-8,
no final newline: the encoding of SPEC §5), holding:

    format            "pledger-evidence/1"
    report            the json report, its exact bytes as a string
    report_sha256     SHA-256 of those bytes (UTF-8), hex
    report_signature  Ed25519 over those 32 digest bytes, hex
    events            the events the report counts (the coalition's and its members', up to
                      the report's position), in the shape of GET /v1/events, position order
    proofs            for each event in turn: {"leaf_index", "path"}, its RFC 9162 inclusion
                      proof in the checkpoint's tree (path: hex node hashes, bottom first)
    checkpoint        the signed checkpoint covering the report (projections.checkpoints)
    public_key        the ledger's Ed25519 public key, raw 32 bytes, hex
    signature         Ed25519 over the SHA-256 of the canonical JSON of all the above

:func:`verify_bundle` checks what ``pledger verify-bundle`` reports.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson

from domain.hashing import event_hash, parse_instant
from domain.merkle import event_leaf_hash, verify_inclusion
from projections.checkpoints import Checkpoint, SigningKey, verify_signature

__all__ = ["BUNDLE_FORMAT", "make_bundle", "verify_bundle"]

BUNDLE_FORMAT = "pledger-evidence/1"
BUNDLE_KEYS = {
    "format",
    "report",
    "report_sha256",
    "report_signature",
    "events",
    "proofs",
    "checkpoint",
    "public_key",
    "signature",
}


def canonical(document: Any) -> bytes:
    """SPEC §5's encoding: sorted keys, no spaces, UTF-8 (``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def make_bundle(
    key: SigningKey,
    report: bytes,
    events: Sequence[dict[str, Any]],
    proofs: Sequence[tuple[int, Sequence[bytes]]],
    checkpoint: Checkpoint,
) -> bytes:
    """The bundle's bytes. ``report``: the json report's exact bytes; ``events`` in the
    /v1/events shape; ``proofs``: (leaf index, path) for each event, in the checkpoint's tree."""
    digest = hashlib.sha256(report).digest()
    document: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "report": report.decode(),
        "report_sha256": digest.hex(),
        "report_signature": key.sign(digest),
        "events": list(events),
        "proofs": [{"leaf_index": i, "path": [p.hex() for p in path]} for i, path in proofs],
        "checkpoint": checkpoint.as_dict(key.public_key),
        "public_key": key.public_key,
    }
    document["signature"] = key.sign(hashlib.sha256(canonical(document)).digest())
    return canonical(document)


def verify_bundle(raw: bytes) -> list[str]:
    """Every way ``raw`` fails as an evidence bundle; empty when it holds. Checks the encoding,
    every signature (bundle, checkpoint, report), every event's hash from its content (SPEC
    §5), every inclusion proof against the checkpoint's tree head (RFC 9162 §2.1.3.2), and that
    each member's commitments made (per side) and payment totals (per currency) in the report
    follow from the member's events. Raises nothing."""
    try:
        bundle = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return [f"not JSON: {error}"]
    if not isinstance(bundle, dict) or set(bundle) != BUNDLE_KEYS:
        return [f"not an evidence bundle: its keys must be {sorted(BUNDLE_KEYS)}"]
    if canonical(bundle) != raw:
        return ["not in canonical JSON (sorted keys, no spaces, UTF-8, no final newline)"]
    try:
        return _check(bundle)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as error:
        return [f"malformed bundle: {type(error).__name__}: {error}"]


def _check(bundle: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    key = bundle["public_key"]
    unsigned = {k: v for k, v in bundle.items() if k != "signature"}
    if bundle["format"] != BUNDLE_FORMAT:
        problems.append(f"format is {bundle['format']!r}, not {BUNDLE_FORMAT!r}")
    if not verify_signature(key, bundle["signature"], hashlib.sha256(canonical(unsigned)).digest()):
        problems.append("the bundle's signature does not verify with its public key")
    checkpoint = Checkpoint.from_dict(bundle["checkpoint"])
    if bundle["checkpoint"].get("public_key") != key or not checkpoint.signed_by(key):
        problems.append("the checkpoint's signature does not verify with the public key")
    report_bytes = bundle["report"].encode()
    digest = hashlib.sha256(report_bytes).digest()
    if digest.hex() != bundle["report_sha256"]:
        problems.append("report_sha256 is not the SHA-256 of the report")
    if not verify_signature(key, bundle["report_signature"], digest):
        problems.append("the report's signature does not verify with the public key")
    report = orjson.loads(report_bytes)
    if report["position"] > checkpoint.position:
        problems.append("the checkpoint does not cover the report's position")
    events, proofs = bundle["events"], bundle["proofs"]
    if len(events) != len(proofs):
        problems.append(f"{len(events)} events but {len(proofs)} inclusion proofs")
    head = bytes.fromhex(checkpoint.tree_head)
    for event, proof in zip(events, proofs, strict=False):
        where = f"event at position {event['position']}"
        if _hash(event) != event["hash"]:
            problems.append(f"{where}: its content does not match its hash")
        path = [bytes.fromhex(p) for p in proof["path"]]
        leaf = event_leaf_hash(event["hash"])
        if not verify_inclusion(leaf, proof["leaf_index"], checkpoint.tree_size, path, head):
            problems.append(f"{where}: its inclusion proof does not lead to the tree head")
    problems.extend(_figures(report, events))
    return problems


def _hash(event: dict[str, Any]) -> str:
    return event_hash(
        stream_id=UUID(event["stream_id"]),
        version=event["version"],
        type=event["type"],
        occurred_at=parse_instant(event["occurred_at"]),
        recorded_at=parse_instant(event["recorded_at"]),
        recorded_by=event["recorded_by"],
        data=event["data"],
        prev_hash=event["prev_hash"],
    )


def _figures(report: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """Each member's commitments made per side and payments per currency, from its events
    that count at the report's (as_of, position) within its period (SPEC §4)."""
    start, end = report["period"]["from"], report["period"]["to"]
    # Days are counted in the time zone the report states (SPEC §3; reports made before it
    # stated one were counted in UTC).
    zone = ZoneInfo(report.get("time_zone") or "UTC")
    problems: list[str] = []
    for member in report["members"]:
        mine = [
            e
            for e in events
            if e["stream_id"] == member["partner_id"] and e["position"] <= report["position"]
        ]
        retracted = {e["data"]["version"] for e in mine if e["type"] == "entry_retracted"}
        made: dict[str, set[str]] = {"us": set(), "partner": set()}
        payments: dict[str, Decimal] = defaultdict(Decimal)
        for e in mine:
            day = parse_instant(e["occurred_at"]).astimezone(zone).date().isoformat()
            counts = e["occurred_at"] <= report["as_of"] and e["version"] not in retracted
            if not counts or (start and day < start) or (end and day > end):
                continue
            if e["type"] == "commitment_made":
                made[e["data"]["owed_by"]].add(e["data"]["commitment_id"])
            elif e["type"] == "payment_made":
                payments[e["data"]["currency"]] += Decimal(e["data"]["amount"])
        for side, ids in made.items():
            if member[side]["made"] != len(ids):
                problems.append(
                    f"member {member['partner_id']}: the report says {member[side]['made']} "
                    f"commitments made by {side}, its events {len(ids)}"
                )
        totals = {currency: str(payments[currency]) for currency in sorted(payments)}
        if member["payments"] != totals:
            problems.append(
                f"member {member['partner_id']}: the report says payments {member['payments']}, "
                f"its events {totals}"
            )
    return problems
