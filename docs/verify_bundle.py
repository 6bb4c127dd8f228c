"""Check a pledger evidence bundle offline (docs/evidence-bundle.md): python verify_bundle.py FILE"""
import hashlib, json, sys
from decimal import Decimal
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def canon(v): return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
def sha(b): return hashlib.sha256(b).digest()
def need(ok, what):
    if not ok: raise ValueError(what)
def signed(key, sig, msg):
    try: need(bytes.fromhex(key).hex() == key and bytes.fromhex(sig).hex() == sig, "hex"); Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(bytes.fromhex(sig), msg); return True
    except Exception: return False
def included(leaf, index, size, path, root):
    if index >= size or any(len(p) != 32 for p in path): return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0: return False
        if fn % 2 or fn == sn:
            r = sha(b"\x01" + p + r)
            while fn % 2 == 0 and fn: fn, sn = fn >> 1, sn >> 1
        else: r = sha(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root
def check(raw):
    b = json.loads(raw)
    KEYS = {"format", "report", "report_sha256", "report_signature", "events", "proofs", "checkpoint", "public_key", "signature"}
    need(canon(b) == raw and set(b) == KEYS and b["format"] == "pledger-evidence/1", "encoding")
    key, cp = b["public_key"], b["checkpoint"]
    need(signed(key, b["signature"], sha(canon({k: v for k, v in b.items() if k != "signature"}))), "bundle signature")
    stated = {k: cp[k] for k in ("digest", "position", "time", "tree_head", "tree_size")}
    need(cp["public_key"] == key and signed(key, cp["signature"], canon(stated)), "checkpoint signature")
    need(sha(b["report"].encode()).hex() == b["report_sha256"], "report sha256")
    need(signed(key, b["report_signature"], sha(b["report"].encode())), "report signature")
    report = json.loads(b["report"])
    need(report["position"] <= cp["position"] and len(b["events"]) == len(b["proofs"]), "coverage")
    for e, p in zip(b["events"], b["proofs"]):
        fields = {k: e[k] for k in ("stream_id", "version", "type", "occurred_at", "recorded_at", "recorded_by", "data", "prev_hash")}
        need(hashlib.sha256(canon(fields)).hexdigest() == e["hash"], f"hash of event {e['position']}")
        leaf = sha(b"\x00" + e["hash"].encode("ascii"))
        path = [bytes.fromhex(h) for h in p["path"]]
        need(included(leaf, p["leaf_index"], cp["tree_size"], path, bytes.fromhex(cp["tree_head"])), f"proof of event {e['position']}")
    start, end = report["period"]["from"], report["period"]["to"]
    for m in report["members"]:
        mine = [e for e in b["events"] if e["stream_id"] == m["partner_id"] and e["position"] <= report["position"]]
        gone = {e["data"]["version"] for e in mine if e["type"] == "entry_retracted"}
        made, paid = {"us": set(), "partner": set()}, {}
        for e in mine:
            day = e["occurred_at"][:10]
            if e["occurred_at"] > report["as_of"] or e["version"] in gone or (start and day < start) or (end and day > end): continue
            if e["type"] == "commitment_made": made[e["data"]["owed_by"]].add(e["data"]["commitment_id"])
            if e["type"] == "payment_made": paid[e["data"]["currency"]] = paid.get(e["data"]["currency"], Decimal(0)) + Decimal(e["data"]["amount"])
        need(all(m[side]["made"] == len(ids) for side, ids in made.items()), f"commitments of {m['partner_id']}")
        need(m["payments"] == {c: str(paid[c]) for c in paid}, f"payments of {m['partner_id']}")
if __name__ == "__main__":
    try: check(open(sys.argv[1], "rb").read())
    except Exception as error: sys.exit(f"FAILED: {type(error).__name__}: {error}")
    print("OK: the bundle verifies")
