"""The audit trail through the real `pledger` command (SPEC §5, §6).

Given a small but realistic ledger, `pledger export events` writes a log that a ten-line checker
using nothing but hashlib and json can verify, and whose digest is the one `pledger verify`
prints. When someone edits a stored event behind the ledger's back, `pledger verify` fails and
names that event, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.settings import Settings
from api.wiring import open_ledger
from domain.application import Partnerships, Recorded
from domain.chained import Stamp
from domain.values import (
    Channel,
    CoalitionFormed,
    CommitmentFulfilled,
    CommitmentMade,
    CommitmentRenegotiated,
    ContactMade,
    Direction,
    EntryRetracted,
    MemberJoined,
    MemberLeft,
    PartnerKind,
    PartnerRegistered,
    PaymentMade,
    PaymentPurpose,
    Preferences,
    Resource,
    Severity,
    Side,
    TrustBreachRecorded,
    TrustRepaired,
)

ZEROS = "0" * 64
EXPORTED_KEYS = {
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
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
STEWARD = "steward:María José Ñúñez"

# ---- a small, realistic ledger --------------------------------------------------------------


@dataclass(frozen=True)
class SampleLedger:
    """What the sample recorded, so tests can point at particular events."""

    recorded: list[Recorded]
    nandu: UUID
    coalition: UUID
    payment: Recorded  # a USD payment in the middle of a stream
    fulfilment: Recorded  # the event right after the payment in the same stream
    renegotiation: Recorded


def _at(day: date, hour: int = 15) -> Stamp:
    return Stamp(
        occurred_at=datetime(day.year, day.month, day.day, hour, tzinfo=UTC), recorded_by=STEWARD
    )


def record_sample_ledger(ledger: Partnerships) -> SampleLedger:
    """Three partners, a coalition, commitments kept and moved, money paid, a breach repaired."""
    log: list[Recorded] = []

    def keep(recorded: Recorded) -> Recorded:
        log.append(recorded)
        return recorded

    nandu = keep(
        ledger.register_partner(
            PartnerRegistered(
                name="Asociación Vecinal Ñandú",
                kind=PartnerKind.ORGANIZATION,
                roles=("convener", "host"),
                communities=("Barrio Sur", "Palermo"),
                region="Montevideo",
                preferences=Preferences(channels=(Channel.IN_PERSON,), language="es"),
            ),
            _at(date(2026, 1, 5)),
        )
    ).stream_id
    zoe = keep(
        ledger.register_partner(
            PartnerRegistered(
                name="Zoë Ōkubo-Nakamura",
                kind=PartnerKind.INDIVIDUAL,
                referred_by=nandu,
                preferences=Preferences(
                    accessibility=("large print",), gratitude=("a handwritten note",)
                ),
            ),
            _at(date(2026, 1, 6)),
        )
    ).stream_id
    kitchen = keep(
        ledger.register_partner(
            PartnerRegistered(name="東京 Community Kitchen 🍜", kind=PartnerKind.ORGANIZATION),
            _at(date(2026, 1, 7)),
        )
    ).stream_id

    coalition = keep(
        ledger.form_coalition(
            CoalitionFormed(
                name="Coalición Río de la Plata",
                shared_vision="Nadie sin almuerzo \u2014 no one goes without lunch",
                agreed_measures=("meals served", "families reached"),
            ),
            _at(date(2026, 1, 8)),
        )
    ).stream_id
    for member in (nandu, zoe, kitchen):
        keep(
            ledger.join_coalition(coalition, MemberJoined(partner_id=member), _at(date(2026, 1, 9)))
        )

    keep(
        ledger.record(
            nandu,
            CommitmentMade(
                commitment_id="stipend-2026",
                owed_by=Side.US,
                description="Pay the stipend for the three listening sessions",
                due_on=date(2026, 3, 1),
                resource=Resource.FINANCIAL,
                amount=Decimal("350.5"),
                currency="USD",
                coalition_id=coalition,
            ),
            _at(date(2026, 1, 10)),
        )
    )
    payment = keep(
        ledger.record(
            nandu,
            PaymentMade(
                amount=Decimal("350.50"),
                currency="USD",
                purpose=PaymentPurpose.STIPEND,
                commitment_id="stipend-2026",
            ),
            _at(date(2026, 2, 20)),
        )
    )
    fulfilment = keep(
        ledger.record(
            nandu,
            CommitmentFulfilled(
                commitment_id="stipend-2026", note="Pagado en efectivo; recibo firmado"
            ),
            _at(date(2026, 2, 20), hour=16),
        )
    )

    keep(
        ledger.record(
            zoe,
            CommitmentMade(
                commitment_id="flyer",
                owed_by=Side.PARTNER,
                description="Translate the flyer into Guaraní",
                due_on=date(2026, 2, 1),
                resource=Resource.DELIVERABLE,
            ),
            _at(date(2026, 1, 12)),
        )
    )
    renegotiation = keep(
        ledger.record(
            zoe,
            CommitmentRenegotiated(
                commitment_id="flyer", due_on=date(2026, 2, 15), note="the printer is late"
            ),
            _at(date(2026, 1, 30)),
        )
    )

    keep(
        ledger.record(
            kitchen,
            PaymentMade(amount=Decimal("12000"), currency="JPY", purpose=PaymentPurpose.GRANT),
            _at(date(2026, 1, 15)),
        )
    )
    keep(
        ledger.record(
            kitchen,
            TrustBreachRecorded(
                breach_id="missed-pickup",
                severity=Severity.MODERATE,
                caused_by=Side.US,
                description='We missed Thursday\'s pickup\nand did not call — "sorry" was late',
            ),
            _at(date(2026, 1, 22)),
        )
    )
    keep(
        ledger.record(
            kitchen,
            TrustRepaired(breach_id="missed-pickup", summary="Apologised in person; 謝罪しました"),
            _at(date(2026, 1, 29)),
        )
    )
    mistaken = keep(
        ledger.record(
            kitchen,
            ContactMade(
                channel=Channel.PHONE,
                direction=Direction.OUTBOUND,
                summary="logged on the wrong partner\tlínea\u2028dos",
            ),
            _at(date(2026, 2, 2)),
        )
    )
    keep(
        ledger.record(
            kitchen,
            EntryRetracted(version=mistaken.version, reason="recorded against the wrong partner"),
            _at(date(2026, 2, 2), hour=17),
        )
    )
    keep(
        ledger.leave_coalition(
            coalition,
            MemberLeft(partner_id=kitchen, reason="focusing on Tōkyō"),
            _at(date(2026, 2, 3)),
        )
    )
    return SampleLedger(log, nandu, coalition, payment, fulfilment, renegotiation)


@pytest.fixture
def sample(settings: Settings) -> Iterator[SampleLedger]:
    """The sample ledger, recorded and closed again, so that only the CLI touches it after."""
    ledger = open_ledger(settings)
    try:
        yield record_sample_ledger(ledger)
    finally:
        ledger.close()


# ---- the independent checker: hashlib and json, nothing of the project's ----------------------

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


def independent_digest(events: list[dict[str, Any]]) -> str:
    """SPEC §5's check of an export, as anyone could write it; returns the ledger digest."""
    digest, position, last = "0" * 64, 0, dict[str, tuple[int, str]]()  # stream -> (version, hash)
    for e in events:
        assert e["position"] > position, f"position {e['position']} out of order"
        text = json.dumps(
            {k: e[k] for k in HASHED}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == e["hash"], (
            f"content at {e['position']}"
        )
        assert (e["version"], e["prev_hash"]) == _next_link(last.get(e["stream_id"])), (
            f"link at {e['position']}"
        )
        last[e["stream_id"]], position = (e["version"], e["hash"]), e["position"]
        digest = hashlib.sha256((digest + e["hash"]).encode("utf-8")).hexdigest()
    return digest


def _next_link(previous: tuple[int, str] | None) -> tuple[int, str]:
    version, hash_hex = previous or (0, "0" * 64)
    return version + 1, hash_hex


# ---- running the real command -----------------------------------------------------------------


def _pledger_executable() -> str:
    # The console script beside this interpreter first, so a shim cannot pick another Python.
    found = shutil.which("pledger", path=str(Path(sys.executable).parent)) or shutil.which(
        "pledger"
    )
    if found is None:
        pytest.fail("the pledger console script is not installed (pip install -e .)")
    return found


def run_pledger(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`pledger ARGS` on the settings' store: --db for SQLite, else the URL in the environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PLEDGER_")}
    store_args: list[str] = []
    if settings.database_url:
        env["PLEDGER_DATABASE_URL"] = settings.database_url
    else:
        store_args = ["--db", str(settings.db_path)]
    return subprocess.run(  # a timeout only so that a hang fails instead of stalling the suite
        [_pledger_executable(), *args, *store_args],
        capture_output=True,
        encoding="utf-8",
        env=env,
        cwd=settings.db_path.parent,
        check=False,
        timeout=300,
    )


def export_lines(settings: Settings) -> list[dict[str, Any]]:
    result = run_pledger(settings, "export", "events", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    # JSON Lines ends lines with \n only: str.splitlines() would also split inside a U+2028.
    return [json.loads(line) for line in result.stdout.split("\n") if line]


@dataclass(frozen=True)
class VerifyOutcome:
    exit_code: int
    events_checked: int
    position: int
    digest: str
    mismatches: list[str]
    output: str


def verify(settings: Settings) -> VerifyOutcome:
    result = run_pledger(settings, "verify")
    output = result.stdout + result.stderr

    def stated(label: str) -> str:
        match = re.search(rf"^{label}:\s+(\S+)$", result.stdout, re.MULTILINE)
        assert match, f"`pledger verify` did not state its {label}:\n{output}"
        return match.group(1)

    return VerifyOutcome(
        exit_code=result.returncode,
        events_checked=int(stated("events checked")),
        position=int(stated("position")),
        digest=stated("digest"),
        mismatches=[line for line in output.splitlines() if line.startswith("MISMATCH")],
        output=output,
    )


def names(recorded: Recorded) -> str:
    """How `pledger verify` points at one event."""
    return f"position {recorded.position}: stream {recorded.stream_id} version {recorded.version}"


# ---- editing stored events behind the ledger's back ---------------------------------------------


def read_state(settings: Settings, position: int) -> bytes:
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as conn:
            row = conn.execute(
                "SELECT state FROM pledger_events WHERE notification_id = %s", (position,)
            ).fetchone()
    else:
        with sqlite3.connect(settings.db_path) as conn:
            row = conn.execute(
                "SELECT state FROM stored_events WHERE rowid = ?", (position,)
            ).fetchone()
    assert row is not None, f"no stored event at position {position}"
    return bytes(row[0])


def write_state(settings: Settings, position: int, state: bytes) -> None:
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg:
            updated = pg.execute(
                "UPDATE pledger_events SET state = %s WHERE notification_id = %s", (state, position)
            ).rowcount
    else:
        lite = sqlite3.connect(settings.db_path)
        try:
            with lite:
                updated = lite.execute(
                    "UPDATE stored_events SET state = ? WHERE rowid = ?", (state, position)
                ).rowcount
        finally:
            lite.close()
    assert updated == 1


def edit_state(settings: Settings, position: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite one stored event's JSON state with `change` applied to it."""
    state = json.loads(read_state(settings, position))
    change(state)
    write_state(settings, position, json.dumps(state, ensure_ascii=False).encode("utf-8"))


# ---- export, checked independently ---------------------------------------------------------------


def test_export_passes_an_independent_check_whose_digest_verify_agrees_with(
    settings: Settings, sample: SampleLedger
) -> None:
    events = export_lines(settings)

    digest = independent_digest(events)

    outcome = verify(settings)
    assert outcome.exit_code == 0, outcome.output
    assert outcome.digest == digest
    assert outcome.events_checked == len(events) == len(sample.recorded)
    assert outcome.position == events[-1]["position"] == sample.recorded[-1].position


def test_export_holds_each_event_as_recorded_in_the_v1_events_shape(
    settings: Settings, sample: SampleLedger
) -> None:
    events = export_lines(settings)

    assert [(e["position"], e["stream_id"], e["version"], e["hash"]) for e in events] == [
        (r.position, str(r.stream_id), r.version, r.hash) for r in sample.recorded
    ]
    for event in events:
        # ``disclosed``: beside an event whose personal fields are commitments (issue 16)
        assert set(event) - {"disclosed"} == EXPORTED_KEYS
        assert ("disclosed" in event) == ("personal" in event["data"])
        assert INSTANT.fullmatch(event["occurred_at"]), event["occurred_at"]
        assert INSTANT.fullmatch(event["recorded_at"]), event["recorded_at"]
        assert event["stream_type"] == (
            "coalition" if event["stream_id"] == str(sample.coalition) else "partner"
        )
        assert event["recorded_by"] == STEWARD
        assert event["stream_id"] == str(UUID(event["stream_id"]))  # lowercase canonical form
    first = events[0]
    assert first["prev_hash"] == ZEROS
    assert first["type"] == "partner_registered"
    assert first["disclosed"]["name"]["value"] == "Asociación Vecinal Ñandú"
    assert "name" not in first["data"]
    assert set(first["data"]["personal"]["commitments"]) == set(first["disclosed"])
    assert first["occurred_at"] == "2026-01-05T15:00:00.000000Z"


def test_export_writes_money_and_dates_as_strings(settings: Settings, sample: SampleLedger) -> None:
    by_position = {e["position"]: e for e in export_lines(settings)}

    payment = by_position[sample.payment.position]
    assert payment["type"] == "payment_made"
    assert payment["data"] == {
        "amount": "350.50",
        "currency": "USD",
        "purpose": "stipend",
        "commitment_id": "stipend-2026",
    }
    made = by_position[sample.payment.position - 1]["data"]
    assert (made["amount"], made["due_on"]) == (
        "350.50",
        "2026-03-01",
    )  # 350.5 given, 2 places kept
    assert by_position[sample.renegotiation.position]["data"]["due_on"] == "2026-02-15"
    yen = next(e for e in by_position.values() if e["data"].get("currency") == "JPY")
    assert yen["data"]["amount"] == "12000"


def test_export_to_a_file_writes_the_same_bytes_as_to_stdout(
    settings: Settings, sample: SampleLedger
) -> None:
    target = settings.db_path.parent / "events.jsonl"

    to_file = run_pledger(
        settings, "export", "events", "--format", "jsonl", "--output", str(target)
    )
    to_stdout = run_pledger(settings, "export", "events")

    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stdout == ""
    assert target.read_text(encoding="utf-8") == to_stdout.stdout
    assert to_stdout.stdout.count("\n") == len(sample.recorded)


def test_independent_checker_rejects_an_export_edited_after_the_fact(
    settings: Settings, sample: SampleLedger
) -> None:
    events = export_lines(settings)
    index = next(i for i, e in enumerate(events) if e["position"] == sample.payment.position)
    events[index]["data"]["amount"] = "3500.50"

    with pytest.raises(AssertionError, match=rf"content at {sample.payment.position}\b"):
        independent_digest(events)


# ---- verify -------------------------------------------------------------------------------------


def test_verify_passes_an_untouched_ledger_and_states_what_it_checked(
    settings: Settings, sample: SampleLedger
) -> None:
    outcome = verify(settings)

    assert outcome.exit_code == 0, outcome.output
    assert outcome.mismatches == []
    assert outcome.events_checked == len(sample.recorded)
    assert outcome.position == sample.recorded[-1].position
    assert re.fullmatch(r"[0-9a-f]{64}", outcome.digest)
    assert outcome.digest != ZEROS


def test_verify_passes_an_empty_ledger_with_no_events(settings: Settings) -> None:
    outcome = verify(settings)

    assert outcome.exit_code == 0, outcome.output
    assert (outcome.events_checked, outcome.position, outcome.digest) == (0, 0, ZEROS)
    assert export_lines(settings) == []


# ---- tampering ----------------------------------------------------------------------------------


def test_verify_names_the_one_event_whose_stored_content_was_edited(
    settings: Settings, sample: SampleLedger
) -> None:
    before = verify(settings)
    state = read_state(settings, sample.payment.position)
    assert state.count(b'"amount":"350.50"') == 1
    write_state(settings, sample.payment.position, state.replace(b'"350.50"', b'"3500.50"'))

    after = verify(settings)

    assert after.exit_code != 0
    assert after.mismatches == [
        f"MISMATCH {names(sample.payment)}: stored content no longer matches its hash"
    ]
    assert after.events_checked == before.events_checked


def test_export_of_an_edited_event_fails_the_independent_check_there(
    settings: Settings, sample: SampleLedger
) -> None:
    edit_state(settings, sample.payment.position, lambda s: s["data"].update(amount="3.50"))

    events = export_lines(settings)

    with pytest.raises(AssertionError, match=rf"content at {sample.payment.position}\b"):
        independent_digest(events)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda state: b'{"data": {"amount": "350.50"', id="invalid-json"),
        pytest.param(
            lambda state: state.replace(b'"amount":"350.50"', b'"amount":{"value":"350.50"}'),
            id="amount-of-the-wrong-type",
        ),
        pytest.param(
            lambda state: state.replace(b'"recorded_by"', b'"recorder"'), id="field-missing"
        ),
    ],
)
def test_verify_names_a_stored_event_that_no_longer_decodes(
    settings: Settings, sample: SampleLedger, corrupt: Callable[[bytes], bytes]
) -> None:
    state = read_state(settings, sample.payment.position)
    corrupted = corrupt(state)
    assert corrupted != state
    write_state(settings, sample.payment.position, corrupted)

    after = verify(settings)

    assert after.exit_code != 0
    assert after.mismatches, after.output
    assert after.mismatches[0].startswith(
        f"MISMATCH {names(sample.payment)}: stored content no longer decodes"
    )
    assert all(
        names(sample.payment) in line or names(sample.fulfilment) in line
        for line in after.mismatches
    )
    assert after.events_checked == len(sample.recorded)


def test_export_stops_with_a_message_naming_a_stored_event_that_no_longer_decodes(
    settings: Settings, sample: SampleLedger
) -> None:
    write_state(settings, sample.payment.position, b'{"occurred_at": "2026-')

    result = run_pledger(settings, "export", "events", "--format", "jsonl")

    assert result.returncode != 0
    damaged = f"stored event {sample.payment.stream_id} version {sample.payment.version}"
    assert f"{damaged} does not decode" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_catches_an_edit_that_recomputed_its_own_hash_at_the_next_link(
    settings: Settings, sample: SampleLedger
) -> None:
    before = verify(settings)

    def forge(state: dict[str, Any]) -> None:
        state["data"]["amount"] = "3500.50"
        document = {
            "stream_id": str(sample.payment.stream_id),
            "version": sample.payment.version,
            "type": "payment_made",
            **{
                k: state[k]
                for k in ("occurred_at", "recorded_at", "recorded_by", "data", "prev_hash")
            },
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        state["hash"] = hashlib.sha256(text.encode("utf-8")).hexdigest()

    edit_state(settings, sample.payment.position, forge)

    after = verify(settings)

    assert after.exit_code != 0
    assert after.mismatches == [
        f"MISMATCH {names(sample.fulfilment)}: prev_hash does not match the hash of version "
        f"{sample.payment.version}"
    ]
    assert not any("no longer matches its hash" in line for line in after.mismatches)
    assert after.digest != before.digest  # the digest chains the forged hash, so it moves too


# ---- refusals ----------------------------------------------------------------------------------


def test_export_refuses_a_format_other_than_jsonl(sqlite_settings: Settings) -> None:
    result = run_pledger(sqlite_settings, "export", "events", "--format", "xml")

    assert result.returncode != 0
    assert result.stdout == ""
    assert "jsonl" in result.stderr
    assert "xml" in result.stderr
    assert not sqlite_settings.db_path.exists()  # refused before opening anything


# ---- reproducing a report from itself (issue 13) --------------------------------------------


def test_a_report_made_again_like_itself_has_the_same_bytes_after_more_is_recorded(
    settings: Settings, sample: SampleLedger, tmp_path: Path
) -> None:
    first = run_pledger(
        settings,
        "report",
        str(sample.coalition),
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-31",
        "--as-of",
        "2026-02-15",
    )
    assert first.returncode == 0, first.stderr
    saved = tmp_path / "report.json"
    saved.write_text(first.stdout, encoding="utf-8")
    # More is recorded afterwards; the report made like the first still answers as the first.
    ledger = open_ledger(settings)
    try:
        ledger.record(
            sample.nandu,
            ContactMade(channel=Channel.PHONE, direction=Direction.INBOUND, summary="later"),
            _at(date(2026, 2, 10)),
        )
    finally:
        ledger.close()

    again = run_pledger(settings, "report", "--like", str(saved))

    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert run_pledger(settings, "report", str(sample.coalition)).stdout != first.stdout


def test_like_refuses_a_file_that_is_not_a_report_and_says_what_it_needs(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    stray = tmp_path / "notes.json"
    stray.write_text('{"hello": "world"}', encoding="utf-8")

    refused = run_pledger(sqlite_settings, "report", "--like", str(stray))

    assert refused.returncode == 2
    assert "coalition.id, as_of, position and period" in refused.stderr
    both = run_pledger(sqlite_settings, "report", "--like", str(stray), "--as-of", "2026-01-01")
    assert both.returncode == 2
    assert "give none of them beside it" in both.stderr
