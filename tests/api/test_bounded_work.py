"""Issue 10, item 11: every answer's size and cost is bounded.

``health/history`` gives at most ``MAX_HISTORY_POINTS`` points and asks for a narrower range
beyond that (422 on ``from``), instead of folding a partner's history 105,000 times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from projections.queries import MAX_HISTORY_POINTS

if TYPE_CHECKING:
    from tests.api.conftest import Api


@pytest.fixture(scope="module")
def partner_id(shared_api: Api) -> str:
    return shared_api.register("Long History", occurred_at="2001-01-01T00:00:00Z")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01", "interval": "week"},
        {"from": "0001-01-01", "interval": "month"},
        {"interval": "week"},  # from the registration in 2001: more than ten years of weeks
    ],
)
def test_a_history_of_too_many_points_asks_for_a_narrower_range(
    shared_api: Api, partner_id: str, params: dict[str, str]
) -> None:
    response = shared_api.client.get(
        f"/v1/partners/{partner_id}/health/history", params=params, headers=shared_api.steward
    )

    problem = shared_api.assert_problem(response, 422, f"at most {MAX_HISTORY_POINTS}")
    assert problem["field"] == "from"


def test_a_history_of_the_most_points_is_given(shared_api: Api, partner_id: str) -> None:
    today = datetime.now(UTC).date()
    start = today - timedelta(weeks=MAX_HISTORY_POINTS - 1)

    history = shared_api.read(
        f"/v1/partners/{partner_id}/health/history",
        **{"from": start.isoformat(), "to": today.isoformat(), "interval": "week"},
    )

    assert MAX_HISTORY_POINTS - 1 <= len(history["points"]) <= MAX_HISTORY_POINTS


def test_a_monthly_history_since_2001_is_given(shared_api: Api, partner_id: str) -> None:
    history = shared_api.read(f"/v1/partners/{partner_id}/health/history")

    assert len(history["points"]) >= 12 * 24
    assert history["points"][0]["as_of"] == "2001-01-31"
