"""The coalition aggregate's rules (SPEC §2), with no database.

Whether a joining partner exists is the application's check (it needs the store), so it is
tested in test_application.py; here a partner id is just an id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pydantic
import pytest

from domain.chained import ChainedAggregate, Stamp
from domain.coalition import Coalition
from domain.errors import MembershipConflict, ValidationFailed
from domain.hashing import GENESIS
from domain.values import CoalitionFormed, MemberJoined, MemberLeft

AT = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)
RECORDER = "steward:amara"
EASTSIDE = UUID("6f1c1d2e-0000-4000-8000-000000000001")
NORTHSIDE = UUID("6f1c1d2e-0000-4000-8000-000000000002")


def stamp(at: datetime = AT) -> Stamp:
    return Stamp(occurred_at=at, recorded_by=RECORDER)


def formation() -> CoalitionFormed:
    return CoalitionFormed.model_validate(
        {
            "name": "Eastside Housing Table",
            "shared_vision": "No family displaced",
            "agreed_measures": ["evictions prevented", "units preserved"],
        }
    )


def joining(partner_id: UUID) -> MemberJoined:
    return MemberJoined(partner_id=partner_id)


def leaving(partner_id: UUID) -> MemberLeft:
    return MemberLeft(partner_id=partner_id, reason="moved on")


def given_members(*partner_ids: UUID) -> Coalition:
    coalition = Coalition.form(formation(), stamp())
    for partner_id in partner_ids:
        coalition.admit(joining(partner_id), stamp())
    coalition.collect_events()
    return coalition


def new_events(coalition: Coalition) -> list[ChainedAggregate.Event]:
    events = coalition.collect_events()
    assert all(isinstance(event, ChainedAggregate.Event) for event in events)
    return [event for event in events if isinstance(event, ChainedAggregate.Event)]


def test_forming_a_coalition_records_coalition_formed_with_no_members() -> None:
    coalition = Coalition.form(formation(), stamp())

    (event,) = new_events(coalition)

    assert event.type == "coalition_formed"
    assert event.data == formation()
    assert coalition.name == "Eastside Housing Table"
    assert coalition.agreed_measures == ("evictions prevented", "units preserved")
    assert coalition.members == set()


def test_a_partner_joins_a_coalition() -> None:
    coalition = given_members()

    coalition.admit(joining(EASTSIDE), stamp())

    (event,) = new_events(coalition)
    assert event.type == "member_joined"
    assert event.data == joining(EASTSIDE)
    assert coalition.members == {EASTSIDE}


def test_joining_twice_is_a_conflict() -> None:
    coalition = given_members(EASTSIDE)

    with pytest.raises(MembershipConflict):
        coalition.admit(joining(EASTSIDE), stamp())

    assert new_events(coalition) == []


def test_a_member_leaves_a_coalition() -> None:
    coalition = given_members(EASTSIDE, NORTHSIDE)

    coalition.release(leaving(EASTSIDE), stamp())

    (event,) = new_events(coalition)
    assert event.type == "member_left"
    assert event.data == leaving(EASTSIDE)
    assert coalition.members == {NORTHSIDE}


def test_leaving_when_never_a_member_is_a_conflict() -> None:
    coalition = given_members(NORTHSIDE)

    with pytest.raises(MembershipConflict):
        coalition.release(leaving(EASTSIDE), stamp())

    assert new_events(coalition) == []


def test_leaving_twice_is_a_conflict() -> None:
    coalition = given_members(EASTSIDE)
    coalition.release(leaving(EASTSIDE), stamp())
    coalition.collect_events()

    with pytest.raises(MembershipConflict):
        coalition.release(leaving(EASTSIDE), stamp())


def test_a_partner_who_left_may_join_again() -> None:
    coalition = given_members(EASTSIDE)
    coalition.release(leaving(EASTSIDE), stamp())

    coalition.admit(joining(EASTSIDE), stamp())

    assert [event.type for event in new_events(coalition)] == ["member_left", "member_joined"]
    assert coalition.members == {EASTSIDE}


def test_coalition_events_carry_the_common_fields_and_form_a_hash_chain() -> None:
    coalition = Coalition.form(formation(), stamp())
    coalition.admit(joining(EASTSIDE), stamp(AT + timedelta(days=1)))
    coalition.release(leaving(EASTSIDE), stamp(AT + timedelta(days=2)))

    events = new_events(coalition)

    assert [e.originator_version for e in events] == [1, 2, 3]
    assert [e.occurred_at for e in events] == [AT, AT + timedelta(days=1), AT + timedelta(days=2)]
    assert {e.recorded_by for e in events} == {RECORDER}
    assert all(e.recorded_at == e.timestamp for e in events)
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert all(e.compute_hash() == e.hash for e in events)


COMMANDS: dict[str, Callable[[Coalition, Stamp], object]] = {
    "form": lambda _, at: Coalition.form(formation(), at),
    "admit": lambda coalition, at: coalition.admit(joining(NORTHSIDE), at),
    "release": lambda coalition, at: coalition.release(leaving(EASTSIDE), at),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_coalition_event_more_than_five_minutes_in_the_future_is_refused(command: str) -> None:
    coalition = given_members(EASTSIDE)
    future = stamp(datetime.now(UTC) + timedelta(minutes=6))

    with pytest.raises(ValidationFailed):
        COMMANDS[command](coalition, future)

    assert new_events(coalition) == []
    assert coalition.members == {EASTSIDE}


def test_a_coalition_needs_a_name() -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        CoalitionFormed.model_validate({"name": "   "})

    assert refused.value.errors()[0]["loc"] == ("name",)


def test_a_member_is_named_by_a_partner_uuid() -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        MemberJoined.model_validate({"partner_id": "Eastside Tenants Union"})

    assert refused.value.errors()[0]["loc"] == ("partner_id",)


def test_each_coalition_has_its_own_stream() -> None:
    first = Coalition.form(formation(), stamp())
    second = Coalition.form(formation(), stamp())

    assert first.id != second.id
    assert [e.originator_id for e in new_events(second)] == [second.id]
