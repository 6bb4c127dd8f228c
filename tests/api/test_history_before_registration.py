"""History recorded before a registration counts (issue 12, item 5), on both stores.

The coordinator's migration: a partners file without ``occurred_at`` registers everyone on
import day; a year of history imported afterwards is dated long before. A relationship begins
at its earliest counted entry, so every past-date question answers from there with the
registration's profile, and a coalition lists its members from the day they joined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from api.cli import app
from api.settings import Settings
from tests.api.conftest import Api


def _excel(*rows: str) -> str:
    """A CSV file as Excel writes "CSV UTF-8": a byte-order mark and CRLF line ends."""
    return "\ufeff" + "".join(row + "\r\n" for row in rows)


PARTNERS = _excel(
    "name,kind,roles,communities,region,channels,language,accessibility,gratitude,"
    "checkin_every_days",
    "Café Esperanza Community Kitchen,organization,community_leader,"
    "Latino; food insecurity,South County,email; phone,es,,,30",
    "St. Mary's Free Clinic,organization,technical_expert,uninsured; seniors,Central,email,en,,,60",
    "Riverside Senior Center,organization,,seniors,North,letter,en,,,30",
)
EVENTS = _excel(
    "partner,type,occurred_at,kind,location,summary,channel,direction,commitment_id,"
    "owed_by,description,due_on,resource,amount,currency,note,form",
    "Café Esperanza Community Kitchen,contact_made,12/3/2025,,,"
    "Intro email about the listening sessions,email,outbound,,,,,,,,,",
    "Café Esperanza Community Kitchen,meeting_held,12/15/2025,listening_session,theirs,"
    "Listening session at the café,,,,,,,,,,,",
    "Café Esperanza Community Kitchen,commitment_made,12/15/2025,,,,,,C-1,us,"
    "Pay the hosting stipend,1/15/2026,financial,1500.00,USD,,",
    "Café Esperanza Community Kitchen,commitment_fulfilled,1/10/2026,,,,,,C-1,,,,,,,Check mailed,",
    "Café Esperanza Community Kitchen,thanks_expressed,1/12/2026,,,,,,,,,,,,,"
    "Card from the director,note",
    "St. Mary's Free Clinic,meeting_held,2026-01-20,planning,ours,Flu clinic planning,,,,,,,,,,,",
    "St. Mary's Free Clinic,commitment_made,2026-01-20 09:30,,,,,,C-2,partner,"
    "Staff two nurses,2/14/2026,personnel,,,,",
    "St. Mary's Free Clinic,commitment_fulfilled,2/14/2026,,,,,,C-2,,,,,,,Two nurses staffed,",
    "Riverside Senior Center,contact_made,11/20/2026,,,Mailed flu shot flyers,letter,"
    "outbound,,,,,,,,,",
)
CAFE, CLINIC, RIVERSIDE = (
    "Café Esperanza Community Kitchen",
    "St. Mary's Free Clinic",
    "Riverside Senior Center",
)


def pledger(settings: Settings, *args: str) -> Result:
    argv = list(args)
    if settings.database_url is None:
        argv += ["--db", str(settings.db_path)]
    return CliRunner().invoke(app, argv, env={"PLEDGER_DATABASE_URL": settings.database_url or ""})


def moved_in(api: Api, settings: Settings, tmp_path: Path) -> tuple[dict[str, str], str, Result]:
    """The coordinator's two files imported (partners first, registered today), the coalition
    formed and joined as of early 2026: the partners' ids, the coalition's, and the events
    import's result."""
    coalition = api.form_coalition("County Health Equity Coalition", "2025-11-01T09:00:00Z")
    (tmp_path / "partners.csv").write_text(PARTNERS, encoding="utf-8", newline="")
    (tmp_path / "events.csv").write_text(EVENTS, encoding="utf-8", newline="")
    registered = pledger(settings, "import", "partners", str(tmp_path / "partners.csv"))
    assert registered.exit_code == 0, registered.output
    api.app.state.services.keeper.catch_up()
    ids = {p["name"]: p["id"] for p in api.read("/v1/partners")["partners"]}
    for name in (CAFE, CLINIC):
        api.join(coalition, ids[name], "2026-01-05T09:00:00Z")
    api.join(coalition, ids[RIVERSIDE], "2026-02-01T09:00:00Z")
    imported = pledger(
        settings, "import", "events", str(tmp_path / "events.csv"), "--date-order", "mdy"
    )
    assert imported.exit_code == 0, imported.output
    api.app.state.services.keeper.catch_up()
    return ids, coalition, imported


def test_the_events_import_says_it_recorded_history_older_than_the_registrations(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    _, _, imported = moved_in(api, settings, tmp_path)

    assert "Recorded 9 events for 3 partners from events.csv." in imported.stdout
    assert "9 of these events happened before their partner was registered." in imported.stdout
    assert f"  {CAFE}: 5 events before its registration on " in imported.stdout
    assert f"  {RIVERSIDE}: 1 event before its registration on " in imported.stdout


def test_a_past_date_between_the_first_entry_and_the_registration_answers(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    ids, _, _ = moved_in(api, settings, tmp_path)
    cafe = ids[CAFE]

    timeline = api.read(f"/v1/partners/{cafe}/timeline", as_of="2026-01-11")
    partner = api.read(f"/v1/partners/{cafe}", as_of="2026-01-11")
    health = api.read(f"/v1/partners/{cafe}/health", as_of="2026-01-11")
    commitments = api.read(f"/v1/partners/{cafe}/commitments", as_of="2026-01-11")

    assert [e["type"] for e in timeline["events"]] == [
        "contact_made",
        "meeting_held",
        "commitment_made",
        "commitment_fulfilled",
    ]
    assert partner["name"] == CAFE  # the registration's profile
    assert partner["communities"] == ["Latino", "food insecurity"]
    # A meeting on 15 December: 27 days before 11 January, within the 30-day cadence.
    cadence = next(c for c in health["components"] if c["name"] == "cadence")
    assert cadence["explanation"].startswith("Last two-way contact 27 days ago")
    assert [(c["commitment_id"], c["status"]) for c in commitments["commitments"]] == [
        ("C-1", "fulfilled_on_time")
    ]


def test_before_any_of_its_history_a_partner_is_not_on_record(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    ids, _, _ = moved_in(api, settings, tmp_path)

    response = api.get(f"/v1/partners/{ids[CAFE]}/timeline", as_of="2025-12-02")

    api.assert_problem(response, 404)
    assert api.get(f"/v1/partners/{ids[CAFE]}", as_of="2025-12-03").status_code == 200


def test_health_history_starts_at_the_relationships_first_entry(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    ids, _, _ = moved_in(api, settings, tmp_path)

    history = api.read(f"/v1/partners/{ids[CAFE]}/health/history", to="2026-03-31")

    assert history["from"] == "2025-12-03"
    assert history["time_zone"] == "UTC"
    assert [p["as_of"] for p in history["points"]][:3] == ["2025-12-31", "2026-01-31", "2026-02-28"]


def test_cadence_without_a_two_way_touch_is_measured_from_the_first_entry(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    # Riverside's only entry is an outbound letter on 20 November 2026, before its registration.
    ids, _, _ = moved_in(api, settings, tmp_path)

    health = api.read(f"/v1/partners/{ids[RIVERSIDE]}/health", as_of="2026-11-25")

    cadence = next(c for c in health["components"] if c["name"] == "cadence")
    assert cadence["explanation"].startswith(
        "No two-way contact (a meeting or an inbound contact) in the 5 days since the "
        "relationship began"
    )


def test_the_coalition_report_lists_its_members_by_their_join_dates(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    ids, coalition, _ = moved_in(api, settings, tmp_path)

    june: dict[str, Any] = api.read(f"/v1/coalitions/{coalition}/report", as_of="2026-06-30")
    january: dict[str, Any] = api.read(f"/v1/coalitions/{coalition}/report", as_of="2026-01-20")

    assert [m["name"] for m in june["members"]] == [CAFE, RIVERSIDE, CLINIC]
    assert [m["name"] for m in january["members"]] == [CAFE, CLINIC]  # Riverside joins 1 Feb
    cafe = next(m for m in june["members"] if m["partner_id"] == ids[CAFE])
    assert cafe["us"]["fulfilled_on_time"] == 1
    assert cafe["payments"] == {}
    assert june["totals"]["partner"]["fulfilled_on_time"] == 1
