"""Tokens with a life cycle (issue 14): listed, revoked, expiring, remembered only briefly, and
a calendar feed that a calendar app reads by its URL alone."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import icalendar
import pytest

from api.auth import REMEMBER_SECONDS, TokenBook, parse_lifetime
from api.settings import Settings
from tests.api.conftest import Api
from tests.api.test_audit_cli import run_pledger


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_revoked_token_is_refused_at_once_in_the_process_that_revoked_it(api: Api) -> None:
    book = api.app.state.services.tokens
    token = book.issue("viewer", "Board member")
    assert api.client.get("/v1/partners", headers=bearer(token)).status_code == 200

    revoked = book.revoke("Board member")

    assert revoked.revoked_at
    api.assert_problem(api.client.get("/v1/partners", headers=bearer(token)), 401, "revoked")


def test_another_process_refuses_a_revoked_token_once_it_stops_remembering_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = api.app.state.services.tokens
    elsewhere = TokenBook(api.app.state.services.ledger.recorder)  # another worker's book
    token = here.issue("viewer", "Leaked")
    assert api.client.get("/v1/partners", headers=bearer(token)).status_code == 200

    elsewhere.revoke("Leaked")
    # This process remembered the token as valid a moment ago; it asks again once that is over.
    clock = here.clock()
    monkeypatch.setattr(here, "clock", lambda: clock + REMEMBER_SECONDS + 0.01)

    api.assert_problem(api.client.get("/v1/partners", headers=bearer(token)), 401, "revoked")
    assert REMEMBER_SECONDS <= 2  # issue 14: within 2 s in every other worker process


def test_an_expired_token_is_refused_and_says_so(api: Api) -> None:
    token = api.app.state.services.tokens.issue("viewer", "Short", expires_in=timedelta(0))

    api.assert_problem(api.client.get("/v1/partners", headers=bearer(token)), 401, "expired")


def test_last_used_is_written_at_most_once_a_minute(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = api.app.state.services.tokens
    recorder = api.app.state.services.ledger.recorder
    token = book.issue("viewer", "Busy reader")
    touched: list[str] = []
    touch = recorder.touch_token

    def counted_touch(token_hash: str, at: str) -> None:
        touched.append(at)
        touch(token_hash, at)

    monkeypatch.setattr(recorder, "touch_token", counted_touch)
    clock = [book.clock()]
    monkeypatch.setattr(book, "clock", lambda: clock[0])

    for _ in range(5):  # five lookups, each past the short memory
        clock[0] += REMEMBER_SECONDS + 0.01
        assert api.client.get("/v1/partners", headers=bearer(token)).status_code == 200

    assert len(touched) == 1
    (listed,) = [t for t in book.tokens() if t.name == "Busy reader"]
    assert listed.last_used_at == touched[0]


def test_a_calendar_subscribes_by_url_alone_until_its_feed_or_token_is_withdrawn(
    api: Api,
) -> None:
    book = api.app.state.services.tokens
    book.issue("viewer", "Calendar")
    secret = book.open_feed("Calendar")
    url = f"/feeds/agenda/{secret}.ics"

    fetched = api.client.get(url)  # no Authorization header: the URL alone

    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(fetched.content)
    assert str(calendar["version"]) == "2.0"

    book.close_feed("Calendar")
    assert api.client.get(url).status_code == 401
    again = book.open_feed("Calendar")
    assert api.client.get(f"/feeds/agenda/{again}.ics").status_code == 200
    book.revoke("Calendar")
    assert api.client.get(f"/feeds/agenda/{again}.ics").status_code == 401


def test_a_coalition_token_gets_no_agenda_feed(api: Api) -> None:
    coalition = api.form_coalition("Valley Coalition")
    api.app.state.services.tokens.issue("coalition", "chair", coalition)

    with pytest.raises(ValueError, match="reads the agenda"):
        api.app.state.services.tokens.open_feed("chair")


def test_two_tokens_of_one_name_are_told_apart_by_id(api: Api) -> None:
    book = api.app.state.services.tokens
    book.issue("viewer", "Twin")
    book.issue("viewer", "Twin")

    with pytest.raises(ValueError, match="say which by its id"):
        book.revoke("Twin")
    first = next(t for t in book.tokens() if t.name == "Twin")
    assert book.revoke(first.token_id).token_id == first.token_id


@pytest.mark.parametrize(("text", "days"), [("90d", 90), ("12h", 0.5), ("8w", 56), (" 1d ", 1)])
def test_lifetimes_are_read_in_hours_days_and_weeks(text: str, days: float) -> None:
    assert parse_lifetime(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["90", "0d", "-1d", "1y", "1.5d", "d"])
def test_a_lifetime_that_is_not_one_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="such as 90d"):
        parse_lifetime(text)


# ---- the CLI -------------------------------------------------------------------------------


pledger = run_pledger


def test_the_cli_makes_lists_and_revokes_tokens(sqlite_settings: Settings, tmp_path: Path) -> None:
    made = pledger(
        sqlite_settings,
        "token",
        "create",
        "--role",
        "viewer",
        "--name",
        "Board",
        "--expires",
        "90d",
    )
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"pl_[A-Za-z0-9_-]{20,}\n", made.stdout)

    listed = pledger(sqlite_settings, "token", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "ID", "NAME", "ROLE", "COALITION", "CREATED", "LAST", "USED", "EXPIRES", "STATUS", "FEED",
    ]  # fmt: skip
    assert " Board " in row
    assert "valid" in row

    revoked = pledger(sqlite_settings, "token", "revoke", "Board")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked token" in revoked.stdout
    assert "revoked 20" in pledger(sqlite_settings, "token", "list").stdout

    unknown = pledger(sqlite_settings, "token", "revoke", "Nobody")
    assert unknown.returncode == 1
    assert "no token is named or numbered 'Nobody'" in unknown.stderr
    bad = pledger(
        sqlite_settings, "token", "create", "--role", "viewer", "--name", "X", "--expires", "soon"
    )
    assert bad.returncode == 2
    assert "such as 90d" in bad.stderr


def test_the_cli_prints_a_feed_url_and_withdraws_it(sqlite_settings: Settings) -> None:
    assert (
        pledger(sqlite_settings, "token", "create", "--role", "viewer", "--name", "Cal").returncode
        == 0
    )

    feed = pledger(sqlite_settings, "token", "feed", "Cal", "--port", "8123")

    assert feed.returncode == 0, feed.stderr
    assert re.fullmatch(
        r"http://127\.0\.0\.1:8123/feeds/agenda/plf_[A-Za-z0-9_-]+\.ics\n", feed.stdout
    )
    assert "yes" in pledger(sqlite_settings, "token", "list").stdout.splitlines()[1]
    withdrawn = pledger(sqlite_settings, "token", "feed", "Cal", "--revoke")
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert "yes" not in pledger(sqlite_settings, "token", "list").stdout.splitlines()[1]
