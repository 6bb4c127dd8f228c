"""The evidence bundle a coalition member checks offline (issue 15 item 4), on both stores.

Given a coalition whose two members made commitments (one retracted) and received payments in
two currencies, the coalition's own token fetches the report's evidence bundle, and `pledger
report --evidence` writes the same kind of file; `pledger verify-bundle` and the standalone
docs/verify_bundle.py (stdlib and `cryptography` only) both accept it. Any single byte changed,
at many places including amounts, hashes, signatures and proofs, fails both; and a bundle whose
report states figures its events do not give fails both even when signed with the real key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import runpy
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.settings import Settings
from projections.checkpoints import Checkpoint
from projections.evidence import make_bundle, verify_bundle
from tests.api.conftest import Api, _running
from tests.api.test_audit_cli import run_pledger

DOCS_SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "verify_bundle.py"


def _docs_verdict(raw: bytes, tmp_path: Path) -> str | None:
    """What docs/verify_bundle.py says of ``raw``: None when it accepts the bundle, else its
    FAIL message. The script is run as written, as ``python verify_bundle.py FILE`` would run
    it, but in this process (runpy), so that thousands of edited bundles stay quick to try."""
    path = tmp_path / "edited-bundle.json"
    path.write_bytes(raw)
    argv = sys.argv
    sys.argv = [str(DOCS_SCRIPT), str(path)]
    try:
        # The script reads its file with a bare open(): fine for a script, a ResourceWarning here.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", ResourceWarning)
            runpy.run_path(str(DOCS_SCRIPT), run_name="__main__")
    except SystemExit as ended:
        return None if ended.code in (None, 0) else str(ended.code)
    finally:
        sys.argv = argv
    return None


def _coalition(api: Api) -> dict[str, str]:
    coalition = api.form_coalition("Red de Huertas")
    first, second = api.register("Fondo Ñandú"), api.register("Huerta Viva")
    outsider = api.register("Not a member")
    for partner in (first, second):
        api.join(coalition, partner)
    api.append(first, "payment_made", "2025-02-03T10:00:00Z", amount="12000.00",
               currency="USD", purpose="grant")  # fmt: skip
    api.append(first, "payment_made", "2025-02-04T10:00:00Z", amount="0.50",
               currency="USD", purpose="grant")  # fmt: skip
    api.append(second, "payment_made", "2025-02-05T10:00:00Z", amount="300",
               currency="MXN", purpose="stipend")  # fmt: skip

    def promise(partner: str, day: int, owed_by: str, resource: str) -> dict[str, Any]:
        return api.append(partner, "commitment_made", f"2025-02-{day:02d}T10:00:00Z",
                          owed_by=owed_by, description=f"promise {day}", due_on="2025-04-01",
                          resource=resource)  # fmt: skip

    made = promise(first, 6, "us", "in_kind")
    promise(second, 7, "partner", "deliverable")
    promise(first, 8, "partner", "time")
    api.append(first, "entry_retracted", "2025-02-09T10:00:00Z", version=made["version"],
               reason="recorded twice")  # fmt: skip
    api.append(outsider, "payment_made", "2025-02-05T10:00:00Z", amount="99.00",
               currency="USD", purpose="grant")  # fmt: skip
    return {"coalition": coalition, "first": first, "second": second, "outsider": outsider}


def test_a_members_bundle_verifies_offline_with_both_checkers(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    ids = _coalition(api)
    chair = api.token("coalition", "chair", ids["coalition"])

    fetched = api.get(f"/v1/coalitions/{ids['coalition']}/report/evidence", headers=chair)

    assert fetched.status_code == 200, fetched.text
    bundle = json.loads(fetched.content)
    report = json.loads(bundle["report"])
    again = api.read(
        f"/v1/coalitions/{ids['coalition']}/report",
        as_of=report["as_of"],
        position=report["position"],
    )
    assert report == again
    by_member = {m["partner_id"]: m for m in report["members"]}
    assert by_member[ids["first"]]["payments"] == {"USD": "12000.50"}
    assert (by_member[ids["first"]]["us"]["made"], by_member[ids["first"]]["partner"]["made"]) == (
        0,
        1,
    )
    log = {e["position"]: e for e in api.log()}
    # The /v1/events shape, less the personal values a coalition member may not read: each
    # format 2 event still hashes from what the bundle holds.
    shown = [
        {k: v for k, v in log[e["position"]].items() if k != "disclosed"} for e in bundle["events"]
    ]
    assert bundle["events"] == shown
    assert any("disclosed" in log[e["position"]] for e in bundle["events"])
    [registered] = [
        e
        for e in bundle["events"]
        if e["stream_id"] == ids["first"] and e["type"] == "partner_registered"
    ]
    assert "name" not in registered["data"]  # only its salted commitment
    assert set(registered["data"]["personal"]["commitments"]) >= {"name"}
    streams = {e["stream_id"] for e in bundle["events"]}
    assert streams == {ids["coalition"], ids["first"], ids["second"]}
    assert verify_bundle(fetched.content) == []
    assert _docs_verdict(fetched.content, tmp_path) is None

    path = tmp_path / "bundle.json"
    made = run_pledger(settings, "report", ids["coalition"], "--evidence", str(path))
    assert made.returncode == 0, made.stderr
    pledger = Path(sys.executable).parent / "pledger"  # offline: no ledger named
    checked = subprocess.run([pledger, "verify-bundle", str(path)], capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "OK:" in checked.stdout
    script = subprocess.run([sys.executable, str(DOCS_SCRIPT), str(path)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert script.returncode == 0, script.stderr


def _flip_positions(raw: bytes, bundle: dict[str, Any]) -> list[int]:
    """Many single bytes to change: inside amounts, hashes, signatures, proofs, the report and
    the checkpoint, and every 101st byte of the whole file."""
    first = bundle["events"][0]
    targets = [
        b'"12000.00"',
        first["hash"].encode(),
        first["prev_hash"].encode()[:8] if first["version"] > 1 else b'"prev_hash"',
        bundle["signature"].encode(),
        bundle["report_signature"].encode(),
        bundle["checkpoint"]["signature"].encode(),
        bundle["checkpoint"]["tree_head"].encode(),
        bundle["proofs"][-1]["path"][0].encode(),
        b'"leaf_index":',
        b'"position":',
        "Ñandú".encode(),
        b"12000.50",
    ]
    found: set[int] = set(range(0, len(raw), 101))
    for target in targets:
        start = raw.find(target)
        assert start >= 0, target
        # Each short target byte by byte; a long hex string at a dozen places, its ends too.
        step = max(1, len(target) // 12)
        found.update(range(start, start + len(target), step))
        found.add(start + len(target) - 1)
    return sorted(found)


def test_any_single_byte_changed_fails_both_checkers(api: Api, tmp_path: Path) -> None:
    ids = _coalition(api)
    raw = api.get(f"/v1/coalitions/{ids['coalition']}/report/evidence").content
    bundle = json.loads(raw)
    missed = []
    for position in _flip_positions(raw, bundle):
        for change in (0x01, 0x20):
            edited = bytearray(raw)
            edited[position] ^= change
            if not verify_bundle(bytes(edited)) or _docs_verdict(bytes(edited), tmp_path) is None:
                missed.append((position, change))
    assert missed == []


def _resigned(api: Api, raw: bytes, change: Any) -> bytes:
    """The bundle with ``change`` applied to its report or events, signed again with the
    ledger's real key: only the content checks can catch it."""
    bundle = json.loads(raw)
    report = json.loads(bundle["report"])
    events = bundle["events"]
    change(report, events)
    key = api.app.state.services.checkpoints.key
    proofs = [(p["leaf_index"], [bytes.fromhex(h) for h in p["path"]]) for p in bundle["proofs"]]
    body = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    return make_bundle(key, body, events, proofs, Checkpoint.from_dict(bundle["checkpoint"]))


@pytest.mark.parametrize(
    ("name", "problem", "docs_problem"),
    [
        ("payments", "payments", "payments do not follow from the events"),
        ("commitments", "commitments", "wrong us.made"),
        ("event content", "does not match its hash", "hash does not match content"),
        ("event hash", "inclusion proof", "hash does not match content"),  # its first check
    ],
)
def test_a_signed_bundle_whose_content_does_not_add_up_fails(
    api: Api, name: str, problem: str, docs_problem: str, tmp_path: Path
) -> None:
    ids = _coalition(api)
    raw = api.get(f"/v1/coalitions/{ids['coalition']}/report/evidence").content
    grant = hashlib.sha256(b"not the grant").hexdigest()

    def change(report: dict[str, Any], events: list[dict[str, Any]]) -> None:
        member = next(m for m in report["members"] if m["partner_id"] == ids["first"])
        payment = next(e for e in events if e["data"].get("amount") == "12000.00")
        if name == "payments":
            member["payments"] = {"USD": "1200.50"}
        elif name == "commitments":
            member["us"]["made"] = 1
        elif name == "event content":
            payment["data"]["amount"] = "1200.00"
        else:
            payment["hash"] = grant

    forged = _resigned(api, raw, change)

    assert any(problem in found for found in verify_bundle(forged)), verify_bundle(forged)
    verdict = _docs_verdict(forged, tmp_path)
    assert verdict is not None
    assert docs_problem in verdict


def test_a_bundle_of_a_ledger_in_another_time_zone_counts_its_days_there(
    settings: Settings, tmp_path: Path
) -> None:
    """A report's period is counted in the ledger's time zone (SPEC §3, issue 12), so the
    bundle's checkers must read an event's day there too: a payment at 04:00 UTC on 1 February
    is on 31 January in Los Angeles, inside a January report, and both checkers accept it."""
    zoned = dataclasses.replace(settings, time_zone="America/Los_Angeles")
    for api in _running(zoned):
        coalition = api.form_coalition("Pacific Gardens")
        member = api.register("Huerta del Valle")
        api.join(coalition, member)
        api.append(member, "payment_made", "2025-01-15T18:00:00Z", amount="10.00",
                   currency="USD", purpose="stipend")  # fmt: skip
        api.append(member, "payment_made", "2025-02-01T04:00:00Z", amount="5.00",
                   currency="USD", purpose="stipend")  # fmt: skip
        api.append(member, "payment_made", "2025-02-01T09:00:00Z", amount="1.00",
                   currency="USD", purpose="stipend")  # fmt: skip

        raw = api.client.get(
            f"/v1/coalitions/{coalition}/report/evidence",
            params={"from": "2025-01-01", "to": "2025-01-31"},
            headers=api.steward,
        ).content

        report = json.loads(json.loads(raw)["report"])
        assert report["time_zone"] == "America/Los_Angeles"
        [counted] = report["members"]
        assert counted["payments"] == {"USD": "15.00"}  # the 1 February (LA) payment is out
        assert verify_bundle(raw) == []
        assert _docs_verdict(raw, tmp_path) is None
