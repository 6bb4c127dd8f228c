"""Issue 10, item 7: a cursor walk is one consistent snapshot.

A cursor pins the ``as_of`` and ``position`` of its first page (SPEC §4), so a partner whose
sort key changes between pages is neither dropped nor shown twice; a cursor used with another
reference or another sort is refused with 422, never silently reinterpreted. On both stores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.api.conftest import Api

# Days since each partner's last meeting: with cadence 30 the cadence component is 100, 75, 50,
# 25 and 0, and so is the health (nothing else has anything to measure, SPEC §3).
AGES = {"Alder": 10, "Birch": 45, "Cedar": 60, "Dogwood": 75, "Elm": 100}


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


@pytest.fixture
def five(api: Api) -> dict[str, str]:
    ids = {}
    for name, age in AGES.items():
        ids[name] = api.register(name, occurred_at=_days_ago(120))
        api.append(ids[name], "meeting_held", _days_ago(age), kind="check_in", location="ours")
    return ids


def _walk(api: Api, first: dict[str, Any], between: Any = None) -> list[str]:
    walked = [p["id"] for p in first["partners"]]
    cursor = first["next_cursor"]
    if between is not None:
        between()
    while cursor is not None:
        page = api.read("/v1/partners", sort="health", limit=2, cursor=cursor)
        assert (page["as_of"], page["position"]) == (first["as_of"], first["position"])
        walked += [p["id"] for p in page["partners"]]
        cursor = page["next_cursor"]
        assert len(walked) <= 10, "the cursor never ends"
    return walked


def test_a_partner_whose_health_changes_between_pages_is_walked_once(
    api: Api, five: dict[str, str]
) -> None:
    first = api.read("/v1/partners", sort="health", limit=2)
    whole = api.read(
        "/v1/partners", sort="health", as_of=first["as_of"], position=first["position"]
    )
    before = [p["id"] for p in whole["partners"]]
    # Only cadence has something to measure (SPEC §3): 10, 45, 60, 75 and 100 days of silence.
    assert [p["health"]["score"] for p in whole["partners"]] == [100, 75, 50, 25, 0]

    def elm_meets_us() -> None:  # 0 -> 100: Elm would jump above the cursor
        api.append(five["Elm"], "meeting_held", _days_ago(0), kind="check_in", location="ours")

    walked = _walk(api, first, between=elm_meets_us)

    assert walked == before
    now = api.read("/v1/partners", sort="health", limit=1)["partners"]
    assert now[0]["health"]["score"] == 100  # the meeting did count, after the walk


def test_a_cursor_with_another_as_of_or_position_is_refused(api: Api, five: dict[str, str]) -> None:
    first = api.read("/v1/partners", sort="health", limit=2)
    cursor = first["next_cursor"]
    api.append(five["Elm"], "meeting_held", _days_ago(0), kind="check_in", location="ours")

    other_as_of = api.get("/v1/partners", sort="health", cursor=cursor, as_of="2025-01-01")
    other_position = api.get(
        "/v1/partners", sort="health", cursor=cursor, position=first["position"] + 1
    )
    same = api.get(
        "/v1/partners",
        sort="health",
        limit=2,
        cursor=cursor,
        as_of=first["as_of"],
        position=first["position"],
    )

    assert api.assert_problem(other_as_of, 422, "as_of")["field"] == "as_of"
    assert api.assert_problem(other_position, 422, "position")["field"] == "position"
    assert same.status_code == 200


@pytest.mark.parametrize("other_sort", ["name", "last_touch"])
def test_a_cursor_of_another_sort_is_refused(
    api: Api, five: dict[str, str], other_sort: str
) -> None:
    cursor = api.read("/v1/partners", sort="health", limit=2)["next_cursor"]

    response = api.get("/v1/partners", sort=other_sort, cursor=cursor)

    assert api.assert_problem(response, 422, "cursor")["field"] == "cursor"


def test_a_partner_cursor_is_refused_by_a_timeline(api: Api, five: dict[str, str]) -> None:
    cursor = api.read("/v1/partners", sort="name", limit=2)["next_cursor"]

    response = api.get(f"/v1/partners/{five['Alder']}/timeline", cursor=cursor)

    assert api.assert_problem(response, 422, "cursor")["field"] == "cursor"


def test_a_timeline_walk_keeps_its_first_pages_position(api: Api, five: dict[str, str]) -> None:
    partner = five["Alder"]
    for days in (9, 8):
        api.append(partner, "stage_changed", _days_ago(days), stage="exploring")
    first = api.read(f"/v1/partners/{partner}/timeline", limit=2)

    # Backdated between the pages: it would fall among the pages still to come.
    api.append(partner, "stage_changed", _days_ago(8), stage="paused")
    second = api.read(f"/v1/partners/{partner}/timeline", limit=2, cursor=first["next_cursor"])

    assert second["position"] == first["position"]
    versions = [e["version"] for e in first["events"] + second["events"]]
    assert versions == [1, 2, 3, 4]  # registration, the meeting 10 days ago, the two stages
    assert second["next_cursor"] is None
