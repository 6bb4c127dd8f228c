"""Issue 10 for CSV files: a cell is checked by the same grammar as an API body.

Every refusal names its row and column, exits 1 and records nothing, on both stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings
from domain.application import Partnerships
from tests.api.test_import import (
    PARTNERS_HEADER,
    events_file,
    pledger,
    problem_lines,
    register,
    write,
)


def refused(settings: Settings, ledger: Partnerships, path: Path, kind: str) -> list[str]:
    before = ledger.last_position()
    result = pledger(settings, "import", kind, str(path))
    assert result.exit_code == 1, result.output
    assert "nothing was recorded" in result.stderr
    assert ledger.last_position() == before
    return problem_lines(result)


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x1f", "\x7f", "\x85"])
def test_a_control_character_in_a_partners_cell_is_refused(
    settings: Settings, ledger: Partnerships, tmp_path: Path, control: str
) -> None:
    path = write(
        tmp_path, "partners.csv", PARTNERS_HEADER, f"East{control}side,organization,,,,,,,,"
    )

    lines = refused(settings, ledger, path, "partners")

    assert len(lines) == 1
    assert lines[0].startswith("row 2, column name: holds the control character")
    assert control not in lines[0]  # shown visibly, never sent to the terminal raw


def test_a_control_character_at_the_edge_of_a_cell_is_refused_not_trimmed(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    # str.strip() would drop U+001F: the cell must be refused, not recorded as "Eastside".
    path = write(tmp_path, "partners.csv", PARTNERS_HEADER, "Eastside\x1f,organization,,,,,,,,")

    lines = refused(settings, ledger, path, "partners")

    assert [line.split(":")[0] for line in lines] == ["row 2, column name"]


def test_a_control_character_in_a_list_cell_of_an_events_file_is_refused(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    partner_id = register(ledger, "Eastside Union")
    row = {
        "partner": str(partner_id),
        "type": "meeting_held",
        "occurred_at": "2026-01-05T15:00:00Z",
        "kind": "informal",
        "location": "ours",
        "attendees": "Rosa;D\x00v",
    }

    lines = refused(settings, ledger, events_file(tmp_path, [row]), "events")

    assert [line.split(":")[0] for line in lines] == ["row 2, column attendees"]


def _payment(partner: str, amount: str) -> dict[str, str]:
    return {
        "partner": partner,
        "type": "payment_made",
        "occurred_at": "2026-01-05T15:00:00Z",
        "amount": amount,
        "currency": "USD",
        "purpose": "stipend",
    }


@pytest.mark.parametrize(
    "amount",
    ["1__0", "_1", "1_", "1_000.5_0", "1e3", "-5", "+5", "1,000.00", "\u0661\u0660"],
)
def test_an_amount_cell_outside_the_grammar_is_refused(
    settings: Settings, ledger: Partnerships, tmp_path: Path, amount: str
) -> None:
    partner_id = register(ledger, "Eastside Union")

    lines = refused(
        settings, ledger, events_file(tmp_path, [_payment(str(partner_id), amount)]), "events"
    )

    assert [line.split(":")[0] for line in lines] == ["row 2, column amount"]


def test_an_amount_cell_with_more_places_than_the_currency_is_refused_never_rounded(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    partner_id = register(ledger, "Eastside Union")
    row = _payment(str(partner_id), "1.000000000000000000000000000001")

    lines = refused(settings, ledger, events_file(tmp_path, [row]), "events")

    assert lines == ["row 2, column amount: USD amounts have at most 2 decimal places"]


@pytest.mark.parametrize("due_on", ["1798761600", "20270105", "2027-1-5"])
def test_a_date_cell_is_yyyy_mm_dd_only(
    settings: Settings, ledger: Partnerships, tmp_path: Path, due_on: str
) -> None:
    partner_id = register(ledger, "Eastside Union")
    row = {
        "partner": str(partner_id),
        "type": "commitment_made",
        "occurred_at": "2026-01-05T15:00:00Z",
        "owed_by": "us",
        "description": "Report",
        "due_on": due_on,
        "resource": "deliverable",
    }

    lines = refused(settings, ledger, events_file(tmp_path, [row]), "events")

    assert lines == [
        f"row 2, column due_on: {due_on!r} is not a date; write a date like 2026-03-15"
    ]


@pytest.mark.parametrize("occurred_at", ["1798761600", "20260105T150000Z", "2026-W02-1"])
def test_an_occurred_at_cell_is_rfc_3339_only(
    settings: Settings, ledger: Partnerships, tmp_path: Path, occurred_at: str
) -> None:
    partner_id = register(ledger, "Eastside Union")
    row = {
        "partner": str(partner_id),
        "type": "stage_changed",
        "occurred_at": occurred_at,
        "stage": "exploring",
    }

    lines = refused(settings, ledger, events_file(tmp_path, [row]), "events")

    assert [line.split(":")[0] for line in lines] == ["row 2, column occurred_at"]


def test_a_bidirectional_control_in_a_partner_name_cell_is_refused(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    path = write(tmp_path, "partners.csv", PARTNERS_HEADER, "Acme\u202eCorp,organization,,,,,,,,")

    lines = refused(settings, ledger, path, "partners")

    assert [line.split(":")[0] for line in lines] == ["row 2, column name"]
    assert "U+202E" in lines[0]


# ---- 6. names compared by Unicode normal form and case -------------------------------------

NFC_NAME = "Jos\u00e9 Ruiz"
NFD_NAME = "Jose\u0301 Ruiz"


def test_an_events_row_finds_a_partner_whatever_normal_form_or_case_it_is_typed_in(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    partner_id = register(ledger, NFC_NAME)
    rows = [
        {
            "partner": name,
            "type": "stage_changed",
            "occurred_at": "2026-01-05T15:00:00Z",
            "stage": "exploring",
        }
        for name in (NFD_NAME, "JOS\u00c9 RUIZ")
    ]

    result = pledger(settings, "import", "events", str(events_file(tmp_path, rows)))

    assert result.exit_code == 0, result.output
    partner = ledger.get_partner(partner_id)
    assert partner.version == 3
    assert partner.name == NFC_NAME  # stored text stays byte-exact


def test_a_partners_row_in_another_normal_form_is_a_duplicate(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    partner_id = register(ledger, NFC_NAME)
    path = write(tmp_path, "partners.csv", PARTNERS_HEADER, f"{NFD_NAME},individual,,,,,,,,")

    lines = refused(settings, ledger, path, "partners")

    assert len(lines) == 1
    assert lines[0].startswith("row 2, column name: a partner named")
    assert str(partner_id) in lines[0]


def test_two_rows_of_one_name_in_two_normal_forms_are_duplicates(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "partners.csv",
        PARTNERS_HEADER,
        f"{NFC_NAME},individual,,,,,,,,",
        f"{NFD_NAME.upper()},individual,,,,,,,,",
    )

    lines = refused(settings, ledger, path, "partners")

    assert [line.split(":")[0] for line in lines] == ["row 3, column name"]
    assert "row 2 already registers" in lines[0]
