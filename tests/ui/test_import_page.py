"""Moving in from a spreadsheet in the browser (issue 12 item 9): upload, see every problem in
a table, fix, upload again, follow the summary's links; the same file twice records nothing.

With PLEDGER_SCREENSHOTS=DIR set, the problems table and the summary are saved there as PNGs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ui.support import Site, Ui, unique

pytestmark = pytest.mark.slow

PARTNERS_HEADER = "name,kind,channels,checkin_every_days,email,phone,contact_name,contact_role"


def upload(ui: Ui, kind: str, name: str, text: str, expect: int, date_order: str = "") -> None:
    form = ui.form_of("Check and import")
    form.locator(f'input[name="kind"][value="{kind}"]').check()
    form.get_by_label("How the file writes dates such as 3/4/2026").select_option(date_order)
    form.get_by_label("File", exact=True).set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": ("\ufeff" + text).encode("utf-8")}
    )
    ui.submit(ui.button("Check and import"), expect=expect)


def problems_table(ui: Ui) -> list[list[str]]:
    rows = ui.page.locator("#import-problems tbody tr")
    return [
        [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
        for i in range(rows.count())
    ]


def shoot(ui: Ui, name: str) -> None:
    target = os.environ.get("PLEDGER_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        ui.page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def test_import_a_partners_file_then_its_history_in_two_rounds(ui: Ui, site: Site) -> None:
    union = unique("Eastside Tenants Union")
    person = unique("José Ramírez")
    ui.goto("/")
    ui.follow("Import")
    before = site.position()

    # Round one: the file as a spreadsheet wrote it.
    rows = [
        f"{union},Organization,email; in person,30,office(at)example.org,(559) 555-0142,"
        "Rosa Delgado,Organizer",
        f"{person},individual,text,monthly,,+1 559 555 0188,,",
    ]
    upload(ui, "partners", "partners.csv", "\r\n".join([PARTNERS_HEADER, *rows]) + "\r\n", 422)
    assert problems_table(ui) == [
        [
            "2",
            "kind",
            "Organization",
            "'Organization' is not allowed; use 'organization' or 'individual'",
        ],
        [
            "2",
            "channels",
            "email; in person",
            "'in person' is not allowed; use 'email', 'phone', 'text', 'in_person', 'video', "
            "'social_media' or 'letter'",
        ],
        [
            "2",
            "email",
            "office(at)example.org",
            "'office(at)example.org' is not an email address (An email address must have an "
            "@-sign); write one like name@example.org",
        ],
        ["3", "checkin_every_days", "monthly", "'monthly' is not a whole number"],
    ]
    shoot(ui, "import-problems")
    assert site.position() == before  # nothing recorded

    # Round two: each cell fixed as its message says.
    fixed = [
        f"{union},organization,email; in_person,30,office@example.org,(559) 555-0142,"
        "Rosa Delgado,Organizer",
        f"{person},individual,text,30,,+1 559 555 0188,,",
    ]
    upload(ui, "partners", "partners.csv", "\r\n".join([PARTNERS_HEADER, *fixed]) + "\r\n", 200)
    assert "Recorded 4 events for 2 partners." in ui.page.locator("#import-summary").inner_text()

    # History, with the name typed without its accents, and a misspelling.
    plain = person.replace("José Ramírez", "Jose Ramirez")
    misspelled = person.replace("José Ramírez", "Jsoe Ramirez")
    header = "partner,type,occurred_at,channel,direction,summary"
    history = [
        f"{plain},contact_made,2026-01-05T12:00:00Z,phone,inbound,Asked about the dates",
        f"{misspelled},contact_made,2026-01-06T12:00:00Z,text,outbound,Sent the dates",
        f"{union},contact_made,2026-01-07T12:00:00Z,email,outbound,Sent the agenda",
    ]
    upload(ui, "events", "events.csv", "\r\n".join([header, *history]), 422, date_order="mdy")
    (problem,) = problems_table(ui)
    assert problem[:3] == ["3", "partner", misspelled]
    assert problem[3].endswith(f"did you mean '{person}'?")
    history[1] = history[1].replace(misspelled, person)
    upload(ui, "events", "events.csv", "\r\n".join([header, *history]), 200)
    assert "Recorded 3 events for 2 partners." in ui.main_text()
    shoot(ui, "import-summary")

    ui.submit(ui.page.locator("#touched-partners").get_by_role("link", name=union, exact=True))
    assert ui.h1() == union
    assert ui.page.locator("#contact-emails").inner_text() == "office@example.org"
    assert "Rosa Delgado, Organizer" in ui.page.locator("#contact-people").inner_text()
    # The profile form starts from the contacts on record; a contact person is a line.
    ui.follow("Update profile")
    people = ui.page.get_by_label("People", exact=False)
    assert people.input_value() == "Rosa Delgado; Organizer"
    people.fill("Rosa Delgado; Organizer\nSam Ortiz; Treasurer; sam@example.org")
    ui.submit(ui.button("Record"))
    assert "Sam Ortiz, Treasurer" in ui.page.locator("#contact-people").inner_text()

    # The same file again records nothing, and says so.
    ui.follow("Import")
    upload(ui, "events", "events.csv", "\r\n".join([header, *history]), 200)
    assert "3 rows already recorded, 0 new." in ui.main_text()
    assert ui.page.locator("#touched-partners").count() == 0
    ui.finish()
