"""`pledger import partners|events FILE.csv` (SPEC §6): every row checked, then all or nothing.

Given a CSV file, the import either records every row in one transaction and says how much it
recorded, or prints each problem as ``row N, column C: message`` (the header is row 1, as a
spreadsheet numbers it), exits 1 and leaves the log exactly as it was.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from api.cli import app
from api.importing import partner_names
from api.settings import Settings
from domain.application import Partnerships, Recorded
from domain.chained import ChainedAggregate, Stamp
from domain.values import (
    Channel,
    CoalitionFormed,
    PartnerKind,
    PartnerRegistered,
    Preferences,
    Side,
)

runner = CliRunner()
WHEN = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
STEWARD = Stamp(WHEN, "steward:test")
PARTNERS_HEADER = (
    "name,kind,roles,communities,region,channels,language,accessibility,gratitude,"
    "checkin_every_days"
)


def pledger(settings: Settings, *args: str) -> Result:
    """Run the real CLI in-process against the test's store (SQLite by --db, PostgreSQL by env)."""
    argv = list(args)
    if settings.database_url is None:
        argv += ["--db", str(settings.db_path)]
    return runner.invoke(app, argv, env={"PLEDGER_DATABASE_URL": settings.database_url or ""})


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def events_file(tmp_path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """An events CSV with the columns the rows use, after partner, type and occurred_at."""
    columns = ["partner", "type", "occurred_at"]
    for row in rows:
        columns += [c for c in row if c not in columns]
    path = tmp_path / "events.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def register(ledger: Partnerships, name: str, kind: PartnerKind = PartnerKind.ORGANIZATION) -> UUID:
    return ledger.register_partner(PartnerRegistered(name=name, kind=kind), STEWARD).stream_id


def problem_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("row ")]


# ---- partners files -----------------------------------------------------------------------


def test_partners_file_registers_each_partner_with_its_cadence(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "partners.csv",
        PARTNERS_HEADER + ",occurred_at",
        "Eastside Youth Alliance,organization,advisory_member; speaker,youth;Eastside,North,"
        "email;phone,es,captions,public_acknowledgment,14,2026-01-05T15:00:00Z",
        "Maria Lopez,individual,grant_reviewer,,,,,,,,",
        "Harbor Tenants Union,organization,,tenants,,,,,,60,2026-02-01T09:30:00-05:00",
    )

    result = pledger(settings, "import", "partners", str(path))

    assert result.exit_code == 0, result.output
    assert "Recorded 3 partners (5 events)" in result.stdout
    assert ledger.last_position() == 5
    ids = {name: partner_id for partner_id, name in partner_names(ledger).items()}
    eastside = ledger.get_partner(ids["Eastside Youth Alliance"])
    assert eastside.kind is PartnerKind.ORGANIZATION
    assert eastside.roles == ("advisory_member", "speaker")
    assert eastside.communities == ("youth", "Eastside")
    assert eastside.preferences == Preferences(
        channels=(Channel.EMAIL, Channel.PHONE),
        language="es",
        accessibility=("captions",),
        gratitude=("public_acknowledgment",),
    )
    assert eastside.cadence_days == 14
    assert eastside.registered_at == WHEN
    maria = ledger.get_partner(ids["Maria Lopez"])
    assert (maria.kind, maria.roles, maria.region) == (
        PartnerKind.INDIVIDUAL,
        ("grant_reviewer",),
        None,
    )
    assert maria.cadence_days == 30
    assert maria.version == 1
    harbor = ledger.get_partner(ids["Harbor Tenants Union"])
    assert harbor.cadence_days == 60
    assert harbor.registered_at == datetime(2026, 2, 1, 14, 30, tzinfo=UTC)
    events = [ledger.decode(n) for n in ledger.notifications()]
    assert {e.recorded_by for e in events} == {events[0].recorded_by}
    assert events[0].recorded_by.startswith("cli:")


def test_bad_rows_are_each_reported_with_row_and_column_and_nothing_is_recorded(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    register(ledger, "Already Here")
    before = ledger.last_position()
    path = write(
        tmp_path,
        "partners.csv",
        PARTNERS_HEADER + ",occurred_at",
        "Good Partner,organization,,,,,,,,,",
        "Bad Kind,org,,,,,,,,,",
        "Bad Channel,individual,,,,fax;email,,,,0,",
        ",individual,,,,,,,,weekly,2999-01-01T00:00:00Z",
        "Wall Clock,organization,,,,,,,,,2026-01-05T15:00:00",
        "Good Too,organization,,,,,,,,30,",
    )

    result = pledger(settings, "import", "partners", str(path))

    assert result.exit_code == 1
    assert problem_lines(result) == [
        "row 3, column kind: 'org' is not allowed; use 'organization' or 'individual'",
        "row 4, column channels: 'fax' is not allowed; use 'email', 'phone', 'text', "
        "'in_person', 'video', 'social_media' or 'letter'",
        "row 4, column checkin_every_days: must be at least 1 (got 0)",
        "row 5, column name: is required",
        "row 5, column checkin_every_days: 'weekly' is not a whole number",
        "row 5, column occurred_at: '2999-01-01T00:00:00Z' is in the future; "
        "record events once they have happened",
    ]
    assert "partners.csv: 6 problems in 3 rows; nothing was recorded." in result.stderr
    assert result.stdout == ""
    assert ledger.last_position() == before


def test_row_numbers_are_the_spreadsheet_rows(sqlite_settings: Settings, tmp_path: Path) -> None:
    # A quoted cell spanning two lines is still one row, and a blank line is a row too.
    path = write(
        tmp_path,
        "partners.csv",
        "name,kind,region",
        'Riverside Clinic,organization,"North side,\nnear the river"',
        "",
        "Bad,someone,",
    )

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 1
    assert problem_lines(result) == [
        "row 4, column kind: 'someone' is not allowed; use 'organization' or 'individual'"
    ]


def test_a_name_already_on_record_is_refused_unless_duplicates_are_allowed(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = write(tmp_path, "partners.csv", "name,kind", "Jordan Lee,individual")
    assert pledger(sqlite_settings, "import", "partners", str(path)).exit_code == 0
    # Another row (not the same file again, which records nothing): the same name however
    # it is typed, in another case and with an accent.
    other = write(tmp_path, "more.csv", "name,kind,region", "JORDAN LÉE,individual,North")

    again = pledger(sqlite_settings, "import", "partners", str(other))
    allowed = pledger(sqlite_settings, "import", "partners", str(other), "--allow-duplicate-names")

    assert again.exit_code == 1
    (line,) = problem_lines(again)
    assert line.startswith("row 2, column name: a partner named 'Jordan Lee' is already on record")
    assert allowed.exit_code == 0, allowed.output
    assert "Recorded 1 partners" in allowed.stdout


def test_the_same_name_twice_in_one_file_is_refused(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = write(
        tmp_path, "partners.csv", "name,kind", "Jordan Lee,individual", "Jordan Lee,individual"
    )

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 1
    assert problem_lines(result) == [
        "row 3, column name: row 2 already registers a partner named 'Jordan Lee'; "
        "give another name, or pass --allow-duplicate-names"
    ]


@pytest.mark.parametrize(
    ("command", "header", "expected"),
    [
        (
            "partners",
            "name,kind,website",
            "row 1, column website: is not a column of a partners file; the columns are name, ",
        ),
        ("partners", "name,roles", "row 1, column kind: is missing; a partners file needs"),
        (
            "events",
            "partner,type,occurred_at,colour",
            "row 1, column colour: is not a column of an events file; the columns are partner, ",
        ),
        ("events", "partner,type,summary", "row 1, column occurred_at: is missing"),
    ],
)
def test_a_header_with_a_wrong_or_missing_column_is_refused(
    sqlite_settings: Settings, tmp_path: Path, command: str, header: str, expected: str
) -> None:
    path = write(tmp_path, "file.csv", header, "x")

    result = pledger(sqlite_settings, "import", command, str(path))

    assert result.exit_code == 1
    # The header's problem comes first; with an unknown column the rows are still checked.
    assert problem_lines(result)[0].startswith(expected)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "error: {path}: no such file"),
        (b"name,kind\nCaf\xe9 Luna,organization\n", "error: {path}: is not UTF-8 text (line 2"),
        (b"", "error: {path}: is empty"),
        (b"name,kind\n", "error: {path}: has a header but no rows to import"),
    ],
    ids=["missing", "latin-1", "empty", "header-only"],
)
def test_a_file_that_cannot_be_read_gets_a_one_line_error(
    sqlite_settings: Settings, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "partners.csv"
    if content is not None:
        path.write_bytes(content)

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(expected.format(path=path))


def test_a_byte_order_mark_from_a_spreadsheet_is_ignored(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "partners.csv"
    path.write_text("name,kind\nCafé Luna,organization\n", encoding="utf-8-sig")

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 0, result.output


# ---- events files -------------------------------------------------------------------------


def test_a_later_row_fulfils_a_commitment_an_earlier_row_made(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    maria = register(ledger, "Maria Lopez", PartnerKind.INDIVIDUAL)
    path = events_file(
        tmp_path,
        [
            {
                "partner": "Maria Lopez",
                "type": "commitment_made",
                "occurred_at": "2026-01-06T10:00:00Z",
                "commitment_id": "C-2026-001",
                "owed_by": "us",
                "description": "Stipend for the listening session",
                "due_on": "2026-02-01",
                "resource": "financial",
                "amount": "1500.10",
                "currency": "USD",
            },
            {
                "partner": str(maria),
                "type": "meeting_held",
                "occurred_at": "2026-01-10T17:00:00Z",
                "kind": "listening_session",
                "location": "theirs",
                "attendees": "Maria Lopez; Sam Ortiz",
            },
            {
                "partner": "Maria Lopez",
                "type": "commitment_fulfilled",
                "occurred_at": "2026-01-20T12:00:00Z",
                "commitment_id": "C-2026-001",
                "note": "Paid by cheque, on time",
            },
            {
                "partner": "Maria Lopez",
                "type": "payment_made",
                "occurred_at": "2026-01-20T12:00:00Z",
                "amount": "1500.1",
                "currency": "USD",
                "purpose": "stipend",
                "commitment_id": "C-2026-001",
            },
        ],
    )

    result = pledger(settings, "import", "events", str(path))

    assert result.exit_code == 0, result.output
    assert "Recorded 4 events for 1 partners from events.csv." in result.stdout
    partner = ledger.get_partner(maria, with_history=True)
    commitment = partner.commitments["C-2026-001"]
    assert (commitment.owed_by, commitment.due_on, commitment.closed) == (
        Side.US,
        date(2026, 2, 1),
        "fulfilled",
    )
    made, meeting, fulfilled, paid = (partner.entries[v] for v in range(2, 6))
    assert made.data.model_dump()["amount"] == Decimal("1500.10")
    assert meeting.data.model_dump()["attendees"] == ("Maria Lopez", "Sam Ortiz")
    assert fulfilled.data.TYPE == "commitment_fulfilled"
    amount = paid.data.model_dump()["amount"]
    assert type(amount) is Decimal
    assert amount == Decimal("1500.10")
    assert paid.data.model_dump(mode="json")["amount"] == "1500.10"


def test_a_partner_registered_in_the_file_can_be_named_by_later_rows(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = events_file(
        tmp_path,
        [
            {
                "partner": "Northside Food Bank",
                "type": "partner_registered",
                "occurred_at": "2026-01-05T09:00:00Z",
                "kind": "organization",
                "communities": "food security",
                "channels": "email",
                "language": "en",
            },
            {
                "partner": "Northside Food Bank",
                "type": "contact_made",
                "occurred_at": "2026-01-06T09:00:00Z",
                "channel": "email",
                "direction": "inbound",
                "summary": "Asked about the spring drive",
            },
        ],
    )

    result = pledger(sqlite_settings, "import", "events", str(path))

    assert result.exit_code == 0, result.output
    assert "Recorded 2 events for 1 partners (1 of them new)" in result.stdout


def test_a_profile_update_keeps_the_preferences_left_blank(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    partners = write(
        tmp_path, "partners.csv", "name,kind,channels,language", "Ana Ruiz,individual,text;phone,es"
    )
    assert pledger(sqlite_settings, "import", "partners", str(partners)).exit_code == 0
    path = events_file(
        tmp_path,
        [
            {
                "partner": "Ana Ruiz",
                "type": "profile_updated",
                "occurred_at": "2026-01-07T09:00:00Z",
                "language": "en",
            }
        ],
    )

    result = pledger(sqlite_settings, "import", "events", str(path))

    assert result.exit_code == 0, result.output
    ledger = Partnerships(env=sqlite_settings.event_store_env())
    try:
        (partner_id,) = partner_names(ledger)
        preferences = ledger.get_partner(partner_id).preferences
    finally:
        ledger.close()
    assert preferences.channels == (Channel.TEXT, Channel.PHONE)
    assert preferences.language == "en"


def test_an_unknown_partner_name_is_an_error_for_that_row(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    register(ledger, "Maria Lopez")
    before = ledger.last_position()
    contact = {"type": "contact_made", "channel": "phone", "direction": "inbound"}
    path = events_file(
        tmp_path,
        [
            {"partner": "Maria Lopez", "occurred_at": "2026-01-06T10:00:00Z", **contact},
            {"partner": "Mario Lopez", "occurred_at": "2026-01-06T11:00:00Z", **contact},
            {"partner": str(UUID(int=7)), "occurred_at": "2026-01-06T11:00:00Z", **contact},
        ],
    )

    result = pledger(settings, "import", "events", str(path))

    assert result.exit_code == 1
    assert problem_lines(result) == [
        "row 3, column partner: no partner named 'Mario Lopez' is on record; "
        "did you mean 'Maria Lopez'?",
        f"row 4, column partner: No partner with id {UUID(int=7)} is on record.",
    ]
    assert ledger.last_position() == before


def test_an_ambiguous_partner_name_is_an_error_for_that_row(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    first = register(ledger, "Jordan Lee", PartnerKind.INDIVIDUAL)
    second = register(ledger, "Jordan Lee", PartnerKind.INDIVIDUAL)
    before = ledger.last_position()
    path = events_file(
        tmp_path,
        [
            {
                "partner": "Jordan Lee",
                "type": "stage_changed",
                "occurred_at": "2026-01-06T10:00:00Z",
                "stage": "exploring",
            }
        ],
    )

    result = pledger(settings, "import", "events", str(path))

    assert result.exit_code == 1
    listed = ", ".join(sorted([str(first), str(second)]))
    assert problem_lines(result) == [
        f"row 2, column partner: 2 partners are named 'Jordan Lee'; give the id instead ({listed})"
    ]
    assert ledger.last_position() == before


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [{"type": "contact_made", "channel": "fax", "direction": "inbound"}],
            "row 2, column channel: 'fax' is not allowed; use 'email', 'phone', 'text', "
            "'in_person', 'video', 'social_media' or 'letter'",
            id="bad-enum",
        ),
        pytest.param(
            [
                {
                    "type": "commitment_made",
                    "owed_by": "partner",
                    "description": "Review the draft",
                    "due_on": "03/01/2026",
                    "resource": "time",
                }
            ],
            "row 2, column due_on: '03/01/2026' may have the month or the day first: tell the "
            "import which (--date-order mdy for 3/15/2026, dmy for 15/03/2026), or write a "
            "date like 2026-03-15",
            id="bad-date",
        ),
        pytest.param(
            [
                {
                    "type": "stage_changed",
                    "stage": "exploring",
                    "occurred_at": "2999-01-01T00:00:00Z",
                }
            ],
            "row 2, column occurred_at: '2999-01-01T00:00:00Z' is in the future; "
            "record events once they have happened",
            id="future-occurred-at",
        ),
        pytest.param(
            [{"type": "stage_changed", "stage": "exploring", "occurred_at": "5 Jan 2026"}],
            "row 2, column occurred_at: '5 Jan 2026' is not a date; "
            "write a date like 2026-03-15, or a date and time like 2026-03-15 14:30",
            id="unreadable-occurred-at",
        ),
        pytest.param(
            [{"type": "payment_made", "amount": "10.005", "currency": "USD", "purpose": "stipend"}],
            "row 2, column amount: USD amounts have at most 2 decimal places",
            id="too-many-decimals",
        ),
        pytest.param(
            [{"type": "payment_made", "amount": "10", "currency": "XYZ", "purpose": "stipend"}],
            "row 2, column currency: 'XYZ' is not an ISO 4217 currency code",
            id="bad-currency",
        ),
        pytest.param(
            [{"type": "contact_made", "channel": "email", "direction": "inbound", "amount": "5"}],
            "row 2, column amount: does not apply to contact_made; leave it blank",
            id="field-that-does-not-apply",
        ),
        pytest.param(
            [{"type": "contact_made", "channel": "email"}],
            "row 2, column direction: is required for contact_made",
            id="missing-field",
        ),
        pytest.param(
            [
                {
                    "type": "contact_made",
                    "channel": "email",
                    "direction": "inbound",
                    "language": "fr",
                }
            ],
            "row 2, column language: does not apply to contact_made; leave it blank",
            id="preference-that-does-not-apply",
        ),
        pytest.param(
            [{"type": "profile_updated", "channels": "email;pigeon"}],
            "row 2, column channels: 'pigeon' is not allowed; use 'email', 'phone', 'text', "
            "'in_person', 'video', 'social_media' or 'letter'",
            id="nested-preference",
        ),
        pytest.param(
            [{"type": "checkin_cadence_agreed", "every_days": "400"}],
            "row 2, column every_days: must be at most 366 (got 400)",
            id="cadence-too-long",
        ),
        pytest.param(
            [{"type": "contact_was_made"}],
            "row 2, column type: 'contact_was_made' is not an event type; use one of",
            id="unknown-type",
        ),
        pytest.param(
            [{"type": "member_joined"}],
            "row 2, column type: member_joined events cannot be imported from a file",
            id="coalition-type",
        ),
        pytest.param(
            [{"type": "commitment_fulfilled", "commitment_id": "C-404"}],
            "row 2, column commitment_id: No commitment with commitment_id C-404 is on record.",
            id="unknown-commitment",
        ),
        pytest.param(
            [
                {
                    "type": "commitment_made",
                    "commitment_id": "C-1",
                    "owed_by": "us",
                    "description": "Send the minutes",
                    "due_on": "2026-01-31",
                    "resource": "deliverable",
                },
                {
                    "type": "commitment_cancelled",
                    "commitment_id": "C-1",
                    "reason": "no longer needed",
                },
                {"type": "commitment_fulfilled", "commitment_id": "C-1"},
            ],
            "row 4, column commitment_id: Commitment C-1 is already cancelled, "
            "so it cannot be fulfilled.",
            id="closed-commitment-in-an-earlier-row",
        ),
        pytest.param(
            [
                {
                    "type": "commitment_made",
                    "owed_by": "us",
                    "description": "Send the minutes",
                    "due_on": "2026-01-01",
                    "resource": "deliverable",
                }
            ],
            "row 2, column due_on: 2026-01-01 is before the day the commitment was made "
            "(2026-01-06)",
            id="due-before-made",
        ),
        pytest.param(
            [
                {
                    "type": "commitment_made",
                    "owed_by": "us",
                    "description": "Joint report",
                    "due_on": "2026-03-01",
                    "resource": "deliverable",
                    "coalition_id": str(UUID(int=9)),
                }
            ],
            f"row 2, column coalition_id: no coalition with id {UUID(int=9)} is on record",
            id="unknown-coalition",
        ),
        pytest.param(
            [{"type": "entry_retracted", "version": "one", "reason": "typo"}],
            "row 2, column version: 'one' is not a whole number",
            id="version-not-a-number",
        ),
    ],
)
def test_a_bad_row_is_reported_at_its_column(
    sqlite_settings: Settings,
    tmp_path: Path,
    rows: list[dict[str, str]],
    expected: str,
) -> None:
    partners = write(tmp_path, "partners.csv", "name,kind", "Maria Lopez,individual")
    assert pledger(sqlite_settings, "import", "partners", str(partners)).exit_code == 0
    path = events_file(
        tmp_path,
        [{"partner": "Maria Lopez", "occurred_at": "2026-01-06T10:00:00Z", **r} for r in rows],
    )

    result = pledger(sqlite_settings, "import", "events", str(path))

    assert result.exit_code == 1
    (line,) = problem_lines(result)
    assert line.startswith(expected)
    assert "nothing was recorded" in result.stderr


def test_a_commitment_may_name_a_coalition_on_record(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    ledger = Partnerships(env=sqlite_settings.event_store_env())
    try:
        register(ledger, "Maria Lopez")
        coalition = ledger.form_coalition(CoalitionFormed(name="Eastside Health"), STEWARD)
    finally:
        ledger.close()
    path = events_file(
        tmp_path,
        [
            {
                "partner": "Maria Lopez",
                "type": "commitment_made",
                "occurred_at": "2026-01-06T10:00:00Z",
                "owed_by": "partner",
                "description": "Co-host the town hall",
                "due_on": "2026-03-01",
                "resource": "time",
                "coalition_id": str(coalition.stream_id),
            }
        ],
    )

    result = pledger(sqlite_settings, "import", "events", str(path))

    assert result.exit_code == 0, result.output


def test_a_valid_500_row_file_is_saved_in_one_transaction(
    settings: Settings, ledger: Partnerships, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"Partner {n}" for n in range(5)]
    ids = [register(ledger, name) for name in names]
    before = ledger.last_position()
    rows = []
    for n in range(250):
        partner = names[n % 5]
        made = {
            "partner": partner,
            "type": "commitment_made",
            "occurred_at": "2026-01-06T10:00:00Z",
            "commitment_id": f"C-{n:03}",
            "owed_by": "us" if n % 2 else "partner",
            "description": f"Commitment {n}",
            "due_on": "2026-02-01",
            "resource": "financial",
            "amount": f"{n}.25",
            "currency": "CAD",
        }
        kept = {
            "partner": partner,
            "type": "commitment_fulfilled",
            "occurred_at": "2026-01-20T10:00:00Z",
            "commitment_id": f"C-{n:03}",
        }
        rows += [made, kept]
    path = events_file(tmp_path, rows)
    saves: list[int] = []
    save_batch = Partnerships.save_batch

    def counting_save_batch(
        self: Partnerships, aggregates: Sequence[ChainedAggregate], **recorder_kwargs: Any
    ) -> list[Recorded]:
        saves.append(len(aggregates))
        return save_batch(self, aggregates, **recorder_kwargs)

    monkeypatch.setattr(Partnerships, "save_batch", counting_save_batch)

    result = pledger(settings, "import", "events", str(path))

    assert result.exit_code == 0, result.output
    assert "Recorded 500 events for 5 partners" in result.stdout
    assert saves == [5]
    assert ledger.last_position() == before + 500
    fourth = ledger.get_partner(ids[3])
    assert len(fourth.commitments) == 50
    assert all(c.closed == "fulfilled" for c in fourth.commitments.values())
