"""The coordinator's spreadsheet (issue 12): every problem in one pass with the help to fix it,
contact columns, names matched however they are typed, and a file run again recording nothing.

Uses the coordinator's own exports in shared/fixtures/coordinator (UTF-8 with a BOM, CRLF).
Their month-first dates are read by another part of issue 12; here the events file's dates are
rewritten to ISO instants first, as a person could, so that these tests check this part alone.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.cli import app
from api.importing import parse_table, partner_names, plan_events, save_plan
from api.settings import Settings
from domain.application import Partnerships
from domain.values import ContactPerson, Contacts
from tests.api.test_import import pledger, problem_lines, runner, write

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "coordinator"
if not FIXTURES.is_dir():  # a worktree sits one level deeper than a clone
    FIXTURES = Path("/work/shared/fixtures/coordinator")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_MDY = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")
_DATE_COLUMNS = ("occurred_at", "due_on", "effective_on", "ends_on")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def partners_fixed(tmp_path: Path) -> Path:
    """The partners file after the one round of fixes its messages ask for."""
    text = fixture_bytes("partners.csv").decode("utf-8-sig")
    text = text.replace(",Organization,", ",organization,").replace(",Individual,", ",individual,")
    text = text.replace("in person", "in_person").replace("social media", "social_media")
    text = text.replace(",monthly,", ",30,")
    path = tmp_path / "partners.csv"
    path.write_bytes(text.encode("utf-8-sig"))  # still with its BOM and CRLF line ends
    return path


def iso_dates(text: str) -> str:
    """The events file with every date written YYYY-MM-DD (instants at noon UTC)."""
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        for column in _DATE_COLUMNS:
            found = _MDY.match(row[column])
            if found:
                month, day, year = found.groups()
                row[column] = f"{year}-{int(month):02}-{int(day):02}"
        row["occurred_at"] += "T12:00:00Z"
        writer.writerow(row)
    return "\ufeff" + out.getvalue()


def events_with(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_the_coordinators_partners_file_shows_every_problem_in_one_pass(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "partners.csv"
    path.write_bytes(fixture_bytes("partners.csv"))

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 1
    lines = problem_lines(result)
    # The email column is a column now; kinds, channels and cadence are each named with the fix.
    assert not any("column email" in line for line in lines)
    assert "row 2, column kind: 'Organization' is not allowed; use 'organization' or " in (lines[0])
    assert any(
        line.startswith("row 4, column channels: 'in person' is not allowed") for line in lines
    )
    assert "row 9, column checkin_every_days: 'monthly' is not a whole number" in lines
    assert len(lines) == 9


def test_after_one_round_of_fixes_the_coordinators_files_import_with_contacts(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    imported = pledger(settings, "import", "partners", str(partners_fixed(tmp_path)))
    assert imported.exit_code == 0, imported.output
    assert "Recorded 16 partners" in imported.stdout
    ids = {name: partner_id for partner_id, name in partner_names(ledger).items()}
    kitchen = ledger.get_partner(ids["Café Esperanza Community Kitchen"])
    assert kitchen.contacts == Contacts(emails=("info@example.org",))
    assert ledger.get_partner(ids["José Ramírez"]).contacts == Contacts()

    text = iso_dates(fixture_bytes("events.csv").decode("utf-8"))
    first = pledger(settings, "import", "events", str(events_with(tmp_path, text)))
    # Amounts with separators or a currency sign, a capitalised kind: each refused, with the
    # fix in its message, in one pass; a row that only depends on a refused one says so.
    assert first.exit_code == 1
    lines = problem_lines(first)
    assert [line.split(":")[0] for line in lines] == [
        "row 4, column amount",
        "row 5, column amount",
        "row 6, column commitment_id",
        "row 14, column amount",
        "row 15, column amount",
        "row 15, column currency",
        "row 16, column commitment_id",
        "row 35, column kind",
        "row 40, column amount",
        "row 41, column amount",
        "row 42, column commitment_id",
    ]
    assert lines[0] == (
        "row 4, column amount: '1,500.00' is not a number; write amounts like 1250.00, "
        "without a thousands separator"
    )
    assert lines[2].endswith(
        "refers to C-2025-001, made in row 4, which has a problem of its own; "
        "fixing that row fixes this one"
    )
    assert "the currency code (such as USD) in the currency column" in lines[3]
    assert ledger.last_position() == 31

    second = pledger(settings, "import", "events", str(events_with(tmp_path, fixed_events())))
    assert second.exit_code == 0, second.output
    assert "Recorded 47 events for 11 partners" in second.stdout


def fixed_events() -> str:
    """The events file after the one round of fixes its messages ask for."""
    text = iso_dates(fixture_bytes("events.csv").decode("utf-8"))
    text = text.replace('"1,500.00"', "1500.00").replace('"12,000.00"', "12000.00")
    return text.replace("$250,", "250,USD").replace(",Check-in,", ",check_in,")


def test_unknown_columns_bad_values_and_unknown_names_come_in_one_run(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    assert pledger(settings, "import", "partners", str(partners_fixed(tmp_path))).exit_code == 0
    path = write(
        tmp_path,
        "events.csv",
        "partner,type,occurred_at,channel,direction,summary,colour",
        "Jsoe Ramirez,contact_made,2026-01-05T12:00:00Z,phone,inbound,Asked about dates,red",
        "Siobhan O'Brien,contact_made,2026-01-06T12:00:00Z,pigeon,outbound,,",
        "JOSE RAMIREZ,contact_made,2026-01-07T12:00:00Z,phone,sideways,Called back,",
    )

    result = pledger(settings, "import", "events", str(path))

    assert result.exit_code == 1
    assert problem_lines(result) == [
        "row 1, column colour: is not a column of an events file; the columns are "
        + problem_lines(result)[0].split("the columns are ")[1],
        "row 2, column partner: no partner named 'Jsoe Ramirez' is on record; "
        "did you mean 'José Ramírez'?",
        # A "Last, First" name is found from "First Last".
        'row 3, column partner: no partner named "Siobhan O\'Brien" is on record; '
        'did you mean "O\'Brien, Siobhán"?',
        "row 3, column channel: 'pigeon' is not allowed; use 'email', 'phone', 'text', "
        "'in_person', 'video', 'social_media' or 'letter'",
        "row 4, column direction: 'sideways' is not allowed; use 'outbound' or 'inbound'",
    ]
    assert ledger.last_position() == 31  # the 16 partners and their 15 cadences, nothing more


def test_a_name_matches_whatever_its_case_accents_or_normal_form(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    assert pledger(settings, "import", "partners", str(partners_fixed(tmp_path))).exit_code == 0
    decomposed = "Jose\u0301 Rami\u0301rez"  # NFD, as macOS writes it
    path = write(
        tmp_path,
        "events.csv",
        "partner,type,occurred_at,channel,direction",
        "jose ramirez,contact_made,2026-01-05T12:00:00Z,phone,inbound",
        f"{decomposed},contact_made,2026-01-06T12:00:00Z,phone,outbound",
        "JOSÉ RAMÍREZ,contact_made,2026-01-07T12:00:00Z,text,inbound",
    )

    result = pledger(settings, "import", "events", str(path))

    assert result.exit_code == 0, result.output
    ids = {name: partner_id for partner_id, name in partner_names(ledger).items()}
    assert ledger.get_partner(ids["José Ramírez"]).version == 5  # registered, cadence, 3 rows
    again = write(tmp_path, "more.csv", "name,kind", "jose RAMIREZ,individual")
    refused = pledger(settings, "import", "partners", str(again))
    assert refused.exit_code == 1
    assert problem_lines(refused)[0].startswith(
        "row 2, column name: a partner named 'José Ramírez' is already on record"
    )


def test_the_same_file_twice_records_nothing_the_second_time(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    partners = partners_fixed(tmp_path)
    assert pledger(settings, "import", "partners", str(partners)).exit_code == 0
    events = events_with(tmp_path, fixed_events())
    assert pledger(settings, "import", "events", str(events)).exit_code == 0
    after_first = ledger.last_position()

    partners_again = pledger(settings, "import", "partners", str(partners))
    events_again = pledger(settings, "import", "events", str(events))

    assert partners_again.exit_code == 0, partners_again.output
    assert "16 rows already recorded, 0 new. Recorded 0 partners" in partners_again.stdout
    assert events_again.exit_code == 0, events_again.output
    assert "47 rows already recorded, 0 new. Recorded 0 events" in events_again.stdout
    assert ledger.last_position() == after_first


def test_a_file_with_new_rows_after_old_ones_records_only_the_new(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    assert pledger(settings, "import", "partners", str(partners_fixed(tmp_path))).exit_code == 0
    header = "partner,type,occurred_at,channel,direction,summary"
    rows = [
        "José Ramírez,contact_made,2026-01-05T12:00:00Z,phone,inbound,Called",
        # The same contact twice in one file is two entries, and stays two.
        "Zoë Kowalczyk,contact_made,2026-01-06T12:00:00Z,email,outbound,Sent the agenda",
        "Zoë Kowalczyk,contact_made,2026-01-06T12:00:00Z,email,outbound,Sent the agenda",
    ]
    assert pledger(settings, "import", "events", str(write(tmp_path, "a.csv", header, *rows)))
    before = ledger.last_position()
    grown = [*rows, "Ahmed Al-Farsi,contact_made,2026-01-08T12:00:00Z,text,inbound,Thanks"]
    # Typed again by hand: other spacing, the name in capitals, the date without seconds' zeros.
    grown[0] = "JOSÉ RAMÍREZ ,contact_made,2026-01-05T12:00:00+00:00,phone,inbound,Called"

    result = pledger(settings, "import", "events", str(write(tmp_path, "b.csv", header, *grown)))

    assert result.exit_code == 0, result.output
    assert "3 rows already recorded, 1 new. Recorded 1 events for 1 partners" in result.stdout
    assert ledger.last_position() == before + 1


def test_an_import_that_died_after_its_commit_records_nothing_when_run_again(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    """The save is the last thing an import does before it prints: what a kill after the
    commit leaves behind is exactly a saved plan, with its rows' fingerprints."""
    assert pledger(settings, "import", "partners", str(partners_fixed(tmp_path))).exit_code == 0
    text = "\n".join(
        [
            "partner,type,occurred_at,channel,direction",
            *(
                f"José Ramírez,contact_made,2026-02-{day:02}T12:00:00Z,phone,inbound"
                for day in range(1, 21)
            ),
        ]
    )
    plan = plan_events(ledger, parse_table(text), recorded_by="cli:test", now=NOW)
    assert save_plan(ledger, plan)  # committed; the process "dies" before saying so
    before = ledger.last_position()

    rerun = pledger(settings, "import", "events", str(write(tmp_path, "e.csv", text)))

    assert rerun.exit_code == 0, rerun.output
    assert "20 rows already recorded, 0 new" in rerun.stdout
    assert ledger.last_position() == before


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (
            "a@example.org; b@example.org,+1 559 555 0100,1 Main St,Ana Ruiz; Ben Lee,Director;",
            Contacts(
                emails=("a@example.org", "b@example.org"),
                phones=("+1 559 555 0100",),
                address="1 Main St",
                people=(
                    ContactPerson(name="Ana Ruiz", role="Director"),
                    ContactPerson(name="Ben Lee"),
                ),
            ),
        ),
        (",,,Ana Ruiz,", Contacts(people=(ContactPerson(name="Ana Ruiz"),))),
    ],
)
def test_contact_columns_fill_the_partners_contacts(
    sqlite_settings: Settings, tmp_path: Path, cells: str, expected: Contacts
) -> None:
    path = write(
        tmp_path,
        "partners.csv",
        "name,kind,email,phone,address,contact_name,contact_role",
        f"Harbor Tenants Union,organization,{cells}",
    )

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 0, result.output
    from api.wiring import open_ledger

    ledger = open_ledger(sqlite_settings)
    try:
        (partner_id,) = partner_names(ledger)
        assert ledger.get_partner(partner_id).contacts == expected
    finally:
        ledger.close()


def test_a_bad_email_or_phone_is_named_at_its_column(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "partners.csv",
        "name,kind,email,phone,contact_role",
        "Harbor Tenants Union,organization,info(at)example.org,call me,Director",
    )

    result = pledger(sqlite_settings, "import", "partners", str(path))

    assert result.exit_code == 1
    assert problem_lines(result) == [
        "row 2, column email: 'info(at)example.org' is not an email address (An email address "
        "must have an @-sign); write one like name@example.org",
        "row 2, column phone: 'call me' is not a phone number; write digits, optionally with "
        "+ ( ) - . and an extension, such as +1 559 555 0123 or (559) 555-0123 x 12",
        "row 2, column contact_name: is required",
    ]


# ---- templates and the partners file out ---------------------------------------------------


def test_the_templates_import_as_they_are_and_once(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    for kind in ("partners", "events"):
        printed = runner.invoke(app, ["import", "template", kind])
        assert printed.exit_code == 0, printed.output
        lines = printed.stdout.splitlines()
        assert len(lines) == 3  # a header and two example rows
        path = tmp_path / f"{kind}.csv"
        path.write_text(printed.stdout, encoding="utf-8")
        imported = pledger(settings, "import", kind, str(path))
        assert imported.exit_code == 0, imported.output
        again = pledger(settings, "import", kind, str(path))
        assert "2 rows already recorded, 0 new" in again.stdout

    ids = {name: partner_id for partner_id, name in partner_names(ledger).items()}
    union = ledger.get_partner(ids["Eastside Tenants Union"])
    assert union.contacts.people == (
        ContactPerson(name="Rosa Delgado", role="Organizer"),
        ContactPerson(name="Sam Ortiz", role="Treasurer"),
    )
    assert union.version == 4  # registered, cadence, the meeting and the commitment


def test_partners_exported_import_into_an_empty_ledger_as_the_same_partners(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    assert pledger(settings, "import", "partners", str(partners_fixed(tmp_path))).exit_code == 0
    people = write(
        tmp_path,
        "people.csv",
        "name,kind,contact_name,contact_role,contact_email,contact_phone,phone",
        "=Formula Aid,organization,Ana Ruiz; Ben Lee,; Treasurer,ana@example.org,,+1 559 555 0100",
    )
    assert pledger(settings, "import", "partners", str(people)).exit_code == 0
    out = tmp_path / "exported.csv"

    exported = pledger(settings, "export", "partners", "--format", "csv", "-o", str(out))

    assert exported.exit_code == 0, exported.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbfname,kind,")
    assert "'=Formula Aid" in out.read_text(encoding="utf-8-sig")  # never a live formula
    empty = Settings(db_path=tmp_path / "empty.db")
    imported = pledger(empty, "import", "partners", str(out))
    assert imported.exit_code == 0, imported.output
    assert "Recorded 17 partners" in imported.stdout
    from api.wiring import open_ledger

    copy = open_ledger(empty)
    try:
        assert _partners(copy) == _partners(ledger)
    finally:
        copy.close()


def _partners(ledger: Partnerships) -> list[tuple[object, ...]]:
    """What a partner is, whichever ledger it is in (not its id or event count)."""
    found = []
    for partner_id in partner_names(ledger):
        p = ledger.get_partner(partner_id)
        found.append(
            (
                p.name,
                p.kind,
                p.roles,
                p.communities,
                p.region,
                p.preferences,
                p.contacts,
                p.cadence_days,
                p.registered_at,
            )
        )
    return sorted(found, key=repr)


def test_a_large_file_run_again_records_nothing(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    """Past 1,000 events PostgreSQL's save goes by COPY: the fingerprints still go with it."""
    assert pledger(settings, "import", "partners", str(partners_fixed(tmp_path))).exit_code == 0
    rows = [
        f"Zoë Kowalczyk,contact_made,2026-01-{1 + n % 28:02}T12:00:00Z,email,outbound,note {n}"
        for n in range(1001)
    ]
    path = write(tmp_path, "big.csv", "partner,type,occurred_at,channel,direction,summary", *rows)
    first = pledger(settings, "import", "events", str(path))
    assert first.exit_code == 0, first.output
    after = ledger.last_position()

    again = pledger(settings, "import", "events", str(path))

    assert again.exit_code == 0, again.output
    assert "1001 rows already recorded, 0 new" in again.stdout
    assert ledger.last_position() == after
