"""A report never vouches for content that does not match its hashes (SPEC §5, issue 15 item 1).

Given a coalition whose member received a $12,000.00 grant, when someone edits the stored event
behind the ledger's back (here: in a ledger made for the test, in a temporary directory), then
the report refuses, through the API (409 problem naming the event) and `pledger report` (exit
1 naming it), on SQLite and on PostgreSQL; also when the edit recomputed the event's own hash,
and also after the same server had checked and vouched for that event before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

from api.settings import Settings
from tests.api.conftest import Api
from tests.api.test_audit_cli import edit_state, read_state, run_pledger

GRANT = "12000.00"


@dataclass(frozen=True)
class Granted:
    coalition: str
    partner: str
    grant: dict[str, Any]  # the API's answer for the payment: position, version, hash


def _granted(api: Api) -> Granted:
    coalition = api.form_coalition("Coalición del Sur")
    partner = api.register("Fondo Comunitario")
    grant = api.append(
        partner,
        "payment_made",
        "2025-02-03T10:00:00Z",
        amount=GRANT,
        currency="USD",
        purpose="grant",
    )
    api.join(coalition, partner)
    return Granted(coalition, partner, grant)


def _report(api: Api, granted: Granted, fmt: str = "json") -> Any:
    return api.get(f"/v1/coalitions/{granted.coalition}/report", format=fmt)


def _at_fault(granted: Granted) -> str:
    grant = granted.grant
    return f"position {grant['position']}: stream {granted.partner} version {grant['version']}"


def _forge(settings: Settings, recorded: dict[str, Any], stream_id: str, amount: str) -> None:
    """Edit the stored payment's amount and recompute its own hash, as a careful forger would."""

    def change(state: dict[str, Any]) -> None:
        state["data"]["amount"] = amount
        document = {
            k: state[k] for k in ("occurred_at", "recorded_at", "recorded_by", "data", "prev_hash")
        } | {"stream_id": stream_id, "version": recorded["version"], "type": "payment_made"}
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        state["hash"] = hashlib.sha256(text.encode()).hexdigest()

    edit_state(settings, recorded["position"], change)


def test_a_report_states_the_grant_and_the_digest_verify_gives(
    api: Api, settings: Settings
) -> None:
    granted = _granted(api)

    report = _report(api, granted).json()

    assert report["totals"]["payments"] == {"USD": GRANT}
    assert report["digest"] == api.verified()["digest"]
    cli = run_pledger(settings, "report", granted.coalition)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["digest"] == report["digest"]


@pytest.mark.parametrize("fmt", ["json", "csv", "md", "html"])
def test_a_report_refuses_when_the_grant_was_edited_in_the_database(
    api: Api, settings: Settings, fmt: str
) -> None:
    granted = _granted(api)
    assert _report(api, granted, fmt).status_code == 200  # vouched for once, in this process
    state = read_state(settings, granted.grant["position"])
    edit_state(settings, granted.grant["position"], lambda s: s["data"].update(amount="1200.00"))
    assert read_state(settings, granted.grant["position"]) != state

    refused = api.assert_problem(
        _report(api, granted, fmt), 409, _at_fault(granted), "no longer matches its hash"
    )

    assert refused["events"] == [
        {
            "position": granted.grant["position"],
            "stream_id": granted.partner,
            "version": granted.grant["version"],
            "problem": "stored content no longer matches its hash",
        }
    ]
    assert "1200" not in refused["detail"]


def test_pledger_report_exits_1_naming_the_edited_grant(api: Api, settings: Settings) -> None:
    granted = _granted(api)
    edit_state(settings, granted.grant["position"], lambda s: s["data"].update(amount="1200.00"))

    cli = run_pledger(settings, "report", granted.coalition)

    assert cli.returncode == 1
    assert cli.stdout == ""
    assert _at_fault(granted) in cli.stderr
    assert "no longer matches its hash" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_a_report_refuses_an_edit_that_recomputed_its_own_hash(
    api: Api, settings: Settings
) -> None:
    granted = _granted(api)
    api.append(
        granted.partner,
        "contact_made",
        "2025-02-04T10:00:00Z",
        channel="phone",
        direction="outbound",
        summary="Confirmed the grant arrived",
    )
    _forge(settings, granted.grant, granted.partner, "1200.00")

    refused = api.assert_problem(_report(api, granted), 409, "prev_hash does not match")

    assert [e["version"] for e in refused["events"]] == [granted.grant["version"] + 1]
    cli = run_pledger(settings, "report", granted.coalition)
    assert cli.returncode == 1
    assert "prev_hash does not match" in cli.stderr


def test_a_report_refuses_a_last_event_rewritten_with_its_hash_recomputed(
    api: Api, settings: Settings
) -> None:
    # The grant is the partner's last event: no later link names its hash, but the views' digest
    # took the original hash in, and the stream no longer ends in it.
    coalition = api.form_coalition("Coalición del Norte")
    partner = api.register("Huerta Abierta")
    api.join(coalition, partner)
    grant = api.append(
        partner,
        "payment_made",
        "2025-02-03T10:00:00Z",
        amount=GRANT,
        currency="USD",
        purpose="grant",
    )
    assert api.get(f"/v1/coalitions/{coalition}/report").status_code == 200
    _forge(settings, grant, partner, "1200.00")

    refused = api.assert_problem(
        api.get(f"/v1/coalitions/{coalition}/report"), 409, "differs from the one the ledger digest"
    )

    assert [(e["position"], e["version"]) for e in refused["events"]] == [
        (grant["position"], grant["version"])
    ]
    assert run_pledger(settings, "report", coalition).returncode == 1


def test_an_edit_outside_the_coalition_does_not_stop_its_report(
    api: Api, settings: Settings
) -> None:
    granted = _granted(api)
    other = api.register("Otra Organización")
    payment = api.append(
        other,
        "payment_made",
        "2025-02-05T10:00:00Z",
        amount="5.00",
        currency="USD",
        purpose="grant",
    )
    edit_state(settings, payment["position"], lambda s: s["data"].update(amount="500.00"))

    assert _report(api, granted).status_code == 200
    assert api.verified()["ok"] is False


def test_after_a_rebuild_a_report_still_catches_a_rewritten_last_event(
    api: Api, settings: Settings
) -> None:
    coalition = api.form_coalition("Coalición del Este")
    partner = api.register("Taller Textil")
    api.join(coalition, partner)
    grant = api.append(
        partner,
        "payment_made",
        "2025-02-03T10:00:00Z",
        amount=GRANT,
        currency="USD",
        purpose="grant",
    )
    rebuilt = run_pledger(settings, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert run_pledger(settings, "report", coalition).returncode == 0
    _forge(settings, grant, partner, "1200.00")

    cli = run_pledger(settings, "report", coalition)

    assert cli.returncode == 1
    assert f"position {grant['position']}: stream {partner}" in cli.stderr
    assert "differs from the one the ledger digest took in" in cli.stderr
