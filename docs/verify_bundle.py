import contextlib, datetime, decimal, hashlib, json, re, sys, zoneinfo  # verify a pledger evidence bundle: python3 verify_bundle.py BUNDLE
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
FIELDS = {"format", "report", "report_sha256", "report_signature", "events", "proofs", "checkpoint", "public_key"}
HASHED = ("stream_id", "version", "type", "occurred_at", "recorded_at", "recorded_by", "data", "prev_hash")
sha = lambda data: hashlib.sha256(data).digest()
canon = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
check = lambda ok, what: ok or sys.exit(f"FAIL: {what}")
def unhex(s, nbytes, what):  # lowercase hex of exactly nbytes bytes, or fail
    check(isinstance(s, str) and re.fullmatch(f"[0-9a-f]{{{2 * nbytes}}}", s), f"{what} is not lowercase hex")
    return bytes.fromhex(s)
def verify(key, sig, msg, what):  # the Ed25519 signature `sig` (hex) over msg, by key (bytes)
    with contextlib.suppress(Exception):
        return Ed25519PublicKey.from_public_bytes(key).verify(unhex(sig, 64, what), msg)
    check(False, f"{what} does not verify")
def proof_root(r, fn, sn, path, what):  # RFC 9162 section 2.1.3.2, with sn = tree_size - 1
    check(type(fn) is type(sn) is int and 0 <= fn <= sn, f"{what}: leaf_index not below tree_size")
    for p in (unhex(p, 32, what) for p in path):
        check(sn != 0, f"{what}: path too long")
        if fn % 2 or fn == sn:
            r = sha(b"\x01" + p + r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None
def main(raw):
    b = json.loads(raw.decode("utf-8"))
    check(canon(b) == raw, "encoding: bytes are not the canonical JSON of the bundle")
    check(set(b) == FIELDS | {"signature"} and b["format"] == "pledger-evidence/1", "encoding: fields or format")
    key, cp, digest = unhex(b["public_key"], 32, "public_key"), b["checkpoint"], sha(b["report"].encode())
    verify(key, b["signature"], sha(canon({k: b[k] for k in FIELDS})), "bundle signature")
    check(cp["public_key"] == b["public_key"], "checkpoint.public_key differs from public_key")
    signed = canon({k: cp[k] for k in ("digest", "position", "time", "tree_head", "tree_size")})
    verify(key, cp["signature"], signed, "checkpoint signature")
    check(digest.hex() == b["report_sha256"], "report_sha256 is not the SHA-256 of report")
    verify(key, b["report_signature"], digest, "report signature")
    rep, events, proofs, size = json.loads(b["report"]), b["events"], b["proofs"], cp["tree_size"]
    check(rep["position"] <= cp["position"], "report position is beyond the checkpoint position")
    check(len(proofs) == len(events), "number of proofs differs from number of events")
    for i, (e, pr) in enumerate(zip(events, proofs)):
        check(sha(canon({k: e[k] for k in HASHED})).hex() == e["hash"], f"event {i}: hash does not match content")
        root = proof_root(sha(b"\x00" + e["hash"].encode()), pr["leaf_index"], size - 1, pr["path"], f"proof {i}")
        check(root and root.hex() == cp["tree_head"], f"proof {i}: does not lead to checkpoint.tree_head")
    lo, hi = rep["period"]["from"] or "0000-00-00", rep["period"]["to"] or "9999-99-99"  # null: no bound
    zone = zoneinfo.ZoneInfo(rep.get("time_zone") or "UTC")  # days are counted in the report's time zone
    day = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(zone).date().isoformat()
    for m in rep["members"]:
        evs = [e for e in events if e["stream_id"] == m["partner_id"] and e["position"] <= rep["position"]]
        gone = {e["data"]["version"] for e in evs if e["type"] == "entry_retracted"}
        kept = [e for e in evs if lo <= day(t := e["occurred_at"]) <= hi and t <= rep["as_of"] and e["version"] not in gone]
        made = {(e["data"]["owed_by"], e["data"]["commitment_id"]) for e in kept if e["type"] == "commitment_made"}
        for side in ("us", "partner"):
            check(m[side]["made"] == sum(o == side for o, _ in made), f"member {m['partner_id']}: wrong {side}.made")
        pays = [(e["data"]["currency"], e["data"]["amount"]) for e in kept if e["type"] == "payment_made"]
        paid = {c: str(sum((decimal.Decimal(a) for k, a in pays if k == c), decimal.Decimal())) for c, _ in pays}
        check(m["payments"] == paid, f"member {m['partner_id']}: payments do not follow from the events")
    print(f"OK: {len(events)} events, {len(rep['members'])} members; signatures, hashes, proofs and figures check")
try:
    main(open(sys.argv[1], "rb").read())
except Exception as exc:
    sys.exit(f"FAIL: malformed bundle or unreadable file ({type(exc).__name__}: {exc})")
