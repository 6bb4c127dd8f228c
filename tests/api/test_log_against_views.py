"""What the ledger already knows, compared (issue 15 item 5).

The views remember what they took in: the position they reached, the digest they chained (a
checkpoint every 256 events and the chain's head) and each stream's last event. `pledger verify`
and `/healthz` compare the log with that. Given a ledger whose views are current, when the newest
event(s) are deleted behind the ledger's back (in a ledger made for the test, in a temporary
directory), then verify fails naming the removal and /healthz says "tampered"; when the freed
position is then written again, the views do not skip the new event silently.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from api.settings import Settings
from api.wiring import open_ledger
from domain.chained import Stamp
from domain.values import Channel, ContactMade, Direction
from projections.store import LogRewritten
from tests.api.conftest import Api
from tests.api.test_audit_cli import run_pledger


def _record(api: Api, contacts: int) -> tuple[str, list[dict[str, Any]]]:
    partner = api.register("Cooperativa La Esquina")
    recorded = [
        api.append(
            partner,
            "contact_made",
            f"2025-03-{1 + n % 28:02d}T10:00:00Z",
            channel="phone",
            direction="outbound",
            summary=f"call {n}",
        )
        for n in range(contacts)
    ]
    return partner, recorded


def _delete_from(settings: Settings, position: int) -> int:
    """Delete every stored event at ``position`` or after; returns how many."""
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg:
            return pg.execute(
                "DELETE FROM pledger_events WHERE notification_id >= %s", (position,)
            ).rowcount
    lite = sqlite3.connect(settings.db_path)
    try:
        with lite:
            return lite.execute("DELETE FROM stored_events WHERE rowid >= ?", (position,)).rowcount
    finally:
        lite.close()


def _healthz(api: Api) -> dict[str, Any]:
    response = api.client.get("/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _verify_mismatches(settings: Settings) -> tuple[int, list[str]]:
    result = run_pledger(settings, "verify")
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if line.startswith("MISMATCH")]


def _caught_up(api: Api) -> int:
    health = _healthz(api)
    api.app.state.services.keeper.wait_for(health["log_position"])
    health = _healthz(api)
    assert health["views_position"] == health["log_position"]
    assert health["status"] == "ok", health
    return int(health["log_position"])


@pytest.mark.parametrize("removed", [1, 50])
def test_deleting_the_newest_events_is_caught_by_verify_and_healthz(
    api: Api, settings: Settings, removed: int
) -> None:
    _record(api, 60)
    end = _caught_up(api)
    assert run_pledger(settings, "verify").returncode == 0

    assert _delete_from(settings, end - removed + 1) == removed

    health = _healthz(api)
    assert health["status"] == "tampered"
    assert health["log_position"] == end - removed
    assert any("events were removed" in line for line in health["tampering"]), health
    exit_code, mismatches = _verify_mismatches(settings)
    assert exit_code == 1
    assert any(
        f"the log ends at position {end - removed}" in line and "events were removed" in line
        for line in mismatches
    ), mismatches
    assert any(
        f"MISMATCH position {end}: stream " in line and "no longer in the log" in line
        for line in mismatches
    ), mismatches


def test_a_position_written_again_after_a_deletion_is_not_skipped_silently(
    api: Api, settings: Settings
) -> None:
    partner, _ = _record(api, 3)
    end = _caught_up(api)
    assert _delete_from(settings, end) == 1
    # The next write takes the stream's freed version (and, on SQLite, the freed position).
    ledger = open_ledger(settings)
    try:
        again = ledger.record(
            UUID(partner),
            ContactMade(channel=Channel.EMAIL, direction=Direction.INBOUND, summary="again"),
            Stamp(datetime(2025, 3, 20, 9, tzinfo=UTC), "steward:ana"),
        )
    finally:
        ledger.close()
    assert again.position >= end
    api.app.state.services.keeper.notify()

    health = _healthz(api)

    assert health["status"] == "tampered", health
    assert any(str(end) in line for line in health["tampering"]), health
    exit_code, mismatches = _verify_mismatches(settings)
    assert exit_code == 1
    assert any(f"MISMATCH position {end}" in line for line in mismatches), mismatches
    # The views never take the new event in as if nothing had happened.
    keeper = api.app.state.services.keeper
    if settings.database_url:  # a new position, the stream's freed version: the views refuse
        with pytest.raises(LogRewritten, match=f"version {again.version}"):
            keeper.catch_up()
    else:  # the freed position again: the views, already past it, read nothing new there
        assert keeper.catch_up() == 0
    assert api.app.state.services.view.processed_position() == end


def test_an_untouched_ledger_passes_verify_and_healthz_with_its_views_current(
    api: Api, settings: Settings
) -> None:
    _record(api, 300)  # past a digest checkpoint (every 256 events)
    _caught_up(api)

    exit_code, mismatches = _verify_mismatches(settings)

    assert (exit_code, mismatches) == (0, [])
    assert "tampering" not in _healthz(api)


def _swap(settings: Settings, first: int, second: int) -> None:
    """Swap the stored events at two positions (each keeps its stream, version and hash)."""
    columns = "originator_id, originator_version, topic, state"
    if settings.database_url:
        import psycopg

        table, position, mark = "pledger_events", "notification_id", "%s"
        connection: Any = psycopg.connect(settings.database_url)
    else:
        table, position, mark = "stored_events", "rowid", "?"
        connection = sqlite3.connect(settings.db_path)
    select = f"SELECT {columns} FROM {table} WHERE {position} = {mark}"
    update = (
        f"UPDATE {table} SET originator_id = {mark}, originator_version = {mark}, "
        f"topic = {mark}, state = {mark} WHERE {position} = {mark}"
    )
    try:
        with connection:
            a = connection.execute(select, (first,)).fetchone()
            b = connection.execute(select, (second,)).fetchone()
            connection.execute(
                f"UPDATE {table} SET originator_version = -1 WHERE {position} = {mark}", (second,)
            )
            connection.execute(update, (*b, first))
            connection.execute(update, (*a, second))
    finally:
        connection.close()


def test_swapping_two_adjacent_events_of_different_streams_is_caught_by_verify(
    api: Api, settings: Settings
) -> None:
    _record(api, 2)
    api.register("Biblioteca Popular")
    end = _caught_up(api)
    assert run_pledger(settings, "verify").returncode == 0

    _swap(settings, end - 1, end)  # the first partner's last call, the second's registration

    exit_code, mismatches = _verify_mismatches(settings)
    assert exit_code == 1
    assert any(
        f"MISMATCH position {end}: the log's digest" in line and "reordered" in line
        for line in mismatches
    ), mismatches
